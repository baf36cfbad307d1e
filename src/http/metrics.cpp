// src/http/metrics.cpp — Metrics and its Prometheus text exposition (concur/http/metrics.hpp).
#include "concur/http/metrics.hpp"

#include <fmt/format.h>

namespace concur::http {

namespace {

// label(value): a label value escaped as the text format wants (\\, \", \n).
std::string label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

constexpr const char* kRejectNames[] = {"server_full", "thread_pool_full", "process_pool_full"};

}  // namespace

void Metrics::observe(std::string_view route, std::string_view method, int status, double seconds) {
  std::scoped_lock lock(mu_);
  // (Heterogeneous look-ups: no string is made for a series that exists.)
  const auto key = std::make_tuple(route, method, status);
  if (auto r = requests_.find(key); r != requests_.end()) {
    ++r->second;
  } else {
    requests_.emplace(std::make_tuple(std::string(route), std::string(method), status), 1);
  }
  auto it = latency_.find(route);
  if (it == latency_.end()) it = latency_.emplace(std::string(route), Series{}).first;
  Series& s = it->second;
  ++s.count;
  s.sum += seconds;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      ++s.buckets[i];
      break;
    }
  }
}

void Metrics::rejected(Reject why) noexcept {
  rejected_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t Metrics::rejected_count(Reject why) const noexcept {
  return rejected_[static_cast<std::size_t>(why)].load(std::memory_order_relaxed);
}

std::uint64_t Metrics::requests(std::string_view route, std::string_view method, int status) const {
  std::scoped_lock lock(mu_);
  const auto it = requests_.find(std::make_tuple(route, method, status));
  return it == requests_.end() ? 0 : it->second;
}

std::string Metrics::exposition() const {
  std::string out;
  auto gauge = [&](const char* name, const char* help, std::int64_t value) {
    fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name,
                   help, value);
  };
  {
    std::scoped_lock lock(mu_);
    out.append(
        "# HELP concur_http_requests_total Requests answered, by route pattern, method and "
        "status.\n# TYPE concur_http_requests_total counter\n");
    for (const auto& [key, count] : requests_) {
      const auto& [route, method, status] = key;
      fmt::format_to(std::back_inserter(out),
                     "concur_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                     label(route), label(method), status, count);
    }
    out.append(
        "# HELP concur_http_request_duration_seconds Time from a request's first byte to its "
        "response written, by route pattern.\n# TYPE concur_http_request_duration_seconds "
        "histogram\n");
    for (const auto& [route, s] : latency_) {
      const std::string r = label(route);
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += s.buckets[i];
        fmt::format_to(std::back_inserter(out),
                       "concur_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                       r, kBuckets[i], cumulative);
      }
      fmt::format_to(
          std::back_inserter(out),
          "concur_http_request_duration_seconds_bucket{{route=\"{0}\",le=\"+Inf\"}} {1}\n"
          "concur_http_request_duration_seconds_sum{{route=\"{0}\"}} {2}\n"
          "concur_http_request_duration_seconds_count{{route=\"{0}\"}} {1}\n",
          r, s.count, s.sum);
    }
  }
  out.append(
      "# HELP concur_http_requests_rejected_total Requests answered 503 at once by backpressure, "
      "by reason.\n# TYPE concur_http_requests_rejected_total counter\n");
  for (std::size_t i = 0; i < rejected_.size(); ++i) {
    fmt::format_to(std::back_inserter(out),
                   "concur_http_requests_rejected_total{{reason=\"{}\"}} {}\n", kRejectNames[i],
                   rejected_[i].load(std::memory_order_relaxed));
  }
  gauge("concur_http_requests_in_flight", "Requests being handled.", in_flight.load());
  gauge("concur_http_max_requests_in_flight", "The servers' limit of requests in flight.",
        max_in_flight.load());
  gauge("concur_http_connections", "Open connections.", connections.load());
  gauge("concur_http_thread_pool_pending", "Tasks submitted to the thread pool, not finished.",
        thread_pending.load());
  gauge("concur_http_thread_pool_limit", "The thread pool's pending limit (0: none).",
        thread_limit.load());
  gauge("concur_http_process_pool_pending", "Tasks submitted to the process pool, not finished.",
        process_pending.load());
  gauge("concur_http_process_pool_limit", "The process pool's pending limit (0: none).",
        process_limit.load());
  return out;
}

}  // namespace concur::http
