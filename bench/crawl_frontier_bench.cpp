// crawl_frontier_bench: the disk-backed frontier (include/concur/crawl/frontier.hpp) in operations
// per second — DiskQueue pushes and pops of 1,000,000 100-byte blobs (one priority, and four
// mixed priorities), a steady crawl-like mix (a queue of 100,000 with a pop per push), SeenSet
// inserts of 1,000,000 random SHA-1 hex fingerprints (new, then again as duplicates) — beside the
// in-memory std baselines (std::priority_queue, std::unordered_set), which hold everything in RAM.
// Files go to $TMPDIR (default /tmp); the disk's write speed and fsync latency are part of the
// figures.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <queue>
#include <random>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "concur/crawl/frontier.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using concur::crawl::DiskQueue;
using concur::crawl::SeenSet;

constexpr std::int64_t kCount = 1'000'000;
constexpr std::size_t kBlobBytes = 100;

using concur::testing::TempDir;

// blob(i): a 100-byte blob starting with i.
std::string blob(std::int64_t i) {
  std::string s(kBlobBytes, 'x');
  std::memcpy(s.data(), &i, sizeof i);
  return s;
}

// priority(i, mixed): 0, or one of four priorities (-2..1) for the mixed runs.
int priority(std::int64_t i, bool mixed) { return mixed ? static_cast<int>(i % 4) - 2 : 0; }

// fingerprints(n): n random 40-hex strings (SHA-1 hexdigests' shape).
std::vector<std::string> fingerprints(std::int64_t n) {
  std::mt19937_64 rng(42);
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(n));
  char buf[48];
  for (std::int64_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%016llx%016llx%08llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng() & 0xffffffffu));
    out.emplace_back(buf);
  }
  return out;
}

void BM_DiskQueuePush(benchmark::State& state) {
  const bool mixed = state.range(0) != 0;
  for (auto _ : state) {
    TempDir dir;
    DiskQueue q(dir / "requests.sqlite");
    for (std::int64_t i = 0; i < kCount; ++i) q.push(blob(i), priority(i, mixed));
    q.flush();
  }
  state.SetItemsProcessed(state.iterations() * kCount);
}
BENCHMARK(BM_DiskQueuePush)
    ->ArgName("mixed")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_DiskQueuePop(benchmark::State& state) {
  const bool mixed = state.range(0) != 0;
  for (auto _ : state) {
    state.PauseTiming();
    TempDir dir;
    DiskQueue q(dir / "requests.sqlite");
    for (std::int64_t i = 0; i < kCount; ++i) q.push(blob(i), priority(i, mixed));
    q.flush();
    state.ResumeTiming();
    while (auto b = q.pop()) benchmark::DoNotOptimize(b);
    q.flush();
  }
  state.SetItemsProcessed(state.iterations() * kCount);
}
BENCHMARK(BM_DiskQueuePop)
    ->ArgName("mixed")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A crawl's steady state: 100,000 queued, then a pop and a push (of a mixed priority) per step.
void BM_DiskQueueSteadyPushPop(benchmark::State& state) {
  constexpr std::int64_t kQueued = 100'000;
  for (auto _ : state) {
    state.PauseTiming();
    TempDir dir;
    DiskQueue q(dir / "requests.sqlite");
    for (std::int64_t i = 0; i < kQueued; ++i) q.push(blob(i), priority(i, true));
    q.flush();
    state.ResumeTiming();
    for (std::int64_t i = kQueued; i < kQueued + kCount; ++i) {
      benchmark::DoNotOptimize(q.pop());
      q.push(blob(i), priority(i, true));
    }
    q.flush();
  }
  state.SetItemsProcessed(state.iterations() * kCount * 2);
}
BENCHMARK(BM_DiskQueueSteadyPushPop)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// Baseline: everything in memory (the 1M blobs cost ~130 MB here).
void BM_StdPriorityQueuePushPop(benchmark::State& state) {
  const bool mixed = state.range(0) != 0;
  using Entry = std::tuple<int, std::int64_t, std::string>;  // (priority, -seq, blob)
  for (auto _ : state) {
    std::priority_queue<Entry> q;
    for (std::int64_t i = 0; i < kCount; ++i) q.emplace(priority(i, mixed), -i, blob(i));
    while (!q.empty()) {
      benchmark::DoNotOptimize(std::get<2>(q.top()));
      q.pop();
    }
  }
  state.SetItemsProcessed(state.iterations() * kCount * 2);
}
BENCHMARK(BM_StdPriorityQueuePushPop)
    ->ArgName("mixed")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_SeenSetInsert(benchmark::State& state) {
  const std::vector<std::string> fps = fingerprints(kCount);
  for (auto _ : state) {
    TempDir dir;
    SeenSet s(dir / "seen.sqlite");
    for (const auto& fp : fps) benchmark::DoNotOptimize(s.insert(fp));
    s.flush();
    state.PauseTiming();
    s.close();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kCount);
}
BENCHMARK(BM_SeenSetInsert)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// Dupefilter hits: every fingerprint already present (what most of a crawl's links are).
void BM_SeenSetInsertDuplicate(benchmark::State& state) {
  const std::vector<std::string> fps = fingerprints(kCount);
  for (auto _ : state) {
    state.PauseTiming();
    TempDir dir;
    SeenSet s(dir / "seen.sqlite");
    for (const auto& fp : fps) s.insert(fp);
    s.flush();
    state.ResumeTiming();
    for (const auto& fp : fps) benchmark::DoNotOptimize(s.insert(fp));
    s.flush();
  }
  state.SetItemsProcessed(state.iterations() * kCount);
}
BENCHMARK(BM_SeenSetInsertDuplicate)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// Baseline: Scrapy's RFPDupeFilter keeps its fingerprints in a Python set, in memory.
void BM_StdUnorderedSetInsert(benchmark::State& state) {
  const std::vector<std::string> fps = fingerprints(kCount);
  for (auto _ : state) {
    std::unordered_set<std::string> s;
    for (const auto& fp : fps) benchmark::DoNotOptimize(s.insert(fp).second);
  }
  state.SetItemsProcessed(state.iterations() * kCount);
}
BENCHMARK(BM_StdUnorderedSetInsert)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
