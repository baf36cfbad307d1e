#!/usr/bin/env bash
# run_dist_crawl_bench.sh: the distributed crawl of issue 16 ("Benchmarks": pages/s with 1, 2, 3
# crawler processes against the 50 ms test site). Builds nothing; loopback only; every wait is
# bounded.
#
# A private redis-server (free 127.0.0.1 port, no persistence) and, for each crawl, a fresh
# crawl_site_tool serve (tests/support/crawl_site.hpp's blog, every answer LATENCY ms late, its
# request log summarized at the end). Each crawl is N `concur crawl URL --redis URL` processes
# started together under a crawl name of their own, CONCURRENT_REQUESTS 16 each:
#   polite   CONCURRENT_REQUESTS_PER_DOMAIN 16 — the cluster's limit for the one host: N crawlers
#            must stay within 16 in flight (the server's max_in_flight), so pages/s cannot grow
#            past 16 / latency whatever N is;
#   scaling  CONCURRENT_REQUESTS_PER_DOMAIN 48 — the host allows 48: each crawler's own 16 is
#            the bound, so pages/s should grow with N (up to 48 / latency, or the CPUs);
#   local    one plain `concur crawl` (no Redis), per domain 16: the price of sharing.
# RUNS rounds, the order of the crawls rotated each round. Per crawl: the server's requests,
# max_in_flight, pages fetched more than once, its span (first arrival -> last answer), the wall
# time of the processes, and (shared crawls) the Redis memory of the dupefilter per URL
# (MEMORY USAGE of the seen set / SCARD).
# Then a table (medians over the runs, min-max spread) and the raw rows as JSON Lines (--out,
# default bench/results/<UTC date>_dist_crawl_bench.jsonl).
#
# Usage: bench/compare/dist/run_dist_crawl_bench.sh [BUILD_DIR] [--runs 3] [--posts 2000]
#          [--latency-ms 50] [--crawlers "1 2 3"] [--out FILE]
#   BUILD_DIR defaults to build/release; it needs apps/concur/concur and bench/crawl_site_tool:
#     cmake --preset release -DCONCUR_BUILD_BENCH=ON && cmake --build build/release \
#       --target concur_cli crawl_site_tool
set -euo pipefail

die() {
  echo "run_dist_crawl_bench.sh: $*" >&2
  exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=$root/build/release
runs=3 posts=2000 latency_ms=50 crawlers="1 2 3" out=""
if [[ $# -gt 0 && $1 != --* ]]; then
  build=$1
  shift
fi
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --posts) posts=$2; shift 2 ;;
    --latency-ms) latency_ms=$2; shift 2 ;;
    --crawlers) crawlers=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in "$runs" "$posts" "$latency_ms"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "--runs, --posts and --latency-ms want N >= 1 (got $v)"
done
for n in $crawlers; do [[ $n =~ ^[1-9]$ ]] || die "--crawlers wants counts 1..9 (got $n)"; done
build=$(cd "$build" && pwd) || die "no build directory $build"
cli=$build/apps/concur/concur
tool=$build/bench/crawl_site_tool
for b in "$cli" "$tool" /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/python3; do
  [[ -x $b ]] || die "$b is missing (see the header for the build; scripts/setup.sh installs the rest)"
done
[[ -n $out ]] || out=$root/bench/results/$(date -u +%Y-%m-%d_%H%M)_dist_crawl_bench.jsonl
[[ -e $out ]] && die "$out exists; choose another --out (results are never overwritten)"
mkdir -p "$(dirname "$out")"

work=$(mktemp -d /tmp/concur-dist-crawl-bench-XXXXXX)
redis_pid="" site_pid=""
cleanup() {
  [[ -n $site_pid ]] && { kill -TERM "$site_pid" 2> /dev/null || true; wait "$site_pid" 2> /dev/null || true; }
  [[ -n $redis_pid ]] && { kill -TERM "$redis_pid" 2> /dev/null || true; wait "$redis_pid" 2> /dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for FILE: up to 20 s for FILE to appear.
wait_for() {
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $1 ]] && return 0
    sleep 0.1
  done
  die "timed out waiting for $1"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --logfile "$work/redis.log" &
redis_pid=$!
for ((i = 0; i < 100; i++)); do
  redis-cli -p "$port" ping > /dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" ping > /dev/null || die "redis-server did not start (see $work/redis.log)"
redis_url=redis://127.0.0.1:$port/0

# crawl MODE N RUN: one crawl; appends its row to $out.
crawl() {
  local mode=$1 n=$2 run=$3 per_domain=16 name="bench-$1-$2-$3" i
  [[ $mode == scaling ]] && per_domain=48
  rm -f "$work/site.port"
  "$tool" serve --posts "$posts" --latency-ms "$latency_ms" --port-file "$work/site.port" \
    > "$work/site.json" &
  site_pid=$!
  wait_for "$work/site.port"
  local url="http://127.0.0.1:$(cat "$work/site.port")/"
  local args=(crawl "$url" --no-progress -s CONCURRENT_REQUESTS=16
    -s "CONCURRENT_REQUESTS_PER_DOMAIN=$per_domain" -s LOG_LEVEL=WARNING -s LOGSTATS_INTERVAL=0)
  [[ $mode != local ]] && args+=(--redis "$redis_url" --redis-name "$name")
  local pids=() start end
  start=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    timeout 600 "$cli" "${args[@]}" --stats-json "$work/stats-$i.json" 2> "$work/crawler-$i.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "a crawler failed (see $work/crawler-*.log)"; done
  end=$(date +%s.%N)
  kill -TERM "$site_pid"
  wait "$site_pid" || true
  site_pid=""
  local seen_bytes=0 seen_count=0
  if [[ $mode != local ]]; then
    seen_bytes=$(redis-cli -p "$port" memory usage "concur:crawl:$name:seen" samples 0)
    seen_count=$(redis-cli -p "$port" scard "concur:crawl:$name:seen")
  fi
  python3 - "$work" "$mode" "$n" "$run" "$start" "$end" "$seen_bytes" "$seen_count" >> "$out" << 'EOF'
import json, sys
work, mode, n, run, start, end, seen_bytes, seen_count = sys.argv[1:]
site = json.load(open(f"{work}/site.json"))
pages = [json.load(open(f"{work}/stats-{i}.json")).get("response_received_count", 0)
         for i in range(int(n))]
print(json.dumps({
    "mode": mode, "crawlers": int(n), "run": int(run),
    "wall_seconds": float(end) - float(start),
    "requests": site["requests"], "span_seconds": site["span_seconds"],
    "pages_per_second": site["requests"] / site["span_seconds"] if site["span_seconds"] else 0,
    "max_in_flight": site["max_in_flight"], "mean_in_flight": site["mean_in_flight"],
    "fetched_more_than_once": site["fetched_more_than_once"],
    "pages_by_crawler": pages,
    "seen_bytes": int(seen_bytes or 0), "seen_count": int(seen_count or 0),
}))
EOF
  tail -n 1 "$out" >&2
}

plan=(local)
for n in $crawlers; do plan+=("polite:$n" "scaling:$n"); done
for ((r = 1; r <= runs; r++)); do
  k=$(((r - 1) % ${#plan[@]}))
  for ((j = 0; j < ${#plan[@]}; j++)); do
    item=${plan[$(((k + j) % ${#plan[@]}))]}
    if [[ $item == local ]]; then crawl local 1 "$r"; else crawl "${item%%:*}" "${item##*:}" "$r"; fi
  done
done

python3 - "$out" "$latency_ms" << 'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
latency = float(sys.argv[2]) / 1000
groups = {}
for r in rows:
    groups.setdefault((r["mode"], r["crawlers"]), []).append(r)
base = statistics.median(r["pages_per_second"] for r in groups[("local", 1)])
print(f"{'mode':8} {'N':>2} {'pages':>6} {'pages/s med':>11} {'min-max':>13} {'x local':>7} "
      f"{'max in flight':>13} {'twice':>5} {'B/URL seen':>10}")
for (mode, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "local", kv[0])):
    pps = [r["pages_per_second"] for r in rs]
    per_url = [r["seen_bytes"] / r["seen_count"] for r in rs if r["seen_count"]]
    print(f"{mode:8} {n:>2} {statistics.median(r['requests'] for r in rs):>6.0f} "
          f"{statistics.median(pps):>11.1f} {min(pps):>6.1f}-{max(pps):<6.1f} "
          f"{statistics.median(pps) / base:>7.2f} {max(r['max_in_flight'] for r in rs):>13} "
          f"{max(r['fetched_more_than_once'] for r in rs):>5} "
          f"{(statistics.median(per_url) if per_url else 0):>10.1f}")
print(f"ceilings: 16 in flight / {latency * 1000:.0f} ms = {16 / latency:.0f} pages/s; "
      f"48 in flight = {48 / latency:.0f} pages/s")
EOF
echo "raw rows: $out" >&2
