// crawl/throttle.cpp — AutoThrottle's formula, Retry-After, backoff and randomized delays.
#include "concur/crawl/throttle.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace concur::crawl {

double AutoThrottle::adjust(double old_delay, double latency, int status) const noexcept {
  const double target = latency / target_concurrency;
  double next = std::max(target, (old_delay + target) / 2.0);
  next = std::min(std::max(min_delay, next), max_delay);
  // Error pages (and redirects) are small and fast: letting them lower the delay would speed
  // the crawl up exactly when the server struggles.
  if (status != 200 && next <= old_delay) return old_delay;
  return next;
}

double randomized_delay(double delay, double uniform01) noexcept {
  return delay * (0.5 + uniform01);
}

double backoff_delay(int attempt, double base, double cap, double uniform01) noexcept {
  if (base <= 0.0 || attempt < 1) return 0.0;
  // 2^(attempt-1) overflows nothing that matters: the cap is applied before any use.
  const double step = std::min(cap, base * std::ldexp(1.0, std::min(attempt - 1, 60)));
  return step / 2.0 + uniform01 * step / 2.0;
}

std::optional<double> parse_retry_after(std::string_view value,
                                        std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delay-seconds: digits only; a huge number saturates instead of overflowing.
    double seconds = 0;
    for (char c : value) seconds = seconds * 10 + (c - '0');
    return seconds;
  }
  const std::string text(value);
  const time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  const auto then = std::chrono::system_clock::from_time_t(when);
  const double wait = std::chrono::duration<double>(then - now).count();
  return wait > 0 ? wait : 0.0;
}

}  // namespace concur::crawl
