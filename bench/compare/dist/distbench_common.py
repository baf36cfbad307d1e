"""Shared helpers for the concur::dist comparison peers (redis_ping.py, celery_bench.py,
rq_bench.py). Debian's /usr/bin/python3 only: it is the interpreter with redis-py, Celery, RQ and
py-amqp. Two brokers: Redis (run_dist_bench.sh) and RabbitMQ (run_amqp_bench.sh: Celery only).

The client JSON line (one line on stdout, the last line a client prints) has these fields; a
concur client plugged into run_dist_bench.sh (--concur-client) prints the same ones:

  system           "celery" | "rq" | "concur" | "redis_ping"
  variant          e.g. "prefork", "Worker", "SimpleWorker" (free text, one word)
  workers          N, the worker concurrency the client was told (it does not start workers)
  tasks            M, tasks in the throughput run
  throughput_s     seconds from the first submit to the last result
  tasks_per_s      M / throughput_s
  latency_samples  K, sequential submit -> result round trips
  latency_p50_ms, latency_p99_ms, latency_mean_ms, latency_min_ms, latency_max_ms
  errors           tasks whose result was missing, wrong or failed (0 in a valid run)
  versions         {"celery"/"rq": ..., "redis_py": ...} or, over RabbitMQ, {"celery", "kombu",
                   "py_amqp", "broker", "backend"}  (and python, loadavg_1m_after)
"""

import json
import math
import platform
import sys
import time
from urllib.parse import urlparse


def percentile(sorted_values, p):
    """Nearest-rank percentile (p in 0..100) of an already sorted, non-empty list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(samples_ns):
    """p50/p99/mean/min/max in milliseconds of a list of durations in nanoseconds."""
    s = sorted(samples_ns)
    ms = 1e-6
    return {
        "latency_samples": len(s),
        "latency_p50_ms": round(percentile(s, 50) * ms, 4),
        "latency_p99_ms": round(percentile(s, 99) * ms, 4),
        "latency_mean_ms": round(sum(s) / len(s) * ms, 4) if s else float("nan"),
        "latency_min_ms": round(s[0] * ms, 4) if s else float("nan"),
        "latency_max_ms": round(s[-1] * ms, 4) if s else float("nan"),
    }


def emit(record):
    """Print the one JSON line a client reports (flushed: the harness reads it from a pipe)."""
    record.setdefault("python", platform.python_version())
    try:
        with open("/proc/loadavg") as f:
            record.setdefault("loadavg_1m_after", float(f.read().split()[0]))
    except OSError:
        pass
    print(json.dumps(record, sort_keys=False), flush=True)


def die(prog, message, code=2):
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def check_loopback(prog, url, scheme="redis"):
    """The benchmark is loopback only: refuse a Redis (scheme "redis") or RabbitMQ ("amqp") URL
    whose host is not 127.0.0.1/localhost."""
    u = urlparse(url)
    if u.scheme != scheme:
        example = {"redis": "redis://127.0.0.1:PORT[/DB]",
                   "amqp": "amqp://guest:guest@127.0.0.1:PORT/"}[scheme]
        die(prog, f"--{scheme} wants {example}, got {url!r}")
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        die(prog, f"--{scheme} must be a loopback address (127.0.0.1), got host {u.hostname!r}")


def connect(prog, url, wait_s=0.0):
    """A redis-py client that answered PING, retrying for up to wait_s seconds; exits with a
    clear message when the server is not reachable."""
    import redis

    check_loopback(prog, url)
    deadline = time.monotonic() + wait_s
    last = None
    while True:
        try:
            r = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
            r.ping()
            return r
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
            last = e
        if time.monotonic() >= deadline:
            die(prog, f"Redis at {url} is not reachable ({last}); is redis-server running "
                      f"(run_dist_bench.sh starts a private one)?", code=3)
        time.sleep(0.05)


def connect_amqp(prog, url, wait_s=0.0):
    """Logs in to the RabbitMQ broker at url (py-amqp, what kombu's amqp:// transport uses) and
    closes the connection, retrying for up to wait_s seconds; exits with a clear message when no
    login succeeds (a broker that listens but is still booting refuses it)."""
    import amqp
    from urllib.parse import unquote

    check_loopback(prog, url, "amqp")
    u = urlparse(url)
    vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
    deadline = time.monotonic() + wait_s
    last = None
    while True:
        try:
            c = amqp.Connection(host=f"{u.hostname}:{u.port or 5672}", userid=u.username or "guest",
                                password=u.password or "guest", virtual_host=vhost,
                                connect_timeout=2)
            c.connect()
            c.close()
            return
        except Exception as e:  # noqa: BLE001 - socket errors and AMQP refusals alike: retry
            last = e
        if time.monotonic() >= deadline:
            die(prog, f"RabbitMQ at {url} is not reachable ({last!r}); is rabbitmq-server running "
                      f"(run_amqp_bench.sh starts a private one)?", code=3)
        time.sleep(0.1)


def wait_until(predicate, timeout_s, interval_s):
    """Poll predicate() every interval_s until it is true or timeout_s passed; returns its last
    value."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval_s)


def add_client_args(ap, tasks=2000, samples=300, brokers=("redis",)):
    """The client options every peer (and a --concur-client) takes; brokers: the URL options it
    accepts ("redis", "amqp"), exactly one of which is given."""
    urls = ap.add_mutually_exclusive_group(required=True)
    if "redis" in brokers:
        urls.add_argument("--redis", help="redis://127.0.0.1:PORT/0 (loopback only)")
    if "amqp" in brokers:
        urls.add_argument("--amqp", help="amqp://guest:guest@127.0.0.1:PORT/ (loopback only)")
    ap.add_argument("--workers", type=int, default=1,
                    help="the worker concurrency started by the harness (recorded, not started)")
    ap.add_argument("--tasks", type=int, default=tasks, help="M: tasks in the throughput run")
    ap.add_argument("--latency-samples", type=int, default=samples,
                    help="K: sequential submit -> result round trips")
    ap.add_argument("--warmup", type=int, default=50,
                    help="tasks run (and waited for) before measuring; also proves workers are up")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds: the whole client gives up after this (per phase)")
    ap.add_argument("--mode", choices=("both", "throughput", "latency"), default="both")


def check_client_args(prog, a):
    for name in ("workers", "tasks", "latency_samples"):
        if getattr(a, name) < 1:
            die(prog, f"--{name.replace('_', '-')} wants N >= 1")
    if a.warmup < 0 or a.timeout <= 0:
        die(prog, "--warmup wants N >= 0 and --timeout a positive number of seconds")
    if getattr(a, "amqp", None):
        check_loopback(prog, a.amqp, "amqp")
    else:
        check_loopback(prog, a.redis)
