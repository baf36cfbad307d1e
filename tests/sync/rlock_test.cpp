// Tests for concur/sync/rlock.hpp, after CPython's Lib/test/lock_tests.py (BaseLockTests and
// RLockTests): re-entry and the recursion count, ownership (is_owned), release by a non-owner or
// of a free lock (RuntimeError, lock unchanged), other threads blocking until the owner's last
// release, every timeout form, the Lockable spelling, and mutual exclusion with re-entry swept
// over kThreadCounts.
#include "concur/sync/rlock.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class RLockTest : public QuiescentTest {};

enum Outcome : int { kPending = 0, kTaken = 1, kTimedOut = 2 };

// Holder: another thread that acquires `rlock` `depth` times, then keeps it until release() and
// reports what it saw of its own ownership before letting go.
class Holder {
 public:
  Holder(RLock& rlock, std::uint32_t depth)
      : rlock_(rlock), bunch_(1, [this, depth](std::size_t) { run(depth); }) {
    EXPECT_TRUE(wait_until([&] { return holding_.load(); })) << "holder never took the lock";
  }
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;
  ~Holder() { release(); }

  // release() lets the holder drop every level and waits for it to finish.
  void release() {
    go_ = true;
    bunch_.join();
  }
  // count_at_release() is the holder's recursion_count() just before it released.
  [[nodiscard]] std::uint32_t count_at_release() const { return count_at_release_; }

 private:
  void run(std::uint32_t depth) {
    for (std::uint32_t i = 0; i < depth; ++i) rlock_.acquire();
    holding_ = true;
    EXPECT_TRUE(wait_until([&] { return go_.load(); }));
    count_at_release_ = rlock_.recursion_count();
    for (std::uint32_t i = 0; i < depth; ++i) rlock_.release();
  }

  RLock& rlock_;
  std::atomic<bool> holding_{false};
  std::atomic<bool> go_{false};
  std::atomic<std::uint32_t> count_at_release_{0};
  Bunch bunch_;  // last: its thread uses the members above
};

// ---- BaseLockTests -------------------------------------------------------------------------

TEST_F(RLockTest, FreshRLockIsFreeAndUnowned) {  // test_constructor
  RLock rlock;
  EXPECT_FALSE(rlock.locked());
  EXPECT_FALSE(rlock.is_owned());
  EXPECT_EQ(rlock.recursion_count(), 0u);
}

TEST_F(RLockTest, NameIsTheAddressUnlessGiven) {  // test_repr
  RLock a;
  RLock named("cache");
  EXPECT_THAT(a.name(), StartsWith("RLock@"));
  EXPECT_EQ(named.name(), "cache");
}

TEST_F(RLockTest, AcquireRelease) {  // test_acquire_release
  RLock rlock;
  rlock.acquire();
  EXPECT_TRUE(rlock.locked());
  EXPECT_TRUE(rlock.is_owned());
  rlock.release();
  EXPECT_FALSE(rlock.locked());
  EXPECT_FALSE(rlock.is_owned());
}

TEST_F(RLockTest, TryAcquireReentersForTheOwner) {  // test_try_acquire
  RLock rlock;
  EXPECT_TRUE(rlock.try_acquire());
  EXPECT_TRUE(rlock.try_acquire());
  EXPECT_EQ(rlock.recursion_count(), 2u);
  rlock.release();
  rlock.release();
  EXPECT_FALSE(rlock.locked());
}

TEST_F(RLockTest, TryAcquireContended) {  // test_try_acquire_contended
  RLock rlock;
  {
    Holder holder(rlock, 1);
    EXPECT_FALSE(rlock.try_acquire());
    EXPECT_FALSE(rlock.is_owned());
  }
  EXPECT_TRUE(rlock.try_acquire());
  rlock.release();
}

TEST_F(RLockTest, Reacquire) {  // test_reacquire
  RLock rlock;
  rlock.acquire();
  rlock.acquire();
  rlock.release();
  rlock.acquire();
  rlock.release();
  EXPECT_TRUE(rlock.locked());
  rlock.release();
  EXPECT_FALSE(rlock.locked());
}

TEST_F(RLockTest, Locked) {  // test_locked, test_locked_with_2threads
  RLock rlock;
  EXPECT_FALSE(rlock.locked());
  rlock.acquire();
  EXPECT_TRUE(rlock.locked());
  rlock.acquire();
  EXPECT_TRUE(rlock.locked());
  rlock.release();
  EXPECT_TRUE(rlock.locked());
  EXPECT_TRUE(in_thread([&] { return rlock.locked(); }));
  rlock.release();
  EXPECT_FALSE(rlock.locked());
  {
    Holder holder(rlock, 1);
    EXPECT_TRUE(rlock.locked()) << "an RLock held by another thread is locked here too";
  }
  EXPECT_FALSE(rlock.locked());
}

TEST_F(RLockTest, RecursionCount) {  // test_recursion_count
  RLock rlock;
  EXPECT_EQ(rlock.recursion_count(), 0u);
  rlock.acquire();
  EXPECT_EQ(rlock.recursion_count(), 1u);
  rlock.acquire();
  rlock.acquire();
  EXPECT_EQ(rlock.recursion_count(), 3u);
  rlock.release();
  EXPECT_EQ(rlock.recursion_count(), 2u);
  rlock.release();
  rlock.release();
  EXPECT_EQ(rlock.recursion_count(), 0u);
  {
    Holder holder(rlock, 2);
    EXPECT_EQ(rlock.recursion_count(), 0u) << "another thread's count is not ours";
    holder.release();
    EXPECT_EQ(holder.count_at_release(), 2u);
  }
  EXPECT_EQ(rlock.recursion_count(), 0u);
}

TEST_F(RLockTest, IsOwned) {  // test__is_owned
  RLock rlock;
  EXPECT_FALSE(rlock.is_owned());
  rlock.acquire();
  EXPECT_TRUE(rlock.is_owned());
  rlock.acquire();
  EXPECT_TRUE(rlock.is_owned());
  EXPECT_FALSE(in_thread([&] { return rlock.is_owned(); }));
  rlock.release();
  EXPECT_TRUE(rlock.is_owned());
  rlock.release();
  EXPECT_FALSE(rlock.is_owned());
}

// ---- misuse --------------------------------------------------------------------------------

TEST_F(RLockTest, ReleaseUnacquiredThrowsRuntimeError) {  // test_release_unacquired
  RLock rlock;
  EXPECT_THROW(rlock.release(), RuntimeError);
  rlock.acquire();
  rlock.acquire();
  rlock.release();
  rlock.acquire();
  rlock.release();
  rlock.release();
  try {
    rlock.release();
    ADD_FAILURE() << "release() of a free RLock did not throw";
  } catch (const RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("RuntimeError: cannot release un-acquired lock"));
  }
  EXPECT_THROW(rlock.unlock(), RuntimeError);
  EXPECT_FALSE(rlock.locked());
  EXPECT_TRUE(rlock.try_acquire());
  rlock.release();
}

// test_different_thread: a non-owner's release throws and changes nothing.
TEST_F(RLockTest, ReleaseByNonOwnerThrowsAndLeavesTheLockUsable) {
  RLock rlock;
  {
    Holder holder(rlock, 2);
    EXPECT_THROW(rlock.release(), RuntimeError);
    EXPECT_THROW(rlock.unlock(), RuntimeError);
    EXPECT_TRUE(rlock.locked());
    EXPECT_FALSE(rlock.try_acquire());
    holder.release();
    EXPECT_EQ(holder.count_at_release(), 2u) << "the failed releases changed the owner's count";
  }
  EXPECT_FALSE(rlock.locked());
  EXPECT_TRUE(rlock.acquire(kGenerous));
  EXPECT_EQ(rlock.recursion_count(), 1u);
  rlock.release();
}

// ---- timeouts --------------------------------------------------------------------------------

TEST_F(RLockTest, OwnerReentersWhateverTheTimeout) {
  RLock rlock;
  rlock.acquire();
  EXPECT_TRUE(rlock.acquire(0s));
  EXPECT_TRUE(rlock.acquire(-1s));
  EXPECT_TRUE(rlock.acquire_until(Clock::now() - 1s));
  EXPECT_TRUE(rlock.try_lock_for(kShort));
  EXPECT_EQ(rlock.recursion_count(), 5u);
  for (int i = 0; i < 5; ++i) rlock.release();
  EXPECT_FALSE(rlock.locked());
}

TEST_F(RLockTest, ZeroAndNegativeTimeoutsPollOnce) {
  RLock rlock;
  EXPECT_TRUE(rlock.acquire(0s));
  rlock.release();
  EXPECT_TRUE(rlock.acquire(-5s));
  rlock.release();
  Holder holder(rlock, 1);
  const auto took = elapsed([&] {
    EXPECT_FALSE(rlock.acquire(0s));
    EXPECT_FALSE(rlock.acquire(-100s));
    EXPECT_FALSE(rlock.acquire_until(Clock::now() - 1s));
    EXPECT_FALSE(rlock.acquire_until(std::chrono::system_clock::now() - 1s));
  });
  EXPECT_LT(took, kGenerous);
  EXPECT_FALSE(rlock.is_owned());
}

TEST_F(RLockTest, HugeTimeoutsMeanForever) {
  RLock rlock;
  EXPECT_TRUE(rlock.acquire(std::chrono::hours::max()));
  EXPECT_TRUE(rlock.acquire(std::chrono::nanoseconds::max()));
  EXPECT_TRUE(rlock.acquire_until(Clock::time_point::max()));
  EXPECT_EQ(rlock.recursion_count(), 3u);
  rlock.release();
  rlock.release();
  // Still held once: another thread's huge wait must block, not return false at once.
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) {
    const bool taken = rlock.acquire(std::chrono::hours::max());
    outcome = taken ? kTaken : kTimedOut;
    if (taken) rlock.release();
  });
  ASSERT_TRUE(waiter.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return outcome == kPending; }));
  rlock.release();
  waiter.join();
  EXPECT_EQ(outcome, kTaken);
  EXPECT_FALSE(rlock.locked());
}

TEST_F(RLockTest, FreeLockIsTakenWithoutWaitingForTheTimeout) {
  RLock rlock;
  const auto took = elapsed([&] { EXPECT_TRUE(rlock.acquire(2 * kGenerous)); });
  EXPECT_LT(took, kGenerous);
  rlock.release();
}

TEST_F(RLockTest, TimeoutWaitsAtLeastTheTimeout) {  // test_timeout
  RLock rlock;
  Holder holder(rlock, 1);
  auto took = elapsed([&] { EXPECT_FALSE(rlock.acquire(kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_LT(took, kGenerous);
  took = elapsed([&] { EXPECT_FALSE(rlock.acquire_until(Clock::now() + kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  took = elapsed(
      [&] { EXPECT_FALSE(rlock.try_lock_until(std::chrono::system_clock::now() + kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_FALSE(rlock.is_owned());
  EXPECT_EQ(rlock.recursion_count(), 0u);
}

TEST_F(RLockTest, StateAfterTimeout) {  // test_state_after_timeout
  RLock rlock;
  {
    Holder holder(rlock, 1);
    EXPECT_FALSE(rlock.acquire(10ms));
  }
  EXPECT_FALSE(rlock.locked());
  EXPECT_TRUE(rlock.try_acquire());
  EXPECT_EQ(rlock.recursion_count(), 1u);
  rlock.release();
}

// ---- `with rlock:` ------------------------------------------------------------------------

TEST_F(RLockTest, ScopedLocksNestAndReleaseOnException) {  // test_with
  RLock rlock;
  {
    std::scoped_lock outer(rlock);
    {
      std::unique_lock inner(rlock);
      EXPECT_EQ(rlock.recursion_count(), 2u);
    }
    EXPECT_EQ(rlock.recursion_count(), 1u);
  }
  EXPECT_FALSE(rlock.locked());
  EXPECT_THROW(
      {
        std::scoped_lock outer(rlock);
        std::scoped_lock inner(rlock);
        throw std::invalid_argument("raised inside the block");
      },
      std::invalid_argument);
  EXPECT_FALSE(rlock.locked());
  EXPECT_TRUE(in_thread([&] {
    const bool taken = rlock.acquire(kGenerous);
    if (taken) rlock.release();
    return taken;
  }));
}

TEST_F(RLockTest, TimedLockableSpelling) {
  RLock rlock;
  {
    std::unique_lock<RLock> timed(rlock, kShort);
    EXPECT_TRUE(timed.owns_lock());
    std::unique_lock<RLock> until(rlock, std::chrono::system_clock::now() + kShort);
    EXPECT_TRUE(until.owns_lock());
    EXPECT_EQ(rlock.recursion_count(), 2u);
    in_thread([&] {
      std::unique_lock<RLock> other(rlock, std::defer_lock);
      EXPECT_FALSE(other.try_lock());
      EXPECT_FALSE(other.try_lock_for(1ms));
    });
  }
  EXPECT_FALSE(rlock.locked());
}

// test_thread_leak: an RLock used from threads concur did not start registers nothing.
TEST_F(RLockTest, ForeignThreadsLeaveNoThreadBehind) {
  RLock rlock;
  const std::size_t before = active_count();
  std::vector<std::thread> threads;
  for (int i = 0; i < 15; ++i) {
    threads.emplace_back([&] {
      if (rlock.acquire(kGenerous)) {
        rlock.acquire();
        rlock.release();
        rlock.release();
      } else {
        ADD_FAILURE() << "acquire timed out";
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(active_count(), before);
  EXPECT_FALSE(rlock.locked());
}

// ---- sweeps over kThreadCounts --------------------------------------------------------------

class RLockSweep : public QuiescentTest, public ::testing::WithParamInterface<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, RLockSweep, ::testing::ValuesIn(kThreadCounts));

// test_acquire_contended, for an RLock held at depth 2: other threads stay blocked after the
// first release and proceed only after the last.
TEST_P(RLockSweep, OtherThreadsBlockUntilFullyReleased) {
  const std::size_t n = GetParam();
  RLock rlock;
  rlock.acquire();
  rlock.acquire();
  std::atomic<std::size_t> done{0};
  Bunch bunch(n, [&](std::size_t) {
    rlock.acquire();
    EXPECT_EQ(rlock.recursion_count(), 1u);
    done.fetch_add(1);
    rlock.release();
  });
  ASSERT_TRUE(bunch.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return done == 0; }));
  rlock.release();
  EXPECT_TRUE(holds_for(kShort, [&] { return done == 0; })) << "woke before the last release";
  rlock.release();
  bunch.join();
  EXPECT_EQ(done, n);
  EXPECT_FALSE(rlock.locked());
}

// Mutual exclusion with re-entry: each critical section nests the lock three deep.
TEST_P(RLockSweep, MutualExclusionWithReentry) {
  const std::size_t n = GetParam();
  constexpr std::size_t kIterations = 1500;
  RLock rlock;
  std::size_t counter = 0;  // guarded by rlock
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  Bunch bunch(n, [&](std::size_t i) {
    for (std::size_t k = 0; k < kIterations; ++k) {
      std::unique_lock outer(rlock);
      if (inside.fetch_add(1) != 0) overlap = true;
      {
        if ((i + k) % 2 == 0) {
          ASSERT_TRUE(rlock.acquire(kShort));  // re-entry never waits
        } else {
          ASSERT_TRUE(rlock.try_acquire());
        }
        std::scoped_lock third(rlock);
        EXPECT_EQ(rlock.recursion_count(), 3u);
        ++counter;
        rlock.release();
      }
      inside.fetch_sub(1);
    }
  });
  bunch.join();
  EXPECT_FALSE(overlap);
  EXPECT_EQ(counter, n * kIterations);
  EXPECT_FALSE(rlock.locked());
}

}  // namespace
