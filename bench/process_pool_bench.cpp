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
//   RoundTripAsleep/<g>, RawPipeRoundTripAsleep/<g>
//                     the same round trips with a gap of g µs (default 1000) before each, far
//                     beyond every spin budget (the mailbox's and the futures' spin_wait: 16
//                     pauses, then sched_yield for up to 8 µs; the worker's eventfd delay, the
//                     same), so both sides sleep when the request is sent. Only the round trip
//                     is timed (manual time; the gap is not); p50_us, p90_us; a fixed count.
//   IsPrime100/<n>    the notes' is_prime(112272535095293) x 100: serial (n = 0) or on the pool
//                     with n workers; one iteration = the 100 numbers.
//   BigArgPeakRss/<m> one round trip of a --big-arg-bytes (default 200,000,000) argument whose
//                     result is as large (the task echoes it), run in a fresh child process of
//                     this binary (--big-arg-child=<bytes>:<mode>) that reports its peak RSS
//                     (VmHWM): hwm_mb, and hwm_ratio = hwm / (argument + result). Mode m = 0
//                     takes the result by moving it out of the future (a move-only result type:
//                     one result object in the parent, as Python's f.result()); m = 1 takes a
//                     std::string result with f.result(), which copies it (every Future handle
//                     sees the same value), so the parent holds the result twice; m = 2 takes it
//                     with std::move(f).result(), which moves it out of the only handle. The child
//                     checks the result byte for byte. Twin: python_process_pool_bench.py
//                     --big-arg (ProcessPoolExecutor, bytes).
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
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

// pool_round_trips(state, gap): RoundTrip, with a sleep of `gap` before each round trip (timed
// by hand then: only the round trip counts).
void pool_round_trips(benchmark::State& state, std::chrono::microseconds gap) {
  auto& p = pool();
  std::vector<double> us;
  for (auto _ : state) {
    if (gap.count() > 0) std::this_thread::sleep_for(gap);
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(p.submit(square, 3L).result());
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
    if (gap.count() > 0) state.SetIterationTime(d.count());
    us.push_back(d.count() * 1e6);
  }
  state.SetItemsProcessed(state.iterations());
  report_percentiles(state, us);
}

void RoundTrip(benchmark::State& state) { pool_round_trips(state, std::chrono::microseconds(0)); }
BENCHMARK(RoundTrip)->UseRealTime()->MinTime(1.0);

void RoundTripAsleep(benchmark::State& state) {
  pool_round_trips(state, std::chrono::microseconds(state.range(0)));
}
BENCHMARK(RoundTripAsleep)->Arg(1000)->UseManualTime()->Iterations(2000);

// pipe_round_trips(state, gap): RawPipeRoundTrip, with a sleep of `gap` before each round trip.
void pipe_round_trips(benchmark::State& state, std::chrono::microseconds gap) {
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
    if (gap.count() > 0) std::this_thread::sleep_for(gap);
    const auto t0 = std::chrono::steady_clock::now();
    if (::write(to_child[1], buf, sizeof buf) != sizeof buf ||
        ::read(to_parent[0], buf, sizeof buf) != sizeof buf) {
      state.SkipWithError("pipe round trip");
      break;
    }
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
    if (gap.count() > 0) state.SetIterationTime(d.count());
    us.push_back(d.count() * 1e6);
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

void RawPipeRoundTrip(benchmark::State& state) {
  pipe_round_trips(state, std::chrono::microseconds(0));
}
BENCHMARK(RawPipeRoundTrip)->UseRealTime()->MinTime(1.0);

void RawPipeRoundTripAsleep(benchmark::State& state) {
  pipe_round_trips(state, std::chrono::microseconds(state.range(0)));
}
BENCHMARK(RawPipeRoundTripAsleep)->Arg(1000)->UseManualTime()->Iterations(2000);

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

// ---- BigArgPeakRss (measured in a child process)

std::size_t g_big_arg_bytes = 200'000'000;

// Blob: a move-only result, so that std::move(f).result() moves it out of the future.
struct Blob {
  Blob() = default;
  explicit Blob(const std::string& s) : bytes(s) {}
  Blob(Blob&&) noexcept = default;
  Blob& operator=(Blob&&) noexcept = default;
  Blob(const Blob&) = delete;
  Blob& operator=(const Blob&) = delete;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(bytes);
  }
  std::string bytes;
};

Blob echo_blob(const std::string& s) { return Blob(s); }
CONCUR_TASK(echo_blob);
std::string echo_string(const std::string& s) { return s; }
CONCUR_TASK(echo_string);

// status_kib(field): a "VmHWM:" / "VmRSS:" line of /proc/self/status, in KiB.
long long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, len, field) == 0) return std::stoll(line.substr(len));
  throw std::runtime_error(std::string("no ") + field + " in /proc/self/status");
}

// big_arg_child(spec): spec = "<bytes>:<mode>"; one round trip on a warm one-worker pool, then
// one line: bytes mode rss_before_kib hwm_kib seconds ok.
int big_arg_child(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::size_t n = std::stoull(spec.substr(0, colon));
  const int mode = colon == std::string::npos ? 0 : std::stoi(spec.substr(colon + 1));
  concur::ProcessPoolExecutor p(concur::ProcessPoolOptions{.max_workers = 1});
  (void)p.submit(square, 1L).result();  // the worker runs: its start is not measured
  const long long before = status_kib("VmRSS:");
  std::string arg(n, '\0');
  for (std::size_t i = 0; i < n; ++i) arg[i] = static_cast<char>(i & 255);  // every page touched
  const auto t0 = std::chrono::steady_clock::now();
  bool ok = false;
  if (mode == 0) {
    Blob r = p.submit(echo_blob, arg).result();  // a temporary future: moved out
    ok = r.bytes == arg;
  } else if (mode == 1) {
    concur::Future<std::string> f = p.submit(echo_string, arg);
    const std::string r = f.result();  // a copy: the future keeps its own
    ok = r == arg;
  } else {
    concur::Future<std::string> f = p.submit(echo_string, arg);
    const std::string r = std::move(f).result();  // the only handle: moved out
    ok = r == arg;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%zu %d %lld %lld %.6f %d\n", n, mode, before, status_kib("VmHWM:"), seconds,
              ok ? 1 : 0);
  return ok ? 0 : 1;
}

std::string self_exe() {
  std::vector<char> buf(4096);
  const ssize_t len = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (len <= 0) throw std::runtime_error("readlink /proc/self/exe");
  return std::string(buf.data(), static_cast<std::size_t>(len));
}

void BigArgPeakRss(benchmark::State& state) {
  long long before = 0;
  long long hwm = 0;
  double seconds = 0;
  for (auto _ : state) {
    std::string cmd(1, '\'');
    cmd.append(self_exe()).append("' --big-arg-child=").append(std::to_string(g_big_arg_bytes));
    cmd.append(":").append(std::to_string(state.range(0)));
    FILE* child = ::popen(cmd.c_str(), "r");
    if (child == nullptr) {
      state.SkipWithError("popen");
      return;
    }
    std::size_t n = 0;
    int mode = 0;
    int ok = 0;
    const int got =
        std::fscanf(child, "%zu %d %lld %lld %lf %d", &n, &mode, &before, &hwm, &seconds, &ok);
    if (::pclose(child) != 0 || got != 6 || ok != 1) {
      state.SkipWithError("the big-argument child failed");
      return;
    }
  }
  const double payload = 2.0 * static_cast<double>(g_big_arg_bytes);  // argument + result
  state.counters["hwm_mb"] = static_cast<double>(hwm) * 1024.0 / 1e6;
  state.counters["rss_before_mb"] = static_cast<double>(before) * 1024.0 / 1e6;
  state.counters["hwm_ratio"] = static_cast<double>(hwm) * 1024.0 / payload;
  state.counters["round_trip_s"] = seconds;
}
BENCHMARK(BigArgPeakRss)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--big-arg-child=", 0) == 0) return big_arg_child(a.substr(16));
    if (a.rfind("--big-arg-bytes=", 0) == 0) {
      g_big_arg_bytes = std::stoull(a.substr(16));
    } else {
      rest.push_back(argv[i]);
    }
  }
  benchmark::AddCustomContext("big_arg_bytes", std::to_string(g_big_arg_bytes));
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
