// Tests for concur/detail/deadline.hpp: saturation, clamping, clock conversion.
#include "concur/detail/deadline.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace {

using namespace std::chrono_literals;
using concur::Clock;
using concur::detail::Deadline;
using concur::detail::saturating_ns;

TEST(Deadline, InfiniteNeverExpires) {
  const auto d = Deadline::infinite();
  EXPECT_TRUE(d.is_infinite());
  EXPECT_FALSE(d.expired());
  EXPECT_EQ(d.remaining(), Clock::duration::max());
}

TEST(Deadline, ZeroAndNegativeAreAlreadyExpired) {
  EXPECT_TRUE(Deadline::after(0s).expired());
  EXPECT_TRUE(Deadline::after(-5s).expired());
  EXPECT_TRUE(Deadline::after(std::chrono::duration<double>(-0.5)).expired());
  EXPECT_EQ(Deadline::after(-1h).remaining(), Clock::duration::zero());
}

TEST(Deadline, HugeDurationsSaturateToInfinite) {
  EXPECT_TRUE(Deadline::after(std::chrono::hours::max()).is_infinite());
  EXPECT_TRUE(Deadline::after(std::chrono::nanoseconds::max()).is_infinite());
  EXPECT_TRUE(Deadline::after(std::chrono::duration<double>(1e300)).is_infinite());
  EXPECT_FALSE(Deadline::after(24h * 365).is_infinite());
}

TEST(Deadline, FiniteDurationLandsInTheFuture) {
  const auto before = Clock::now();
  const auto d = Deadline::after(std::chrono::duration<double>(1.5));
  EXPECT_FALSE(d.expired());
  EXPECT_GE(d.when() - before, 1500ms);
  EXPECT_LE(d.when() - before, 1600ms);
}

TEST(Deadline, OtherClocksConvertThroughNow) {
  const auto d = Deadline::at(std::chrono::system_clock::now() + 10s);
  EXPECT_GT(d.remaining(), 9s);
  EXPECT_LE(d.remaining(), 10s);
  EXPECT_TRUE(Deadline::at(std::chrono::system_clock::now() - 1s).expired());
  // The extremes of another clock clamp instead of overflowing (UBSan checks this in CI's dev
  // preset).
  EXPECT_TRUE(Deadline::at(std::chrono::system_clock::time_point::min()).expired());
  EXPECT_GT(Deadline::at(std::chrono::system_clock::time_point::max()).remaining(),
            24h * 365 * 200);
  using CoarseSteady = std::chrono::time_point<Clock, std::chrono::seconds>;
  EXPECT_TRUE(Deadline::at(CoarseSteady::max()).is_infinite());
  EXPECT_TRUE(Deadline::at(CoarseSteady::min()).expired());
}

TEST(Deadline, TimespecMatchesTheTimePoint) {
  const auto d = Deadline::at(Clock::time_point(1234567891ns));
  const timespec ts = d.as_timespec();
  EXPECT_EQ(ts.tv_sec, 1);
  EXPECT_EQ(ts.tv_nsec, 234567891);
}

TEST(Deadline, SaturatingNs) {
  EXPECT_EQ(saturating_ns(-3s), 0ns);
  EXPECT_EQ(saturating_ns(2ms), 2'000'000ns);
  EXPECT_EQ(saturating_ns(std::chrono::hours::max()), std::chrono::nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::duration<double>(1e-9 * 2.5)), 3ns);
}

}  // namespace
