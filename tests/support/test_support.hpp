// tests/support/test_support.hpp — shared helpers for concur's tests.
//
// - Timing constants: lower bounds are asserted with a named slack (STYLE.md rule 15); upper
//   bounds only with kGenerous, because this 2-core machine is noisy (and slower under TSan).
// - QuiescentTest: a fixture whose TearDown fails the test when threads it started are still
//   alive (STYLE.md rule 16).
// - run_threads(n, fn): start n concur::Threads running fn(i) and join them all.
// - kThreadCounts: the worker counts every concurrency test sweeps (1, 2, 3, 8, more than cores).
// - Bunch(n, fn): CPython lock_tests' Bunch — n threads running fn(i) in the background, joined
//   with a bounded wait; an exception escaping fn fails the test.
// - holds_for(d, pred): pred stays true for all of d (how "still blocked" is shown).
// - in_thread(fn): run fn in another thread and return its result.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/thread.hpp"
#include "support/sanitizers.hpp"

namespace concur::testing {

using namespace std::chrono_literals;

// kShort is a timeout short enough to keep the suite fast and long enough to be measurable.
inline constexpr auto kShort = 50ms;
// kSlack is how much earlier than requested a timed wait may return and still pass:
// clock granularity plus the rounding of the futex deadline.
inline constexpr auto kSlack = 2ms;
// kGenerous bounds "returns promptly" assertions: far above any healthy latency, even under TSan.
inline constexpr auto kGenerous = 5s;
// kLongRun: Bunch's hang guard for a run of tens of thousands of blocking hand-offs (see Bunch).
inline constexpr auto kLongRun = 25s;

inline const std::vector<std::size_t> kThreadCounts = {
    1, 2, 3, 8, std::max<std::size_t>(2 * std::thread::hardware_concurrency(), 5)};

// elapsed(fn) runs fn and returns how long it took.
template <class F>
std::chrono::steady_clock::duration elapsed(F&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::steady_clock::now() - t0;
}

// run_threads(n, fn) starts n threads running fn(i) and joins them; returns when all are done.
inline void run_threads(std::size_t n, const std::function<void(std::size_t)>& fn) {
  std::vector<std::unique_ptr<Thread>> threads;
  threads.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    threads.push_back(std::make_unique<Thread>(fn, i));
    threads.back()->start();
  }
  for (auto& t : threads) t->join();
}

// wait_until(pred) polls pred every millisecond for up to kGenerous (or `budget`); returns pred().
template <class Pred>
bool wait_until(Pred pred, std::chrono::steady_clock::duration budget = kGenerous) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// holds_for(d, pred) polls pred every millisecond for d and returns false as soon as it is false:
// the way a test shows that something is still blocked (STYLE.md rule 15: no upper bound on
// how fast a thread runs, only "not before this happened").
template <class Pred>
bool holds_for(std::chrono::steady_clock::duration d, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!pred()) return false;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

// Bunch(n, fn) starts n concur::Threads running fn(i) and returns while they run, after CPython
// lock_tests' Bunch. started() / finished() count them; wait_started() waits (bounded) until all
// have begun; join() waits until all have finished. An exception escaping fn fails the test
// instead of going to the excepthook. Threads still running `budget` (default kGenerous) into
// join() fail the test; after a second `budget` the process aborts with a message, since those
// threads use the test's stack and cannot be abandoned — so a test whose threads are stuck (say,
// in an untimed wait that missed its wake-up) fails in seconds instead of hanging. The budget is a
// hang guard for the whole run, not a per-step bound: a test whose threads make tens of thousands
// of blocking hand-offs passes a budget for that much work (kLongRun), because on a loaded 2-core
// machine each hand-off may wait for a time slice (a capacity-1 queue moving 30,000 items took
// ~10 s there); such tests bound each step with its own kGenerous deadline, which is what catches
// a lost wake-up. The destructor joins.
class Bunch {
 public:
  Bunch(std::size_t n, std::function<void(std::size_t)> fn,
        std::chrono::steady_clock::duration budget = kGenerous)
      : fn_(std::move(fn)), budget_(budget) {
    threads_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      threads_.push_back(std::make_unique<Thread>([this, i] { body(i); }));
      threads_.back()->start();
    }
  }
  Bunch(const Bunch&) = delete;
  Bunch& operator=(const Bunch&) = delete;
  ~Bunch() { join(); }

  [[nodiscard]] std::size_t size() const noexcept { return threads_.size(); }
  [[nodiscard]] std::size_t started() const noexcept { return started_.load(); }
  [[nodiscard]] std::size_t finished() const noexcept { return finished_.load(); }
  bool wait_started() {
    return wait_until([&] { return started() == size(); });
  }
  void join() {
    if (joined_) return;
    joined_ = true;
    if (!wait_until([&] { return finished() == size(); }, budget_)) {
      ADD_FAILURE() << finished() << " of " << size() << " threads finished within "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(budget_).count()
                    << " ms";
      if (!wait_until([&] { return finished() == size(); }, budget_)) {
        std::fprintf(stderr, "Bunch: %zu of %zu threads are stuck; aborting the test binary\n",
                     size() - finished(), size());
        std::abort();
      }
    }
    for (auto& t : threads_) t->join();
  }

 private:
  void body(std::size_t i) {
    started_.fetch_add(1);
    try {
      fn_(i);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "exception escaped thread " << i << ": " << e.what();
    } catch (...) {
      ADD_FAILURE() << "non-std exception escaped thread " << i;
    }
    finished_.fetch_add(1);
  }

  std::function<void(std::size_t)> fn_;
  std::chrono::steady_clock::duration budget_;
  std::atomic<std::size_t> started_{0};
  std::atomic<std::size_t> finished_{0};
  std::vector<std::unique_ptr<Thread>> threads_;
  bool joined_ = false;
};

// in_thread(fn) runs fn in a new thread, joins it and returns fn's result (a test's way of asking
// "what does another thread see?"). If fn throws, the test fails and, for a non-void fn, so does
// the call (std::bad_optional_access).
template <class F>
auto in_thread(F fn) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  if constexpr (std::is_void_v<R>) {
    Bunch bunch(1, [&](std::size_t) { fn(); });
  } else {
    std::optional<R> result;
    {
      Bunch bunch(1, [&](std::size_t) { result.emplace(fn()); });
    }
    return result.value();
  }
}

class QuiescentTest : public ::testing::Test {
 protected:
  void SetUp() override { baseline_ = active_count(); }
  void TearDown() override {
    EXPECT_TRUE(wait_until([&] { return active_count() <= baseline_; }))
        << "threads still alive after the test: " << active_count() << " > " << baseline_;
  }

 private:
  std::size_t baseline_ = 0;
};

}  // namespace concur::testing
