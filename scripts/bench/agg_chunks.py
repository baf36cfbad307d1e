#!/usr/bin/env python3
"""agg_chunks.py DIR: median, q1, q3 of every benchmark over DIR/chunk*.json (chunks.sh output).

Prints items_per_second in M/s (and p50_us / p90_us medians when a case reports them);
with --json, writes one object per case instead.
"""
import collections
import glob
import json
import statistics
import sys


def main() -> int:
    d = sys.argv[1]
    rates = collections.defaultdict(list)
    extra = collections.defaultdict(lambda: collections.defaultdict(list))
    for f in sorted(glob.glob(d + "/chunk*.json")):
        for b in json.load(open(f))["benchmarks"]:
            if b.get("run_type") != "iteration":
                continue
            k = b["run_name"].replace("/iterations:1/real_time", "")
            rates[k].append(b["items_per_second"] / 1e6)
            for c in ("p50_us", "p90_us", "cpu_per_item", "csw_per_kitem"):
                if c in b:
                    extra[k][c].append(b[c])
    out = {}
    for k in sorted(rates):
        x = sorted(rates[k])
        q = statistics.quantiles(x, n=4) if len(x) > 2 else [x[0], x[0], x[-1]]
        row = {"n": len(x), "median_M_per_s": statistics.median(x), "q1": q[0], "q3": q[2]}
        for c, v in extra[k].items():
            row[c] = statistics.median(v)
        out[k] = row
    if "--json" in sys.argv:
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    for k, r in out.items():
        more = "  ".join(f"{c} {r[c]:.3g}" for c in ("p50_us", "p90_us", "cpu_per_item", "csw_per_kitem") if c in r)
        print(f"{k:<48} n={r['n']:>2} median {r['median_M_per_s']:9.3f} M/s [q1 {r['q1']:9.3f} q3 {r['q3']:9.3f}]  {more}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
