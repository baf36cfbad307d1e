"""serve_bench_summary.py: the table of bench/compare/run_serve_bench.sh's work directory.

Reads WORK/runs/*/ (meta.json and wrk.txt per wrk run; overload/ with serve_load's JSON and the
RSS samples), prints per case and peer the median and spread (min-max) over runs of req/s, p50,
p99, non-2xx, socket errors, server CPU seconds (and CPU ms per request) and peak RSS, then the
ratios of the medians to each peer and the issue's targets; writes the raw runs and the summary
as one JSON file (--out).
"""
import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def seconds(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(path):
    out = {"rps": None, "p50": None, "p75": None, "p90": None, "p99": None, "requests": None,
           "non_2xx": 0, "socket_errors": {}}
    try:
        text = open(path).read()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("50%", "75%", "90%", "99%"):
            out["p" + parts[0][:-1]] = seconds(parts[1])
        if line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        m = re.search(r"(\d+) requests in", line)
        if m:
            out["requests"] = int(m.group(1))
        if "Non-2xx or 3xx responses:" in line:
            out["non_2xx"] = int(parts[-1])
        if line.strip().startswith("Socket errors:"):
            for name, n in re.findall(r"(connect|read|write|timeout) (\d+)", line):
                out["socket_errors"][name] = int(n)
    return out


def machine():
    info = {"kernel": platform.release(), "ncpu": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "CPU MHz"):
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("work")
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=0)
    parser.add_argument("--duration", type=int, default=0)
    args = parser.parse_args()

    raw = []
    for meta_path in sorted(glob.glob(os.path.join(args.work, "runs", "*", "meta.json"))):
        d = os.path.dirname(meta_path)
        if os.path.basename(d) == "overload":
            continue
        meta = json.load(open(meta_path))
        meta.update(parse_wrk(os.path.join(d, "wrk.txt")))
        meta["cpu_s"] = meta["server_ticks"] / meta["clk_tck"]
        n = meta.get("requests") or 0
        meta["cpu_ms_per_request"] = 1000 * meta["cpu_s"] / n if n else None
        raw.append(meta)

    groups = {}
    for r in raw:
        groups.setdefault((r["case"], r["connections"], r["peer"]), []).append(r)
    summary = {}
    print(f"{'case':9} {'conns':>5} {'peer':22} {'req/s (min-max)':>26} {'p50':>8} "
          f"{'p99 (min-max)':>22} {'non2xx':>7} {'sockerr':>7} {'cpu s':>6} {'cpu ms/req':>10} "
          f"{'peakMiB':>7}")
    for key in sorted(groups):
        rows = groups[key]
        s = {f: spread([r.get(f) for r in rows])
             for f in ("rps", "p50", "p90", "p99", "non_2xx", "cpu_s", "cpu_ms_per_request",
                       "peak_rss_kb")}
        s["socket_errors"] = [r["socket_errors"] for r in rows]
        summary["/".join(map(str, key))] = s
        fmt = lambda x, f="{:.0f}": "-" if x is None else f.format(x)  # noqa: E731
        rps, p99 = s["rps"], s["p99"]
        err = sum(sum(e.values()) for e in s["socket_errors"])
        print(f"{key[0]:9} {key[1]:>5} {key[2]:22} "
              f"{fmt(rps and rps['median'], '{:.1f}'):>9} ({fmt(rps and rps['min'], '{:.1f}')}-"
              f"{fmt(rps and rps['max'], '{:.1f}')}) "
              f"{fmt(s['p50'] and s['p50']['median'], '{:.4f}'):>8} "
              f"{fmt(p99 and p99['median'], '{:.4f}'):>8} ({fmt(p99 and p99['min'], '{:.4f}')}-"
              f"{fmt(p99 and p99['max'], '{:.4f}')}) "
              f"{fmt(s['non_2xx'] and s['non_2xx']['median']):>7} {err:>7} "
              f"{fmt(s['cpu_s'] and s['cpu_s']['median'], '{:.2f}'):>6} "
              f"{fmt(s['cpu_ms_per_request'] and s['cpu_ms_per_request']['median'], '{:.3f}'):>10} "
              f"{fmt(s['peak_rss_kb'] and s['peak_rss_kb']['median'] / 1024, '{:.1f}'):>7}")

    # Ratios of medians (req/s), concur over each peer, per case and connection count; and the
    # per-run ratios (same run, adjacent in time) with their spread.
    ratios = {}
    for (case, conns, peer), rows in groups.items():
        if not peer.startswith("concur"):
            continue
        for (case2, conns2, peer2), rows2 in groups.items():
            if case2 != case or conns2 != conns or peer2.startswith("concur"):
                continue
            a = statistics.median([r["rps"] for r in rows if r["rps"]] or [0])
            b = statistics.median([r["rps"] for r in rows2 if r["rps"]] or [0])
            by_run = {r["run"]: r["rps"] for r in rows2 if r["rps"]}
            per_run = [r["rps"] / by_run[r["run"]] for r in rows if r["rps"] and r["run"] in by_run]
            ratios[f"{case}/{conns}: {peer} / {peer2}"] = {
                "of_medians": a / b if b else None, "per_run": spread(per_run)}
    print("\nratios (req/s, concur / peer): of medians; per run (same run) median (min-max)")
    for k in sorted(ratios):
        v = ratios[k]
        pr = v["per_run"]
        print(f"  {k:55} {v['of_medians'] or 0:8.2f}   "
              + (f"{pr['median']:.2f} ({pr['min']:.2f}-{pr['max']:.2f})" if pr else "-"))

    overload = None
    od = os.path.join(args.work, "runs", "overload")
    if os.path.isdir(od):
        overload = {"meta": json.load(open(os.path.join(od, "meta.json")))}
        for name in ("unloaded", "overload"):
            try:
                overload[name] = json.load(open(os.path.join(od, name + ".json")))
            except (OSError, ValueError):
                overload[name] = None
        overload["capacity_wrk"] = parse_wrk(os.path.join(od, "capacity_wrk.txt"))
        samples = []
        try:
            for line in open(os.path.join(od, "rss.txt")):
                t, kb = line.split()
                samples.append([float(t), int(kb)])
        except (OSError, ValueError):
            pass
        overload["rss_samples"] = samples
        print("\noverload (concur serve / --pool-threads 300 --max-in-flight 100):")
        cw = overload["capacity_wrk"]
        print(f"  capacity (200s per second, wrk at 200 conns): {overload['meta']['capacity_rps']}"
              f" req/s; wrk's p99 (200s and 503s) {cw['p99']}, non-2xx {cw['non_2xx']}")
        for name in ("unloaded", "overload"):
            o = overload[name]
            if not o:
                continue
            print(f"  {name}: offered {o['rate_offered']} req/s, achieved send {o['rate_achieved']},"
                  f" unfinished {o['unfinished']}, connects {o['connects']}")
            for status, h in o["by_status"].items():
                print(f"    {status}: {h['count']} answers, p50 {h['p50']:.4f} p99 {h['p99']:.4f} "
                      f"max {h['max']:.4f}")
        if samples:
            kbs = [kb for _, kb in samples]
            print(f"  RSS over the 2x run: first {kbs[0] / 1024:.1f} MiB, min {min(kbs) / 1024:.1f},"
                  f" max {max(kbs) / 1024:.1f}, last {kbs[-1] / 1024:.1f} ({len(kbs)} samples)")

    result = {"machine": machine(), "runs": args.runs, "duration": args.duration,
              "command": " ".join(sys.argv), "summary": summary, "ratios": ratios,
              "overload": overload, "raw": raw}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
