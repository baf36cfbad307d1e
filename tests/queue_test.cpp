// Tests for concur/queue.hpp, after CPython's Lib/test/test_queue.py (3.13): BaseQueueTestMixin
// (test_basic, test_queue_task_done, test_queue_join, test_nowait, the negative-timeout case,
// every test_shutdown_* scenario) over Queue, LifoQueue and PriorityQueue; FailingQueueTest with
// a T whose move constructor throws on demand in place of FailingQueue's failing _put/_get; and
// BaseSimpleQueueTest (test_basic, test_order, test_many_threads[_nonblock|_timeout],
// test_references, test_reentrancy) for SimpleQueue. test_shrinking_queue has no counterpart:
// maxsize() is fixed at construction.
// Beyond Python: every timeout form (zero, negative = poll, finite with a kSlack lower bound,
// huge = forever, time points of two clocks), try_put/try_get, join(timeout), priority stability
// with a Compare on a priority field, move-only items in every queue type, a throwing move at
// each position inside each put/get form (nothing lost, nothing duplicated, qsize() and
// unfinished_tasks() still true, blocked getters still woken), each get moving its item out
// exactly once, put_many/get_many (batch order, bounds, timeouts, rvalue ranges, blocking for
// room), shutdown waking many blocked callers, and producer/consumer runs swept over
// kThreadCounts with a checksum, a per-item seen-count and a happens-before check; for the FIFO
// queues (unbounded on the segment engine, bounded on the ring), Python's linearizable order
// (a put that returned before another began is got first, checked with a shared clock) and
// 2M-item stress runs.
// The throwing-move and rvalue put_many tests found library bugs (since fixed in queue.hpp).
#include "concur/queue.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/barrier.hpp"
#include "concur/sync/event.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 10;  // sanitizers slow every operation ~10x
#else
constexpr std::size_t kScale = 1;
#endif

constexpr std::size_t kQueueSize = 5;  // CPython's QUEUE_SIZE

// ---- the queue types under test, as tags for typed tests --------------------------------------

// Each kind names its queue template, whether it takes a bound and counts tasks, and
// order(items): the order in which `items`, put in that order, come out.
struct FifoKind {
  template <class T>
  using Q = Queue<T>;
  static constexpr const char* kName = "Queue";
  static constexpr bool kBounded = true;
  static constexpr bool kTasks = true;
  static constexpr bool kFifo = true;
  static std::vector<int> order(std::vector<int> items) { return items; }
};
struct LifoKind {
  template <class T>
  using Q = LifoQueue<T>;
  static constexpr const char* kName = "LifoQueue";
  static constexpr bool kBounded = true;
  static constexpr bool kTasks = true;
  static constexpr bool kFifo = false;
  static std::vector<int> order(std::vector<int> items) {
    std::ranges::reverse(items);
    return items;
  }
};
struct PriorityKind {
  template <class T>
  using Q = PriorityQueue<T>;
  static constexpr const char* kName = "PriorityQueue";
  static constexpr bool kBounded = true;
  static constexpr bool kTasks = true;
  static constexpr bool kFifo = false;
  static std::vector<int> order(std::vector<int> items) {
    std::ranges::sort(items);
    return items;
  }
};
struct SimpleKind {
  template <class T>
  using Q = SimpleQueue<T>;
  static constexpr const char* kName = "SimpleQueue";
  static constexpr bool kBounded = false;
  static constexpr bool kTasks = false;
  static constexpr bool kFifo = true;
  static std::vector<int> order(std::vector<int> items) { return items; }
};

struct KindName {
  template <class K>
  static std::string GetName(int) {
    return K::kName;
  }
};

// ---- helpers ----------------------------------------------------------------------------------

// expect_blocks_until(block, release) is CPython's do_blocking_test turned around: block() runs in
// another thread and must still be running kShort later; release() runs here and must let
// block() return (within kGenerous, or Bunch fails the test).
template <class Block, class Release>
void expect_blocks_until(Block block, Release release) {
  std::atomic<bool> returned{false};
  Bunch thread(1, [&](std::size_t) {
    block();
    returned.store(true);
  });
  thread.wait_started();
  EXPECT_TRUE(holds_for(kShort, [&] { return !returned.load(); })) << "the call did not block";
  release();
  thread.join();
  EXPECT_TRUE(returned.load()) << "the call did not return once released";
}

// sorted(v) returns v in ascending order (a multiset comparison when order is not specified).
template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::ranges::sort(v);
  return v;
}

// iota(first, n) is {first, first + 1, ..., first + n - 1}.
std::vector<int> iota(int first, std::size_t n) {
  std::vector<int> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = first + static_cast<int>(i);
  return v;
}

// ---- BaseQueueTestMixin: Queue, LifoQueue, PriorityQueue --------------------------------------

template <class K>
class TaskQueueTest : public QuiescentTest {};
using TaskKinds = ::testing::Types<FifoKind, LifoKind, PriorityKind>;
TYPED_TEST_SUITE(TaskQueueTest, TaskKinds, KindName);

// basic_queue_test(q): CPython's basic_queue_test on a queue bounded at kQueueSize.
template <class K, class Q>
void basic_queue_test(Q& q) {
  ASSERT_EQ(q.qsize(), 0u) << "call with an empty queue";
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put(111);
  q.put(333);
  q.put(222);
  const std::vector<int> got{q.get(), q.get(), q.get()};  // braces: evaluated left to right
  EXPECT_EQ(got, K::order({111, 333, 222})) << "items did not come out in " << K::kName << " order";
  for (int i = 0; i < static_cast<int>(kQueueSize) - 1; ++i) {
    q.put(i);
    EXPECT_GT(q.qsize(), 0u);
  }
  EXPECT_FALSE(q.full());
  constexpr int kLast = 2 * static_cast<int>(kQueueSize);
  constexpr int kFull = 3 * kLast;
  q.put(kLast);
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.qsize(), q.maxsize());
  EXPECT_THROW(q.put_nowait(kFull), Full);
  EXPECT_THROW(q.put(kFull, 10ms), Full);
  // A blocking put, untimed and with a long timeout, released by a get.
  expect_blocks_until([&] { q.put(kFull); }, [&] { (void)q.get(); });
  expect_blocks_until([&] { q.put(kFull, 10s); }, [&] { (void)q.get(); });
  for (std::size_t i = 0; i < kQueueSize; ++i) (void)q.get();
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_THROW((void)q.get_nowait(), Empty);
  EXPECT_THROW((void)q.get(10ms), Empty);
  // A blocking get, untimed and with a long timeout, released by a put.
  expect_blocks_until([&] { EXPECT_EQ(q.get(), -1); }, [&] { q.put(-1); });
  expect_blocks_until([&] { EXPECT_EQ(q.get(10s), -2); }, [&] { q.put(-2); });
}

TYPED_TEST(TaskQueueTest, Basic) {  // test_basic: twice on the same queue
  typename TypeParam::template Q<int> q(kQueueSize);
  basic_queue_test<TypeParam>(q);
  basic_queue_test<TypeParam>(q);
}

TYPED_TEST(TaskQueueTest, TaskDoneMoreOftenThanPutThrowsValueError) {  // test_queue_task_done
  typename TypeParam::template Q<int> q;
  try {
    q.task_done();
    ADD_FAILURE() << "task_done() on a fresh queue did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ValueError: task_done() called too many times"));
  }
  q.put(1);
  (void)q.get();
  q.task_done();
  EXPECT_THROW(q.task_done(), ValueError);
  EXPECT_EQ(q.unfinished_tasks(), 0u) << "a rejected task_done() changed the count";
}

// queue_join_test(q, workers): CPython's queue_join_test — workers sum what they get and mark
// each item done; join() returns only once all 100 are done; a -1 per worker stops them; a
// second join() returns too.
template <class Q>
void queue_join_test(Q& q, std::size_t workers) {
  std::atomic<int> cum{0};
  Bunch bunch(workers, [&](std::size_t) {
    for (;;) {
      const int x = q.get(kGenerous);  // Empty (a lost wake-up) fails the test, never hangs it
      if (x < 0) {
        q.task_done();
        return;
      }
      cum.fetch_add(x);
      q.task_done();
    }
  });
  for (int i = 0; i < 100; ++i) q.put(i);
  ASSERT_TRUE(q.join(kGenerous));
  EXPECT_EQ(cum.load(), 4950) << "join() returned before every task was done";
  for (std::size_t i = 0; i < workers; ++i) q.put(-1);
  EXPECT_TRUE(q.join(kGenerous));  // joining twice works
  bunch.join();
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

TYPED_TEST(TaskQueueTest, JoinWaitsForEveryTaskDone) {  // test_queue_join, swept over workers
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    typename TypeParam::template Q<int> q;
    queue_join_test(q, workers);
    queue_join_test(q, workers);
    EXPECT_THROW(q.task_done(), ValueError);
  }
}

// test_negative_timeout_raises_exception: Python rejects a negative timeout with ValueError;
// concur's convention (std::timed_mutex's, detail/deadline.hpp) makes it a poll.
TYPED_TEST(TaskQueueTest, NegativeTimeoutPolls) {
  typename TypeParam::template Q<int> q(kQueueSize);
  EXPECT_LT(elapsed([&] { EXPECT_THROW((void)q.get(-1s), Empty); }), kGenerous);
  for (int i = 0; i < static_cast<int>(kQueueSize); ++i) q.put(i, -1s);  // room: succeeds
  EXPECT_LT(elapsed([&] { EXPECT_THROW(q.put(9, -1s), Full); }), kGenerous);
  EXPECT_FALSE(q.try_put(9, -1ms));
  EXPECT_EQ(q.get(-1s), TypeParam::order(iota(0, kQueueSize)).front());
  EXPECT_TRUE(q.try_get(-1ms).has_value());
}

TYPED_TEST(TaskQueueTest, NowaitFormsThrowFullAndEmpty) {  // test_nowait
  typename TypeParam::template Q<int> q(kQueueSize);
  for (std::size_t i = 0; i < kQueueSize; ++i) q.put_nowait(1);
  EXPECT_THROW(q.put_nowait(1), Full);
  for (std::size_t i = 0; i < kQueueSize; ++i) EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_THROW((void)q.get_nowait(), Empty);
}

TYPED_TEST(TaskQueueTest, ErrorsAreQueueErrorsWithGreppableMessages) {
  typename TypeParam::template Q<int> q(1);
  q.put(1);
  try {
    q.put_nowait(2);
    ADD_FAILURE() << "no Full";
  } catch (const QueueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("Full: "));
  }
  (void)q.get();
  try {
    (void)q.get_nowait();
    ADD_FAILURE() << "no Empty";
  } catch (const QueueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("Empty: "));
  }
  q.shutdown();
  try {
    q.put(3);
    ADD_FAILURE() << "no ShutDown";
  } catch (const QueueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ShutDown: "));
  }
}

// ---- sizes and bounds -------------------------------------------------------------------------

TYPED_TEST(TaskQueueTest, MaxsizeZeroIsUnbounded) {
  typename TypeParam::template Q<int> fresh;
  EXPECT_EQ(fresh.maxsize(), 0u);
  typename TypeParam::template Q<int> q(0);
  EXPECT_EQ(q.maxsize(), 0u);
  for (int i = 0; i < 10'000; ++i) q.put_nowait(i);
  EXPECT_EQ(q.qsize(), 10'000u);
  EXPECT_FALSE(q.full());
  EXPECT_TRUE(q.try_put(10'000));
  EXPECT_EQ(q.unfinished_tasks(), 10'001u);
}

TYPED_TEST(TaskQueueTest, QsizeEmptyFullTrackEveryOperation) {
  typename TypeParam::template Q<int> q(2);
  EXPECT_EQ(q.maxsize(), 2u);
  EXPECT_TRUE(q.empty());
  q.put(1);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_FALSE(q.empty());
  EXPECT_FALSE(q.full());
  q.put(2);
  EXPECT_TRUE(q.full());
  (void)q.try_get();
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 1u);
  q.put_many(std::vector<int>{3});
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.get_many(5).size(), 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.unfinished_tasks(), 3u) << "get() must not change the unfinished-task count";
}

// ---- timeouts ---------------------------------------------------------------------------------

TYPED_TEST(TaskQueueTest, PutTimeoutsOnAFullQueue) {
  typename TypeParam::template Q<int> q(1);
  q.put(0);
  EXPECT_LT(elapsed([&] { EXPECT_THROW(q.put(1, 0s), Full); }), kGenerous);
  EXPECT_LT(elapsed([&] { EXPECT_FALSE(q.try_put(1)); }), kGenerous);
  EXPECT_GE(elapsed([&] { EXPECT_THROW(q.put(1, kShort), Full); }), kShort - kSlack);
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(q.try_put(1, kShort)); }), kShort - kSlack);
  EXPECT_GE(elapsed([&] {
              EXPECT_THROW(q.put_until(1, std::chrono::steady_clock::now() + kShort), Full);
            }),
            kShort - kSlack);
  EXPECT_GE(
      elapsed([&] { EXPECT_FALSE(q.try_put_until(1, std::chrono::system_clock::now() + kShort)); }),
      kShort - kSlack);
  EXPECT_THROW(q.put_until(1, std::chrono::steady_clock::now() - 1s), Full);
  EXPECT_EQ(q.qsize(), 1u) << "a put that timed out changed the queue";
  // A huge timeout is "forever": it blocks until a get makes room.
  expect_blocks_until([&] { q.put(2, std::chrono::hours::max()); }, [&] { (void)q.get(); });
  expect_blocks_until([&] { EXPECT_TRUE(q.try_put(3, std::chrono::nanoseconds::max())); },
                      [&] { (void)q.get(); });
  EXPECT_EQ(q.get(), 3);
}

TYPED_TEST(TaskQueueTest, TimedCallsReturnAsSoonAsReleased) {
  typename TypeParam::template Q<int> q(1);
  // A finite timeout far longer than the test: the call returns on the put, not the timeout.
  expect_blocks_until([&] { EXPECT_EQ(q.get(kGenerous * 4), 5); }, [&] { q.put(5); });
  expect_blocks_until(
      [&] { EXPECT_EQ(q.get_until(std::chrono::system_clock::now() + kGenerous * 4), 6); },
      [&] { q.put(6); });
  q.put(1);
  expect_blocks_until([&] { q.put_until(2, std::chrono::steady_clock::now() + kGenerous * 4); },
                      [&] { EXPECT_EQ(q.get(), 1); });
  EXPECT_EQ(q.get(), 2);
}

// ---- task_done / join -------------------------------------------------------------------------

TYPED_TEST(TaskQueueTest, JoinBlocksUntilTheLastTaskDone) {
  for (const std::size_t joiners : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << joiners << " joiners");
    typename TypeParam::template Q<int> q;
    EXPECT_TRUE(q.join(0s)) << "nothing was put: join() returns at once";
    for (int i = 0; i < 3; ++i) q.put(i);
    for (int i = 0; i < 3; ++i) (void)q.get();
    EXPECT_EQ(q.unfinished_tasks(), 3u);
    std::atomic<std::size_t> joined{0};
    Bunch bunch(joiners, [&](std::size_t i) {
      if (i % 2 == 0) {
        q.join();
      } else {
        EXPECT_TRUE(q.join(kGenerous * 4));
      }
      joined.fetch_add(1);
    });
    q.task_done();
    q.task_done();
    EXPECT_EQ(q.unfinished_tasks(), 1u);
    EXPECT_TRUE(holds_for(kShort, [&] { return joined.load() == 0; }))
        << "join() returned with a task unfinished";
    EXPECT_FALSE(q.join(0s));
    q.task_done();
    bunch.join();
    EXPECT_EQ(joined.load(), joiners);
    EXPECT_TRUE(q.join(0s));
  }
}

TYPED_TEST(TaskQueueTest, JoinTimeoutReturnsFalseWhileTasksAreUnfinished) {
  typename TypeParam::template Q<int> q;
  q.put(1);
  EXPECT_FALSE(q.join(0s));
  EXPECT_FALSE(q.join(-1s));
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(q.join(kShort)); }), kShort - kSlack);
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(q.join_until(std::chrono::steady_clock::now() + kShort)); }),
            kShort - kSlack);
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(q.join_until(std::chrono::system_clock::now() + kShort)); }),
            kShort - kSlack);
  (void)q.get();
  EXPECT_FALSE(q.join(0s)) << "get() alone does not finish a task";
  q.task_done();
  EXPECT_TRUE(q.join(0s));
  EXPECT_TRUE(q.join_until(std::chrono::steady_clock::now() - 1s));
}

TYPED_TEST(TaskQueueTest, UnfinishedTasksCountsPutsMinusTaskDones) {
  typename TypeParam::template Q<int> q(3);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  q.put(1);
  q.put_nowait(2);
  EXPECT_TRUE(q.try_put(3));
  EXPECT_FALSE(q.try_put(4));  // rejected: not counted
  EXPECT_THROW(q.put_nowait(4), Full);
  EXPECT_EQ(q.unfinished_tasks(), 3u);
  (void)q.get_many(3);
  EXPECT_EQ(q.unfinished_tasks(), 3u);
  q.put_many(std::vector<int>{5, 6});
  EXPECT_EQ(q.unfinished_tasks(), 5u);
  for (int i = 0; i < 5; ++i) q.task_done();
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

// ---- shutdown (Python 3.13) -------------------------------------------------------------------

TYPED_TEST(TaskQueueTest, ShutdownEmpty) {  // test_shutdown_empty
  typename TypeParam::template Q<std::string> q;
  q.shutdown();
  EXPECT_THROW(q.put("data"), ShutDown);
  EXPECT_THROW((void)q.get(), ShutDown);
}

TYPED_TEST(TaskQueueTest, ShutdownNonempty) {  // test_shutdown_nonempty
  typename TypeParam::template Q<std::string> q;
  q.put("data");
  q.shutdown();
  EXPECT_EQ(q.get(), "data");
  EXPECT_THROW((void)q.get(), ShutDown);
}

TYPED_TEST(TaskQueueTest, ShutdownImmediate) {  // test_shutdown_immediate
  typename TypeParam::template Q<std::string> q;
  q.put("data");
  q.shutdown(true);
  EXPECT_THROW((void)q.get(), ShutDown);
  EXPECT_TRUE(q.empty());
}

TYPED_TEST(TaskQueueTest, ShutdownAllowedTransitions) {  // test_shutdown_allowed_transitions
  typename TypeParam::template Q<int> q;
  EXPECT_FALSE(q.is_shutdown());
  q.shutdown();
  EXPECT_TRUE(q.is_shutdown());
  q.shutdown(true);
  EXPECT_TRUE(q.is_shutdown());
  q.shutdown(false);
  EXPECT_TRUE(q.is_shutdown());
}

TYPED_TEST(TaskQueueTest, ShutdownIsIdempotent) {
  typename TypeParam::template Q<int> q;
  q.put(1);
  q.put(2);
  q.shutdown();
  q.shutdown();
  EXPECT_EQ(q.qsize(), 2u) << "a repeated plain shutdown dropped items";
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  q.shutdown(true);  // immediate after plain still drops what is left
  q.shutdown(true);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_TRUE(q.join(0s));
  q.shutdown();
  EXPECT_TRUE(q.is_shutdown());
}

// shutdown_all_methods_in_one_thread(immediate): CPython's _shutdown_all_methods_in_one_thread.
template <class K>
void shutdown_all_methods_in_one_thread(bool immediate) {
  typename K::template Q<std::string> q(2);
  q.put("L");
  q.put_nowait("O");
  q.shutdown(immediate);
  EXPECT_THROW(q.put("E"), ShutDown);
  EXPECT_THROW(q.put_nowait("W"), ShutDown);
  const auto is_l_or_o = ::testing::AnyOf(::testing::Eq("L"), ::testing::Eq("O"));
  if (immediate) {
    EXPECT_THROW((void)q.get(), ShutDown);
    EXPECT_THROW((void)q.get_nowait(), ShutDown);
    EXPECT_THROW(q.task_done(), ValueError);
    EXPECT_TRUE(q.join(kGenerous));
  } else {
    EXPECT_THAT(q.get(), is_l_or_o);
    q.task_done();
    EXPECT_THAT(q.get(), is_l_or_o);
    q.task_done();
    EXPECT_TRUE(q.join(kGenerous));
    // Shut down and empty: every get form throws ShutDown.
    EXPECT_THROW((void)q.get(), ShutDown);
    EXPECT_THROW((void)q.get_nowait(), ShutDown);
    EXPECT_THROW((void)q.get(1s), ShutDown);
  }
}

TYPED_TEST(TaskQueueTest, ShutdownAllMethodsInOneThread) {
  shutdown_all_methods_in_one_thread<TypeParam>(false);
}

TYPED_TEST(TaskQueueTest, ShutdownImmediateAllMethodsInOneThread) {
  shutdown_all_methods_in_one_thread<TypeParam>(true);
}

// shutdown_all_methods_in_many_threads(immediate): CPython's _shutdown_all_methods_in_many_threads.
// 4 writers put a first share of their items, then meet 6 readers (each of which already got one
// item) at a barrier; writers keep putting, and the first to reach the halfway mark asks a 7th
// thread to shut the queue down; writers stop on ShutDown, readers poll with get_nowait() until
// ShutDown. With immediate=true, 2 more threads join() the queue and must return.
template <class K>
void shutdown_all_methods_in_many_threads(bool immediate) {
  typename K::template Q<int> q;
  constexpr std::size_t kWriters = 4, kReaders = 6, kJoiners = 2;
  const int per_writer = static_cast<int>(std::size_t{65'536} / kScale / kWriters);
  const int shutdown_at = per_writer / 2;
  const std::size_t parties = kWriters + kReaders + (immediate ? kJoiners : 0);
  Barrier start(parties);
  std::atomic<bool> shutdown_requested{false};
  std::atomic<std::size_t> triggers{0}, writers_stopped{0}, readers_stopped{0};
  std::atomic<bool> empty_after_shutdown{false};
  Bunch bunch(parties + 1, [&](std::size_t id) {
    if (id < kWriters) {
      for (int i = 0; i < shutdown_at / 2; ++i) q.put(i);
      start.wait(kGenerous);
      for (int i = shutdown_at / 2; i < per_writer; ++i) {
        try {
          q.put(i);
        } catch (const ShutDown&) {
          writers_stopped.fetch_add(1);
          break;
        }
        if (i == shutdown_at && !shutdown_requested.exchange(true)) triggers.fetch_add(1);
      }
    } else if (id < kWriters + kReaders) {
      (void)q.get(kGenerous);
      q.task_done();
      start.wait(kGenerous);
      const auto deadline = std::chrono::steady_clock::now() + kGenerous;
      for (;;) {
        try {
          (void)q.get_nowait();
          q.task_done();
        } catch (const ShutDown&) {
          readers_stopped.fetch_add(1);
          break;
        } catch (const Empty&) {
          if (std::chrono::steady_clock::now() > deadline) {
            ADD_FAILURE() << "a reader never saw ShutDown";
            break;
          }
          std::this_thread::yield();
        }
      }
    } else if (id == kWriters + kReaders) {
      ASSERT_TRUE(wait_until([&] { return shutdown_requested.load(); }));
      q.shutdown(immediate);
      empty_after_shutdown.store(q.qsize() == 0);
    } else {
      start.wait(kGenerous);
      EXPECT_TRUE(q.join(kGenerous)) << "join() did not return after shutdown(immediate=true)";
    }
  });
  bunch.join();
  EXPECT_EQ(triggers.load(), 1u);
  EXPECT_EQ(readers_stopped.load(), kReaders);
  EXPECT_TRUE(q.empty());
  if (immediate) {
    EXPECT_TRUE(empty_after_shutdown.load());
  }
  EXPECT_EQ(q.unfinished_tasks(), 0u) << "every item was either task_done() or dropped";
}

TYPED_TEST(TaskQueueTest, ShutdownAllMethodsInManyThreads) {
  shutdown_all_methods_in_many_threads<TypeParam>(false);
}

TYPED_TEST(TaskQueueTest, ShutdownImmediateAllMethodsInManyThreads) {
  shutdown_all_methods_in_many_threads<TypeParam>(true);
}

// shutdown_get(immediate): CPython's _shutdown_get. A full queue of two; getters start after the
// shutdown. Plain: two of three getters get an item, one gets ShutDown. Immediate: both get
// ShutDown (the items were dropped).
template <class K>
void shutdown_get(bool immediate) {
  typename K::template Q<std::string> q(2);
  q.put("Y");
  q.put("D");
  const std::size_t getters = immediate ? 2 : 3;
  Event go;
  std::atomic<std::size_t> got{0}, shut{0};
  Bunch bunch(getters, [&](std::size_t) {
    ASSERT_TRUE(go.wait(kGenerous));
    try {
      (void)q.get(kGenerous);
      got.fetch_add(1);
    } catch (const ShutDown&) {
      shut.fetch_add(1);
    }
  });
  q.shutdown(immediate);
  go.set();
  bunch.join();
  EXPECT_EQ(got.load(), immediate ? 0u : 2u);
  EXPECT_EQ(shut.load(), immediate ? 2u : 1u);
}

TYPED_TEST(TaskQueueTest, ShutdownGet) { shutdown_get<TypeParam>(false); }
TYPED_TEST(TaskQueueTest, ShutdownImmediateGet) { shutdown_get<TypeParam>(true); }

// shutdown_put(immediate): CPython's _shutdown_put — both putters on a full queue get ShutDown.
// (CPython's version calls shutdown() in both variants; this one passes `immediate` through.)
template <class K>
void shutdown_put(bool immediate) {
  typename K::template Q<std::string> q(2);
  q.put("Y");
  q.put("D");
  Event go;
  std::atomic<std::size_t> shut{0};
  Bunch bunch(2, [&](std::size_t i) {
    ASSERT_TRUE(go.wait(kGenerous));
    try {
      q.put(i == 0 ? "E" : "W", kGenerous);
    } catch (const ShutDown&) {
      shut.fetch_add(1);
    }
  });
  q.shutdown(immediate);
  go.set();
  bunch.join();
  EXPECT_EQ(shut.load(), 2u);
  EXPECT_EQ(q.qsize(), immediate ? 0u : 2u);
}

TYPED_TEST(TaskQueueTest, ShutdownPut) { shutdown_put<TypeParam>(false); }
TYPED_TEST(TaskQueueTest, ShutdownImmediatePut) { shutdown_put<TypeParam>(true); }

// shutdown_join(immediate): CPython's _shutdown_join. Two joiners wait on one unfinished item;
// plain: a getter takes it and marks it done; immediate: the item is dropped. Both joins return.
template <class K>
void shutdown_join(bool immediate) {
  typename K::template Q<std::string> q;
  q.put("Y");
  Event go;
  std::atomic<std::size_t> joined{0};
  Bunch joiners(2, [&](std::size_t) {
    q.join();
    joined.fetch_add(1);
  });
  EXPECT_TRUE(holds_for(kShort, [&] { return joined.load() == 0; }));
  std::optional<Bunch> getter;
  if (!immediate) {
    getter.emplace(1, [&](std::size_t) {
      ASSERT_TRUE(go.wait(kGenerous));
      EXPECT_EQ(q.get(kGenerous), "Y");
      q.task_done();
    });
  }
  q.shutdown(immediate);
  go.set();
  joiners.join();
  EXPECT_EQ(joined.load(), 2u);
}

TYPED_TEST(TaskQueueTest, ShutdownJoin) { shutdown_join<TypeParam>(false); }
TYPED_TEST(TaskQueueTest, ShutdownImmediateJoin) { shutdown_join<TypeParam>(true); }

// shutdown_put_join(immediate): CPython's _shutdown_put_join. A queue of two holding one item; a
// putter (after the shutdown) gets ShutDown; a joiner returns once the item is got and done
// (plain) or dropped (immediate).
template <class K>
void shutdown_put_join(bool immediate) {
  typename K::template Q<std::string> q(2);
  q.put("Y");
  Event go;
  std::atomic<bool> put_shut{false}, joined{false};
  Bunch bunch(2, [&](std::size_t i) {
    if (i == 0) {
      ASSERT_TRUE(go.wait(kGenerous));
      try {
        q.put("E");
      } catch (const ShutDown&) {
        put_shut.store(true);
      }
    } else {
      EXPECT_TRUE(q.join(kGenerous));
      joined.store(true);
    }
  });
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  q.shutdown(immediate);
  go.set();
  if (immediate) {
    EXPECT_THROW((void)q.get_nowait(), ShutDown);
  } else {
    EXPECT_EQ(q.get(), "Y");
    q.task_done();
  }
  bunch.join();
  EXPECT_TRUE(put_shut.load());
  EXPECT_TRUE(joined.load());
}

TYPED_TEST(TaskQueueTest, ShutdownPutJoin) { shutdown_put_join<TypeParam>(false); }
TYPED_TEST(TaskQueueTest, ShutdownImmediatePutJoin) { shutdown_put_join<TypeParam>(true); }

TYPED_TEST(TaskQueueTest, ShutdownGetTaskDoneJoin) {  // test_shutdown_get_task_done_join
  typename TypeParam::template Q<std::string> q(2);
  q.put("Y");
  q.put("D");
  EXPECT_EQ(q.unfinished_tasks(), q.qsize());
  Event go;
  std::atomic<std::size_t> got{0}, joined{0};
  Bunch bunch(4, [&](std::size_t i) {
    if (i < 2) {
      ASSERT_TRUE(go.wait(kGenerous));
      try {
        (void)q.get(kGenerous);
        q.task_done();
        got.fetch_add(1);
      } catch (const ShutDown&) {
        ADD_FAILURE() << "a plain shutdown must leave the items to get";
      }
    } else {
      EXPECT_TRUE(q.join(kGenerous));
      joined.fetch_add(1);
    }
  });
  go.set();
  q.shutdown(false);
  bunch.join();
  EXPECT_EQ(got.load(), 2u);
  EXPECT_EQ(joined.load(), 2u);
}

TYPED_TEST(TaskQueueTest, ShutdownPendingGet) {  // test_shutdown_pending_get
  typename TypeParam::template Q<int> q;
  expect_blocks_until([&] { EXPECT_THROW((void)q.get(), ShutDown); }, [&] { q.shutdown(false); });
}

// Beyond CPython: many callers blocked before the shutdown are all woken.
TYPED_TEST(TaskQueueTest, ShutdownWakesEveryBlockedGetter) {
  for (const bool immediate : {false, true}) {
    for (const std::size_t n : kThreadCounts) {
      SCOPED_TRACE(::testing::Message() << n << " getters, immediate=" << immediate);
      typename TypeParam::template Q<int> q;
      std::atomic<std::size_t> woken{0};
      Bunch bunch(n, [&](std::size_t i) {
        if (i % 3 == 0) {
          EXPECT_THROW((void)q.get(), ShutDown);
        } else if (i % 3 == 1) {
          EXPECT_THROW((void)q.try_get(kGenerous * 4), ShutDown);
        } else {
          EXPECT_THROW((void)q.get_many(4), ShutDown);
        }
        woken.fetch_add(1);
      });
      bunch.wait_started();
      EXPECT_TRUE(holds_for(kShort, [&] { return woken.load() == 0; }));
      q.shutdown(immediate);
      bunch.join();
      EXPECT_EQ(woken.load(), n);
    }
  }
}

TYPED_TEST(TaskQueueTest, ShutdownWakesEveryBlockedPutter) {
  for (const bool immediate : {false, true}) {
    for (const std::size_t n : kThreadCounts) {
      SCOPED_TRACE(::testing::Message() << n << " putters, immediate=" << immediate);
      typename TypeParam::template Q<int> q(1);
      q.put(-1);
      std::atomic<std::size_t> woken{0};
      Bunch bunch(n, [&](std::size_t i) {
        const int item = static_cast<int>(i);
        if (i % 3 == 0) {
          EXPECT_THROW(q.put(item), ShutDown);
        } else if (i % 3 == 1) {
          EXPECT_THROW((void)q.try_put(int{item}, kGenerous * 4), ShutDown);
        } else {
          EXPECT_THROW(q.put_many(std::vector<int>{item, item}), ShutDown);
        }
        woken.fetch_add(1);
      });
      bunch.wait_started();
      EXPECT_TRUE(holds_for(kShort, [&] { return woken.load() == 0; }));
      q.shutdown(immediate);
      bunch.join();
      EXPECT_EQ(woken.load(), n);
      if (immediate) {
        EXPECT_THROW((void)q.get(), ShutDown);
      } else {
        EXPECT_EQ(q.get(), -1) << "the item queued before a plain shutdown stays gettable";
        EXPECT_THROW((void)q.get(), ShutDown);
      }
      EXPECT_EQ(q.unfinished_tasks(), immediate ? 0u : 1u);
    }
  }
}

TYPED_TEST(TaskQueueTest, ShutdownDrainsThenThrowsForEveryGetForm) {
  typename TypeParam::template Q<int> q;
  q.put_many(std::vector<int>{1, 2, 3, 4, 5, 6});
  q.shutdown();
  EXPECT_THROW(q.put(7), ShutDown);
  EXPECT_THROW((void)q.try_put(7), ShutDown);
  EXPECT_THROW(q.put_many(std::vector<int>{7}), ShutDown);
  std::vector<int> got;
  got.push_back(q.get());
  got.push_back(q.get(kShort));
  got.push_back(q.get_nowait());
  got.push_back(q.try_get().value());
  for (const int x : q.get_many(10)) got.push_back(x);
  EXPECT_EQ(got, TypeParam::order({1, 2, 3, 4, 5, 6}));
  EXPECT_THROW((void)q.get(), ShutDown);
  EXPECT_THROW((void)q.get(kShort), ShutDown);
  EXPECT_THROW((void)q.get_until(std::chrono::steady_clock::now() + kShort), ShutDown);
  EXPECT_THROW((void)q.get_nowait(), ShutDown);
  EXPECT_THROW((void)q.try_get(), ShutDown);
  EXPECT_THROW((void)q.try_get(kShort), ShutDown);
  EXPECT_THROW((void)q.get_many(3), ShutDown);
  EXPECT_THROW((void)q.get_many(3, kShort), ShutDown);
  EXPECT_EQ(q.unfinished_tasks(), 6u) << "a plain shutdown leaves the task count alone";
}

// Python's semantics: shutdown(immediate=true) settles the tasks of the dropped items only;
// items already got still need their task_done() before join() returns.
TYPED_TEST(TaskQueueTest, ShutdownImmediateSettlesOnlyTheDroppedItems) {
  typename TypeParam::template Q<int> q;
  q.put_many(std::vector<int>{1, 2, 3});
  (void)q.get();
  std::atomic<bool> joined{false};
  Bunch joiner(1, [&](std::size_t) {
    q.join();
    joined.store(true);
  });
  q.shutdown(true);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_TRUE(holds_for(kShort, [&] { return !joined.load(); }))
      << "join() returned while the got item was not done";
  EXPECT_FALSE(q.join(0s));
  q.task_done();
  joiner.join();
  EXPECT_TRUE(joined.load());
  EXPECT_THROW(q.task_done(), ValueError);
}

// ---- put_many / get_many ----------------------------------------------------------------------

TYPED_TEST(TaskQueueTest, GetManyZeroThrowsValueError) {
  typename TypeParam::template Q<int> q;
  q.put(1);
  try {
    (void)q.get_many(0);
    ADD_FAILURE() << "get_many(0) did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ValueError: "));
  }
  EXPECT_THROW((void)q.get_many(0, kShort), ValueError);
  EXPECT_EQ(q.qsize(), 1u);
  q.shutdown(true);
  EXPECT_THROW((void)q.get_many(0), ValueError) << "ValueError comes before ShutDown";
}

TYPED_TEST(TaskQueueTest, PutManyOnABoundedQueueBlocksForRoom) {
  typename TypeParam::template Q<int> q(4);
  const std::vector<int> items = iota(0, 20);
  std::atomic<bool> done{false};
  Bunch producer(1, [&](std::size_t) {
    q.put_many(items);
    done.store(true);
  });
  ASSERT_TRUE(wait_until([&] { return q.full(); }));
  EXPECT_TRUE(holds_for(kShort, [&] { return !done.load() && q.qsize() == 4; }))
      << "put_many overfilled the queue or returned early";
  std::vector<int> got;
  while (got.size() < items.size()) got.push_back(q.get(kGenerous));
  producer.join();
  EXPECT_TRUE(done.load());
  if (TypeParam::kFifo) {
    EXPECT_EQ(got, items);
  } else {
    EXPECT_EQ(sorted(got), items);
  }
  EXPECT_EQ(items, iota(0, 20)) << "put_many(lvalue range) must leave its source alone";
  EXPECT_EQ(q.unfinished_tasks(), 20u);
}

// ---- LIFO / priority order --------------------------------------------------------------------

TEST(LifoQueueTest, LastInFirstOutAcrossInterleavedPutsAndGets) {
  LifoQueue<int> q;
  q.put(1);
  q.put(2);
  EXPECT_EQ(q.get(), 2);
  q.put(3);
  q.put(4);
  EXPECT_EQ(q.get(), 4);
  EXPECT_EQ(q.get(), 3);
  EXPECT_EQ(q.get(), 1);
}

TEST(PriorityQueueTest, NotesExample) {
  PriorityQueue<std::pair<int, std::string>> q;
  q.put({1, "work"});
  q.put({-1, "life"});
  q.put({1, "drink"});
  q.put({-2, "sleep"});
  std::vector<std::pair<int, std::string>> got;
  while (!q.empty()) got.push_back(q.get());
  const std::vector<std::pair<int, std::string>> want{
      {-2, "sleep"}, {-1, "life"}, {1, "drink"}, {1, "work"}};
  EXPECT_EQ(got, want);
}

// Job orders by priority only; seq records arrival so the test can check FIFO among equals.
struct Job {
  int priority;
  int seq;
};
struct ByPriority {
  bool operator()(const Job& a, const Job& b) const { return a.priority < b.priority; }
};

TEST(PriorityQueueTest, EqualPrioritiesLeaveInArrivalOrder) {
  PriorityQueue<Job, ByPriority> q;
  constexpr int kJobs = 3000;
  for (int i = 0; i < kJobs; ++i) q.put(Job{(i * 7) % 5, i});
  std::vector<Job> got;
  while (!q.empty()) got.push_back(q.get());
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kJobs));
  for (std::size_t i = 1; i < got.size(); ++i) {
    const Job& a = got[i - 1];
    const Job& b = got[i];
    ASSERT_TRUE(a.priority < b.priority || (a.priority == b.priority && a.seq < b.seq))
        << "at " << i << ": (" << a.priority << ", #" << a.seq << ") before (" << b.priority
        << ", #" << b.seq << ")";
  }
}

TEST(PriorityQueueTest, EqualPrioritiesStayFifoAcrossInterleavedPutsAndGets) {
  PriorityQueue<Job, ByPriority> q;
  int seq = 0;
  std::vector<int> last_seq(3, -1);
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 7; ++i) q.put(Job{(round + i) % 3, seq++});
    q.put_many(std::vector<Job>{{1, seq}, {1, seq + 1}});
    seq += 2;
    for (const Job& j : q.get_many(5)) {
      EXPECT_GT(j.seq, last_seq[static_cast<std::size_t>(j.priority)]);
      last_seq[static_cast<std::size_t>(j.priority)] = j.seq;
    }
  }
  while (auto j = q.try_get()) {
    EXPECT_GT(j->seq, last_seq[static_cast<std::size_t>(j->priority)]);
    last_seq[static_cast<std::size_t>(j->priority)] = j->seq;
  }
}

TEST(PriorityQueueTest, CompareChoosesWhatComesFirst) {
  PriorityQueue<int, std::greater<>> q;
  for (const int x : {3, 9, 1, 7}) q.put(x);
  EXPECT_EQ(q.get_many(4), (std::vector<int>{9, 7, 3, 1}));
}

// ---- every queue type: batches, move-only items, concurrency ----------------------------------

template <class K>
class AnyQueueTest : public QuiescentTest {};
using AllKinds = ::testing::Types<FifoKind, LifoKind, PriorityKind, SimpleKind>;
TYPED_TEST_SUITE(AnyQueueTest, AllKinds, KindName);

TYPED_TEST(AnyQueueTest, GetTimeoutsOnAnEmptyQueue) {
  typename TypeParam::template Q<int> q;
  EXPECT_LT(elapsed([&] { EXPECT_THROW((void)q.get(0s), Empty); }), kGenerous);
  EXPECT_LT(elapsed([&] { EXPECT_FALSE(q.try_get().has_value()); }), kGenerous);
  EXPECT_GE(elapsed([&] { EXPECT_THROW((void)q.get(kShort), Empty); }), kShort - kSlack);
  EXPECT_GE(elapsed([&] { EXPECT_FALSE(q.try_get(kShort).has_value()); }), kShort - kSlack);
  EXPECT_GE(elapsed([&] {
              EXPECT_THROW((void)q.get_until(std::chrono::steady_clock::now() + kShort), Empty);
            }),
            kShort - kSlack);
  EXPECT_GE(
      elapsed([&] { EXPECT_FALSE(q.try_get_until(std::chrono::system_clock::now() + kShort)); }),
      kShort - kSlack);
  EXPECT_THROW((void)q.get_until(std::chrono::steady_clock::now() - 1s), Empty);
  EXPECT_GE(elapsed([&] { EXPECT_TRUE(q.get_many(4, kShort).empty()); }), kShort - kSlack);
  expect_blocks_until([&] { EXPECT_EQ(q.get(std::chrono::hours::max()), 7); }, [&] { q.put(7); });
  expect_blocks_until([&] { EXPECT_EQ(q.try_get(std::chrono::duration<double>(1e300)), 8); },
                      [&] { q.put(8); });
}

TYPED_TEST(AnyQueueTest, PutManyThenGetManyKeepTheOrder) {
  typename TypeParam::template Q<int> q;
  const std::vector<int> items{4, 1, 5, 2, 3};
  q.put_many(items);
  q.put_many(std::vector<int>{});  // an empty batch is a no-op
  EXPECT_EQ(q.qsize(), 5u);
  EXPECT_EQ(q.get_many(100), TypeParam::order(items));
  if constexpr (TypeParam::kTasks) {
    EXPECT_EQ(q.unfinished_tasks(), 5u);
  }
}

TYPED_TEST(AnyQueueTest, GetManyTakesAtMostMaxAndAtLeastOne) {
  typename TypeParam::template Q<int> q;
  q.put_many(iota(0, 5));
  EXPECT_EQ(q.get_many(2).size(), 2u);
  EXPECT_EQ(q.get_many(2, kShort).size(), 2u);
  EXPECT_EQ(q.get_many(10).size(), 1u) << "takes what is there without waiting for more";
  q.put(9);
  EXPECT_EQ(q.get_many(1), std::vector<int>{9});
  EXPECT_TRUE(q.get_many(3, 0s).empty());
  EXPECT_GE(elapsed([&] { EXPECT_TRUE(q.get_many(3, kShort).empty()); }), kShort - kSlack);
  expect_blocks_until([&] { EXPECT_EQ(q.get_many(8), std::vector<int>{5}); }, [&] { q.put(5); });
}

TYPED_TEST(AnyQueueTest, PutManyWakesEveryBlockedGetter) {
  for (const std::size_t n : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << n << " getters");
    typename TypeParam::template Q<int> q;
    std::atomic<int> sum{0};
    Bunch bunch(n, [&](std::size_t) { sum.fetch_add(q.get(kGenerous)); });
    bunch.wait_started();
    EXPECT_TRUE(holds_for(kShort, [&] { return sum.load() == 0; }));
    q.put_many(iota(1, n));
    bunch.join();
    EXPECT_EQ(sum.load(), static_cast<int>(n * (n + 1) / 2));
  }
}

// Counted counts the copies and move constructions made of it.
struct Counted {
  explicit Counted(int v) : value(v) {}
  Counted(const Counted& o) : value(o.value) { ++copies; }
  Counted(Counted&& o) noexcept : value(o.value) { ++moves; }
  Counted& operator=(const Counted&) = default;
  Counted& operator=(Counted&&) noexcept = default;
  ~Counted() = default;
  bool operator<(const Counted& o) const { return value < o.value; }
  int value;
  static inline int copies = 0;
  static inline int moves = 0;
};

// Rvalues<T> is a range over a vector's elements as rvalues (C++23's views::as_rvalue; a plain
// struct rather than a ranges::subrange so that clang 14 + libstdc++ 12 — clang-tidy — accept it).
template <class T>
struct Rvalues {
  std::vector<T>& items;
  auto begin() const { return std::make_move_iterator(items.begin()); }
  auto end() const { return std::make_move_iterator(items.end()); }
};
// as_rvalues(v) is Rvalues<T>{v}.
template <class T>
Rvalues<T> as_rvalues(std::vector<T>& v) {
  return Rvalues<T>{v};
}

TYPED_TEST(AnyQueueTest, PutManyMovesFromARangeOfRvaluesAndCopiesFromLvalues) {
  typename TypeParam::template Q<Counted> q;
  std::vector<Counted> batch;
  batch.reserve(4);
  for (int i = 0; i < 4; ++i) batch.emplace_back(i);
  Counted::copies = 0;
  q.put_many(as_rvalues(batch));
  EXPECT_EQ(Counted::copies, 0) << "put_many(move iterators) copied";
  q.put_many(batch);  // an lvalue range: copied, the source stays usable
  EXPECT_EQ(Counted::copies, 4);
  EXPECT_EQ(q.qsize(), 8u);
}

TYPED_TEST(AnyQueueTest, PutManyFromAnRvalueVectorMovesTheItems) {
  typename TypeParam::template Q<Counted> q;
  std::vector<Counted> batch;
  batch.reserve(4);
  for (int i = 0; i < 4; ++i) batch.emplace_back(i);
  Counted::copies = 0;
  q.put_many(std::move(batch));
  EXPECT_EQ(Counted::copies, 0) << "put_many(std::move(vector)) copied the items";
  EXPECT_EQ(q.qsize(), 4u);
}

// can_put_many_rvalue<Q, V>: whether q.put_many(std::forward<V>(v)) compiles.
template <class Q, class V>
constexpr bool can_put_many_rvalue = requires(Q& q, V&& v) {
  q.put_many(std::forward<V>(v));
};

// ByPointee orders unique_ptrs by what they point to (it would crash on a moved-from pointer, so
// it also checks that the heap never compares an item that has left).
struct ByPointee {
  bool operator()(const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) const {
    return *a < *b;
  }
};

// MoveOnlyQueueOf<K>::type: K's queue of unique_ptr<int>; for PriorityQueue, ordered by pointee.
template <class K>
struct MoveOnlyQueueOf {
  using type = typename K::template Q<std::unique_ptr<int>>;
};
template <>
struct MoveOnlyQueueOf<PriorityKind> {
  using type = PriorityQueue<std::unique_ptr<int>, ByPointee>;
};

TYPED_TEST(AnyQueueTest, MoveOnlyItems) {
  using Ptr = std::unique_ptr<int>;
  typename MoveOnlyQueueOf<TypeParam>::type q;
  q.put(std::make_unique<int>(1));
  Ptr two = std::make_unique<int>(2);
  q.put(std::move(two));
  q.put_nowait(std::make_unique<int>(3));
  q.put(std::make_unique<int>(4), kShort);
  Ptr five = std::make_unique<int>(5);
  EXPECT_TRUE(q.try_put(std::move(five)));
  EXPECT_EQ(five, nullptr) << "an accepted item is moved from";
  std::vector<Ptr> batch;
  for (int i = 6; i <= 8; ++i) batch.push_back(std::make_unique<int>(i));
  q.put_many(as_rvalues(batch));
  EXPECT_EQ(q.qsize(), 8u);
  std::vector<int> got;
  got.push_back(*q.get());
  got.push_back(*q.get(kShort));
  got.push_back(*q.get_nowait());
  got.push_back(**q.try_get());
  got.push_back(**q.try_get(kShort));
  for (const Ptr& p : q.get_many(10)) got.push_back(*p);
  EXPECT_EQ(got, TypeParam::order(iota(1, 8)));
  // After shutdown a rejected item stays with the caller.
  Ptr keep = std::make_unique<int>(9);
  q.shutdown();
  // NOLINTBEGIN(bugprone-use-after-move,clang-analyzer-cplusplus.Move): a rejected item stays
  EXPECT_THROW((void)q.try_put(std::move(keep)), ShutDown);
  ASSERT_NE(keep, nullptr) << "a rejected item was moved from";
  EXPECT_EQ(*keep, 9);
  // NOLINTEND(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
}

TYPED_TEST(AnyQueueTest, PutManyTakesAnRvalueVectorOfMoveOnlyItems) {
  using Q = typename MoveOnlyQueueOf<TypeParam>::type;
  using Ptr = std::unique_ptr<int>;
  static_assert(can_put_many_rvalue<Q, std::vector<Ptr>>);
  static_assert(!can_put_many_rvalue<Q, std::vector<Ptr>&>, "an lvalue would need copies");
  Q q;
  std::vector<Ptr> batch;
  for (int i = 1; i <= 3; ++i) batch.push_back(std::make_unique<int>(i));
  q.put_many(std::move(batch));
  std::vector<int> got;
  for (const Ptr& p : q.get_many(3)) got.push_back(*p);
  EXPECT_EQ(got, TypeParam::order({1, 2, 3}));
}

// The bounded kinds (SimpleQueue never rejects for room).
template <class K>
class BoundedQueueTest : public QuiescentTest {};
TYPED_TEST_SUITE(BoundedQueueTest, TaskKinds, KindName);

TYPED_TEST(BoundedQueueTest, TryPutLeavesARejectedMoveOnlyItemUntouched) {
  typename MoveOnlyQueueOf<TypeParam>::type q(1);
  q.put(std::make_unique<int>(0));
  auto p = std::make_unique<int>(1);
  const int* const raw = p.get();
  // NOLINTBEGIN(bugprone-use-after-move,clang-analyzer-cplusplus.Move): rejected items stay
  EXPECT_FALSE(q.try_put(std::move(p)));
  EXPECT_FALSE(q.try_put(std::move(p), kShort));
  EXPECT_FALSE(q.try_put_until(std::move(p), std::chrono::steady_clock::now() + kShort));
  ASSERT_EQ(p.get(), raw) << "a rejected item was moved from";
  EXPECT_EQ(*q.get(), 0);
  EXPECT_TRUE(q.try_put(std::move(p)));
  EXPECT_EQ(p, nullptr);
  // NOLINTEND(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
  EXPECT_EQ(*q.get(), 1);
}

TYPED_TEST(AnyQueueTest, AnItemIsReleasedAsSoonAsItLeaves) {  // test_references
  typename TypeParam::template Q<std::shared_ptr<int>> q;
  for (int i = 0; i < 20; ++i) q.put(std::make_shared<int>(i));
  for (int i = 0; i < 20; ++i) {
    std::weak_ptr<int> w;
    {
      std::shared_ptr<int> p = q.get();
      w = p;
      EXPECT_EQ(p.use_count(), 1) << "the queue still holds a reference";
    }
    EXPECT_TRUE(w.expired());
  }
}

// produce_consume(q, n, per_producer): n producers put distinct values (some one by one, some in
// put_many batches) while n consumers take them (some by get, some by get_many); the last producer
// shuts the queue down and consumers stop on ShutDown. Checks each value arrived exactly once,
// that a payload slot written before put() is visible after get() (the happens-before edge, which
// TSan checks), and for FIFO queues that every consumer saw each producer's values in order.
template <class Q>
void produce_consume(Q& q, std::size_t n, std::size_t per_producer, bool fifo) {
  const std::size_t total = n * per_producer;
  std::vector<std::size_t> payload(total, 0);  // plain: ordered only by the queue
  std::vector<std::atomic<int>> seen(total);
  std::atomic<std::size_t> producers_left{n}, out_of_order{0};
  std::atomic<bool> stuck{false};
  std::atomic<std::uint64_t> sum{0};
  Bunch bunch(
      2 * n,
      [&](std::size_t id) {
        if (id < n) {  // producer `id` owns values [id * per_producer, (id + 1) * per_producer)
          const std::size_t first = id * per_producer;
          try {
            for (std::size_t i = 0; i < per_producer;) {
              if (id % 2 == 0) {
                payload[first + i] = first + i + 1;
                q.put(first + i, kGenerous);
                ++i;
              } else {
                std::vector<std::size_t> chunk;
                for (; i < per_producer && chunk.size() < 8; ++i) {
                  payload[first + i] = first + i + 1;
                  chunk.push_back(first + i);
                }
                q.put_many(chunk);
              }
            }
          } catch (const QueueError& e) {  // Full: consumers stalled; ShutDown: a consumer gave up
            ADD_FAILURE() << "producer " << id << ": " << e.what();
          }
          if (producers_left.fetch_sub(1) == 1) q.shutdown();
        } else {
          std::vector<std::size_t> last(n, std::numeric_limits<std::size_t>::max());
          auto take = [&](std::size_t v) {
            if (payload[v] != v + 1) ADD_FAILURE() << "payload of " << v << " not visible";
            seen[v].fetch_add(1, std::memory_order_relaxed);
            sum.fetch_add(v, std::memory_order_relaxed);
            const std::size_t p = v / per_producer;
            if (last[p] != std::numeric_limits<std::size_t>::max() && v <= last[p]) {
              out_of_order.fetch_add(1);
            }
            last[p] = v;
          };
          try {
            for (;;) {
              if (id % 2 == 0) {
                take(q.get(kGenerous));
              } else {
                auto batch = q.get_many(8, kGenerous);
                if (batch.empty()) throw Empty();
                for (const std::size_t v : batch) take(v);
              }
            }
          } catch (const ShutDown&) {
          } catch (const Empty&) {
            stuck.store(true);
            q.shutdown(true);  // release the producers instead of leaving them blocked
          }
        }
      },
      kLongRun);  // every put and get has its own kGenerous deadline (Full / Empty)
  bunch.join();
  ASSERT_FALSE(stuck.load()) << "a consumer waited kGenerous for an item: lost wake-up";
  std::size_t missing = 0, duplicated = 0;
  for (const auto& s : seen) {
    if (s.load() == 0) ++missing;
    if (s.load() > 1) ++duplicated;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(sum.load(), static_cast<std::uint64_t>(total) * (total - 1) / 2);
  if (fifo) {
    EXPECT_EQ(out_of_order.load(), 0u) << "a consumer saw a producer's values reordered";
  }
  EXPECT_TRUE(q.empty());
}

TYPED_TEST(AnyQueueTest, ProducersAndConsumersMoveEveryItemOnce) {
  for (const std::size_t n : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << n << " producers and " << n << " consumers");
    const std::size_t per_producer = 20'000 / kScale / n;
    {
      typename TypeParam::template Q<std::size_t> q;
      produce_consume(q, n, per_producer, TypeParam::kFifo);
    }
    if constexpr (TypeParam::kBounded) {
      SCOPED_TRACE("bounded at 4");
      typename TypeParam::template Q<std::size_t> q(4);
      produce_consume(q, n, per_producer, TypeParam::kFifo);
    }
  }
}

// ---- linearizable FIFO order across threads ---------------------------------------------------
// Python's queue.Queue is linearizable: if one put() returns before another starts, its item
// leaves first, whichever threads made them. Checked from outside with one shared clock: a put
// reads the clock before the call (put_start) and advances it after returning (put_end); a get
// likewise (get_start, get_end). put_end(A) < put_start(B) proves put A returned before put B
// began (B's read saw A's later increment); get_end(B) < get_start(A) proves the get that
// returned B finished before the get that returned A began. A linearizable FIFO never shows both
// for one pair, so the check cannot fail spuriously; per-producer sub-queues (moodycamel's
// design) do show it.
struct Stamps {
  std::uint64_t put_start = 0, put_end = 0, get_start = 0, get_end = 0;
};

// fifo_violations(stamps) counts items B for which some A has put_end(A) < put_start(B) and
// get_end(B) < get_start(A), in O(n log n): B in put_start order, the A with put_end below it
// added as the sweep passes them, keeping the latest get_start among them.
std::size_t fifo_violations(const std::vector<Stamps>& st) {
  std::vector<std::size_t> by_put_end(st.size()), by_put_start(st.size());
  for (std::size_t i = 0; i < st.size(); ++i) by_put_end[i] = by_put_start[i] = i;
  std::ranges::sort(by_put_end, {}, [&](std::size_t i) { return st[i].put_end; });
  std::ranges::sort(by_put_start, {}, [&](std::size_t i) { return st[i].put_start; });
  std::size_t violations = 0, next_a = 0;
  std::optional<std::uint64_t> latest_get_start;
  for (const std::size_t b : by_put_start) {
    for (; next_a < by_put_end.size() && st[by_put_end[next_a]].put_end < st[b].put_start;
         ++next_a) {
      const std::uint64_t gs = st[by_put_end[next_a]].get_start;
      if (!latest_get_start || gs > *latest_get_start) latest_get_start = gs;
    }
    if (latest_get_start && st[b].get_end < *latest_get_start) ++violations;
  }
  return violations;
}

TEST(FifoOrderCheckTest, FindsAnItemOvertakenByALaterPutAndAcceptsOverlaps) {
  // A put [0, 1], got [6, 7]; B put [2, 3], got [4, 5]: B left first although A's put was done.
  EXPECT_EQ(fifo_violations({{0, 1, 6, 7}, {2, 3, 4, 5}}), 1u);
  // Overlapping puts may leave in either order; so may items whose gets overlap.
  EXPECT_EQ(fifo_violations({{0, 3, 6, 7}, {2, 4, 4, 5}}), 0u);
  EXPECT_EQ(fifo_violations({{0, 1, 4, 7}, {2, 3, 5, 6}}), 0u);
  EXPECT_EQ(fifo_violations({{0, 1, 4, 5}, {2, 3, 6, 7}}), 0u);
}

// linearizable_run(q, producers, consumers, per_producer): items are indices into the stamps.
template <class Q>
std::size_t linearizable_run(Q& q, std::size_t producers, std::size_t consumers,
                             std::size_t per_producer) {
  const std::size_t total = producers * per_producer;
  std::vector<Stamps> st(total);
  std::atomic<std::uint64_t> clock{0};
  std::atomic<std::size_t> claimed{0};
  Bunch bunch(producers + consumers, [&](std::size_t id) {
    if (id < producers) {
      for (std::size_t i = 0; i < per_producer; ++i) {
        const std::size_t item = id * per_producer + i;
        st[item].put_start = clock.load();
        q.put(item, kGenerous);
        st[item].put_end = clock.fetch_add(1);
      }
      return;
    }
    while (claimed.fetch_add(1) < total) {
      const std::uint64_t start = clock.load();
      const std::size_t item = q.get(kGenerous);
      st[item].get_end = clock.fetch_add(1);
      st[item].get_start = start;
    }
  });
  bunch.join();
  return fifo_violations(st);
}

template <class K>
class FifoQueueTest : public QuiescentTest {};
using FifoKinds = ::testing::Types<FifoKind, SimpleKind>;
TYPED_TEST_SUITE(FifoQueueTest, FifoKinds, KindName);

TYPED_TEST(FifoQueueTest, APutThatReturnedFirstIsGotFirstWhicheverThreadsMadeThem) {
  for (const std::size_t n : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << n << " producers and " << n << " consumers");
    const std::size_t per_producer = 40'000 / kScale / n;
    {
      typename TypeParam::template Q<std::size_t> q;
      EXPECT_EQ(linearizable_run(q, n, n, per_producer), 0u);
    }
    if constexpr (TypeParam::kBounded) {
      SCOPED_TRACE("bounded at 16");
      typename TypeParam::template Q<std::size_t> q(16);
      EXPECT_EQ(linearizable_run(q, n, n, per_producer), 0u);
    }
  }
}

// Millions of items through the unbounded lock-free engine (and the bounded ring): conserved,
// each producer's in order, with single and batched puts and gets.
TYPED_TEST(FifoQueueTest, StressMillionsOfItems) {
  const std::size_t n = 4;
  const std::size_t per_producer = 2'000'000 / kScale / n;
  {
    typename TypeParam::template Q<std::size_t> q;
    produce_consume(q, n, per_producer, true);
  }
  if constexpr (TypeParam::kBounded) {
    SCOPED_TRACE("bounded at 1024");
    typename TypeParam::template Q<std::size_t> q(1024);
    produce_consume(q, n, per_producer, true);
  }
}

// ---- the lock-free engine: a bounded FIFO Queue of nothrow-movable items ---------------------
// Queue<T>(maxsize) with 0 < maxsize <= detail::kMaxRingSlots runs on detail::RingQueue; the
// typed tests above already cover it (FifoKind at kQueueSize = 5, bounded at 4). These add what is
// particular to it: capacity 1 (where "holds item p" and "free for put p + 1" must differ),
// capacities that are not powers of two over many laps, the fallback above the slot limit, task
// accounting without a lock, and the destructor freeing items across the wrap.

class RingQueueTest : public QuiescentTest {};

TEST_F(RingQueueTest, CapacityOneHandsItemsOverOneByOne) {
  Queue<int> q(1);
  q.put(1);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(2), Full);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get(), 1);
  EXPECT_THROW((void)q.get_nowait(), Empty);
  constexpr int kItems = static_cast<int>(20'000 / kScale);
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) q.put(i, kGenerous);
  });
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(q.get(kGenerous), i);
  producer.join();
  EXPECT_TRUE(q.empty());
}

TEST_F(RingQueueTest, CapacitiesThatAreNotPowersOfTwoWrapManyLaps) {
  for (const std::size_t capacity : {1u, 2u, 3u, 7u, 1000u}) {
    for (const std::size_t n : {1u, 3u}) {
      SCOPED_TRACE(::testing::Message() << "capacity " << capacity << ", " << n << "x" << n);
      Queue<std::size_t> q(capacity);
      produce_consume(q, n, 30'000 / kScale / n, true);
    }
  }
}

TEST_F(RingQueueTest, ABoundAboveTheSlotLimitIsStillExact) {
  const std::size_t bound = detail::kMaxRingSlots + 1;
  Queue<int> q(bound);
  for (std::size_t i = 0; i < bound; ++i) q.put_nowait(static_cast<int>(i));
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(-1), Full);
  EXPECT_EQ(q.qsize(), bound);
  EXPECT_EQ(q.get(), 0);
  q.put_nowait(-1);
  EXPECT_EQ(q.unfinished_tasks(), bound + 1);
}

TEST_F(RingQueueTest, TaskDoneFromManyConsumersSettlesJoinExactly) {
  for (const std::size_t n : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << n << " producers and " << n << " consumers");
    const std::size_t per_producer = 20'000 / kScale / n;
    Queue<std::size_t> q(8);
    std::atomic<std::size_t> taken{0};
    Bunch producers(n, [&](std::size_t) {
      for (std::size_t i = 0; i < per_producer; ++i) q.put(i, kGenerous);
    });
    Bunch consumers(n, [&](std::size_t) {
      while (taken.fetch_add(1) < n * per_producer) {
        (void)q.get(kGenerous);
        q.task_done();
      }
    });
    EXPECT_TRUE(q.join(kGenerous)) << "join() missed the last task_done()";
    producers.join();
    consumers.join();
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    // Over-calls racing each other: every one throws and the count stays at zero.
    std::atomic<int> errors{0};
    Bunch extra(n, [&](std::size_t) {
      try {
        q.task_done();
      } catch (const ValueError&) {
        errors.fetch_add(1);
      }
    });
    extra.join();
    EXPECT_EQ(errors.load(), static_cast<int>(n));
    EXPECT_EQ(q.unfinished_tasks(), 0u);
  }
}

TEST_F(RingQueueTest, TheDestructorFreesTheItemsLeftAcrossTheWrap) {
  auto token = std::make_shared<int>(7);
  {
    Queue<std::shared_ptr<int>> q(3);
    for (int lap = 0; lap < 4; ++lap) {  // move the positions past the end of the slot array
      q.put(token);
      (void)q.get();
    }
    q.put(token);
    q.put(token);
    EXPECT_EQ(token.use_count(), 3);
  }
  EXPECT_EQ(token.use_count(), 1) << "an item left in the queue was not destroyed";
}

// ---- a T whose move constructor throws (CPython's FailingQueueTest) --------------------------

// MoveBomb is what Fragile's move constructor throws.
struct MoveBomb : std::runtime_error {
  MoveBomb() : std::runtime_error("MoveBomb") {}
};

// Fragile holds an int. After arm(k) on a thread, the k-th move construction of a Fragile on that
// thread throws MoveBomb before touching its source; copies never throw. A moved-from Fragile
// holds kMovedFrom, so a duplicated shell would show up.
class Fragile {
 public:
  static constexpr int kMovedFrom = -1000;
  explicit Fragile(int v) : value(v) {}
  Fragile(const Fragile&) = default;
  // Throwing is the point of this type.
  // NOLINTNEXTLINE(performance-noexcept-move-constructor,bugprone-exception-escape)
  Fragile(Fragile&& other) : value(other.value) {
    if (countdown_ > 0 && --countdown_ == 0) throw MoveBomb();
    other.value = kMovedFrom;
  }
  Fragile& operator=(const Fragile&) = default;
  Fragile& operator=(Fragile&& other) noexcept {
    value = other.value;
    other.value = kMovedFrom;
    return *this;
  }
  ~Fragile() = default;

  static void arm(int k) { countdown_ = k; }
  static void disarm() { countdown_ = 0; }

  int value;

 private:
  static thread_local inline int countdown_ = 0;
};

template <class K>
class FragileQueueTest : public QuiescentTest {};
// Not PriorityQueue: it static_asserts a nothrow-movable T.
using FragileKinds = ::testing::Types<FifoKind, LifoKind, SimpleKind>;
TYPED_TEST_SUITE(FragileQueueTest, FragileKinds, KindName);

// failing_queue_test(q): CPython's failing_queue_test on a queue bounded at kQueueSize, with a
// throwing move in place of FailingQueue's failing _put / _get.
template <class Q>
void failing_queue_test(Q& q) {
  constexpr int kOops = 100, kLast = 101, kFull = 102, kFirst = 103, kEmptyItem = 104;
  ASSERT_EQ(q.qsize(), 0u) << "call with an empty queue";
  for (int i = 0; i < static_cast<int>(kQueueSize) - 1; ++i) q.put(Fragile(i));
  // A failing non-blocking put, a failing timed put.
  Fragile::arm(1);
  EXPECT_THROW(q.put_nowait(Fragile(kOops)), MoveBomb);
  Fragile::arm(1);
  EXPECT_THROW(q.put(Fragile(kOops), 100ms), MoveBomb);
  Fragile::disarm();
  EXPECT_EQ(q.qsize(), kQueueSize - 1);
  q.put(Fragile(kLast));
  EXPECT_TRUE(q.full());
  // A failing blocking put: blocked on the full queue, released by a get, then fails.
  expect_blocks_until(
      [&] {
        Fragile::arm(1);
        EXPECT_THROW(q.put(Fragile(kFull)), MoveBomb);
        Fragile::disarm();
      },
      [&] { (void)q.get(); });
  EXPECT_EQ(q.qsize(), kQueueSize - 1) << "the put failed, the get succeeded";
  q.put(Fragile(kLast));
  // A failing timed blocking put.
  expect_blocks_until(
      [&] {
        Fragile::arm(1);
        EXPECT_THROW(q.put(Fragile(kFull), 10s), MoveBomb);
        Fragile::disarm();
      },
      [&] { (void)q.get(); });
  q.put(Fragile(kLast));
  EXPECT_TRUE(q.full());
  (void)q.get();
  EXPECT_FALSE(q.full());
  q.put(Fragile(kLast));
  EXPECT_TRUE(q.full());
  expect_blocks_until([&] { q.put(Fragile(kFull)); }, [&] { (void)q.get(); });
  for (std::size_t i = 0; i < kQueueSize; ++i) (void)q.get();
  EXPECT_EQ(q.qsize(), 0u);
  // A failing get leaves the item queued, untimed and timed.
  q.put(Fragile(kFirst));
  Fragile::arm(1);
  EXPECT_THROW((void)q.get(), MoveBomb);
  EXPECT_EQ(q.qsize(), 1u);
  Fragile::arm(1);
  EXPECT_THROW((void)q.get(100ms), MoveBomb);
  Fragile::disarm();
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get().value, kFirst);
  EXPECT_EQ(q.qsize(), 0u);
  // A failing blocking get: released by a put, then fails; the put item stays.
  expect_blocks_until(
      [&] {
        Fragile::arm(1);
        EXPECT_THROW((void)q.get(), MoveBomb);
        Fragile::disarm();
      },
      [&] { q.put(Fragile(kEmptyItem)); });
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get().value, kEmptyItem);
  EXPECT_EQ(q.qsize(), 0u);
}

template <class K>
class BoundedFragileQueueTest : public QuiescentTest {};
using BoundedFragileKinds = ::testing::Types<FifoKind, LifoKind>;
TYPED_TEST_SUITE(BoundedFragileQueueTest, BoundedFragileKinds, KindName);

TYPED_TEST(BoundedFragileQueueTest, FailingQueue) {  // test_failing_queue: twice on one queue
  typename TypeParam::template Q<Fragile> q(kQueueSize);
  failing_queue_test(q);
  failing_queue_test(q);
  EXPECT_EQ(q.unfinished_tasks(), 22u) << "11 puts succeeded per round; only those count as tasks";
}

// drain(q) takes every item left, with no move armed, and returns their values.
template <class Q>
std::vector<int> drain(Q& q) {
  std::vector<int> out;
  while (auto f = q.try_get()) out.push_back(f->value);
  return out;
}

// check_throwing_moves<K>(op, added): for k = 1..5, fills a queue with {1, 2, 3}, arms the k-th
// move, runs op(q) — which returns the values it took out — and checks that the items taken plus
// the items left are exactly {1, 2, 3} plus `added` (the values op puts), each once; that a
// throwing single-item op left the queue as it was; and that qsize() and unfinished_tasks() agree
// with what is really queued.
template <class K, class Op>
void check_throwing_moves(Op op, const std::vector<int>& added, bool single_item) {
  for (int k = 1; k <= 5; ++k) {
    SCOPED_TRACE(::testing::Message() << "move #" << k << " throws");
    typename K::template Q<Fragile> q;
    for (const int v : {1, 2, 3}) q.put(Fragile(v));
    std::vector<int> taken;
    bool threw = false;
    Fragile::arm(k);
    try {
      taken = op(q);
    } catch (const MoveBomb&) {
      threw = true;
    }
    Fragile::disarm();
    const std::size_t reported = q.qsize();
    std::size_t tasks = 0;
    if constexpr (K::kTasks) tasks = q.unfinished_tasks();
    const std::vector<int> left = drain(q);
    EXPECT_EQ(reported, left.size()) << "qsize() disagrees with what is queued";
    if constexpr (K::kTasks) {
      EXPECT_EQ(tasks, left.size() + taken.size())
          << "unfinished_tasks() disagrees with the items that exist";
    }
    std::vector<int> all = taken;
    all.insert(all.end(), left.begin(), left.end());
    all = sorted(all);
    for (const int v : all) EXPECT_NE(v, Fragile::kMovedFrom) << "a moved-from shell surfaced";
    std::vector<int> everything{1, 2, 3};
    everything.insert(everything.end(), added.begin(), added.end());
    if (threw && single_item) {
      EXPECT_TRUE(taken.empty());
      EXPECT_EQ(sorted(left), (std::vector<int>{1, 2, 3}))
          << "a throwing call changed the queue (an item was lost or added)";
    } else if (!threw) {
      EXPECT_EQ(all, sorted(everything)) << "items lost or duplicated";
    } else {  // a throwing batch: a prefix of it may have gone in, nothing may be lost
      EXPECT_TRUE(std::ranges::includes(all, std::vector<int>{1, 2, 3})) << "an item was lost";
      EXPECT_TRUE(std::ranges::includes(sorted(everything), all)) << "an item was duplicated";
    }
  }
}

// One value taken by a get form, as a vector.
template <class F>
std::vector<int> one(F&& f) {
  Fragile item = f();
  return {item.value};
}

TYPED_TEST(FragileQueueTest, ThrowingMoveInsideTryGetLosesNothing) {
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        auto item = q.try_get();
        return std::vector<int>{item.value().value};
      },
      {}, true);
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        auto item = q.try_get(kShort);
        return std::vector<int>{item.value().value};
      },
      {}, true);
}

TYPED_TEST(FragileQueueTest, ThrowingMoveInsideGetLosesNothing) {
  check_throwing_moves<TypeParam>([](auto& q) { return one([&] { return q.get(); }); }, {}, true);
  check_throwing_moves<TypeParam>([](auto& q) { return one([&] { return q.get(kShort); }); }, {},
                                  true);
  check_throwing_moves<TypeParam>([](auto& q) { return one([&] { return q.get_nowait(); }); }, {},
                                  true);
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        return one([&] { return q.get_until(std::chrono::steady_clock::now() + kShort); });
      },
      {}, true);
}

TYPED_TEST(FragileQueueTest, ThrowingMoveInsideGetManyLosesNothing) {
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        std::vector<int> values;
        for (const Fragile& f : q.get_many(3)) values.push_back(f.value);
        return values;
      },
      {}, false);
}

TYPED_TEST(FragileQueueTest, ThrowingMoveInsidePutLeavesTheQueueUnchanged) {
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        q.put(Fragile(4));
        return std::vector<int>{};
      },
      {4}, true);
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        q.put(Fragile(4), kShort);
        return std::vector<int>{};
      },
      {4}, true);
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        q.put_nowait(Fragile(4));
        return std::vector<int>{};
      },
      {4}, true);
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        Fragile item(4);
        try {
          EXPECT_TRUE(q.try_put(std::move(item)));
        } catch (const MoveBomb&) {
          EXPECT_EQ(item.value, 4) << "try_put lost the caller's item";
          throw;
        }
        return std::vector<int>{};
      },
      {4}, true);
}

TYPED_TEST(FragileQueueTest, ThrowingMoveInsidePutManyKeepsTheQueueConsistent) {
  check_throwing_moves<TypeParam>(
      [](auto& q) {
        const std::vector<Fragile> batch{Fragile(4), Fragile(5), Fragile(6)};
        q.put_many(batch);
        return std::vector<int>{};
      },
      {4, 5, 6}, false);
}

// get_many's documented answer to a throwing move: the items taken before it are returned, the
// exception is dropped, and the item whose move threw stays queued for the next get; with nothing
// taken yet, the exception propagates.
TYPED_TEST(FragileQueueTest, GetManyReturnsWhatItTookBeforeAThrowingMove) {
  typename TypeParam::template Q<Fragile> q;
  for (const int v : {1, 2, 3}) q.put(Fragile(v));
  const std::vector<int> order = TypeParam::order({1, 2, 3});
  std::vector<Fragile> got;
  Fragile::arm(2);
  EXPECT_NO_THROW(got = q.get_many(3));
  Fragile::disarm();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, order[0]);
  EXPECT_EQ(q.qsize(), 2u);
  Fragile::arm(1);
  EXPECT_THROW((void)q.get_many(3), MoveBomb);
  Fragile::disarm();
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.get().value, order[1]) << "the item whose move threw comes next";
  if constexpr (TypeParam::kTasks) {
    EXPECT_EQ(q.unfinished_tasks(), 3u);
  }
}

// The header's promise behind all of the above: an item leaves the queue by exactly one move
// construction, straight into what the caller gets (for the deque and vector containers; a heap
// moves items around inside pop()). A put of a temporary moves it in once (deque only: a vector
// may move its items when it grows).
TYPED_TEST(FragileQueueTest, EachGetMovesTheItemOutOnce) {
  typename TypeParam::template Q<Counted> q;
  for (int i = 0; i < 6; ++i) q.put(Counted(i));
  Counted::copies = 0;
  Counted::moves = 0;
  q.put(Counted(6));
  if constexpr (TypeParam::kFifo) {
    EXPECT_EQ(Counted::moves, 1) << "put(temporary)";
  }
  Counted::moves = 0;
  { const Counted item = q.get(); }
  EXPECT_EQ(Counted::moves, 1) << "get()";
  Counted::moves = 0;
  { const Counted item = q.get(kShort); }
  EXPECT_EQ(Counted::moves, 1) << "get(timeout)";
  Counted::moves = 0;
  { const Counted item = q.get_nowait(); }
  EXPECT_EQ(Counted::moves, 1) << "get_nowait()";
  Counted::moves = 0;
  EXPECT_TRUE(q.try_get().has_value());
  EXPECT_EQ(Counted::moves, 1) << "try_get()";
  Counted::moves = 0;
  { const std::vector<Counted> items = q.get_many(3); }
  EXPECT_EQ(Counted::moves, 3) << "get_many(3)";
  EXPECT_EQ(Counted::copies, 0);
}

// The consequence for a blocked getter: the items a throwing put_many() left queued must wake it.
TYPED_TEST(FragileQueueTest, ThrowingMoveInsidePutManyStillWakesABlockedGetter) {
  typename TypeParam::template Q<Fragile> q;
  std::atomic<bool> received{false};
  Bunch getter(1, [&](std::size_t) {
    const auto item = q.try_get(kGenerous * 3 / 2);
    received.store(item.has_value());
  });
  getter.wait_started();
  EXPECT_TRUE(holds_for(kShort, [&] { return !received.load(); }));
  const std::vector<Fragile> batch{Fragile(4), Fragile(5)};
  Fragile::arm(2);  // item 4 goes in, item 5's move throws
  EXPECT_THROW(q.put_many(batch), MoveBomb);
  Fragile::disarm();
  EXPECT_TRUE(wait_until([&] { return received.load(); }))
      << "the getter was not woken for the item put_many() left queued";
  q.put(Fragile(6));  // wakes it in any case, so the test ends promptly
  getter.join();
}

// ---- SimpleQueue (CPython's BaseSimpleQueueTest) ----------------------------------------------

class SimpleQueueTest : public QuiescentTest {};

// has_task_accounting<Q>: whether Q offers task_done() / join().
template <class Q>
constexpr bool has_task_accounting = requires(Q& q) {
  q.task_done();
  q.join();
};
static_assert(!has_task_accounting<SimpleQueue<int>>, "SimpleQueue has no task accounting");
static_assert(has_task_accounting<Queue<int>>);

TEST_F(SimpleQueueTest, Basic) {  // test_basic
  SimpleQueue<int> q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.maxsize(), 0u);
  q.put(1);
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.qsize(), 1u);
  q.put(2);
  q.put_nowait(3);
  q.put(4);
  EXPECT_FALSE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 4u);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.qsize(), 3u);
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.try_get(), 3);  // get(block=False)
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get(100ms), 4);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_THROW((void)q.get(1ms), Empty);
  EXPECT_THROW((void)q.get_nowait(), Empty);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
}

// test_negative_timeout_raises_exception: concur polls instead (see TaskQueueTest).
TEST_F(SimpleQueueTest, NegativeTimeoutPolls) {
  SimpleQueue<int> q;
  q.put(1);
  EXPECT_EQ(q.get(-1s), 1);
  EXPECT_THROW((void)q.get(-1s), Empty);
}

TEST_F(SimpleQueueTest, IsUnbounded) {
  SimpleQueue<int> q;
  for (int i = 0; i < 100'000; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 100'000u);
  EXPECT_TRUE(q.try_put(0));
}

// feed_and_consume(threads, inputs, consume): CPython's run_threads — `threads` feeders pop
// values from a shared sequence and put them (sleeping now and then), each putting a sentinel
// when the sequence is exhausted; `threads` consumers run consume(q) until they meet a sentinel.
constexpr int kSentinel = -1;

std::vector<int> feed_and_consume(std::size_t threads, std::size_t inputs,
                                  const std::function<int(SimpleQueue<int>&)>& take) {
  SimpleQueue<int> q;
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  std::vector<int> results;
  Bunch bunch(2 * threads, [&](std::size_t id) {
    if (id < threads) {
      std::uint32_t rnd = static_cast<std::uint32_t>(id) * 2654435761u + 42u;
      for (;;) {
        const std::size_t i = next.fetch_add(1);
        if (i >= inputs) {
          q.put(kSentinel);
          return;
        }
        q.put(static_cast<int>(i));
        rnd = rnd * 1664525u + 1013904223u;
        if ((rnd >> 31) != 0) std::this_thread::sleep_for(std::chrono::microseconds(rnd % 200));
      }
    }
    for (;;) {
      const int v = take(q);
      if (v == kSentinel) return;
      std::scoped_lock lk(mu);
      results.push_back(v);
    }
  });
  bunch.join();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
  return results;
}

TEST_F(SimpleQueueTest, OneFeederOneConsumerKeepOrder) {  // test_order
  const auto results =
      feed_and_consume(1, 100, [](SimpleQueue<int>& q) { return q.get(kGenerous); });
  EXPECT_EQ(results, iota(0, 100));
}

// The three consumers of test_many_threads, _nonblock and _timeout.
int take_blocking(SimpleQueue<int>& q) { return q.get(kGenerous); }
int take_nonblocking(SimpleQueue<int>& q) {
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  for (;;) {
    if (auto v = q.try_get()) return *v;
    if (std::chrono::steady_clock::now() > deadline) throw Empty();
    std::this_thread::sleep_for(std::chrono::microseconds(10));
  }
}
int take_tiny_timeouts(SimpleQueue<int>& q) {
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  for (;;) {
    try {
      return q.get(std::chrono::microseconds(10));
    } catch (const Empty&) {
      if (std::chrono::steady_clock::now() > deadline) throw;
    }
  }
}

class SimpleQueueThreads : public QuiescentTest,
                           public ::testing::WithParamInterface<std::size_t> {};
// thread_counts_and_50(): kThreadCounts plus CPython's N = 50.
std::vector<std::size_t> thread_counts_and_50() {
  std::vector<std::size_t> counts = kThreadCounts;
  counts.push_back(50);
  return counts;
}
INSTANTIATE_TEST_SUITE_P(Threads, SimpleQueueThreads, ::testing::ValuesIn(thread_counts_and_50()));

TEST_P(SimpleQueueThreads, ManyThreads) {  // test_many_threads
  EXPECT_EQ(sorted(feed_and_consume(GetParam(), 10'000 / kScale, take_blocking)),
            iota(0, 10'000 / kScale));
}

TEST_P(SimpleQueueThreads, ManyThreadsNonblock) {  // test_many_threads_nonblock
  EXPECT_EQ(sorted(feed_and_consume(GetParam(), 10'000 / kScale, take_nonblocking)),
            iota(0, 10'000 / kScale));
}

TEST_P(SimpleQueueThreads, ManyThreadsTimeout) {  // test_many_threads_timeout
  EXPECT_EQ(sorted(feed_and_consume(GetParam(), 1'000, take_tiny_timeouts)), iota(0, 1'000));
}

// test_reentrancy (bpo-14976: put() called from a callback that runs at an arbitrary moment). The
// C++ analogue: an item whose destructor puts into the same queue. Items leave the queue by move
// and the caller destroys them after get() released the lock, so the nested put neither
// deadlocks nor reorders anything.
TEST_F(SimpleQueueTest, PutFromAnItemDestructor) {
  // Chain: destroying a live link puts the next number into the queue it belongs to.
  struct Link {
    SimpleQueue<Link>* q;
    int value;
    Link(SimpleQueue<Link>* queue, int v) : q(queue), value(v) {}
    Link(Link&& o) noexcept : q(std::exchange(o.q, nullptr)), value(o.value) {}
    Link& operator=(Link&&) = delete;
    ~Link() {  // NOLINT(bugprone-exception-escape): the queue is never shut down, put() succeeds
      if (q != nullptr && value < 10'000) q->put(Link(q, value + 1));
    }
  };
  SimpleQueue<Link> q;
  q.put(Link(&q, 0));
  std::vector<int> results;
  while (results.size() <= 10'000) {
    Link l = q.get(kGenerous);  // destroyed at the end of the iteration: puts value + 1
    results.push_back(l.value);
  }
  EXPECT_EQ(results, iota(0, 10'001));
  EXPECT_TRUE(q.empty());
}

TEST_F(SimpleQueueTest, ShutdownBehavesAsForQueue) {
  SimpleQueue<int> q;
  q.put(1);
  q.put(2);
  q.shutdown();
  EXPECT_THROW(q.put(3), ShutDown);
  EXPECT_EQ(q.get(), 1);
  q.shutdown(true);
  EXPECT_THROW((void)q.get(), ShutDown) << "immediate after plain drops the rest";
  SimpleQueue<int> idle;
  expect_blocks_until([&] { EXPECT_THROW((void)idle.get(), ShutDown); }, [&] { idle.shutdown(); });
}

}  // namespace
