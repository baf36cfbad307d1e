#!/usr/bin/env bash
# run_amqp_bench.sh: concur's AmqpExecutor beside Celery over RabbitMQ and concur's RedisExecutor,
# one run on one machine (issue 18).
#
#   1. a private rabbitmq-server on free 127.0.0.1 ports, started the way
#      tests/support/rabbitmq_server.hpp starts it: its own epmd (-address 127.0.0.1, a free port),
#      HOME = a temp dir (the Erlang cookie), node concur<port>@localhost, its Mnesia, log, plugins
#      and config files in the temp dir, `-start_epmd false`, each in a session of its own
#      (setsid); waited for until an AMQP login succeeds (60 s at most)
#   2. a private redis-server on a free 127.0.0.1 port (no persistence), for the concur-redis row
#   3. for each worker count N (--workers, default "1 2"), each row in turn (--rows), the task
#      queues deleted and Redis flushed first:
#        celery-amqp            celery_bench.py worker --amqp URL --pool prefork --concurrency N
#                               (broker amqp:// through kombu/py-amqp, result backend rpc://);
#                               the client collects the M results with ResultSet.join_native()
#        concur-amqp            concur worker --amqp URL --concurrency N; dist_client --amqp URL
#                               (AmqpOptions defaults: confirm_submit, track_started)
#        concur-amqp-pipelined  the same workers; dist_client --amqp URL --no-confirm
#        concur-amqp-batched    the same workers; dist_client --amqp URL --no-confirm --max-batch 64
#                               (AmqpOptions::max_batch: submits waiting together share a message)
#        concur-amqp-batched-nostarted  the same, and --no-track-started: Celery's own guarantees
#                               (no started state, a task sent cannot be cancelled)
#        concur-redis           concur worker --redis URL --concurrency N; dist_client --redis URL
#      and, when named in --rows (not by default), the diagnostic rows concur-amqp-nostarted,
#      concur-amqp-pipelined-nostarted, concur-redis-nostarted (dist_client --no-track-started)
#      and celery-amqp-get (the M results collected by .get() in order, as run_dist_bench.sh does:
#      the rpc:// backend then stalls ~1 s on each late result, see celery_bench.py)
#      the workers start in their own process group (setsid); the client (warm-up, throughput of
#      M tasks from the first submit to the last result, K sequential round trips) runs under
#      `timeout`; then the group gets SIGTERM and, 10 s later, SIGKILL. Each row records the CPU
#      time per task of the broker, the workers and the client (the whole row, warm-up included)
#   4. every JSON line (a meta line, one row per system and N) → --out FILE, and the table
#      (dist_summary.py) → stdout
#   On any exit (trap): the workers' group gets SIGTERM then SIGKILL; the broker's, epmd's and
#   redis-server's groups SIGKILL; the temp dir is removed.
#
# Usage: bench/compare/dist/run_amqp_bench.sh [--tasks 2000] [--latency-samples 300] [--warmup 50]
#          [--workers "1 2"] [--rows "celery-amqp concur-amqp concur-amqp-pipelined
#          concur-amqp-batched concur-amqp-batched-nostarted concur-redis"]
#          [--timeout 180] [--out FILE] [--quick] [--broker-data DIR]
#          [--concur-worker "build/release/apps/concur/concur worker"]
#          [--concur-client "build/release/bench/dist_client"]
#   --out defaults to bench/results/<UTC date_time>_amqp_bench.jsonl; an existing file is refused.
#   --quick: a smoke run (M 200, K 30, warm-up 10).
#   --broker-data DIR: the broker's Mnesia directory (queues, message store: what fsync writes) in
#   a new directory under DIR instead of the temp dir under /tmp, e.g. /dev/shm (tmpfs: no disk
#   behind the fsync of a persistent message) — a diagnostic, recorded in the meta line.
#   Build first: cmake --preset release -DCONCUR_BUILD_BENCH=ON &&
#                cmake --build build/release --target concur_cli dist_client
# Only /usr/bin/python3 (Debian's, with celery, kombu, amqp, redis) runs Celery; nothing leaves
# loopback.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
python=/usr/bin/python3
redis_server=/usr/bin/redis-server
rabbitmq_server=/usr/lib/rabbitmq/bin/rabbitmq-server
epmd=/usr/bin/epmd

die() {
  echo "run_amqp_bench.sh: $*" >&2
  exit 2
}

# shellcheck source-path=SCRIPTDIR source=bench_lib.sh
source "$here/bench_lib.sh"

tasks=2000 samples=300 warmup=50 workers_list="1 2" timeout_s=180 out="" broker_data=""
rows="celery-amqp concur-amqp concur-amqp-pipelined concur-amqp-batched concur-amqp-batched-nostarted concur-redis"
concur_worker="$root/build/release/apps/concur/concur worker"
concur_client="$root/build/release/bench/dist_client"
while [[ $# -gt 0 ]]; do
  case $1 in
    --tasks) tasks=$2; shift 2 ;;
    --latency-samples) samples=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --workers) workers_list=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) tasks=200 samples=30 warmup=10; shift ;;
    --broker-data) broker_data=$2; shift 2 ;;
    --concur-worker) concur_worker=$2; shift 2 ;;
    --concur-client) concur_client=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in "$tasks" "$samples" "$timeout_s"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "sizes and --timeout want N >= 1 (got $v)"
done
[[ $warmup =~ ^[0-9]+$ ]] || die "--warmup wants N >= 0"
[[ -z $broker_data || -d $broker_data ]] || die "--broker-data: $broker_data is not a directory"
for n in $workers_list; do [[ $n =~ ^[1-9][0-9]?$ ]] || die "--workers wants counts 1..99 (got $n)"; done
for r in $rows; do
  case $r in
    celery-amqp|concur-amqp|concur-amqp-pipelined|concur-redis) ;;
    concur-amqp-nostarted|concur-amqp-pipelined-nostarted|concur-redis-nostarted) ;;
    concur-amqp-batched|concur-amqp-batched-nostarted) ;;
    celery-amqp-get) ;;
    *) die "--rows: unknown row $r" ;;
  esac
done
[[ -x $python ]] || die "$python not found (Debian's python3 with python3-celery)"
[[ -x $redis_server ]] || die "$redis_server not found (apt-get install redis-server)"
[[ -x $rabbitmq_server && -x $epmd ]] || die "$rabbitmq_server not found (scripts/setup.sh)"
$python -c 'import celery, kombu, amqp, redis' 2> /dev/null \
  || die "$python lacks celery/kombu/amqp/redis (apt-get install python3-celery python3-redis)"
if [[ " $rows " == *" concur-"* ]]; then
  read -ra w <<< "$concur_worker"
  read -ra c <<< "$concur_client"
  [[ -x ${w[0]} && -x ${c[0]} ]] || die "${w[0]} or ${c[0]} missing: build concur_cli and" \
    "dist_client first (see --help)"
fi

if [[ -z $out ]]; then
  out=$root/bench/results/$(date -u +%Y-%m-%d_%H%M)_amqp_bench.jsonl
fi
[[ -e $out ]] && die "$out exists; choose another --out (results are never overwritten)"
mkdir -p "$(dirname "$out")"
: > "$out"

tmp=$(mktemp -d /tmp/amqp_bench.XXXXXX)
mnesia=$tmp/mnesia mnesia_tmp=""
if [[ -n $broker_data ]]; then
  mnesia_tmp=$(mktemp -d "$broker_data/amqp_bench_mnesia.XXXXXX") || die "mktemp in $broker_data"
  mnesia=$mnesia_tmp
fi
epmd_pid="" rabbit_pid="" redis_pid="" group=""


# kill_group PGID: SIGKILL to the whole group (a server: a crash loses nothing we need), then
# waits (bounded) until no member is left; its leader, our child, is reaped quietly.
kill_group() {
  local pg=$1 i
  kill -KILL -- "-$pg" 2> /dev/null || return 0
  wait "$pg" 2> /dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 -- "-$pg" 2> /dev/null || return 0
    sleep 0.1
  done
  echo "run_amqp_bench.sh: process group $pg survived SIGKILL for 5 s" >&2
}

cleanup() {
  local rc=$?
  if [[ -n $group ]]; then stop_group "$group"; group=""; fi
  if [[ -n $rabbit_pid ]]; then kill_group "$rabbit_pid"; rabbit_pid=""; fi
  if [[ -n $epmd_pid ]]; then kill_group "$epmd_pid"; epmd_pid=""; fi
  if [[ -n $redis_pid ]]; then kill_group "$redis_pid"; redis_pid=""; fi
  rm -rf "$tmp"
  if [[ -n $mnesia_tmp ]]; then rm -rf "$mnesia_tmp"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "run_amqp_bench.sh: line $LINENO failed (exit $?); stopping" >&2' ERR

# Four distinct free ports (the sockets are held until all four are known).
read -r amqp_port dist_port epmd_port redis_port < <($python -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')

# setsid: each server leads its own session and process group (a background job of a script is
# not a group leader, so setsid makes the new session without forking and $! is its pid = pgid).
setsid "$epmd" -port "$epmd_port" -address 127.0.0.1 > /dev/null 2>&1 < /dev/null &
epmd_pid=$!
(
  cd "$tmp"
  exec env HOME="$tmp" RABBITMQ_NODENAME="concur$amqp_port@localhost" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp_port" \
    RABBITMQ_DIST_PORT="$dist_port" ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$mnesia" RABBITMQ_LOG_BASE="$tmp/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$tmp/enabled_plugins" RABBITMQ_CONFIG_FILE="$tmp/rabbitmq" \
    RABBITMQ_SERVER_START_ARGS="-start_epmd false" \
    setsid "$rabbitmq_server" > "$tmp/rabbitmq.out" 2>&1 < /dev/null
) &
rabbit_pid=$!
amqp_url=amqp://guest:guest@127.0.0.1:$amqp_port/

setsid "$redis_server" --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --dir "$tmp" --daemonize no --protected-mode yes > "$tmp/redis.log" 2>&1 < /dev/null &
redis_pid=$!
redis_url=redis://127.0.0.1:$redis_port/0

timeout 30 $python "$here/redis_ping.py" --redis "$redis_url" --wait 10 --count 0 \
  || { tail -5 "$tmp/redis.log" >&2; die "the private redis-server on port $redis_port did not answer"; }
echo "redis-server $($redis_server --version | grep -o 'v=[0-9.]*') on $redis_url (pid $redis_pid)"
# An AMQP login, not only a listening port: the broker listens before it serves.
timeout 90 $python -c 'import sys; sys.path.insert(0, sys.argv[1]); import distbench_common as c
c.connect_amqp("run_amqp_bench.sh", sys.argv[2], wait_s=60)' "$here" "$amqp_url" \
  || { tail -20 "$tmp/rabbitmq.out" >&2; die "the private rabbitmq-server did not accept a login"; }
echo "rabbitmq-server on $amqp_url (pgid $rabbit_pid, epmd on $epmd_port, pgid $epmd_pid)"

# meta: the machine, the versions and the sizes, the first line of the result file.
$python - "$out" "$amqp_url" "$tasks" "$samples" "$warmup" "$workers_list" "$rows" "$mnesia" <<'PY'
import json, os, platform, subprocess, sys, time
out, url, tasks, samples, warmup, workers, rows, mnesia = sys.argv[1:]
from urllib.parse import urlparse
import amqp, celery, kombu, redis
u = urlparse(url)
c = amqp.Connection(host=f"{u.hostname}:{u.port}", userid="guest", password="guest")
c.connect()
props = c.server_properties
c.close()
def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {"system": "meta", "harness": "run_amqp_bench.sh",
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
        "debian": open("/etc/debian_version").read().strip(),
        "python": platform.python_version(), "celery": celery.__version__,
        "kombu": kombu.__version__, "py_amqp": amqp.__version__, "redis_py": redis.__version__,
        "rabbitmq_server": text(props.get("version")), "erlang": text(props.get("platform")),
        "broker_data": mnesia,
        "broker_data_fs": subprocess.run(["stat", "-f", "-c", "%T", mnesia], capture_output=True,
                                         text=True).stdout.strip(),
        "redis_server": subprocess.run(["/usr/bin/redis-server", "--version"], capture_output=True,
                                       text=True).stdout.strip(),
        "tasks": int(tasks), "latency_samples": int(samples), "warmup": int(warmup),
        "workers": [int(w) for w in workers.split()], "rows": rows.split(),
        "loadavg_1m_before": float(open("/proc/loadavg").read().split()[0])}
with open(out, "a") as f:
    f.write(json.dumps(meta) + "\n")
PY

# reset: the task queues of both systems deleted (a failed row leaves no tasks for the next one;
# each row's side declares them afresh) and Redis flushed.
reset() {
  timeout 30 $python - "$amqp_url" <<'PY' || die "deleting the broker's queues failed"
import sys
from urllib.parse import urlparse
import amqp
u = urlparse(sys.argv[1])
c = amqp.Connection(host=f"{u.hostname}:{u.port}", userid="guest", password="guest")
c.connect()
for q in ("celery", "concur.default", "concur.dead.default"):
    ch = c.channel()
    try:
        ch.queue_delete(q)
    except amqp.exceptions.NotFound:
        pass
    finally:
        if ch.is_open:
            ch.close()
c.close()
PY
  timeout 30 $python "$here/redis_ping.py" --redis "$redis_url" --count 0 --flushall \
    || die "FLUSHALL failed"
}


# group_cpu_ticks PGID: the CPU time (user + system, clock ticks) of the group's live processes
# (/proc/PID/stat after the command name: field 3 is the group, 12 and 13 the times). A process
# that exits between the glob and the read makes cat fail: not an error here.
clk_tck=$(getconf CLK_TCK)
group_cpu_ticks() {
  { cat /proc/[0-9]*/stat 2> /dev/null || true; } \
    | awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g) t += $12 + $13 } END { print t + 0 }'
}
# us_per_task TICKS TASKS: CPU µs per task.
us_per_task() { awk -v d="$1" -v t="$clk_tck" -v n="$2" 'BEGIN { printf "%.1f", d / t * 1e6 / n }'; }

failures=0
# run_row ROW N BROKER "WORKER CMD..." "CLIENT CMD...": one row; BROKER amqp or redis.
run_row() {
  local row=$1 n=$2 broker=$3 wcmd=$4 ccmd=$5
  local line rc log=$tmp/worker_${1}_$2.log url broker_pg
  local -a wargs cargs
  read -ra wargs <<< "$wcmd"
  read -ra cargs <<< "$ccmd"
  if [[ $broker == amqp ]]; then url=$amqp_url broker_pg=$rabbit_pid; else url=$redis_url broker_pg=$redis_pid; fi
  reset
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== $row, workers=$n, load $load: ${wargs[*]} --$broker $url --concurrency $n"
  setsid "${wargs[@]}" "--$broker" "$url" --concurrency "$n" > "$log" 2>&1 < /dev/null &
  group=$!
  local b0 w0 b1 w1
  b0=$(group_cpu_ticks "$broker_pg")
  w0=$(group_cpu_ticks "$group")
  set +e
  line=$(timeout --kill-after=10 $((3 * timeout_s + 30)) /usr/bin/time -f '%U %S' \
    -o "$tmp/client.time" "${cargs[@]}" "--$broker" "$url" --workers "$n" --tasks "$tasks" \
    --latency-samples "$samples" --warmup "$warmup" --timeout "$timeout_s" \
    2> "$tmp/client.err" | tail -n 1)
  rc=${PIPESTATUS[0]}
  set -e
  b1=$(group_cpu_ticks "$broker_pg")
  w1=$(group_cpu_ticks "$group")
  local total=$((tasks + samples + warmup)) client_us=""
  if [[ -s $tmp/client.time ]]; then
    client_us=$(awk -v n="$total" 'END { printf "%.1f", ($1 + $2) * 1e6 / n }' "$tmp/client.time")
  fi
  local alive=yes
  kill -0 "$group" 2> /dev/null || alive=no
  stop_group "$group"
  group=""
  if [[ $rc -ne 0 || -z $line ]]; then
    row_failed "$rc" "$alive" "$log" "row=$row" "system=${row%%-*}" "workers=$n" "broker=$broker"
    return 0
  fi
  record "$line" "row=$row" "broker=$broker" \
    "worker_cmd=${wargs[*]} --$broker URL --concurrency $n" "client_cmd=${cargs[*]} --$broker URL" \
    "loadavg_1m_before=$load" "broker_cpu_us_per_task=$(us_per_task $((b1 - b0)) "$total")" \
    "workers_cpu_us_per_task=$(us_per_task $((w1 - w0)) "$total")" \
    "client_cpu_us_per_task=$client_us"
  echo "   $line"
}

celery_worker="$python $here/celery_bench.py worker --pool prefork"
celery_client="$python $here/celery_bench.py client --variant amqp-prefork"
for n in $workers_list; do
  for r in $rows; do
    case $r in
      celery-amqp) run_row "$r" "$n" amqp "$celery_worker" "$celery_client --collect join" ;;
      celery-amqp-get)
        run_row "$r" "$n" amqp "$celery_worker" "$celery_client-get --collect get" ;;
      concur-amqp) run_row "$r" "$n" amqp "$concur_worker" "$concur_client" ;;
      concur-amqp-pipelined) run_row "$r" "$n" amqp "$concur_worker" "$concur_client --no-confirm" ;;
      concur-amqp-batched)
        run_row "$r" "$n" amqp "$concur_worker" "$concur_client --no-confirm --max-batch 64" ;;
      concur-amqp-batched-nostarted)
        run_row "$r" "$n" amqp "$concur_worker" \
          "$concur_client --no-confirm --no-track-started --max-batch 64" ;;
      concur-redis) run_row "$r" "$n" redis "$concur_worker" "$concur_client" ;;
      concur-amqp-nostarted)
        run_row "$r" "$n" amqp "$concur_worker" "$concur_client --no-track-started" ;;
      concur-amqp-pipelined-nostarted)
        run_row "$r" "$n" amqp "$concur_worker" "$concur_client --no-confirm --no-track-started" ;;
      concur-redis-nostarted)
        run_row "$r" "$n" redis "$concur_worker" "$concur_client --no-track-started" ;;
    esac
  done
done

echo
$python "$here/dist_summary.py" "$out"
echo
echo "raw JSON lines: $out"
[[ $failures -eq 0 ]] || { echo "run_amqp_bench.sh: $failures row(s) failed" >&2; exit 1; }
