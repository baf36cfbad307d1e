// Stress tests for concur/future.hpp: many threads completing, cancelling, starting, adding
// callbacks to, waiting on and dropping handles of the same futures at once, round after round.
// Each round checks the invariants that races could break: exactly one producer wins, cancel()
// and set_result() never both succeed, every callback runs exactly once, every waiter sees the
// one outcome, run() and cancel() agree on whether the task ran, as_completed yields every future
// exactly once while other ranges on the same futures are abandoned mid-way, wait() never
// returns a not-done future as done. Bounded: every wait is timed (kGenerous); rounds shrink
// under sanitizers (the TSan run takes seconds, far under a minute), and the barrier-paced tests
// stop starting rounds after kRoundBudget (an oversubscribed machine slows barrier rounds by
// orders of magnitude; a fixed round count once ran past Bunch::join's kGenerous). Label
// "stress".
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/future.hpp"
#include "concur/sync/barrier.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 4;  // the rounds are barrier-bound; sanitizers add ~2-5x
#else
constexpr std::size_t kScale = 1;
#endif

struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class FutureStressTest : public QuiescentTest {
 protected:
  void SetUp() override {
    QuiescentTest::SetUp();
    previous_ = set_excepthook([this](const ExceptHookArgs&) { reports_.fetch_add(1); });
  }
  void TearDown() override {
    set_excepthook(previous_);
    QuiescentTest::TearDown();
  }
  std::atomic<std::size_t> reports_{0};

 private:
  ExceptHook previous_;
};

// Producers (two setters, a starter), a canceller, callback adders, waiters and handle droppers
// all hit one Promise/Future per round. The threads live for the whole test and meet at a barrier
// before each round, so their calls on that round's future overlap.
// RoundClock plays at most `rounds` barrier rounds, and stops starting new ones after
// kRoundBudget: barrier-bound rounds slow down by orders of magnitude when the machine is
// oversubscribed, and Bunch::join allows the whole bunch only kGenerous. Its tick() is the
// barrier action (one call per round, before the threads are released), so every thread sees the
// same decision in go().
constexpr auto kRoundBudget = std::chrono::milliseconds(1500);
class RoundClock {
 public:
  explicit RoundClock(std::size_t rounds) : rounds_(rounds) {}
  void tick() {
    go_ = played_ < rounds_ && std::chrono::steady_clock::now() < end_;
    if (go_) ++played_;
  }
  [[nodiscard]] bool go() const { return go_.load(); }
  [[nodiscard]] std::size_t played() const { return played_.load(); }

 private:
  const std::size_t rounds_;
  const std::chrono::steady_clock::time_point end_ =
      std::chrono::steady_clock::now() + kRoundBudget;
  std::atomic<std::size_t> played_{0};
  std::atomic<bool> go_{false};
};

struct PromiseRound {
  Promise<int> p;
  Future<int> f = p.get_future();
  std::atomic<int> set_wins{0};
  std::atomic<bool> cancel_won{false};
  std::atomic<int> started{0};
  std::atomic<int> callbacks_added{0};
  std::atomic<int> callbacks_run{0};
  std::atomic<int> saw_value{0};
  std::atomic<int> saw_exception{0};
  std::atomic<int> saw_cancelled{0};
};

TEST_F(FutureStressTest, PromiseProducersCancellersCallbacksAndWaitersRace) {
  constexpr std::size_t kThreads = 8;
  constexpr int kWaiters = static_cast<int>(kThreads) - 6;
  const std::size_t rounds = 20000 / kScale;
  std::vector<std::unique_ptr<PromiseRound>> rs;
  for (std::size_t i = 0; i < rounds; ++i) rs.push_back(std::make_unique<PromiseRound>());
  RoundClock clock(rounds);
  Barrier barrier(kThreads, BarrierOptions{.action = [&] { clock.tick(); }});
  Bunch bunch(kThreads, [&](std::size_t i) {
    for (std::size_t round = 0; round < rounds; ++round) {
      PromiseRound& r = *rs[round];
      const bool use_exception = round % 3 == 0;
      barrier.wait(kGenerous);
      if (!clock.go()) break;
      switch (i) {
        case 0:
        case 1:
          try {
            if (use_exception && i == 0) {
              r.p.set_exception(std::make_exception_ptr(Boom("boom")));
            } else {
              r.p.set_result(static_cast<int>(round));
            }
            r.set_wins.fetch_add(1);
          } catch (const InvalidStateError&) {
          }
          break;
        case 2:
          try {
            if (r.p.set_running_or_notify_cancel()) r.started.fetch_add(1);
          } catch (const InvalidStateError&) {
          }
          break;
        case 3:
          if (r.f.cancel()) r.cancel_won = true;
          break;
        case 4:
        case 5:
          for (int k = 0; k < 4; ++k) {
            r.callbacks_added.fetch_add(1);
            r.f.add_done_callback([&r](const Future<int>& g) {
              EXPECT_TRUE(g.done());
              r.callbacks_run.fetch_add(1);
            });
          }
          break;
        default: {
          Future<int> mine = r.f;  // a handle of our own, dropped at the end
          try {
            EXPECT_EQ(mine.result(kGenerous), static_cast<int>(round));
            r.saw_value.fetch_add(1);
          } catch (const Boom&) {
            r.saw_exception.fetch_add(1);
          } catch (const CancelledError&) {
            r.saw_cancelled.fetch_add(1);
          }
        }
      }
    }
  });
  bunch.join();
  ASSERT_GT(clock.played(), 0u);
  for (std::size_t round = 0; round < clock.played(); ++round) {
    PromiseRound& r = *rs[round];
    ASSERT_TRUE(r.f.done()) << "round " << round;
    const int wins = r.set_wins.load();
    EXPECT_LE(wins, 1) << "two producers both succeeded";
    EXPECT_NE(r.cancel_won.load(), wins == 1) << "cancel and set must exclude each other";
    EXPECT_EQ(r.cancel_won.load(), r.f.cancelled());
    if (r.started.load() == 1) {
      EXPECT_FALSE(r.cancel_won.load()) << "cancelled a running future";
    }
    EXPECT_EQ(r.callbacks_run.load(), r.callbacks_added.load());
    EXPECT_EQ(r.saw_value + r.saw_exception + r.saw_cancelled, kWaiters);
    if (r.cancel_won) {
      EXPECT_EQ(r.saw_cancelled.load(), kWaiters);
    }
    if (!r.cancel_won && r.saw_exception.load() == 0) {
      EXPECT_EQ(r.saw_value.load(), kWaiters);
    }
  }
  rs.clear();
  EXPECT_EQ(reports_.load(), 0u) << "the waiters retrieved every exception";
}

// run() versus cancel() versus waiters on the task path, with plain and stop-token tasks.
struct TaskRound {
  detail::RunnablePtr task;
  Future<int> future;
  std::atomic<bool> ran{false};
  std::atomic<bool> cancel_won{false};
};

TEST_F(FutureStressTest, TaskRunRacesCancel) {
  const std::size_t rounds = 20000 / kScale;
  std::vector<std::unique_ptr<TaskRound>> rs;
  for (std::size_t round = 0; round < rounds; ++round) {
    auto r = std::make_unique<TaskRound>();
    std::atomic<bool>* ran = &r->ran;
    if (round % 2 == 1) {
      auto made = detail::make_task(
          [ran](std::stop_token st, int x) {
            *ran = true;
            const auto give_up = std::chrono::steady_clock::now() + kGenerous;
            while (!st.stop_requested() && std::chrono::steady_clock::now() < give_up) {
              std::this_thread::yield();
            }
            return x;
          },
          static_cast<int>(round));
      r->task = std::move(made.task);
      r->future = std::move(made.future);
    } else {
      auto made = detail::make_task(
          [ran](int x) {
            *ran = true;
            return x;
          },
          static_cast<int>(round));
      r->task = std::move(made.task);
      r->future = std::move(made.future);
    }
    rs.push_back(std::move(r));
  }
  RoundClock clock(rounds);
  Barrier barrier(3, BarrierOptions{.action = [&] { clock.tick(); }});
  Bunch bunch(3, [&](std::size_t i) {
    for (std::size_t round = 0; round < rounds; ++round) {
      TaskRound& r = *rs[round];
      barrier.wait(kGenerous);
      if (!clock.go()) break;
      if (i == 0) {
        r.task->run();
      } else if (i == 1) {
        // Keep cancelling until done: a running stop-token task needs the stop request.
        while (!r.future.done()) {
          if (r.future.cancel()) r.cancel_won = true;
          std::this_thread::yield();
        }
      } else {
        try {
          EXPECT_EQ(r.future.result(kGenerous), static_cast<int>(round));
        } catch (const CancelledError&) {
        }
      }
    }
  });
  bunch.join();
  std::size_t ran_total = 0;
  std::size_t cancelled_total = 0;
  const std::size_t played = clock.played();
  for (std::size_t round = 0; round < played; ++round) {
    TaskRound& r = *rs[round];
    EXPECT_NE(r.ran.load(), r.cancel_won.load()) << "round " << round;
    EXPECT_EQ(r.future.cancelled(), r.cancel_won.load());
    ran_total += r.ran ? 1 : 0;
    cancelled_total += r.cancel_won ? 1 : 0;
  }
  EXPECT_EQ(ran_total + cancelled_total, played);
  EXPECT_GT(ran_total, 0u);
}

// Completers finish (value, exception or cancel) futures in random order while one consumer
// drains them through as_completed and two others open ranges on the same futures and abandon
// them part-way — registration, firing and unregistration all race.
TEST_F(FutureStressTest, AsCompletedWithConcurrentCompletersAndAbandonedRanges) {
  const std::size_t rounds = 200 / kScale;
  const std::size_t n = 2000 / kScale;
  constexpr std::size_t kCompleters = 4;
  std::mt19937 rng(12345);
  for (std::size_t round = 0; round < rounds; ++round) {
    std::vector<Promise<int>> promises(n);
    std::vector<Future<int>> fs;
    fs.reserve(n);
    for (auto& p : promises) fs.push_back(p.get_future());
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    // A few are done before any range exists.
    for (std::size_t i = 0; i < n / 10; ++i) promises[order[i]].set_result(1);

    std::atomic<std::size_t> yielded{0};
    std::atomic<std::size_t> duplicates{0};
    Bunch bunch(kCompleters + 3, [&](std::size_t t) {
      if (t < kCompleters) {
        for (std::size_t k = n / 10 + t; k < n; k += kCompleters) {
          const std::size_t i = order[k];
          switch (i % 3) {
            case 0:
              promises[i].set_result(1);
              break;
            case 1:
              promises[i].set_exception(std::make_exception_ptr(Boom("x")));
              break;
            default:
              (void)promises[i].get_future().cancel();
          }
        }
      } else if (t == kCompleters) {
        std::vector<char> seen(n, 0);
        for (auto f : as_completed(fs, kGenerous)) {
          EXPECT_TRUE(f.done());
          const auto it = std::find(fs.begin(), fs.end(), f);
          ASSERT_NE(it, fs.end());
          const auto idx = static_cast<std::size_t>(it - fs.begin());
          if (seen[idx]++ != 0) duplicates.fetch_add(1);
          if (!f.cancelled()) (void)f.exception();  // observe, so nothing is reported
          yielded.fetch_add(1);
        }
      } else {
        auto range = as_completed(fs, kGenerous);
        std::size_t k = 0;
        const std::size_t stop_after = (t - kCompleters) * n / 3;
        for (auto it = range.begin(); it != range.end() && k < stop_after; ++it, ++k) {
          EXPECT_TRUE((*it).done());
        }
      }
    });
    bunch.join();
    EXPECT_EQ(yielded.load(), n) << "round " << round;
    EXPECT_EQ(duplicates.load(), 0u);
  }
  EXPECT_EQ(reports_.load(), 0u);
}

// wait() in all three modes against concurrent completions: whatever it returns as done is done,
// and ALL_COMPLETED with a generous timeout returns everything.
TEST_F(FutureStressTest, WaitModesAgainstConcurrentCompletions) {
  const std::size_t rounds = 1500 / kScale;
  constexpr std::size_t kN = 16;
  for (std::size_t round = 0; round < rounds; ++round) {
    std::vector<Promise<int>> promises(kN);
    std::vector<Future<int>> fs;
    for (auto& p : promises) fs.push_back(p.get_future());
    const auto mode = static_cast<ReturnWhen>(round % 3);
    Bunch completers(2, [&](std::size_t t) {
      for (std::size_t i = t; i < kN; i += 2) {
        if (i == 7 && t == 1) {
          promises[i].set_exception(std::make_exception_ptr(Boom("first exception")));
        } else {
          promises[i].set_result(static_cast<int>(i));
        }
      }
    });
    auto r = wait(fs, kGenerous, mode);
    for (const auto& f : r.done) EXPECT_TRUE(f.done());
    EXPECT_EQ(r.done.size() + r.not_done.size(), kN);
    if (mode == ReturnWhen::kAllCompleted) {
      EXPECT_EQ(r.done.size(), kN);
    }
    EXPECT_GE(r.done.size(), 1u);
    completers.join();
    EXPECT_NE(fs[7].exception(), nullptr);
  }
}

// Handles copied and dropped in many threads while the task finishes with an exception: the
// excepthook hears of each unobserved exception exactly once.
TEST_F(FutureStressTest, UnobservedExceptionsAreReportedExactlyOnce) {
  const std::size_t rounds = 400 / kScale;
  constexpr std::size_t kDroppers = 4;
  Barrier barrier(kDroppers + 1);
  for (std::size_t round = 0; round < rounds; ++round) {
    auto made = detail::make_task([]() -> int { throw Boom("unobserved"); });
    std::vector<Future<int>> copies(kDroppers, made.future);
    made.future = Future<int>();
    Bunch bunch(kDroppers + 1, [&](std::size_t i) {
      barrier.wait(kGenerous);
      if (i == kDroppers) {
        made.task->run();
      } else {
        for (int k = 0; k < 8; ++k) {
          Future<int> extra = copies[i];  // churn the count
          (void)extra.done();
        }
        copies[i] = Future<int>();
      }
    });
    bunch.join();
  }
  EXPECT_EQ(reports_.load(), rounds);
}

}  // namespace
