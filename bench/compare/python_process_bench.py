#!/usr/bin/env python3
"""Python's multiprocessing on the workload of bench/process_bench.cpp.

  StartJoin/<method>  multiprocessing.get_context(method).Process(target=noop), start(), join();
                      reported as the median time per start over --starts starts (after one
                      warm-up start, which also starts the forkserver).
  ValueIncrements     2 processes each add 1 to a Value('q') --increments times under
                      get_lock(); reported as increments/s (both processes together).
  QueueItems/<P>x<C>  P producer processes put --items ints (in total) into a Queue(), C consumer
                      processes get them; reported as items/s from the first start to the last
                      join (start-up included, as in the C++ twin).

--repeats runs per case, the median run reported.
Usage: python3 bench/compare/python_process_bench.py [--starts 200] [--repeats 3] [--json]
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time


def noop() -> None:
    return None


def start_join(method: str, starts: int) -> float:
    ctx = mp.get_context(method)
    p = ctx.Process(target=noop)
    p.start()
    p.join()
    t0 = time.perf_counter_ns()
    for _ in range(starts):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{method}: child exit {p.exitcode}")
    return (time.perf_counter_ns() - t0) / 1e3 / starts


def add_many(v, n: int) -> None:
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def value_increments(n: int) -> float:
    ctx = mp.get_context("fork")
    v = ctx.Value("q", 0)
    ps = [ctx.Process(target=add_many, args=(v, n)) for _ in range(2)]
    t0 = time.perf_counter_ns()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    elapsed = (time.perf_counter_ns() - t0) / 1e9
    if v.value != 2 * n:
        raise SystemExit(f"lost increments: {v.value}")
    return 2 * n / elapsed


def produce(q, n: int) -> None:
    for i in range(n):
        q.put(i)


def consume(q, n: int, out) -> None:
    s = 0
    for _ in range(n):
        s += q.get()
    with out.get_lock():
        out.value += s


def queue_items(producers: int, consumers: int, items: int) -> float:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    out = ctx.Value("q", 0)
    per_p = items // producers
    per_c = items // consumers
    ps = [ctx.Process(target=produce, args=(q, per_p)) for _ in range(producers)]
    cs = [ctx.Process(target=consume, args=(q, per_c, out)) for _ in range(consumers)]
    t0 = time.perf_counter_ns()
    for p in ps + cs:
        p.start()
    for p in ps + cs:
        p.join()
    elapsed = (time.perf_counter_ns() - t0) / 1e9
    expected = producers * (per_p * (per_p - 1) // 2)
    if out.value != expected:
        raise SystemExit(f"queue lost items: {out.value} != {expected}")
    return items / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--increments", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for method in ("fork", "forkserver", "spawn"):
        starts = args.starts if method != "spawn" else max(10, args.starts // 5)
        runs = [start_join(method, starts) for _ in range(args.repeats)]
        results.append({"name": f"python/StartJoin/{method}", "us_per_start": statistics.median(runs),
                        "runs": runs, "starts": starts})
    runs = [value_increments(args.increments) for _ in range(args.repeats)]
    results.append({"name": "python/ValueIncrements", "items_per_second": statistics.median(runs),
                    "runs": runs})
    for producers, consumers in ((1, 1), (2, 2)):
        runs = [queue_items(producers, consumers, args.items) for _ in range(args.repeats)]
        results.append({"name": f"python/QueueItems/{producers}x{consumers}",
                        "items_per_second": statistics.median(runs), "runs": runs})
    if args.json:
        json.dump({"python": sys.version.split()[0], "machine": platform.machine(),
                   "benchmarks": results}, sys.stdout, indent=2)
        print()
    else:
        for r in results:
            if "us_per_start" in r:
                print(f"{r['name']:<32} {r['us_per_start']:10.1f} us/start")
            else:
                print(f"{r['name']:<32} {r['items_per_second']:12.0f} items/s")


if __name__ == "__main__":
    main()
