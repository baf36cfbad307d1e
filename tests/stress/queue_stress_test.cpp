// Stress tests for concur/queue.hpp: P producers and C consumers move many items through one
// queue; nothing may be lost or duplicated. Each producer puts its own distinct values, so the
// run is checked three ways: a per-item seen-count (every value exactly once), the checksum and
// count, and — for FIFO queues — that every consumer saw each producer's values in increasing
// order. Consumers stop either through shutdown() after the last producer finished (the
// drain-then-ShutDown path) or through one sentinel per consumer. Scenarios sweep P, C in 1..8
// over Queue (unbounded and bounded at 1024), SimpleQueue, LifoQueue and PriorityQueue, with
// put_many / get_many in some; the largest moves 10 million items in release builds.
// Bounded: every blocking call that can wait is timed (kGenerous), a consumer that times out
// shuts the queue down to release the producers, so a lost wake-up fails the test instead of
// hanging it. Sizes shrink ~50x under sanitizers. Label "stress".
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "concur/errors.hpp"
#include "concur/queue.hpp"
#include "concur/sync/barrier.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 50;  // sanitizers slow every queue operation by 10-50x
#else
constexpr std::size_t kScale = 1;
#endif

constexpr std::uint64_t kStopValue = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kBatch = 64;  // put_many chunk and get_many max

enum class Kind { kQueue, kBoundedQueue, kSimpleQueue, kLifoQueue, kPriorityQueue };
enum class Stop { kShutdown, kSentinel };

struct Scenario {
  const char* name;
  Kind kind;
  std::size_t producers;
  std::size_t consumers;
  std::size_t items;  // at kScale == 1
  Stop stop;
  bool batches;  // odd producers use put_many, odd consumers get_many
};

// The sentinel stop needs sentinels to come out after every real item: true of FIFO queues and of
// a PriorityQueue (the sentinel is the largest value), not of a LifoQueue.
const std::vector<Scenario> kScenarios = {
    {"Queue_1x1", Kind::kQueue, 1, 1, 2'000'000, Stop::kShutdown, false},
    {"Queue_2x2", Kind::kQueue, 2, 2, 2'000'000, Stop::kSentinel, false},
    {"Queue_1x8", Kind::kQueue, 1, 8, 3'000'000, Stop::kShutdown, false},
    {"Queue_8x1", Kind::kQueue, 8, 1, 2'000'000, Stop::kSentinel, false},
    {"Queue_3x5", Kind::kQueue, 3, 5, 5'000'000, Stop::kShutdown, false},
    {"Queue_8x8", Kind::kQueue, 8, 8, 10'000'000, Stop::kShutdown, false},
    {"Queue_4x4_Batches", Kind::kQueue, 4, 4, 6'000'000, Stop::kSentinel, true},
    {"BoundedQueue1024_4x4", Kind::kBoundedQueue, 4, 4, 5'000'000, Stop::kShutdown, false},
    {"BoundedQueue1024_8x8_Batches", Kind::kBoundedQueue, 8, 8, 5'000'000, Stop::kSentinel, true},
    {"BoundedQueue1024_1x8", Kind::kBoundedQueue, 1, 8, 3'000'000, Stop::kShutdown, false},
    {"BoundedQueue1024_8x1", Kind::kBoundedQueue, 8, 1, 3'000'000, Stop::kSentinel, false},
    {"SimpleQueue_4x4", Kind::kSimpleQueue, 4, 4, 4'000'000, Stop::kSentinel, false},
    {"SimpleQueue_8x8_Batches", Kind::kSimpleQueue, 8, 8, 4'000'000, Stop::kShutdown, true},
    {"LifoQueue_4x4", Kind::kLifoQueue, 4, 4, 3'000'000, Stop::kShutdown, false},
    {"PriorityQueue_4x4", Kind::kPriorityQueue, 4, 4, 3'000'000, Stop::kSentinel, true},
};

// transfer(q, s, fifo) runs scenario s on q and checks the outcome.
template <class Q>
void transfer(Q& q, const Scenario& s, bool bounded, bool fifo) {
  const std::size_t per = std::max<std::size_t>(s.items / kScale / s.producers, 1);
  const std::size_t total = per * s.producers;
  std::vector<std::atomic<std::uint8_t>> seen(total);
  std::atomic<std::size_t> producers_left{s.producers};
  std::atomic<std::uint64_t> sum{0}, count{0}, out_of_order{0};
  std::atomic<bool> stuck{false}, producer_failed{false};
  std::mutex errors_mu;
  std::vector<std::string> errors;
  auto fail = [&](std::atomic<bool>& flag, const std::string& what) {
    flag.store(true);
    std::scoped_lock lk(errors_mu);
    errors.push_back(what);
  };

  auto produce = [&](std::size_t p) {
    const std::uint64_t first = p * per;
    try {
      if (s.batches && p % 2 == 1) {
        std::vector<std::uint64_t> chunk;
        chunk.reserve(kBatch);
        for (std::size_t i = 0; i < per;) {
          chunk.clear();
          for (; i < per && chunk.size() < kBatch; ++i) chunk.push_back(first + i);
          q.put_many(chunk);  // untimed: a consumer that gives up shuts the queue down
        }
      } else if (bounded) {
        for (std::size_t i = 0; i < per; ++i) q.put(first + i, kGenerous);
      } else {
        for (std::size_t i = 0; i < per; ++i) q.put(first + i);  // never waits
      }
    } catch (const QueueError& e) {
      fail(producer_failed, "producer " + std::to_string(p) + ": " + e.what());
    }
    if (producers_left.fetch_sub(1) != 1) return;
    // The last producer to finish: every real item is in the queue or already taken.
    if (s.stop == Stop::kShutdown) {
      q.shutdown();
      return;
    }
    try {
      for (std::size_t c = 0; c < s.consumers; ++c) q.put(kStopValue, kGenerous);
    } catch (const QueueError& e) {
      fail(producer_failed, std::string("sentinels: ") + e.what());
    }
  };

  auto consume = [&](std::size_t c) {
    std::vector<std::uint64_t> last(s.producers, kStopValue);
    std::uint64_t local_sum = 0, local_count = 0, local_disorder = 0;
    auto take = [&](std::uint64_t v) {
      seen[v].fetch_add(1, std::memory_order_relaxed);
      local_sum += v;
      ++local_count;
      const std::size_t p = v / per;
      if (last[p] != kStopValue && v <= last[p]) ++local_disorder;
      last[p] = v;
    };
    try {
      if (s.batches && c % 2 == 1) {
        for (;;) {
          const std::vector<std::uint64_t> items = q.get_many(kBatch, kGenerous);
          if (items.empty()) throw Empty();
          std::size_t sentinels = 0;
          for (const std::uint64_t v : items) {
            if (v == kStopValue) {
              ++sentinels;
            } else {
              take(v);
            }
          }
          if (sentinels > 0) {  // keep one, hand the others back to their consumers
            for (std::size_t k = 1; k < sentinels; ++k) q.put(kStopValue, kGenerous);
            break;
          }
        }
      } else {
        for (;;) {
          const std::uint64_t v = q.get(kGenerous);
          if (v == kStopValue) break;
          take(v);
        }
      }
    } catch (const ShutDown&) {
      // the drain-then-ShutDown stop (or another consumer gave up)
    } catch (const QueueError& e) {
      fail(stuck, "consumer " + std::to_string(c) + ": " + e.what());
      q.shutdown(true);  // release producers blocked on a full queue
    }
    sum.fetch_add(local_sum);
    count.fetch_add(local_count);
    out_of_order.fetch_add(local_disorder);
  };

  const auto took = elapsed([&] {
    // run_threads joins without a bound; every wait inside is bounded instead (see the header).
    // Everyone starts together, so producers and consumers really overlap.
    Barrier start(s.producers + s.consumers);
    run_threads(s.producers + s.consumers, [&](std::size_t id) {
      try {
        start.wait(kGenerous);
      } catch (const BrokenBarrierError&) {
        fail(stuck, "the start barrier broke");
      }
      if (id < s.producers) {
        produce(id);
      } else {
        consume(id - s.producers);
      }
    });
  });
  for (const std::string& e : errors) ADD_FAILURE() << e;
  ASSERT_FALSE(stuck.load()) << "a consumer waited kGenerous for an item: lost wake-up?";
  ASSERT_FALSE(producer_failed.load());
  std::size_t missing = 0, duplicated = 0, first_bad = total;
  for (std::size_t v = 0; v < total; ++v) {
    const unsigned n = seen[v].load(std::memory_order_relaxed);
    if (n == 1) continue;
    if (n == 0) ++missing;
    if (n > 1) ++duplicated;
    if (first_bad == total) first_bad = v;
  }
  EXPECT_EQ(missing, 0u) << "items lost, the first: " << first_bad;
  EXPECT_EQ(duplicated, 0u) << "items duplicated, the first: " << first_bad;
  EXPECT_EQ(count.load(), total);
  EXPECT_EQ(sum.load(), static_cast<std::uint64_t>(total) * (total - 1) / 2);
  if (fifo) {
    EXPECT_EQ(out_of_order.load(), 0u) << "a consumer saw a producer's values out of order";
  }
  EXPECT_TRUE(q.empty());
  const double secs = std::chrono::duration<double>(took).count();
  std::printf("  %-30s %zu producers x %zu consumers: %zu items in %.2f s (%.2f M items/s)\n",
              s.name, s.producers, s.consumers, total, secs,
              static_cast<double>(total) / secs / 1e6);
  ::testing::Test::RecordProperty("items", std::to_string(total));
  ::testing::Test::RecordProperty("seconds", std::to_string(secs));
}

class QueueStress : public QuiescentTest, public ::testing::WithParamInterface<Scenario> {};

INSTANTIATE_TEST_SUITE_P(Scenarios, QueueStress, ::testing::ValuesIn(kScenarios),
                         [](const ::testing::TestParamInfo<Scenario>& scenario) {
                           return std::string(scenario.param.name);
                         });

TEST_P(QueueStress, EveryItemArrivesExactlyOnce) {
  const Scenario& s = GetParam();
  switch (s.kind) {
    case Kind::kQueue: {
      Queue<std::uint64_t> q;
      transfer(q, s, false, true);
      break;
    }
    case Kind::kBoundedQueue: {
      Queue<std::uint64_t> q(1024);
      transfer(q, s, true, true);
      break;
    }
    case Kind::kSimpleQueue: {
      SimpleQueue<std::uint64_t> q;
      transfer(q, s, false, true);
      break;
    }
    case Kind::kLifoQueue: {
      ASSERT_EQ(s.stop, Stop::kShutdown) << "a LIFO queue hands sentinels out first";
      LifoQueue<std::uint64_t> q;
      transfer(q, s, false, false);
      break;
    }
    case Kind::kPriorityQueue: {
      PriorityQueue<std::uint64_t> q;
      transfer(q, s, false, false);
      break;
    }
  }
}

}  // namespace
