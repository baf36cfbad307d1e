#!/usr/bin/python3
"""dist_summary.py FILE.jsonl [FILE.jsonl ...]: the table of a run_dist_bench.sh result file (one
JSON object per line: a "meta" line, redis_ping rows, client rows, "error" rows), with the issue's
ratios when concur rows are there: concur tasks/s / RQ's and / Celery's (same worker count; the
best variant of each peer), concur p50 / the redis-py PING p50.

A run_amqp_bench.sh file (its rows carry a "row" field: celery-amqp, concur-amqp, ...) gets its
own table: CPU per task of the broker, the workers and the client, and issue 18's ratios
(concur-amqp[-pipelined|-batched|-batched-nostarted] / celery-amqp, concur-amqp / concur-redis). Several run_amqp_bench.sh
files (runs of the same sizes): per row and N the median over the runs with the min-max spread,
and each ratio run by run (the >= 5x Celery target holds only if it holds in every run)."""

import argparse
import json
import statistics
import sys


def fmt(v, nd=1):
    return "-" if v is None else f"{v:,.{nd}f}"


def load(r):
    """The 1-minute load average when the row started (the harness's field), else at its end."""
    v = r.get("loadavg_1m_before", r.get("loadavg_1m_after"))
    return float(v) if v is not None else None


def read_rows(path):
    """The JSON objects of one result file; None (after a message) when it cannot be read."""
    try:
        return [json.loads(line) for line in open(path) if line.strip()]
    except (OSError, ValueError) as e:
        print(f"dist_summary.py: cannot read {path}: {e}", file=sys.stderr)
        return None


# AMQP_RATIOS: issue 18's ratios (numerator row, denominator row) of tasks/s at the same N.
AMQP_RATIOS = [("concur-amqp", "celery-amqp"), ("concur-amqp-pipelined", "celery-amqp"),
               ("concur-amqp-batched", "celery-amqp"),
               ("concur-amqp-batched-nostarted", "celery-amqp"),
               ("concur-amqp", "concur-redis"), ("concur-amqp-pipelined", "concur-redis")]


def amqp_ok(rows):
    """{(row, workers): record} of a run_amqp_bench.sh file's valid client rows."""
    return {(r["row"], r["workers"]): r for r in rows
            if r.get("row") and "error" not in r and r.get("tasks_per_s")}


def amqp_ratio_lines(ok):
    out = []
    for n in sorted({n for _, n in ok}):
        parts = []
        for num, den in AMQP_RATIOS:
            if (num, n) in ok and (den, n) in ok:
                parts.append(f"{num} / {den} {ok[num, n]['tasks_per_s'] / ok[den, n]['tasks_per_s']:.2f}x")
        if parts:
            out.append(f"  workers={n}: " + ", ".join(parts))
    return out


def amqp_table(rows):
    """The table of one run_amqp_bench.sh file."""
    hdr = f"{'row':<34} {'workers':>7} {'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}" \
          f" {'load':>5}  {'CPU us/task: broker':>19} {'workers':>8} {'client':>7}"
    out = ["(load: the 1-minute load average as the row started; 2 vCPUs. CPU per task: the whole"
           " row, warm-up included)", "", hdr, "-" * len(hdr)]
    for r in rows:
        if not r.get("row"):
            continue
        label = r["row"]
        if "error" in r:
            out.append(f"{label:<34} {r.get('workers', ''):>7}  FAILED: {r['error']}")
            continue
        out.append(f"{label:<34} {r['workers']:>7} {fmt(r.get('tasks_per_s')):>9} "
                   f"{fmt(r.get('latency_p50_ms'), 2):>8} {fmt(r.get('latency_p99_ms'), 2):>8} "
                   f"{r.get('errors', '-'):>6} {fmt(load(r), 2):>5}  "
                   f"{fmt(r.get('broker_cpu_us_per_task')):>19} "
                   f"{fmt(r.get('workers_cpu_us_per_task')):>8} {fmt(r.get('client_cpu_us_per_task')):>7}")
    ratios = amqp_ratio_lines(amqp_ok(rows))
    if ratios:
        out += ["", "ratios of tasks/s (target: concur-amqp >= 5x celery-amqp):"] + ratios
    return "\n".join(out)


def spread(values, nd):
    """median [min-max] of values."""
    return f"{fmt(statistics.median(values), nd)} [{fmt(min(values), nd)}-{fmt(max(values), nd)}]"


def amqp_runs(files, runs):
    """The medians and spreads of several run_amqp_bench.sh files, and each run's ratios."""
    oks = [amqp_ok(rows) for rows in runs]
    keys = []
    for ok in oks:
        keys += [k for k in ok if k not in keys]
    keys = sorted(keys, key=lambda k, first=list(keys): (k[1], first.index(k)))
    out = [f"{len(files)} runs: " + ", ".join(files), "median [min-max] over the runs that have"
           " the row (n: how many)", ""]
    hdr = f"{'row':<34} {'workers':>7} {'n':>2} {'tasks/s':>24} {'p50 ms':>18} {'p99 ms':>20}"
    out += [hdr, "-" * len(hdr)]
    for row, n in keys:
        rs = [ok[row, n] for ok in oks if (row, n) in ok]
        out.append(f"{row:<34} {n:>7} {len(rs):>2} {spread([r['tasks_per_s'] for r in rs], 0):>24} "
                   f"{spread([r['latency_p50_ms'] for r in rs], 2):>18} "
                   f"{spread([r['latency_p99_ms'] for r in rs], 2):>20}")
    out += ["", "ratios of tasks/s, run by run (and the ratio of the medians):"]
    for n in sorted({n for _, n in keys}):
        for num, den in AMQP_RATIOS:
            per_run = [ok[num, n]["tasks_per_s"] / ok[den, n]["tasks_per_s"] for ok in oks
                       if (num, n) in ok and (den, n) in ok]
            if not per_run:
                continue
            med = statistics.median(ok[num, n]["tasks_per_s"] for ok in oks if (num, n) in ok) / \
                statistics.median(ok[den, n]["tasks_per_s"] for ok in oks if (den, n) in ok)
            out.append(f"  workers={n} {num} / {den}: " + ", ".join(f"{v:.2f}x" for v in per_run) +
                       f"  (medians: {med:.2f}x)")
    failed = sum(1 for rows in runs for r in rows if r.get("row") and "error" in r)
    if failed:
        out.append(f"  {failed} failed row(s) left out")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", nargs="+")
    a = ap.parse_args()
    runs = [read_rows(f) for f in a.file]
    if any(r is None for r in runs):
        return 2
    if all(any(r.get("row") for r in rows) for rows in runs):
        if len(runs) == 1:
            print(amqp_table(runs[0]))
        else:
            print(amqp_runs(a.file, runs))
        return 0
    if len(runs) > 1:
        print("dist_summary.py: several files are for run_amqp_bench.sh results only",
              file=sys.stderr)
        return 2
    rows = runs[0]
    pings = {r["variant"]: r for r in rows if r.get("system") == "redis_ping"}
    out = []
    for v, r in pings.items():
        out.append(f"PING {v:<11} p50 {r['latency_p50_ms']:.3f} ms  p99 {r['latency_p99_ms']:.3f} ms"
                   f"  ({r['latency_samples']} sequential)")
    out.append("(load: the 1-minute load average as the row started; 2 vCPUs)")
    hdr = f"{'system':<8} {'variant':<13} {'workers':>7} {'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8}" \
          f" {'errors':>6} {'load':>5} {'redis us/task':>13}"
    out += ["", hdr, "-" * len(hdr)]
    clients = [r for r in rows if r.get("system") not in (None, "redis_ping", "meta")]
    for r in clients:
        if "error" in r:
            out.append(f"{r['system']:<8} {r.get('variant', ''):<13} {r.get('workers', ''):>7}  "
                       f"FAILED: {r['error']}")
            continue
        out.append(f"{r['system']:<8} {r['variant']:<13} {r['workers']:>7} "
                   f"{fmt(r.get('tasks_per_s')):>9} {fmt(r.get('latency_p50_ms'), 2):>8} "
                   f"{fmt(r.get('latency_p99_ms'), 2):>8} {r.get('errors', '-'):>6} "
                   f"{fmt(load(r), 2):>5} {fmt(r.get('redis_cpu_us_per_task')):>13}")
    ok = [r for r in clients if "error" not in r and r.get("tasks_per_s")]
    concur = [r for r in ok if r["system"] == "concur"]
    if concur:
        out += ["", "ratios (targets: >= 20x RQ, >= 5x Celery tasks/s; p50 <= 3x PING p50):"]
        ping = pings.get("redis_py", {}).get("latency_p50_ms")
        for c in concur:
            parts = []
            for peer in ("rq", "celery"):
                best = max((r["tasks_per_s"] for r in ok
                            if r["system"] == peer and r["workers"] == c["workers"]), default=None)
                if best:
                    parts.append(f"{c['tasks_per_s'] / best:.1f}x {peer}")
            if ping and c.get("latency_p50_ms"):
                parts.append(f"p50 = {c['latency_p50_ms'] / ping:.1f}x PING")
            out.append(f"  concur {c['variant']} workers={c['workers']}: " + ", ".join(parts))
    per_task = [r["redis_cpu_us_per_task"] for r in concur if r.get("redis_cpu_us_per_task")]
    if per_task:
        best = min(per_task)
        out.append(f"  one redis-server saturates at about {1e6 / best:,.0f} concur tasks/s "
                   f"(its CPU per task, {best:.1f} us at best, is one core's worth)")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
