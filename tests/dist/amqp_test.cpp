// Tests for concur/dist/amqp.hpp against a private RabbitMQ broker (support/rabbitmq_server.hpp,
// one for the suite): URL parsing, queues with RabbitMQ's arguments, publisher confirms,
// consumption with qos and manual acks (an unacknowledged message comes back redelivered when its
// connection goes), nack/reject, properties and headers round-tripped, priorities, per-message
// TTL with a dead-letter hop (the delayed-retry pattern of issue 18), the broker's errors
// (AmqpError with the reply code), an unreachable broker, and confirmed durable messages across a
// broker crash. One ctest process for the suite (ONE_PROCESS): the broker boots once. Loopback
// only.
#include "concur/dist/amqp.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/loopback.hpp"
#include "support/process_support.hpp"
#include "support/rabbitmq_server.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
using dist::Amqp;
using dist::AmqpError;
using dist::AmqpUrl;
using dist::Delivery;
using dist::MessageProperties;
using dist::QueueOptions;

TEST(AmqpUrlTest, ParsesTheFormsRabbitMqDocuments) {
  const AmqpUrl d = AmqpUrl::parse("amqp://localhost");
  EXPECT_EQ(d.host, "localhost");
  EXPECT_EQ(d.port, 5672);
  EXPECT_EQ(d.user, "guest");
  EXPECT_EQ(d.password, "guest");
  EXPECT_EQ(d.vhost, "/");
  const AmqpUrl u = AmqpUrl::parse("amqp://ann:s%40cret@10.0.0.5:5673/prod%2fa");
  EXPECT_EQ(u.user, "ann");
  EXPECT_EQ(u.password, "s@cret");
  EXPECT_EQ(u.host, "10.0.0.5");
  EXPECT_EQ(u.port, 5673);
  EXPECT_EQ(u.vhost, "prod/a");
  EXPECT_EQ(u.str(), "amqp://ann@10.0.0.5:5673/prod/a");  // no password
  const AmqpUrl v6 = AmqpUrl::parse("amqp://[::1]:5674/");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 5674);
  for (const char* bad : {"redis://x", "amqp://", "amqp://h:0", "amqp://h:99999", "amqp://h:x",
                          "amqp://[::1", "amqp://:pw@h", "amqp://h/%4"}) {
    EXPECT_THROW((void)AmqpUrl::parse(bad), ValueError) << bad;
  }
}

TEST(AmqpConnectTest, AnUnreachableBrokerIsAConnectionError) {
  const std::uint16_t closed = free_loopback_port();
  const auto url = AmqpUrl::parse("amqp://127.0.0.1:" + std::to_string(closed) + "/");
  EXPECT_THROW((void)Amqp::connect(url, 2s), ConnectionError);
  Amqp none;
  EXPECT_FALSE(none.is_connected());
  EXPECT_THROW(none.qos(1), RuntimeError);
}

class AmqpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!RabbitMqServer::available()) return;
    broker_ = new RabbitMqServer();
    broker_->start();
  }
  static void TearDownTestSuite() {
    delete broker_;
    broker_ = nullptr;
  }
  void SetUp() override {
    if (broker_ == nullptr) GTEST_SKIP() << "rabbitmq-server is not installed (scripts/setup.sh)";
  }
  static Amqp connect() { return broker_->client(); }

  static RabbitMqServer* broker_;
};

RabbitMqServer* AmqpTest::broker_ = nullptr;

TEST_F(AmqpTest, PublishWithConfirmsThenConsumeAndAck) {
  Amqp producer = connect();
  Amqp consumer = connect();
  const std::string q = producer.declare_queue("confirmed", {.durable = true}).name;
  (void)producer.purge_queue(q);
  producer.confirm_select();
  for (int i = 0; i < 20; ++i) {
    producer.publish("", q, "m" + std::to_string(i), {.persistent = true});
  }
  // Every publish returned after its confirm: the broker holds all 20.
  EXPECT_EQ(producer.declare_queue(q, {.durable = true}).messages, 20u);
  consumer.qos(5);
  (void)consumer.consume(q);
  std::vector<std::string> got;
  while (got.size() < 20) {
    std::optional<Delivery> d = consumer.next_delivery(5s);
    ASSERT_TRUE(d) << "after " << got.size();
    got.push_back(d->body);
    EXPECT_FALSE(d->redelivered);
    EXPECT_TRUE(d->properties.persistent);
    consumer.ack(d->delivery_tag);
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], "m" + std::to_string(i));
  EXPECT_FALSE(consumer.next_delivery(100ms));
}

// A process forked with a connection in its memory that closes it (a destructor) closes only its
// copy of the socket: a Close on the wire would end its parent's connection.
TEST_F(AmqpTest, ClosingAConnectionInAForkedChildLeavesTheParentsOpen) {
  Amqp parent = connect();
  const std::string q = parent.declare_queue("fork-close", {}).name;
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the child only closes its copy
  ASSERT_GE(child, 0);
  if (child == 0) {
    parent.close();
    ::_exit(0);
  }
  EXPECT_EQ(concur::testing::wait_forked(child, std::chrono::seconds(30)), 0);
  (void)parent.purge_queue(q);
  parent.confirm_select();
  parent.publish("", q, "still open");  // returns once the broker confirmed it: it is queued
  EXPECT_EQ(parent.declare_queue(q, {}).messages, 1U);
}

// A mandatory message no queue takes comes back (basic.return, read before its confirm) with its
// properties; a routable one does not.
TEST_F(AmqpTest, AnUnroutableMandatoryMessageComesBack) {
  Amqp mq = connect();
  mq.confirm_select();
  MessageProperties p;
  p.correlation_id = "7";
  mq.publish("", "no-such-queue", "lost", p, /*mandatory=*/true);
  std::optional<Delivery> r = mq.next_returned();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->routing_key, "no-such-queue");
  EXPECT_EQ(r->body, "lost");
  EXPECT_EQ(r->properties.correlation_id, "7");
  EXPECT_FALSE(mq.next_returned());
  const std::string q = mq.declare_queue("routable", {}).name;
  mq.publish("", q, "kept", p, /*mandatory=*/true);
  EXPECT_FALSE(mq.next_returned());
  EXPECT_EQ(mq.declare_queue(q, {}).messages, 1u);
}

// Confirms in flight: a fast producer publishes without waiting, then collects every confirm.
TEST_F(AmqpTest, ConfirmsInFlightAreCollectedByWaitConfirms) {
  Amqp mq = connect();
  const std::string q = mq.declare_queue("in-flight", {.durable = true}).name;
  (void)mq.purge_queue(q);
  EXPECT_EQ(mq.publish_nowait("", q, "before confirms"), 0u);  // no confirms: no tag
  mq.confirm_select();
  std::uint64_t last = 0;
  for (int i = 0; i < 500; ++i) {
    const std::uint64_t tag = mq.publish_nowait("", q, std::to_string(i), {.persistent = true});
    EXPECT_EQ(tag, last + 1);
    last = tag;
  }
  EXPECT_TRUE(mq.wait_confirms(10s).empty());  // the broker took them all
  EXPECT_EQ(mq.unconfirmed(), 0u);
  EXPECT_EQ(mq.declare_queue(q, {.durable = true}).messages, 501u);
  mq.publish("", q, "sync");  // the waiting form still works after them
  EXPECT_EQ(mq.purge_queue(q), 502u);
}

TEST_F(AmqpTest, QosBoundsTheUnacknowledgedAndAnUnackedMessageIsRedeliveredWhenItsConnectionGoes) {
  Amqp producer = connect();
  const std::string q = producer.declare_queue("", {.exclusive = false, .auto_delete = false}).name;
  for (int i = 0; i < 5; ++i) producer.publish("", q, std::to_string(i));
  {
    Amqp greedy = connect();
    greedy.qos(2);
    (void)greedy.consume(q);
    ASSERT_TRUE(greedy.next_delivery(5s));
    ASSERT_TRUE(greedy.next_delivery(5s));
    EXPECT_FALSE(greedy.next_delivery(300ms));  // the prefetch of 2 is reached: no third
    // `greedy` goes without acking (a worker killed mid-task)
  }
  Amqp next = connect();
  (void)next.consume(q);
  int redelivered = 0;
  std::vector<std::string> bodies;
  for (int i = 0; i < 5; ++i) {
    std::optional<Delivery> d = next.next_delivery(5s);
    ASSERT_TRUE(d);
    redelivered += d->redelivered ? 1 : 0;
    bodies.push_back(d->body);
    next.ack(d->delivery_tag);
  }
  EXPECT_EQ(redelivered, 2);
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  producer.delete_queue(q);
}

// A nacked (requeued) message goes back to its place at the head of the queue, redelivered; a
// rejected one without requeue is gone (dead-lettered where the queue says so: not here).
TEST_F(AmqpTest, NackRequeuesAndRejectDrops) {
  Amqp mq = connect();
  const std::string q = mq.declare_queue("").name;
  mq.publish("", q, "again");
  mq.publish("", q, "drop");
  std::optional<Delivery> first = mq.get(q);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "again");
  EXPECT_FALSE(first->redelivered);
  mq.nack(first->delivery_tag, /*requeue=*/true);
  std::optional<Delivery> back = mq.get(q);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->body, "again");
  EXPECT_TRUE(back->redelivered);
  mq.ack(back->delivery_tag);
  std::optional<Delivery> second = mq.get(q);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "drop");
  mq.reject(second->delivery_tag, /*requeue=*/false);
  EXPECT_FALSE(mq.get(q));
}

TEST_F(AmqpTest, PropertiesAndHeadersRoundTrip) {
  Amqp mq = connect();
  const std::string q = mq.declare_queue("").name;
  MessageProperties p;
  p.persistent = true;
  p.correlation_id = "c-42";
  p.reply_to = "replies-of-client-7";
  p.message_id = "task-7";
  p.content_type = "application/cbor";
  p.type = "is_prime";
  p.headers = {{"x-retries", "3"}, {"x-error", "ValueError: bad"}};
  const std::string body("\0binary\xff", 8);
  mq.publish("", q, body, p);
  std::optional<Delivery> d = mq.get(q, /*no_ack=*/true);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->body, body);
  EXPECT_EQ(d->routing_key, q);
  EXPECT_TRUE(d->properties.persistent);
  EXPECT_EQ(d->properties.correlation_id, "c-42");
  EXPECT_EQ(d->properties.reply_to, "replies-of-client-7");
  EXPECT_EQ(d->properties.message_id, "task-7");
  EXPECT_EQ(d->properties.content_type, "application/cbor");
  EXPECT_EQ(d->properties.type, "is_prime");
  EXPECT_EQ(d->properties.headers, p.headers);
}

TEST_F(AmqpTest, APriorityQueueDeliversHigherPrioritiesFirst) {
  Amqp mq = connect();
  const std::string q = mq.declare_queue("", {.max_priority = 9}).name;
  mq.confirm_select();
  for (const int pr : {1, 9, 5, 0}) {
    mq.publish("", q, std::to_string(pr), {.priority = static_cast<std::uint8_t>(pr)});
  }
  std::vector<std::string> order;
  while (std::optional<Delivery> d = mq.get(q, true)) order.push_back(d->body);
  EXPECT_EQ(order, (std::vector<std::string>{"9", "5", "1", "0"}));
}

// The delayed retry of issue 18: a message with a per-message TTL in a queue nobody consumes,
// dead-lettered to the work queue when the TTL ends.
TEST_F(AmqpTest, APerMessageTtlAndADeadLetterHopDelayAMessage) {
  Amqp mq = connect();
  const std::string work = mq.declare_queue("").name;
  const std::string wait =
      mq.declare_queue("", {.dead_letter_routing_key = work, .dead_letter = true}).name;
  const auto sent = std::chrono::steady_clock::now();
  mq.publish("", wait, "later", {.expiration = 300ms});
  EXPECT_FALSE(mq.get(work, true));  // not yet
  (void)mq.consume(work, /*no_ack=*/true);
  std::optional<Delivery> d = mq.next_delivery(10s);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->body, "later");
  EXPECT_GE(std::chrono::steady_clock::now() - sent, 250ms);  // the TTL, not at once
}

TEST_F(AmqpTest, TheBrokersRefusalsAreAmqpErrorsWithTheirCodes) {
  Amqp mq = connect();
  (void)mq.declare_queue("shape", {.durable = true});
  try {
    (void)mq.declare_queue("shape", {.durable = false});  // other flags: PRECONDITION_FAILED
    FAIL() << "no error";
  } catch (const AmqpError& e) {
    EXPECT_EQ(e.code(), 406);
  }
  EXPECT_FALSE(mq.is_connected());  // the channel is gone with it
  mq.reconnect();
  try {
    (void)mq.consume("no-such-queue");
    FAIL() << "no error";
  } catch (const AmqpError& e) {
    EXPECT_EQ(e.code(), 404);
  }
  mq.reconnect();
  mq.delete_queue("shape");
  EXPECT_THROW((void)mq.declare_queue("x", {.max_priority = 256}), ValueError);
}

// The broker ending a consumer on its own (its queue deleted over another connection) is
// ConsumerCancelled from next_delivery(), instead of a consumer that waits forever; the connection
// stays open: its other consumer goes on, a delivery already received is still acknowledged (the
// broker ignores it), and the queue declared again is consumed on the same connection.
TEST_F(AmqpTest, AConsumerWhoseQueueIsDeletedIsToldAndCanConsumeAgain) {
  Amqp consumer = connect();
  Amqp admin = connect();
  const std::string q = consumer.declare_queue("doomed", {}).name;
  const std::string other = consumer.declare_queue("spared", {}).name;
  (void)consumer.purge_queue(q);
  (void)consumer.purge_queue(other);
  admin.publish("", q, "held");
  const std::string tag = consumer.consume(q);
  (void)consumer.consume(other);
  std::optional<Delivery> held = consumer.next_delivery(10s);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->body, "held");
  admin.delete_queue(q);
  try {
    (void)consumer.next_delivery(10s);
    FAIL() << "no ConsumerCancelled within 10 s";
  } catch (const dist::ConsumerCancelled& e) {
    EXPECT_EQ(e.consumer_tag(), tag);
    EXPECT_EQ(e.code(), 0);
    EXPECT_EQ(
        std::string(e.what()).rfind("ConsumerCancelled: the broker cancelled consumer " + tag, 0),
        0u)
        << e.what();
  }
  ASSERT_TRUE(consumer.is_connected());
  consumer.ack(held->delivery_tag);  // (its queue is gone: the broker ignores it)
  admin.publish("", other, "spared");
  std::optional<Delivery> d = consumer.next_delivery(10s);
  ASSERT_TRUE(d) << "the other consumer stopped";
  EXPECT_EQ(d->body, "spared");
  consumer.ack(d->delivery_tag);
  (void)consumer.declare_queue(q, {});
  (void)consumer.consume(q);
  admin.publish("", q, "after");
  d = consumer.next_delivery(10s);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->body, "after");
  consumer.ack(d->delivery_tag);
  EXPECT_FALSE(consumer.next_delivery(100ms));
  EXPECT_TRUE(consumer.is_connected());
  admin.delete_queue(q);
  admin.delete_queue(other);
}

TEST_F(AmqpTest, BadCredentialsAreRefused) {
  AmqpUrl url = AmqpUrl::parse(broker_->url());
  url.password = "wrong";
  EXPECT_THROW((void)Amqp::connect(url, 5s), ConnectionError);
}

// durable_queue_exists(mq, name): a durable queue named `name` exists (declaring it as a transient
// one is refused: 406 inequivalent arg 'durable'); a transient one declared instead is deleted
// again.
bool durable_queue_exists(Amqp& mq, const std::string& name) {
  try {
    (void)mq.declare_queue(name, {.durable = false, .auto_delete = true});
  } catch (const AmqpError&) {
    return true;
  }
  mq.delete_queue(name);
  return false;
}

// Durable queue, persistent messages, publisher confirms: what the broker acknowledged survives
// its crash (restart() kills it with SIGKILL) and restart. The queue must be on disk first:
// RabbitMQ 3.10 records a queue declaration asynchronously, and a SIGKILL within about a second
// of the declare lost the queue with its confirmed messages (1 run in 5-15 of this binary,
// docs/dist.md) — so the queue is first taken through a crash until it survives one, as a
// long-lived queue has. (Last: each restart takes seconds.)
TEST_F(AmqpTest, ConfirmedPersistentMessagesSurviveABrokerRestart) {
  bool durable = false;
  for (int crash = 0; crash < 5 && !durable; ++crash) {
    {
      Amqp mq = connect();
      (void)mq.declare_queue("durable-restart", {.durable = true});
    }
    broker_->restart();
    Amqp mq = connect();
    durable = durable_queue_exists(mq, "durable-restart");
  }
  ASSERT_TRUE(durable) << "the durable queue was lost by 5 crashes in a row";
  {
    Amqp mq = connect();
    (void)mq.purge_queue("durable-restart");
    mq.confirm_select();
    for (int i = 0; i < 50; ++i)
      mq.publish("", "durable-restart", std::to_string(i), {.persistent = true});
  }
  broker_->restart();
  Amqp mq = connect();
  EXPECT_EQ(mq.declare_queue("durable-restart", {.durable = true}).messages, 50u);
  int n = 0;
  while (std::optional<Delivery> d = mq.get("durable-restart", true)) {
    EXPECT_EQ(d->body, std::to_string(n));
    ++n;
  }
  EXPECT_EQ(n, 50);
}

}  // namespace
}  // namespace concur::testing
