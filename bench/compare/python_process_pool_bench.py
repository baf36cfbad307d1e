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

  BigArg        (only with --big-arg BYTES) one round trip of a BYTES-long bytes argument whose
                result is as large (the task echoes it), on a warm 1-worker ProcessPoolExecutor,
                each run in a fresh interpreter (--big-arg-runs, default 5) that reports its
                peak RSS (VmHWM); hwm_ratio = VmHWM / (argument + result). The twin of
                process_pool_bench's BigArgPeakRss/0.

The default start method of this Python (fork on 3.11) is used, as in the notes.
Usage: python3 bench/compare/python_process_pool_bench.py [--tasks 20000] [--items 200000]
       [--trips 2000] [--numbers 20] [--repeats 3] [--json]
       python3 bench/compare/python_process_pool_bench.py --big-arg 200000000 [--big-arg-runs 5]
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
import subprocess
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


def rate(repeats: int, count: int, work) -> dict:
    """work(count) `repeats` times; items per second, median and every run."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work(count)
        runs.append(count / (time.perf_counter() - t0))
    return {"items_per_second": statistics.median(runs), "runs": runs}


def measure(kind: str, args, submit_all, map_sum, call, map_all) -> dict:
    """The four cases on one warm pool, each given as this pool does it: submit_all(n) submits n
    trivial tasks and takes every result, map_sum(n) maps n inputs with chunksize=1000, call()
    is one round trip, map_all(xs) maps is_prime over xs."""
    out = {}
    out[f"python/{kind}/Submit"] = rate(args.repeats, args.tasks, submit_all)
    out[f"python/{kind}/MapChunked"] = rate(args.repeats, args.items, map_sum)
    us = []
    for _ in range(args.trips):
        t0 = time.perf_counter_ns()
        call()
        us.append((time.perf_counter_ns() - t0) / 1e3)
    p50, p90 = percentiles(us)
    out[f"python/{kind}/RoundTrip"] = {"p50_us": p50, "p90_us": p90}
    t0 = time.perf_counter()
    assert all(map_all([PRIME] * args.numbers))
    out[f"python/{kind}/IsPrime"] = {"seconds": time.perf_counter() - t0}
    return out


def executor_cases(args) -> dict:
    with cf.ProcessPoolExecutor(max_workers=2) as ex:
        list(ex.map(square, range(100)))  # warm-up: workers started
        return measure(
            "executor", args,
            submit_all=lambda n: [f.result() for f in [ex.submit(square, i) for i in range(n)]],
            map_sum=lambda n: sum(ex.map(square, range(n), chunksize=1000)),
            call=lambda: ex.submit(square, 3).result(),
            map_all=lambda xs: list(ex.map(is_prime, xs)))


def pool_cases(args) -> dict:
    with mp.Pool(2) as pool:
        pool.map(square, range(100))  # warm-up: workers started
        return measure(
            "pool", args,
            submit_all=lambda n: [r.get() for r in [pool.apply_async(square, (i,)) for i in range(n)]],
            map_sum=lambda n: sum(pool.map(square, range(n), chunksize=1000)),
            call=lambda: pool.apply(square, (3,)),
            map_all=lambda xs: pool.map(is_prime, xs))


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


def echo(b: bytes) -> bytes:
    return b


def status_kib(field: str) -> int:
    """A "VmHWM:" / "VmRSS:" line of /proc/self/status, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def big_arg_child(n: int) -> None:
    """One round trip of an n-byte argument and result; prints one JSON line."""
    with cf.ProcessPoolExecutor(max_workers=1) as ex:
        ex.submit(square, 1).result()  # the worker runs: its start is not measured
        before = status_kib("VmRSS:")
        arg = bytes(range(256)) * (n // 256) + bytes(n % 256)  # one n-byte object, every page written
        t0 = time.perf_counter()
        r = ex.submit(echo, arg).result()
        seconds = time.perf_counter() - t0
        ok = r == arg
        print(json.dumps({"bytes": n, "rss_before_kib": before, "hwm_kib": status_kib("VmHWM:"),
                          "seconds": seconds, "ok": ok}))


def big_arg(n: int, runs: int) -> dict:
    """big_arg_child in `runs` fresh interpreters; medians and every run."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--big-arg-child", str(n)],
                             check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        assert row["ok"], "the result differs from the argument"
        rows.append(row)
    hwm = [r["hwm_kib"] * 1024 / 1e6 for r in rows]
    return {"python/executor/BigArg": {
        "bytes": n, "hwm_mb_median": statistics.median(hwm), "hwm_mb_min": min(hwm),
        "hwm_mb_max": max(hwm), "hwm_ratio_median": statistics.median(hwm) * 1e6 / (2 * n),
        "round_trip_s_median": statistics.median(r["seconds"] for r in rows), "runs": rows}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big-arg", type=int, default=0)
    ap.add_argument("--big-arg-runs", type=int, default=5)
    ap.add_argument("--big-arg-child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--trips", type=int, default=2000)
    ap.add_argument("--numbers", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.big_arg_child:
        big_arg_child(args.big_arg_child)
        return
    if args.big_arg:
        out = big_arg(args.big_arg, args.big_arg_runs)
        if args.json:
            json.dump({"python": sys.version.split()[0], "machine": platform.machine(),
                       "start_method": mp.get_start_method(), "results": out}, sys.stdout, indent=2)
            print()
        else:
            r = out["python/executor/BigArg"]
            print(f"BigArg {r['bytes']} bytes: VmHWM median {r['hwm_mb_median']:.1f} MB "
                  f"(min {r['hwm_mb_min']:.1f}, max {r['hwm_mb_max']:.1f}), "
                  f"ratio {r['hwm_ratio_median']:.3f}, round trip {r['round_trip_s_median']:.3f} s")
        return
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
