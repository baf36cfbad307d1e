#!/usr/bin/env python3
"""sleep_gather.py: the notes' coroutine experiment, 30 sleeps gathered, for concur bench.

The notes run 30 coroutines that each `await asyncio.sleep(1)` and collect them with
asyncio.gather: one thread, one event loop, and the 30 sleeps overlap, so the whole takes about one
sleep. The serial twin sleeps the same tasks one after another with time.sleep. Standard library
only; prints one JSON object on stdout. `concur bench` embeds this file at build time and runs it
with `python3 -c`.

    sleep_gather.py --mode serial --tasks 2 --sleep 1
    sleep_gather.py --mode asyncio --tasks 30 --sleep 1

Output: {"mode", "tasks", "sleep", "seconds", "results", "python"}, where "seconds" is the wall
time of the work alone (interpreter start-up excluded; asyncio.run's loop creation and closing
included, as the C++ row times aio::run) and "results" holds what each task returned (its index),
in submission order (gather keeps it).
"""
import argparse
import asyncio
import json
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["serial", "asyncio"], required=True)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each task sleeps")
    args = parser.parse_args()
    if args.tasks < 1:
        parser.error("--tasks must be >= 1")
    if not args.sleep >= 0:
        parser.error("--sleep must be >= 0")

    async def work(i):
        await asyncio.sleep(args.sleep)
        return i

    async def gather_all():
        return await asyncio.gather(*[work(i) for i in range(args.tasks)])

    start = time.perf_counter()
    if args.mode == "serial":
        results = []
        for i in range(args.tasks):
            time.sleep(args.sleep)
            results.append(i)
    else:
        results = asyncio.run(gather_all())
    seconds = time.perf_counter() - start

    json.dump({
        "mode": args.mode,
        "tasks": args.tasks,
        "sleep": args.sleep,
        "seconds": seconds,
        "results": list(results),
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
