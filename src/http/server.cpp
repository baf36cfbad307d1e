// src/http/server.cpp — Server and Service (concur/http/server.hpp): one coroutine per
// connection on aio streams, Boost.Beast's request parser fed from the reader, the App's routes,
// the drain. docs/internals/http.md narrates serve_connection() and serve_one() step by step.
#include "concur/http/server.hpp"

#include <fmt/format.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <csignal>
#include <ctime>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>

#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/sync.hpp"
#include "concur/aio/threads.hpp"

namespace concur::http {

namespace bhttp = boost::beast::http;
using aio::Clock;

namespace {

// kReadChunk: how much one read asks of the stream.
constexpr std::ptrdiff_t kReadChunk = 16 * 1024;
// kLingerTime / kLingerBytes: after a response that closes the connection, how long and how much
// of what the client still sends is read and dropped before the socket closes (so that a client
// that was still sending does not get a reset that destroys the response in its buffers).
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr std::size_t kLingerBytes = 1024 * 1024;

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// http_date(): the Date header's value now (IMF-fixdate), recomputed once a second per thread.
std::string_view http_date() {
  thread_local std::time_t last = -1;
  thread_local std::string text;
  const std::time_t now = std::time(nullptr);
  if (now != last) {
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    text = fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday,
                       kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    last = now;
  }
  return text;
}

// plain_target(t): an origin-form target of unreserved and sub-delimiter characters, '/', ':',
// '@' and one '?' at most — nothing to decode or to refuse (RFC 3986's pchar and query, less
// '%'). Others go through Boost.URL.
bool plain_target(std::string_view t) noexcept {
  if (t.empty() || t.front() != '/') return false;
  bool query = false;
  for (const char c : t) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
    switch (c) {
      case '-':
      case '.':
      case '_':
      case '~':
      case '!':
      case '$':
      case '&':
      case '\'':
      case '(':
      case ')':
      case '*':
      case '+':
      case ',':
      case ';':
      case '=':
      case ':':
      case '@':
      case '/':
        continue;
      case '?':
        if (query) return false;
        query = true;
        continue;
      default:
        return false;
    }
  }
  return true;
}

// Got: how a read_more() ended.
enum class Got : std::uint8_t { kBytes, kEof, kTimeout, kError };

// read_more(reader, buf, deadline): appends what the client sends next to buf.
aio::Task<Got> read_more(aio::StreamReader& reader, std::string& buf, Clock::time_point deadline) {
  std::string more;
  Got failed = Got::kBytes;
  try {
    more = co_await aio::timeout_at(deadline, reader.read(kReadChunk));
  } catch (const TimeoutError&) {
    failed = Got::kTimeout;
  } catch (const OSError&) {  // reset by the peer, or another socket error
    failed = Got::kError;
  }
  if (failed != Got::kBytes) co_return failed;
  if (more.empty()) co_return Got::kEof;
  if (buf.empty()) {
    buf = std::move(more);  // (the usual case: the next request starts in an empty buffer)
  } else {
    buf.append(more);
  }
  co_return Got::kBytes;
}

aio::Task<void> wait_event(aio::Event& e) { co_await e.wait(); }

aio::Task<Response> await_future(concur::Future<Response> f) { co_return co_await std::move(f); }

// serialize(res, version, keep, head): the response's bytes — what Beast's serializer writes for
// the same message (status line with Beast's reason phrase; the handler's fields in order, less
// Content-Length, Transfer-Encoding and Connection, which are the server's to say; then Server
// and Date unless the handler set them, Content-Length unless the status has no body, and the
// Connection field Beast's keep_alive() would add), written straight into one string: building a
// Beast message first cost an allocation per field on every request.
std::string serialize(Response& res, unsigned version, bool keep, bool head) {
  const std::string_view reason =
      bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(res.status)));
  const bool bodiless = res.status < 200 || res.status == 204 || res.status == 304;
  std::size_t size = 64 + reason.size() + (head || bodiless ? 0 : res.body.size());
  for (const auto& [name, value] : res.headers.fields()) size += name.size() + value.size() + 4;
  std::string out;
  out.reserve(size + 96);
  const auto field = [&out](std::string_view name, std::string_view value) {
    out.append(name).append(": ").append(value).append("\r\n");
  };
  // "HTTP/1.1 200 ": the status line, without a format string to parse on every response.
  const auto number = [&out](auto n) {
    char digits[24];
    const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), n);
    out.append(digits, end);
  };
  out.append("HTTP/");
  number(version / 10);
  out.push_back('.');
  number(version % 10);
  out.push_back(' ');
  number(res.status);
  out.push_back(' ');
  out.append(reason).append("\r\n");
  bool server = false;
  bool date = false;
  for (const auto& [name, value] : res.headers.fields()) {
    const bhttp::field f = bhttp::string_to_field(name);
    if (f == bhttp::field::content_length || f == bhttp::field::transfer_encoding ||
        f == bhttp::field::connection) {
      continue;  // the server's to say
    }
    server = server || f == bhttp::field::server;
    date = date || f == bhttp::field::date;
    field(name, value);
  }
  if (!server) field("Server", "concur");
  if (!date) field("Date", http_date());
  if (!bodiless) {
    char digits[24];
    const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), res.body.size());
    field("Content-Length", std::string_view(digits, static_cast<std::size_t>(end - digits)));
  }
  if (version >= 11 && !keep) field("Connection", "close");
  if (version < 11 && keep) field("Connection", "keep-alive");
  out.append("\r\n");
  if (!bodiless && !head) out.append(res.body);
  return out;
}

}  // namespace

// ---- access log ---------------------------------------------------------------------------------

std::string format_common(const AccessRecord& r) {
  const std::time_t t = std::chrono::system_clock::to_time_t(r.time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return fmt::format("{} - - [{:02}/{}/{}:{:02}:{:02}:{:02} +0000] \"{} {} HTTP/{}.{}\" {} {}",
                     r.remote_addr.empty() ? "-" : r.remote_addr, tm.tm_mday, kMonths[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, r.method, r.target,
                     r.version / 10, r.version % 10, r.status, r.bytes);
}

std::string format_json(const AccessRecord& r) {
  const auto since = r.time.time_since_epoch();
  const std::time_t t = std::chrono::system_clock::to_time_t(r.time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
  nlohmann::json j = {
      {"remote_addr", r.remote_addr},
      {"time", fmt::format("{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms)},
      {"method", r.method},
      {"target", r.target},
      {"version", fmt::format("HTTP/{}.{}", r.version / 10, r.version % 10)},
      {"status", r.status},
      {"bytes", r.bytes},
      {"seconds", r.seconds},
      {"route", r.route},
      {"user_agent", r.user_agent}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---- the server -------------------------------------------------------------------------------

namespace detail {

struct ConnEntry;

// ServerCore: one Server's state, on its loop's thread only.
struct ServerCore {
  App* app = nullptr;
  ServerOptions opts;
  aio::SslContext ssl;  // opts.ssl's copy
  aio::Server listener;
  bool draining = false;
  Clock::time_point drain_deadline;
  ConnEntry* head = nullptr;  // the live connections
  std::size_t count = 0;
  aio::Event all_closed;  // set while draining once count is 0
  aio::Event closed;      // set once shutdown() has ended
};

// ConnEntry: a live connection in its server's list; idle while it waits for a request.
struct ConnEntry {
  explicit ConnEntry(ServerCore& c) : core(c), task(aio::current_task()) {
    next = core.head;
    if (next != nullptr) next->prev = this;
    core.head = this;
    ++core.count;
    core.app->metrics().connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~ConnEntry() {
    if (prev != nullptr) {
      prev->next = next;
    } else {
      core.head = next;
    }
    if (next != nullptr) next->prev = prev;
    --core.count;
    core.app->metrics().connections.fetch_sub(1, std::memory_order_relaxed);
    if (core.draining && core.count == 0) core.all_closed.set();
  }
  ConnEntry(const ConnEntry&) = delete;
  ConnEntry& operator=(const ConnEntry&) = delete;

  ServerCore& core;
  aio::TaskRef task;
  ConnEntry* prev = nullptr;
  ConnEntry* next = nullptr;
  bool idle = true;
};

namespace {

// InFlight: one request counted in the App's in-flight gauge for its scope.
class InFlight {
 public:
  explicit InFlight(Metrics& m) noexcept : m_(&m) {}
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() { m_->in_flight.fetch_sub(1, std::memory_order_relaxed); }

 private:
  Metrics* m_;
};

// dispatch(core, req): the response to a parsed request: routing, backpressure, the
// handler (on the loop, the thread pool or the process pool) under handler_timeout. (req is
// serve_one()'s, which awaits this; a thread-pool handler takes a copy of the pointer.)
aio::Task<Response> dispatch(ServerCore& core, const std::shared_ptr<Request>& req) {
  App& app = *core.app;
  Metrics& metrics = app.metrics();
  Match match = app.match(req->method, req->path);
  switch (match.kind) {
    case Match::Kind::kNotFound:
      co_return Response::error(404, "The requested URL was not found on the server.");
    case Match::Kind::kRedirect: {
      std::string location = match.location;
      if (!req->query.empty()) location.append("?").append(req->query);
      co_return Response::redirect(location, 308);
    }
    case Match::Kind::kMethodNotAllowed: {
      Response r = Response::error(
          405, "The method " + req->method + " is not allowed for the requested URL.");
      r.headers.set("Allow", match.allow);
      co_return r;
    }
    case Match::Kind::kOptions: {
      Response r(204, {}, "text/plain");
      r.headers.erase("Content-Type");
      r.headers.set("Allow", match.allow);
      co_return r;
    }
    case Match::Kind::kFound:
      break;
  }
  req->route = match.route->pattern;
  req->params = std::move(match.params);

  // The built-in /metrics and /healthz answer even at the limit (they are what an operator and a
  // load balancer look at then).
  const std::int64_t limit = match.route->builtin
                                 ? std::numeric_limits<std::int64_t>::max()
                                 : static_cast<std::int64_t>(core.opts.max_in_flight);
  if (metrics.in_flight.fetch_add(1, std::memory_order_relaxed) >= limit) {
    metrics.in_flight.fetch_sub(1, std::memory_order_relaxed);
    metrics.rejected(Metrics::Reject::kServerFull);
    co_return Response::error(503, "The server is at its limit of requests in flight.");
  }
  InFlight counted(metrics);
  const detail::Handler& h = *match.handler;
  std::exception_ptr error;
  Response res;
  try {
    switch (h.kind) {
      case detail::Handler::Kind::kLoop:
        res = co_await aio::timeout(core.opts.handler_timeout, h.loop(*req));
        break;
      case detail::Handler::Kind::kThread:
      case detail::Handler::Kind::kProcess: {
        if (!app.try_reserve(h.kind)) {
          res = Response::error(503, h.kind == detail::Handler::Kind::kThread
                                         ? "The thread pool is at its limit of pending tasks."
                                         : "The process pool is at its limit of pending tasks.");
          break;
        }
        concur::Future<Response> f;
        try {
          if (h.kind == detail::Handler::Kind::kThread) {
            f = app.thread_pool().submit([&h, req] { return h.blocking(*req); });
          } else {
            f = h.process(app.process_pool(), *req);
          }
        } catch (...) {
          app.release(h.kind);
          throw;
        }
        f.add_done_callback(
            [&app, kind = h.kind](const concur::Future<Response>& /*f*/) { app.release(kind); });
        res = co_await aio::timeout(core.opts.handler_timeout, await_future(std::move(f)));
        break;
      }
    }
  } catch (const CancelledError&) {
    throw;
  } catch (...) {
    error = std::current_exception();
  }
  if (error) res = http::detail::error_response(error);
  co_return res;
}

// Parsed: how serve_one()'s reading of a request ended.
struct Parsed {
  int fail = 0;  // an error status to answer (and close), or 0
  std::string message;
  bool gone = false;  // the client went away mid-request: nothing to answer
};

// linger(reader, writer): half-closes, then drops what the client still sends for a moment.
aio::Task<void> linger(aio::StreamReader& reader, aio::StreamWriter& writer) {
  if (!writer.can_write_eof() || writer.is_closing()) co_return;
  writer.write_eof();
  const auto deadline = Clock::now() + kLingerTime;
  std::size_t dropped = 0;
  std::string sink;
  while (dropped < kLingerBytes) {
    sink.clear();
    if (co_await read_more(reader, sink, deadline) != Got::kBytes) break;
    dropped += sink.size();
  }
}

// After: what serve_one() leaves the connection to do.
enum class After : std::uint8_t { kKeep, kClose, kLinger };

// serve_one(core, reader, writer, buf, remote, finished): reads one request (its first bytes are
// in buf), answers it, sets `finished` to when its response was written; whether the connection
// stays open for another, closes, or closes after a linger (the client may still be sending: a
// request refused before its body was read, pipelined requests behind one answered with Connection:
// close).
aio::Task<After> serve_one(ServerCore& core, aio::StreamReader& reader, aio::StreamWriter& writer,
                           std::string& buf, const std::string& remote,
                           Clock::time_point& finished) {
  const ServerOptions& o = core.opts;
  const auto started = Clock::now();
  const auto wall = o.access_log != AccessLog::kNone ? std::chrono::system_clock::now()
                                                     : std::chrono::system_clock::time_point{};
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(o.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(o.max_body_bytes);
  parser.eager(true);

  // 1. Parse what arrives until the request is complete, within the header and body deadlines.
  Parsed p;
  Clock::time_point body_deadline{};
  bool sent_continue = false;
  while (true) {
    if (!parser.is_header_done()) {
      // Beast takes the header whole: until then buf holds it from its start, and a request
      // line longer than the target's limit is a 414 (before the header's own limit, 431).
      const std::size_t line_end = buf.find('\n');
      if ((line_end == std::string::npos ? buf.size() : line_end) > o.max_url_bytes + 32) {
        p.fail = 414;
        p.message =
            "The request target is longer than " + std::to_string(o.max_url_bytes) + " bytes.";
        break;
      }
    }
    if (!buf.empty()) {
      boost::system::error_code ec;
      const std::size_t n = parser.put(boost::asio::buffer(buf.data(), buf.size()), ec);
      buf.erase(0, n);
      if (ec == bhttp::error::need_more) ec = {};
      if (ec == bhttp::error::header_limit) {
        p.fail = 431;
        p.message = "The request's headers are larger than " + std::to_string(o.max_header_bytes) +
                    " bytes.";
        break;
      }
      if (ec == bhttp::error::body_limit) {
        p.fail = 413;
        p.message =
            "The request's body is larger than " + std::to_string(o.max_body_bytes) + " bytes.";
        break;
      }
      if (ec) {
        p.fail = 400;
        p.message = "Malformed request: " + ec.message() + ".";
        break;
      }
      if (parser.is_done()) break;
      if (n > 0 && !buf.empty()) continue;
    }
    if (!parser.is_header_done()) {
      if (buf.size() > o.max_header_bytes) {
        p.fail = 431;
        p.message = "The request's headers are larger than " + std::to_string(o.max_header_bytes) +
                    " bytes.";
        break;
      }
    } else {
      if (body_deadline == Clock::time_point{}) body_deadline = Clock::now() + o.body_timeout;
      const auto& msg = parser.get();
      if (!sent_continue && boost::beast::iequals(msg[bhttp::field::expect], "100-continue")) {
        sent_continue = true;
        writer.write("HTTP/1.1 100 Continue\r\n\r\n");
      }
    }
    const auto deadline = parser.is_header_done() ? body_deadline : started + o.header_timeout;
    const Got got = co_await read_more(reader, buf, deadline);
    if (got == Got::kTimeout) {
      p.fail = 408;
      p.message = parser.is_header_done() ? "The request's body did not arrive in time."
                                          : "The request's headers did not arrive in time.";
      break;
    }
    if (got != Got::kBytes) {
      p.gone = true;
      break;
    }
  }
  if (p.gone) co_return After::kClose;

  // 2. The request as a handler sees it.
  auto req = std::make_shared<Request>();
  if (p.fail == 0) {
    bhttp::request<bhttp::string_body> msg = parser.release();
    req->method = std::string(msg.method_string());
    req->target = std::string(msg.target());
    req->version = msg.version();
    for (const auto& field : msg) req->headers.add(field.name_string(), field.value());
    req->body = std::move(msg.body());
    if (req->target.size() > o.max_url_bytes) {
      p.fail = 414;
      p.message =
          "The request target is longer than " + std::to_string(o.max_url_bytes) + " bytes.";
    } else if (req->version >= 11 && !req->headers.contains("Host")) {
      p.fail = 400;
      p.message = "An HTTP/1.1 request needs a Host header.";
    } else if (plain_target(req->target)) {
      // (No percent-encoding and only characters every path and query may hold: the path and
      // query are the target's two halves, as Boost.URL would give them.)
      const std::size_t q = req->target.find('?');
      req->path = req->target.substr(0, q);
      if (q != std::string::npos) req->query = req->target.substr(q + 1);
    } else {
      const auto url = boost::urls::parse_origin_form(req->target);
      if (!url) {
        p.fail = 400;
        p.message = "The request target is not a path: '" + req->target + "'.";
      } else {
        req->path = url->path();
        req->query = std::string(url->encoded_query());
      }
    }
  }
  req->remote_addr = remote;

  // 3. The response: an error of the request itself, or dispatch()'s.
  bool head = p.fail == 0 && req->method == "HEAD";
  Response res;
  if (p.fail != 0) {
    res = Response::error(p.fail, p.message);
  } else {
    res = co_await dispatch(core, req);
  }
  if (res.status == 503 && !res.headers.contains("Retry-After")) {
    res.headers.set("Retry-After", std::to_string(o.retry_after));
  }

  // 4. Write it; keep the connection unless the request failed, the client or a drain says no.
  const bool keep = p.fail == 0 && req->keep_alive() && !core.draining;
  const std::size_t body_bytes = res.body.size();
  const int status = res.status;
  const unsigned version = p.fail == 0 ? req->version : 11;
  writer.write(serialize(res, version, keep, head));
  bool written = true;
  // (The usual case: the kernel took the whole response and the connection is sound — drain()
  // would return at once, so neither it nor its write_timeout timer is needed.)
  if (writer.is_closing() || writer.get_write_buffer_size() > 0 || reader.exception() != nullptr) {
    try {
      co_await aio::timeout(o.write_timeout, writer.drain());
    } catch (const TimeoutError&) {
      written = false;
    } catch (const OSError&) {
      written = false;
    }
  }
  if (!written) writer.abort();

  // 5. Count it and log it.
  finished = Clock::now();
  const double seconds = std::chrono::duration<double>(finished - started).count();
  core.app->metrics().observe(req->route, req->method, status, seconds);
  if (o.access_log != AccessLog::kNone) {
    AccessRecord rec{req->remote_addr, wall,
                     req->method,      req->target,
                     version,          status,
                     body_bytes,       seconds,
                     req->route,       std::string(req->header("User-Agent"))};
    std::string line = o.access_log == AccessLog::kCommon ? format_common(rec) : format_json(rec);
    line.push_back('\n');
    std::FILE* out = o.access_log_file != nullptr ? o.access_log_file : stdout;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fflush(out);
  }
  if (!written) co_return After::kClose;
  if (keep) co_return After::kKeep;
  const bool may_send_more =
      p.fail != 0 || !buf.empty() || reader.buffered() > 0 || (core.draining && req->keep_alive());
  co_return may_send_more ? After::kLinger : After::kClose;
}

// serve_connection(core, reader, writer): one connection's requests, one after another.
aio::Task<void> serve_connection(std::weak_ptr<ServerCore> weak, aio::StreamReader reader,
                                 aio::StreamWriter writer) {
  const std::shared_ptr<ServerCore> core = weak.lock();
  if (!core) co_return;  // the server is gone
  ConnEntry entry(*core);
  const ServerOptions& o = core->opts;
  const std::string remote = writer.peername().host;
  std::string buf;
  bool first = true;
  Clock::time_point finished{};  // when the last response was written
  while (true) {
    // 1. The next request's first bytes: within header_timeout on a new connection, idle_timeout
    //    between requests (from the last response). Idle, a drain closes the connection (by
    //    cancelling this task).
    if (buf.empty()) {
      if (core->draining) co_return;
      entry.idle = true;
      const Got got = co_await read_more(
          reader, buf, first ? Clock::now() + o.header_timeout : finished + o.idle_timeout);
      entry.idle = false;
      if (got != Got::kBytes) co_return;  // closed, reset or idle too long: no request begun
    }
    first = false;
    // 2. One request and its response (pipelined requests wait in buf, answered in order).
    const After after = co_await serve_one(*core, reader, writer, buf, remote, finished);
    if (after == After::kLinger) co_await linger(reader, writer);
    if (after != After::kKeep) co_return;
  }
}

}  // namespace

}  // namespace detail

aio::Task<Server> Server::start(App& app, std::string host, std::uint16_t port,
                                ServerOptions options) {
  if (options.max_url_bytes == 0 || options.max_header_bytes == 0 || options.max_in_flight == 0) {
    throw ValueError(
        "http::ServerOptions: max_url_bytes, max_header_bytes and max_in_flight must "
        "be at least 1");
  }
  using std::chrono::milliseconds;
  if (options.header_timeout <= milliseconds(0) || options.body_timeout <= milliseconds(0) ||
      options.idle_timeout <= milliseconds(0) || options.handler_timeout <= milliseconds(0) ||
      options.write_timeout <= milliseconds(0)) {
    throw ValueError("http::ServerOptions: every timeout must be positive");
  }
  auto core = std::make_shared<detail::ServerCore>();
  core->app = &app;
  core->opts = options;
  if (options.ssl != nullptr) core->ssl = *options.ssl;
  core->opts.ssl = nullptr;
  app.metrics().max_in_flight.store(static_cast<std::int64_t>(options.max_in_flight));
  // The listener's handler holds the core weakly: the core holds the listener.
  const std::weak_ptr<detail::ServerCore> weak = core;
  aio::ClientConnected handler = [weak](aio::StreamReader r, aio::StreamWriter w) {
    return detail::serve_connection(weak, std::move(r), std::move(w));
  };
  aio::ServerOptions so;
  so.backlog = options.backlog;
  so.reuse_port = options.reuse_port;
  so.ssl = core->ssl.valid() ? &core->ssl : nullptr;
  core->listener = co_await aio::start_server(handler, std::move(host), port, so);
  co_return Server(std::move(core));
}

std::uint16_t Server::port() const {
  if (!core_) throw InvalidStateError("http::Server: an empty handle");
  return core_->listener.port();
}

bool Server::is_serving() const {
  return core_ && !core_->draining && core_->listener.is_serving();
}

std::size_t Server::active_connections() const { return core_ ? core_->count : 0; }

namespace detail {
namespace {

// shutdown_server(core, grace): Server::shutdown's coroutine (it holds the core, not the handle).
aio::Task<void> shutdown_server(std::shared_ptr<ServerCore> core, std::chrono::milliseconds grace) {
  ServerCore& c = *core;
  const auto deadline = Clock::now() + std::max(grace, std::chrono::milliseconds(0));
  if (c.draining) {
    // 0. A drain is under way: only its deadline may come closer.
    c.drain_deadline = std::min(c.drain_deadline, deadline);
    co_await c.closed.wait();
    co_return;
  }
  // 1. Stop accepting; /healthz says draining; idle connections close now.
  c.draining = true;
  c.drain_deadline = deadline;
  c.app->draining.fetch_add(1);
  c.listener.close();
  for (ConnEntry* e = c.head; e != nullptr; e = e->next) {
    if (e->idle) (void)e->task.cancel();
  }
  if (c.count == 0) c.all_closed.set();
  // 2. Requests in flight finish (their responses close their connections), until the deadline;
  //    checked every 50 ms too, as a later shutdown() may bring the deadline closer.
  while (!c.all_closed.is_set() && Clock::now() < c.drain_deadline) {
    const auto step = std::min(c.drain_deadline, Clock::now() + std::chrono::milliseconds(50));
    try {
      co_await aio::timeout_at(step, wait_event(c.all_closed));
    } catch (const TimeoutError&) {
      // the step ended: look at the deadline again
    }
  }
  // 3. What is left at the deadline is cut: sockets aborted, handlers cancelled.
  if (!c.all_closed.is_set()) {
    c.listener.abort_clients();
    for (ConnEntry* e = c.head; e != nullptr; e = e->next) (void)e->task.cancel();
  }
  co_await c.listener.wait_closed();
  c.app->draining.fetch_sub(1);
  c.closed.set();
}

aio::Task<void> wait_server(std::shared_ptr<ServerCore> core) { co_await core->closed.wait(); }

}  // namespace
}  // namespace detail

aio::Task<void> Server::shutdown(std::chrono::milliseconds grace) {
  if (!core_) throw InvalidStateError("http::Server: an empty handle");
  return detail::shutdown_server(core_, grace);
}

aio::Task<void> Server::wait_closed() {
  if (!core_) throw InvalidStateError("http::Server: an empty handle");
  return detail::wait_server(core_);
}

// ---- Service ----------------------------------------------------------------------------------

struct Service::Impl {
  std::vector<Server> servers;              // servers[i]: touched on loop i only
  std::vector<concur::Future<void>> mains;  // loop i's wait for its server's end
  int signals = 0;                          // loop 0 only
  // Declared last, so destroyed first: the loops stop (their tasks cancelled, threads joined)
  // before the handles above go.
  std::unique_ptr<aio::LoopGroup> loops;
};

Service::Service(App& app, ServiceOptions options) : app_(&app), options_(std::move(options)) {
  if (options_.threads == 0) throw ValueError("http::ServiceOptions: threads must be at least 1");
}

Service::~Service() {
  if (!impl_) return;
  try {
    shutdown(std::chrono::milliseconds(0));
    wait();
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
  impl_.reset();
}

void Service::start() {
  if (impl_) throw RuntimeError("http::Service: started twice");
  auto impl = std::make_unique<Impl>();
  const std::size_t n = options_.threads;
  impl->loops = std::make_unique<aio::LoopGroup>(n);
  impl->servers.resize(n);
  Impl* raw = impl.get();
  impl_ = std::move(impl);  // (reset below when a server fails to start)
  ServerOptions so = options_.server;
  if (n > 1) so.reuse_port = true;
  // Loop 0 first (port 0: the kernel picks one), then the others on that port.
  std::uint16_t port = options_.port;
  for (std::size_t i = 0; i < n; ++i) {
    auto start_on = [](Impl* im, std::size_t k, App* app, std::string host, std::uint16_t p,
                       ServerOptions opts) -> aio::Task<std::uint16_t> {
      Server s = co_await Server::start(*app, std::move(host), p, opts);
      im->servers[k] = s;
      co_return s.port();
    };
    try {
      port = aio::run_coroutine_threadsafe(start_on(raw, i, app_, options_.host, port, so),
                                           raw->loops->loop(i))
                 .result();
    } catch (...) {
      impl_.reset();  // the loops stop, the servers started go with them
      throw;
    }
  }
  port_ = port;
  for (std::size_t i = 0; i < n; ++i) {
    auto serve_on = [](Impl* im, std::size_t k) -> aio::Task<void> {
      aio::Task<void> closed = im->servers[k].wait_closed();
      co_await std::move(closed);
      im->servers[k] = Server();
    };
    raw->mains.push_back(aio::run_coroutine_threadsafe(serve_on(raw, i), raw->loops->loop(i)));
  }
  if (options_.handle_signals) {
    // Installed before start() returns: a signal from then on drains.
    auto install = [](Service* self, Impl* im) -> aio::Task<void> {
      aio::Loop& loop = aio::get_running_loop();
      for (const int sig : {SIGTERM, SIGINT}) {
        loop.add_signal_handler(sig, [self, im] {
          const int count = ++im->signals;
          self->shutdown(count == 1 ? self->options_.drain_timeout : std::chrono::milliseconds(0));
        });
      }
      co_return;
    };
    aio::run_coroutine_threadsafe(install(this, raw), raw->loops->loop(0)).result();
  }
}

void Service::shutdown(std::chrono::milliseconds grace) {
  if (!impl_) return;
  for (std::size_t i = 0; i < impl_->servers.size(); ++i) {
    Impl* im = impl_.get();
    try {
      impl_->loops->loop(i).call_soon_threadsafe([im, i, grace] {
        if (!im->servers[i].valid()) return;  // not started, or over
        (void)aio::get_running_loop().create_task(im->servers[i].shutdown(grace));
      });
    } catch (const RuntimeError&) {
      // that loop is closed: its server is gone already
    }
  }
}

void Service::wait() {
  if (!impl_) return;
  for (concur::Future<void>& f : impl_->mains) f.result();
}

void Service::run() {
  start();
  wait();
}

}  // namespace concur::http
