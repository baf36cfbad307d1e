// Notes "TCP multi-user chat" (多人聊天), the coroutine version of
// examples/54_chat_server_threads.cpp: the same server and the same scripted check, with no thread
// at all — one event loop runs the server (aio::start_server: one task per connection instead of
// one thread) and the four scripted clients (aio tasks with aio::open_connection).
// The protocol is 54's:
// - Port 0 on 127.0.0.1. "hello\n" on connect; every line is broadcast to every *other* member as
//   "<name>: <line>\n" (names user1, user2, ... in accept order); "/quit" or EOF removes the member
//   and broadcasts "<name> left". The member list needs no lock: every task runs on the loop's
//   thread and a broadcast runs to its end without suspending.
// - A slow client cannot stall the others: a broadcast write() never blocks; a member whose
//   unsent bytes (its writer's buffer, behind a 16 KiB kernel send buffer) exceed kSendQueueLimit
//   is aborted (IRC's "SendQ exceeded"), and its connection task then broadcasts "<name> left".
// - stop(): no more broadcasts or notices, the server stops accepting (close()), every live
//   connection is closed (close_clients(): each member's readline() sees EOF and its task ends),
//   and wait_closed() returns once every connection task is done — bounded.
// The check, as 54's: each client gets exactly the broadcasts it should — from the others, in
// order per sender, none of its own — a fourth client that never reads is dropped without
// delaying anyone, user1's /quit reaches the others as "user1 left", and nothing is left running
// at the end (no connection, no task but main). Exit status 0 only when every check held; the
// whole run is bounded by kOverall.
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/streams.hpp"
#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"

using namespace std::chrono_literals;
namespace aio = concur::aio;

namespace {

constexpr int kClients = 3;                   // user1..user3 run the script
constexpr int kSlowUser = kClients + 1;       // user4 connects, reads "hello", then never reads
constexpr auto kReadTimeout = 5s;             // one line, one EOF
constexpr auto kOverall = 25s;                // the whole script (the ctest TIMEOUT is 30 s)
constexpr int kServerSendBuffer = 16 * 1024;  // SO_SNDBUF per connection
constexpr std::size_t kSendQueueLimit = 16 * 1024;  // unsent bytes a member may have
// user4's own receive buffer (~128 KiB) cannot be shrunk after connecting, so the flood is large:
// 512 x ~1 KB is far more than its buffers and the server's hold together.
constexpr int kFloodLines = 512;
constexpr std::size_t kFloodLineBytes = 1000;
constexpr std::size_t kMaxLine = 4096;  // a longer line ends the connection (readline's limit)
constexpr std::string_view kHello = "hello\n";

// ---------------------------------------------------------------------------------------------
// The server.

class ChatServer {
 public:
  ChatServer() = default;
  ChatServer(const ChatServer&) = delete;
  ChatServer& operator=(const ChatServer&) = delete;

  // start(): listen on 127.0.0.1, port 0; one talk() task per accepted connection.
  aio::Task<void> start() {
    server_ = co_await aio::start_server(
        [this](aio::StreamReader in, aio::StreamWriter out) { return talk(std::move(in), out); },
        "127.0.0.1", 0, aio::ServerOptions{.limit = kMaxLine});
  }
  [[nodiscard]] std::uint16_t port() const { return server_.port(); }
  // stop(): 1. no more broadcasts or "left" notices; 2. stop accepting; 3. close every
  // connection (each talk() reads EOF and ends); 4. wait, bounded, until every talk() ended.
  aio::Task<void> stop() {
    stopping_ = true;                                             // 1.
    server_.close();                                              // 2.
    server_.close_clients();                                      // 3.
    co_await aio::wait_for(server_.wait_closed(), kReadTimeout);  // 4.
  }
  // dropped() counts members disconnected because their send queue was full.
  [[nodiscard]] int dropped() const { return dropped_; }
  [[nodiscard]] std::size_t connections() const { return server_.active_connections(); }

 private:
  struct Member {
    std::string name;
    aio::StreamWriter out;
    bool dropped = false;  // aborted for being slow, its talk() leaving
  };

  aio::Task<void> talk(aio::StreamReader in, aio::StreamWriter out);
  // broadcast(from, msg) writes msg to every member but `from`.
  void broadcast(const Member* from, const std::string& msg);

  aio::Server server_;
  std::vector<std::shared_ptr<Member>> members_;
  int next_id_ = 0;
  bool stopping_ = false;
  int dropped_ = 0;
};

aio::Task<void> ChatServer::talk(aio::StreamReader in, aio::StreamWriter out) {
  // A fixed kernel send buffer: what waits for a slow reader is mostly in `out`, where it is
  // counted (left alone, Linux grows the send buffer to megabytes on loopback).
  ::setsockopt(out.fileno(), SOL_SOCKET, SO_SNDBUF, &kServerSendBuffer, sizeof kServerSendBuffer);
  auto me = std::make_shared<Member>(Member{"user" + std::to_string(++next_id_), out});
  // "hello" goes out in the step that admits the member: it is the first line the client reads,
  // and a client that has read it is already in the list.
  out.write(kHello);
  members_.push_back(me);
  std::printf("[server] %s joined\n", me->name.c_str());
  for (;;) {
    std::string line;
    try {
      line = co_await in.readline();  // no timeout: a chat member may stay silent
    } catch (const concur::ValueError&) {
      break;  // longer than kMaxLine
    } catch (const concur::ConnectionError&) {
      break;
    }
    if (line.empty()) break;  // EOF
    line.pop_back();          // readline() keeps the "\n" (a line without one is the last)
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/quit") break;
    broadcast(me.get(), me->name + ": " + line + "\n");
  }
  members_.erase(std::find(members_.begin(), members_.end(), me));
  broadcast(nullptr, me->name + " left\n");  // a no-op once stop() began
  std::printf("[server] %s %s\n", me->name.c_str(),
              stopping_ ? "closed by stop()" : (me->dropped ? "dropped" : "left"));
  out.close();  // what is buffered still goes out, then the connection closes
}

// Slow clients: write() never blocks, so one slow member cannot hold up the others; but what it
// does not read piles up in its writer. Once that exceeds kSendQueueLimit the member is aborted
// (dropping one line would silently lose chat): its readline() then sees EOF and its talk()
// broadcasts "<name> left".
void ChatServer::broadcast(const Member* from, const std::string& msg) {
  if (stopping_) return;
  for (const auto& m : members_) {
    if (m.get() == from || m->dropped) continue;
    m->out.write(msg);
    if (m->out.get_write_buffer_size() > kSendQueueLimit) {
      m->dropped = true;
      ++dropped_;
      m->out.abort();
      std::printf("[server] %s dropped: its send queue is full\n", m->name.c_str());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The script: rounds separated by an aio::Barrier; in each round some clients speak, then every
// client reads exactly the lines the round owes it.

constexpr int kRounds = 5;
constexpr int kFloodRound = 3;
constexpr std::array<const char*, kRounds> kRoundTitles = {
    "user1 speaks", "user2 and user3 speak at once", "all three send 5 lines at once",
    "user1 floods 512 x 1 KB; user4 never reads", "user1 quits"};

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
  std::map<std::string, int> senders;
  for (const auto& [s, v] : w) senders[s];
  for (const auto& [s, v] : g) senders[s];
  static const std::vector<std::string> kNone;
  for (const auto& [s, unused] : senders) {
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

// Chat is what main and the client tasks share (one thread: no locks).
struct Chat {
  std::uint16_t port = 0;
  // kClients + main: every round starts and ends with all of them at the barrier.
  aio::Barrier steps{kClients + 1};
  std::array<aio::Event, kClients + 1> connected;  // [u]: user u has read its "hello"
  aio::Semaphore flood_acks{0};                    // one release per flood line a reader received
  std::array<std::string, kClients + 1> failure;   // [u] written by client u only
};

// read_line(in): the next line without its "\n" (and a trailing "\r"); "no line within 5 s" or
// "unexpected EOF" as std::runtime_error.
aio::Task<std::string> read_line(aio::StreamReader in) {
  std::string line;
  try {
    line = co_await aio::wait_for(in.readline(), kReadTimeout);
  } catch (const concur::TimeoutError&) {
    throw std::runtime_error("no line within 5 s");
  }
  if (line.empty() || line.back() != '\n') throw std::runtime_error("unexpected EOF");
  line.pop_back();
  if (!line.empty() && line.back() == '\r') line.pop_back();
  co_return line;
}

// Awaitable wrappers, so that aio::wait_for can bound them.
aio::Task<void> acquire(aio::Semaphore& sem) { co_await sem.acquire(); }
aio::Task<void> wait_event(aio::Event& ev) { co_await ev.wait(); }

// client(user, chat): one scripted chat member. Any failure is recorded and breaks the barrier,
// so nobody waits for a round that cannot finish.
aio::Task<void> client(int user, Chat& chat) {
  const std::string me = "user" + std::to_string(user);
  const auto slot = static_cast<std::size_t>(user);
  try {
    // Connect in order, so that the server names this client `me`.
    if (user > 1) co_await aio::wait_for(wait_event(chat.connected[slot - 1]), kReadTimeout);
    aio::Connection conn = co_await aio::open_connection("127.0.0.1", chat.port);
    const std::string hello = co_await read_line(conn.reader);
    if (hello != "hello") throw std::runtime_error("greeting was '" + hello + "'");
    std::printf("%s < %s\n", me.c_str(), hello.c_str());
    chat.connected[slot].set();

    for (int round = 0; round < kRounds; ++round) {
      (void)co_await chat.steps.wait();  // round starts
      const auto said = lines_said(round, user);
      if (said.size() > 2)
        std::printf("%s > %zu lines: '%s' ... '%s'\n", me.c_str(), said.size(),
                    shorten(said.front()).c_str(), shorten(said.back()).c_str());
      for (const auto& line : said) {
        if (said.size() <= 2) std::printf("%s > %s\n", me.c_str(), line.c_str());
        conn.writer.write(line + "\n");
        co_await conn.writer.drain();
        if (round != kFloodRound) continue;
        // Wait until both readers have this line before sending the next: they are never more
        // than one line behind, so only user4 can fall behind.
        for (int r = 0; r < kClients - 1; ++r) {
          try {
            co_await aio::wait_for(acquire(chat.flood_acks), kReadTimeout);
          } catch (const concur::TimeoutError&) {
            throw std::runtime_error("a reader did not get a flood line within 5 s");
          }
        }
      }

      const auto want = expected(round, user);
      std::vector<std::string> got;
      while (got.size() < want.size()) {
        got.push_back(co_await read_line(conn.reader));
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
      (void)co_await chat.steps.wait();  // round ends
    }

    // After the last round main stops the server: whatever arrives before EOF is one too many.
    std::string rest;
    try {
      rest = co_await aio::wait_for(conn.reader.read(-1), kReadTimeout);
    } catch (const concur::TimeoutError&) {
      throw std::runtime_error("no EOF within 5 s of the server's stop()");
    }
    if (!rest.empty())
      throw std::runtime_error("unexpected bytes after the script: '" + shorten(rest) + "'");
  } catch (const std::exception& e) {
    chat.failure[slot] = e.what();
    chat.steps.abort();
  }
}

// run_script(): the server, the clients, the checks; returns how many checks failed.
aio::Task<int> run_script() {
  int failures = 0;
  auto fail = [&failures](const std::string& what) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  };

  ChatServer server;
  co_await server.start();
  Chat chat;
  chat.port = server.port();
  std::printf("chat server on 127.0.0.1:%u\n", static_cast<unsigned>(chat.port));

  std::vector<aio::Task<void>> clients;
  for (int user = 1; user <= kClients; ++user) {
    clients.push_back(aio::create_task(client(user, chat), "client-user" + std::to_string(user)));
  }

  std::vector<aio::Connection> slow;  // user4 (0 or 1 element)
  int slow_flood_lines = 0;
  try {
    co_await aio::wait_for(wait_event(chat.connected[kClients]), kReadTimeout);
    slow.push_back(co_await aio::open_connection("127.0.0.1", chat.port));
    const std::string hello = co_await read_line(slow[0].reader);
    if (hello != "hello") throw std::runtime_error("user4 was not greeted");
    std::printf("user4 < hello (and never reads again)\n");

    for (int round = 0; round < kRounds; ++round) {
      std::printf("-- round %d: %s\n", round, kRoundTitles[static_cast<std::size_t>(round)]);
      (void)co_await chat.steps.wait();  // round starts
      (void)co_await chat.steps.wait();  // round ends
    }
  } catch (const concur::BrokenBarrierError&) {
    fail("the script stopped early (a client failed, see below)");
  } catch (const std::exception& e) {
    chat.steps.abort();
    fail(std::string("main: ") + e.what());
  }

  std::printf("-- stop\n");
  try {
    co_await server.stop();
  } catch (const concur::TimeoutError&) {
    fail("the server's connections did not end within 5 s of stop()");
  }
  for (auto& t : clients) co_await t;  // each client catches its own failures
  for (int user = 1; user <= kClients; ++user)
    if (const auto& f = chat.failure[static_cast<std::size_t>(user)]; !f.empty())
      fail("user" + std::to_string(user) + ": " + f);

  // user4 was cut off: what its buffers held arrives, then EOF — never the whole flood.
  if (!slow.empty()) {
    std::string all;
    try {
      all = co_await aio::wait_for(slow[0].reader.read(-1), kReadTimeout);
    } catch (const concur::TimeoutError&) {
      fail("user4 saw no EOF");
    } catch (const concur::ConnectionError& e) {
      fail(std::string("user4: ") + e.what());
    }
    for (std::size_t at = all.find("user1: flood "); at != std::string::npos;
         at = all.find("user1: flood ", at + 1))
      ++slow_flood_lines;
    std::printf("user4 got %d of %d flood lines before it was dropped\n", slow_flood_lines,
                kFloodLines);
    if (slow_flood_lines >= kFloodLines) fail("user4 got the whole flood: it was never dropped");
    slow[0].writer.close();
  }
  if (const int d = server.dropped(); d != 1)
    fail("the server dropped " + std::to_string(d) + " members, expected 1 (user4)");

  const std::size_t conns = server.connections();
  const std::size_t tasks = aio::all_tasks().size();
  std::printf("connections left after stop: %zu; tasks: %zu (main)\n", conns, tasks);
  if (conns != 0) fail("connections left after stop: " + std::to_string(conns));
  // this task and main's, which waits for it under wait_for(kOverall).
  if (tasks > 2) fail("tasks left after stop: " + std::to_string(tasks));
  co_return failures;
}

aio::Task<int> bounded_script() { co_return co_await aio::wait_for(run_script(), kOverall); }

}  // namespace

int main() {
  int failures = 0;
  try {
    failures = aio::run(bounded_script());
  } catch (const concur::TimeoutError&) {
    std::fprintf(stderr, "FAIL: the script did not finish within %lld s\n",
                 static_cast<long long>(kOverall.count()));
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL: %s\n", e.what());
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
