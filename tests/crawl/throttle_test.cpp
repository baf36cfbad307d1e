// throttle_test: AutoThrottle's formula against hand-computed sequences, Retry-After, backoff and
// randomized delays (crawl/throttle.hpp).
#include "concur/crawl/throttle.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace concur::crawl {
namespace {

TEST(AutoThrottleTest, FollowsScrapysFormulaStepByStep) {
  const AutoThrottle at{.min_delay = 0.1, .max_delay = 10.0, .target_concurrency = 2.0};
  double d = at.start_delay(5.0);
  EXPECT_DOUBLE_EQ(d, 5.0);
  d = at.adjust(d, 1.0, 200);  // target 0.5: mean (5 + 0.5) / 2
  EXPECT_DOUBLE_EQ(d, 2.75);
  d = at.adjust(d, 1.0, 200);  // (2.75 + 0.5) / 2
  EXPECT_DOUBLE_EQ(d, 1.625);
  d = at.adjust(d, 8.0, 200);  // target 4 is above the mean 2.8125: the target wins
  EXPECT_DOUBLE_EQ(d, 4.0);
  d = at.adjust(d, 0.1, 404);  // a fast error page would lower it to 2.025: ignored
  EXPECT_DOUBLE_EQ(d, 4.0);
  d = at.adjust(d, 30.0, 500);  // target 15, clamped to MAX_DELAY; an error may raise the delay
  EXPECT_DOUBLE_EQ(d, 10.0);
  d = at.adjust(d, 0.0, 200);  // (10 + 0) / 2
  EXPECT_DOUBLE_EQ(d, 5.0);
}

TEST(AutoThrottleTest, ClampsToDownloadDelayAndMaxDelay) {
  const AutoThrottle at{.min_delay = 0.1, .max_delay = 3.0, .target_concurrency = 1.0};
  EXPECT_DOUBLE_EQ(at.adjust(0.15, 0.0, 200), 0.1);  // mean 0.075 -> DOWNLOAD_DELAY
  EXPECT_DOUBLE_EQ(at.adjust(1.0, 100.0, 200), 3.0);
  EXPECT_DOUBLE_EQ(at.start_delay(0.0), 0.1);  // never below DOWNLOAD_DELAY
}

TEST(AutoThrottleTest, Non200NeverLowersButEqualIsKept) {
  const AutoThrottle at{.min_delay = 0.0, .max_delay = 60.0, .target_concurrency = 1.0};
  EXPECT_DOUBLE_EQ(at.adjust(2.0, 2.0, 302), 2.0);  // new == old
  EXPECT_DOUBLE_EQ(at.adjust(2.0, 0.5, 301), 2.0);
  EXPECT_DOUBLE_EQ(at.adjust(2.0, 6.0, 503), 6.0);
}

TEST(AutoThrottleTest, TargetConcurrencyDividesTheLatency) {
  const AutoThrottle at{.min_delay = 0.0, .max_delay = 60.0, .target_concurrency = 4.0};
  // target 8 / 4 = 2 above the mean (0 + 2) / 2 = 1.
  EXPECT_DOUBLE_EQ(at.adjust(0.0, 8.0, 200), 2.0);
}

TEST(RetryAfterTest, DelaySeconds) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(parse_retry_after("120", now), 120.0);
  EXPECT_EQ(parse_retry_after(" 5\t", now), 5.0);
  EXPECT_EQ(parse_retry_after("0", now), 0.0);
}

TEST(RetryAfterTest, HttpDateFormsAreMeasuredFromNow) {
  // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 seconds after the epoch (RFC 9110's example).
  const auto date = std::chrono::system_clock::from_time_t(784111777);
  const auto now = date - std::chrono::seconds(30);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 30.0);   // IMF-fixdate
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 30.0);  // RFC 850
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), 30.0);        // asctime
  // A date already past asks for no wait.
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date + std::chrono::hours(1)), 0.0);
}

TEST(RetryAfterTest, GarbageIsNotAWait) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("   ", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
}

TEST(BackoffTest, EqualJitterAroundAnExponentialStep) {
  EXPECT_DOUBLE_EQ(backoff_delay(1, 0.5, 60.0, 0.0), 0.25);
  EXPECT_DOUBLE_EQ(backoff_delay(1, 0.5, 60.0, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(backoff_delay(3, 0.5, 60.0, 0.0), 1.0);  // step 2
  EXPECT_DOUBLE_EQ(backoff_delay(3, 0.5, 60.0, 0.5), 1.5);
  EXPECT_DOUBLE_EQ(backoff_delay(20, 0.5, 60.0, 0.0), 30.0);    // the cap
  EXPECT_DOUBLE_EQ(backoff_delay(5000, 0.5, 60.0, 1.0), 60.0);  // no overflow
  EXPECT_DOUBLE_EQ(backoff_delay(3, 0.0, 60.0, 0.5), 0.0);      // off
  EXPECT_DOUBLE_EQ(backoff_delay(0, 0.5, 60.0, 0.5), 0.0);
}

TEST(RandomizedDelayTest, SpreadsOverHalfToOneAndAHalf) {
  EXPECT_DOUBLE_EQ(randomized_delay(2.0, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(randomized_delay(2.0, 0.5), 2.0);
  EXPECT_LT(randomized_delay(2.0, 0.999999), 3.0);
  EXPECT_DOUBLE_EQ(randomized_delay(0.0, 0.7), 0.0);
}

}  // namespace
}  // namespace concur::crawl
