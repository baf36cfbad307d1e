#!/usr/bin/env python3
"""sleep_pool.py: the notes' I/O-bound experiment (11-9 "对于io操作来说"), for `concur bench`.

The notes submit random_sleep(2) for `[2]*30` to `ThreadPoolExecutor(3)` and collect through
as_completed: a sleeping thread releases the GIL, so the pool's size, not the GIL, sets the time
(3 workers: ten rounds; 30 workers: one). This script runs the 30 tasks serially or on a pool of
--workers threads (standard library only) and prints one JSON object on stdout. `concur bench`
embeds this file at build time and runs it with `python3 -c`.

    sleep_pool.py --mode serial --sleep 0.05
    sleep_pool.py --mode pool --workers 30 --sleep 0.05

--sleep is the seconds one random_sleep(2) really sleeps (the notes' 2 s scaled down; each task
still returns the notes' n = 2). Output: {"mode", "tasks", "workers", "sleep", "seconds",
"results", "python"}, where "seconds" is the wall time of the work alone (interpreter start-up
excluded; the pool's creation and shutdown included, as the notes' `with` block) and "results"
holds what each task returned, in submission order.
"""
import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["serial", "pool"], required=True)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--workers", type=int, default=3, help="max_workers for --mode pool")
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds per random_sleep(2)")
    args = parser.parse_args()
    if args.tasks < 1:
        parser.error("--tasks must be >= 1")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if not args.sleep >= 0:
        parser.error("--sleep must be >= 0")

    def random_sleep(n):
        # The notes' function, its n seconds scaled to --sleep.
        time.sleep(args.sleep * n / 2)
        return n

    start = time.perf_counter()
    if args.mode == "serial":
        results = [random_sleep(n) for n in [2] * args.tasks]
    else:
        with ThreadPoolExecutor(args.workers) as executor:
            all_task = [executor.submit(random_sleep, num) for num in [2] * args.tasks]
            for future in as_completed(all_task):
                future.result()
        results = [f.result() for f in all_task]
    seconds = time.perf_counter() - start

    json.dump({
        "mode": args.mode,
        "tasks": args.tasks,
        "workers": args.workers if args.mode == "pool" else 1,
        "sleep": args.sleep,
        "seconds": seconds,
        "results": results,
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
