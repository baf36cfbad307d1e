# shellcheck shell=bash disable=SC2154  # $python and $out are the caller's
# bench_lib.sh — shell functions shared by the dist harnesses (run_dist_bench.sh,
# run_amqp_bench.sh); sourced, not run. They use the caller's $python and $out.

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
