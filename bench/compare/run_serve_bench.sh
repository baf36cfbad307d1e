#!/usr/bin/env bash
# run_serve_bench.sh: issue 15's web-service benchmarks ("## Benchmarks"): `concur serve` beside
# the notes' flask app under gunicorn, a raw Boost.Beast server and Python's ThreadingHTTPServer,
# side by side in one run, on loopback. Builds nothing.
#
# Cases (each server is started on a free 127.0.0.1 port, waited for, warmed up with 2 s of the
# same load — is_prime: on small numbers — measured, then stopped; the peers' order rotates every
# run):
#   fanout    `/` (read_file 0.1 s, read_db 0.2 s, read_api 0.3 s fanned out to a thread pool) at
#             100 and 1,000 connections: concur serve --pool-threads 3C (three sleeps per request
#             in flight) vs gunicorn -k gthread --threads C with the notes' global pool sized 3C
#             (POOL_THREADS): the same number of threads sleeping for the fan-out.
#   is_prime  `/is_prime/<10 primes of ~1.1e14>` (the notes' PRIMES, twice) at 2 compute
#             processes each: concur serve --processes 2 vs gunicorn --workers 2, each worker's
#             ProcessPoolExecutor of 1 (POOL_PROCESSES=1); 4 connections, wrk --timeout 60s,
#             3x --duration (Python answers one request in ~2 s a process).
#   hello     `/hello` ({"hello": "world"}) at 100 connections: concur serve --threads 1 and 2 vs
#             beast_hello_server --threads 1 and 2 vs ThreadingHTTPServer (threading_hello.py).
#   overload  concur serve `/` sized to a known capacity (--pool-threads 300 --max-in-flight 100:
#             100 requests of 0.3 s in flight, ~333 req/s): capacity measured as the 200s per
#             second wrk gets at 200 connections (the rest are 503s); then serve_load (open-loop, constant rate, latency from the scheduled
#             send time) at 0.5x capacity ("unloaded") and at 2x capacity for --overload-seconds;
#             the server's RSS sampled every second meanwhile.
# --pin (with --only hello, one-loop peers only): the server runs on CPU 1 (taskset) and
# `wrk -t1` on CPU 0, so that each has a CPU of its own and the rate no longer depends on how the
# scheduler shares two CPUs among the server's thread and wrk's two: a diagnostic of the servers'
# own speed (the default, unpinned, is the side-by-side run the issue asks for).
# Per wrk run: req/s, p50/p90/p99, non-2xx responses, socket errors, the server's CPU seconds
# (user + sys of the server and all its descendants, /proc/PID/stat, ticks) and peak RSS (the sum
# of VmHWM over the server's process tree just before it is stopped), the machine's load.
# Then bench/compare/serve_bench_summary.py prints the medians, spreads and ratios and writes the
# raw runs and the summary as JSON (--out, default bench/results/<UTC date>_serve_bench.json; an
# existing file is never overwritten: a -2, -3... suffix is added).
#
# Usage: bench/compare/run_serve_bench.sh [BUILD_DIR] [--runs 3] [--duration 10]
#          [--only fanout|is_prime|hello|overload] [--overload-seconds 20] [--out FILE] [--keep]
#          [--pin]
#   BUILD_DIR defaults to build/release; it needs apps/concur/concur and bench/beast_hello_server,
#   bench/serve_load: cmake --build BUILD_DIR --target concur_cli beast_hello_server serve_load -j1
# Needs: wrk, gunicorn, python3-flask (scripts/setup.sh). Loopback only; every wait and every
# load run is bounded; every server started is stopped on exit (trap).
set -euo pipefail

die() {
  echo "run_serve_bench.sh: $*" >&2
  exit 1
}

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build/release
runs=3
duration=10
only=""
overload_seconds=20
out=""
keep=0
pin=0
python=/usr/bin/python3

if [[ $# -gt 0 && $1 != --* ]]; then
  build=$1
  shift
fi
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --overload-seconds) overload_seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --pin) pin=1; shift ;;
    *) die "unknown option $1 (see the header)" ;;
  esac
done
for n in "$runs" "$duration" "$overload_seconds"; do
  [[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || die "a count or a number of seconds wants digits >= 1, got '$n'"
done
case $only in "" | fanout | is_prime | hello | overload) ;; *) die "--only fanout|is_prime|hello|overload" ;; esac
if [[ $pin == 1 ]]; then
  [[ $only == hello ]] || die "--pin goes with --only hello"
  [[ $(nproc) -ge 2 ]] || die "--pin needs 2 CPUs"
  command -v taskset > /dev/null || die "--pin needs taskset (util-linux)"
fi
# on_cpu CPU: the command prefix that pins to CPU with --pin (nothing without).
on_cpu() { if [[ $pin == 1 ]]; then echo "taskset -c $1"; fi; }
wrk_threads=$([[ $pin == 1 ]] && echo 1 || echo 2)
build=$(cd "$build" && pwd) || die "no build directory $build"
cli=$build/apps/concur/concur
beast=$build/bench/beast_hello_server
load=$build/bench/serve_load
for b in "$cli" "$beast" "$load"; do
  [[ -x $b ]] || die "$b is not built (make release, or cmake --build $build --target concur_cli beast_hello_server serve_load -j1)"
done
for b in /usr/bin/wrk /usr/bin/gunicorn "$python"; do
  [[ -x $b ]] || die "$b is missing (scripts/setup.sh installs it)"
done
"$python" -c 'import flask' 2> /dev/null || die "$python lacks flask (Debian's python3-flask)"
"$cli" serve --help 2> /dev/null | grep -q -- --pool-threads || die "$cli has no 'serve' subcommand"
if [[ -z $out ]]; then
  out=$root/bench/results/$(date -u +%Y-%m-%d)_serve_bench.json
  k=2
  base=${out%.json}
  while [[ -e $out ]]; do out=$base-$k.json; k=$((k + 1)); done
fi
# 1,000 connections: wrk's and every server's sockets, with room.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"
[[ $(ulimit -n) -ge 4096 ]] || die "ulimit -n is $(ulimit -n); 1,000 connections want >= 4096"

work=$(mktemp -d /tmp/concur-serve-bench-XXXXXX)
mkdir -p "$work/runs"
server_pid=""
sampler_pid=""
stop_server() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2> /dev/null || true
    local i
    for i in $(seq 1 50); do  # 5 s, then KILL (gunicorn's and concur's drains are shorter)
      kill -0 "$server_pid" 2> /dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
    server_pid=""
  fi
}
cleanup() {
  if [[ -n $sampler_pid ]]; then kill "$sampler_pid" 2> /dev/null || true; fi
  stop_server
  if [[ $keep -eq 1 ]]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port: a port nothing listens on (bound and released; a race only with other binders).
free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# tree PID: PID and all its descendants.
tree() {
  local p=$1 c
  echo "$p"
  for c in $(cat "/proc/$p/task/"*/children 2> /dev/null); do tree "$c"; done
}

# tree_ticks PID: user + sys ticks of the tree.
tree_ticks() {
  local total=0 p c
  for p in $(tree "$1"); do
    c=$(awk '{print $14 + $15}' "/proc/$p/stat" 2> /dev/null || echo 0)
    total=$((total + c))
  done
  echo "$total"
}

# tree_kb FIELD PID: the sum of FIELD (VmHWM, VmRSS) in kB over the tree.
tree_kb() {
  local total=0 p v
  for p in $(tree "$2"); do
    v=$(awk -v f="$1:" '$1 == f {print $2}' "/proc/$p/status" 2> /dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# wait_http PORT PATH: up to 20 s for a 200.
wait_http() {
  local i
  for i in $(seq 1 200); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1$2" || true) == 200 ]]; then
      return 0
    fi
    kill -0 "$server_pid" 2> /dev/null || die "the server exited before answering (see $work)"
    sleep 0.1
  done
  die "no 200 from http://127.0.0.1:$1$2 within 20 s"
}

# start_server PEER PORT LOG: starts PEER's server in the background (server_pid).
start_server() {
  local peer=$1 port=$2 log=$3
  case $peer in
    concur-fanout-*)
      local c=${peer#concur-fanout-}
      "$cli" serve --port "$port" --pool-threads $((3 * c)) > "$log" 2>&1 & ;;
    gunicorn-fanout-*)
      local c=${peer#gunicorn-fanout-}
      POOL_THREADS=$((3 * c)) /usr/bin/gunicorn -k gthread --workers 1 --threads "$c" \
        --worker-connections $((c + 1000)) --backlog 4096 --timeout 120 -b "127.0.0.1:$port" \
        --chdir "$root/bench/compare" --log-level warning flask_notes_app:app > "$log" 2>&1 & ;;
    concur-is_prime)
      "$cli" serve --port "$port" --processes 2 > "$log" 2>&1 & ;;
    gunicorn-is_prime)
      POOL_PROCESSES=1 /usr/bin/gunicorn --workers 2 --timeout 300 -b "127.0.0.1:$port" \
        --chdir "$root/bench/compare" --log-level warning flask_notes_app:app > "$log" 2>&1 & ;;
    concur-hello-t*)
      $(on_cpu 1) "$cli" serve --port "$port" --threads "${peer#concur-hello-t}" --processes 1 \
        > "$log" 2>&1 & ;;
    beast-hello-t*)
      $(on_cpu 1) "$beast" --port "$port" --threads "${peer#beast-hello-t}" > "$log" 2>&1 & ;;
    threading-hello)
      "$python" "$root/bench/compare/threading_hello.py" --port "$port" > "$log" 2>&1 & ;;
    concur-overload)
      "$cli" serve --port "$port" --pool-threads 300 --max-in-flight 100 > "$log" 2>&1 & ;;
    *) die "unknown peer $peer" ;;
  esac
  server_pid=$!
}

# wrk_once CASE PEER RUN POSITION PATH CONNECTIONS [TIMEOUT [WARM_PATH]]: one measured wrk run of
# PEER. The warm-up is 2 s of the same load on WARM_PATH (default PATH): pools grown, connections
# accepted, caches hot. is_prime warms up on small numbers, so that no 3 s Python request of the
# warm-up still holds a worker when the measurement starts.
wrk_once() {
  local case=$1 peer=$2 run=$3 position=$4 path=$5 conns=$6 timeout=${7:-10s} warm=${8:-$5}
  local dir=$work/runs/${case}_${peer}_c${conns}_$run port t0 t1 hwm rss load wall0 wall1
  mkdir -p "$dir"
  port=$(free_port)
  start_server "$peer" "$port" "$dir/server.log"
  wait_http "$port" /hello
  $(on_cpu 0) wrk -t"$wrk_threads" -c"$conns" -d2s --timeout "$timeout" "http://127.0.0.1:$port$warm" \
    > "$dir/warmup.txt" 2>&1 || true
  sleep 0.5
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(tree_ticks "$server_pid")
  wall0=$(date +%s.%N)
  timeout --kill-after=10 $((duration + 70)) \
    $(on_cpu 0) wrk -t"$wrk_threads" -c"$conns" -d"${duration}s" --timeout "$timeout" --latency \
    "http://127.0.0.1:$port$path" > "$dir/wrk.txt" 2>&1 || true
  wall1=$(date +%s.%N)
  t1=$(tree_ticks "$server_pid")
  hwm=$(tree_kb VmHWM "$server_pid")
  rss=$(tree_kb VmRSS "$server_pid")
  stop_server
  printf '{"case": "%s", "peer": "%s", "run": %d, "position": %d, "path": "%s", "connections": %d,
 "duration": %d, "wall": %.2f, "server_ticks": %d, "clk_tck": %d, "peak_rss_kb": %d, "rss_kb": %d,
 "load_before": "%s", "pinned": %s}\n' \
    "$case" "$peer" "$run" "$position" "$path" "$conns" "$duration" \
    "$(echo "$wall1 - $wall0" | bc)" $((t1 - t0)) "$(getconf CLK_TCK)" "$hwm" "$rss" "$load" \
    "$([[ $pin == 1 ]] && echo true || echo false)" \
    > "$dir/meta.json"
  echo "  $case run $run #$position $peer c=$conns: $(grep -E 'Requests/sec' "$dir/wrk.txt" | tr -s ' ')," \
    "p99 $(awk '$1 == "99%" {print $2}' "$dir/wrk.txt"), $(grep -E 'Non-2xx|Socket errors' "$dir/wrk.txt" | tr -s ' ' | tr '\n' ' ')," \
    "cpu $(echo "scale=2; ($t1 - $t0) / $(getconf CLK_TCK)" | bc) s, peak rss $((hwm / 1024)) MiB"
}

# rotate RUN PEERS...: the peers, rotated by RUN - 1.
rotate() {
  local r=$1
  shift
  local n=$# k
  local a=("$@")
  for ((k = 0; k < n; k++)); do echo "${a[$(((k + r - 1) % n))]}"; done
}

base_duration=$duration
primes=112272535095293,112582705942171,112272535095293,115280095190773,115797848077099
primes=$primes,$primes
echo "serve bench: $runs runs, $duration s per wrk run, machine load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= runs; r++)); do
  if [[ -z $only || $only == fanout ]]; then
    for c in 100 1000; do
      k=1
      for peer in $(rotate "$r" "concur-fanout-$c" "gunicorn-fanout-$c"); do
        wrk_once fanout "$peer" "$r" "$k" / "$c" 10s
        k=$((k + 1))
      done
    done
  fi
  if [[ -z $only || $only == is_prime ]]; then
    k=1
    for peer in $(rotate "$r" concur-is_prime gunicorn-is_prime); do
      duration=$((3 * base_duration)) wrk_once is_prime "$peer" "$r" "$k" "/is_prime/$primes" 4 60s \
        /is_prime/7,9,11
      k=$((k + 1))
    done
  fi
  if [[ -z $only || $only == hello ]]; then
    k=1
    hello_peers="concur-hello-t1 beast-hello-t1 concur-hello-t2 beast-hello-t2 threading-hello"
    [[ $pin == 1 ]] && hello_peers="concur-hello-t1 beast-hello-t1"  # one CPU: one loop each
    for peer in $(rotate "$r" $hello_peers); do
      wrk_once hello "$peer" "$r" "$k" /hello 100 10s
      k=$((k + 1))
    done
  fi
done

# ---- overload (once: it is bounded by --overload-seconds, not repeated) ----
if [[ -z $only || $only == overload ]]; then
  dir=$work/runs/overload
  mkdir -p "$dir"
  port=$(free_port)
  start_server concur-overload "$port" "$dir/server.log"
  wait_http "$port" /hello
  wrk -t2 -c200 -d2s --timeout 10s "http://127.0.0.1:$port/" > "$dir/warmup.txt" 2>&1 || true
  # Capacity: the 200s per second wrk gets with 200 connections, twice max-in-flight (the other
  # requests are answered 503 at once, and wrk counts those in its Requests/sec).
  wrk -t2 -c200 -d"${duration}s" --timeout 10s --latency "http://127.0.0.1:$port/" \
    > "$dir/capacity_wrk.txt" 2>&1 || true
  capacity=$(awk -v d="$duration" '/requests in/ {n = $1} /Non-2xx/ {e = $NF}
    END {printf "%.1f", (n - e) / d}' "$dir/capacity_wrk.txt")
  echo "  overload: capacity (2xx/s under wrk at 200 connections, max-in-flight 100) $capacity req/s"
  half=$(echo "$capacity * 0.5" | bc)
  double=$(echo "$capacity * 2" | bc)
  t0=$(tree_ticks "$server_pid")
  timeout --kill-after=10 $((duration + 30)) "$load" --port "$port" --target / --rate "$half" \
    --duration "$duration" --connections 1000 --drain 5 > "$dir/unloaded.json"
  echo "  overload: 0.5x ($half req/s, open loop): $(cat "$dir/unloaded.json")"
  hwm0=$(tree_kb VmHWM "$server_pid")
  # RSS every second while the 2x load runs.
  (
    while true; do
      echo "$(date +%s.%N) $(tree_kb VmRSS "$server_pid")"
      sleep 1
    done
  ) > "$dir/rss.txt" 2> /dev/null &
  sampler_pid=$!
  timeout --kill-after=10 $((overload_seconds + 30)) "$load" --port "$port" --target / \
    --rate "$double" --duration "$overload_seconds" --connections 1000 --drain 5 \
    > "$dir/overload.json"
  sleep 1
  kill "$sampler_pid" 2> /dev/null || true
  wait "$sampler_pid" 2> /dev/null || true
  sampler_pid=""
  t1=$(tree_ticks "$server_pid")
  hwm1=$(tree_kb VmHWM "$server_pid")
  echo "  overload: 2x ($double req/s, open loop, ${overload_seconds} s): $(cat "$dir/overload.json")"
  printf '{"capacity_rps": %s, "rate_unloaded": %s, "rate_overload": %s, "overload_seconds": %d,
 "server_ticks": %d, "clk_tck": %d, "peak_rss_kb_before": %d, "peak_rss_kb_after": %d}\n' \
    "$capacity" "$half" "$double" "$overload_seconds" $((t1 - t0)) "$(getconf CLK_TCK)" \
    "$hwm0" "$hwm1" > "$dir/meta.json"
  stop_server
fi

mkdir -p "$(dirname "$out")"
"$python" "$root/bench/compare/serve_bench_summary.py" "$work" --out "$out" --runs "$runs" \
  --duration "$duration"
