#!/usr/bin/python3
"""celery_bench.py: the Celery peer of the concur::dist benchmark (Celery 5.2, Debian python3-celery).

One trivial task, noop(x) -> x, over one of two brokers:
  --redis URL  Redis is broker and result backend (run_dist_bench.sh);
  --amqp URL   RabbitMQ is the broker (kombu's amqp:// transport, py-amqp) and results come back as
               AMQP messages (the rpc:// backend): Celery's standard RabbitMQ setup
               (run_amqp_bench.sh).

  worker  runs `python3 -m celery -A celery_bench worker --concurrency N --pool P --loglevel WARNING`
          (exec'd, so the process is the Celery CLI itself) with the app's broker URL in
          $DIST_BENCH_REDIS or $DIST_BENCH_AMQP. --pool prefork is Celery's default and what a Celery user runs:
          N child processes, the fair counterpart of N concur worker threads/processes. --pool
          threads and solo (one task at a time in the main process) are there for a second row.
          Everything else is Celery's default (prefetch multiplier 4, gossip/mingle/heartbeat on,
          acks early), as a user who did not tune it would have.
  client  (a) throughput: M x noop.delay(i) from one thread, then every result waited for;
              tasks/s = M / (last result - first submit);
              --collect get (the default) waits with .get() on each result in turn;
              --collect join with ResultSet(results).join_native(), which takes the results in
              whatever order they arrive. Over RabbitMQ (the rpc:// backend) with 2 children the
              in-order .get() stalls: results come back out of order, and near the end many a
              .get() returns only when the backend's 1 s drain interval times out, so the last
              few dozen results cost ~1 s each (bench/compare/dist/README.md); run_amqp_bench.sh
              uses join.
          (b) latency: K sequential noop.delay(i).get() round trips, p50/p99.
          Prints one JSON line (fields: distbench_common.py's docstring).

  /usr/bin/python3 celery_bench.py worker --redis redis://127.0.0.1:P/0 --concurrency 2
  /usr/bin/python3 celery_bench.py client --redis redis://127.0.0.1:P/0 --workers 2 --tasks 2000
  /usr/bin/python3 celery_bench.py worker --amqp amqp://guest:guest@127.0.0.1:P/ --concurrency 2
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
AMQP_ENV = "DIST_BENCH_AMQP"
# RPC_BACKEND: results as AMQP messages to the client's own reply queue (Celery's RabbitMQ setup).
RPC_BACKEND = "rpc://"


def broker_and_backend(redis_url, amqp_url):
    """(broker_url, result_backend): the same Redis twice, or RabbitMQ and the rpc:// backend."""
    return (amqp_url, RPC_BACKEND) if amqp_url else (redis_url, redis_url)


_broker, _backend = broker_and_backend(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"),
                                       os.environ.get(AMQP_ENV))
app = Celery("celery_bench", broker=_broker, backend=_backend)
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
    if a.concurrency < 1:
        common.die(PROG, "--concurrency wants N >= 1")
    if a.pool == "solo" and a.concurrency != 1:
        common.die(PROG, "--pool solo runs one task at a time: use --concurrency 1")
    if a.amqp:
        common.connect_amqp(PROG, a.amqp, wait_s=a.wait)
        name, url = AMQP_ENV, a.amqp
    else:
        common.connect(PROG, a.redis, wait_s=a.wait)
        name, url = URL_ENV, a.redis
    cmd = worker_command(a)
    env = dict(os.environ, **{name: url})
    env.pop(URL_ENV if a.amqp else AMQP_ENV, None)
    print(f"{PROG}: exec {name}={url} {' '.join(cmd)}", file=sys.stderr, flush=True)
    os.chdir(HERE)
    os.execve(cmd[0], cmd, env)


def join_results(prog, results, timeout_s):
    """Every result's value, taken as they arrive (ResultSet.join_native, Celery's optimised join
    for the rpc/redis backends); counts the wrong or failed ones (results[i] is noop(i))."""
    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import ResultSet

    try:
        values = ResultSet(results).join_native(timeout=timeout_s, propagate=False)
    except CeleryTimeout:
        common.die(prog, f"timed out after {timeout_s} s waiting for {len(results)} results; are "
                         f"the workers running?", code=4)
    return sum(1 for i, v in enumerate(values) if isinstance(v, Exception) or v != i)


def wait_results(prog, results, timeout_s):
    """Every result's value, waited for in submission order (results[i] is noop(i)); counts the
    wrong or failed ones. Over Redis the results stay there (a private server, flushed between
    runs); over RabbitMQ each was a message to this client's reply queue, consumed by get()."""
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
    if a.amqp:
        common.connect_amqp(PROG, a.amqp)
    else:
        common.connect(PROG, a.redis)
    broker, backend = broker_and_backend(a.redis, a.amqp)
    app.conf.update(broker_url=broker, result_backend=backend)
    import celery

    rec = {"system": "celery", "variant": a.variant, "workers": a.workers, "collect": a.collect}
    errors = 0
    # Warm-up: proves a worker consumes (a clear error when none does) and warms the pool.
    if a.warmup:
        errors += wait_results(PROG, [noop.delay(i) for i in range(a.warmup)], a.timeout)

    if a.mode in ("both", "throughput"):
        t0 = time.perf_counter_ns()
        results = [noop.delay(i) for i in range(a.tasks)]
        t_submitted = time.perf_counter_ns()
        collect = join_results if a.collect == "join" else wait_results
        errors += collect(PROG, results, a.timeout)
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
    if a.amqp:
        import amqp
        import kombu

        rec["versions"] = {"celery": celery.__version__, "kombu": kombu.__version__,
                           "py_amqp": amqp.__version__, "broker": "amqp:// (py-amqp)",
                           "backend": RPC_BACKEND}
    else:
        import redis

        rec["versions"] = {"celery": celery.__version__, "redis_py": redis.__version__}
    common.emit(rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode_name", required=True)
    w = sub.add_parser("worker", help="start a Celery worker (exec's the Celery CLI)")
    urls = w.add_mutually_exclusive_group(required=True)
    urls.add_argument("--redis", help="redis://127.0.0.1:PORT/0 (loopback only)")
    urls.add_argument("--amqp", help="amqp://guest:guest@127.0.0.1:PORT/ (loopback only)")
    w.add_argument("--concurrency", type=int, default=1, help="pool size N (default 1)")
    w.add_argument("--pool", choices=("prefork", "threads", "solo"), default="prefork",
                   help="Celery pool (default prefork, Celery's own default)")
    w.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the broker first")
    c = sub.add_parser("client", help="measure throughput and latency against running workers")
    common.add_client_args(c, brokers=("redis", "amqp"))
    c.add_argument("--variant", default="prefork", help="row label: the workers' pool")
    c.add_argument("--collect", choices=("get", "join"), default="get",
                   help="throughput run: .get() each result in order (default) or "
                        "ResultSet.join_native() (as they arrive)")
    a = ap.parse_args()
    if a.mode_name == "worker":
        run_worker(a)
    else:
        run_client(a)


if __name__ == "__main__":
    main()
