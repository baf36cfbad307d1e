#!/usr/bin/env bash
# Installs the Debian 12 packages concur needs to build, test, benchmark and run.
# Idempotent and quick: it asks dpkg what is missing and only then runs apt-get update/install
# (as root, or through sudo when available).
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config python3
  lld  # the linker (cmake/options.cmake): links the ~150 test and example programs faster than ld
  dpkg-dev file  # cpack -G DEB (cmake/install.cmake): dpkg-shlibdeps and ELF detection for the .deb
  libgtest-dev libgmock-dev libbenchmark-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev
  libtbb-dev libconcurrentqueue-dev
  libcereal-dev  # serialization of task arguments across processes (DESIGN.md)
  libboost1.81-dev  # Boost 1.81 headers (Asio); never libboost-dev / libboost-all-dev (DESIGN.md)
  libssl-dev  # OpenSSL: TLS for aio streams (Asio's ssl::stream)
  libcurl4-openssl-dev  # libcurl (multi interface): concur crawl's HTTP downloader (src/crawl/)
  python3-aiohttp  # `concur bench async_crawl`: the notes' aiohttp crawler (else asyncio streams)
  libboost-url1.81-dev  # concur::crawl URLs (Boost.URL 1.81, compiled; depends only on libboost1.81-dev)
  libxml2-dev  # concur::crawl selectors: libxml2's HTML parser and XPath
  libsqlite3-dev  # concur::crawl: the SQLite feed export and the disk-backed frontier (JOBDIR)
  python3-parsel  # bench/compare/python_parse_bench.py: parsel + lxml, the Python peer of crawl parsing
  nginx  # crawl tests and benchmarks: the static test site (tests/support/nginx_server.hpp);
         # Debian 12's nginx-light is only a transitional package pulling nginx + the echo module
  wget2  # crawl benchmark peer: `wget2 --recursive` against the same local site
  python3-scrapy  # crawl benchmark peer: a Scrapy spider against the same local site
  libmimalloc-dev  # the `concur` binary's malloc (apps/concur/CMakeLists.txt, CONCUR_CLI_MALLOC)
  wrk  # serve benchmark (bench/compare/run_serve_bench.sh): the HTTP load generator (Debian's 4.1)
  python3-flask  # serve benchmark peer: the notes' two flask programs (bench/compare/flask_notes_app.py)
  gunicorn  # serve benchmark peer: the WSGI server running the flask app (--threads / --workers)
  libhiredis-dev  # concur::dist: the Redis client (hiredis) under RedisExecutor and the workers
  redis-server  # concur::dist tests and benchmarks: a private redis-server on a free loopback port
  iproute2  # concur::dist's hosts test: `ip netns` and veth links (tests/support/netns.hpp)
  python3-celery  # dist benchmark peer: Celery with the Redis broker (bench/compare/dist/)
  python3-rq  # dist benchmark peer: RQ (bench/compare/dist/)
  librabbitmq-dev  # concur::dist over RabbitMQ (issue 18): rabbitmq-c under dist::Amqp
  rabbitmq-server  # its tests: a private broker on free loopback ports (tests/support/rabbitmq_server.hpp)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Services (nginx, redis-server, rabbitmq-server) are installed without being started: the tests
# start private servers on free loopback ports, and a system-wide broker would only cost memory.
# policy-rc.d (Debian's invoke-rc.d policy) says "no start" during this install, then goes.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" > /dev/null
  $sudo chmod +x "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
