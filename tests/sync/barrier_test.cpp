// Tests for concur/sync/barrier.hpp, after CPython's Lib/test/lock_tests.py (BarrierTests):
// parties / n_waiting / broken, lockstep rounds (1 and 10 in a row), distinct arrival indices,
// the action (once per round, in the last arrival; if it throws, that thread gets the exception
// and the others BrokenBarrierError), abort, reset while threads wait, abort then reset, per-wait
// and default timeouts breaking the barrier, zero parties. Beyond Python: zero and huge
// timeouts, time points, the happens-before edge of wait(), all swept over kThreadCounts where a
// party count fits.
#include "concur/sync/barrier.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;

// kN is CPython's BarrierTests.N.
constexpr std::size_t kN = 5;

enum Outcome : int { kPending = 0, kPassed = 1, kBroken = 2 };

Barrier::Options with_timeout(std::chrono::nanoseconds timeout) {
  Barrier::Options options;
  options.timeout = timeout;
  return options;
}

Barrier::Options with_action(std::function<void()> action) {
  Barrier::Options options;
  options.action = std::move(action);
  options.timeout = kGenerous;
  return options;
}

class BarrierTest : public QuiescentTest {};

TEST_F(BarrierTest, ZeroPartiesThrowsValueError) {  // test_constructor
  EXPECT_THROW(Barrier(0), ValueError);
  try {
    Barrier barrier(0, with_timeout(kShort));
    ADD_FAILURE() << "Barrier(0) was accepted";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ValueError: parties must be > 0"));
  }
}

TEST_F(BarrierTest, FreshBarrierState) {
  Barrier barrier(kN);
  EXPECT_EQ(barrier.parties(), kN);
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

TEST_F(BarrierTest, SingleParty) {  // test_single_thread
  int actions = 0;
  Barrier barrier(1, with_action([&] { ++actions; }));
  EXPECT_EQ(barrier.wait(), 0u);
  EXPECT_EQ(barrier.wait(), 0u);
  EXPECT_EQ(barrier.wait(0s), 0u) << "the last arrival never waits, so no timeout applies";
  EXPECT_EQ(actions, 3);
  EXPECT_FALSE(barrier.broken());
}

// test_repr: n_waiting counts the threads blocked in the current round.
TEST_F(BarrierTest, NWaitingCountsBlockedThreads) {
  Barrier barrier(3);
  std::atomic<int> passed{0};
  Bunch bunch(2, [&](std::size_t) {
    barrier.wait(kGenerous);
    passed.fetch_add(1);
  });
  EXPECT_TRUE(wait_until([&] { return barrier.n_waiting() == 2; }));
  EXPECT_EQ(passed, 0);
  barrier.wait(kGenerous);
  bunch.join();
  EXPECT_EQ(passed, 2);
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
  barrier.abort();
  EXPECT_TRUE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
}

// test_abort: one party aborts instead of arriving; everyone else gets BrokenBarrierError.
TEST_F(BarrierTest, AbortBreaksTheBarrier) {
  Barrier barrier(kN, with_timeout(kGenerous));
  std::atomic<int> passed{0};
  std::atomic<int> broken{0};
  {
    Bunch bunch(kN, [&](std::size_t) {
      try {
        if (barrier.wait() == kN / 2) {
          barrier.abort();
          return;
        }
        barrier.wait();
        passed.fetch_add(1);
      } catch (const BrokenBarrierError&) {
        broken.fetch_add(1);
      }
    });
  }
  EXPECT_EQ(passed, 0);
  EXPECT_EQ(broken, static_cast<int>(kN - 1));
  EXPECT_TRUE(barrier.broken());
}

// test_reset: a reset while N - 1 threads wait fails them with BrokenBarrierError; the barrier
// then works again for all N.
TEST_F(BarrierTest, ResetFreesTheWaitingThreads) {
  Barrier barrier(kN, with_timeout(kGenerous));
  std::atomic<int> passed{0};
  std::atomic<int> broken{0};
  std::atomic<int> again{0};
  {
    Bunch bunch(kN, [&](std::size_t) {
      if (barrier.wait() == kN / 2) {
        EXPECT_TRUE(wait_until([&] { return barrier.n_waiting() >= kN - 1; }));
        barrier.reset();
      } else {
        try {
          barrier.wait();
          passed.fetch_add(1);
        } catch (const BrokenBarrierError&) {
          broken.fetch_add(1);
        }
      }
      barrier.wait();  // pass the barrier again
      again.fetch_add(1);
    });
  }
  EXPECT_EQ(passed, 0);
  EXPECT_EQ(broken, static_cast<int>(kN - 1));
  EXPECT_EQ(again, static_cast<int>(kN));
  EXPECT_FALSE(barrier.broken());
}

// test_abort_and_reset: a broken barrier is usable again after reset().
TEST_F(BarrierTest, ResetAfterAbort) {
  Barrier barrier(kN, with_timeout(kGenerous));
  Barrier barrier2(kN, with_timeout(kGenerous));
  std::atomic<int> passed{0};
  std::atomic<int> broken{0};
  std::atomic<int> again{0};
  {
    Bunch bunch(kN, [&](std::size_t) {
      try {
        if (barrier.wait() == kN / 2) {
          barrier.abort();
        } else {
          barrier.wait();
          passed.fetch_add(1);
        }
      } catch (const BrokenBarrierError&) {
        broken.fetch_add(1);
      }
      // Everyone has left `barrier` before the reset, and nobody enters it before the reset.
      if (barrier2.wait() == kN / 2) barrier.reset();
      barrier2.wait();
      barrier.wait();
      again.fetch_add(1);
    });
  }
  EXPECT_EQ(passed, 0);
  EXPECT_EQ(broken, static_cast<int>(kN - 1));
  EXPECT_EQ(again, static_cast<int>(kN));
  EXPECT_FALSE(barrier.broken());
}

// reset() while threads wait: they get BrokenBarrierError, the barrier is not left broken, and
// the next round works.
TEST_F(BarrierTest, ResetWhileThreadsWait) {
  Barrier barrier(3);
  std::atomic<int> broken{0};
  {
    Bunch waiters(2, [&](std::size_t) {
      try {
        barrier.wait(kGenerous);
      } catch (const BrokenBarrierError&) {
        broken.fetch_add(1);
      }
    });
    EXPECT_TRUE(wait_until([&] { return barrier.n_waiting() == 2; }));
    barrier.reset();
  }
  EXPECT_EQ(broken, 2);
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
  std::atomic<int> passed{0};
  {
    Bunch round(3, [&](std::size_t) {
      barrier.wait(kGenerous);
      passed.fetch_add(1);
    });
  }
  EXPECT_EQ(passed, 3);
}

TEST_F(BarrierTest, BrokenBarrierRejectsEveryWaitUntilReset) {
  Barrier barrier(2);
  barrier.abort();
  EXPECT_TRUE(barrier.broken());
  const auto took = elapsed([&] {
    EXPECT_THROW(barrier.wait(), BrokenBarrierError);
    EXPECT_THROW(barrier.wait(kGenerous), BrokenBarrierError);
    EXPECT_THROW(barrier.wait(0s), BrokenBarrierError);
    EXPECT_THROW(barrier.wait_until(Clock::now() + kGenerous), BrokenBarrierError);
  });
  EXPECT_LT(took, kGenerous);
  try {
    barrier.wait();
  } catch (const BrokenBarrierError& e) {
    EXPECT_THAT(e.what(), HasSubstr("BrokenBarrierError: "));
  }
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  std::atomic<int> passed{0};
  {
    Bunch round(2, [&](std::size_t) {
      barrier.wait(kGenerous);
      passed.fetch_add(1);
    });
  }
  EXPECT_EQ(passed, 2);
}

// test_timeout: one party is late; the others' wait(timeout) breaks the barrier, and the late
// one finds it broken. The late party arrives only once the barrier is broken, so the round can
// never complete by luck.
TEST_F(BarrierTest, WaitTimeoutBreaksTheBarrier) {
  Barrier barrier(kN, with_timeout(kGenerous));
  std::atomic<int> broken{0};
  {
    Bunch bunch(kN, [&](std::size_t) {
      if (barrier.wait() == kN / 2) {
        EXPECT_TRUE(wait_until([&] { return barrier.broken(); }));
      }
      try {
        barrier.wait(kShort);
      } catch (const BrokenBarrierError&) {
        broken.fetch_add(1);
      }
    });
  }
  EXPECT_EQ(broken, static_cast<int>(kN));
  EXPECT_TRUE(barrier.broken());
}

// test_default_timeout: Options::timeout applies to wait() without a timeout.
TEST_F(BarrierTest, DefaultTimeoutBreaksTheBarrier) {
  Barrier barrier(2, with_timeout(kShort));
  const auto took = in_thread([&] {
    return elapsed([&] {
      try {
        barrier.wait();
        ADD_FAILURE() << "wait() outlived the default timeout";
      } catch (const BrokenBarrierError& e) {
        EXPECT_THAT(e.what(), HasSubstr("BrokenBarrierError: "));
      }
    });
  });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_LT(took, kGenerous);
  EXPECT_TRUE(barrier.broken());
}

// The older CPython form of test_default_timeout, with N parties: the explicit timeout of the
// first wait overrides the default; the default then breaks the second round for everyone.
TEST_F(BarrierTest, DefaultTimeoutBreaksItForEveryone) {
  Barrier barrier(kN, with_timeout(2 * kShort));
  std::atomic<int> broken{0};
  {
    Bunch bunch(kN, [&](std::size_t) {
      if (barrier.wait(kGenerous) == kN / 2) {
        EXPECT_TRUE(wait_until([&] { return barrier.broken(); }));
      }
      try {
        barrier.wait();
      } catch (const BrokenBarrierError&) {
        broken.fetch_add(1);
      }
    });
  }
  EXPECT_EQ(broken, static_cast<int>(kN));
}

TEST_F(BarrierTest, ZeroAndNegativeTimeoutsBreakAtOnce) {
  for (const auto timeout : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(-1s)}) {
    Barrier barrier(2);
    const auto took = elapsed([&] { EXPECT_THROW(barrier.wait(timeout), BrokenBarrierError); });
    EXPECT_LT(took, kGenerous);
    EXPECT_TRUE(barrier.broken());
  }
  Barrier past(2);
  EXPECT_THROW(past.wait_until(Clock::now() - 1s), BrokenBarrierError);
  EXPECT_TRUE(past.broken());
}

TEST_F(BarrierTest, WaitUntilTimePointsOfEitherClock) {
  Barrier barrier(2);
  auto took =
      elapsed([&] { EXPECT_THROW(barrier.wait_until(Clock::now() + kShort), BrokenBarrierError); });
  EXPECT_GE(took, kShort - kSlack);
  barrier.reset();
  took = elapsed([&] {
    EXPECT_THROW(barrier.wait_until(std::chrono::system_clock::now() + kShort), BrokenBarrierError);
  });
  EXPECT_GE(took, kShort - kSlack);
  barrier.reset();
  took = elapsed(
      [&] { EXPECT_THROW(barrier.wait(std::chrono::duration<double>(0.05)), BrokenBarrierError); });
  EXPECT_GE(took, kShort - kSlack);
}

// TIMEOUT_MAX: a huge timeout (explicit, as a time point, or the default) waits for the other
// parties; it does not break the barrier at once.
TEST_F(BarrierTest, HugeTimeoutsMeanForever) {
  Barrier barrier(4, with_timeout(std::chrono::nanoseconds::max()));
  std::vector<std::atomic<int>> outcome(3);
  Bunch waiters(3, [&](std::size_t i) {
    try {
      if (i == 0) {
        barrier.wait(std::chrono::hours::max());
      } else if (i == 1) {
        barrier.wait_until(Clock::time_point::max());
      } else {
        barrier.wait();  // Options::timeout
      }
      outcome[i] = kPassed;
    } catch (const BrokenBarrierError&) {
      outcome[i] = kBroken;
    }
  });
  EXPECT_TRUE(wait_until([&] { return barrier.n_waiting() == 3 || barrier.broken(); }));
  EXPECT_TRUE(holds_for(kShort, [&] { return barrier.n_waiting() == 3; }));
  EXPECT_FALSE(barrier.broken());
  EXPECT_NO_THROW(barrier.wait(kGenerous));
  waiters.join();
  for (auto& o : outcome) EXPECT_EQ(o, kPassed);
}

// ---- sweeps: the party count is the thread count --------------------------------------------

class BarrierSweep : public QuiescentTest, public ::testing::WithParamInterface<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, BarrierSweep, ::testing::ValuesIn(kThreadCounts));

// test_barrier / test_barrier_10 (multipass): nobody starts round i + 1 before everybody
// finished round i.
void multipass(std::size_t parties, std::size_t passes) {
  Barrier barrier(parties, with_timeout(kGenerous));
  std::atomic<std::size_t> before{0};
  std::atomic<std::size_t> after{0};
  {
    Bunch bunch(parties, [&](std::size_t) {
      for (std::size_t i = 0; i < passes; ++i) {
        before.fetch_add(1);
        EXPECT_EQ(after.load(), i * parties);
        barrier.wait();
        after.fetch_add(1);
        EXPECT_EQ(before.load(), (i + 1) * parties);
        barrier.wait();
      }
    });
  }
  EXPECT_EQ(before, passes * parties);
  EXPECT_EQ(after, passes * parties);
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

TEST_P(BarrierSweep, PassesInLockstep) { multipass(GetParam(), 1); }
TEST_P(BarrierSweep, TenRoundsInLockstep) { multipass(GetParam(), 10); }

// test_wait_return: every round hands out each index in [0, parties) exactly once.
TEST_P(BarrierSweep, WaitReturnsDistinctIndices) {
  const std::size_t n = GetParam();
  constexpr std::size_t kRounds = 3;
  Barrier barrier(n, with_timeout(kGenerous));
  std::vector<std::vector<std::size_t>> index(kRounds, std::vector<std::size_t>(n));
  {
    Bunch bunch(n, [&](std::size_t t) {
      for (std::size_t r = 0; r < kRounds; ++r) index[r][t] = barrier.wait();
    });
  }
  std::vector<std::size_t> expected(n);
  std::iota(expected.begin(), expected.end(), std::size_t{0});
  for (auto& round : index) {
    std::sort(round.begin(), round.end());
    EXPECT_EQ(round, expected);
  }
}

// test_action: the action runs once per round, in the last arriving thread (the one whose wait()
// returns parties - 1), before anyone is released.
TEST_P(BarrierSweep, ActionRunsOncePerRoundInTheLastArrival) {
  const std::size_t n = GetParam();
  constexpr std::size_t kRounds = 4;
  std::atomic<std::size_t> released{0};
  std::vector<std::uint64_t> ran_in;  // written by the action, read after wait()
  // Each round has two waits, so two actions: before the first, `released` counts the earlier
  // rounds; before the second, this one too.
  Barrier barrier(n, with_action([&] {
                    EXPECT_EQ(released.load(), (ran_in.size() + 1) / 2 * n)
                        << "a thread was released before the action ran";
                    ran_in.push_back(get_ident());
                  }));
  {
    Bunch bunch(n, [&](std::size_t) {
      for (std::size_t r = 0; r < kRounds; ++r) {
        const std::size_t index = barrier.wait();
        ASSERT_EQ(ran_in.size(), 2 * r + 1);
        if (index == n - 1) {
          EXPECT_EQ(ran_in[2 * r], get_ident());
        } else {
          EXPECT_NE(ran_in[2 * r], get_ident());
        }
        released.fetch_add(1);
        barrier.wait();  // keep the rounds apart: the next action must not run while we read
      }
    });
  }
  EXPECT_EQ(ran_in.size(), 2 * kRounds);
}

// An action that throws breaks the barrier: its exception comes out of the wait() of the thread
// that ran it; every other party gets BrokenBarrierError. After reset() the barrier works.
TEST_P(BarrierSweep, ActionThatThrowsBreaksTheBarrier) {
  const std::size_t n = GetParam();
  std::atomic<int> calls{0};
  std::uint64_t thrower = 0;  // written by the action under the barrier's lock
  Barrier barrier(n, with_action([&] {
                    if (calls.fetch_add(1) == 0) {
                      thrower = get_ident();
                      throw std::runtime_error("action failed");
                    }
                  }));
  std::atomic<int> action_error{0};
  std::atomic<int> broken{0};
  std::atomic<int> passed{0};
  std::mutex mu;
  std::vector<std::uint64_t> caught_by;  // guarded by mu
  {
    Bunch bunch(n, [&](std::size_t) {
      try {
        barrier.wait();
        passed.fetch_add(1);
      } catch (const BrokenBarrierError&) {
        broken.fetch_add(1);
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "action failed");
        action_error.fetch_add(1);
        std::scoped_lock g(mu);
        caught_by.push_back(get_ident());
      }
    });
  }
  EXPECT_EQ(passed, 0);
  EXPECT_EQ(action_error, 1);
  EXPECT_EQ(broken, static_cast<int>(n) - 1);
  ASSERT_EQ(caught_by.size(), 1u);
  EXPECT_EQ(caught_by[0], thrower) << "the exception reached another thread than the action's";
  EXPECT_TRUE(barrier.broken());

  barrier.reset();
  {
    Bunch round(n, [&](std::size_t) {
      barrier.wait();
      passed.fetch_add(1);
    });
  }
  EXPECT_EQ(passed, static_cast<int>(n));
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(barrier.broken());
}

// Memory ordering: what each party wrote before wait() is visible to all after it (TSan checks
// the plain slots).
TEST_P(BarrierSweep, WaitPublishesEveryPartysWrites) {
  const std::size_t n = GetParam();
  constexpr std::size_t kRounds = 5;
  Barrier barrier(n, with_timeout(kGenerous));
  std::vector<std::size_t> slot(n, 0);
  {
    Bunch bunch(n, [&](std::size_t t) {
      for (std::size_t r = 1; r <= kRounds; ++r) {
        slot[t] = r * 1000 + t;
        barrier.wait();
        for (std::size_t u = 0; u < n; ++u) EXPECT_EQ(slot[u], r * 1000 + u);
        barrier.wait();  // nobody overwrites a slot before everybody read it
      }
    });
  }
}

}  // namespace
