// concur::dist::AmqpExecutor and the AMQP worker against a private RabbitMQ broker (one for the
// suite, ONE_PROCESS; each test on a queue prefix of its own): results, errors, batches and map,
// misuse, cancel (a revoke: a queued task never runs) and running(), retries through delay queues,
// dead letters, priorities, a killed worker's tasks taken over, a task that kills every worker
// given up, the warm stop, a process worker's running task killed by cancel(), a broker crash
// (nothing acknowledged lost), and a worker stalled past the broker's consumer timeout (a second
// broker, configured so). The tasks coordinate through files in a temporary directory.
#include "concur/dist/amqp_executor.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "concur/aio/loop.hpp"
#include "concur/aio/task.hpp"
#include "concur/dist/amqp.hpp"
#include "concur/dist/worker.hpp"
#include "concur/errors.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "support/dist_worker.hpp"
#include "support/loopback.hpp"
#include "support/process_support.hpp"
#include "support/rabbitmq_server.hpp"
#include "support/test_support.hpp"

namespace concur::dist::amqp_test {

using namespace std::chrono_literals;
using concur::testing::RabbitMqServer;

// kRemote bounds every wait on a remote result (slow under TSan).
constexpr auto kRemote = std::chrono::seconds(60);

// ---- Files the tasks write

// append_line(path, line): one atomic append (O_APPEND, one write).
void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw OSError(errno, "open " + path);
  const std::string s = line + "\n";
  const ssize_t n = ::write(fd, s.data(), s.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(s.size())) throw OSError(errno, "write " + path);
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

long long count_of(const std::string& path) {
  return static_cast<long long>(lines_of(path).size());
}

// ---- The registered tasks

int amqp_mul(int x, int y) { return x * y; }
CONCUR_TASK(amqp_mul);

int amqp_raise(int x) { throw ValueError("bad value " + std::to_string(x)); }
CONCUR_TASK(amqp_raise);

void amqp_mark(std::string path) { append_line(path, "ran"); }
CONCUR_TASK(amqp_mark);

// amqp_counted(path, ms, value): counts its run (a line in path), sleeps ms, returns value.
int amqp_counted(std::string path, int ms, int value) {
  append_line(path, "run");
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
CONCUR_TASK(amqp_counted);

// amqp_flaky(path, fail_first, value): the first `fail_first` runs (counted in path) throw.
int amqp_flaky(std::string path, int fail_first, int value) {
  append_line(path, "run");
  if (count_of(path) <= fail_first)
    throw RuntimeError("flaky run " + std::to_string(count_of(path)));
  return value;
}
CONCUR_TASK(amqp_flaky);

// amqp_gate(path, value): marks path.started, waits until path exists (at most 60 s).
int amqp_gate(std::string path, int value) {
  append_line(path + ".started", "started");
  const auto deadline = std::chrono::steady_clock::now() + kRemote;
  while (!std::filesystem::exists(path)) {
    if (std::chrono::steady_clock::now() >= deadline) throw TimeoutError("gate never opened");
    std::this_thread::sleep_for(2ms);
  }
  return value;
}
CONCUR_TASK(amqp_gate);

// amqp_record(path, tag): appends tag (the order tasks ran in).
void amqp_record(std::string path, std::string tag) { append_line(path, tag); }
CONCUR_TASK(amqp_record);

// amqp_stall_once(path, ms, value): its first run (counted in path) sleeps ms; later ones do not.
int amqp_stall_once(std::string path, int ms, int value) {
  append_line(path, "run");
  if (count_of(path) == 1) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
CONCUR_TASK(amqp_stall_once);

int amqp_die() { ::_exit(9); }
CONCUR_TASK(amqp_die);

// run_amqp_worker(url, prefix, concurrency, max_deliveries, prefetch): a worker in a child
// process (prefetch 0: the default).
void run_amqp_worker(std::string url, std::string prefix, int concurrency, int max_deliveries,
                     int prefetch) {
  WorkerOptions o;
  o.url = std::move(url);
  o.prefix = std::move(prefix);
  o.concurrency = static_cast<std::size_t>(concurrency);
  o.max_deliveries = static_cast<std::uint32_t>(max_deliveries);
  o.prefetch = static_cast<std::size_t>(prefetch);
  Worker w(o);
  w.run();
}
CONCUR_TASK(run_amqp_worker);

// ---- Fixture

using concur::testing::InProcessWorker;

RabbitMqServer* g_broker = nullptr;

class AmqpExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!RabbitMqServer::available()) return;
    g_broker = new RabbitMqServer();
    g_broker->start();
  }
  static void TearDownTestSuite() {
    delete g_broker;
    g_broker = nullptr;
  }
  void SetUp() override {
    if (g_broker == nullptr) GTEST_SKIP() << "rabbitmq-server is not installed (scripts/setup.sh)";
    static int n = 0;
    prefix_ = "t" + std::to_string(++n);
  }

  std::string url() const { return g_broker->url(); }
  AmqpOptions options() const {
    AmqpOptions o;
    o.prefix = prefix_;
    return o;
  }
  WorkerOptions worker_options(std::size_t concurrency = 2) const {
    WorkerOptions o;
    o.url = url();
    o.prefix = prefix_;
    o.concurrency = concurrency;
    return o;
  }
  std::unique_ptr<InProcessWorker> start_worker(std::size_t concurrency = 2) {
    return std::make_unique<InProcessWorker>(worker_options(concurrency));
  }
  std::string file(const std::string& name) const { return dir_.file(name); }
  // queue_info(queue): what declaring the queue again with its own arguments says (how many
  // messages wait, how many consumers it has); declares it when it is missing.
  QueueInfo queue_info(const std::string& queue) const {
    dist::Amqp mq = g_broker->client();
    QueueOptions q{.durable = true};
    if (queue == prefix_ + ".default") {
      q.max_priority = 9;
      q.dead_letter = true;
      q.dead_letter_routing_key = prefix_ + ".dead.default";
    }
    return mq.declare_queue(queue, q);
  }
  // messages(queue): how many messages wait in the (already declared) queue.
  std::uint32_t messages(const std::string& queue) const { return queue_info(queue).messages; }

  std::string prefix_;
  concur::testing::TempDir dir_;
};

// ---- Results, errors, batches, map

TEST_F(AmqpExecutorTest, SubmitRunsOnAWorkerAndReturnsTheResult) {
  auto w = start_worker();
  AmqpExecutor ex(url(), options());
  EXPECT_EQ(ex.submit(amqp_mul, 6, 7).result(kRemote), 42);
  std::vector<Future<int>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(ex.submit(amqp_mul, i, 3));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), 3 * i);
  // A batch: one message, the results in order.
  const std::vector<std::tuple<int, int>> calls = {{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(ex.submit_batch(amqp_mul, calls).result(kRemote), (std::vector<int>{2, 12, 30}));
  // map: chunks of calls, lazily, in order.
  std::vector<int> got;
  for (int v : ex.map(amqp_mul, std::vector<int>{1, 2, 3, 4, 5},
                      std::vector<int>{10, 10, 10, 10, 10}, MapOptions{.chunksize = 2}))
    got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{10, 20, 30, 40, 50}));
  // A void task.
  Future<void> v = ex.submit(amqp_mark, file("void"));
  v.result(kRemote);
  EXPECT_EQ(count_of(file("void")), 1);
  ex.shutdown();
  EXPECT_EQ(ex.pending(), 0u);
  w->join();
  EXPECT_EQ(w->worker().stats().succeeded, 1u + 50u + 1u + 3u + 1u);
}

// A coroutine awaits the executor's futures without blocking its loop (aio's co_await of a
// concur::Future), as with any executor.
TEST_F(AmqpExecutorTest, AnAioCoroutineAwaitsItsFutures) {
  auto w = start_worker(2);
  AmqpExecutor ex(url(), options());
  auto main = [](AmqpExecutor& e) -> aio::Task<int> {
    const Future<int> a = e.submit(amqp_mul, 6, 7);
    const Future<int> b = e.submit(amqp_mul, 2, 3);
    const int x = co_await a;
    const int y = co_await b;
    co_return x + y;
  };
  EXPECT_EQ(aio::run(main(ex)), 48);
}

TEST_F(AmqpExecutorTest, SubmitsFromSeveralThreadsAllResolve) {
  auto w = start_worker(3);
  AmqpExecutor ex(url(), options());
  constexpr int kThreads = 4, kEach = 100;
  std::atomic<int> right{0};
  concur::testing::run_threads(kThreads, [&](std::size_t t) {
    std::vector<Future<int>> fs;
    for (int i = 0; i < kEach; ++i) fs.push_back(ex.submit(amqp_mul, static_cast<int>(t), i));
    for (int i = 0; i < kEach; ++i)
      if (fs[static_cast<std::size_t>(i)].result(kRemote) == static_cast<int>(t) * i) ++right;
  });
  EXPECT_EQ(right.load(), kThreads * kEach);
}

TEST_F(AmqpExecutorTest, ATaskExceptionArrivesAsRemoteError) {
  auto w = start_worker();
  AmqpExecutor ex(url(), options());
  Future<int> f = ex.submit(amqp_raise, 7);
  try {
    (void)f.result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
    EXPECT_EQ(e.message(), "bad value 7");
    EXPECT_NE(e.traceback().find("amqp_raise"), std::string::npos) << e.traceback();
  }
}

TEST_F(AmqpExecutorTest, MisuseIsRefusedClearly) {
  AmqpExecutor ex(url(), options());
  int (*unregistered)(int, int) = [](int a, int b) { return a + b; };
  EXPECT_THROW((void)ex.submit(unregistered, 1, 2), UsageError);
  TaskOptions limited;
  limited.rate_limit = RateLimit{.key = "k", .per_second = 1, .burst = 1};
  try {
    (void)ex.submit_with(limited, amqp_mul, 1, 2);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("RedisExecutor"), std::string::npos) << e.what();
  }
  TaskOptions loud;
  loud.priority = 10;
  EXPECT_THROW((void)ex.submit_with(loud, amqp_mul, 1, 2), ValueError);
  EXPECT_EQ(ex.pending(), 0u) << "refused submissions leave nothing behind";
  ex.shutdown();
  EXPECT_THROW((void)ex.submit(amqp_mul, 1, 2), RuntimeError);
  // Bad URLs and options; an unreachable broker.
  EXPECT_THROW(AmqpExecutor("redis://127.0.0.1/", options()), ValueError);
  AmqpOptions empty = options();
  empty.queue.clear();
  EXPECT_THROW(AmqpExecutor(url(), empty), ValueError);
  const std::string closed =
      "amqp://127.0.0.1:" + std::to_string(concur::testing::free_loopback_port()) + "/";
  AmqpOptions quick = options();
  quick.connect_timeout = 2s;
  EXPECT_THROW(AmqpExecutor(closed, quick), ConnectionError);
  WorkerOptions wo = worker_options();
  wo.url = closed;
  wo.connect_timeout = 2s;
  EXPECT_THROW(Worker{wo}, ConnectionError);
}

// ---- Cancel and running()

// No worker yet: the task waits in its queue; cancel() revokes it, and the worker that takes it
// later drops it (acknowledged: the queue ends empty) without running it.
TEST_F(AmqpExecutorTest, AQueuedTaskIsCancelledAndNeverRuns) {
  AmqpExecutor ex(url(), options());
  Future<void> f = ex.submit(amqp_mark, file("cancelled"));
  EXPECT_FALSE(f.running());
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_EQ(ex.pending(), 0u);
  auto w = start_worker(1);
  EXPECT_EQ(ex.submit(amqp_mul, 2, 3).result(kRemote), 6) << "the worker serves the queue";
  w->join();
  EXPECT_FALSE(std::filesystem::exists(file("cancelled"))) << "a cancelled task must never run";
  EXPECT_EQ(messages(prefix_ + ".default"), 0u);
}

TEST_F(AmqpExecutorTest, ARunningTaskCannotBeCancelled) {
  auto w = start_worker(1);
  AmqpExecutor ex(url(), options());
  Future<int> f = ex.submit(amqp_gate, file("gate"), 5);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return f.running(); }));
  EXPECT_FALSE(f.cancel());
  append_line(file("gate"), "open");
  EXPECT_EQ(f.result(kRemote), 5);
}

// A worker is busy (a gate) while shutdown(cancel_futures) cancels the queued tasks; once free it
// claims them after the executor is gone: each start report comes back (no reply queue), and the
// task is dropped. None of them runs.
TEST_F(AmqpExecutorTest, ShutdownCancelFuturesCancelsWhatNoWorkerTook) {
  auto busy = start_worker(1);
  std::vector<Future<void>> fs;
  {
    AmqpExecutor ex(url(), options());
    Future<int> held = ex.submit(amqp_gate, file("gate"), 1);
    ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return held.running(); }));
    for (int i = 0; i < 5; ++i) fs.push_back(ex.submit(amqp_mark, file("queued")));
    ex.shutdown(false, /*cancel_futures=*/true);
    for (auto& f : fs) EXPECT_TRUE(f.cancelled());
    append_line(file("gate"), "open");
    EXPECT_EQ(held.result(kRemote), 1);
  }
  auto late = start_worker(1);
  AmqpExecutor other(url(), options());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(other.submit(amqp_mul, 4, i).result(kRemote), 4 * i);
  // Every cancelled task is dropped by the worker that claims it (its start report comes back:
  // the executor is gone), or put back unstarted by one that stops first and dropped later.
  const auto dropped = [&] {
    return busy->worker().stats().revoked + late->worker().stats().revoked;
  };
  EXPECT_TRUE(concur::testing::poll_until(kRemote, [&] { return dropped() == 5u; }))
      << dropped() << " of 5 dropped";
  late->join();
  busy->join();
  EXPECT_FALSE(std::filesystem::exists(file("queued"))) << "a cancelled task ran";
  EXPECT_EQ(messages(prefix_ + ".default"), 0u);
}

// A worker that prefetched more tasks than it has runners holds the extra ones (reserved by
// claims a round trip ahead of its threads): they are not running, and cancel() of one succeeds
// (the worker answers the withdraw frozen, then drops it); it never runs.
TEST_F(AmqpExecutorTest, APrefetchedTaskWaitingForARunnerStaysCancellable) {
  WorkerOptions wo = worker_options(1);
  wo.prefetch = 8;
  InProcessWorker w(wo);
  AmqpExecutor ex(url(), options());
  Future<int> held = ex.submit(amqp_gate, file("gate"), 1);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return held.running(); }));
  Future<void> queued = ex.submit(amqp_mark, file("cancelled"));
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] {
    return messages(prefix_ + ".default") == 0;
  })) << "the worker took the second task (prefetch 8)";
  EXPECT_FALSE(queued.running());
  EXPECT_TRUE(queued.cancel());
  append_line(file("gate"), "open");
  EXPECT_EQ(held.result(kRemote), 1);
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return w.worker().stats().revoked == 1; }));
  EXPECT_EQ(ex.submit(amqp_mul, 2, 4).result(kRemote), 8);
  w.join();
  EXPECT_FALSE(std::filesystem::exists(file("cancelled"))) << "a cancelled task must never run";
  EXPECT_EQ(messages(prefix_ + ".default"), 0u);
}

// A worker stalled (SIGSTOP) while it holds reserved tasks: cancel() of one waits at most
// connect_timeout for the worker's answer to its withdraw, then fails (nobody can tell whether the
// run began; the task is left to run) — or succeeds, when the worker's claim had not arrived yet.
// Either way the answer agrees with what runs once the worker resumes: a task cancelled never
// runs, one whose cancel failed finishes.
TEST_F(AmqpExecutorTest, ACancelOfATaskReservedByAStalledWorkerAgreesWithWhatRuns) {
  AmqpOptions o = options();
  o.connect_timeout = 1s;
  AmqpExecutor ex(url(), o);
  mp::Process worker(run_amqp_worker, url(), prefix_, 1, 5, 8);
  worker.start();
  Future<int> held = ex.submit(amqp_gate, file("gate"), 1);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return held.running(); }));
  std::vector<Future<void>> fs;
  for (int i = 0; i < 3; ++i) fs.push_back(ex.submit(amqp_mark, file("m" + std::to_string(i))));
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return messages(prefix_ + ".default") == 0; }));
  std::this_thread::sleep_for(200ms);  // (the claims' round trip: most likely reserved by now)
  ASSERT_EQ(::kill(worker.pid(), SIGSTOP), 0);
  std::vector<bool> cancelled;
  for (auto& f : fs) cancelled.push_back(f.cancel());
  ASSERT_EQ(::kill(worker.pid(), SIGCONT), 0);
  append_line(file("gate"), "open");
  EXPECT_EQ(held.result(kRemote), 1);
  for (std::size_t i = 0; i < fs.size(); ++i) {
    if (cancelled[i]) {
      EXPECT_TRUE(fs[i].cancelled());
    } else {
      fs[i].result(kRemote);
      EXPECT_TRUE(std::filesystem::exists(file("m" + std::to_string(i))));
    }
  }
  EXPECT_EQ(ex.submit(amqp_mul, 3, 4).result(kRemote), 12) << "the worker goes on";
  worker.terminate();
  worker.join();
  for (std::size_t i = 0; i < fs.size(); ++i) {
    if (cancelled[i]) {
      EXPECT_FALSE(std::filesystem::exists(file("m" + std::to_string(i))))
          << "task " << i << " was cancelled, and ran";
    }
  }
  std::printf("stalled worker: cancel() answered %d %d %d\n", int(cancelled[0]), int(cancelled[1]),
              int(cancelled[2]));
}

// ---- Batches of submits (AmqpOptions::max_batch)

// batched_options(): pipelined submits, up to 64 per message.
AmqpOptions batched(AmqpOptions o) {
  o.confirm_submit = false;
  o.max_batch = 64;
  return o;
}

// while_paused(submit): calls submit() with the broker paused (300 ms: the submits take
// microseconds), so that what it submits waits for the publisher together.
template <class F>
void while_paused(F submit) {
  g_broker->pause();
  submit();
  std::this_thread::sleep_for(300ms);
  g_broker->resume();
}

// Submits made while the broker is paused wait in the publisher together and leave as one
// TaskBatch message (the first may leave alone: the publisher took it before the others came).
// Each task still settles its own future; one that fails for good is dead-lettered alone, with
// its error in x-concur-error (the broker's dead-lettering could only take the whole message);
// the batch is acknowledged once all its tasks are settled.
TEST_F(AmqpExecutorTest, SubmitsWaitingTogetherTravelAsOneMessageAndSettleOneByOne) {
  AmqpExecutor ex(url(), batched(options()));
  std::vector<Future<int>> fs;
  Future<int> bad;
  while_paused([&] {
    for (int i = 0; i < 10; ++i) fs.push_back(ex.submit(amqp_mul, i, 3));
    bad = ex.submit(amqp_raise, 7);
    for (int i = 10; i < 20; ++i) fs.push_back(ex.submit(amqp_mul, i, 3));
  });
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return messages(prefix_ + ".default") >= 1; }));
  EXPECT_LE(messages(prefix_ + ".default"), 2u) << "21 submits, at most 2 messages";
  auto w = start_worker(2);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), 3 * i);
  try {
    (void)bad.result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
  }
  dist::Amqp mq = g_broker->client();
  std::optional<Delivery> dead;
  ASSERT_TRUE(concur::testing::poll_until(10s, [&] {
    return (dead = mq.get(prefix_ + ".dead.default", /*no_ack=*/true)).has_value();
  }));
  EXPECT_EQ(dead->properties.type, "amqp_raise");
  ASSERT_TRUE(dead->properties.headers.contains("x-concur-error"));
  EXPECT_EQ(dead->properties.headers.at("x-concur-error"), "ValueError: bad value 7");
  EXPECT_FALSE(mq.get(prefix_ + ".dead.default", true).has_value()) << "only the failed task";
  w->join();
  EXPECT_EQ(w->worker().stats().succeeded, 20u);
  EXPECT_EQ(w->worker().stats().failed, 1u);
  EXPECT_EQ(messages(prefix_ + ".default"), 0u) << "the batch was acknowledged";
}

// A task of a batch held by a busy worker is cancelled exactly: it never runs, the others do.
TEST_F(AmqpExecutorTest, ATaskOfABatchWaitingForARunnerIsCancelledAndNeverRuns) {
  WorkerOptions wo = worker_options(1);
  wo.prefetch = 4;
  InProcessWorker w(wo);
  AmqpExecutor ex(url(), batched(options()));
  Future<int> held;
  std::vector<Future<void>> marks;
  while_paused([&] {
    held = ex.submit(amqp_gate, file("gate"), 1);
    for (int i = 0; i < 3; ++i)
      marks.push_back(ex.submit(amqp_mark, file("mark" + std::to_string(i))));
  });
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return held.running(); }));
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return messages(prefix_ + ".default") == 0; }));
  EXPECT_FALSE(marks[1].running());
  EXPECT_TRUE(marks[1].cancel());
  append_line(file("gate"), "open");
  EXPECT_EQ(held.result(kRemote), 1);
  marks[0].result(kRemote);
  marks[2].result(kRemote);
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return w.worker().stats().revoked == 1; }));
  w.join();
  EXPECT_TRUE(std::filesystem::exists(file("mark0")));
  EXPECT_FALSE(std::filesystem::exists(file("mark1"))) << "a cancelled task must never run";
  EXPECT_TRUE(std::filesystem::exists(file("mark2")));
  EXPECT_EQ(messages(prefix_ + ".default"), 0u);
}

// A worker stopped (warm) while it holds a batch: the task running finishes; the tasks not
// started are published again, each alone, and another worker runs them — each task runs once.
TEST_F(AmqpExecutorTest, AWarmStopPutsBackTheUnstartedTasksOfABatch) {
  AmqpExecutor ex(url(), batched(options()));
  auto first = start_worker(1);
  std::vector<Future<int>> fs;
  while_paused([&] {
    for (int i = 0; i < 6; ++i) fs.push_back(ex.submit(amqp_counted, file("runs"), 300, i));
  });
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return count_of(file("runs")) >= 1; }));
  first->join();  // stop() while one runs: it finishes; the held ones go back
  auto second = start_worker(2);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), i);
  second->join();
  EXPECT_EQ(count_of(file("runs")), 6) << "each task ran once";
  EXPECT_GE(second->worker().stats().succeeded, 4u);
  EXPECT_EQ(first->worker().stats().succeeded + second->worker().stats().succeeded, 6u);
  EXPECT_EQ(messages(prefix_ + ".default"), 0u);
}

// A worker killed while it holds a batch: the broker requeues the whole message, another worker
// takes it over, and every future settles (the tasks already done run again: at least once).
TEST_F(AmqpExecutorTest, AKilledWorkersBatchIsTakenOverWhole) {
  AmqpExecutor ex(url(), batched(options()));
  mp::Process doomed(run_amqp_worker, url(), prefix_, 1, 5, 0);
  doomed.start();
  std::vector<Future<int>> fs;
  while_paused([&] {
    for (int i = 0; i < 5; ++i) fs.push_back(ex.submit(amqp_counted, file("runs"), 1000, i));
  });
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return count_of(file("runs")) >= 1; }));
  doomed.kill();
  doomed.join();
  auto w = start_worker(2);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), i);
  w->join();
  EXPECT_GE(count_of(file("runs")), 5);
  EXPECT_LE(count_of(file("runs")), 5 + 2) << "at most the killed worker's started tasks again";
  EXPECT_GE(w->worker().stats().taken_over, 1u);
  EXPECT_EQ(messages(prefix_ + ".default"), 0u);
}

TEST_F(AmqpExecutorTest, MaxBatchZeroIsRefused) {
  AmqpOptions o = options();
  o.max_batch = 0;
  EXPECT_THROW(AmqpExecutor(url(), o), ValueError);
}

// ---- Retries, dead letters, priorities

TEST_F(AmqpExecutorTest, AFailingTaskIsRetriedWithBackoffUntilItSucceeds) {
  auto w = start_worker();
  AmqpExecutor ex(url(), options());
  TaskOptions o;
  o.max_retries = 3;
  o.retry_backoff = 100ms;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ex.submit_with(o, amqp_flaky, file("flaky"), 2, 9).result(kRemote), 9);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms) << "backoffs of 100 + 200 ms";
  EXPECT_EQ(count_of(file("flaky")), 3);
  w->join();
  EXPECT_EQ(w->worker().stats().retried, 2u);
  EXPECT_EQ(w->worker().stats().succeeded, 1u);
}

TEST_F(AmqpExecutorTest, ATaskPastItsRetriesFailsAndIsDeadLettered) {
  auto w = start_worker();
  AmqpExecutor ex(url(), options());
  TaskOptions o;
  o.max_retries = 1;
  o.retry_backoff = 20ms;
  Future<int> f = ex.submit_with(o, amqp_flaky, file("always"), 100, 1);
  try {
    (void)f.result(kRemote);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "RuntimeError");
    EXPECT_NE(e.traceback().find("run 2 of 2"), std::string::npos) << e.traceback();
  }
  EXPECT_EQ(count_of(file("always")), 2);
  // The broker dead-lettered the task (x-dead-letter-exchange) to P.dead.default.
  dist::Amqp mq = g_broker->client();
  std::optional<Delivery> dead;
  ASSERT_TRUE(concur::testing::poll_until(10s, [&] {
    return (dead = mq.get(prefix_ + ".dead.default", /*no_ack=*/true)).has_value();
  }));
  EXPECT_EQ(dead->properties.type, "amqp_flaky");
}

TEST_F(AmqpExecutorTest, HigherPriorityTasksRunFirst) {
  AmqpExecutor ex(url(), options());
  std::vector<Future<void>> fs;
  for (int i = 0; i < 5; ++i)
    fs.push_back(ex.submit(amqp_record, file("order"), std::string("low")));
  TaskOptions urgent;
  urgent.priority = 9;
  fs.push_back(ex.submit_with(urgent, amqp_record, file("order"), std::string("high")));
  auto w = start_worker(1);  // the queue is full before the first worker takes anything
  for (auto& f : fs) f.result(kRemote);
  const std::vector<std::string> order = lines_of(file("order"));
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(order.front(), "high");
}

// ---- Workers that die, stall or stop

TEST_F(AmqpExecutorTest, AKilledWorkersTasksAreTakenOverByAnother) {
  AmqpExecutor ex(url(), options());
  mp::Process doomed(run_amqp_worker, url(), prefix_, 2, 5, 0);
  doomed.start();
  Future<int> a = ex.submit(amqp_counted, file("a"), 3000, 1);
  Future<int> b = ex.submit(amqp_counted, file("b"), 3000, 2);
  ASSERT_TRUE(concur::testing::poll_until(
      kRemote, [&] { return count_of(file("a")) == 1 && count_of(file("b")) == 1; }));
  doomed.kill();  // kill -9 with both tasks running: the broker requeues them
  doomed.join();
  auto w = start_worker(2);
  EXPECT_EQ(a.result(kRemote), 1);
  EXPECT_EQ(b.result(kRemote), 2);
  EXPECT_EQ(count_of(file("a")), 2) << "run again once, by the worker that took it over";
  EXPECT_EQ(count_of(file("b")), 2);
  w->join();
  EXPECT_EQ(w->worker().stats().taken_over, 2u);
}

TEST_F(AmqpExecutorTest, ATaskThatKillsEveryWorkerIsGivenUp) {
  AmqpExecutor ex(url(), options());
  Future<int> f = ex.submit(amqp_die);
  // Workers with max_deliveries 2: the first two that take the task die; the third gives it up:
  // it stores the error, then rejects the task, which the broker dead-letters (it is left alive
  // until then: killed between the two, it would leave the task to the broker's requeue).
  dist::Amqp mq = g_broker->client();
  bool dead_lettered = false;
  for (int i = 0; i < 6 && !f.done(); ++i) {
    mp::Process p(run_amqp_worker, url(), prefix_, 1, 2, 0);
    p.start();
    (void)concur::testing::poll_until(10s, [&] { return f.done() || !p.is_alive(); });
    if (f.done()) {
      dead_lettered = concur::testing::poll_until(
          10s, [&] { return mq.get(prefix_ + ".dead.default", true).has_value(); });
    }
    if (p.is_alive()) p.terminate();
    p.join();
  }
  ASSERT_TRUE(f.done());
  try {
    (void)f.result();
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "WorkerLostError");
  }
  EXPECT_TRUE(dead_lettered);
}

TEST_F(AmqpExecutorTest, StopIsWarmTheTaskTakenFinishes) {
  AmqpExecutor ex(url(), options());
  auto w = start_worker(1);
  Future<int> f = ex.submit(amqp_counted, file("warm"), 500, 3);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return count_of(file("warm")) == 1; }));
  w->join();  // stop() while it runs: run() returns once its outcome is stored
  EXPECT_TRUE(f.done() || f.result(kRemote) == 3);
  EXPECT_EQ(f.result(kRemote), 3);
  EXPECT_EQ(w->worker().stats().succeeded, 1u);
  EXPECT_EQ(count_of(file("warm")), 1);
}

TEST_F(AmqpExecutorTest, ACancelledRunningTaskIsKilledOnAProcessWorker) {
  WorkerOptions o = worker_options(1);
  o.processes = true;
  InProcessWorker w(o);
  AmqpExecutor ex(url(), options());
  Future<int> f = ex.submit(amqp_gate, file("never"), 1);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return f.running(); }));
  ASSERT_TRUE(concur::testing::poll_until(
      kRemote, [&] { return std::filesystem::exists(file("never.started")); }));
  EXPECT_TRUE(f.cancel()) << "a process worker can stop the run";
  EXPECT_TRUE(f.cancelled());
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return w.worker().stats().revoked == 1; }));
  EXPECT_EQ(ex.submit(amqp_mul, 3, 3).result(kRemote), 9) << "the worker goes on";
}

// ---- The broker

// A broker crash (SIGKILL) while workers run: every future resolves — what was acknowledged had
// its result stored durably, what was not is requeued and run again.
TEST_F(AmqpExecutorTest, ABrokerCrashWhileWorkersRunLosesNothingAcknowledged) {
  auto w = start_worker(2);
  AmqpExecutor ex(url(), options());
  // RabbitMQ records a new queue's declaration asynchronously: a crash within about a second of it
  // lost the queue with what was in it (tests/dist/amqp_test.cpp, docs/dist.md) — here the
  // executor's new reply queue and its results. The queues get 2 s (no broker event tells when).
  std::this_thread::sleep_for(2s);
  std::vector<Future<int>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(ex.submit(amqp_counted, file("runs"), 5, i));
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return count_of(file("runs")) >= 20; }));
  g_broker->restart();
  for (int i = 0; i < 200; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), i);
  EXPECT_GE(count_of(file("runs")), 200);
  // The executor and the worker reconnected: a new task goes through.
  EXPECT_EQ(ex.submit(amqp_mul, 5, 5).result(kRemote), 25);
}

// Someone deletes a task queue under a consuming worker: the broker cancels the worker's consumer
// (the consumer_cancel_notify capability), and the worker declares the queue again and consumes it
// on the same connection, while the task it was running finishes and settles its future. (Before,
// the broker dropped the consumer without a word and the worker waited on it forever: the queue,
// declared again, kept no consumer and its tasks never ran.)
TEST_F(AmqpExecutorTest, AWorkerServesAgainAfterItsTaskQueueWasDeleted) {
  auto w = start_worker(2);
  AmqpExecutor ex(url(), options());
  EXPECT_EQ(ex.submit(amqp_mul, 2, 3).result(kRemote), 6);
  Future<int> running = ex.submit(amqp_gate, file("gate"), 7);
  ASSERT_TRUE(concur::testing::poll_until(
      kRemote, [&] { return std::filesystem::exists(file("gate") + ".started"); }));
  const std::string queue = prefix_ + ".default";
  g_broker->client().delete_queue(queue);
  // The queue is back (declared by the worker, or by queue_info with the same arguments) with the
  // worker consuming it.
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote, [&] { return queue_info(queue).consumers == 1; }));
  append_line(file("gate"), "open");
  EXPECT_EQ(running.result(kRemote), 7) << "the task running when its queue went was lost";
  EXPECT_EQ(ex.submit(amqp_mul, 4, 5).result(kRemote), 20);
  ex.shutdown();
  w->join();
  EXPECT_EQ(w->worker().stats().succeeded, 3u);
}

// A task submitted to a queue deleted since the executor declared it is not lost: tasks go out
// mandatory, so the broker sends it back (basic.return), and the executor declares the queue again
// and publishes it once more before the submit returns. (Before, the broker dropped it and
// confirmed it all the same: the queue stayed empty and the future waited forever.)
TEST_F(AmqpExecutorTest, ATaskForADeletedQueueIsPublishedAgainNotLost) {
  AmqpExecutor ex(url(), options());
  const std::string queue = prefix_ + ".default";
  EXPECT_EQ(messages(queue), 0u);
  g_broker->client().delete_queue(queue);
  Future<int> f = ex.submit(amqp_mul, 3, 4);  // (confirm_submit: the broker has it when it returns)
  EXPECT_EQ(messages(queue), 1u);
  auto w = start_worker(2);
  EXPECT_EQ(f.result(kRemote), 12);
  // A batch of tasks (one message) comes back and goes out again the same way.
  g_broker->client().delete_queue(queue);
  const std::vector<std::tuple<int, int>> calls = {{1, 2}, {3, 4}};
  EXPECT_EQ(ex.submit_batch(amqp_mul, calls).result(kRemote), (std::vector<int>{2, 12}));
}

// confirm_submit = false: submit() returns once the task is handed to the publisher thread; the
// tasks still all run, and one the broker never got fails its future instead of vanishing.
TEST_F(AmqpExecutorTest, APipelinedSubmitThatNeverReachesTheBrokerFailsItsFuture) {
  AmqpOptions o = options();
  o.confirm_submit = false;
  o.connect_timeout = 2s;
  auto w = start_worker(2);
  AmqpExecutor ex(url(), o);
  std::vector<Future<int>> fs;
  for (int i = 0; i < 300; ++i) fs.push_back(ex.submit(amqp_mul, i, 2));
  for (int i = 0; i < 300; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kRemote), 2 * i);
  g_broker->stop();
  Future<int> lost = ex.submit(amqp_mul, 1, 1);  // (returns: the publisher finds out)
  EXPECT_THROW((void)lost.result(kRemote), ConnectionError);
  g_broker->restart();
  EXPECT_EQ(ex.submit(amqp_mul, 2, 2).result(kRemote), 4) << "the executor reconnects";
}

// A worker whose task runs past the broker's consumer_timeout has its channel closed and the task
// requeued: the worker reconnects and goes on; the task runs again, the future settles once.
TEST(AmqpConsumerTimeoutTest, AStalledConsumerReconnectsAndTheTaskStillSettles) {
  if (!RabbitMqServer::available()) GTEST_SKIP() << "rabbitmq-server is not installed";
  RabbitMqServer broker;
  broker.configure("consumer_timeout = 1000", "[{rabbit, [{channel_tick_interval, 200}]}].");
  broker.start();
  concur::testing::TempDir dir;
  const std::string runs = dir.file("runs");
  WorkerOptions o;
  o.url = broker.url();
  o.concurrency = 1;
  InProcessWorker w(o);
  AmqpExecutor ex(broker.url());
  Future<int> f = ex.submit(amqp_stall_once, runs, 3000, 7);
  EXPECT_EQ(f.result(kRemote), 7);
  EXPECT_EQ(ex.submit(amqp_mul, 6, 6).result(kRemote), 36) << "the worker still serves";
  ex.shutdown();
  w.join();
  EXPECT_GE(count_of(runs), 2) << "the broker took the task back and it ran again";
  const WorkerStats s = w.worker().stats();
  EXPECT_GE(s.lost, 1u) << "the first run's acknowledgement was no longer possible";
}

}  // namespace concur::dist::amqp_test
