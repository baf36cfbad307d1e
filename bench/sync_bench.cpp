// sync_bench — concur's synchronization primitives against their plain-std baselines, in one
// Google Benchmark run. Names pair each concur case with its baseline so they sort together:
//
//   BM_Uncontended/{concur_Lock,std_mutex,concur_RLock,std_recursive_mutex}
//       acquire + release by one thread, nobody else touching the lock.
//   BM_Contended/{concur_Lock,std_mutex}/threads:N
//       N threads (1..ncpu, at least 2) each increment one shared counter under the lock;
//       items/s counts increments by all threads.
//   BM_CondPingPong/{concur_Condition,std_condition_variable}
//   BM_EventPingPong/{concur_Event,std_atomic_wait}
//   BM_SemPingPong/{concur_Semaphore,std_counting_semaphore,std_binary_semaphore}
//       one round trip per iteration between the benchmark thread and a partner thread that is
//       started once per benchmark run (not per iteration); items/s = round trips/s.
//
// Every ping-pong hands a turn back and forth, so each iteration is exactly one round trip and
// a lost wake-up would hang the run rather than inflate it; shutdown() hands the partner one
// last turn that tells it to stop, so every run ends by joining it.
// Run: ./build/release/bench/sync_bench [--benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true] [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <semaphore>
#include <thread>

#include "concur/sync/condition.hpp"
#include "concur/sync/event.hpp"
#include "concur/sync/lock.hpp"
#include "concur/sync/rlock.hpp"
#include "concur/sync/semaphore.hpp"

namespace {

// kMaxThreads is the top of the thread sweep: every core, and never fewer than 2 so that the
// contended case always contends.
const int kMaxThreads = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));

// ---- Uncontended acquire/release ------------------------------------------------------------

// Python's spelling (acquire/release) for concur, the std spelling for the baselines.
template <class L>
void acquire(L& l) {
  if constexpr (requires { l.acquire(); }) {
    l.acquire();
  } else {
    l.lock();
  }
}
template <class L>
void release(L& l) {
  if constexpr (requires { l.release(); }) {
    l.release();
  } else {
    l.unlock();
  }
}

template <class L>
void BM_Uncontended(benchmark::State& state) {
  L lock;
  for (auto _ : state) {
    acquire(lock);
    benchmark::ClobberMemory();
    release(lock);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_TEMPLATE(BM_Uncontended, concur::Lock)->Name("BM_Uncontended/concur_Lock");
BENCHMARK_TEMPLATE(BM_Uncontended, std::mutex)->Name("BM_Uncontended/std_mutex");
BENCHMARK_TEMPLATE(BM_Uncontended, concur::RLock)->Name("BM_Uncontended/concur_RLock");
BENCHMARK_TEMPLATE(BM_Uncontended, std::recursive_mutex)
    ->Name("BM_Uncontended/std_recursive_mutex");

// ---- Contended counter ----------------------------------------------------------------------

// Shared by the threads of one benchmark run: Setup zeroes it before the threads start,
// Teardown checks after they all finished that no increment was lost.
template <class L>
struct Counter {
  static inline L lock;
  static inline std::int64_t value = 0;
  static inline std::atomic<std::int64_t> expected{0};

  static void setup(const benchmark::State&) {
    value = 0;
    expected.store(0);
  }
  static void teardown(const benchmark::State&) {
    if (value != expected.load()) {
      std::fprintf(stderr, "BM_Contended: counter %lld, expected %lld\n",
                   static_cast<long long>(value), static_cast<long long>(expected.load()));
      std::abort();
    }
  }
};

template <class L>
void BM_Contended(benchmark::State& state) {
  using C = Counter<L>;
  for (auto _ : state) {
    acquire(C::lock);
    ++C::value;
    release(C::lock);
  }
  C::expected.fetch_add(static_cast<std::int64_t>(state.iterations()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_TEMPLATE(BM_Contended, concur::Lock)
    ->Name("BM_Contended/concur_Lock")
    ->Setup(Counter<concur::Lock>::setup)
    ->Teardown(Counter<concur::Lock>::teardown)
    ->DenseThreadRange(1, kMaxThreads)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Contended, std::mutex)
    ->Name("BM_Contended/std_mutex")
    ->Setup(Counter<std::mutex>::setup)
    ->Teardown(Counter<std::mutex>::teardown)
    ->DenseThreadRange(1, kMaxThreads)
    ->UseRealTime();

// ---- Ping-pong ------------------------------------------------------------------------------

// A Channel offers round_trip() (benchmark thread: hand the turn over, wait for it back),
// serve() (partner: wait for the turn, hand it back; false once told to stop) and shutdown()
// (benchmark thread, after the timed loop: make the partner's serve() return false).
template <class Channel>
void BM_PingPong(benchmark::State& state) {
  Channel ch;
  std::thread partner([&ch] { ch.serve_all(); });
  ch.start();
  for (auto _ : state) ch.round_trip();
  ch.shutdown();
  partner.join();
  state.SetItemsProcessed(state.iterations());
}

// Channels whose serve() is called in a loop, and that need no set-up on the benchmark thread.
struct LoopChannel {
  std::atomic<bool> stop{false};
  void start() {}
};

// Condition: one turn flag under the lock. Each side holds the lock for its whole run and lets
// go of it only inside wait(), the classic condition-variable ping-pong.
enum class Turn { kMain, kPartner, kStop };

struct ConcurCondChannel {
  concur::Lock lock;
  concur::Condition cond{lock};
  Turn turn = Turn::kMain;

  void start() { lock.acquire(); }
  void round_trip() {
    turn = Turn::kPartner;
    cond.notify();
    while (turn != Turn::kMain) cond.wait();
  }
  void serve_all() {
    lock.acquire();
    for (;;) {
      while (turn == Turn::kMain) cond.wait();
      if (turn == Turn::kStop) break;
      turn = Turn::kMain;
      cond.notify();
    }
    lock.release();
  }
  void shutdown() {
    turn = Turn::kStop;
    cond.notify();
    lock.release();
  }
};

struct StdCondChannel {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> main_lock{mu, std::defer_lock};
  Turn turn = Turn::kMain;

  void start() { main_lock.lock(); }
  void round_trip() {
    turn = Turn::kPartner;
    cv.notify_one();
    while (turn != Turn::kMain) cv.wait(main_lock);
  }
  void serve_all() {
    std::unique_lock lk(mu);
    for (;;) {
      while (turn == Turn::kMain) cv.wait(lk);
      if (turn == Turn::kStop) break;
      turn = Turn::kMain;
      cv.notify_one();
    }
  }
  void shutdown() {
    turn = Turn::kStop;
    cv.notify_one();
    main_lock.unlock();
  }
};

BENCHMARK_TEMPLATE(BM_PingPong, ConcurCondChannel)
    ->Name("BM_CondPingPong/concur_Condition")
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_PingPong, StdCondChannel)
    ->Name("BM_CondPingPong/std_condition_variable")
    ->UseRealTime();

// Event: ping and pong, each set by one side and waited for and cleared by the other. Each side
// clears the event it received before answering, so a set is never cleared unseen.
struct ConcurEventChannel : LoopChannel {
  concur::Event ping;
  concur::Event pong;

  void round_trip() {
    ping.set();
    pong.wait();
    pong.clear();
  }
  void serve_all() {
    for (;;) {
      ping.wait();
      ping.clear();
      if (stop.load(std::memory_order_relaxed)) return;  // ordered by ping's set/wait
      pong.set();
    }
  }
  void shutdown() {
    stop.store(true, std::memory_order_relaxed);
    ping.set();
  }
};

// The same protocol on bare C++20 atomic wait/notify: 1 = set, 0 = clear.
struct StdAtomicChannel : LoopChannel {
  std::atomic<int> ping{0};
  std::atomic<int> pong{0};

  void round_trip() {
    ping.store(1);
    ping.notify_one();
    pong.wait(0);
    pong.store(0, std::memory_order_relaxed);
  }
  void serve_all() {
    for (;;) {
      ping.wait(0);
      ping.store(0, std::memory_order_relaxed);
      if (stop.load(std::memory_order_relaxed)) return;
      pong.store(1);
      pong.notify_one();
    }
  }
  void shutdown() {
    stop.store(true, std::memory_order_relaxed);
    ping.store(1);
    ping.notify_one();
  }
};

BENCHMARK_TEMPLATE(BM_PingPong, ConcurEventChannel)
    ->Name("BM_EventPingPong/concur_Event")
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_PingPong, StdAtomicChannel)
    ->Name("BM_EventPingPong/std_atomic_wait")
    ->UseRealTime();

// Semaphore: two semaphores at 0; each side releases the other's and acquires its own.
template <class Sem>
struct SemChannel : LoopChannel {
  Sem ping{0};
  Sem pong{0};

  void round_trip() {
    ping.release();
    pong.acquire();
  }
  void serve_all() {
    for (;;) {
      ping.acquire();
      if (stop.load(std::memory_order_relaxed)) return;
      pong.release();
    }
  }
  void shutdown() {
    stop.store(true, std::memory_order_relaxed);
    ping.release();
  }
};

BENCHMARK_TEMPLATE(BM_PingPong, SemChannel<concur::Semaphore>)
    ->Name("BM_SemPingPong/concur_Semaphore")
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_PingPong, SemChannel<std::counting_semaphore<>>)
    ->Name("BM_SemPingPong/std_counting_semaphore")
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_PingPong, SemChannel<std::binary_semaphore>)
    ->Name("BM_SemPingPong/std_binary_semaphore")
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
