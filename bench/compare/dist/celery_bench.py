#!/usr/bin/python3
"""celery_bench.py: the Celery peer of the concur::dist benchmark (Celery 5.2, Debian python3-celery).

One trivial task, noop(x) -> x; broker and result backend are the same Redis (--redis URL).

  worker  runs `python3 -m celery -A celery_bench worker --concurrency N --pool P --loglevel WARNING`
          (exec'd, so the process is the Celery CLI itself) with the app's Redis URL in
          $DIST_BENCH_REDIS. --pool prefork is Celery's default and what a Celery user runs:
          N child processes, the fair counterpart of N concur worker threads/processes. --pool
          threads and solo (one task at a time in the main process) are there for a second row.
          Everything else is Celery's default (prefetch multiplier 4, gossip/mingle/heartbeat on,
          acks early), as a user who did not tune it would have.
  client  (a) throughput: M x noop.delay(i) from one thread, then every result waited for;
              tasks/s = M / (last result - first submit);
          (b) latency: K sequential noop.delay(i).get() round trips, p50/p99.
          Prints one JSON line (fields: distbench_common.py's docstring).

  /usr/bin/python3 celery_bench.py worker --redis redis://127.0.0.1:P/0 --concurrency 2
  /usr/bin/python3 celery_bench.py client --redis redis://127.0.0.1:P/0 --workers 2 --tasks 2000
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import distbench_common as common  # noqa: E402

from celery import Celery  # noqa: E402

PROG = "celery_bench.py"
URL_ENV = "DIST_BENCH_REDIS"

_url = os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")
app = Celery("celery_bench", broker=_url, backend=_url)
app.conf.update(
    # JSON is Celery's default serializer; stated so that a later default change shows here.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="celery_bench.noop")
def noop(x):
    return x


def worker_command(a):
    return [sys.executable, "-m", "celery", "-A", "celery_bench", "--workdir", HERE, "worker",
            "--concurrency", str(a.concurrency), "--pool", a.pool, "--loglevel", "WARNING",
            "--hostname", f"bench{os.getpid()}@%h"]


def run_worker(a):
    common.check_loopback(PROG, a.redis)
    if a.concurrency < 1:
        common.die(PROG, "--concurrency wants N >= 1")
    if a.pool == "solo" and a.concurrency != 1:
        common.die(PROG, "--pool solo runs one task at a time: use --concurrency 1")
    common.connect(PROG, a.redis, wait_s=a.wait)
    cmd = worker_command(a)
    env = dict(os.environ, **{URL_ENV: a.redis})
    print(f"{PROG}: exec {URL_ENV}={a.redis} {' '.join(cmd)}", file=sys.stderr, flush=True)
    os.chdir(HERE)
    os.execve(cmd[0], cmd, env)


def wait_results(prog, results, timeout_s):
    """Every result's value, waited for in submission order (results[i] is noop(i)); counts the
    wrong or failed ones. The results stay in Redis (a private server, flushed between runs)."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    deadline = time.monotonic() + timeout_s
    errors = 0
    for i, r in enumerate(results):
        left = deadline - time.monotonic()
        if left <= 0:
            common.die(prog, f"timed out after {timeout_s} s waiting for results "
                             f"({i} of {len(results)} arrived); are the workers running?", code=4)
        try:
            v = r.get(timeout=left)
        except CeleryTimeout:
            common.die(prog, f"timed out after {timeout_s} s waiting for results "
                             f"({i} of {len(results)} arrived); are the workers running?", code=4)
        except Exception:  # noqa: BLE001 - the task failed in the worker: count it, go on
            errors += 1
            continue
        if v != i:
            errors += 1
    return errors


def run_client(a):
    common.check_client_args(PROG, a)
    common.connect(PROG, a.redis)
    app.conf.update(broker_url=a.redis, result_backend=a.redis)
    import celery
    import redis

    rec = {"system": "celery", "variant": a.variant, "workers": a.workers}
    errors = 0
    # Warm-up: proves a worker consumes (a clear error when none does) and warms the pool.
    if a.warmup:
        errors += wait_results(PROG, [noop.delay(i) for i in range(a.warmup)], a.timeout)

    if a.mode in ("both", "throughput"):
        t0 = time.perf_counter_ns()
        results = [noop.delay(i) for i in range(a.tasks)]
        t_submitted = time.perf_counter_ns()
        errors += wait_results(PROG, results, a.timeout)
        dt = (time.perf_counter_ns() - t0) / 1e9
        rec.update(tasks=a.tasks, throughput_s=round(dt, 4), tasks_per_s=round(a.tasks / dt, 1),
                   submit_s=round((t_submitted - t0) / 1e9, 4))

    if a.mode in ("both", "latency"):
        samples = []
        deadline = time.monotonic() + a.timeout
        for i in range(a.latency_samples):
            if time.monotonic() > deadline:
                common.die(PROG, f"latency run over --timeout {a.timeout} s", code=4)
            t0 = time.perf_counter_ns()
            v = noop.delay(i).get(timeout=max(1.0, deadline - time.monotonic()))
            samples.append(time.perf_counter_ns() - t0)
            if v != i:
                errors += 1
        rec.update(common.latency_summary(samples))

    rec["errors"] = errors
    rec["versions"] = {"celery": celery.__version__, "redis_py": redis.__version__}
    common.emit(rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode_name", required=True)
    w = sub.add_parser("worker", help="start a Celery worker (exec's the Celery CLI)")
    w.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT/0 (loopback only)")
    w.add_argument("--concurrency", type=int, default=1, help="pool size N (default 1)")
    w.add_argument("--pool", choices=("prefork", "threads", "solo"), default="prefork",
                   help="Celery pool (default prefork, Celery's own default)")
    w.add_argument("--wait", type=float, default=5.0, help="seconds to wait for Redis first")
    c = sub.add_parser("client", help="measure throughput and latency against running workers")
    common.add_client_args(c)
    c.add_argument("--variant", default="prefork", help="row label: the workers' pool")
    a = ap.parse_args()
    if a.mode_name == "worker":
        run_worker(a)
    else:
        run_client(a)


if __name__ == "__main__":
    main()
