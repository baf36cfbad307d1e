#!/usr/bin/env bash
# run_aio_bench.sh: the whole concur::aio comparison in one session, raw results saved, then a
# summary table of ratios (concur ÷ asyncio, concur ÷ Asio).
#
#   1. build/release/bench/aio_bench (concur::aio beside raw Boost.Asio, one Google Benchmark run,
#      repetitions randomly interleaved) → PREFIX_aio_bench.json
#   2. build/release/bench/asio_timer_bench (the standalone Asio timer twin, a cross-check of
#      aio_bench's BM_Timers/asio_callback) → PREFIX_asio_timer_bench.json
#   3. /usr/bin/python3 bench/compare/python_aio_bench.py (asyncio) → PREFIX_python_aio_bench.json
#   4. echo servers through bench/compare/run_echo.sh + build/release/bench/echo_client, the
#      servers' repetitions interleaved: asio_echo_server, python_aio_echo_server.py and, when it
#      exists, build/release/bench/aio_echo_server (concur) → PREFIX_echo.json
#   5. the summary (medians, run-to-run spread, ratios) → stdout and PREFIX_summary.json;
#      the machine and the load before each step → PREFIX_context.json; the load and any other
#      busy process every ~2 s during the whole session → PREFIX_load.log
#
# Usage: bench/compare/run_aio_bench.sh [--reps 7] [--echo-reps 5] [--prefix PATH] [--quick]
#   --prefix defaults to bench/results/<UTC date>_aio; --quick is a smoke run (small sizes, 2 reps).
#   Build first: cmake --build build/release --target aio_bench asio_timer_bench echo_client
#   asio_echo_server -j1
# Load: nothing here waits for a calm machine; the load average before each step is recorded
# (scripts/bench/wait_calm.sh is the tool to wait first).
set -euo pipefail

die() {
  echo "run_aio_bench.sh: $*" >&2
  exit 1
}

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/build/release/bench
python=/usr/bin/python3
reps=7
echo_reps=5
quick=0
prefix=$root/bench/results/$(date -u +%Y-%m-%d)_aio

while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --echo-reps) echo_reps=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) die "unknown option $1 (see the header)" ;;
  esac
done
[[ $reps =~ ^[1-9][0-9]*$ && $echo_reps =~ ^[1-9][0-9]*$ ]] || die "--reps/--echo-reps want N >= 1"
for b in aio_bench asio_timer_bench echo_client asio_echo_server; do
  [[ -x $bin/$b ]] || die "$bin/$b is not built (make release, or cmake --build build/release --target $b -j1)"
done
[[ -x $python ]] || die "$python not found"
mkdir -p "$(dirname "$prefix")"

cpp_args=() py_args=() echo_args=()
if [[ $quick -eq 1 ]]; then
  reps=2
  echo_reps=1
  cpp_args=(--gather=10000 --timers=1000 --sleepers=20000 --queue-items=10000
            --benchmark_min_time=0.05)
  py_args=(--quick)
  echo_args=(--seconds 0.5 --warmup 0.2)
fi

# A sampler logs, every ~2 s, the load averages and any other process above 10 % of a CPU
# (scripts/bench/monitor.sh's rule; "mine" = this script's binaries) to PREFIX_load.log.
mine='aio_bench|asio_timer_bench|echo_client|echo_server|python3|run_echo|top'
(
  while :; do
    others=$(top -bn1 -w 200 | awk -v mine="$mine" \
      'NR>7 && $9+0 > 10 && $12 !~ mine {printf "%s:%s%% ", $12, $9}')
    echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) others: ${others:-none}"
    sleep 2
  done
) > "${prefix}_load.log" 2>/dev/null &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT

# load_now: the 1-minute load average.
load_now() { cut -d' ' -f1 /proc/loadavg; }
declare -A load_before
stamp() {
  load_before[$1]=$(load_now)
  echo "== $1 ($(date -u +%H:%M:%S) UTC, load ${load_before[$1]})" >&2
}

# ---- 1. the C++ binary ---------------------------------------------------------------------------
stamp aio_bench
"$bin/aio_bench" "${cpp_args[@]}" --benchmark_repetitions="$reps" \
  --benchmark_enable_random_interleaving=true \
  --benchmark_out="${prefix}_aio_bench.json" --benchmark_out_format=json >&2

# ---- 2. the standalone Asio timer twin --------------------------------------------------------------
stamp asio_timer_bench
timer_args=(--reps "$reps")
[[ $quick -eq 1 ]] && timer_args+=(--timers 1000)
"$bin/asio_timer_bench" "${timer_args[@]}" > "${prefix}_asio_timer_bench.json"

# ---- 3. Python's asyncio ------------------------------------------------------------------------------
stamp python_aio_bench
sleeper_reps=3
[[ $quick -eq 1 ]] && sleeper_reps=1
"$python" "$root/bench/compare/python_aio_bench.py" --reps "$reps" --sleeper-reps "$sleeper_reps" \
  "${py_args[@]}" > "${prefix}_python_aio_bench.json"

# ---- 4. echo servers (repetitions interleaved: server order shuffled in every round) -------------
stamp echo
servers=(asio python)
[[ -x $bin/aio_echo_server ]] && servers+=(concur)
server_cmd() {
  case $1 in
    asio) echo "$bin/asio_echo_server --port 0" ;;
    python) echo "$python $root/bench/compare/python_aio_echo_server.py 127.0.0.1 0" ;;
    concur) echo "$bin/aio_echo_server --port 0" ;;
  esac
}
echo_raw=${prefix}_echo_runs.jsonl
: > "$echo_raw"
for ((r = 1; r <= echo_reps; r++)); do
  for s in $(printf '%s\n' "${servers[@]}" | shuf); do
    # shellcheck disable=SC2046  # server_cmd's words are the command line
    out=$("$root/bench/compare/run_echo.sh" "$bin/echo_client" "${echo_args[@]}" -- \
      $(server_cmd "$s"))
    echo "{\"server\": \"$s\", \"rep\": $r, \"load\": $(load_now), \"result\": $out}" >> "$echo_raw"
    echo "echo $s rep $r: $out" >&2
  done
done
load_before[end]=$(load_now)

# ---- 5. context and summary ------------------------------------------------------------------------
{
  echo "{"
  echo "  \"date_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"nproc\": $(nproc),"
  echo "  \"cpu_model\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\","
  echo "  \"kernel\": \"$(uname -r)\","
  echo "  \"compiler\": \"$(c++ --version | head -1)\","
  echo "  \"python\": \"$($python --version 2>&1)\","
  echo "  \"git_head\": \"$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)\","
  echo "  \"git_dirty\": $([[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]] && echo true || echo false),"
  echo "  \"reps\": $reps, \"echo_reps\": $echo_reps, \"quick\": $([[ $quick -eq 1 ]] && echo true || echo false),"
  echo "  \"load_before\": {"
  sep=""
  for k in aio_bench asio_timer_bench python_aio_bench echo end; do
    printf '%s    "%s": %s' "$sep" "$k" "${load_before[$k]}"
    sep=$',\n'
  done
  printf '\n  }\n}\n'
} > "${prefix}_context.json"

"$python" "$root/bench/compare/aio_summary.py" "$prefix"
