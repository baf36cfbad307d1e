#!/usr/bin/env python3
"""aio_summary.py PREFIX: the summary table of bench/compare/run_aio_bench.sh.

Reads PREFIX_aio_bench.json (Google Benchmark, every repetition), PREFIX_asio_timer_bench.json,
PREFIX_python_aio_bench.json, PREFIX_echo_runs.jsonl and PREFIX_context.json; prints one row per
case: each library's median with its run-to-run range [min–max] and spread ((max − min) / median),
the ratios concur ÷ asyncio and concur ÷ Asio, and the issue's target where there is one. Rates
are higher-is-better; overhead (ms) and bytes are lower-is-better, and their ratios are read the
same way (concur ÷ peer: below 1 means concur uses less). Writes PREFIX_summary.json as well.
Standard library only.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys


def stats(values: list[float]) -> dict | None:
    if not values:
        return None
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "n": len(values),
            "spread": (max(values) - min(values)) / med if med else 0.0, "runs": values}


def load_cpp(path: str) -> tuple[dict[str, dict[str, list[float]]], dict]:
    """(run_name → field → the repetitions' values (items_per_second and every counter),
    the run's context)."""
    out: dict[str, dict[str, list[float]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    for b in doc["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name = b["run_name"].replace("/iterations:1", "").replace("/real_time", "")
        for k, v in b.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in (
                    "family_index", "per_family_instance_index", "repetitions",
                    "repetition_index", "threads", "iterations"):
                out[name][k].append(float(v))
    return out, doc.get("context", {})


def load_python(path: str) -> dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    out = {}
    for b in doc["benchmarks"]:
        out[b["name"]] = b
    return out


def py_case(py: dict[str, dict], prefix: str) -> dict | None:
    for name, b in py.items():
        if name == prefix or (prefix.endswith("_") and name.startswith(prefix)):
            return stats([float(x) for x in b["runs"]])
    return None


def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "—"
    if unit == "/s":
        if x >= 1e6:
            return f"{x / 1e6:.3g} M/s"
        if x >= 1e3:
            return f"{x / 1e3:.3g} k/s"
        return f"{x:.3g} /s"
    if unit == "ms":
        return f"{x:.3g} ms"
    if unit == "B":
        return f"{x:.0f} B"
    return f"{x:.3g}"


def cell(s: dict | None, unit: str) -> str:
    if s is None:
        return "—"
    return (f"{fmt(s['median'], unit)} [{fmt(s['min'], unit)}–{fmt(s['max'], unit)}] "
            f"±{100 * s['spread'] / 2:.0f}%")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    prefix = sys.argv[1]
    cpp, cpp_context = load_cpp(prefix + "_aio_bench.json")

    def count(key: str, default: str) -> str:
        n = int(cpp_context.get(key, default))
        return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else (
            f"{n // 1000}k" if n % 1000 == 0 else str(n))
    py = load_python(prefix + "_python_aio_bench.json")
    with open(prefix + "_asio_timer_bench.json", encoding="utf-8") as f:
        asio_timer = json.load(f)
    echo: dict[str, list[float]] = collections.defaultdict(list)
    echo_path = prefix + "_echo_runs.jsonl"
    if os.path.exists(echo_path):
        with open(echo_path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    echo[rec["server"]].append(float(rec["result"]["rt_per_s"]))
    context = {}
    if os.path.exists(prefix + "_context.json"):
        with open(prefix + "_context.json", encoding="utf-8") as f:
            context = json.load(f)

    def c(name: str, field: str = "items_per_second") -> dict | None:
        return stats(cpp.get(name, {}).get(field, []))

    # (case, unit, concur, {asio peers}, asyncio, target description, target check)
    rows = [
        ("create_task + await (tasks/s)", "/s", c("BM_CreateTaskAwait/concur"),
         {"asio co_spawn+use_awaitable": c("BM_CreateTaskAwait/asio")},
         py_case(py, "create_task_await"), ">= 50x asyncio", ("py", 50.0, "ge")),
        ("await of a coroutine, no task (/s)", "/s", c("BM_AwaitInline/concur"),
         {"asio co_await awaitable": c("BM_AwaitInline/asio")}, None, "", None),
        (f"gather {count('gather_tasks', '100000')} trivial tasks (tasks/s)", "/s", c("BM_Gather/concur"),
         {"asio co_spawn+counter": c("BM_Gather/asio_counter"),
          "asio parallel_group": c("BM_Gather/asio_parallel_group")},
         py_case(py, "gather_"), ">= 50x asyncio", ("py", 50.0, "ge")),
        (f"{count('timers', '10000')} x sleep(100ms): overhead (ms)", "ms", c("BM_Timers/concur", "overhead_ms"),
         {"asio steady_timer callbacks": c("BM_Timers/asio_callback", "overhead_ms"),
          "asio co_spawn+timer": c("BM_Timers/asio_coro", "overhead_ms"),
          "asio_timer_bench (separate binary)": stats(
              [float(x) for x in asio_timer["overhead_ms"]["runs"]])},
         py_case(py, "timers_"), "<= Asio callbacks", ("asio", 1.0, "le")),
        (f"bytes per suspended task ({count('sleepers', '1000000')})", "B", c("BM_SleepingTaskBytes/concur", "bytes_per_task"),
         {"asio co_spawn+steady_timer": c("BM_SleepingTaskBytes/asio", "bytes_per_task")},
         py_case(py, "sleeping_task_bytes"), "<= 1/4 asyncio", ("py", 0.25, "le")),
        ("queue 1P/1C maxsize=0 (items/s)", "/s", c("BM_QueuePC/concur/maxsize:0"),
         {"asio channel (cap = items)": c("BM_QueuePC/asio/maxsize:0")},
         py_case(py, "queue_pc/maxsize=0"), "", None),
        ("queue 1P/1C maxsize=100 (items/s)", "/s", c("BM_QueuePC/concur/maxsize:100"),
         {"asio channel (cap 100)": c("BM_QueuePC/asio/maxsize:100")},
         py_case(py, "queue_pc/maxsize=100"), "", None),
        ("Lock acquire+release (ops/s)", "/s", c("BM_LockAcquireRelease/concur"), {},
         py_case(py, "lock_acquire_release"), "", None),
        ("Semaphore(10) acquire+release (ops/s)", "/s", c("BM_SemaphoreAcquireRelease/concur"),
         {}, py_case(py, "semaphore_acquire_release"), "", None),
    ]
    if echo:
        rows.append(("echo, 50 conns x 64 B (round trips/s)", "/s", stats(echo.get("concur", [])),
                     {"asio_echo_server": stats(echo.get("asio", []))},
                     stats(echo.get("python", [])), ">= 1.0x raw Asio", ("asio", 1.0, "ge")))

    print()
    if context:
        print(f"machine: nproc {context.get('nproc')}, CPU {context.get('cpu_model')}, "
              f"{context.get('kernel')}; {context.get('compiler')}; {context.get('python')}; "
              f"git {context.get('git_head')}{' (dirty)' if context.get('git_dirty') else ''}")
        print(f"load (1-min) before each step: {context.get('load_before')}")
    if os.path.exists(prefix + "_load.log"):
        loads, busy = [], collections.Counter()
        with open(prefix + "_load.log", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] == "load":
                    loads.append(float(parts[2]))
                    tail = line.split("others:", 1)[1].split() if "others:" in line else []
                    for p in tail:
                        if p != "none":
                            busy[p.split(":")[0]] += 1
        if loads:
            print(f"load (1-min) during the session: min {min(loads):.2f}, median "
                  f"{statistics.median(loads):.2f}, max {max(loads):.2f} ({len(loads)} samples); "
                  f"other processes > 10% CPU: "
                  f"{dict(busy.most_common(6)) if busy else 'none seen'}")
    print("cells: median [min–max] ±half-range%; ratios are of medians, concur ÷ peer\n")
    summary = []
    for name, unit, concur, asio_peers, asyncio_s, target, check in rows:
        print(f"## {name}")
        print(f"   concur   {cell(concur, unit)}")
        ratios = {}
        for peer, s in asio_peers.items():
            r = concur["median"] / s["median"] if concur and s and s["median"] else None
            ratios[peer] = r
            print(f"   {peer:<36} {cell(s, unit)}   concur/asio = "
                  f"{'—' if r is None else f'{r:.3g}'}")
        r_py = concur["median"] / asyncio_s["median"] if concur and asyncio_s else None
        print(f"   {'asyncio (Python 3.11)':<36} {cell(asyncio_s, unit)}   concur/asyncio = "
              f"{'—' if r_py is None else f'{r_py:.3g}'}")
        met = None
        if check is not None and concur is not None:
            which, bound, how = check
            ref = r_py if which == "py" else next(iter(ratios.values()), None)
            if ref is not None:
                met = ref >= bound if how == "ge" else ref <= bound
        if target:
            print(f"   target {target}: {'—' if met is None else ('MET' if met else 'MISSED')}")
        print()
        summary.append({"case": name, "unit": unit, "concur": concur, "asio": asio_peers,
                        "asyncio": asyncio_s, "ratio_concur_asyncio": r_py,
                        "ratio_concur_asio": ratios, "target": target, "met": met})
    with open(prefix + "_summary.json", "w", encoding="utf-8") as f:
        json.dump({"context": context, "rows": summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
