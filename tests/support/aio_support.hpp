// tests/support/aio_support.hpp — helpers for tests written as aio coroutines.
//
// run_bounded(body) runs a test's main coroutine under aio::wait_for(kAioBound), so nothing can
// hang; eventually(pred) polls a condition on the loop for up to kGenerous; expect_cancelled(task)
// checks that a task ends with CancelledError; echo_lines is a server handler echoing lines.
//
// GoogleTest's ASSERT_* macros `return` from the enclosing function, which a coroutine may not do;
// CO_ASSERT_TRUE / CO_ASSERT_EQ report like EXPECT_* and then leave the coroutine with co_return
// (use them in aio::Task<void> coroutines).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <utility>

#include "concur/aio/combinators.hpp"
#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "support/test_support.hpp"

#define CO_ASSERT_TRUE(cond)      \
  do {                            \
    const bool co_ok_ = (cond);   \
    EXPECT_TRUE(co_ok_) << #cond; \
    if (!co_ok_) co_return;       \
  } while (false)

#define CO_ASSERT_EQ(a, b)            \
  do {                                \
    const bool co_eq_ = ((a) == (b)); \
    EXPECT_EQ(a, b);                  \
    if (!co_eq_) co_return;           \
  } while (false)

namespace concur::testing {

// kAioBound: the most a test's main coroutine may take (then it is cancelled: TimeoutError).
inline constexpr auto kAioBound = std::chrono::seconds(60);

// bounded(body): body under wait_for(kAioBound) (wait_for needs the running loop, hence a
// coroutine).
inline aio::Task<void> bounded(aio::Task<void> body) {
  co_await aio::wait_for(std::move(body), kAioBound);
}

inline void run_bounded(aio::Task<void> body) { aio::run(bounded(std::move(body))); }

// echo_lines: a server handler (aio::start_server) echoing every line until EOF.
inline aio::Task<void> echo_lines(aio::StreamReader reader, aio::StreamWriter writer) {
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
}

// eventually(pred, poll): polls pred on the loop every `poll` for up to kGenerous; returns pred().
template <class Pred>
aio::Task<bool> eventually(Pred pred,
                           std::chrono::milliseconds poll = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) co_return pred();
    co_await aio::sleep(poll);
  }
  co_return true;
}

// expect_cancelled(task): the task ends with CancelledError.
template <class T>
aio::Task<void> expect_cancelled(aio::Task<T> task) {
  bool cancelled = false;
  try {
    co_await task;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(task.cancelled());
}

}  // namespace concur::testing
