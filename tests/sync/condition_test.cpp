// Tests for concur/sync/condition.hpp, after CPython's Lib/test/lock_tests.py (ConditionTests)
// and test_threading.py's Condition cases: acquire/release of the underlying lock, wait/notify
// without the lock (RuntimeError), notify(n) waking exactly n, notify_all, wait(timeout) returning
// false with the lock held again, wait_for(pred[, timeout]) returning the predicate's value. Most
// run over each kind of lock (the Condition's own RLock, a caller's Lock, a caller's RLock).
// Beyond Python: the RLock's whole recursion count is released and restored by wait, a waiter
// whose timeout fired is never counted by notify(n), waiters wake in FIFO order; plus notify_all
// and producer/consumer swept over kThreadCounts.
#include "concur/sync/condition.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/lock.hpp"
#include "concur/sync/rlock.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;

enum Outcome : int { kPending = 0, kNotified = 1, kTimedOut = 2 };

// under(cond, fn) runs fn with the condition's lock held and returns its result.
template <class F>
auto under(Condition& cond, F fn) {
  std::unique_lock lk(cond);
  return fn();
}

// ---- the lock under the condition (test_acquire) ------------------------------------------

class ConditionTest : public QuiescentTest {};

TEST_F(ConditionTest, DefaultLockIsAnRLock) {
  Condition cond;
  cond.acquire();
  cond.acquire();
  EXPECT_TRUE(cond.try_acquire());
  EXPECT_FALSE(in_thread([&] { return cond.try_acquire(); }));
  cond.release();
  cond.release();
  cond.release();
  EXPECT_THROW(cond.release(), RuntimeError);
  EXPECT_TRUE(in_thread([&] {
    const bool taken = cond.try_acquire();
    if (taken) cond.release();
    return taken;
  }));
}

TEST_F(ConditionTest, AcquireOverALockTakesThatLock) {
  Lock lock;
  Condition cond(lock);
  cond.acquire();
  EXPECT_FALSE(lock.try_acquire());
  cond.release();
  EXPECT_TRUE(lock.try_acquire());
  EXPECT_FALSE(cond.try_acquire());
  EXPECT_FALSE(cond.acquire(0s));
  lock.release();
  {
    std::unique_lock lk(cond);
    EXPECT_FALSE(lock.try_acquire());
  }
  EXPECT_FALSE(lock.locked());
  {
    std::unique_lock<Condition> timed(cond, kShort);  // try_lock_for
    EXPECT_TRUE(timed.owns_lock());
    EXPECT_TRUE(lock.locked());
  }
  EXPECT_FALSE(lock.locked());
}

TEST_F(ConditionTest, AcquireOverAnRLockTakesThatRLock) {
  RLock rlock;
  Condition cond(rlock);
  cond.acquire();
  EXPECT_TRUE(rlock.is_owned());
  EXPECT_TRUE(cond.acquire(kShort));
  EXPECT_EQ(rlock.recursion_count(), 2u);
  cond.release();
  cond.release();
  EXPECT_FALSE(rlock.locked());
}

// ---- every test below runs over each kind of lock ------------------------------------------

enum class Over { kOwnRLock, kLock, kRLock };

std::string over_name(Over over) {
  switch (over) {
    case Over::kOwnRLock:
      return "OwnRLock";
    case Over::kLock:
      return "Lock";
    case Over::kRLock:
      return "RLock";
  }
  return "Unknown";
}
// PrintTo makes failure messages name the kind of lock instead of dumping its bytes.
void PrintTo(Over over, std::ostream* os) { *os << over_name(over); }

class ConditionOver : public QuiescentTest, public ::testing::WithParamInterface<Over> {
 protected:
  ConditionOver() {
    switch (GetParam()) {
      case Over::kOwnRLock:
        cond_ = std::make_unique<Condition>();
        break;
      case Over::kLock:
        cond_ = std::make_unique<Condition>(lock_);
        break;
      case Over::kRLock:
        cond_ = std::make_unique<Condition>(rlock_);
        break;
    }
  }
  Condition& cond() { return *cond_; }
  // lock_held_here() checks what can be checked of "the caller holds the lock": the RLock's
  // owner, or that the Lock is taken (the Condition's own RLock is not reachable).
  bool lock_held_here() {
    switch (GetParam()) {
      case Over::kLock:
        return lock_.locked();
      case Over::kRLock:
        return rlock_.is_owned();
      case Over::kOwnRLock:
        break;
    }
    return true;
  }

  Lock lock_;
  RLock rlock_;
  std::unique_ptr<Condition> cond_;
};

// over_param_name names each instance after its kind of lock.
std::string over_param_name(const ::testing::TestParamInfo<Over>& param) {
  return over_name(param.param);
}
INSTANTIATE_TEST_SUITE_P(Kinds, ConditionOver,
                         ::testing::Values(Over::kOwnRLock, Over::kLock, Over::kRLock),
                         over_param_name);

// test_unacquired_wait, test_unacquired_notify. The untimed wait() and wait_for(pred) share
// wait_deadline() with the timed forms tested here (and would hang if they failed to throw).
TEST_P(ConditionOver, WaitAndNotifyWithoutTheLockThrowRuntimeError) {
  Condition& c = cond();
  EXPECT_THROW(c.wait(kShort), RuntimeError);
  EXPECT_THROW(c.wait(0s), RuntimeError);
  EXPECT_THROW(c.wait_until(Clock::now() + kShort), RuntimeError);
  EXPECT_THROW(c.wait_for([] { return false; }, kShort), RuntimeError);
  EXPECT_THROW(c.wait_until([] { return false; }, Clock::now() + kShort), RuntimeError);
  try {
    c.wait(kShort);
    ADD_FAILURE() << "wait() without the lock did not throw";
  } catch (const RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("RuntimeError: cannot wait on un-acquired lock"));
  }
  EXPECT_THROW(c.notify(), RuntimeError);
  EXPECT_THROW(c.notify(3), RuntimeError);
  EXPECT_THROW(c.notify_all(), RuntimeError);
  try {
    c.notify();
    ADD_FAILURE() << "notify() without the lock did not throw";
  } catch (const RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("RuntimeError: cannot notify on un-acquired lock"));
  }
  // Nothing was left behind: the condition works normally afterwards.
  std::unique_lock lk(c);
  c.notify();
  EXPECT_FALSE(c.wait(1ms));
}

// test_notify (_check_notify, run twice): notify(3) wakes exactly 3 waiters, notify(5) the 5
// oldest (2 still in their first wait, 3 in their second), notify_all() the rest.
TEST_P(ConditionOver, NotifyWakesExactlyN) {
  constexpr std::size_t kN = 5;
  Condition& c = cond();
  using Result = std::pair<bool, int>;  // (wait's result, phase seen on wake-up)
  auto check_notify = [&] {
    // All guarded by c's lock.
    std::size_t ready = 0;
    int phase = 0;
    std::vector<Result> first;
    std::vector<Result> second;
    Bunch bunch(kN, [&](std::size_t) {
      std::unique_lock lk(c);
      ++ready;
      bool r = c.wait(kGenerous);
      first.emplace_back(r, phase);
      lk.unlock();
      lk.lock();
      ++ready;
      r = c.wait(kGenerous);
      second.emplace_back(r, phase);
    });
    auto sizes = [&] { return under(c, [&] { return std::pair(first.size(), second.size()); }); };
    // A waiter counts itself ready under the lock, and wait() registers it before releasing the
    // lock: once we hold the lock and see ready == kN, all kN are waiting.
    ASSERT_TRUE(wait_until([&] { return under(c, [&] { return ready == kN; }); }));
    under(c, [&] {
      ready = 0;
      c.notify(3);
      phase = 1;
    });
    EXPECT_TRUE(wait_until([&] { return sizes().first >= 3; }));
    EXPECT_TRUE(holds_for(kShort, [&] {
      return sizes() == std::pair<std::size_t, std::size_t>(3, 0);
    })) << "notify(3) woke more than 3 waiters";
    under(c, [&] { EXPECT_EQ(first, std::vector<Result>(3, {true, 1})); });

    ASSERT_TRUE(wait_until([&] { return under(c, [&] { return ready == 3; }); }));
    under(c, [&] {
      c.notify(5);
      phase = 2;
    });
    EXPECT_TRUE(wait_until([&] { return sizes().first + sizes().second >= 8; }));
    EXPECT_TRUE(holds_for(kShort, [&] {
      return sizes() == std::pair<std::size_t, std::size_t>(5, 3);
    })) << "notify(5) did not wake exactly the 5 oldest waiters";
    under(c, [&] {
      std::vector<Result> expected(3, {true, 1});
      expected.insert(expected.end(), 2, {true, 2});
      EXPECT_EQ(first, expected);
      EXPECT_EQ(second, std::vector<Result>(3, {true, 2}));
    });

    ASSERT_TRUE(wait_until([&] { return under(c, [&] { return ready == kN; }); }));
    under(c, [&] {
      c.notify_all();
      phase = 3;
    });
    bunch.join();
    std::vector<Result> expected(3, {true, 2});
    expected.insert(expected.end(), 2, {true, 3});
    EXPECT_EQ(second, expected);
  };
  check_notify();
  check_notify();  // a second time: the internal state is still right
}

TEST_P(ConditionOver, NotifyMoreThanWaitersWakesAllAndIsNotRemembered) {
  Condition& c = cond();
  std::size_t ready = 0;  // guarded by c
  std::atomic<std::size_t> notified{0};
  Bunch bunch(2, [&](std::size_t) {
    std::unique_lock lk(c);
    ++ready;
    if (c.wait(kGenerous)) notified.fetch_add(1);
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return ready == 2; }); }));
  under(c, [&] { c.notify(5); });
  bunch.join();
  EXPECT_EQ(notified, 2u);
  // The 3 notifications beyond the waiters are not banked for a later waiter.
  std::unique_lock lk(c);
  EXPECT_FALSE(c.wait(kShort));
}

TEST_P(ConditionOver, NotifyWithoutWaitersIsLost) {
  Condition& c = cond();
  std::unique_lock lk(c);
  c.notify();
  c.notify(10);
  c.notify_all();
  const auto took = elapsed([&] { EXPECT_FALSE(c.wait(kShort)); });
  EXPECT_GE(took, kShort - kSlack);
}

TEST_P(ConditionOver, NotifyZeroWakesNobody) {
  Condition& c = cond();
  bool waiting = false;  // guarded by c
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) {
    std::unique_lock lk(c);
    waiting = true;
    outcome = c.wait(kGenerous) ? kNotified : kTimedOut;
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return waiting; }); }));
  under(c, [&] { c.notify(0); });
  EXPECT_TRUE(holds_for(kShort, [&] { return outcome == kPending; }));
  under(c, [&] { c.notify(1); });
  waiter.join();
  EXPECT_EQ(outcome, kNotified);
}

// test_timeout: every wait(timeout) without a notify returns false, no earlier than the timeout,
// with the lock held again.
TEST_P(ConditionOver, WaitTimeoutReturnsFalseWithTheLockHeld) {
  constexpr std::size_t kN = 5;
  Condition& c = cond();
  std::atomic<int> inside{0};
  Bunch bunch(kN, [&](std::size_t) {
    std::unique_lock lk(c);
    bool result = true;
    const auto took = elapsed([&] { result = c.wait(kShort); });
    EXPECT_FALSE(result);
    EXPECT_GE(took, kShort - kSlack);
    EXPECT_LT(took, kGenerous);
    EXPECT_EQ(inside.fetch_add(1), 0) << "two threads hold the lock after wait()";
    EXPECT_TRUE(lock_held_here());
    std::this_thread::sleep_for(1ms);
    inside.fetch_sub(1);
  });
  bunch.join();
}

TEST_P(ConditionOver, ZeroAndNegativeTimeoutsReturnAtOnce) {
  Condition& c = cond();
  std::unique_lock lk(c);
  const auto took = elapsed([&] {
    EXPECT_FALSE(c.wait(0s));
    EXPECT_FALSE(c.wait(-1s));
    EXPECT_FALSE(c.wait_until(Clock::now() - 1s));
    EXPECT_FALSE(c.wait_until(std::chrono::system_clock::now() - 1s));
    EXPECT_FALSE(c.wait_for([] { return false; }, 0s));
  });
  EXPECT_LT(took, kGenerous);
  EXPECT_TRUE(lock_held_here());
}

TEST_P(ConditionOver, WaitUntilTimePointsOfEitherClock) {
  Condition& c = cond();
  std::unique_lock lk(c);
  auto took = elapsed([&] { EXPECT_FALSE(c.wait_until(Clock::now() + kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  took = elapsed([&] { EXPECT_FALSE(c.wait_until(std::chrono::system_clock::now() + kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  took = elapsed([&] { EXPECT_FALSE(c.wait_until([] { return false; }, Clock::now() + kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_TRUE(lock_held_here());
}

// TIMEOUT_MAX: a huge timeout waits for the notify, it does not expire at once.
TEST_P(ConditionOver, HugeTimeoutsMeanForever) {
  Condition& c = cond();
  std::size_t ready = 0;  // guarded by c
  std::atomic<int> by_duration{kPending};
  std::atomic<int> by_time_point{kPending};
  Bunch waiters(2, [&](std::size_t i) {
    std::unique_lock lk(c);
    ++ready;
    if (i == 0) {
      by_duration = c.wait(std::chrono::hours::max()) ? kNotified : kTimedOut;
    } else {
      by_time_point = c.wait_until(Clock::time_point::max()) ? kNotified : kTimedOut;
    }
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return ready == 2; }); }));
  EXPECT_TRUE(holds_for(kShort, [&] { return by_duration == kPending; }));
  EXPECT_EQ(by_time_point, kPending);
  under(c, [&] { c.notify_all(); });
  waiters.join();
  EXPECT_EQ(by_duration, kNotified);
  EXPECT_EQ(by_time_point, kNotified);
}

// While a thread waits, the lock is free for others (every level of an RLock).
TEST_P(ConditionOver, WaitReleasesTheLock) {
  Condition& c = cond();
  std::atomic<int> outcome{kPending};
  std::atomic<bool> holding{false};
  Bunch waiter(1, [&](std::size_t) {
    std::unique_lock outer(c);
    if (GetParam() != Over::kLock) c.acquire();  // a second level of the RLock
    holding = true;
    outcome = c.wait(kGenerous) ? kNotified : kTimedOut;
    EXPECT_TRUE(lock_held_here());
    if (GetParam() == Over::kRLock) {
      EXPECT_EQ(rlock_.recursion_count(), 2u);
    }
    if (GetParam() != Over::kLock) c.release();
  });
  // The waiter holds the lock from `holding` until wait() releases it, so try_acquire first
  // succeeds while it waits.
  ASSERT_TRUE(wait_until([&] { return holding.load(); }));
  ASSERT_TRUE(wait_until([&] { return c.try_acquire(); }));
  EXPECT_EQ(outcome, kPending);
  c.notify();
  c.release();
  waiter.join();
  EXPECT_EQ(outcome, kNotified);
}

// test_waitfor: wait_for(pred) returns once pred() holds, with pred's value.
TEST_P(ConditionOver, WaitForReturnsWhenThePredicateHolds) {
  Condition& c = cond();
  int state = 0;  // guarded by c
  std::atomic<int> outcome{kPending};
  int seen = -1;
  Bunch waiter(1, [&](std::size_t) {
    std::unique_lock lk(c);
    outcome = c.wait_for([&] { return state == 4; }, kGenerous) ? kNotified : kTimedOut;
    seen = state;
  });
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(10ms);
    under(c, [&] {
      ++state;
      c.notify();
    });
  }
  waiter.join();
  EXPECT_EQ(outcome, kNotified);
  EXPECT_EQ(seen, 4);
}

// The untimed wait_for(pred). The predicate is made true first and notify_all repeated until the
// waiter returns, so a failure cannot hang the test unless wait_for ignores notifications.
TEST_P(ConditionOver, WaitForWithoutTimeout) {
  Condition& c = cond();
  bool go = false;  // guarded by c
  std::atomic<bool> done{false};
  bool result = false;
  Bunch waiter(1, [&](std::size_t) {
    std::unique_lock lk(c);
    result = c.wait_for([&] { return go; });
    done = true;
  });
  std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(done);
  EXPECT_TRUE(wait_until([&] {
    under(c, [&] {
      go = true;
      c.notify_all();
    });
    return done.load();
  }));
  waiter.join();
  EXPECT_TRUE(result);
}

TEST_P(ConditionOver, WaitForWithATruePredicateDoesNotWait) {
  Condition& c = cond();
  std::unique_lock lk(c);
  int calls = 0;
  const auto took = elapsed([&] {
    EXPECT_TRUE(c.wait_for([&] { return ++calls > 0; }));
    EXPECT_TRUE(c.wait_for([] { return true; }, 0s));
    EXPECT_TRUE(c.wait_for([] { return true; }, -1s));
    EXPECT_TRUE(c.wait_for([] { return true; }, kGenerous));
    EXPECT_TRUE(c.wait_until([] { return true; }, Clock::now() + kGenerous));
  });
  EXPECT_LT(took, kGenerous);
  EXPECT_EQ(calls, 1);
}

// test_waitfor_timeout: the predicate never becomes true; wait_for returns false after the
// timeout however often it is notified meanwhile.
TEST_P(ConditionOver, WaitForTimesOutWithThePredicatesValue) {
  Condition& c = cond();
  constexpr auto kTimeout = 2 * kShort;
  int state = 0;  // guarded by c
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) {
    std::unique_lock lk(c);
    bool result = true;
    const auto took = elapsed([&] { result = c.wait_for([&] { return state == 4; }, kTimeout); });
    EXPECT_GE(took, kTimeout - kSlack);
    EXPECT_LT(took, kGenerous);
    outcome = result ? kNotified : kTimedOut;
  });
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(10ms);
    under(c, [&] {
      ++state;
      c.notify();
    });
  }
  waiter.join();
  EXPECT_EQ(outcome, kTimedOut);
}

// wait_for returns the predicate's value at the end, not whether a notify came: a predicate
// made true without any notify is seen when the timeout ends the wait.
TEST_P(ConditionOver, WaitForReportsAPredicateMadeTrueWithoutNotify) {
  Condition& c = cond();
  bool flag = false;  // guarded by c
  bool waiting = false;
  std::atomic<int> outcome{kPending};
  Bunch waiter(1, [&](std::size_t) {
    std::unique_lock lk(c);
    waiting = true;
    outcome = c.wait_for([&] { return flag; }, 2 * kShort) ? kNotified : kTimedOut;
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return waiting; }); }));
  under(c, [&] { flag = true; });  // no notify
  waiter.join();
  EXPECT_EQ(outcome, kNotified);
}

// concur's guarantee beyond Python (condition.cpp, notify): a waiter whose timeout fired is
// never counted by notify(n). Short-timeout waiters queue first, then one long waiter; the
// notifier holds the lock past the short timeouts, so the short waiters cannot leave wait()
// yet, then calls notify(1). The notification must reach the long waiter. (If a short waiter's
// own wake-up beat its timeout it took the notification legitimately; then the long waiter must
// still be waiting.)
TEST_P(ConditionOver, TimedOutWaiterIsNotCountedByNotify) {
  constexpr std::size_t kShortWaiters = 3;
  Condition& c = cond();
  std::size_t queued = 0;  // guarded by c
  std::vector<std::atomic<int>> short_outcome(kShortWaiters);
  std::atomic<int> long_outcome{kPending};
  Bunch shorts(kShortWaiters, [&](std::size_t i) {
    std::unique_lock lk(c);
    ++queued;
    short_outcome[i] = c.wait(kShort) ? kNotified : kTimedOut;
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return queued == kShortWaiters; }); }));
  Bunch longer(1, [&](std::size_t) {
    std::unique_lock lk(c);
    ++queued;
    long_outcome = c.wait(kGenerous) ? kNotified : kTimedOut;
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return queued == kShortWaiters + 1; }); }));
  under(c, [&] {
    std::this_thread::sleep_for(3 * kShort);  // the short timeouts fire while we hold the lock
    c.notify(1);
  });
  shorts.join();
  std::size_t shorts_notified = 0;
  for (auto& o : short_outcome) shorts_notified += o == kNotified ? 1 : 0;
  EXPECT_LE(shorts_notified, 1u);
  if (shorts_notified == 0) {
    longer.join();
    EXPECT_EQ(long_outcome, kNotified) << "notify(1) was spent on a waiter that had timed out";
  } else {
    EXPECT_TRUE(holds_for(kShort, [&] { return long_outcome == kPending; }));
    under(c, [&] { c.notify(1); });
    longer.join();
    EXPECT_EQ(long_outcome, kNotified);
  }
}

// ---- Condition over an RLock: the recursion count across wait() ----------------------------

TEST_F(ConditionTest, WaitRestoresTheRLockRecursionCount) {
  RLock rlock;
  Condition cond(rlock);
  rlock.acquire();
  rlock.acquire();
  rlock.acquire();
  EXPECT_FALSE(cond.wait(1ms));
  EXPECT_TRUE(rlock.is_owned());
  EXPECT_EQ(rlock.recursion_count(), 3u);
  EXPECT_FALSE(cond.wait_for([] { return false; }, 1ms));
  EXPECT_EQ(rlock.recursion_count(), 3u);

  // Notified rather than timed out: the same count comes back, and meanwhile the lock was free.
  std::atomic<int> outcome{kPending};
  std::atomic<std::uint32_t> count_after{0};
  std::atomic<bool> holding{false};
  Bunch waiter(1, [&](std::size_t) {
    for (int i = 0; i < 3; ++i) rlock.acquire();
    holding = true;
    outcome = cond.wait(kGenerous) ? kNotified : kTimedOut;
    count_after = rlock.recursion_count();
    for (int i = 0; i < 3; ++i) rlock.release();
  });
  rlock.release();
  rlock.release();
  rlock.release();
  // The waiter holds all 3 levels from `holding` until wait() releases them.
  ASSERT_TRUE(wait_until([&] { return holding.load(); }));
  ASSERT_TRUE(wait_until([&] { return rlock.try_acquire(); }));
  EXPECT_EQ(rlock.recursion_count(), 1u);
  cond.notify();
  rlock.release();
  waiter.join();
  EXPECT_EQ(outcome, kNotified);
  EXPECT_EQ(count_after, 3u);
  EXPECT_FALSE(rlock.locked());
}

// ---- sweeps over kThreadCounts --------------------------------------------------------------

class ConditionSweep : public QuiescentTest, public ::testing::WithParamInterface<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, ConditionSweep, ::testing::ValuesIn(kThreadCounts));

TEST_P(ConditionSweep, NotifyAllWakesEveryWaiter) {
  const std::size_t n = GetParam();
  Condition c;
  std::size_t ready = 0;  // guarded by c
  std::atomic<std::size_t> notified{0};
  Bunch bunch(n, [&](std::size_t) {
    std::unique_lock lk(c);
    ++ready;
    if (c.wait(kGenerous)) notified.fetch_add(1);
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return ready == n; }); }));
  EXPECT_EQ(notified, 0u);
  under(c, [&] { c.notify_all(); });
  bunch.join();
  EXPECT_EQ(notified, n);
}

// Waiters wake in the order they started waiting (condition.hpp: "FIFO order").
TEST_P(ConditionSweep, NotifyWakesInFifoOrder) {
  const std::size_t n = GetParam();
  Lock lock;
  Condition c(lock);
  std::size_t queued = 0;          // guarded by lock
  std::vector<std::size_t> woken;  // guarded by lock
  Bunch bunch(n, [&](std::size_t i) {
    std::unique_lock lk(lock);
    // Queue in index order: wait (bounded) for waiter i - 1 to be in wait() first.
    const auto deadline = Clock::now() + kGenerous;
    while (queued != i && Clock::now() < deadline) {
      lk.unlock();
      std::this_thread::sleep_for(1ms);
      lk.lock();
    }
    ASSERT_EQ(queued, i);
    ++queued;
    EXPECT_TRUE(c.wait(kGenerous));
    woken.push_back(i);
  });
  ASSERT_TRUE(wait_until([&] { return under(c, [&] { return queued == n; }); }));
  for (std::size_t k = 0; k < n; ++k) {
    under(c, [&] { c.notify(1); });
    EXPECT_TRUE(wait_until([&] { return under(c, [&] { return woken.size() == k + 1; }); }));
  }
  bunch.join();
  std::vector<std::size_t> expected(n);
  std::iota(expected.begin(), expected.end(), std::size_t{0});
  EXPECT_EQ(woken, expected);
}

// Producer/consumer: n producers and n consumers through a bounded queue, with two conditions
// over one Lock. Every item is consumed exactly once; a lost wake-up would stall a wait for
// kGenerous and fail it.
TEST_P(ConditionSweep, ProducerConsumer) {
  const std::size_t n = GetParam();
  constexpr std::size_t kItemsEach = 300;
  constexpr std::size_t kCapacity = 4;
  const std::size_t total = n * kItemsEach;
  Lock lock;
  Condition not_empty(lock);
  Condition not_full(lock);
  std::deque<std::size_t> queue;    // guarded by lock
  std::vector<int> seen(total, 0);  // guarded by lock
  std::size_t consumed = 0;         // guarded by lock

  Bunch producers(n, [&](std::size_t p) {
    for (std::size_t k = 0; k < kItemsEach; ++k) {
      std::unique_lock lk(lock);
      ASSERT_TRUE(not_full.wait_for([&] { return queue.size() < kCapacity; }, kGenerous));
      queue.push_back(p * kItemsEach + k);
      not_empty.notify();
    }
  });
  Bunch consumers(n, [&](std::size_t) {
    std::unique_lock lk(lock);
    for (;;) {
      ASSERT_TRUE(
          not_empty.wait_for([&] { return !queue.empty() || consumed == total; }, kGenerous));
      if (queue.empty()) return;  // everything consumed
      ++seen[queue.front()];
      queue.pop_front();
      ++consumed;
      not_full.notify();
      if (consumed == total) not_empty.notify_all();  // let the other consumers finish
    }
  });
  producers.join();
  consumers.join();
  std::unique_lock lk(lock);
  EXPECT_EQ(consumed, total);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<std::ptrdiff_t>(total));
}

}  // namespace
