#!/usr/bin/env python3
"""Python's multiprocessing.Manager().Queue() on the workload of bench/manager_bench.cpp.

  ManagerQueue/put_get             q.put(i); q.get() from one thread (two exchanges with the server)
  ManagerQueue/producer_consumer/0 a producer thread puts 2000 items, a consumer thread gets them,
                                   Queue() unbounded; /64: Queue(64)

Reported: microseconds per put+get, items per second through the queue; --repeats runs per case,
the median is reported.

Usage: python3 bench/compare/python_manager_bench.py [--pairs 5000] [--repeats 5] [--json]
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import threading
import time

ITEMS = 2000


def put_get(q, n: int) -> float:
    start = time.perf_counter_ns()
    for i in range(n):
        q.put(i)
        q.get()
    return (time.perf_counter_ns() - start) / n / 1000.0


def producer_consumer(q) -> float:
    def consume() -> None:
        for _ in range(ITEMS):
            q.get()

    start = time.perf_counter_ns()
    t = threading.Thread(target=consume)
    t.start()
    for i in range(ITEMS):
        q.put(i)
    t.join()
    return ITEMS / ((time.perf_counter_ns() - start) / 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000, help="put+get pairs per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = []
    with mp.Manager() as manager:
        q = manager.Queue()
        put_get(q, 200)  # warm-up: the proxy's connection
        runs = [put_get(q, args.pairs) for _ in range(args.repeats)]
        results.append({"name": "ManagerQueue/put_get", "us_per_pair": statistics.median(runs),
                        "us_per_pair_all": runs})
        for maxsize in (0, 64):
            q = manager.Queue(maxsize)
            producer_consumer(q)  # warm-up
            runs = [producer_consumer(q) for _ in range(args.repeats)]
            results.append({"name": f"ManagerQueue/producer_consumer/{maxsize}",
                            "items_per_second": statistics.median(runs),
                            "items_per_second_all": runs})
    if args.json:
        json.dump({"context": {"python": sys.version.split()[0],
                               "implementation": platform.python_implementation(),
                               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "pairs": args.pairs, "repeats": args.repeats},
                   "benchmarks": results}, sys.stdout, indent=2)
        print()
    else:
        for r in results:
            if "us_per_pair" in r:
                print(f"{r['name']:<36} {r['us_per_pair']:>10.2f} us/put+get"
                      f"   (median of {args.repeats})")
            else:
                print(f"{r['name']:<36} {r['items_per_second']:>10.0f} items/s"
                      f"   (median of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
