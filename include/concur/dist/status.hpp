// concur/dist/status.hpp — what a concur::dist cluster is doing, read from Redis (what
// `concur dist status` prints).
//
//   dist::ClusterStatus s = dist::read_status(dist::RedisUrl::parse("redis://10.0.0.5:6379"));
//   for (const auto& q : s.queues) std::cout << q.name << ": " << q.waiting << " waiting\n";
//
// Queues are found by their streams (<prefix>:q:*), shared crawls by their counters
// (<prefix>:crawl:<name>:seq); a worker is alive when its last heartbeat is
// recent (workers beat every lease/3). Read with a few commands per queue, not atomically: the
// figures of a busy queue are a moment's picture.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/dist/redis.hpp"

namespace concur::dist {

struct QueueStatus {
  std::string name;
  std::int64_t waiting = 0;    // on the stream, taken by no worker
  std::int64_t leased = 0;     // taken by a worker (running, or about to)
  std::int64_t delayed = 0;    // failed runs waiting for their retry
  std::int64_t dead = 0;       // dead letters (capped at ~10,000)
  std::int64_t succeeded = 0;  // finished so far (since the stats hash was last cleared)
  std::int64_t failed = 0;
};

struct WorkerStatus {
  std::string name;                     // host:pid by default
  std::chrono::milliseconds last_seen;  // since its last heartbeat (the worker's clock)
  std::int64_t leased = 0;              // tasks it holds now
};

// CrawlStatus: a shared crawl (`concur crawl --redis`, dist::RedisFrontier with its default
// prefix "<prefix>:crawl:").
struct CrawlStatus {
  std::string name;
  std::int64_t queued = 0;  // requests waiting
  std::int64_t leased = 0;  // requests a crawler holds (being fetched, or about to be)
  std::int64_t seen = 0;    // fingerprints in the dupefilter
  std::int64_t pages = 0;   // response_received_count of the crawlers that have ended
};

struct ClusterStatus {
  std::vector<QueueStatus> queues;    // by name
  std::vector<WorkerStatus> workers;  // by name
  std::vector<CrawlStatus> crawls;    // by name
};

// read_status(redis, prefix) reads the queues and workers under `prefix`. Throws as
// Redis::command.
CONCUR_EXPORT ClusterStatus read_status(Redis& redis, const std::string& prefix = "concur");

}  // namespace concur::dist
