#!/usr/bin/env python3
"""is_prime_pool.py: the notes' CPU-bound experiment through a pool (seed 004), for `concur bench`.

The notes time is_prime(112272535095293) x 100 with `with ThreadPoolExecutor() as pool:
pool.map(is_prime, PRIMES)` and find it no faster than the serial loop: the GIL lets one thread
compute at a time. This script runs the serial loop and that pool (standard library only) and
prints one JSON object on stdout. `concur bench` embeds this file at build time and runs it with
`python3 -c`.

    is_prime_pool.py --mode serial --count 10
    is_prime_pool.py --mode pool --count 10 --workers 2
    is_prime_pool.py --mode process --count 10 --workers 2   (ProcessPoolExecutor)

Output: {"mode", "count", "workers", "number", "seconds", "results", "python"}, where "seconds"
is the wall time of the work alone (interpreter start-up excluded, as in the C++ rows; the pool's
creation and shutdown included, as the notes' `with` block) and "results" holds one boolean per
number, in input order (map's order).
"""
import argparse
import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

NUMBER = 112272535095293


def is_prime(n):
    # Exactly the notes' function.
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    sqrt_n = int(math.floor(math.sqrt(n)))
    for i in range(3, sqrt_n + 1, 2):
        if n % i == 0:
            return False
    return True


def run_serial(numbers):
    return [is_prime(n) for n in numbers]


def run_pool(numbers, workers):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(is_prime, numbers))


def run_process(numbers, workers):
    # The fork context, named: this file runs as `python3 -c`, so a worker started by spawn or
    # forkserver (the default from Python 3.14) could not import is_prime from __main__.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(is_prime, numbers))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["serial", "pool", "process"], required=True)
    parser.add_argument("--count", type=int, required=True, help="how many numbers (>= 1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="max_workers for --mode pool / process")
    parser.add_argument("--number", type=int, default=NUMBER)
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be >= 1")
    if args.workers < 1:
        parser.error("--workers must be >= 1")

    numbers = [args.number] * args.count
    start = time.perf_counter()
    if args.mode == "serial":
        results = run_serial(numbers)
    elif args.mode == "pool":
        results = run_pool(numbers, args.workers)
    else:
        results = run_process(numbers, args.workers)
    seconds = time.perf_counter() - start

    json.dump({
        "mode": args.mode,
        "count": args.count,
        "workers": args.workers if args.mode != "serial" else 1,
        "number": args.number,
        "seconds": seconds,
        "results": results,
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
