#!/usr/bin/env python3
"""Python's ProcessPoolExecutor and multiprocessing.Pool (2 workers) on the workload of
bench/process_pool_bench.cpp.

  Submit        --tasks trivial tasks (square) submitted, then every result taken; tasks/s.
                ProcessPoolExecutor.submit and Pool.apply_async.
  MapChunked    map(square, --items inputs, chunksize=1000); items/s.
  RoundTrip     one trivial task submitted and its result taken, --trips times; p50 / p90 in us.
  RawPipe       8 bytes to a forked child over a pipe and back over another (the floor); us.
  IsPrime       is_prime(112272535095293) x --numbers: serial, and on the pool; seconds and
                the speedup (the notes' experiment; 100 numbers take ~17 s serially in Python,
                so the default is 20: the speedup does not depend on the count).

The default start method of this Python (fork on 3.11) is used, as in the notes.
Usage: python3 bench/compare/python_process_pool_bench.py [--tasks 20000] [--items 200000]
       [--trips 2000] [--numbers 20] [--repeats 3] [--json]
Standard library only.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

PRIME = 112272535095293


def square(x: int) -> int:
    return x * x


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def percentiles(us: list[float]) -> tuple[float, float]:
    us.sort()
    return us[len(us) // 2], us[len(us) * 9 // 10]


def executor_cases(args) -> dict:
    out = {}
    with cf.ProcessPoolExecutor(max_workers=2) as ex:
        list(ex.map(square, range(100)))  # warm-up: workers started
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fs = [ex.submit(square, i) for i in range(args.tasks)]
            for f in fs:
                f.result()
            runs.append(args.tasks / (time.perf_counter() - t0))
        out["python/executor/Submit"] = {"items_per_second": statistics.median(runs), "runs": runs}
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            s = sum(ex.map(square, range(args.items), chunksize=1000))
            runs.append(args.items / (time.perf_counter() - t0))
        out["python/executor/MapChunked"] = {"items_per_second": statistics.median(runs), "runs": runs}
        us = []
        for _ in range(args.trips):
            t0 = time.perf_counter_ns()
            ex.submit(square, 3).result()
            us.append((time.perf_counter_ns() - t0) / 1e3)
        p50, p90 = percentiles(us)
        out["python/executor/RoundTrip"] = {"p50_us": p50, "p90_us": p90}
        t0 = time.perf_counter()
        assert all(ex.map(is_prime, [PRIME] * args.numbers))
        out["python/executor/IsPrime"] = {"seconds": time.perf_counter() - t0}
    return out


def pool_cases(args) -> dict:
    out = {}
    with mp.Pool(2) as pool:
        pool.map(square, range(100))
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            rs = [pool.apply_async(square, (i,)) for i in range(args.tasks)]
            for r in rs:
                r.get()
            runs.append(args.tasks / (time.perf_counter() - t0))
        out["python/pool/Submit"] = {"items_per_second": statistics.median(runs), "runs": runs}
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            s = sum(pool.map(square, range(args.items), chunksize=1000))
            runs.append(args.items / (time.perf_counter() - t0))
        out["python/pool/MapChunked"] = {"items_per_second": statistics.median(runs), "runs": runs}
        us = []
        for _ in range(args.trips):
            t0 = time.perf_counter_ns()
            pool.apply(square, (3,))
            us.append((time.perf_counter_ns() - t0) / 1e3)
        p50, p90 = percentiles(us)
        out["python/pool/RoundTrip"] = {"p50_us": p50, "p90_us": p90}
        t0 = time.perf_counter()
        assert all(pool.map(is_prime, [PRIME] * args.numbers))
        out["python/pool/IsPrime"] = {"seconds": time.perf_counter() - t0}
    return out


def raw_pipe(trips: int) -> tuple[float, float]:
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(to_child_w)
        os.close(to_parent_r)
        while True:
            b = os.read(to_child_r, 8)
            if len(b) != 8:
                os._exit(0)
            os.write(to_parent_w, b)
    os.close(to_child_r)
    os.close(to_parent_w)
    us = []
    for _ in range(trips):
        t0 = time.perf_counter_ns()
        os.write(to_child_w, b"12345678")
        os.read(to_parent_r, 8)
        us.append((time.perf_counter_ns() - t0) / 1e3)
    os.close(to_child_w)
    os.waitpid(pid, 0)
    os.close(to_parent_r)
    return percentiles(us)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--trips", type=int, default=2000)
    ap.add_argument("--numbers", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {}
    t0 = time.perf_counter()
    assert all(is_prime(PRIME) for _ in range(args.numbers))
    out["python/serial/IsPrime"] = {"seconds": time.perf_counter() - t0}
    p50, p90 = raw_pipe(args.trips)
    out["python/RawPipe"] = {"p50_us": p50, "p90_us": p90}
    out.update(executor_cases(args))
    out.update(pool_cases(args))
    for kind in ("executor", "pool"):
        out[f"python/{kind}/IsPrime"]["speedup"] = (
            out["python/serial/IsPrime"]["seconds"] / out[f"python/{kind}/IsPrime"]["seconds"])
    if args.json:
        json.dump({"python": sys.version.split()[0], "machine": platform.machine(),
                   "start_method": mp.get_start_method(), "numbers": args.numbers,
                   "results": out}, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k:34} " + "  ".join(f"{a}={b:.4g}" for a, b in v.items() if a != "runs"))


if __name__ == "__main__":
    main()
