#!/usr/bin/env python3
"""calm_runs.py OUTDIR N MAXMIN CMD...: run CMD (a benchmark writing JSON to stdout) N times, each
started after the CPUs were >= 95% idle for 3 consecutive 1 s windows, accepted only if other
processes used < 5% of the machine's CPU during it (from /proc/stat minus the child's rusage).
Gives up after MAXMIN minutes. Writes OUTDIR/run<k>.json and OUTDIR/log.txt."""
import os, sys, time, subprocess, json

def stat():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    idle = v[3] + v[4]
    return sum(v), idle

out, n, maxmin, cmd = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
os.makedirs(out, exist_ok=True)
hz = os.sysconf('SC_CLK_TCK')
ncpu = os.cpu_count()
log = open(os.path.join(out, 'log.txt'), 'a')
t_end = time.time() + 60 * maxmin
acc = 0; tries = 0
while acc < n and time.time() < t_end:
    ok = 0
    while ok < 3 and time.time() < t_end:
        t1, i1 = stat(); time.sleep(1); t2, i2 = stat()
        ok = ok + 1 if (i2 - i1) >= 0.95 * (t2 - t1) else 0
    if ok < 3: break
    tries += 1
    t1, i1 = stat(); w0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    data = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    t2, i2 = stat(); wall = time.time() - w0
    busy = ((t2 - t1) - (i2 - i1)) / hz
    mine = ru.ru_utime + ru.ru_stime
    other = max(0.0, busy - mine) / (wall * ncpu)
    stamp = time.strftime('%H:%M:%S', time.gmtime(w0))
    load = open('/proc/loadavg').read().split()[0]
    if status != 0:
        print(f'try {tries} {stamp}: exit {status}', file=log, flush=True); continue
    if other < 0.05:
        acc += 1
        open(os.path.join(out, f'run{acc}.json'), 'wb').write(data)
        print(f'try {tries} {stamp} UTC load {load} wall {wall:.1f}s other {100*other:.1f}%: accepted as run {acc}', file=log, flush=True)
    else:
        open(os.path.join(out, f'discarded{tries}.json'), 'wb').write(data)
        print(f'try {tries} {stamp} UTC load {load} wall {wall:.1f}s other {100*other:.1f}%: discarded', file=log, flush=True)
print(f'done: {acc} accepted of {tries}', file=log, flush=True)
