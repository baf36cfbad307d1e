// aio_bench — concur::aio (asyncio on a Boost.Asio io_context) beside raw Boost.Asio, in one Google
// Benchmark run. Everything runs on one thread: the benchmark thread runs the loop (a concur
// Loop, or an asio::io_context(1)), so there is no thread sweep (STYLE rule 19's 1..ncpu does
// not apply to a one-thread event loop). Python's asyncio twin is
// bench/compare/python_aio_bench.py; bench/compare/run_aio_bench.sh runs both (and the echo
// servers) and prints the ratios. Names pair concur with its peers:
//
//   BM_CreateTaskAwait/<lib>  one iteration = schedule a trivial coroutine as a task and await
//                             it. concur: co_await aio::create_task(trivial()); asio: co_await
//                             co_spawn(ex, trivial(), use_awaitable). items/s = tasks/s.
//   BM_AwaitInline/<lib>      co_await trivial() with no task (context for the row above: what
//                             the coroutine frame alone costs).
//   BM_Gather/<lib>           one iteration = 100,000 (--gather=N) trivial coroutines gathered.
//                             concur: co_await aio::gather(vector of coroutines); asio_counter:
//                             N co_spawns whose completion handlers store the value and count
//                             down, the last one cancelling the steady_timer the parent waits on;
//                             asio_parallel_group: experimental::make_parallel_group over the N
//                             deferred co_spawns, wait_for_all. items/s = tasks/s.
//   BM_Timers/<lib>           Iterations(1): 10,000 (--timers=N) concurrent 100 ms sleeps; the
//                             counter overhead_ms = wall time from before the first is created to
//                             the end of the wait, minus 100 ms. concur: N tasks of
//                             aio::sleep(100ms) gathered; asio_callback: N steady_timers +
//                             async_wait callbacks (bench/asio_timer_bench.cpp's method, but the
//                             io_context is kept across passes, as concur's loop is);
//                             asio_coro: N co_spawned coroutines awaiting their own timer.
//   BM_SleepingTaskBytes/<lib> Iterations(1): a child process (this binary re-run with a hidden
//                             flag: a fresh heap, so memory freed by the other cases cannot hide
//                             the growth) starts 1,000,000 (--sleepers=N) tasks that each await
//                             aio::sleep(1h) (asio: a co_spawned coroutine awaiting a
//                             steady_timer of 1 h), reads VmRSS once every one is suspended, then
//                             cancels them all (asio: destroys the io_context). Counters:
//                             bytes_per_task = VmRSS growth / N (the vector of task handles, 8
//                             bytes each, included, as in Python's list), spawn_ns_per_task,
//                             cancel_ns_per_task. The wall time includes the child's start: not
//                             the point here.
//   BM_QueuePC/<lib>/maxsize:M one iteration = 100,000 (--queue-items=N) ints through a queue of
//                             maxsize M (0 = unbounded), one producer task, one consumer task.
//                             concur: aio::Queue<int>; asio: experimental::channel with capacity
//                             M (0 is a rendezvous channel there, not unbounded: no unbounded
//                             channel exists, so maxsize:0 pairs with capacity 100,000).
//   BM_LockAcquireRelease/concur, BM_SemaphoreAcquireRelease/concur: uncontended
//                             co_await acquire(); release() (Semaphore(10) as the Python twin);
//                             Asio has no coroutine lock: Python is the peer.
//
// The batch cases (Gather, Timers, QueuePC) run one untimed pass first, for every library alike:
// the first pass of a process otherwise measures the kernel handing out fresh pages (~10 µs per
// 4 KiB page on this VM), not the scheduler. Every case reports minflt_per_ktask, the minor page
// faults per 1000 items over the whole benchmark function (warm pass included), to show it.
// Run: ./build/release/bench/aio_bench [--gather=N] [--timers=N] [--sleepers=N]
//      [--queue-items=N] --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true
//      --benchmark_format=json (or bench/compare/run_aio_bench.sh)
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/queue.hpp"
#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"

namespace {

namespace aio = concur::aio;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::int64_t g_gather = 100'000;
std::int64_t g_timers = 10'000;
std::int64_t g_sleepers = 1'000'000;
std::int64_t g_queue_items = 100'000;
constexpr auto kTimerDelay = 100ms;
constexpr auto kLongSleep = 1h;

// ---- shared helpers -------------------------------------------------------------------------

const aio::RunOptions kRun{.debug = false, .handle_sigint = false};

std::int64_t minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// FaultCount: minflt_per_ktask over a benchmark function's run (set at the end).
class FaultCount {
 public:
  explicit FaultCount(benchmark::State& state) : state_(state), start_(minor_faults()) {}
  FaultCount(const FaultCount&) = delete;
  FaultCount& operator=(const FaultCount&) = delete;
  ~FaultCount() {
    const auto items = static_cast<double>(state_.items_processed());
    if (items > 0) {
      state_.counters["minflt_per_ktask"] =
          1000.0 * static_cast<double>(minor_faults() - start_) / items;
    }
  }

 private:
  benchmark::State& state_;
  std::int64_t start_;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "aio_bench: %s\n", what.c_str());
  std::exit(1);
}

// run_asio(coroutine): runs an asio::awaitable<void> on a fresh io_context(1) in this thread,
// rethrowing what escapes it.
void run_asio(asio::io_context& io, asio::awaitable<void> main) {
  std::exception_ptr error;
  asio::co_spawn(io, std::move(main), [&error](std::exception_ptr e) { error = std::move(e); });
  io.run();
  if (error) std::rethrow_exception(error);
}
void run_asio(asio::awaitable<void> main) {
  asio::io_context io(1);
  run_asio(io, std::move(main));
}

// Join: the parent of N co_spawned Asio coroutines waits on a timer that the last completion
// cancels (Asio's plain countdown idiom).
class Join {
 public:
  Join(const asio::any_io_executor& ex, std::int64_t n)
      : left_(n), done_(ex, Clock::time_point::max()) {}
  void arrive() {
    if (--left_ == 0) done_.cancel();
  }
  asio::awaitable<void> wait() {
    if (left_ > 0) (void)co_await done_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (left_ != 0) throw std::logic_error("Join woke early");
  }

 private:
  std::int64_t left_;
  asio::steady_timer done_;
};

aio::Task<int> trivial() { co_return 1; }
asio::awaitable<int> trivial_asio() { co_return 1; }

// ---- BM_CreateTaskAwait ------------------------------------------------------------------------

aio::Task<void> create_task_await_concur(benchmark::State& state) {
  std::int64_t total = 0;
  for (auto _ : state) total += co_await aio::create_task(trivial());
  if (total != state.iterations()) throw std::logic_error("lost a task");
}
void BM_CreateTaskAwait_concur(benchmark::State& state) {
  FaultCount faults(state);
  aio::run(create_task_await_concur(state), kRun);
  state.SetItemsProcessed(state.iterations());
}

asio::awaitable<void> create_task_await_asio(benchmark::State& state) {
  const auto ex = co_await asio::this_coro::executor;
  std::int64_t total = 0;
  for (auto _ : state) total += co_await asio::co_spawn(ex, trivial_asio(), asio::use_awaitable);
  if (total != state.iterations()) throw std::logic_error("lost a task");
}
void BM_CreateTaskAwait_asio(benchmark::State& state) {
  FaultCount faults(state);
  run_asio(create_task_await_asio(state));
  state.SetItemsProcessed(state.iterations());
}

// ---- BM_AwaitInline ----------------------------------------------------------------------------

aio::Task<void> await_inline_concur(benchmark::State& state) {
  std::int64_t total = 0;
  for (auto _ : state) total += co_await trivial();
  if (total != state.iterations()) throw std::logic_error("lost a coroutine");
}
void BM_AwaitInline_concur(benchmark::State& state) {
  FaultCount faults(state);
  aio::run(await_inline_concur(state), kRun);
  state.SetItemsProcessed(state.iterations());
}

asio::awaitable<void> await_inline_asio(benchmark::State& state) {
  std::int64_t total = 0;
  for (auto _ : state) total += co_await trivial_asio();
  if (total != state.iterations()) throw std::logic_error("lost a coroutine");
}
void BM_AwaitInline_asio(benchmark::State& state) {
  FaultCount faults(state);
  run_asio(await_inline_asio(state));
  state.SetItemsProcessed(state.iterations());
}

// ---- BM_Gather ---------------------------------------------------------------------------------

aio::Task<void> gather_pass_concur() {
  const auto n = static_cast<std::size_t>(g_gather);
  std::vector<aio::Task<int>> coros;
  coros.reserve(n);
  for (std::size_t i = 0; i < n; ++i) coros.push_back(trivial());
  const std::vector<int> values = co_await aio::gather(std::move(coros));
  if (values.size() != n || values.back() != 1) throw std::logic_error("gather lost a value");
}
aio::Task<void> gather_concur(benchmark::State& state) {
  co_await gather_pass_concur();  // warm (untimed, as for every peer)
  for (auto _ : state) co_await gather_pass_concur();
}
void BM_Gather_concur(benchmark::State& state) {
  FaultCount faults(state);
  aio::run(gather_concur(state), kRun);
  state.SetItemsProcessed(state.iterations() * g_gather);
}

asio::awaitable<void> gather_pass_asio_counter() {
  const auto ex = co_await asio::this_coro::executor;
  const auto n = static_cast<std::size_t>(g_gather);
  std::vector<int> values(n);
  Join join(ex, g_gather);
  for (std::size_t i = 0; i < n; ++i) {
    asio::co_spawn(ex, trivial_asio(), [&values, &join, i](std::exception_ptr e, int v) {
      if (e) std::rethrow_exception(e);
      values[i] = v;
      join.arrive();
    });
  }
  co_await join.wait();
  if (values.back() != 1) throw std::logic_error("gather lost a value");
}
asio::awaitable<void> gather_asio_counter(benchmark::State& state) {
  co_await gather_pass_asio_counter();  // warm
  for (auto _ : state) co_await gather_pass_asio_counter();
}
void BM_Gather_asio_counter(benchmark::State& state) {
  FaultCount faults(state);
  run_asio(gather_asio_counter(state));
  state.SetItemsProcessed(state.iterations() * g_gather);
}

asio::awaitable<void> gather_pass_asio_parallel_group() {
  const auto ex = co_await asio::this_coro::executor;
  const auto n = static_cast<std::size_t>(g_gather);
  using Op = decltype(asio::co_spawn(ex, trivial_asio(), asio::deferred));
  std::vector<Op> ops;
  ops.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    ops.push_back(asio::co_spawn(ex, trivial_asio(), asio::deferred));
  }
  auto [order, errors, values] =
      co_await asio::experimental::make_parallel_group(std::move(ops))
          .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  if (values.size() != n || values.back() != 1) throw std::logic_error("gather lost a value");
  benchmark::DoNotOptimize(order.data());
  benchmark::DoNotOptimize(errors.data());
}
asio::awaitable<void> gather_asio_parallel_group(benchmark::State& state) {
  co_await gather_pass_asio_parallel_group();  // warm
  for (auto _ : state) co_await gather_pass_asio_parallel_group();
}
void BM_Gather_asio_parallel_group(benchmark::State& state) {
  FaultCount faults(state);
  run_asio(gather_asio_parallel_group(state));
  state.SetItemsProcessed(state.iterations() * g_gather);
}

// ---- BM_Timers ---------------------------------------------------------------------------------

double ms_beyond_delay(Clock::duration took) {
  return std::chrono::duration<double, std::milli>(took - kTimerDelay).count();
}
void set_overhead(benchmark::State& state, double overhead_ms) {
  state.counters["overhead_ms"] = overhead_ms;
  state.counters["timers"] = static_cast<double>(g_timers);
  state.SetItemsProcessed(state.iterations() * g_timers);
}

aio::Task<void> sleep_once() { co_await aio::sleep(kTimerDelay); }

aio::Task<double> timers_pass_concur() {
  const auto n = static_cast<std::size_t>(g_timers);
  const auto start = Clock::now();
  std::vector<aio::Task<void>> coros;
  coros.reserve(n);
  for (std::size_t i = 0; i < n; ++i) coros.push_back(sleep_once());
  (void)co_await aio::gather(std::move(coros));
  co_return ms_beyond_delay(Clock::now() - start);
}
aio::Task<void> timers_concur(benchmark::State& state, double& overhead_ms) {
  (void)co_await timers_pass_concur();  // warm (untimed, as for every peer)
  for (auto _ : state) overhead_ms = co_await timers_pass_concur();
}
void BM_Timers_concur(benchmark::State& state) {
  FaultCount faults(state);
  double overhead_ms = 0;
  aio::run(timers_concur(state, overhead_ms), kRun);
  set_overhead(state, overhead_ms);
}

// Callback style, as bench/asio_timer_bench.cpp: N steady_timers in a vector, the last callback
// notes the time. The io_context and the vector's storage are kept from pass to pass (as concur's
// loop is): a fresh io_context per pass would measure the kernel handing out pages again.
double timers_pass_asio_callback(asio::io_context& io, std::vector<asio::steady_timer>& timers) {
  timers.clear();
  io.restart();
  std::int64_t fired = 0;
  Clock::time_point last{};
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < g_timers; ++i) {
    asio::steady_timer& t = timers.emplace_back(io, kTimerDelay);
    t.async_wait([&](const boost::system::error_code& ec) {
      if (ec) fail("timer wait: " + ec.message());
      if (++fired == g_timers) last = Clock::now();
    });
  }
  io.run();
  if (fired != g_timers) fail("not every timer fired");
  return ms_beyond_delay(last - start);
}
void BM_Timers_asio_callback(benchmark::State& state) {
  FaultCount faults(state);
  asio::io_context io(1);
  std::vector<asio::steady_timer> timers;
  timers.reserve(static_cast<std::size_t>(g_timers));
  double overhead_ms = 0;
  (void)timers_pass_asio_callback(io, timers);  // warm
  for (auto _ : state) overhead_ms = timers_pass_asio_callback(io, timers);
  set_overhead(state, overhead_ms);
}

asio::awaitable<void> sleep_once_asio() {
  asio::steady_timer t(co_await asio::this_coro::executor, kTimerDelay);
  co_await t.async_wait(asio::use_awaitable);
}
asio::awaitable<double> timers_pass_asio_coro() {
  const auto ex = co_await asio::this_coro::executor;
  const auto start = Clock::now();
  Join join(ex, g_timers);
  for (std::int64_t i = 0; i < g_timers; ++i) {
    asio::co_spawn(ex, sleep_once_asio(), [&join](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
      join.arrive();
    });
  }
  co_await join.wait();
  co_return ms_beyond_delay(Clock::now() - start);
}
asio::awaitable<void> timers_asio_coro(benchmark::State& state, double& overhead_ms) {
  (void)co_await timers_pass_asio_coro();  // warm
  for (auto _ : state) overhead_ms = co_await timers_pass_asio_coro();
}
void BM_Timers_asio_coro(benchmark::State& state) {
  FaultCount faults(state);
  double overhead_ms = 0;
  run_asio(timers_asio_coro(state, overhead_ms));
  set_overhead(state, overhead_ms);
}

// ---- BM_SleepingTaskBytes (measured in a child process) ---------------------------------------

// vm_kib(field): a "VmRSS:" / "VmHWM:" line of /proc/self/status, in KiB.
std::int64_t vm_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, len, field) == 0) return std::stoll(line.substr(len));
  }
  fail(std::string("no ") + field + " line in /proc/self/status");
}

struct SleeperResult {
  std::int64_t rss_before_kib = 0;
  std::int64_t rss_after_kib = 0;
  std::int64_t hwm_after_kib = 0;
  double spawn_s = 0;
  double cancel_s = 0;
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

aio::Task<void> long_sleeper(std::int64_t& started) {
  ++started;
  co_await aio::sleep(kLongSleep);
}

aio::Task<void> sleepers_concur(std::int64_t n, SleeperResult& r) {
  co_await aio::sleep(0ms);  // the loop ran one iteration: its own allocations are done
  std::int64_t started = 0;
  r.rss_before_kib = vm_kib("VmRSS:");
  const auto t0 = Clock::now();
  std::vector<aio::Task<void>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) tasks.push_back(aio::create_task(long_sleeper(started)));
  co_await aio::sleep(0ms);  // queued behind every new task: each one has reached its sleep
  if (started != n) fail("only " + std::to_string(started) + " sleepers started");
  r.spawn_s = seconds_since(t0);
  r.rss_after_kib = vm_kib("VmRSS:");
  r.hwm_after_kib = vm_kib("VmHWM:");
  const auto t1 = Clock::now();
  for (auto& t : tasks) t.cancel();
  const auto outcomes = co_await aio::gather(aio::return_exceptions, std::move(tasks));
  r.cancel_s = seconds_since(t1);
  for (const auto& o : outcomes) {
    if (o.has_value()) fail("a sleeper ended otherwise than cancelled");
  }
}

asio::awaitable<void> long_sleeper_asio(std::int64_t& started) {
  asio::steady_timer t(co_await asio::this_coro::executor, kLongSleep);
  ++started;
  co_await t.async_wait(asio::use_awaitable);
}

SleeperResult sleepers_asio(std::int64_t n) {
  SleeperResult r;
  std::int64_t started = 0;
  // No poll() before the spawns: an io_context that runs out of work stops.
  auto io = std::make_unique<asio::io_context>(1);
  r.rss_before_kib = vm_kib("VmRSS:");
  const auto t0 = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    asio::co_spawn(*io, long_sleeper_asio(started), asio::detached);
  }
  while (started < n) {
    if (io->poll() == 0) fail("asio sleepers stalled");
  }
  r.spawn_s = seconds_since(t0);
  r.rss_after_kib = vm_kib("VmRSS:");
  r.hwm_after_kib = vm_kib("VmHWM:");
  const auto t1 = Clock::now();
  io.reset();  // destroys every suspended coroutine (Asio's way to drop pending work)
  r.cancel_s = seconds_since(t1);
  return r;
}

// sleeper_child(spec): the hidden child mode, spec = "concur:N" or "asio:N"; prints one line.
int sleeper_child(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos) fail("bad child spec " + spec);
  const std::string lib = spec.substr(0, colon);
  const std::int64_t n = std::stoll(spec.substr(colon + 1));
  SleeperResult r;
  if (lib == "concur") {
    aio::run(sleepers_concur(n, r), kRun);
  } else if (lib == "asio") {
    r = sleepers_asio(n);
  } else {
    fail("bad child library " + lib);
  }
  std::printf("%lld %lld %lld %.9f %.9f\n", static_cast<long long>(r.rss_before_kib),
              static_cast<long long>(r.rss_after_kib), static_cast<long long>(r.hwm_after_kib),
              r.spawn_s, r.cancel_s);
  return 0;
}

std::string self_exe() {
  std::vector<char> buf(4096);
  const ssize_t len = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (len <= 0) fail("readlink /proc/self/exe failed");
  return std::string(buf.data(), static_cast<std::size_t>(len));
}

void sleeping_task_bytes(benchmark::State& state, const char* lib) {
  SleeperResult r;
  for (auto _ : state) {
    // Appended piecewise: g++ 12's -Wrestrict misfires on "'" + std::string.
    std::string cmd(1, '\'');
    cmd.append(self_exe()).append("' --aio-sleeper-child=").append(lib);
    cmd.append(":").append(std::to_string(g_sleepers));
    FILE* child = popen(cmd.c_str(), "r");
    if (child == nullptr) fail("popen failed");
    long long before = 0, after = 0, hwm = 0;
    const int got = std::fscanf(child, "%lld %lld %lld %lf %lf", &before, &after, &hwm, &r.spawn_s,
                                &r.cancel_s);
    if (pclose(child) != 0 || got != 5) fail(std::string("the sleeper child failed: ") + lib);
    r.rss_before_kib = before;
    r.rss_after_kib = after;
    r.hwm_after_kib = hwm;
  }
  const auto n = static_cast<double>(g_sleepers);
  state.counters["bytes_per_task"] =
      static_cast<double>(r.rss_after_kib - r.rss_before_kib) * 1024.0 / n;
  state.counters["rss_before_mib"] = static_cast<double>(r.rss_before_kib) / 1024.0;
  state.counters["rss_after_mib"] = static_cast<double>(r.rss_after_kib) / 1024.0;
  state.counters["hwm_after_mib"] = static_cast<double>(r.hwm_after_kib) / 1024.0;
  state.counters["spawn_ns_per_task"] = r.spawn_s * 1e9 / n;
  state.counters["cancel_ns_per_task"] = r.cancel_s * 1e9 / n;
  state.counters["sleepers"] = n;
  state.SetItemsProcessed(g_sleepers);
}
void BM_SleepingTaskBytes_concur(benchmark::State& state) { sleeping_task_bytes(state, "concur"); }
void BM_SleepingTaskBytes_asio(benchmark::State& state) { sleeping_task_bytes(state, "asio"); }

// ---- BM_QueuePC --------------------------------------------------------------------------------

aio::Task<void> produce(aio::Queue<int>& q, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await q.put(static_cast<int>(i));
}
aio::Task<std::int64_t> consume(aio::Queue<int>& q, std::int64_t n) {
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < n; ++i) total += co_await q.get();
  co_return total;
}
aio::Task<void> queue_pass_concur(std::size_t maxsize) {
  const std::int64_t n = g_queue_items;
  aio::Queue<int> q(maxsize);
  const auto [none, total] = co_await aio::gather(produce(q, n), consume(q, n));
  if (total != n * (n - 1) / 2) throw std::logic_error("the queue lost an item");
}
aio::Task<void> queue_concur(benchmark::State& state, std::size_t maxsize) {
  co_await queue_pass_concur(maxsize);  // warm (untimed, as for every peer)
  for (auto _ : state) co_await queue_pass_concur(maxsize);
}
void BM_QueuePC_concur(benchmark::State& state) {
  FaultCount faults(state);
  aio::run(queue_concur(state, static_cast<std::size_t>(state.range(0))), kRun);
  state.SetItemsProcessed(state.iterations() * g_queue_items);
}

using Channel = asio::experimental::channel<void(boost::system::error_code, int)>;
asio::awaitable<void> produce_asio(Channel& ch, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    co_await ch.async_send(boost::system::error_code{}, static_cast<int>(i), asio::use_awaitable);
  }
}
asio::awaitable<std::int64_t> consume_asio(Channel& ch, std::int64_t n) {
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < n; ++i) total += co_await ch.async_receive(asio::use_awaitable);
  co_return total;
}
asio::awaitable<void> queue_pass_asio(std::size_t capacity) {
  using namespace asio::experimental::awaitable_operators;
  const auto ex = co_await asio::this_coro::executor;
  const std::int64_t n = g_queue_items;
  Channel ch(ex, capacity);
  const std::int64_t total = co_await (produce_asio(ch, n) && consume_asio(ch, n));
  if (total != n * (n - 1) / 2) throw std::logic_error("the channel lost an item");
}
asio::awaitable<void> queue_asio(benchmark::State& state, std::size_t capacity) {
  co_await queue_pass_asio(capacity);  // warm
  for (auto _ : state) co_await queue_pass_asio(capacity);
}
void BM_QueuePC_asio(benchmark::State& state) {
  FaultCount faults(state);
  // maxsize 0 (unbounded) pairs with a channel that never fills; Asio's capacity 0 is a
  // rendezvous.
  const auto maxsize = static_cast<std::size_t>(state.range(0));
  run_asio(queue_asio(state, maxsize == 0 ? static_cast<std::size_t>(g_queue_items) : maxsize));
  state.SetItemsProcessed(state.iterations() * g_queue_items);
}

// ---- BM_LockAcquireRelease, BM_SemaphoreAcquireRelease -------------------------------------

aio::Task<void> lock_concur(benchmark::State& state) {
  aio::Lock lock;
  for (auto _ : state) {
    co_await lock.acquire();
    lock.release();
  }
}
void BM_LockAcquireRelease_concur(benchmark::State& state) {
  FaultCount faults(state);
  aio::run(lock_concur(state), kRun);
  state.SetItemsProcessed(state.iterations());
}

aio::Task<void> semaphore_concur(benchmark::State& state) {
  aio::Semaphore sem(10);
  for (auto _ : state) {
    co_await sem.acquire();
    sem.release();
  }
}
void BM_SemaphoreAcquireRelease_concur(benchmark::State& state) {
  FaultCount faults(state);
  aio::run(semaphore_concur(state), kRun);
  state.SetItemsProcessed(state.iterations());
}

void register_all() {
  const auto rate = [](const char* name, void (*fn)(benchmark::State&)) {
    return benchmark::RegisterBenchmark(name, fn)->UseRealTime()->Unit(benchmark::kNanosecond);
  };
  const auto once = [](const char* name, void (*fn)(benchmark::State&)) {
    return benchmark::RegisterBenchmark(name, fn)->Iterations(1)->UseRealTime()->Unit(
        benchmark::kMillisecond);
  };
  rate("BM_CreateTaskAwait/concur", BM_CreateTaskAwait_concur);
  rate("BM_CreateTaskAwait/asio", BM_CreateTaskAwait_asio);
  rate("BM_AwaitInline/concur", BM_AwaitInline_concur);
  rate("BM_AwaitInline/asio", BM_AwaitInline_asio);
  rate("BM_Gather/concur", BM_Gather_concur)->Unit(benchmark::kMillisecond);
  rate("BM_Gather/asio_counter", BM_Gather_asio_counter)->Unit(benchmark::kMillisecond);
  rate("BM_Gather/asio_parallel_group", BM_Gather_asio_parallel_group)
      ->Unit(benchmark::kMillisecond);
  once("BM_Timers/concur", BM_Timers_concur);
  once("BM_Timers/asio_callback", BM_Timers_asio_callback);
  once("BM_Timers/asio_coro", BM_Timers_asio_coro);
  once("BM_SleepingTaskBytes/concur", BM_SleepingTaskBytes_concur);
  once("BM_SleepingTaskBytes/asio", BM_SleepingTaskBytes_asio);
  rate("BM_QueuePC/concur", BM_QueuePC_concur)
      ->ArgName("maxsize")
      ->Arg(0)
      ->Arg(100)
      ->Unit(benchmark::kMillisecond);
  rate("BM_QueuePC/asio", BM_QueuePC_asio)
      ->ArgName("maxsize")
      ->Arg(0)
      ->Arg(100)
      ->Unit(benchmark::kMillisecond);
  rate("BM_LockAcquireRelease/concur", BM_LockAcquireRelease_concur);
  rate("BM_SemaphoreAcquireRelease/concur", BM_SemaphoreAcquireRelease_concur);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--aio-sleeper-child=", 0) == 0) return sleeper_child(a.substr(20));
    if (a.rfind("--gather=", 0) == 0) {
      g_gather = std::stoll(a.substr(9));
    } else if (a.rfind("--timers=", 0) == 0) {
      g_timers = std::stoll(a.substr(9));
    } else if (a.rfind("--sleepers=", 0) == 0) {
      g_sleepers = std::stoll(a.substr(11));
    } else if (a.rfind("--queue-items=", 0) == 0) {
      g_queue_items = std::stoll(a.substr(14));
    } else {
      rest.push_back(argv[i]);
    }
  }
  register_all();
  benchmark::AddCustomContext("gather_tasks", std::to_string(g_gather));
  benchmark::AddCustomContext("timers", std::to_string(g_timers));
  benchmark::AddCustomContext("sleepers", std::to_string(g_sleepers));
  benchmark::AddCustomContext("queue_items", std::to_string(g_queue_items));
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
