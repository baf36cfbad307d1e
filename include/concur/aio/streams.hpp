// concur/aio/streams.hpp — asyncio's streams: TCP (and TLS) connections, and Unix stream sockets,
// as a StreamReader / StreamWriter pair. open_connection() / open_unix_connection() connect;
// start_server() / start_unix_server() run handler(reader, writer) as one task per accepted
// connection; Server closes, waits and serves forever as asyncio.Server does.
// Bytes: std::string out, std::string_view in. Reads, drain(), connects and waits are suspension
// points: cancel() raises CancelledError there and no received byte is lost. write() never blocks;
// drain() bounds what a writer buffers (64 KiB high / 16 KiB low water, as asyncio).
// Errors: errors.hpp's ConnectionError family, SSLError, IncompleteReadError, LimitOverrunError.
// Thread-safety: a stream or server is used on its loop's thread only (another loop: RuntimeError).
// Lifetime: handles share their stream or server; the last one to go closes it (buffered bytes are
// still sent). Handles may outlive their loop: its sockets close with it (writes are then
// discarded, waits raise RuntimeError).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

namespace concur::aio {

// kDefaultStreamLimit: a StreamReader's default limit (asyncio's _DEFAULT_LIMIT, 64 KiB).
inline constexpr std::size_t kDefaultStreamLimit = 64 * 1024;
// kDefaultHighWater / kDefaultLowWater: a StreamWriter's default write-buffer limits (asyncio's
// transports: drain() waits above 64 KiB until the buffer is back at 16 KiB).
inline constexpr std::size_t kDefaultHighWater = 64 * 1024;
inline constexpr std::size_t kDefaultLowWater = 16 * 1024;

namespace detail {
struct StreamCore;      // src/aio/streams.cpp: what a connection's handles share
struct ServerCore;      // src/aio/streams.cpp: what a server's handles share
struct SslContextCore;  // src/aio/streams.cpp: an OpenSSL context
struct StreamAccess;
}  // namespace detail

// SslPurpose: what a default SslContext is for (Python's ssl.Purpose): kServerAuth authenticates
// servers (a client's context), kClientAuth clients (a server's context).
enum class SslPurpose { kServerAuth, kClientAuth };

// SslContext: TLS settings (Python's ssl.SSLContext), a copyable handle to one OpenSSL context
// shared by the connections that use it. A default-constructed SslContext is empty: plain TCP.
// Configure it before the first connection uses it (the setters are not synchronized with
// handshakes in progress). Every failure is an SSLError.
class CONCUR_EXPORT SslContext {
 public:
  SslContext() noexcept = default;
  // create_default_context(purpose): Python's ssl.create_default_context(): TLS 1.2 or later.
  // kServerAuth: verifies the server's certificate against the system's CAs and checks its host
  // name. kClientAuth: a server's context (no client certificate asked; load_cert_chain() it).
  static SslContext create_default_context(SslPurpose purpose = SslPurpose::kServerAuth);
  // load_cert_chain(certfile, keyfile): this side's certificate chain and private key (PEM
  // files); load_cert_chain_pem(cert, key) takes the PEM text itself.
  void load_cert_chain(const std::string& certfile, const std::string& keyfile);
  void load_cert_chain_pem(std::string_view cert_pem, std::string_view key_pem);
  // load_verify_locations(cafile) / load_verify_pem(pem): also trust these CA certificates
  // (Python's load_verify_locations(cafile=...) / (cadata=...)).
  void load_verify_locations(const std::string& cafile);
  void load_verify_pem(std::string_view ca_pem);
  // set_verify(required): verify the peer's certificate (CERT_REQUIRED; for a server: require a
  // client certificate) or not (CERT_NONE). ValueError when turning it off while check_hostname
  // is on (as Python).
  void set_verify(bool required);
  [[nodiscard]] bool verify() const;
  // set_check_hostname(on): a client checks that the server's certificate names the host it
  // connects to (ConnectOptions::server_hostname, else the host). Turning it on turns set_verify
  // on.
  void set_check_hostname(bool on);
  [[nodiscard]] bool check_hostname() const;
  // valid(): not empty.
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }

 private:
  friend struct detail::StreamAccess;
  std::shared_ptr<detail::SslContextCore> core_;
};

// Endpoint: a socket address: an IPv4/IPv6 host and port; or, with is_unix, an AF_UNIX address:
// host is the path (a name in Linux's abstract namespace starts with '\0'; "" for an unnamed
// socket, as Python's '') and port is 0. to_string() is "host:port", "[host]:port" for IPv6, the
// path for AF_UNIX (Python's get_extra_info("peername") of a Unix stream).
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  bool ipv6 = false;
  bool is_unix = false;
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// StreamReader: the receiving half of a connection (asyncio.StreamReader). A default-constructed
// reader has no socket: feed_data() / feed_eof() fill it (as in Python, for parsers and tests).
// At most one task may wait for data at a time (RuntimeError otherwise). Reads return what is
// buffered first; the socket is read only when a read needs more, so a reader that does not read
// throttles its peer through the kernel's window. A connection waiting for data holds a 4 KiB
// read buffer (16 KiB with TLS). Cancelling a waiting read withdraws its socket read (TCP) or
// leaves it to complete (TLS); either way the bytes already received join the buffer.
class CONCUR_EXPORT StreamReader {
 public:
  // StreamReader(limit): a reader without a socket; limit bounds readline()/readuntil().
  // ValueError when limit is 0.
  explicit StreamReader(std::size_t limit = kDefaultStreamLimit);

  // read(n): up to n bytes; waits until at least one byte is buffered or EOF ("" at EOF; "" for
  // n == 0). n < 0: reads until EOF and returns everything. Raises the connection's error
  // (ConnectionResetError...) or the exception set by set_exception().
  Task<std::string> read(std::ptrdiff_t n = -1);
  // readline(): one line, "\n" included; at EOF the partial last line (or "" when nothing is
  // left). A line longer than limit(): ValueError (as Python); the line, or the whole buffer
  // when no "\n" was found, is discarded.
  Task<std::string> readline();
  // readexactly(n): exactly n bytes; IncompleteReadError (partial() = what was left, consumed)
  // when EOF comes first.
  Task<std::string> readexactly(std::size_t n);
  // readuntil(separator): the bytes up to and including separator. LimitOverrunError when no
  // separator appears within limit() bytes, or it appears past limit() (the bytes stay
  // buffered; consumed() says how far it looked); IncompleteReadError at EOF (partial() = the
  // buffer, consumed). ValueError for an empty separator.
  Task<std::string> readuntil(std::string separator = "\n");

  // at_eof(): EOF was seen and the buffer is empty.
  [[nodiscard]] bool at_eof() const;
  // buffered(): bytes received and not yet read (not in Python; for tests and metrics).
  [[nodiscard]] std::size_t buffered() const;
  // limit(): the bound of readline()/readuntil().
  [[nodiscard]] std::size_t limit() const;
  // exception(): the error reads raise (nullptr when none).
  [[nodiscard]] std::exception_ptr exception() const;

  // feed_data(bytes) / feed_eof() / set_exception(e): what the transport calls in Python; a
  // waiting read wakes. feed_data after feed_eof is a RuntimeError (Python asserts).
  void feed_data(std::string_view bytes);
  void feed_eof();
  void set_exception(std::exception_ptr e);

 private:
  friend struct detail::StreamAccess;
  explicit StreamReader(std::shared_ptr<detail::StreamCore> core) noexcept;
  std::shared_ptr<detail::StreamCore> core_;
};

// StreamWriter: the sending half of a connection (asyncio.StreamWriter, without a transport
// object: its queries are members). A default-constructed writer is empty (InvalidStateError on
// use).
class CONCUR_EXPORT StreamWriter {
 public:
  StreamWriter() noexcept = default;

  // write(bytes): sends what the socket takes at once and buffers the rest; never blocks, never
  // waits. Follow it with co_await drain(). Bytes written after close() or after the connection
  // was lost are discarded (drain() raises the error, as Python). RuntimeError after write_eof().
  void write(std::string_view bytes);
  // writelines(lines): write() of the concatenation.
  void writelines(std::initializer_list<std::string_view> lines);
  template <std::ranges::input_range R>
  requires std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>
  void writelines(const R& lines) {
    std::string all;
    for (auto&& line : lines) all += std::string_view(line);
    write(all);
  }
  // drain(): returns at once while the buffer is at or below the high-water mark; above it,
  // suspends until the buffer fell to the low-water mark. Raises the connection's error
  // (BrokenPipeError, ConnectionResetError...), or ConnectionResetError("Connection lost") when
  // the stream was closed already; a clean close while it waits ends the wait normally
  // (asyncio). Any number of tasks may drain at once.
  Task<void> drain();
  // write_eof(): half-close: once the buffer is sent, the peer reads EOF; reading goes on.
  // No effect when closing or already done. RuntimeError on a TLS stream.
  void write_eof();
  // can_write_eof(): true for TCP and Unix streams, false for TLS (write_eof() then raises
  // RuntimeError).
  [[nodiscard]] bool can_write_eof() const;
  // close(): closes the connection once the buffered bytes are sent (abort() discards them).
  // The reader sees EOF at once (what is buffered stays readable). Idempotent. TLS: then sends
  // close_notify and waits (up to ssl_shutdown_timeout) for the peer's before closing the socket.
  void close();
  // abort(): closes at once; the buffered bytes are discarded (Python's transport.abort()).
  void abort();
  // is_closing(): close()/abort() was called or the connection was lost.
  [[nodiscard]] bool is_closing() const;
  // wait_closed(): suspends until the socket is closed (after close(): once the buffer is sent;
  // without it: once the connection is lost). Raises the error that ended the connection, if
  // one did (Python 3.12).
  Task<void> wait_closed();

  // sendfile(file_fd, offset, count, fallback): sends count bytes (0: to the end) of the file
  // file_fd from offset over the stream (Python's loop.sendfile(transport, file, ...)); returns
  // how many. It first waits until everything written before is sent, then uses the kernel's
  // sendfile(2) on the socket (a regular file, TCP or Unix stream), waiting for writability; what
  // write() gets meanwhile is buffered and sent after the file, and a close() / write_eof() waits
  // for it. TLS streams, other files (a pipe) or a file sendfile refuses before a byte went fall
  // back to reading the file (the loop's default executor, 256 KiB at a time) and write() +
  // drain() of each piece; with fallback false that is SendfileNotAvailableError instead. The file
  // position is left at offset + the bytes sent (handed to the stream, for the fallback) however
  // it ends, as sock_sendfile (sockets.hpp). Raises ValueError for a negative offset,
  // RuntimeError when the stream is closing ("Transport is closing") or another sendfile() runs,
  // the connection's error (which ends the stream, as a failed write does). Cancelled, it stops
  // at a wait; the stream stays usable and the position says what went. file_fd stays the
  // caller's.
  Task<std::size_t> sendfile(int file_fd, std::int64_t offset = 0, std::size_t count = 0,
                             bool fallback = true);

  // get_extra_info(name): "peername" / "sockname" → "host:port" ("[host]:port" for IPv6); "" for
  // any other name (Python's default None). Kept after the connection closed.
  [[nodiscard]] std::string get_extra_info(std::string_view name) const;
  // peername() / sockname(): the same as Endpoints.
  [[nodiscard]] Endpoint peername() const;
  [[nodiscard]] Endpoint sockname() const;
  // get_write_buffer_size(): bytes accepted by write() and not yet handed to the kernel.
  [[nodiscard]] std::size_t get_write_buffer_size() const;
  // set_write_buffer_limits(high, low): drain()'s marks (low defaults to high / 4, as Python).
  // ValueError when low > high.
  void set_write_buffer_limits(std::size_t high = kDefaultHighWater, std::ptrdiff_t low = -1);
  // fileno(): the socket's descriptor, for setsockopt()/getsockopt() only (Python's
  // get_extra_info("socket")); -1 once closed. Reading, writing or closing it breaks the stream.
  [[nodiscard]] int fileno() const;

 private:
  friend struct detail::StreamAccess;
  explicit StreamWriter(std::shared_ptr<detail::StreamCore> core) noexcept;
  detail::StreamCore& core() const;
  std::shared_ptr<detail::StreamCore> core_;
};

// Connection: what open_connection() returns: `auto [reader, writer] = co_await
// aio::open_connection("127.0.0.1", port);`.
struct Connection {
  StreamReader reader;
  StreamWriter writer;
};

// ConnectOptions: open_connection()'s options: `{.ssl = &context, .server_hostname = "name"}`.
// Trivially destructible on purpose: g++ 12 destroys a braced aggregate temporary written inside
// a co_await expression twice, so options written in place must own nothing. What `ssl` and
// `server_hostname` point to is copied when open_connection() is called (not awaited): it only
// has to outlive that call expression.
struct ConnectOptions {
  // limit: the reader's limit (readline()/readuntil()).
  std::size_t limit = kDefaultStreamLimit;
  // ssl: TLS over the connection when not null (and valid()); the handshake is part of
  // open_connection().
  const SslContext* ssl = nullptr;
  // server_hostname: the name sent (SNI) and checked against the server's certificate; empty:
  // the host argument.
  std::string_view server_hostname{};
  // ssl_handshake_timeout / ssl_shutdown_timeout: asyncio's bounds (60 s / 30 s). A handshake
  // that takes longer is a TimeoutError; a close_notify exchange that does is cut short.
  std::chrono::milliseconds ssl_handshake_timeout{60'000};
  std::chrono::milliseconds ssl_shutdown_timeout{30'000};
};
static_assert(std::is_trivially_destructible_v<ConnectOptions>, "see ConnectOptions' comment");

// open_connection(host, port, options): resolves host (a name such as "localhost", or a numeric
// IPv4/IPv6 address such as "127.0.0.1" or "::1") and connects to the addresses in the resolver's
// order until one accepts, then, with options.ssl, makes the TLS handshake. TCP_NODELAY is set
// (as asyncio). Raises ConnectionRefusedError
// ("[Errno 111] Connect call failed ('127.0.0.1', 1)"), another OSError (unknown host,
// unreachable network), SSLError (a certificate that does not verify: "SSLError: [SSL]
// certificate verify failed: self-signed certificate"), TimeoutError (the handshake's bound),
// CancelledError when cancelled (the connect is withdrawn, the socket closed). RuntimeError
// outside a running loop.
CONCUR_EXPORT Task<Connection> open_connection(std::string host, std::uint16_t port,
                                               ConnectOptions options = {});

// ClientConnected: a server's handler (Python's client_connected_cb).
using ClientConnected = std::function<Task<void>(StreamReader, StreamWriter)>;

// ServerOptions: start_server()'s options; trivially destructible as ConnectOptions (the same
// g++ 12 reason): `ssl` is copied when start_server() is called.
struct ServerOptions {
  // backlog: listen()'s queue length (asyncio's default 100).
  int backlog = 100;
  // reuse_address: SO_REUSEADDR (on by default on POSIX, as asyncio).
  bool reuse_address = true;
  // reuse_port: SO_REUSEPORT (several servers share a port).
  bool reuse_port = false;
  // limit: the readers' limit on accepted connections.
  std::size_t limit = kDefaultStreamLimit;
  // start_serving: accept at once (else start_serving() or serve_forever() begins it).
  bool start_serving = true;
  // ssl: TLS on every accepted connection when not null (and valid()). The handshake runs in
  // the connection's task before the handler; a connection whose handshake fails (or takes longer
  // than ssl_handshake_timeout) is closed without calling the handler and without a report.
  const SslContext* ssl = nullptr;
  std::chrono::milliseconds ssl_handshake_timeout{60'000};
  std::chrono::milliseconds ssl_shutdown_timeout{30'000};
  // cleanup_socket: start_unix_server() only (Python 3.13): close() removes the socket file, if
  // the path still names the socket this server created. (reuse_address / reuse_port do not apply
  // to Unix servers.)
  bool cleanup_socket = true;
};
static_assert(std::is_trivially_destructible_v<ServerOptions>, "see ConnectOptions' comment");

// Server: a listening server (asyncio.Server), a copyable handle; the last handle's destruction
// is close().
// Connections and shutdown (Python 3.12, plus 3.13's close_clients/abort_clients):
// - each accepted connection (TCP_NODELAY) runs handler(reader, writer) as a task of the loop.
//   When the handler returns its handles go; once the last handle of the connection is gone it is
//   closed after its buffered bytes are sent. An exception escaping the handler is reported once
//   through concur's excepthook and the connection is closed; a handler cancelled (by the loop's
//   close) closes its connection and ends cancelled, unreported.
// - close() stops accepting: the listening sockets are closed at once. Live connections are not
//   touched: their handlers run on until they return. close_clients() closes them (their readers
//   see EOF), abort_clients() aborts them (buffered bytes are discarded).
// - wait_closed() returns once the server is closed, every handler has returned and every
//   connection is closed.
class CONCUR_EXPORT Server {
 public:
  // Server(): an empty handle (InvalidStateError on use) to assign a started server to.
  Server() noexcept = default;

  // sockets(): the listening sockets' addresses (empty once closed).
  [[nodiscard]] std::vector<Endpoint> sockets() const;
  // port(): the port the server listens on (every socket shares it, also with port 0); kept
  // after close().
  [[nodiscard]] std::uint16_t port() const;
  // start_serving(): begins accepting (no effect when serving). RuntimeError once closed.
  void start_serving();
  // serve_forever(): starts serving and suspends until close() is called (then returns).
  // Cancelled, it closes the server and raises CancelledError (it does not wait for the
  // connections: wait_closed() does). RuntimeError when another task is already in
  // serve_forever() or the server is closed.
  Task<void> serve_forever();
  // is_serving(): accepting connections.
  [[nodiscard]] bool is_serving() const;
  // close(): stops accepting (see above). Idempotent.
  void close();
  // close_clients() / abort_clients(): close() / abort() every live connection's stream.
  void close_clients();
  void abort_clients();
  // wait_closed(): suspends until the server is closed and its connections are done (above).
  Task<void> wait_closed();
  // active_connections(): connections accepted and not yet closed.
  [[nodiscard]] std::size_t active_connections() const;

 private:
  friend struct detail::StreamAccess;
  explicit Server(std::shared_ptr<detail::ServerCore> core) noexcept;
  std::shared_ptr<detail::ServerCore> core_;
};

// (g++ 12 note: that compiler destroys a lambda temporary written inside a co_await expression
// twice. A handler lambda that captures objects with destructors by value — a shared_ptr, a
// string — must be a named variable: `auto handler = [state](...) -> Task<void> {...};
// co_await start_server(handler, ...)`. Reference captures, `this` and empty lambdas are safe.)
// start_server(handler, host, port, options): binds a listening socket for every address of host
// (IPv6 ones IPV6_V6ONLY, as asyncio; "" means all interfaces: 0.0.0.0 and ::), all on the same
// port (port 0: one the kernel picks for the first), listens, and accepts unless
// options.start_serving is false. Raises OSError ("[Errno 98] error while attempting to bind on
// address ('127.0.0.1', 80): Address already in use"), RuntimeError outside a running loop.
CONCUR_EXPORT Task<Server> start_server(ClientConnected handler, std::string host,
                                        std::uint16_t port, ServerOptions options = {});

// open_unix_connection(path, options): connects a Unix stream socket (AF_UNIX) to path (Python's
// asyncio.open_unix_connection; a path starting with '\0' names a socket in Linux's abstract
// namespace: write it as a std::string with its length, "\0name"s) and returns its streams,
// which behave as TCP's (limit, drain()'s backpressure, write_eof(), close()). get_extra_info:
// "peername" is path, "sockname" "" (an unbound client, as Python). With options.ssl, TLS over the
// socket: options.server_hostname is then required (ValueError, as Python). Raises OSError
// ("OSError: [Errno 2] Connect call failed /tmp/x.sock" when there is no such file;
// ConnectionRefusedError when nothing listens on it), ValueError for an empty path, OSError
// "AF_UNIX path too long", CancelledError when cancelled (the socket is closed).
CONCUR_EXPORT Task<Connection> open_unix_connection(std::string path, ConnectOptions options = {});

// start_unix_server(handler, path, options): a server on a Unix stream socket bound to path
// (Python's asyncio.start_unix_server), with start_server()'s Server: one handler task per
// connection, close(), wait_closed(), serve_forever(). A file already at path is removed first when
// it is a socket (a stale one, left by a server that did not clean up); any other file makes the
// bind fail: OSError EADDRINUSE "Address '/path' is already in use" (Python's text). An abstract
// name ('\0'...) has no file. options: backlog, limit, start_serving, ssl, cleanup_socket (close()
// removes the socket file, Python 3.13's default); reuse_address / reuse_port are ignored.
// Server::sockets() is {path} (is_unix), port() 0; an accepted connection's "sockname" is path,
// its "peername" "" (clients are unbound).
CONCUR_EXPORT Task<Server> start_unix_server(ClientConnected handler, std::string path,
                                             ServerOptions options = {});

namespace detail {
// adopt_stream_socket(fd, limit): a connected stream socket (one end of a socketpair) becomes a
// Connection of the running loop, which owns and closes fd from now on (aio subprocesses).
CONCUR_EXPORT Connection adopt_stream_socket(int fd, std::size_t limit);
}  // namespace detail

}  // namespace concur::aio
