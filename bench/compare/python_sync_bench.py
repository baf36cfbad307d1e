#!/usr/bin/env python3
"""Python's threading primitives on the operations of bench/sync_bench.cpp, for comparison.

Each operation runs the same protocol as its C++ counterpart:

  Uncontended/Lock, Uncontended/RLock   acquire() + release() by one thread
  Contended/Lock/threads:2              2 threads each increment a shared counter under a Lock
  CondPingPong/Condition                a turn flag handed back and forth under Condition(Lock())
  EventPingPong/Event                   two Events, set / wait / clear in turn
  SemPingPong/Semaphore                 two Semaphore(0), release / acquire in turn

Timing is timeit-style: the operation count is grown until one run takes at least --min-time
seconds, then --repeats runs of that count are timed with time.perf_counter_ns and the median
run is reported as ns/op and ops/s (loop overhead included, as in timeit). Ping-pong partner
threads are started once per run, outside the timed region, and every run ends by joining them.

Usage: python3 bench/compare/python_sync_bench.py [--repeats 5] [--min-time 0.2] [--json]
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from typing import Callable

# A Runner takes an operation count n and returns the nanoseconds n operations took.
Runner = Callable[[int], int]


def uncontended(make_lock: Callable[[], object]) -> Runner:
    def run(n: int) -> int:
        lock = make_lock()
        acquire, release = lock.acquire, lock.release
        rng = range(n)
        start = time.perf_counter_ns()
        for _ in rng:
            acquire()
            release()
        return time.perf_counter_ns() - start

    return run


def contended_counter(threads: int) -> Runner:
    """n increments in all: each of `threads` threads does n // threads of them."""

    def run(n: int) -> int:
        per_thread = max(1, n // threads)
        lock = threading.Lock()
        counter = [0]
        start_barrier = threading.Barrier(threads + 1)

        def work() -> None:
            acquire, release = lock.acquire, lock.release
            start_barrier.wait()
            for _ in range(per_thread):
                acquire()
                counter[0] += 1
                release()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        start_barrier.wait()
        start = time.perf_counter_ns()
        for w in workers:
            w.join()
        elapsed = time.perf_counter_ns() - start
        if counter[0] != per_thread * threads:
            raise AssertionError(f"counter {counter[0]} != {per_thread * threads}")
        # Report per requested op: scale to n in case n was not a multiple of `threads`.
        return elapsed * n // (per_thread * threads)

    return run


def cond_ping_pong(n: int) -> int:
    """Both sides hold the lock and release it only inside wait(), as in sync_bench.cpp."""
    main_turn, partner_turn, stop = 0, 1, 2
    cond = threading.Condition(threading.Lock())
    turn = [main_turn]

    def partner() -> None:
        with cond:
            while True:
                while turn[0] == main_turn:
                    cond.wait()
                if turn[0] == stop:
                    return
                turn[0] = main_turn
                cond.notify()

    t = threading.Thread(target=partner)
    t.start()
    with cond:
        start = time.perf_counter_ns()
        for _ in range(n):
            turn[0] = partner_turn
            cond.notify()
            while turn[0] != main_turn:
                cond.wait()
        elapsed = time.perf_counter_ns() - start
        turn[0] = stop
        cond.notify()
    t.join()
    return elapsed


def event_ping_pong(n: int) -> int:
    ping, pong = threading.Event(), threading.Event()
    stop = [False]

    def partner() -> None:
        while True:
            ping.wait()
            ping.clear()
            if stop[0]:
                return
            pong.set()

    t = threading.Thread(target=partner)
    t.start()
    start = time.perf_counter_ns()
    for _ in range(n):
        ping.set()
        pong.wait()
        pong.clear()
    elapsed = time.perf_counter_ns() - start
    stop[0] = True
    ping.set()
    t.join()
    return elapsed


def sem_ping_pong(n: int) -> int:
    ping, pong = threading.Semaphore(0), threading.Semaphore(0)
    stop = [False]

    def partner() -> None:
        while True:
            ping.acquire()
            if stop[0]:
                return
            pong.release()

    t = threading.Thread(target=partner)
    t.start()
    start = time.perf_counter_ns()
    for _ in range(n):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter_ns() - start
    stop[0] = True
    ping.release()
    t.join()
    return elapsed


BENCHMARKS: list[tuple[str, Runner]] = [
    ("Uncontended/Lock", uncontended(threading.Lock)),
    ("Uncontended/RLock", uncontended(threading.RLock)),
    ("Contended/Lock/threads:2", contended_counter(2)),
    ("CondPingPong/Condition", cond_ping_pong),
    ("EventPingPong/Event", event_ping_pong),
    ("SemPingPong/Semaphore", sem_ping_pong),
]


def calibrate(run: Runner, min_time_ns: int) -> int:
    """The smallest count in 1, 2, 5, 10, 20, 50, ... whose run takes at least min_time_ns."""
    n = 1
    steps = (2, 2.5, 2)  # 1 -> 2 -> 5 -> 10 -> 20 -> 50 ...
    i = 0
    while run(n) < min_time_ns:
        n = int(n * steps[i % 3])
        i += 1
    return n


def measure(name: str, run: Runner, repeats: int, min_time: float) -> dict:
    n = calibrate(run, int(min_time * 1e9))
    times = [run(n) for _ in range(repeats)]
    median = statistics.median(times)
    ns_per_op = median / n
    return {
        "name": name,
        "ops_per_run": n,
        "repeats": repeats,
        "ns_per_op": ns_per_op,
        "ops_per_second": 1e9 / ns_per_op,
        "ns_per_op_all": [t / n for t in times],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per operation")
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="seconds one timed run lasts at least")
    parser.add_argument("--filter", default="", help="run only names containing this")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    results = []
    for name, run in BENCHMARKS:
        if args.filter in name:
            results.append(measure(name, run, args.repeats, args.min_time))
            if not args.json:
                r = results[-1]
                print(f"{name:<28} {r['ns_per_op']:>12.1f} ns/op {r['ops_per_second']:>14,.0f} ops/s"
                      f"   (median of {r['repeats']}, {r['ops_per_run']} ops/run)", flush=True)
    if args.json:
        json.dump({
            "context": {
                "python": sys.version.split()[0],
                "implementation": platform.python_implementation(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "repeats": args.repeats,
                "min_time": args.min_time,
            },
            "benchmarks": results,
        }, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
