#!/bin/bash
# chunks.sh OUTDIR N BIN [args...]: N accepted chunks; each = one repetition of every case in
# random order, started after wait_calm (idle >= 95% for 3 x 2 s), discarded if another process
# (one whose command does not match $CHUNK_MINE, default the binary's name)
# used > 10% CPU at any top sample during it.
out=$1; n=$2; bin=$3; shift 3
mkdir -p $out
acc=0; try=0
while [ $acc -lt $n ]; do
  try=$((try+1))
  "$(dirname "$0")"/wait_calm.sh 100 > /dev/null
  : > $out/mon.log
  "$(dirname "$0")"/monitor.sh $out/mon.log "${CHUNK_MINE:-$(basename "$bin")}" & mpid=$!
  start=$(date -u +%H:%M:%S); load=$(cut -d' ' -f1 /proc/loadavg)
  $bin --benchmark_enable_random_interleaving=true --benchmark_format=json "$@" > $out/try$try.json 2> $out/try$try.err
  rc=$?
  kill $mpid; wait $mpid 2>/dev/null
  if [ $rc -ne 0 ]; then echo "try $try: exit $rc"; cat $out/try$try.err; exit 1; fi
  if [ -s $out/mon.log ]; then
    echo "try $try $start load $load: DISCARDED ($(sort -u -k4 $out/mon.log | awk '{print $4}' | sort -u | tr '\n' ' '))"
    mv $out/try$try.json $out/discarded$try.json
  else
    acc=$((acc+1)); echo "try $try $start load $load: accepted as chunk $acc"
    mv $out/try$try.json $out/chunk$acc.json
  fi
done
