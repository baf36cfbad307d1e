#!/usr/bin/env python3
"""summ.py FILE.json...: per file, median / min / max real time per ParallelMap case, spread, and
ratios (tbb_parallel_for median time / case median time: >1 means faster than tbb)."""
import json, sys, statistics, collections
for f in sys.argv[1:]:
    d = json.load(open(f))
    t = collections.defaultdict(list)
    for b in d['benchmarks']:
        if b.get('run_type') != 'iteration': continue
        k = b['run_name'].replace('/iterations:1/real_time', '').replace('BM_ParallelMap/', '')
        t[k].append(b['real_time'])
    ref = statistics.median(t['tbb_parallel_for']) if 'tbb_parallel_for' in t else None
    print(f'== {f} ({d["context"]["date"]})')
    for k in sorted(t, key=lambda k: statistics.median(t[k])):
        m = statistics.median(t[k]); lo = min(t[k]); hi = max(t[k])
        r = f'{ref / m:.2f}x' if ref else ''
        print(f'  {k:24s} n={len(t[k])} median {m:6.2f} ms ({10/m:5.2f} G items/s)  min {lo:6.2f} max {hi:6.2f}  spread {(hi-lo)/m*100:5.0f}%  vs tbb_parallel_for {r}')
