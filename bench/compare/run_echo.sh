#!/usr/bin/env bash
# run_echo.sh: one echo-server measurement. Starts SERVER (which must print "ready PORT" on stdout
# once listening), runs CLIENT [CLIENT_ARGS] --port PORT against it (bench/echo_client: traffic to
# 127.0.0.1 only), stops the server with SIGTERM (SIGKILL after 5 s; a trap makes sure of it on
# every exit path) and prints the client's JSON. Exits non-zero if the server never becomes ready,
# the client fails, or the server does not exit cleanly.
#
# Usage: bench/compare/run_echo.sh CLIENT [CLIENT_ARGS...] -- SERVER_CMD [SERVER_ARGS...]
#   e.g. bench/compare/run_echo.sh build/release/bench/echo_client --connections 50 -- \
#            build/release/bench/asio_echo_server --port 0
set -euo pipefail

readonly kReadyTimeoutTicks=100  # x 0.1 s: the server has 10 s to print "ready PORT"
readonly kStopTimeoutTicks=50    # x 0.1 s: and 5 s to exit after SIGTERM

die() {
  echo "run_echo.sh: $*" >&2
  exit 1
}

client=()
while [[ $# -gt 0 && $1 != -- ]]; do
  client+=("$1")
  shift
done
[[ $# -gt 0 ]] || die "usage: run_echo.sh CLIENT [CLIENT_ARGS...] -- SERVER_CMD [SERVER_ARGS...]"
shift
server=("$@")
[[ ${#client[@]} -gt 0 && ${#server[@]} -gt 0 ]] || die "need both a client and a server command"

server_out=$(mktemp)
server_pid=""
server_rc=""

# stop_server: SIGTERM, a bounded wait, then SIGKILL; records the exit status in server_rc.
stop_server() {
  [[ -n $server_pid ]] || return 0
  local pid=$server_pid
  server_pid=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local tick
    for ((tick = 0; tick < kStopTimeoutTicks; tick++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run_echo.sh: server $pid ignored SIGTERM for 5 s; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  server_rc=0
  wait "$pid" 2>/dev/null || server_rc=$?
}

cleanup() {
  stop_server
  rm -f "$server_out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${server[@]}" >"$server_out" &
server_pid=$!

port=""
for ((tick = 0; tick < kReadyTimeoutTicks; tick++)); do
  if line=$(grep -m1 -E '^ready [0-9]+$' "$server_out"); then
    port=${line#ready }
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || die "server exited before printing 'ready PORT'"
  sleep 0.1
done
[[ -n $port ]] || die "server printed no 'ready PORT' line within 10 s"

client_rc=0
result=$("${client[@]}" --port "$port") || client_rc=$?
stop_server
[[ $client_rc -eq 0 ]] || die "client failed (exit $client_rc)"
[[ $server_rc -eq 0 ]] || die "server did not exit cleanly after SIGTERM (exit $server_rc)"
echo "$result"
