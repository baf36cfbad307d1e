// Stress tests for the sync layer: many threads, many rounds, invariants checked at the end.
// Bounded: every wait is timed (a lost wake-up fails the test instead of hanging it), and the
// round counts shrink under sanitizers. Label "stress".
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "concur/sync/barrier.hpp"
#include "concur/sync/condition.hpp"
#include "concur/sync/event.hpp"
#include "concur/sync/lock.hpp"
#include "concur/sync/rlock.hpp"
#include "concur/sync/semaphore.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 10;  // sanitizers slow every operation ~10x
#else
constexpr std::size_t kScale = 1;
#endif

class SyncStress : public QuiescentTest {};

TEST_F(SyncStress, LockAndRLockKeepAPlainCounterExact) {
  for (std::size_t n : kThreadCounts) {
    const std::size_t iters = 200'000 / kScale / n + 1;
    Lock lock;
    RLock rlock;
    std::uint64_t plain = 0;  // not atomic: only mutual exclusion keeps it right
    std::uint64_t nested = 0;
    run_threads(n, [&](std::size_t) {
      for (std::size_t i = 0; i < iters; ++i) {
        {
          std::scoped_lock g(lock);
          ++plain;
        }
        std::scoped_lock a(rlock);
        std::scoped_lock b(rlock);
        ++nested;
      }
    });
    EXPECT_EQ(plain, n * iters);
    EXPECT_EQ(nested, n * iters);
  }
}

TEST_F(SyncStress, TimedAcquiresNeverBreakExclusion) {
  Lock lock;
  std::uint64_t plain = 0;
  std::atomic<std::uint64_t> taken{0};
  run_threads(8, [&](std::size_t id) {
    for (std::size_t i = 0; i < 20'000 / kScale; ++i) {
      const bool got =
          (i + id) % 3 == 0 ? lock.try_acquire() : lock.acquire(std::chrono::microseconds(i % 50));
      if (got) {
        ++plain;
        taken.fetch_add(1, std::memory_order_relaxed);
        lock.release();
      }
    }
  });
  EXPECT_EQ(plain, taken.load());
  EXPECT_FALSE(lock.locked());
}

TEST_F(SyncStress, ConditionBoundedBufferMovesEveryItemOnce) {
  for (std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
    const std::uint64_t per_producer = 50'000 / kScale;
    Lock lock;
    Condition not_empty(lock), not_full(lock);
    std::deque<std::uint64_t> buffer;
    constexpr std::size_t kCapacity = 16;
    std::uint64_t consumed_sum = 0, consumed_count = 0;
    std::size_t producers_left = n;
    bool stuck = false;
    run_threads(2 * n, [&](std::size_t id) {
      if (id < n) {  // producer
        for (std::uint64_t i = 1; i <= per_producer; ++i) {
          std::unique_lock g(lock);
          if (!not_full.wait_for([&] { return buffer.size() < kCapacity; }, kGenerous)) {
            stuck = true;
            return;
          }
          buffer.push_back(i);
          not_empty.notify();
        }
        std::unique_lock g(lock);
        if (--producers_left == 0) not_empty.notify_all();
      } else {  // consumer
        for (;;) {
          std::unique_lock g(lock);
          if (!not_empty.wait_for([&] { return !buffer.empty() || producers_left == 0; },
                                  kGenerous)) {
            stuck = true;
            return;
          }
          if (buffer.empty()) return;
          consumed_sum += buffer.front();
          ++consumed_count;
          buffer.pop_front();
          not_full.notify();
        }
      }
    });
    ASSERT_FALSE(stuck) << "a wait timed out: lost wake-up";
    EXPECT_EQ(consumed_count, n * per_producer);
    EXPECT_EQ(consumed_sum, n * per_producer * (per_producer + 1) / 2);
  }
}

TEST_F(SyncStress, SemaphoreNeverAdmitsMoreThanItsValue) {
  for (std::int64_t k : {1, 2, 3}) {
    BoundedSemaphore sem(k);
    std::atomic<std::int64_t> inside{0}, max_inside{0};
    run_threads(8, [&](std::size_t) {
      for (std::size_t i = 0; i < 10'000 / kScale; ++i) {
        std::scoped_lock g(sem);
        const auto now = inside.fetch_add(1) + 1;
        std::int64_t seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        inside.fetch_sub(1);
      }
    });
    EXPECT_LE(max_inside.load(), k);
    EXPECT_EQ(sem.value(), static_cast<std::uint32_t>(k));
  }
}

TEST_F(SyncStress, EventPingPongLosesNoWakeUp) {
  Event ping, pong;
  const std::size_t rounds = 20'000 / kScale;
  std::atomic<bool> lost{false};
  run_threads(2, [&](std::size_t id) {
    Event& mine = id == 0 ? ping : pong;
    Event& theirs = id == 0 ? pong : ping;
    for (std::size_t i = 0; i < rounds; ++i) {
      if (id == 0) theirs.set();
      if (!mine.wait(kGenerous)) {
        lost = true;
        theirs.set();  // let the partner finish too
        return;
      }
      mine.clear();
      if (id == 1) theirs.set();
    }
  });
  EXPECT_FALSE(lost);
}

TEST_F(SyncStress, BarrierRoundsHandOutDistinctIndices) {
  for (std::size_t n : {std::size_t{2}, std::size_t{3}, std::size_t{8}}) {
    const std::size_t rounds = 2'000 / kScale;
    std::atomic<std::size_t> actions{0};
    Barrier barrier(n, {.action = [&] { ++actions; }, .timeout = kGenerous});
    std::vector<std::atomic<std::uint64_t>> index_mask(rounds);
    run_threads(n, [&](std::size_t) {
      for (std::size_t r = 0; r < rounds; ++r) {
        const std::size_t index = barrier.wait();
        index_mask[r].fetch_or(std::uint64_t{1} << index);
      }
    });
    EXPECT_EQ(actions.load(), rounds);
    for (std::size_t r = 0; r < rounds; ++r) {
      ASSERT_EQ(index_mask[r].load(), (std::uint64_t{1} << n) - 1) << "round " << r;
    }
  }
}

}  // namespace
