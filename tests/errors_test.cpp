// Tests for concur/errors.hpp: the tree shape callers rely on and the greppable messages.
#include "concur/errors.hpp"

#include <gtest/gtest.h>

#include <string>
#include <type_traits>

namespace {

using namespace concur;

TEST(Errors, TreeGroupsByHowCallersReact) {
  static_assert(std::is_base_of_v<std::runtime_error, Error>);
  static_assert(std::is_base_of_v<UsageError, RuntimeError>);
  static_assert(std::is_base_of_v<UsageError, ValueError>);
  static_assert(std::is_base_of_v<UsageError, InvalidStateError>);
  static_assert(std::is_base_of_v<Error, TimeoutError>);
  static_assert(std::is_base_of_v<Error, CancelledError>);
  static_assert(std::is_base_of_v<BrokenError, BrokenBarrierError>);
  static_assert(std::is_base_of_v<BrokenError, BrokenExecutor>);
  static_assert(std::is_base_of_v<BrokenExecutor, BrokenThreadPool>);
  static_assert(!std::is_base_of_v<BrokenBarrierError, BrokenExecutor>);
  static_assert(std::is_base_of_v<Error, DeadlockError>);
  static_assert(!std::is_base_of_v<UsageError, TimeoutError>);
  static_assert(std::is_base_of_v<QueueError, Empty>);
  static_assert(std::is_base_of_v<QueueError, Full>);
  static_assert(std::is_base_of_v<QueueError, ShutDown>);
  static_assert(std::is_base_of_v<Error, QueueError>);
  SUCCEED();
}

TEST(Errors, WhatStartsWithThePythonName) {
  EXPECT_STREQ(RuntimeError("release unlocked lock").what(), "RuntimeError: release unlocked lock");
  EXPECT_STREQ(ValueError("bad").what(), "ValueError: bad");
  EXPECT_STREQ(InvalidStateError("x").what(), "InvalidStateError: x");
  EXPECT_STREQ(TimeoutError().what(), "TimeoutError: timed out");
  EXPECT_STREQ(CancelledError().what(), "CancelledError: cancelled");
  EXPECT_STREQ(BrokenBarrierError().what(), "BrokenBarrierError: barrier is broken");
  EXPECT_STREQ(DeadlockError("cycle").what(), "DeadlockError: cycle");
  EXPECT_STREQ(BrokenExecutor().what(), "BrokenExecutor: the executor is broken");
  EXPECT_STREQ(BrokenExecutor("gone").what(), "BrokenExecutor: gone");
  EXPECT_STREQ(BrokenThreadPool().what(), "BrokenThreadPool: the thread pool is broken");
  EXPECT_STREQ(BrokenThreadPool("initializer failed").what(),
               "BrokenThreadPool: initializer failed");
  EXPECT_STREQ(Empty().what(), "Empty: queue is empty");
  EXPECT_STREQ(Full().what(), "Full: queue is full");
  EXPECT_STREQ(ShutDown().what(), "ShutDown: queue is shut down");
}

TEST(Errors, CatchableThroughTheRoot) {
  try {
    throw BrokenBarrierError();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("BrokenBarrierError", 0), 0u);
    return;
  }
  ADD_FAILURE() << "not caught as concur::Error";
}

// A BrokenThreadPool is caught as BrokenExecutor (what a generic executor client catches) and
// keeps its own name in what().
TEST(Errors, BrokenThreadPoolIsABrokenExecutor) {
  try {
    throw BrokenThreadPool("initializer failed");
  } catch (const BrokenExecutor& e) {
    EXPECT_STREQ(e.what(), "BrokenThreadPool: initializer failed");
    return;
  }
  ADD_FAILURE() << "not caught as concur::BrokenExecutor";
}

}  // namespace
