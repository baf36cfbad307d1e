// concur/dist/amqp.hpp — an AMQP 0-9-1 connection (RabbitMQ) for concur::dist, over rabbitmq-c
// (Debian's librabbitmq, synchronous API). The transport the RabbitMQ executor (issue 18) is
// built on; usable alone.
//
//   dist::Amqp mq = dist::Amqp::connect(dist::AmqpUrl::parse("amqp://guest:guest@127.0.0.1/"));
//   mq.declare_queue("tasks", {.durable = true, .max_priority = 9});
//   mq.confirm_select();                                   // publisher confirms
//   mq.publish("", "tasks", body, {.persistent = true});   // returns once the broker has it
//   mq.qos(16);                                            // at most 16 unacknowledged
//   mq.consume("tasks");
//   if (auto d = mq.next_delivery(1s)) { ...; mq.ack(d->delivery_tag); }
//
// One Amqp is one TCP connection with one channel (channel 1). With confirms on, publish() waits
// for the broker's basic.ack of that message (basic.nack: AmqpError); deliveries of a consumer on
// the same channel that arrive meanwhile are kept, in order, for next_delivery().
// Errors: the broker closing the channel or the connection (404 NOT_FOUND, 406
// PRECONDITION_FAILED...) is AmqpError with the reply code and text, after which the Amqp is
// closed; the broker ending a consumer (its queue deleted) is ConsumerCancelled, an AmqpError
// that next_delivery() throws with the connection still open; a socket that cannot connect, times
// out or breaks is concur::ConnectionError (closed too). Bad URLs and arguments: ValueError.
// reconnect() opens it again (queues and consumers are not re-declared: the caller does that).
// Thread-safety: none — one connection per thread (rabbitmq-c's rule).
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

namespace concur::dist {

// AmqpError: the broker closed the channel or the connection; code() is the AMQP reply code
// (404, 406, 320 CONNECTION_FORCED...), what() "AmqpError: <code> <text>".
class AmqpError : public Error {
 public:
  AmqpError(int code, const std::string& text)
      : Error("AmqpError: " + std::to_string(code) + " " + text), code_(code), text_(text) {}
  [[nodiscard]] int code() const noexcept { return code_; }
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

 protected:
  // (a subclass's own what(): "<Name>: <text>")
  AmqpError(const std::string& what, int code, const std::string& text)
      : Error(what), code_(code), text_(text) {}

 private:
  int code_;
  std::string text_;
};

// ConsumerCancelled: the broker ended one of this connection's consumers on its own (basic.cancel:
// its queue was deleted, or the queue's node went away); consumer_tag() names it, code() is 0 (the
// method carries no reply code). Unlike the other AmqpErrors it leaves the connection open: its
// other consumers go on, and deliveries already received may still be acknowledged (RabbitMQ
// ignores acknowledgements for a deleted queue; that queue's messages are gone with it). To go on
// consuming, declare the queue again and consume() it. next_delivery() throws it, once per
// cancelled consumer, whichever call read the broker's notice. (Amqp asks for these notices when
// it logs in — RabbitMQ's consumer_cancel_notify capability; without it the broker drops the
// consumer silently and next_delivery() would wait forever.)
class ConsumerCancelled : public AmqpError {
 public:
  explicit ConsumerCancelled(std::string consumer_tag)
      : AmqpError("ConsumerCancelled: " + text_for(consumer_tag), 0, text_for(consumer_tag)),
        consumer_tag_(std::move(consumer_tag)) {}
  [[nodiscard]] const std::string& consumer_tag() const noexcept { return consumer_tag_; }

 private:
  static std::string text_for(const std::string& tag) {
    return "the broker cancelled consumer " + tag + " (its queue was deleted or is unavailable)";
  }
  std::string consumer_tag_;
};

// AmqpUrl: amqp://[user[:password]@]host[:port][/vhost] (port 5672, user and password "guest",
// vhost "/" by default; "%2f" in the vhost is "/"). parse() throws ValueError for anything else.
struct CONCUR_EXPORT AmqpUrl {
  std::string host = "127.0.0.1";
  int port = 5672;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";

  static AmqpUrl parse(std::string_view url);
  // str() is the URL without the password.
  [[nodiscard]] std::string str() const;
};

// QueueOptions: queue.declare's flags and the RabbitMQ arguments concur::dist uses.
struct QueueOptions {
  bool durable = false;                   // survives a broker restart (with persistent messages)
  bool exclusive = false;                 // this connection's only, deleted with it
  bool auto_delete = false;               // deleted when its last consumer goes
  int max_priority = 0;                   // x-max-priority (1-255): a priority queue; 0: none
  std::string dead_letter_exchange{};     // x-dead-letter-exchange ("" with the key: the default)
  std::string dead_letter_routing_key{};  // x-dead-letter-routing-key
  bool dead_letter = false;               // set the two above (even when empty)
  std::optional<std::chrono::milliseconds> message_ttl{};  // x-message-ttl
  std::optional<std::chrono::milliseconds> expires{};  // x-expires: deleted when unused this long
};

// QueueInfo: what queue.declare-ok said.
struct QueueInfo {
  std::string name{};  // the server's name for a queue declared with ""
  std::uint32_t messages = 0;
  std::uint32_t consumers = 0;
};

// MessageProperties: the basic properties concur::dist sets and reads.
struct MessageProperties {
  bool persistent = false;  // delivery-mode 2
  std::optional<std::uint8_t> priority{};
  std::string correlation_id{};
  std::string reply_to{};
  std::string message_id{};
  std::string content_type{};
  std::string type{};
  std::optional<std::chrono::milliseconds> expiration{};  // a per-message TTL
  std::map<std::string, std::string> headers{};           // string values only
};

// Delivery: one message given to a consumer (or by get()).
struct Delivery {
  std::uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange{};
  std::string routing_key{};
  std::string body{};
  MessageProperties properties{};
};

class CONCUR_EXPORT Amqp {
 public:
  // connect(url, timeout): TCP connect, login and channel 1 open, each bounded by `timeout`.
  // ConnectionError when the broker cannot be reached or the login is refused (the broker closes
  // the connection: ACCESS_REFUSED).
  static Amqp connect(const AmqpUrl& url,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

  Amqp() noexcept;  // not connected
  Amqp(Amqp&& other) noexcept;
  Amqp& operator=(Amqp&& other) noexcept;
  Amqp(const Amqp&) = delete;
  Amqp& operator=(const Amqp&) = delete;
  ~Amqp();

  // declare_queue(name, options): queue.declare ("" lets the server name it). AmqpError 406 when
  // the queue exists with other options.
  QueueInfo declare_queue(std::string_view name, const QueueOptions& options = {});
  // delete_queue(name) / purge_queue(name): queue.delete / queue.purge (the messages purged).
  void delete_queue(std::string_view name);
  std::uint32_t purge_queue(std::string_view name);
  // declare_exchange(name, type, durable): exchange.declare ("direct", "fanout", "topic"...).
  void declare_exchange(std::string_view name, std::string_view type, bool durable = false);
  // bind_queue(queue, exchange, routing_key): queue.bind.
  void bind_queue(std::string_view queue, std::string_view exchange, std::string_view routing_key);

  // confirm_select(): publisher confirms for the rest of the connection's life.
  void confirm_select();
  // publish(exchange, routing_key, body, properties, mandatory): basic.publish; with confirms on,
  // returns once the broker acknowledged the message (AmqpError on basic.nack, ConnectionError
  // when no confirm comes within the connection's timeout).
  void publish(std::string_view exchange, std::string_view routing_key, std::string_view body,
               const MessageProperties& properties = {}, bool mandatory = false);
  // publish_nowait(...): basic.publish without waiting for its confirm (confirms kept in flight,
  // as a fast producer needs: a confirm of a persistent message waits for the broker's fsync).
  // With confirms on, returns the message's delivery tag (1, 2, … on this connection), 0 without.
  std::uint64_t publish_nowait(std::string_view exchange, std::string_view routing_key,
                               std::string_view body, const MessageProperties& properties = {},
                               bool mandatory = false);
  // wait_confirms(timeout): waits until every message published so far is confirmed; returns the
  // tags the broker refused (basic.nack), empty when it took them all. ConnectionError when the
  // confirms do not come within `timeout`. Deliveries arriving meanwhile are kept.
  std::vector<std::uint64_t> wait_confirms(std::chrono::milliseconds timeout);
  // unconfirmed(): how many published messages await their confirm.
  [[nodiscard]] std::size_t unconfirmed() const noexcept { return unconfirmed_.size(); }
  // confirmed_through(tag): every message published up to `tag` has its confirm (read while
  // waiting for deliveries: next_delivery() settles the confirms it reads). take_nacked(): the
  // tags the broker refused since the last call (or wait_confirms()).
  [[nodiscard]] bool confirmed_through(std::uint64_t tag) const noexcept {
    return unconfirmed_.empty() || *unconfirmed_.begin() > tag;
  }
  std::vector<std::uint64_t> take_nacked() noexcept { return std::exchange(nacked_, {}); }

  // next_returned(): the next mandatory message the broker sent back (basic.return: no queue took
  // it), read while waiting for deliveries or confirms (its delivery_tag is 0); nullopt when none.
  std::optional<Delivery> next_returned();

  // qos(prefetch): basic.qos: at most `prefetch` unacknowledged deliveries to this channel.
  void qos(std::uint16_t prefetch);
  // consume(queue, no_ack, exclusive): basic.consume; the consumer tag.
  std::string consume(std::string_view queue, bool no_ack = false, bool exclusive = false);
  // cancel(consumer_tag): basic.cancel.
  void cancel(std::string_view consumer_tag);
  // next_delivery(timeout): the next message for this channel's consumers; nullopt when none
  // came within `timeout` (zero: only what has already arrived; else to the millisecond: it may
  // return up to one early). ConsumerCancelled (still connected) when the broker ended a consumer.
  std::optional<Delivery> next_delivery(std::chrono::milliseconds timeout);
  // get(queue, no_ack): basic.get: one message, or nullopt when the queue is empty.
  std::optional<Delivery> get(std::string_view queue, bool no_ack = false);
  // ack(tag, multiple) / nack(tag, requeue, multiple) / reject(tag, requeue): settle deliveries.
  void ack(std::uint64_t delivery_tag, bool multiple = false);
  void nack(std::uint64_t delivery_tag, bool requeue, bool multiple = false);
  void reject(std::uint64_t delivery_tag, bool requeue);

  // set_timeout(t): how long a reply, a confirm or a frame may take (default: connect's).
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  // reconnect(): connects again to the same URL (closing the old connection).
  void reconnect();
  // close(): channel.close and connection.close when connected, then the socket; never throws.
  void close() noexcept;
  [[nodiscard]] bool is_connected() const noexcept { return state_ != nullptr; }
  // fd(): the connection's socket, to poll for readability (-1 when not connected). Poll only
  // when buffered() is false: rabbitmq-c may have read ahead.
  [[nodiscard]] int fd() const noexcept;
  // buffered(): a delivery or frame was read already, so next_delivery(0) has something to
  // process without reading the socket.
  [[nodiscard]] bool buffered() const noexcept;
  [[nodiscard]] const AmqpUrl& url() const noexcept { return url_; }

 private:
  struct State;  // rabbitmq-c's connection state (opaque here)
  void open();
  // require_connection(): RuntimeError when not connected.
  void require_connection() const;
  // rpc_done(what): check() of the last RPC's reply (amqp_get_rpc_reply).
  void rpc_done(const char* what);
  // status_done(status, what): a rabbitmq-c status other than OK fails the connection.
  void status_done(int status, const char* what);
  // check(reply, what): throws for a reply that is not normal (closing the connection).
  void check(const void* reply, const char* what);
  // fail_connection(what, code): closes the connection and throws ConnectionError(code, what).
  [[noreturn]] void fail_connection(const std::string& what, int code = ECONNRESET);
  // read_event(timeout): reads what the channel has next: a delivery (queued in pending_) or a
  // publisher confirm (returned). nullopt on timeout or after a delivery.
  struct Confirm {
    bool ack = false;
    std::uint64_t tag = 0;
    bool multiple = false;
  };
  std::optional<Confirm> read_event(std::chrono::milliseconds timeout);
  // settle(c): the confirm's tags (all up to it when `multiple`) leave unconfirmed_; nacked ones
  // go to nacked_.
  void settle(const Confirm& c);

  State* state_ = nullptr;
  AmqpUrl url_;
  std::chrono::milliseconds timeout_{5000};
  bool confirms_ = false;
  std::uint64_t published_ = 0;          // the last delivery tag given (confirms on)
  std::set<std::uint64_t> unconfirmed_;  // published, confirm not yet read
  std::vector<std::uint64_t> nacked_;    // refused, not yet reported
  std::deque<Delivery> pending_;         // deliveries read while waiting for a confirm
  std::deque<Delivery> returned_;        // mandatory messages sent back (basic.return)
  std::deque<std::string> cancelled_;    // consumers the broker ended, not yet reported
};

}  // namespace concur::dist
