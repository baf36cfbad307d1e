// concur::dist::RedisExecutor and Worker against a private redis-server: results, errors,
// batches, misuse, cancel and running(), retries and dead letters, leases (a killed worker's tasks
// taken over, a long task never run twice, a paused worker's result dropped, a task that kills
// every worker given up), warm stop, priorities, and a Redis restart with appendonly.
#include "concur/dist/executor.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "concur/dist/redis.hpp"
#include "concur/dist/worker.hpp"
#include "concur/errors.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "support/dist_worker.hpp"
#include "support/loopback.hpp"
#include "support/process_support.hpp"
#include "support/redis_server.hpp"
#include "support/test_support.hpp"

namespace concur::dist::test {

using namespace std::chrono_literals;
using concur::testing::RedisServer;

// kRemote bounds every wait on a remote result (slow under TSan).
constexpr auto kRemote = std::chrono::seconds(60);

// ---- The registered tasks

inline Redis connect_to(const std::string& url) { return Redis::connect(RedisUrl::parse(url)); }

bool dist_is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}
CONCUR_TASK(dist_is_prime);

int dist_mul(int x, int y) { return x * y; }
CONCUR_TASK(dist_mul);

int dist_raise(int x) { throw ValueError("bad value " + std::to_string(x)); }
CONCUR_TASK(dist_raise);

void dist_touch(std::string path) { concur::testing::write_file(path, "ran"); }
CONCUR_TASK(dist_touch);

// dist_counted(url, key, ms, value): counts its run in Redis (INCR key), sleeps ms, returns value.
int dist_counted(std::string url, std::string key, int ms, int value) {
  (void)connect_to(url).command({"INCR", key});
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
CONCUR_TASK(dist_counted);

// dist_flaky(url, key, fail_first, value): the first `fail_first` runs (counted in Redis) throw.
int dist_flaky(std::string url, std::string key, int fail_first, int value) {
  const long long run = connect_to(url).command({"INCR", key}).integer;
  if (run <= fail_first) throw RuntimeError("flaky run " + std::to_string(run));
  return value;
}
CONCUR_TASK(dist_flaky);

// dist_gate(url, key, value): marks key:started, waits until key exists (at most 60 s).
int dist_gate(std::string url, std::string key, int value) {
  Redis r = connect_to(url);
  (void)r.command({"SET", key + ":started", "1"});
  const auto deadline = std::chrono::steady_clock::now() + kRemote;
  while (r.command({"EXISTS", key}).integer == 0) {
    if (std::chrono::steady_clock::now() >= deadline) throw TimeoutError("gate never opened");
    std::this_thread::sleep_for(2ms);
  }
  return value;
}
CONCUR_TASK(dist_gate);

// dist_record(url, list, tag): appends tag to a Redis list (the order tasks ran in).
void dist_record(std::string url, std::string list, std::string tag) {
  (void)connect_to(url).command({"RPUSH", list, tag});
}
CONCUR_TASK(dist_record);

// dist_stamp(url, list): appends the server's time in ms to a list (when the task ran).
void dist_stamp(std::string url, std::string list) {
  (void)connect_to(url).command({"EVAL",
                                 "local t = redis.call('TIME') return redis.call('RPUSH', KEYS[1], "
                                 "t[1] * 1000 + math.floor(t[2] / 1000))",
                                 "1", list});
}
CONCUR_TASK(dist_stamp);

// dist_probe(url, key, ms): counts itself running (key) and records the most at once (key:max).
void dist_probe(std::string url, std::string key, int ms) {
  Redis r = connect_to(url);
  (void)r.command(
      {"EVAL",
       "local n = redis.call('INCR', KEYS[1]) "
       "if n > tonumber(redis.call('GET', KEYS[2]) or 0) then redis.call('SET', KEYS[2], n) end",
       "2", key, key + ":max"});
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  (void)r.command({"DECR", key});
}
CONCUR_TASK(dist_probe);

// dist_die(): the worker process running it dies at once.
// dist_soft_loop(): works in 5 ms steps until its soft time limit passes, then stops itself
// (SoftTimeLimitExceeded); gives up after 60 s. dist_soft_left(): ms left before it, -1: none.
int dist_soft_loop() {
  for (int i = 0; i < 12000; ++i) {
    mp::check_soft_time_limit();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}
CONCUR_TASK(dist_soft_loop);
long long dist_soft_left() {
  const auto left = mp::soft_time_left();
  return left ? left->count() : -1;
}
CONCUR_TASK(dist_soft_left);

int dist_die() { ::_exit(9); }
CONCUR_TASK(dist_die);

// run_worker(url, queues, concurrency, lease_ms): a worker in a child process (mp::Process).
void run_worker(std::string url, std::string queue, int concurrency, int lease_ms) {
  WorkerOptions o;
  o.url = std::move(url);
  o.queues = {std::move(queue)};
  o.concurrency = static_cast<std::size_t>(concurrency);
  o.lease = std::chrono::milliseconds(lease_ms);
  o.max_deliveries = 2;
  Worker w(o);
  w.run();
}
CONCUR_TASK(run_worker);

// ---- Fixture

using concur::testing::InProcessWorker;

class DistTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.start(); }

  std::string url() const { return server_.url(); }
  Redis redis() const { return server_.client(); }

  WorkerOptions worker_options(std::size_t concurrency = 2,
                               std::chrono::milliseconds lease = 30s) const {
    WorkerOptions o;
    o.url = url();
    o.concurrency = concurrency;
    o.lease = lease;
    return o;
  }
  std::unique_ptr<InProcessWorker> start_worker(std::size_t concurrency = 2,
                                                std::chrono::milliseconds lease = 30s) {
    return std::make_unique<InProcessWorker>(worker_options(concurrency, lease));
  }
  // wait_key(key): polls until key exists (a gate task started).
  bool wait_key(const std::string& key) {
    Redis r = redis();
    return concur::testing::poll_until(kRemote, [&] {
      return r.command({"EXISTS", key}).integer == 1;
    });
  }
  long long counter(const std::string& key) {
    const Reply v = redis().command({"GET", key});
    return v.is_nil() ? 0 : v.as_integer();
  }
  // queued(n): polls until the default queue's stream holds n entries (submits are pipelined).
  bool queued(long long n) {
    Redis r = redis();
    return concur::testing::poll_until(kRemote, [&] {
      return r.command({"XLEN", "concur:q:default"}).integer == n;
    });
  }
  // calls_of(command): how many times Redis ran `command` since the last CONFIG RESETSTAT.
  long long calls_of(const std::string& command) {
    const std::string info = redis().command({"INFO", "commandstats"}).str;
    const std::string tag = "cmdstat_" + command + ":calls=";
    const std::size_t at = info.find(tag);
    return at == std::string::npos ? 0 : std::stoll(info.substr(at + tag.size()));
  }
  void warm_stops_leave_nothing_leased(std::size_t prefetch);
  void restart_loses_nothing_acknowledged(std::size_t prefetch);

  RedisServer server_;
};

// ---- Results, errors, batches

TEST_F(DistTest, SubmitRunsOnAWorkerAndReturnsTheResult) {
  auto w = start_worker();
  RedisExecutor ex(url());
  Future<int> f = ex.submit(dist_mul, 6, 7);
  Future<bool> p = ex.submit(dist_is_prime, std::uint64_t{112272535095293});
  EXPECT_EQ(f.result(kRemote), 42);
  EXPECT_TRUE(p.result(kRemote));
  EXPECT_FALSE(ex.submit(dist_is_prime, std::uint64_t{112272535095291}).result(kRemote));
  EXPECT_EQ(ex.pending(), 0u);
}

TEST_F(DistTest, SubmitsFromSeveralThreadsAllResolve) {
  auto w1 = start_worker(2);
  auto w2 = start_worker(2);
  RedisExecutor ex(url());
  constexpr int kThreads = 4, kEach = 150;
  std::vector<std::vector<Future<int>>> futures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) futures[t].push_back(ex.submit(dist_mul, t, i));
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kEach; ++i) ASSERT_EQ(futures[t][i].result(kRemote), t * i);
  // (a worker counts a task after storing its result: the count may trail the future a moment)
  EXPECT_TRUE(concur::testing::poll_until(kRemote, [&] {
    return w1->worker().stats().succeeded + w2->worker().stats().succeeded ==
           std::uint64_t{kThreads * kEach};
  }));
}

TEST_F(DistTest, ATaskExceptionArrivesAsRemoteError) {
  auto w = start_worker();
  RedisExecutor ex(url());
  Future<int> f = ex.submit(dist_raise, 5);
  try {
    (void)f.result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
    EXPECT_EQ(e.message(), "bad value 5");
    EXPECT_NE(e.traceback().find("dist_raise"), std::string::npos) << e.traceback();
    EXPECT_NE(e.traceback().find(w->worker().name()), std::string::npos) << e.traceback();
  }
  EXPECT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return w->worker().stats().failed == 1; }));
}

TEST_F(DistTest, VoidTasksAndBatches) {
  auto w = start_worker();
  concur::testing::TempDir dir;
  RedisExecutor ex(url());
  const std::string path = dir.file("touched");
  ex.submit(dist_touch, path).result(kRemote);
  EXPECT_TRUE(std::filesystem::exists(path));
  auto b = ex.submit_batch(dist_mul, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}, {5, 6}});
  EXPECT_EQ(b.result(kRemote), (std::vector<int>{2, 12, 30}));
  EXPECT_TRUE(ex.submit_batch(dist_mul, std::vector<std::tuple<int, int>>{}).result().empty());
  auto bad = ex.submit_batch(dist_raise, std::vector<std::tuple<int>>{{1}, {2}});
  EXPECT_THROW((void)bad.result(kRemote), RemoteError);
}

// ---- Misuse

int dist_unregistered(int x) { return x; }

TEST_F(DistTest, MisuseIsRefusedClearly) {
  EXPECT_THROW(RedisExecutor("http://nope"), ValueError);
  const std::uint16_t port = concur::testing::free_loopback_port();
  EXPECT_THROW(RedisExecutor("redis://127.0.0.1:" + std::to_string(port)), ConnectionError);
  RedisExecutor ex(url());
  EXPECT_THROW((void)ex.submit(dist_unregistered, 1), UsageError);
  Executor& base = ex;
  EXPECT_THROW((void)base.submit([] { return 1; }), UsageError);
  EXPECT_EQ(ex.pending(), 0u) << "a refused submit leaves nothing behind";
  ex.shutdown();
  ex.shutdown();  // idempotent
  try {
    (void)ex.submit(dist_mul, 1, 2);
    FAIL() << "submit after shutdown";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot schedule new futures after shutdown"),
              std::string::npos);
  }
  EXPECT_THROW((void)ex.submit_batch(dist_mul, std::vector<std::tuple<int, int>>{}), RuntimeError);
  WorkerOptions o = worker_options();
  o.queues = {};
  EXPECT_THROW(Worker{o}, ValueError);
  o = worker_options();
  o.lease = 1ms;
  EXPECT_THROW(Worker{o}, ValueError);
  o = worker_options();
  o.time_limit = 1s;  // a thread cannot be stopped: the limit needs processes
  EXPECT_THROW(Worker{o}, ValueError);
  o.processes = true;
  o.time_limit = -1ms;
  EXPECT_THROW(Worker{o}, ValueError);
  RedisExecutor ex2(url());
  TaskOptions t;
  t.time_limit = -1ms;
  EXPECT_THROW((void)ex2.submit_with(t, dist_mul, 1, 2), ValueError);
}

// ---- running() and cancel()

TEST_F(DistTest, AQueuedTaskIsCancelledAndNeverRuns) {
  concur::testing::TempDir dir;
  RedisExecutor ex(url());
  const std::string path = dir.file("cancelled");
  Future<void> f = ex.submit(dist_touch, path);  // no worker yet: queued
  EXPECT_FALSE(f.running());
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_EQ(redis().command({"XLEN", "concur:q:default"}).integer, 0)
      << "the cancelled task was deleted from its stream";
  auto w = start_worker();
  EXPECT_EQ(ex.submit(dist_mul, 2, 3).result(kRemote), 6);  // the worker is past the cancelled one
  EXPECT_FALSE(std::filesystem::exists(path)) << "a cancelled task ran";
  EXPECT_EQ(ex.pending(), 0u);
}

// A copy of the executor in a forked process (a prefork server that forks after making it) is not
// an executor: its submit is refused, its cancel does not take the parent's task back, and its
// destruction returns at once instead of waiting for the parent's jobs. The parent's task runs.
TEST_F(DistTest, AForkedCopyOfTheExecutorRefusesWorkAndLeavesTheParentsTasksAlone) {
  concur::testing::TempDir dir;
  std::optional<RedisExecutor> ex(std::in_place, url());
  const std::string path = dir.file("ran");
  Future<void> f = ex->submit(dist_touch, path);  // no worker yet: queued
  ASSERT_TRUE(queued(1));
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the child exits at once
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      (void)ex->submit(dist_mul, 2, 3);
      code = 1;
    } catch (const InvalidStateError&) {
    } catch (...) {
      code = 2;
    }
    if (code == 0 && f.cancel()) code = 3;  // it would have taken the parent's task back
    if (code == 0) ex.reset();              // must not wait for the parent's job
    ::_exit(code);
  }
  EXPECT_EQ(concur::testing::wait_forked(child, std::chrono::seconds(30)), 0);
  auto w = start_worker();
  f.result(kRemote);
  EXPECT_TRUE(std::filesystem::exists(path));
}

// A Worker made before a fork would share its consumer name with its copy: the copy refuses to run.
TEST_F(DistTest, AForkedCopyOfAWorkerRefusesToRun) {
  Worker w(worker_options(1));
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the child exits at once
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 1;
    try {
      w.run();
    } catch (const UsageError&) {
      code = 0;
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  EXPECT_EQ(concur::testing::wait_forked(child, std::chrono::seconds(30)), 0);
}

// ---- Waiting threads read the results (RedisClient::assist)

// A thread blocked on a future reads the reply list itself and hands the connection back idle when
// nothing else waits; the reader thread meanwhile wakes every second and sends a read of its own.
// Results keep coming right however the two interleave (each submit comes after such a wake-up).
TEST_F(DistTest, ResultsKeepComingAcrossIdlePauses) {
  auto w = start_worker(1);
  RedisExecutor ex(url());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(ex.submit(dist_mul, i, 7).result(kRemote), 7 * i) << "round " << i;
    EXPECT_EQ(ex.submit(dist_mul, i, 8).result(kRemote), 8 * i) << "round " << i;
    std::this_thread::sleep_for(1200ms);  // past the reader thread's one-second wake-up
  }
  EXPECT_EQ(ex.pending(), 0u);
}

// Several threads wait at once, each on its own tasks: one reads for all, the others are woken by
// it or by the reader thread; every result reaches its future.
TEST_F(DistTest, ThreadsWaitingAtOnceAllGetTheirResults) {
  auto w = start_worker(2);
  RedisExecutor ex(url());
  constexpr int kThreads = 4, kEach = 100;
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        if (ex.submit(dist_mul, t, i).result(kRemote) != t * i) ++wrong[t];
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
  EXPECT_EQ(ex.pending(), 0u);
}

// limited_user_url(rules): a Redis user "limited" (password "secret") with these ACL rules on top
// of every key, channel and command; the URL that logs in as it.
std::string limited_user_url(Redis& admin, std::uint16_t port, const std::string& rules) {
  std::vector<std::string> argv{"ACL",     "SETUSER", "limited", "reset", "on",
                                ">secret", "~*",      "&*",      "+@all"};
  for (std::size_t at = 0; at < rules.size();) {
    const std::size_t end = std::min(rules.find(' ', at), rules.size());
    argv.push_back(rules.substr(at, end - at));
    at = end + 1;
  }
  (void)admin.command(argv);
  return "redis://limited:secret@127.0.0.1:" + std::to_string(port) + "/0";
}

// connections_received(admin): the connections Redis has accepted so far (INFO stats), asked on
// an open connection so that asking adds none.
long long connections_received(Redis& admin) {
  const std::string info = admin.command({"INFO", "stats"}).str;
  const std::string tag = "total_connections_received:";
  return std::stoll(info.substr(info.find(tag) + tag.size()));
}

// A user that may not run CLIENT (least privilege, or a renamed command): the executor reads its
// results without CLIENT REPLY SKIP; every result arrives, across idle hand-backs and waits.
TEST_F(DistTest, AnExecutorWhoseUserMayNotRunClientGetsEveryResult) {
  Redis admin = redis();
  const std::string limited = limited_user_url(admin, server_.port(), "-client");
  EXPECT_THROW((void)Redis::connect(RedisUrl::parse(limited)).command({"CLIENT", "ID"}),
               RedisError);
  auto w = start_worker(1);
  RedisExecutor ex(limited);
  const long long before = connections_received(admin);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(ex.submit(dist_mul, i, 3).result(kRemote), 3 * i) << i;
  std::vector<Future<int>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(ex.submit(dist_mul, i, 5));
  for (int i = 0; i < 50; ++i) ASSERT_EQ(fs[i].result(kRemote), 5 * i) << i;
  EXPECT_EQ(ex.pending(), 0u);
  // It found out once, at connect: no reply went astray (which would make it connect again).
  EXPECT_EQ(connections_received(admin), before);
}

// The executor's user loses its password while connected, and Redis drops its connections: the
// reader's reconnects are refused (AUTH), which it rides out with backoff — the process lives —
// and once the password is back the results come again.
TEST_F(DistTest, AReconnectThatAuthRefusesIsRetriedUntilItIsAccepted) {
  Redis admin = redis();
  const std::string limited = limited_user_url(admin, server_.port(), "");
  auto w = start_worker(1);
  RedisExecutor ex(limited);
  EXPECT_EQ(ex.submit(dist_mul, 2, 3).result(kRemote), 6);
  (void)admin.command({"ACL", "SETUSER", "limited", "resetpass", ">other"});
  (void)admin.command({"CLIENT", "KILL", "USER", "limited"});
  std::this_thread::sleep_for(1500ms);  // the reader's reconnects meet WRONGPASS meanwhile
  (void)admin.command({"ACL", "SETUSER", "limited", "resetpass", ">secret"});
  EXPECT_EQ(ex.submit(dist_mul, 4, 5).result(kRemote), 20);
  EXPECT_EQ(ex.pending(), 0u);
}

// The queue's stream deleted under a running worker (DEL, FLUSHALL, a Redis restarted without its
// data): the worker makes its consumer group again and serves the tasks submitted after. It used to
// fail every read with NOGROUP, for good.
TEST_F(DistTest, AWorkerServesAgainAfterItsQueuesStreamWasDeleted) {
  auto w = start_worker(1);
  RedisExecutor ex(url());
  ASSERT_EQ(ex.submit(dist_mul, 2, 3).result(kRemote), 6);
  ASSERT_EQ(redis().command({"DEL", "concur:q:default"}).integer, 1);
  EXPECT_EQ(ex.submit(dist_mul, 4, 5).result(kRemote), 20);
}

// A Redis that takes the reader's connection but refuses its read (here an ACL without BLMOVE; a
// read-only replica or OOM do the same): the reader reconnects with a growing backoff. It used to
// start again from 50 ms after every connect, reconnecting 20 times a second for good: over 1.5 s
// about 25 connections, against about 5 with the backoff doubling.
TEST_F(DistTest, AReaderWhoseReadsAreRefusedBacksOffInsteadOfReconnectingEvery50ms) {
  Redis admin = redis();
  const std::string limited = limited_user_url(admin, server_.port(), "-blmove");
  RedisExecutor ex(limited);
  const long long before = connections_received(admin);
  std::this_thread::sleep_for(1500ms);
  const long long made = connections_received(admin) - before;
  EXPECT_GE(made, 1) << "the reader never connected again after its read was refused";
  EXPECT_LE(made, 12) << "the reader connected " << made << " times in 1.5 s";
}

// A done-callback that waits for another future of the same executor, run by whichever thread
// reads the result it belongs to (a thread blocked on that future, or the reader thread): that
// thread reads on for the other future instead of waiting for itself.
TEST_F(DistTest, ADoneCallbackMayWaitForAnotherFutureOfTheSameExecutor) {
  RedisExecutor ex(url());
  Future<int> first = ex.submit(dist_mul, 2, 3);
  Future<int> second = ex.submit(dist_mul, 4, 5);
  std::atomic<int> seen{0};
  first.add_done_callback([&](const Future<int>&) { seen = second.result(kRemote); });
  auto w = start_worker(1);  // runs first, then second
  EXPECT_EQ(first.result(kRemote), 6);
  EXPECT_TRUE(concur::testing::poll_until(kRemote, [&] { return seen.load() == 20; }));
  EXPECT_EQ(second.result(kRemote), 20);
}

// A thread blocked on a queued task's future while another thread cancels it: the waiter (which
// may be reading the reply list for it) sees the cancel.
TEST_F(DistTest, AWaiterSeesACancelMadeByAnotherThread) {
  concur::testing::TempDir dir;
  RedisExecutor ex(url());
  Future<void> f = ex.submit(dist_touch, dir.file("cancelled"));  // no worker: queued
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    EXPECT_TRUE(f.cancel());
  });
  EXPECT_THROW(f.result(kRemote), CancelledError);
  canceller.join();
  auto w = start_worker();
  EXPECT_EQ(ex.submit(dist_mul, 2, 3).result(kRemote), 6);
  EXPECT_EQ(ex.pending(), 0u);
}

TEST_F(DistTest, ATaskIsRunningOnceAWorkerTookItAndCannotBeCancelledThen) {
  auto w = start_worker(1);
  RedisExecutor ex(url());
  Future<int> f = ex.submit(dist_gate, url(), std::string("g1"), 5);
  ASSERT_TRUE(wait_key("g1:started"));
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return f.running(); }));
  EXPECT_FALSE(f.cancel());
  Future<int> queued = ex.submit(dist_mul, 3, 3);  // behind the gate: the one thread is busy
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(queued.running());
  (void)redis().command({"SET", "g1", "open"});
  EXPECT_EQ(f.result(kRemote), 5);
  EXPECT_EQ(queued.result(kRemote), 9);
}

// A start is reported only for a run that lasts 1 ms: a short task's result is its only message
// on the reply list (INFO commandstats counts the pushes, the finish script's included), while a
// long one's future turns running (the test above).
TEST_F(DistTest, AShortTaskSendsItsResultWithoutAStartReport) {
  auto w = start_worker(1);
  RedisExecutor ex(url());
  EXPECT_EQ(ex.submit(dist_mul, 1, 1).result(kRemote), 1);  // the worker is up
  Redis r = redis();
  (void)r.command({"CONFIG", "RESETSTAT"});
  constexpr int kTasks = 40;
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(ex.submit(dist_mul, i, 2).result(kRemote), 2 * i);
  const std::string stats = r.command({"INFO", "commandstats"}).str;
  const std::size_t at = stats.find("cmdstat_rpush:calls=");
  ASSERT_NE(at, std::string::npos) << stats;
  const long long pushes =
      std::stoll(stats.substr(at + std::string("cmdstat_rpush:calls=").size()));
  EXPECT_GE(pushes, kTasks) << "every result is pushed";
  // With a start report per task this is 2 * kTasks; a run stalled past 1 ms by a loaded machine
  // adds one, so the bound leaves room for those.
  EXPECT_LE(pushes, kTasks + kTasks / 2) << "short tasks had their starts reported";
}

// Without start reports, a running task's future stays pending until its result comes: cancel()
// asks Redis, finds the task taken, fails, and the future is running from then on.
TEST_F(DistTest, ACancelAsksRedisWhetherAWorkerTookTheTask) {
  auto w = start_worker(1);
  RedisOptions o;
  o.track_started = false;
  RedisExecutor ex(url(), o);
  Future<int> f = ex.submit(dist_gate, url(), std::string("g5"), 5);
  ASSERT_TRUE(wait_key("g5:started"));
  EXPECT_FALSE(f.running()) << "no start report without track_started";
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
  EXPECT_TRUE(f.running());
  (void)redis().command({"SET", "g5", "open"});
  EXPECT_EQ(f.result(kRemote), 5);
  EXPECT_EQ(ex.pending(), 0u);
}

// A task a worker took just before the cancel() — its report not sent yet (here: a "worker" that
// read the entry and vanished) — is not cancelled, by concurrent cancels nor by
// shutdown(cancel_futures); it runs once its lease expires and another worker takes it over, while
// the untaken task behind it is cancelled and never runs.
TEST_F(DistTest, ATaskTakenBeforeItsStartWasReportedCannotBeCancelled) {
  concur::testing::TempDir dir;
  const std::string path = dir.file("untaken");
  RedisExecutor ex(url());
  Future<int> taken = ex.submit(dist_mul, 6, 7);
  Future<void> untaken = ex.submit(dist_touch, path);
  const Reply read = redis().command({"XREADGROUP", "GROUP", "workers", "ghost", "COUNT", "1",
                                      "STREAMS", "concur:q:default", ">"});
  ASSERT_TRUE(read.is_array());
  std::atomic<int> cancelled{0};
  std::vector<std::thread> cancellers;
  for (int i = 0; i < 4; ++i) cancellers.emplace_back([&] { cancelled += taken.cancel() ? 1 : 0; });
  for (auto& t : cancellers) t.join();
  EXPECT_EQ(cancelled.load(), 0) << "a taken task was cancelled";
  EXPECT_TRUE(taken.running());
  ex.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  EXPECT_TRUE(untaken.cancelled());
  EXPECT_FALSE(taken.cancelled());
  auto w = start_worker(1, 300ms);
  EXPECT_EQ(taken.result(kRemote), 42);
  EXPECT_EQ(w->worker().stats().taken_over, 1u);
  EXPECT_FALSE(std::filesystem::exists(path)) << "a cancelled task ran";
}

TEST_F(DistTest, ShutdownCancelFuturesCancelsWhatNoWorkerTook) {
  concur::testing::TempDir dir;
  RedisExecutor ex(url());
  std::vector<Future<void>> fs;
  for (int i = 0; i < 5; ++i) fs.push_back(ex.submit(dist_touch, dir.file(std::to_string(i))));
  ex.shutdown(/*wait=*/true, /*cancel_futures=*/true);
  for (auto& f : fs) EXPECT_TRUE(f.cancelled());
  EXPECT_EQ(redis().command({"XLEN", "concur:q:default"}).integer, 0);
  auto w = start_worker();
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(std::filesystem::exists(dir.file(std::to_string(i))));
}

TEST_F(DistTest, ShutdownWithoutWaitReturnsAtOnceYetTheTasksFinish) {
  auto w = start_worker(1);
  RedisExecutor ex(url());
  Future<int> f = ex.submit(dist_gate, url(), std::string("g2"), 8);
  ex.shutdown(/*wait=*/false);
  EXPECT_FALSE(f.done());
  (void)redis().command({"SET", "g2", "open"});
  EXPECT_EQ(f.result(kRemote), 8);
}

TEST_F(DistTest, ABoundedShutdownFailsWhatNoWorkerFinished) {
  auto w = start_worker(1);
  RedisExecutor ex(url());
  Future<int> held = ex.submit(dist_gate, url(), std::string("g4"), 1);
  // (running(): this executor heard of the start — before that, cancel_futures would cancel it)
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return held.running(); }));
  Future<int> queued = ex.submit(dist_mul, 2, 2);
  EXPECT_FALSE(ex.shutdown(50ms, /*cancel_futures=*/true));
  EXPECT_TRUE(queued.cancelled());
  EXPECT_THROW((void)held.result(), TimeoutError);
  (void)redis().command({"SET", "g4", "open"});  // the task finishes; its result is dropped
}

// ---- Retries and dead letters

TEST_F(DistTest, AFailingTaskIsRetriedWithBackoffUntilItSucceeds) {
  auto w = start_worker();
  RedisExecutor ex(url());
  const TaskOptions retrying{.max_retries = 3, .retry_backoff = 10ms, .retry_backoff_max = 40ms};
  Future<int> f = ex.submit_with(retrying, dist_flaky, url(), std::string("flaky1"), 2, 7);
  EXPECT_EQ(f.result(kRemote), 7);
  EXPECT_EQ(counter("flaky1"), 3) << "two failed runs, then the one that succeeded";
  EXPECT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return w->worker().stats().retried == 2; }));
  EXPECT_EQ(redis().command({"XLEN", "concur:dead:default"}).integer, 0);
}

TEST_F(DistTest, ATaskPastItsRetriesFailsAndIsDeadLettered) {
  auto w = start_worker();
  RedisExecutor ex(url());
  const TaskOptions retrying{.max_retries = 1, .retry_backoff = 5ms};
  Future<int> f = ex.submit_with(retrying, dist_flaky, url(), std::string("flaky2"), 100, 7);
  try {
    (void)f.result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "RuntimeError");
    EXPECT_EQ(e.message(), "flaky run 2");
    EXPECT_NE(e.traceback().find("run 2 of 2"), std::string::npos) << e.traceback();
  }
  EXPECT_EQ(counter("flaky2"), 2);
  const Reply dead = redis().command({"XRANGE", "concur:dead:default", "-", "+"});
  ASSERT_EQ(dead.elements.size(), 1u);
  const Reply& fields = dead.at(0).at(1);
  EXPECT_EQ(fields.at(0).str, "task");
  EXPECT_EQ(fields.at(1).str, "dist_flaky");
  EXPECT_EQ(fields.at(2).str, "error");
  EXPECT_EQ(fields.at(3).str, "RuntimeError: flaky run 2");
}

// ---- Cluster-wide limits

TEST_F(DistTest, ARateLimitHoldsAcrossWorkers) {
  auto w1 = start_worker(2);
  auto w2 = start_worker(2);
  RedisExecutor ex(url());
  constexpr double kRate = 20;  // per second
  constexpr int kBurst = 2, kTasks = 12;
  const TaskOptions limited{.rate_limit = {.key = "api", .per_second = kRate, .burst = kBurst}};
  std::vector<Future<void>> fs;
  for (int i = 0; i < kTasks; ++i)
    fs.push_back(ex.submit_with(limited, dist_stamp, url(), std::string("stamps")));
  for (auto& f : fs) f.result(kRemote);
  const Reply stamps = redis().command({"LRANGE", "stamps", "0", "-1"});
  ASSERT_EQ(stamps.elements.size(), static_cast<std::size_t>(kTasks));
  std::vector<long long> t;
  for (const Reply& e : stamps.elements) t.push_back(e.as_integer());
  std::sort(t.begin(), t.end());
  // A token bucket lets at most burst + rate x w runs start in any window w (one token of slack
  // for the millisecond clock).
  for (std::size_t i = 0; i < t.size(); ++i)
    for (std::size_t j = i; j < t.size(); ++j)
      EXPECT_LE(static_cast<double>(j - i + 1),
                kBurst + 1 + kRate * static_cast<double>(t[j] - t[i]) / 1000)
          << "runs " << i << ".." << j << " within " << (t[j] - t[i]) << " ms";
  EXPECT_GT(w1->worker().stats().deferred + w2->worker().stats().deferred, 0u)
      << "four threads and twelve tasks: some had to wait for a token";
}

TEST_F(DistTest, AConcurrencyLimitHoldsAcrossWorkers) {
  auto w1 = start_worker(3);
  auto w2 = start_worker(3);
  RedisExecutor ex(url());
  const TaskOptions limited{.concurrency_limit = {.key = "db", .limit = 2}};
  std::vector<Future<void>> fs;
  for (int i = 0; i < 10; ++i)
    fs.push_back(ex.submit_with(limited, dist_probe, url(), std::string("running"), 50));
  for (auto& f : fs) f.result(kRemote);
  EXPECT_LE(counter("running:max"), 2) << "more than two ran at once across six threads";
  EXPECT_GE(counter("running:max"), 1);
  EXPECT_EQ(counter("running"), 0);
  EXPECT_EQ(redis().command({"ZCARD", "concur:slots:db"}).integer, 0) << "every slot released";
}

TEST_F(DistTest, BadLimitsAreValueErrors) {
  RedisExecutor ex(url());
  EXPECT_THROW((void)ex.submit_with(TaskOptions{.rate_limit = {.key = "k", .per_second = 0}},
                                    dist_mul, 1, 2),
               ValueError);
  EXPECT_THROW((void)ex.submit_with(TaskOptions{.concurrency_limit = {.key = "k", .limit = 0}},
                                    dist_mul, 1, 2),
               ValueError);
  EXPECT_EQ(ex.pending(), 0u);
}

// ---- Leases

TEST_F(DistTest, AKilledWorkersTasksAreTakenOverByAnother) {
  RedisExecutor ex(url());
  mp::Process doomed(run_worker, url(), std::string("default"), 2, 300);
  doomed.start();
  Future<int> a = ex.submit(dist_counted, url(), std::string("k1"), 3000, 1);
  Future<int> b = ex.submit(dist_counted, url(), std::string("k2"), 3000, 2);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return a.running() && b.running(); }));
  ASSERT_TRUE(concur::testing::poll_until(
      kRemote, [&] { return counter("k1") == 1 && counter("k2") == 1; }));
  doomed.kill();  // kill -9 with both tasks running
  doomed.join();
  auto w = start_worker(2, 300ms);
  EXPECT_EQ(a.result(kRemote), 1);
  EXPECT_EQ(b.result(kRemote), 2);
  EXPECT_EQ(counter("k1"), 2) << "run again once, by the worker that took it over";
  EXPECT_EQ(counter("k2"), 2);
  EXPECT_EQ(w->worker().stats().taken_over, 2u);
}

TEST_F(DistTest, ALongTaskIsNeverRunTwiceWhileItsWorkerLives) {
  auto w1 = start_worker(1, 100ms);  // leases of 100 ms, renewed every ~33 ms
  auto w2 = start_worker(1, 100ms);
  RedisExecutor ex(url());
  Future<int> f = ex.submit(dist_counted, url(), std::string("long"), 1500, 3);
  EXPECT_EQ(f.result(kRemote), 3);
  EXPECT_EQ(counter("long"), 1);
  EXPECT_EQ(w1->worker().stats().taken_over + w2->worker().stats().taken_over, 0u);
}

TEST_F(DistTest, AWorkerPausedPastItsLeaseLosesTheTask) {
  RedisExecutor ex(url());
  mp::Process paused(run_worker, url(), std::string("default"), 1, 200);
  paused.start();
  Future<int> f = ex.submit(dist_counted, url(), std::string("p1"), 600, 4);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return counter("p1") == 1; }));
  ASSERT_EQ(::kill(paused.pid(), SIGSTOP), 0);
  auto w = start_worker(1, 200ms);
  EXPECT_EQ(f.result(kRemote), 4);  // the taker's result
  EXPECT_EQ(w->worker().stats().taken_over, 1u);
  ASSERT_EQ(::kill(paused.pid(), SIGCONT), 0);
  // The paused worker wakes, finishes its run and finds its lease gone: it stores nothing.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(redis().command({"XLEN", "concur:q:default"}).integer, 0);
  EXPECT_EQ(redis().command({"XLEN", "concur:dead:default"}).integer, 0);
  paused.terminate();
  paused.join();
}

TEST_F(DistTest, ATaskThatKillsEveryWorkerIsGivenUp) {
  RedisExecutor ex(url());
  Future<int> f = ex.submit(dist_die);
  // Workers with max_deliveries 2 (run_worker): each one that takes the task dies; the third
  // delivery is given up by whoever reclaims it.
  for (int i = 0; i < 6 && !f.done(); ++i) {
    mp::Process p(run_worker, url(), std::string("default"), 1, 100);
    p.start();
    (void)concur::testing::poll_until(10s, [&] { return f.done() || !p.is_alive(); });
    if (p.is_alive()) {
      p.terminate();
    }
    p.join();
  }
  ASSERT_TRUE(f.done());
  try {
    (void)f.result();
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "WorkerLostError");
  }
  EXPECT_EQ(redis().command({"XLEN", "concur:dead:default"}).integer, 1);
}

// ---- Workers with processes (WorkerOptions::processes)

// A task that kills its process fails alone: the worker and its pool go on (a thread worker dies
// with it: ATaskThatKillsEveryWorkerIsGivenUp). A task's own exception keeps its type.
TEST_F(DistTest, AProcessWorkerOutlivesATaskThatCrashesItsProcess) {
  WorkerOptions o = worker_options(2);
  o.processes = true;
  InProcessWorker w(o);
  RedisExecutor ex(url());
  EXPECT_EQ(ex.submit(dist_mul, 2, 3).result(kRemote), 6);
  Future<int> crashed = ex.submit(dist_die);
  try {
    (void)crashed.result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "BrokenProcessPool") << e.what();
  }
  try {
    (void)ex.submit(dist_raise, 3).result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
    EXPECT_EQ(e.message(), "bad value 3");
    EXPECT_NE(e.traceback().find("dist_raise"), std::string::npos) << e.traceback();
  }
  EXPECT_EQ(ex.submit(dist_mul, 4, 5).result(kRemote), 20) << "the worker serves on";
  EXPECT_EQ(
      ex.submit_batch(dist_mul, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}}).result(kRemote),
      (std::vector<int>{2, 12}));
  EXPECT_EQ(w.worker().stats().crashed, 1u);
  EXPECT_EQ(w.worker().stats().failed, 2u);
  EXPECT_EQ(redis().command({"XLEN", "concur:dead:default"}).integer, 2);
}

// cancel() of a task running on a process worker succeeds: the worker is told (a revoke key it
// looks at every duty period) and kills the run; the run is not retried nor dead-lettered, and
// the pool's replacement process serves the next task. (On a thread worker cancel() of a running
// task fails: ATaskIsRunningOnceAWorkerTookItAndCannotBeCancelledThen.)
TEST_F(DistTest, ACancelledRunningTaskIsKilledOnAProcessWorker) {
  WorkerOptions o = worker_options(1, 300ms);
  o.processes = true;
  InProcessWorker w(o);
  RedisExecutor ex(url());
  TaskOptions t;
  t.max_retries = 3;
  Future<int> f = ex.submit_with(t, dist_counted, url(), std::string("rk"), 60'000, 1);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return f.running(); }));
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return counter("rk") == 1; }));
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW((void)f.result(), CancelledError);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return w.worker().stats().revoked == 1; }))
      << "the run was not killed";
  EXPECT_EQ(ex.submit(dist_mul, 6, 7).result(kRemote), 42);
  EXPECT_EQ(counter("rk"), 1) << "a revoked run is not retried";
  EXPECT_EQ(w.worker().stats().retried, 0u);
  EXPECT_EQ(redis().command({"XLEN", "concur:dead:default"}).integer, 0);
  EXPECT_EQ(ex.pending(), 0u);
}

// A run past its time limit is stopped (its process killed and replaced) and fails with
// TimeLimitExceeded, retried per max_retries like any failed run. The task's own limit wins over
// the worker's, longer or shorter; the worker serves on.
TEST_F(DistTest, ARunPastItsTimeLimitIsStoppedOnAProcessWorker) {
  WorkerOptions o = worker_options(1);
  o.processes = true;
  o.time_limit = 300ms;
  InProcessWorker w(o);
  RedisExecutor ex(url());
  try {
    (void)ex.submit(dist_counted, url(), std::string("w"), 60'000, 1).result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "TimeLimitExceeded") << e.what();
    EXPECT_NE(e.message().find("300 ms"), std::string::npos) << e.message();
  }
  TaskOptions longer;
  longer.time_limit = 30s;
  EXPECT_EQ(ex.submit_with(longer, dist_counted, url(), std::string("x"), 600, 7).result(kRemote),
            7)
      << "the task's longer limit applies, not the worker's 300 ms";
  TaskOptions shorter;
  shorter.time_limit = 200ms;
  shorter.max_retries = 1;
  shorter.retry_backoff = 10ms;
  try {
    (void)ex.submit_with(shorter, dist_counted, url(), std::string("y"), 60'000, 1).result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "TimeLimitExceeded") << e.what();
    EXPECT_NE(e.message().find("200 ms"), std::string::npos) << e.message();
  }
  EXPECT_EQ(counter("y"), 2) << "run, then retried once";
  EXPECT_EQ(ex.submit(dist_mul, 6, 7).result(kRemote), 42) << "the worker serves on";
  const WorkerStats s = w.worker().stats();
  EXPECT_EQ(s.timed_out, 3u);
  EXPECT_EQ(s.retried, 1u);
  EXPECT_EQ(s.failed, 2u);
  EXPECT_EQ(s.crashed, 0u);
  EXPECT_EQ(redis().command({"XLEN", "concur:dead:default"}).integer, 2);
}

// A soft time limit is kept by thread and process workers alike: the run is told, stops itself
// with SoftTimeLimitExceeded, and the worker serves on; the task's own limit wins.
TEST_F(DistTest, ASoftTimeLimitTellsTheRunOnThreadAndProcessWorkers) {
  for (const bool processes : {false, true}) {
    SCOPED_TRACE(processes ? "processes" : "threads");
    WorkerOptions o = worker_options(1);
    o.processes = processes;
    o.soft_time_limit = 200ms;
    InProcessWorker w(o);
    RedisExecutor ex(url());
    try {
      (void)ex.submit(dist_soft_loop).result(kRemote);
      ADD_FAILURE() << "the run did not see its soft limit";
    } catch (const RemoteError& e) {
      EXPECT_EQ(e.type_name(), "SoftTimeLimitExceeded") << e.what();
      EXPECT_EQ(e.message(), "the task passed its soft time limit of 200 ms");
    }
    TaskOptions t;
    t.soft_time_limit = 30s;
    EXPECT_GT(ex.submit_with(t, dist_soft_left).result(kRemote), 1000) << "the task's own limit";
    EXPECT_EQ(ex.submit(dist_mul, 6, 7).result(kRemote), 42);
    EXPECT_EQ(w.worker().stats().timed_out, 0u);
  }
}

// ---- Worker behaviour

TEST_F(DistTest, StopIsWarmTheTaskTakenFinishes) {
  auto w = start_worker(1);
  RedisExecutor ex(url());
  Future<int> f = ex.submit(dist_gate, url(), std::string("g3"), 9);
  ASSERT_TRUE(wait_key("g3:started"));
  std::thread stopper([&] { w->join(); });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(f.done());
  (void)redis().command({"SET", "g3", "open"});
  stopper.join();
  EXPECT_EQ(f.result(kRemote), 9);
  EXPECT_EQ(redis().command({"HLEN", "concur:workers"}).integer, 0)
      << "a stopped worker leaves the workers hash";
}

// A serving thread sends the blocking read of its next task with the finish of the last (one
// round trip per task). A warm stop that lands while that read is in flight must still take its
// answer and run the task it brought: a task left leased to the stopped worker would wait out the
// whole lease (30 s here) before another worker could run it.
TEST_F(DistTest, AWarmStopLeavesNoTaskLeasedToTheStoppedWorker) {
  warm_stops_leave_nothing_leased(/*prefetch=*/0);
}

// With prefetch a thread takes several tasks per read and writes outcomes without waiting for
// their answers: a warm stop runs the tasks read ahead and reads every answer before it returns.
TEST_F(DistTest, AWarmStopOfAPrefetchingWorkerLeavesNoTaskLeased) {
  warm_stops_leave_nothing_leased(/*prefetch=*/8);
}

void DistTest::warm_stops_leave_nothing_leased(std::size_t prefetch) {
  RedisExecutor ex(url());
  std::vector<Future<int>> fs;
  const auto finished = [&] {
    return std::count_if(fs.begin(), fs.end(), [](const Future<int>& f) { return f.done(); });
  };
  for (int round = 0; round < 5; ++round) {
    WorkerOptions o = worker_options(1);
    o.prefetch = prefetch;
    auto w = std::make_unique<InProcessWorker>(o);
    const std::string name = w->worker().name();
    const long long before = finished();
    for (int i = 0; i < 300; ++i) fs.push_back(ex.submit(dist_mul, i, round + 1));
    ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return finished() >= before + 30; }));
    w->join();  // mid-stream: its thread is between a finish and the next task
    const Reply pending =
        redis().command({"XPENDING", "concur:q:default", "workers", "-", "+", "100", name});
    EXPECT_TRUE(pending.elements.empty())
        << pending.elements.size() << " task(s) left leased to the stopped worker, round " << round;
  }
  auto last = start_worker(2);
  for (std::size_t i = 0; i < fs.size(); ++i) {
    const int round = static_cast<int>(i / 300);
    EXPECT_EQ(fs[i].result(20s), static_cast<int>(i % 300) * (round + 1)) << "task " << i;
  }
}

// prefetch 8 on one thread: each read takes up to 8 queued tasks, and every outcome is stored and
// counted although the thread does not wait for the answers while tasks are left.
TEST_F(DistTest, APrefetchingWorkerTakesSeveralTasksPerReadAndStoresEveryOutcome) {
  constexpr int kTasks = 400;
  RedisExecutor ex(url());
  std::vector<Future<int>> fs;
  for (int i = 0; i < kTasks; ++i) fs.push_back(ex.submit(dist_mul, i, 3));
  ASSERT_TRUE(queued(kTasks));
  (void)redis().command({"CONFIG", "RESETSTAT"});
  WorkerOptions o = worker_options(1);
  o.prefetch = 8;
  InProcessWorker w(o);
  for (int i = 0; i < kTasks; ++i)
    ASSERT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), 3 * i);
  const long long reads = calls_of("xreadgroup");
  // kTasks / 8 = 50 reads take them all; an idle worker adds one blocking read per 100 ms.
  EXPECT_LT(reads, 100) << "reads of one task each would be " << kTasks;
  EXPECT_TRUE(concur::testing::poll_until(kRemote, [&] {
    return w.worker().stats().succeeded == std::uint64_t{kTasks};
  })) << w.worker().stats().succeeded;
  EXPECT_EQ(w.worker().stats().lost, 0u);
  const Reply pending = redis().command({"XPENDING", "concur:q:default", "workers"});
  EXPECT_EQ(pending.at(0).as_integer(), 0) << "every finished task is acknowledged";
}

// A task read ahead waits in the worker, leased to it: like a running task, cancel() fails and it
// runs; one beyond the prefetch is still queued in Redis and cancel() succeeds.
TEST_F(DistTest, ATaskReadAheadIsTakenAndOneBeyondThePrefetchIsNot) {
  RedisExecutor ex(url());
  Future<int> gate = ex.submit(dist_gate, url(), std::string("pf"), 1);
  Future<int> ahead = ex.submit(dist_mul, 2, 3);
  Future<int> ahead2 = ex.submit(dist_mul, 4, 5);
  Future<int> beyond = ex.submit(dist_mul, 6, 7);
  ASSERT_TRUE(queued(4));
  WorkerOptions o = worker_options(1);
  o.prefetch = 3;  // one thread: its first read takes the gate and the next two
  InProcessWorker w(o);
  ASSERT_TRUE(wait_key("pf:started"));
  EXPECT_FALSE(ahead.cancel()) << "a task read ahead is the worker's";
  EXPECT_TRUE(beyond.cancel()) << "a task no read took is still cancellable";
  (void)redis().command({"SET", "pf", "open"});
  EXPECT_EQ(gate.result(kRemote), 1);
  EXPECT_EQ(ahead.result(kRemote), 6);
  EXPECT_EQ(ahead2.result(kRemote), 20);
  EXPECT_THROW((void)beyond.result(kRemote), CancelledError);
}

TEST_F(DistTest, QueuesAreServedInPriorityOrder) {
  RedisExecutor ex(url());
  std::vector<Future<void>> fs;
  for (int i = 0; i < 4; ++i)
    fs.push_back(ex.submit_with(TaskOptions{.queue = "low"}, dist_record, url(),
                                std::string("order"), std::string("low")));
  for (int i = 0; i < 4; ++i)
    fs.push_back(ex.submit_with(TaskOptions{.queue = "high"}, dist_record, url(),
                                std::string("order"), std::string("high")));
  WorkerOptions o = worker_options(1);
  o.queues = {"high", "low"};
  InProcessWorker w(o);
  for (auto& f : fs) f.result(kRemote);
  const Reply order = redis().command({"LRANGE", "order", "0", "-1"});
  ASSERT_EQ(order.elements.size(), 8u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(order.at(i).str, "high") << i;
  for (int i = 4; i < 8; ++i) EXPECT_EQ(order.at(i).str, "low") << i;
}

// Submits are pipelined: submit() does not wait for Redis's answer. An XADD Redis refuses (here:
// out of memory) fails its future — even when nothing is submitted after it (the reader thread
// reads the answers left) — and the executor goes on once Redis takes writes again.
TEST_F(DistTest, ASubmitRedisRefusesFailsItsFuture) {
  RedisExecutor ex(url());
  Redis r = redis();
  (void)r.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  (void)r.command({"CONFIG", "SET", "maxmemory", "1"});
  Future<int> refused = ex.submit(dist_mul, 2, 3);
  try {
    (void)refused.result(kRemote);
    ADD_FAILURE() << "a refused submit succeeded";
  } catch (const RedisError& e) {
    EXPECT_NE(std::string(e.what()).find("OOM"), std::string::npos) << e.what();
  }
  (void)r.command({"CONFIG", "SET", "maxmemory", "0"});
  auto w = start_worker();
  EXPECT_EQ(ex.submit(dist_mul, 3, 3).result(kRemote), 9);
  EXPECT_EQ(ex.pending(), 0u);
}

// A cancel() while later submits' answers are still on their way (Redis holds writes: CLIENT
// PAUSE) reads them first: the cancel script's answer is its own, and the right task is cancelled.
TEST_F(DistTest, ACancelWhileLaterSubmitsAreUnansweredCancelsTheRightTask) {
  concur::testing::TempDir dir;
  const std::string path = dir.file("cancelled");
  RedisExecutor ex(url());
  Future<void> first = ex.submit(dist_touch, path);
  std::this_thread::sleep_for(50ms);  // its answer is back (the next submit reads it)
  Redis r = redis();
  (void)r.command({"CLIENT", "PAUSE", "200", "WRITE"});
  Future<int> second = ex.submit(dist_mul, 4, 5);  // its answer waits for the pause to end
  EXPECT_TRUE(first.cancel());
  EXPECT_TRUE(first.cancelled());
  auto w = start_worker();
  EXPECT_EQ(second.result(kRemote), 20);
  EXPECT_EQ(ex.submit(dist_mul, 2, 3).result(kRemote), 6);
  EXPECT_FALSE(std::filesystem::exists(path)) << "the cancelled task ran";
}

// The connection a burst of submits went out on is closed by Redis (CLIENT KILL: every client,
// the workers' too): the XADDs whose answers had not come back are sent again on a new one, and
// every future gets its result (a task may run twice: at least once).
TEST_F(DistTest, SubmitsUnansweredWhenTheConnectionDiesAreSentAgain) {
  auto w = start_worker();
  RedisExecutor ex(url());
  EXPECT_EQ(ex.submit(dist_mul, 1, 1).result(kRemote), 1);
  Redis r = redis();
  std::vector<Future<int>> fs;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 40; ++i) fs.push_back(ex.submit(dist_mul, round * 40 + i, 3));
    (void)r.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  }
  for (std::size_t i = 0; i < fs.size(); ++i)
    EXPECT_EQ(fs[i].result(kRemote), 3 * static_cast<int>(i)) << "task " << i;
  EXPECT_EQ(ex.pending(), 0u);
}

TEST_F(DistTest, NothingIsLostAcrossARedisRestartWithAppendOnly) {
  server_.stop();
  RedisServer durable;
  durable.start(RedisServer::Options{.appendonly = true});
  RedisExecutor ex(durable.url());
  std::vector<Future<int>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(ex.submit(dist_mul, i, 2));
  durable.restart();  // the tasks were acknowledged by XADD: they are in the AOF
  WorkerOptions o = worker_options();
  o.url = durable.url();
  InProcessWorker w(o);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(fs[i].result(kRemote), 2 * i);
  EXPECT_EQ(ex.submit(dist_mul, 5, 5).result(kRemote), 25) << "submit reconnected";
}

TEST_F(DistTest, ARedisRestartWhileWorkersRunLosesNothingAcknowledged) {
  restart_loses_nothing_acknowledged(/*prefetch=*/0);
}

// The same with a prefetching worker: outcomes written without waiting when the connection broke
// are stored again (the finish is idempotent), tasks read ahead still run.
TEST_F(DistTest, ARedisRestartWhileAPrefetchingWorkerRunsLosesNothingAcknowledged) {
  restart_loses_nothing_acknowledged(/*prefetch=*/16);
}

void DistTest::restart_loses_nothing_acknowledged(std::size_t prefetch) {
  server_.stop();
  RedisServer durable;
  durable.start(RedisServer::Options{.appendonly = true});
  WorkerOptions o = worker_options(2);
  o.prefetch = prefetch;
  o.url = durable.url();
  InProcessWorker w(o);
  RedisExecutor ex(durable.url());
  // The tasks write to Redis themselves: one that runs during the restart fails, and is retried.
  const TaskOptions retrying{.max_retries = 5, .retry_backoff = 50ms};
  std::vector<Future<int>> fs;
  for (int i = 0; i < 200; ++i)
    fs.push_back(
        ex.submit_with(retrying, dist_counted, durable.url(), "r" + std::to_string(i), 5, i));
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return fs[20].done(); }));
  durable.restart();  // workers, the executor's reader and the tasks' own connections reconnect
  for (int i = 0; i < 200; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), i) << i;
  Redis r = durable.client();
  for (int i = 0; i < 200; ++i)
    EXPECT_GE(r.command({"EXISTS", "r" + std::to_string(i)}).integer, 1)
        << "task " << i << " never ran";
  EXPECT_EQ(w.worker().stats().taken_over, 0u)
      << "a task the restart interrupted waited for its lease to expire (30 s) instead of being "
         "finished by its worker once Redis was back";
}

// AcceptCounter: a listener on 127.0.0.1:port that accepts every connection and hangs up at once,
// counting them — a stand-in for a Redis that is gone, where each try to reach it can be seen.
class AcceptCounter {
 public:
  explicit AcceptCounter(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    (void)::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in addr = concur::testing::loopback_address(port);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 64) != 0)
      throw RuntimeError("AcceptCounter: cannot listen on port " + std::to_string(port));
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        ::close(c);
        accepted_.fetch_add(1);
      }
    });
  }
  AcceptCounter(const AcceptCounter&) = delete;
  AcceptCounter& operator=(const AcceptCounter&) = delete;
  ~AcceptCounter() {
    stop_.store(true);
    thread_.join();
    ::close(fd_);
  }
  [[nodiscard]] long accepted() const { return accepted_.load(); }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<long> accepted_{0};
  std::thread thread_;
};

// A worker whose Redis is gone tries to reach it again after a backoff, from every thread: its
// maintenance thread used to retry in a tight loop (half a CPU for as long as Redis stayed away).
// Over 1.5 s the backoffs (50 ms doubling) allow about 6 tries a thread; the tight loop made
// thousands.
TEST_F(DistTest, AWorkerRetriesAGoneRedisWithBackoffNotInATightLoop) {
  auto w = start_worker(/*concurrency=*/1);
  {
    RedisExecutor ex(url());
    ASSERT_EQ(ex.submit(dist_mul, 2, 3).result(kRemote), 6) << "the worker serves";
  }
  server_.stop();
  AcceptCounter gone(server_.port());  // (the port stays reserved for the server)
  std::this_thread::sleep_for(1500ms);
  const long tries = gone.accepted();
  EXPECT_GE(tries, 1) << "the worker never tried to reach Redis again";
  EXPECT_LE(tries, 60) << "a worker retried an unreachable Redis " << tries
                       << " times in 1.5 s: a loop without backoff";
}

}  // namespace concur::dist::test
