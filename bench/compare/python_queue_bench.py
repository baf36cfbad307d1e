#!/usr/bin/env python3
"""Python's queue module on the workload of bench/queue_bench.cpp, for comparison.

Each case moves --items ints from P producer threads to C consumer threads, as queue_bench does:

  Queue_1P1C/Queue, Queue_2P2C/Queue                 queue.Queue() (unbounded), put / get
  Queue_1P1C/Queue_1024, Queue_2P2C/Queue_1024       queue.Queue(maxsize=1024)
  Queue_1P1C/SimpleQueue, Queue_2P2C/SimpleQueue     queue.SimpleQueue(), put / get

One run: a fresh queue; P + C threads wait on a Barrier; the clock starts when the main thread
passes the barrier and stops when every thread has been joined. Producer p puts the values
p*N/P + 1 .. (p+1)*N/P, every consumer gets exactly N/C items (no sentinel), and the sum of
everything consumed must be N(N+1)/2. Thread start-up is outside the timed part. --repeats runs
per case; the median run is reported as items/s.

Usage: python3 bench/compare/python_queue_bench.py [--items 200000] [--repeats 5] [--json]
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import statistics
import sys
import threading
import time
from typing import Callable


def one_run(make_queue: Callable[[], object], producers: int, consumers: int, items: int) -> int:
    """Nanoseconds to move `items` (rounded down to a multiple of P*C) through a fresh queue."""
    n = items - items % (producers * consumers)
    per_producer, per_consumer = n // producers, n // consumers
    q = make_queue()
    sums = [0] * consumers
    barrier = threading.Barrier(producers + consumers + 1)

    def produce(p: int) -> None:
        put = q.put
        first = p * per_producer + 1
        barrier.wait()
        for v in range(first, first + per_producer):
            put(v)

    def consume(c: int) -> None:
        get = q.get
        total = 0
        barrier.wait()
        for _ in range(per_consumer):
            total += get()
        sums[c] = total

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads += [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter_ns()
    for t in threads:
        t.join()
    elapsed = time.perf_counter_ns() - start
    if sum(sums) != n * (n + 1) // 2:
        raise AssertionError(f"checksum {sum(sums)} != {n * (n + 1) // 2}")
    # Report per requested item: scale to `items` in case n was rounded down.
    return elapsed * items // n


QUEUES: list[tuple[str, Callable[[], object]]] = [
    ("Queue", queue.Queue),
    ("Queue_1024", lambda: queue.Queue(maxsize=1024)),
    ("SimpleQueue", queue.SimpleQueue),
]
CONFIGS = [("1P1C", 1, 1), ("2P2C", 2, 2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000, help="items moved per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    parser.add_argument("--filter", default="", help="run only names containing this")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    results = []
    for config, producers, consumers in CONFIGS:
        for qname, make in QUEUES:
            name = f"Queue_{config}/{qname}"
            if args.filter not in name:
                continue
            times = [one_run(make, producers, consumers, args.items) for _ in range(args.repeats)]
            median = statistics.median(times)
            r = {
                "name": name,
                "producers": producers,
                "consumers": consumers,
                "items_per_run": args.items,
                "repeats": args.repeats,
                "ns_per_item": median / args.items,
                "items_per_second": args.items * 1e9 / median,
                "items_per_second_all": [args.items * 1e9 / t for t in times],
            }
            results.append(r)
            if not args.json:
                print(f"{name:<24} {r['items_per_second']:>14,.0f} items/s"
                      f" {r['ns_per_item']:>10.1f} ns/item"
                      f"   (median of {args.repeats}, {args.items} items/run)", flush=True)
    if args.json:
        json.dump({
            "context": {
                "python": sys.version.split()[0],
                "implementation": platform.python_implementation(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "items": args.items,
                "repeats": args.repeats,
            },
            "benchmarks": results,
        }, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
