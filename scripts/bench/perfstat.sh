#!/bin/bash
# perfstat.sh BIN ROUNDS case... : futex calls and context switches per item, per pass.
bin=$1; rounds=$2; shift 2
for r in $(seq 1 $rounds); do
  for c in $(printf '%s\n' "$@" | shuf); do
    out=$(perf stat -x, -e syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,context-switches $bin --benchmark_filter="$c/" --benchmark_format=json 2>"${TMPDIR:-/tmp}"/perfstat.err)
    ips=$(echo "$out" | python3 -c 'import json,sys; b=json.load(sys.stdin)["benchmarks"][0]; print(b["items_per_second"], b["items"])')
    fx=$(grep sys_enter_futex "${TMPDIR:-/tmp}"/perfstat.err | cut -d, -f1); yd=$(grep sched_yield "${TMPDIR:-/tmp}"/perfstat.err | cut -d, -f1); cs=$(grep context-switches "${TMPDIR:-/tmp}"/perfstat.err | cut -d, -f1)
    echo "$c $ips $fx $yd $cs"
  done
done
