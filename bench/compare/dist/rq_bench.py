#!/usr/bin/python3
"""rq_bench.py: the RQ peer of the concur::dist benchmark (RQ 1.13, Debian python3-rq).

One trivial job, rq_tasks.noop(x) -> x (rq_tasks.py), on the queue "bench" of the given Redis (--redis URL).

  worker  starts N `rq worker` processes (RQ 1.13 has no in-process concurrency option: one
          worker process runs one job at a time), each
            /usr/bin/rq worker --url URL --path <this dir> --logging_level WARNING
                               [--worker-class rq.worker.SimpleWorker] bench
          and waits for them; SIGTERM/SIGINT is passed on (RQ's warm shutdown), then KILL after
          10 s. --worker-class default is RQ's default Worker: it forks a work horse per job (what
          an RQ user runs); simple is rq.worker.SimpleWorker: the job runs in the worker
          process, no fork (RQ's own faster option, a second row).
  client  (a) throughput: M x queue.enqueue("rq_tasks.noop", i) from one thread; completion is
              polled every --poll-ms (default 1 ms) as the size of the queue's finished + failed
              job registries (two ZCARDs in one pipeline, so the poll costs the same for any M);
              tasks/s = M / (the poll that saw all M done - first enqueue). Every job's return
              value is checked afterwards (outside the timing).
          (b) latency: K sequential enqueue -> poll job status every --poll-ms until finished ->
              return value; p50/p99. The poll adds about half an interval (~0.5 ms) on average.
          Prints one JSON line (fields: distbench_common.py's docstring).

  /usr/bin/python3 rq_bench.py worker --redis redis://127.0.0.1:P/0 --concurrency 2
  /usr/bin/python3 rq_bench.py client --redis redis://127.0.0.1:P/0 --workers 2 --tasks 2000
"""

import argparse
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import distbench_common as common  # noqa: E402

PROG = "rq_bench.py"
QUEUE = "bench"
WORKER_CLASSES = {"default": None, "simple": "rq.worker.SimpleWorker"}
JOB = "rq_tasks.noop"  # rq_tasks.py: the job alone in an import-free module (see there)


def rq_cli():
    return ["/usr/bin/rq"] if os.access("/usr/bin/rq", os.X_OK) else [sys.executable, "-m", "rq.cli"]


def worker_command(a):
    cmd = rq_cli() + ["worker", "--url", a.redis, "--path", HERE, "--logging_level", "WARNING"]
    if WORKER_CLASSES[a.worker_class]:
        cmd += ["--worker-class", WORKER_CLASSES[a.worker_class]]
    return cmd + [QUEUE]


def run_worker(a):
    common.check_loopback(PROG, a.redis)
    if a.concurrency < 1:
        common.die(PROG, "--concurrency wants N >= 1")
    common.connect(PROG, a.redis, wait_s=a.wait)
    cmd = worker_command(a)
    print(f"{PROG}: {a.concurrency} x {' '.join(cmd)}", file=sys.stderr, flush=True)
    children = [subprocess.Popen(cmd, cwd=HERE) for _ in range(a.concurrency)]
    stopping = []

    def stop(signum, _frame):
        if not stopping:
            stopping.append(time.monotonic())
            for c in children:
                if c.poll() is None:
                    c.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while any(c.poll() is None for c in children):
        if stopping and time.monotonic() - stopping[0] > 10:
            for c in children:
                if c.poll() is None:
                    c.kill()
        time.sleep(0.1)
        if not stopping and any(c.returncode not in (None, 0) for c in children):
            code = 1
            print(f"{PROG}: a worker exited early; stopping the others", file=sys.stderr, flush=True)
            stop(signal.SIGTERM, None)
    sys.exit(code)


def run_client(a):
    common.check_client_args(PROG, a)
    if not 0 < a.poll_ms <= 100:
        common.die(PROG, "--poll-ms wants a number in (0, 100]")
    r = common.connect(PROG, a.redis)
    import redis
    import rq
    from rq import Queue
    from rq.job import Job, JobStatus
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    q = Queue(QUEUE, connection=r)
    finished_key = FinishedJobRegistry(queue=q).key
    failed_key = FailedJobRegistry(queue=q).key
    poll = a.poll_ms / 1000.0

    def done_count():
        with r.pipeline(transaction=False) as p:
            p.zcard(finished_key)
            p.zcard(failed_key)
            fin, fail = p.execute()
        return fin + fail

    def run_batch(n, label):
        """Enqueue n jobs, wait until the registries show all done; returns (seconds, submit
        seconds, jobs)."""
        base = done_count()
        t0 = time.perf_counter_ns()
        jobs = [q.enqueue(JOB, i)
                for i in range(n)]
        t_sub = time.perf_counter_ns()
        if not common.wait_until(lambda: done_count() - base >= n, a.timeout, poll):
            common.die(PROG, f"{label}: timed out after {a.timeout} s ({done_count() - base} of {n} "
                             f"jobs done); are the RQ workers running on queue {QUEUE!r}?", code=4)
        t1 = time.perf_counter_ns()
        return (t1 - t0) / 1e9, (t_sub - t0) / 1e9, jobs

    def count_errors(jobs):
        errors = 0
        for i, j in enumerate(jobs):
            if j.get_status(refresh=True) != JobStatus.FINISHED or j.return_value(refresh=True) != i:
                errors += 1
        return errors

    rec = {"system": "rq", "variant": a.variant, "workers": a.workers, "poll_ms": a.poll_ms}
    errors = 0
    if a.warmup:
        _, _, jobs = run_batch(a.warmup, "warm-up")
        errors += count_errors(jobs)

    if a.mode in ("both", "throughput"):
        dt, sub, jobs = run_batch(a.tasks, "throughput")
        errors += count_errors(jobs)
        rec.update(tasks=a.tasks, throughput_s=round(dt, 4), tasks_per_s=round(a.tasks / dt, 1),
                   submit_s=round(sub, 4))

    if a.mode in ("both", "latency"):
        samples = []
        deadline = time.monotonic() + a.timeout
        for i in range(a.latency_samples):
            t0 = time.perf_counter_ns()
            job = q.enqueue(JOB, i)
            while True:
                status = job.get_status(refresh=True)
                if status in (JobStatus.FINISHED, JobStatus.FAILED):
                    break
                if time.monotonic() > deadline:
                    common.die(PROG, f"latency run over --timeout {a.timeout} s "
                                     f"({i} of {a.latency_samples} done)", code=4)
                time.sleep(poll)
            v = job.return_value(refresh=True) if status == JobStatus.FINISHED else None
            samples.append(time.perf_counter_ns() - t0)
            if v != i:
                errors += 1
        rec.update(common.latency_summary(samples))

    rec["errors"] = errors
    rec["versions"] = {"rq": rq.__version__, "redis_py": redis.__version__}
    common.emit(rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode_name", required=True)
    w = sub.add_parser("worker", help="start N rq worker processes and wait for them")
    w.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT/0 (loopback only)")
    w.add_argument("--concurrency", type=int, default=1, help="N rq worker processes (default 1)")
    w.add_argument("--worker-class", choices=sorted(WORKER_CLASSES), default="default",
                   help="default: RQ's Worker (forks a work horse per job); "
                        "simple: rq.worker.SimpleWorker (no fork)")
    w.add_argument("--wait", type=float, default=5.0, help="seconds to wait for Redis first")
    c = sub.add_parser("client", help="measure throughput and latency against running workers")
    common.add_client_args(c)
    c.add_argument("--poll-ms", type=float, default=1.0,
                   help="result poll interval in ms (default 1)")
    c.add_argument("--variant", default="Worker",
                   help="row label: the workers' class (Worker or SimpleWorker)")
    a = ap.parse_args()
    if a.mode_name == "worker":
        run_worker(a)
    else:
        run_client(a)


if __name__ == "__main__":
    main()
