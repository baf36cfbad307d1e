#!/usr/bin/env bash
# run_dist_bench.sh: concur::dist beside Celery and RQ on one private redis-server, one run.
#
#   1. a private redis-server on a free 127.0.0.1 port (no persistence, its dir a temp dir),
#      stopped on exit whatever happens (trap)
#   2. the Redis PING round trip (redis_ping.py: redis-py and a raw socket), the latency yardstick
#   3. for each worker count N (--workers, default "1 2"), each system in turn, Redis flushed first:
#        celery     celery_bench.py worker --concurrency N --pool prefork (Celery's default pool)
#        rq         rq_bench.py worker --concurrency N  (N `rq worker`, RQ's default forking Worker)
#        rq-simple  rq_bench.py worker --concurrency N --worker-class simple (rq SimpleWorker)
#        concur     --concur-worker CMD / --concur-client CMD, when given (skipped otherwise)
#      the workers start in their own process group (setsid); the client (warm-up, throughput of
#      M tasks, K sequential round trips) runs under `timeout`; then the group gets SIGTERM and,
#      10 s later, SIGKILL
#   4. every JSON line (a meta line, the PING rows, one row per system and N) → --out FILE, and the
#      table (dist_summary.py) → stdout
#
# Usage: bench/compare/dist/run_dist_bench.sh [--tasks 2000] [--latency-samples 300]
#          [--warmup 50] [--pings 2000] [--workers "1 2"] [--systems "celery rq rq-simple concur"]
#          [--timeout 180] [--out FILE] [--quick] [--concur-worker CMD] [--concur-client CMD]
#          [--rq-fork-tasks 300] [--rq-fork-latency-samples 100]
#   --rq-fork-*: RQ's default Worker forks a work horse per job, ~10 jobs/s on the 2-vCPU VM
#   (a bare fork+exit+wait of Python costs ~25 ms there, the meta line's fork_exit_ms), so its
#   rows run fewer tasks to keep the whole run within ~5 minutes (each row records its sizes).
#   --out defaults to bench/results/<UTC date_time>_dist_bench.jsonl; an existing file is refused.
#   --quick: a smoke run (M 200, K 30, warm-up 10, 200 pings).
#
# The concur hook (the C++ side plugs in here; until then its rows are skipped with a message):
#   worker: CMD --redis redis://127.0.0.1:PORT/0 --concurrency N
#           runs until SIGTERM (to its process group), consuming the tasks the client submits
#   client: CMD --redis URL --workers N --tasks M --latency-samples K --warmup W --timeout S
#           prints, as its last stdout line, one JSON object with the fields of
#           distbench_common.py's docstring (system "concur", variant, workers, tasks,
#           throughput_s, tasks_per_s, latency_p50_ms, latency_p99_ms, ..., errors); exit 0 = valid
#   CMD is split on spaces (no quoting), e.g. --concur-worker "build/release/apps/concur dist-worker"
# Only /usr/bin/python3 (Debian's, with celery, rq, redis) runs the peers; nothing leaves loopback.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
python=/usr/bin/python3
redis_server=/usr/bin/redis-server

die() {
  echo "run_dist_bench.sh: $*" >&2
  exit 2
}

# shellcheck source-path=SCRIPTDIR source=bench_lib.sh
source "$here/bench_lib.sh"

tasks=2000 samples=300 warmup=50 pings=2000 workers_list="1 2" timeout_s=180
fork_tasks=300 fork_samples=100
systems="celery rq rq-simple concur" out="" concur_worker="" concur_client=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --tasks) tasks=$2; shift 2 ;;
    --latency-samples) samples=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --pings) pings=$2; shift 2 ;;
    --workers) workers_list=$2; shift 2 ;;
    --systems) systems=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rq-fork-tasks) fork_tasks=$2; shift 2 ;;
    --rq-fork-latency-samples) fork_samples=$2; shift 2 ;;
    --quick) tasks=200 samples=30 warmup=10 pings=200 fork_tasks=50 fork_samples=20; shift ;;
    --concur-worker) concur_worker=$2; shift 2 ;;
    --concur-client) concur_client=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in "$tasks" "$samples" "$pings" "$timeout_s" "$fork_tasks" "$fork_samples"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "sizes and --timeout want N >= 1 (got $v)"
done
[[ $warmup =~ ^[0-9]+$ ]] || die "--warmup wants N >= 0"
for n in $workers_list; do [[ $n =~ ^[1-9][0-9]?$ ]] || die "--workers wants counts 1..99 (got $n)"; done
for s in $systems; do
  case $s in celery|rq|rq-simple|concur) ;; *) die "--systems: unknown system $s" ;; esac
done
[[ -x $python ]] || die "$python not found (Debian's python3 with python3-celery, python3-rq)"
[[ -x $redis_server ]] || die "$redis_server not found (apt-get install redis-server)"
$python -c 'import celery, rq, redis' 2> /dev/null \
  || die "$python lacks celery/rq/redis (apt-get install python3-celery python3-rq python3-redis)"

if [[ -z $out ]]; then
  out=$root/bench/results/$(date -u +%Y-%m-%d_%H%M)_dist_bench.jsonl
fi
[[ -e $out ]] && die "$out exists; choose another --out (results are never overwritten)"
mkdir -p "$(dirname "$out")"
: > "$out"

tmp=$(mktemp -d /tmp/dist_bench.XXXXXX)
redis_pid="" group=""


cleanup() {
  local rc=$?
  if [[ -n $group ]]; then stop_group "$group"; group=""; fi
  if [[ -n $redis_pid ]]; then stop_group "$redis_pid"; redis_pid=""; fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=redis://127.0.0.1:$port/0
# setsid: redis-server leads its own process group (a background job of a script is not a group
# leader, so setsid makes the new session without forking and $! is the server's pid = pgid).
setsid "$redis_server" --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$tmp" \
  --daemonize no --protected-mode yes > "$tmp/redis.log" 2>&1 &
redis_pid=$!
timeout 30 $python "$here/redis_ping.py" --redis "$url" --wait 10 --count 0 \
  || { tail -5 "$tmp/redis.log" >&2; die "the private redis-server on port $port did not answer"; }
echo "redis-server $($redis_server --version | grep -o 'v=[0-9.]*') on $url (pid $redis_pid)"

# meta: the machine and the sizes, the first line of the result file.
$python - "$out" "$tasks" "$samples" "$warmup" "$pings" "$workers_list" "$systems" "$fork_tasks" \
  "$fork_samples" <<'PY'
import json, os, platform, subprocess, sys, time
out, tasks, samples, warmup, pings, workers, systems, fork_tasks, fork_samples = sys.argv[1:]
def fork_exit_ms(n=20):
    t0 = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return round((time.perf_counter() - t0) / n * 1e3, 2)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
import celery, rq, redis
meta = {"system": "meta", "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
        "debian": open("/etc/debian_version").read().strip(),
        "python": platform.python_version(), "celery": celery.__version__, "rq": rq.__version__,
        "redis_py": redis.__version__,
        "redis_server": subprocess.run(["/usr/bin/redis-server", "--version"], capture_output=True,
                                       text=True).stdout.strip(),
        "tasks": int(tasks), "latency_samples": int(samples), "warmup": int(warmup),
        "pings": int(pings), "workers": [int(w) for w in workers.split()], "systems": systems.split(),
        "rq_fork_tasks": int(fork_tasks), "rq_fork_latency_samples": int(fork_samples),
        "fork_exit_ms": fork_exit_ms(),
        "loadavg_1m_before": float(open("/proc/loadavg").read().split()[0])}
with open(out, "a") as f:
    f.write(json.dumps(meta) + "\n")
PY

timeout 120 $python "$here/redis_ping.py" --redis "$url" --count "$pings" >> "$out" \
  || die "the PING measurement failed"


# redis_cpu_ticks: redis-server's CPU time so far (user + system, in clock ticks). A row records
# the server's CPU per task (the whole row: warm-up, throughput and latency tasks), so that where
# one Redis saturates — 1 / (CPU per task), its main thread being one core — can be read off.
clk_tck=$(getconf CLK_TCK)
redis_cpu_ticks() { awk '{print $14 + $15}' "/proc/$redis_pid/stat"; }

failures=0
# run_row SYSTEM VARIANT N "WORKER CMD..." "CLIENT CMD..." [TASKS SAMPLES]: one row.
run_row() {
  local system=$1 variant=$2 n=$3 wcmd=$4 ccmd=$5 m=${6:-$tasks} k=${7:-$samples}
  local line rc log=$tmp/worker_${1}_${2}_$3.log
  local -a wargs cargs
  read -ra wargs <<< "$wcmd"
  read -ra cargs <<< "$ccmd"
  timeout 30 $python "$here/redis_ping.py" --redis "$url" --count 0 --flushall \
    || die "FLUSHALL failed"
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== $system ($variant), workers=$n, load $load: ${wargs[*]} --redis $url --concurrency $n"
  setsid "${wargs[@]}" --redis "$url" --concurrency "$n" > "$log" 2>&1 &
  group=$!
  local cpu0
  cpu0=$(redis_cpu_ticks)
  set +e
  line=$(timeout --kill-after=10 $((3 * timeout_s + 30)) "${cargs[@]}" --redis "$url" --workers "$n" \
    --tasks "$m" --latency-samples "$k" --warmup "$warmup" --timeout "$timeout_s" \
    2> "$tmp/client.err" | tail -n 1)
  rc=${PIPESTATUS[0]}
  set -e
  local redis_us_per_task
  redis_us_per_task=$(awk -v d=$(($(redis_cpu_ticks) - cpu0)) -v t="$clk_tck" -v n=$((m + k + warmup)) \
    'BEGIN { printf "%.1f", d / t * 1e6 / n }')
  local alive=yes
  kill -0 "$group" 2> /dev/null || alive=no
  stop_group "$group"
  group=""
  if [[ $rc -ne 0 || -z $line ]]; then
    row_failed "$rc" "$alive" "$log" "system=$system" "variant=$variant" "workers=$n"
    return 0
  fi
  record "$line" "worker_cmd=${wargs[*]} --redis URL --concurrency $n" "loadavg_1m_before=$load" \
    "redis_cpu_us_per_task=$redis_us_per_task"
  echo "   $line"
}

for n in $workers_list; do
  for s in $systems; do
    case $s in
      celery)
        run_row celery prefork "$n" "$python $here/celery_bench.py worker --pool prefork" \
          "$python $here/celery_bench.py client --variant prefork" ;;
      rq)
        run_row rq Worker "$n" "$python $here/rq_bench.py worker --worker-class default" \
          "$python $here/rq_bench.py client --variant Worker" "$fork_tasks" "$fork_samples" ;;
      rq-simple)
        run_row rq SimpleWorker "$n" "$python $here/rq_bench.py worker --worker-class simple" \
          "$python $here/rq_bench.py client --variant SimpleWorker" ;;
      concur)
        if [[ -z $concur_worker || -z $concur_client ]]; then
          echo "== concur, workers=$n: skipped (no --concur-worker/--concur-client given; the" \
               "C++ RedisExecutor's commands plug in there, see --help)"
        else
          run_row concur concur "$n" "$concur_worker" "$concur_client"
        fi ;;
    esac
  done
done

echo
$python "$here/dist_summary.py" "$out"
echo
echo "raw JSON lines: $out"
[[ $failures -eq 0 ]] || { echo "run_dist_bench.sh: $failures row(s) failed" >&2; exit 1; }
