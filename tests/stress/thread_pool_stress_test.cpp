// Stress tests for concur/thread_pool.hpp: volume and races, each round checking the invariants a
// race could break.
// - 1M empty tasks submitted from outside (one thread, then four), every future done, stats()
//   counting all of them;
// - recursive fork-join fib with helping on 1, 2, 3, 4 and 8 workers, and three external callers
//   running fork-joins on one pool at once (stealing, nested helping, deque growth);
// - shutdown racing submits from four threads, with and without cancel_futures: every accepted
//   task runs exactly once or is cancelled and never runs; nothing stays pending;
// - cancel racing start: each future ends cancelled (never ran) or finished (ran once);
// - many as_completed() over pool futures: several consumers over the same futures each see every
//   one once while another range is abandoned mid-way, and one range over 100k futures.
// Bounded: every wait is timed (kGenerous); volumes shrink under sanitizers so that the TSan run
// stays well under a minute. Label "stress".
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/future.hpp"
#include "concur/sync/barrier.hpp"
#include "concur/thread_pool.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 2;  // sanitizers slow every task ~5-10x: the TSan run takes ~10 s
constexpr int kFibN = 20;
#else
constexpr std::size_t kScale = 1;
constexpr int kFibN = 22;
#endif

constexpr auto kZero = std::chrono::seconds(0);

int fib_plain(int n) { return n < 2 ? n : fib_plain(n - 1) + fib_plain(n - 2); }

int fib(ThreadPoolExecutor& pool, int n) {
  if (n < 2) return n;
  auto a = pool.submit(fib, std::ref(pool), n - 1);
  auto b = pool.submit(fib, std::ref(pool), n - 2);
  return a.result(kGenerous) + b.result(kGenerous);
}

class ThreadPoolStressTest : public QuiescentTest {
 protected:
  void SetUp() override {
    QuiescentTest::SetUp();
    previous_ = set_excepthook([this](const ExceptHookArgs&) { reports_.fetch_add(1); });
  }
  void TearDown() override {
    set_excepthook(previous_);
    EXPECT_EQ(reports_.load(), 0U) << "unexpected excepthook reports";
    QuiescentTest::TearDown();
  }

 private:
  ExceptHook previous_;
  std::atomic<std::size_t> reports_{0};
};

// ==== volume =====================================================================================

TEST_F(ThreadPoolStressTest, OneMillionEmptyTasksFromOutside) {
  const std::size_t n = 1'000'000 / kScale;
  ThreadPoolExecutor pool;
  {
    std::vector<Future<void>> fs;
    fs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) fs.push_back(pool.submit([] {}));
    for (auto& f : fs) ASSERT_NO_THROW(f.result(kGenerous));
  }
  // The same volume from four threads at once.
  constexpr std::size_t kSubmitters = 4;
  std::array<std::vector<Future<void>>, kSubmitters> fs;
  {
    Bunch submitters(kSubmitters, [&](std::size_t t) {
      fs[t].reserve(n / kSubmitters);
      for (std::size_t i = 0; i < n / kSubmitters; ++i) fs[t].push_back(pool.submit([] {}));
    });
  }
  for (auto& v : fs) {
    for (auto& f : v) ASSERT_NO_THROW(f.result(kGenerous));
  }
  EXPECT_TRUE(wait_until([&] { return pool.stats().completed == 2 * n; }))
      << "completed=" << pool.stats().completed << " of " << 2 * n;
  EXPECT_EQ(pool.stats().queued, 0U);
}

TEST_F(ThreadPoolStressTest, RecursiveForkJoinWithHelping) {
  const int expected = fib_plain(kFibN);
  for (const std::size_t workers : {1, 2, 3, 4, 8}) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    ThreadPoolExecutor pool(workers);
    EXPECT_EQ(pool.submit(fib, std::ref(pool), kFibN).result(kGenerous), expected);
  }
  // Three external callers, each running a fork-join on the same 2-worker pool.
  ThreadPoolExecutor pool(2);
  std::array<int, 3> got{};
  {
    Bunch callers(3, [&](std::size_t i) {
      got[i] = pool.submit(fib, std::ref(pool), kFibN - 2).result(kGenerous);
    });
  }
  for (int v : got) EXPECT_EQ(v, fib_plain(kFibN - 2));
}

// ==== races ======================================================================================

// Four threads submit as fast as they can; the test thread shuts the pool down at a random moment
// (every other round with cancel_futures). Every accepted future is done after shutdown(true);
// without cancel_futures none is cancelled; every task that ran did so once, and only the
// cancelled ones did not run.
TEST_F(ThreadPoolStressTest, ShutdownRacingSubmits) {
  constexpr std::size_t kSubmitters = 4;
  // Many short rounds: the window where a submit is accepted while shutdown() begins is narrow.
  const std::size_t rounds = 1000 / kScale;
  std::mt19937 rng(12345);
  for (std::size_t round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const bool cancel_futures = round % 2 == 1;
    ThreadPoolExecutor pool(1 + round % 4);
    struct Submitted {
      std::vector<Future<void>> futures;
      std::vector<std::unique_ptr<std::atomic<int>>> runs;
    };
    std::array<Submitted, kSubmitters> subs;
    std::atomic<std::size_t> refused{0};
    Barrier start(kSubmitters + 1);
    {
      Bunch submitters(kSubmitters, [&](std::size_t t) {
        start.wait(kGenerous);
        const auto deadline = std::chrono::steady_clock::now() + kGenerous;
        while (std::chrono::steady_clock::now() < deadline) {
          auto counter = std::make_unique<std::atomic<int>>(0);
          std::atomic<int>* c = counter.get();
          try {
            Future<void> f = pool.submit([c] { c->fetch_add(1); });
            subs[t].futures.push_back(std::move(f));
            subs[t].runs.push_back(std::move(counter));
          } catch (const RuntimeError&) {
            refused.fetch_add(1);
            return;
          }
        }
      });
      start.wait(kGenerous);
      const auto spin = std::chrono::microseconds(rng() % 300);
      const auto until = std::chrono::steady_clock::now() + spin;
      while (std::chrono::steady_clock::now() < until) {
      }
      pool.shutdown(true, cancel_futures);
    }
    ASSERT_EQ(refused.load(), kSubmitters) << "a submitter never saw the shutdown";
    for (auto& s : subs) {
      for (std::size_t i = 0; i < s.futures.size(); ++i) {
        const Future<void>& f = s.futures[i];
        ASSERT_TRUE(f.done()) << "an accepted task is pending after shutdown(wait=true)";
        const int runs = s.runs[i]->load();
        if (f.cancelled()) {
          ASSERT_TRUE(cancel_futures) << "a future was cancelled without cancel_futures";
          ASSERT_EQ(runs, 0) << "a cancelled task ran";
        } else {
          ASSERT_EQ(runs, 1);
          ASSERT_NO_THROW(f.result(kZero));
        }
      }
    }
  }
}

// The workers start tasks while two threads cancel them (from both ends).
TEST_F(ThreadPoolStressTest, CancelRacingStart) {
  const std::size_t rounds = 100 / kScale;
  constexpr int kTasks = 1000;
  for (std::size_t round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ThreadPoolExecutor pool(1 + round % 4);
    std::vector<std::atomic<int>> ran(kTasks);
    std::vector<Future<int>> fs;
    fs.reserve(kTasks);
    Barrier start(3);
    std::vector<char> won(kTasks, 0);
    {
      Bunch cancellers(2, [&](std::size_t c) {
        start.wait(kGenerous);
        if (c == 0) {
          for (int i = 0; i < kTasks; i += 2) {
            won[static_cast<std::size_t>(i)] = fs[static_cast<std::size_t>(i)].cancel() ? 1 : 0;
          }
        } else {
          for (int i = kTasks - 1; i >= 0; i -= 2) {
            won[static_cast<std::size_t>(i)] = fs[static_cast<std::size_t>(i)].cancel() ? 1 : 0;
          }
        }
      });
      for (int i = 0; i < kTasks; ++i) {
        fs.push_back(pool.submit([&ran, i] {
          ran[static_cast<std::size_t>(i)].fetch_add(1);
          return i;
        }));
      }
      start.wait(kGenerous);
    }
    pool.shutdown(true);
    for (int i = 0; i < kTasks; ++i) {
      const auto k = static_cast<std::size_t>(i);
      ASSERT_TRUE(fs[k].done()) << "future " << i << " left pending";
      ASSERT_EQ(fs[k].cancelled(), won[k] == 1) << i;
      if (fs[k].cancelled()) {
        ASSERT_EQ(ran[k].load(), 0) << "cancelled task " << i << " ran";
      } else {
        ASSERT_EQ(ran[k].load(), 1) << i;
        ASSERT_EQ(fs[k].result(kZero), i);
      }
    }
    EXPECT_EQ(pool.stats().completed, static_cast<std::uint64_t>(kTasks));
  }
}

// ==== as_completed over pool futures =============================================================

TEST_F(ThreadPoolStressTest, ManyAsCompletedOverPoolFutures) {
  constexpr std::size_t kConsumers = 3;
  const std::size_t rounds = 50 / kScale;
  constexpr int kFutures = 500;
  ThreadPoolExecutor pool(4);
  for (std::size_t round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<Future<int>> fs;
    fs.reserve(kFutures);
    Barrier start(kConsumers + 2);
    std::array<std::vector<int>, kConsumers> seen;
    {
      Bunch consumers(kConsumers + 1, [&](std::size_t c) {
        start.wait(kGenerous);
        auto completed = as_completed(fs, kGenerous);
        if (c == kConsumers) {  // abandons its range half-way
          int k = 0;
          for (auto it = completed.begin(); it != completed.end() && k < kFutures / 2; ++it, ++k) {
            (void)*it;
          }
          return;
        }
        for (Future<int> f : completed) seen[c].push_back(f.result(kZero));
      });
      for (int i = 0; i < kFutures; ++i) {
        fs.push_back(pool.submit([i] {
          if (i % 7 == 0) std::this_thread::yield();
          return i;
        }));
      }
      start.wait(kGenerous);
    }
    for (std::size_t c = 0; c < kConsumers; ++c) {
      std::sort(seen[c].begin(), seen[c].end());
      ASSERT_EQ(seen[c].size(), static_cast<std::size_t>(kFutures)) << "consumer " << c;
      for (int i = 0; i < kFutures; ++i) ASSERT_EQ(seen[c][static_cast<std::size_t>(i)], i);
    }
  }
  // One range over many futures, consumed while they complete.
  const std::size_t n = 100'000 / kScale;
  std::vector<Future<std::size_t>> many;
  many.reserve(n);
  for (std::size_t i = 0; i < n; ++i) many.push_back(pool.submit([i] { return i; }));
  std::vector<char> got(n, 0);
  std::size_t count = 0;
  for (Future<std::size_t> f : as_completed(std::move(many), kGenerous)) {
    const std::size_t v = f.result(kZero);
    ASSERT_LT(v, n);
    ASSERT_EQ(got[v], 0) << "yielded twice: " << v;
    got[v] = 1;
    ++count;
  }
  EXPECT_EQ(count, n);
}

}  // namespace
