// concur::dist::Amqp over rabbitmq-c's synchronous API: amqp_socket_open_noblock and amqp_login
// to connect, the amqp_* RPCs bounded by amqp_set_rpc_timeout, amqp_consume_message for
// deliveries and amqp_simple_wait_frame_noblock for the frames between them (publisher confirms,
// a closing channel).
#include "concur/dist/amqp.hpp"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace concur::dist {

struct Amqp::State {
  amqp_connection_state_t conn = nullptr;
  pid_t pid = ::getpid();  // the process that connected
};

namespace {

constexpr amqp_channel_t kChannel = 1;

timeval to_timeval(std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  return tv;
}

amqp_bytes_t bytes(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());  // rabbitmq-c only reads it
  return b;
}

std::string str(amqp_bytes_t b) {
  return b.len == 0 ? std::string() : std::string(static_cast<const char*>(b.bytes), b.len);
}

[[noreturn]] void bad_url(std::string_view url, const char* why) {
  throw ValueError("invalid AMQP URL '" + std::string(url) + "': " + why);
}

std::string percent_decode(std::string_view url, std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int v = 0;
    if (i + 2 >= s.size()) bad_url(url, "a cut %-escape");
    const auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || end != s.data() + i + 3) bad_url(url, "a bad %-escape");
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

// properties_of(p): rabbitmq-c's basic properties as ours.
MessageProperties properties_of(const amqp_basic_properties_t& p) {
  MessageProperties out;
  if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) out.persistent = p.delivery_mode == 2;
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) out.priority = p.priority;
  if (p._flags & AMQP_BASIC_CORRELATION_ID_FLAG) out.correlation_id = str(p.correlation_id);
  if (p._flags & AMQP_BASIC_REPLY_TO_FLAG) out.reply_to = str(p.reply_to);
  if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) out.message_id = str(p.message_id);
  if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) out.content_type = str(p.content_type);
  if (p._flags & AMQP_BASIC_TYPE_FLAG) out.type = str(p.type);
  if (p._flags & AMQP_BASIC_EXPIRATION_FLAG) {
    const std::string ms = str(p.expiration);
    long long v = 0;
    const auto [end, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), v);
    if (ec == std::errc() && end == ms.data() + ms.size()) {
      out.expiration = std::chrono::milliseconds(v);
    }
  }
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < p.headers.num_entries; ++i) {
      const amqp_table_entry_t& e = p.headers.entries[i];
      if (e.value.kind == AMQP_FIELD_KIND_UTF8 || e.value.kind == AMQP_FIELD_KIND_BYTES) {
        out.headers[str(e.key)] = str(e.value.value.bytes);
      }
    }
  }
  return out;
}

}  // namespace

// ---- AmqpUrl ----

AmqpUrl AmqpUrl::parse(std::string_view url) {
  constexpr std::string_view kScheme = "amqp://";
  if (url.substr(0, kScheme.size()) != kScheme) bad_url(url, "it must start with amqp://");
  AmqpUrl out;
  std::string_view rest = url.substr(kScheme.size());
  std::string_view vhost;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    vhost = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!vhost.empty()) out.vhost = percent_decode(url, vhost);
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    out.user = percent_decode(url, userinfo.substr(0, colon));
    out.password =
        colon == std::string_view::npos ? "" : percent_decode(url, userinfo.substr(colon + 1));
    if (out.user.empty()) bad_url(url, "an empty user");
  }
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) bad_url(url, "an unclosed [IPv6 address]");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') bad_url(url, "junk after the [IPv6 address]");
      port = rest.substr(close + 2);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) bad_url(url, "no host");
  out.host = std::string(host);
  if (!port.empty() || rest.find(':') != std::string_view::npos) {
    int v = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || v <= 0 ||
        v > 65535) {
      bad_url(url, "a bad port");
    }
    out.port = v;
  }
  return out;
}

std::string AmqpUrl::str() const {
  std::string vhost_part = vhost == "/" ? "" : vhost;
  std::string out = "amqp://" + user + "@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port) + "/" + vhost_part;
}

// ---- Amqp ----

Amqp::Amqp() noexcept = default;

Amqp::Amqp(Amqp&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)),
      url_(std::move(other.url_)),
      timeout_(other.timeout_),
      confirms_(other.confirms_),
      published_(other.published_),
      unconfirmed_(std::move(other.unconfirmed_)),
      nacked_(std::move(other.nacked_)),
      pending_(std::move(other.pending_)),
      returned_(std::move(other.returned_)),
      cancelled_(std::move(other.cancelled_)) {}

Amqp& Amqp::operator=(Amqp&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::exchange(other.state_, nullptr);
    url_ = std::move(other.url_);
    timeout_ = other.timeout_;
    confirms_ = other.confirms_;
    published_ = other.published_;
    unconfirmed_ = std::move(other.unconfirmed_);
    nacked_ = std::move(other.nacked_);
    pending_ = std::move(other.pending_);
    returned_ = std::move(other.returned_);
    cancelled_ = std::move(other.cancelled_);
  }
  return *this;
}

Amqp::~Amqp() { close(); }

Amqp Amqp::connect(const AmqpUrl& url, std::chrono::milliseconds timeout) {
  if (timeout <= std::chrono::milliseconds(0))
    throw ValueError("Amqp::connect: timeout must be > 0");
  Amqp out;
  out.url_ = url;
  out.timeout_ = timeout;
  out.open();
  return out;
}

void Amqp::reconnect() {
  close();
  open();
}

void Amqp::open() {
  auto* state = new State;
  state->conn = amqp_new_connection();
  state_ = state;
  amqp_socket_t* socket = amqp_tcp_socket_new(state_->conn);
  if (socket == nullptr) fail_connection("cannot create a socket");
  timeval tv = to_timeval(timeout_);
  const int status = amqp_socket_open_noblock(socket, url_.host.c_str(), url_.port, &tv);
  if (status != AMQP_STATUS_OK) {
    fail_connection("cannot connect to " + url_.str() + ": " + amqp_error_string2(status),
                    status == AMQP_STATUS_TIMEOUT ? ETIMEDOUT : ECONNREFUSED);
  }
  (void)amqp_set_rpc_timeout(state_->conn, &tv);
  // Client capabilities: consumer_cancel_notify, so that a consumer the broker ends (its queue
  // deleted) is told (basic.cancel: ConsumerCancelled) instead of waiting forever. rabbitmq-c
  // merges this table into its own capabilities (authentication_failure_close).
  amqp_table_entry_t cancel_notify{};
  cancel_notify.key = amqp_cstring_bytes("consumer_cancel_notify");
  cancel_notify.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  cancel_notify.value.value.boolean = 1;
  amqp_table_entry_t capabilities{};
  capabilities.key = amqp_cstring_bytes("capabilities");
  capabilities.value.kind = AMQP_FIELD_KIND_TABLE;
  capabilities.value.value.table = amqp_table_t{1, &cancel_notify};
  const amqp_table_t client_properties{1, &capabilities};
  const amqp_rpc_reply_t login =
      amqp_login_with_properties(state_->conn, url_.vhost.c_str(), 0, 131072, 0, &client_properties,
                                 AMQP_SASL_METHOD_PLAIN, url_.user.c_str(), url_.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    fail_connection("login to " + url_.str() + " refused or failed", ECONNREFUSED);
  }
  amqp_channel_open(state_->conn, kChannel);
  rpc_done("channel.open");
  confirms_ = false;
  published_ = 0;
  unconfirmed_.clear();
  nacked_.clear();
  pending_.clear();
  returned_.clear();
  cancelled_.clear();
}

void Amqp::close() noexcept {
  if (state_ == nullptr) return;
  // Polite close when the connection still works; a broken one just goes. A process forked from
  // the one that connected closes only its copy of the socket: a Close on the wire would end
  // its parent's connection (its unacknowledged tasks requeued), and the Close-Ok it waits for
  // could be one of the parent's frames.
  if (state_->pid == ::getpid()) {
    (void)amqp_channel_close(state_->conn, kChannel, AMQP_REPLY_SUCCESS);
    (void)amqp_connection_close(state_->conn, AMQP_REPLY_SUCCESS);
  }
  (void)amqp_destroy_connection(state_->conn);
  delete state_;
  state_ = nullptr;
}

void Amqp::require_connection() const {
  if (state_ == nullptr) throw RuntimeError("Amqp: not connected");
}

void Amqp::rpc_done(const char* what) {
  const amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_->conn);
  check(&reply, what);
}

void Amqp::status_done(int status, const char* what) {
  if (status != AMQP_STATUS_OK)
    fail_connection(std::string(what) + ": " + amqp_error_string2(status));
}

void Amqp::fail_connection(const std::string& what, int code) {
  if (state_ != nullptr) {
    (void)amqp_destroy_connection(state_->conn);
    delete state_;
    state_ = nullptr;
  }
  throw ConnectionError(code, what);
}

void Amqp::check(const void* reply_ptr, const char* what) {
  const auto& reply = *static_cast<const amqp_rpc_reply_t*>(reply_ptr);
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return;
    case AMQP_RESPONSE_NONE:
      fail_connection(std::string(what) + ": no reply (the connection broke)");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      fail_connection(std::string(what) + ": " + amqp_error_string2(reply.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      break;
  }
  int code = 0;
  std::string text;
  if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
    code = m->reply_code;
    text = str(m->reply_text);
    amqp_channel_close_ok_t ok{};
    (void)amqp_send_method(state_->conn, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
  } else if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
    code = m->reply_code;
    text = str(m->reply_text);
    amqp_connection_close_ok_t ok{};
    (void)amqp_send_method(state_->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  }
  // The channel (or the connection) is gone: this Amqp is closed; the caller may reconnect().
  (void)amqp_destroy_connection(state_->conn);
  delete state_;
  state_ = nullptr;
  throw AmqpError(code, std::string(what) + ": " + text);
}

QueueInfo Amqp::declare_queue(std::string_view name, const QueueOptions& options) {
  require_connection();
  if (options.max_priority < 0 || options.max_priority > 255) {
    throw ValueError("declare_queue: max_priority must be 0-255");
  }
  std::vector<amqp_table_entry_t> entries;
  auto add_int = [&entries](const char* key, std::int64_t v) {
    amqp_table_entry_t e{};
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = v;
    entries.push_back(e);
  };
  auto add_str = [&entries](const char* key, const std::string& v) {
    amqp_table_entry_t e{};
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = bytes(v);
    entries.push_back(e);
  };
  if (options.max_priority > 0) add_int("x-max-priority", options.max_priority);
  if (options.dead_letter || !options.dead_letter_exchange.empty()) {
    add_str("x-dead-letter-exchange", options.dead_letter_exchange);
    if (!options.dead_letter_routing_key.empty()) {
      add_str("x-dead-letter-routing-key", options.dead_letter_routing_key);
    }
  }
  if (options.message_ttl) add_int("x-message-ttl", options.message_ttl->count());
  if (options.expires) {
    if (options.expires->count() <= 0) throw ValueError("declare_queue: expires must be > 0");
    add_int("x-expires", options.expires->count());
  }
  amqp_table_t args{static_cast<int>(entries.size()), entries.data()};
  const amqp_queue_declare_ok_t* ok = amqp_queue_declare(
      state_->conn, kChannel, bytes(name), 0, options.durable ? 1 : 0, options.exclusive ? 1 : 0,
      options.auto_delete ? 1 : 0, entries.empty() ? amqp_empty_table : args);
  rpc_done("queue.declare");
  QueueInfo info{str(ok->queue), ok->message_count, ok->consumer_count};
  amqp_maybe_release_buffers(state_->conn);
  return info;
}

void Amqp::delete_queue(std::string_view name) {
  require_connection();
  (void)amqp_queue_delete(state_->conn, kChannel, bytes(name), 0, 0);
  rpc_done("queue.delete");
}

std::uint32_t Amqp::purge_queue(std::string_view name) {
  require_connection();
  const amqp_queue_purge_ok_t* ok = amqp_queue_purge(state_->conn, kChannel, bytes(name));
  rpc_done("queue.purge");
  return ok->message_count;
}

void Amqp::declare_exchange(std::string_view name, std::string_view type, bool durable) {
  require_connection();
  (void)amqp_exchange_declare(state_->conn, kChannel, bytes(name), bytes(type), 0, durable ? 1 : 0,
                              0, 0, amqp_empty_table);
  rpc_done("exchange.declare");
}

void Amqp::bind_queue(std::string_view queue, std::string_view exchange,
                      std::string_view routing_key) {
  require_connection();
  (void)amqp_queue_bind(state_->conn, kChannel, bytes(queue), bytes(exchange), bytes(routing_key),
                        amqp_empty_table);
  rpc_done("queue.bind");
}

void Amqp::confirm_select() {
  require_connection();
  if (confirms_) return;
  (void)amqp_confirm_select(state_->conn, kChannel);
  rpc_done("confirm.select");
  confirms_ = true;
}

void Amqp::publish(std::string_view exchange, std::string_view routing_key, std::string_view body,
                   const MessageProperties& properties, bool mandatory) {
  const std::uint64_t mine = publish_nowait(exchange, routing_key, body, properties, mandatory);
  if (!confirms_) return;
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (unconfirmed_.count(mine) != 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds(0)) {
      fail_connection("basic.publish: no confirm from the broker within the timeout", ETIMEDOUT);
    }
    if (const std::optional<Confirm> c = read_event(left)) settle(*c);
  }
  if (const auto it = std::find(nacked_.begin(), nacked_.end(), mine); it != nacked_.end()) {
    nacked_.erase(it);
    throw AmqpError(0, "basic.nack: the broker did not take the message");
  }
}

std::vector<std::uint64_t> Amqp::wait_confirms(std::chrono::milliseconds timeout) {
  require_connection();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!unconfirmed_.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds(0)) {
      fail_connection("wait_confirms: " + std::to_string(unconfirmed_.size()) +
                          " confirms did not come within the timeout",
                      ETIMEDOUT);
    }
    if (const std::optional<Confirm> c = read_event(left)) settle(*c);
  }
  return std::exchange(nacked_, {});
}

void Amqp::settle(const Confirm& c) {
  auto first = unconfirmed_.begin();
  auto last = unconfirmed_.upper_bound(c.tag);  // multiple: every tag up to c.tag
  if (!c.multiple) {
    first = unconfirmed_.find(c.tag);
    if (first == unconfirmed_.end()) return;  // settled already
    last = std::next(first);
  }
  if (!c.ack) nacked_.insert(nacked_.end(), first, last);
  unconfirmed_.erase(first, last);
}

std::uint64_t Amqp::publish_nowait(std::string_view exchange, std::string_view routing_key,
                                   std::string_view body, const MessageProperties& properties,
                                   bool mandatory) {
  require_connection();
  amqp_basic_properties_t p{};
  std::string expiration;
  std::vector<amqp_table_entry_t> headers;
  if (properties.persistent) {
    p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.delivery_mode = 2;
  }
  if (properties.priority) {
    p._flags |= AMQP_BASIC_PRIORITY_FLAG;
    p.priority = *properties.priority;
  }
  auto set = [&p](amqp_flags_t flag, amqp_bytes_t& field, const std::string& value) {
    if (value.empty()) return;
    p._flags |= flag;
    field = bytes(value);
  };
  set(AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id, properties.correlation_id);
  set(AMQP_BASIC_REPLY_TO_FLAG, p.reply_to, properties.reply_to);
  set(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id, properties.message_id);
  set(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type, properties.content_type);
  set(AMQP_BASIC_TYPE_FLAG, p.type, properties.type);
  if (properties.expiration) {
    if (properties.expiration->count() < 0) throw ValueError("publish: a negative expiration");
    expiration = std::to_string(properties.expiration->count());
    set(AMQP_BASIC_EXPIRATION_FLAG, p.expiration, expiration);
  }
  if (!properties.headers.empty()) {
    for (const auto& [key, value] : properties.headers) {
      amqp_table_entry_t e{};
      e.key = bytes(key);
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = bytes(value);
      headers.push_back(e);
    }
    p._flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers = amqp_table_t{static_cast<int>(headers.size()), headers.data()};
  }
  const int status = amqp_basic_publish(state_->conn, kChannel, bytes(exchange), bytes(routing_key),
                                        mandatory ? 1 : 0, 0, &p, bytes(body));
  status_done(status, "basic.publish");
  if (!confirms_) return 0;
  unconfirmed_.insert(++published_);
  return published_;
}

void Amqp::qos(std::uint16_t prefetch) {
  require_connection();
  (void)amqp_basic_qos(state_->conn, kChannel, 0, prefetch, 0);
  rpc_done("basic.qos");
}

std::string Amqp::consume(std::string_view queue, bool no_ack, bool exclusive) {
  require_connection();
  const amqp_basic_consume_ok_t* ok =
      amqp_basic_consume(state_->conn, kChannel, bytes(queue), amqp_empty_bytes, 0, no_ack ? 1 : 0,
                         exclusive ? 1 : 0, amqp_empty_table);
  rpc_done("basic.consume");
  return str(ok->consumer_tag);
}

void Amqp::cancel(std::string_view consumer_tag) {
  require_connection();
  (void)amqp_basic_cancel(state_->conn, kChannel, bytes(consumer_tag));
  rpc_done("basic.cancel");
}

std::optional<Amqp::Confirm> Amqp::read_event(std::chrono::milliseconds timeout) {
  amqp_maybe_release_buffers(state_->conn);
  amqp_envelope_t envelope{};
  timeval tv = to_timeval(timeout);
  const amqp_rpc_reply_t r = amqp_consume_message(state_->conn, &envelope, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    Delivery d;
    d.delivery_tag = envelope.delivery_tag;
    d.redelivered = envelope.redelivered != 0;
    d.exchange = str(envelope.exchange);
    d.routing_key = str(envelope.routing_key);
    d.body = str(envelope.message.body);
    d.properties = properties_of(envelope.message.properties);
    amqp_destroy_envelope(&envelope);
    pending_.push_back(std::move(d));
    return std::nullopt;
  }
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
    return std::nullopt;
  }
  if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION ||
      r.library_error != AMQP_STATUS_UNEXPECTED_STATE) {
    check(&r, "reading from the broker");
    return std::nullopt;
  }
  // Not a delivery: a method frame (a confirm, a returned message, a closing channel).
  amqp_frame_t frame{};
  const int status = amqp_simple_wait_frame_noblock(state_->conn, &frame, &tv);
  if (status == AMQP_STATUS_TIMEOUT) return std::nullopt;
  if (status != AMQP_STATUS_OK) {
    fail_connection(std::string("reading from the broker: ") + amqp_error_string2(status));
  }
  if (frame.frame_type != AMQP_FRAME_METHOD) return std::nullopt;
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      const auto* m = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
      return Confirm{true, m->delivery_tag, m->multiple != 0};
    }
    case AMQP_BASIC_NACK_METHOD: {
      const auto* m = static_cast<const amqp_basic_nack_t*>(frame.payload.method.decoded);
      return Confirm{false, m->delivery_tag, m->multiple != 0};
    }
    case AMQP_BASIC_RETURN_METHOD: {  // an unroutable mandatory message: kept for returned()
      const auto* m = static_cast<const amqp_basic_return_t*>(frame.payload.method.decoded);
      Delivery d;
      d.exchange = str(m->exchange);
      d.routing_key = str(m->routing_key);
      amqp_message_t message{};
      const amqp_rpc_reply_t rr = amqp_read_message(state_->conn, frame.channel, &message, 0);
      check(&rr, "reading a returned message");
      d.body = str(message.body);
      d.properties = properties_of(message.properties);
      amqp_destroy_message(&message);
      returned_.push_back(std::move(d));
      return std::nullopt;
    }
    case AMQP_BASIC_CANCEL_METHOD: {  // the broker ended a consumer (consumer_cancel_notify):
      // kept for next_delivery() to report; the channel stays open (its other consumers and the
      // deliveries not yet acknowledged are untouched)
      const auto* m = static_cast<const amqp_basic_cancel_t*>(frame.payload.method.decoded);
      cancelled_.push_back(str(m->consumer_tag));
      return std::nullopt;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD: {
      amqp_rpc_reply_t closing{};
      closing.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
      closing.reply = frame.payload.method;
      check(&closing, "the broker closed the channel");
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

std::optional<Delivery> Amqp::next_delivery(std::chrono::milliseconds timeout) {
  require_connection();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool waited = false;
  for (;;) {
    if (!cancelled_.empty()) {  // read now or during an earlier call (a publish, a confirm wait)
      std::string tag = std::move(cancelled_.front());
      cancelled_.pop_front();
      throw ConsumerCancelled(std::move(tag));
    }
    if (!pending_.empty()) {
      Delivery d = std::move(pending_.front());
      pending_.pop_front();
      return d;
    }
    const auto left = std::max(std::chrono::milliseconds(0),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   deadline - std::chrono::steady_clock::now()));
    // rabbitmq-c rounds its wait down to whole milliseconds, so a wait ends up to a millisecond
    // early: less than one left after a wait is the deadline (reading again with no wait until it
    // passed spun for up to a millisecond at the end of every timed call).
    if (waited && left == std::chrono::milliseconds(0)) return std::nullopt;
    waited = true;
    if (const std::optional<Confirm> c = read_event(left)) settle(*c);
    if (pending_.empty() && cancelled_.empty() && std::chrono::steady_clock::now() >= deadline)
      return std::nullopt;
  }
}

std::optional<Delivery> Amqp::get(std::string_view queue, bool no_ack) {
  require_connection();
  amqp_maybe_release_buffers(state_->conn);
  const amqp_rpc_reply_t r = amqp_basic_get(state_->conn, kChannel, bytes(queue), no_ack ? 1 : 0);
  check(&r, "basic.get");
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
  const auto* ok = static_cast<const amqp_basic_get_ok_t*>(r.reply.decoded);
  Delivery d;
  d.delivery_tag = ok->delivery_tag;
  d.redelivered = ok->redelivered != 0;
  d.exchange = str(ok->exchange);
  d.routing_key = str(ok->routing_key);
  amqp_message_t message{};
  const amqp_rpc_reply_t rr = amqp_read_message(state_->conn, kChannel, &message, 0);
  check(&rr, "basic.get (its message)");
  d.body = str(message.body);
  d.properties = properties_of(message.properties);
  amqp_destroy_message(&message);
  return d;
}

void Amqp::ack(std::uint64_t delivery_tag, bool multiple) {
  require_connection();
  const int status = amqp_basic_ack(state_->conn, kChannel, delivery_tag, multiple ? 1 : 0);
  status_done(status, "basic.ack");
}

void Amqp::nack(std::uint64_t delivery_tag, bool requeue, bool multiple) {
  require_connection();
  const int status =
      amqp_basic_nack(state_->conn, kChannel, delivery_tag, multiple ? 1 : 0, requeue ? 1 : 0);
  status_done(status, "basic.nack");
}

void Amqp::reject(std::uint64_t delivery_tag, bool requeue) {
  require_connection();
  const int status = amqp_basic_reject(state_->conn, kChannel, delivery_tag, requeue ? 1 : 0);
  status_done(status, "basic.reject");
}

int Amqp::fd() const noexcept { return state_ == nullptr ? -1 : amqp_get_sockfd(state_->conn); }

bool Amqp::buffered() const noexcept {
  if (!pending_.empty()) return true;
  if (state_ == nullptr) return false;
  return amqp_data_in_buffer(state_->conn) != 0 || amqp_frames_enqueued(state_->conn) != 0;
}

std::optional<Delivery> Amqp::next_returned() {
  if (returned_.empty()) return std::nullopt;
  Delivery d = std::move(returned_.front());
  returned_.pop_front();
  return d;
}

}  // namespace concur::dist
