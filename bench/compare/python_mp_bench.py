#!/usr/bin/env python3
"""Python's multiprocessing.Pipe on the workload of bench/mp_bench.cpp, for comparison.

Between the parent and one forked child (multiprocessing's "fork" context):

  RoundTrip/raw_pipe            two os.pipe()s, os.write / os.read of 8 bytes each way (the floor)
  RoundTrip/pipe_send_recv      Connection.send(int) / recv(), the child echoes
  RoundTrip/pipe_send_bytes     Connection.send_bytes(8 bytes) / recv_bytes(), the child echoes
  Throughput_1MiB/pipe_send_bytes   send_bytes(1 MiB) one way, 8 per batch, then a 1-byte ack
  Throughput_1MiB/pipe_send         send(b'm' * 1 MiB) / recv() one way, likewise

A round trip is timed over --roundtrips iterations and reported as microseconds per round trip;
throughput over --batches batches of 8 messages of 1 MiB, reported as MB/s (1e6 bytes) of payload.
The child is started and joined outside the timed part. --repeats runs per case; the median run
is reported.

Usage: python3 bench/compare/python_mp_bench.py [--roundtrips 20000] [--batches 20]
       [--repeats 3] [--filter NAME] [--json]
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from typing import Callable

MIB = 1 << 20
BATCH = 8


def _echo_raw(rfd: int, wfd: int) -> None:
    while True:
        data = os.read(rfd, 8)
        if not data:
            return
        while len(data) < 8:
            more = os.read(rfd, 8 - len(data))
            if not more:
                return
            data += more
        os.write(wfd, data)


def run_raw_pipe(n: int) -> float:
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(down_w)
        os.close(up_r)
        try:
            _echo_raw(down_r, up_w)
        finally:
            os._exit(0)
    os.close(down_r)
    os.close(up_w)
    msg = b"12345678"
    start = time.perf_counter_ns()
    for _ in range(n):
        os.write(down_w, msg)
        got = os.read(up_r, 8)
        while len(got) < 8:
            got += os.read(up_r, 8 - len(got))
    elapsed = time.perf_counter_ns() - start
    os.close(down_w)
    os.close(up_r)
    os.waitpid(pid, 0)
    return elapsed / n / 1000.0


def _echo_conn(parent_end, conn, use_bytes: bool) -> None:
    parent_end.close()  # inherited by fork: the child must drop it to see end of file
    try:
        if use_bytes:
            while True:
                conn.send_bytes(conn.recv_bytes())
        else:
            while True:
                conn.send(conn.recv())
    except EOFError:
        pass


def run_pipe_round_trip(n: int, use_bytes: bool) -> float:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_echo_conn, args=(parent, child, use_bytes))
    p.start()
    child.close()
    start = time.perf_counter_ns()
    if use_bytes:
        msg = b"12345678"
        for _ in range(n):
            parent.send_bytes(msg)
            parent.recv_bytes()
    else:
        for i in range(n):
            parent.send(i)
            parent.recv()
    elapsed = time.perf_counter_ns() - start
    parent.close()
    p.join()
    return elapsed / n / 1000.0


def _sink(parent_end, conn, use_bytes: bool) -> None:
    parent_end.close()
    try:
        while True:
            for _ in range(BATCH):
                if use_bytes:
                    conn.recv_bytes()
                else:
                    conn.recv()
            conn.send_bytes(b"k")
    except EOFError:
        pass


def run_throughput(batches: int, use_bytes: bool) -> float:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_sink, args=(parent, child, use_bytes))
    p.start()
    child.close()
    msg = b"m" * MIB
    start = time.perf_counter_ns()
    for _ in range(batches):
        for _ in range(BATCH):
            if use_bytes:
                parent.send_bytes(msg)
            else:
                parent.send(msg)
        parent.recv_bytes()
    elapsed = time.perf_counter_ns() - start
    parent.close()
    p.join()
    return batches * BATCH * MIB / (elapsed / 1e9) / 1e6  # MB/s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roundtrips", type=int, default=20_000, help="round trips per run")
    parser.add_argument("--batches", type=int, default=20, help="batches of 8 x 1 MiB per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case")
    parser.add_argument("--filter", default="", help="run only names containing this")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    round_trips: list[tuple[str, Callable[[int], float]]] = [
        ("RoundTrip/raw_pipe", run_raw_pipe),
        ("RoundTrip/pipe_send_recv", lambda n: run_pipe_round_trip(n, False)),
        ("RoundTrip/pipe_send_bytes", lambda n: run_pipe_round_trip(n, True)),
    ]
    throughputs: list[tuple[str, Callable[[int], float]]] = [
        ("Throughput_1MiB/pipe_send_bytes", lambda b: run_throughput(b, True)),
        ("Throughput_1MiB/pipe_send", lambda b: run_throughput(b, False)),
    ]

    results = []
    for name, fn in round_trips:
        if args.filter not in name:
            continue
        runs = [fn(args.roundtrips) for _ in range(args.repeats)]
        r = {"name": name, "roundtrips_per_run": args.roundtrips, "repeats": args.repeats,
             "us_per_roundtrip": statistics.median(runs), "us_per_roundtrip_all": runs}
        results.append(r)
        if not args.json:
            print(f"{name:<34} {r['us_per_roundtrip']:>10.2f} us/round trip"
                  f"   (median of {args.repeats}, {args.roundtrips} round trips/run)", flush=True)
    for name, fn in throughputs:
        if args.filter not in name:
            continue
        runs = [fn(args.batches) for _ in range(args.repeats)]
        r = {"name": name, "bytes_per_run": args.batches * BATCH * MIB, "repeats": args.repeats,
             "MB_per_second": statistics.median(runs), "MB_per_second_all": runs}
        results.append(r)
        if not args.json:
            print(f"{name:<34} {r['MB_per_second']:>10.1f} MB/s"
                  f"   (median of {args.repeats}, {args.batches} x {BATCH} MiB/run)", flush=True)
    if args.json:
        json.dump({
            "context": {
                "python": sys.version.split()[0],
                "implementation": platform.python_implementation(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "roundtrips": args.roundtrips,
                "batches": args.batches,
                "repeats": args.repeats,
            },
            "benchmarks": results,
        }, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
