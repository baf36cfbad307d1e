// pool_bench — concur::ThreadPoolExecutor against oneTBB, Boost.Asio's thread_pool and a naive
// mutex + condition_variable + deque pool, in one Google Benchmark run, every pool with the same
// number of workers (default 2, --workers=N). Names pair each pool with its peers:
//
//   BM_Submit/<pool>      N empty tasks submitted from this (non-worker) thread, then waited for;
//                         items_per_second = tasks/s. concur keeps every Future and waits on each
//                         (submit with futures, as the issue asks); tbb: task_group::run + wait
//                         (the caller joins in while waiting) and task_arena::enqueue + a
//                         countdown; asio: post + a countdown; naive: packaged_task + future.
//   BM_RoundTrip/<pool>   submit one empty task, wait for its result, repeat (a warm pool): the
//                         counters p50_us / p90_us are the median / 90th percentile of the round
//                         trip. tbb: task_arena::enqueue + a waited atomic flag (task_group::wait
//                         would run the task on the caller); asio: post + flag; naive: future.
//   BM_Fib/<pool>         recursive fib(n) where every call ≥ 2 runs fib(n-1) as a task and
//                         waits for it: concur submit + result() (a helping wait); tbb task_group
//                         per call. Asio and the naive pool have no helping wait: a blocked
//                         worker would deadlock them, so they sit this one out.
//   BM_ParallelMap/<pool> 10M doubles in chunks of 10k: sum of x*x+1 per chunk, chunks summed;
//                         concur Executor::map over chunk indices (eager, as Python's map: range
//                         tasks; the default lazy window of 2 × workers: one task per chunk) and
//                         submit() + a Future per chunk; tbb parallel_for over chunks + per-chunk
//                         slots (simple_partitioner grain 1 chunk, and the auto_partitioner);
//                         asio/naive: one task per chunk.
//
// Every case runs Iterations(1) per repetition, so use --benchmark_repetitions and medians. The
// submit and map cases run one untimed pass first (workers started, the allocator's heap grown:
// the first pass of a fresh process otherwise measures page faults and thread starts; oneTBB
// keeps its workers between arenas), for every pool alike.
// Run: ./build/release/bench/pool_bench [--workers=N] [--tasks=N] [--fib=N]
//      [--benchmark_repetitions=5 --benchmark_enable_random_interleaving=true]
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <numeric>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

#include "concur/thread_pool.hpp"

namespace {

std::size_t g_workers = 2;
std::int64_t g_tasks = 1'000'000;
int g_fib = 30;
constexpr int kRoundTrips = 20'000;
constexpr std::size_t kMapItems = 10'000'000;
constexpr std::size_t kChunk = 10'000;

// ---- the naive pool: one mutex, one condition_variable, a deque of std::function ---------------
class NaivePool {
 public:
  explicit NaivePool(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      threads_.emplace_back([this] { work(); });
    }
  }
  NaivePool(const NaivePool&) = delete;
  NaivePool& operator=(const NaivePool&) = delete;
  ~NaivePool() {
    {
      std::scoped_lock lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  template <class F>
  auto submit(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    {
      std::scoped_lock lk(mu_);
      q_.emplace_back([t = std::make_shared<decltype(task)>(std::move(task))] { (*t)(); });
    }
    cv_.notify_one();
    return fut;
  }
  void post(std::function<void()> f) {
    {
      std::scoped_lock lk(mu_);
      q_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;
        f = std::move(q_.front());
        q_.pop_front();
      }
      f();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// A countdown the submitting thread waits on (asio, naive posts).
class Countdown {
 public:
  explicit Countdown(std::int64_t n) : left_(n) {}
  void arrive() {
    if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      done_.store(true, std::memory_order_release);
      done_.notify_one();
    }
  }
  void wait() { done_.wait(false, std::memory_order_acquire); }

 private:
  std::atomic<std::int64_t> left_;
  std::atomic<bool> done_{false};
};

void set_rate(benchmark::State& state, std::int64_t items) {
  state.SetItemsProcessed(items);
  state.counters["workers"] = static_cast<double>(g_workers);
}

// ---- BM_Submit
// ------------------------------------------------------------------------------------
void BM_Submit_concur(benchmark::State& state) {
  concur::ThreadPoolExecutor pool(g_workers);
  const auto pass = [&] {
    std::vector<concur::Future<void>> fs;
    fs.reserve(static_cast<std::size_t>(g_tasks));
    for (std::int64_t i = 0; i < g_tasks; ++i) fs.push_back(pool.submit([] {}));
    for (auto& f : fs) f.wait();
  };
  pass();  // warm: every worker started, the heap grown (untimed, as for every pool)
  for (auto _ : state) pass();
  set_rate(state, g_tasks);
}

// task_group::run from this thread, then task_group::wait (which also runs queued tasks here).
void BM_Submit_tbb_task_group(benchmark::State& state) {
  const auto pass = [] {
    tbb::task_group tg;
    for (std::int64_t i = 0; i < g_tasks; ++i) tg.run([] {});
    tg.wait();
  };
  pass();  // warm
  for (auto _ : state) pass();
  set_rate(state, g_tasks);
}

// task_arena::enqueue (fire-and-forget into an arena of workers only) + a countdown.
void BM_Submit_tbb_arena(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(g_workers), 0);
  const auto pass = [&] {
    Countdown done(g_tasks);
    for (std::int64_t i = 0; i < g_tasks; ++i) arena.enqueue([&done] { done.arrive(); });
    done.wait();
  };
  pass();  // warm
  for (auto _ : state) pass();
  set_rate(state, g_tasks);
}

void BM_Submit_asio(benchmark::State& state) {
  boost::asio::thread_pool pool(g_workers);
  const auto pass = [&] {
    Countdown done(g_tasks);
    for (std::int64_t i = 0; i < g_tasks; ++i) boost::asio::post(pool, [&done] { done.arrive(); });
    done.wait();
  };
  pass();  // warm
  for (auto _ : state) pass();
  pool.join();
  set_rate(state, g_tasks);
}

void BM_Submit_naive(benchmark::State& state) {
  NaivePool pool(g_workers);
  const auto pass = [&] {
    std::vector<std::future<void>> fs;
    fs.reserve(static_cast<std::size_t>(g_tasks));
    for (std::int64_t i = 0; i < g_tasks; ++i) fs.push_back(pool.submit([] {}));
    for (auto& f : fs) f.wait();
  };
  pass();  // warm
  for (auto _ : state) pass();
  set_rate(state, g_tasks);
}

// ---- BM_RoundTrip
// ---------------------------------------------------------------------------------
template <class OneTrip>
void round_trips(benchmark::State& state, OneTrip trip) {
  std::vector<double> us(kRoundTrips);
  for (int i = 0; i < 200; ++i) trip();  // warm
  for (auto _ : state) {
    for (auto& u : us) {
      const auto t0 = std::chrono::steady_clock::now();
      trip();
      u = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p90_us"] = us[us.size() * 9 / 10];
  set_rate(state, kRoundTrips);
}

void BM_RoundTrip_concur(benchmark::State& state) {
  concur::ThreadPoolExecutor pool(g_workers);
  round_trips(state, [&] { pool.submit([] {}).result(); });
}

void BM_RoundTrip_tbb_arena(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(g_workers), 0);
  round_trips(state, [&] {
    std::atomic<bool> flag{false};
    arena.enqueue([&flag] {
      flag.store(true, std::memory_order_release);
      flag.notify_one();
    });
    flag.wait(false, std::memory_order_acquire);
  });
}

void BM_RoundTrip_asio(benchmark::State& state) {
  boost::asio::thread_pool pool(g_workers);
  round_trips(state, [&] {
    std::atomic<bool> flag{false};
    boost::asio::post(pool, [&flag] {
      flag.store(true, std::memory_order_release);
      flag.notify_one();
    });
    flag.wait(false, std::memory_order_acquire);
  });
  pool.join();
}

void BM_RoundTrip_naive(benchmark::State& state) {
  NaivePool pool(g_workers);
  round_trips(state, [&] { pool.submit([] {}).get(); });
}

// ---- BM_Fib
// ---------------------------------------------------------------------------------------
int fib_concur(concur::Executor& ex, int n) {
  if (n < 2) return n;
  auto a = ex.submit(fib_concur, std::ref(ex), n - 1);
  const int b = fib_concur(ex, n - 2);
  return a.result() + b;
}

int fib_tbb(int n) {
  if (n < 2) return n;
  int a = 0;
  tbb::task_group g;
  g.run([&] { a = fib_tbb(n - 1); });
  const int b = fib_tbb(n - 2);
  g.wait();
  return a + b;
}

constexpr int fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

// Tasks spawned by fib(n): one per call with n >= 2, i.e. fib calls minus leaves.
std::int64_t fib_tasks(int n) {
  std::int64_t a = 0, b = 1;  // calls(n) = 2 fib(n+1) - 1; leaves = fib(n+1)
  for (int i = 0; i < n + 1; ++i) {
    const std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return a - 1;  // fib(n+1) - 1 internal nodes
}

void BM_Fib_concur(benchmark::State& state) {
  concur::ThreadPoolExecutor pool(g_workers);
  for (std::size_t i = 0; i < g_workers; ++i) pool.submit([] {}).result();
  for (auto _ : state) {
    const int r = pool.submit(fib_concur, std::ref(pool), g_fib).result();
    if (r != fib_serial(g_fib)) state.SkipWithError("wrong fib");
  }
  set_rate(state, fib_tasks(g_fib));
}

void BM_Fib_tbb_task_group(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(g_workers), 1);  // the caller takes part, as in concur
  for (auto _ : state) {
    int r = 0;
    arena.execute([&] { r = fib_tbb(g_fib); });
    if (r != fib_serial(g_fib)) state.SkipWithError("wrong fib");
  }
  set_rate(state, fib_tasks(g_fib));
}

// ---- BM_ParallelMap
// -------------------------------------------------------------------------------
double chunk_sum(const std::vector<double>& x, std::size_t c) {
  double s = 0;
  const std::size_t end = std::min(x.size(), (c + 1) * kChunk);
  for (std::size_t i = c * kChunk; i < end; ++i) s += x[i] * x[i] + 1.0;
  return s;
}

constexpr std::size_t kChunks = kMapItems / kChunk;

// map_input(): the doubles, and the sum every pass must find (computed serially, once, when a
// case first asks for the input: outside the timed loops).
struct MapInput {
  std::vector<double> x;
  double want = 0;
};
const MapInput& map_input_and_sum() {
  static const MapInput in = [] {
    MapInput m;
    m.x.resize(kMapItems);
    for (std::size_t i = 0; i < m.x.size(); ++i) m.x[i] = static_cast<double>(i % 1000) * 0.001;
    for (std::size_t c = 0; c < kChunks; ++c) m.want += chunk_sum(m.x, c);
    return m;
  }();
  return in;
}
const std::vector<double>& map_input() { return map_input_and_sum().x; }

void check_map(benchmark::State& state, double got) {
  if (got != map_input_and_sum().want) state.SkipWithError("wrong map sum");
}

void parallel_map_concur(benchmark::State& state, concur::MapOptions options) {
  const auto& x = map_input();
  concur::ThreadPoolExecutor pool(g_workers);
  const auto pass = [&] {
    double total = 0;
    for (const double s : pool.map([&x](std::size_t c) { return chunk_sum(x, c); },
                                   std::views::iota(std::size_t{0}, kChunks), options)) {
      total += s;
    }
    return total;
  };
  (void)pass();  // warm: the workers started (untimed, as for every pool)
  for (auto _ : state) check_map(state, pass());
  set_rate(state, static_cast<std::int64_t>(kMapItems));
}
// eager: every chunk submitted at once, as Python's map does.
void BM_ParallelMap_concur(benchmark::State& state) {
  parallel_map_concur(state, concur::MapOptions{.eager = true});
}
void BM_ParallelMap_concur_persistent(benchmark::State& state) {
  const auto& x = map_input();
  static concur::ThreadPoolExecutor pool(g_workers);
  const auto pass = [&] {
    double total = 0;
    for (const double s :
         pool.map([&x](std::size_t c) { return chunk_sum(x, c); },
                  std::views::iota(std::size_t{0}, kChunks), concur::MapOptions{.eager = true})) {
      total += s;
    }
    return total;
  };
  (void)pass();
  for (auto _ : state) check_map(state, pass());
  set_rate(state, static_cast<std::int64_t>(kMapItems));
}
// the default lazy map: 2 × workers chunks in flight.
void BM_ParallelMap_concur_lazy(benchmark::State& state) {
  parallel_map_concur(state, concur::MapOptions{});
}
// one submit() and one Future per chunk, results taken in order: what the eager map did before it
// ran as range tasks (kept as the record of that path).
void BM_ParallelMap_concur_submit(benchmark::State& state) {
  const auto& x = map_input();
  concur::ThreadPoolExecutor pool(g_workers);
  const auto pass = [&] {
    std::vector<concur::Future<double>> fs;
    fs.reserve(kChunks);
    for (std::size_t c = 0; c < kChunks; ++c) {
      fs.push_back(pool.submit([&x, c] { return chunk_sum(x, c); }));
    }
    double total = 0;
    for (auto& f : fs) total += f.result();
    return total;
  };
  (void)pass();  // warm
  for (auto _ : state) check_map(state, pass());
  set_rate(state, static_cast<std::int64_t>(kMapItems));
}

template <class Partitioner>
void parallel_map_tbb(benchmark::State& state, std::size_t grain) {
  const auto& x = map_input();
  tbb::task_arena arena(static_cast<int>(g_workers), 1);
  const auto pass = [&] {
    std::vector<double> sums(kChunks);
    arena.execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<std::size_t>(0, kChunks, grain),
          [&](const tbb::blocked_range<std::size_t>& r) {
            for (std::size_t c = r.begin(); c != r.end(); ++c) sums[c] = chunk_sum(x, c);
          },
          Partitioner());
    });
    return std::accumulate(sums.begin(), sums.end(), 0.0);
  };
  (void)pass();  // warm
  for (auto _ : state) check_map(state, pass());
  set_rate(state, static_cast<std::int64_t>(kMapItems));
}
// simple_partitioner, grain 1 chunk: every chunk its own task (the reference).
void BM_ParallelMap_tbb_parallel_for(benchmark::State& state) {
  parallel_map_tbb<tbb::simple_partitioner>(state, 1);
}
// the default auto_partitioner: ranges split only as thieves ask for work.
void BM_ParallelMap_tbb_parallel_for_auto(benchmark::State& state) {
  parallel_map_tbb<tbb::auto_partitioner>(state, 1);
}

void BM_ParallelMap_asio(benchmark::State& state) {
  const auto& x = map_input();
  boost::asio::thread_pool pool(g_workers);
  const auto pass = [&] {
    std::vector<double> sums(kChunks);
    Countdown done(static_cast<std::int64_t>(kChunks));
    for (std::size_t c = 0; c < kChunks; ++c) {
      boost::asio::post(pool, [&, c] {
        sums[c] = chunk_sum(x, c);
        done.arrive();
      });
    }
    done.wait();
    return std::accumulate(sums.begin(), sums.end(), 0.0);
  };
  (void)pass();  // warm
  for (auto _ : state) check_map(state, pass());
  pool.join();
  set_rate(state, static_cast<std::int64_t>(kMapItems));
}

void BM_ParallelMap_naive(benchmark::State& state) {
  const auto& x = map_input();
  NaivePool pool(g_workers);
  const auto pass = [&] {
    std::vector<std::future<double>> fs;
    fs.reserve(kChunks);
    for (std::size_t c = 0; c < kChunks; ++c) {
      fs.push_back(pool.submit([&x, c] { return chunk_sum(x, c); }));
    }
    double total = 0;
    for (auto& f : fs) total += f.get();
    return total;
  };
  (void)pass();  // warm
  for (auto _ : state) check_map(state, pass());
  set_rate(state, static_cast<std::int64_t>(kMapItems));
}

void register_all() {
  const auto reg = [](const char* name, void (*fn)(benchmark::State&)) {
    benchmark::RegisterBenchmark(name, fn)->Iterations(1)->UseRealTime()->Unit(
        benchmark::kMillisecond);
  };
  reg("BM_Submit/concur", BM_Submit_concur);
  reg("BM_Submit/tbb_task_group", BM_Submit_tbb_task_group);
  reg("BM_Submit/tbb_task_arena_enqueue", BM_Submit_tbb_arena);
  reg("BM_Submit/asio_thread_pool", BM_Submit_asio);
  reg("BM_Submit/naive_mutex_cv_pool", BM_Submit_naive);
  reg("BM_RoundTrip/concur", BM_RoundTrip_concur);
  reg("BM_RoundTrip/tbb_task_arena_enqueue", BM_RoundTrip_tbb_arena);
  reg("BM_RoundTrip/asio_thread_pool", BM_RoundTrip_asio);
  reg("BM_RoundTrip/naive_mutex_cv_pool", BM_RoundTrip_naive);
  reg("BM_Fib/concur", BM_Fib_concur);
  reg("BM_Fib/tbb_task_group", BM_Fib_tbb_task_group);
  reg("BM_ParallelMap/concur", BM_ParallelMap_concur);
  reg("BM_ParallelMap/concur_lazy_window", BM_ParallelMap_concur_lazy);
  reg("BM_ParallelMap/concur_persistent", BM_ParallelMap_concur_persistent);
  reg("BM_ParallelMap/concur_submit_futures", BM_ParallelMap_concur_submit);
  reg("BM_ParallelMap/tbb_parallel_for", BM_ParallelMap_tbb_parallel_for);
  reg("BM_ParallelMap/tbb_parallel_for_auto", BM_ParallelMap_tbb_parallel_for_auto);
  reg("BM_ParallelMap/asio_thread_pool", BM_ParallelMap_asio);
  reg("BM_ParallelMap/naive_mutex_cv_pool", BM_ParallelMap_naive);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--workers=", 0) == 0) {
      g_workers = std::stoul(a.substr(10));
    } else if (a.rfind("--tasks=", 0) == 0) {
      g_tasks = std::stoll(a.substr(8));
    } else if (a.rfind("--fib=", 0) == 0) {
      g_fib = std::stoi(a.substr(6));
    } else {
      rest.push_back(argv[i]);
    }
  }
  // tbb's own worker count follows the arena sizes above; cap the global pool to the same.
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, g_workers + 1);
  register_all();
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
