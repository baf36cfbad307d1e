// Tests for include/concur/aio/combinators.hpp, ported from CPython's test_asyncio/test_tasks.py
// (gather, wait, as_completed, wait_for, shield) and test_timeouts.py (timeout, timeout_at).
#include "concur/aio/combinators.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "support/aio_support.hpp"
#include "support/hook_support.hpp"
#include "support/test_support.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

class AioCombinatorsTest : public HookCapturingTest {};

aio::Task<int> value_after(int v, std::chrono::milliseconds d) {
  co_await aio::sleep(d);
  co_return v;
}
aio::Task<int> fail_after(std::string what, std::chrono::milliseconds d) {
  co_await aio::sleep(d);
  throw std::runtime_error(what);
}
aio::Task<void> nap(std::chrono::milliseconds d) { co_await aio::sleep(d); }

// ---- gather ----

TEST_F(AioCombinatorsTest, GatherReturnsValuesInArgumentOrder) {
  auto main = []() -> aio::Task<void> {
    auto [a, b, c] = co_await aio::gather(value_after(1, 30ms), value_after(2, 10ms), nap(5ms));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    EXPECT_TRUE((std::is_same_v<decltype(c), std::monostate>));
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, GatherRunsChildrenConcurrently) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> tasks;
    for (int i = 0; i < 30; ++i) tasks.push_back(value_after(i, 100ms));
    const auto start = aio::Clock::now();
    const std::vector<int> got = co_await aio::gather(std::move(tasks));
    EXPECT_LT(aio::Clock::now() - start, 1500ms);
    CO_ASSERT_EQ(got.size(), 30U);
    for (int i = 0; i < 30; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, GatherPropagatesTheFirstExceptionAndLetsTheOthersRun) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> slow = aio::create_task(value_after(7, 40ms));
    EXPECT_THROW((void)co_await aio::gather(fail_after("first", 5ms), slow), std::runtime_error);
    EXPECT_FALSE(slow.done()) << "Python: the other children go on running";
    EXPECT_EQ(co_await slow, 7);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, GatherMarksLaterExceptionsRetrieved) {
  // The second child fails after gather already raised: no "never retrieved" report.
  auto main = []() -> aio::Task<void> {
    EXPECT_THROW((void)co_await aio::gather(fail_after("a", 1ms), fail_after("b", 20ms)),
                 std::runtime_error);
    co_await aio::sleep(40ms);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, GatherWithReturnExceptionsCollectsEveryOutcome) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> victim = aio::create_task(value_after(0, 10s));
    auto run_cancel = [](aio::Task<int> v) -> aio::Task<void> {
      co_await aio::sleep(1ms);
      v.cancel();
    };
    aio::Task<void> canceller = aio::create_task(run_cancel(victim));
    auto [a, b, c] = co_await aio::gather(aio::return_exceptions, value_after(1, 1ms),
                                          fail_after("bad", 2ms), victim);
    EXPECT_TRUE(a.has_value());
    EXPECT_EQ(a.value(), 1);
    EXPECT_FALSE(b.has_value());
    EXPECT_THROW((void)b.value(), std::runtime_error);
    EXPECT_FALSE(c.has_value());
    EXPECT_THROW(std::rethrow_exception(c.exception()), CancelledError);
    co_await canceller;
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, GatherOfACancelledChildRaisesCancelledError) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> victim = aio::create_task(value_after(0, 10s));
    victim.cancel();
    EXPECT_THROW((void)co_await aio::gather(victim, value_after(1, 1ms)), CancelledError);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, CancellingAGatherCancelsItsChildren) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> a = aio::create_task(value_after(1, 10s));
    aio::Task<int> b = aio::create_task(value_after(2, 10s));
    std::vector<aio::Task<int>> both{a, b};
    aio::Task<std::vector<int>> g = aio::create_task(aio::gather(std::move(both)));
    co_await aio::sleep(1ms);
    EXPECT_TRUE(g.cancel());
    EXPECT_THROW((void)co_await g, CancelledError);
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, GatherOfDoneTasksDoesNotSuspend) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> a = aio::create_task(value_after(3, 0ms));
    co_await a;
    std::vector<aio::Task<int>> twice{a, a};  // (g++ 12: no braced list inside co_await)
    const std::vector<int> got = co_await aio::gather(std::move(twice));
    EXPECT_EQ((std::vector<int>{3, 3}), got);
  };
  aio::run(main());
}

// ---- wait ----

TEST_F(AioCombinatorsTest, WaitAllCompleted) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> ts{value_after(1, 5ms), value_after(2, 15ms)};
    auto [done, pending] = co_await aio::wait(std::move(ts));
    EXPECT_EQ(done.size(), 2U);
    EXPECT_TRUE(pending.empty());
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, WaitFirstCompletedLeavesTheRestRunning) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> ts{value_after(1, 5ms), value_after(2, 200ms)};
    auto [done, pending] = co_await aio::wait(std::move(ts), aio::FIRST_COMPLETED);
    CO_ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].result(), 1);
    CO_ASSERT_EQ(pending.size(), 1U);
    EXPECT_FALSE(pending[0].done());
    EXPECT_EQ(co_await pending[0], 2);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, WaitFirstExceptionIgnoresCancellations) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> cancelled = aio::create_task(value_after(0, 10s));
    cancelled.cancel();
    std::vector<aio::Task<int>> ts{cancelled, fail_after("x", 20ms), value_after(3, 10s)};
    auto [done, pending] = co_await aio::wait(std::move(ts), aio::FIRST_EXCEPTION);
    EXPECT_EQ(done.size(), 2U) << "the cancelled one and the failed one";
    CO_ASSERT_EQ(pending.size(), 1U);
    pending[0].cancel();
    for (auto& d : done) {
      if (!d.cancelled()) {
        EXPECT_NE(d.exception(), nullptr);
      }
    }
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, WaitWithTimeoutNeitherRaisesNorCancels) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> ts{value_after(1, 1ms), value_after(2, 10s)};
    const auto start = aio::Clock::now();
    auto [done, pending] = co_await aio::wait(std::move(ts), 30ms);
    EXPECT_GE(aio::Clock::now() - start, 30ms - kSlack);
    EXPECT_EQ(done.size(), 1U);
    CO_ASSERT_EQ(pending.size(), 1U);
    EXPECT_FALSE(pending[0].cancelled());
    pending[0].cancel();
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, WaitOnNothingIsAValueError) {
  auto main = []() -> aio::Task<void> {
    EXPECT_THROW((void)aio::wait(std::vector<aio::Task<int>>{}), ValueError);
    co_return;
  };
  aio::run(main());
}

// ---- as_completed ----

TEST_F(AioCombinatorsTest, AsCompletedYieldsInCompletionOrder) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> ts{value_after(3, 30ms), value_after(1, 10ms),
                                   value_after(2, 20ms)};
    auto ac = aio::as_completed(std::move(ts));
    std::vector<int> order;
    while (ac.remaining() > 0) {
      aio::Task<int> t = co_await ac.next();
      order.push_back(t.result());
    }
    EXPECT_EQ((std::vector<int>{1, 2, 3}), order);
    EXPECT_THROW((void)ac.next(), InvalidStateError);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, AsCompletedTimeoutRaisesTimeoutError) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> ts{value_after(1, 1ms), value_after(2, 10s)};
    std::vector<aio::Task<int>> keep = ts;
    auto ac = aio::as_completed(std::move(ts), 30ms);
    aio::Task<int> first = co_await ac.next();
    EXPECT_EQ(first.result(), 1);
    EXPECT_THROW((void)co_await ac.next(), TimeoutError);
    keep[1].cancel();
  };
  aio::run(main());
}

// ---- wait_for / timeout ----

TEST_F(AioCombinatorsTest, WaitForReturnsTheResultInTime) {
  auto main = []() -> aio::Task<void> {
    EXPECT_EQ(co_await aio::wait_for(value_after(5, 1ms), 1s), 5);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, WaitForCancelsTheWorkAndRaisesTimeoutError) {
  auto main = []() -> aio::Task<void> {
    bool cleaned = false;
    auto slow = [](bool& flag) -> aio::Task<int> {
      try {
        co_await aio::sleep(10s);
      } catch (const CancelledError&) {
        flag = true;
        throw;
      }
      co_return 0;
    };
    aio::Task<int> t = aio::create_task(slow(cleaned));
    const auto start = aio::Clock::now();
    EXPECT_THROW((void)co_await aio::wait_for(t, 30ms), TimeoutError);
    EXPECT_GE(aio::Clock::now() - start, 30ms - kSlack);
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(cleaned) << "wait_for waits for the cancelled work to end";
    EXPECT_EQ(aio::current_task().cancelling(), 0) << "the timeout's own cancel was withdrawn";
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, WaitForWithZeroTimeout) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> done = aio::create_task(value_after(9, 0ms));
    co_await done;
    EXPECT_EQ(co_await aio::wait_for(done, 0s), 9);
    aio::Task<int> slow = aio::create_task(value_after(1, 10s));
    EXPECT_THROW((void)co_await aio::wait_for(slow, 0s), TimeoutError);
    EXPECT_TRUE(slow.cancelled());
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, WaitForPropagatesAnOuterCancellation) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> inner = aio::create_task(value_after(1, 10s));
    aio::Task<int> outer = aio::create_task([](aio::Task<int> i) -> aio::Task<int> {
      co_return co_await aio::wait_for(i, 10s);
    }(inner));
    co_await aio::sleep(1ms);
    outer.cancel();
    EXPECT_THROW((void)co_await outer, CancelledError) << "not a TimeoutError: not ours";
    EXPECT_TRUE(inner.cancelled());
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, TimeoutScopeRunsTheBodyInline) {
  auto main = []() -> aio::Task<void> {
    const aio::TaskRef me = aio::current_task();
    auto body = [&]() -> aio::Task<int> {
      EXPECT_TRUE(aio::current_task() == me);
      co_await aio::sleep(10s);
      co_return 1;
    };
    EXPECT_THROW((void)co_await aio::timeout(20ms, body()), TimeoutError);
    EXPECT_EQ(me.cancelling(), 0);
    EXPECT_EQ(co_await aio::timeout(1s, value_after(4, 1ms)), 4);
    EXPECT_THROW(co_await aio::timeout_at(aio::Clock::now() + 10ms, nap(10s)), TimeoutError);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, NestedTimeoutsReportTheRightOne) {
  auto main = []() -> aio::Task<void> {
    // The inner deadline fires first: the inner scope raises TimeoutError, the outer sees it.
    auto inner = []() -> aio::Task<void> { co_await aio::timeout(10ms, nap(10s)); };
    EXPECT_THROW(co_await aio::timeout(1s, inner()), TimeoutError);
    // The outer deadline fires first: the inner scope lets the CancelledError through.
    auto inner2 = []() -> aio::Task<void> {
      try {
        co_await aio::timeout(10s, nap(10s));
      } catch (const TimeoutError&) {
        ADD_FAILURE() << "the inner scope claimed the outer deadline";
        throw;
      }
    };
    EXPECT_THROW(co_await aio::timeout(10ms, inner2()), TimeoutError);
  };
  aio::run(main());
}

// ---- shield ----

TEST_F(AioCombinatorsTest, ShieldKeepsTheInnerTaskRunning) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> inner = aio::create_task(value_after(8, 30ms));
    aio::Task<int> outer = aio::create_task(
        [](aio::Task<int> i) -> aio::Task<int> { co_return co_await aio::shield(i); }(inner));
    co_await aio::sleep(1ms);
    outer.cancel();
    EXPECT_THROW((void)co_await outer, CancelledError);
    EXPECT_FALSE(inner.cancelled());
    EXPECT_EQ(co_await inner, 8);
  };
  aio::run(main());
}

TEST_F(AioCombinatorsTest, ShieldPassesTheResultThrough) {
  auto main = []() -> aio::Task<void> {
    EXPECT_EQ(co_await aio::shield(value_after(6, 1ms)), 6);
    EXPECT_THROW((void)co_await aio::shield(fail_after("x", 1ms)), std::runtime_error);
  };
  aio::run(main());
}

}  // namespace
}  // namespace concur::testing
