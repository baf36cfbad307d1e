#!/usr/bin/env python3
"""Python twin of bench/crawl_http_bench.cpp: N GETs of a small page by C concurrent aiohttp
workers (one ClientSession per round, TCPConnector(limit=C): C kept-alive connections), against
the loopback test server the C++ benchmark starts (it runs this script with --python).

Prints one JSON object: per-round pages/s and CPU microseconds per request (process CPU:
time.process_time), their medians and min/max.
"""
import argparse
import asyncio
import json
import statistics
import sys
import time

import aiohttp


async def one_round(url: str, n: int, concurrency: int) -> int:
    ok = 0
    started = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok, started
            while started < n:
                started += 1
                async with session.get(url) as resp:
                    body = await resp.read()
                    if resp.status == 200 and body:
                        ok += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/page?size={args.size}"
    asyncio.run(one_round(url, 50, args.concurrency))  # warm-up (imports, first connections)
    rates, cpu_us = [], []
    for _ in range(args.rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        ok = asyncio.run(one_round(url, args.n, args.concurrency))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if ok != args.n:
            print(f"python_http_fetch_bench: {args.n - ok} fetches failed", file=sys.stderr)
            return 1
        rates.append(args.n / wall)
        cpu_us.append(cpu * 1e6 / args.n)
    print(json.dumps({
        "name": "aiohttp",
        "aiohttp": aiohttp.__version__,
        "python": sys.version.split()[0],
        "n": args.n, "concurrency": args.concurrency, "rounds": args.rounds,
        "pages_per_s": [round(r) for r in rates],
        "pages_per_s_median": round(statistics.median(rates)),
        "cpu_us_per_req": [round(c, 1) for c in cpu_us],
        "cpu_us_per_req_median": round(statistics.median(cpu_us), 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
