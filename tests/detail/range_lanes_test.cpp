// Tests for concur/detail/range_lanes.hpp, the adaptive splitter behind map()'s range tasks:
// - the initial lanes cover [0, n) evenly and in order, also with more lanes than items and
//   with n = 0;
// - an owner takes its lane bottom-up; once it is empty it steals the upper half of the fullest
//   lane (running its first item, keeping the rest), down to single items;
// - take(i) claims only the next item of a lane; take_all() claims everything left;
// - concurrently, k runners (k swept over kThreadCounts) claiming until nothing is left, one of
//   them stalling, while another thread takes single items and finally everything: every item is
//   claimed exactly once.
// No CPython counterpart (Python's map makes one future per input).
#include "concur/detail/range_lanes.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/test_support.hpp"

namespace {

using concur::detail::RangeLanes;
using namespace concur::testing;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint32_t kScale = 10;  // sanitizers slow every atomic operation
#else
constexpr std::uint32_t kScale = 1;
#endif

// drain(lanes, lane): every item the owner of `lane` gets, in order.
std::vector<std::uint32_t> drain(RangeLanes& lanes, std::uint32_t lane) {
  std::vector<std::uint32_t> got;
  std::uint32_t i = 0;
  while (lanes.next(lane, i)) got.push_back(i);
  return got;
}

TEST(RangeLanesTest, InitialLanesCoverTheItemsInOrder) {
  RangeLanes lanes(10, 3);  // [0,3) [3,6) [6,10)
  EXPECT_EQ(lanes.lanes(), 3U);
  EXPECT_EQ(lanes.remaining(), 10U);
  std::uint32_t i = 0;
  ASSERT_TRUE(lanes.next(0, i));
  EXPECT_EQ(i, 0U);
  ASSERT_TRUE(lanes.next(1, i));
  EXPECT_EQ(i, 3U);
  ASSERT_TRUE(lanes.next(2, i));
  EXPECT_EQ(i, 6U);
  ASSERT_TRUE(lanes.next(0, i));
  EXPECT_EQ(i, 1U);
  EXPECT_EQ(lanes.remaining(), 6U);

  RangeLanes empty(0, 2);
  EXPECT_FALSE(empty.next(0, i));
  EXPECT_FALSE(empty.next(1, i));
  EXPECT_EQ(empty.remaining(), 0U);

  RangeLanes more_lanes_than_items(2, 4);  // [0,0) [0,1) [1,1) [1,2)
  std::vector<std::uint32_t> all;
  for (std::uint32_t r = 0; r < 4; ++r) {
    for (std::uint32_t x : drain(more_lanes_than_items, r)) all.push_back(x);
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::uint32_t>{0, 1}));
}

TEST(RangeLanesTest, AnEmptyLaneStealsTheUpperHalfOfTheFullest) {
  RangeLanes lanes(100, 2);  // [0,50) [50,100)
  std::uint32_t i = 0;
  for (std::uint32_t k = 50; k < 100; ++k) {
    ASSERT_TRUE(lanes.next(1, i));
    EXPECT_EQ(i, k);
  }
  ASSERT_TRUE(lanes.next(0, i));  // lane 0 keeps [1, 50)
  EXPECT_EQ(i, 0U);
  // Lane 1 is empty: it splits [1, 50) at 25 and runs 25; lane 0 keeps [1, 25).
  ASSERT_TRUE(lanes.next(1, i));
  EXPECT_EQ(i, 25U);
  ASSERT_TRUE(lanes.next(1, i));
  EXPECT_EQ(i, 26U);
  ASSERT_TRUE(lanes.next(0, i));
  EXPECT_EQ(i, 1U);
  EXPECT_EQ(lanes.remaining(), (25U - 2U) + (50U - 27U));
  // Down to single items: everything is handed out once.
  std::vector<std::uint32_t> rest = drain(lanes, 0);
  for (std::uint32_t x : drain(lanes, 1)) rest.push_back(x);
  std::sort(rest.begin(), rest.end());
  std::vector<std::uint32_t> expected;
  for (std::uint32_t x = 2; x < 25; ++x) expected.push_back(x);
  for (std::uint32_t x = 27; x < 50; ++x) expected.push_back(x);
  EXPECT_EQ(rest, expected);
  EXPECT_EQ(lanes.remaining(), 0U);
}

TEST(RangeLanesTest, TakeClaimsOnlyTheNextItemOfALane) {
  RangeLanes lanes(10, 2);  // [0,5) [5,10)
  EXPECT_TRUE(lanes.take(0));
  EXPECT_FALSE(lanes.take(0)) << "claimed twice";
  EXPECT_FALSE(lanes.take(3)) << "behind unclaimed items of its lane";
  EXPECT_TRUE(lanes.take(5));
  std::uint32_t i = 0;
  ASSERT_TRUE(lanes.next(0, i));
  EXPECT_EQ(i, 1U);
  ASSERT_TRUE(lanes.next(1, i));
  EXPECT_EQ(i, 6U);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges;
  lanes.take_all([&](std::uint32_t lo, std::uint32_t hi) { ranges.emplace_back(lo, hi); });
  EXPECT_EQ(ranges, (std::vector<std::pair<std::uint32_t, std::uint32_t>>{{2, 5}, {7, 10}}));
  EXPECT_FALSE(lanes.next(0, i));
  EXPECT_FALSE(lanes.next(1, i));
  EXPECT_FALSE(lanes.take(9));
  EXPECT_EQ(lanes.remaining(), 0U);
}

// Every item is claimed exactly once, whoever claims it: k runners (one of them stalling now and
// then, so that its lane is stolen), and an outside thread taking single items, then everything.
TEST(RangeLanesTest, ConcurrentRunnersClaimEveryItemOnce) {
  const std::uint32_t n = 200'000 / kScale;
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE("runners=" + std::to_string(workers));
    const auto k = static_cast<std::uint32_t>(workers);
    RangeLanes lanes(n, k);
    auto claims = std::make_unique<std::atomic<std::uint8_t>[]>(n);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (std::uint32_t r = 0; r < k; ++r) {
      threads.emplace_back([&, r] {
        while (!go.load()) std::this_thread::yield();
        std::uint32_t i = 0;
        std::uint32_t count = 0;
        while (lanes.next(r, i)) {
          claims[i].fetch_add(1, std::memory_order_relaxed);
          if (r == 0 && ++count % 1024 == 0)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
      });
    }
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (std::uint32_t i = 0; i < n; i += 997) {
        if (lanes.take(i)) claims[i].fetch_add(1, std::memory_order_relaxed);
      }
      lanes.take_all([&](std::uint32_t lo, std::uint32_t hi) {
        for (std::uint32_t i = lo; i < hi; ++i) claims[i].fetch_add(1, std::memory_order_relaxed);
      });
    });
    go.store(true);
    for (auto& t : threads) t.join();
    std::uint32_t bad = 0;
    for (std::uint32_t i = 0; i < n; ++i) bad += claims[i].load() == 1 ? 0 : 1;
    EXPECT_EQ(bad, 0U) << "items claimed zero or several times";
    EXPECT_EQ(lanes.remaining(), 0U);
  }
}

}  // namespace
