// concur::dist under chaos (label stress): worker processes killed with SIGKILL every 100 ms while
// thousands of tasks run, over Redis and over RabbitMQ. Every future resolves with its value,
// every task's effect (a counter in Redis; a line in a file for RabbitMQ) is seen at least once,
// and the duplicates — runs whose worker died before storing the result — are at most the tasks
// those workers held when they died (kills × concurrency; with prefetch, × what a worker reads
// ahead).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "concur/dist/amqp_executor.hpp"
#include "concur/dist/executor.hpp"
#include "concur/dist/redis.hpp"
#include "concur/dist/worker.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "support/process_support.hpp"
#include "support/rabbitmq_server.hpp"
#include "support/redis_server.hpp"

namespace concur::dist::test {

using namespace std::chrono_literals;

// kDefaultTasks: the suite's size (bounded for CI); CONCUR_CHAOS_TASKS=100000 runs the issue's
// full size by hand (docs/benchmarks.md records that run).
// The AMQP run is 10,000 tasks (issue 18's size).
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kDefaultTasks = 2000;
constexpr int kDefaultAmqpTasks = 2000;
#else
constexpr int kDefaultTasks = 20000;
constexpr int kDefaultAmqpTasks = 10000;
#endif
constexpr int kMaxTasks = 1'000'000;

int chaos_tasks(int fallback = kDefaultTasks) {
  const char* v = std::getenv("CONCUR_CHAOS_TASKS");
  if (v == nullptr || *v == '\0') return fallback;
  const long n = std::strtol(v, nullptr, 10);
  return n > 0 && n <= kMaxTasks ? static_cast<int>(n) : fallback;
}
constexpr int kWorkers = 3;
constexpr int kConcurrency = 2;
constexpr auto kKillEvery = 100ms;

// chaos_effect(url, id): counts its run (HINCRBY effects id 1) and returns id.
std::int64_t chaos_effect(std::string url, std::int64_t id) {
  thread_local std::string connected_to;
  thread_local Redis redis;
  if (connected_to != url || !redis.is_connected()) {
    redis = Redis::connect(RedisUrl::parse(url));
    connected_to = url;
  }
  (void)redis.command({"HINCRBY", "effects", std::to_string(id), "1"});
  return id;
}
CONCUR_TASK(chaos_effect);

// run_chaos_worker(url, prefetch): a worker process (prefetch 0: the default, one per thread).
void run_chaos_worker(std::string url, int prefetch) {
  WorkerOptions o;
  o.url = std::move(url);
  o.concurrency = kConcurrency;
  o.prefetch = static_cast<std::size_t>(prefetch);
  o.lease = 1s;             // renewed every ~333 ms: no re-run of a live worker's task
  o.max_deliveries = 1000;  // a task may be caught by many kills; never give it up here
  Worker w(o);
  w.run();
}
CONCUR_TASK(run_chaos_worker);

// Chaos: `kWorkers` worker processes made by `spawn`, one of them SIGKILLed (and replaced) every
// kKillEvery by a thread of its own until stop() — no warm stop: what it held is taken over.
class Chaos {
 public:
  using Spawn = std::function<std::unique_ptr<mp::Process>()>;
  explicit Chaos(Spawn spawn) : spawn_(std::move(spawn)) {
    for (int i = 0; i < kWorkers; ++i) workers_.push_back(spawn_());
    killer_ = std::thread([this] {
      std::mt19937 rng(12345);
      while (!done_.load()) {
        std::this_thread::sleep_for(kKillEvery);
        if (done_.load()) break;
        auto& victim = workers_[rng() % workers_.size()];
        victim->kill();
        victim->join();
        victim = spawn_();
        kills_.fetch_add(1);
      }
    });
  }
  Chaos(const Chaos&) = delete;
  Chaos& operator=(const Chaos&) = delete;
  ~Chaos() {
    stop();
    for (auto& w : workers_) w->terminate();
    for (auto& w : workers_) w->join();
  }
  // stop(): no more kills; returns how many there were.
  int stop() {
    done_.store(true);
    if (killer_.joinable()) killer_.join();
    return kills_.load();
  }

 private:
  Spawn spawn_;
  std::vector<std::unique_ptr<mp::Process>> workers_;
  std::atomic<bool> done_{false};
  std::atomic<int> kills_{0};
  std::thread killer_;
};

// redis_chaos(prefetch, tasks): `tasks` tasks through workers killed every kKillEvery; every
// future resolves with its value, every effect is seen, and the runs beyond one per task are
// within what the killed workers held: `held` tasks each.
void redis_chaos(int prefetch, int tasks, long long held) {
  concur::testing::RedisServer server;
  server.start();
  const std::string url = server.url();
  Chaos chaos([&] {
    auto p = std::make_unique<mp::Process>(run_chaos_worker, url, prefetch);
    p->set_daemon(true);
    p->start();
    return p;
  });
  const int kTasks = tasks;
  RedisExecutor ex(url);
  std::vector<Future<std::int64_t>> futures;
  futures.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) futures.push_back(ex.submit(chaos_effect, url, std::int64_t{i}));
  int wrong = 0;
  for (int i = 0; i < kTasks; ++i) {
    // (generous: a task caught by a kill waits a lease, perhaps several)
    if (futures[static_cast<std::size_t>(i)].result(std::chrono::seconds(120)) != i) ++wrong;
  }
  const int k = chaos.stop();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(ex.pending(), 0u);

  Redis r = server.client();
  const Reply effects = r.command({"HGETALL", "effects"});
  ASSERT_EQ(effects.elements.size(), 2u * kTasks) << "every task's effect is seen";
  long long duplicates = 0;
  for (std::size_t i = 1; i < effects.elements.size(); i += 2)
    duplicates += effects.elements[i].as_integer() - 1;
  EXPECT_GT(k, 0) << "the test killed no worker";
  EXPECT_LE(duplicates, static_cast<long long>(k) * held)
      << "runs beyond the tasks the killed workers held";
  std::printf("chaos (prefetch %d): %d tasks, %d kills, %lld duplicate runs\n", prefetch, kTasks, k,
              duplicates);
}

TEST(DistChaosTest, WorkersKilledEvery100msLoseNothing) {
  redis_chaos(/*prefetch=*/0, chaos_tasks(), /*held=*/kConcurrency);
}

// With prefetch a killed worker also held the tasks it read ahead, and outcomes it had written
// without reading Redis's answer: nothing of either may be lost. A worker holds at most its
// reads' tasks (prefetch) plus what it took over while it had idle threads (concurrency).
TEST(DistChaosTest, PrefetchingWorkersKilledEvery100msLoseNothing) {
  constexpr int kPrefetch = 8;
  redis_chaos(kPrefetch, chaos_tasks(kDefaultTasks / 2), /*held=*/kPrefetch + kConcurrency);
}

// ---- over RabbitMQ

// chaos_line(path, id): counts its run (a line "id" appended to path) and returns id.
std::int64_t chaos_line(std::string path, std::int64_t id) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw OSError(errno, "open " + path);
  const std::string line = std::to_string(id) + "\n";
  const ssize_t n = ::write(fd, line.data(), line.size());  // (one O_APPEND write: whole lines)
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) throw OSError(errno, "write " + path);
  return id;
}
CONCUR_TASK(chaos_line);

// kAmqpPrefetch: the unacknowledged tasks an AMQP worker holds (more than its threads, as a user
// tuning for throughput sets it): what a kill can make run twice.
constexpr int kAmqpPrefetch = 4 * kConcurrency;

void run_amqp_chaos_worker(std::string url) {
  WorkerOptions o;
  o.url = std::move(url);
  o.concurrency = kConcurrency;
  o.prefetch = kAmqpPrefetch;
  o.max_deliveries = 1000;
  Worker w(o);
  w.run();
}
CONCUR_TASK(run_amqp_chaos_worker);

// amqp_chaos(options): kTasks submits through an AmqpExecutor with `options` while workers are
// SIGKILLed every 100 ms: every future resolves right, every task ran, and the runs beyond one stay
// within what the killed workers held: prefetch messages of `options.max_batch` tasks at most.
void amqp_chaos(const AmqpOptions& options) {
  concur::testing::RabbitMqServer broker;
  broker.start();
  const std::string url = broker.url();
  concur::testing::TempDir dir;
  const std::string effects = dir.file("effects");
  Chaos chaos([&] {  // (a killed worker's connection drops: the broker requeues what it held)
    auto p = std::make_unique<mp::Process>(run_amqp_chaos_worker, url);
    p->set_daemon(true);
    p->start();
    return p;
  });
  const int kTasks = chaos_tasks(kDefaultAmqpTasks);
  AmqpExecutor ex(url, options);
  std::vector<Future<std::int64_t>> futures;
  futures.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i)
    futures.push_back(ex.submit(chaos_line, effects, std::int64_t{i}));
  int wrong = 0;
  for (int i = 0; i < kTasks; ++i)
    if (futures[static_cast<std::size_t>(i)].result(std::chrono::seconds(120)) != i) ++wrong;
  const int k = chaos.stop();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(ex.pending(), 0u);

  std::map<std::int64_t, long long> runs;
  std::ifstream in(effects);
  for (std::string l; std::getline(in, l);) ++runs[std::stoll(l)];
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kTasks)) << "every task's effect is seen";
  long long duplicates = 0;
  for (const auto& [id, n] : runs) duplicates += n - 1;
  EXPECT_GT(k, 0) << "the test killed no worker";
  EXPECT_LE(duplicates,
            static_cast<long long>(k) * kAmqpPrefetch * static_cast<long long>(options.max_batch))
      << "runs beyond the tasks the killed workers held";
  std::printf("amqp chaos (max_batch %zu): %d tasks, %d kills, %lld duplicate runs\n",
              options.max_batch, kTasks, k, duplicates);
}

TEST(DistChaosTest, AmqpWorkersKilledEvery100msLoseNothing) {
  if (!concur::testing::RabbitMqServer::available()) GTEST_SKIP() << "no rabbitmq-server";
  amqp_chaos(AmqpOptions{});
}

// The same with pipelined submits travelling 16 to a message (a killed worker's whole message is
// requeued and taken over).
TEST(DistChaosTest, AmqpBatchedWorkersKilledEvery100msLoseNothing) {
  if (!concur::testing::RabbitMqServer::available()) GTEST_SKIP() << "no rabbitmq-server";
  AmqpOptions o;
  o.confirm_submit = false;
  o.max_batch = 16;
  amqp_chaos(o);
}

}  // namespace concur::dist::test
