// Notes "TCP multi-user chat with threads":
//   sk = socket.socket(); sk.bind(('127.0.0.1', 8090)); sk.listen()
//   while True:
//       conn, addr = sk.accept()
//       Thread(target=talk, args=(conn,)).start()
// where talk(conn) sends b'hello' and then loops `msg = conn.recv(1024); print(msg)`.
// Here the same shape — an accept loop, one thread per connection running talk(conn), blocking
// POSIX sockets — becomes a real chat server, and three scripted client threads test it.
// What differs from the notes:
// - Port 0 on 127.0.0.1 (a free port, loopback only), never a fixed port.
// - A line protocol: "hello\n" on connect; every line is broadcast to every *other* member as
//   "<name>: <line>\n" (names user1, user2, ... in accept order); "/quit" or EOF removes the
//   member and broadcasts "<name> left". The member list is guarded by a concur::Lock.
// - A slow client cannot stall the others: broadcasts use send(MSG_DONTWAIT) under the lock and
//   a member whose send buffer is full is disconnected (see ChatServer::broadcast_locked).
// - The notes loop forever; stop() wakes accept() with shutdown(), shuts down every connection
//   and joins every thread.
// The check: each client gets exactly the broadcasts it should — from the others, in order per
// sender, none of its own — a fourth client that never reads is dropped without delaying
// anyone, user1's /quit reaches the others as "user1 left", and no thread is left at the end.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kClients = 3;                   // user1..user3 run the script
constexpr int kSlowUser = kClients + 1;       // user4 connects, reads "hello", then never reads
constexpr auto kReadTimeout = 5s;             // SO_RCVTIMEO / SO_SNDTIMEO of every client socket
constexpr auto kStepTimeout = 10s;            // a barrier round that takes longer breaks
constexpr int kServerSendBuffer = 16 * 1024;  // SO_SNDBUF per connection: the "send queue"
constexpr int kSlowRecvBuffer = 4 * 1024;     // user4's SO_RCVBUF, so its window stays small
// 128 x 1 KB: user4's two buffers hold about 40 KB (the kernel doubles both sizes above).
constexpr int kFloodLines = 128;
constexpr std::size_t kFloodLineBytes = 1000;
constexpr std::size_t kMaxLine = 4096;  // a longer line without '\n' ends the connection
constexpr std::string_view kHello = "hello\n";

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Socket owns one file descriptor.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool set_int_option(int fd, int name, int value, int level = SOL_SOCKET) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0;
}

// LineReader reads '\n'-terminated lines from a blocking socket.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // read_line() returns the next line without its "\n" (and a trailing "\r"), or nullopt at EOF,
  // on an error, on a line longer than kMaxLine, or when SO_RCVTIMEO expired (timed_out()).
  std::optional<std::string> read_line() {
    while (true) {
      const auto end = buf_.find('\n');
      if (end != std::string::npos) {
        std::string line = buf_.substr(0, end);
        buf_.erase(0, end + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (buf_.size() > kMaxLine) return std::nullopt;
      char chunk[2048];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        timed_out_ = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        return std::nullopt;
      }
    }
  }
  [[nodiscard]] bool timed_out() const { return timed_out_; }

 private:
  int fd_;
  std::string buf_;
  bool timed_out_ = false;
};

// ---------------------------------------------------------------------------------------------
// The server.

// ChatServer: start() runs the accept loop in a concur::Thread, which starts one concur::Thread
// per connection (talk). stop() closes everything and joins every thread; the destructor calls it.
class ChatServer {
 public:
  ChatServer();
  ChatServer(const ChatServer&) = delete;
  ChatServer& operator=(const ChatServer&) = delete;
  ~ChatServer() { stop(); }

  [[nodiscard]] std::uint16_t port() const { return port_; }
  void start() {
    acceptor_.start();
    started_ = true;
  }
  // stop(): 1. no more broadcasts or "left" notices; 2. shutdown() every member's socket, which
  // makes its talk thread's recv() return 0; 3. shutdown() the listening socket, which makes
  // accept() fail with EINVAL; 4. join the acceptor, then every talk thread (each closes its own
  // socket: a socket is never closed while another thread may use its descriptor).
  void stop();
  // dropped() counts members disconnected because their send buffer was full.
  [[nodiscard]] int dropped() {
    std::scoped_lock guard(lock_);
    return dropped_;
  }

 private:
  struct Member {
    int fd;
    std::string name;
    bool dropped = false;  // guarded by lock_: shut down as too slow, its talk thread leaving
  };

  void accept_loop();
  void talk(const std::shared_ptr<Member>& conn);
  // broadcast_locked(from, msg) sends msg to every member but `from`. Caller holds lock_.
  void broadcast_locked(const Member* from, const std::string& msg);

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  concur::Thread acceptor_;
  std::vector<concur::Thread> talkers_;  // only the acceptor touches it until it is joined
  int next_id_ = 0;                      // only the acceptor touches it
  bool started_ = false;                 // start() and stop() run in the owner's thread
  bool stopped_ = false;

  concur::Lock lock_{"chat members"};
  std::vector<std::shared_ptr<Member>> members_ CONCUR_GUARDED_BY(lock_);
  bool stopping_ CONCUR_GUARDED_BY(lock_) = false;
  int dropped_ CONCUR_GUARDED_BY(lock_) = 0;
};

ChatServer::ChatServer()
    : acceptor_(concur::Thread::Options{.name = "acceptor"}, &ChatServer::accept_loop, this) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw_errno("socket");
  sockaddr_in addr = loopback(0);  // sk.bind(('127.0.0.1', 0)): the kernel picks a free port
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, SOMAXCONN) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    throw std::system_error(err, std::generic_category(), "bind/listen");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
}

void ChatServer::accept_loop() {
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);  // conn, addr = accept()
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EINVAL: stop() shut the listening socket down
    }
    // A fixed send buffer is the bound on what may wait for a slow reader (left alone, Linux
    // grows it to megabytes on loopback).
    (void)set_int_option(fd, SO_SNDBUF, kServerSendBuffer);
    // Chat lines are small and interactive: without TCP_NODELAY, Nagle holds a second line
    // until the first is ACKed, and the peer delays that ACK by up to 40 ms.
    (void)set_int_option(fd, TCP_NODELAY, 1, IPPROTO_TCP);
    auto conn = std::make_shared<Member>(Member{fd, "user" + std::to_string(++next_id_)});
    {
      std::scoped_lock guard(lock_);
      // "hello" goes out under the lock that admits the member: it is the first line the client
      // reads, and a client that has read it is already in the list.
      if (stopping_ || ::send(fd, kHello.data(), kHello.size(), MSG_DONTWAIT | MSG_NOSIGNAL) !=
                           static_cast<ssize_t>(kHello.size())) {
        ::close(fd);
        continue;
      }
      members_.push_back(conn);
    }
    std::printf("[server] %s joined\n", conn->name.c_str());
    // Thread(target=talk, args=(conn,)).start()
    talkers_.emplace_back(concur::Thread::Options{.name = "talk-" + conn->name}, &ChatServer::talk,
                          this, conn);
    talkers_.back().start();
  }
}

void ChatServer::talk(const std::shared_ptr<Member>& conn) {
  LineReader in(conn->fd);
  // No SO_RCVTIMEO here: a chat member may stay silent; stop() wakes this recv with shutdown().
  while (const auto line = in.read_line()) {
    if (*line == "/quit") break;
    std::scoped_lock guard(lock_);
    broadcast_locked(conn.get(), conn->name + ": " + *line + "\n");
  }
  bool stopping = false;
  {
    std::scoped_lock guard(lock_);
    members_.erase(std::find(members_.begin(), members_.end(), conn));
    broadcast_locked(nullptr, conn->name + " left\n");  // a no-op once stop() began
    stopping = stopping_;
  }
  std::printf("[server] %s %s\n", conn->name.c_str(), stopping ? "closed by stop()" : "left");
  ::close(conn->fd);  // no broadcast can reach it now: it is out of members_
}

// Slow clients: every send is MSG_DONTWAIT (not SO_SNDTIMEO) because it happens under lock_ — a
// send that blocked, even for a bounded timeout, would hold up every other member's messages.
// A send that does not go through whole means the member's kServerSendBuffer is full; dropping
// just that line would silently lose chat, and a partial send would tear the line, so the member
// is disconnected instead (IRC's "SendQ exceeded"): shutdown() ends its talk thread, which
// then broadcasts "<name> left".
void ChatServer::broadcast_locked(const Member* from, const std::string& msg) {
  if (stopping_) return;
  for (const auto& m : members_) {
    if (m.get() == from || m->dropped) continue;
    ssize_t n;
    do {
      n = ::send(m->fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(msg.size())) {
      m->dropped = true;
      ++dropped_;
      ::shutdown(m->fd, SHUT_RDWR);
      std::printf("[server] %s dropped: its send buffer is full\n", m->name.c_str());
    }
  }
}

void ChatServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    std::scoped_lock guard(lock_);
    stopping_ = true;                                             // 1.
    for (const auto& m : members_) ::shutdown(m->fd, SHUT_RDWR);  // 2.
  }
  ::shutdown(listen_fd_, SHUT_RDWR);  // 3.
  if (started_) acceptor_.join();     // 4.
  ::close(listen_fd_);
  for (auto& t : talkers_) t.join();
}

// ---------------------------------------------------------------------------------------------
// The script: rounds separated by a Barrier; in each round some clients speak, then every client
// reads exactly the lines the round owes it.

constexpr int kRounds = 5;
constexpr int kFloodRound = 3;
constexpr std::array<const char*, kRounds> kRoundTitles = {
    "user1 speaks", "user2 and user3 speak at once", "all three send 5 lines at once",
    "user1 floods 128 x 1 KB; user4 never reads", "user1 quits"};

std::string flood_line(int k) {
  std::string line = "flood " + std::to_string(k) + " ";
  line.resize(kFloodLineBytes, '.');
  return line;
}

// lines_said(round, user) is what client `user` sends in `round`.
std::vector<std::string> lines_said(int round, int user) {
  std::vector<std::string> out;
  switch (round) {
    case 0:
      if (user == 1) out.emplace_back("hi everyone, user1 here");
      break;
    case 1:
      if (user == 2) out.emplace_back("hello user1");
      if (user == 3) out.emplace_back("hey, user3 joining");
      break;
    case 2:
      for (int k = 0; k < 5; ++k)
        out.push_back("line " + std::to_string(k) + " from user" + std::to_string(user));
      break;
    case kFloodRound:
      if (user == 1)
        for (int k = 0; k < kFloodLines; ++k) out.push_back(flood_line(k));
      break;
    case 4:
      if (user == 1) out.emplace_back("/quit");
      break;
    default:
      break;
  }
  return out;
}

// expected(round, user): every other client's lines as broadcasts, plus the server's notices.
std::vector<std::string> expected(int round, int user) {
  std::vector<std::string> out;
  for (int w = 1; w <= kClients; ++w) {
    if (w == user) continue;
    for (const auto& line : lines_said(round, w))
      if (line != "/quit") out.push_back("user" + std::to_string(w) + ": " + line);
  }
  if (round == kFloodRound) out.push_back("user" + std::to_string(kSlowUser) + " left");
  if (round == 4 && user != 1) out.emplace_back("user1 left");
  return out;
}

// by_sender(lines) groups lines by sender ("userN" before ": ", else "server"), keeping order:
// across senders the interleaving is free, per sender it is fixed.
std::map<std::string, std::vector<std::string>> by_sender(const std::vector<std::string>& lines) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& line : lines) {
    const auto colon = line.find(": ");
    out[line.rfind("user", 0) == 0 && colon != std::string::npos ? line.substr(0, colon) : "server"]
        .push_back(line);
  }
  return out;
}

std::string shorten(const std::string& s) { return s.size() > 24 ? s.substr(0, 24) + "..." : s; }

// diff(want, got) describes the first difference of two by_sender() maps ("" when equal).
std::string diff(const std::vector<std::string>& want, const std::vector<std::string>& got) {
  const auto w = by_sender(want);
  const auto g = by_sender(got);
  std::set<std::string> senders;
  for (const auto& [s, lines] : w) senders.insert(s);
  for (const auto& [s, lines] : g) senders.insert(s);
  static const std::vector<std::string> kNone;
  for (const auto& s : senders) {
    const auto& ws = w.contains(s) ? w.at(s) : kNone;
    const auto& gs = g.contains(s) ? g.at(s) : kNone;
    if (ws == gs) continue;
    std::size_t i = 0;
    while (i < ws.size() && i < gs.size() && ws[i] == gs[i]) ++i;
    return "from " + s + ": expected " + std::to_string(ws.size()) + " lines, got " +
           std::to_string(gs.size()) + "; line " + std::to_string(i) + ": expected '" +
           (i < ws.size() ? shorten(ws[i]) : "(none)") + "', got '" +
           (i < gs.size() ? shorten(gs[i]) : "(none)") + "'";
  }
  return "";
}

// Chat is what main and the client threads share.
struct Chat {
  std::uint16_t port = 0;
  // kClients + main: every round starts and ends with all of them at the barrier.
  concur::Barrier steps{kClients + 1, {.timeout = kStepTimeout}};
  std::array<concur::Event, kClients + 1> connected;  // [u]: user u has read its "hello"
  concur::Semaphore flood_acks{0};                // one release per flood line a reader received
  std::array<std::string, kClients + 1> failure;  // [u] written by client u only
};

Socket connect_to(std::uint16_t port, int recv_buffer = 0) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) throw_errno("socket");
  const timeval tv{.tv_sec = std::chrono::seconds(kReadTimeout).count(), .tv_usec = 0};
  if (::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
    throw_errno("setsockopt");
  if (!set_int_option(s.get(), TCP_NODELAY, 1, IPPROTO_TCP) ||
      (recv_buffer > 0 && !set_int_option(s.get(), SO_RCVBUF, recv_buffer)))  // before connect
    throw_errno("setsockopt");
  const sockaddr_in addr = loopback(port);
  if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("connect");
  return s;
}

void send_line(int fd, const std::string& line) {
  const std::string msg = line + "\n";
  std::size_t sent = 0;
  while (sent < msg.size()) {
    const ssize_t n = ::send(fd, msg.data() + sent, msg.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("send");
    sent += static_cast<std::size_t>(n);
  }
}

std::string expect_line(LineReader& in) {
  auto line = in.read_line();
  if (!line) throw std::runtime_error(in.timed_out() ? "no line within 5 s" : "unexpected EOF");
  return *line;
}

// client(user, chat): one scripted chat member. Any failure is recorded and breaks the barrier,
// so nobody waits for a round that cannot finish.
void client(int user, Chat& chat) {
  const std::string me = "user" + std::to_string(user);
  try {
    // Connect in order, so that the server names this client `me`.
    if (user > 1 && !chat.connected[static_cast<std::size_t>(user - 1)].wait(kReadTimeout))
      throw std::runtime_error("the previous client never connected");
    const Socket sock = connect_to(chat.port);
    LineReader in(sock.get());
    const std::string hello = expect_line(in);
    if (hello != "hello") throw std::runtime_error("greeting was '" + hello + "'");
    std::printf("%s < %s\n", me.c_str(), hello.c_str());
    chat.connected[static_cast<std::size_t>(user)].set();

    for (int round = 0; round < kRounds; ++round) {
      chat.steps.wait();  // round starts
      const auto said = lines_said(round, user);
      if (said.size() > 2)
        std::printf("%s > %zu lines: '%s' ... '%s'\n", me.c_str(), said.size(),
                    shorten(said.front()).c_str(), shorten(said.back()).c_str());
      for (const auto& line : said) {
        if (said.size() <= 2) std::printf("%s > %s\n", me.c_str(), line.c_str());
        send_line(sock.get(), line);
        if (round != kFloodRound) continue;
        // Wait until both readers have this line before sending the next: however loaded the
        // machine, they are never more than one line behind, so only user4 can fall behind.
        for (int r = 0; r < kClients - 1; ++r)
          if (!chat.flood_acks.acquire(kReadTimeout))
            throw std::runtime_error("a reader did not get a flood line within 5 s");
      }

      const auto want = expected(round, user);
      std::vector<std::string> got;
      while (got.size() < want.size()) {
        got.push_back(expect_line(in));
        if (round == kFloodRound && got.back().rfind("user1: flood ", 0) == 0)
          chat.flood_acks.release();
      }
      if (const auto d = diff(want, got); !d.empty())
        throw std::runtime_error("round " + std::to_string(round) + ": " + d);
      if (got.size() <= 2) {
        for (const auto& line : got) std::printf("%s < %s\n", me.c_str(), line.c_str());
      } else {
        std::printf("%s < %zu lines, each sender's in order, none of its own\n", me.c_str(),
                    got.size());
      }
      chat.steps.wait();  // round ends
    }

    // After the last round main stops the server: whatever arrives before EOF is one too many.
    std::vector<std::string> extra;
    while (auto line = in.read_line()) extra.push_back(*line);
    if (in.timed_out()) throw std::runtime_error("no EOF within 5 s of the server's stop()");
    if (!extra.empty())
      throw std::runtime_error("unexpected line after the script: '" + shorten(extra[0]) + "'");
  } catch (const std::exception& e) {
    chat.failure[static_cast<std::size_t>(user)] = e.what();
    chat.steps.abort();
  }
}

}  // namespace

int main() {
  int failures = 0;
  auto fail = [&failures](const std::string& what) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  };

  ChatServer server;
  server.start();
  Chat chat;
  chat.port = server.port();
  std::printf("chat server on 127.0.0.1:%u\n", static_cast<unsigned>(chat.port));

  std::vector<concur::Thread> clients;
  clients.reserve(kClients);
  for (int user = 1; user <= kClients; ++user) {
    clients.emplace_back(concur::Thread::Options{.name = "client-user" + std::to_string(user)},
                         client, user, std::ref(chat));
    clients.back().start();
  }

  std::optional<Socket> slow;  // user4
  std::optional<LineReader> slow_in;
  bool script_done = false;
  try {
    if (!chat.connected[kClients].wait(kReadTimeout))
      throw std::runtime_error("the clients did not connect");
    slow.emplace(connect_to(chat.port, kSlowRecvBuffer));
    slow_in.emplace(slow->get());
    if (expect_line(*slow_in) != "hello") throw std::runtime_error("user4 was not greeted");
    std::printf("user4 < hello (and never reads again)\n");

    for (int round = 0; round < kRounds; ++round) {
      std::printf("-- round %d: %s\n", round, kRoundTitles[static_cast<std::size_t>(round)]);
      chat.steps.wait();  // round starts
      chat.steps.wait();  // round ends
    }
    script_done = true;
  } catch (const concur::BrokenBarrierError&) {
    fail("the script stopped early (a client failed, see below)");
  } catch (const std::exception& e) {
    chat.steps.abort();
    fail(std::string("main: ") + e.what());
  }

  // user4 was cut off: what its buffers held arrives, then EOF — never the whole flood.
  if (script_done) {
    int flood_lines = 0;
    while (const auto line = slow_in->read_line())
      if (line->rfind("user1: flood ", 0) == 0) ++flood_lines;
    if (slow_in->timed_out()) fail("user4 saw no EOF: it was never disconnected");
    std::printf("user4 < %d of %d flood lines, then EOF\n", flood_lines, kFloodLines);
    if (flood_lines >= kFloodLines) fail("user4 got the whole flood: it was never dropped");
  }
  // Closed before stop(): a server stuck in a blocking send to user4 is freed by the reset,
  // so a broken slow-client policy fails here instead of hanging in stop().
  slow_in.reset();
  slow.reset();

  std::printf("-- stop\n");
  server.stop();
  for (auto& t : clients) t.join();
  for (int user = 1; user <= kClients; ++user)
    if (const auto& f = chat.failure[static_cast<std::size_t>(user)]; !f.empty())
      fail("user" + std::to_string(user) + ": " + f);
  if (const int d = server.dropped(); d != 1)
    fail("the server dropped " + std::to_string(d) + " members, expected 1 (user4)");

  const std::size_t alive = concur::active_count();
  std::printf("threads alive after stop: %zu (main)\n", alive);
  if (alive != 1) fail("threads left after stop: " + std::to_string(alive - 1));
  return failures == 0 ? 0 : 1;
}
