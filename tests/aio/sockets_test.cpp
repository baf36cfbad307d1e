// Tests for include/concur/aio/sockets.hpp and the loop's fd watchers (Loop::add_reader /
// add_writer, loop.hpp), ported from CPython's test_asyncio/test_sock_lowlevel.py and the
// add_reader tests of test_events.py: recv/sendall over a socket pair and loopback TCP
// (test_sock_client_ops, recv_into), a blocking socket rejected, a cancelled recv loses nothing
// and the next recv gets the data (test_sock_client_racing), a cancelled sendall then another
// (send racing), a connect after a cancelled one, a cancelled connect in progress, a large sendall
// that must wait for writability (test_huge_content), connect refused (test_sock_client_fail),
// accept (test_sock_accept) and a cancelled accept (test_cancel_sock_accept), UDP
// recvfrom/recvfrom_into/sendto (test_recvfrom), IPv6; add_reader/remove_reader return values,
// repeated callbacks, replacement, writers, a throwing callback, close() removing the watchers, the
// loop-thread rule; one waiter per fd and direction, an fd of a stream refused, operations
// releasing the fd from the reactor, peer errors; pinned fds (src/aio/fd_pin.hpp, internal: the
// crawler's libcurl sockets) staying registered without watchers until unpinned, a stale wait of
// a pinned fd ignored, the loop's close releasing them. Name resolution (test_base_events'
// getaddrinfo cases, test_sock_lowlevel's connect by name): getaddrinfo of "localhost" (answered
// by /etc/hosts), its flags, gaierror from AI_NUMERICHOST and from an unknown service (neither can
// consult DNS), getnameinfo and back, sock_connect / sock_sendto by name. AF_UNIX
// (test_sock_lowlevel's unix cases): connect/accept/sendall/recv by path, errors, abstract names,
// datagrams by path. sock_sendfile (test_sendfile's sock_sendfile cases): 4 MiB through a socket
// pair with a slow reader, offset and count over TCP, the fallback for a pipe and for a file
// sendfile refuses, fallback=false raising, argument errors, cancellation mid-transfer. Traffic
// goes to 127.0.0.1 / ::1 / Unix sockets only; nothing is looked up beyond /etc/hosts.
// Every test's coroutine runs under aio::wait_for(kAioBound).
#include "concur/aio/sockets.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../../src/aio/fd_pin.hpp"  // internal: pinned fd watchers
#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "support/aio_support.hpp"
#include "support/hook_support.hpp"
#include "support/temp_dir.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

// kPoll: how often a test looks again while it waits for a state to be reached.
constexpr auto kPoll = 1ms;
// kRetries: test_sock_client_connect_racing's bound on reconnection attempts.
constexpr int kRetries = 128;

class AioSocketsTest : public HookCapturingTest {};

// iterations(n): lets the loop run n more iterations (each with an I/O poll).
aio::Task<void> iterations(int n) {
  for (int i = 0; i < n; ++i) co_await aio::sleep(kPoll);
}

// raises<E>(op): op raises E.
template <class E, class T>
aio::Task<bool> raises(aio::Task<T> op) {
  try {
    co_await op;
  } catch (const E&) {
    co_return true;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception: " << e.what();
    co_return false;
  }
  ADD_FAILURE() << "no exception";
  co_return false;
}

// Fd: owns a descriptor.
class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct SocketPair {
  Fd a;
  Fd b;
};

// socket_pair(): a connected AF_UNIX stream pair, both ends non-blocking.
SocketPair socket_pair() {
  int sv[2] = {-1, -1};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0) << errno;
  return SocketPair{Fd(sv[0]), Fd(sv[1])};
}

// make_socket(family, type, nonblocking): a new socket.
Fd make_socket(int family, int type, bool nonblocking = true) {
  const int fd = ::socket(family, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  EXPECT_GE(fd, 0) << errno;
  return Fd(fd);
}

// bind_loopback(fd, v6): binds to 127.0.0.1:0 or [::1]:0; returns the port (0 on failure).
std::uint16_t bind_loopback(int fd, bool v6) {
  int rc = -1;
  if (v6) {
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (rc != 0) return 0;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Listener: a TCP socket listening on loopback.
struct Listener {
  Fd fd;
  std::uint16_t port = 0;
};

Listener listen_loopback(bool v6 = false, bool nonblocking = true) {
  Listener l{make_socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, nonblocking), 0};
  l.port = bind_loopback(l.fd.get(), v6);
  EXPECT_NE(l.port, 0);
  EXPECT_EQ(::listen(l.fd.get(), 16), 0) << errno;
  return l;
}

bool kernel_has_ipv6() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  Fd owned(fd);
  return bind_loopback(fd, true) != 0;
}

aio::Endpoint sockname(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[64] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return aio::Endpoint{host, ntohs(in6->sin6_port), true};
  }
  const auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
  return aio::Endpoint{host, ntohs(in->sin_port), false};
}

bool nonblocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }
bool cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

void set_int_option(int fd, int level, int name, int value) {
  ASSERT_EQ(::setsockopt(fd, level, name, &value, sizeof value), 0) << errno;
}

// small_buffer_pair(): a socket pair whose send (a) and receive (b) buffers are 16 KiB, so that a
// transfer of megabytes must wait for writability many times.
SocketPair small_buffer_pair() {
  SocketPair p = socket_pair();
  set_int_option(p.a.get(), SOL_SOCKET, SO_SNDBUF, 16 * 1024);
  set_int_option(p.b.get(), SOL_SOCKET, SO_RCVBUF, 16 * 1024);
  return p;
}

void write_all(int fd, std::string_view bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()))
      << errno;
}

// fill(fd): sends until sending even 4 bytes would block (CPython's send racing test).
void fill(int fd) {
  const std::string spaces(8192, ' ');
  for (std::size_t size = 8192; size >= 4; size /= 2) {
    while (::send(fd, spaces.data(), size, MSG_NOSIGNAL) > 0) {
    }
    ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << errno;
  }
}

std::string pattern(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>('0' + i % 10);
  return out;
}

// ---- sock_recv / sock_sendall ------------------------------------------------------------------

TEST_F(AioSocketsTest, RecvAndSendallOverASocketPair) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    co_await aio::sock_sendall(p.a.get(), "hello");
    const std::string got = co_await aio::sock_recv(p.b.get(), 100);
    EXPECT_EQ(got, "hello");
    // A recv that has to wait gets what is sent later.
    auto reading = aio::create_task(aio::sock_recv(p.b.get(), 100));
    co_await aio::sleep(0ms);
    EXPECT_FALSE(reading.done());
    co_await aio::sock_sendall(p.a.get(), "world");
    const std::string later = co_await reading;
    EXPECT_EQ(later, "world");
    // n == 0 and empty data return at once.
    const std::string none = co_await aio::sock_recv(p.b.get(), 0);
    EXPECT_EQ(none, "");
    co_await aio::sock_sendall(p.a.get(), "");
    // EOF: "".
    ::shutdown(p.a.get(), SHUT_WR);
    const std::string eof = co_await aio::sock_recv(p.b.get(), 100);
    EXPECT_EQ(eof, "");
  }());
}

// serve_one(listener): accepts one client, reads its request up to the blank line, answers.
aio::Task<void> serve_one(int listener) {
  aio::Accepted c = co_await aio::sock_accept(listener);
  Fd conn(c.fd);
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    std::string more = co_await aio::sock_recv(conn.get(), 1024);
    if (more.empty()) break;
    request += more;
  }
  EXPECT_EQ(request, "GET / HTTP/1.0\r\n\r\n");
  co_await aio::sock_sendall(conn.get(), "HTTP/1.0 200 OK\r\n\r\nhello");
}

TEST_F(AioSocketsTest, ClientOpsOverLoopbackTcp) {
  // test_sock_client_ops: connect, sendall, recv (and _basetest_sock_recv_into).
  Listener l = listen_loopback();
  for (const bool into : {false, true}) {
    run_bounded([&]() -> aio::Task<void> {
      auto server = aio::create_task(serve_one(l.fd.get()));
      Fd sock = make_socket(AF_INET, SOCK_STREAM);
      co_await aio::sock_connect(sock.get(), "127.0.0.1", l.port);
      co_await aio::sock_sendall(sock.get(), "GET / HTTP/1.0\r\n\r\n");
      std::string data;
      if (into) {
        std::array<char, 1024> buf{};
        std::size_t n = co_await aio::sock_recv_into(sock.get(), std::span<char>(buf));
        for (;;) {
          const std::size_t more = co_await aio::sock_recv_into(
              sock.get(), std::span<char>(buf).subspan(n));  // consume the rest, to EOF
          if (more == 0) break;
          n += more;
        }
        data.assign(buf.data(), n);
      } else {
        for (;;) {
          std::string more = co_await aio::sock_recv(sock.get(), 1024);
          if (more.empty()) break;
          data += more;
        }
      }
      EXPECT_EQ(data, "HTTP/1.0 200 OK\r\n\r\nhello");
      co_await server;
    }());
  }
}

TEST_F(AioSocketsTest, ABlockingSocketIsAValueError) {
  Listener l = listen_loopback();
  Fd blocking = make_socket(AF_INET, SOCK_STREAM, /*nonblocking=*/false);
  Fd udp = make_socket(AF_INET, SOCK_DGRAM, /*nonblocking=*/false);
  run_bounded([&]() -> aio::Task<void> {
    const int fd = blocking.get();
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_connect(fd, "127.0.0.1", l.port)));
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_sendall(fd, "GET / HTTP/1.0\r\n\r\n")));
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_recv(fd, 1024)));
    std::array<std::byte, 16> buf{};
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_recv_into(fd, std::span<std::byte>(buf))));
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_accept(fd)));
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_recvfrom(udp.get(), 16)));
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_sendto(udp.get(), "x", "127.0.0.1", 9)));
    try {
      (void)co_await aio::sock_recv(fd, 1);
    } catch (const ValueError& e) {
      EXPECT_STREQ(e.what(), "ValueError: the socket must be non-blocking");
    }
    // A descriptor that is not open: OSError EBADF.
    bool bad = false;
    try {
      (void)co_await aio::sock_recv(-1, 1);
    } catch (const OSError& e) {
      bad = e.errno_code() == EBADF;
    }
    EXPECT_TRUE(bad);
    // A path for an IP socket: ValueError.
    Fd sock = make_socket(AF_INET, SOCK_STREAM);
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_connect(sock.get(), "/tmp/x.sock")));
  }());
}

// ---- cancellation (test_sock_client_racing) ----------------------------------------------------

TEST_F(AioSocketsTest, ACancelledRecvLosesNothingAndTheNextRecvGetsTheData) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    auto first = aio::create_task(aio::sock_recv(p.b.get(), 1024));
    co_await aio::sleep(0ms);
    EXPECT_TRUE(first.cancel());
    co_await expect_cancelled(first);
    auto sending = aio::create_task(aio::sock_sendall(p.a.get(), "GET / HTTP/1.0\r\n\r\n"));
    const std::string data = co_await aio::sock_recv(p.b.get(), 1024);
    EXPECT_EQ(data, "GET / HTTP/1.0\r\n\r\n");
    co_await sending;

    // recv_into, the same.
    std::array<char, 64> buf{};
    auto into = aio::create_task(aio::sock_recv_into(p.b.get(), std::span<char>(buf)));
    co_await aio::sleep(0ms);
    into.cancel();
    co_await expect_cancelled(into);
    co_await aio::sock_sendall(p.a.get(), "abc");
    const std::size_t n = co_await aio::sock_recv_into(p.b.get(), std::span<char>(buf));
    EXPECT_EQ(std::string(buf.data(), n), "abc");

    // A recv timed out by wait_for: TimeoutError, and the bytes sent afterwards all arrive.
    bool timed_out = false;
    try {
      (void)co_await aio::wait_for(aio::sock_recv(p.b.get(), 1024), 20ms);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    co_await aio::sock_sendall(p.a.get(), "after");
    const std::string after = co_await aio::sock_recv(p.b.get(), 1024);
    EXPECT_EQ(after, "after");
  }());
}

TEST_F(AioSocketsTest, ACancelledSendallThenAnotherSendall) {
  // _basetest_sock_send_racing: a sendall blocked on a full buffer is cancelled; the next one's
  // bytes arrive after whatever the first one sent.
  Listener l = listen_loopback();
  run_bounded([&]() -> aio::Task<void> {
    Fd sock = make_socket(AF_INET, SOCK_STREAM);
    set_int_option(sock.get(), SOL_SOCKET, SO_SNDBUF, 1024);
    auto connecting = aio::create_task(aio::sock_connect(sock.get(), "127.0.0.1", l.port));
    aio::Accepted accepted = co_await aio::sock_accept(l.fd.get());
    Fd server(accepted.fd);
    co_await connecting;
    fill(sock.get());
    auto blocked = aio::create_task(aio::sock_sendall(sock.get(), "hello"));
    co_await aio::sleep(0ms);
    if (blocked.cancel()) {
      co_await expect_cancelled(blocked);  // it waited for writability (the usual case)
    } else {
      co_await blocked;  // the kernel made room meanwhile: it sent everything at once
    }
    auto receiving = aio::create_task([](int fd) -> aio::Task<std::string> {
      std::string rv;
      for (;;) {
        std::string buf = co_await aio::sock_recv(fd, 8192);
        if (buf.empty()) co_return rv;
        for (char c : buf) {
          if (c != ' ') rv += c;
        }
      }
    }(server.get()));
    co_await aio::sock_sendall(sock.get(), "world");
    ::shutdown(sock.get(), SHUT_WR);
    const std::string data = co_await receiving;
    EXPECT_TRUE(data.size() >= 5 && data.substr(data.size() - 5) == "world") << data;
  }());
}

TEST_F(AioSocketsTest, AConnectAfterACancelledConnect) {
  // _basetest_sock_connect_racing: connecting before the listener listens, cancelled; then
  // connecting again succeeds once it listens (a few attempts may be refused).
  Fd listener = make_socket(AF_INET, SOCK_STREAM);
  const std::uint16_t port = bind_loopback(listener.get(), false);
  ASSERT_NE(port, 0);
  Fd sock = make_socket(AF_INET, SOCK_STREAM);
  bool connected = false;
  std::string skip_reason = "max retries reached";
  run_bounded([&]() -> aio::Task<void> {
    auto first = aio::create_task(aio::sock_connect(sock.get(), "127.0.0.1", port));
    co_await aio::sleep(0ms);
    first.cancel();
    try {
      co_await first;  // cancelled, or refused before the cancel arrived
    } catch (const CancelledError&) {
    } catch (const ConnectionRefusedError&) {
    }
    CO_ASSERT_EQ(::listen(listener.get(), 1), 0);
    for (int i = 0; i < kRetries && !connected; ++i) {
      try {
        co_await aio::sock_connect(sock.get(), "127.0.0.1", port);
        connected = true;
      } catch (const OSError& e) {
        skip_reason = e.what();
      }
    }
  }());
  if (!connected) GTEST_SKIP() << skip_reason;
}

TEST_F(AioSocketsTest, ACancelledConnectIsWithdrawn) {
  // A listener whose accept queue is full (backlog 0, one connection never accepted) drops the
  // next SYN: that connect stays in progress, and its sock_connect waits until cancelled.
  Listener l;
  l.fd = make_socket(AF_INET, SOCK_STREAM, /*nonblocking=*/false);
  l.port = bind_loopback(l.fd.get(), false);
  ASSERT_NE(l.port, 0);
  ASSERT_EQ(::listen(l.fd.get(), 0), 0);
  Fd queued = make_socket(AF_INET, SOCK_STREAM, /*nonblocking=*/false);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(l.port);
  ASSERT_EQ(::connect(queued.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << errno;
  bool stayed_pending = true;
  run_bounded([&]() -> aio::Task<void> {
    // Wait until the queued connection is in the accept queue (the listener is readable).
    bool in_queue = false;
    aio::get_running_loop().add_reader(l.fd.get(), [&in_queue] { in_queue = true; });
    EXPECT_TRUE(co_await eventually([&] { return in_queue; }));
    EXPECT_TRUE(aio::get_running_loop().remove_reader(l.fd.get()));
    Fd sock = make_socket(AF_INET, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(sock.get(), "127.0.0.1", l.port));
    co_await aio::sleep(0ms);
    if (connecting.done()) {  // this kernel did not drop the SYN: nothing to withdraw
      stayed_pending = false;
      try {
        co_await connecting;
      } catch (const OSError&) {
      }
      co_return;
    }
    EXPECT_TRUE(connecting.cancel());
    co_await expect_cancelled(connecting);
    // The wait was withdrawn: the same socket may wait again (the connect is still in progress,
    // EALREADY), here until wait_for gives up.
    bool timed_out = false;
    try {
      co_await aio::wait_for(aio::sock_connect(sock.get(), "127.0.0.1", l.port), 20ms);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
  }());
  if (!stayed_pending) GTEST_SKIP() << "the connect was not left in progress by this kernel";
}

TEST_F(AioSocketsTest, ALargeSendallWaitsForWritability) {
  // test_huge_content over a socket pair with small buffers: the sendall cannot finish before
  // the reader reads, so it waits for writability many times; every byte arrives in order.
  SocketPair p = small_buffer_pair();
  const std::string data = pattern(4 * 1024 * 1024);
  run_bounded([&]() -> aio::Task<void> {
    auto sending = aio::create_task(aio::sock_sendall(p.a.get(), data));
    co_await aio::sleep(0ms);
    EXPECT_FALSE(sending.done());
    std::string got;
    while (got.size() < data.size()) {
      std::string more = co_await aio::sock_recv(p.b.get(), 1024 * 1024);
      CO_ASSERT_TRUE(!more.empty());
      got += more;
    }
    co_await sending;
    EXPECT_TRUE(got == data);
  }());
}

TEST_F(AioSocketsTest, HugeContentOverTcpWithRecvInto) {
  // _basetest_huge_content_recvinto: 1 MB over loopback TCP, read with sock_recv_into.
  Listener l = listen_loopback();
  const std::string data = pattern(1'000'000);
  run_bounded([&]() -> aio::Task<void> {
    Fd sock = make_socket(AF_INET, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(sock.get(), "127.0.0.1", l.port));
    aio::Accepted accepted = co_await aio::sock_accept(l.fd.get());
    Fd server(accepted.fd);
    co_await connecting;
    auto sending = aio::create_task([](int fd, const std::string& bytes) -> aio::Task<void> {
      co_await aio::sock_sendall(fd, bytes);
      ::shutdown(fd, SHUT_WR);
    }(server.get(), data));
    std::vector<std::byte> buf(data.size());
    std::size_t total = 0;
    bool in_order = true;
    for (;;) {
      const std::size_t n = co_await aio::sock_recv_into(sock.get(), std::span<std::byte>(buf));
      if (n == 0) break;
      in_order = in_order && std::memcmp(buf.data(), data.data() + total, n) == 0;
      total += n;
    }
    EXPECT_EQ(total, data.size());
    EXPECT_TRUE(in_order);
    co_await sending;
  }());
}

// ---- connect and accept ------------------------------------------------------------------------

TEST_F(AioSocketsTest, ConnectionRefusedError) {
  // test_sock_client_fail: a port nothing listens on.
  std::uint16_t port = 0;
  {
    Fd s = make_socket(AF_INET, SOCK_STREAM);
    port = bind_loopback(s.get(), false);
  }
  ASSERT_NE(port, 0);
  run_bounded([&]() -> aio::Task<void> {
    Fd sock = make_socket(AF_INET, SOCK_STREAM);
    bool refused = false;
    try {
      co_await aio::sock_connect(sock.get(), "127.0.0.1", port);
    } catch (const ConnectionRefusedError& e) {
      refused = true;
      EXPECT_EQ(e.errno_code(), ECONNREFUSED);
      EXPECT_NE(std::string(e.what()).find("Connect call failed ('127.0.0.1', " +
                                           std::to_string(port) + ")"),
                std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(refused);
  }());
}

TEST_F(AioSocketsTest, AcceptGivesANonBlockingCloseOnExecSocketAndThePeersAddress) {
  // test_sock_accept: the client connects with a blocking connect (the kernel completes it).
  Listener l = listen_loopback();
  Fd client = make_socket(AF_INET, SOCK_STREAM, /*nonblocking=*/false);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(l.port);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << errno;
  run_bounded([&]() -> aio::Task<void> {
    aio::Accepted c = co_await aio::sock_accept(l.fd.get());
    Fd conn(c.fd);
    CO_ASSERT_TRUE(conn.get() >= 0);
    EXPECT_TRUE(nonblocking(conn.get()));
    EXPECT_TRUE(cloexec(conn.get()));
    EXPECT_EQ(c.address, sockname(client.get()));
    EXPECT_EQ(c.address.host, "127.0.0.1");
    // The accepted socket works with the other operations.
    co_await aio::sock_sendall(conn.get(), "hi");
    char buf[2];
    EXPECT_EQ(::recv(client.get(), buf, 2, MSG_WAITALL), 2);
  }());
}

TEST_F(AioSocketsTest, ACancelledAcceptIsWithdrawn) {
  // test_cancel_sock_accept: an accept timed out by wait_for; the listener accepts again later;
  // once it is closed, connecting is refused.
  Listener l = listen_loopback();
  const std::uint16_t port = l.port;
  run_bounded([&]() -> aio::Task<void> {
    bool timed_out = false;
    try {
      (void)co_await aio::wait_for(aio::sock_accept(l.fd.get()), 20ms);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    Fd client = make_socket(AF_INET, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(client.get(), "127.0.0.1", port));
    aio::Accepted c = co_await aio::sock_accept(l.fd.get());
    Fd conn(c.fd);
    co_await connecting;
    l.fd.reset();
    Fd refused = make_socket(AF_INET, SOCK_STREAM);
    EXPECT_TRUE(co_await raises<ConnectionRefusedError>(
        aio::sock_connect(refused.get(), "127.0.0.1", port)));
  }());
}

// ---- UDP ----------------------------------------------------------------------------------------

TEST_F(AioSocketsTest, UdpSendtoAndRecvfrom) {
  // test_recvfrom / test_recvfrom_into: 4096-byte datagrams between two loopback sockets.
  Fd a = make_socket(AF_INET, SOCK_DGRAM);
  Fd b = make_socket(AF_INET, SOCK_DGRAM);
  ASSERT_NE(bind_loopback(a.get(), false), 0);
  const std::uint16_t port_b = bind_loopback(b.get(), false);
  ASSERT_NE(port_b, 0);
  const std::string data(4096, '\x01');
  run_bounded([&]() -> aio::Task<void> {
    const std::size_t sent = co_await aio::sock_sendto(a.get(), data, "127.0.0.1", port_b);
    EXPECT_EQ(sent, data.size());
    aio::Datagram d = co_await aio::sock_recvfrom(b.get(), 4096);
    EXPECT_TRUE(d.data == data);
    EXPECT_EQ(d.address, sockname(a.get()));

    // recvfrom_into a larger buffer; sendto an Endpoint (named: see sockets.hpp's g++ 12 note).
    const aio::Endpoint to = sockname(b.get());
    (void)co_await aio::sock_sendto(a.get(), data, to);
    std::vector<std::byte> buf(8192);
    aio::DatagramInto into = co_await aio::sock_recvfrom_into(b.get(), std::span<std::byte>(buf));
    EXPECT_EQ(into.nbytes, 4096u);
    EXPECT_EQ(std::memcmp(buf.data(), data.data(), 4096), 0);
    EXPECT_EQ(into.address, sockname(a.get()));

    // A recvfrom that waits; a datagram longer than n is cut (as recvfrom).
    auto waiting = aio::create_task(aio::sock_recvfrom(b.get(), 10));
    co_await aio::sleep(0ms);
    EXPECT_FALSE(waiting.done());
    (void)co_await aio::sock_sendto(a.get(), "0123456789abcdef", "127.0.0.1", port_b);
    aio::Datagram cut = co_await waiting;
    EXPECT_EQ(cut.data, "0123456789");
  }());
}

TEST_F(AioSocketsTest, Ipv6Loopback) {
  if (!kernel_has_ipv6()) GTEST_SKIP() << "no IPv6 on this kernel";
  Listener l = listen_loopback(/*v6=*/true);
  Fd a = make_socket(AF_INET6, SOCK_DGRAM);
  Fd b = make_socket(AF_INET6, SOCK_DGRAM);
  ASSERT_NE(bind_loopback(a.get(), true), 0);
  const std::uint16_t port_b = bind_loopback(b.get(), true);
  run_bounded([&]() -> aio::Task<void> {
    Fd client = make_socket(AF_INET6, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(client.get(), "::1", l.port));
    aio::Accepted c = co_await aio::sock_accept(l.fd.get());
    Fd conn(c.fd);
    co_await connecting;
    EXPECT_TRUE(c.address.ipv6);
    EXPECT_EQ(c.address.host, "::1");
    EXPECT_EQ(c.address, sockname(client.get()));
    co_await aio::sock_sendall(client.get(), "over v6");
    const std::string got = co_await aio::sock_recv(conn.get(), 100);
    EXPECT_EQ(got, "over v6");

    (void)co_await aio::sock_sendto(a.get(), "dgram", "::1", port_b);
    aio::Datagram d = co_await aio::sock_recvfrom(b.get(), 100);
    EXPECT_EQ(d.data, "dgram");
    EXPECT_EQ(d.address, sockname(a.get()));
  }());
}

// ---- errors from the peer ----------------------------------------------------------------------

TEST_F(AioSocketsTest, PeerErrorsAreConnectionErrors) {
  // sendall to a closed peer: BrokenPipeError (and no SIGPIPE).
  {
    SocketPair p = socket_pair();
    p.b.reset();
    run_bounded([&]() -> aio::Task<void> {
      EXPECT_TRUE(co_await raises<BrokenPipeError>(aio::sock_sendall(p.a.get(), "x")));
    }());
  }
  // recv on a reset TCP connection: ConnectionResetError (the peer closes with SO_LINGER 0).
  Listener l = listen_loopback();
  run_bounded([&]() -> aio::Task<void> {
    Fd sock = make_socket(AF_INET, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(sock.get(), "127.0.0.1", l.port));
    aio::Accepted c = co_await aio::sock_accept(l.fd.get());
    Fd server(c.fd);
    co_await connecting;
    auto reading = aio::create_task(aio::sock_recv(sock.get(), 100));
    co_await aio::sleep(0ms);
    const linger hard{1, 0};
    ::setsockopt(server.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    server.reset();
    bool reset = false;
    try {
      (void)co_await reading;
    } catch (const ConnectionResetError& e) {
      reset = e.errno_code() == ECONNRESET;
    }
    EXPECT_TRUE(reset);
  }());
}

// ---- one waiter per fd and direction; transports; the reactor ----------------------------------

TEST_F(AioSocketsTest, OneWaiterPerFdAndDirection) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    const int fd = p.b.get();
    auto first = aio::create_task(aio::sock_recv(fd, 100));
    co_await aio::sleep(0ms);
    CO_ASSERT_TRUE(!first.done());
    // Python would let these replace the first waiter, whose await would then never end.
    EXPECT_TRUE(co_await raises<RuntimeError>(aio::sock_recv(fd, 100)));
    std::array<char, 8> buf{};
    EXPECT_TRUE(co_await raises<RuntimeError>(aio::sock_recv_into(fd, std::span<char>(buf))));
    EXPECT_THROW(loop.add_reader(fd, [] {}), RuntimeError);
    EXPECT_FALSE(loop.remove_reader(fd));  // a sock_* wait is not a callback
    // The other direction is free.
    co_await aio::sock_sendall(fd, "to a");
    const std::string at_a = co_await aio::sock_recv(p.a.get(), 100);
    EXPECT_EQ(at_a, "to a");
    // The first waiter still gets its data.
    co_await aio::sock_sendall(p.a.get(), "to b");
    const std::string got = co_await first;
    EXPECT_EQ(got, "to b");

    // A reader callback holds the direction too.
    loop.add_reader(fd, [] {});
    EXPECT_TRUE(co_await raises<RuntimeError>(aio::sock_recv(fd, 100)));
    EXPECT_TRUE(loop.remove_reader(fd));
    co_await aio::sock_sendall(p.a.get(), "free again");
    const std::string again = co_await aio::sock_recv(fd, 100);
    EXPECT_EQ(again, "free again");
  }());
}

aio::Task<void> echo(aio::StreamReader reader, aio::StreamWriter writer) {
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
  }
  writer.close();
}

TEST_F(AioSocketsTest, AStreamsSocketIsUsedByTransport) {
  run_bounded([]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    aio::Server server = co_await aio::start_server(echo, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    const int fd = c.writer.fileno();
    CO_ASSERT_TRUE(fd >= 0);
    // Nothing to read: the operation must wait, and the fd is the stream's.
    bool refused = false;
    try {
      (void)co_await aio::sock_recv(fd, 10);
    } catch (const RuntimeError& e) {
      refused = std::string(e.what()).find("is used by transport") != std::string::npos;
    }
    EXPECT_TRUE(refused);
    EXPECT_THROW(loop.add_reader(fd, [] {}), RuntimeError);
    EXPECT_THROW(loop.add_writer(fd, [] {}), RuntimeError);
    EXPECT_THROW(aio::detail::pin_fd(loop.core(), fd), RuntimeError);
    EXPECT_EQ(aio::detail::fd_watch_counts(loop.core()).entries, 0u);
    // The stream still works.
    c.writer.write("still mine\n");
    const std::string back = co_await c.reader.readline();
    EXPECT_EQ(back, "still mine\n");
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_F(AioSocketsTest, FinishedOperationsAndRemovedWatchersLeaveTheReactor) {
  // Once an operation that waited ended (with data, cancelled), or the last watcher of an fd was
  // removed, the loop's reactor no longer has the fd: a stream may take it over.
  SocketPair p = socket_pair();
  SocketPair q = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    auto reading = aio::create_task(aio::sock_recv(p.b.get(), 100));
    co_await aio::sleep(0ms);
    co_await aio::sock_sendall(p.a.get(), "x");
    (void)co_await reading;
    auto cancelled = aio::create_task(aio::sock_recv(p.b.get(), 100));
    co_await aio::sleep(0ms);
    cancelled.cancel();
    co_await expect_cancelled(cancelled);
    loop.add_reader(q.b.get(), [] {});
    loop.add_writer(q.b.get(), [] {});
    EXPECT_TRUE(loop.remove_reader(q.b.get()));
    EXPECT_TRUE(loop.remove_writer(q.b.get()));
    // adopt_stream_socket registers the fd with the same reactor (EEXIST if it were still there).
    aio::Connection c1 = aio::detail::adopt_stream_socket(p.b.release(), aio::kDefaultStreamLimit);
    aio::Connection c2 = aio::detail::adopt_stream_socket(q.b.release(), aio::kDefaultStreamLimit);
    co_await aio::sock_sendall(p.a.get(), "p\n");
    co_await aio::sock_sendall(q.a.get(), "q\n");
    const std::string from_p = co_await c1.reader.readline();
    const std::string from_q = co_await c2.reader.readline();
    EXPECT_EQ(from_p, "p\n");
    EXPECT_EQ(from_q, "q\n");
    c1.writer.close();
    c2.writer.close();
  }());
}

TEST_F(AioSocketsTest, ClosingTheLoopCancelsAWaitingOperation) {
  SocketPair p = socket_pair();
  aio::run([](int fd) -> aio::Task<void> {
    (void)aio::create_task(aio::sock_recv(fd, 100));  // still waiting when main returns
    co_await aio::sleep(0ms);
  }(p.b.get()));
  // A new loop uses the same fd; the bytes were not taken by the cancelled operation.
  write_all(p.a.get(), "kept");
  const std::string got = aio::run(aio::sock_recv(p.b.get(), 100));
  EXPECT_EQ(got, "kept");
}

// ---- fd watchers (Loop::add_reader / add_writer) ------------------------------------------------

TEST_F(AioSocketsTest, AReaderRunsEachTimeTheFdIsReadableUntilRemoved) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    const int fd = p.b.get();
    EXPECT_FALSE(loop.remove_reader(fd));
    int calls = 0;
    loop.add_reader(fd, [&calls] { ++calls; });
    co_await iterations(3);
    EXPECT_EQ(calls, 0);  // nothing to read yet
    write_all(p.a.get(), "x");
    // The byte is never read: the callback runs again and again (level-triggered, as Python).
    EXPECT_TRUE(co_await eventually([&] { return calls >= 3; }));
    EXPECT_TRUE(loop.remove_reader(fd));
    EXPECT_FALSE(loop.remove_reader(fd));
    const int at_removal = calls;
    co_await iterations(5);
    EXPECT_EQ(calls, at_removal);
    // The loop neither read nor closed the fd.
    const std::string left = co_await aio::sock_recv(fd, 10);
    EXPECT_EQ(left, "x");
  }());
}

TEST_F(AioSocketsTest, AReaderThatReadsRunsOncePerArrival) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    const int fd = p.b.get();
    std::string got;
    int calls = 0;
    loop.add_reader(fd, [&] {
      ++calls;
      char buf[64];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    });
    write_all(p.a.get(), "one");
    EXPECT_TRUE(co_await eventually([&] { return calls == 1; }));
    co_await iterations(5);
    EXPECT_EQ(calls, 1);
    write_all(p.a.get(), "two");
    EXPECT_TRUE(co_await eventually([&] { return calls == 2; }));
    EXPECT_EQ(got, "onetwo");
    EXPECT_TRUE(loop.remove_reader(fd));
  }());
}

TEST_F(AioSocketsTest, AddingAgainReplacesTheCallback) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    int first = 0;
    int second = 0;
    loop.add_reader(p.b.get(), [&first] { ++first; });
    loop.add_reader(p.b.get(), [&second] { ++second; });
    write_all(p.a.get(), "x");
    EXPECT_TRUE(co_await eventually([&] { return second >= 2; }));
    EXPECT_EQ(first, 0);
    // Replaced from inside the callback: the new one takes over at once.
    int third = 0;
    loop.add_reader(p.b.get(), [&] {
      ++first;
      loop.add_reader(p.b.get(), [&third] { ++third; });
    });
    EXPECT_TRUE(co_await eventually([&] { return third >= 2; }));
    EXPECT_EQ(first, 1);
    EXPECT_TRUE(loop.remove_reader(p.b.get()));
  }());
}

TEST_F(AioSocketsTest, AWriterRunsWhileTheFdIsWritable) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    const int fd = p.a.get();
    EXPECT_FALSE(loop.remove_writer(fd));
    int calls = 0;
    loop.add_writer(fd, [&calls] { ++calls; });
    EXPECT_TRUE(co_await eventually([&] { return calls >= 3; }));
    // A reader on the same fd is independent of the writer.
    int reads = 0;
    loop.add_reader(fd, [&reads] { ++reads; });
    EXPECT_TRUE(loop.remove_writer(fd));
    EXPECT_FALSE(loop.remove_writer(fd));
    const int at_removal = calls;
    write_all(p.b.get(), "x");
    EXPECT_TRUE(co_await eventually([&] { return reads >= 1; }));
    EXPECT_EQ(calls, at_removal);
    EXPECT_TRUE(loop.remove_reader(fd));
    // A full buffer: the writer runs only once the peer read.
    fill(fd);
    loop.add_writer(fd, [&calls] { ++calls; });
    const int before = calls;
    co_await iterations(5);
    EXPECT_EQ(calls, before);
    for (;;) {
      char buf[65536];
      if (::recv(p.b.get(), buf, sizeof buf, 0) <= 0) break;
    }
    EXPECT_TRUE(co_await eventually([&] { return calls > before; }));
    EXPECT_TRUE(loop.remove_writer(fd));
  }());
}

TEST_F(AioSocketsTest, AThrowingCallbackIsReportedAndStaysRegistered) {
  expect_reports(1);
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    const int fd = p.b.get();
    int calls = 0;
    loop.add_reader(fd, [&] {
      if (++calls == 1) throw ValueError("boom");
      (void)loop.remove_reader(fd);
    });
    write_all(p.a.get(), "x");
    EXPECT_TRUE(co_await eventually([&] { return calls == 2; }));
    co_await iterations(3);
    EXPECT_EQ(calls, 2);
  }());
  const auto got = reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].type.find("ValueError"), std::string::npos) << got[0].type;
}

TEST_F(AioSocketsTest, ClosingTheLoopRemovesItsWatchersAndLeavesTheFdsOpen) {
  SocketPair p = socket_pair();
  auto token = std::make_shared<int>(0);
  int calls = 0;
  {
    aio::Loop loop;
    // Added before the loop runs (set-up), as Python allows.
    loop.add_reader(p.b.get(), [token, &calls] { ++calls; });
    loop.add_writer(p.a.get(), [token] {});
    write_all(p.a.get(), "x");
    loop.run_until_complete([&]() -> aio::Task<void> {
      EXPECT_TRUE(co_await eventually([&] { return calls >= 1; }));
    }());
    EXPECT_EQ(token.use_count(), 3);
    loop.close();
    EXPECT_EQ(token.use_count(), 1);  // the callbacks are gone
    EXPECT_FALSE(loop.remove_reader(p.b.get()));
    EXPECT_FALSE(loop.remove_writer(p.a.get()));
    EXPECT_THROW(loop.add_reader(p.b.get(), [] {}), RuntimeError);
  }
  EXPECT_NE(::fcntl(p.a.get(), F_GETFD), -1);
  EXPECT_NE(::fcntl(p.b.get(), F_GETFD), -1);
  // Another loop can watch and read them; the byte is still there.
  const std::string left = aio::run(aio::sock_recv(p.b.get(), 10));
  EXPECT_EQ(left, "x");
}

TEST_F(AioSocketsTest, WatchersAreAddedOnTheLoopsThread) {
  SocketPair p = socket_pair();
  aio::Loop loop;
  std::thread runner([&] { loop.run_forever(); });
  EXPECT_TRUE(wait_until([&] { return loop.is_running(); }));
  EXPECT_THROW(loop.add_reader(p.b.get(), [] {}), RuntimeError);
  EXPECT_THROW(loop.add_writer(p.b.get(), [] {}), RuntimeError);
  EXPECT_THROW((void)loop.remove_reader(p.b.get()), RuntimeError);
  loop.stop();
  runner.join();
}

TEST_F(AioSocketsTest, WatcherArgumentErrors) {
  SocketPair p = socket_pair();
  char path[] = "/tmp/concur_sockets_test_XXXXXX";
  Fd file(::mkstemp(path));
  ASSERT_GE(file.get(), 0);
  ::unlink(path);
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    int closed_fd = -1;  // a number no descriptor has (chosen once the loop's own fds exist)
    {
      Fd tmp = make_socket(AF_INET, SOCK_STREAM);
      closed_fd = tmp.get();
    }
    EXPECT_THROW(loop.add_reader(-1, [] {}), ValueError);
    EXPECT_THROW(loop.add_reader(p.b.get(), std::function<void()>()), ValueError);
    int errno_seen = 0;
    try {
      loop.add_reader(closed_fd, [] {});
    } catch (const OSError& e) {
      errno_seen = e.errno_code();
    }
    EXPECT_EQ(errno_seen, EBADF);
    errno_seen = 0;
    try {
      loop.add_writer(file.get(), [] {});  // epoll refuses regular files: EPERM, as Python
    } catch (const OSError& e) {
      errno_seen = e.errno_code();
    }
    EXPECT_EQ(errno_seen, EPERM);
    EXPECT_FALSE(loop.remove_reader(-1));
    co_return;
  }());
}

// ---- pinned fds (src/aio/fd_pin.hpp) ------------------------------------------------------------

TEST_F(AioSocketsTest, APinnedFdStaysRegisteredUntilUnpinned) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    aio::detail::LoopCore& core = loop.core();
    const int fd = p.b.get();
    const aio::detail::FdWatchCounts before = aio::detail::fd_watch_counts(core);
    int reads = 0;
    loop.add_reader(fd, [&reads] { ++reads; });
    aio::detail::pin_fd(core, fd);
    // Watchers come and go (as libcurl's after each transfer): one registration in all.
    for (int round = 0; round < 20; ++round) {
      EXPECT_TRUE(loop.remove_reader(fd));
      aio::detail::FdWatchCounts now = aio::detail::fd_watch_counts(core);
      EXPECT_EQ(now.entries, before.entries + 1);  // still registered, no watcher
      EXPECT_EQ(now.pinned, before.pinned + 1);
      int writes = 0;
      loop.add_writer(fd, [&writes] { ++writes; });
      EXPECT_TRUE(co_await eventually([&] { return writes >= 1; }));
      EXPECT_TRUE(loop.remove_writer(fd));
      const int seen = reads;
      loop.add_reader(fd, [&reads] { ++reads; });
      write_all(p.a.get(), "x");
      EXPECT_TRUE(co_await eventually([&] { return reads > seen; }));
      char c = 0;
      EXPECT_EQ(::recv(fd, &c, 1, 0), 1);
    }
    EXPECT_EQ(aio::detail::fd_watch_counts(core).registrations, before.registrations + 1);
    // A sock_* operation on the pinned fd uses its entry, which stays once the operation ended.
    EXPECT_TRUE(loop.remove_reader(fd));
    auto reading = aio::create_task(aio::sock_recv(fd, 100));
    co_await aio::sleep(0ms);
    co_await aio::sock_sendall(p.a.get(), "op");
    const std::string got = co_await reading;
    EXPECT_EQ(got, "op");
    aio::detail::FdWatchCounts now = aio::detail::fd_watch_counts(core);
    EXPECT_EQ(now.registrations, before.registrations + 1);
    EXPECT_EQ(now.pinned, before.pinned + 1);
    // Unpinned while it has a watcher: it leaves the reactor with its last watcher.
    loop.add_reader(fd, [] {});
    aio::detail::unpin_fd(core, fd);
    now = aio::detail::fd_watch_counts(core);
    EXPECT_EQ(now.entries, before.entries + 1);
    EXPECT_EQ(now.pinned, before.pinned);
    EXPECT_TRUE(loop.remove_reader(fd));
    EXPECT_EQ(aio::detail::fd_watch_counts(core).entries, before.entries);
    aio::detail::unpin_fd(core, fd);  // no entry: nothing
    // Pinned without a watcher, then unpinned: it leaves at once.
    aio::detail::pin_fd(core, fd);
    EXPECT_EQ(aio::detail::fd_watch_counts(core).entries, before.entries + 1);
    aio::detail::unpin_fd(core, fd);
    EXPECT_EQ(aio::detail::fd_watch_counts(core).entries, before.entries);
    // The reactor no longer has fd: a stream may take it over (EEXIST if it were still there).
    aio::Connection c = aio::detail::adopt_stream_socket(p.b.release(), aio::kDefaultStreamLimit);
    co_await aio::sock_sendall(p.a.get(), "line\n");
    const std::string line = co_await c.reader.readline();
    EXPECT_EQ(line, "line\n");
    c.writer.close();
  }());
}

TEST_F(AioSocketsTest, AStaleWaitOfAPinnedFdIsIgnored) {
  SocketPair p = socket_pair();
  run_bounded([&]() -> aio::Task<void> {
    aio::Loop& loop = aio::get_running_loop();
    const int fd = p.b.get();
    aio::detail::pin_fd(loop.core(), fd);
    write_all(p.a.get(), "x");  // readable before the first wait
    for (int round = 0; round < 5; ++round) {
      // The first callback's wait is withdrawn before the loop polls: its completion is stale.
      int first = 0;
      int second = 0;
      loop.add_reader(fd, [&first] { ++first; });
      EXPECT_TRUE(loop.remove_reader(fd));
      loop.add_reader(fd, [&second] { ++second; });
      EXPECT_TRUE(co_await eventually([&] { return second >= 2; }));
      EXPECT_EQ(first, 0);
      EXPECT_TRUE(loop.remove_reader(fd));
      const int at_removal = second;
      co_await iterations(3);
      EXPECT_EQ(second, at_removal);
    }
    aio::detail::unpin_fd(loop.core(), fd);
    EXPECT_EQ(aio::detail::fd_watch_counts(loop.core()).entries, 0u);
  }());
}

TEST_F(AioSocketsTest, ClosingTheLoopReleasesPinnedFds) {
  SocketPair p = socket_pair();
  int calls = 0;
  {
    aio::Loop loop;
    aio::detail::LoopCore& core = loop.core();
    // Pinned at set-up (no loop running), one with a watcher, one without.
    loop.add_reader(p.b.get(), [&calls] { ++calls; });
    aio::detail::pin_fd(core, p.b.get());
    aio::detail::pin_fd(core, p.a.get());
    write_all(p.a.get(), "x");
    loop.run_until_complete([&]() -> aio::Task<void> {
      EXPECT_TRUE(co_await eventually([&] { return calls >= 1; }));
    }());
    EXPECT_EQ(aio::detail::fd_watch_counts(core).pinned, 2u);
    loop.close();
    const aio::detail::FdWatchCounts after = aio::detail::fd_watch_counts(core);
    EXPECT_EQ(after.entries, 0u);
    EXPECT_EQ(after.pinned, 0u);
    aio::detail::unpin_fd(core, p.b.get());  // after the close: nothing, no error
    EXPECT_THROW(aio::detail::pin_fd(core, p.b.get()), RuntimeError);
    EXPECT_FALSE(loop.remove_reader(p.b.get()));
  }
  EXPECT_NE(::fcntl(p.a.get(), F_GETFD), -1);  // released, never closed
  EXPECT_NE(::fcntl(p.b.get(), F_GETFD), -1);
  const std::string left = aio::run(aio::sock_recv(p.b.get(), 10));
  EXPECT_EQ(left, "x");
}

// ---- name resolution (getaddrinfo / getnameinfo)
// ------------------------------------------------- Only names /etc/hosts answers ("localhost") and
// lookups that cannot leave the machine (AI_NUMERICHOST, numeric hosts with a service name) are
// used: no DNS query is ever made.

TEST_F(AioSocketsTest, GetaddrinfoResolvesLocalhostFromEtcHosts) {
  run_bounded([]() -> aio::Task<void> {
    const std::vector<aio::AddrInfo> infos =
        co_await aio::getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM);
    CO_ASSERT_TRUE(!infos.empty());
    for (const aio::AddrInfo& info : infos) {
      EXPECT_EQ(info.family, AF_INET);
      EXPECT_EQ(info.type, SOCK_STREAM);
      EXPECT_EQ(info.proto, IPPROTO_TCP);
      EXPECT_EQ(info.sockaddr.host, "127.0.0.1");
      EXPECT_EQ(info.sockaddr.port, 80);
      EXPECT_FALSE(info.sockaddr.ipv6);
      EXPECT_EQ(info.canonname, "");
    }
    // AI_CANONNAME names the host in the first result; a service name is looked up in
    // /etc/services; a numeric host and type 0 give one result per socket type.
    const std::vector<aio::AddrInfo> canon =
        co_await aio::getaddrinfo("localhost", "http", AF_INET, SOCK_STREAM, 0, AI_CANONNAME);
    CO_ASSERT_TRUE(!canon.empty());
    EXPECT_EQ(canon[0].canonname, "localhost");
    EXPECT_EQ(canon[0].sockaddr.port, 80);
    const std::vector<aio::AddrInfo> numeric =
        co_await aio::getaddrinfo("127.0.0.1", "8080", AF_UNSPEC, 0, 0, AI_NUMERICHOST);
    bool tcp = false;
    bool udp = false;
    for (const aio::AddrInfo& info : numeric) {
      EXPECT_EQ(info.sockaddr, (aio::Endpoint{"127.0.0.1", 8080, false, false}));
      tcp = tcp || info.type == SOCK_STREAM;
      udp = udp || info.type == SOCK_DGRAM;
    }
    EXPECT_TRUE(tcp && udp);
    // host "" is Python's None: the wildcard address with AI_PASSIVE, else loopback.
    const std::vector<aio::AddrInfo> passive =
        co_await aio::getaddrinfo("", 0, AF_INET, SOCK_STREAM, 0, AI_PASSIVE);
    CO_ASSERT_TRUE(!passive.empty());
    EXPECT_EQ(passive[0].sockaddr.host, "0.0.0.0");
    const std::vector<aio::AddrInfo> loopback =
        co_await aio::getaddrinfo("", 7, AF_INET, SOCK_DGRAM);
    CO_ASSERT_TRUE(!loopback.empty());
    EXPECT_EQ(loopback[0].sockaddr.host, "127.0.0.1");
    EXPECT_EQ(loopback[0].proto, IPPROTO_UDP);
    if (kernel_has_ipv6()) {
      const std::vector<aio::AddrInfo> v6 =
          co_await aio::getaddrinfo("::1", 443, AF_INET6, SOCK_STREAM, 0, AI_NUMERICHOST);
      CO_ASSERT_TRUE(!v6.empty());
      EXPECT_EQ(v6[0].sockaddr, (aio::Endpoint{"::1", 443, true, false}));
    }
  }());
}

TEST_F(AioSocketsTest, GetaddrinfoFailuresAreGaierror) {
  run_bounded([]() -> aio::Task<void> {
    // A name with AI_NUMERICHOST: refused without a lookup (EAI_NONAME).
    int code = 0;
    std::string what;
    try {
      (void)co_await aio::getaddrinfo("concur.invalid", 80, AF_INET, SOCK_STREAM, 0,
                                      AI_NUMERICHOST);
    } catch (const gaierror& e) {
      code = e.errno_code();
      what = e.what();
    }
    EXPECT_EQ(code, EAI_NONAME);
    EXPECT_EQ(what,
              "gaierror: [Errno " + std::to_string(EAI_NONAME) + "] " + ::gai_strerror(EAI_NONAME));
    // A numeric host with a service /etc/services does not know (EAI_SERVICE); an OSError too.
    code = 0;
    try {
      (void)co_await aio::getaddrinfo("127.0.0.1", "no-such-concur-service", AF_INET, SOCK_STREAM);
    } catch (const OSError& e) {
      EXPECT_NE(dynamic_cast<const gaierror*>(&e), nullptr) << e.what();
      code = e.errno_code();
    }
    EXPECT_EQ(code, EAI_SERVICE);
    // getnameinfo of a host that is not a numeric address: EAI_NONAME (Python's rule).
    const aio::Endpoint named{"localhost", 80, false, false};
    code = 0;
    try {
      (void)co_await aio::getnameinfo(named);
    } catch (const gaierror& e) {
      code = e.errno_code();
    }
    EXPECT_EQ(code, EAI_NONAME);
    const aio::Endpoint path{"/tmp/x.sock", 0, false, true};
    EXPECT_TRUE(co_await raises<ValueError>(aio::getnameinfo(path)));
  }());
}

TEST_F(AioSocketsTest, GetnameinfoAndBack) {
  run_bounded([]() -> aio::Task<void> {
    const aio::Endpoint ep{"127.0.0.1", 80, false, false};
    const aio::NameInfo numeric = co_await aio::getnameinfo(ep, NI_NUMERICHOST | NI_NUMERICSERV);
    EXPECT_EQ(numeric.host, "127.0.0.1");
    EXPECT_EQ(numeric.port, "80");
    // The reverse lookup is answered by /etc/hosts; the service by /etc/services.
    const aio::NameInfo named = co_await aio::getnameinfo(ep, NI_NAMEREQD);
    EXPECT_EQ(named.host, "localhost");
    EXPECT_EQ(named.port, "http");
    const std::vector<aio::AddrInfo> back =
        co_await aio::getaddrinfo(named.host, named.port, AF_INET, SOCK_STREAM);
    CO_ASSERT_TRUE(!back.empty());
    EXPECT_EQ(back[0].sockaddr, ep);
  }());
}

TEST_F(AioSocketsTest, ACancelledGetaddrinfoEndsAtOnce) {
  run_bounded([]() -> aio::Task<void> {
    // Cancelled before it starts, and (most likely: /etc/hosts answers fast) while the executor
    // resolves.
    auto early = aio::create_task(aio::getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM));
    EXPECT_TRUE(early.cancel());
    co_await expect_cancelled(early);
    auto resolving = aio::create_task(aio::getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM));
    co_await aio::sleep(0ms);
    if (resolving.cancel()) {
      co_await expect_cancelled(resolving);
    } else {
      (void)co_await resolving;
    }
    // The resolver is still usable.
    const std::vector<aio::AddrInfo> infos =
        co_await aio::getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM);
    EXPECT_FALSE(infos.empty());
  }());
}

TEST_F(AioSocketsTest, ConnectAndSendtoByName) {
  // test_sock_lowlevel's connect with a host name: resolved with the socket's family and type.
  Listener l = listen_loopback();
  Fd a = make_socket(AF_INET, SOCK_DGRAM);
  Fd b = make_socket(AF_INET, SOCK_DGRAM);
  ASSERT_NE(bind_loopback(a.get(), false), 0);
  const std::uint16_t port_b = bind_loopback(b.get(), false);
  ASSERT_NE(port_b, 0);
  run_bounded([&]() -> aio::Task<void> {
    Fd client = make_socket(AF_INET, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(client.get(), "localhost", l.port));
    aio::Accepted c = co_await aio::sock_accept(l.fd.get());
    Fd conn(c.fd);
    co_await connecting;
    EXPECT_EQ(c.address, sockname(client.get()));
    co_await aio::sock_sendall(client.get(), "by name");
    const std::string got = co_await aio::sock_recv(conn.get(), 100);
    EXPECT_EQ(got, "by name");
    // An Endpoint with a name, too.
    Fd second = make_socket(AF_INET, SOCK_STREAM);
    const aio::Endpoint named{"localhost", l.port, false, false};
    auto connecting2 = aio::create_task(aio::sock_connect(second.get(), named));
    aio::Accepted c2 = co_await aio::sock_accept(l.fd.get());
    Fd conn2(c2.fd);
    co_await connecting2;

    const std::size_t sent = co_await aio::sock_sendto(a.get(), "dgram", "localhost", port_b);
    EXPECT_EQ(sent, 5u);
    aio::Datagram d = co_await aio::sock_recvfrom(b.get(), 100);
    EXPECT_EQ(d.data, "dgram");
    EXPECT_EQ(d.address, sockname(a.get()));
  }());
}

// ---- AF_UNIX
// -------------------------------------------------------------------------------------

// listen_unix(path): a non-blocking AF_UNIX stream socket bound to path (a std::string: an
// abstract name keeps its '\0'), listening.
Fd listen_unix(const std::string& path, int type = SOCK_STREAM) {
  Fd fd = make_socket(AF_UNIX, type);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                          (path[0] == '\0' ? 0 : 1));
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << errno;
  if (type == SOCK_STREAM) {
    EXPECT_EQ(::listen(fd.get(), 16), 0) << errno;
  }
  return fd;
}

// abstract_name(tag): a name in the abstract namespace no other test run uses.
std::string abstract_name(const std::string& tag) {
  // (Built by appending: g++ 12's -Warray-bounds misfires on a chain of + here under TSan.)
  std::string name = "concur-sockets-test-";
  name += std::to_string(::getpid());
  name += '-';
  name += tag;
  name.insert(name.begin(), '\0');
  return name;
}

TEST_F(AioSocketsTest, UnixConnectAcceptSendallRecv) {
  TempDir dir("concur-unix-");
  const std::string path = (dir.path() / "s.sock").string();
  Fd listener = listen_unix(path);
  run_bounded([&]() -> aio::Task<void> {
    Fd client = make_socket(AF_UNIX, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(client.get(), path));
    aio::Accepted c = co_await aio::sock_accept(listener.get());
    Fd conn(c.fd);
    co_await connecting;
    EXPECT_TRUE(nonblocking(conn.get()));
    // The client is unbound: its address is '' (Python), an AF_UNIX Endpoint.
    EXPECT_EQ(c.address, (aio::Endpoint{"", 0, false, true}));
    co_await aio::sock_sendall(client.get(), "to server");
    const std::string at_server = co_await aio::sock_recv(conn.get(), 100);
    EXPECT_EQ(at_server, "to server");
    const std::string big = pattern(1 << 20);
    auto sending = aio::create_task(aio::sock_sendall(conn.get(), big));
    std::string at_client;
    while (at_client.size() < big.size()) {
      std::string more = co_await aio::sock_recv(client.get(), 65536);
      CO_ASSERT_TRUE(!more.empty());
      at_client += more;
    }
    co_await sending;
    EXPECT_TRUE(at_client == big);

    // An Endpoint naming the path (as sock_accept / sock_recvfrom report one) works too.
    Fd second = make_socket(AF_UNIX, SOCK_STREAM);
    const aio::Endpoint by_endpoint{path, 0, false, true};
    co_await aio::sock_connect(second.get(), by_endpoint);
    aio::Accepted c2 = co_await aio::sock_accept(listener.get());
    Fd conn2(c2.fd);

    // Errors: no socket file (ENOENT), a socket file nobody listens on (refused), a host and
    // port for an AF_UNIX socket, a path that does not fit.
    Fd third = make_socket(AF_UNIX, SOCK_STREAM);
    const std::string missing = (dir.path() / "missing.sock").string();
    int code = 0;
    std::string what;
    try {
      co_await aio::sock_connect(third.get(), missing);
    } catch (const OSError& e) {
      code = e.errno_code();
      what = e.what();
    }
    EXPECT_EQ(code, ENOENT);
    EXPECT_EQ(what,
              "OSError: [Errno " + std::to_string(ENOENT) + "] Connect call failed " + missing);
    const std::string stale = (dir.path() / "stale.sock").string();
    { Fd gone = listen_unix(stale); }
    EXPECT_TRUE(co_await raises<ConnectionRefusedError>(aio::sock_connect(third.get(), stale)));
    Fd fourth = make_socket(AF_UNIX, SOCK_STREAM);
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_connect(fourth.get(), "localhost", 80)));
    // (A numeric address is handed to the kernel as it is, which refuses its family: EINVAL.)
    EXPECT_TRUE(co_await raises<OSError>(aio::sock_connect(fourth.get(), "127.0.0.1", 80)));
    const std::string too_long(200, 'x');
    EXPECT_TRUE(co_await raises<OSError>(aio::sock_connect(fourth.get(), too_long)));
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_connect(fourth.get(), "")));
  }());
}

TEST_F(AioSocketsTest, UnixAbstractNamesAndDatagramsByPath) {
  const std::string name = abstract_name("stream");
  Fd listener = listen_unix(name);
  TempDir dir("concur-unix-");
  const std::string a_path = (dir.path() / "a.dgram").string();
  const std::string b_path = (dir.path() / "b.dgram").string();
  Fd a = listen_unix(a_path, SOCK_DGRAM);
  Fd b = listen_unix(b_path, SOCK_DGRAM);
  run_bounded([&]() -> aio::Task<void> {
    // A client bound to an abstract name of its own: the accepted peer's address is that name.
    const std::string client_name = abstract_name("client");
    Fd bound = make_socket(AF_UNIX, SOCK_STREAM);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, client_name.data(), client_name.size());
    const int bound_rc =
        ::bind(bound.get(), reinterpret_cast<sockaddr*>(&addr),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + client_name.size()));
    EXPECT_EQ(bound_rc, 0) << errno;
    CO_ASSERT_EQ(bound_rc, 0);
    auto connecting = aio::create_task(aio::sock_connect(bound.get(), name));
    aio::Accepted c = co_await aio::sock_accept(listener.get());
    Fd conn(c.fd);
    co_await connecting;
    EXPECT_TRUE(c.address.is_unix);
    EXPECT_EQ(c.address.host, client_name);
    co_await aio::sock_sendall(bound.get(), "abstract");
    const std::string got = co_await aio::sock_recv(conn.get(), 100);
    EXPECT_EQ(got, "abstract");

    // Datagrams to a path; the reply goes to the Endpoint recvfrom reported.
    const std::size_t sent = co_await aio::sock_sendto(a.get(), "ping", b_path);
    EXPECT_EQ(sent, 4u);
    aio::Datagram d = co_await aio::sock_recvfrom(b.get(), 100);
    EXPECT_EQ(d.data, "ping");
    EXPECT_EQ(d.address, (aio::Endpoint{a_path, 0, false, true}));
    (void)co_await aio::sock_sendto(b.get(), "pong", d.address);
    aio::Datagram back = co_await aio::sock_recvfrom(a.get(), 100);
    EXPECT_EQ(back.data, "pong");
    EXPECT_EQ(back.address.host, b_path);
    // A path for an IP datagram socket: ValueError.
    Fd udp = make_socket(AF_INET, SOCK_DGRAM);
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_sendto(udp.get(), "x", b_path)));
  }());
}

// ---- sock_sendfile
// ---------------------------------------------------------------------------------

// TempFile: a file of `content` in a fresh directory, open for reading (O_RDONLY).
struct TempFile {
  explicit TempFile(const std::string& content, int flags = O_RDONLY) {
    const std::string path = (dir.path() / "data.bin").string();
    std::ofstream(path, std::ios::binary) << content;
    fd.reset(::open(path.c_str(), flags | O_CLOEXEC));
    EXPECT_GE(fd.get(), 0) << errno;
  }
  [[nodiscard]] off_t position() const { return ::lseek(fd.get(), 0, SEEK_CUR); }
  TempDir dir{"concur-sendfile-"};
  Fd fd;
};

// read_slowly(fd, n): n bytes from fd, 16 KiB at a time with a pause between reads.
aio::Task<std::string> read_slowly(int fd, std::size_t n) {
  std::string got;
  int reads = 0;
  while (got.size() < n) {
    std::string more = co_await aio::sock_recv(fd, 16 * 1024);
    if (more.empty()) break;
    got += more;
    if (++reads % 16 == 0) co_await aio::sleep(1ms);
  }
  co_return got;
}

// drain_now(fd): every byte already readable on the non-blocking fd.
std::string drain_now(int fd) {
  std::string got;
  char buf[65536];
  for (;;) {
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    got.append(buf, static_cast<std::size_t>(r));
  }
  return got;
}

TEST_F(AioSocketsTest, SendfileOf4MiBWaitsForASlowReader) {
  // test_sock_sendfile_success over a socket pair with small buffers: the transfer must wait for
  // writability many times.
  const std::string data = pattern(4 * 1024 * 1024);
  TempFile file(data);
  SocketPair p = small_buffer_pair();
  run_bounded([&]() -> aio::Task<void> {
    auto sending = aio::create_task(aio::sock_sendfile(p.a.get(), file.fd.get()));
    co_await aio::sleep(0ms);
    EXPECT_FALSE(sending.done());  // the socket's buffer is full: it waits for the reader
    const std::string got = co_await read_slowly(p.b.get(), data.size());
    const std::size_t sent = co_await sending;
    EXPECT_EQ(sent, data.size());
    EXPECT_TRUE(got == data);
    EXPECT_EQ(file.position(), static_cast<off_t>(data.size()));
    // At the end of the file: nothing more to send.
    const auto end = static_cast<std::int64_t>(data.size());
    const std::size_t again = co_await aio::sock_sendfile(p.a.get(), file.fd.get(), end);
    EXPECT_EQ(again, 0u);
  }());
}

TEST_F(AioSocketsTest, SendfileOffsetAndCountOverTcp) {
  // test_sock_sendfile_zero_size / _mix_with_regular_send / offset and count cases, over TCP.
  const std::string data = pattern(100'000);
  TempFile file(data);
  Listener l = listen_loopback();
  run_bounded([&]() -> aio::Task<void> {
    Fd client = make_socket(AF_INET, SOCK_STREAM);
    auto connecting = aio::create_task(aio::sock_connect(client.get(), "127.0.0.1", l.port));
    aio::Accepted c = co_await aio::sock_accept(l.fd.get());
    Fd conn(c.fd);
    co_await connecting;
    // offset 1000, count 5000: exactly those bytes; the position is left after them.
    std::size_t sent = co_await aio::sock_sendfile(client.get(), file.fd.get(), 1000, 5000);
    EXPECT_EQ(sent, 5000u);
    EXPECT_EQ(file.position(), 6000);
    std::string got = co_await read_slowly(conn.get(), 5000);
    EXPECT_TRUE(got == data.substr(1000, 5000));
    // Mixed with sock_sendall on the same socket: the order is kept.
    co_await aio::sock_sendall(client.get(), "|");
    const auto size = static_cast<std::int64_t>(data.size());
    sent = co_await aio::sock_sendfile(client.get(), file.fd.get(), size - 10, 100);
    EXPECT_EQ(sent, 10u);  // a count past the end stops at the end
    got = co_await read_slowly(conn.get(), 11);
    EXPECT_EQ(got, "|" + data.substr(data.size() - 10));
    // From the offset to the end (count 0).
    sent = co_await aio::sock_sendfile(client.get(), file.fd.get(), 50'000);
    EXPECT_EQ(sent, 50'000u);
    got = co_await read_slowly(conn.get(), 50'000);
    EXPECT_TRUE(got == data.substr(50'000));
    // Past the end: nothing sent, the position untouched.
    ::lseek(file.fd.get(), 7, SEEK_SET);
    sent = co_await aio::sock_sendfile(client.get(), file.fd.get(), size + 5);
    EXPECT_EQ(sent, 0u);
    EXPECT_EQ(file.position(), 7);
    // An empty file.
    TempFile empty("");
    sent = co_await aio::sock_sendfile(client.get(), empty.fd.get());
    EXPECT_EQ(sent, 0u);
  }());
}

TEST_F(AioSocketsTest, SendfileArgumentErrors) {
  const std::string data = pattern(1000);
  TempFile file(data);
  SocketPair p = socket_pair();
  Fd blocking = make_socket(AF_INET, SOCK_STREAM, /*nonblocking=*/false);
  Fd udp = make_socket(AF_INET, SOCK_DGRAM);
  run_bounded([&]() -> aio::Task<void> {
    std::string what;
    try {
      (void)co_await aio::sock_sendfile(p.a.get(), file.fd.get(), -1);
    } catch (const ValueError& e) {
      what = e.what();
    }
    EXPECT_EQ(what, "ValueError: offset must be a non-negative integer (got -1)");
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_sendfile(blocking.get(), file.fd.get())));
    EXPECT_TRUE(co_await raises<ValueError>(aio::sock_sendfile(udp.get(), file.fd.get())));
    int code = 0;
    try {
      (void)co_await aio::sock_sendfile(p.a.get(), -1);
    } catch (const OSError& e) {
      code = e.errno_code();
    }
    EXPECT_EQ(code, EBADF);
    // A closed peer: BrokenPipeError, not SendfileNotAvailableError, also without fallback.
    p.b.reset();
    EXPECT_TRUE(co_await raises<BrokenPipeError>(
        aio::sock_sendfile(p.a.get(), file.fd.get(), 0, 0, /*fallback=*/false)));
  }());
}

TEST_F(AioSocketsTest, SendfileFallsBackForAPipeOrWhenSendfileRefuses) {
  // test_sock_sendfile_not_available / _not_regular_file / _fallback: a pipe is read and sent;
  // with fallback=false, SendfileNotAvailableError (a RuntimeError).
  const std::string data = pattern(1 << 20);
  SocketPair p = socket_pair();
  int fds[2] = {-1, -1};
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd pipe_r(fds[0]);
  Fd pipe_w(fds[1]);
  std::thread writer([&] {
    std::string_view rest = data;
    while (!rest.empty()) {
      const ssize_t w = ::write(pipe_w.get(), rest.data(), rest.size());
      if (w <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(w));
    }
    pipe_w.reset();
  });
  run_bounded([&]() -> aio::Task<void> {
    std::string what;
    try {
      (void)co_await aio::sock_sendfile(p.a.get(), pipe_r.get(), 0, 0, /*fallback=*/false);
    } catch (const RuntimeError& e) {
      EXPECT_NE(dynamic_cast<const SendfileNotAvailableError*>(&e), nullptr);
      what = e.what();
    }
    EXPECT_EQ(what, "SendfileNotAvailableError: not a regular file");
    auto sending = aio::create_task(aio::sock_sendfile(p.a.get(), pipe_r.get()));
    const std::string got = co_await read_slowly(p.b.get(), data.size());
    const std::size_t sent = co_await sending;
    EXPECT_EQ(sent, data.size());
    EXPECT_TRUE(got == data);
    // With a count: only that many bytes are read from the pipe (here: it is at EOF).
    EXPECT_EQ(co_await aio::sock_sendfile(p.a.get(), pipe_r.get(), 0, 10), 0u);
    // A pipe cannot start at an offset.
    EXPECT_TRUE(co_await raises<OSError>(aio::sock_sendfile(p.a.get(), pipe_r.get(), 5)));
  }());
  writer.join();

  // A regular file sendfile refuses (opened for writing only: EBADF before a byte went): without
  // fallback SendfileNotAvailableError; with it the fallback's read fails with that OSError.
  TempFile write_only("abc", O_WRONLY);
  run_bounded([&]() -> aio::Task<void> {
    EXPECT_TRUE(co_await raises<SendfileNotAvailableError>(
        aio::sock_sendfile(p.a.get(), write_only.fd.get(), 0, 0, /*fallback=*/false)));
    int code = 0;
    try {
      (void)co_await aio::sock_sendfile(p.a.get(), write_only.fd.get());
    } catch (const OSError& e) {
      code = e.errno_code();
    }
    EXPECT_EQ(code, EBADF);
  }());
}

TEST_F(AioSocketsTest, ACancelledSendfileLeavesThePositionAtWhatWasSent) {
  // test_sock_sendfile_cancel: cancelled while waiting for writability; the file position says
  // how many bytes went, the reader gets exactly those, and a new sock_sendfile from there sends
  // the rest: nothing lost, nothing twice.
  const std::string data = pattern(4 * 1024 * 1024);
  TempFile file(data);
  SocketPair p = small_buffer_pair();
  run_bounded([&]() -> aio::Task<void> {
    auto sending = aio::create_task(aio::sock_sendfile(p.a.get(), file.fd.get()));
    co_await iterations(3);
    CO_ASSERT_TRUE(!sending.done());
    // It holds the socket's write direction while it waits (one waiter per fd and direction).
    EXPECT_TRUE(co_await raises<RuntimeError>(aio::sock_sendall(p.a.get(), "x")));
    EXPECT_TRUE(sending.cancel());
    co_await expect_cancelled(sending);
    const off_t pos = file.position();
    EXPECT_GT(pos, 0);
    EXPECT_LT(pos, static_cast<off_t>(data.size()));
    std::string got = drain_now(p.b.get());
    EXPECT_EQ(static_cast<off_t>(got.size()), pos);
    // The write direction was released: the rest follows from the position.
    auto rest = aio::create_task(
        aio::sock_sendfile(p.a.get(), file.fd.get(), static_cast<std::int64_t>(pos)));
    got += co_await read_slowly(p.b.get(), data.size() - got.size());
    const std::size_t sent = co_await rest;
    EXPECT_EQ(sent + static_cast<std::size_t>(pos), data.size());
    EXPECT_TRUE(got == data);
  }());
}

}  // namespace
}  // namespace concur::testing
