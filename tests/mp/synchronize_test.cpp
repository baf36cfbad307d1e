// tests/mp/synchronize_test.cpp — the process-shared primitives of concur/mp/synchronize.hpp:
// Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier.
//
// Each primitive is exercised between forked processes, and passed through dumps() / loads() into
// a forked child that maps dup()s of the payload's descriptors as fresh objects — what a spawned
// child does — proving the loaded object shares state with the parent's. Cross-process tests fork
// from the single-threaded test process; children _exit(), every blocking call in a child is
// bounded (kChildWait), the parent waits for children with a bounded loop, and TearDown kills and
// reaps any child left behind (tests/mp/fork_support.hpp).
#include "concur/mp/synchronize.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concur/mp/serialize.hpp"
#include "concur/mp/shared_memory.hpp"
#include "mp/fork_support.hpp"
#include "support/test_support.hpp"

namespace concur::mp {
namespace {

using namespace std::chrono_literals;
using concur::testing::elapsed;
using concur::testing::holds_for;
using concur::testing::kGenerous;
using concur::testing::kShort;
using concur::testing::kSlack;
using testing::bump_flag;
using testing::dup_all;
using testing::ForkTest;
using testing::kChildWait;
using testing::load_flag;
using testing::open_fd_count;
using testing::set_flag;
using testing::wait_for_flag;

class LockTest : public ForkTest {};
class SemaphoreTest : public ForkTest {};
class EventTest : public ForkTest {};
class ConditionTest : public ForkTest {};
class BarrierTest : public ForkTest {};
class SynchronizeTest : public ForkTest {};

// flag() is a lock-free shared int the tests use to signal between processes.
Value<int> flag() { return Value<int>(0, Options{.lock = false}); }

// ---- mp::Lock / mp::RLock

// ---- mp::Lock / mp::RLock

TEST_F(LockTest, LockBasicsInOneProcess) {
  Lock lock;
  lock.acquire();
  EXPECT_FALSE(lock.try_acquire());
  EXPECT_THROW(lock.acquire(), DeadlockError);
  EXPECT_THROW((void)lock.acquire(kShort), DeadlockError);
  lock.release();
  EXPECT_THROW(lock.release(), RuntimeError);
  { std::scoped_lock guard(lock); }
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
  EXPECT_TRUE(lock.acquire_until(std::chrono::steady_clock::now() + kShort));
  lock.release();
}

// Threads of one process are excluded too, and the lock works with the std lock adaptors. (No
// fork in this test: the threads are joined before it returns.)
TEST_F(LockTest, LockExcludesThreads) {
  for (const std::size_t n : concur::testing::kThreadCounts) {
    Lock lock;
    long counter = 0;
    constexpr int kRounds = 2'000;
    concur::testing::run_threads(n, [&](std::size_t i) {
      for (int r = 0; r < kRounds; ++r) {
        if (i % 2 == 0) {
          std::scoped_lock guard(lock);
          ++counter;
        } else {
          std::unique_lock guard(lock, std::defer_lock);
          ASSERT_TRUE(guard.try_lock_for(kGenerous));
          ++counter;
        }
      }
    });
    EXPECT_EQ(counter, static_cast<long>(n) * kRounds) << n << " threads";
  }
}

TEST_F(LockTest, RLockIsRecursive) {
  RLock lock;
  lock.acquire();
  EXPECT_TRUE(lock.try_acquire());
  EXPECT_TRUE(lock.acquire(kShort));
  lock.release();
  lock.release();
  lock.release();
  try {
    lock.release();
    FAIL() << "expected RuntimeError";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(std::string(e.what()), "RuntimeError: cannot release un-acquired lock");
  }
}

TEST_F(LockTest, LockExcludesAcrossProcessesAndTimesOut) {
  Lock lock;
  Value<int> held(0, Options{.lock = false});
  Value<int> go(0, Options{.lock = false});
  const pid_t pid = fork_child([&] {
    lock.acquire();
    set_flag(held);
    // Hold until the parent says so (bounded, so a failing parent cannot strand the child).
    for (int i = 0; i < 30'000 && __atomic_load_n(&go.get_obj(), __ATOMIC_ACQUIRE) == 0; ++i) {
      ::usleep(1000);
    }
    lock.release();
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(held));
  EXPECT_FALSE(lock.try_acquire());
  const auto waited = concur::testing::elapsed([&] { EXPECT_FALSE(lock.acquire(kShort)); });
  EXPECT_GE(waited, kShort - kSlack);
  set_flag(go);
  EXPECT_TRUE(lock.acquire(kGenerous));
  lock.release();
  EXPECT_EQ(wait_child(pid), 0);
}

// A holder that exits without releasing: the next acquire reports it and does not hang.
TEST_F(LockTest, OwnerExitedHoldingLockIsReported) {
  Lock lock;
  const pid_t pid = fork_child([&] {
    lock.acquire();
    return 0;  // _exit with the lock held
  });
  ASSERT_EQ(wait_child(pid), 0);
  try {
    lock.acquire();
    lock.release();
    FAIL() << "expected OwnerDiedError";
  } catch (const OwnerDiedError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("OwnerDiedError: ", 0), 0U) << e.what();
  }
  // Recovered and released: usable again, by every form.
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
  lock.acquire();
  lock.release();
}

TEST_F(LockTest, OwnerDeathSeenByTimedAndTryForms) {
  Lock timed;
  RLock tried;
  const pid_t pid = fork_child([&] {
    timed.acquire();
    tried.acquire();
    tried.acquire();
    return 0;
  });
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_THROW((void)timed.acquire(kGenerous), OwnerDiedError);
  EXPECT_TRUE(timed.acquire(kGenerous));
  timed.release();
  EXPECT_FALSE(tried.try_acquire());  // repaired and released, reported as "not taken"
  EXPECT_TRUE(tried.try_acquire());
  tried.release();
}

// kill -9 of the holder while another process is blocked in acquire(): the waiter wakes with
// OwnerDiedError, and the lock works afterwards.
TEST_F(LockTest, HolderKilledWhileAnotherProcessWaits) {
  constexpr int kGotOwnerDied = 7;
  Lock lock;
  Value<int> held(0, Options{.lock = false});
  Value<int> waiting(0, Options{.lock = false});
  const pid_t holder = fork_child([&] {
    lock.acquire();
    set_flag(held);
    for (int i = 0; i < 60'000; ++i) ::usleep(1000);  // killed long before this ends
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(held));
  const pid_t waiter = fork_child([&] {
    set_flag(waiting);
    try {
      if (!lock.acquire(std::chrono::seconds(30))) return 3;
    } catch (const OwnerDiedError&) {
      return kGotOwnerDied;
    }
    lock.release();
    return 4;
  });
  ASSERT_TRUE(wait_for_flag(waiting));
  std::this_thread::sleep_for(100ms);  // let the waiter block in the kernel (not required)
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  EXPECT_EQ(wait_child(holder), -SIGKILL);
  EXPECT_EQ(wait_child(waiter), kGotOwnerDied);
  EXPECT_TRUE(lock.acquire(kGenerous));
  lock.release();
}

// A killed holder with nobody waiting: the parent's later acquire() does not hang either.
TEST_F(LockTest, HolderKilledThenParentAcquires) {
  RLock lock;
  Value<int> held(0, Options{.lock = false});
  const pid_t holder = fork_child([&] {
    lock.acquire();
    set_flag(held);
    for (int i = 0; i < 60'000; ++i) ::usleep(1000);
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(held));
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  EXPECT_EQ(wait_child(holder), -SIGKILL);
  EXPECT_THROW(lock.acquire(), OwnerDiedError);
  lock.acquire();
  lock.release();
}

// A Lock and an RLock loaded in the child (fresh mappings of dup'd descriptors) are the parent's.
TEST_F(LockTest, LocksThroughDumpsAreTheSameLocks) {
  Lock lock;
  RLock rlock;
  auto saw_held = flag();
  const Payload payload = dumps(lock, rlock);
  ASSERT_EQ(payload.fds.size(), 2U);
  lock.acquire();
  const pid_t pid = fork_child([&] {
    Lock l;
    RLock r;
    loads(payload.bytes, dup_all(payload.fds), l, r);
    if (l.try_acquire()) return 3;  // the parent holds it
    set_flag(saw_held);
    if (!l.acquire(kChildWait)) return 4;
    if (!r.acquire(kChildWait) || !r.try_acquire()) return 5;
    r.release();
    r.release();
    l.release();
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(saw_held));
  lock.release();
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
}

// A child that acquires a loaded Lock and exits: the parent's handle reports the owner's death.
TEST_F(LockTest, OwnerDeathThroughLoadedLock) {
  Lock lock;
  const Payload payload = dumps(lock);
  const pid_t pid = fork_child([&] {
    Lock l;
    loads(payload.bytes, dup_all(payload.fds), l);
    l.acquire();
    // Exit holding it, before l's destructor unmaps it (destroying a held lock is undefined:
    // the kernel could no longer read the robust-list entry to mark the owner dead).
    ::_exit(0);
    return 1;
  });
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_THROW((void)lock.acquire(kGenerous), OwnerDiedError);
  EXPECT_TRUE(lock.acquire(kGenerous));
  lock.release();
}

TEST_F(LockTest, LoadingTheWrongKindIsUnpicklingError) {
  Lock lock;
  const Payload payload = dumps(lock);
  RLock rlock;
  EXPECT_THROW(loads(payload.bytes, dup_all(payload.fds), rlock), UnpicklingError);
  EXPECT_TRUE(rlock.try_acquire());  // unchanged and usable
  rlock.release();
  Event event;
  EXPECT_THROW(loads(payload.bytes, dup_all(payload.fds), event), UnpicklingError);
}

// ---- Semaphore / BoundedSemaphore

TEST_F(SemaphoreTest, BasicsAndErrors) {
  Semaphore sem(2);
  EXPECT_EQ(sem.get_value(), 2U);
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_TRUE(sem.acquire(kShort));
  EXPECT_FALSE(sem.try_acquire());
  const auto waited = elapsed([&] { EXPECT_FALSE(sem.acquire(kShort)); });
  EXPECT_GE(waited, kShort - kSlack);
  EXPECT_FALSE(sem.acquire_until(std::chrono::steady_clock::now() + 1ms));
  sem.release(2);
  EXPECT_EQ(sem.value(), 2U);
  {
    std::scoped_lock guard(sem);
    EXPECT_EQ(sem.get_value(), 1U);
  }
  EXPECT_EQ(sem.get_value(), 2U);
  EXPECT_THROW(sem.release(0), ValueError);
  EXPECT_THROW(Semaphore(-1), ValueError);
  EXPECT_THROW(Semaphore(Semaphore::kMaxValue + 1), ValueError);
  Semaphore full(Semaphore::kMaxValue);
  EXPECT_THROW(full.release(), ValueError);
  Semaphore zero(0);
  EXPECT_FALSE(zero.acquire(0s));
}

TEST_F(SemaphoreTest, BoundedReleaseAboveInitialIsValueError) {
  BoundedSemaphore sem(2);
  try {
    sem.release();
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_EQ(std::string(e.what()), "ValueError: Semaphore released too many times");
  }
  EXPECT_EQ(sem.get_value(), 2U);  // unchanged
  sem.acquire();
  sem.acquire();
  EXPECT_THROW(sem.release(3), ValueError);
  EXPECT_EQ(sem.get_value(), 0U);
  sem.release(2);
  EXPECT_EQ(sem.get_value(), 2U);
}

// Four processes pass through a BoundedSemaphore(2): never more than two inside at once.
TEST_F(SemaphoreTest, BoundedCountingAcrossProcesses) {
  constexpr int kChildren = 4;
  constexpr int kRounds = 200;
  BoundedSemaphore sem(2);
  auto inside = flag();
  auto max_inside = flag();
  auto total = flag();
  std::vector<pid_t> pids;
  for (int c = 0; c < kChildren; ++c) {
    pids.push_back(fork_child([&] {
      for (int r = 0; r < kRounds; ++r) {
        if (!sem.acquire(kChildWait)) return 3;
        const int now = __atomic_add_fetch(&inside.get_obj(), 1, __ATOMIC_ACQ_REL);
        int seen = load_flag(max_inside);
        while (now > seen && !__atomic_compare_exchange_n(&max_inside.get_obj(), &seen, now, false,
                                                          __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        }
        if (r % 16 == 0) ::usleep(100);
        __atomic_sub_fetch(&inside.get_obj(), 1, __ATOMIC_ACQ_REL);
        bump_flag(total);
        sem.release();
      }
      return 0;
    }));
  }
  for (const pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(load_flag(total), kChildren * kRounds);
  EXPECT_LE(load_flag(max_inside), 2);
  EXPECT_GE(load_flag(max_inside), 1);
  EXPECT_EQ(sem.get_value(), 2U);
}

// release(n) wakes n of the waiters blocked in other processes, and no more.
TEST_F(SemaphoreTest, ReleaseWakesWaitersInOtherProcesses) {
  Semaphore sem(0);
  auto started = flag();
  auto done = flag();
  std::vector<pid_t> pids;
  for (int c = 0; c < 3; ++c) {
    pids.push_back(fork_child([&] {
      bump_flag(started);
      if (!sem.acquire(kChildWait)) return 3;
      bump_flag(done);
      return 0;
    }));
  }
  ASSERT_TRUE(wait_for_flag(started, 3));
  EXPECT_TRUE(holds_for(kShort, [&] { return load_flag(done) == 0; }));
  sem.release(2);
  ASSERT_TRUE(wait_for_flag(done, 2));
  EXPECT_TRUE(holds_for(kShort, [&] { return load_flag(done) == 2; }));
  sem.release();
  for (const pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(sem.get_value(), 0U);
}

// Two processes ping-pong 5,000 times over two semaphores: a lost wake-up would strand one.
TEST_F(SemaphoreTest, PingPongAcrossProcessesLosesNoWakeUp) {
  constexpr int kRounds = 5'000;
  Semaphore ping(0);
  Semaphore pong(0);
  const pid_t pid = fork_child([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (!ping.acquire(kChildWait)) return 3;
      pong.release();
    }
    return 0;
  });
  for (int i = 0; i < kRounds; ++i) {
    ping.release();
    ASSERT_TRUE(pong.acquire(kChildWait)) << "round " << i;
  }
  EXPECT_EQ(wait_child(pid), 0);
}

TEST_F(SemaphoreTest, ThroughDumpsSharesTheCounter) {
  Semaphore sem(0);
  BoundedSemaphore bounded(1);
  const Payload payload = dumps(sem, bounded);
  const pid_t pid = fork_child([&] {
    Semaphore s;
    BoundedSemaphore b;
    loads(payload.bytes, dup_all(payload.fds), s, b);
    if (!b.acquire(kChildWait)) return 3;  // takes the parent's only unit
    s.release(3);
    try {
      b.release(2);  // the bound (1) travelled with the state
      return 4;
    } catch (const ValueError&) {
    }
    return 0;
  });
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(sem.get_value(), 3U);
  EXPECT_EQ(bounded.get_value(), 0U);
  // A BoundedSemaphore's bytes are not a Semaphore's.
  Semaphore plain;
  const Payload b_payload = dumps(bounded);
  EXPECT_THROW(loads(b_payload.bytes, dup_all(b_payload.fds), plain), UnpicklingError);
}

// Threads of one process share an mp::Semaphore too.
TEST_F(SemaphoreTest, BoundsThreads) {
  for (const std::size_t n : concur::testing::kThreadCounts) {
    Semaphore sem(2);
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
    concur::testing::run_threads(n, [&](std::size_t) {
      for (int r = 0; r < 200; ++r) {
        ASSERT_TRUE(sem.acquire(kGenerous));
        const int now = inside.fetch_add(1) + 1;
        int seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        inside.fetch_sub(1);
        sem.release();
      }
    });
    EXPECT_LE(max_inside.load(), 2) << n << " threads";
    EXPECT_EQ(sem.get_value(), 2U);
  }
}

// ---- Event

TEST_F(EventTest, Basics) {
  Event event;
  EXPECT_FALSE(event.is_set());
  const auto waited = elapsed([&] { EXPECT_FALSE(event.wait(kShort)); });
  EXPECT_GE(waited, kShort - kSlack);
  event.set();
  EXPECT_TRUE(event.is_set());
  event.wait();
  EXPECT_TRUE(event.wait(0s));
  event.set();  // idempotent
  event.clear();
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(event.wait_until(std::chrono::steady_clock::now() + 1ms));
}

TEST_F(EventTest, SetWakesWaitersInOtherProcesses) {
  Event event;
  auto started = flag();
  std::vector<pid_t> pids;
  for (int c = 0; c < 3; ++c) {
    pids.push_back(fork_child([&] {
      bump_flag(started);
      return event.wait(kChildWait) ? 0 : 3;
    }));
  }
  ASSERT_TRUE(wait_for_flag(started, 3));
  EXPECT_TRUE(holds_for(kShort, [&] {
    for (const pid_t pid : pids)
      if (!child_running(pid)) return false;
    return true;
  }));
  event.set();
  for (const pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
}

// A waiter blocked when set() is called returns true even when clear() follows at once.
TEST_F(EventTest, SetThenClearStillReleasesBlockedWaiter) {
  Event event;
  auto started = flag();
  const pid_t pid = fork_child([&] {
    set_flag(started);
    return event.wait(kChildWait) ? 0 : 3;
  });
  ASSERT_TRUE(wait_for_flag(started));
  std::this_thread::sleep_for(kShort);  // let the child sleep in the kernel (not required)
  event.set();
  event.clear();
  EXPECT_EQ(wait_child(pid), 0);
}

TEST_F(EventTest, WaitTimesOutInAnotherProcess) {
  Event event;
  const pid_t pid = fork_child([&] {
    const auto t0 = std::chrono::steady_clock::now();
    if (event.wait(kShort)) return 3;
    return std::chrono::steady_clock::now() - t0 >= kShort - kSlack ? 0 : 4;
  });
  EXPECT_EQ(wait_child(pid), 0);
}

TEST_F(EventTest, ThroughDumpsSharesTheFlag) {
  Event ping;
  Event pong;
  const Payload payload = dumps(ping, pong);
  const pid_t pid = fork_child([&] {
    Event a;
    Event b;
    loads(payload.bytes, dup_all(payload.fds), a, b);
    if (!a.wait(kChildWait)) return 3;
    b.set();
    return 0;
  });
  ping.set();
  EXPECT_TRUE(pong.wait(kGenerous));
  EXPECT_EQ(wait_child(pid), 0);
}

// ---- Condition

TEST_F(ConditionTest, BasicsAndMisuse) {
  Condition cond;
  EXPECT_THROW(cond.wait(), RuntimeError);
  EXPECT_THROW((void)cond.wait(kShort), RuntimeError);
  try {
    cond.notify();
    FAIL() << "expected RuntimeError";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(std::string(e.what()), "RuntimeError: cannot notify on un-acquired lock");
  }
  EXPECT_THROW(cond.notify_all(), RuntimeError);
  {
    std::unique_lock guard(cond);
    const auto waited = elapsed([&] { EXPECT_FALSE(cond.wait(kShort)); });
    EXPECT_GE(waited, kShort - kSlack);
    EXPECT_FALSE(cond.wait_for([] { return false; }, kShort));
    EXPECT_TRUE(cond.wait_for([] { return true; }));
    EXPECT_FALSE(cond.wait_until(std::chrono::steady_clock::now() + 1ms));
    cond.notify();  // no waiters: no-op
    cond.notify_all();
  }
  EXPECT_THROW(cond.release(), RuntimeError);
}

// Condition over a caller's Lock and over an RLock held twice: wait() releases every level and
// restores them.
TEST_F(ConditionTest, OverCallersLockAndRLock) {
  Lock lock;
  Condition over_lock(lock);
  lock.acquire();
  EXPECT_FALSE(over_lock.wait(1ms));
  EXPECT_TRUE(lock.is_owned());
  lock.release();

  RLock rlock;
  Condition over_rlock(rlock);
  rlock.acquire();
  rlock.acquire();
  auto entered = flag();
  const pid_t pid = fork_child([&] {
    // Succeeds only while the parent's wait() has released both levels.
    if (!rlock.acquire(kChildWait)) return 3;
    set_flag(entered);
    over_rlock.notify();
    rlock.release();
    return 0;
  });
  EXPECT_TRUE(over_rlock.wait_for([&] { return load_flag(entered) != 0; }, kGenerous));
  EXPECT_EQ(wait_child(pid), 0);
  rlock.release();
  rlock.release();
  EXPECT_THROW(rlock.release(), RuntimeError);
}

// A producer process and two consumer processes over one Condition: every item consumed once.
TEST_F(ConditionTest, ProducerConsumerAcrossProcesses) {
  constexpr int kItems = 300;
  Condition cond;
  Array<int> items(kItems, Options{.lock = false});
  auto produced = flag();  // guarded by cond's lock (plain ints in shared memory)
  auto taken = flag();
  auto sum = flag();
  auto done = flag();
  auto consumer = [&] {
    for (;;) {
      std::unique_lock guard(cond);
      if (!cond.wait_for([&] { return taken.get_obj() < produced.get_obj() || done.get_obj(); },
                         kChildWait)) {
        return 3;
      }
      if (taken.get_obj() < produced.get_obj()) {
        sum.get_obj() += items[static_cast<std::size_t>(taken.get_obj()++)];
      } else {
        return 0;  // done and drained
      }
    }
  };
  const pid_t c1 = fork_child(consumer);
  const pid_t c2 = fork_child(consumer);
  const pid_t producer = fork_child([&] {
    for (int i = 1; i <= kItems; ++i) {
      std::unique_lock guard(cond);
      items[static_cast<std::size_t>(produced.get_obj())] = i;
      ++produced.get_obj();
      cond.notify();
    }
    std::unique_lock guard(cond);
    done.get_obj() = 1;
    cond.notify_all();
    return 0;
  });
  EXPECT_EQ(wait_child(producer), 0);
  EXPECT_EQ(wait_child(c1), 0);
  EXPECT_EQ(wait_child(c2), 0);
  EXPECT_EQ(taken.value(), kItems);
  EXPECT_EQ(sum.value(), kItems * (kItems + 1) / 2);
}

// notify(1) wakes exactly one of three waiting processes; notify(5) the other two; notify_all
// then finds nobody.
TEST_F(ConditionTest, NotifyWakesAtMostNWaiters) {
  Condition cond;
  auto waiting = flag();
  auto woke = flag();
  std::vector<pid_t> pids;
  for (int c = 0; c < 3; ++c) {
    pids.push_back(fork_child([&] {
      std::unique_lock guard(cond);
      bump_flag(waiting);
      const bool ok = cond.wait(kChildWait);
      bump_flag(woke);
      return ok ? 0 : 3;
    }));
  }
  ASSERT_TRUE(wait_for_flag(waiting, 3));
  {
    // Holding the lock proves the third waiter released it in wait(): all three are waiting.
    std::unique_lock guard(cond);
    cond.notify(1);
  }
  ASSERT_TRUE(wait_for_flag(woke, 1));
  EXPECT_TRUE(holds_for(100ms, [&] { return load_flag(woke) == 1; }));
  {
    std::unique_lock guard(cond);
    cond.notify(5);
  }
  for (const pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(load_flag(woke), 3);
}

TEST_F(ConditionTest, NotifyAllWakesEveryWaitingProcess) {
  Lock lock;
  Condition cond(lock);
  auto waiting = flag();
  std::vector<pid_t> pids;
  for (int c = 0; c < 4; ++c) {
    pids.push_back(fork_child([&] {
      std::unique_lock guard(cond);
      bump_flag(waiting);
      return cond.wait(kChildWait) ? 0 : 3;
    }));
  }
  ASSERT_TRUE(wait_for_flag(waiting, 4));
  {
    std::unique_lock guard(lock);
    cond.notify_all();
  }
  for (const pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
}

// A waiter whose timeout fired does not consume a later notification: it goes to a live waiter.
TEST_F(ConditionTest, TimedOutWaiterNeverConsumesNotification) {
  Condition cond;
  auto b_waiting = flag();
  const pid_t a = fork_child([&] {
    std::unique_lock guard(cond);
    return cond.wait(kShort) ? 3 : 0;  // times out
  });
  ASSERT_EQ(wait_child(a), 0);
  const pid_t b = fork_child([&] {
    std::unique_lock guard(cond);
    set_flag(b_waiting);
    return cond.wait(kChildWait) ? 0 : 3;
  });
  ASSERT_TRUE(wait_for_flag(b_waiting));
  {
    std::unique_lock guard(cond);
    cond.notify(1);
  }
  EXPECT_EQ(wait_child(b), 0);
}

// A waiter killed while waiting (the oldest) does not absorb notify(1): the live one wakes.
TEST_F(ConditionTest, KilledWaiterDoesNotAbsorbNotification) {
  Condition cond;
  auto waiting = flag();
  const pid_t doomed = fork_child([&] {
    std::unique_lock guard(cond);
    bump_flag(waiting);
    (void)cond.wait(kChildWait);
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(waiting, 1));
  { std::unique_lock guard(cond); }  // the doomed waiter is registered
  const pid_t live = fork_child([&] {
    std::unique_lock guard(cond);
    bump_flag(waiting);
    return cond.wait(kChildWait) ? 0 : 3;
  });
  ASSERT_TRUE(wait_for_flag(waiting, 2));
  ASSERT_EQ(::kill(doomed, SIGKILL), 0);
  EXPECT_EQ(wait_child(doomed), -SIGKILL);
  {
    std::unique_lock guard(cond);
    cond.notify(1);
  }
  EXPECT_EQ(wait_child(live), 0);
}

// A process that exits holding the Condition's lock: the waiter's re-acquire throws
// OwnerDiedError, and the lock is usable afterwards.
TEST_F(ConditionTest, OwnerDiesHoldingTheLock) {
  constexpr int kGotOwnerDied = 7;
  Condition cond;
  auto waiting = flag();
  const pid_t waiter = fork_child([&] {
    cond.acquire();
    set_flag(waiting);
    try {
      (void)cond.wait(kChildWait);
    } catch (const OwnerDiedError&) {
      return kGotOwnerDied;  // the lock is not held
    }
    cond.release();
    return 3;
  });
  ASSERT_TRUE(wait_for_flag(waiting));
  const pid_t notifier = fork_child([&] {
    cond.acquire();
    cond.notify();
    return 0;  // _exit holding the lock
  });
  EXPECT_EQ(wait_child(notifier), 0);
  EXPECT_EQ(wait_child(waiter), kGotOwnerDied);
  EXPECT_TRUE(cond.acquire(kGenerous));
  cond.release();
}

// A Condition (over a caller's Lock) loaded in the child shares both the lock and the waiters.
TEST_F(ConditionTest, ThroughDumpsSharesLockAndWaiters) {
  Lock lock;
  Condition cond(lock);
  auto waiting = flag();
  auto ready = flag();
  const Payload payload = dumps(cond);
  ASSERT_EQ(payload.fds.size(), 2U);
  const pid_t pid = fork_child([&] {
    Condition c;
    loads(payload.bytes, dup_all(payload.fds), c);
    std::unique_lock guard(c);
    set_flag(waiting);
    return c.wait_for([&] { return ready.get_obj() != 0; }, kChildWait) ? 0 : 3;
  });
  ASSERT_TRUE(wait_for_flag(waiting));
  {
    std::unique_lock guard(lock);  // the parent's Lock is the child's Condition's lock
    ready.get_obj() = 1;
    cond.notify();
  }
  EXPECT_EQ(wait_child(pid), 0);
}

// Two processes hand a turn back and forth 2,000 times through wait_for / notify: a lost wake-up
// would strand one side until kChildWait.
TEST_F(ConditionTest, PingPongAcrossProcessesLosesNoWakeUp) {
  constexpr int kTurns = 2'000;
  Condition cond;
  auto turn = flag();  // guarded by cond's lock
  auto player = [&](int me) {
    return [&cond, &turn, me] {
      for (int i = 0; i < kTurns; ++i) {
        std::unique_lock guard(cond);
        if (!cond.wait_for([&] { return turn.get_obj() % 2 == me; }, kChildWait)) return 3;
        ++turn.get_obj();
        cond.notify();
      }
      return 0;
    };
  };
  const pid_t a = fork_child(player(0));
  const pid_t b = fork_child(player(1));
  EXPECT_EQ(wait_child(a), 0);
  EXPECT_EQ(wait_child(b), 0);
  EXPECT_EQ(turn.value(), 2 * kTurns);
}

// Waiters with tiny timeouts race notify(1) calls: no more waits report "notified" than there
// were notifications (a timed-out waiter never consumes one).
TEST_F(ConditionTest, TimeoutsRacingNotifyNeverOvercount) {
  Condition cond;
  auto notified = flag();
  auto stop = flag();
  std::vector<pid_t> pids;
  for (int c = 0; c < 3; ++c) {
    pids.push_back(fork_child([&, c] {
      for (int i = 0; load_flag(stop) == 0; ++i) {
        std::unique_lock guard(cond);
        if (cond.wait(std::chrono::microseconds((i * 7 + c * 13) % 2'000))) bump_flag(notified);
      }
      return 0;
    }));
  }
  int calls = 0;
  const auto end = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < end) {
    {
      std::unique_lock guard(cond);
      cond.notify(1);
      ++calls;
    }
    ::usleep(static_cast<useconds_t>((calls * 37) % 1'000));
  }
  set_flag(stop);
  for (const pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  EXPECT_LE(load_flag(notified), calls);
}

// Threads of one process: producer/consumer over an mp::Condition.
TEST_F(ConditionTest, BetweenThreads) {
  for (const std::size_t n : concur::testing::kThreadCounts) {
    Condition cond;
    int items = 0;
    int consumed = 0;
    constexpr int kPerThread = 50;
    const int total = static_cast<int>(n) * kPerThread;
    concur::testing::Bunch consumers(n, [&](std::size_t) {
      for (int i = 0; i < kPerThread; ++i) {
        std::unique_lock guard(cond);
        ASSERT_TRUE(cond.wait_for([&] { return items > 0; }, kGenerous));
        --items;
        ++consumed;
      }
    });
    for (int i = 0; i < total; ++i) {
      std::unique_lock guard(cond);
      ++items;
      cond.notify();
    }
    consumers.join();
    EXPECT_EQ(consumed, total) << n << " threads";
  }
}

// ---- Barrier

TEST_F(BarrierTest, BasicsInOneProcess) {
  EXPECT_THROW(Barrier(0), ValueError);
  Barrier one(1);
  EXPECT_EQ(one.parties(), 1U);
  EXPECT_EQ(one.wait(), 0U);
  EXPECT_EQ(one.wait(kShort), 0U);
  EXPECT_EQ(one.n_waiting(), 0U);
  one.abort();
  EXPECT_TRUE(one.broken());
  EXPECT_THROW(one.wait(), BrokenBarrierError);
  one.reset();
  EXPECT_FALSE(one.broken());
  EXPECT_EQ(one.wait_until(std::chrono::steady_clock::now() + kShort), 0U);

  Barrier two(2);
  const auto waited = elapsed([&] {
    try {
      (void)two.wait(kShort);
      ADD_FAILURE() << "expected BrokenBarrierError";
    } catch (const BrokenBarrierError& e) {
      EXPECT_EQ(std::string(e.what()), "BrokenBarrierError: barrier wait timed out");
    }
  });
  EXPECT_GE(waited, kShort - kSlack);
  EXPECT_TRUE(two.broken());
  two.reset();
  EXPECT_FALSE(two.broken());
  EXPECT_EQ(two.n_waiting(), 0U);

  Barrier defaulted(2, {.timeout = kShort});
  EXPECT_THROW((void)defaulted.wait(), BrokenBarrierError);
}

int* g_action_runs = nullptr;  // points into shared memory; inherited by forked children
void count_action() { __atomic_add_fetch(g_action_runs, 1, __ATOMIC_ACQ_REL); }

// Four processes (the parent and three children) meet for several rounds: each round hands out
// every index once, and the action ran once per round before anyone was released.
TEST_F(BarrierTest, FourProcessesSeveralRounds) {
  constexpr int kParties = 4;
  constexpr int kRounds = 6;
  auto runs = flag();
  g_action_runs = &runs.get_obj();
  Barrier barrier(kParties, {.action = &count_action});
  Array<int> seen(kParties * kRounds, Options{.lock = false});
  auto party = [&]() -> int {
    for (int r = 0; r < kRounds; ++r) {
      const std::size_t index = barrier.wait(kChildWait);
      if (index >= kParties) return 3;
      if (load_flag(runs) < r + 1) return 4;  // the action ran before the release
      __atomic_add_fetch(&seen[static_cast<std::size_t>(r * kParties) + index], 1,
                         __ATOMIC_ACQ_REL);
    }
    return 0;
  };
  std::vector<pid_t> pids;
  for (int c = 0; c < kParties - 1; ++c) pids.push_back(fork_child(party));
  EXPECT_EQ(party(), 0);
  for (const pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(load_flag(runs), kRounds);
  for (int i = 0; i < kParties * kRounds; ++i) {
    EXPECT_EQ(seen[static_cast<std::size_t>(i)], 1) << "round " << i / kParties;
  }
  EXPECT_FALSE(barrier.broken());
  g_action_runs = nullptr;
}

// A timeout in one process breaks the barrier for a waiter in another.
TEST_F(BarrierTest, TimeoutBreaksItForOtherProcesses) {
  Barrier barrier(3);
  const pid_t pid = fork_child([&] {
    try {
      (void)barrier.wait(kChildWait);
    } catch (const BrokenBarrierError&) {
      return 0;
    }
    return 3;
  });
  ASSERT_TRUE(concur::testing::wait_until([&] { return barrier.n_waiting() == 1; }));
  EXPECT_THROW((void)barrier.wait(kShort), BrokenBarrierError);
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_TRUE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0U);
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
}

// abort() fails the waiters of other processes and every later wait() until reset(); after reset
// a full round works.
TEST_F(BarrierTest, AbortThenReset) {
  Barrier barrier(3);
  auto broken_waiter = [&] {
    try {
      (void)barrier.wait(kChildWait);
    } catch (const BrokenBarrierError&) {
      return 0;
    }
    return 3;
  };
  const pid_t a = fork_child(broken_waiter);
  const pid_t b = fork_child(broken_waiter);
  ASSERT_TRUE(concur::testing::wait_until([&] { return barrier.n_waiting() == 2; }));
  barrier.abort();
  EXPECT_EQ(wait_child(a), 0);
  EXPECT_EQ(wait_child(b), 0);
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW((void)barrier.wait(kShort), BrokenBarrierError);
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  const pid_t c = fork_child([&] { return barrier.wait(kChildWait) < 3 ? 0 : 3; });
  const pid_t d = fork_child([&] { return barrier.wait(kChildWait) < 3 ? 0 : 3; });
  EXPECT_LT(barrier.wait(kGenerous), 3U);
  EXPECT_EQ(wait_child(c), 0);
  EXPECT_EQ(wait_child(d), 0);
}

// reset() with a waiter in another process fails that waiter; the barrier stays usable.
TEST_F(BarrierTest, ResetFailsCurrentWaiters) {
  Barrier barrier(2);
  const pid_t a = fork_child([&] {
    try {
      (void)barrier.wait(kChildWait);
    } catch (const BrokenBarrierError&) {
      return 0;
    }
    return 3;
  });
  ASSERT_TRUE(concur::testing::wait_until([&] { return barrier.n_waiting() == 1; }));
  barrier.reset();
  EXPECT_EQ(wait_child(a), 0);
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0U);
  const pid_t b = fork_child([&] { return barrier.wait(kChildWait) < 2 ? 0 : 3; });
  EXPECT_LT(barrier.wait(kGenerous), 2U);
  EXPECT_EQ(wait_child(b), 0);
}

TEST_F(BarrierTest, ThroughDumpsSharesTheRounds) {
  Barrier barrier(2, {.timeout = 30s});
  const Payload payload = dumps(barrier);
  const pid_t pid = fork_child([&] {
    Barrier b;
    loads(payload.bytes, dup_all(payload.fds), b);
    if (b.parties() != 2) return 3;
    int sum = 0;
    for (int r = 0; r < 3; ++r) sum += static_cast<int>(b.wait());  // the shared timeout
    return 10 + sum;
  });
  std::size_t sum = 0;
  for (int r = 0; r < 3; ++r) sum += barrier.wait(kGenerous);
  const int child = wait_child(pid);
  ASSERT_GE(child, 10);
  EXPECT_EQ(sum + static_cast<std::size_t>(child - 10), 3U);  // indices 0 and 1, three rounds
}

pid_t g_parent_pid = 0;
void die_in_child() {
  if (::getpid() != g_parent_pid) ::_exit(0);  // dies holding the barrier's internal lock
}

// The last arrival's process dies inside the action: the waiter in the parent does not hang, it
// notices the death and the barrier breaks; reset() makes it usable again.
TEST_F(BarrierTest, ProcessDyingInActionBreaksIt) {
  g_parent_pid = ::getpid();
  Barrier barrier(2, {.action = &die_in_child});
  const pid_t pid = fork_child([&] {
    if (!concur::testing::wait_until([&] { return barrier.n_waiting() == 1; })) return 3;
    (void)barrier.wait(kChildWait);
    return 4;
  });
  try {
    (void)barrier.wait(kChildWait);
    ADD_FAILURE() << "expected BrokenBarrierError";
  } catch (const BrokenBarrierError& e) {
    EXPECT_EQ(std::string(e.what()), "BrokenBarrierError: a process died inside the barrier");
  }
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_TRUE(barrier.broken());
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0U);
}

TEST_F(BarrierTest, BarrierWithActionIsNotSerializable) {
  Barrier barrier(2, {.action = &count_action});
  EXPECT_THROW((void)dumps(barrier), PicklingError);
}

// ---- All primitives: descriptors

// Creating, sending (dumps / loads with dup'd descriptors) and destroying every primitive leaves
// no descriptor open.
TEST_F(SynchronizeTest, NoDescriptorLeaks) {
  const int before = open_fd_count();
  for (int i = 0; i < 10; ++i) {
    Lock lock;
    RLock rlock;
    Semaphore sem(1);
    BoundedSemaphore bounded(2);
    Event event;
    Condition cond;
    Barrier barrier(2);
    const Payload payload = dumps(lock, rlock, sem, bounded, event, cond, barrier);
    EXPECT_EQ(payload.fds.size(), 8U);
    Lock l;
    RLock r;
    Semaphore s;
    BoundedSemaphore b;
    Event e;
    Condition c;
    Barrier br;
    loads(payload.bytes, dup_all(payload.fds), l, r, s, b, e, c, br);
    EXPECT_TRUE(s.try_acquire());
    EXPECT_FALSE(sem.try_acquire());
  }
  EXPECT_EQ(open_fd_count(), before);
}

static_assert(Serializable<Lock> && Serializable<RLock> && Serializable<Semaphore> &&
              Serializable<BoundedSemaphore> && Serializable<Event> && Serializable<Condition> &&
              Serializable<Barrier> && Serializable<Value<int>> && Serializable<Array<double>>);
static_assert(TaskArgument<Lock> && TaskArgument<RLock> && TaskArgument<Semaphore> &&
              TaskArgument<BoundedSemaphore> && TaskArgument<Event> && TaskArgument<Condition> &&
              TaskArgument<Barrier> && TaskArgument<Value<int>> && TaskArgument<Array<int>>);

}  // namespace
}  // namespace concur::mp
