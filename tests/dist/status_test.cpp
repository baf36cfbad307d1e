// concur::dist::read_status against a private redis-server: queues found by their streams, each
// with its waiting, leased, retrying and dead tasks and its counts; workers with their last
// heartbeat and the tasks they hold.
#include "concur/dist/status.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "concur/dist/executor.hpp"
#include "concur/dist/frontier.hpp"
#include "concur/dist/worker.hpp"
#include "concur/mp/task.hpp"
#include "support/process_support.hpp"
#include "support/redis_server.hpp"

namespace concur::dist::test {

using namespace std::chrono_literals;
using concur::testing::RedisServer;

constexpr auto kRemote = std::chrono::seconds(60);

int status_echo(int x) { return x; }
CONCUR_TASK(status_echo);

int status_fail(int) { throw ValueError("no"); }
CONCUR_TASK(status_fail);

// status_gate(url, key): waits until key exists in Redis (at most kRemote).
int status_gate(std::string url, std::string key) {
  Redis r = Redis::connect(RedisUrl::parse(url));
  const auto deadline = std::chrono::steady_clock::now() + kRemote;
  while (r.command({"EXISTS", key}).integer == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  return 1;
}
CONCUR_TASK(status_gate);

const QueueStatus* find_queue(const ClusterStatus& s, const std::string& name) {
  for (const auto& q : s.queues)
    if (q.name == name) return &q;
  return nullptr;
}

TEST(DistStatusTest, AnEmptyServerHasNoQueuesAndNoWorkers) {
  RedisServer server;
  server.start();
  Redis r = server.client();
  const ClusterStatus s = read_status(r);
  EXPECT_TRUE(s.queues.empty());
  EXPECT_TRUE(s.workers.empty());
}

TEST(DistStatusTest, QueuesAndWorkersAsTheyAre) {
  RedisServer server;
  server.start();
  Redis r = server.client();
  RedisExecutor ex(server.url());
  // Three tasks on "jobs" with no worker: waiting. One failure and two successes on "default".
  for (int i = 0; i < 3; ++i) (void)ex.submit_with(TaskOptions{.queue = "jobs"}, status_echo, i);
  WorkerOptions o;
  o.url = server.url();
  o.concurrency = 1;
  o.name = "w-one";
  Worker w(o);
  std::thread runner([&] { w.run(); });
  EXPECT_EQ(ex.submit(status_echo, 1).result(kRemote), 1);
  EXPECT_EQ(ex.submit(status_echo, 2).result(kRemote), 2);
  EXPECT_THROW((void)ex.submit(status_fail, 3).result(kRemote), RemoteError);
  // A retry waiting far in the future, and a task the worker holds.
  Future<int> retrying =
      ex.submit_with(TaskOptions{.max_retries = 1, .retry_backoff = 1h}, status_fail, 4);
  Future<int> held = ex.submit(status_gate, server.url(), std::string("open"));
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] {
    const ClusterStatus s = read_status(r);
    const QueueStatus* d = find_queue(s, "default");
    return d != nullptr && d->leased == 1 && d->delayed == 1 && s.workers.size() == 1 &&
           s.workers[0].leased == 1 && d->failed == 1 && d->succeeded == 2 &&
           retrying.running();  // (this executor heard that it started)
  }));
  const ClusterStatus s = read_status(r);
  ASSERT_EQ(s.queues.size(), 2u);
  EXPECT_EQ(s.queues[0].name, "default") << "sorted by name";
  const QueueStatus* d = find_queue(s, "default");
  EXPECT_EQ(d->waiting, 0);
  EXPECT_EQ(d->dead, 1) << "the final failure is a dead letter";
  const QueueStatus* jobs = find_queue(s, "jobs");
  ASSERT_NE(jobs, nullptr);
  EXPECT_EQ(jobs->waiting, 3);
  EXPECT_EQ(jobs->leased, 0);
  EXPECT_EQ(s.workers[0].name, "w-one");
  EXPECT_LT(s.workers[0].last_seen, std::chrono::minutes(1));
  (void)r.command({"SET", "open", "1"});
  EXPECT_EQ(held.result(kRemote), 1);
  w.stop();
  runner.join();
  EXPECT_TRUE(read_status(r).workers.empty()) << "a stopped worker leaves";
  // The retry is due in an hour and the "jobs" tasks have no worker: a bounded shutdown cancels
  // what no worker took and fails the rest.
  EXPECT_FALSE(ex.shutdown(100ms, /*cancel_futures=*/true));
  EXPECT_THROW((void)retrying.result(), TimeoutError);
}

// A shared crawl (`concur crawl --redis`) shows with its queue, leases, seen set and pages.
TEST(DistStatusTest, SharedCrawlsAsTheyAre) {
  RedisServer server;
  server.start();
  Redis r = server.client();
  dist::RedisFrontier f(server.url(), "blog");
  crawl::SharedRequest one;
  one.fingerprint = std::string(40, 'a');
  one.blob = "x";
  crawl::SharedRequest two = one;
  two.fingerprint = std::string(40, 'b');
  crawl::SharedRequest three = one;
  three.fingerprint = std::string(40, 'c');
  (void)f.add({one, two, three, one});  // the last is a duplicate: not queued
  (void)f.lease(1);
  f.merge_stats({{"response_received_count", 7}});
  const ClusterStatus s = read_status(r);
  ASSERT_EQ(s.crawls.size(), 1u);
  EXPECT_EQ(s.crawls[0].name, "blog");
  EXPECT_EQ(s.crawls[0].queued, 2);
  EXPECT_EQ(s.crawls[0].leased, 1);
  EXPECT_EQ(s.crawls[0].seen, 3);
  EXPECT_EQ(s.crawls[0].pages, 7);
  EXPECT_TRUE(s.queues.empty());  // a crawl is not a task queue
}

}  // namespace concur::dist::test
