// Tests for concur/detail/wait_queue.hpp: WaitQueue, the event count the queues wait on, driven
// through its documented protocol with an external std::mutex (prepare / done under the mutex,
// wait outside it; signal under the mutex, wake after unlocking). Covered: a signal with no
// waiter is a no-op (the ticket does not move), a signal after prepare() releases the waiter, a
// waiter times out when nothing signals and leaves no registration behind, signal() reports a
// kernel sleeper (kOne / kAll), signal(all) wakes every waiter, one-at-a-time signals release
// exactly as many waiters as there are tokens, and no wake-up is lost in a 10k-round ping-pong or
// a bounded buffer swept over kThreadCounts. The release, timeout and sleeper cases run with
// wait()'s spin phase and without it (spin=false). EventCount, the mutex-free twin, gets the same
// checks (no-op notify, release, timeout, kernel sleeper) and a token hand-off swept over
// kThreadCounts. Every wait is bounded: a lost wake-up fails a test instead of hanging it.
#include "concur/detail/wait_queue.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "concur/detail/deadline.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur::testing;
using concur::detail::Deadline;
using concur::detail::WaitQueue;
using Wake = WaitQueue::Wake;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 10;  // sanitizers slow every operation ~10x
#else
constexpr std::size_t kScale = 1;
#endif

// Gate is a condition (`open`) guarded by a mutex and waited on through a WaitQueue, written
// exactly as the protocol in the header says.
struct Gate {
  std::mutex mu;
  bool open = false;  // guarded by mu
  WaitQueue wq;
  bool spin = true;  // wait()'s spin argument: false goes straight to the kernel

  // wait_open(deadline) is the waiter side; returns whether the gate opened before the deadline.
  bool wait_open(const Deadline& deadline) {
    std::unique_lock lk(mu);
    while (!open) {
      if (deadline.expired()) return false;
      const std::uint32_t ticket = wq.prepare();
      lk.unlock();
      wq.wait(ticket, deadline, spin);
      lk.lock();
      wq.done();
    }
    return true;
  }
  // set_open(all) is the notifier side; returns signal()'s decision.
  Wake set_open(bool all) {
    std::unique_lock lk(mu);
    open = true;
    const Wake w = wq.signal(all);
    lk.unlock();
    wq.wake(w);
    return w;
  }
};

class WaitQueueTest : public QuiescentTest {};

TEST_F(WaitQueueTest, SignalWithNoWaiterIsANoOp) {
  std::mutex mu;
  WaitQueue wq;
  std::unique_lock lk(mu);
  const std::uint32_t before = wq.prepare();
  wq.done();
  EXPECT_EQ(wq.signal(), Wake::kNone);
  EXPECT_EQ(wq.signal(true), Wake::kNone);
  const std::uint32_t after = wq.prepare();
  EXPECT_EQ(after, before) << "a signal with nobody registered advanced the sequence";
  lk.unlock();
  // The ticket is still current, so a wait on it runs into its deadline.
  EXPECT_FALSE(wq.wait(after, Deadline::after(std::chrono::seconds(0))));
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(wq.wait(after, Deadline::after(kShort))); }),
            kShort - kSlack);
  lk.lock();
  wq.done();
  lk.unlock();
  wq.wake(Wake::kNone);  // harmless
  wq.wake(Wake::kOne);   // harmless with no sleeper
  wq.wake(Wake::kAll);
}

TEST_F(WaitQueueTest, SignalAfterPrepareReleasesTheTicket) {
  std::mutex mu;
  WaitQueue wq;
  std::unique_lock lk(mu);
  const std::uint32_t ticket = wq.prepare();
  EXPECT_EQ(wq.signal(), Wake::kNone) << "nobody sleeps in the kernel yet: no system call needed";
  lk.unlock();
  // The signal came between prepare() and wait(): wait() must not sleep (no lost wake-up).
  EXPECT_LT(elapsed([&] { EXPECT_TRUE(wq.wait(ticket, Deadline::after(kGenerous))); }), kGenerous);
  lk.lock();
  wq.done();
}

// released_by_signal(timed, spin): a waiter blocked on a shut gate returns once it is opened.
void released_by_signal(bool timed, bool spin) {
  Gate gate;
  gate.spin = spin;
  std::atomic<bool> opened{false};
  Bunch waiter(1, [&](std::size_t) {
    opened.store(gate.wait_open(timed ? Deadline::after(kGenerous * 4) : Deadline::infinite()));
  });
  waiter.wait_started();
  EXPECT_TRUE(holds_for(kShort, [&] { return !opened.load(); }));
  gate.set_open(false);
  waiter.join();
  EXPECT_TRUE(opened.load());
}

TEST_F(WaitQueueTest, AWaiterIsReleasedBySignal) {
  for (const bool timed : {false, true}) {
    for (const bool spin : {true, false}) {
      SCOPED_TRACE(::testing::Message() << (timed ? "timed" : "untimed") << " wait, spin=" << spin);
      released_by_signal(timed, spin);
    }
  }
}

TEST_F(WaitQueueTest, ATimedWaitReturnsTrueWhenSignalledBeforeItsDeadline) {
  std::mutex mu;
  WaitQueue wq;
  std::atomic<int> result{-1};
  Bunch waiter(1, [&](std::size_t) {
    std::unique_lock lk(mu);
    const std::uint32_t ticket = wq.prepare();
    lk.unlock();
    const bool woke = wq.wait(ticket, Deadline::after(kGenerous * 4));
    lk.lock();
    wq.done();
    result.store(woke ? 1 : 0);
  });
  waiter.wait_started();
  EXPECT_TRUE(holds_for(kShort, [&] { return result.load() == -1; }));
  std::unique_lock lk(mu);
  const Wake w = wq.signal();
  lk.unlock();
  wq.wake(w);
  waiter.join();
  EXPECT_EQ(result.load(), 1);
}

TEST_F(WaitQueueTest, AWaiterTimesOutWhenNothingSignals) {
  Gate gate;
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(gate.wait_open(Deadline::after(kShort))); }),
            kShort - kSlack);
  gate.spin = false;
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(gate.wait_open(Deadline::after(kShort))); }),
            kShort - kSlack);
  EXPECT_LT(elapsed([&] { EXPECT_FALSE(gate.wait_open(Deadline::after(-kShort))); }), kGenerous);
  // The timed-out waiter unregistered itself: a signal now is a no-op again.
  std::unique_lock lk(gate.mu);
  const std::uint32_t before = gate.wq.prepare();
  gate.wq.done();
  EXPECT_EQ(gate.wq.signal(true), Wake::kNone);
  EXPECT_EQ(gate.wq.prepare(), before);
  gate.wq.done();
}

// signal_asks_to_wake_a_sleeper(all, spin): a waiter that has spun past kSpinBudget (or did not
// spin) sleeps in the kernel; signal() must then ask wake() for a system call. Until the waiter is
// asleep signal() may answer kNone (it then only bumps the sequence, and the waiter, whose gate
// is still shut, waits again) — so poll.
void signal_asks_to_wake_a_sleeper(bool all, bool spin) {
  Gate gate;
  gate.spin = spin;
  std::atomic<bool> opened{false};
  Bunch waiter(1, [&](std::size_t) { opened.store(gate.wait_open(Deadline::infinite())); });
  Wake seen = Wake::kNone;
  const auto give_up = std::chrono::steady_clock::now() + kGenerous;
  while (seen == Wake::kNone && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::unique_lock lk(gate.mu);
    seen = gate.wq.signal(all);  // the gate stays shut: a spurious wake-up for the waiter
    lk.unlock();
    gate.wq.wake(seen);
  }
  EXPECT_EQ(seen, all ? Wake::kAll : Wake::kOne);
  EXPECT_FALSE(opened.load());
  gate.set_open(true);
  waiter.join();
  EXPECT_TRUE(opened.load());
}

TEST_F(WaitQueueTest, SignalAsksToWakeAKernelSleeper) {
  for (const bool all : {false, true}) {
    for (const bool spin : {true, false}) {
      SCOPED_TRACE(::testing::Message() << (all ? "signal(all)" : "signal()") << ", spin=" << spin);
      signal_asks_to_wake_a_sleeper(all, spin);
    }
  }
}

class WaitQueueSweep : public QuiescentTest, public ::testing::WithParamInterface<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, WaitQueueSweep, ::testing::ValuesIn(kThreadCounts));

TEST_P(WaitQueueSweep, SignalAllWakesEveryWaiter) {
  const std::size_t n = GetParam();
  Gate gate;
  std::atomic<std::size_t> opened{0};
  Bunch waiters(n, [&](std::size_t i) {
    const Deadline deadline = i % 2 == 0 ? Deadline::infinite() : Deadline::after(kGenerous * 4);
    if (gate.wait_open(deadline)) opened.fetch_add(1);
  });
  waiters.wait_started();
  EXPECT_TRUE(holds_for(kShort, [&] { return opened.load() == 0; }));
  gate.set_open(true);
  waiters.join();
  EXPECT_EQ(opened.load(), n);
}

// Tokens: n waiters each take one token; tokens are added one at a time, each with a single
// signal(): every token must release exactly one waiter.
TEST_P(WaitQueueSweep, EachSignalReleasesAWaiterPerToken) {
  const std::size_t n = GetParam();
  std::mutex mu;
  std::size_t tokens = 0;  // guarded by mu
  WaitQueue wq;
  std::atomic<std::size_t> released{0};
  std::atomic<bool> stuck{false};
  Bunch waiters(n, [&](std::size_t) {
    const Deadline deadline = Deadline::after(kGenerous);
    std::unique_lock lk(mu);
    while (tokens == 0) {
      if (deadline.expired()) {
        stuck.store(true);
        return;
      }
      const std::uint32_t ticket = wq.prepare();
      lk.unlock();
      wq.wait(ticket, deadline);
      lk.lock();
      wq.done();
    }
    --tokens;
    released.fetch_add(1);
  });
  waiters.wait_started();
  for (std::size_t i = 1; i <= n; ++i) {
    {
      std::unique_lock lk(mu);
      ++tokens;
      const Wake w = wq.signal();
      lk.unlock();
      wq.wake(w);
    }
    ASSERT_TRUE(wait_until([&] { return released.load() == i; }))
        << "token " << i << " released " << released.load() << " waiters";
  }
  waiters.join();
  EXPECT_FALSE(stuck.load()) << "a waiter missed its wake-up";
}

// A bounded buffer built from two WaitQueues (the queues' not_empty / not_full), with n producers
// and n consumers: every wait is bounded, so a lost wake-up shows up as a timeout.
TEST_P(WaitQueueSweep, BoundedBufferNeverLosesAWakeUp) {
  const std::size_t n = GetParam();
  const std::size_t per_producer = 20'000 / kScale / n;
  constexpr std::size_t kCapacity = 4;
  std::mutex mu;
  std::vector<std::size_t> buffer;  // guarded by mu
  std::size_t producers_left = n;   // guarded by mu
  WaitQueue not_empty, not_full;
  std::atomic<std::uint64_t> sum{0}, count{0};
  std::atomic<bool> stuck{false};
  Bunch bunch(2 * n, [&](std::size_t id) {
    if (id < n) {
      for (std::size_t i = 1; i <= per_producer; ++i) {
        const Deadline deadline = Deadline::after(kGenerous);
        std::unique_lock lk(mu);
        while (buffer.size() == kCapacity) {
          if (deadline.expired()) {
            stuck.store(true);
            return;
          }
          const std::uint32_t ticket = not_full.prepare();
          lk.unlock();
          not_full.wait(ticket, deadline);
          lk.lock();
          not_full.done();
        }
        buffer.push_back(i);
        const Wake w = not_empty.signal();
        lk.unlock();
        not_empty.wake(w);
      }
      std::unique_lock lk(mu);
      if (--producers_left == 0) {
        const Wake w = not_empty.signal(true);
        lk.unlock();
        not_empty.wake(w);
      }
    } else {
      for (;;) {
        const Deadline deadline = Deadline::after(kGenerous);
        std::unique_lock lk(mu);
        while (buffer.empty() && producers_left != 0) {
          if (deadline.expired()) {
            stuck.store(true);
            return;
          }
          const std::uint32_t ticket = not_empty.prepare();
          lk.unlock();
          not_empty.wait(ticket, deadline);
          lk.lock();
          not_empty.done();
        }
        if (buffer.empty()) return;
        const std::size_t v = buffer.back();
        buffer.pop_back();
        const Wake w = not_full.signal();
        lk.unlock();
        not_full.wake(w);
        sum.fetch_add(v);
        count.fetch_add(1);
      }
    }
  });
  bunch.join();
  ASSERT_FALSE(stuck.load()) << "a wait ran into its kGenerous deadline: lost wake-up";
  EXPECT_EQ(count.load(), n * per_producer);
  EXPECT_EQ(sum.load(), n * per_producer * (per_producer + 1) / 2);
}

// Ping-pong: two threads hand a turn back and forth 10k times, each waiting on its own WaitQueue
// with a bounded deadline; one lost wake-up stalls the game and fails the test.
TEST_F(WaitQueueTest, PingPongNeverLosesAWakeUp) {
  constexpr std::size_t kRounds = 10'000;
  std::mutex mu;
  std::size_t turn = 0;   // guarded by mu: whose move it is (0 or 1)
  std::size_t moves = 0;  // guarded by mu
  std::array<WaitQueue, 2> wq;
  std::atomic<bool> stuck{false};
  Bunch players(
      2,
      [&](std::size_t me) {
        for (std::size_t round = 0; round < kRounds; ++round) {
          const Deadline deadline = Deadline::after(kGenerous);
          std::unique_lock lk(mu);
          while (turn != me) {
            if (deadline.expired() || stuck.load()) {
              stuck.store(true);
              return;
            }
            const std::uint32_t ticket = wq[me].prepare();
            lk.unlock();
            wq[me].wait(ticket, deadline);
            lk.lock();
            wq[me].done();
          }
          ++moves;
          turn = 1 - me;
          const Wake w = wq[1 - me].signal();
          lk.unlock();
          wq[1 - me].wake(w);
        }
      },
      kLongRun);  // 20,000 hand-offs: each round has its own kGenerous deadline
  players.join();
  EXPECT_FALSE(stuck.load()) << "a player waited kGenerous for its turn: lost wake-up";
  std::scoped_lock lk(mu);
  EXPECT_EQ(moves, 2 * kRounds);
}

}  // namespace

// ---- EventCount: the same contract for conditions kept in atomics -----------------------------

using concur::detail::EventCount;

class EventCountTest : public QuiescentTest {};

TEST_F(EventCountTest, NotifyWithNoWaiterIsANoOp) {
  EventCount ec;
  const std::uint32_t before = ec.prepare();
  ec.cancel();
  ec.notify();
  ec.notify(true);
  const std::uint32_t after = ec.prepare();
  ec.cancel();
  EXPECT_EQ(before, after) << "notify() with nobody registered moved the sequence";
}

TEST_F(EventCountTest, NotifyAfterPrepareReleasesTheTicket) {
  EventCount ec;
  const std::uint32_t ticket = ec.prepare();
  ec.notify();
  EXPECT_LT(elapsed([&] { EXPECT_TRUE(ec.wait(ticket, Deadline::after(kGenerous))); }), kGenerous);
  // wait() unregistered: the next notify() is a no-op again.
  const std::uint32_t t2 = ec.prepare();
  ec.cancel();
  ec.notify();
  const std::uint32_t t3 = ec.prepare();
  ec.cancel();
  EXPECT_EQ(t2, t3);
}

TEST_F(EventCountTest, AWaiterTimesOutWhenNothingNotifies) {
  EventCount ec;
  const std::uint32_t ticket = ec.prepare();
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(ec.wait(ticket, Deadline::after(kShort))); }),
            kShort - kSlack);
}

TEST_F(EventCountTest, ASleeperIsWokenByNotify) {
  EventCount ec;
  std::atomic<bool> flag{false};
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    const Deadline deadline = Deadline::after(kGenerous);
    while (!flag.load(std::memory_order_seq_cst) && !deadline.expired()) {
      const std::uint32_t ticket = ec.prepare();
      if (flag.load(std::memory_order_seq_cst)) {
        ec.cancel();
        break;
      }
      ec.wait(ticket, deadline);
    }
    woke.store(flag.load());
  });
  std::this_thread::sleep_for(kShort);  // let it fall asleep in the kernel
  flag.store(true, std::memory_order_seq_cst);
  ec.notify();
  waiter.join();
  EXPECT_TRUE(woke.load());
}

class EventCountSweep : public QuiescentTest, public ::testing::WithParamInterface<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, EventCountSweep, ::testing::ValuesIn(kThreadCounts));

// Tokens in an atomic counter: n producers add one and notify one, n consumers take one with a
// compare-exchange or wait; every wait is bounded, so a lost notification shows up as a timeout.
TEST_P(EventCountSweep, TokensNeverLoseANotification) {
  const std::size_t n = GetParam();
  const std::size_t per_producer = 20'000 / kScale / n;
  std::atomic<std::size_t> tokens{0};
  std::atomic<std::size_t> consumed{0};
  std::atomic<bool> stuck{false};
  EventCount ec;
  const auto take = [&] {
    std::size_t t = tokens.load(std::memory_order_seq_cst);
    while (t != 0) {
      if (tokens.compare_exchange_weak(t, t - 1, std::memory_order_seq_cst)) return true;
    }
    return false;
  };
  Bunch bunch(2 * n, [&](std::size_t id) {
    if (id < n) {
      for (std::size_t i = 0; i < per_producer; ++i) {
        tokens.fetch_add(1, std::memory_order_seq_cst);
        ec.notify();
      }
      return;
    }
    for (;;) {
      if (consumed.load() >= n * per_producer) return;
      if (take()) {
        if (consumed.fetch_add(1) + 1 == n * per_producer) ec.notify(true);  // release the rest
        continue;
      }
      const Deadline deadline = Deadline::after(kGenerous);
      const std::uint32_t ticket = ec.prepare();
      if (tokens.load(std::memory_order_seq_cst) != 0 || consumed.load() >= n * per_producer) {
        ec.cancel();
        continue;
      }
      if (!ec.wait(ticket, deadline) && tokens.load() == 0 && consumed.load() < n * per_producer) {
        stuck.store(true);
        ec.notify(true);  // release the others so the test fails instead of hanging
        return;
      }
    }
  });
  bunch.join();
  ASSERT_FALSE(stuck.load()) << "a consumer ran into its kGenerous deadline: lost notification";
  EXPECT_EQ(consumed.load(), n * per_producer);
}
