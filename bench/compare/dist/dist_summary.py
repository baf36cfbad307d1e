#!/usr/bin/python3
"""dist_summary.py FILE.jsonl: the table of a run_dist_bench.sh result file (one JSON object per
line: a "meta" line, redis_ping rows, client rows, "error" rows), with the issue's ratios when
concur rows are there: concur tasks/s / RQ's and / Celery's (same worker count; the best variant
of each peer), concur p50 / the redis-py PING p50."""

import argparse
import json
import sys


def fmt(v, nd=1):
    return "-" if v is None else f"{v:,.{nd}f}"


def load(r):
    """The 1-minute load average when the row started (the harness's field), else at its end."""
    v = r.get("loadavg_1m_before", r.get("loadavg_1m_after"))
    return float(v) if v is not None else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    a = ap.parse_args()
    try:
        rows = [json.loads(line) for line in open(a.file) if line.strip()]
    except (OSError, ValueError) as e:
        print(f"dist_summary.py: cannot read {a.file}: {e}", file=sys.stderr)
        return 2
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
