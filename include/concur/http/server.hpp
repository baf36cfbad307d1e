// concur/http/server.hpp — serving an App over HTTP/1.1: Server (one aio loop) and Service (an
// App on n loops in their own threads, SIGTERM/SIGINT drain, what `concur serve` runs).
//
//   http::Service service(app, {.host = "127.0.0.1", .port = 8000, .threads = 2});
//   service.run();   // until SIGTERM/SIGINT (drains), or service.shutdown() from another thread
//
// A connection serves requests one after another (keep-alive; pipelined requests are answered in
// order). Parsing is Boost.Beast's. Limits answer and close: a request line longer than
// max_url_bytes 414, headers past max_header_bytes 431, a body past max_body_bytes 413 (seen from
// Content-Length before the body is read), a malformed request 400, a header not complete within
// header_timeout or a body not within body_timeout 408. An idle keep-alive connection is closed
// after idle_timeout; a handler that runs past handler_timeout gets 504 (a coroutine is cancelled;
// a pool task runs on, still counted as pending); a client that stops reading the response is
// dropped after write_timeout. So a slow client cannot hold a connection forever.
// Backpressure: past max_in_flight requests being handled (counted over every server of the
// App), or past a pool's pending limit (AppOptions), a request is answered 503 with Retry-After
// at once. The built-in /metrics and /healthz are exempt from max_in_flight.
// Errors as JSON: every 4xx/5xx the server makes has the body of Response::error(). An HTTPError
// from a handler gives its status and message; a dead process-pool worker (BrokenExecutor) or a
// task's RemoteError 500 with its message; any other exception 500 "Internal Server Error" (the
// exception goes to concur's excepthook, never to the client).
// Graceful drain: shutdown(grace) stops accepting, closes idle connections, lets requests in
// flight finish (their responses say Connection: close), and aborts what is left at the grace
// deadline. Thread-safety: a Server is used on its loop's thread only; a Service from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/http/app.hpp"

namespace concur::http {

// AccessLog: one line per answered request: none, Common Log Format, or one JSON object.
enum class AccessLog : std::uint8_t { kNone, kCommon, kJson };

// AccessRecord: what an access-log line says.
struct AccessRecord {
  std::string remote_addr;
  std::chrono::system_clock::time_point time;  // when the request's first byte arrived
  std::string method;
  std::string target;
  unsigned version = 11;
  int status = 0;
  std::size_t bytes = 0;  // the response body's length
  double seconds = 0;     // from the first byte to the response written
  std::string route;      // the matched pattern ("" when none)
  std::string user_agent;
};
// format_common(r): `127.0.0.1 - - [05/Dec/2026:22:41:17 +0000] "GET / HTTP/1.1" 200 57`.
CONCUR_EXPORT std::string format_common(const AccessRecord& r);
// format_json(r): {"remote_addr": ..., "time": "2026-12-05T22:41:17.123Z", "method": ..., ...}.
CONCUR_EXPORT std::string format_json(const AccessRecord& r);

// ServerOptions: limits and timeouts. Trivially destructible on purpose (as aio::ServerOptions):
// g++ 12 destroys a braced aggregate written inside a co_await expression twice.
struct ServerOptions {
  std::size_t max_url_bytes = 8 * 1024;               // the request target; beyond: 414
  std::size_t max_header_bytes = 16 * 1024;           // request line and headers; beyond: 431
  std::size_t max_body_bytes = 1024 * 1024;           // beyond: 413
  std::chrono::milliseconds header_timeout{10'000};   // first byte to blank line: 408
  std::chrono::milliseconds body_timeout{30'000};     // the body: 408
  std::chrono::milliseconds idle_timeout{75'000};     // keep-alive between requests
  std::chrono::milliseconds handler_timeout{30'000};  // 504
  std::chrono::milliseconds write_timeout{30'000};    // a client that does not read
  std::size_t max_in_flight = 1024;  // requests being handled, over the App's servers: 503
  int retry_after = 1;               // 503's Retry-After, seconds
  int backlog = 1024;                // listen() queue
  bool reuse_port = false;           // SO_REUSEPORT (a Service sets it for several threads)
  AccessLog access_log = AccessLog::kNone;
  std::FILE* access_log_file = nullptr;  // null: stdout
  const aio::SslContext* ssl = nullptr;  // TLS when set (copied at start())
};
static_assert(std::is_trivially_destructible_v<ServerOptions>, "see ServerOptions' comment");

namespace detail {
struct ServerCore;  // src/http/server.cpp
}

// Server: an App served on the running loop; a copyable handle.
class CONCUR_EXPORT Server {
 public:
  Server() noexcept = default;
  // start(app, host, port, options): binds (port 0: the kernel picks one; host as
  // aio::start_server, default loopback) and serves. OSError when the address is taken;
  // ValueError for a zero limit; RuntimeError outside a running loop.
  static aio::Task<Server> start(App& app, std::string host = "127.0.0.1", std::uint16_t port = 0,
                                 ServerOptions options = {});
  // port(): the port it listens on.
  [[nodiscard]] std::uint16_t port() const;
  // shutdown(grace): the graceful drain (see the header comment); returns when every connection
  // is closed. A second call while one drains shortens the deadline to its own if earlier.
  aio::Task<void> shutdown(std::chrono::milliseconds grace = std::chrono::seconds(30));
  // wait_closed(): suspends until the server has shut down and every connection is closed.
  aio::Task<void> wait_closed();
  // is_serving(): accepting connections (false once shutdown() began).
  [[nodiscard]] bool is_serving() const;
  // active_connections(): connections open now.
  [[nodiscard]] std::size_t active_connections() const;
  // valid(): not an empty handle.
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }

 private:
  explicit Server(std::shared_ptr<detail::ServerCore> core) noexcept : core_(std::move(core)) {}
  std::shared_ptr<detail::ServerCore> core_;
};

// ServiceOptions: a Service's address, threads and signal handling.
struct ServiceOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t threads = 1;  // event loops, each in its own thread, sharing the port
  ServerOptions server{};
  // handle_signals: SIGTERM / SIGINT drain (grace: drain_timeout); a second one stops at once.
  bool handle_signals = false;
  std::chrono::milliseconds drain_timeout{30'000};
};

// Service: an App on `threads` loops in their own threads (each its own Server on the same port,
// SO_REUSEPORT, so the kernel spreads connections). Thread-safe.
class CONCUR_EXPORT Service {
 public:
  Service(App& app, ServiceOptions options);
  // ~Service(): shutdown(0) and wait().
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // start(): starts the loops and their servers; returns once every one listens. OSError when
  // the address is taken (nothing is left running then); RuntimeError when started twice.
  void start();
  // port(): the port (valid after start()).
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // shutdown(grace): from any thread (not from a handler of this service): begins the drain of
  // every server; returns at once. Idempotent; a later call with a shorter grace shortens it.
  void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(30));
  // wait(): blocks until every server has shut down and the loops have stopped.
  void wait();
  // run(): start() then wait().
  void run();

 private:
  struct Impl;
  App* app_;
  ServiceOptions options_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace concur::http
