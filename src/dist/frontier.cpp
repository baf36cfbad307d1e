// dist::RedisFrontier: the shared crawl frontier as a handful of Lua scripts over sorted sets,
// hashes and one set (the layout and the reasons are in concur/dist/frontier.hpp).
#include "concur/dist/frontier.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "protocol.hpp"

namespace concur::dist {

namespace {

// Scripts take the Redis server's clock (TIME) for every deadline, so crawlers on hosts whose
// clocks differ agree on when a lease expires and when a slot may start again.
constexpr const char* kNow =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

// add: KEYS seen, seq, queue, req, pri; ARGV n, then n × (fingerprint, dont_filter, score,
// blob), the score ascending in the order leased (score()). Returns 1/0 per request: its
// fingerprint was new. `pri` keeps each queued request's score, to queue it again.
const Script& add_script() {
  static const Script s(R"lua(
local out = {}
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local base = 2 + i * 4
  local new = redis.call('SADD', KEYS[1], ARGV[base])
  if new == 1 or ARGV[base + 1] == '1' then
    local id = string.format('%015d', redis.call('INCR', KEYS[2]))
    redis.call('HSET', KEYS[4], id, ARGV[base + 3])
    redis.call('HSET', KEYS[5], id, ARGV[base + 2])
    redis.call('ZADD', KEYS[3], ARGV[base + 2], id)
  end
  out[i + 1] = new
end
return out
)lua");
  return s;
}

// lease: KEYS queue, req, pri, leased, owner, seq; ARGV max, lease ms, owner id.
// Returns {redelivered, outstanding, id1 .. " " .. token1, blob1, ...}.
const Script& lease_script() {
  static const Script s(std::string(kNow) + R"lua(
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[3], id) or '0', id)
end
local out = {#expired, 0}
local max = tonumber(ARGV[1])
if max > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], max)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local token = ARGV[3] .. ':' .. redis.call('INCR', KEYS[6])
    redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), id)
    redis.call('HSET', KEYS[5], id, token)
    out[#out + 1] = id .. ' ' .. token
    out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  end
end
out[2] = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[4])
return out
)lua");
  return s;
}

// settle: KEYS leased, owner, req, pri, queue; ARGV mode ("ack" / "release"), then (id, token)
// pairs. Acts on the leases the tokens still own; returns how many.
const Script& settle_script() {
  static const Script s(R"lua(
local done = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    if ARGV[1] == 'ack' then
      redis.call('HDEL', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
    else
      redis.call('ZADD', KEYS[5], redis.call('HGET', KEYS[4], id) or '0', id)
    end
    done = done + 1
  end
end
return done
)lua");
  return s;
}

// extend: KEYS leased, owner, then one holds set per slot hold; ARGV lease ms, n leases, n × (id,
// token), then one token per hold.
const Script& extend_script() {
  static const Script s(std::string(kNow) + R"lua(
local ms = tonumber(ARGV[1])
local idx = 3
for i = 1, tonumber(ARGV[2]) do
  if redis.call('HGET', KEYS[2], ARGV[idx]) == ARGV[idx + 1] then
    redis.call('ZADD', KEYS[1], 'XX', now + ms, ARGV[idx])
  end
  idx = idx + 2
end
for k = 3, #KEYS do
  redis.call('ZADD', KEYS[k], 'XX', now + ms, ARGV[idx])
  idx = idx + 1
end
return 0
)lua");
  return s;
}

// acquire: KEYS slot hash, holds set; ARGV concurrency, delay ms, hold ms, token. Returns 0
// (taken), -1 (full: ask again soon), or the milliseconds until the slot's next start.
const Script& acquire_script() {
  static const Script s(std::string(kNow) + R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return -1 end
local next = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
if now < next then return next - now end
redis.call('HSET', KEYS[1], 'next', now + tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('PEXPIRE', KEYS[2], 86400000)
return 0
)lua");
  return s;
}

// merge: KEYS stats; ARGV (field, value, mode) triples: "add" HINCRBY, "max" keeps the larger.
const Script& merge_script() {
  static const Script s(R"lua(
for i = 1, #ARGV, 3 do
  if ARGV[i + 2] == 'max' then
    local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or nil)
    if old == nil or tonumber(ARGV[i + 1]) > old then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  else
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
)lua");
  return s;
}

// fingerprint_bytes(fp): a 40-digit lowercase hex SHA-1 as its 20 bytes (half the memory per
// URL); any other string as given, behind a marker byte so the two forms never collide.
std::string fingerprint_bytes(std::string_view fp) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (fp.size() == 40 && std::all_of(fp.begin(), fp.end(), [&](char c) { return hex(c) >= 0; })) {
    std::string out(20, '\0');
    for (std::size_t i = 0; i < 20; ++i) {
      out[i] = static_cast<char>(hex(fp[2 * i]) * 16 + hex(fp[2 * i + 1]));
    }
    return out;
  }
  std::string out = "\x01";
  out.append(fp);
  return out;
}

// score(request): its place in the queue's sorted set, lowest first: priority, then subpriority
// (both higher first); equal scores go by id, that is FIFO. Exact in a double for any int priority.
long long score(const crawl::SharedRequest& r) {
  const int sub = std::clamp(r.subpriority, 0, 15);
  return -(static_cast<long long>(r.priority) * 16 + sub);
}

// split_lease(id): "<request id> <token>" as its two parts; ValueError for anything else.
std::pair<std::string_view, std::string_view> split_lease(std::string_view lease) {
  const auto space = lease.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == lease.size()) {
    throw ValueError("not a lease id of a RedisFrontier: '" + std::string(lease) + "'");
  }
  return {lease.substr(0, space), lease.substr(space + 1)};
}

long long to_ms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) throw ValueError("a slot delay must be >= 0");
  return std::llround(seconds * 1000.0);
}

}  // namespace

RedisFrontier::RedisFrontier(std::string_view url, std::string name, FrontierOptions options)
    : name_(std::move(name)), options_(std::move(options)) {
  if (name_.empty() ||
      std::any_of(name_.begin(), name_.end(), [](unsigned char c) { return std::isspace(c); })) {
    throw ValueError("RedisFrontier: the crawl's name must be non-empty, without whitespace");
  }
  if (options_.lease_time < std::chrono::milliseconds(100)) {
    throw ValueError("RedisFrontier: lease_time must be at least 100 ms");
  }
  if (options_.reconnect_timeout < std::chrono::milliseconds(0)) {
    throw ValueError("RedisFrontier: reconnect_timeout must be >= 0");
  }
  redis_ = Redis::connect(RedisUrl::parse(url));
  std::random_device rd;
  owner_ = std::to_string((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
}

std::string RedisFrontier::key(std::string_view part) const {
  std::string out = options_.prefix;
  out.append(name_).append(":").append(part);
  return out;
}

// call(f): f(redis_) — again after a broken connection or a transient error reply (LOADING after a
// restart...), reconnecting with backoff (100 ms doubling to 2 s) until reconnect_timeout has
// passed; then the ConnectionError goes to the caller. Every
// call is safe to repeat: add() of a request already added finds its fingerprint seen, lease()'s
// lost leases expire back to the queue, and ack/release/extend are idempotent.
template <class F>
auto RedisFrontier::call(F&& f) {
  const auto deadline = std::chrono::steady_clock::now() + options_.reconnect_timeout;
  auto pause = std::chrono::milliseconds(100);
  for (;;) {
    try {
      if (!redis_.is_connected()) redis_.reconnect();
      return f(redis_);
    } catch (const ConnectionError&) {
      if (std::chrono::steady_clock::now() + pause > deadline) throw;
    } catch (const RedisError& e) {
      // LOADING (a restarted Redis reading its AOF), BUSY...: passes like a lost connection.
      if (!detail::transient(e) || std::chrono::steady_clock::now() + pause > deadline) throw;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(2000));
  }
}

std::vector<bool> RedisFrontier::add(const std::vector<crawl::SharedRequest>& requests) {
  std::vector<bool> out;
  out.reserve(requests.size());
  // Batches of at most 256 requests per script run: one run blocks the server while it runs.
  constexpr std::size_t kBatch = 256;
  const std::string seen_key = key("seen"), seq = key("seq"), queue = key("queue"),
                    req = key("req"), pri = key("pri");
  for (std::size_t begin = 0; begin < requests.size(); begin += kBatch) {
    const std::size_t end = std::min(requests.size(), begin + kBatch);
    std::vector<std::string> owned;  // fingerprints as bytes, priorities as text
    owned.reserve(2 * (end - begin) + 1);
    owned.push_back(std::to_string(end - begin));
    for (std::size_t i = begin; i < end; ++i) {
      owned.push_back(fingerprint_bytes(requests[i].fingerprint));
      owned.push_back(std::to_string(score(requests[i])));
    }
    std::vector<std::string_view> args;
    args.reserve(1 + 4 * (end - begin));
    args.emplace_back(owned[0]);
    for (std::size_t i = begin; i < end; ++i) {
      const std::size_t o = 1 + 2 * (i - begin);
      args.emplace_back(owned[o]);
      args.emplace_back(requests[i].dont_filter ? "1" : "0");
      args.emplace_back(owned[o + 1]);
      args.emplace_back(requests[i].blob);
    }
    const Reply r = call([&](Redis& redis) {
      return add_script().run(redis, {seen_key, seq, queue, req, pri}, args);
    });
    for (const Reply& e : r.elements) out.push_back(e.as_integer() == 1);
  }
  return out;
}

crawl::LeaseBatch RedisFrontier::lease(std::size_t max) {
  const std::string max_text = std::to_string(max);
  const std::string ms = std::to_string(options_.lease_time.count());
  const Reply r = call([&](Redis& redis) {
    return lease_script().run(
        redis, {key("queue"), key("req"), key("pri"), key("leased"), key("owner"), key("seq")},
        {max_text, ms, owner_});
  });
  crawl::LeaseBatch out;
  out.redelivered = static_cast<std::size_t>(r.at(0).as_integer());
  out.outstanding = static_cast<std::size_t>(r.at(1).as_integer());
  for (std::size_t i = 2; i + 1 < r.elements.size(); i += 2) {
    out.leased.push_back(crawl::Leased{r.elements[i].str, r.elements[i + 1].str});
  }
  return out;
}

void RedisFrontier::ack(const std::vector<std::string>& ids) { settle("ack", ids); }

void RedisFrontier::release(const std::vector<std::string>& ids) { settle("release", ids); }

// settle(mode, ids): the settle script on the leases the ids still own ("ack" forgets the
// requests, "release" queues them again).
void RedisFrontier::settle(std::string_view mode, const std::vector<std::string>& ids) {
  if (ids.empty()) return;
  std::vector<std::string_view> args{mode};
  for (const std::string& id : ids) {
    const auto [request, token] = split_lease(id);
    args.push_back(request);
    args.push_back(token);
  }
  call([&](Redis& redis) {
    return settle_script().run(
        redis, {key("leased"), key("owner"), key("req"), key("pri"), key("queue")}, args);
  });
}

void RedisFrontier::extend(const std::vector<std::string>& ids,
                           const std::vector<crawl::SlotHold>& holds) {
  if (ids.empty() && holds.empty()) return;
  std::vector<std::string> keys{key("leased"), key("owner")};
  for (const crawl::SlotHold& h : holds) keys.push_back(key("slot:" + h.slot + ":holds"));
  const std::string ms = std::to_string(options_.lease_time.count());
  const std::string n = std::to_string(ids.size());
  std::vector<std::string_view> args{ms, n};
  for (const std::string& id : ids) {
    const auto [request, token] = split_lease(id);
    args.push_back(request);
    args.push_back(token);
  }
  for (const crawl::SlotHold& h : holds) args.push_back(h.token);
  const std::vector<std::string_view> key_views(keys.begin(), keys.end());
  call([&](Redis& redis) { return extend_script().run(redis, key_views, args); });
}

double RedisFrontier::acquire_slot(const crawl::SlotHold& hold, int concurrency, double delay) {
  if (concurrency < 1) throw ValueError("acquire_slot: concurrency must be >= 1");
  if (hold.token.empty()) throw ValueError("acquire_slot: empty token");
  const std::string conc = std::to_string(concurrency);
  const std::string delay_ms = std::to_string(to_ms(delay));
  const std::string hold_ms = std::to_string(options_.lease_time.count());
  const std::string slot_key = key("slot:" + hold.slot);
  const std::string holds_key = slot_key + ":holds";
  const Reply r = call([&](Redis& redis) {
    return acquire_script().run(redis, {slot_key, holds_key},
                                {conc, delay_ms, hold_ms, hold.token});
  });
  const long long v = r.as_integer();
  if (v == 0) return 0.0;
  // Full: a holder ends when its download does, which nobody announces — ask again in 20 ms.
  if (v < 0) return 0.020;
  return static_cast<double>(v) / 1000.0;
}

void RedisFrontier::release_slot(const crawl::SlotHold& hold) {
  const std::string holds_key = key("slot:" + hold.slot + ":holds");
  call([&](Redis& redis) { return redis.command({"ZREM", holds_key, hold.token}); });
}

void RedisFrontier::merge_stats(const nlohmann::json& stats) {
  if (!stats.is_object()) throw ValueError("merge_stats: stats must be a JSON object");
  std::vector<std::string> owned;
  for (const auto& [field, value] : stats.items()) {
    if (!value.is_number_integer()) continue;
    const bool is_max = field.size() >= 4 && (field.compare(field.size() - 4, 4, "_max") == 0 ||
                                              field.compare(field.size() - 4, 4, "/max") == 0);
    owned.push_back(field);
    owned.push_back(std::to_string(value.get<std::int64_t>()));
    owned.push_back(is_max ? "max" : "add");
  }
  if (owned.empty()) return;
  const std::vector<std::string_view> args(owned.begin(), owned.end());
  const std::string stats_key = key("stats");
  call([&](Redis& redis) { return merge_script().run(redis, {stats_key}, args); });
}

nlohmann::json RedisFrontier::stats() {
  const std::string stats_key = key("stats");
  const Reply r = call([&](Redis& redis) { return redis.command({"HGETALL", stats_key}); });
  nlohmann::json out = nlohmann::json::object();
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    out[r.elements[i].str] = r.elements[i + 1].as_integer();
  }
  return out;
}

std::size_t RedisFrontier::queued() { return count("ZCARD", "queue"); }
std::size_t RedisFrontier::leased() { return count("ZCARD", "leased"); }
std::size_t RedisFrontier::seen() { return count("SCARD", "seen"); }

std::size_t RedisFrontier::count(std::string_view command, std::string_view part) {
  const std::string k = key(part);
  return static_cast<std::size_t>(call([&](Redis& redis) {
                                    return redis.command({command, k});
                                  }).integer);
}

void RedisFrontier::clear() {
  const std::string pattern = key("*");
  call([&](Redis& redis) {
    std::string cursor = "0";
    do {
      const Reply r = redis.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      cursor = r.at(0).str;
      for (const Reply& k : r.at(1).elements) redis.command({"UNLINK", k.str});
    } while (cursor != "0");
    return 0;
  });
}

}  // namespace concur::dist
