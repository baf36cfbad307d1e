// Tests for concur/sync/lock.hpp, after CPython's Lib/test/lock_tests.py (BaseLockTests and
// LockTests): acquire/release, try_acquire, every timeout form (zero, negative, finite, huge,
// time points of either clock), release of an unlocked lock, release by another thread, blocking
// until release, `with lock:` as std::scoped_lock / std::unique_lock, and mutual exclusion swept
// over kThreadCounts.
#include "concur/sync/lock.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/lock_order.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class LockTest : public QuiescentTest {};

// Outcome of an acquisition running in another thread: still blocked, taken, or timed out.
enum Outcome : int { kPending = 0, kTaken = 1, kTimedOut = 2 };

// ---- BaseLockTests -------------------------------------------------------------------------

TEST_F(LockTest, FreshLockIsUnlocked) {  // test_constructor
  Lock lock;
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
}

TEST_F(LockTest, NameIsTheAddressUnlessGiven) {  // test_repr
  Lock a;
  Lock b;
  Lock named("db-lock");
  EXPECT_THAT(a.name(), StartsWith("Lock@"));
  EXPECT_NE(a.name(), b.name());
  EXPECT_EQ(named.name(), "db-lock");
}

TEST_F(LockTest, AcquireRelease) {  // test_acquire_release, test_locked
  Lock lock;
  lock.acquire();
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
}

TEST_F(LockTest, TryAcquire) {  // test_try_acquire
  Lock lock;
  EXPECT_TRUE(lock.try_acquire());
  EXPECT_TRUE(lock.locked());
  EXPECT_FALSE(lock.try_acquire()) << "Lock is not re-entrant";
  lock.release();
  EXPECT_FALSE(lock.locked());
}

TEST_F(LockTest, TryAcquireContended) {  // test_try_acquire_contended
  Lock lock;
  lock.acquire();
  EXPECT_FALSE(in_thread([&] { return lock.try_acquire(); }));
  lock.release();
  EXPECT_TRUE(in_thread([&] {
    const bool taken = lock.try_acquire();
    if (taken) lock.release();
    return taken;
  }));
}

TEST_F(LockTest, LockedIsSeenByOtherThreads) {
  Lock lock;
  EXPECT_FALSE(in_thread([&] { return lock.locked(); }));
  lock.acquire();
  EXPECT_TRUE(in_thread([&] { return lock.locked(); }));
  lock.release();
  EXPECT_FALSE(in_thread([&] { return lock.locked(); }));
}

// test_with: the lock is free after the block, also when the block throws.
TEST_F(LockTest, ScopedLockReleasesOnExitAndOnException) {
  Lock lock;
  auto free_for_another_thread = [&] {
    return in_thread([&] {
      const bool taken = lock.acquire(kGenerous);
      if (taken) lock.release();
      return taken;
    });
  };
  {
    std::scoped_lock guard(lock);
    EXPECT_TRUE(lock.locked());
  }
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(free_for_another_thread());

  EXPECT_THROW(
      {
        std::scoped_lock guard(lock);
        throw std::invalid_argument("raised inside the block");
      },
      std::invalid_argument);
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(free_for_another_thread());
}

TEST_F(LockTest, UniqueLockUsesTheTimedLockableSpelling) {
  Lock lock;
  {
    std::unique_lock held(lock, std::try_to_lock);
    ASSERT_TRUE(held.owns_lock());
    in_thread([&] {
      std::unique_lock<Lock> other(lock, std::defer_lock);
      EXPECT_FALSE(other.try_lock());
      EXPECT_FALSE(other.try_lock_for(1ms));
      EXPECT_FALSE(other.try_lock_until(Clock::now() + 1ms));
      EXPECT_FALSE(other.try_lock_until(std::chrono::system_clock::now() + 1ms));
      EXPECT_FALSE(other.owns_lock());
    });
  }
  EXPECT_FALSE(lock.locked());
  {
    std::unique_lock<Lock> timed(lock, kGenerous);  // try_lock_for
    EXPECT_TRUE(timed.owns_lock());
  }
  {
    std::unique_lock<Lock> until(lock, std::chrono::system_clock::now() + kGenerous);
    EXPECT_TRUE(until.owns_lock());
  }
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
  EXPECT_FALSE(lock.locked());
}

// test_thread_leak: a Lock used from threads concur did not start (CPython's start_new_thread)
// must not register them as threads.
TEST_F(LockTest, ForeignThreadsLeaveNoThreadBehind) {
  Lock lock;
  const std::size_t before = active_count();
  std::vector<std::thread> threads;
  for (int i = 0; i < 15; ++i) {
    threads.emplace_back([&] {
      if (lock.acquire(kGenerous)) {
        lock.release();
      } else {
        ADD_FAILURE() << "acquire timed out";
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(active_count(), before);
  EXPECT_FALSE(lock.locked());
}

// ---- timeouts (test_timeout, test_state_after_timeout) ------------------------------------

TEST_F(LockTest, FreeLockIsTakenWithoutWaitingForTheTimeout) {
  Lock lock;
  const auto took = elapsed([&] { EXPECT_TRUE(lock.acquire(2 * kGenerous)); });
  EXPECT_LT(took, kGenerous);
  lock.release();
}

// Python raises ValueError for a negative timeout; concur follows std::timed_mutex: a zero or
// negative timeout (or a time point in the past) polls once.
TEST_F(LockTest, ZeroAndNegativeTimeoutsPollOnce) {
  Lock lock;
  EXPECT_TRUE(lock.acquire(0s));
  in_thread([&] {
    const auto took = elapsed([&] {
      EXPECT_FALSE(lock.acquire(0s));
      EXPECT_FALSE(lock.acquire(-100s));
      EXPECT_FALSE(lock.acquire(std::chrono::duration<double>(-0.5)));
      EXPECT_FALSE(lock.acquire(std::chrono::hours::min()));
      EXPECT_FALSE(lock.acquire_until(Clock::now() - 1s));
      EXPECT_FALSE(lock.acquire_until(std::chrono::system_clock::now() - 1s));
      EXPECT_FALSE(lock.try_lock_for(-1ms));
    });
    EXPECT_LT(took, kGenerous);
  });
  lock.release();
  EXPECT_TRUE(lock.acquire(-100s));
  lock.release();
  EXPECT_TRUE(lock.acquire_until(Clock::now() - 1h));
  lock.release();
}

// A time point of another clock at the bottom of its range is "long ago", not "far ahead".
TEST_F(LockTest, TimePointAtTheMinimumOfAnotherClockPollsOnce) {
  Lock lock;
  lock.acquire();
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) {
    outcome = lock.acquire_until(std::chrono::system_clock::time_point::min()) ? kTaken : kTimedOut;
  });
  const bool returned = wait_until([&] { return outcome != kPending; });
  lock.release();  // unblocks the waiter if it (wrongly) went to sleep
  waiter.join();
  EXPECT_TRUE(returned) << "acquire_until(system_clock::time_point::min()) blocked";
  EXPECT_EQ(outcome, returned ? kTimedOut : kTaken);
  if (lock.locked()) lock.release();
}

// TIMEOUT_MAX: a duration too large to add to now() means "forever", never "already expired".
TEST_F(LockTest, HugeTimeoutsMeanForever) {
  Lock lock;
  EXPECT_TRUE(lock.acquire(std::chrono::hours::max()));
  lock.release();
  EXPECT_TRUE(lock.acquire(std::chrono::nanoseconds::max()));
  lock.release();
  EXPECT_TRUE(lock.acquire(std::chrono::duration<double>(1e100)));
  lock.release();
  EXPECT_TRUE(lock.acquire_until(Clock::time_point::max()));
  lock.release();
  EXPECT_TRUE(lock.acquire_until(std::chrono::system_clock::time_point::max()));
  lock.release();

  lock.acquire();
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) {
    outcome = lock.acquire(std::chrono::hours::max()) ? kTaken : kTimedOut;
  });
  ASSERT_TRUE(waiter.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return outcome == kPending; }))
      << "acquire(hours::max()) returned while the lock was held";
  lock.release();
  EXPECT_TRUE(wait_until([&] { return outcome != kPending; }));
  waiter.join();
  EXPECT_EQ(outcome, kTaken);
  EXPECT_TRUE(lock.locked());  // the waiter took it and ended; Lock has no owner
  lock.release();
}

TEST_F(LockTest, TimeoutWaitsAtLeastTheTimeout) {
  Lock lock;
  lock.acquire();
  in_thread([&] {
    auto took = elapsed([&] { EXPECT_FALSE(lock.acquire(kShort)); });
    EXPECT_GE(took, kShort - kSlack);
    EXPECT_LT(took, kGenerous);

    took = elapsed([&] { EXPECT_FALSE(lock.acquire_until(Clock::now() + kShort)); });
    EXPECT_GE(took, kShort - kSlack);

    took = elapsed(
        [&] { EXPECT_FALSE(lock.acquire_until(std::chrono::system_clock::now() + kShort)); });
    EXPECT_GE(took, kShort - kSlack);

    took = elapsed([&] { EXPECT_FALSE(lock.try_lock_for(std::chrono::duration<double>(0.05))); });
    EXPECT_GE(took, kShort - kSlack);
  });
  lock.release();
}

TEST_F(LockTest, TimedAcquireTakesTheLockWhenReleasedInTime) {
  Lock lock;
  lock.acquire();
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) { outcome = lock.acquire(kGenerous) ? kTaken : kTimedOut; });
  ASSERT_TRUE(waiter.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return outcome == kPending; }));
  lock.release();
  waiter.join();
  EXPECT_EQ(outcome, kTaken);
  lock.release();
}

TEST_F(LockTest, StateAfterTimeout) {  // test_state_after_timeout (bpo-11618)
  Lock lock;
  lock.acquire();
  EXPECT_FALSE(in_thread([&] { return lock.acquire(10ms); }));
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
}

// ---- misuse and ownerless release (test_different_thread) ---------------------------------

TEST_F(LockTest, ReleaseUnlockedThrowsRuntimeError) {
  Lock lock;
  EXPECT_THROW(lock.release(), RuntimeError);
  try {
    lock.release();
    ADD_FAILURE() << "release() of an unlocked Lock did not throw";
  } catch (const RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("RuntimeError: release unlocked lock"));
  }
  EXPECT_FALSE(lock.locked());
  lock.acquire();
  lock.release();
  EXPECT_THROW(lock.unlock(), RuntimeError);
  // The misuse left the lock usable.
  EXPECT_TRUE(lock.try_acquire());
  EXPECT_TRUE(lock.locked());
  lock.release();
}

TEST_F(LockTest, AnotherThreadMayRelease) {  // test_different_thread
  Lock lock;
  lock.acquire();
  in_thread([&] { lock.release(); });
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
}

// test_reacquire: the holder's second acquire() blocks until some other thread releases.
TEST_F(LockTest, HolderReacquiringBlocksUntilAnotherThreadReleases) {
  if (lock_order::enabled()) GTEST_SKIP() << "the lock-order checker reports this self-deadlock";
  Lock lock;
  std::atomic<int> phase{0};
  Bunch holder(1, [&](std::size_t) {
    lock.acquire();
    phase = 1;
    lock.acquire();
    phase = 2;
  });
  ASSERT_TRUE(wait_until([&] { return phase >= 1; }));
  EXPECT_TRUE(holds_for(kShort, [&] { return phase == 1; }));
  lock.release();  // the holder's first acquisition, released by this thread
  EXPECT_TRUE(wait_until([&] { return phase == 2; }));
  holder.join();
  EXPECT_TRUE(lock.locked());
  lock.release();
}

// ---- sweeps over kThreadCounts --------------------------------------------------------------

class LockSweep : public QuiescentTest, public ::testing::WithParamInterface<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, LockSweep, ::testing::ValuesIn(kThreadCounts));

// test_acquire_contended: every thread blocks until the holder releases.
TEST_P(LockSweep, AcquireBlocksUntilRelease) {
  const std::size_t n = GetParam();
  Lock lock;
  lock.acquire();
  std::atomic<std::size_t> done{0};
  Bunch bunch(n, [&](std::size_t) {
    lock.acquire();
    done.fetch_add(1);
    lock.release();
  });
  ASSERT_TRUE(bunch.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return done == 0; }));
  lock.release();
  bunch.join();
  EXPECT_EQ(done, n);
  EXPECT_FALSE(lock.locked());
}

// Mutual exclusion: a plain counter stays exact (and ThreadSanitizer sees no race) whichever
// acquisition form each thread uses.
TEST_P(LockSweep, MutualExclusion) {
  const std::size_t n = GetParam();
  constexpr std::size_t kIterations = 2000;
  Lock lock;
  std::size_t counter = 0;  // guarded by lock
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  auto critical_section = [&] {
    if (inside.fetch_add(1) != 0) overlap = true;
    ++counter;
    inside.fetch_sub(1);
  };
  Bunch bunch(n, [&](std::size_t i) {
    for (std::size_t k = 0; k < kIterations; ++k) {
      switch ((i + k) % 4) {
        case 0: {
          std::scoped_lock guard(lock);
          critical_section();
          break;
        }
        case 1:
          ASSERT_TRUE(lock.acquire(kGenerous));
          critical_section();
          lock.release();
          break;
        case 2:
          while (!lock.try_acquire()) std::this_thread::yield();
          critical_section();
          lock.release();
          break;
        default:
          ASSERT_TRUE(lock.acquire_until(Clock::now() + kGenerous));
          critical_section();
          lock.release();
          break;
      }
    }
  });
  bunch.join();
  EXPECT_FALSE(overlap);
  EXPECT_EQ(counter, n * kIterations);
  EXPECT_FALSE(lock.locked());
}

// Lock has no owner, so it doubles as a binary signal: each thread waits for its turn on its own
// lock and passes the turn on by releasing the next thread's lock.
TEST_P(LockSweep, ReleaseByAnotherThreadPassesATokenRound) {
  const std::size_t n = GetParam();
  constexpr std::size_t kRounds = 20;
  std::vector<Lock> turn(n);
  for (auto& l : turn) l.acquire();
  std::vector<std::size_t> order;  // written only by the thread holding the token
  Bunch bunch(n, [&](std::size_t i) {
    for (std::size_t r = 0; r < kRounds; ++r) {
      ASSERT_TRUE(turn[i].acquire(kGenerous));
      order.push_back(i);
      turn[(i + 1) % n].release();
    }
  });
  turn[0].release();
  bunch.join();
  ASSERT_EQ(order.size(), n * kRounds);
  for (std::size_t k = 0; k < order.size(); ++k) EXPECT_EQ(order[k], k % n);
  // The last thread passed the token back to thread 0, which never takes it again.
  EXPECT_FALSE(turn[0].locked());
  for (std::size_t i = 1; i < n; ++i) {
    EXPECT_TRUE(turn[i].locked());
    turn[i].release();
  }
}

}  // namespace
