#!/usr/bin/env bash
# run_crawl_bench.sh: the whole-crawl benchmark of issue 14 ("Benchmarks"): concur's crawler beside
# Scrapy, wget2 and a plain asyncio crawler on the same generated blog (tests/support/
# crawl_site.hpp), on loopback. Builds nothing.
#
#   1. Static run: a private nginx (crawl_site_tool nginx) serves the site written by
#      crawl_site_tool write (POSTS posts: ~3,950 URLs answered: posts in plain and query forms,
#      lists, 302s, 404s; robots.txt disallows /private/). Every crawler runs RUNS times, the order
#      rotated each run. Per run: pages = requests nginx answered (its access log: the same count
#      for every crawler) and the crawler's own count, wall time, pages/s, CPU ms per page
#      (user + sys of the crawler's process, /usr/bin/time), peak RSS, nginx's own CPU, the
#      machine's other load.
#   2. Latency run: crawl_site_tool serve (the logging aio server) answers every request after
#      LATENCY ms; concur, Scrapy and asyncio at CONCURRENT_REQUESTS 16 (per domain 16); pages/s
#      beside the ceiling 16 / latency (the issue's floor, pages x latency / 16, as a time), and
#      the server's view (requests, most in flight, mean in flight, seconds with fewer than 8 in
#      flight, pages fetched twice, robots; its whole log is kept as server_log.jsonl).
#   3. With --perf: one more static crawl by the library driver under `perf record` (DWARF call
#      graphs), its top symbols and libraries (self time), and crawl_perf_breakdown.py's shares
#      per thread, per part of the crawl, and of the allocator, saved with the results.
#   Then bench/compare/crawl_bench_summary.py prints the table and writes the raw runs and the
#   summary as JSON (--out, default bench/results/<UTC date>_crawl_bench.json).
#
# The crawlers (each: the start URL, obey robots.txt, follow every in-domain <a href>, an item
# {url, title, author} per page where h1.title / span.author matched, JSON Lines out):
#   concur-lib  BUILD/bench/crawl_driver (crawl::Crawler on the tests' SiteSpider)
#   concur-cli  BUILD/apps/concur/concur crawl ... --extract title=... --extract author=...
#               (only when that binary has the `crawl` subcommand)
#   concur-links BUILD/apps/concur/concur crawl URL: links only, no item, no selector — wget2's
#               work (a streaming link pass by scan_links, no tree), for the wget2 comparison
#   scrapy      /usr/bin/python3 -m scrapy runspider bench/compare/scrapy_site_spider.py
#   asyncio     /usr/bin/python3 bench/compare/asyncio_site_crawler.py (aiohttp, Semaphore(16))
#   wget2       wget2 --recursive --level=inf --no-parent --robots=on --max-threads=16: no item
#               extraction, and it saves every page, to a tmpfs (/dev/shm when writable: on this
#               VM's disk its sys time varied 0.5-2 s a run); it dedupes on the URL as written, so
#               it fetches query-shuffled twins (/post/N?a=1&utm=x and ?utm=x&a=1) the others
#               dedupe — compare per page, and see its page count. Exit 8 (404s seen) is normal.
#               Static run only.
# Every crawler runs with CONCURRENT_REQUESTS 16, 16 per domain (wget2: 16 threads), LOG_LEVEL
# INFO (Scrapy's default; concur's is the same), under `timeout` (--crawl-timeout).
#
# Usage: bench/compare/run_crawl_bench.sh [BUILD_DIR] [--runs 3] [--posts 2000] [--latency-ms 50]
#          [--only static|latency] [--peers concur-lib,concur-cli,concur-links,scrapy,asyncio,wget2]
#          [--perf]
#          [--calm-wait 20] [--crawl-timeout 600] [--out FILE] [--keep]
#   BUILD_DIR defaults to build/release; it needs bench/crawl_site_tool and bench/crawl_driver:
#     cmake --build BUILD_DIR --target crawl_site_tool crawl_driver -j1
#   --calm-wait S: before each crawl, wait up to S seconds for a 2 s window with the CPUs >= 85 %
#     idle (the machine is shared); what was seen is recorded either way.
#   --keep keeps the work directory (site, logs, items) and prints its path.
# Needs: nginx, wget2, /usr/bin/time, Debian's python3 with python3-scrapy, -aiohttp, -parsel.
# Loopback only (127.0.0.1); every wait is bounded.
set -euo pipefail

die() {
  echo "run_crawl_bench.sh: $*" >&2
  exit 1
}

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build/release
runs=3
posts=2000
latency_ms=50
only=""
peers_arg=""
perf=0
calm_wait=20
crawl_timeout=600
out=""
keep=0
python=/usr/bin/python3

if [[ $# -gt 0 && $1 != --* ]]; then
  build=$1
  shift
fi
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --posts) posts=$2; shift 2 ;;
    --latency-ms) latency_ms=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --peers) peers_arg=$2; shift 2 ;;
    --perf) perf=1; shift ;;
    --calm-wait) calm_wait=$2; shift 2 ;;
    --crawl-timeout) crawl_timeout=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) die "unknown option $1 (see the header)" ;;
  esac
done
for n in "$runs" "$posts" "$calm_wait" "$crawl_timeout"; do
  [[ $n =~ ^[0-9]+$ ]] || die "a count or a number of seconds wants digits, got '$n'"
done
[[ $runs -ge 1 ]] || die "--runs wants N >= 1"
[[ $latency_ms =~ ^[0-9]+$ ]] || die "--latency-ms wants milliseconds"
[[ -z $only || $only == static || $only == latency ]] || die "--only static|latency"
build=$(cd "$build" && pwd) || die "no build directory $build"
tool=$build/bench/crawl_site_tool
driver=$build/bench/crawl_driver
cli=$build/apps/concur/concur
for b in "$tool" "$driver"; do
  [[ -x $b ]] || die "$b is not built (make release, or cmake --build $build --target $(basename "$b") -j1)"
done
for b in /usr/sbin/nginx /usr/bin/wget2 /usr/bin/time "$python"; do
  [[ -x $b ]] || die "$b is missing (scripts/setup.sh installs it)"
done
"$python" -c 'import scrapy, aiohttp, parsel' 2>/dev/null ||
  die "$python lacks scrapy / aiohttp / parsel (Debian's python3-scrapy, -aiohttp, -parsel)"
[[ -n $out ]] || out=$root/bench/results/$(date -u +%Y-%m-%d)_crawl_bench.json

# The peers: the CLI row only once `concur crawl` exists (it is merged from main).
have_cli=0
if [[ -x $cli ]] && "$cli" crawl --help > /dev/null 2>&1; then have_cli=1; fi
if [[ -n $peers_arg ]]; then
  IFS=, read -r -a peers <<< "$peers_arg"
else
  peers=(concur-lib scrapy asyncio wget2)
  [[ $have_cli -eq 1 ]] && peers=(concur-lib concur-cli concur-links scrapy asyncio wget2)
fi
for p in "${peers[@]}"; do
  case $p in
    concur-lib | scrapy | asyncio | wget2) ;;
    concur-cli | concur-links)
      [[ $have_cli -eq 1 ]] || die "$p: $cli has no 'crawl' subcommand" ;;
    *) die "unknown peer $p" ;;
  esac
done

# The work directory: 0755 all the way, since nginx's worker runs as nobody when we are root.
work=$(mktemp -d /tmp/concur-crawl-bench-XXXXXX)
chmod 755 "$work"
mkdir -m 755 "$work/site" "$work/runs"
# wget2's copy of the site: on a tmpfs when there is one (see the header).
files_root=$work
if [[ -d /dev/shm && -w /dev/shm ]]; then
  files_root=$(mktemp -d /dev/shm/concur-crawl-bench-XXXXXX)
fi
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
  fi
  [[ $files_root != "$work" ]] && rm -rf "$files_root"
  if [[ $keep -eq 1 ]]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

settings=(-s CONCURRENT_REQUESTS=16 -s CONCURRENT_REQUESTS_PER_DOMAIN=16 -s LOG_LEVEL=INFO)

# crawl_command PEER URL DIR: the command line of PEER's crawl of URL, its files in DIR.
crawl_command() {
  local peer=$1 url=$2 dir=$3
  case $peer in
    concur-lib)
      cmd=("$driver" "$url" "${settings[@]}" -o "$dir/items.jsonl"
           --stats-json "$dir/stats.json") ;;
    concur-cli)
      cmd=("$cli" crawl "$url" "${settings[@]}" --extract 'title=h1.title::text'
           --extract 'author=span.author::text' -o "$dir/items.jsonl"
           --stats-json "$dir/stats.json" --no-progress) ;;
    concur-links)
      cmd=("$cli" crawl "$url" "${settings[@]}" --stats-json "$dir/stats.json" --no-progress) ;;
    scrapy)
      cmd=("$python" -m scrapy runspider "$root/bench/compare/scrapy_site_spider.py"
           -a "start_url=$url" -a "stats_json=$dir/stats.json" -O "$dir/items.jsonl"
           "${settings[@]}") ;;
    asyncio)
      cmd=("$python" "$root/bench/compare/asyncio_site_crawler.py" "$url" --concurrency 16
           -o "$dir/items.jsonl" --stats-json "$dir/stats.json") ;;
    wget2)
      cmd=(wget2 --recursive --level=inf --no-parent --robots=on --max-threads=16 --no-verbose
           --stats-site="csv:$dir/wget2_site.csv" -P "$files_root/files" "$url") ;;
  esac
}

# cpu_idle_window: the CPUs' idle percentage over the next 2 s (/proc/stat).
cpu_idle_window() {
  local u n s i w x y z t1 i1 t2 i2
  read -r _ u n s i w x y z _ < /proc/stat
  t1=$((u + n + s + i + w + x + y + z)) i1=$((i + w))
  sleep 2
  read -r _ u n s i w x y z _ < /proc/stat
  t2=$((u + n + s + i + w + x + y + z)) i2=$((i + w))
  echo $((100 * (i2 - i1) / (t2 - t1)))
}

# wait_calm: up to --calm-wait seconds for a window >= 85 % idle; prints the last idle % seen.
wait_calm() {
  local idle deadline=$((SECONDS + calm_wait))
  idle=$(cpu_idle_window)
  while [[ $idle -lt 85 && $SECONDS -lt $deadline ]]; do idle=$(cpu_idle_window); done
  echo "$idle"
}

# busy_ticks / all_ticks: the machine's CPU ticks (USER_HZ) busy and in all, from /proc/stat.
machine_ticks() {
  local u n s i w x y z
  read -r _ u n s i w x y z _ < /proc/stat
  echo "$((u + n + s + x + y + z)) $((u + n + s + i + w + x + y + z))"
}

# proc_tree_ticks PID: user + sys ticks of PID and its children and grandchildren (nginx's master
# and worker under crawl_site_tool), from /proc/PID/stat.
proc_tree_ticks() {
  local total=0 p c g
  for p in $1 $(cat "/proc/$1/task/"*/children 2> /dev/null); do
    for g in $p $(cat "/proc/$p/task/"*/children 2> /dev/null); do
      c=$(awk '{print $14 + $15}' "/proc/$g/stat" 2> /dev/null || echo 0)
      total=$((total + c))
    done
  done
  echo "$total"
}

# wait_for_file FILE: up to 10 s.
wait_for_file() {
  local i
  for i in $(seq 1 100); do
    [[ -s $1 ]] && return 0
    sleep 0.1
  done
  die "$1 did not appear within 10 s"
}

# run_one PHASE PEER RUN POSITION URL [ACCESS_LOG]: one measured crawl; its files in
# runs/PHASE_PEER_RUN/ (meta.json, time.json, the crawler's stats, items, log, and the slice of
# nginx's access log it caused).
run_one() {
  local phase=$1 peer=$2 run=$3 position=$4 url=$5 access_log=${6:-}
  local dir=$work/runs/${phase}_${peer}_$run idle load before=0 m0 m1 s0=0 s1=0 rc=0
  mkdir -p "$dir"
  crawl_command "$peer" "$url" "$dir"
  idle=$(wait_calm)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  [[ -n $access_log ]] && before=$(wc -l < "$access_log")
  s0=$(proc_tree_ticks "$server_pid")
  m0=$(machine_ticks)  # inside the server's ticks: the /proc reads' own CPU stays outside
  /usr/bin/time -q -o "$dir/time.json" \
    -f '{"wall": %e, "user": %U, "sys": %S, "maxrss_kb": %M, "exit": %x}' \
    timeout --signal=TERM --kill-after=10 "$crawl_timeout" "${cmd[@]}" \
    > "$dir/crawler.log" 2>&1 || rc=$?
  m1=$(machine_ticks)
  s1=$(proc_tree_ticks "$server_pid")
  if [[ -n $access_log ]]; then
    sleep 0.2  # nginx writes a line as each request ends: the last ones are written by now
    tail -n +$((before + 1)) "$access_log" > "$dir/access.log"
  fi
  rm -rf "$files_root/files"  # wget2's copy of the site
  printf '{"phase": "%s", "peer": "%s", "run": %d, "position": %d, "url": "%s", "exit": %d,
 "idle_before_pct": %d, "load_before": "%s", "machine_ticks": [%s, %s], "server_ticks": %d,
 "clk_tck": %d, "ncpu": %d, "command": %s}\n' \
    "$phase" "$peer" "$run" "$position" "$url" "$rc" "$idle" "$load" "${m0// /, }" \
    "${m1// /, }" $((s1 - s0)) "$(getconf CLK_TCK)" "$(nproc)" \
    "$("$python" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${cmd[@]}")" \
    > "$dir/meta.json"
  echo "  $phase run $run #$position $peer: exit $rc, $(cat "$dir/time.json")"
}

# ---- 1. static run ----
if [[ -z $only || $only == static ]]; then
  "$tool" nginx "$work/site" --posts "$posts" --port-file "$work/nginx.port" \
    > "$work/nginx.json" 2> "$work/nginx.err" &
  server_pid=$!
  wait_for_file "$work/nginx.port"
  origin=http://127.0.0.1:$(cat "$work/nginx.port")
  access_log=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_log"])' \
    "$work/nginx.json")
  "$tool" write "$work/site" --posts "$posts" --origin "$origin"
  echo "static site: $posts posts at $origin (nginx), $runs runs of: ${peers[*]}"
  for ((r = 1; r <= runs; r++)); do
    n=${#peers[@]}
    for ((k = 0; k < n; k++)); do
      peer=${peers[$(((k + r - 1) % n))]}
      run_one static "$peer" "$r" $((k + 1)) "$origin/" "$access_log"
    done
  done
  if [[ $perf -eq 1 ]]; then
    if command -v perf > /dev/null; then
      echo "perf: one more concur-lib crawl under perf record -g"
      mkdir -p "$work/perf"
      crawl_command concur-lib "$origin/" "$work/perf"
      # DWARF unwinding: the release build has no frame pointers, and the inclusive ("children")
      # view needs whole stacks.
      perf record -F 2000 --call-graph dwarf,16384 -o "$work/perf/perf.data" -- "${cmd[@]}" \
        > "$work/perf/crawler.log" 2>&1
      # perf_top KIND FILE ARGS...: "percent name" lines, the widest 60 characters of a name.
      perf_top() {
        local file=$1
        shift
        perf report -i "$work/perf/perf.data" --stdio -g none "$@" 2> /dev/null |
          awk '/^ +[0-9.]+%/ { n = $NF == "-" ? NF - 2 : NF; line = $1;
                 for (i = 2; i <= n; i++) if ($i !~ /^[0-9.]+%$/ && $i != "[.]" && $i != "[k]")
                   line = line " " $i; print substr(line, 1, 80) }' |
          head -40 > "$work/perf/$file.txt" || true
      }
      perf_top top_self --no-children --sort symbol
      perf_top top_children --children --sort symbol
      perf_top top_dso --no-children --sort dso
      "$python" "$root/bench/compare/crawl_perf_breakdown.py" "$work/perf/perf.data" \
        > "$work/perf/breakdown.txt" 2>&1 || true
    else
      echo "perf: not installed, no profile" >&2
    fi
  fi
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
fi

# ---- 2. latency run ----
if [[ -z $only || $only == latency ]]; then
  lpeers=()
  for p in "${peers[@]}"; do [[ $p != wget2 ]] && lpeers+=("$p"); done
  echo "latency site: $posts posts, ${latency_ms} ms per answer, $runs runs of: ${lpeers[*]}"
  for ((r = 1; r <= runs; r++)); do
    n=${#lpeers[@]}
    for ((k = 0; k < n; k++)); do
      peer=${lpeers[$(((k + r - 1) % n))]}
      dir=$work/runs/latency_${peer}_$r
      mkdir -p "$dir"
      rm -f "$work/serve.port"
      "$tool" serve --posts "$posts" --latency-ms "$latency_ms" --port-file "$work/serve.port" \
        --log-file "$dir/server_log.jsonl" > "$dir/server.json" 2> "$dir/server.err" &
      server_pid=$!
      wait_for_file "$work/serve.port"
      run_one latency "$peer" "$r" $((k + 1)) "http://127.0.0.1:$(cat "$work/serve.port")/"
      kill -TERM "$server_pid"
      wait "$server_pid" || true
      server_pid=""
    done
  done
fi

# ---- 3. the summary ----
mkdir -p "$(dirname "$out")"
"$python" "$root/bench/compare/crawl_bench_summary.py" "$work" --out "$out" \
  --posts "$posts" --latency-ms "$latency_ms" --runs "$runs"
