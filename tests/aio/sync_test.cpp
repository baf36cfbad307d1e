// Tests for include/concur/aio/sync.hpp: Lock, Event, Condition, Semaphore, BoundedSemaphore,
// Barrier and Guard, ported from CPython's test_asyncio/test_locks.py (FIFO order, cancellation
// while waiting, the races between a wake-up and a cancellation — a waiter handed the lock, a
// permit or a notification and cancelled before it resumed passes it on —, Condition.wait_for and
// re-acquiring the lock when cancelled, BoundedSemaphore over-release, Barrier rounds, draining,
// reset and abort), the loop binding, and bounded stress runs with random cancellations.
#include "concur/aio/sync.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "support/hook_support.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

class AioSyncTest : public HookCapturingTest {};

// run_bounded(main): aio::run with the main coroutine bounded by kGenerous, so a lost wake-up
// fails the test with TimeoutError instead of hanging it (STYLE.md rule 14).
template <class T>
T run_bounded(aio::Task<T> main) {
  return aio::run(aio::timeout(kGenerous, std::move(main)));
}

// One loop iteration (Python's `await asyncio.sleep(0)`).
aio::detail::SleepAwaiter tick() { return aio::sleep(0s); }

aio::Task<void> acquire_lock(aio::Lock& lock) { co_await lock.acquire(); }
aio::Task<void> acquire_sem(aio::Semaphore& sem) { co_await sem.acquire(); }
aio::Task<void> wait_event(aio::Event& ev) { co_await ev.wait(); }

// ---- Lock
// ----------------------------------------------------------------------------------------

TEST_F(AioSyncTest, LockAcquireAndReleaseFlipLocked) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    EXPECT_FALSE(lock.locked());
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());
    EXPECT_THROW(lock.release(), RuntimeError) << "Lock is not acquired.";
  };
  run_bounded(main());
}

// test_acquire: waiters get the lock one release at a time, in arrival order.
TEST_F(AioSyncTest, LockServesWaitersInArrivalOrder) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    std::vector<int> result;
    co_await lock.acquire();
    auto taker = [&](int id) -> aio::Task<void> {
      co_await lock.acquire();
      result.push_back(id);
    };
    auto t1 = aio::create_task(taker(1));
    auto t2 = aio::create_task(taker(2));
    co_await tick();
    EXPECT_TRUE(result.empty());
    lock.release();
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1}));
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1}));
    auto t3 = aio::create_task(taker(3));
    lock.release();
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1, 2}));
    lock.release();
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
    EXPECT_TRUE(lock.locked());
  };
  run_bounded(main());
}

TEST_F(AioSyncTest, LockAcquireOfAFreeLockDoesNotSuspend) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    bool other_ran = false;
    auto other = [&]() -> aio::Task<void> {
      other_ran = true;
      co_return;
    };
    auto t = aio::create_task(other());
    co_await lock.acquire();
    EXPECT_FALSE(other_ran) << "no suspension point: the other task has not run yet";
    lock.release();
    co_await t;
  };
  run_bounded(main());
}

// test_acquire_cancel: a waiter cancelled while waiting leaves the queue without the lock.
TEST_F(AioSyncTest, LockWaiterCancelledWhileWaitingLeavesTheQueue) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    co_await lock.acquire();
    auto waiter = aio::create_task(acquire_lock(lock));
    co_await tick();
    EXPECT_TRUE(waiter.cancel());
    EXPECT_THROW(co_await waiter, CancelledError);
    EXPECT_TRUE(lock.locked()) << "still ours";
    lock.release();
    EXPECT_FALSE(lock.locked()) << "nobody left to hand it to";
    co_await lock.acquire();
    lock.release();
  };
  run_bounded(main());
}

// The brief's case: a waiter that was woken (told the lock is free) and cancelled before it
// resumed raises CancelledError and hands the wake-up to the next waiter.
TEST_F(AioSyncTest, LockWaiterWokenThenCancelledPassesTheLockOn) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    co_await lock.acquire();
    auto b = aio::create_task(acquire_lock(lock));
    auto c = aio::create_task(acquire_lock(lock));
    co_await tick();
    lock.release();  // b is woken...
    EXPECT_FALSE(lock.locked()) << "Python: unlocked until the woken waiter runs";
    EXPECT_TRUE(b.cancel());  // ...and cancelled before it resumed
    EXPECT_THROW(co_await b, CancelledError);
    co_await c;  // without the hand-over, c would wait forever
    EXPECT_TRUE(lock.locked()) << "c holds it";
    lock.release();
    EXPECT_FALSE(lock.locked());

    // Alone in the queue: the lock ends free, and a newcomer takes it at once.
    co_await lock.acquire();
    auto d = aio::create_task(acquire_lock(lock));
    co_await tick();
    lock.release();
    d.cancel();
    EXPECT_THROW(co_await d, CancelledError);
    EXPECT_FALSE(lock.locked());
    co_await lock.acquire();
    lock.release();
  };
  run_bounded(main());
}

// test_finished_waiter_cancelled: b cancelled, then the lock released, before c ever ran.
TEST_F(AioSyncTest, LockCancelledWaiterThenReleaseLetsTheNextOneIn) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    co_await lock.acquire();
    auto b = aio::create_task(acquire_lock(lock));
    co_await tick();
    auto c = aio::create_task(acquire_lock(lock));
    b.cancel();
    lock.release();
    co_await tick();
    EXPECT_TRUE(lock.locked());
    EXPECT_TRUE(b.cancelled());
    co_await c;
    EXPECT_TRUE(c.done());
  };
  run_bounded(main());
}

// test_cancel_race: A holds, B and C wait; B is cancelled as A releases: C must get the lock.
TEST_F(AioSyncTest, LockCancelRaceWithReleaseWakesTheNextLiveWaiter) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    aio::Event blocker;
    auto lockit = [&](aio::Event* block) -> aio::Task<void> {
      auto guard = co_await lock.scoped();
      if (block != nullptr) co_await block->wait();
    };
    auto ta = aio::create_task(lockit(&blocker));
    co_await tick();
    EXPECT_TRUE(lock.locked());
    auto tb = aio::create_task(lockit(nullptr));
    co_await tick();
    auto tc = aio::create_task(lockit(nullptr));
    co_await tick();
    blocker.set();
    tb.cancel();
    co_await tick();
    EXPECT_FALSE(lock.locked()) << "A released; C is woken and has not run yet";
    EXPECT_TRUE(ta.done());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
    EXPECT_FALSE(lock.locked());
  };
  run_bounded(main());
}

// test_cancel_release_race: t1 cancelled and the lock released in one callback: exactly one of
// the other two takes it.
TEST_F(AioSyncTest, LockCancelReleaseRaceTakesTheLockOnce) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    int lock_count = 0;
    int call_count = 0;
    auto lockit = [&]() -> aio::Task<void> {
      ++call_count;
      co_await lock.acquire();
      ++lock_count;
    };
    co_await lock.acquire();
    aio::Task<void> t1 = aio::create_task(lockit());
    aio::Task<void> t2 = aio::create_task(lockit());
    aio::Task<void> t3 = aio::create_task(lockit());
    co_await tick();
    aio::get_running_loop().call_soon([&] {
      t1.cancel();
      lock.release();
    });
    EXPECT_THROW(co_await t1, CancelledError);
    EXPECT_EQ(lock_count, 1);
    EXPECT_EQ(call_count, 3);
    EXPECT_TRUE(t1.cancelled());
    EXPECT_TRUE(t2.done());
    t3.cancel();
    co_await tick();
    EXPECT_TRUE(t3.cancelled());
  };
  run_bounded(main());
}

// A cancellation pending when acquire() must wait is delivered there, and nothing is taken; on a
// free lock acquire() does not suspend, so the cancellation waits for the next suspension.
TEST_F(AioSyncTest, LockPendingCancellationIsDeliveredWhenAcquireMustWait) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    auto self_cancel = [&]() -> aio::Task<int> {
      aio::current_task().cancel();
      co_await lock.acquire();  // free: taken without suspending
      EXPECT_TRUE(lock.locked());
      try {
        co_await lock.acquire();  // held: must wait, so the cancellation lands here
      } catch (const CancelledError&) {
        lock.release();
        throw;
      }
      co_return 1;
    };
    auto t = aio::create_task(self_cancel());
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(lock.locked());
    co_await lock.acquire();  // nothing stuck in the queue
    lock.release();
  };
  run_bounded(main());
}

// uncancel() after the cancellation reached a waiting task: the wait is over (it left the queue),
// so acquire() still raises CancelledError rather than return without the lock (Python: the
// waiter's future was cancelled). Withdrawn after the wake-up instead, the acquire completes.
TEST_F(AioSyncTest, LockUncancelAfterTheCancellationDoesNotFakeAnAcquisition) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    co_await lock.acquire();
    auto left = aio::create_task(acquire_lock(lock));
    co_await tick();
    left.cancel();
    EXPECT_EQ(left.uncancel(), 0);
    EXPECT_THROW(co_await left, CancelledError);
    EXPECT_TRUE(lock.locked()) << "still main's";

    auto woken = aio::create_task(acquire_lock(lock));
    co_await tick();
    lock.release();                  // woken is told the lock is free...
    woken.cancel();                  // ...cancelled...
    EXPECT_EQ(woken.uncancel(), 0);  // ...and the cancellation withdrawn before it ran
    co_await woken;
    EXPECT_TRUE(lock.locked()) << "it took the lock";
    lock.release();
  };
  run_bounded(main());
}

// test_acquire_fifo_order for the Lock: three tasks taking it twice each alternate in order.
TEST_F(AioSyncTest, LockIsFairAcrossRepeatedAcquisitions) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    std::vector<std::string> result;
    auto coro = [&](std::string tag) -> aio::Task<void> {
      for (int round = 1; round <= 2; ++round) {
        co_await lock.acquire();
        result.push_back(tag + "_" + std::to_string(round));
        co_await aio::sleep(1ms);
        lock.release();
      }
    };
    auto a = aio::create_task(coro("c1"));
    auto b = aio::create_task(coro("c2"));
    auto c = aio::create_task(coro("c3"));
    co_await a;
    co_await b;
    co_await c;
    EXPECT_EQ(result, (std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"}));
  };
  run_bounded(main());
}

TEST_F(AioSyncTest, ScopedGuardReleasesOnScopeExitOnThrowAndOnRelease) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    {
      auto guard = co_await lock.scoped();
      EXPECT_TRUE(guard.owns());
      EXPECT_TRUE(lock.locked());
    }
    EXPECT_FALSE(lock.locked());
    try {
      auto guard = co_await lock.scoped();
      throw std::runtime_error("inside async with");
    } catch (const std::runtime_error&) {
    }
    EXPECT_FALSE(lock.locked()) << "released while the exception propagated";
    auto guard = co_await lock.scoped();
    aio::Guard<aio::Lock> moved = std::move(guard);
    EXPECT_FALSE(guard.owns());  // NOLINT(bugprone-use-after-move): moved-from is documented
    EXPECT_TRUE(moved.owns());
    moved.release();
    EXPECT_FALSE(moved.owns());
    EXPECT_FALSE(lock.locked());
    moved.release();  // a second release does nothing
  };
  run_bounded(main());
}

TEST_F(AioSyncTest, AGuardWhoseLockWasReleasedBehindItsBackReportsOnce) {
  expect_reports(1);
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    auto guard = co_await lock.scoped();
    lock.release();  // misuse: the guard's release will find the lock unlocked
  };
  run_bounded(main());
  const auto got = reports();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_NE(got[0].message.find("Lock is not acquired"), std::string::npos) << got[0].message;
}

// A primitive belongs to the loop of the tasks that wait on it (Python's _LoopBoundMixin): a task
// of another loop gets RuntimeError while they wait; once idle, another loop may use it.
TEST_F(AioSyncTest, APrimitiveWithWaitersRefusesTasksOfAnotherLoop) {
  aio::Lock lock;
  aio::Loop a;
  aio::Loop b;
  auto park_one = [&]() -> aio::Task<void> {
    co_await lock.acquire();
    (void)aio::create_task(acquire_lock(lock));  // waits, in loop a
    co_await tick();
  };
  a.run_until_complete(park_one());
  auto other = [&]() -> aio::Task<void> { EXPECT_THROW(co_await lock.acquire(), RuntimeError); };
  b.run_until_complete(other());
  a.close();  // the waiter of loop a is cancelled: the lock is idle again
  auto reuse = [&]() -> aio::Task<void> {
    lock.release();
    co_await lock.acquire();
    auto w = aio::create_task(acquire_lock(lock));
    co_await tick();
    lock.release();
    co_await w;
    lock.release();
  };
  b.run_until_complete(reuse());
  EXPECT_FALSE(lock.locked());
}

// ---- Event
// ---------------------------------------------------------------------------------------

// test_wait: set() wakes every waiter; a wait on a set event returns at once.
TEST_F(AioSyncTest, EventSetWakesEveryWaiter) {
  auto main = []() -> aio::Task<void> {
    aio::Event ev;
    std::vector<int> result;
    auto waiter = [&](int id) -> aio::Task<void> {
      co_await ev.wait();
      result.push_back(id);
    };
    EXPECT_FALSE(ev.is_set());
    auto t1 = aio::create_task(waiter(1));
    auto t2 = aio::create_task(waiter(2));
    co_await tick();
    EXPECT_TRUE(result.empty());
    auto t3 = aio::create_task(waiter(3));
    ev.set();
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{3, 1, 2}));
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
    EXPECT_TRUE(ev.is_set());
    co_await ev.wait();  // set: no suspension
  };
  run_bounded(main());
}

// test_clear_with_waiters: a waiter woken by set() returns even though clear() followed.
TEST_F(AioSyncTest, EventClearAfterSetStillReleasesTheWokenWaiters) {
  auto main = []() -> aio::Task<void> {
    aio::Event ev;
    int done = 0;
    auto waiter = [&]() -> aio::Task<void> {
      co_await ev.wait();
      ++done;
    };
    auto t = aio::create_task(waiter());
    co_await tick();
    ev.set();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    ev.set();
    ev.set();
    co_await tick();
    EXPECT_EQ(done, 1);
    EXPECT_TRUE(t.done());
    ev.clear();
    auto again = aio::create_task(wait_event(ev));
    co_await tick();
    EXPECT_FALSE(again.done()) << "cleared: a new wait blocks";
    ev.set();
    co_await again;
  };
  run_bounded(main());
}

// test_wait_cancel, and a waiter cancelled after set() woke it.
TEST_F(AioSyncTest, EventWaiterCancelledBeforeOrAfterTheWakeUpRaisesCancelled) {
  auto main = []() -> aio::Task<void> {
    aio::Event ev;
    auto early = aio::create_task(wait_event(ev));
    auto late = aio::create_task(wait_event(ev));
    auto other = aio::create_task(wait_event(ev));
    co_await tick();
    early.cancel();
    EXPECT_THROW(co_await early, CancelledError);
    ev.set();
    late.cancel();  // woken, not resumed
    EXPECT_THROW(co_await late, CancelledError);
    co_await other;  // set() reached everyone else
  };
  run_bounded(main());
}

// ---- Condition
// -----------------------------------------------------------------------------------

TEST_F(AioSyncTest, ConditionWaitAndNotifyNeedTheLock) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    EXPECT_THROW(co_await cond.wait(), RuntimeError);
    EXPECT_THROW(cond.notify(), RuntimeError);
    EXPECT_THROW(cond.notify_all(), RuntimeError);
    // test_wait_for_unacquired: a predicate true at once needs no lock; its value is returned.
    const std::optional<int> got = co_await cond.wait_for([] { return std::optional<int>(7); });
    EXPECT_EQ(got, std::optional<int>(7));
    EXPECT_THROW(co_await cond.wait_for([] { return false; }), RuntimeError);
    EXPECT_FALSE(cond.locked());
  };
  run_bounded(main());
}

// test_notify: notify(n) wakes the first n waiters; each returns holding the lock.
TEST_F(AioSyncTest, ConditionNotifyWakesWaitersInArrivalOrder) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    std::vector<int> result;
    auto waiter = [&](int id) -> aio::Task<void> {
      auto guard = co_await cond.scoped();
      co_await cond.wait();
      EXPECT_TRUE(cond.locked()) << "wait() returns holding the lock";
      result.push_back(id);
    };
    auto t1 = aio::create_task(waiter(1));
    auto t2 = aio::create_task(waiter(2));
    auto t3 = aio::create_task(waiter(3));
    co_await tick();
    EXPECT_TRUE(result.empty());
    EXPECT_FALSE(cond.locked()) << "the waiters released it";
    {
      auto guard = co_await cond.scoped();
      cond.notify(1);
    }
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1}));
    {
      auto guard = co_await cond.scoped();
      cond.notify(1);
      cond.notify(2048);
    }
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
  };
  run_bounded(main());
}

// test_notify_all.
TEST_F(AioSyncTest, ConditionNotifyAllWakesEveryWaiter) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    std::vector<int> result;
    auto waiter = [&](int id) -> aio::Task<void> {
      auto guard = co_await cond.scoped();
      co_await cond.wait();
      result.push_back(id);
    };
    auto t1 = aio::create_task(waiter(1));
    auto t2 = aio::create_task(waiter(2));
    co_await tick();
    EXPECT_TRUE(result.empty());
    {
      auto guard = co_await cond.scoped();
      cond.notify_all();
    }
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1, 2}));
    EXPECT_TRUE(t1.done() && t2.done());
  };
  run_bounded(main());
}

// test_wait_for: a notification with the predicate still false sends the waiter back to sleep.
TEST_F(AioSyncTest, ConditionWaitForWaitsUntilThePredicateHolds) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    bool presult = false;
    std::vector<int> result;
    auto waiter = [&]() -> aio::Task<bool> {
      co_await cond.acquire();
      const bool ok = co_await cond.wait_for([&] { return presult; });
      if (ok) {
        result.push_back(1);
        cond.release();
      }
      co_return true;
    };
    auto t = aio::create_task(waiter());
    co_await tick();
    EXPECT_TRUE(result.empty());
    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await tick();
    EXPECT_TRUE(result.empty()) << "woken, predicate false: waiting again";
    presult = true;
    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1}));
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(t.result());
  };
  run_bounded(main());
}

// test_wait_cancel_contested: cancelled while notified and contesting the lock, the waiter still
// re-acquires it before the cancellation propagates.
TEST_F(AioSyncTest, ConditionWaitCancelledReacquiresTheLockBeforeRaising) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    co_await cond.acquire();
    aio::Task<void> waiter = aio::create_task(cond.wait());  // releases the lock main holds
    co_await tick();
    EXPECT_FALSE(cond.locked());
    co_await cond.acquire();
    cond.notify();
    aio::get_running_loop().call_soon([&] { waiter.cancel(); });
    aio::get_running_loop().call_soon([&] { cond.release(); });
    EXPECT_THROW(co_await waiter, CancelledError);
    EXPECT_TRUE(cond.locked()) << "the cancelled waiter re-acquired the lock";
    cond.release();
  };
  run_bounded(main());
}

// A waiter cancelled while waiting (not notified) raises CancelledError only once it holds the
// lock again — here after main releases it.
TEST_F(AioSyncTest, ConditionWaiterCancelledWhileTheLockIsHeldWaitsForTheLock) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    bool held_in_handler = false;
    auto waiter = [&]() -> aio::Task<void> {
      auto guard = co_await cond.scoped();
      try {
        co_await cond.wait();
      } catch (const CancelledError&) {
        held_in_handler = cond.locked();
        throw;
      }
    };
    auto t = aio::create_task(waiter());
    co_await tick();
    co_await cond.acquire();
    t.cancel();
    co_await tick();
    co_await tick();
    EXPECT_FALSE(t.done()) << "it cannot raise before it has the lock back";
    cond.release();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(held_in_handler);
    EXPECT_FALSE(cond.locked()) << "its guard released it";
  };
  run_bounded(main());
}

// test_cancelled_wakeup (gh-112202): a consumer notified and cancelled before it resumed hands the
// notification to the other consumer, which consumes the item.
TEST_F(AioSyncTest, ConditionNotifiedThenCancelledPassesTheNotificationOn) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    int state = 0;
    auto consumer = [&]() -> aio::Task<void> {
      auto guard = co_await cond.scoped();
      for (;;) {
        co_await cond.wait_for([&] { return state != 0; });
        if (state < 0) co_return;
        --state;
      }
    };
    auto c0 = aio::create_task(consumer());
    auto c1 = aio::create_task(consumer());
    co_await tick();
    {
      auto guard = co_await cond.scoped();
      ++state;
      cond.notify(1);  // wakes c0...
      c0.cancel();     // ...which is cancelled before it runs
      try {
        co_await aio::timeout(20ms, cond.wait_for([&] { return state == 0; }));
      } catch (const TimeoutError&) {
      }
      EXPECT_EQ(state, 0) << "the notification reached c1";
      state = -1;
      cond.notify_all();
    }
    co_await c1;
    EXPECT_THROW(co_await c0, CancelledError);
  };
  run_bounded(main());
}

// test_cancelled_wakeup_relock: the same race, with the consumer cancelled while re-acquiring the
// lock after its notification.
TEST_F(AioSyncTest, ConditionNotifiedThenCancelledWhileRelockingPassesTheNotificationOn) {
  auto main = []() -> aio::Task<void> {
    aio::Condition cond;
    int state = 0;
    auto consumer = [&]() -> aio::Task<void> {
      auto guard = co_await cond.scoped();
      for (;;) {
        co_await cond.wait_for([&] { return state != 0; });
        if (state < 0) co_return;
        --state;
      }
    };
    auto c0 = aio::create_task(consumer());
    auto c1 = aio::create_task(consumer());
    co_await tick();
    {
      auto guard = co_await cond.scoped();
      ++state;
      cond.notify(1);
      co_await tick();  // c0 wakes and waits for the lock main holds
      c0.cancel();
      try {
        co_await aio::timeout(20ms, cond.wait_for([&] { return state == 0; }));
      } catch (const TimeoutError&) {
      }
      EXPECT_EQ(state, 0) << "the notification reached c1";
      state = -1;
      cond.notify_all();
    }
    co_await c1;
    EXPECT_THROW(co_await c0, CancelledError);
  };
  run_bounded(main());
}

// test_explicit_lock: a Condition over the caller's lock shares its state.
TEST_F(AioSyncTest, ConditionOverTheCallersLockSharesIt) {
  auto main = []() -> aio::Task<void> {
    aio::Lock lock;
    aio::Condition cond(lock);
    co_await lock.acquire();
    EXPECT_TRUE(cond.locked());
    cond.release();
    EXPECT_FALSE(lock.locked());
    {
      auto guard = co_await cond.scoped();
      EXPECT_TRUE(lock.locked());
    }
    EXPECT_FALSE(lock.locked());
    bool woke = false;
    auto waiter = [&]() -> aio::Task<void> {
      co_await lock.acquire();
      co_await cond.wait();
      woke = lock.locked();
      lock.release();
    };
    auto t = aio::create_task(waiter());
    co_await tick();
    co_await lock.acquire();
    cond.notify();
    lock.release();
    co_await t;
    EXPECT_TRUE(woke);
  };
  run_bounded(main());
}

// ---- Semaphore
// -----------------------------------------------------------------------------------

TEST_F(AioSyncTest, SemaphoreInitialValueAndLocked) {
  EXPECT_THROW(aio::Semaphore(-1), ValueError);
  EXPECT_THROW(aio::BoundedSemaphore(-1), ValueError);
  auto main = []() -> aio::Task<void> {
    aio::Semaphore zero(0);
    EXPECT_TRUE(zero.locked());
    aio::Semaphore sem(2);
    EXPECT_FALSE(sem.locked());
    co_await sem.acquire();
    EXPECT_FALSE(sem.locked());
    co_await sem.acquire();
    EXPECT_TRUE(sem.locked());
    EXPECT_EQ(sem.value(), 0);
    sem.release(2);
    EXPECT_EQ(sem.value(), 2);
    EXPECT_THROW(sem.release(0), ValueError);
  };
  run_bounded(main());
}

// test_acquire: units go to the waiters in order; releases hand them over at once.
TEST_F(AioSyncTest, SemaphoreHandsUnitsToWaitersInOrder) {
  auto main = []() -> aio::Task<void> {
    aio::Semaphore sem(3);
    std::vector<int> result;
    co_await sem.acquire();
    co_await sem.acquire();
    EXPECT_FALSE(sem.locked());
    auto taker = [&](int id) -> aio::Task<bool> {
      co_await sem.acquire();
      result.push_back(id);
      co_return true;
    };
    auto t1 = aio::create_task(taker(1));
    auto t2 = aio::create_task(taker(2));
    auto t3 = aio::create_task(taker(3));
    co_await tick();
    EXPECT_EQ(result, (std::vector<int>{1}));
    EXPECT_TRUE(sem.locked());
    EXPECT_EQ(sem.value(), 0);
    auto t4 = aio::create_task(taker(4));
    sem.release();
    sem.release();
    EXPECT_EQ(sem.value(), 0) << "both units were handed to waiters";
    co_await tick();
    EXPECT_EQ(sem.value(), 0);
    EXPECT_EQ(result.size(), 3U);
    EXPECT_TRUE(sem.locked());
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t3.done()) << "the two that waited first";
    EXPECT_FALSE(t4.done());
    sem.release();
    co_await t4;
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
  };
  run_bounded(main());
}

// test_acquire_cancel.
TEST_F(AioSyncTest, SemaphoreWaiterCancelledWhileWaitingTakesNothing) {
  auto main = []() -> aio::Task<void> {
    aio::Semaphore sem(1);
    co_await sem.acquire();
    aio::Task<void> waiter = aio::create_task(acquire_sem(sem));
    aio::get_running_loop().call_soon([&] { waiter.cancel(); });
    EXPECT_THROW(co_await waiter, CancelledError);
    sem.release();
    EXPECT_EQ(sem.value(), 1);
    EXPECT_FALSE(sem.locked());
  };
  run_bounded(main());
}

// test_acquire_cancel_before_awoken: two cancelled waiters, one release: the first live one wins.
TEST_F(AioSyncTest, SemaphoreCancelledWaitersAreSkippedByRelease) {
  auto main = []() -> aio::Task<void> {
    aio::Semaphore sem(0);
    auto t1 = aio::create_task(acquire_sem(sem));
    auto t2 = aio::create_task(acquire_sem(sem));
    auto t3 = aio::create_task(acquire_sem(sem));
    auto t4 = aio::create_task(acquire_sem(sem));
    co_await tick();
    t1.cancel();
    t2.cancel();
    sem.release();
    co_await tick();
    co_await tick();
    EXPECT_TRUE(t3.done());
    EXPECT_FALSE(t4.done());
    t4.cancel();
    EXPECT_THROW(co_await t4, CancelledError);
    EXPECT_THROW(co_await t1, CancelledError);
    EXPECT_THROW(co_await t2, CancelledError);
    EXPECT_EQ(sem.value(), 0);
  };
  run_bounded(main());
}

// The brief's case (test_acquire_hang / test_acquire_no_hang): a waiter handed a unit and cancelled
// before it resumed gives the unit back, and the next waiter gets it.
TEST_F(AioSyncTest, SemaphoreWaiterWokenThenCancelledPassesTheUnitOn) {
  auto main = []() -> aio::Task<void> {
    aio::Semaphore sem(0);
    auto t1 = aio::create_task(acquire_sem(sem));
    auto t2 = aio::create_task(acquire_sem(sem));
    auto t3 = aio::create_task(acquire_sem(sem));
    co_await tick();
    sem.release();  // t1 is handed the unit...
    EXPECT_EQ(sem.value(), 0);
    t1.cancel();  // ...and cancelled before it runs
    EXPECT_THROW(co_await t1, CancelledError);
    co_await t2;  // the unit reached t2
    co_await tick();
    EXPECT_FALSE(t3.done()) << "exactly one unit was in play";
    EXPECT_EQ(sem.value(), 0);
    EXPECT_TRUE(sem.locked());
    sem.release();
    co_await t3;

    // test_acquire_no_hang: c1 releases and then cancels c2, which had just been handed the unit.
    aio::Semaphore one(1);
    aio::Task<void> c2;
    auto c1 = [&]() -> aio::Task<void> {
      {
        auto guard = co_await one.scoped();
        co_await tick();
      }
      c2.cancel();
    };
    auto body2 = [&]() -> aio::Task<void> {
      auto guard = co_await one.scoped();
      ADD_FAILURE() << "c2 was cancelled before it could run";
    };
    auto a = aio::create_task(c1());
    c2 = aio::create_task(body2());
    co_await a;
    EXPECT_THROW(co_await c2, CancelledError);
    EXPECT_EQ(one.value(), 1) << "the unit came back";
    co_await one.acquire();
  };
  run_bounded(main());
}

// test_acquire_fifo_order / _2 / _3.
TEST_F(AioSyncTest, SemaphoreIsFifoEvenWhenAUnitIsFree) {
  auto main = []() -> aio::Task<void> {
    {
      aio::Semaphore sem(1);
      std::vector<std::string> result;
      auto coro = [&](std::string tag) -> aio::Task<void> {
        for (int round = 1; round <= 2; ++round) {
          co_await sem.acquire();
          result.push_back(tag + "_" + std::to_string(round));
          co_await aio::sleep(1ms);
          sem.release();
        }
      };
      auto a = aio::create_task(coro("c1"));
      auto b = aio::create_task(coro("c2"));
      auto c = aio::create_task(coro("c3"));
      co_await a;
      co_await b;
      co_await c;
      EXPECT_EQ(result, (std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"}));
    }
    {
      // _2: c2 releases and re-acquires while c3, woken before it, has not run yet: c3 goes first.
      aio::Semaphore sem(1);
      std::vector<int> result;
      auto c1 = [&]() -> aio::Task<void> {
        co_await sem.acquire();
        result.push_back(1);
      };
      auto c2 = [&]() -> aio::Task<void> {
        co_await sem.acquire();
        result.push_back(2);
        sem.release();
        co_await sem.acquire();
        result.push_back(4);
      };
      auto c3 = [&]() -> aio::Task<void> {
        co_await sem.acquire();
        result.push_back(3);
      };
      auto t1 = aio::create_task(c1());
      auto t2 = aio::create_task(c2());
      auto t3 = aio::create_task(c3());
      co_await tick();
      sem.release();
      sem.release();
      co_await t1;
      co_await t2;
      co_await t3;
      EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
    }
    {
      // _3: a cancelled first waiter is skipped.
      aio::Semaphore sem(0);
      std::vector<int> result;
      auto taker = [&](int id) -> aio::Task<void> {
        co_await sem.acquire();
        result.push_back(id);
      };
      auto t1 = aio::create_task(taker(1));
      auto t2 = aio::create_task(taker(2));
      auto t3 = aio::create_task(taker(3));
      co_await tick();
      t1.cancel();
      co_await tick();
      sem.release();
      sem.release();
      EXPECT_THROW(co_await t1, CancelledError);
      co_await t2;
      co_await t3;
      EXPECT_EQ(result, (std::vector<int>{2, 3}));
    }
  };
  run_bounded(main());
}

TEST_F(AioSyncTest, SemaphoreReleaseNWakesNWaiters) {
  auto main = []() -> aio::Task<void> {
    aio::Semaphore sem(0);
    std::vector<aio::Task<void>> waiters;
    waiters.reserve(4);
    for (int i = 0; i < 4; ++i) waiters.push_back(aio::create_task(acquire_sem(sem)));
    co_await tick();
    sem.release(3);
    EXPECT_EQ(sem.value(), 0);
    co_await tick();
    EXPECT_TRUE(waiters[0].done() && waiters[1].done() && waiters[2].done());
    EXPECT_FALSE(waiters[3].done());
    sem.release(2);
    co_await waiters[3];
    EXPECT_EQ(sem.value(), 1);
  };
  run_bounded(main());
}

TEST_F(AioSyncTest, BoundedSemaphoreRefusesToGrowPastItsInitialValue) {
  auto main = []() -> aio::Task<void> {
    aio::BoundedSemaphore sem(2);
    EXPECT_THROW(sem.release(), ValueError);
    EXPECT_EQ(sem.value(), 2) << "unchanged";
    co_await sem.acquire();
    co_await sem.acquire();
    EXPECT_THROW(sem.release(3), ValueError);
    EXPECT_EQ(sem.value(), 0) << "unchanged";
    sem.release(2);
    EXPECT_EQ(sem.value(), 2);
    try {
      sem.release();
      ADD_FAILURE() << "no ValueError";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("BoundedSemaphore released too many times"),
                std::string::npos);
    }
    {
      auto guard = co_await sem.scoped();
      EXPECT_EQ(sem.value(), 1);
    }
    EXPECT_EQ(sem.value(), 2) << "the guard released through the bounded check";
  };
  run_bounded(main());
}

// ---- Barrier
// -------------------------------------------------------------------------------------

TEST_F(AioSyncTest, BarrierNeedsAtLeastOneParty) {
  EXPECT_THROW(aio::Barrier(0), ValueError);
  aio::Barrier b(3);
  EXPECT_EQ(b.parties(), 3U);
  EXPECT_EQ(b.n_waiting(), 0U);
  EXPECT_FALSE(b.broken());
}

// test_filling_one_task / _twice: one party passes at once.
TEST_F(AioSyncTest, BarrierOfOnePartyNeverWaits) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(1);
    EXPECT_EQ(co_await b.wait(), 0U);
    EXPECT_EQ(co_await b.wait(), 0U);
    EXPECT_EQ(b.n_waiting(), 0U);
  };
  run_bounded(main());
}

// test_filling_task_by_task, test_filling_tasks_wait_twice, test_filling_tasks_check_return_value:
// several rounds; each round hands out every index once.
TEST_F(AioSyncTest, BarrierReleasesEachRoundWithDistinctIndices) {
  auto main = []() -> aio::Task<void> {
    constexpr std::size_t kParties = 5;
    constexpr int kRounds = 3;
    aio::Barrier b(kParties);
    std::vector<std::vector<std::size_t>> indices(kRounds);
    std::vector<int> passed(kRounds, 0);
    auto party = [&]() -> aio::Task<void> {
      for (int r = 0; r < kRounds; ++r) {
        indices[static_cast<std::size_t>(r)].push_back(co_await b.wait());
        ++passed[static_cast<std::size_t>(r)];
      }
    };
    std::vector<aio::Task<void>> tasks;
    for (std::size_t i = 0; i < kParties; ++i) {
      tasks.push_back(aio::create_task(party()));
      co_await tick();
      if (i + 1 < kParties) {
        EXPECT_EQ(b.n_waiting(), i + 1);
        EXPECT_EQ(passed[0], 0) << "nobody passes before the round is full";
      }
    }
    for (auto& t : tasks) co_await t;
    for (auto& round : indices) {
      std::sort(round.begin(), round.end());
      EXPECT_EQ(round, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
    }
    EXPECT_EQ(b.n_waiting(), 0U);
    EXPECT_FALSE(b.broken());
  };
  run_bounded(main());
}

// test_draining_state / test_blocking_tasks_while_draining: while the released tasks leave, a
// newcomer waits for the next round.
TEST_F(AioSyncTest, BarrierNewcomersWaitWhileTheRoundDrains) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(2);
    auto t1 = aio::create_task(b.wait());
    auto t2 = aio::create_task(b.wait());
    auto t3 = aio::create_task(b.wait());
    co_await tick();
    // t1 released (not resumed), t2 arrived last and passed, t3 arrived while draining.
    EXPECT_TRUE(t2.done());
    EXPECT_EQ(t2.result(), 1U);
    EXPECT_FALSE(t1.done());
    EXPECT_FALSE(t3.done());
    EXPECT_EQ(b.n_waiting(), 0U) << "draining";
    co_await tick();
    EXPECT_TRUE(t1.done());
    EXPECT_EQ(t1.result(), 0U);
    co_await tick();
    EXPECT_EQ(b.n_waiting(), 1U) << "t3 entered the next round";
    auto t4 = aio::create_task(b.wait());
    EXPECT_EQ(co_await t3, 0U);
    EXPECT_EQ(co_await t4, 1U);
  };
  run_bounded(main());
}

// test_filling_tasks_cancel_one: a waiter cancelled before the round fills leaves it whole.
TEST_F(AioSyncTest, BarrierWaiterCancelledWhileFillingLeavesTheRound) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(3);
    auto t1 = aio::create_task(b.wait());
    co_await tick();
    EXPECT_EQ(b.n_waiting(), 1U);
    auto t2 = aio::create_task(b.wait());
    co_await tick();
    EXPECT_EQ(b.n_waiting(), 2U);
    t1.cancel();
    co_await tick();
    EXPECT_EQ(b.n_waiting(), 1U);
    EXPECT_THROW(co_await t1, CancelledError);
    auto t3 = aio::create_task(b.wait());
    co_await tick();
    EXPECT_EQ(b.n_waiting(), 2U);
    auto t4 = aio::create_task(b.wait());
    (void)co_await t2;
    (void)co_await t3;
    (void)co_await t4;
    EXPECT_EQ(b.n_waiting(), 0U);
    EXPECT_FALSE(b.broken());
  };
  run_bounded(main());
}

// A party released by the last arrival and cancelled before it resumed raises CancelledError;
// the others pass and the barrier is ready for the next round.
TEST_F(AioSyncTest, BarrierPartyReleasedThenCancelledRaisesAndTheBarrierStaysWhole) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(3);
    auto t1 = aio::create_task(b.wait());
    auto t2 = aio::create_task(b.wait());
    co_await tick();
    const std::size_t last = co_await b.wait();  // releases t1 and t2
    EXPECT_EQ(last, 2U);
    t1.cancel();
    EXPECT_THROW(co_await t1, CancelledError);
    EXPECT_EQ(co_await t2, 1U);
    EXPECT_FALSE(b.broken());
    auto again = aio::create_task(b.wait());
    auto again2 = aio::create_task(b.wait());
    co_await tick();
    EXPECT_EQ(co_await b.wait(), 2U);
    (void)co_await again;
    (void)co_await again2;
  };
  run_bounded(main());
}

// test_reset_barrier_while_tasks_waiting.
TEST_F(AioSyncTest, BarrierResetFailsTheWaitersAndStaysUsable) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(3);
    auto t1 = aio::create_task(b.wait());
    auto t2 = aio::create_task(b.wait());
    co_await tick();
    b.reset();
    EXPECT_THROW(co_await t1, BrokenBarrierError);
    EXPECT_THROW(co_await t2, BrokenBarrierError);
    EXPECT_FALSE(b.broken());
    EXPECT_EQ(b.n_waiting(), 0U);
    auto t3 = aio::create_task(b.wait());
    auto t4 = aio::create_task(b.wait());
    co_await tick();
    EXPECT_EQ(co_await b.wait(), 2U);
    (void)co_await t3;
    (void)co_await t4;
  };
  run_bounded(main());
}

// reset() right after the round was released: the released tasks that had not resumed yet fail
// (Python's _wait checks the state when they resume).
TEST_F(AioSyncTest, BarrierResetWhileDrainingFailsTheTasksNotYetOut) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(3);
    auto t1 = aio::create_task(b.wait());
    auto t2 = aio::create_task(b.wait());
    co_await tick();
    EXPECT_EQ(co_await b.wait(), 2U);
    b.reset();
    EXPECT_THROW(co_await t1, BrokenBarrierError);
    EXPECT_THROW(co_await t2, BrokenBarrierError);
    EXPECT_FALSE(b.broken());
    EXPECT_EQ(b.n_waiting(), 0U);
  };
  run_bounded(main());
}

// test_reset_barrier_while_tasks_draining: the last task out resets and waits again; the others,
// blocked while it drained, join that round rather than fail.
TEST_F(AioSyncTest, BarrierResetByTheLastTaskOutLetsTheBlockedOnesIntoTheNextRound) {
  auto main = []() -> aio::Task<void> {
    constexpr std::size_t kN = 5;
    aio::Barrier b(kN);
    std::size_t count = 0;
    int ok_second = 0;
    int failed_second = 0;
    int third = 0;
    auto coro = [&]() -> aio::Task<void> {
      (void)co_await b.wait();
      ++count;
      if (count == kN) {
        b.reset();
        (void)co_await b.wait();
      } else {
        try {
          (void)co_await b.wait();
          ++ok_second;
        } catch (const BrokenBarrierError&) {
          ++failed_second;
        }
      }
      (void)co_await b.wait();
      ++third;
    };
    std::vector<aio::Task<void>> tasks;
    for (std::size_t i = 0; i < kN; ++i) tasks.push_back(aio::create_task(coro()));
    for (auto& t : tasks) co_await t;
    EXPECT_EQ(ok_second, static_cast<int>(kN) - 1);
    EXPECT_EQ(failed_second, 0);
    EXPECT_EQ(third, static_cast<int>(kN));
    EXPECT_FALSE(b.broken());
    EXPECT_EQ(b.n_waiting(), 0U);
  };
  run_bounded(main());
}

// test_abort_barrier: waiters and newcomers fail until reset().
TEST_F(AioSyncTest, BarrierAbortBreaksItUntilReset) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(3);
    auto t1 = aio::create_task(b.wait());
    auto t2 = aio::create_task(b.wait());
    co_await tick();
    b.abort();
    EXPECT_TRUE(b.broken());
    EXPECT_EQ(b.n_waiting(), 0U);
    EXPECT_THROW(co_await t1, BrokenBarrierError);
    EXPECT_THROW(co_await t2, BrokenBarrierError);
    EXPECT_THROW(co_await b.wait(), BrokenBarrierError);
    b.reset();
    EXPECT_FALSE(b.broken());
    auto t3 = aio::create_task(b.wait());
    auto t4 = aio::create_task(b.wait());
    co_await tick();
    EXPECT_EQ(co_await b.wait(), 2U);
    (void)co_await t3;
    (void)co_await t4;
  };
  run_bounded(main());
}

// test_abort_barrier_when_tasks_half_draining_half_blocking: abort reaches the blocked newcomers
// and the released tasks not yet out.
TEST_F(AioSyncTest, BarrierAbortWhileDrainingFailsBlockedAndUnfinishedTasks) {
  auto main = []() -> aio::Task<void> {
    aio::Barrier b(2);
    auto t1 = aio::create_task(b.wait());
    auto t2 = aio::create_task(b.wait());
    auto t3 = aio::create_task(b.wait());  // arrives while draining: blocked
    co_await tick();
    EXPECT_TRUE(t2.done());
    b.abort();
    EXPECT_THROW(co_await t1, BrokenBarrierError);
    EXPECT_THROW(co_await t3, BrokenBarrierError);
    EXPECT_TRUE(b.broken());
  };
  run_bounded(main());
}

// ---- bounded stress with random cancellations
// ----------------------------------------------------

// line_erase(line, id): removes id from a test's mirror of a FIFO of waiters.
void line_erase(std::deque<int>& line, int id) {
  const auto it = std::find(line.begin(), line.end(), id);
  if (it != line.end()) line.erase(it);
}

// kTasks tasks take a Semaphore(kUnits) / a Lock three times each while tasks are cancelled at
// random: by a canceller, at random points of their waits, and by the releasing task, which often
// cancels the first task of the line right after its release() woke it (before it ran). Never more
// holders than units, every task ends, and every unit is back at the end.
TEST_F(AioSyncTest, StressSemaphoreAndLockWithRandomCancellations) {
  auto run_case = [](std::int64_t units, bool use_lock) {
    auto main = [](std::int64_t n_units, bool lock_case) -> aio::Task<void> {
      constexpr int kTasks = 1000;
      aio::Semaphore sem(n_units);
      aio::Lock lock;
      std::int64_t holders = 0;
      std::int64_t max_holders = 0;
      int finished = 0;
      int cancelled = 0;
      std::deque<int> line;  // tasks inside acquire(), in arrival order (woken ones included)
      std::vector<aio::Task<void>> tasks;
      std::mt19937 rng(12345);
      auto release = [&] {
        if (lock_case) {
          lock.release();
        } else {
          sem.release();
        }
      };
      auto body = [&](int id) -> aio::Task<void> {
        std::minstd_rand local(static_cast<unsigned>(id) * 7919U + 1U);
        for (int k = 0; k < 3; ++k) {
          line.push_back(id);
          try {
            if (lock_case) {
              co_await lock.acquire();
            } else {
              co_await sem.acquire();
            }
          } catch (...) {
            line_erase(line, id);
            throw;
          }
          line_erase(line, id);
          ++holders;
          max_holders = std::max(max_holders, holders);
          try {
            for (auto y = local() % 3; y > 0; --y) co_await tick();
          } catch (...) {
            --holders;
            release();
            throw;
          }
          --holders;
          release();
          // The first of the line was just woken: cancel it before it runs, now and then.
          if (local() % 3 == 0 && !line.empty())
            tasks[static_cast<std::size_t>(line.front())].cancel();
          if (local() % 2 == 0) co_await tick();
        }
        ++finished;
      };
      tasks.reserve(kTasks);
      for (int i = 0; i < kTasks; ++i) tasks.push_back(aio::create_task(body(i)));
      auto canceller = [&]() -> aio::Task<void> {
        for (int i = 0; i < kTasks / 10; ++i) {
          tasks[rng() % kTasks].cancel();
          if (rng() % 4 == 0) co_await tick();
        }
      };
      co_await aio::create_task(canceller());
      for (auto& t : tasks) {
        try {
          co_await t;
        } catch (const CancelledError&) {
          ++cancelled;
        }
      }
      EXPECT_EQ(finished + cancelled, kTasks);
      EXPECT_GT(cancelled, 0);
      EXPECT_GT(finished, 0);
      EXPECT_EQ(holders, 0);
      EXPECT_TRUE(line.empty());
      EXPECT_LE(max_holders, n_units);
      EXPECT_GE(max_holders, 1);
      if (lock_case) {
        EXPECT_FALSE(lock.locked());
      } else {
        EXPECT_EQ(sem.value(), n_units) << "every unit came back";
        EXPECT_FALSE(sem.locked());
      }
    };
    run_bounded(main(units, use_lock));
  };
  run_case(1, true);
  run_case(1, false);
  run_case(4, false);
}

// Producers push an item and notify(1) for each; consumers only ever pop after a notification (no
// predicate re-check), so every notification must reach exactly one consumer. Consumers are
// cancelled at random, and producers often cancel the consumer their notify(1) just woke: before
// it runs, or (the producer keeping the lock over a tick) while it re-acquires the lock. A lost
// notification would leave an item in the buffer for good; a duplicated one, a spurious wake-up.
TEST_F(AioSyncTest, StressConditionNotificationsSurviveRandomCancellations) {
  auto main = []() -> aio::Task<void> {
    constexpr int kProducers = 100;
    constexpr int kConsumers = 300;
    // Even-numbered consumers are never cancelled, so enough of them always wait.
    constexpr int kItemsEach = 10;
    aio::Condition cond;
    std::vector<int> buffer;
    std::deque<int> line;  // consumers inside wait(), in arrival order (woken ones included)
    // The test's mirror of the condition's queue: `line` holds the consumers inside wait() in
    // arrival order; those notified (by notify(1) or a hand-over) and those cancelled while still
    // queued are no longer in the condition's queue until they leave wait().
    std::set<int> notified;
    std::set<int> gone;
    std::vector<aio::Task<void>> consumers;
    int produced = 0;
    int consumed = 0;
    int spurious = 0;
    bool stop = false;
    std::mt19937 rng(777);
    auto cancel_consumer = [&](int id) {
      if (id % 2 == 0) return;
      consumers[static_cast<std::size_t>(id)].cancel();
      if (std::find(line.begin(), line.end(), id) != line.end() && notified.count(id) == 0) {
        gone.insert(id);  // unlinked at once
      }
    };
    // mark_next(): the consumer notify(1) wakes: the first still queued.
    auto mark_next = [&]() -> int {
      for (const int id : line) {
        if (notified.count(id) == 0 && gone.count(id) == 0) {
          notified.insert(id);
          return id;
        }
      }
      return -1;
    };
    auto leave_line = [&](int id) {
      line_erase(line, id);
      gone.erase(id);
      return notified.erase(id) > 0;
    };
    auto producer = [&]() -> aio::Task<void> {
      for (int k = 0; k < kItemsEach; ++k) {
        {
          auto guard = co_await cond.scoped();
          buffer.push_back(k);
          ++produced;
          cond.notify(1);
          const int woken = mark_next();
          if (rng() % 2 == 0) co_await tick();  // keeping the lock: it waits to re-acquire it
          if (rng() % 2 == 0 && woken >= 0) cancel_consumer(woken);
        }
        co_await tick();
      }
    };
    auto consumer = [&](int id) -> aio::Task<void> {
      auto guard = co_await cond.scoped();
      for (;;) {
        line.push_back(id);
        try {
          co_await cond.wait();
        } catch (...) {
          // A notified consumer cancelled before it consumed hands its notification on.
          if (leave_line(id)) (void)mark_next();
          throw;
        }
        (void)leave_line(id);
        if (stop) co_return;
        if (buffer.empty()) {
          ++spurious;
        } else {
          buffer.pop_back();
          ++consumed;
        }
      }
    };
    for (int i = 0; i < kConsumers; ++i) consumers.push_back(aio::create_task(consumer(i)));
    co_await tick();  // every consumer waits
    std::vector<aio::Task<void>> producers;
    producers.reserve(kProducers);
    for (int i = 0; i < kProducers; ++i) producers.push_back(aio::create_task(producer()));
    auto canceller = [&]() -> aio::Task<void> {
      for (int i = 0; i < kConsumers / 4; ++i) {
        cancel_consumer(static_cast<int>(rng() % kConsumers));
        co_await tick();
      }
    };
    auto c = aio::create_task(canceller());
    for (auto& p : producers) co_await p;
    co_await c;
    for (int i = 0; i < 100 && consumed < produced; ++i) co_await tick();
    {
      auto guard = co_await cond.scoped();
      EXPECT_TRUE(buffer.empty()) << buffer.size() << " items left: a notification was lost";
      stop = true;
      cond.notify_all();
    }
    int cancelled = 0;
    for (auto& t : consumers) {
      try {
        co_await t;
      } catch (const CancelledError&) {
        ++cancelled;
      }
    }
    EXPECT_GT(cancelled, 0);
    EXPECT_EQ(produced, kProducers * kItemsEach);
    EXPECT_EQ(consumed, produced);
    EXPECT_EQ(spurious, 0) << "a notification reached two consumers";
    EXPECT_FALSE(cond.locked());
  };
  run_bounded(main());
}

}  // namespace
}  // namespace concur::testing
