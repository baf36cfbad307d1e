// amqp_transport_bench — the floor under issue 18's executor: what RabbitMQ's transport costs on
// this machine, beside Redis's, before any executor logic. A private rabbitmq-server and a private
// redis-server (tests/support/), loopback only, both stopped at the end. Rows (N round trips after
// a warm-up, one client thread; p50/p99 in µs; throughput where it applies):
//   redis PING                      a hiredis round trip: the yardstick of issue 16's latency
//   target amqp publish+confirm            basic.publish, then wait for the broker's basic.ack amqp
//   publish+confirm durable    the same, persistent to a durable queue (the executor's submit) amqp
//   task round trip            publish (confirmed) -> a worker thread's consumer gets it, acks,
//                                   publishes the reply -> the client's reply consumer gets it:
//                                   the bare transport of one submit -> result
//   amqp pipelined tasks            N tasks published (confirmed one by one) while the worker
//                                   answers them; tasks/s from the first publish to the last reply
//   amqp pipelined, confirms in     the same with publish_nowait: confirms collected at the end
//   flight
//   reader: dedicated thread /      issue 18's "aio loop or a dedicated I/O thread — measure
//   reader: asio loop (rt, piped)   which": the client's replies read on a connection of their own
//                                   by (a) a thread blocking in next_delivery(), as AmqpExecutor's
//                                   reader does, or (b) an Asio io_context waiting on the socket
//                                   (posix::stream_descriptor::async_wait) and draining what came;
//                                   each hands the count to the client thread (mutex + condvar).
//                                   rt: one task round trip at a time (p50/p99); piped: N tasks
//                                   published with confirms in flight, tasks/s to the last reply
// Output: a table on stdout and one JSON line per row (--json FILE appends them).
//
//   build/release/bench/amqp_transport_bench [--n 2000] [--warmup 200] [--json FILE]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concur/dist/amqp.hpp"
#include "concur/dist/redis.hpp"
#include "support/rabbitmq_server.hpp"
#include "support/redis_server.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using concur::dist::Amqp;
using concur::dist::Delivery;

struct Row {
  std::string name;
  std::vector<double> micros;  // one per round trip
  double per_second = 0.0;     // throughput rows
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

template <class F>
Row timed(const std::string& name, int warmup, int n, F&& once) {
  for (int i = 0; i < warmup; ++i) once(i);
  Row row{name, {}, 0.0};
  row.micros.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    once(i);
    row.micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return row;
}

// Worker: consumes "tasks", acks each, and publishes its body back to its reply_to with its
// correlation id, until `stop`.
void worker(const std::string& url, std::atomic<bool>& stop) {
  Amqp mq = Amqp::connect(concur::dist::AmqpUrl::parse(url));
  mq.qos(64);
  (void)mq.consume("tasks");
  while (!stop.load()) {
    std::optional<Delivery> d = mq.next_delivery(std::chrono::milliseconds(50));
    if (!d) continue;
    concur::dist::MessageProperties reply;
    reply.correlation_id = d->properties.correlation_id;
    mq.publish("", d->properties.reply_to, d->body, reply);
    mq.ack(d->delivery_tag);
  }
}

// Replies: what a reader hands to the client thread.
struct Replies {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t count = 0;
  void add(std::uint64_t n) {
    {
      std::scoped_lock lock(mu);
      count += n;
    }
    cv.notify_all();
  }
  void wait_for(std::uint64_t n) {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return count >= n; }))
      throw concur::RuntimeError("replies stopped");
  }
};

// drain(rd): every reply already arrived (or buffered) → how many.
std::uint64_t drain(Amqp& rd) {
  std::uint64_t n = 0;
  while (rd.next_delivery(std::chrono::milliseconds(0))) ++n;
  return n;
}

// reader_rows(kind, url, n, warmup, rows): the round-trip and pipelined rows with the replies read
// by `kind` ("dedicated thread" or "asio loop").
void reader_rows(const std::string& kind, const std::string& url, int n, int warmup,
                 std::vector<Row>& rows) {
  const auto amqp_url = concur::dist::AmqpUrl::parse(url);
  Amqp pub = Amqp::connect(amqp_url);
  pub.confirm_select();
  Amqp rd = Amqp::connect(amqp_url);
  const std::string queue = "replies-" + std::to_string(rows.size());
  (void)rd.declare_queue(queue, {});
  rd.qos(1024);
  (void)rd.consume(queue, /*no_ack=*/true);
  Replies replies;
  std::atomic<bool> stop{false};
  std::thread reader;
  boost::asio::io_context io;
  boost::asio::posix::stream_descriptor socket(io);
  std::function<void()> arm;
  if (kind == "dedicated thread") {
    reader = std::thread([&] {
      while (!stop.load()) {
        if (!rd.next_delivery(std::chrono::milliseconds(50))) continue;
        replies.add(1 + drain(rd));
      }
    });
  } else {
    socket.assign(::dup(rd.fd()));
    arm = [&] {
      socket.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [&](const boost::system::error_code& ec) {
                          if (ec || stop.load()) return;
                          if (const std::uint64_t k = drain(rd); k > 0) replies.add(k);
                          arm();
                        });
    };
    arm();
    reader = std::thread([&] {
      const auto guard = boost::asio::make_work_guard(io);
      io.run();
    });
  }
  concur::dist::MessageProperties task;
  task.persistent = true;
  task.reply_to = queue;
  std::uint64_t sent = 0;
  rows.push_back(timed("reader: " + kind + " (rt)", warmup, n, [&](int) {
    pub.publish("", "tasks", "t", task);
    replies.wait_for(++sent);
  }));
  Row piped{"reader: " + kind + " (piped)", {}, 0.0};
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) (void)pub.publish_nowait("", "tasks", "t", task);
  sent += static_cast<std::uint64_t>(n);
  replies.wait_for(sent);
  if (!pub.wait_confirms(std::chrono::seconds(10)).empty())
    throw concur::RuntimeError("the broker refused tasks");
  piped.per_second = n / std::chrono::duration<double>(Clock::now() - t0).count();
  rows.push_back(piped);
  stop.store(true);
  io.stop();
  reader.join();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"RabbitMQ's transport beside Redis's on this machine (issue 18's floor)"};
  int n = 2000;
  int warmup = 200;
  std::string json_path;
  app.add_option("--n", n, "Round trips per row")->check(CLI::Range(10, 1000000));
  app.add_option("--warmup", warmup, "Round trips before each row")->check(CLI::Range(0, 100000));
  app.add_option("--json", json_path, "Append one JSON line per row to FILE");
  CLI11_PARSE(app, argc, argv);

  concur::testing::RedisServer redis_server;
  redis_server.start();
  concur::testing::RabbitMqServer broker;
  broker.start();
  std::vector<Row> rows;

  concur::dist::Redis redis = redis_server.client();
  rows.push_back(timed("redis PING", warmup, n, [&](int) { (void)redis.command({"PING"}); }));

  Amqp mq = broker.client();
  mq.confirm_select();
  (void)mq.declare_queue("plain", {});
  (void)mq.declare_queue("durable", {.durable = true});
  rows.push_back(
      timed("amqp publish+confirm", warmup, n, [&](int) { mq.publish("", "plain", "x"); }));
  rows.push_back(timed("amqp publish+confirm durable", warmup, n,
                       [&](int) { mq.publish("", "durable", "x", {.persistent = true}); }));
  (void)mq.purge_queue("plain");
  (void)mq.purge_queue("durable");

  (void)mq.declare_queue("tasks", {.durable = true});
  const std::string replies = mq.declare_queue("", {.exclusive = true}).name;
  (void)mq.consume(replies, /*no_ack=*/true);
  std::atomic<bool> stop{false};
  std::thread worker_thread(worker, broker.url(), std::ref(stop));
  concur::dist::MessageProperties task;
  task.persistent = true;
  task.reply_to = replies;
  rows.push_back(timed("amqp task round trip", warmup, n, [&](int i) {
    task.correlation_id = std::to_string(i);
    mq.publish("", "tasks", "t", task);
    for (;;) {
      std::optional<Delivery> d = mq.next_delivery(std::chrono::seconds(10));
      if (!d) throw concur::RuntimeError("no reply within 10 s");
      if (d->properties.correlation_id == task.correlation_id) break;
    }
  }));
  {
    Row row{"amqp pipelined tasks", {}, 0.0};
    const auto t0 = Clock::now();
    int replied = 0;
    for (int i = 0; i < n; ++i) {
      task.correlation_id = "p" + std::to_string(i);
      mq.publish("", "tasks", "t", task);  // replies arriving meanwhile are kept
    }
    while (replied < n) {
      if (!mq.next_delivery(std::chrono::seconds(10)))
        throw concur::RuntimeError("replies stopped");
      ++replied;
    }
    row.per_second = n / std::chrono::duration<double>(Clock::now() - t0).count();
    rows.push_back(row);
  }
  {
    Row row{"amqp pipelined, confirms in flight", {}, 0.0};
    const auto t0 = Clock::now();
    int replied = 0;
    for (int i = 0; i < n; ++i) {
      task.correlation_id = "q" + std::to_string(i);
      (void)mq.publish_nowait("", "tasks", "t", task);
    }
    while (replied < n) {
      if (!mq.next_delivery(std::chrono::seconds(10)))
        throw concur::RuntimeError("replies stopped");
      ++replied;
    }
    if (!mq.wait_confirms(std::chrono::seconds(10)).empty()) {
      throw concur::RuntimeError("the broker refused tasks");
    }
    row.per_second = n / std::chrono::duration<double>(Clock::now() - t0).count();
    rows.push_back(row);
  }
  reader_rows("dedicated thread", broker.url(), n, warmup, rows);
  reader_rows("asio loop", broker.url(), n, warmup, rows);
  stop.store(true);
  worker_thread.join();

  std::printf("%-32s %10s %10s %12s\n", "row", "p50 µs", "p99 µs", "per second");
  std::ofstream json;
  if (!json_path.empty()) json.open(json_path, std::ios::app);
  for (const Row& r : rows) {
    const double p50 = percentile(r.micros, 0.50);
    const double p99 = percentile(r.micros, 0.99);
    const double per_second = r.per_second > 0 ? r.per_second : (p50 > 0 ? 1e6 / p50 : 0.0);
    std::printf("%-32s %10.1f %10.1f %12.0f\n", r.name.c_str(), p50, p99, per_second);
    if (json) {
      json << "{\"row\": \"" << r.name << "\", \"n\": " << n << ", \"p50_us\": " << p50
           << ", \"p99_us\": " << p99 << ", \"per_second\": " << per_second << "}\n";
    }
  }
  return 0;
}
