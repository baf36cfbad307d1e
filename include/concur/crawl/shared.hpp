// concur/crawl/shared.hpp — a frontier several crawlers share (processes, hosts): the scheduler's
// queue, the dupefilter, the download slots' politeness and the stats, kept outside any one
// crawler. concur::dist::RedisFrontier (concur/dist/frontier.hpp) is the implementation on Redis;
// the interface is here so the engine does not depend on a broker.
//
//   auto frontier = std::make_shared<dist::RedisFrontier>("redis://10.0.0.5/0", "blog");
//   crawl::Crawler crawler(spider, settings);
//   crawler.share(frontier);   // every process that does this crawls the same site together
//   crawler.run();
//
// What a shared crawl changes (docs/crawl.md, "A crawl on many machines"):
//   - Requests are leased, not popped: a crawler that dies (kill -9, a host gone) holds them only
//     until its leases expire, then another crawler gets them. While it lives, it renews its leases
//     (a heartbeat every third of the lease time), so a long download is never handed out twice.
//     Requests are delivered at least once: one whose page was handled but whose lease had not
//     been released yet when its crawler died is fetched again.
//   - The dupefilter is the frontier's: a URL any crawler scheduled is seen by all.
//   - Politeness is cluster-wide: before a download starts, the crawler takes a hold on the slot
//     in the frontier, which admits at most the slot's concurrency holders at once and no two
//     starts closer than the slot's delay, whichever crawlers make them — N crawlers are exactly
//     as polite as one. Holds expire like leases when their crawler dies.
//   - The crawl ends, for every crawler, when nothing is queued and nothing is leased anywhere.
//   - Each crawler's counters are added to the frontier's stats when it closes.
//   - Order: higher priority first, then SCHEDULER_HUBS_FIRST's class (each crawler classes the
//     requests it adds by what it learned), then FIFO (SCHEDULER_ORDER does not apply).
//   - start_requests() are filtered as on a resumed crawl: only the first crawler queues them.
// Thread-safety: a crawler calls its frontier from one thread of its own, one call at a time;
// an implementation need not be thread-safe, but one object serves one crawler.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace concur::crawl {

// SharedRequest: a request as the engine hands it to the frontier.
struct SharedRequest {
  std::string fingerprint;  // request_fingerprint() of it (the dupefilter's key)
  std::string blob;         // dump_request() of it
  int priority = 0;         // Request::priority
  // subpriority: 0-15, the order among equal priorities, higher first (the engine gives its
  // SCHEDULER_HUBS_FIRST class of the page: list pages before leaves, so the queue stays wide).
  int subpriority = 0;
  bool dont_filter = false;  // queued even when its fingerprint was seen
};

// Leased: a request leased to this crawler: `id` names the lease (ack/release/extend take it).
struct Leased {
  std::string id;
  std::string blob;
};

// LeaseBatch: what lease() returns.
struct LeaseBatch {
  std::vector<Leased> leased;
  // outstanding: requests queued or leased anywhere after this call (0: the crawl is over).
  std::size_t outstanding = 0;
  // redelivered: expired leases this call put back in the queue (a crawler died or stalled).
  std::size_t redelivered = 0;
};

// SlotHold: a hold on a download slot, taken by acquire_slot.
struct SlotHold {
  std::string slot;   // the slot's key (the request's host or download_slot)
  std::string token;  // unique among the crawler's holds
};

class SharedFrontier {
 public:
  virtual ~SharedFrontier() = default;

  // lease_time(): how long a lease or slot hold lasts without renewal.
  [[nodiscard]] virtual std::chrono::milliseconds lease_time() const = 0;
  // add(requests): records each fingerprint; queues the request when the fingerprint was new or
  // it is dont_filter. Returns, per request, whether its fingerprint was new.
  virtual std::vector<bool> add(const std::vector<SharedRequest>& requests) = 0;
  // lease(max): at most `max` queued requests, highest priority first, leased to this crawler.
  virtual LeaseBatch lease(std::size_t max) = 0;
  // ack(ids): the requests were handled (what they yielded was add()ed before): forget them.
  // An id whose lease expired and went to another crawler is ignored.
  virtual void ack(const std::vector<std::string>& ids) = 0;
  // release(ids): back to the queue now (a crawler that stops before fetching them).
  virtual void release(const std::vector<std::string>& ids) = 0;
  // extend(ids, holds): renews these leases and slot holds for another lease_time().
  virtual void extend(const std::vector<std::string>& ids, const std::vector<SlotHold>& holds) = 0;
  // acquire_slot(hold, concurrency, delay): takes the hold when the slot has fewer than
  // `concurrency` holders and its last start was at least the delay that start asked for ago;
  // this start then asks `delay` (seconds) of the next. Returns 0 when taken, else about how many
  // seconds to wait before asking again.
  virtual double acquire_slot(const SlotHold& hold, int concurrency, double delay) = 0;
  // release_slot(hold): gives the hold back (a download ended).
  virtual void release_slot(const SlotHold& hold) = 0;
  // merge_stats(stats): adds a crawler's counters (integers) to the shared stats; keys ending in
  // "_max" or "/max" keep the maximum instead; other values are left out.
  virtual void merge_stats(const nlohmann::json& stats) = 0;
  // stats(): the shared stats, as one JSON object of integers.
  [[nodiscard]] virtual nlohmann::json stats() = 0;
};

}  // namespace concur::crawl
