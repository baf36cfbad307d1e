#!/usr/bin/env python3
"""is_prime.py: the notes' CPU-bound experiment (seed 004) in Python, for `concur bench`.

The notes time is_prime(112272535095293) x 100 serially, with threads and with processes;
this script runs the serial and `threading` variants (standard library only) and prints one
JSON object on stdout. `concur bench` embeds this file at build time and runs it with
`python3 -c`, so the installed binary needs no copy of it on disk.

    is_prime.py --mode serial --count 10
    is_prime.py --mode threading --count 10 --threads 2

Output: {"mode", "count", "threads", "number", "seconds", "results", "python"}, where
"seconds" is the wall time of the work alone (interpreter start-up excluded, as in the C++
rows) and "results" holds one boolean per number. With --threads T the numbers are split
into T contiguous chunks, chunk k being [k*count//T, (k+1)*count//T), as the C++ rows do.
"""
import argparse
import json
import math
import sys
import threading
import time

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


def run_threading(numbers, thread_count):
    results = [None] * len(numbers)

    def work(lo, hi):
        for i in range(lo, hi):
            results[i] = is_prime(numbers[i])

    count = len(numbers)
    threads = [
        threading.Thread(target=work, args=(k * count // thread_count,
                                            (k + 1) * count // thread_count),
                         name=f"is_prime-{k}")
        for k in range(thread_count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["serial", "threading"], required=True)
    parser.add_argument("--count", type=int, required=True, help="how many numbers (>= 1)")
    parser.add_argument("--threads", type=int, default=1, help="threads for --mode threading")
    parser.add_argument("--number", type=int, default=NUMBER)
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")

    numbers = [args.number] * args.count
    start = time.perf_counter()
    if args.mode == "serial":
        results = run_serial(numbers)
    else:
        results = run_threading(numbers, args.threads)
    seconds = time.perf_counter() - start

    json.dump({
        "mode": args.mode,
        "count": args.count,
        "threads": args.threads if args.mode == "threading" else 1,
        "number": args.number,
        "seconds": seconds,
        "results": results,
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
