// src/dist/protocol.hpp (internal) — what concur::dist keeps in Redis and the messages between an
// executor and its workers. Shared by the executor (executor.cpp) and the worker (worker.cpp):
// both sides must agree byte for byte, so it is all here.
//
// Keys (P = the prefix, "concur" by default; Q = a queue's name):
//   P:q:Q        a stream: one entry per task, fields task=<name>, m=<TaskMessage>; read by the
//                consumer group "workers" (a pending entry is a task leased to a worker)
//   P:delayed:Q  a sorted set: tasks waiting for a retry, scored by when they are due (ms),
//                members "<name>\n<TaskMessage>"
//   P:dead:Q     a stream capped at ~10,000 entries: tasks that failed for good (task, error, m)
//   P:reply:C    a list: executor C's messages (ResultMessage), expiring result_ttl after the last
//   P:workers    a hash: worker name → its last heartbeat (ms since the epoch, the worker's clock)
//   P:stats      a hash: "<queue>:succeeded" / "<queue>:failed" → tasks finished so far
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "concur/dist/redis.hpp"
#include "concur/mp/serialize.hpp"

namespace concur::dist::detail {

inline constexpr std::string_view kGroup = "workers";

// clocked(body): the Lua script `body` with `now` set first to the server's clock in whole
// milliseconds — what every lease, delay and slot score is counted in. (TAKE_TOKEN reads the clock
// itself: its bucket refills by fractions of a millisecond.)
inline std::string clocked(std::string_view body) {
  std::string s =
      "local t = redis.call('TIME')\n"
      "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";
  s += body;
  return s;
}

// key(prefix, kind, name): "<prefix><kind><name>", e.g. key("concur", ":q:", "default").
inline std::string key(std::string_view prefix, std::string_view kind, std::string_view name) {
  std::string k(prefix);
  k += kind;
  k += name;
  return k;
}
inline std::string stream_key(std::string_view prefix, std::string_view queue) {
  return key(prefix, ":q:", queue);
}
inline std::string delayed_key(std::string_view prefix, std::string_view queue) {
  return key(prefix, ":delayed:", queue);
}
inline std::string dead_key(std::string_view prefix, std::string_view queue) {
  return key(prefix, ":dead:", queue);
}
inline std::string reply_key(std::string_view prefix, std::string_view client) {
  return key(prefix, ":reply:", client);
}
inline std::string stats_key(std::string_view prefix) {
  std::string k(prefix);
  k += ":stats";
  return k;
}
inline std::string workers_key(std::string_view prefix) {
  std::string k(prefix);
  k += ":workers";
  return k;
}

// TaskMessage is a task on the wire (a stream entry's field m).
struct TaskMessage {
  std::uint64_t id = 0;       // unique within the executor that sent it (reply)
  std::string task;           // the registered name
  std::string args;           // the arguments, as TaskEntry::invoke_batch reads them
  std::uint32_t batch = 0;    // 0: one call; n: a batch of n calls
  std::string reply;          // the executor's reply list
  std::uint32_t attempt = 0;  // 0 the first run; n the n-th retry
  std::uint32_t max_retries = 0;
  std::int64_t backoff_ms = 1000;
  std::int64_t backoff_max_ms = 60000;
  std::int64_t result_ttl_ms = 86'400'000;
  bool track_started = true;
  std::string rate_key;  // RateLimit (empty: none)
  double rate_per_second = 0;
  std::uint32_t rate_burst = 1;
  std::string slot_key;  // ConcurrencyLimit (empty: none)
  std::uint32_t slot_limit = 0;
  std::int64_t time_limit_ms = 0;       // TaskOptions::time_limit (0: the worker's)
  std::int64_t soft_time_limit_ms = 0;  // TaskOptions::soft_time_limit (0: the worker's)

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, task, args, batch, reply, attempt, max_retries, backoff_ms, backoff_max_ms,
       result_ttl_ms, track_started, rate_key, rate_per_second, rate_burst, slot_key, slot_limit,
       time_limit_ms, soft_time_limit_ms);
  }
};

inline std::string rate_key(std::string_view prefix, std::string_view name) {
  return key(prefix, ":rate:", name);
}
inline std::string slot_key(std::string_view prefix, std::string_view name) {
  return key(prefix, ":slots:", name);
}
// revoke_key(prefix, reply, id): set (with a TTL) when the executor whose reply list is `reply`
// cancelled its running task `id` (the same across retries and take-overs, unlike the stream
// entry); the worker running it in a process kills the run.
inline std::string revoke_key(std::string_view prefix, std::string_view reply, std::uint64_t id) {
  std::string name(reply);
  name += '/';
  name += std::to_string(id);
  return key(prefix, ":revoke:", name);
}

// ResultMessage is what a worker tells an executor (its reply list).
struct ResultMessage {
  // frozen / gone: an AMQP worker's answers to a withdraw (amqp_protocol.hpp): the task, not
  // started, waits for the executor's drop or thaw; the worker does not have the task. wake: no
  // longer sent (the reader thread has an eventfd); kept so the numbers stay, ignored if seen.
  enum Kind : std::uint8_t { started = 0, ok = 1, error = 2, wake = 3, frozen = 4, gone = 5 };
  std::uint64_t id = 0;
  std::uint8_t kind = ok;
  std::string result;     // ok: the serialized result
  std::string type_name;  // error: RemoteError's fields
  std::string message;
  std::string traceback;
  // started: kStoppable when the worker can stop the run (a process worker): cancel() of the
  // running future then revokes it.
  static constexpr std::uint8_t kStoppable = 1;
  // started, over AMQP: kClaim when the worker asks to reserve the task (it runs it only after
  // the executor's go); without it, a notice that the run began.
  static constexpr std::uint8_t kClaim = 2;
  std::uint8_t flags = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, kind, result, type_name, message, traceback, flags);
  }
};

template <class M>
std::string encode(const M& m) {
  return mp::dumps(m).bytes;
}
template <class M>
M decode(std::string_view bytes) {
  M m;
  mp::loads(bytes, {}, m);
  return m;
}

// The Lua scripts (atomic on the server). Each checks that the worker still holds the lease
// before it acts for it: a worker that was paused past its lease must not release or finish a
// task another worker took over.

// FINISH keys[stream, reply, dead, stats]; args[group, consumer, entry, result message, ttl ms,
// dead-letter (0/1), task name, error text, task message, stats field] → 1, or 0 when the lease
// is lost. The stats hash counts outcomes per queue ("<queue>:succeeded" / "<queue>:failed").
inline const Script& finish_script() {
  static const Script s(R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if ARGV[6] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', '10000', '*', 'task', ARGV[7], 'error', ARGV[8],
             'm', ARGV[9])
end
redis.call('HINCRBY', KEYS[4], ARGV[10], 1)
return 1
)lua");
  return s;
}

// RETRY keys[stream, delayed]; args[group, consumer, entry, delay ms, "<name>\n<message>"] → 1,
// or 0 when the lease is lost. Due time: the server's clock plus the delay.
inline const Script& retry_script() {
  static const Script s(clocked(R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
return 1
)lua"));
  return s;
}

// PROMOTE keys[delayed, stream]; args[limit] → the ms until the next waiting task is due (0 when
// more are due now, -1 when none waits), after moving up to `limit` due ones back on the stream.
inline const Script& promote_script() {
  static const Script s(clocked(R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
for _, m in ipairs(due) do
  local nl = string.find(m, '\n', 1, true)
  redis.call('XADD', KEYS[2], '*', 'task', string.sub(m, 1, nl - 1), 'm', string.sub(m, nl + 1))
  redis.call('ZREM', KEYS[1], m)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #next == 0 then return -1 end
return math.max(0, math.ceil(tonumber(next[2]) - now))
)lua"));
  return s;
}

// EXTEND keys[stream]; args[group, consumer, entries...] → how many leases were renewed (reset
// their idle time; XCLAIM ... JUSTID does not count a delivery). A lease another worker took over
// is left alone.
inline const Script& extend_script() {
  static const Script s(R"lua(
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
)lua");
  return s;
}

// RECLAIM keys[stream]; args[group, consumer, lease ms, count, cursor] → {next cursor,
// {{entry, fields, deliveries}...}}: the tasks whose lease expired (their worker died or stalled),
// now leased to this consumer.
inline const Script& reclaim_script() {
  static const Script s(R"lua(
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5], 'COUNT', ARGV[4])
local out = {}
for _, e in ipairs(r[2]) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
  local n = 0
  if #p > 0 then n = p[1][4] end
  table.insert(out, {e[1], e[2], n})
end
return {r[1], out}
)lua");
  return s;
}

// CANCEL keys[stream]; args[group, entry] → 1 when the task was deleted before any worker took it,
// 0 when a worker holds it (or it is gone).
inline const Script& cancel_script() {
  static const Script s(R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p > 0 then return 0 end
return redis.call('XDEL', KEYS[1], ARGV[2])
)lua");
  return s;
}

// TAKE_TOKEN keys[bucket]; args[per second, burst] → 0 when a token was taken, else the ms until
// one is due. The bucket (a hash: tokens, ts) refills continuously on the server's clock and
// expires once full again.
inline const Script& take_token_script() {
  static const Script s(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or burst)
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts') or now)
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
)lua");
  return s;
}

// TAKE_SLOT keys[slots]; args[limit, holder, lease ms] → 1 when the holder has a slot (the sorted
// set's members are holders scored by their lease's end; expired ones are dropped first).
inline const Script& take_slot_script() {
  static const Script s(clocked(R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
)lua"));
  return s;
}

// RENEW_SLOT keys[slots]; args[holder, lease ms] → 1 when the holder still had its slot.
inline const Script& renew_slot_script() {
  static const Script s(clocked(R"lua(
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
)lua"));
  return s;
}

// DEFER keys[stream, delayed]; args[group, consumer, entry, delay ms, "<name>\n<message>"]: the
// retry script's move, for a task that must wait for its limit (the same message: not a retry).
inline const Script& defer_script() { return retry_script(); }

// transient(e): an error reply that passes (LOADING: a restarted Redis reading its data; BUSY: a
// long script; TRYAGAIN, MASTERDOWN): retried with backoff like a lost connection.
inline bool transient(const RedisError& e) {
  const std::string c = e.code();
  return c == "LOADING" || c == "BUSY" || c == "TRYAGAIN" || c == "MASTERDOWN";
}

// ensure_group(redis, stream): creates the consumer group (and the stream) unless it exists; from
// id 0, so that tasks added before any worker came are served.
inline void ensure_group(Redis& redis, std::string_view stream) {
  try {
    (void)redis.command({"XGROUP", "CREATE", stream, kGroup, "0", "MKSTREAM"});
  } catch (const RedisError& e) {
    if (e.code() != "BUSYGROUP") throw;
  }
}

}  // namespace concur::dist::detail
