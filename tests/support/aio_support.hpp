// tests/support/aio_support.hpp — helpers for tests written as aio coroutines.
//
// GoogleTest's ASSERT_* macros `return` from the enclosing function, which a coroutine may not do;
// CO_ASSERT_TRUE / CO_ASSERT_EQ report like EXPECT_* and then leave the coroutine with co_return
// (use them in aio::Task<void> coroutines).
#pragma once

#include <gtest/gtest.h>

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
