// serve_load: an open-loop, constant-rate HTTP/1.1 load generator for issue 15's overload case
// (bench/compare/run_serve_bench.sh). wrk is closed-loop: each of its connections sends the next
// request only when the last is answered, so a slow server lowers the offered load and hides its
// queueing. serve_load instead sends request i at t0 + i / rate whatever the server does, and
// measures each latency from that scheduled time (so a request that waits for a free connection
// counts its wait: no coordinated omission).
//
// One thread, plain non-blocking sockets and epoll. A request goes on an idle keep-alive
// connection, else on a new one while fewer than --connections are open, else it waits in a FIFO
// (its clock already running). A response is read whole (Content-Length); `Connection: close`
// (what a 503 from concur::http says) or EOF closes the connection. After --duration the sending
// stops and outstanding requests get up to --drain seconds; the rest count as unfinished.
// Output (stdout, one JSON object): the rate offered and achieved, and per status (0: a
// connection error or reset before the answer) the count and latency percentiles in seconds.
//
// Usage: serve_load --port P [--target /] [--rate 500] [--duration 20] [--connections 1000]
//                   [--drain 5]
// Loopback only (127.0.0.1).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  bool connecting = false;
  bool busy = false;
  Clock::time_point scheduled;  // the current request's scheduled send time
  std::string in;
};

struct Stats {
  std::map<int, std::vector<double>> latencies;  // status -> seconds
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// parse_response(in, status, close, consumed): a whole response at the front of `in`?
bool parse_response(const std::string& in, int& status, bool& close, std::size_t& consumed) {
  const std::size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  if (in.size() < 12) return false;
  status = std::atoi(in.c_str() + 9);
  std::size_t length = 0;
  close = false;
  std::size_t pos = in.find("\r\n") + 2;
  while (pos < end) {
    const std::size_t eol = in.find("\r\n", pos);
    std::string line = in.substr(pos, eol - pos);
    std::transform(line.begin(), line.end(), line.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (line.rfind("content-length:", 0) == 0)
      length = std::strtoul(line.c_str() + 15, nullptr, 10);
    if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) close = true;
    pos = eol + 2;
  }
  if (in.size() < end + 4 + length) return false;
  consumed = end + 4 + length;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string target = "/";
  double rate = 500;
  double duration = 20;
  int max_conns = 1000;
  double drain = 5;
  CLI::App app("serve_load: open-loop constant-rate HTTP/1.1 load on 127.0.0.1");
  app.add_option("--port", port, "server port on 127.0.0.1")
      ->required()
      ->check(CLI::Range(1, 65535));
  app.add_option("--target", target, "request target (default /)");
  app.add_option("--rate", rate, "requests per second offered")->check(CLI::PositiveNumber);
  app.add_option("--duration", duration, "seconds of sending")->check(CLI::Range(0.1, 600.0));
  app.add_option("--connections", max_conns, "most connections open at once")
      ->check(CLI::Range(1, 100000));
  app.add_option("--drain", drain, "seconds to wait for outstanding answers")
      ->check(CLI::Range(0.0, 120.0));
  CLI11_PARSE(app, argc, argv);

  const std::string request = "GET " + target +
                              " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                              "\r\nUser-Agent: serve_load\r\n\r\n";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(static_cast<std::size_t>(max_conns));
  std::vector<std::size_t> free_slots, idle;
  for (std::size_t i = conns.size(); i-- > 0;) free_slots.push_back(i);
  std::deque<Clock::time_point> waiting;  // scheduled requests without a connection yet
  Stats stats;
  std::size_t connects = 0, scheduled_n = 0, outstanding = 0, max_waiting = 0;

  auto record = [&](int status, Clock::time_point scheduled) {
    stats.latencies[status].push_back(
        std::chrono::duration<double>(Clock::now() - scheduled).count());
  };
  auto close_conn = [&](std::size_t i) {
    Conn& c = conns[i];
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c = Conn{};
    free_slots.push_back(i);
  };
  auto fail = [&](std::size_t i) {  // a reset / EOF before the whole answer
    if (conns[i].busy) {
      record(0, conns[i].scheduled);
      --outstanding;
    }
    close_conn(i);
  };
  auto send_on = [&](std::size_t i) {
    Conn& c = conns[i];
    const ssize_t n = ::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(request.size())) fail(i);  // a small request fits the buffer
  };
  // start(scheduled): the request on an idle connection, a new one, or into the FIFO.
  auto start = [&](Clock::time_point scheduled) {
    ++outstanding;
    if (!idle.empty()) {
      const std::size_t i = idle.back();
      idle.pop_back();
      conns[i].busy = true;
      conns[i].scheduled = scheduled;
      send_on(i);
      return;
    }
    if (free_slots.empty()) {
      waiting.push_back(scheduled);
      max_waiting = std::max(max_waiting, waiting.size());
      return;
    }
    const std::size_t i = free_slots.back();
    free_slots.pop_back();
    Conn& c = conns[i];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.busy = true;
    c.scheduled = scheduled;
    ++connects;
    const int rc = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    epoll_event ev{};
    ev.data.u64 = i;
    if (rc == 0) {
      ev.events = EPOLLIN;
      epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      send_on(i);
    } else if (errno == EINPROGRESS) {
      c.connecting = true;
      ev.events = EPOLLIN | EPOLLOUT;
      epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    } else {
      epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      fail(i);
    }
  };
  // release(i): connection i is free again: the FIFO's oldest request, or idle.
  auto release = [&](std::size_t i) {
    if (!waiting.empty()) {
      conns[i].busy = true;
      conns[i].scheduled = waiting.front();
      waiting.pop_front();
      send_on(i);
    } else {
      idle.push_back(i);
    }
  };

  const Clock::time_point t0 = Clock::now();
  const auto interval = std::chrono::duration<double>(1.0 / rate);
  const auto total = static_cast<std::size_t>(rate * duration);
  const Clock::time_point send_end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  const Clock::time_point hard_end =
      send_end + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(drain));
  double max_lag = 0;
  std::vector<epoll_event> events(1024);
  char buf[16384];
  while (true) {
    // A closed connection's place goes to the oldest waiting request.
    while (!waiting.empty() && !free_slots.empty()) {
      const Clock::time_point s = waiting.front();
      waiting.pop_front();
      --outstanding;
      start(s);
    }
    Clock::time_point now = Clock::now();
    while (scheduled_n < total) {
      const Clock::time_point due = t0 + std::chrono::duration_cast<Clock::duration>(
                                             interval * static_cast<double>(scheduled_n));
      if (due > now) break;
      max_lag = std::max(max_lag, std::chrono::duration<double>(now - due).count());
      start(due);
      ++scheduled_n;
    }
    if (scheduled_n >= total && outstanding == 0) break;
    if (now >= hard_end) break;
    int timeout_ms = 50;
    if (scheduled_n < total) {
      const Clock::time_point due = t0 + std::chrono::duration_cast<Clock::duration>(
                                             interval * static_cast<double>(scheduled_n));
      timeout_ms = static_cast<int>(std::max<long>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count()));
    }
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
    for (int k = 0; k < n; ++k) {
      const auto i = static_cast<std::size_t>(events[static_cast<std::size_t>(k)].data.u64);
      Conn& c = conns[i];
      if (c.fd < 0) continue;
      if (c.connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          fail(i);
          continue;
        }
        if ((events[static_cast<std::size_t>(k)].events & EPOLLOUT) == 0) continue;
        c.connecting = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        send_on(i);
        continue;
      }
      const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        fail(i);
        continue;
      }
      c.in.append(buf, static_cast<std::size_t>(got));
      int status = 0;
      bool close = false;
      std::size_t consumed = 0;
      if (!c.busy || !parse_response(c.in, status, close, consumed)) continue;
      record(status, c.scheduled);
      --outstanding;
      c.busy = false;
      c.in.erase(0, consumed);
      if (close) {
        close_conn(i);
      } else {
        release(i);
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();

  std::printf(
      "{\"rate_offered\": %.1f, \"duration\": %.1f, \"scheduled\": %zu, "
      "\"rate_achieved\": %.1f, \"max_send_lag_s\": %.4f, \"unfinished\": %zu, "
      "\"connects\": %zu, \"max_waiting_for_connection\": %zu, \"elapsed\": %.2f, "
      "\"by_status\": {",
      rate, duration, scheduled_n, static_cast<double>(scheduled_n) / duration, max_lag,
      outstanding, connects, max_waiting, elapsed);
  bool first = true;
  for (auto& [status, v] : stats.latencies) {
    double sum = 0;
    for (const double x : v) sum += x;
    const double mean = v.empty() ? 0 : sum / static_cast<double>(v.size());
    const double p50 = percentile(v, 0.50), p90 = percentile(v, 0.90), p99 = percentile(v, 0.99),
                 p999 = percentile(v, 0.999), mx = *std::max_element(v.begin(), v.end());
    std::printf(
        "%s\"%d\": {\"count\": %zu, \"mean\": %.5f, \"p50\": %.5f, \"p90\": %.5f, "
        "\"p99\": %.5f, \"p999\": %.5f, \"max\": %.5f}",
        first ? "" : ", ", status, v.size(), mean, p50, p90, p99, p999, mx);
    first = false;
  }
  std::printf("}}\n");
  for (std::size_t i = 0; i < conns.size(); ++i) {
    if (conns[i].fd >= 0) ::close(conns[i].fd);
  }
  ::close(ep);
  return 0;
}
