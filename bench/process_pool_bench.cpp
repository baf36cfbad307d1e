// process_pool_bench: ProcessPoolExecutor with 2 workers (the default start method, forkserver)
// beside the floor it cannot beat — a raw pipe round trip between two processes — in the same
// run. Python's twins: bench/compare/python_process_pool_bench.py (ProcessPoolExecutor and
// multiprocessing.Pool).
//
//   Submit            kTasks trivial tasks (square) submitted from the main thread, then every
//                     future waited for; items = tasks.
//   MapChunked/<c>/<e> map(square, kItems inputs, chunksize = c), lazy (e = 0: the default
//                     window, 64 chunks per worker) or eager (e = 1: all submitted at once, as
//                     Python); items = inputs.
//   RoundTrip         submit one trivial task and take its result, one at a time; reported per
//                     round trip (p50_us).
//   RawPipeRoundTrip  8 bytes to a forked child over one pipe and back over another; the floor.
//   IsPrime100/<n>    the notes' is_prime(112272535095293) x 100: serial (n = 0) or on the pool
//                     with n workers; one iteration = the 100 numbers.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "concur/process_pool.hpp"

namespace {

constexpr int kTasks = 20'000;
constexpr int kItems = 200'000;
constexpr std::uint64_t kPrime = 112272535095293ULL;

long square(long x) { return x * x; }
CONCUR_TASK(square);

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t d = 3; d * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}
CONCUR_TASK(is_prime);

concur::ProcessPoolExecutor& pool() {
  static concur::ProcessPoolExecutor p(concur::ProcessPoolOptions{.max_workers = 2});
  static const bool warm = [] {
    std::vector<concur::Future<long>> fs;
    for (long i = 0; i < 100; ++i) fs.push_back(p.submit(square, i));
    for (auto& f : fs) (void)f.result();
    return true;
  }();
  (void)warm;
  return p;
}

void Submit(benchmark::State& state) {
  auto& p = pool();
  for (auto _ : state) {
    std::vector<concur::Future<long>> fs;
    fs.reserve(kTasks);
    for (long i = 0; i < kTasks; ++i) fs.push_back(p.submit(square, i));
    for (auto& f : fs) benchmark::DoNotOptimize(f.result());
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(Submit)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);

void MapChunked(benchmark::State& state) {
  auto& p = pool();
  std::vector<long> xs(kItems);
  for (long i = 0; i < kItems; ++i) xs[static_cast<std::size_t>(i)] = i;
  for (auto _ : state) {
    long sum = 0;
    const concur::MapOptions options{.eager = state.range(1) != 0,
                                     .chunksize = static_cast<std::size_t>(state.range(0))};
    for (long r : p.map(square, xs, options)) sum += r;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kItems);
}
BENCHMARK(MapChunked)
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(1.0);

void report_percentiles(benchmark::State& state, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  if (us.empty()) return;
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p90_us"] = us[us.size() * 9 / 10];
}

void RoundTrip(benchmark::State& state) {
  auto& p = pool();
  std::vector<double> us;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(p.submit(square, 3L).result());
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  state.SetItemsProcessed(state.iterations());
  report_percentiles(state, us);
}
BENCHMARK(RoundTrip)->UseRealTime()->MinTime(1.0);

void RawPipeRoundTrip(benchmark::State& state) {
  int to_child[2];
  int to_parent[2];
  if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) {
    state.SkipWithError("pipe");
    return;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(to_child[1]);  // so that the parent's close ends the loop
    ::close(to_parent[0]);
    char buf[8];
    while (::read(to_child[0], buf, sizeof buf) == sizeof buf)
      if (::write(to_parent[1], buf, sizeof buf) != sizeof buf) break;
    ::_exit(0);
  }
  std::vector<double> us;
  char buf[8] = {};
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (::write(to_child[1], buf, sizeof buf) != sizeof buf ||
        ::read(to_parent[0], buf, sizeof buf) != sizeof buf) {
      state.SkipWithError("pipe round trip");
      break;
    }
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  ::close(to_child[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(to_child[0]);
  ::close(to_parent[0]);
  ::close(to_parent[1]);
  state.SetItemsProcessed(state.iterations());
  report_percentiles(state, us);
}
BENCHMARK(RawPipeRoundTrip)->UseRealTime()->MinTime(1.0);

void IsPrime100(benchmark::State& state) {
  const auto workers = state.range(0);
  for (auto _ : state) {
    int primes = 0;
    if (workers == 0) {
      for (int i = 0; i < 100; ++i) primes += is_prime(kPrime) ? 1 : 0;
    } else {
      auto& p = pool();
      std::vector<concur::Future<bool>> fs;
      for (int i = 0; i < 100; ++i) fs.push_back(p.submit(is_prime, kPrime));
      for (auto& f : fs) primes += f.result() ? 1 : 0;
    }
    if (primes != 100) state.SkipWithError("wrong answer");
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(IsPrime100)->Arg(0)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
