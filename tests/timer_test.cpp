// Tests for concur/timer.hpp (threading.Timer): firing after the interval, cancel before and
// during the wait, exceptions reaching the excepthook, and ~Timer never outliving its function.
#include "concur/timer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "concur/sync/event.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;

class TimerTest : public QuiescentTest {};

TEST_F(TimerTest, FiresAfterTheInterval) {
  Event fired;
  std::string arg;
  Timer t(
      kShort,
      [&](const std::string& s) {
        arg = s;
        fired.set();
      },
      std::string("hello"));
  const auto took = elapsed([&] {
    t.start();
    ASSERT_TRUE(fired.wait(kGenerous));
  });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_EQ(arg, "hello");
  t.join();
  EXPECT_FALSE(t.is_alive());
}

TEST_F(TimerTest, CancelBeforeStartNeverFires) {
  std::atomic<bool> fired{false};
  Timer t(1ms, [&fired] { fired = true; });
  t.cancel();
  t.start();
  t.join();
  EXPECT_FALSE(fired);
}

TEST_F(TimerTest, CancelDuringTheWaitStopsPromptly) {
  std::atomic<bool> fired{false};
  Timer t(std::chrono::hours(1), [&fired] { fired = true; });
  t.start();
  EXPECT_TRUE(t.is_alive());
  t.cancel();
  EXPECT_TRUE(t.join(kGenerous));
  EXPECT_FALSE(fired);
}

TEST_F(TimerTest, CancelAfterFiringIsHarmless) {
  Event fired;
  Timer t(0ms, [&fired] { fired.set(); });
  t.start();
  ASSERT_TRUE(fired.wait(kGenerous));
  t.cancel();
  t.join();
  EXPECT_TRUE(fired.is_set());
}

TEST_F(TimerTest, DestructorCancelsAndJoins) {
  std::atomic<bool> fired{false};
  const auto took = elapsed([&] {
    Timer t(std::chrono::hours::max(), [&fired] { fired = true; });
    t.start();
  });
  EXPECT_LT(took, kGenerous);
  EXPECT_FALSE(fired);
}

TEST_F(TimerTest, ExceptionGoesToTheExcepthook) {
  std::string message;
  auto previous = set_excepthook([&message](const ExceptHookArgs& a) { message = a.exc_message; });
  Timer t(0ms, [] { throw std::runtime_error("timer failed"); });
  t.start();
  t.join();
  set_excepthook(previous);
  EXPECT_EQ(message, "timer failed");
}

TEST_F(TimerTest, IsAThreadWithAName) {
  Timer t(0ms, [] {});
  EXPECT_EQ(t.name().rfind("Thread-", 0), 0u);
  EXPECT_EQ(t.interval(), std::chrono::nanoseconds(0));
  t.start();
  t.join();
}

}  // namespace
