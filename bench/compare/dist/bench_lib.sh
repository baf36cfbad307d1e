# shellcheck shell=bash disable=SC2154  # $python, $out, $tmp and $failures are the caller's
# bench_lib.sh — shell functions shared by the dist harnesses (run_dist_bench.sh,
# run_amqp_bench.sh); sourced, not run. They use the caller's $python, $out, $tmp (the client's
# stderr is $tmp/client.err) and $failures.

# stop_group PGID: SIGTERM to the group (a warm stop), SIGKILL if anything is left after 10 s.
stop_group() {
  local pg=$1 i
  kill -TERM -- "-$pg" 2> /dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 -- "-$pg" 2> /dev/null || return 0
    sleep 0.1
  done
  echo "${0##*/}: process group $pg still there after 10 s: SIGKILL" >&2
  kill -KILL -- "-$pg" 2> /dev/null || true
}

# record JSON KEY=VALUE...: the client's JSON line plus the harness's fields → the result file.
record() {
  $python -c '
import json, sys
line, extra = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
try:
    rec = json.loads(line)
except ValueError:
    rec = {"error": "the client printed no JSON line: " + line[:200]}
def value(v):
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v
for k, v in extra.items():
    rec.setdefault(k, value(v))
print(json.dumps(rec))' "$@" >> "$out"
}

# row_failed RC ALIVE LOG KEY=VALUE...: a row whose client failed (exit RC, or no JSON line; ALIVE:
# were the workers still there): counted in $failures, explained on stderr with the client's
# stderr and the tail of the worker log LOG, and recorded as an error line with the fields given.
row_failed() {
  local rc=$1 alive=$2 log=$3
  shift 3
  failures=$((failures + 1))
  local why="client exit $rc (124 = over 3 x --timeout + 30 s); workers alive at the end: $alive"
  echo "   FAILED: $why; client stderr and the worker log's tail:" >&2
  tail -5 "$tmp/client.err" >&2 || true
  tail -15 "$log" >&2 || true
  record "{\"error\": \"$why\"}" "$@"
}
