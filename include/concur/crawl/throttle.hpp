// concur/crawl/throttle.hpp — the crawler's politeness arithmetic, as pure functions the engine
// calls and the tests check against hand-computed sequences: Scrapy's AutoThrottle delay formula,
// the Retry-After header (seconds or an HTTP-date), retry backoff with jitter, and
// RANDOMIZE_DOWNLOAD_DELAY's spread.
// Delays are seconds as double, as Scrapy's settings give them.
// Thread-safety: values and pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace concur::crawl {

// AutoThrottle: Scrapy's AutoThrottle extension (scrapy/extensions/throttle.py), verbatim:
//   target = latency / target_concurrency
//   new    = max(target, (old + target) / 2)       (the mean, or the target when that is larger)
//   new    = min(max(min_delay, new), max_delay)   (clamped to [DOWNLOAD_DELAY, MAX_DELAY])
//   a response whose status is not 200 never lowers the delay (new <= old: keep old).
// `latency` is request sent -> response headers received (Timing::latency).
struct AutoThrottle {
  double min_delay = 0.0;           // DOWNLOAD_DELAY
  double max_delay = 60.0;          // AUTOTHROTTLE_MAX_DELAY
  double target_concurrency = 1.0;  // AUTOTHROTTLE_TARGET_CONCURRENCY (> 0)

  // start_delay(start): a slot's first delay: max(DOWNLOAD_DELAY, AUTOTHROTTLE_START_DELAY).
  [[nodiscard]] double start_delay(double start) const noexcept {
    return start > min_delay ? start : min_delay;
  }
  // adjust(old_delay, latency, status): the slot's next delay after a response.
  [[nodiscard]] double adjust(double old_delay, double latency, int status) const noexcept;
};

// randomized_delay(delay, uniform01): RANDOMIZE_DOWNLOAD_DELAY: delay * (0.5 + u), u in [0, 1) —
// uniform over [0.5, 1.5) x delay, as Scrapy's downloader slot.
[[nodiscard]] double randomized_delay(double delay, double uniform01) noexcept;

// backoff_delay(attempt, base, cap, uniform01): how long a slot rests after its attempt-th
// failure in a row (1, 2, ...): d = min(cap, base * 2^(attempt-1)), then "equal jitter": d/2 + u *
// d/2, so the rest is at least half the exponential step and never more than it. 0 when base <= 0.
[[nodiscard]] double backoff_delay(int attempt, double base, double cap, double uniform01) noexcept;

// parse_retry_after(value, now): the wait a Retry-After header asks for (RFC 9110 §10.2.3): a
// non-negative integer of seconds, or an HTTP-date (IMF-fixdate, RFC 850 or asctime form; parsed by
// libcurl's curl_getdate) minus `now` (0 when the date has passed). nullopt when the value is
// neither (then the caller falls back to its backoff).
[[nodiscard]] std::optional<double> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

}  // namespace concur::crawl
