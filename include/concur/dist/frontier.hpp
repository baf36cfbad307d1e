// concur/dist/frontier.hpp — RedisFrontier: a crawl frontier in Redis that any number of crawlers
// (processes, hosts) share — the distributed crawl of `concur crawl --redis URL`.
//
//   auto frontier = std::make_shared<dist::RedisFrontier>("redis://10.0.0.5/0", "blog");
//   crawl::Crawler crawler(spider, settings);
//   crawler.share(frontier);
//   crawler.run();            // on every host: together they crawl the site once, politely
//
// What scrapy-redis does, without its losses (crawl/shared.hpp has the engine's side):
//   - Requests are leased, not popped: a sorted set of request ids by priority and subpriority
//     (FIFO among equals), and a sorted set of leased ids by lease deadline. lease() first puts
//     back the leases that expired (their crawler died or stalled past the lease time), then moves
//     the best queued ids to the leased set, each with a fresh owner token; ack() and release() act
//     only while the token still owns the lease, so a crawler that wakes up after its lease was
//     handed on cannot take it from the new owner. A sorted set, not a Redis stream: the
//     scheduler needs priorities (retries, DEPTH_PRIORITY), which a stream's order cannot give.
//   - The dupefilter is one Redis set of fingerprints: 20 bytes per URL (a SHA-1, stored as bytes,
//     not hex) plus Redis's set entry — docs/benchmarks.md measures the bytes per URL.
//   - Politeness per download slot: a hash with the slot's next allowed start and a sorted set of
//     holders by expiry; acquire_slot admits a start when fewer than `concurrency` holders hold it
//     and the next allowed start has passed, by the Redis server's clock (no skew between hosts).
//   - Stats: a hash of counters, HINCRBY'd by each crawler as it closes.
// Every step that reads and writes is one Lua script (atomic in Redis).
//
// Keys: "<prefix><name>:" followed by queue, req, pri, leased, owner, seq, seen, stats and
// slot:<key> / slot:<key>:holds. clear() deletes them all (a fresh crawl under the same name).
// Durability: what Redis keeps (docs/dist.md: AOF with appendfsync everysec or always).
// Errors: a broken connection is retried with backoff for FrontierOptions::reconnect_timeout, then
// ConnectionError; a server error is RedisError; a bad URL or name ValueError (constructor).
// Thread-safety: none (one connection); a crawler calls it from its frontier thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "concur/crawl/shared.hpp"
#include "concur/detail/config.hpp"
#include "concur/dist/redis.hpp"

namespace concur::dist {

struct FrontierOptions {
  // lease_time: a lease or slot hold not renewed for this long expires (the crawler renews its
  // own three times per lease time): how long a dead crawler's requests wait for another.
  std::chrono::milliseconds lease_time{10'000};
  // reconnect_timeout: how long a call retries a broken connection before it throws.
  std::chrono::milliseconds reconnect_timeout{30'000};
  // prefix: of every key.
  std::string prefix = "concur:crawl:";
};

class CONCUR_EXPORT RedisFrontier final : public crawl::SharedFrontier {
 public:
  // RedisFrontier(url, name, options): connects (ConnectionError when it cannot); `name` (not
  // empty, no whitespace: ValueError) names the crawl — crawlers with the same name share it.
  RedisFrontier(std::string_view url, std::string name, FrontierOptions options = {});

  [[nodiscard]] std::chrono::milliseconds lease_time() const override {
    return options_.lease_time;
  }
  std::vector<bool> add(const std::vector<crawl::SharedRequest>& requests) override;
  crawl::LeaseBatch lease(std::size_t max) override;
  void ack(const std::vector<std::string>& ids) override;
  void release(const std::vector<std::string>& ids) override;
  void extend(const std::vector<std::string>& ids,
              const std::vector<crawl::SlotHold>& holds) override;
  double acquire_slot(const crawl::SlotHold& hold, int concurrency, double delay) override;
  void release_slot(const crawl::SlotHold& hold) override;
  void merge_stats(const nlohmann::json& stats) override;
  [[nodiscard]] nlohmann::json stats() override;

  // queued() / leased() / seen(): how many requests wait, are leased, and fingerprints are known.
  [[nodiscard]] std::size_t queued();
  [[nodiscard]] std::size_t leased();
  [[nodiscard]] std::size_t seen();
  // clear(): deletes every key of this crawl (its queue, leases, seen set, slots, stats).
  void clear();
  // key(part): the full name of one of this crawl's keys ("<prefix><name>:<part>").
  [[nodiscard]] std::string key(std::string_view part) const;

 private:
  template <class F>
  auto call(F&& f);
  void settle(std::string_view mode, const std::vector<std::string>& ids);
  // count(command, part): ZCARD / SCARD of one of the crawl's keys.
  std::size_t count(std::string_view command, std::string_view part);

  Redis redis_;
  std::string name_;
  FrontierOptions options_;
  std::string owner_;  // this object's random id: the prefix of its lease tokens
};

}  // namespace concur::dist
