#!/usr/bin/env python3
"""queue_runs.py RUN.json [RUN.json ...]: queue_bench runs side by side (issue 13 protocol).

Each RUN.json is one `queue_bench --benchmark_repetitions=N --benchmark_format=json` run. Prints,
per case, the median items/s of each run with that run's min-max over its repetitions, the
run-to-run spread of the medians (max / min), then the issue-13 target ratios per run, each
computed from medians of the same run, and the worst of them. With --json, writes it all as one
object instead.
"""
import collections
import json
import statistics
import sys

TARGETS = [  # (label, config, concur case, peer case, required ratio)
    ("SimpleQueue >= moodycamel", "1P1C", "concur_SimpleQueue", "moodycamel_Blocking", 1.0),
    ("SimpleQueue >= moodycamel", "2P2C", "concur_SimpleQueue", "moodycamel_Blocking", 1.0),
    ("Queue() >= moodycamel", "1P1C", "concur_Queue", "moodycamel_Blocking", 1.0),
    ("Queue() >= moodycamel", "2P2C", "concur_Queue", "moodycamel_Blocking", 1.0),
    ("Queue(1024) >= 3x std(1024)", "2P2C", "concur_Queue_1024", "std_mutex_cv_deque_1024", 3.0),
    ("Queue(1024) >= tbb bounded(1024)", "1P1C", "concur_Queue_1024", "tbb_bounded_1024", 1.0),
    ("Queue(1024) >= tbb bounded(1024)", "2P2C", "concur_Queue_1024", "tbb_bounded_1024", 1.0),
]


def load(path):
    reps = collections.defaultdict(list)
    extra = collections.defaultdict(lambda: collections.defaultdict(list))
    for b in json.load(open(path))["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name = b["run_name"].replace("/iterations:1/real_time", "").replace("BM_Queue_", "")
        reps[name].append(b["items_per_second"] / 1e6)
        for c in ("cpu_per_item", "csw_per_kitem"):
            extra[name][c].append(b[c])
    return reps, extra


def main() -> int:
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = [load(p) for p in paths]
    cases = sorted(set().union(*(r[0].keys() for r in runs)))
    table = {}
    for c in cases:
        rows = []
        for reps, extra in runs:
            x = reps.get(c, [])
            if not x:
                rows.append(None)
                continue
            rows.append({
                "n": len(x), "median": statistics.median(x), "min": min(x), "max": max(x),
                "cpu_per_item": statistics.median(extra[c]["cpu_per_item"]),
                "csw_per_kitem": statistics.median(extra[c]["csw_per_kitem"]),
            })
        meds = [r["median"] for r in rows if r]
        table[c] = {"runs": rows, "run_spread": max(meds) / min(meds) if meds else None}
    targets = []
    for label, cfg, mine, peer, need in TARGETS:
        a, b = f"{cfg}/{mine}", f"{cfg}/{peer}"
        if a not in table or b not in table:
            continue
        ratios = [ra["median"] / rb["median"] if ra and rb else None
                  for ra, rb in zip(table[a]["runs"], table[b]["runs"])]
        valid = [r for r in ratios if r is not None]
        targets.append({"target": label, "config": cfg, "need": need, "ratios": ratios,
                        "worst": min(valid), "met_every_run": all(r >= need for r in valid)})
    if "--json" in sys.argv:
        json.dump({"runs": paths, "cases": table, "targets": targets}, sys.stdout, indent=1)
        print()
        return 0
    print(f"{len(paths)} runs: " + ", ".join(paths))
    for c, t in table.items():
        cells = "  ".join(f"{r['median']:7.2f} [{r['min']:6.2f}-{r['max']:6.2f}]" if r else "      -"
                          for r in t["runs"])
        cpu = "/".join(f"{r['cpu_per_item']:.0f}" for r in t["runs"] if r)
        print(f"{c:<36} {cells}   spread {t['run_spread']:.2f}  cpu/item {cpu}")
    for t in targets:
        rs = " ".join(f"{r:.2f}" if r is not None else "-" for r in t["ratios"])
        print(f"{t['target']:<34} {t['config']}  ratios {rs}  worst {t['worst']:.2f}  "
              f"{'MET' if t['met_every_run'] else 'not met'} (need {t['need']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
