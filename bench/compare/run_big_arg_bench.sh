#!/bin/bash
# run_big_arg_bench.sh [--runs N] [--bytes B] [--base BIN] [--prefix PATH]: the parent's peak RSS
# (VmHWM) for one process-pool round trip of a B-byte argument whose result is as large (issue 13),
# concur beside Python 3.11's ProcessPoolExecutor, N runs each, interleaved, every run in a fresh
# process. concur: build/release/bench/process_pool_bench --big-arg-child=B:M, M = 0 the result
# moved out of its future (a move-only type: one result object, as Python's f.result()), M = 1 a
# std::string taken with f.result() (a copy), M = 2 a std::string taken with std::move(f).result()
# (moved out of the only handle). --base BIN adds the same runs of another build of
# process_pool_bench (the code before a change). Python: /usr/bin/python3 (Debian's 3.11)
# bench/compare/python_process_pool_bench.py --big-arg-child B. Writes PREFIX_runs.txt (one line
# per run) and PREFIX_summary.json (medians, min, max, spread = (max - min) / median, ratio to
# argument + result and to Python); prints the summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=5; bytes=200000000; base=""; prefix=/tmp/big_arg
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=build/release/bench/process_pool_bench
py=/usr/bin/python3
out=${prefix}_runs.txt
: > "$out"
for r in $(seq "$runs"); do
  for m in 0 1 2; do
    echo "concur mode$m $r $($bin --big-arg-child=$bytes:$m) load $(cut -d' ' -f1 /proc/loadavg)" >> "$out"
    if [ -n "$base" ]; then
      echo "base mode$m $r $($base --big-arg-child=$bytes:$m) load $(cut -d' ' -f1 /proc/loadavg)" >> "$out"
    fi
  done
  row=$($py bench/compare/python_process_pool_bench.py --big-arg-child "$bytes")
  echo "python - $r $($py -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["bytes"], 0, d["rss_before_kib"], d["hwm_kib"], "%.6f" % d["seconds"], int(d["ok"]))' "$row") load $(cut -d' ' -f1 /proc/loadavg)" >> "$out"
done
$py - "$out" "$bytes" "$($py --version 2>&1)" > "${prefix}_summary.json" <<'PY'
import json, statistics, sys
path, n, pyver = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
for line in open(path):
    f = line.split()
    # who mode run bytes mode before_kib hwm_kib seconds ok load L
    if f[8] != "1":
        sys.exit(f"a run's result differed from its argument: {line}")
    rows.setdefault(f"{f[0]}/{f[1]}", []).append((int(f[5]), int(f[6]), float(f[7]), float(f[10])))
out = {"bytes": n, "python": pyver, "cases": {}}
for k, v in rows.items():
    hwm = [h * 1024 / 1e6 for _, h, _, _ in v]
    med = statistics.median(hwm)
    out["cases"][k] = {"hwm_mb_median": round(med, 2), "hwm_mb_min": round(min(hwm), 2),
                       "hwm_mb_max": round(max(hwm), 2),
                       "spread": round((max(hwm) - min(hwm)) / med, 6),
                       "ratio_to_arg_plus_result": round(med * 1e6 / (2 * n), 4),
                       "rss_before_mb_median": round(statistics.median(b * 1024 / 1e6 for b, _, _, _ in v), 2),
                       "round_trip_s_median": round(statistics.median(s for _, _, s, _ in v), 3),
                       "round_trip_s_min": round(min(s for _, _, s, _ in v), 3),
                       "round_trip_s_max": round(max(s for _, _, s, _ in v), 3),
                       "load_min_max": [min(l for *_, l in v), max(l for *_, l in v)],
                       "runs": len(v)}
py = out["cases"].get("python/-")
if py:
    for k, c in out["cases"].items():
        c["ratio_to_python"] = round(c["hwm_mb_median"] / py["hwm_mb_median"], 4)
json.dump(out, sys.stdout, indent=2)
print()
PY
cat "${prefix}_summary.json"
