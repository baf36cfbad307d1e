#!/usr/bin/python3
"""redis_ping.py: the Redis PING round trip on this machine, the yardstick for dist latency.

Two rows, N sequential PINGs each, after a short warm-up, on one connection:
  redis_py    redis.Redis.ping() (redis-py 4.3, its Python parser): what a Python client pays
  raw_socket  b"PING\\r\\n" written to a plain TCP socket and "+PONG\\r\\n" read back: closer to the
              floor a C client (hiredis) sees, with Python's per-call cost still in it
Prints one JSON line per row (system "redis_ping", variant redis_py|raw_socket).

Also the harness's Redis helper: --wait S waits up to S seconds for the server to answer;
--flushall empties it (between runs); --count 0 measures nothing.

  /usr/bin/python3 redis_ping.py --redis redis://127.0.0.1:6390/0 [--count 2000] [--wait 10]
"""

import argparse
import os
import socket
import sys
import time
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distbench_common as common  # noqa: E402

PROG = "redis_ping.py"


def ping_redis_py(r, n):
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r.ping()
        samples.append(time.perf_counter_ns() - t0)
    return samples


def ping_raw(url, n, warmup):
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port or 6379), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        samples = []
        for i in range(warmup + n):
            t0 = time.perf_counter_ns()
            s.sendall(b"PING\r\n")
            got = b""
            while not got.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    common.die(PROG, "the server closed the connection during PING", code=3)
                got += chunk
            dt = time.perf_counter_ns() - t0
            if got != b"+PONG\r\n":
                common.die(PROG, f"unexpected PING reply {got!r}", code=3)
            if i >= warmup:
                samples.append(dt)
        return samples
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT/0 (loopback only)")
    ap.add_argument("--count", type=int, default=2000, help="N sequential PINGs per row (0: none)")
    ap.add_argument("--warmup", type=int, default=200, help="PINGs before measuring")
    ap.add_argument("--wait", type=float, default=0.0,
                    help="seconds to wait for the server to answer before giving up")
    ap.add_argument("--flushall", action="store_true", help="FLUSHALL before anything else")
    a = ap.parse_args()
    if a.count < 0 or a.warmup < 0 or a.wait < 0:
        common.die(PROG, "--count/--warmup/--wait want numbers >= 0")

    r = common.connect(PROG, a.redis, wait_s=a.wait)
    if a.flushall:
        r.flushall()
    if a.count == 0:
        return
    import redis

    ping_redis_py(r, a.warmup)
    rows = [("redis_py", ping_redis_py(r, a.count)), ("raw_socket", ping_raw(a.redis, a.count, a.warmup))]
    info = r.info("server")
    for variant, samples in rows:
        rec = {"system": "redis_ping", "variant": variant, "pings": a.count}
        rec.update(common.latency_summary(samples))
        rec["versions"] = {"redis_server": info.get("redis_version"), "redis_py": redis.__version__}
        common.emit(rec)


if __name__ == "__main__":
    main()
