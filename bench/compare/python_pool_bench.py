#!/usr/bin/env python3
"""Python's concurrent.futures.ThreadPoolExecutor on the workload of bench/pool_bench.cpp.

  Submit      --tasks empty tasks submitted from the main thread, every Future kept and waited
              for (concurrent.futures.wait); reported as tasks/s.
  RoundTrip   submit one empty task and take its result(), --trips times on a warm pool;
              reported as the median and 90th percentile in microseconds.
  ParallelMap --items floats in chunks of 10,000: executor.map of a per-chunk sum of x*x+1
              (the GIL serializes it; reported as items/s).

--workers threads (default 2), --repeats runs per case, the median run reported.
Usage: python3 bench/compare/python_pool_bench.py [--tasks 100000] [--trips 5000]
       [--items 1000000] [--repeats 5] [--json]
Standard library only.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import platform
import statistics
import sys
import time

CHUNK = 10_000


def noop() -> None:
    return None


def submit_run(ex: cf.ThreadPoolExecutor, tasks: int) -> float:
    start = time.perf_counter_ns()
    fs = [ex.submit(noop) for _ in range(tasks)]
    cf.wait(fs)
    return tasks / ((time.perf_counter_ns() - start) / 1e9)


def round_trips(ex: cf.ThreadPoolExecutor, trips: int) -> tuple[float, float]:
    for _ in range(100):
        ex.submit(noop).result()
    us = []
    for _ in range(trips):
        t0 = time.perf_counter_ns()
        ex.submit(noop).result()
        us.append((time.perf_counter_ns() - t0) / 1e3)
    us.sort()
    return us[len(us) // 2], us[len(us) * 9 // 10]


def chunk_sum(xs: list[float], c: int) -> float:
    s = 0.0
    for x in xs[c * CHUNK:(c + 1) * CHUNK]:
        s += x * x + 1.0
    return s


def map_run(ex: cf.ThreadPoolExecutor, xs: list[float]) -> float:
    chunks = len(xs) // CHUNK
    start = time.perf_counter_ns()
    total = sum(ex.map(lambda c: chunk_sum(xs, c), range(chunks)))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    assert total > 0
    return len(xs) / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--trips", type=int, default=5_000)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    xs = [(i % 1000) * 0.001 for i in range(args.items)]
    results: dict[str, dict[str, float]] = {}
    with cf.ThreadPoolExecutor(max_workers=args.workers) as ex:
        for _ in range(args.workers):
            ex.submit(noop).result()
        rates = [submit_run(ex, args.tasks) for _ in range(args.repeats)]
        results["Submit"] = {"tasks_per_second": statistics.median(rates)}
        trips = [round_trips(ex, args.trips) for _ in range(args.repeats)]
        results["RoundTrip"] = {"p50_us": statistics.median(t[0] for t in trips),
                                "p90_us": statistics.median(t[1] for t in trips)}
        maps = [map_run(ex, xs) for _ in range(args.repeats)]
        results["ParallelMap"] = {"items_per_second": statistics.median(maps)}

    if args.json:
        json.dump({"python": platform.python_version(), "workers": args.workers,
                   "tasks": args.tasks, "trips": args.trips, "items": args.items,
                   "repeats": args.repeats, "results": results}, sys.stdout, indent=2)
        print()
    else:
        print(f"Python {platform.python_version()}, ThreadPoolExecutor({args.workers})")
        print(f"Submit       {results['Submit']['tasks_per_second']:12.0f} tasks/s")
        print(f"RoundTrip    p50 {results['RoundTrip']['p50_us']:.1f} us, "
              f"p90 {results['RoundTrip']['p90_us']:.1f} us")
        print(f"ParallelMap  {results['ParallelMap']['items_per_second']:12.0f} items/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
