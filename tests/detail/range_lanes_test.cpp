// Tests for concur/detail/range_lanes.hpp, the adaptive splitter behind map()'s range tasks:
// - chunks come from the shared cursor in input order, the first item run at once and the rest
//   kept in the runner's lane; a chunk past the end is cut; n = 0 and more lanes than items;
// - once the cursor is exhausted an empty lane steals the upper half of the fullest lane
//   (running its first item, keeping the rest), down to single items;
// - take(i) claims only the cursor's next item or a lane's lowest; take_all() claims everything;
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

// drain(lanes, lane, grain): every item the owner of `lane` gets, in order.
std::vector<std::uint32_t> drain(RangeLanes& lanes, std::uint32_t lane, std::uint32_t grain) {
  std::vector<std::uint32_t> got;
  std::uint32_t i = 0;
  while (lanes.next(lane, grain, i)) got.push_back(i);
  return got;
}

std::vector<std::uint32_t> iota(std::uint32_t lo, std::uint32_t hi) {
  std::vector<std::uint32_t> v;
  for (std::uint32_t i = lo; i < hi; ++i) v.push_back(i);
  return v;
}

TEST(RangeLanesTest, ChunksComeFromTheCursorInInputOrder) {
  RangeLanes lanes(10, 3);
  EXPECT_EQ(lanes.size(), 10U);
  EXPECT_EQ(lanes.lanes(), 3U);
  EXPECT_EQ(lanes.remaining(), 10U);
  std::uint32_t i = 0;
  ASSERT_TRUE(lanes.next(0, 1, i));  // grain 1: the cursor's next item, nothing kept
  EXPECT_EQ(i, 0U);
  ASSERT_TRUE(lanes.next(1, 1, i));
  EXPECT_EQ(i, 1U);
  ASSERT_TRUE(lanes.next(2, 3, i));  // a chunk of 3: runs 2, keeps [3, 5)
  EXPECT_EQ(i, 2U);
  EXPECT_EQ(lanes.fresh(), 5U);
  ASSERT_TRUE(lanes.next(0, 1, i));
  EXPECT_EQ(i, 5U);
  ASSERT_TRUE(lanes.next(2, 3, i));  // its own lane first
  EXPECT_EQ(i, 3U);
  EXPECT_EQ(lanes.remaining(), 5U);    // [4, 5) in lane 2, [6, 10) at the cursor
  ASSERT_TRUE(lanes.next(1, 100, i));  // a chunk past the end is cut at n
  EXPECT_EQ(i, 6U);
  EXPECT_EQ(lanes.fresh(), 0U);
  EXPECT_EQ(drain(lanes, 1, 1), (std::vector<std::uint32_t>{7, 8, 9, 4}))
      << "its own lane, then a steal of lane 2";
  EXPECT_FALSE(lanes.next(0, 1, i));
  EXPECT_FALSE(lanes.next(2, 1, i));
  EXPECT_EQ(lanes.remaining(), 0U);

  RangeLanes empty(0, 2);
  EXPECT_FALSE(empty.next(0, 4, i));
  EXPECT_FALSE(empty.next(1, 1, i));
  EXPECT_EQ(empty.remaining(), 0U);

  RangeLanes more_lanes_than_items(2, 4);
  EXPECT_EQ(drain(more_lanes_than_items, 3, 8), (std::vector<std::uint32_t>{0, 1}));
  EXPECT_FALSE(more_lanes_than_items.next(0, 1, i));
}

TEST(RangeLanesTest, AnEmptyLaneStealsTheUpperHalfOfTheFullest) {
  RangeLanes lanes(100, 2);
  std::uint32_t i = 0;
  ASSERT_TRUE(lanes.next(0, 100, i));  // lane 0 takes everything: runs 0, keeps [1, 100)
  EXPECT_EQ(i, 0U);
  // Lane 1 finds the cursor exhausted: it splits [1, 100) at 50 and runs 50; lane 0 keeps [1, 50).
  ASSERT_TRUE(lanes.next(1, 1, i));
  EXPECT_EQ(i, 50U);
  ASSERT_TRUE(lanes.next(1, 1, i));
  EXPECT_EQ(i, 51U);
  ASSERT_TRUE(lanes.next(0, 1, i));
  EXPECT_EQ(i, 1U);
  EXPECT_EQ(lanes.remaining(), (50U - 2U) + (100U - 52U));
  // Down to single items: everything is handed out once.
  std::vector<std::uint32_t> rest = drain(lanes, 0, 1);
  for (std::uint32_t x : drain(lanes, 1, 1)) rest.push_back(x);
  std::sort(rest.begin(), rest.end());
  std::vector<std::uint32_t> expected = iota(2, 50);
  for (std::uint32_t x : iota(52, 100)) expected.push_back(x);
  EXPECT_EQ(rest, expected);
  EXPECT_EQ(lanes.remaining(), 0U);
}

TEST(RangeLanesTest, TakeClaimsOnlyTheNextItemOfTheCursorOrALane) {
  RangeLanes lanes(20, 2);
  EXPECT_TRUE(lanes.take(0)) << "the cursor's next";
  EXPECT_FALSE(lanes.take(0)) << "claimed twice";
  EXPECT_FALSE(lanes.take(3)) << "behind unclaimed items";
  std::uint32_t i = 0;
  ASSERT_TRUE(lanes.next(0, 5, i));  // runs 1, keeps [2, 6)
  EXPECT_EQ(i, 1U);
  EXPECT_TRUE(lanes.take(2)) << "the lowest of lane 0";
  EXPECT_FALSE(lanes.take(4)) << "behind 3 in lane 0";
  EXPECT_TRUE(lanes.take(6)) << "the cursor's next";
  ASSERT_TRUE(lanes.next(0, 5, i));
  EXPECT_EQ(i, 3U);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges;
  lanes.take_all([&](std::uint32_t lo, std::uint32_t hi) { ranges.emplace_back(lo, hi); });
  EXPECT_EQ(ranges, (std::vector<std::pair<std::uint32_t, std::uint32_t>>{{7, 20}, {4, 6}}));
  EXPECT_FALSE(lanes.next(0, 1, i));
  EXPECT_FALSE(lanes.next(1, 1, i));
  EXPECT_FALSE(lanes.take(19));
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
        while (lanes.next(r, 1 + (r * 7 + count) % 64, i)) {
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
