#!/bin/bash
# monitor.sh LOG [MINE]: every ~2 s, log processes (command not matching MINE) using > 10% CPU.
mine=${2:-queue_bench}
while :; do
  top -bn1 -w 200 | awk -v mine="$mine" 'NR>7 && $9+0 > 10 && $12 !~ mine && $12 != "top" {print strftime("%H:%M:%S"), $1, $9, $12}' >> "$1"
  sleep 2
done
