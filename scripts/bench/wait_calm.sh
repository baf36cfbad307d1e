#!/bin/bash
# wait_calm.sh MAXLOAD: wait until CPUs >= 95% idle for three consecutive 2 s windows and the
# 1-minute load average < MAXLOAD; prints the state when calm.
maxload=${1:-0.5}
ok=0
while :; do
  read -r _ u n s i w x y z _ < /proc/stat; t1=$((u+n+s+i+w+x+y+z)); i1=$((i+w))
  sleep 2
  read -r _ u n s i w x y z _ < /proc/stat; t2=$((u+n+s+i+w+x+y+z)); i2=$((i+w))
  idle=$(( 100 * (i2-i1) / (t2-t1) ))
  load=$(cut -d' ' -f1 /proc/loadavg)
  if [ $idle -ge 95 ]; then ok=$((ok+1)); else ok=0; fi
  if [ $ok -ge 3 ] && awk -v l=$load -v m=$maxload 'BEGIN{exit !(l<m)}'; then
    echo "calm: idle ${idle}% load $load at $(date -u +%H:%M:%S)"; exit 0
  fi
done
