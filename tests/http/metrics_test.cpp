// Tests for include/concur/http/metrics.hpp: counters, the latency histogram, rejections, gauges
// and their Prometheus text exposition; concurrent observe() from several threads.
#include "concur/http/metrics.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>
#include <vector>

namespace {

using concur::http::Metrics;

TEST(HttpMetrics, CountersAndHistogramInTextFormat) {
  Metrics m;
  m.observe("/a/<int:id>", "GET", 200, 0.003);
  m.observe("/a/<int:id>", "GET", 200, 0.2);
  m.observe("/a/<int:id>", "POST", 500, 20.0);
  m.observe("", "GET", 404, 0.0001);
  m.rejected(Metrics::Reject::kProcessPoolFull);
  m.in_flight = 3;
  EXPECT_EQ(m.requests("/a/<int:id>", "GET", 200), 2u);
  EXPECT_EQ(m.requests("/a/<int:id>", "GET", 404), 0u);
  EXPECT_EQ(m.rejected_count(Metrics::Reject::kProcessPoolFull), 1u);
  const std::string text = m.exposition();
  for (const char* line : {
           "# TYPE concur_http_requests_total counter\n",
           "concur_http_requests_total{route=\"/a/<int:id>\",method=\"GET\",status=\"200\"} 2\n",
           "concur_http_requests_total{route=\"/a/<int:id>\",method=\"POST\",status=\"500\"} 1\n",
           "# TYPE concur_http_request_duration_seconds histogram\n",
           "concur_http_request_duration_seconds_bucket{route=\"/a/<int:id>\",le=\"0.0025\"} 0\n",
           "concur_http_request_duration_seconds_bucket{route=\"/a/<int:id>\",le=\"0.005\"} 1\n",
           "concur_http_request_duration_seconds_bucket{route=\"/a/<int:id>\",le=\"0.25\"} 2\n",
           "concur_http_request_duration_seconds_bucket{route=\"/a/<int:id>\",le=\"10\"} 2\n",
           "concur_http_request_duration_seconds_bucket{route=\"/a/<int:id>\",le=\"+Inf\"} 3\n",
           "concur_http_request_duration_seconds_count{route=\"/a/<int:id>\"} 3\n",
           "concur_http_request_duration_seconds_bucket{route=\"\",le=\"0.001\"} 1\n",
           "concur_http_requests_rejected_total{reason=\"process_pool_full\"} 1\n",
           "concur_http_requests_rejected_total{reason=\"server_full\"} 0\n",
           "# TYPE concur_http_requests_in_flight gauge\nconcur_http_requests_in_flight 3\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // Every line is a comment or "name{labels} value" / "name value".
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# ", 0) == 0) continue;
    EXPECT_EQ(line.rfind("concur_http_", 0), 0u) << line;
    EXPECT_NE(line.find(' '), std::string::npos) << line;
  }
}

TEST(HttpMetrics, LabelValuesAreEscaped) {
  Metrics m;
  m.observe("/q\"x\\y\nz", "GET", 200, 0.1);
  EXPECT_NE(m.exposition().find("route=\"/q\\\"x\\\\y\\nz\""), std::string::npos);
}

TEST(HttpMetrics, ObserveFromManyThreads) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 2000; ++i) m.observe("/r", "GET", 200, 0.001);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(m.requests("/r", "GET", 200), 8000u);
  EXPECT_NE(m.exposition().find("concur_http_request_duration_seconds_count{route=\"/r\"} 8000\n"),
            std::string::npos);
}

}  // namespace
