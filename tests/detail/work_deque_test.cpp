// Tests for concur/detail/work_deque.hpp, the Chase-Lev work-stealing deque of the thread pool:
// - the owner's pop() is LIFO, steal() is FIFO, and mixing them takes from both ends;
// - empty deques answer nullptr and a size_hint() of 0; the capacity is rounded up;
// - growth beyond the initial capacity keeps every item, also when the live items wrap around the
//   array (after steals) and when the deque grows several times;
// - concurrently, the owner pushing and popping while N thieves steal (N swept over kThreadCounts),
//   with a small initial capacity so that it grows under the thieves: every item is taken exactly
//   once (a per-item counter and a checksum), nothing is lost or duplicated.
// No CPython counterpart (Python's pool has one shared queue).
#include "concur/detail/work_deque.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

namespace {

using concur::detail::WorkDeque;
using namespace concur::testing;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 10;  // sanitizers slow every atomic operation
#else
constexpr int kScale = 1;
#endif

// Items: a vector of ints whose addresses are what the deque stores.
std::vector<int> make_items(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

TEST(WorkDequeTest, EmptyDeque) {
  WorkDeque<int> q;
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_EQ(q.steal(), nullptr);
  EXPECT_EQ(q.size_hint(), 0U);
  int x = 1;
  q.push(&x);
  EXPECT_EQ(q.size_hint(), 1U);
  EXPECT_EQ(q.pop(), &x);
  EXPECT_EQ(q.pop(), nullptr) << "pop() on a drained deque";
  EXPECT_EQ(q.steal(), nullptr);
  EXPECT_EQ(q.size_hint(), 0U);
}

TEST(WorkDequeTest, OwnerPopsNewestFirst) {
  auto items = make_items(5);
  WorkDeque<int> q;
  for (int& x : items) q.push(&x);
  EXPECT_EQ(q.size_hint(), 5U);
  for (int i = 4; i >= 0; --i) {
    int* p = q.pop();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, i);
  }
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(WorkDequeTest, ThievesStealOldestFirst) {
  auto items = make_items(5);
  WorkDeque<int> q;
  for (int& x : items) q.push(&x);
  for (int i = 0; i < 5; ++i) {
    int* p = q.steal();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, i);
    EXPECT_EQ(q.size_hint(), static_cast<std::size_t>(4 - i));
  }
  EXPECT_EQ(q.steal(), nullptr);
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(WorkDequeTest, PopAndStealTakeFromOppositeEnds) {
  auto items = make_items(4);
  WorkDeque<int> q;
  for (int& x : items) q.push(&x);
  EXPECT_EQ(*q.steal(), 0);
  EXPECT_EQ(*q.pop(), 3);
  EXPECT_EQ(*q.steal(), 1);
  EXPECT_EQ(*q.pop(), 2);
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_EQ(q.steal(), nullptr);
  // The deque is reusable after being drained from both ends.
  q.push(&items[0]);
  q.push(&items[1]);
  EXPECT_EQ(*q.pop(), 1);
  EXPECT_EQ(*q.steal(), 0);
}

TEST(WorkDequeTest, GrowsBeyondItsInitialCapacityKeepingEveryItem) {
  for (const std::size_t initial : {std::size_t{1}, std::size_t{16}, std::size_t{100}}) {
    SCOPED_TRACE("initial capacity " + std::to_string(initial));
    auto items = make_items(5000);  // grows 16 → 8192 (or 128 → 8192): several doublings
    WorkDeque<int> q(initial);
    for (int& x : items) q.push(&x);
    EXPECT_EQ(q.size_hint(), items.size());
    for (int i = 4999; i >= 0; --i) {
      int* p = q.pop();
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(*p, i);
    }
    EXPECT_EQ(q.pop(), nullptr);
  }
}

// After steals, the live items sit at indices that wrap around the array; growth must copy them
// from top to bottom, not from slot 0.
TEST(WorkDequeTest, GrowsWhileTheItemsWrapAround) {
  auto items = make_items(200);
  WorkDeque<int> q(16);
  int next = 0;
  for (; next < 12; ++next) q.push(&items[static_cast<std::size_t>(next)]);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(*q.steal(), i);  // top = 10: the next pushes wrap
  for (; next < 200; ++next) q.push(&items[static_cast<std::size_t>(next)]);
  EXPECT_EQ(q.size_hint(), 190U);
  // Oldest from the top, newest from the bottom, meeting in the middle: every item once.
  int low = 10;
  int high = 199;
  while (low <= high) {
    int* s = q.steal();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(*s, low++);
    if (low > high) break;
    int* p = q.pop();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, high--);
  }
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_EQ(q.steal(), nullptr);
}

// The owner pushes all items in bursts (bigger than the initial capacity, so the deque grows while
// thieves read it) and pops some of each burst; N thieves steal until the owner is done and the
// deque is empty. Every item must be taken exactly once.
void run_concurrent(std::size_t thieves) {
  const int n = 500'000 / kScale;
  auto items = make_items(n);
  std::vector<std::atomic<int>> taken(static_cast<std::size_t>(n));
  std::atomic<std::int64_t> checksum{0};
  std::atomic<int> stolen{0};
  std::atomic<bool> owner_done{false};
  WorkDeque<int> q(16);
  auto take = [&](int* p) {
    taken[static_cast<std::size_t>(*p)].fetch_add(1, std::memory_order_relaxed);
    checksum.fetch_add(*p, std::memory_order_relaxed);
  };
  {
    Bunch thief_threads(thieves, [&](std::size_t) {
      int misses = 0;
      while (!owner_done.load(std::memory_order_acquire) || q.size_hint() != 0) {
        if (int* p = q.steal()) {
          take(p);
          stolen.fetch_add(1, std::memory_order_relaxed);
        } else if (++misses % 16 == 0) {
          std::this_thread::yield();  // 2 shared cores: let the owner push
        }
      }
    });
    int popped = 0;
    int next = 0;
    for (int burst = 1; next < n; burst = burst % 97 + 1) {
      for (int k = 0; k < 3 * burst && next < n; ++k)
        q.push(&items[static_cast<std::size_t>(next++)]);
      for (int k = 0; k < burst; ++k) {
        if (int* p = q.pop()) {
          take(p);
          ++popped;
        }
      }
    }
    while (q.size_hint() != 0) {
      if (int* p = q.pop()) {
        take(p);
        ++popped;
      }
    }
    owner_done.store(true, std::memory_order_release);
    thief_threads.join();
    EXPECT_EQ(popped + stolen.load(), n);
  }
  std::size_t wrong = 0;
  for (int i = 0; i < n; ++i) {
    if (taken[static_cast<std::size_t>(i)].load() != 1) {
      if (wrong++ < 5) {
        ADD_FAILURE() << "item " << i << " taken " << taken[static_cast<std::size_t>(i)].load()
                      << " times";
      }
    }
  }
  EXPECT_EQ(wrong, 0U);
  EXPECT_EQ(checksum.load(), static_cast<std::int64_t>(n) * (n - 1) / 2);
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_EQ(q.steal(), nullptr);
}

TEST(WorkDequeTest, OwnerAndThievesTakeEveryItemExactlyOnce) {
  for (const std::size_t thieves : kThreadCounts) {
    SCOPED_TRACE("thieves=" + std::to_string(thieves));
    run_concurrent(thieves);
  }
}

// Only thieves: the owner pushes everything first, then N thieves race for each item.
TEST(WorkDequeTest, ThievesAloneTakeEveryItemExactlyOnce) {
  for (const std::size_t thieves : kThreadCounts) {
    SCOPED_TRACE("thieves=" + std::to_string(thieves));
    const int n = 100'000 / kScale;
    auto items = make_items(n);
    std::vector<std::atomic<int>> taken(static_cast<std::size_t>(n));
    WorkDeque<int> q(16);
    for (int& x : items) q.push(&x);
    {
      Bunch thief_threads(thieves, [&](std::size_t) {
        while (q.size_hint() != 0) {
          if (int* p = q.steal()) taken[static_cast<std::size_t>(*p)].fetch_add(1);
        }
      });
    }
    int wrong = 0;
    for (auto& t : taken) wrong += t.load() != 1 ? 1 : 0;
    EXPECT_EQ(wrong, 0);
  }
}

}  // namespace
