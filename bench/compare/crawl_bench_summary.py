#!/usr/bin/env python3
"""crawl_bench_summary.py WORKDIR --out FILE: the table of bench/compare/run_crawl_bench.sh.

Reads WORKDIR/runs/<phase>_<peer>_<run>/ (meta.json, time.json, the crawler's stats.json or
wget2_site.csv, items.jsonl, and nginx's access.log slice for the static phase or the aio server's
server.json and server_log.jsonl for the latency phase) and WORKDIR/perf/*.txt; prints one row
per crawler and phase (medians over the runs, run-to-run spread = (max - min) / median of
pages/s) and the ratios concur / peer; writes every run and the summary as one JSON file.

Definitions (every crawler measured the same way):
  pages       requests the server answered during the run (nginx's access log; the aio server's
              log): robots.txt, pages, 302s and 404s alike
  own         the crawler's own count of requests sent (downloader/request_count; wget2: the rows
              of its --stats-site)
  pages/s     pages / wall time of the crawler's process (its start-up included: Python's imports
              weigh ~0.5-1 s); crawl pages/s uses the crawler's own elapsed_time_seconds instead
  CPU/page    user + sys CPU of the crawler's process / pages (every thread)
  RSS         the crawler's peak resident set (/usr/bin/time's %M)
  server/page nginx's (or the aio server's) CPU / pages
  others      the machine's busy cores during the run minus the crawler's and the server's: load
              from other processes sharing the machine
  calm        the medians of pages/s and CPU/page over the runs with others < 0.25 cores (n)
Latency phase: ceiling = CONCURRENT_REQUESTS / latency pages/s (16 / 0.05 s = 320 pages/s), the
issue's floor (pages x latency / 16) as a rate; "of ceiling" = pages/s / ceiling; "low s" =
seconds of the server's log with fewer than 8 requests in flight on average (a crawl's tail: the
site's 50 list pages form a chain, /list/K links /list/K+1, that a LIFO or FIFO frontier leaves
for last and then walks one page at a time).
Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

CONCURRENCY = 16
CALM_OTHERS = 0.25  # cores used by other processes below which a run counts as calm
ACCESS_LINE = re.compile(r'^(\S+) "(\S+) (\S+) [^"]*" (\d+) (\d+) (\S+) (\d+) "(.*)"$')


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def access_log_summary(path):
    """Requests, statuses and connections in nginx's access log slice of one run."""
    statuses = collections.Counter()
    connections = set()
    agents = collections.Counter()
    n = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = ACCESS_LINE.match(line.rstrip("\n"))
                if not m:
                    continue
                n += 1
                statuses[m.group(4)] += 1
                connections.add(m.group(7))
                agents[m.group(8)] += 1
    except OSError:
        return None
    return {"requests": n, "status": dict(statuses), "connections": len(connections),
            "user_agents": dict(agents)}


def in_flight_series(path):
    """The requests in flight, averaged over each second of the aio server's log (JSON Lines of
    arrival / finish seconds): where a crawler left its CONCURRENT_REQUESTS unused."""
    try:
        with open(path, encoding="utf-8") as f:
            spans = [(r["arrival"], r["finish"]) for r in map(json.loads, f)]
    except (OSError, ValueError, KeyError):
        return None
    if not spans:
        return []
    busy = [0.0] * (int(max(f for _, f in spans)) + 1)
    for a, f in spans:
        for sec in range(int(a), int(f) + 1):
            busy[sec] += max(0.0, min(f, sec + 1) - max(a, sec))
    return [round(b, 2) for b in busy]


def run_record(dirpath):
    meta = load_json(os.path.join(dirpath, "meta.json"))
    timing = load_json(os.path.join(dirpath, "time.json"))
    if meta is None or timing is None:
        return None
    rec = dict(meta)
    rec.update({k: timing[k] for k in ("wall", "user", "sys", "maxrss_kb")})
    stats = load_json(os.path.join(dirpath, "stats.json")) or {}
    rec["stats"] = {k: stats.get(k) for k in (
        "downloader/request_count", "response_received_count", "item_scraped_count",
        "elapsed_time_seconds", "robotstxt/forbidden", "dupefilter/filtered",
        "offsite/filtered", "redirect/count", "finish_reason") if k in stats}
    if rec["peer"] == "wget2":
        rows = count_lines(os.path.join(dirpath, "wget2_site.csv"))
        rec["own_requests"] = rows - 1 if rows else None
        rec["items"] = None
    else:
        rec["own_requests"] = stats.get("downloader/request_count")
        rec["items"] = count_lines(os.path.join(dirpath, "items.jsonl"))
    if rec["phase"] == "static":
        rec["server_log"] = access_log_summary(os.path.join(dirpath, "access.log"))
        rec["pages"] = rec["server_log"]["requests"] if rec["server_log"] else None
    else:
        rec["server_log"] = load_json(os.path.join(dirpath, "server.json"))
        rec["pages"] = rec["server_log"]["requests"] if rec["server_log"] else None
        series = in_flight_series(os.path.join(dirpath, "server_log.jsonl"))
        if rec["server_log"] is not None and series is not None:
            rec["server_log"]["in_flight_per_second"] = series
            rec["server_log"]["low_seconds"] = sum(1 for x in series if x < CONCURRENCY / 2)
    wall = rec["wall"] or float("nan")
    cpu = rec["user"] + rec["sys"]
    pages = rec["pages"] or 0
    hz = rec["clk_tck"]
    rec["cpu_s"] = cpu
    rec["pages_per_s"] = pages / wall if pages else None
    elapsed = rec["stats"].get("elapsed_time_seconds")
    rec["crawl_pages_per_s"] = pages / elapsed if pages and elapsed else None
    rec["cpu_ms_per_page"] = 1000 * cpu / pages if pages else None
    rec["server_cpu_ms_per_page"] = 1000 * rec["server_ticks"] / hz / pages if pages else None
    busy = (rec["machine_ticks"][2] - rec["machine_ticks"][0]) / hz
    rec["other_cores"] = max(0.0, (busy - cpu - rec["server_ticks"] / hz) / wall)
    rec["maxrss_mb"] = rec["maxrss_kb"] / 1024
    return rec


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "n": len(values),
            "spread": (max(values) - min(values)) / med if med else 0.0}


def summarize(records, latency_ms):
    groups = collections.defaultdict(list)
    for r in records:
        groups[(r["phase"], r["peer"])].append(r)
    out = {}
    for (phase, peer), rs in sorted(groups.items()):
        s = {key: spread([r[key] for r in rs]) for key in (
            "pages", "own_requests", "items", "wall", "pages_per_s", "crawl_pages_per_s",
            "cpu_ms_per_page", "maxrss_mb", "server_cpu_ms_per_page", "other_cores")}
        # The runs the machine left alone (others below CALM_OTHERS cores): on a shared machine
        # their medians are the cleaner figures; how many there were says how far to trust them.
        calm = [r for r in rs if r["other_cores"] < CALM_OTHERS]
        s["calm_n"] = len(calm)
        s["calm_pages_per_s"] = spread([r["pages_per_s"] for r in calm])
        s["calm_cpu_ms_per_page"] = spread([r["cpu_ms_per_page"] for r in calm])
        s["exits"] = [r["exit"] for r in rs]
        if phase == "static":
            s["connections"] = spread([(r["server_log"] or {}).get("connections") for r in rs])
        else:
            ceiling = CONCURRENCY / (latency_ms / 1000) if latency_ms else None
            s["ceiling_pages_per_s"] = ceiling
            s["of_ceiling"] = spread([r["pages_per_s"] / ceiling for r in rs
                                      if r["pages_per_s"] and ceiling])
            s["floor_seconds"] = spread([r["pages"] * latency_ms / 1000 / CONCURRENCY
                                         for r in rs if r["pages"]])
            for key in ("max_in_flight", "mean_in_flight", "low_seconds",
                        "fetched_more_than_once", "robots_disallowed_requests", "connections"):
                s[key] = spread([(r["server_log"] or {}).get(key) for r in rs])
        out[f"{phase}/{peer}"] = s
    return out


def ratios(summary):
    """concur / peer on medians: pages/s (above 1: concur faster) and CPU/page (below 1: concur
    uses less)."""
    out = {}
    for phase in ("static", "latency"):
        for mine in ("concur-lib", "concur-cli", "concur-links"):
            a = summary.get(f"{phase}/{mine}")
            if not a:
                continue
            for peer in ("scrapy", "asyncio", "wget2"):
                b = summary.get(f"{phase}/{peer}")
                if not b:
                    continue
                entry = {}
                for key in ("pages_per_s", "crawl_pages_per_s", "cpu_ms_per_page", "maxrss_mb",
                            "calm_pages_per_s", "calm_cpu_ms_per_page"):
                    if a[key] and b[key] and b[key]["median"]:
                        entry[key] = a[key]["median"] / b[key]["median"]
                out[f"{phase}/{mine}÷{peer}"] = entry
    return out


def command_output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine(root):
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for name in ("scrapy", "aiohttp", "parsel", "lxml", "twisted"):
        versions[name] = command_output(
            [sys.executable, "-c", f"import {name}; print({name}.__version__)"])
    versions["wget2"] = (command_output(["wget2", "--version"]) or "").split("\n")[0]
    versions["nginx"] = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True,
                                       text=True).stderr.strip()
    versions["curl"] = (command_output(["curl", "--version"]) or "").split("\n")[0]
    return {"cpu": model, "ncpu": os.cpu_count(), "kernel": platform.release(),
            "python": sys.version.split()[0], "versions": versions,
            "commit": command_output(["git", "-C", root, "rev-parse", "--short", "HEAD"]),
            "dirty": bool(command_output(["git", "-C", root, "status", "--porcelain",
                                          "--untracked-files=no"]))}


def fmt(s, digits=0):
    return f"{s['median']:.{digits}f}" if s else "-"


def fmt_spread(s):
    return f"{100 * s['spread']:.0f}%" if s else "-"


def print_table(summary, ratio):
    print()
    print("static (nginx): medians; spread = (max - min) / median of pages/s")
    head = (f"{'crawler':11s} {'pages':>6s} {'own':>6s} {'items':>6s} {'wall s':>7s} "
            f"{'pages/s':>8s} {'spread':>6s} {'crawl/s':>8s} {'CPU ms/pg':>9s} {'RSS MB':>7s} "
            f"{'srv ms/pg':>9s} {'conns':>6s} {'others':>6s} {'calm pg/s':>9s} {'calm CPU':>8s}")
    print(head)
    for key, s in summary.items():
        phase, peer = key.split("/", 1)
        if phase != "static":
            continue
        print(f"{peer:11s} {fmt(s['pages']):>6s} {fmt(s['own_requests']):>6s} "
              f"{fmt(s['items']):>6s} {fmt(s['wall'], 2):>7s} {fmt(s['pages_per_s']):>8s} "
              f"{fmt_spread(s['pages_per_s']):>6s} "
              f"{fmt(s['crawl_pages_per_s']):>8s} {fmt(s['cpu_ms_per_page'], 3):>9s} "
              f"{fmt(s['maxrss_mb'], 1):>7s} {fmt(s['server_cpu_ms_per_page'], 3):>9s} "
              f"{fmt(s['connections']):>6s} {fmt(s['other_cores'], 2):>6s} "
              f"{fmt(s['calm_pages_per_s']) + ' (' + str(s['calm_n']) + ')':>9s} "
              f"{fmt(s['calm_cpu_ms_per_page'], 3):>8s}")
    lat = {k: v for k, v in summary.items() if k.startswith("latency/")}
    if lat:
        ceiling = next(iter(lat.values()))["ceiling_pages_per_s"]
        print()
        print(f"latency: ceiling {ceiling:.0f} pages/s (16 in flight); floor = pages x latency"
              " / 16")
        print(f"{'crawler':11s} {'pages':>6s} {'wall s':>7s} {'floor s':>7s} {'pages/s':>8s} "
              f"{'spread':>6s} {'of ceil':>7s} {'CPU ms/pg':>9s} {'RSS MB':>7s} {'max inf':>7s} "
              f"{'mean inf':>8s} {'low s':>5s} {'twice':>5s} {'robots':>6s}")
        for key, s in lat.items():
            peer = key.split("/", 1)[1]
            print(f"{peer:11s} {fmt(s['pages']):>6s} {fmt(s['wall'], 2):>7s} "
                  f"{fmt(s['floor_seconds'], 2):>7s} {fmt(s['pages_per_s']):>8s} "
                  f"{fmt_spread(s['pages_per_s']):>6s} "
                  f"{fmt(s['of_ceiling'], 2):>7s} {fmt(s['cpu_ms_per_page'], 3):>9s} "
                  f"{fmt(s['maxrss_mb'], 1):>7s} {fmt(s['max_in_flight']):>7s} "
                  f"{fmt(s['mean_in_flight'], 1):>8s} {fmt(s['low_seconds']):>5s} "
                  f"{fmt(s['fetched_more_than_once']):>5s} "
                  f"{fmt(s['robots_disallowed_requests']):>6s}")
    if ratio:
        print()
        print("ratios concur / peer (medians): pages/s (>1 faster), crawl pages/s, "
              "CPU/page (<1 less), RSS")
        for key, r in ratio.items():
            cells = " ".join(f"{k}={v:.2f}" for k, v in r.items())
            print(f"  {key:28s} {cells}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--posts", type=int)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--runs", type=int)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    records = [r for r in (run_record(d) for d in sorted(glob.glob(
        os.path.join(args.workdir, "runs", "*")))) if r]
    records.sort(key=lambda r: (r["phase"] != "static", r["run"], r["position"]))
    summary = summarize(records, args.latency_ms)
    ratio = ratios(summary)
    perf = {}
    for name in ("top_self", "top_children", "top_dso", "breakdown"):
        path = os.path.join(args.workdir, "perf", name + ".txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                perf[name] = [line.rstrip() for line in f]
    result = {
        "benchmark": "crawl (issue 14): static site on nginx, and 50 ms latency on the aio site",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(root),
        "config": {"posts": args.posts, "runs": args.runs, "latency_ms": args.latency_ms,
                   "concurrent_requests": CONCURRENCY, "per_domain": CONCURRENCY},
        "summary": summary, "ratios": ratio, "perf": perf, "runs": records,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print_table(summary, ratio)
    if perf.get("top_self"):
        print()
        print("perf (concur-lib, static, self time):")
        for line in perf["top_self"][:15]:
            print("  " + line.strip())
    if perf.get("breakdown"):
        print()
        print("perf breakdown (bench/compare/crawl_perf_breakdown.py):")
        for line in perf["breakdown"]:
            print("  " + line)
    print()
    print(f"raw results: {args.out}")


if __name__ == "__main__":
    main()
