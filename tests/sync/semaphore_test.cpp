// Tests for concur/sync/semaphore.hpp, after CPython's Lib/test/lock_tests.py
// (BaseSemaphoreTests, SemaphoreTests, BoundedSemaphoreTests) and test_threading.py's
// test_various_ops (a semaphore limits concurrency): the constructor's range checks, acquire /
// try_acquire / every timeout form, release(n) waking n waiters, release(0) and over-release
// (ValueError, counter unchanged), the Lockable spelling, and bounded sections swept over
// kThreadCounts. The cases common to both types run as typed tests.
#include "concur/sync/semaphore.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/rlock.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;

enum Outcome : int { kPending = 0, kTaken = 1, kTimedOut = 2 };

// ---- BaseSemaphoreTests, for Semaphore and BoundedSemaphore ---------------------------------

template <class Sem>
class SemaphoreTypes : public QuiescentTest {};
using Types = ::testing::Types<Semaphore, BoundedSemaphore>;
TYPED_TEST_SUITE(SemaphoreTypes, Types);

TYPED_TEST(SemaphoreTypes, ConstructorRejectsValuesOutOfRange) {  // test_constructor
  EXPECT_THROW(TypeParam(-1), ValueError);
  EXPECT_THROW(TypeParam(std::numeric_limits<std::int64_t>::min()), ValueError);
  EXPECT_THROW(TypeParam(Semaphore::kMaxValue + 1), ValueError);
  try {
    TypeParam sem(-1);
    ADD_FAILURE() << "a negative initial value was accepted";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ValueError: semaphore initial value must be >= 0"));
  }
  EXPECT_EQ(TypeParam(0).value(), 0u);
  EXPECT_EQ(TypeParam(Semaphore::kMaxValue).value(),
            static_cast<std::uint32_t>(Semaphore::kMaxValue));
}

TYPED_TEST(SemaphoreTypes, Acquire) {  // test_acquire
  TypeParam one(1);
  one.acquire();
  EXPECT_EQ(one.value(), 0u);
  one.release();
  EXPECT_EQ(one.value(), 1u);
  TypeParam two(2);
  two.acquire();
  two.acquire();
  EXPECT_EQ(two.value(), 0u);
  two.release();
  two.release();
  EXPECT_EQ(two.value(), 2u);
}

TYPED_TEST(SemaphoreTypes, DefaultValueIsOne) {  // test_default_value
  TypeParam sem;
  EXPECT_EQ(sem.value(), 1u);
  sem.acquire();
  std::atomic<bool> done{false};
  Bunch bunch(1, [&](std::size_t) {
    EXPECT_TRUE(sem.acquire(kGenerous));
    sem.release();
    done = true;
  });
  ASSERT_TRUE(bunch.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return !done; }));
  sem.release();
  bunch.join();
  EXPECT_TRUE(done);
  EXPECT_EQ(sem.value(), 1u);
}

TYPED_TEST(SemaphoreTypes, TryAcquire) {  // test_try_acquire
  TypeParam sem(2);
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_FALSE(sem.try_acquire());
  sem.release();
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_EQ(sem.value(), 0u);
}

TYPED_TEST(SemaphoreTypes, TryAcquireContended) {  // test_try_acquire_contended
  TypeParam sem(4);
  sem.acquire();
  std::atomic<int> taken{0};
  std::atomic<int> refused{0};
  {
    Bunch bunch(5, [&](std::size_t) {
      for (int k = 0; k < 2; ++k) (sem.try_acquire() ? taken : refused).fetch_add(1);
    });
  }
  EXPECT_EQ(taken, 3);
  EXPECT_EQ(refused, 7);
  EXPECT_EQ(sem.value(), 0u);
}

TYPED_TEST(SemaphoreTypes, AcquireTimeout) {  // test_acquire_timeout
  TypeParam sem(2);
  EXPECT_TRUE(sem.acquire(5ms));
  EXPECT_TRUE(sem.acquire(5ms));
  EXPECT_FALSE(sem.acquire(5ms));
  sem.release();
  EXPECT_TRUE(sem.acquire(5ms));
  auto took = elapsed([&] { EXPECT_FALSE(sem.acquire(kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_LT(took, kGenerous);
  took = elapsed([&] { EXPECT_FALSE(sem.acquire_until(Clock::now() + kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  took =
      elapsed([&] { EXPECT_FALSE(sem.try_lock_until(std::chrono::system_clock::now() + kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_EQ(sem.value(), 0u);
}

TYPED_TEST(SemaphoreTypes, ZeroAndNegativeTimeoutsPollOnce) {
  TypeParam sem(1);
  EXPECT_TRUE(sem.acquire(0s));
  const auto took = elapsed([&] {
    EXPECT_FALSE(sem.acquire(0s));
    EXPECT_FALSE(sem.acquire(-100s));
    EXPECT_FALSE(sem.acquire_until(Clock::now() - 1s));
    EXPECT_FALSE(sem.acquire_until(std::chrono::system_clock::now() - 1s));
  });
  EXPECT_LT(took, kGenerous);
  sem.release();
  EXPECT_TRUE(sem.acquire(-1s));
}

TYPED_TEST(SemaphoreTypes, HugeTimeoutsMeanForever) {
  TypeParam sem(2);
  EXPECT_TRUE(sem.acquire(std::chrono::hours::max()));
  EXPECT_TRUE(sem.acquire_until(Clock::time_point::max()));
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) {
    outcome = sem.acquire(std::chrono::hours::max()) ? kTaken : kTimedOut;
  });
  ASSERT_TRUE(waiter.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return outcome == kPending; }));
  sem.release();
  waiter.join();
  EXPECT_EQ(outcome, kTaken);
  EXPECT_EQ(sem.value(), 0u);
}

// test_acquire_contended: with 6 units free, exactly 6 of 20 acquisitions go through; 7 more
// after 7 releases, 6 more after 6; the last after the final release.
TYPED_TEST(SemaphoreTypes, AcquireContended) {
  TypeParam sem(7);
  sem.acquire();
  std::mutex mu;
  std::vector<int> phases;  // guarded by mu: the phase each acquisition happened in
  std::atomic<int> phase{0};
  std::atomic<int> failures{0};
  auto record = [&](bool ok) {
    if (!ok) failures.fetch_add(1);
    std::scoped_lock g(mu);
    phases.push_back(phase.load());
  };
  auto count = [&] {
    std::scoped_lock g(mu);
    return phases.size();
  };
  auto sorted_phases = [&] {
    std::scoped_lock g(mu);
    auto p = phases;
    std::sort(p.begin(), p.end());
    return p;
  };
  Bunch bunch(10, [&](std::size_t) {
    record(sem.acquire(kGenerous));
    record(sem.acquire(kGenerous));
  });
  auto expect_exactly = [&](std::size_t n) {
    EXPECT_TRUE(wait_until([&] { return count() >= n; }));
    EXPECT_TRUE(holds_for(kShort, [&] { return count() == n; })) << "more than " << n;
  };
  expect_exactly(6);
  EXPECT_EQ(sorted_phases(), std::vector<int>(6, 0));
  phase = 1;
  for (int i = 0; i < 7; ++i) sem.release();
  expect_exactly(13);
  std::vector<int> expected(6, 0);
  expected.insert(expected.end(), 7, 1);
  EXPECT_EQ(sorted_phases(), expected);
  phase = 2;
  for (int i = 0; i < 6; ++i) sem.release();
  expect_exactly(19);
  expected.insert(expected.end(), 6, 2);
  EXPECT_EQ(sorted_phases(), expected);
  EXPECT_FALSE(sem.try_acquire());
  sem.release();
  bunch.join();
  EXPECT_EQ(count(), 20u);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(sem.value(), 0u);
}

// test_multirelease: the same with release(n).
TYPED_TEST(SemaphoreTypes, MultiRelease) {
  TypeParam sem(7);
  sem.acquire();
  std::atomic<std::size_t> acquired{0};
  std::atomic<int> failures{0};
  Bunch bunch(10, [&](std::size_t) {
    for (int k = 0; k < 2; ++k) {
      if (!sem.acquire(kGenerous)) failures.fetch_add(1);
      acquired.fetch_add(1);
    }
  });
  auto expect_exactly = [&](std::size_t n) {
    EXPECT_TRUE(wait_until([&] { return acquired >= n; }));
    EXPECT_TRUE(holds_for(kShort, [&] { return acquired == n; })) << "more than " << n;
  };
  expect_exactly(6);
  sem.release(7);
  expect_exactly(13);
  sem.release(6);
  expect_exactly(19);
  EXPECT_FALSE(sem.try_acquire());
  sem.release();
  bunch.join();
  EXPECT_EQ(acquired, 20u);
  EXPECT_EQ(failures, 0);
}

TYPED_TEST(SemaphoreTypes, ReleaseZeroThrowsValueError) {
  TypeParam sem(2);
  sem.acquire();
  try {
    sem.release(0);
    ADD_FAILURE() << "release(0) did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ValueError: n must be one or more"));
  }
  EXPECT_EQ(sem.value(), 1u);
}

// test_with: `with sem:` is std::lock_guard / std::unique_lock, released on exceptions too.
TYPED_TEST(SemaphoreTypes, LockGuardReleasesOnExitAndOnException) {
  TypeParam sem(2);
  auto body = [&](bool raise) {
    std::lock_guard outer(sem);
    EXPECT_TRUE(sem.try_acquire());
    sem.release();
    std::lock_guard inner(sem);
    EXPECT_FALSE(sem.try_acquire());
    if (raise) throw std::invalid_argument("raised inside the block");
  };
  body(false);
  EXPECT_EQ(sem.value(), 2u);
  EXPECT_THROW(body(true), std::invalid_argument);
  EXPECT_EQ(sem.value(), 2u);
}

TYPED_TEST(SemaphoreTypes, TimedLockableSpelling) {
  TypeParam sem(1);
  {
    std::unique_lock<TypeParam> held(sem, kShort);  // try_lock_for
    EXPECT_TRUE(held.owns_lock());
    std::unique_lock<TypeParam> other(sem, std::defer_lock);
    EXPECT_FALSE(other.try_lock());
    EXPECT_FALSE(other.try_lock_for(1ms));
    EXPECT_FALSE(other.try_lock_until(Clock::now() + 1ms));
  }
  EXPECT_EQ(sem.value(), 1u);
  sem.lock();
  EXPECT_EQ(sem.value(), 0u);
  sem.unlock();
  EXPECT_EQ(sem.value(), 1u);
}

// ---- SemaphoreTests / BoundedSemaphoreTests ---------------------------------------------------

class SemaphoreTest : public QuiescentTest {};

TEST_F(SemaphoreTest, ReleaseBeyondTheInitialValueIsAllowed) {  // test_release_unacquired
  Semaphore sem(1);
  sem.release();
  EXPECT_EQ(sem.value(), 2u);
  sem.acquire();
  sem.acquire();
  EXPECT_EQ(sem.value(), 0u);
  sem.release(5);
  EXPECT_EQ(sem.value(), 5u);
}

TEST_F(SemaphoreTest, ReleasePastTheCapacityThrowsValueErrorAndKeepsTheCount) {
  Semaphore sem(Semaphore::kMaxValue - 1);
  sem.release();
  EXPECT_EQ(sem.value(), static_cast<std::uint32_t>(Semaphore::kMaxValue));
  EXPECT_THROW(sem.release(), ValueError);
  EXPECT_EQ(sem.value(), static_cast<std::uint32_t>(Semaphore::kMaxValue));
  Semaphore empty(0);
  EXPECT_THROW(empty.release(std::numeric_limits<std::uint32_t>::max()), ValueError);
  EXPECT_EQ(empty.value(), 0u);
}

TEST_F(SemaphoreTest, BoundedReleaseUnacquiredThrowsValueError) {  // test_release_unacquired
  BoundedSemaphore sem;
  try {
    sem.release();
    ADD_FAILURE() << "BoundedSemaphore released past its initial value";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ValueError: Semaphore released too many times"));
  }
  EXPECT_EQ(sem.value(), 1u);
  sem.acquire();
  sem.release();
  EXPECT_THROW(sem.release(), ValueError);
  EXPECT_EQ(sem.value(), 1u);
}

TEST_F(SemaphoreTest, BoundedReleaseOfTooManyUnitsChangesNothing) {
  BoundedSemaphore sem(3);
  sem.acquire();
  sem.acquire();
  EXPECT_THROW(sem.release(3), ValueError);
  EXPECT_EQ(sem.value(), 1u) << "a failed release(n) added some units";
  sem.release(2);
  EXPECT_EQ(sem.value(), 3u);
  EXPECT_THROW(sem.release(), ValueError);
  EXPECT_EQ(sem.value(), 3u);
}

TEST_F(SemaphoreTest, BoundedSemaphoreOfZeroNeverAcceptsARelease) {
  BoundedSemaphore sem(0);
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_THROW(sem.release(), ValueError);
  EXPECT_EQ(sem.value(), 0u);
}

// ---- sweeps over kThreadCounts --------------------------------------------------------------

class SemaphoreSweep : public QuiescentTest, public ::testing::WithParamInterface<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, SemaphoreSweep, ::testing::ValuesIn(kThreadCounts));

// release(k) lets exactly k of n blocked threads through; release(n - k) the rest.
TEST_P(SemaphoreSweep, ReleaseNWakesExactlyN) {
  const std::size_t n = GetParam();
  const std::size_t k = std::max<std::size_t>(1, n / 2);
  Semaphore sem(0);
  std::atomic<std::size_t> passed{0};
  std::atomic<int> failures{0};
  Bunch bunch(n, [&](std::size_t) {
    if (!sem.acquire(kGenerous)) failures.fetch_add(1);
    passed.fetch_add(1);
  });
  ASSERT_TRUE(bunch.wait_started());
  EXPECT_TRUE(holds_for(kShort, [&] { return passed == 0; }));
  sem.release(static_cast<std::uint32_t>(k));
  EXPECT_TRUE(wait_until([&] { return passed >= k; }));
  EXPECT_TRUE(holds_for(kShort, [&] { return passed == k; }));
  if (n > k) sem.release(static_cast<std::uint32_t>(n - k));
  bunch.join();
  EXPECT_EQ(passed, n);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(sem.value(), 0u);
}

// test_various_ops: a BoundedSemaphore(3) keeps at most 3 threads in the section, and an RLock
// guards the bookkeeping, as in CPython; with std::lock_guard as `with sema:`.
TEST_P(SemaphoreSweep, SemaphoreLimitsConcurrency) {
  const std::size_t n = GetParam();
  constexpr std::uint32_t kLimit = 3;
  constexpr int kRounds = 20;
  BoundedSemaphore sema(kLimit);
  RLock mu;
  std::size_t running = 0;  // guarded by mu
  std::size_t most = 0;     // guarded by mu
  Bunch bunch(n, [&](std::size_t) {
    for (int r = 0; r < kRounds; ++r) {
      std::lock_guard slot(sema);
      {
        std::scoped_lock g(mu);
        most = std::max(most, ++running);
      }
      std::this_thread::sleep_for(100us);
      std::scoped_lock g(mu);
      --running;
    }
  });
  bunch.join();
  EXPECT_LE(most, kLimit);
  EXPECT_GE(most, 1u);
  EXPECT_EQ(running, 0u);
  EXPECT_EQ(sema.value(), kLimit);
}

// Semaphore(1) as a mutex: a plain counter stays exact under every acquisition form.
TEST_P(SemaphoreSweep, BinarySemaphoreGivesMutualExclusion) {
  const std::size_t n = GetParam();
  constexpr std::size_t kIterations = 1500;
  Semaphore sem(1);
  std::size_t counter = 0;  // guarded by sem
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  Bunch bunch(n, [&](std::size_t i) {
    for (std::size_t k = 0; k < kIterations; ++k) {
      switch ((i + k) % 3) {
        case 0:
          sem.acquire();
          break;
        case 1:
          ASSERT_TRUE(sem.acquire(kGenerous));
          break;
        default:
          while (!sem.try_acquire()) std::this_thread::yield();
          break;
      }
      if (inside.fetch_add(1) != 0) overlap = true;
      ++counter;
      inside.fetch_sub(1);
      sem.release();
    }
  });
  bunch.join();
  EXPECT_FALSE(overlap);
  EXPECT_EQ(counter, n * kIterations);
  EXPECT_EQ(sem.value(), 1u);
}

// Hand-off: writes made before release() are visible to the acquire() that takes the unit
// (Memory ordering line of semaphore.hpp; TSan checks the plain slots).
TEST_P(SemaphoreSweep, ReleasePublishesWritesToTheAcquirer) {
  const std::size_t n = GetParam();
  constexpr std::size_t kItemsEach = 100;
  std::vector<std::size_t> slots(n * kItemsEach, 0);
  Semaphore filled(0);
  std::atomic<std::size_t> next_read{0};
  std::atomic<std::size_t> sum{0};
  // Producers fill slots in order, each followed by a release(); a consumer takes a unit, then
  // the next slot index. The j-th slot is written before the j-th release, and a consumer holding
  // index j is ordered after j + 1 acquisitions, hence after the j-th release.
  std::mutex write_mu;
  std::size_t next_write = 0;  // guarded by write_mu
  Bunch producers(n, [&](std::size_t) {
    for (std::size_t k = 0; k < kItemsEach; ++k) {
      std::scoped_lock g(write_mu);
      slots[next_write] = next_write + 1;
      ++next_write;
      filled.release();
    }
  });
  Bunch consumers(n, [&](std::size_t) {
    for (std::size_t k = 0; k < kItemsEach; ++k) {
      ASSERT_TRUE(filled.acquire(kGenerous));
      const std::size_t idx = next_read.fetch_add(1);
      sum.fetch_add(slots[idx]);
    }
  });
  producers.join();
  consumers.join();
  const std::size_t total = n * kItemsEach;
  EXPECT_EQ(sum, total * (total + 1) / 2);
  EXPECT_EQ(filled.value(), 0u);
}

}  // namespace
