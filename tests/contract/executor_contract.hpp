// tests/contract/executor_contract.hpp — the typed contract suite every concur::Executor passes
// (STYLE.md rule 17): the thread pool today, the process pool, the coroutine loop and the Redis
// executor later. An executor joins with one line in its own test file:
//
//   struct MyFactory {
//     static std::unique_ptr<concur::Executor> make(std::size_t workers);  // max_workers()
//   };
//   INSTANTIATE_TYPED_TEST_SUITE_P(MyExecutor, ExecutorContract, MyFactory);
//
// The tasks share memory with the test (they capture Events, counters and std::ref arguments),
// as a thread pool's and an event loop's tasks do; an executor whose tasks run in another address
// space needs a factory that runs them where that holds.
//
// Covered, with the CPython test each case ports (Lib/test/test_concurrent_futures/):
// - submit: a value (executor.py test_submit), positional arguments standing in for keywords
//   (test_submit_keyword), void, decayed copies of the arguments, std::ref, move-only arguments
//   and results, submits from several threads at every worker count, a submit from inside a task;
//   an exception reaches the future with its type and message (a std, a concur and a non-std one).
// - result / exception: timeouts (duration, zero, time point) while the task runs, then the value.
// - cancel: a queued task (the only worker held by a gate) is cancelled and never runs; a running
//   task is not (false); a stop-token task gets a stop request; a finished one is not.
// - map: input order at every worker count (test_map), several ranges zipped with the shortest
//   winning, an rvalue container, an exception at its position (test_map_exception), the timeout
//   (test_map_timeout), the current future cancelled when the timeout fires
//   (test_thread_pool.py test_executor_map_current_future_cancel), a lazy window over an endless
//   std::views::iota, the window counted in pulled inputs (MapOptions::window, default
//   2 × max_workers()), eager submission without iteration (test_map_submits_without_iteration),
//   eager refusing an unsized range, an empty input, no reference kept to taken results
//   (test_free_reference), a shutdown right after map (test_shutdown_race_issue12456).
// - shutdown (test_shutdown.py): idempotent; submit and map afterwards raise RuntimeError with
//   Python's message (test_run_after_shutdown); wait=true waits for running and queued tasks
//   (test_hang_issue12364, test_threads_terminate); wait=false returns at once yet the tasks
//   finish (test_shutdown_no_wait, test_hang_gh83386); cancel_futures cancels what has not started
//   (test_cancel_futures); a cancelled submit right before shutdown (test_hang_gh94440); the
//   destructor is shutdown(wait=true) (test_del_shutdown, test_context_manager_shutdown).
// - the executor's futures with as_completed, wait (FIRST_COMPLETED / FIRST_EXCEPTION /
//   ALL_COMPLETED), add_done_callback and then(executor, fn); max_workers() tasks run at once and
//   no more (test_saturation); the task's callable is released once it ran
//   (test_no_stale_references).
// Every test captures the excepthook and fails on a report it did not expect; every wait is
// bounded (a task blocked on a Gate that is never opened fails with TimeoutError after kGenerous).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"
#include "concur/sync/event.hpp"
#include "concur/thread.hpp"
#include "support/hook_support.hpp"
#include "support/test_support.hpp"

namespace concur::testing::contract {

// Gate (what a test holds tasks on) and OpenAtExit: tests/support/hook_support.hpp.

// ContractError stands in for the exceptions CPython's tests raise from tasks.
struct ContractError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ZeroDivisionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Tracked counts its live instances (test_free_reference: who still holds a result).
struct Tracked {
  static inline std::atomic<long> live{0};
  explicit Tracked(int x) : v(x) { live.fetch_add(1); }
  Tracked(const Tracked& o) : v(o.v) { live.fetch_add(1); }
  Tracked& operator=(const Tracked&) = default;
  ~Tracked() { live.fetch_sub(1); }
  int v;
};

inline long ipow(long base, int exp) {
  long r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}

// ExecutorContract<Factory>: the fixture. make(workers) builds an executor; the excepthook is
// captured (expect_reports(n) for a test that causes reports) and the thread count must come back
// to its baseline (QuiescentTest).
template <class Factory>
class ExecutorContract : public QuiescentTest {
 protected:
  static std::unique_ptr<Executor> make(std::size_t workers) { return Factory::make(workers); }

  void SetUp() override {
    QuiescentTest::SetUp();
    previous_ = set_excepthook([this](const ExceptHookArgs& a) {
      std::lock_guard lk(mu_);
      reports_.push_back(a.exc_message);
    });
  }
  void TearDown() override {
    set_excepthook(previous_);
    {
      std::lock_guard lk(mu_);
      EXPECT_EQ(reports_.size(), expected_reports_)
          << "excepthook reports, first: " << (reports_.empty() ? "" : reports_.front());
    }
    QuiescentTest::TearDown();
  }
  void expect_reports(std::size_t n) { expected_reports_ = n; }
  std::vector<std::string> reports() {
    std::lock_guard lk(mu_);
    return reports_;
  }

 private:
  ExceptHook previous_;
  std::mutex mu_;
  std::vector<std::string> reports_;
  std::size_t expected_reports_ = 0;
};

TYPED_TEST_SUITE_P(ExecutorContract);

// ==== submit =====================================================================================

// executor.py test_submit: submit(pow, 2, 8).
TYPED_TEST_P(ExecutorContract, SubmitReturnsTheValue) {
  auto ex = this->make(2);
  Future<long> f = ex->submit(ipow, 2L, 8);
  EXPECT_EQ(f.result(kGenerous), 256);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.exception(kGenerous), nullptr);
}

// executor.py test_submit_keyword: C++ has no keywords; every argument is positional, of any type.
TYPED_TEST_P(ExecutorContract, SubmitPassesEveryArgument) {
  auto ex = this->make(2);
  auto mul = [](int x, int y) { return x * y; };
  EXPECT_EQ(ex->submit(mul, 2, 8).result(kGenerous), 16);
  auto capture = [](int a, std::string s, double d) { return std::tuple(a, s, d); };
  EXPECT_EQ(ex->submit(capture, 1, std::string("fn"), 3.5).result(kGenerous),
            std::tuple(1, std::string("fn"), 3.5));
  EXPECT_EQ(ex->submit([] { return 7; }).result(kGenerous), 7);
}

TYPED_TEST_P(ExecutorContract, SubmitVoidFunction) {
  auto ex = this->make(2);
  std::atomic<int> hits{0};
  Future<void> f = ex->submit([&hits] { hits.fetch_add(1); });
  f.result(kGenerous);
  EXPECT_EQ(hits.load(), 1) << "the side effect is visible once result() returned";
  EXPECT_EQ(f.exception(kGenerous), nullptr);
}

// The arguments are decayed copies taken at submit(): changing the originals later is not seen.
TYPED_TEST_P(ExecutorContract, SubmitCopiesItsArguments) {
  Gate gate;
  Event started;
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto blocker = ex->submit([&] {
    started.set();
    gate.pass();
  });
  ASSERT_TRUE(started.wait(kGenerous));
  std::string s = "before";
  std::vector<int> v{1, 2, 3};
  auto f = ex->submit(
      [](const std::string& x, const std::vector<int>& y) { return x + std::to_string(y.size()); },
      s, v);
  s = "after";
  v.clear();
  gate.open();
  EXPECT_EQ(f.result(kGenerous), "before3");
  blocker.result(kGenerous);
}

TYPED_TEST_P(ExecutorContract, SubmitWithStdRefPassesAReference) {
  auto ex = this->make(2);
  int counter = 1;
  ex->submit([](int& c) { c += 5; }, std::ref(counter)).result(kGenerous);
  EXPECT_EQ(counter, 6);
  const std::string text = "abc";
  EXPECT_EQ(ex->submit([](const std::string& t) { return &t; }, std::cref(text)).result(kGenerous),
            &text)
      << "std::cref passes the object itself, not a copy";
}

TYPED_TEST_P(ExecutorContract, SubmitMoveOnlyArgumentAndResult) {
  auto ex = this->make(2);
  Future<std::unique_ptr<int>> f = ex->submit(
      [](std::unique_ptr<int> p) {
        *p += 1;
        return p;
      },
      std::make_unique<int>(41));
  std::unique_ptr<int> r = std::move(f).result(kGenerous);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(*r, 42);
}

TYPED_TEST_P(ExecutorContract, ExceptionReachesTheFutureWithItsTypeAndMessage) {
  auto ex = this->make(2);
  auto f = ex->submit([]() -> int { throw ContractError("boom 42"); });
  try {
    (void)f.result(kGenerous);
    ADD_FAILURE() << "result() returned";
  } catch (const ContractError& e) {
    EXPECT_STREQ(e.what(), "boom 42");
  }
  std::exception_ptr e = f.exception(kGenerous);
  ASSERT_NE(e, nullptr);
  EXPECT_THROW(std::rethrow_exception(e), ContractError);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.cancelled());

  // A concur error keeps its most derived type; a void task and a non-std exception too.
  auto g = ex->submit([] { throw ValueError("bad value"); });
  try {
    g.result(kGenerous);
    ADD_FAILURE() << "result() returned";
  } catch (const ValueError& err) {
    EXPECT_STREQ(err.what(), "ValueError: bad value");
  }
  auto h = ex->submit([]() -> int { throw 7; });
  try {
    (void)h.result(kGenerous);
    ADD_FAILURE() << "result() returned";
  } catch (int x) {
    EXPECT_EQ(x, 7);
  }
}

TYPED_TEST_P(ExecutorContract, SubmitFromManyThreadsAtEveryWorkerCount) {
  constexpr std::size_t kSubmitters = 4;
  constexpr int kPerThread = 200;
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    auto ex = this->make(workers);
    std::array<std::vector<Future<int>>, kSubmitters> fs;
    {
      Bunch submitters(kSubmitters, [&](std::size_t t) {
        for (int i = 0; i < kPerThread; ++i) {
          fs[t].push_back(ex->submit([](int x) { return 2 * x; }, i));
        }
      });
    }
    for (std::size_t t = 0; t < kSubmitters; ++t) {
      ASSERT_EQ(fs[t].size(), static_cast<std::size_t>(kPerThread));
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_EQ(fs[t][static_cast<std::size_t>(i)].result(kGenerous), 2 * i);
      }
    }
  }
}

// A task may submit to its own executor (executor.hpp: "including a task running on the executor
// itself"); here it hands the inner future out instead of waiting on it.
TYPED_TEST_P(ExecutorContract, SubmitFromInsideATask) {
  for (const std::size_t workers : {std::size_t{1}, std::size_t{3}}) {
    auto ex = this->make(workers);
    Executor& e = *ex;
    Future<Future<int>> outer = ex->submit([&e] { return e.submit([] { return 7; }); });
    Future<int> inner = outer.result(kGenerous);
    EXPECT_EQ(inner.result(kGenerous), 7);
  }
}

// ==== result / exception with timeouts ===========================================================

TYPED_TEST_P(ExecutorContract, ResultAndExceptionTimeOutWhileTheTaskRuns) {
  Gate gate;
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto f = ex->submit([&gate] {
    gate.pass();
    return 7;
  });
  const auto took = elapsed([&] { EXPECT_THROW((void)f.result(kShort), TimeoutError); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_THROW((void)f.exception(kShort), TimeoutError);
  EXPECT_THROW((void)f.result(std::chrono::seconds(0)), TimeoutError) << "a zero timeout polls";
  EXPECT_THROW((void)f.result_until(std::chrono::steady_clock::now() + kShort), TimeoutError);
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.wait(std::chrono::milliseconds(1)));
  gate.open();
  EXPECT_EQ(f.result(kGenerous), 7);
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 7) << "a done future answers a zero timeout";
  EXPECT_EQ(f.exception(std::chrono::seconds(0)), nullptr);
}

// ==== cancel
// ======================================================================================

// A task queued behind a busy worker can be cancelled: it never runs, and the tasks behind it do.
TYPED_TEST_P(ExecutorContract, CancelBeforeTheTaskStarts) {
  Gate gate;
  Event started;
  std::atomic<bool> ran{false};
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto blocker = ex->submit([&] {
    started.set();
    gate.pass();
    return 1;
  });
  ASSERT_TRUE(started.wait(kGenerous));
  auto f = ex->submit([&ran] {
    ran = true;
    return 2;
  });
  auto behind = ex->submit([] { return 3; });
  EXPECT_FALSE(f.running());
  EXPECT_FALSE(f.done());
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(f.done());
  EXPECT_TRUE(f.cancel()) << "cancelling a cancelled future succeeds again";
  EXPECT_THROW((void)f.result(kGenerous), CancelledError);
  EXPECT_THROW((void)f.exception(kGenerous), CancelledError);
  gate.open();
  EXPECT_EQ(blocker.result(kGenerous), 1);
  EXPECT_EQ(behind.result(kGenerous), 3);
  ex->shutdown(true);
  EXPECT_FALSE(ran.load()) << "a cancelled task must never run";
}

// Python: cancel() on a running future returns False and the task completes normally.
TYPED_TEST_P(ExecutorContract, CancelOfARunningTaskFails) {
  Gate gate;
  Event started;
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto f = ex->submit([&] {
    started.set();
    gate.pass();
    return 5;
  });
  ASSERT_TRUE(started.wait(kGenerous));
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
  EXPECT_TRUE(f.running());
  gate.open();
  EXPECT_EQ(f.result(kGenerous), 5);
  EXPECT_FALSE(f.cancel()) << "a finished future cannot be cancelled";
  EXPECT_FALSE(f.cancelled());
}

// A task taking a std::stop_token sees cancel()'s stop request while it runs (cancel still
// returns false: the task decides what to return).
TYPED_TEST_P(ExecutorContract, CancelRequestsStopOfARunningStopTokenTask) {
  Event started;
  auto ex = this->make(1);
  auto f = ex->submit(
      [&started](std::stop_token st, int v) {
        started.set();
        const auto deadline = std::chrono::steady_clock::now() + kGenerous;
        while (!st.stop_requested()) {
          if (std::chrono::steady_clock::now() >= deadline) return -1;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return v;
      },
      9);
  ASSERT_TRUE(started.wait(kGenerous));
  EXPECT_FALSE(f.cancel());
  EXPECT_EQ(f.result(kGenerous), 9) << "the task did not see the stop request";
}

// ==== map ========================================================================================

// executor.py test_map: results in input order, whatever order the tasks finish in.
TYPED_TEST_P(ExecutorContract, MapYieldsInInputOrderAtEveryWorkerCount) {
  std::vector<int> a(10), b(10);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 0);
  std::vector<long> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(ipow(i, i));
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    auto ex = this->make(workers);
    auto slow_pow = [](int x, int y) {
      // the early inputs take longest, so completion order differs from input order
      std::this_thread::sleep_for(std::chrono::milliseconds((10 - x) % 4));
      return ipow(x, y);
    };
    std::vector<long> got;
    for (long v : ex->map(slow_pow, a, b)) got.push_back(v);
    EXPECT_EQ(got, expected);
    got.clear();
    for (long v : ex->map(slow_pow, a, b, MapOptions{.window = 3})) got.push_back(v);
    EXPECT_EQ(got, expected);
    got.clear();
    for (long v : ex->map(slow_pow, a, b, MapOptions{.eager = true})) got.push_back(v);
    EXPECT_EQ(got, expected);
  }
}

// Several ranges are zipped: the shortest one ends the map (Python's map(fn, *iterables)).
TYPED_TEST_P(ExecutorContract, MapZipsRangesAndTheShortestWins) {
  auto ex = this->make(2);
  std::vector<int> a{1, 2, 3, 4, 5};
  std::vector<int> b{10, 20, 30};
  std::vector<int> got;
  for (int v :
       ex->map([](int x, int y, int z) { return x + y + z; }, a, b, std::views::iota(100))) {
    got.push_back(v);
  }
  EXPECT_EQ(got, (std::vector<int>{111, 123, 135}));
  // An rvalue container is kept alive by the range.
  got.clear();
  for (int v : ex->map([](int x) { return -x; }, std::vector<int>{4, 5, 6})) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{-4, -5, -6}));
}

// executor.py test_map_exception: divmod(1, 0) raises when its result is taken, not before.
TYPED_TEST_P(ExecutorContract, MapRethrowsAnExceptionAtItsPosition) {
  auto ex = this->make(2);
  auto divmod = [](int a, int b) {
    if (b == 0) throw ZeroDivisionError("integer division or modulo by zero");
    return std::pair(a / b, a % b);
  };
  auto results = ex->map(divmod, std::vector<int>{1, 1, 1, 1}, std::vector<int>{2, 3, 0, 5});
  auto it = results.begin();
  ASSERT_FALSE(it == results.end());
  EXPECT_EQ(*it, std::pair(0, 1));
  ++it;
  ASSERT_FALSE(it == results.end());
  EXPECT_EQ(*it, std::pair(0, 1));
  ++it;
  ASSERT_FALSE(it == results.end());
  try {
    (void)*it;
    ADD_FAILURE() << "the third result did not raise";
  } catch (const ZeroDivisionError& e) {
    EXPECT_STREQ(e.what(), "integer division or modulo by zero");
  }
}

// executor.py test_map_timeout: the results that arrive in time are yielded, then TimeoutError;
// the timeout counts from the map() call.
TYPED_TEST_P(ExecutorContract, MapTimeout) {
  Gate gate;
  auto ex = this->make(2);
  OpenAtExit opener(gate);
  constexpr auto kTimeout = std::chrono::seconds(1);  // long enough for the two quick tasks
  std::vector<int> results;
  const auto t0 = std::chrono::steady_clock::now();
  auto blocking = [&gate](int block) {
    if (block != 0) gate.pass();
    return block;
  };
  try {
    for (int v : ex->map(blocking, std::vector<int>{0, 0, 1}, MapOptions{.timeout = kTimeout})) {
      results.push_back(v);
    }
    ADD_FAILURE() << "expected TimeoutError";
  } catch (const TimeoutError&) {
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t0, kTimeout - kSlack);
  EXPECT_EQ(results, (std::vector<int>{0, 0}));
}

// test_thread_pool.py test_executor_map_current_future_cancel: when taking a result times out,
// that task (not started: the only worker is busy) is cancelled, and so are the ones still in the
// window when the range goes away — neither ever runs.
TYPED_TEST_P(ExecutorContract, MapTimeoutCancelsTheCurrentAndThePendingTasks) {
  Event stop;
  std::mutex mu;
  std::vector<std::string> log;
  auto log_n_wait = [&](const std::string& ident) {
    {
      std::lock_guard lk(mu);
      log.push_back(ident + " started");
    }
    const bool stopped = stop.wait(kGenerous);
    {
      std::lock_guard lk(mu);
      log.push_back(ident + " stopped");
    }
    return stopped;
  };
  {
    auto ex = this->make(1);
    auto first = ex->submit(log_n_wait, std::string("first"));
    {
      auto gen = ex->map(log_n_wait, std::vector<std::string>{"second", "third"},
                         MapOptions{.timeout = std::chrono::nanoseconds(0)});
      EXPECT_THROW((void)*gen.begin(), TimeoutError);
    }
    stop.set();
    EXPECT_TRUE(first.result(kGenerous));
  }  // the destructor waits: a task left queued would run here
  std::lock_guard lk(mu);
  EXPECT_EQ(log, (std::vector<std::string>{"first started", "first stopped"}));
}

// map() is lazy: over an endless range it submits at most `window` tasks ahead of the consumer,
// and leaving the loop early cancels the ones not started.
TYPED_TEST_P(ExecutorContract, MapIsLazyOverAnEndlessRange) {
  constexpr int kTake = 100;
  constexpr std::size_t kWindow = 4;
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    std::atomic<int> calls{0};
    auto ex = this->make(workers);
    int n = 0;
    {
      auto doubled = ex->map(
          [&calls](int x) {
            calls.fetch_add(1);
            return 2 * x;
          },
          std::views::iota(0), MapOptions{.window = kWindow});
      for (int v : doubled) {
        EXPECT_EQ(v, 2 * n);
        if (++n == kTake) break;
      }
    }
    ex->shutdown(true);
    EXPECT_EQ(n, kTake);
    EXPECT_GE(calls.load(), kTake);
    EXPECT_LE(calls.load(), kTake + static_cast<int>(kWindow));
    // The default window works over an endless range too.
    auto ex2 = this->make(workers);
    n = 0;
    for (int v : ex2->map([](int x) { return x + 1; }, std::views::iota(0))) {
      EXPECT_EQ(v, n + 1);
      if (++n == kTake) break;
    }
    EXPECT_EQ(n, kTake);
  }
}

// The window is exact: map() pulls `window` inputs at once, then one more per result taken.
// Counting the inputs pulled (a transform view) shows it without timing.
TYPED_TEST_P(ExecutorContract, MapWindowCountsInputsPulledAhead) {
  auto ex = this->make(3);
  int pulled = 0;  // map pulls its inputs in the calling thread
  auto inputs = std::views::iota(0, 50) | std::views::transform([&pulled](int i) {
                  ++pulled;
                  return i;
                });
  {
    auto r = ex->map([](int x) { return x; }, inputs, MapOptions{.window = 3});
    EXPECT_EQ(pulled, 3);
    auto it = r.begin();
    EXPECT_EQ(*it, 0);
    EXPECT_EQ(pulled, 4);
    ++it;
    EXPECT_EQ(*it, 1);
    EXPECT_EQ(pulled, 5);
  }
  pulled = 0;
  {
    auto r = ex->map([](int x) { return x; }, inputs);
    EXPECT_EQ(pulled, static_cast<int>(2 * ex->max_workers())) << "default window: 2 × max_workers";
  }
  pulled = 0;
  {
    auto r = ex->map([](int x) { return x; }, inputs, MapOptions{.window = 3, .eager = true});
    EXPECT_EQ(pulled, 50) << "eager ignores the window";
  }
}

// test_thread_pool.py test_map_submits_without_iteration (issue 11777): eager map submits every
// input without any result being taken; a lazy one exactly its window.
TYPED_TEST_P(ExecutorContract, MapEagerSubmitsWithoutIteration) {
  std::mutex mu;
  std::vector<int> finished;
  auto record = [&](int n) {
    std::lock_guard lk(mu);
    finished.push_back(n);
    return n;
  };
  {
    auto ex = this->make(2);
    auto results = ex->map(record, std::views::iota(0, 10), MapOptions{.eager = true});
    ex->shutdown(true);
    std::lock_guard lk(mu);
    std::sort(finished.begin(), finished.end());
    EXPECT_EQ(finished, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    finished.clear();
  }
  {
    auto ex = this->make(2);
    auto results = ex->map(record, std::views::iota(0, 10), MapOptions{.window = 3});
    ex->shutdown(true);
    std::lock_guard lk(mu);
    std::sort(finished.begin(), finished.end());
    EXPECT_EQ(finished, (std::vector<int>{0, 1, 2}));
  }
}

TYPED_TEST_P(ExecutorContract, MapEagerNeedsASizedRange) {
  auto ex = this->make(2);
  std::atomic<int> calls{0};
  auto count = [&calls](int x) {
    calls.fetch_add(1);
    return x;
  };
  EXPECT_THROW((void)ex->map(count, std::views::iota(0), MapOptions{.eager = true}), ValueError);
  ex->shutdown(true);
  EXPECT_EQ(calls.load(), 0) << "nothing is submitted when eager is refused";
}

TYPED_TEST_P(ExecutorContract, MapOverAnEmptyRange) {
  auto ex = this->make(2);
  std::atomic<int> calls{0};
  auto results = ex->map(
      [&calls](int x) {
        calls.fetch_add(1);
        return x;
      },
      std::vector<int>{});
  EXPECT_TRUE(results.begin() == results.end());
  ex->shutdown(true);
  EXPECT_EQ(calls.load(), 0);
}

// executor.py test_free_reference (issue 14406): the range keeps no reference to a result it gave
// out: once the loop is over, no result object is left alive while the range still exists.
TYPED_TEST_P(ExecutorContract, MapKeepsNoReferenceToTakenResults) {
  auto ex = this->make(2);
  ASSERT_EQ(Tracked::live.load(), 0);
  {
    auto results = ex->map([](int i) { return Tracked(i); }, std::views::iota(0, 10));
    int i = 0;
    for (const Tracked& t : results) {
      EXPECT_EQ(t.v, i++);
      EXPECT_LE(Tracked::live.load(), static_cast<long>(2 * ex->max_workers() + 2));
    }
    EXPECT_EQ(i, 10);
    EXPECT_TRUE(wait_until([] { return Tracked::live.load() == 0; }))
        << Tracked::live.load() << " results still alive";
  }
  EXPECT_EQ(Tracked::live.load(), 0);
}

// executor.py test_shutdown_race_issue12456: map over max_workers + 1 inputs, then shutdown
// at once; nothing hangs and every result is there.
TYPED_TEST_P(ExecutorContract, MapThenShutdownAtOnce) {
  for (const std::size_t workers : kThreadCounts) {
    auto ex = this->make(workers);
    auto results = ex->map([](int x) { return std::to_string(x); },
                           std::vector<int>(workers + 1, 2), MapOptions{.eager = true});
    ex->shutdown();
    std::size_t n = 0;
    for (const std::string& s : results) {
      EXPECT_EQ(s, "2");
      ++n;
    }
    EXPECT_EQ(n, workers + 1);
  }
}

// ---- eager maps of many inputs (range tasks on in-process executors, one task per input
// elsewhere: the same contract either way) ----

// Many inputs of uneven cost, several zipped sized ranges: every result in input order, at every
// worker count, also when there are more workers than inputs and for a single input.
TYPED_TEST_P(ExecutorContract, MapEagerManyInputsInOrderAtEveryWorkerCount) {
  constexpr int kN = 1000;
  std::vector<int> a(kN);
  std::iota(a.begin(), a.end(), 0);
  auto uneven = [](int x, long y) {
    long s = y;  // every 16th input is ~100x slower: lanes must be rebalanced
    for (int i = 0; i < (x % 16 == 0 ? 20000 : 200); ++i) s = (s * 31 + i) % 1000003;
    return std::pair<int, long>(x, s);
  };
  std::vector<std::pair<int, long>> expected;
  for (int i = 0; i < kN; ++i) expected.push_back(uneven(i, 2L * i));
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    auto ex = this->make(workers);
    std::vector<std::pair<int, long>> got;
    for (const auto& v :
         ex->map(uneven, a,
                 std::views::iota(0L, 5000L) | std::views::transform([](long i) { return 2 * i; }),
                 MapOptions{.eager = true})) {
      got.push_back(v);
    }
    EXPECT_EQ(got, expected);
    // More workers than inputs, and one input.
    got.clear();
    for (const auto& v : ex->map(uneven, std::vector<int>{0, 1, 2}, std::vector<long>{0, 2, 4, 6},
                                 MapOptions{.eager = true})) {
      got.push_back(v);
    }
    EXPECT_EQ(got, (std::vector<std::pair<int, long>>(expected.begin(), expected.begin() + 3)));
    std::vector<int> one;
    for (int v :
         ex->map([](int x) { return x * 7; }, std::vector<int>{6}, MapOptions{.eager = true}))
      one.push_back(v);
    EXPECT_EQ(one, std::vector<int>{42});
  }
}

// Python's map submits every input first: an exception is raised at its position, and the later
// inputs run anyway. Taking the next result after the exception goes on with the next input.
TYPED_TEST_P(ExecutorContract, MapEagerExceptionAtItsPositionAndTheLaterInputsStillRun) {
  constexpr int kN = 200;
  constexpr int kBad = 37;
  for (const std::size_t workers : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    std::atomic<int> ran{0};
    auto ex = this->make(workers);
    auto fn = [&ran](int x) {
      ran.fetch_add(1);
      if (x == kBad) throw ContractError("bad input " + std::to_string(x));
      return x + 1;
    };
    auto results = ex->map(fn, std::views::iota(0, kN), MapOptions{.eager = true});
    auto it = results.begin();
    for (int i = 0; i < kBad; ++i, ++it) {
      ASSERT_FALSE(it == results.end());
      EXPECT_EQ(*it, i + 1);
    }
    try {
      (void)*it;
      ADD_FAILURE() << "input " << kBad << " did not raise";
    } catch (const ContractError& e) {
      EXPECT_STREQ(e.what(), "bad input 37");
    }
    EXPECT_TRUE(wait_until([&] { return ran.load() == kN; }))
        << "only " << ran.load() << " of " << kN << " inputs ran";
    EXPECT_EQ(*it, kBad + 2) << "the failed input is consumed; the next result follows";
    ++it;
    int n = kBad + 2;
    for (; !(it == results.end()); ++it) EXPECT_EQ(*it, ++n);
    EXPECT_EQ(n, kN);
  }
}

// An exception nobody took goes to the excepthook once the range is gone, as for a dropped
// future; an input error (a throwing input view) ends the results where it happened.
TYPED_TEST_P(ExecutorContract, MapEagerUntakenExceptionIsReportedAndAnInputErrorEndsTheResults) {
  this->expect_reports(1);
  {
    std::atomic<int> ran{0};
    auto ex = this->make(2);
    {
      auto results = ex->map(
          [&ran](int x) {
            ran.fetch_add(1);
            if (x == 5) throw ContractError("never taken");
            return x;
          },
          std::views::iota(0, 10), MapOptions{.eager = true});
      EXPECT_EQ(*results.begin(), 0);
      ASSERT_TRUE(wait_until([&] { return ran.load() == 10; }));
    }
    ex->shutdown(true);
  }
  ASSERT_TRUE(wait_until([&] { return this->reports().size() == 1; }));
  EXPECT_EQ(this->reports()[0], "never taken");

  auto ex = this->make(2);
  auto inputs = std::views::iota(0, 10) | std::views::transform([](int i) {
                  if (i == 4) throw ContractError("input 4 cannot be read");
                  return i;
                });
  std::vector<int> got;
  try {
    for (int v : ex->map([](int x) { return -x; }, inputs, MapOptions{.eager = true})) {
      got.push_back(v);
    }
    ADD_FAILURE() << "the input error was not raised";
  } catch (const ContractError& e) {
    EXPECT_STREQ(e.what(), "input 4 cannot be read");
  }
  EXPECT_EQ(got, (std::vector<int>{0, -1, -2, -3}));
}

// Destroying the range mid-iteration cancels every input not started: only the ones running then
// (one per worker, held on a gate) ever run; the executor is usable afterwards.
TYPED_TEST_P(ExecutorContract, MapEagerRangeDestroyedMidIterationRunsNoMoreInputs) {
  for (const std::size_t workers : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    Gate gate;
    std::atomic<int> started{0};
    auto ex = this->make(workers);
    OpenAtExit opener(gate);
    {
      auto results = ex->map(
          [&](int x) {
            started.fetch_add(1);
            if (x >= 2) gate.pass();
            return x;
          },
          std::views::iota(0, 100), MapOptions{.eager = true});
      auto it = results.begin();
      EXPECT_EQ(*it, 0);
      ++it;
      EXPECT_EQ(*it, 1);
      ASSERT_TRUE(wait_until([&] { return started.load() == static_cast<int>(workers) + 2; }));
    }  // the range goes away while `workers` inputs wait on the gate
    gate.open();
    ex->shutdown(true);
    EXPECT_EQ(started.load(), static_cast<int>(workers) + 2);
    auto again = this->make(workers);
    EXPECT_EQ(again->submit([] { return 5; }).result(kGenerous), 5);
  }
}

// The timeout of an eager map: the results ready in time, then TimeoutError at the first input
// still running; the range's destruction then cancels the inputs not started.
TYPED_TEST_P(ExecutorContract, MapEagerTimeoutThenTheRestIsCancelled) {
  Gate gate;
  std::atomic<int> started{0};
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  std::vector<int> got;
  {
    auto results = ex->map(
        [&](int x) {
          started.fetch_add(1);
          if (x == 3) gate.pass();
          return x;
        },
        std::views::iota(0, 50),
        MapOptions{.timeout = std::chrono::milliseconds(200), .eager = true});
    try {
      for (int v : results) got.push_back(v);
      ADD_FAILURE() << "expected TimeoutError";
    } catch (const TimeoutError&) {
    }
  }
  gate.open();
  ex->shutdown(true);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(started.load(), 4) << "inputs after the one that timed out ran";
}

// shutdown(cancel_futures = true) cancels the inputs of an eager map that have not started (the
// only worker is busy): each raises CancelledError at its position, and none runs.
TYPED_TEST_P(ExecutorContract, MapEagerShutdownCancelFuturesCancelsTheInputsNotStarted) {
  Gate gate;
  Event started;
  std::atomic<int> ran{0};
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto blocker = ex->submit([&] {
    started.set();
    gate.pass();
    return -1;
  });
  ASSERT_TRUE(started.wait(kGenerous));
  auto results = ex->map(
      [&ran](int x) {
        ran.fetch_add(1);
        return x;
      },
      std::views::iota(0, 10), MapOptions{.eager = true});
  ex->shutdown(false, true);
  gate.open();
  EXPECT_EQ(blocker.result(kGenerous), -1);
  auto it = results.begin();
  for (int i = 0; i < 10; ++i) {
    ASSERT_FALSE(it == results.end());
    EXPECT_THROW((void)*it, CancelledError) << "input " << i;
  }
  EXPECT_TRUE(it == results.end());
  ex->shutdown(true);
  EXPECT_EQ(ran.load(), 0);
}

// The inputs are copied once, in the calling thread; each copy is released once its input ran
// (test_no_stale_references for map), and each result once taken.
TYPED_TEST_P(ExecutorContract, MapEagerReleasesInputsOnceRunAndResultsOnceTaken) {
  std::vector<std::shared_ptr<int>> inputs;
  for (int i = 0; i < 20; ++i) inputs.push_back(std::make_shared<int>(i));
  auto ex = this->make(2);
  ASSERT_EQ(Tracked::live.load(), 0);
  {
    auto results = ex->map([](const std::shared_ptr<int>& p) { return Tracked(*p); }, inputs,
                           MapOptions{.eager = true});
    int i = 0;
    for (const Tracked& t : results) EXPECT_EQ(t.v, i++);
    EXPECT_EQ(i, 20);
    EXPECT_TRUE(wait_until([&] {
      return std::all_of(inputs.begin(), inputs.end(),
                         [](const std::shared_ptr<int>& p) { return p.use_count() == 1; });
    })) << "an input copy outlived its task";
    EXPECT_TRUE(wait_until([] { return Tracked::live.load() == 0; }))
        << Tracked::live.load() << " taken results still alive";
  }
  EXPECT_EQ(Tracked::live.load(), 0);
}

// ==== shutdown ===================================================================================

TYPED_TEST_P(ExecutorContract, ShutdownIsIdempotent) {
  auto ex = this->make(2);
  auto f = ex->submit([] { return 1; });
  ex->shutdown();
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 1) << "shutdown(wait=true) returned before the task";
  ex->shutdown();
  ex->shutdown(false);
  ex->shutdown(true, true);
  auto unused = this->make(3);
  unused->shutdown(false);
  unused->shutdown(true);
}

// test_shutdown.py test_run_after_shutdown (and Python's message).
TYPED_TEST_P(ExecutorContract, SubmitAfterShutdownRaisesRuntimeError) {
  for (const bool wait : {true, false}) {
    auto ex = this->make(2);
    (void)ex->submit([] { return 0; }).result(kGenerous);
    ex->shutdown(wait);
    try {
      (void)ex->submit(ipow, 2L, 5);
      ADD_FAILURE() << "submit() after shutdown(" << wait << ") succeeded";
    } catch (const RuntimeError& e) {
      EXPECT_STREQ(e.what(), "RuntimeError: cannot schedule new futures after shutdown");
    }
    EXPECT_THROW((void)ex->map([](int x) { return x; }, std::vector<int>{1, 2}), RuntimeError);
  }
  auto never_used = this->make(2);
  never_used->shutdown();
  EXPECT_THROW((void)never_used->submit([] { return 0; }), RuntimeError);
}

// test_shutdown.py test_hang_issue12364: shutdown(wait=true) returns once every submitted task,
// running or queued, has finished.
TYPED_TEST_P(ExecutorContract, ShutdownWaitsForRunningAndQueuedTasks) {
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    auto ex = this->make(workers);
    std::vector<Future<int>> fs;
    for (int i = 0; i < 50; ++i) {
      fs.push_back(ex->submit([i] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return i;
      }));
    }
    ex->shutdown();
    for (int i = 0; i < 50; ++i) {
      const Future<int>& f = fs[static_cast<std::size_t>(i)];
      ASSERT_TRUE(f.done()) << "task " << i << " still pending after shutdown(wait=true)";
      EXPECT_EQ(f.result(std::chrono::seconds(0)), i);
    }
  }
}

// shutdown(wait=true) blocks while a task runs: the task's gate is opened by another thread, and
// shutdown returns only after that.
TYPED_TEST_P(ExecutorContract, ShutdownWaitBlocksUntilTheRunningTaskEnds) {
  Gate gate;
  Event started;
  std::atomic<bool> opened{false};
  auto ex = this->make(1);
  OpenAtExit open_gate(gate);
  auto f = ex->submit([&] {
    started.set();
    gate.pass();
    return 1;
  });
  ASSERT_TRUE(started.wait(kGenerous));
  Bunch opener(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    opened = true;
    gate.open();
  });
  ex->shutdown(true);
  EXPECT_TRUE(opened.load()) << "shutdown(wait=true) returned while the task was still blocked";
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 1);
}

// test_shutdown.py test_shutdown_no_wait / test_hang_gh83386: shutdown(wait=false) returns while a
// task is blocked; that task and the queued one behind it still finish (no cancel_futures).
TYPED_TEST_P(ExecutorContract, ShutdownWithoutWaitReturnsAtOnceYetTasksFinish) {
  Gate gate;
  Event started;
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto running = ex->submit([&] {
    started.set();
    gate.pass();
    return 1;
  });
  auto queued = ex->submit([] { return 2; });
  ASSERT_TRUE(started.wait(kGenerous));
  ex->shutdown(false);
  EXPECT_FALSE(running.done()) << "shutdown(wait=false) waited for the running task";
  EXPECT_FALSE(queued.cancelled());
  gate.open();
  EXPECT_EQ(running.result(kGenerous), 1);
  EXPECT_EQ(queued.result(kGenerous), 2);

  // test_shutdown_no_wait: the results of a map are all computed after shutdown(wait=false).
  auto ex2 = this->make(5);
  auto res = ex2->map([](int v) { return v < 0 ? -v : v; }, std::views::iota(-5, 5),
                      MapOptions{.eager = true});
  ex2->shutdown(false);
  std::vector<int> got;
  for (int v : res) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
}

// test_shutdown.py test_cancel_futures: with the only worker busy, every queued task is cancelled
// by the time shutdown(cancel_futures=true) returns, and none of them runs.
TYPED_TEST_P(ExecutorContract, ShutdownCancelFuturesCancelsQueuedTasks) {
  Gate gate;
  Event started;
  std::atomic<int> ran{0};
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto running = ex->submit([&] {
    started.set();
    gate.pass();
    return -1;
  });
  ASSERT_TRUE(started.wait(kGenerous));
  std::vector<Future<int>> queued;
  for (int i = 0; i < 20; ++i) {
    queued.push_back(ex->submit([&ran, i] {
      ran.fetch_add(1);
      return i;
    }));
  }
  ex->shutdown(false, true);
  for (auto& f : queued) {
    EXPECT_TRUE(f.cancelled());
    EXPECT_THROW((void)f.result(std::chrono::seconds(0)), CancelledError);
  }
  EXPECT_FALSE(running.cancelled()) << "a running task is not cancelled";
  gate.open();
  ex->shutdown(true);
  EXPECT_EQ(running.result(std::chrono::seconds(0)), -1);
  EXPECT_EQ(ran.load(), 0);
}

// test_cancel_futures with several workers: each future ends cancelled or finished cleanly, and
// both happen (50 tasks of 5 ms, at most 3 workers: the queue cannot be drained at once).
TYPED_TEST_P(ExecutorContract, ShutdownCancelFuturesWithSeveralWorkers) {
  for (const std::size_t workers : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    auto ex = this->make(workers);
    std::vector<Future<int>> fs;
    for (int i = 0; i < 50; ++i) {
      fs.push_back(ex->submit([i] {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return i;
      }));
    }
    ex->shutdown(true, true);
    std::size_t cancelled = 0;
    for (int i = 0; i < 50; ++i) {
      const Future<int>& f = fs[static_cast<std::size_t>(i)];
      ASSERT_TRUE(f.done()) << "future " << i << " left pending";
      if (f.cancelled()) {
        ++cancelled;
      } else {
        EXPECT_EQ(f.exception(std::chrono::seconds(0)), nullptr);
        EXPECT_EQ(f.result(std::chrono::seconds(0)), i);
      }
    }
    EXPECT_GT(cancelled, 0U);
  }
}

// test_shutdown.py test_hang_gh94440: a future submitted and cancelled right before
// shutdown(wait=true) does not make it hang.
TYPED_TEST_P(ExecutorContract, ShutdownAfterACancelledSubmitDoesNotHang) {
  auto ex = this->make(1);
  (void)ex->submit([] { return 0; }).result(kGenerous);
  for (int i = 0; i < 20; ++i) (void)ex->submit([] { return 0; }).cancel();
  in_thread([&] { ex->shutdown(true); });
}

// test_shutdown.py test_del_shutdown / test_context_manager_shutdown: destroying the executor
// waits for every task, and the results of an eager map are still there afterwards.
TYPED_TEST_P(ExecutorContract, DestructorShutsDownAndWaits) {
  std::atomic<int> finished{0};
  std::vector<Future<int>> fs;
  std::optional<std::vector<int>> mapped;
  {
    auto ex = this->make(2);
    for (int i = 0; i < 10; ++i) {
      fs.push_back(ex->submit([&finished, i] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        finished.fetch_add(1);
        return i;
      }));
    }
    auto res = ex->map([](int v) { return v < 0 ? -v : v; }, std::views::iota(-5, 5),
                       MapOptions{.eager = true});
    ex.reset();
    EXPECT_EQ(finished.load(), 10) << "the destructor returned before the tasks finished";
    mapped.emplace();
    for (int v : res) mapped->push_back(v);
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(std::chrono::seconds(0)), i);
  }
  EXPECT_EQ(*mapped, (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
}

TYPED_TEST_P(ExecutorContract, DestructorWaitsForARunningTask) {
  Gate gate;
  Event started;
  std::atomic<bool> opened{false};
  Future<int> f;
  {
    auto ex = this->make(2);
    OpenAtExit open_gate(gate);
    f = ex->submit([&] {
      started.set();
      gate.pass();
      return 3;
    });
    ASSERT_TRUE(started.wait(kGenerous));
    Bunch opener(1, [&](std::size_t) {
      std::this_thread::sleep_for(kShort);
      opened = true;
      gate.open();
    });
    ex.reset();
    EXPECT_TRUE(opened.load()) << "the destructor returned while the task was still blocked";
  }
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 3);
}

// ==== the executor's futures with as_completed / wait / callbacks / then =========================

// The tasks finish in the order the test opens their gates; as_completed follows it.
TYPED_TEST_P(ExecutorContract, AsCompletedYieldsInCompletionOrder) {
  std::array<Gate, 3> gates;
  auto ex = this->make(3);
  OpenAtExit o0(gates[0]), o1(gates[1]), o2(gates[2]);
  std::vector<Future<int>> fs;
  for (int i = 0; i < 3; ++i) {
    fs.push_back(ex->submit([&g = gates[static_cast<std::size_t>(i)], i] {
      g.pass();
      return i;
    }));
  }
  auto completed = as_completed(fs, kGenerous);
  auto it = completed.begin();
  for (const int k : {2, 0, 1}) {
    gates[static_cast<std::size_t>(k)].open();
    ASSERT_FALSE(it == completed.end());
    Future<int> f = *it;
    EXPECT_TRUE(f == fs[static_cast<std::size_t>(k)]) << "expected future " << k;
    EXPECT_EQ(f.result(std::chrono::seconds(0)), k);
    ++it;
  }
  EXPECT_TRUE(it == completed.end());
}

TYPED_TEST_P(ExecutorContract, AsCompletedTimesOutOnAPendingTask) {
  Gate gate;
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto done = ex->submit([] { return 1; });
  ASSERT_EQ(done.result(kGenerous), 1);
  auto blocked = ex->submit([&gate] {
    gate.pass();
    return 2;
  });
  auto completed = as_completed(std::vector<Future<int>>{done, blocked}, kShort);
  auto it = completed.begin();
  EXPECT_TRUE(*it == done);
  ++it;
  try {
    (void)*it;
    ADD_FAILURE() << "as_completed did not time out";
  } catch (const TimeoutError& e) {
    EXPECT_STREQ(e.what(), "TimeoutError: 1 (of 2) futures unfinished");
  }
  gate.open();
  ASSERT_EQ(blocked.result(kGenerous), 2);
  EXPECT_TRUE(*it == blocked) << "the range stays usable after a timeout";
}

TYPED_TEST_P(ExecutorContract, WaitReturnWhenModes) {
  Gate gate;
  auto ex = this->make(2);
  OpenAtExit opener(gate);
  auto quick = ex->submit([] { return 1; });
  auto slow = ex->submit([&gate] {
    gate.pass();
    return 2;
  });
  auto r = wait(std::vector<Future<int>>{quick, slow}, kGenerous, FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1U);
  ASSERT_EQ(r.not_done.size(), 1U);
  EXPECT_TRUE(r.done[0] == quick);
  EXPECT_TRUE(r.not_done[0] == slow);

  auto r2 = wait(std::vector<Future<int>>{quick, slow}, kShort, ALL_COMPLETED);
  EXPECT_EQ(r2.done.size(), 1U);
  ASSERT_EQ(r2.not_done.size(), 1U) << "ALL_COMPLETED cannot be met while slow is blocked";
  EXPECT_TRUE(r2.not_done[0] == slow);

  auto bad = ex->submit([]() -> int { throw ContractError("bad"); });
  auto r3 = wait(std::vector<Future<int>>{slow, bad}, kGenerous, FIRST_EXCEPTION);
  ASSERT_EQ(r3.done.size(), 1U);
  EXPECT_TRUE(r3.done[0] == bad);
  ASSERT_EQ(r3.not_done.size(), 1U);
  EXPECT_TRUE(r3.not_done[0] == slow);
  EXPECT_THROW((void)bad.result(kGenerous), ContractError);

  gate.open();
  auto r4 = wait(std::vector<Future<int>>{quick, slow, bad}, kGenerous);
  EXPECT_EQ(r4.done.size(), 3U);
  EXPECT_TRUE(r4.not_done.empty());
}

TYPED_TEST_P(ExecutorContract, AddDoneCallbackOnTheExecutorsFutures) {
  Gate gate;
  Event called;
  auto ex = this->make(1);
  OpenAtExit opener(gate);
  auto f = ex->submit([&gate] {
    gate.pass();
    return 5;
  });
  std::atomic<int> calls{0};
  std::atomic<int> seen{0};
  f.add_done_callback([&](const Future<int>& g) {
    seen = g.result();
    calls.fetch_add(1);
    called.set();
  });
  EXPECT_EQ(calls.load(), 0) << "the callback ran before the task finished";
  gate.open();
  ASSERT_TRUE(called.wait(kGenerous));
  EXPECT_EQ(seen.load(), 5);
  // On a done future the callback runs at once, in this thread.
  const ThreadRef me = current_thread();
  bool here = false;
  f.add_done_callback([&](const Future<int>&) { here = current_thread() == me; });
  EXPECT_TRUE(here);
  EXPECT_EQ(calls.load(), 1);

  // A cancelled (queued) task's callback runs with a cancelled future.
  Gate gate2;
  Event started;
  OpenAtExit opener2(gate2);
  auto blocker = ex->submit([&] {
    started.set();
    gate2.pass();
  });
  ASSERT_TRUE(started.wait(kGenerous));
  auto c = ex->submit([] { return 0; });
  bool saw_cancelled = false;
  c.add_done_callback([&](const Future<int>& g) { saw_cancelled = g.cancelled(); });
  EXPECT_TRUE(c.cancel());
  EXPECT_TRUE(saw_cancelled) << "cancel() runs the callbacks in the cancelling thread";
  gate2.open();
  blocker.result(kGenerous);
}

// A throwing callback goes to the excepthook; the future and the later callbacks are unaffected.
TYPED_TEST_P(ExecutorContract, ThrowingCallbackGoesToTheExcepthook) {
  this->expect_reports(1);
  auto ex = this->make(1);
  auto f = ex->submit([] { return 1; });
  ASSERT_EQ(f.result(kGenerous), 1);
  bool second = false;
  f.add_done_callback([](const Future<int>&) { throw ContractError("callback failed"); });
  f.add_done_callback([&](const Future<int>&) { second = true; });
  EXPECT_TRUE(second);
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 1);
  const auto reports = this->reports();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0], "callback failed");
}

TYPED_TEST_P(ExecutorContract, ThenOnTheExecutor) {
  Gate gate;
  auto ex = this->make(2);
  OpenAtExit opener(gate);
  auto source = ex->submit([&gate] {
    gate.pass();
    return 20;
  });
  auto plus_one = source.then(*ex, [](const Future<int>& f) { return f.result() + 1; });
  auto chained =
      plus_one.then(*ex, [](const Future<int>& f) { return std::to_string(f.result()); });
  auto failing = source.then(*ex, [](const Future<int>&) -> int { throw ContractError("then"); });
  EXPECT_FALSE(plus_one.done());
  gate.open();
  EXPECT_EQ(plus_one.result(kGenerous), 21);
  EXPECT_EQ(chained.result(kGenerous), "21");
  EXPECT_THROW((void)failing.result(kGenerous), ContractError);

  // then() onto an executor shut down meanwhile: the continuation's submit() fails, and that
  // RuntimeError is the continuation's outcome.
  Gate gate2;
  OpenAtExit opener2(gate2);
  auto other = this->make(1);
  auto src2 = ex->submit([&gate2] {
    gate2.pass();
    return 1;
  });
  auto refused = src2.then(*other, [](const Future<int>& f) { return f.result(); });
  other->shutdown();
  gate2.open();
  EXPECT_THROW((void)refused.result(kGenerous), RuntimeError);
}

// ==== max_workers, saturation, references ========================================================

TYPED_TEST_P(ExecutorContract, MaxWorkersTasksRunAtOnceAndNoMore) {
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    Gate gate;
    std::atomic<std::size_t> running{0};
    std::atomic<std::size_t> most{0};
    auto ex = this->make(workers);
    OpenAtExit opener(gate);
    EXPECT_EQ(ex->max_workers(), workers);
    auto task = [&] {
      const std::size_t now = running.fetch_add(1) + 1;
      std::size_t seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      gate.pass();
      running.fetch_sub(1);
    };
    std::vector<Future<void>> fs;
    for (std::size_t i = 0; i < 3 * workers; ++i) fs.push_back(ex->submit(task));
    EXPECT_TRUE(wait_until([&] { return running.load() == workers; }))
        << running.load() << " of " << workers << " tasks run at once";
    EXPECT_TRUE(holds_for(kShort, [&] { return running.load() <= workers; }));
    gate.open();
    for (auto& f : fs) f.result(kGenerous);
    EXPECT_EQ(most.load(), workers) << "more tasks ran at once than max_workers";
  }
}

// executor.py test_no_stale_references (issue 16284): the executor lets go of the callable and
// its arguments once the task ran — before its future is done, and with the future dropped too.
TYPED_TEST_P(ExecutorContract, NoStaleReferencesToTheCallable) {
  auto ex = this->make(2);
  auto captured = std::make_shared<int>(1);
  auto argument = std::make_shared<int>(2);
  const std::weak_ptr<int> wc = captured;
  const std::weak_ptr<int> wa = argument;
  auto f = ex->submit([c = std::move(captured)](const std::shared_ptr<int>& a) { return *c + *a; },
                      std::move(argument));
  EXPECT_EQ(f.result(kGenerous), 3);
  EXPECT_TRUE(wc.expired()) << "the callable outlived its future's completion";
  EXPECT_TRUE(wa.expired()) << "the argument outlived its future's completion";

  auto dropped = std::make_shared<int>(3);
  const std::weak_ptr<int> wd = dropped;
  (void)ex->submit([d = std::move(dropped)] { return *d; });  // the future is discarded at once
  EXPECT_TRUE(wait_until([&] { return wd.expired(); })) << "a stale reference was kept";
}

REGISTER_TYPED_TEST_SUITE_P(
    ExecutorContract, SubmitReturnsTheValue, SubmitPassesEveryArgument, SubmitVoidFunction,
    SubmitCopiesItsArguments, SubmitWithStdRefPassesAReference, SubmitMoveOnlyArgumentAndResult,
    ExceptionReachesTheFutureWithItsTypeAndMessage, SubmitFromManyThreadsAtEveryWorkerCount,
    SubmitFromInsideATask, ResultAndExceptionTimeOutWhileTheTaskRuns, CancelBeforeTheTaskStarts,
    CancelOfARunningTaskFails, CancelRequestsStopOfARunningStopTokenTask,
    MapYieldsInInputOrderAtEveryWorkerCount, MapZipsRangesAndTheShortestWins,
    MapRethrowsAnExceptionAtItsPosition, MapTimeout, MapTimeoutCancelsTheCurrentAndThePendingTasks,
    MapIsLazyOverAnEndlessRange, MapWindowCountsInputsPulledAhead, MapEagerSubmitsWithoutIteration,
    MapEagerNeedsASizedRange, MapOverAnEmptyRange, MapKeepsNoReferenceToTakenResults,
    MapThenShutdownAtOnce, MapEagerManyInputsInOrderAtEveryWorkerCount,
    MapEagerExceptionAtItsPositionAndTheLaterInputsStillRun,
    MapEagerUntakenExceptionIsReportedAndAnInputErrorEndsTheResults,
    MapEagerRangeDestroyedMidIterationRunsNoMoreInputs, MapEagerTimeoutThenTheRestIsCancelled,
    MapEagerShutdownCancelFuturesCancelsTheInputsNotStarted,
    MapEagerReleasesInputsOnceRunAndResultsOnceTaken, ShutdownIsIdempotent,
    SubmitAfterShutdownRaisesRuntimeError, ShutdownWaitsForRunningAndQueuedTasks,
    ShutdownWaitBlocksUntilTheRunningTaskEnds, ShutdownWithoutWaitReturnsAtOnceYetTasksFinish,
    ShutdownCancelFuturesCancelsQueuedTasks, ShutdownCancelFuturesWithSeveralWorkers,
    ShutdownAfterACancelledSubmitDoesNotHang, DestructorShutsDownAndWaits,
    DestructorWaitsForARunningTask, AsCompletedYieldsInCompletionOrder,
    AsCompletedTimesOutOnAPendingTask, WaitReturnWhenModes, AddDoneCallbackOnTheExecutorsFutures,
    ThrowingCallbackGoesToTheExcepthook, ThenOnTheExecutor, MaxWorkersTasksRunAtOnceAndNoMore,
    NoStaleReferencesToTheCallable);

}  // namespace concur::testing::contract
