// echo_client: the ping-pong TCP load generator every echo server of the aio benchmarks is measured
// with (bench/asio_echo_server.cpp, bench/compare/python_aio_echo_server.py, concur::aio's own).
// One thread, plain POSIX sockets and epoll, no concur dependency: C connections to
// 127.0.0.1:PORT (TCP_NODELAY) each send an M-byte message, wait until all M bytes are back
// (compared with what was sent), and repeat. Round trips completed after the warm-up and before
// the end of the measured window are counted; one JSON object goes to stdout. Errors exit 1.
//
// Usage: echo_client --port P [--connections 50] [--bytes 64] [--seconds 3] [--warmup 0.5]
//        or bench/compare/run_echo.sh, which starts a server and passes --port.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// kStallLimit: a connection that completes no round trip for this long is an error (a wedged
// server, or one echoing in other units than --bytes), so the client never hangs quietly.
constexpr auto kStallLimit = std::chrono::seconds(5);
// kMaxEvents: epoll_wait batch size.
constexpr int kMaxEvents = 256;
// kMaxReadsPerEvent: bound on recv calls for one readiness event (fairness between connections).
constexpr int kMaxReadsPerEvent = 16;

struct Options {
  int port = 0;
  int connections = 50;
  std::size_t bytes = 64;
  double seconds = 3.0;
  double warmup = 0.5;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "echo_client: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void fail_errno(const std::string& what) { fail(what + ": " + std::strerror(errno)); }

double parse_number(std::string_view flag, const char* text, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
    fail(std::string(flag) + " wants a number in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "], got '" + text + "'");
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf(
          "usage: echo_client --port P [--connections 50] [--bytes 64] [--seconds 3] "
          "[--warmup 0.5]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) fail(std::string(flag) + " needs a value (or unknown option)");
    const char* value = argv[++i];
    if (flag == "--port") {
      o.port = static_cast<int>(parse_number(flag, value, 1, 65535));
    } else if (flag == "--connections") {
      o.connections = static_cast<int>(parse_number(flag, value, 1, 10000));
    } else if (flag == "--bytes") {
      o.bytes = static_cast<std::size_t>(parse_number(flag, value, 1, 1 << 20));
    } else if (flag == "--seconds") {
      o.seconds = parse_number(flag, value, 0.001, 3600);
    } else if (flag == "--warmup") {
      o.warmup = parse_number(flag, value, 0, 3600);
    } else {
      fail("unknown option " + std::string(flag));
    }
  }
  if (o.port == 0) fail("--port is required");
  return o;
}

// One connection's ping-pong state: the message in flight and how much of it went out / came back.
struct Conn {
  int fd = -1;
  std::uint32_t index = 0;
  std::uint64_t seq = 0;  // messages started on this connection
  std::vector<unsigned char> out, in;
  std::size_t sent = 0, received = 0;
  bool watching_out = false;    // EPOLLOUT registered (a send hit EAGAIN)
  Clock::time_point last_done;  // last completed round trip (or the start)
};

class Client {
 public:
  explicit Client(const Options& o) : opt_(o) {}
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() {
    for (Conn& c : conns_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    if (epfd_ >= 0) ::close(epfd_);
  }

  // run() connects, warms up, measures; returns the round trips completed in the window.
  std::uint64_t run() {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) fail_errno("epoll_create1");
    conns_.resize(static_cast<std::size_t>(opt_.connections));
    for (std::size_t i = 0; i < conns_.size(); ++i) connect_one(conns_[i], i);

    const auto start = Clock::now();
    warm_end_ = start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(opt_.warmup));
    end_ = warm_end_ +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.seconds));
    now_ = start;
    auto next_stall_check = start + std::chrono::seconds(1);
    for (Conn& c : conns_) {
      c.last_done = start;
      start_message(c);
    }

    epoll_event events[kMaxEvents];
    while (now_ < end_) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(end_ - now_).count();
      const int timeout_ms = static_cast<int>(left < 1000 ? left : 1000);
      const int n = ::epoll_wait(epfd_, events, kMaxEvents, timeout_ms);
      if (n < 0 && errno != EINTR) fail_errno("epoll_wait");
      now_ = Clock::now();
      for (int k = 0; k < n; ++k) {
        Conn& c = conns_[events[k].data.u32];
        if ((events[k].events & EPOLLERR) != 0) fail("socket error on connection " + tag(c));
        if ((events[k].events & EPOLLOUT) != 0) send_some(c);
        if ((events[k].events & (EPOLLIN | EPOLLHUP)) != 0) receive(c);
      }
      if (now_ >= next_stall_check) {
        next_stall_check = now_ + std::chrono::seconds(1);
        for (const Conn& c : conns_) {
          if (now_ - c.last_done > kStallLimit) {
            fail("connection " + tag(c) + " completed no round trip for 5 s");
          }
        }
      }
    }
    if (round_trips_ == 0) {
      fail("no round trip completed in the measured window (does the server echo --bytes?)");
    }
    return round_trips_;
  }

 private:
  static std::string tag(const Conn& c) { return std::to_string(c.index); }

  void connect_one(Conn& c, std::size_t index) {
    c.index = static_cast<std::uint32_t>(index);
    c.out.resize(opt_.bytes);
    c.in.resize(opt_.bytes);
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) fail_errno("socket");
    const int one = 1;
    if (::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
      fail_errno("setsockopt(TCP_NODELAY)");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(opt_.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Blocking connect: to a listening loopback port it completes at once (or fails at once).
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      fail_errno("connect to 127.0.0.1:" + std::to_string(opt_.port) + " (connection " + tag(c) +
                 ")");
    }
    const int flags = ::fcntl(c.fd, F_GETFL);
    if (flags < 0 || ::fcntl(c.fd, F_SETFL, flags | O_NONBLOCK) != 0) fail_errno("fcntl");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = c.index;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) fail_errno("epoll_ctl(ADD)");
  }

  void watch_out(Conn& c, bool on) {
    if (c.watching_out == on) return;
    epoll_event ev{};
    ev.events = on ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.u32 = c.index;
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) fail_errno("epoll_ctl(MOD)");
    c.watching_out = on;
  }

  // start_message() fills the next message (a pattern unique to connection and sequence number,
  // so a misrouted or stale echo fails the comparison) and starts sending it.
  void start_message(Conn& c) {
    const std::uint64_t salt = c.index * 131u + c.seq * 7u;
    for (std::size_t i = 0; i < c.out.size(); ++i) {
      c.out[i] = static_cast<unsigned char>((salt + i) & 0xffu);
    }
    ++c.seq;
    c.sent = 0;
    c.received = 0;
    send_some(c);
  }

  // send_some() sends what the socket takes; on EAGAIN it waits for EPOLLOUT. Each pass of the
  // loop either makes progress or returns, so it runs at most out.size() times.
  void send_some(Conn& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        watch_out(c, true);
        return;
      } else if (n < 0 && errno == EINTR) {
        return;  // level-triggered: EPOLLOUT (or the next receive) resumes it
      } else {
        fail_errno("send on connection " + tag(c));
      }
    }
    watch_out(c, false);
  }

  // receive() reads the echo; a complete one is checked, counted and followed by the next message.
  void receive(Conn& c) {
    for (int reads = 0; reads < kMaxReadsPerEvent; ++reads) {
      const ssize_t n = ::recv(c.fd, c.in.data() + c.received, c.in.size() - c.received, 0);
      if (n == 0) fail("server closed connection " + tag(c));
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        fail_errno("recv on connection " + tag(c));
      }
      c.received += static_cast<std::size_t>(n);
      if (c.received > c.sent) fail("echo longer than what was sent on connection " + tag(c));
      if (c.received < c.in.size()) continue;
      if (std::memcmp(c.in.data(), c.out.data(), c.in.size()) != 0) {
        fail("echo differs from the message on connection " + tag(c));
      }
      if (now_ >= warm_end_ && now_ < end_) ++round_trips_;
      c.last_done = now_;
      start_message(c);
    }
  }

  const Options opt_;
  int epfd_ = -1;
  std::vector<Conn> conns_;
  Clock::time_point now_, warm_end_, end_;
  std::uint64_t round_trips_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  std::uint64_t round_trips = 0;
  {
    Client client(opt);
    round_trips = client.run();
  }  // closes every connection before the report
  const double rt_per_s = static_cast<double>(round_trips) / opt.seconds;
  std::printf(
      "{\"connections\": %d, \"message_bytes\": %zu, \"warmup_seconds\": %g, \"seconds\": %g, "
      "\"round_trips\": %llu, \"rt_per_s\": %.1f, \"mean_rt_us\": %.2f}\n",
      opt.connections, opt.bytes, opt.warmup, opt.seconds,
      static_cast<unsigned long long>(round_trips), rt_per_s,
      round_trips == 0 ? 0.0 : 1e6 * opt.connections / rt_per_s);
  return 0;
}
