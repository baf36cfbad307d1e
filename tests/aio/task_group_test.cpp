// Tests for include/concur/aio/task_group.hpp, ported from CPython's
// test_asyncio/test_taskgroups.py: children joined, a failing child cancels its siblings and the
// body, errors together in an ExceptionGroup, the body's own error, an outer cancellation, a group
// that is shutting down or finished refusing new tasks.
#include "concur/aio/task_group.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "support/aio_support.hpp"
#include "support/hook_support.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

class AioTaskGroupTest : public HookCapturingTest {};

aio::Task<int> value_after(int v, std::chrono::milliseconds d) {
  co_await aio::sleep(d);
  co_return v;
}
aio::Task<void> fail_after(std::string what, std::chrono::milliseconds d) {
  co_await aio::sleep(d);
  throw ValueError(what);
}

TEST_F(AioTaskGroupTest, WaitsForEveryChild) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> a;
    aio::Task<int> b;
    co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
      a = tg.create_task(value_after(1, 20ms));
      b = tg.create_task(value_after(2, 5ms));
      co_return;
    });
    EXPECT_TRUE(a.done());
    EXPECT_TRUE(b.done());
    EXPECT_EQ(a.result() + b.result(), 3);
  };
  aio::run(main());
}

TEST_F(AioTaskGroupTest, AFailingChildCancelsItsSiblingsAndTheErrorsComeTogether) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> sibling;
    bool body_cancelled = false;
    try {
      co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
        sibling = tg.create_task(value_after(1, 10s));
        (void)tg.create_task(fail_after("one", 5ms));
        // The second error comes from a child's cleanup after the group cancelled it.
        (void)tg.create_task([]() -> aio::Task<void> {
          try {
            co_await aio::sleep(10s);
          } catch (const CancelledError&) {
            throw ValueError("two, while cancelled");
          }
        }());
        try {
          co_await aio::sleep(10s);
        } catch (const CancelledError&) {
          body_cancelled = true;
          throw;
        }
      });
      ADD_FAILURE() << "no ExceptionGroup";
    } catch (const ExceptionGroup& g) {
      EXPECT_EQ(g.exceptions().size(), 2U) << g.what();
      for (const auto& e : g.exceptions()) EXPECT_THROW(std::rethrow_exception(e), ValueError);
      EXPECT_NE(std::string(g.what()).find("unhandled errors in a TaskGroup"), std::string::npos);
    }
    EXPECT_TRUE(sibling.cancelled());
    EXPECT_TRUE(body_cancelled);
    EXPECT_EQ(aio::current_task().cancelling(), 0) << "the group withdrew its own cancel";
  };
  aio::run(main());
}

TEST_F(AioTaskGroupTest, TheBodysErrorCancelsTheChildrenAndJoinsTheGroup) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> child;
    try {
      co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
        child = tg.create_task(value_after(1, 10s));
        co_await aio::sleep(1ms);
        throw std::runtime_error("body");
      });
      ADD_FAILURE() << "no ExceptionGroup";
    } catch (const ExceptionGroup& g) {
      CO_ASSERT_EQ(g.exceptions().size(), 1U);
      EXPECT_THROW(std::rethrow_exception(g.exceptions()[0]), std::runtime_error);
    }
    EXPECT_TRUE(child.cancelled());
  };
  aio::run(main());
}

TEST_F(AioTaskGroupTest, AnOuterCancellationCancelsTheChildrenAndPropagates) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> child;
    aio::Task<void> holder = aio::create_task([](aio::Task<int>& c) -> aio::Task<void> {
      co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
        c = tg.create_task(value_after(1, 10s));
        co_return;
      });
    }(child));
    co_await aio::sleep(5ms);
    holder.cancel();
    EXPECT_THROW(co_await holder, CancelledError);
    EXPECT_TRUE(child.cancelled());
  };
  aio::run(main());
}

TEST_F(AioTaskGroupTest, CreateTaskOnAShuttingDownOrFinishedGroupIsRefused) {
  expect_reports(1);  // the refused coroutine is dropped without running
  auto main = []() -> aio::Task<void> {
    aio::TaskGroup* kept = nullptr;
    try {
      co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
        kept = &tg;
        (void)tg.create_task(fail_after("x", 1ms));
        try {
          co_await aio::sleep(10s);
        } catch (const CancelledError&) {
        }
        EXPECT_THROW((void)tg.create_task(value_after(1, 1ms)), RuntimeError);
      });
    } catch (const ExceptionGroup&) {
    }
    EXPECT_NE(kept, nullptr);
  };
  aio::run(main());
}

TEST_F(AioTaskGroupTest, ChildrenThatOnlyGetCancelledAreNotErrors) {
  auto main = []() -> aio::Task<void> {
    co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
      aio::Task<int> t = tg.create_task(value_after(1, 10s));
      co_await aio::sleep(1ms);
      t.cancel();
    });
  };
  aio::run(main());
}

TEST_F(AioTaskGroupTest, ManyChildren) {
  auto main = []() -> aio::Task<int> {
    int sum = 0;
    co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
      for (int i = 0; i < 1000; ++i) {
        tg.create_task([](int v, int& s) -> aio::Task<void> {
          co_await aio::sleep(std::chrono::microseconds(v % 100));
          s += v;
        }(i, sum));
      }
      co_return;
    });
    co_return sum;
  };
  EXPECT_EQ(aio::run(main()), 999 * 1000 / 2);
}

}  // namespace
}  // namespace concur::testing
