// Tests for concur/detail/segment_queue.hpp: SegmentQueue, the lock-free engine of unbounded FIFO
// queues, driven directly. Covered: the slots-per-segment rule; FIFO order and qsize() on both
// sides of every segment boundary (single puts and gets, put_many runs that end exactly on, just
// before and across a boundary, take_many runs likewise); items destroyed once, when taken or by
// the destructor across segments (ASan's leak check covers the segments); the spare segment
// reused; task accounting; shutdown(immediate) racing producers leaves nothing queued and nothing
// unfinished; and a stress run with 32-slot segments (a link or a sweep every 32 items) swept
// over kThreadCounts, checking conservation and per-producer order while sweeps and the kDestroy
// hand-off run constantly (TSan checks the reclamation's happens-before edges).
#include "concur/detail/segment_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur::testing;
using concur::ShutDown;
using concur::ValueError;
using concur::detail::Deadline;
using concur::detail::SegmentQueue;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 10;  // sanitizers slow every operation ~10x
#else
constexpr std::size_t kScale = 1;
#endif

// Big is large enough that a segment holds only 32 slots.
struct Big {
  std::size_t value = 0;
  unsigned char pad[1016] = {};
  explicit Big(std::size_t v = 0) noexcept : value(v) {}
};

const Deadline kNow = Deadline::after(std::chrono::seconds(0));

template <class T, bool kTasks = false>
std::optional<T> get(SegmentQueue<T, kTasks>& q, const Deadline& deadline = kNow) {
  auto t = q.take(deadline);
  if (!t) return std::nullopt;
  T v = std::move(*t->value);
  q.release(*t);
  return v;
}

template <class T, bool kTasks = false>
void put(SegmentQueue<T, kTasks>& q, T v) {
  ASSERT_TRUE(q.put(v, Deadline::infinite()));
}

class SegmentQueueTest : public QuiescentTest {};

TEST_F(SegmentQueueTest, SlotsPerSegmentArePowersOfTwoBetween32And1024) {
  EXPECT_EQ((SegmentQueue<int, false>::kSlots), 1024u);
  EXPECT_EQ((SegmentQueue<std::size_t, false>::kSlots), 1024u);
  EXPECT_EQ((SegmentQueue<Big, false>::kSlots), 32u);
  struct Mid {
    unsigned char b[100];
  };
  constexpr auto mid = SegmentQueue<Mid, false>::kSlots;
  EXPECT_EQ(mid & (mid - 1), 0u);
  EXPECT_GE(mid, 32u);
  EXPECT_LE(mid * sizeof(Mid), 32u * 1024u);
}

TEST_F(SegmentQueueTest, FifoAndQsizeAcrossEverySegmentBoundary) {
  SegmentQueue<Big, false> q;
  constexpr std::size_t kSlots = SegmentQueue<Big, false>::kSlots;
  const std::size_t n = 5 * kSlots + 3;
  for (std::size_t i = 0; i < n; ++i) {
    put(q, Big(i));
    ASSERT_EQ(q.qsize(), i + 1);
  }
  for (std::size_t i = 0; i < n; ++i) {
    const auto v = get(q);
    ASSERT_TRUE(v.has_value()) << i;
    ASSERT_EQ(v->value, i);
    ASSERT_EQ(q.qsize(), n - i - 1);
  }
  EXPECT_FALSE(get(q).has_value());
  // Interleaved: the queue stays short while the positions cross many boundaries.
  for (std::size_t i = 0; i < 10 * kSlots; ++i) {
    put(q, Big(i));
    put(q, Big(i));
    ASSERT_EQ(get(q)->value, i);
    ASSERT_EQ(get(q)->value, i);
  }
  EXPECT_EQ(q.qsize(), 0u);
}

TEST_F(SegmentQueueTest, PutManyAndTakeManyRunsEndOnBeforeAndAcrossBoundaries) {
  SegmentQueue<Big, false> q;
  constexpr std::size_t kSlots = SegmentQueue<Big, false>::kSlots;
  std::size_t next_in = 0, next_out = 0;
  for (const std::size_t run : {kSlots - 1, std::size_t{1}, kSlots, kSlots + 5, std::size_t{2},
                                3 * kSlots - 7, std::size_t{1}}) {
    std::vector<Big> items;
    for (std::size_t i = 0; i < run; ++i) items.emplace_back(next_in++);
    ASSERT_EQ(q.put_many(items.data(), items.size(), Deadline::infinite()), run);
    ASSERT_EQ(q.qsize(), next_in - next_out);
    for (const std::size_t max : {std::size_t{1}, kSlots - 1, std::size_t{3}}) {
      std::vector<Big> out;
      out.reserve(1);
      const std::size_t got = q.take_many(out, max, kNow);
      ASSERT_EQ(got, out.size());
      ASSERT_LE(got, max);
      for (const Big& b : out) ASSERT_EQ(b.value, next_out++);
    }
  }
  while (next_out < next_in) {
    std::vector<Big> out;
    out.reserve(1);
    ASSERT_GT(q.take_many(out, 2 * kSlots + 1, kNow), 0u);
    for (const Big& b : out) ASSERT_EQ(b.value, next_out++);
  }
  std::vector<Big> out;
  out.reserve(1);
  EXPECT_EQ(q.take_many(out, 10, kNow), 0u);
  EXPECT_EQ(q.qsize(), 0u);
}

TEST_F(SegmentQueueTest, ItemsAreDestroyedWhenTakenAndByTheDestructorAcrossSegments) {
  auto token = std::make_shared<int>(1);
  {
    SegmentQueue<std::shared_ptr<int>, false> q;
    constexpr std::size_t kSlots = SegmentQueue<std::shared_ptr<int>, false>::kSlots;
    for (std::size_t i = 0; i < 3 * kSlots + 7; ++i) put(q, token);
    EXPECT_EQ(token.use_count(), static_cast<long>(3 * kSlots + 8));
    for (std::size_t i = 0; i < kSlots + 2; ++i) {
      (void)get(q);
      EXPECT_EQ(token.use_count(), static_cast<long>(3 * kSlots + 8 - i - 1));
    }
  }
  EXPECT_EQ(token.use_count(), 1) << "an item left in the queue was not destroyed";
}

TEST_F(SegmentQueueTest, TaskAccountingCountsClaimsAndThrowsOnOvercalls) {
  SegmentQueue<int, true> q;
  constexpr std::size_t kSlots = SegmentQueue<int, true>::kSlots;
  for (std::size_t i = 0; i < kSlots + 1; ++i) put(q, static_cast<int>(i));
  EXPECT_EQ(q.unfinished_tasks(), kSlots + 1) << "the lap's sentinel offset was counted";
  for (std::size_t i = 0; i < kSlots + 1; ++i) {
    (void)get(q);
    q.task_done();
  }
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_TRUE(q.join(kNow));
  EXPECT_THROW(q.task_done(), ValueError);
  put(q, 1);
  EXPECT_FALSE(q.join(Deadline::after(kShort)));
  q.shutdown(true);
  EXPECT_EQ(q.unfinished_tasks(), 0u) << "dropped items count as done";
  EXPECT_TRUE(q.join(kNow));
  int item = 2;
  EXPECT_THROW(q.put(item, Deadline::infinite()), ShutDown);
  EXPECT_EQ(item, 2);
}

TEST_F(SegmentQueueTest, ShutdownImmediateRacingProducersLeavesNothingBehind) {
  for (const std::size_t n : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << n << " producers");
    for (int round = 0; round < 20; ++round) {
      SegmentQueue<Big, true> q;
      std::atomic<std::size_t> started{0};
      Bunch producers(n, [&](std::size_t id) {
        started.fetch_add(1);
        try {
          for (std::size_t i = 0;; ++i) {
            if (id % 2 == 0) {
              Big b(i);
              q.put(b, Deadline::infinite());
            } else {
              std::vector<Big> items(5);
              q.put_many(items.data(), items.size(), Deadline::infinite());
            }
          }
        } catch (const ShutDown&) {
        }
      });
      ASSERT_TRUE(wait_until([&] { return started.load() == n && q.qsize() > 0; }));
      q.shutdown(true);
      producers.join();
      EXPECT_EQ(q.qsize(), 0u);
      EXPECT_EQ(q.unfinished_tasks(), 0u);
      EXPECT_THROW((void)q.take(kNow), ShutDown);
    }
  }
}

TEST_F(SegmentQueueTest, BlockedTakeIsWokenByAPutAndByShutdown) {
  SegmentQueue<int, false> q;
  std::atomic<int> got{0};
  Bunch getter(1, [&](std::size_t) { got.store(get(q, Deadline::after(kGenerous)).value_or(-1)); });
  getter.wait_started();
  EXPECT_TRUE(holds_for(kShort, [&] { return got.load() == 0; }));
  put(q, 7);
  getter.join();
  EXPECT_EQ(got.load(), 7);
  std::atomic<bool> shut{false};
  Bunch waiter(1, [&](std::size_t) {
    try {
      (void)q.take(Deadline::after(kGenerous));
    } catch (const ShutDown&) {
      shut.store(true);
    }
  });
  waiter.wait_started();
  EXPECT_TRUE(holds_for(kShort, [&] { return !shut.load(); }));
  q.shutdown(false);
  waiter.join();
  EXPECT_TRUE(shut.load());
}

// Many producers and consumers on 32-slot segments: every item arrives once, each producer's
// items in order, with puts and gets single and batched.
TEST_F(SegmentQueueTest, StressSmallSegmentsConserveItemsAndPerProducerOrder) {
  for (const std::size_t n : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << n << " producers and " << n << " consumers");
    const std::size_t per_producer = 200'000 / kScale / n;
    const std::size_t total = n * per_producer;
    SegmentQueue<Big, false> q;
    std::vector<std::atomic<int>> seen(total);
    std::atomic<std::size_t> taken{0}, out_of_order{0}, lost{0};
    Bunch bunch(2 * n, [&](std::size_t id) {
      if (id < n) {
        const std::size_t first = id * per_producer;
        for (std::size_t i = 0; i < per_producer;) {
          if ((i / 64) % 2 == 0) {
            Big b(first + i++);
            q.put(b, Deadline::infinite());
          } else {
            std::vector<Big> items;
            for (std::size_t k = 0; k < 7 && i < per_producer; ++k) items.emplace_back(first + i++);
            q.put_many(items.data(), items.size(), Deadline::infinite());
          }
        }
        return;
      }
      std::vector<std::size_t> last(n, std::numeric_limits<std::size_t>::max());
      auto take = [&](std::size_t v) {
        seen[v].fetch_add(1, std::memory_order_relaxed);
        const std::size_t p = v / per_producer;
        if (last[p] != std::numeric_limits<std::size_t>::max() && v <= last[p]) {
          out_of_order.fetch_add(1);
        }
        last[p] = v;
      };
      for (std::size_t round = 0; taken.load() < total; ++round) {
        if (round % 2 == 0) {
          if (auto v = get(q, Deadline::after(std::chrono::milliseconds(1)))) {
            taken.fetch_add(1);
            take(v->value);
          }
        } else {
          std::vector<Big> out;
          out.reserve(1);
          const std::size_t got =
              q.take_many(out, 40, Deadline::after(std::chrono::milliseconds(1)));
          taken.fetch_add(got);
          for (const Big& b : out) take(b.value);
        }
        if (round > 100'000'000) {
          lost.store(1);
          return;
        }
      }
    });
    bunch.join();
    ASSERT_EQ(lost.load(), 0u);
    std::size_t missing = 0, duplicated = 0;
    for (const auto& s : seen) {
      if (s.load() == 0) ++missing;
      if (s.load() > 1) ++duplicated;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(duplicated, 0u);
    EXPECT_EQ(out_of_order.load(), 0u);
    EXPECT_EQ(q.qsize(), 0u);
  }
}

}  // namespace
