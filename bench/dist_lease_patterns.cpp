// dist_lease_patterns: the issue's "a task is leased to one worker (Redis Streams consumer groups
// with XAUTOCLAIM, or a reliable-list pattern — choose by measurement)", measured. Two lease
// patterns with the same semantics, driven through concur's own dist::Redis / dist::Script against
// one private redis-server this program starts (a free loopback port, no persistence) and stops:
//
//   streams     what concur::dist does (src/dist/protocol.hpp): XADD; XREADGROUP COUNT 1 BLOCK;
//               FINISH = Lua (XPENDING owner check, XACK, XDEL, RPUSH result, PEXPIRE); renewal =
//               EXTEND's shape (XPENDING + XCLAIM JUSTID per task); expired scan = XAUTOCLAIM.
//   list        a reliable list: LPUSH q; take = one Lua script (LMOVE q processing RIGHT LEFT,
//               ZADD leases <deadline> <task>, HSET owners <task-id> <consumer>) so that take and
//               lease are atomic, and when q is empty a BLMOVE q q RIGHT RIGHT (a no-op rotation
//               that only waits for an item) before taking again; finish = Lua (HGET owner check,
//               LREM processing 1 task, ZREM, HDEL, RPUSH result, PEXPIRE); renewal = Lua (owner
//               check, ZADD XX); expired scan = Lua (ZRANGEBYSCORE -inf now LIMIT, then LREM from
//               processing and RPUSH back on q).
//   list-tail   the same with LREM -1 (search processing from its tail, where the oldest task is).
//
// Measured, each --reps times, each measurement run for every pattern in turn (the order rotated
// per repetition): (a) throughput of
// --tasks tasks, 1 producer thread and 1 / 2 consumer threads (own connections, finish before the
// next take); (b) sequential produce → take → finish → BLPOP result round trips; (c) with 10 and
// 1000 tasks in flight: one renewal of all of them, one expired-lease scan finding none, finishing
// the oldest task (a sliding window), and taking over all of them when they have all expired;
// (d) redis-server CPU (INFO CPU, sys + user) per task in (a) and (b).
//   dist_lease_patterns [--tasks 20000] [--latency-samples 2000] [--reps 3] [--out FILE]
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/dist/redis.hpp"
#include "concur/errors.hpp"
#include "support/loopback.hpp"

namespace {

using concur::dist::Redis;
using concur::dist::RedisUrl;
using concur::dist::Reply;
using concur::dist::Script;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kIdWidth = 16;  // a task message starts with its zero-padded id
constexpr long long kLeaseMs = 60'000;
constexpr std::string_view kResultTtlMs = "86400000";

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::string make_msg(std::uint64_t id, std::size_t size) {
  std::string s = std::to_string(id);
  s.insert(0, kIdWidth - std::min(kIdWidth, s.size()), '0');
  s += ':';
  while (s.size() < size) s += static_cast<char>('a' + s.size() % 26);
  return s;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto rank =
      static_cast<std::size_t>(std::max(1.0, std::ceil(p / 100.0 * static_cast<double>(v.size()))));
  return v[std::min(rank, v.size()) - 1];
}

double loadavg() {
  std::ifstream in("/proc/loadavg");
  double v = NAN;
  in >> v;
  return v;
}

// server_cpu_s: redis-server's used_cpu_sys + used_cpu_user (seconds), from INFO CPU.
double server_cpu_s(Redis& r) {
  const std::string info = r.command({"INFO", "CPU"}).str;
  double total = 0;
  for (const char* key : {"used_cpu_sys:", "used_cpu_user:"}) {
    const auto at = info.find(key);
    if (at != std::string::npos) total += std::stod(info.substr(at + std::strlen(key)));
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// The private redis-server.

class RedisServer {
 public:
  RedisServer(const std::string& exe, int port) : port_(port) {
    const std::string p = std::to_string(port);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlives this program
      const int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
      ::execlp(exe.c_str(), exe.c_str(), "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {  // up to ~5 s
      try {
        Redis r = Redis::connect(url(), std::chrono::milliseconds(200));
        if (r.command({"PING"}).str == "PONG") return;
      } catch (const std::exception&) {
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start (port " + p + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    stop();
    throw std::runtime_error("redis-server did not answer PING on port " + p);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() { stop(); }

  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; ++i) {  // up to ~5 s, then SIGKILL
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  [[nodiscard]] RedisUrl url() const {
    RedisUrl u;
    u.host = "127.0.0.1";
    u.port = port_;
    return u;
  }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  int port_;
  pid_t pid_ = -1;
};

// ---------------------------------------------------------------------------------------------
// The two patterns.

struct Task {
  std::string entry;  // streams: the entry id
  std::string msg;    // the task message (starts with its id)
};

class Pattern {
 public:
  virtual ~Pattern() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  virtual void setup(Redis& r) = 0;
  virtual void produce(Redis& r, const std::string& msg) = 0;
  // take(): one task leased to consumer; with block, waits up to 100 ms for one.
  virtual std::optional<Task> take(Redis& r, const std::string& consumer, bool block) = 0;
  // finish(): stores the result when consumer still holds the lease (false otherwise).
  virtual bool finish(Redis& r, const std::string& consumer, const Task& t,
                      std::string_view result) = 0;
  // extend(): renews the leases of tasks held by consumer (one script call); how many renewed.
  virtual long long extend(Redis& r, const std::string& consumer, const std::vector<Task>& ts) = 0;
  // scan_pass(): one full pass of the expired-lease scan (as many calls as a pass takes); how many
  // tasks it took over. all_expired pretends every lease has expired.
  virtual long long scan_pass(Redis& r, const std::string& consumer, bool all_expired) = 0;
};

class Streams final : public Pattern {
 public:
  [[nodiscard]] std::string name() const override { return "streams"; }
  void setup(Redis& r) override {
    (void)r.command({"XGROUP", "CREATE", "q", "g", "0", "MKSTREAM"});
  }
  void produce(Redis& r, const std::string& msg) override {
    (void)r.command({"XADD", "q", "*", "m", msg});
  }
  std::optional<Task> take(Redis& r, const std::string& consumer, bool block) override {
    const Reply rep =
        block
            ? r.command({"XREADGROUP", "GROUP", "g", consumer, "COUNT", "1", "BLOCK", "100",
                         "STREAMS", "q", ">"})
            : r.command({"XREADGROUP", "GROUP", "g", consumer, "COUNT", "1", "STREAMS", "q", ">"});
    if (rep.is_nil() || rep.elements.empty()) return std::nullopt;
    const Reply& entries = rep.at(0).at(1);
    if (entries.elements.empty()) return std::nullopt;
    const Reply& e = entries.at(0);
    return Task{e.at(0).str, e.at(1).at(1).str};
  }
  bool finish(Redis& r, const std::string& consumer, const Task& t,
              std::string_view result) override {
    return finish_.run(r, {"q", "reply"}, {"g", consumer, t.entry, result, kResultTtlMs}).integer ==
           1;
  }
  long long extend(Redis& r, const std::string& consumer, const std::vector<Task>& ts) override {
    std::vector<std::string_view> args{"g", consumer};
    for (const Task& t : ts) args.emplace_back(t.entry);
    return extend_.run(r, {"q"}, args).integer;
  }
  long long scan_pass(Redis& r, const std::string& consumer, bool all_expired) override {
    const std::string idle = all_expired ? "0" : std::to_string(kLeaseMs);
    std::string cursor = "0-0";
    long long n = 0;
    for (int i = 0; i < 100'000; ++i) {
      const Reply rep = r.command({"XAUTOCLAIM", "q", "g", consumer, idle, cursor, "COUNT", "100"});
      cursor = rep.at(0).str;
      n += static_cast<long long>(rep.at(1).elements.size());
      if (cursor == "0-0") break;
    }
    return n;
  }

 private:
  // concur's FINISH without the dead-letter and stats parts (the list pattern has neither).
  Script finish_{R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
)lua"};
  // concur's EXTEND.
  Script extend_{R"lua(
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
)lua"};
};

// Keys: q (LPUSH at the left, taken from the right), processing (a list: the tasks taken),
// leases (a sorted set: task message → lease deadline, ms of the server's clock), owners (a hash:
// task id → consumer). The sorted set's member is the whole message (it starts with the unique id)
// so that the expired scan can put it back on q without a third structure.
class ReliableList final : public Pattern {
 public:
  explicit ReliableList(bool tail_first) : lrem_count_(tail_first ? "-1" : "1") {}
  [[nodiscard]] std::string name() const override {
    return lrem_count_ == "1" ? "list" : "list-tail";
  }
  void setup(Redis&) override {}
  void produce(Redis& r, const std::string& msg) override { (void)r.command({"LPUSH", "q", msg}); }
  std::optional<Task> take(Redis& r, const std::string& consumer, bool block) override {
    const std::string lease = std::to_string(kLeaseMs);
    Reply rep = take_.run(r, {"q", "processing", "leases", "owners"}, {consumer, lease});
    if (rep.is_nil() && block) {
      // Wait for an item without taking it (q → q), then take and lease it atomically.
      if (r.command({"BLMOVE", "q", "q", "RIGHT", "RIGHT", "0.1"}).is_nil()) return std::nullopt;
      rep = take_.run(r, {"q", "processing", "leases", "owners"}, {consumer, lease});
    }
    if (rep.is_nil()) return std::nullopt;
    return Task{{}, rep.str};
  }
  bool finish(Redis& r, const std::string& consumer, const Task& t,
              std::string_view result) override {
    return finish_
               .run(r, {"processing", "leases", "owners", "reply"},
                    {consumer, t.msg, result, kResultTtlMs, lrem_count_})
               .integer == 1;
  }
  long long extend(Redis& r, const std::string& consumer, const std::vector<Task>& ts) override {
    const std::string lease = std::to_string(kLeaseMs);
    std::vector<std::string_view> args{consumer, lease};
    for (const Task& t : ts) args.emplace_back(t.msg);
    return extend_.run(r, {"leases", "owners"}, args).integer;
  }
  long long scan_pass(Redis& r, const std::string&, bool all_expired) override {
    const std::string skew = all_expired ? std::to_string(kLeaseMs + 1000) : "0";
    long long n = 0;
    for (int i = 0; i < 100'000; ++i) {
      const long long got =
          scan_.run(r, {"leases", "processing", "q", "owners"}, {skew, "100", lrem_count_}).integer;
      n += got;
      if (got < 100) break;
    }
    return n;
  }

 private:
  std::string lrem_count_;
  // TAKE keys[q, processing, leases, owners]; args[consumer, lease ms] → the task, or nil.
  Script take_{R"lua(
local m = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if not m then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), m)
redis.call('HSET', KEYS[4], string.sub(m, 1, 16), ARGV[1])
return m
)lua"};
  // FINISH keys[processing, leases, owners, reply]; args[consumer, task, result, ttl, lrem count].
  Script finish_{R"lua(
local id = string.sub(ARGV[2], 1, 16)
if redis.call('HGET', KEYS[3], id) ~= ARGV[1] then return 0 end
redis.call('LREM', KEYS[1], ARGV[5], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], id)
redis.call('RPUSH', KEYS[4], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
return 1
)lua"};
  // EXTEND keys[leases, owners]; args[consumer, lease ms, tasks...] → how many renewed.
  Script extend_{R"lua(
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], string.sub(ARGV[i], 1, 16)) == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', due, ARGV[i])
    n = n + 1
  end
end
return n
)lua"};
  // SCAN keys[leases, processing, q, owners]; args[clock skew ms, limit, lrem count] → how many
  // expired tasks went back on q (at its right end: taken next).
  Script scan_{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  redis.call('LREM', KEYS[2], ARGV[3], m)
  redis.call('RPUSH', KEYS[3], m)
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[4], string.sub(m, 1, 16))
end
return #due
)lua"};
};

// ---------------------------------------------------------------------------------------------
// The measurements.

struct Config {
  RedisUrl url;
  int tasks = 20'000;
  int samples = 2'000;
  int warmup = 100;
  int reps = 3;
  std::size_t payload = 100;
  std::vector<int> inflight{10, 1000};
  int inner = 30;          // timed calls per in-flight measurement
  int finish_iters = 300;  // sliding-window finishes per in-flight measurement
  double timeout_s = 120;
};

// Results: metric → pattern → one value per repetition.
using Results = std::map<std::string, std::map<std::string, std::vector<double>>>;

void fresh(Redis& admin, Pattern& p) {
  (void)admin.command({"FLUSHALL"});
  p.setup(admin);
}

Redis connect(const Config& c) {
  Redis r = Redis::connect(c.url);
  r.set_timeout(std::chrono::seconds(5));
  return r;
}

// (a) throughput: 1 producer, `consumers` consumers, tasks/s from start to the last finish.
void throughput(const Config& c, Pattern& p, Redis& admin, int consumers, Results& out,
                std::ostream& raw, int rep) {
  fresh(admin, p);
  const auto n = c.tasks;
  std::atomic<int> done{0};
  std::atomic<bool> failed{false};
  Clock::time_point t_end{};
  std::latch start(consumers + 2);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(c.timeout_s));
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    Redis r = connect(c);
    start.arrive_and_wait();
    try {
      for (int i = 0; i < n; ++i) p.produce(r, make_msg(static_cast<std::uint64_t>(i), c.payload));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "producer: %s\n", e.what());
      failed = true;
    }
  });
  for (int k = 0; k < consumers; ++k) {
    threads.emplace_back([&, k] {
      Redis r = connect(c);
      const std::string me = "c" + std::to_string(k);
      start.arrive_and_wait();
      try {
        while (done.load() < n && !failed.load() && Clock::now() < deadline) {
          const auto t = p.take(r, me, true);
          if (!t) continue;
          if (!p.finish(r, me, *t, "r" + t->msg.substr(0, kIdWidth)))
            throw std::runtime_error("lease lost");
          if (done.fetch_add(1) + 1 == n) t_end = Clock::now();
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        failed = true;
      }
    });
  }
  const double cpu0 = server_cpu_s(admin);
  start.arrive_and_wait();
  const auto t0 = Clock::now();
  for (auto& t : threads) t.join();
  const double cpu1 = server_cpu_s(admin);
  const long long replies = admin.command({"LLEN", "reply"}).integer;
  if (failed || done.load() != n || replies != n)
    throw std::runtime_error(p.name() + ": throughput run incomplete (" +
                             std::to_string(done.load()) + " done, " + std::to_string(replies) +
                             " results)");
  const double secs = std::chrono::duration<double>(t_end - t0).count();
  const std::string tag = "c" + std::to_string(consumers);
  const double tps = n / secs;
  const double cpu_us = (cpu1 - cpu0) * 1e6 / n;
  out["a_tput_" + tag][p.name()].push_back(tps);
  out["d_cpu_tput_" + tag][p.name()].push_back(cpu_us);
  raw << "rep=" << rep << " pattern=" << p.name() << " test=throughput consumers=" << consumers
      << " tasks=" << n << " seconds=" << secs << " tasks_per_s=" << tps
      << " server_cpu_us_per_task=" << cpu_us << " load1=" << loadavg() << "\n";
}

// (b) sequential round trips: produce → (consumer thread) take → finish → BLPOP the result.
void latency(const Config& c, Pattern& p, Redis& admin, Results& out, std::ostream& raw, int rep) {
  fresh(admin, p);
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::thread consumer([&] {
    try {
      Redis r = connect(c);
      while (!stop.load()) {
        const auto t = p.take(r, "c0", true);
        if (t && !p.finish(r, "c0", *t, "r" + t->msg.substr(0, kIdWidth)))
          throw std::runtime_error("lease lost");
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "consumer: %s\n", e.what());
      failed = true;
    }
  });
  Redis client = connect(c);
  std::vector<double> pings;  // the floor: one PING round trip, measured in the same slot
  for (int i = 0; i < 500; ++i) {
    const auto t0 = Clock::now();
    (void)client.command({"PING"});
    pings.push_back(us_since(t0));
  }
  std::vector<double> rts;
  rts.reserve(static_cast<std::size_t>(c.samples));
  double cpu0 = 0;
  try {
    for (int i = 0; i < c.warmup + c.samples && !failed.load(); ++i) {
      if (i == c.warmup) cpu0 = server_cpu_s(admin);
      const auto t0 = Clock::now();
      p.produce(client, make_msg(static_cast<std::uint64_t>(i), c.payload));
      const Reply r = client.command({"BLPOP", "reply", "5"});
      if (r.is_nil()) throw std::runtime_error("no result within 5 s");
      if (i >= c.warmup) rts.push_back(us_since(t0));
    }
  } catch (...) {
    stop = true;
    consumer.join();
    throw;
  }
  const double cpu1 = server_cpu_s(admin);
  stop = true;
  consumer.join();
  if (failed) throw std::runtime_error(p.name() + ": latency run failed");
  const double p50 = percentile(rts, 50);
  const double p99 = percentile(rts, 99);
  const double cpu_us = (cpu1 - cpu0) * 1e6 / c.samples;
  out["b_ping_p50_us"][p.name()].push_back(percentile(pings, 50));
  out["b_rt_p50_us"][p.name()].push_back(p50);
  out["b_rt_p99_us"][p.name()].push_back(p99);
  out["d_cpu_rt"][p.name()].push_back(cpu_us);
  raw << "rep=" << rep << " pattern=" << p.name() << " test=roundtrip samples=" << c.samples
      << " ping_p50_us=" << percentile(pings, 50) << " p50_us=" << p50 << " p99_us=" << p99
      << " mean_us=" <<
      [&] {
        double s = 0;
        for (double v : rts) s += v;
        return s / static_cast<double>(rts.size());
      }()
      << " server_cpu_us_per_rt=" << cpu_us << " load1=" << loadavg() << "\n";
}

// (c) with k tasks in flight (all held by one consumer "h"): renewal of all k in one call, a scan
// finding none expired, finishing the oldest (then taking a new one: k stays in flight), and the
// takeover of all k once they have all expired.
void inflight(const Config& c, Pattern& p, Redis& admin, int k, Results& out, std::ostream& raw,
              int rep) {
  fresh(admin, p);
  Redis r = connect(c);
  std::uint64_t next = 0;
  std::deque<Task> held;
  auto take_one = [&] {
    p.produce(r, make_msg(next++, c.payload));
    auto t = p.take(r, "h", false);
    if (!t) throw std::runtime_error(p.name() + ": nothing to take");
    held.push_back(std::move(*t));
  };
  for (int i = 0; i < k; ++i) take_one();
  const auto nk = static_cast<std::size_t>(k);

  std::vector<double> renew, scan, fin;
  for (int i = 0; i < c.inner; ++i) {
    const std::vector<Task> all(held.begin(), held.end());
    const auto t0 = Clock::now();
    const long long n = p.extend(r, "h", all);
    renew.push_back(us_since(t0));
    if (n != k) throw std::runtime_error(p.name() + ": renewed " + std::to_string(n));
  }
  for (int i = 0; i < c.inner; ++i) {
    const auto t0 = Clock::now();
    const long long n = p.scan_pass(r, "scanner", false);
    scan.push_back(us_since(t0));
    if (n != 0) throw std::runtime_error(p.name() + ": scan found " + std::to_string(n));
  }
  for (int i = 0; i < c.finish_iters; ++i) {
    take_one();  // k + 1 in flight
    const auto t0 = Clock::now();
    const bool ok = p.finish(r, "h", held.front(), "result");
    fin.push_back(us_since(t0));
    if (!ok) throw std::runtime_error(p.name() + ": lease lost");
    held.pop_front();
  }
  if (held.size() != nk) throw std::runtime_error("in-flight count drifted");
  const auto t0 = Clock::now();
  const long long taken = p.scan_pass(r, "scanner", true);
  const double takeover_us = us_since(t0);
  if (taken != k) throw std::runtime_error(p.name() + ": took over " + std::to_string(taken));

  const std::string tag = "_k" + std::to_string(k);
  const double renew_us = percentile(renew, 50);
  const double scan_us = percentile(scan, 50);
  const double fin_us = percentile(fin, 50);
  out["c_renew_call_us" + tag][p.name()].push_back(renew_us);
  out["c_scan_none_us" + tag][p.name()].push_back(scan_us);
  out["c_finish_oldest_us" + tag][p.name()].push_back(fin_us);
  out["c_takeover_all_us" + tag][p.name()].push_back(takeover_us);
  raw << "rep=" << rep << " pattern=" << p.name() << " test=inflight k=" << k
      << " renew_all_call_p50_us=" << renew_us << " renew_per_lease_us=" << renew_us / k
      << " scan_none_p50_us=" << scan_us << " finish_oldest_p50_us=" << fin_us
      << " finish_oldest_p99_us=" << percentile(fin, 99) << " takeover_all_us=" << takeover_us
      << " takeover_per_task_us=" << takeover_us / k << " load1=" << loadavg() << "\n";
}

std::string fmt(double v) {
  char b[32];
  if (std::fabs(v) >= 1000)
    std::snprintf(b, sizeof b, "%.0f", v);
  else if (std::fabs(v) >= 10)
    std::snprintf(b, sizeof b, "%.1f", v);
  else
    std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

std::string table(const Results& res, const std::vector<std::string>& names) {
  static const std::map<std::string, std::string> label{
      {"a_tput_c1", "(a) throughput, 1 consumer, tasks/s"},
      {"a_tput_c2", "(a) throughput, 2 consumers, tasks/s"},
      {"b_ping_p50_us", "(b) PING p50 (the floor, same slot), us"},
      {"b_rt_p50_us", "(b) round trip p50, us"},
      {"b_rt_p99_us", "(b) round trip p99, us"},
      {"d_cpu_tput_c1", "(d) server CPU per task, 1 consumer, us"},
      {"d_cpu_tput_c2", "(d) server CPU per task, 2 consumers, us"},
      {"d_cpu_rt", "(d) server CPU per round trip, us"},
  };
  std::ostringstream s;
  s << "| measurement |";
  for (const auto& n : names) s << " " << n << " |";
  s << "\n| --- |";
  for (std::size_t i = 0; i < names.size(); ++i) s << " ---: |";
  s << "\n";
  for (const auto& [metric, by_pattern] : res) {
    std::string l;
    if (const auto it = label.find(metric); it != label.end()) {
      l = it->second;
    } else {
      const auto k = metric.substr(metric.rfind("_k") + 2);
      const auto base = metric.substr(0, metric.rfind("_k"));
      if (base == "c_renew_call_us") l = "(c) renew all " + k + " leases (one call), us";
      if (base == "c_scan_none_us") l = "(c) expired scan, none of " + k + " expired, us";
      if (base == "c_finish_oldest_us") l = "(c) finish oldest, " + k + " in flight, us";
      if (base == "c_takeover_all_us") l = "(c) take over all " + k + " expired, us";
    }
    s << "| " << l << " |";
    for (const auto& n : names) {
      const auto it = by_pattern.find(n);
      if (it == by_pattern.end() || it->second.empty()) {
        s << " - |";
        continue;
      }
      const auto& v = it->second;
      s << " " << fmt(percentile(v, 50)) << " [" << fmt(*std::min_element(v.begin(), v.end()))
        << "–" << fmt(*std::max_element(v.begin(), v.end())) << "] |";
    }
    s << "\n";
  }
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Streams consumer group vs reliable list: the lease patterns' cost per task"};
  Config c;
  std::string server = "redis-server";
  std::string out_path;
  int port = 0;
  app.add_option("--redis-server", server, "the redis-server executable");
  app.add_option("--port", port, "its port (0: a free one)");
  app.add_option("--tasks", c.tasks, "tasks per throughput run")->check(CLI::PositiveNumber);
  app.add_option("--latency-samples", c.samples, "sequential round trips per latency run")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", c.warmup, "round trips before measuring")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--reps", c.reps, "repetitions of every measurement")->check(CLI::PositiveNumber);
  app.add_option("--payload", c.payload, "task message bytes")->check(CLI::Range(24, 1 << 20));
  app.add_option("--inflight", c.inflight, "tasks in flight for the lease-cost measurements")
      ->check(CLI::PositiveNumber);
  app.add_option("--timeout", c.timeout_s, "seconds a throughput run may take");
  app.add_option("--out", out_path, "also append the raw results and the table to FILE");
  CLI11_PARSE(app, argc, argv);

  try {
    RedisServer srv(server, port == 0 ? concur::testing::free_loopback_port() : port);
    c.url = srv.url();
    Redis admin = connect(c);
    const std::string version = [&] {
      const std::string info = admin.command({"INFO", "SERVER"}).str;
      const auto at = info.find("redis_version:");
      return at == std::string::npos ? std::string("?")
                                     : info.substr(at + 14, info.find('\r', at) - at - 14);
    }();
    std::ostringstream raw;
    raw << "# dist_lease_patterns: redis-server " << version << " (pid " << srv.pid() << ", port "
        << c.url.port << "), tasks=" << c.tasks << " samples=" << c.samples << " reps=" << c.reps
        << " payload=" << c.payload << " hw_threads=" << std::thread::hardware_concurrency()
        << " load1_start=" << loadavg() << "\n";
    std::printf("%s", raw.str().c_str());
    std::fflush(stdout);

    std::vector<std::unique_ptr<Pattern>> patterns;
    patterns.push_back(std::make_unique<Streams>());
    patterns.push_back(std::make_unique<ReliableList>(false));
    patterns.push_back(std::make_unique<ReliableList>(true));
    std::vector<std::string> names;
    for (const auto& p : patterns) names.push_back(p->name());

    // Interleaved at the finest grain that keeps a measurement whole: every measurement of a
    // repetition runs for each pattern in turn (the order rotated per repetition), so that the
    // patterns compared in one row ran seconds apart on this noisy machine.
    Results res;
    const std::size_t np = patterns.size();
    for (int rep = 1; rep <= c.reps; ++rep) {
      const auto before = raw.str().size();
      auto each = [&](const auto& measure) {
        for (std::size_t j = 0; j < np; ++j)
          measure(*patterns[(j + static_cast<std::size_t>(rep - 1)) % np]);
      };
      each([&](Pattern& p) { throughput(c, p, admin, 1, res, raw, rep); });
      each([&](Pattern& p) { throughput(c, p, admin, 2, res, raw, rep); });
      each([&](Pattern& p) { latency(c, p, admin, res, raw, rep); });
      for (int k : c.inflight) each([&](Pattern& p) { inflight(c, p, admin, k, res, raw, rep); });
      std::printf("%s", raw.str().substr(before).c_str());
      std::fflush(stdout);
    }
    (void)admin.command({"FLUSHALL"});
    const std::string t = table(res, names);
    raw << "# load1_end=" << loadavg() << "\n# median [min–max] of " << c.reps << " repetitions\n"
        << t;
    std::printf("# load1_end=%.2f\n\n%s", loadavg(), t.c_str());
    if (!out_path.empty()) {
      std::ofstream f(out_path, std::ios::app);
      f << raw.str();
      if (!f) throw std::runtime_error("cannot write " + out_path);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_lease_patterns: %s\n", e.what());
    return 1;
  }
  return 0;
}
