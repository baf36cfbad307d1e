// Tests for include/concur/aio/queue.hpp: Queue, LifoQueue and PriorityQueue for coroutines,
// ported from CPython's test_asyncio/test_queues.py (order, maxsize, blocking put and get,
// FIFO service of waiting putters and getters, cancellation races — a getter promised an item or
// a putter promised a slot and cancelled before it resumed passes it on —, task_done/join,
// Python 3.13's shutdown with and without immediate), run over the three queue types where the
// behaviour does not depend on the order, plus a bounded stress run with random cancellations
// that checks every item put is received exactly once.
#include "concur/aio/queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <numeric>
#include <random>
#include <string>
#include <utility>
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

// run_bounded(main): aio::run with the main coroutine bounded by kGenerous, so a lost wake-up
// fails the test with TimeoutError instead of hanging it (STYLE.md rule 14).
template <class T>
T run_bounded(aio::Task<T> main) {
  return aio::run(aio::timeout(kGenerous, std::move(main)));
}

// One loop iteration (Python's `await asyncio.sleep(0)`).
aio::detail::SleepAwaiter tick() { return aio::sleep(0s); }

template <class Q>
aio::Task<int> get_one(Q& q) {
  co_return co_await q.get();
}
template <class Q>
aio::Task<void> put_one(Q& q, int item) {
  co_await q.put(item);
}

class AioQueueTest : public HookCapturingTest {};

template <class Q>
class AioQueueTypedTest : public HookCapturingTest {};
using QueueTypes = ::testing::Types<aio::Queue<int>, aio::LifoQueue<int>, aio::PriorityQueue<int>>;
TYPED_TEST_SUITE(AioQueueTypedTest, QueueTypes);

// ---- queries, order --------------------------------------------------------------------------

TYPED_TEST(AioQueueTypedTest, QueriesAndTheNowaitErrors) {
  auto main = []() -> aio::Task<void> {
    TypeParam q(2);
    EXPECT_EQ(q.maxsize(), 2U);
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.full());
    EXPECT_THROW((void)q.get_nowait(), Empty);
    q.put_nowait(1);
    q.put_nowait(2);
    EXPECT_EQ(q.qsize(), 2U);
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait(3), Full);
    EXPECT_EQ(q.qsize(), 2U) << "a refused item is not queued";
    (void)q.get_nowait();
    EXPECT_FALSE(q.full());
    EXPECT_EQ(q.unfinished_tasks(), 2U);

    TypeParam unbounded;
    EXPECT_EQ(unbounded.maxsize(), 0U);
    for (int i = 0; i < 1000; ++i) unbounded.put_nowait(i);
    EXPECT_FALSE(unbounded.full());
    co_return;
  };
  run_bounded(main());
}

// test_order (Queue, LifoQueue, PriorityQueue).
TEST_F(AioQueueTest, EachQueueTypeKeepsItsOrder) {
  auto main = []() -> aio::Task<void> {
    aio::Queue<int> fifo;
    aio::LifoQueue<int> lifo;
    aio::PriorityQueue<int> prio;
    const std::vector<int> items = {1, 3, 2};
    for (const int i : items) {
      co_await fifo.put(i);
      co_await lifo.put(i);
      co_await prio.put(i);
    }
    std::vector<int> a;
    std::vector<int> b;
    std::vector<int> c;
    for (int i = 0; i < 3; ++i) {
      a.push_back(co_await fifo.get());
      b.push_back(lifo.get_nowait());
      c.push_back(co_await prio.get());
    }
    EXPECT_EQ(a, (std::vector<int>{1, 3, 2}));
    EXPECT_EQ(b, (std::vector<int>{2, 3, 1}));
    EXPECT_EQ(c, (std::vector<int>{1, 2, 3}));
  };
  run_bounded(main());
}

TEST_F(AioQueueTest, PriorityQueueKeepsArrivalOrderAmongEqualPriorities) {
  struct ByPriority {
    bool operator()(const std::pair<int, std::string>& x,
                    const std::pair<int, std::string>& y) const {
      return x.first < y.first;
    }
  };
  auto main = []() -> aio::Task<void> {
    aio::PriorityQueue<std::pair<int, std::string>, ByPriority> q;
    q.put_nowait({2, "b1"});
    q.put_nowait({1, "a1"});
    q.put_nowait({2, "b2"});
    q.put_nowait({1, "a2"});
    std::vector<std::string> out;
    while (!q.empty()) out.push_back((co_await q.get()).second);
    EXPECT_EQ(out, (std::vector<std::string>{"a1", "a2", "b1", "b2"}));
  };
  run_bounded(main());
}

// ---- blocking put and get, FIFO service --------------------------------------------------------

// test_maxsize: the putter blocks after maxsize items and resumes once a get made room.
TEST_F(AioQueueTest, PutWaitsWhileTheQueueIsFull) {
  auto main = []() -> aio::Task<void> {
    aio::Queue<int> q(2);
    std::vector<int> have_been_put;
    auto putter = [&]() -> aio::Task<bool> {
      for (int i = 0; i < 3; ++i) {
        co_await q.put(i);
        have_been_put.push_back(i);
      }
      co_return true;
    };
    auto t = aio::create_task(putter());
    co_await tick();
    co_await tick();
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1}));
    EXPECT_EQ(co_await q.get(), 0);
    co_await tick();
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(t.result());
  };
  run_bounded(main());
}

// test_blocking_get / test_put_with_waiting_getters.
TEST_F(AioQueueTest, GetWaitsUntilAnItemIsPut) {
  auto main = []() -> aio::Task<void> {
    aio::Queue<std::string> q;
    auto getter = [&]() -> aio::Task<std::string> { co_return co_await q.get(); };
    auto t = aio::create_task(getter());
    co_await tick();
    EXPECT_FALSE(t.done());
    co_await q.put("a");
    EXPECT_EQ(co_await t, "a");
  };
  run_bounded(main());
}

// Getters are served in arrival order; an item put while getters wait is promised to the first
// at once: it leaves qsize() and no get_nowait() can take it first.
TEST_F(AioQueueTest, WaitingGettersAreServedInArrivalOrderWithoutStealing) {
  auto main = []() -> aio::Task<void> {
    aio::Queue<int> q;
    std::vector<aio::Task<int>> getters;
    getters.reserve(5);
    for (int i = 0; i < 5; ++i) getters.push_back(aio::create_task(get_one(q)));
    co_await tick();
    for (int i = 0; i < 5; ++i) q.put_nowait(i);
    EXPECT_EQ(q.qsize(), 0U) << "all five are promised";
    EXPECT_THROW((void)q.get_nowait(), Empty) << "a promised item cannot be taken";
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(co_await getters[static_cast<std::size_t>(i)], i);
    }
    EXPECT_EQ(q.unfinished_tasks(), 5U);
  };
  run_bounded(main());
}

TEST_F(AioQueueTest, WaitingPuttersAreServedInArrivalOrder) {
  auto main = []() -> aio::Task<void> {
    aio::Queue<int> q(1);
    q.put_nowait(0);
    std::vector<aio::Task<void>> putters;
    for (int i = 1; i <= 4; ++i) putters.push_back(aio::create_task(put_one(q, i)));
    co_await tick();
    EXPECT_THROW(q.put_nowait(99), Full) << "a newcomer does not overtake the waiting putters";
    std::vector<int> got;
    got.reserve(5);
    for (int i = 0; i < 5; ++i) got.push_back(co_await q.get());
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
    for (auto& p : putters) co_await p;
  };
  run_bounded(main());
}

// test_get_with_waiting_putters.
TEST_F(AioQueueTest, GetWithWaitingPuttersReturnsTheirItemsInOrder) {
  auto main = []() -> aio::Task<void> {
    aio::Queue<int> q(1);
    auto a = aio::create_task(put_one(q, 1));
    auto b = aio::create_task(put_one(q, 2));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(co_await q.get(), 2);
    co_await a;
    co_await b;
  };
  run_bounded(main());
}

// test_why_are_getters_waiting / test_why_are_putters_waiting (bpo regressions: no task left
// waiting although the queue could serve it).
TEST_F(AioQueueTest, NoWaiterIsLeftBehindWhenTheQueueCouldServeIt) {
  auto main = []() -> aio::Task<void> {
    {
      aio::Queue<int> q(1);
      auto producer = [&]() -> aio::Task<void> {
        for (int i = 0; i < 5; ++i) co_await q.put(i);
      };
      auto consumer = [&]() -> aio::Task<void> {
        for (int i = 0; i < 5; ++i) (void)co_await q.get();
      };
      auto p = aio::create_task(producer());
      auto c = aio::create_task(consumer());
      co_await p;
      co_await c;
    }
    {
      aio::Queue<int> q(2);
      auto getter = [&]() -> aio::Task<void> {
        co_await tick();
        const std::size_t n = q.qsize();
        for (std::size_t i = 0; i < n; ++i) (void)q.get_nowait();
      };
      auto g = aio::create_task(getter());
      std::vector<aio::Task<void>> putters;
      putters.reserve(4);
      for (int i = 0; i < 4; ++i) putters.push_back(aio::create_task(put_one(q, i)));
      co_await g;
      for (auto& p : putters) co_await p;
      EXPECT_EQ(q.qsize(), 2U);
    }
  };
  run_bounded(main());
}

TEST_F(AioQueueTest, AWokenPriorityGetterTakesTheSmallestItemWhenItResumes) {
  auto main = []() -> aio::Task<void> {
    aio::PriorityQueue<int> q;
    auto g = aio::create_task(get_one(q));
    co_await tick();
    q.put_nowait(5);  // promised to g
    q.put_nowait(1);  // smaller, arrives before g runs
    EXPECT_EQ(q.qsize(), 1U);
    EXPECT_EQ(co_await g, 1) << "the order applies when the getter takes its item";
    EXPECT_EQ(q.get_nowait(), 5);
  };
  run_bounded(main());
}

// ---- cancellation ------------------------------------------------------------------------------

// test_get_cancelled_race: a cancelled getter leaves; the next one gets the item.
TYPED_TEST(AioQueueTypedTest, GetterCancelledWhileWaitingTakesNothing) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    auto t1 = aio::create_task(get_one(q));
    auto t2 = aio::create_task(get_one(q));
    co_await tick();
    t1.cancel();
    co_await tick();
    EXPECT_TRUE(t1.done());
    co_await q.put(7);
    co_await tick();
    EXPECT_EQ(co_await t2, 7);
    // test_cancelled_getters_not_being_held_in_self_getters: a get timed out by wait_for leaves.
    EXPECT_THROW((void)co_await aio::wait_for(get_one(q), 10ms), TimeoutError);
    q.put_nowait(8);
    EXPECT_EQ(q.qsize(), 1U) << "no stale getter was promised the item";
    EXPECT_EQ(q.get_nowait(), 8);
  };
  run_bounded(main());
}

// The brief's case: a getter promised an item and cancelled before it resumed hands the item to
// the next getter — or, alone, leaves it queued.
TYPED_TEST(AioQueueTypedTest, GetterPromisedAnItemThenCancelledPassesItOn) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    auto g1 = aio::create_task(get_one(q));
    auto g2 = aio::create_task(get_one(q));
    co_await tick();
    q.put_nowait(7);  // promised to g1...
    g1.cancel();      // ...which is cancelled before it runs
    EXPECT_THROW(co_await g1, CancelledError);
    EXPECT_EQ(co_await g2, 7);
    EXPECT_EQ(q.unfinished_tasks(), 1U);

    auto g3 = aio::create_task(get_one(q));
    co_await tick();
    q.put_nowait(8);
    EXPECT_EQ(q.qsize(), 0U);
    g3.cancel();
    EXPECT_THROW(co_await g3, CancelledError);
    EXPECT_EQ(q.qsize(), 1U) << "back in the queue";
    EXPECT_EQ(q.get_nowait(), 8);
  };
  run_bounded(main());
}

// uncancel() after the cancellation reached a waiting getter: it left the line, so get() still
// raises CancelledError (it took nothing); withdrawn after the item was promised, get() returns it.
TYPED_TEST(AioQueueTypedTest, UncancelDoesNotFakeOrLoseAnItem) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    auto left = aio::create_task(get_one(q));
    co_await tick();
    left.cancel();
    EXPECT_EQ(left.uncancel(), 0);
    EXPECT_THROW((void)co_await left, CancelledError);
    auto promised = aio::create_task(get_one(q));
    co_await tick();
    q.put_nowait(4);
    promised.cancel();
    EXPECT_EQ(promised.uncancel(), 0);
    EXPECT_EQ(co_await promised, 4);
    EXPECT_EQ(q.qsize(), 0U);
  };
  run_bounded(main());
}

// test_cancelled_puts_not_being_held_in_self_putters: a cancelled put never happened.
TYPED_TEST(AioQueueTypedTest, PutterCancelledWhileWaitingPutsNothing) {
  auto main = []() -> aio::Task<void> {
    TypeParam q(1);
    q.put_nowait(1);
    auto p = aio::create_task(put_one(q, 2));
    co_await tick();
    p.cancel();
    EXPECT_THROW(co_await p, CancelledError);
    EXPECT_EQ(q.qsize(), 1U);
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_THROW((void)q.get_nowait(), Empty) << "the cancelled put left nothing";
    EXPECT_EQ(q.unfinished_tasks(), 1U);
    q.put_nowait(3);  // room again: no stale putter holds the slot
  };
  run_bounded(main());
}

// The brief's case for putters: promised the slot a get freed, then cancelled before it resumed:
// the slot goes to the next putter; the cancelled item never enters.
TYPED_TEST(AioQueueTypedTest, PutterPromisedASlotThenCancelledPassesItOn) {
  auto main = []() -> aio::Task<void> {
    TypeParam q(1);
    q.put_nowait(1);
    auto p1 = aio::create_task(put_one(q, 2));
    auto p2 = aio::create_task(put_one(q, 3));
    co_await tick();
    EXPECT_EQ(q.get_nowait(), 1);  // p1 is promised the slot...
    EXPECT_TRUE(q.full()) << "the promised slot is taken";
    p1.cancel();  // ...and cancelled before it runs
    EXPECT_THROW(co_await p1, CancelledError);
    co_await p2;
    EXPECT_EQ(q.qsize(), 1U);
    EXPECT_EQ(q.get_nowait(), 3);
    EXPECT_EQ(q.unfinished_tasks(), 2U) << "items 1 and 3; 2 was never put";
  };
  run_bounded(main());
}

// test_put_cancelled_race.
TEST_F(AioQueueTest, PutCancelledRace) {
  auto main = []() -> aio::Task<void> {
    aio::Queue<int> q(1);
    auto put_a = aio::create_task(put_one(q, 'a'));
    auto put_b = aio::create_task(put_one(q, 'b'));
    auto put_c = aio::create_task(put_one(q, 'X'));
    co_await tick();
    EXPECT_TRUE(put_a.done());
    EXPECT_FALSE(put_b.done());
    put_c.cancel();
    co_await tick();
    EXPECT_TRUE(put_c.done());
    EXPECT_EQ(q.get_nowait(), 'a');
    co_await tick();
    EXPECT_EQ(q.get_nowait(), 'b');
    co_await put_b;
  };
  run_bounded(main());
}

// ---- task_done / join --------------------------------------------------------------------------

TYPED_TEST(AioQueueTypedTest, TaskDoneAndJoin) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    co_await q.join();  // test_join_empty_queue: nothing unfinished
    co_await q.join();
    EXPECT_THROW(q.task_done(), ValueError);  // test_task_done_underflow

    // test_task_done: two workers, join returns once every item is done.
    for (int i = 0; i < 100; ++i) q.put_nowait(i);
    int accumulator = 0;
    auto worker = [&]() -> aio::Task<void> {
      for (;;) {
        int item = 0;
        try {
          item = co_await q.get();
        } catch (const ShutDown&) {
          co_return;
        }
        accumulator += item;
        co_await tick();
        q.task_done();
      }
    };
    auto w1 = aio::create_task(worker());
    auto w2 = aio::create_task(worker());
    co_await q.join();
    EXPECT_EQ(accumulator, 99 * 100 / 2);
    EXPECT_EQ(q.unfinished_tasks(), 0U);
    q.shutdown();
    co_await w1;
    co_await w2;
  };
  run_bounded(main());
}

TYPED_TEST(AioQueueTypedTest, JoinWaitsForTheLastTaskDoneAndIsCancellable) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    q.put_nowait(1);
    auto join_one = [&]() -> aio::Task<void> { co_await q.join(); };
    auto j1 = aio::create_task(join_one());
    auto j2 = aio::create_task(join_one());
    co_await tick();
    EXPECT_FALSE(j1.done());
    j2.cancel();
    EXPECT_THROW(co_await j2, CancelledError);
    (void)q.get_nowait();
    co_await tick();
    EXPECT_FALSE(j1.done()) << "taken, not done";
    q.task_done();
    co_await j1;
  };
  run_bounded(main());
}

// ---- shutdown (Python 3.13) --------------------------------------------------------------------

// test_shutdown_empty.
TYPED_TEST(AioQueueTypedTest, ShutdownOfAnEmptyQueue) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    auto get_task = aio::create_task(get_one(q));
    co_await tick();
    EXPECT_FALSE(q.is_shutdown());
    q.shutdown(false);
    EXPECT_TRUE(q.is_shutdown());
    EXPECT_EQ(q.qsize(), 0U);
    co_await q.join();
    co_await tick();
    EXPECT_TRUE(get_task.done());
    EXPECT_THROW((void)co_await get_task, ShutDown);
    EXPECT_THROW(co_await q.put(1), ShutDown);
    EXPECT_THROW(q.put_nowait(1), ShutDown);
    EXPECT_THROW((void)co_await q.get(), ShutDown);
    EXPECT_THROW((void)q.get_nowait(), ShutDown);
  };
  run_bounded(main());
}

// test_shutdown_nonempty: the items left can still be taken; the blocked putter fails.
TYPED_TEST(AioQueueTypedTest, ShutdownOfANonEmptyQueueLetsGetsDrainIt) {
  auto main = []() -> aio::Task<void> {
    TypeParam q(1);
    q.put_nowait(1);
    auto join_one = [&]() -> aio::Task<void> { co_await q.join(); };
    auto join_task = aio::create_task(join_one());
    auto put_task = aio::create_task(put_one(q, 2));
    co_await tick();
    EXPECT_FALSE(put_task.done());
    q.shutdown(false);
    EXPECT_EQ(q.qsize(), 1U);
    co_await tick();
    EXPECT_TRUE(put_task.done());
    EXPECT_THROW(co_await put_task, ShutDown);
    EXPECT_EQ(co_await q.get(), 1);
    co_await tick();
    EXPECT_FALSE(join_task.done());
    EXPECT_THROW(co_await q.put(3), ShutDown);
    EXPECT_THROW(q.put_nowait(3), ShutDown);
    EXPECT_THROW((void)co_await q.get(), ShutDown);
    EXPECT_THROW((void)q.get_nowait(), ShutDown);
    q.task_done();
    co_await tick();
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    EXPECT_THROW(q.task_done(), ValueError);
  };
  run_bounded(main());
}

// test_shutdown_immediate: the items are dropped and counted done.
TYPED_TEST(AioQueueTypedTest, ShutdownImmediateDropsTheItems) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    q.put_nowait(1);
    auto join_one = [&]() -> aio::Task<void> { co_await q.join(); };
    auto join_task = aio::create_task(join_one());
    q.shutdown(true);
    EXPECT_EQ(q.qsize(), 0U);
    co_await tick();
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    EXPECT_THROW(co_await q.put(2), ShutDown);
    EXPECT_THROW((void)co_await q.get(), ShutDown);
    EXPECT_THROW((void)q.get_nowait(), ShutDown);
    EXPECT_THROW(q.task_done(), ValueError);
  };
  run_bounded(main());
}

// test_shutdown_immediate_with_unfinished: items taken before stay unfinished.
TYPED_TEST(AioQueueTypedTest, ShutdownImmediateKeepsTheTakenItemsUnfinished) {
  auto main = []() -> aio::Task<void> {
    TypeParam q;
    q.put_nowait(1);
    q.put_nowait(2);
    auto join_one = [&]() -> aio::Task<void> { co_await q.join(); };
    auto join_task = aio::create_task(join_one());
    (void)co_await q.get();
    q.shutdown(true);
    EXPECT_EQ(q.qsize(), 0U);
    co_await tick();
    EXPECT_FALSE(join_task.done());
    EXPECT_THROW(co_await q.put(3), ShutDown);
    EXPECT_THROW((void)co_await q.get(), ShutDown);
    q.task_done();
    EXPECT_THROW(q.task_done(), ValueError);
    co_await tick();
    EXPECT_TRUE(join_task.done());
    co_await join_task;
  };
  run_bounded(main());
}

// A getter already promised an item keeps it on shutdown(false); shutdown(true) drops it and the
// getter raises ShutDown; a putter promised a slot raises ShutDown either way.
TYPED_TEST(AioQueueTypedTest, ShutdownAndThePromisesAlreadyMade) {
  auto main = []() -> aio::Task<void> {
    {
      TypeParam q;
      auto g = aio::create_task(get_one(q));
      auto late = aio::create_task(get_one(q));
      co_await tick();
      q.put_nowait(5);  // promised to g
      q.shutdown(false);
      EXPECT_EQ(co_await g, 5);
      EXPECT_THROW((void)co_await late, ShutDown);
    }
    {
      TypeParam q;
      auto g = aio::create_task(get_one(q));
      co_await tick();
      q.put_nowait(5);
      q.shutdown(true);
      EXPECT_THROW((void)co_await g, ShutDown);
      EXPECT_EQ(q.unfinished_tasks(), 0U);
      co_await q.join();
    }
    {
      TypeParam q(1);
      q.put_nowait(1);
      auto p = aio::create_task(put_one(q, 2));
      co_await tick();
      EXPECT_EQ(q.get_nowait(), 1);  // p is promised the slot
      q.shutdown(false);
      EXPECT_THROW(co_await p, ShutDown);
      EXPECT_EQ(q.qsize(), 0U);
      EXPECT_EQ(q.unfinished_tasks(), 1U) << "only item 1 was ever put";
    }
  };
  run_bounded(main());
}

// ---- bounded stress with random cancellations
// ----------------------------------------------------

void line_erase(std::deque<int>& line, int id) {
  const auto it = std::find(line.begin(), line.end(), id);
  if (it != line.end()) line.erase(it);
}

// 500 producers and 500 consumers share a queue of 8 slots; tasks are cancelled at random, and
// after each put / get the task often cancels the first waiting getter / putter — the one it just
// promised the item / the slot to, before it runs. Every item whose put() returned is received
// exactly once, no other item is received, join() returns, and nothing is left over.
TYPED_TEST(AioQueueTypedTest, StressRandomCancellationsConserveEveryItem) {
  auto main = []() -> aio::Task<void> {
    constexpr int kProducers = 500;
    constexpr int kConsumers = 500;  // even-numbered consumers are never cancelled
    constexpr int kItemsEach = 10;
    constexpr int kItems = kProducers * kItemsEach;
    TypeParam q(8);
    std::vector<int> put_ok(kItems, 0);
    std::vector<int> got(kItems, 0);
    std::deque<int> getters_line;  // consumers inside get(), in arrival order
    std::deque<int> putters_line;  // producers inside put(), in arrival order
    std::vector<aio::Task<void>> producers;
    std::vector<aio::Task<void>> consumers;
    std::mt19937 rng(4242);
    auto cancel_consumer = [&](int id) {
      if (id % 2 == 1) consumers[static_cast<std::size_t>(id)].cancel();
    };
    auto producer = [&](int p) -> aio::Task<void> {
      for (int k = 0; k < kItemsEach; ++k) {
        const int item = p * kItemsEach + k;
        putters_line.push_back(p);
        try {
          co_await q.put(item);
        } catch (...) {
          line_erase(putters_line, p);
          throw;
        }
        line_erase(putters_line, p);
        ++put_ok[static_cast<std::size_t>(item)];
        // The item was promised to the first waiting getter: cancel it before it runs, at times.
        if (rng() % 3 == 0 && !getters_line.empty()) cancel_consumer(getters_line.front());
        if (rng() % 2 == 0) co_await tick();
      }
    };
    auto consumer = [&](int c) -> aio::Task<void> {
      for (;;) {
        int item = -1;
        getters_line.push_back(c);
        try {
          item = co_await q.get();
        } catch (const ShutDown&) {
          line_erase(getters_line, c);
          co_return;
        } catch (...) {
          line_erase(getters_line, c);
          throw;
        }
        line_erase(getters_line, c);
        ++got[static_cast<std::size_t>(item)];
        q.task_done();
        // A slot was promised to the first waiting putter: cancel it before it runs, at times.
        if (rng() % 3 == 0 && !putters_line.empty()) {
          producers[static_cast<std::size_t>(putters_line.front())].cancel();
        }
        if (rng() % 2 == 0) co_await tick();
      }
    };
    for (int c = 0; c < kConsumers; ++c) consumers.push_back(aio::create_task(consumer(c)));
    for (int p = 0; p < kProducers; ++p) producers.push_back(aio::create_task(producer(p)));
    auto canceller = [&]() -> aio::Task<void> {
      for (int i = 0; i < 200; ++i) {
        if (rng() % 2 == 0) {
          producers[rng() % kProducers].cancel();
        } else {
          cancel_consumer(static_cast<int>(rng() % kConsumers));
        }
        co_await tick();
      }
    };
    auto c = aio::create_task(canceller());
    int producers_cancelled = 0;
    for (auto& p : producers) {
      try {
        co_await p;
      } catch (const CancelledError&) {
        ++producers_cancelled;
      }
    }
    co_await c;
    co_await q.join();  // the live consumers finish every item put
    q.shutdown();
    int consumers_cancelled = 0;
    for (auto& t : consumers) {
      try {
        co_await t;
      } catch (const CancelledError&) {
        ++consumers_cancelled;
      }
    }
    EXPECT_GT(producers_cancelled, 0);
    EXPECT_GT(consumers_cancelled, 0);
    int lost = 0;
    int duplicated = 0;
    int phantom = 0;
    int delivered = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (got[i] > 1) ++duplicated;
      if (put_ok[i] == 1 && got[i] == 0) ++lost;
      if (put_ok[i] == 0 && got[i] > 0) ++phantom;
      delivered += got[i];
    }
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(duplicated, 0);
    EXPECT_EQ(phantom, 0) << "an item whose put() was cancelled was received";
    EXPECT_EQ(delivered, std::accumulate(put_ok.begin(), put_ok.end(), 0));
    EXPECT_GT(delivered, kItems / 10) << "the run did some work";
    EXPECT_EQ(q.qsize(), 0U);
    EXPECT_EQ(q.unfinished_tasks(), 0U);
    EXPECT_TRUE(getters_line.empty());
    EXPECT_TRUE(putters_line.empty());
  };
  run_bounded(main());
}

}  // namespace
}  // namespace concur::testing
