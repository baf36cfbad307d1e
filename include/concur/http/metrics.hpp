// concur/http/metrics.hpp — Metrics: what a web App counts, in Prometheus' text format
// (`GET /metrics`): requests by route, method and status; a latency histogram per route;
// requests in flight and their limit; requests rejected (503) and why; open connections; the
// pools' pending tasks and their limits.
//
// Thread-safety: every member may be called from any thread (the servers of one App run on
// several loops). observe() takes a short lock; the gauges are atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "concur/detail/config.hpp"

namespace concur::http {

class CONCUR_EXPORT Metrics {
 public:
  // kBuckets: the latency histogram's upper bounds in seconds (plus +Inf).
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
  // Reject: why a request was answered 503 at once.
  enum class Reject : std::uint8_t { kServerFull = 0, kThreadPoolFull = 1, kProcessPoolFull = 2 };

  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // observe(route, method, status, seconds): one answered request ("" route: none matched).
  void observe(std::string_view route, std::string_view method, int status, double seconds);
  // rejected(why): one request answered 503 by backpressure (it is observe()d too).
  void rejected(Reject why) noexcept;
  // requests(route, method, status): the count observe()d so far (tests, dashboards).
  [[nodiscard]] std::uint64_t requests(std::string_view route, std::string_view method,
                                       int status) const;
  [[nodiscard]] std::uint64_t rejected_count(Reject why) const noexcept;
  // exposition(): the Prometheus text format (version 0.0.4) of everything.
  [[nodiscard]] std::string exposition() const;

  // Gauges the server and the App keep current.
  std::atomic<std::int64_t> in_flight{0};       // requests being handled
  std::atomic<std::int64_t> max_in_flight{0};   // the servers' limit (ServerOptions)
  std::atomic<std::int64_t> connections{0};     // open connections
  std::atomic<std::int64_t> thread_pending{0};  // blocking handlers/tasks not finished
  std::atomic<std::int64_t> thread_limit{0};
  std::atomic<std::int64_t> process_pending{0};  // process-pool tasks not finished
  std::atomic<std::int64_t> process_limit{0};

 private:
  struct Series {
    std::uint64_t count = 0;
    double sum = 0;
    std::array<std::uint64_t, kBuckets.size()> buckets{};  // per bucket, not cumulative
  };
  mutable std::mutex mu_;
  // (route, method, status) → count; route → latency histogram.
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t, std::less<>> requests_
      CONCUR_GUARDED_BY(mu_);
  std::map<std::string, Series, std::less<>> latency_ CONCUR_GUARDED_BY(mu_);
  std::array<std::atomic<std::uint64_t>, 3> rejected_{};
};

}  // namespace concur::http
