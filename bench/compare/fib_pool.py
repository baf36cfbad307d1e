#!/usr/bin/env python3
"""fib_pool.py: the notes' fib experiment (11-9 "多线程和多进程对比"), for `concur bench`.

The notes submit the naive fib(num) for num in range(25, 40) to `ThreadPoolExecutor(3)`, collect
the results through as_completed and print "last time is: 70.3" seconds: the GIL runs one fib at
a time, so three threads are no faster than one; the next cell ("多进程执行fib运算") does the same
with `ProcessPoolExecutor(3)`. This script runs the numbers serially, on the thread pool or on the
process pool (standard library only) and prints one JSON object on stdout. `concur bench` embeds
this file at build time and runs it with `python3 -c`.

    fib_pool.py --mode serial --first 25 --last 30
    fib_pool.py --mode pool --first 25 --last 30 --workers 3
    fib_pool.py --mode process --first 25 --last 30 --workers 3   (ProcessPoolExecutor)

--first/--last are the notes' range(first, last) (last excluded). Output: {"mode", "first",
"last", "workers", "seconds", "results", "python"}, where "seconds" is the wall time of the work
alone (interpreter start-up excluded; the pool's creation and shutdown included, as the notes'
`with` block) and "results" holds fib(first) .. fib(last - 1) in that order.
"""
import argparse
import functools
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed


def fib(n):
    # Exactly the notes' function.
    if n <= 2:
        return 1
    return fib(n - 1) + fib(n - 2)


def run_serial(nums):
    return [fib(n) for n in nums]


def run_executor(executor_class, nums, workers):
    results = {}
    with executor_class(workers) as executor:
        all_task = {executor.submit(fib, num): num for num in nums}
        for future in as_completed(all_task):
            results[all_task[future]] = future.result()
    return [results[n] for n in nums]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["serial", "pool", "process"], required=True)
    parser.add_argument("--first", type=int, default=25)
    parser.add_argument("--last", type=int, default=40, help="excluded, as in range()")
    parser.add_argument("--workers", type=int, default=3, help="max_workers for --mode pool / process")
    args = parser.parse_args()
    if not 1 <= args.first < args.last:
        parser.error("need 1 <= --first < --last")
    if args.workers < 1:
        parser.error("--workers must be >= 1")

    nums = list(range(args.first, args.last))
    start = time.perf_counter()
    if args.mode == "serial":
        results = run_serial(nums)
    elif args.mode == "pool":
        results = run_executor(ThreadPoolExecutor, nums, args.workers)
    else:
        # The fork context, named: this file runs as `python3 -c`, so a worker started by spawn
        # or forkserver (the default from Python 3.14) could not import fib from __main__.
        process_pool = functools.partial(ProcessPoolExecutor,
                                         mp_context=multiprocessing.get_context("fork"))
        results = run_executor(process_pool, nums, args.workers)
    seconds = time.perf_counter() - start

    json.dump({
        "mode": args.mode,
        "first": args.first,
        "last": args.last,
        "workers": args.workers if args.mode != "serial" else 1,
        "seconds": seconds,
        "results": results,
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
