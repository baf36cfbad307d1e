// queue_bench — concur's queues against a plain-std baseline and two peer libraries, in one
// Google Benchmark run: items/s moving N ints (default 10,000,000) from P producer threads to C
// consumer threads. Names pair every queue with its peers so they sort together:
//
//   BM_Queue_1P1C/<queue>, BM_Queue_2P2C/<queue>, for <queue> in
//     concur_SimpleQueue              concur::SimpleQueue<int>, put / get
//     concur_Queue                    concur::Queue<int>() (unbounded), put / get
//     concur_Queue_1024               concur::Queue<int>(1024), put / get
//     std_mutex_cv_deque              std::mutex + 2 std::condition_variable + std::deque
//     std_mutex_cv_deque_1024         the same, bounded to 1024 items
//     moodycamel_Blocking             moodycamel::BlockingConcurrentQueue<int>, enqueue /
//                                     wait_dequeue (no tokens)
//     tbb_bounded_1024                tbb::concurrent_bounded_queue<int>, set_capacity(1024),
//                                     push / pop
//     concur_SimpleQueue_batch64      put_many / get_many, 64 items per call
//     concur_Queue_1024_batch64
//     moodycamel_Blocking_bulk64      enqueue_bulk / wait_dequeue_bulk, 64 items per call
//
// One iteration is one pass: a fresh queue, P + C fresh threads that wait on a latch, then the
// timed part — open the latch, every producer puts N/P items, every consumer takes exactly N/C
// items (so no consumer needs a sentinel or a poll to know when to stop), join all. Thread
// creation and the queue's construction and destruction are outside the timed part (PauseTiming);
// the latch wake-up (tens of µs) is inside, negligible against N items. Producer p puts the values
// p*N/P + 1 .. (p+1)*N/P; after each pass the consumers' sum must be N(N+1)/2 or the run aborts.
// Every case runs a fixed single iteration per repetition: use --benchmark_repetitions for
// medians.
//
// Stability (issue 13: the same binary ranged 0.63x-2.15x moodycamel between runs): every pass
// is preceded by an untimed warm-up pass of a tenth of the items on a fresh queue (allocator,
// page faults, CPU frequency), and the threads are pinned (--placement=spread, the default): with
// the process's allowed CPUs c0, c1, ..., producer i runs on c(i mod n) and consumer j on
// c((j + 1) mod n) — at 1P/1C one CPU each, at 2P/2C on 2 CPUs one producer and one consumer per
// CPU — so no pass depends on where the scheduler happened to put the threads.
// --placement=none leaves placement to the scheduler (the behaviour before). Every case reports
// min and max beside Google Benchmark's mean / median / stddev / cv over --benchmark_repetitions.
//
// Extra counters per pass: cpu_per_item (process CPU time / items, ns — wall time per item is
// 1e9 / items_per_second; cpu > wall means threads burnt CPU spinning in parallel) and
// csw_per_kitem (voluntary + involuntary context switches of the process per 1000 items).
//
// Run: ./build/release/bench/queue_bench [--items=N] [--placement=spread|none]
//      [--benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true] [--benchmark_format=json]
//      (CONCUR_QUEUE_BENCH_ITEMS=N does the same as --items=N.)
#include <benchmark/benchmark.h>
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <tbb/concurrent_queue.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <latch>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "concur/queue.hpp"

namespace {

constexpr std::int64_t kDefaultItems = 10'000'000;
std::int64_t g_items = kDefaultItems;  // set once in main() before any benchmark runs

bool g_pin = true;        // --placement=spread (true) or none
std::vector<int> g_cpus;  // the CPUs this process may run on, in order

constexpr std::size_t kBound = 1024;
constexpr std::size_t kBatch = 64;

// ---- Queue adapters -------------------------------------------------------------------------
// An adapter names a queue type, how to make one, and how a producer puts the values
// first .. first+count-1 (produce) and a consumer takes exactly `count` items, returning their
// sum (consume). Single-item adapters only define put / get; ItemByItem turns those into
// produce / consume.

template <class A>
struct ItemByItem {
  template <class Q>
  static void produce(Q& q, int first, int count) {
    for (int i = 0; i < count; ++i) A::put(q, first + i);
  }
  template <class Q>
  static std::int64_t consume(Q& q, int count) {
    std::int64_t sum = 0;
    for (int i = 0; i < count; ++i) sum += A::get(q);
    return sum;
  }
};

template <class Q, std::size_t kMaxsize>
struct ConcurQueue : ItemByItem<ConcurQueue<Q, kMaxsize>> {
  using Queue = Q;
  static std::unique_ptr<Q> make() {
    if constexpr (kMaxsize == 0) {
      return std::make_unique<Q>();
    } else {
      return std::make_unique<Q>(kMaxsize);
    }
  }
  static void put(Q& q, int v) { q.put(v); }
  static int get(Q& q) { return q.get(); }
};

// put_many / get_many, kBatch items per call.
template <class Q, std::size_t kMaxsize>
struct ConcurBatch {
  using Queue = Q;
  static std::unique_ptr<Q> make() { return ConcurQueue<Q, kMaxsize>::make(); }
  static void produce(Q& q, int first, int count) {
    std::array<int, kBatch> batch{};
    for (int done = 0; done < count;) {
      const int n = std::min(static_cast<int>(kBatch), count - done);
      for (int i = 0; i < n; ++i) batch[static_cast<std::size_t>(i)] = first + done + i;
      q.put_many(std::span(batch.data(), static_cast<std::size_t>(n)));
      done += n;
    }
  }
  static std::int64_t consume(Q& q, int count) {
    std::int64_t sum = 0;
    for (int done = 0; done < count;) {
      const auto want = std::min(kBatch, static_cast<std::size_t>(count - done));
      const std::vector<int> got = q.get_many(want);
      for (const int v : got) sum += v;
      done += static_cast<int>(got.size());
    }
    return sum;
  }
};

// The plain-std baseline: one mutex, a condition variable per direction, a deque; notify after
// unlocking. kMaxsize 0 is unbounded.
template <std::size_t kMaxsize>
class StdQueue {
 public:
  void put(int v) {
    std::unique_lock lk(mu_);
    if constexpr (kMaxsize > 0) {
      while (items_.size() >= kMaxsize) not_full_.wait(lk);
    }
    items_.push_back(v);
    lk.unlock();
    not_empty_.notify_one();
  }
  int get() {
    std::unique_lock lk(mu_);
    while (items_.empty()) not_empty_.wait(lk);
    const int v = items_.front();
    items_.pop_front();
    lk.unlock();
    if constexpr (kMaxsize > 0) not_full_.notify_one();
    return v;
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<int> items_;
};

template <std::size_t kMaxsize>
struct StdAdapter : ItemByItem<StdAdapter<kMaxsize>> {
  using Queue = StdQueue<kMaxsize>;
  static std::unique_ptr<Queue> make() { return std::make_unique<Queue>(); }
  static void put(Queue& q, int v) { q.put(v); }
  static int get(Queue& q) { return q.get(); }
};

struct Moodycamel : ItemByItem<Moodycamel> {
  using Queue = moodycamel::BlockingConcurrentQueue<int>;
  static std::unique_ptr<Queue> make() { return std::make_unique<Queue>(); }
  static void put(Queue& q, int v) {
    if (!q.enqueue(v)) std::abort();  // only fails when out of memory
  }
  static int get(Queue& q) {
    int v = 0;
    q.wait_dequeue(v);
    return v;
  }
};

struct MoodycamelBulk {
  using Queue = moodycamel::BlockingConcurrentQueue<int>;
  static std::unique_ptr<Queue> make() { return std::make_unique<Queue>(); }
  static void produce(Queue& q, int first, int count) {
    std::array<int, kBatch> batch{};
    for (int done = 0; done < count;) {
      const int n = std::min(static_cast<int>(kBatch), count - done);
      for (int i = 0; i < n; ++i) batch[static_cast<std::size_t>(i)] = first + done + i;
      if (!q.enqueue_bulk(batch.data(), static_cast<std::size_t>(n))) std::abort();
      done += n;
    }
  }
  static std::int64_t consume(Queue& q, int count) {
    std::array<int, kBatch> batch{};
    std::int64_t sum = 0;
    for (int done = 0; done < count;) {
      const auto want = std::min(kBatch, static_cast<std::size_t>(count - done));
      const std::size_t got = q.wait_dequeue_bulk(batch.data(), want);
      for (std::size_t i = 0; i < got; ++i) sum += batch[i];
      done += static_cast<int>(got);
    }
    return sum;
  }
};

struct TbbBounded : ItemByItem<TbbBounded> {
  using Queue = tbb::concurrent_bounded_queue<int>;
  static std::unique_ptr<Queue> make() {
    auto q = std::make_unique<Queue>();
    q->set_capacity(static_cast<std::ptrdiff_t>(kBound));
    return q;
  }
  static void put(Queue& q, int v) { q.push(v); }
  static int get(Queue& q) {
    int v = 0;
    q.pop(v);
    return v;
  }
};

// ---- The pass -------------------------------------------------------------------------------

std::int64_t process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t context_switches() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

// allowed_cpus() lists the CPUs in this process's affinity mask.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

// pin(t, slot) binds thread t to CPU g_cpus[slot mod n] under --placement=spread.
void pin(std::thread& t, int slot) {
  if (!g_pin || g_cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(g_cpus[static_cast<std::size_t>(slot) % g_cpus.size()], &set);
  pthread_setaffinity_np(t.native_handle(), sizeof(set), &set);
}

// Pass is one run of `producers` x `consumers` threads over a fresh queue moving `n` items; the
// threads wait on a latch until go().
template <class A>
class Pass {
 public:
  Pass(int producers, int consumers, std::int64_t n) : q_(A::make()) {
    const int per_producer = static_cast<int>(n / producers);
    const int per_consumer = static_cast<int>(n / consumers);
    for (int p = 0; p < producers; ++p) {
      threads_.emplace_back([this, p, per_producer] {
        go_.wait();
        A::produce(*q_, p * per_producer + 1, per_producer);
      });
      pin(threads_.back(), p);
    }
    for (int c = 0; c < consumers; ++c) {
      threads_.emplace_back([this, per_consumer] {
        go_.wait();
        sum_.fetch_add(A::consume(*q_, per_consumer), std::memory_order_relaxed);
      });
      pin(threads_.back(), c + 1);
    }
  }
  Pass(const Pass&) = delete;
  Pass& operator=(const Pass&) = delete;
  ~Pass() { join(); }
  void go() { go_.count_down(); }
  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  [[nodiscard]] std::int64_t sum() const { return sum_.load(); }

 private:
  std::unique_ptr<typename A::Queue> q_;
  std::latch go_{1};
  std::atomic<std::int64_t> sum_{0};
  std::vector<std::thread> threads_;
};

template <class A>
void BM_Queue(benchmark::State& state, const std::string& name, int producers, int consumers) {
  // n is g_items rounded down so that every producer and every consumer gets an equal share.
  const std::int64_t n = g_items - g_items % (producers * consumers);
  const std::int64_t expected = n * (n + 1) / 2;
  std::int64_t cpu_ns = 0;
  std::int64_t switches = 0;

  // The warm-up pass: a tenth of the items, untimed, on its own fresh queue and threads.
  const std::int64_t unit = producers * consumers;
  const std::int64_t warm = std::max(unit, (n / 10) - (n / 10) % unit);

  for (auto _ : state) {
    state.PauseTiming();
    {
      Pass<A> warm_up(producers, consumers, warm);
      warm_up.go();
    }
    auto pass = std::make_unique<Pass<A>>(producers, consumers, n);
    const std::int64_t cpu0 = process_cpu_ns();
    const std::int64_t csw0 = context_switches();
    state.ResumeTiming();

    pass->go();
    pass->join();

    state.PauseTiming();
    cpu_ns += process_cpu_ns() - cpu0;
    switches += context_switches() - csw0;
    if (pass->sum() != expected) {
      std::fprintf(stderr, "%s: checksum %lld, expected %lld — items lost or duplicated\n",
                   name.c_str(), static_cast<long long>(pass->sum()),
                   static_cast<long long>(expected));
      std::abort();
    }
    pass.reset();
    state.ResumeTiming();
  }
  const auto total = static_cast<double>(n) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(total));
  state.counters["cpu_per_item"] = static_cast<double>(cpu_ns) / total;
  state.counters["csw_per_kitem"] = static_cast<double>(switches) * 1000.0 / total;
  state.counters["items"] = static_cast<double>(n);
}

template <class A>
void add(const char* config, int producers, int consumers, const char* queue) {
  const std::string name = std::string("BM_Queue_") + config + "/" + queue;
  benchmark::RegisterBenchmark(name.c_str(),
                               [name, producers, consumers](benchmark::State& state) {
                                 BM_Queue<A>(state, name, producers, consumers);
                               })
      ->UseRealTime()
      ->Iterations(1)
      ->ComputeStatistics(
          "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); })
      ->ComputeStatistics(
          "max", [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); })
      ->Unit(benchmark::kMillisecond);
}

void register_all() {
  struct Config {
    const char* name;
    int producers;
    int consumers;
  };
  for (const Config c : {Config{"1P1C", 1, 1}, Config{"2P2C", 2, 2}}) {
    add<ConcurQueue<concur::SimpleQueue<int>, 0>>(c.name, c.producers, c.consumers,
                                                  "concur_SimpleQueue");
    add<ConcurQueue<concur::Queue<int>, 0>>(c.name, c.producers, c.consumers, "concur_Queue");
    add<ConcurQueue<concur::Queue<int>, kBound>>(c.name, c.producers, c.consumers,
                                                 "concur_Queue_1024");
    add<StdAdapter<0>>(c.name, c.producers, c.consumers, "std_mutex_cv_deque");
    add<StdAdapter<kBound>>(c.name, c.producers, c.consumers, "std_mutex_cv_deque_1024");
    add<Moodycamel>(c.name, c.producers, c.consumers, "moodycamel_Blocking");
    add<TbbBounded>(c.name, c.producers, c.consumers, "tbb_bounded_1024");
    add<ConcurBatch<concur::SimpleQueue<int>, 0>>(c.name, c.producers, c.consumers,
                                                  "concur_SimpleQueue_batch64");
    add<ConcurBatch<concur::Queue<int>, kBound>>(c.name, c.producers, c.consumers,
                                                 "concur_Queue_1024_batch64");
    add<MoodycamelBulk>(c.name, c.producers, c.consumers, "moodycamel_Blocking_bulk64");
  }
}

// parse_items reads a positive item count (at least 4, at most INT32_MAX for int values);
// exits on anything else.
std::int64_t parse_items(const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < 4 || v > 2'000'000'000LL) {
    std::fprintf(stderr, "queue_bench: bad item count '%s' (want 4 .. 2e9)\n", text);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* env = std::getenv("CONCUR_QUEUE_BENCH_ITEMS")) g_items = parse_items(env);
  // Take --items=N and --placement=... out of argv before Google Benchmark sees it.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--items=", 8) == 0) {
      g_items = parse_items(argv[i] + 8);
    } else if (std::strcmp(argv[i], "--placement=spread") == 0) {
      g_pin = true;
    } else if (std::strcmp(argv[i], "--placement=none") == 0) {
      g_pin = false;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  g_cpus = allowed_cpus();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::AddCustomContext("items_per_pass", std::to_string(g_items));
  benchmark::AddCustomContext("placement", g_pin ? "spread" : "none");
  benchmark::AddCustomContext("cpus", std::to_string(g_cpus.size()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
