// dist::read_status: SCAN for the queues' streams, then per queue XLEN, XPENDING (summary),
// ZCARD of the retries, XLEN of the dead letters and the stats hash; the workers from the
// heartbeat hash and the consumer group's consumers; the shared crawls (SCAN for their counters,
// then the sizes of their queue, leases and seen set, and their pages so far).
#include "concur/dist/status.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include "protocol.hpp"

namespace concur::dist {

ClusterStatus read_status(Redis& redis, const std::string& prefix) {
  ClusterStatus out;
  const std::string stream_prefix = detail::stream_key(prefix, "");
  std::vector<std::string> names;
  std::string cursor = "0";
  do {
    const Reply r = redis.command(
        {"SCAN", cursor, "MATCH", stream_prefix + "*", "COUNT", "1000", "TYPE", "stream"});
    cursor = r.at(0).str;
    for (const Reply& k : r.at(1).elements) names.push_back(k.str.substr(stream_prefix.size()));
  } while (cursor != "0");
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());

  const std::string stats = detail::stats_key(prefix);
  std::map<std::string, std::int64_t> leased_by;  // worker name → tasks held
  for (const std::string& name : names) {
    QueueStatus q;
    q.name = name;
    const std::string stream = detail::stream_key(prefix, name);
    const std::int64_t length = redis.command({"XLEN", stream}).integer;
    try {
      const Reply pending = redis.command({"XPENDING", stream, detail::kGroup});
      q.leased = pending.at(0).as_integer();
      if (pending.elements.size() > 3 && pending.at(3).is_array())
        for (const Reply& c : pending.at(3).elements)
          leased_by[c.at(0).str] += c.at(1).as_integer();
    } catch (const RedisError& e) {
      if (e.code() != "NOGROUP") throw;  // a stream no worker or executor set up yet
    }
    q.waiting = std::max<std::int64_t>(0, length - q.leased);
    q.delayed = redis.command({"ZCARD", detail::delayed_key(prefix, name)}).integer;
    q.dead = redis.command({"XLEN", detail::dead_key(prefix, name)}).integer;
    const Reply ok = redis.command({"HGET", stats, name + ":succeeded"});
    const Reply bad = redis.command({"HGET", stats, name + ":failed"});
    q.succeeded = ok.is_nil() ? 0 : ok.as_integer();
    q.failed = bad.is_nil() ? 0 : bad.as_integer();
    out.queues.push_back(std::move(q));
  }

  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const Reply workers = redis.command({"HGETALL", detail::workers_key(prefix)});
  for (std::size_t i = 0; i + 1 < workers.elements.size(); i += 2) {
    WorkerStatus w;
    w.name = workers.elements[i].str;
    w.last_seen = std::chrono::milliseconds(
        std::max<long long>(0, now - workers.elements[i + 1].as_integer()));
    const auto it = leased_by.find(w.name);
    if (it != leased_by.end()) w.leased = it->second;
    out.workers.push_back(std::move(w));
  }
  std::sort(out.workers.begin(), out.workers.end(),
            [](const WorkerStatus& a, const WorkerStatus& b) { return a.name < b.name; });

  // Shared crawls: every frontier has a request counter (seq) from its first add.
  std::string crawl_prefix = prefix;
  crawl_prefix.append(":crawl:");
  std::string crawl_pattern = crawl_prefix;
  crawl_pattern.append("*:seq");
  std::vector<std::string> crawls;
  std::string crawl_cursor = "0";  // (a new string: g++ 12's -Wrestrict misfires on cursor = "0")
  do {
    const Reply r = redis.command(
        {"SCAN", crawl_cursor, "MATCH", crawl_pattern, "COUNT", "1000", "TYPE", "string"});
    crawl_cursor = r.at(0).str;
    for (const Reply& k : r.at(1).elements) {
      crawls.push_back(k.str.substr(crawl_prefix.size(), k.str.size() - crawl_prefix.size() - 4));
    }
  } while (crawl_cursor != "0");
  std::sort(crawls.begin(), crawls.end());
  crawls.erase(std::unique(crawls.begin(), crawls.end()), crawls.end());
  for (const std::string& name : crawls) {
    std::string base = crawl_prefix;
    base.append(name).append(":");
    const auto key = [&base](const char* part) {
      std::string k = base;
      return k.append(part);
    };
    CrawlStatus c;
    c.name = name;
    c.queued = redis.command({"ZCARD", key("queue")}).integer;
    c.leased = redis.command({"ZCARD", key("leased")}).integer;
    c.seen = redis.command({"SCARD", key("seen")}).integer;
    const Reply pages = redis.command({"HGET", key("stats"), "response_received_count"});
    c.pages = pages.is_nil() ? 0 : pages.as_integer();
    out.crawls.push_back(std::move(c));
  }
  return out;
}

}  // namespace concur::dist
