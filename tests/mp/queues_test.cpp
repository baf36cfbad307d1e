// tests/mp/queues_test.cpp — mp::Queue, JoinableQueue, SimpleQueue (concur/mp/queues.hpp).
// References: CPython's _test_multiprocessing.py (_TestQueue) and the notes' producer/consumer
// processes and `q.put('X' * 1000000)` + `p.join()` deadlock. Every wait is bounded.
#include "concur/mp/queues.hpp"

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "concur/mp/process.hpp"
#include "support/test_support.hpp"

namespace concur::mp {

void produce_range(Queue<std::int64_t>& q, std::int64_t from, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) q.put(from + i);
}
CONCUR_TASK(produce_range);

// consume_sum(q, count, out): gets `count` items and puts their sum and xor into `out`.
void consume_sum(Queue<std::int64_t>& q, std::int64_t count, Queue<std::int64_t>& out) {
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < count; ++i) sum += q.get(std::chrono::seconds(60));
  out.put(sum);
}
CONCUR_TASK(consume_sum);

void put_big(Queue<std::string>& q, std::size_t n) { q.put(std::string(n, 'X')); }
CONCUR_TASK(put_big);

void work_and_mark_done(JoinableQueue<int>& q, int n, Queue<int>& results) {
  for (int i = 0; i < n; ++i) {
    const int item = q.get(std::chrono::seconds(60));
    results.put(item * 2);
    q.task_done();
  }
}
CONCUR_TASK(work_and_mark_done);

void simple_echo(SimpleQueue<std::string>& in, SimpleQueue<std::string>& out) {
  out.put(in.get() + "!");
}
CONCUR_TASK(simple_echo);

void block_in_get(Queue<int>& q) { (void)q.get(std::chrono::seconds(60)); }
CONCUR_TASK(block_in_get);

// check_items(q, n, out): gets n items, each "<index>:" padded with 'x' to a length that says
// whether it went by the ring (short) or the side Connection (long); puts how many were intact.
void check_items(Queue<std::string>& q, int n, Queue<int>& out) {
  int intact = 0;
  for (int i = 0; i < n; ++i) {
    const std::string item = q.get(std::chrono::seconds(60));
    const auto colon = item.find(':');
    if (colon == std::string::npos) continue;
    const int index = std::stoi(item.substr(0, colon));
    const std::size_t expected = index % 2 == 0 ? 64 : 100'000;
    if (item.size() == expected && item.find_first_not_of('x', colon + 1) == std::string::npos)
      ++intact;
  }
  out.put(intact);
}
CONCUR_TASK(check_items);

namespace {

using namespace std::chrono_literals;

struct Point {
  int x = 0;
  std::string name;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, name);
  }
};

int finish(Process& p) {
  if (!p.join(60s)) {
    ADD_FAILURE() << p.name() << " hung";
    p.kill();
    p.join();
  }
  return p.exitcode().value_or(-1000);
}

class QueueTest : public ::testing::TestWithParam<StartMethod> {
 protected:
  void TearDown() override { EXPECT_TRUE(active_children().empty()); }
  [[nodiscard]] ProcessOptions opts() const { return ProcessOptions{.start_method = GetParam()}; }
};

TEST(QueueBasicsTest, FifoAndSizes) {
  Queue<int> q;
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.maxsize(), 0u);
  for (int i = 0; i < 100; ++i) q.put(i);
  EXPECT_EQ(q.qsize(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_TRUE(q.empty());
  EXPECT_THROW((void)q.get_nowait(), Empty);
}

TEST(QueueBasicsTest, BoundedPutTimesOutAndGetTimesOut) {
  Queue<int> q(2);
  EXPECT_EQ(q.maxsize(), 2u);
  q.put(1);
  q.put_nowait(2);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(3), Full);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(q.put(3, 50ms), Full);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_EQ(q.get(), 1);
  q.put(3, 50ms);
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_THROW((void)q.get(50ms), Empty);
  EXPECT_GE(std::chrono::steady_clock::now() - t1, 50ms);
  EXPECT_THROW((void)q.get_until(std::chrono::steady_clock::now() + 10ms), Empty);
}

TEST(QueueBasicsTest, StructuredItemsAndWrapAround) {
  Queue<Point> q(QueueOptions{.maxsize = 0, .buffer_bytes = 4096});
  // Many laps around a 4 KiB ring with items of varying sizes.
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 7; ++i)
      q.put(Point{round * 7 + i, std::string(static_cast<std::size_t>(i * 37), 'a')});
    for (int i = 0; i < 7; ++i) {
      const Point p = q.get();
      ASSERT_EQ(p.x, round * 7 + i);
      ASSERT_EQ(p.name.size(), static_cast<std::size_t>(i * 37));
    }
  }
}

TEST(QueueBasicsTest, LargeItemsKeepFifoOrder) {
  Queue<std::string> q(QueueOptions{.maxsize = 0, .buffer_bytes = 8192});
  q.put("a");
  q.put(std::string(100'000, 'b'));  // beyond the ring: the Connection path
  q.put("c");
  q.put(std::string(3 << 20, 'd'));
  q.put("e");
  EXPECT_EQ(q.qsize(), 5u);
  EXPECT_EQ(q.get(), "a");
  EXPECT_EQ(q.get().size(), 100'000u);
  EXPECT_EQ(q.get(), "c");
  EXPECT_EQ(q.get(), std::string(3 << 20, 'd'));
  EXPECT_EQ(q.get(), "e");
}

TEST(QueueBasicsTest, HandlesTravelThroughTheQueue) {
  Queue<Connection> q;
  auto [a, b] = Pipe();
  q.put(b);
  b.close();
  Connection got = q.get(5s);
  a.send(std::string("through the queue"));
  EXPECT_EQ(got.recv<std::string>(), "through the queue");
}

TEST(QueueBasicsTest, CloseMakesThisProcessRefuse) {
  Queue<int> q;
  q.put(1);
  q.close();
  q.join_thread();
  q.cancel_join_thread();
  EXPECT_THROW(q.put(2), ValueError);
  EXPECT_THROW((void)q.get(), ValueError);
}

TEST(QueueBasicsTest, ThreadsOfOneProcess) {
  Queue<std::int64_t> q(64);
  constexpr std::int64_t kEach = 5000;
  std::vector<std::thread> producers;
  for (int t = 0; t < 3; ++t)
    producers.emplace_back([&, t] {
      for (std::int64_t i = 0; i < kEach; ++i) q.put(t * kEach + i);
    });
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < 3 * kEach; ++i) sum += q.get(60s);
  for (auto& p : producers) p.join();
  EXPECT_EQ(sum, (3 * kEach) * (3 * kEach - 1) / 2);
}

TEST(JoinableQueueBasicsTest, TaskDoneAndJoin) {
  JoinableQueue<int> q;
  EXPECT_TRUE(q.join(0s));
  q.put(1);
  q.put(2);
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  EXPECT_FALSE(q.join(20ms));
  (void)q.get();
  q.task_done();
  (void)q.get();
  q.task_done();
  EXPECT_TRUE(q.join(0s));
  q.join();
  EXPECT_THROW(q.task_done(), ValueError);
}

TEST_P(QueueTest, FourProducersFourConsumersLoseNothing) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr std::int64_t kPerProducer = 2'000;
#else
  constexpr std::int64_t kPerProducer = 20'000;
#endif
  constexpr std::int64_t kTotal = kProducers * kPerProducer;
  Queue<std::int64_t> q(100);  // bounded: producers block and are released across processes
  Queue<std::int64_t> sums;
  std::vector<Process> ps;
  for (int i = 0; i < kProducers; ++i)
    ps.emplace_back(opts(), produce_range, q, i * kPerProducer, kPerProducer);
  for (int i = 0; i < kConsumers; ++i)
    ps.emplace_back(opts(), consume_sum, q, kTotal / kConsumers, sums);
  for (auto& p : ps) p.start();
  for (auto& p : ps) EXPECT_EQ(finish(p), 0) << p.name();
  std::int64_t total = 0;
  for (int i = 0; i < kConsumers; ++i) total += sums.get(5s);
  EXPECT_EQ(total, kTotal * (kTotal - 1) / 2);
  EXPECT_TRUE(q.empty());
}

TEST_P(QueueTest, NotesLargePutThenJoinDoesNotDeadlock) {
  // Python: q.put('X' * 1000000) in the child, p.join() before q.get() in the parent hangs.
  Queue<std::string> q;
  Process p(opts(), put_big, q, std::size_t{1'000'000});
  p.start();
  EXPECT_EQ(finish(p), 0);  // the child exited although nobody read yet
  EXPECT_EQ(q.get(5s), std::string(1'000'000, 'X'));
}

TEST_P(QueueTest, JoinableQueueAcrossProcesses) {
  JoinableQueue<int> q;
  Queue<int> results;
  constexpr int kItems = 200;
  std::vector<Process> ps;
  for (int i = 0; i < 2; ++i) ps.emplace_back(opts(), work_and_mark_done, q, kItems / 2, results);
  for (auto& p : ps) p.start();
  for (int i = 0; i < kItems; ++i) q.put(i);
  EXPECT_TRUE(q.join(60s));
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  int sum = 0;
  for (int i = 0; i < kItems; ++i) sum += results.get(5s);
  EXPECT_EQ(sum, kItems * (kItems - 1));
  for (auto& p : ps) EXPECT_EQ(finish(p), 0);
}

TEST_P(QueueTest, SimpleQueueAcrossProcesses) {
  SimpleQueue<std::string> in;
  SimpleQueue<std::string> out;
  Process p(opts(), simple_echo, in, out);
  p.start();
  in.put("hello");
  EXPECT_EQ(out.get(), "hello!");
  EXPECT_EQ(finish(p), 0);
  EXPECT_TRUE(in.empty());
}

TEST_P(QueueTest, SideItemsReachSeveralConsumerProcessesIntact) {
  // Items beyond the ring travel over the shared side Connection; two consumer processes read it
  // in turn, so neither may read ahead into the other's item.
  Queue<std::string> q(QueueOptions{.maxsize = 0, .buffer_bytes = 8192});
  Queue<int> out;
  constexpr int kItems = 40;
  // Everything is queued first, so the side pipe holds many messages when the consumers start.
  for (int i = 0; i < kItems; ++i) {
    std::string item = std::to_string(i) + ":";
    item.resize(i % 2 == 0 ? 64 : 100'000, 'x');
    q.put(item);
  }
  std::vector<Process> ps;
  for (int i = 0; i < 2; ++i) ps.emplace_back(opts(), check_items, q, kItems / 2, out);
  for (auto& p : ps) p.start();
  int intact = 0;
  for (int i = 0; i < 2; ++i) intact += out.get(60s);
  EXPECT_EQ(intact, kItems);
  for (auto& p : ps) EXPECT_EQ(finish(p), 0);
}

TEST_P(QueueTest, KilledGetterDoesNotBlockOthers) {
  Queue<int> q;
  Process p(opts(), block_in_get, q);
  p.start();
  std::this_thread::sleep_for(50ms);  // let it block in get()
  p.kill();
  EXPECT_EQ(finish(p), -SIGKILL);
  q.put(7);
  EXPECT_EQ(q.get(5s), 7);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, QueueTest,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         [](const auto& param_info) {
                           return std::string(to_string(param_info.param));
                         });

}  // namespace
}  // namespace concur::mp
