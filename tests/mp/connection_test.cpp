// tests/mp/connection_test.cpp — Pipe, Connection and wait() (concur/mp/connection.hpp).
//
// Cross-process tests fork() before starting any thread. A child does its part and _exit()s; the
// parent never waits without a bound: recv() only after poll(kGenerous) said a message is there,
// children are reaped with a bounded waitpid loop, and TearDown kills and reaps any child left
// behind, then checks that no child of this process is still running.
#include "concur/mp/connection.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "mp/fork_support.hpp"
#include "support/test_support.hpp"

namespace concur::mp {
namespace {

using namespace std::chrono_literals;
using concur::testing::kGenerous;
using concur::testing::kShort;
using concur::testing::kSlack;

// Point is a user type with a cereal serialize() member.
struct Point {
  int x = 0;
  std::string label;
  std::vector<double> weights;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, label, weights);
  }
  bool operator==(const Point&) const = default;
};

// count_fds() is the number of descriptors open in this process.
int count_fds() {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (const dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n - 1;  // opendir's own descriptor
}

// pattern(n, seed) is n bytes that depend on their position, so a misplaced byte is caught.
std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return s;
}

// socket_pair() is two socket-kind Connections adopted from a fresh AF_UNIX socketpair, as the
// Manager makes them (Connection(fd)): frames and descriptors share the socket.
std::pair<Connection, Connection> socket_pair() {
  int sv[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::runtime_error("socketpair failed");
  return {Connection(sv[0]), Connection(sv[1])};
}

// access_mode(fd) is fd's O_ACCMODE (O_RDONLY, O_WRONLY or O_RDWR).
int access_mode(int fd) { return ::fcntl(fd, F_GETFL) & O_ACCMODE; }

// recv_within<T>(c) receives a T once poll(kGenerous) says one is there; fails the test (and
// throws) otherwise, so a test never blocks forever.
template <class T>
T recv_within(Connection& c) {
  if (!c.poll(kGenerous)) throw std::runtime_error("no message within kGenerous");
  return c.recv<T>();
}
std::string recv_bytes_within(Connection& c) {
  if (!c.poll(kGenerous)) throw std::runtime_error("no message within kGenerous");
  return c.recv_bytes();
}

class ConnectionTest : public testing::ForkTest {
 protected:
  // TearDown(): ForkTest's check, and no untracked child either.
  void TearDown() override {
    ForkTest::TearDown();
    int status = 0;
    const pid_t r = ::waitpid(-1, &status, WNOHANG);
    EXPECT_TRUE(r < 0 && errno == ECHILD) << "an untracked child process is still around";
  }
};

// ---- Values and bytes

TEST_F(ConnectionTest, RoundTripsValuesBothWays) {
  auto [a, b] = Pipe();
  EXPECT_TRUE(a.readable() && a.writable() && b.readable() && b.writable());
  a.send(42);
  a.send(std::string("hello"));
  a.send(std::vector<int>{1, 2, 3});
  const Point p{7, "seven", {0.5, 1.5}};
  a.send(p);
  a.send(std::tuple<int, std::string>{3, "three"});
  EXPECT_EQ(b.recv<int>(), 42);
  EXPECT_EQ(b.recv<std::string>(), "hello");
  EXPECT_EQ(b.recv<std::vector<int>>(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(b.recv<Point>(), p);
  EXPECT_EQ((b.recv<std::tuple<int, std::string>>()), (std::tuple<int, std::string>{3, "three"}));
  b.send(std::string("back"));
  EXPECT_EQ(a.recv<std::string>(), "back");
  EXPECT_FALSE(a.poll());
  EXPECT_FALSE(b.poll());
}

TEST_F(ConnectionTest, RecvOfTheWrongTypeThrowsUnpicklingErrorAndConsumesTheMessage) {
  auto [a, b] = Pipe();
  a.send(1);
  a.send(2);
  EXPECT_THROW(b.recv<std::string>(), UnpicklingError);
  EXPECT_EQ(b.recv<int>(), 2);
}

TEST_F(ConnectionTest, SendBytesWithOffsetAndSize) {
  auto [a, b] = Pipe();
  a.send_bytes("hello world");
  a.send_bytes("hello world", 6);
  a.send_bytes("hello world", 2, 3);
  a.send_bytes("hello world", 11);  // an empty message
  a.send_bytes("");
  EXPECT_EQ(b.recv_bytes(), "hello world");
  EXPECT_EQ(b.recv_bytes(), "world");
  EXPECT_EQ(b.recv_bytes(), "llo");
  EXPECT_EQ(b.recv_bytes(), "");
  EXPECT_EQ(b.recv_bytes(), "");
  EXPECT_FALSE(b.poll());
}

TEST_F(ConnectionTest, SendBytesRejectsBadOffsetAndSize) {
  auto [a, b] = Pipe();
  try {
    a.send_bytes("abc", 4);
    ADD_FAILURE() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_STREQ(e.what(), "ValueError: buffer length < offset");
  }
  try {
    a.send_bytes("abc", 1, 3);
    ADD_FAILURE() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_STREQ(e.what(), "ValueError: buffer length < offset + size");
  }
  EXPECT_NO_THROW(a.send_bytes("abc", 1, 2));
  EXPECT_NO_THROW(a.send_bytes("abc", 3, 0));
  EXPECT_EQ(b.recv_bytes(), "bc");
  EXPECT_EQ(b.recv_bytes(), "");
  EXPECT_FALSE(b.poll());  // nothing was sent by the failed calls
}

TEST_F(ConnectionTest, RecvBytesMaxlength) {
  auto [a, b] = Pipe();
  a.send_bytes("0123456789");
  EXPECT_EQ(b.recv_bytes(10), "0123456789");
  a.send_bytes("0123456789");
  try {
    (void)b.recv_bytes(9);
    ADD_FAILURE() << "no throw";
  } catch (const OSError& e) {
    EXPECT_STREQ(e.what(), "OSError: bad message length");
  }
  // As Python: a duplex end can no longer read, but still writes.
  EXPECT_FALSE(b.readable());
  EXPECT_TRUE(b.writable());
  EXPECT_THROW((void)b.recv_bytes(), OSError);
  b.send(5);
  EXPECT_EQ(a.recv<int>(), 5);

  // A read-only end is closed.
  auto [r, w] = Pipe(false);
  w.send_bytes("0123456789");
  EXPECT_THROW((void)r.recv_bytes(3), OSError);
  EXPECT_TRUE(r.closed());
}

TEST_F(ConnectionTest, RecvBytesInto) {
  auto [a, b] = Pipe();
  std::vector<std::byte> buf(16, std::byte{0xee});
  a.send_bytes("hello");
  EXPECT_EQ(b.recv_bytes_into(buf, 2), 5U);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()) + 2, 5), "hello");
  EXPECT_EQ(buf[0], std::byte{0xee});
  EXPECT_EQ(buf[7], std::byte{0xee});

  a.send_bytes("0123456789abcdef");
  EXPECT_EQ(b.recv_bytes_into(buf), 16U);  // exactly fits

  a.send_bytes("0123456789abcdef!");
  a.send_bytes("next");
  try {
    (void)b.recv_bytes_into(buf);
    ADD_FAILURE() << "no throw";
  } catch (const BufferTooShort& e) {
    EXPECT_EQ(e.message(), "0123456789abcdef!");  // the message is consumed and carried
  }
  EXPECT_EQ(b.recv_bytes_into(buf, 12), 4U);

  a.send_bytes("x");
  EXPECT_THROW((void)b.recv_bytes_into(buf, 17), ValueError);
  EXPECT_EQ(b.recv_bytes(), "x");  // the failed call read nothing
}

// ---- poll

TEST_F(ConnectionTest, PollWithAndWithoutTimeout) {
  auto [a, b] = Pipe();
  EXPECT_FALSE(b.poll());
  const auto took = concur::testing::elapsed([&] { EXPECT_FALSE(b.poll(kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_FALSE(b.poll(std::chrono::steady_clock::now() + 5ms));
  EXPECT_FALSE(b.poll(-1s));

  a.send(1);
  EXPECT_TRUE(b.poll());
  EXPECT_TRUE(b.poll(kShort));
  EXPECT_TRUE(b.poll(std::nullopt));
  EXPECT_EQ(b.recv<int>(), 1);
  EXPECT_FALSE(b.poll());

  // poll(timeout) wakes up when a message arrives from another thread.
  std::jthread sender([&a] {
    std::this_thread::sleep_for(20ms);
    a.send(2);
  });
  EXPECT_TRUE(b.poll(kGenerous));
  EXPECT_EQ(b.recv<int>(), 2);
}

TEST_F(ConnectionTest, PollSeesBufferedMessages) {
  // Several small messages usually arrive in one read: the rest are buffered in the Connection,
  // and poll() must still report them.
  auto [a, b] = Pipe();
  for (int i = 0; i < 10; ++i) a.send(i);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.poll());
    EXPECT_EQ(b.recv<int>(), i);
  }
  EXPECT_FALSE(b.poll());
}

// ---- End of file and broken pipes

TEST_F(ConnectionTest, EOFErrorOnceThePeerClosedAndNothingIsLeft) {
  const int fds_before = count_fds();
  {
    auto [a, b] = Pipe();
    a.send(1);
    a.send_bytes("last");
    a.close();
    EXPECT_TRUE(b.poll());
    EXPECT_EQ(b.recv<int>(), 1);
    EXPECT_EQ(b.recv_bytes(), "last");
    EXPECT_TRUE(b.poll());  // end of file is "ready"
    EXPECT_THROW((void)b.recv<int>(), EOFError);
    try {
      (void)b.recv_bytes();
      ADD_FAILURE() << "no throw";
    } catch (const EOFError& e) {
      EXPECT_STREQ(e.what(), "EOFError");
    }
  }
  EXPECT_EQ(count_fds(), fds_before);
}

TEST_F(ConnectionTest, EOFErrorWhenAChildExits) {
  auto [parent_end, child_end] = Pipe();
  const pid_t pid = fork_child([&, &ce = child_end] {
    parent_end.close();
    ce.send(std::string("bye"));
    return 0;
  });
  child_end.close();
  EXPECT_EQ(recv_within<std::string>(parent_end), "bye");
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_TRUE(parent_end.poll(kGenerous));
  EXPECT_THROW((void)parent_end.recv<std::string>(), EOFError);
}

TEST_F(ConnectionTest, BrokenPipeErrorWhenThePeerClosed) {
  auto [a, b] = Pipe();
  b.close();
  try {
    a.send(1);
    ADD_FAILURE() << "no throw";
  } catch (const BrokenPipeError& e) {
    EXPECT_EQ(e.errno_code(), EPIPE);
    EXPECT_STREQ(e.what(), "BrokenPipeError: [Errno 32] Broken pipe");
    const ConnectionError* as_connection_error = &e;
    const OSError* as_os_error = &e;
    EXPECT_NE(as_connection_error, nullptr);
    EXPECT_NE(as_os_error, nullptr);
  }
  EXPECT_THROW(a.send_bytes("x"), BrokenPipeError);
  EXPECT_THROW(a.send_bytes(std::string(kLargeMessageThreshold + 1, 'x')), BrokenPipeError);
}

TEST_F(ConnectionTest, ConnectionResetErrorWhenThePeerClosedWithUnreadMessages) {
  // On a socket (Connection(fd)), Linux reports ECONNRESET to a reader whose peer closed with
  // messages from it still unread, as Python's ConnectionResetError.
  {
    // Pipe()'s ends use pipes, which have no such report: the reader sees end of file.
    auto [a, b] = Pipe();
    a.send(1);
    b.close();
    EXPECT_TRUE(a.poll());
    EXPECT_THROW((void)a.recv<int>(), EOFError);
    EXPECT_THROW(a.send(2), BrokenPipeError);
  }
  auto [a, b] = socket_pair();
  a.send(1);
  b.close();
  EXPECT_TRUE(a.poll());
  try {
    (void)a.recv<int>();
    ADD_FAILURE() << "no throw";
  } catch (const ConnectionResetError& e) {
    EXPECT_EQ(e.errno_code(), ECONNRESET);
    EXPECT_STREQ(e.what(), "ConnectionResetError: [Errno 104] Connection reset by peer");
  }
  EXPECT_THROW(a.send(2), BrokenPipeError);
}

// ---- Pipe(duplex = false)

TEST_F(ConnectionTest, OneWayPipeHasAReaderAndAWriter) {
  auto [r, w] = Pipe(false);
  EXPECT_TRUE(r.readable());
  EXPECT_FALSE(r.writable());
  EXPECT_FALSE(w.readable());
  EXPECT_TRUE(w.writable());
  try {
    r.send(1);
    ADD_FAILURE() << "no throw";
  } catch (const OSError& e) {
    EXPECT_STREQ(e.what(), "OSError: connection is read-only");
  }
  EXPECT_THROW(r.send_bytes("x"), OSError);
  try {
    (void)w.recv<int>();
    ADD_FAILURE() << "no throw";
  } catch (const OSError& e) {
    EXPECT_STREQ(e.what(), "OSError: connection is write-only");
  }
  EXPECT_THROW((void)w.recv_bytes(), OSError);
  EXPECT_THROW((void)w.poll(), OSError);
  // fileno(): the read end of a reading end, the write end of a write-only one.
  EXPECT_EQ(access_mode(r.fileno()), O_RDONLY);
  EXPECT_EQ(access_mode(w.fileno()), O_WRONLY);
  EXPECT_FALSE(r.poll());
  w.send(std::string("one way"));
  EXPECT_EQ(r.recv<std::string>(), "one way");
  w.close();
  EXPECT_THROW((void)r.recv<std::string>(), EOFError);
}

// ---- Large messages: the notes' q.put('X' * 1000000) + p.join() deadlock

class ConnectionLargeMessageTest : public ConnectionTest,
                                   public ::testing::WithParamInterface<std::size_t> {};

TEST_P(ConnectionLargeMessageTest, ChildSendsAndExitsBeforeTheParentReads) {
  const std::size_t size = GetParam();
  const int fds_before = count_fds();
  {
    auto [parent_end, child_end] = Pipe();
    const pid_t pid = fork_child([&, &ce = child_end] {
      parent_end.close();
      ce.send(pattern(size, 1));
      ce.send_bytes(pattern(size, 2));
      ce.send(std::string("small"));
      return 0;
    });
    child_end.close();
    // join before reading: the child must not be blocked in send.
    ASSERT_EQ(wait_child(pid), 0);
    EXPECT_EQ(recv_within<std::string>(parent_end), pattern(size, 1));
    EXPECT_EQ(recv_bytes_within(parent_end), pattern(size, 2));
    EXPECT_EQ(recv_within<std::string>(parent_end), "small");
    EXPECT_THROW((void)parent_end.recv_bytes(), EOFError);
  }
  EXPECT_EQ(count_fds(), fds_before);  // every memfd was closed
}

INSTANTIATE_TEST_SUITE_P(Sizes, ConnectionLargeMessageTest,
                         ::testing::Values(kLargeMessageThreshold, kLargeMessageThreshold + 1,
                                           std::size_t{1} << 20, std::size_t{16} << 20));

TEST_F(ConnectionTest, LargeSendsNeverBlockEvenWithoutAReader) {
  auto [a, b] = Pipe();
  const std::string big = pattern(4 << 20, 3);
  for (int i = 0; i < 4; ++i) a.send_bytes(big);  // 16 MiB pending, far over the socket buffer
  std::vector<std::byte> into(big.size());
  EXPECT_EQ(b.recv_bytes_into(into), big.size());
  EXPECT_EQ(std::memcmp(into.data(), big.data(), big.size()), 0);
  try {
    (void)b.recv_bytes_into(std::span<std::byte>(into).first(10));
    ADD_FAILURE() << "no throw";
  } catch (const BufferTooShort& e) {
    EXPECT_EQ(e.message(), big);
  }
  EXPECT_THROW((void)b.recv_bytes(big.size() - 1), OSError);  // bad message length
}

// ---- Concurrency

// Both processes send `kMessages` while receiving the other's `kMessages`, each direction in its
// own thread: with single-threaded ping-pong this would deadlock once both socket buffers fill.
TEST_F(ConnectionTest, ManySmallMessagesBothWaysConcurrently) {
  constexpr int kMessages = 20000;
  auto [parent_end, child_end] = Pipe();
  // exchange(c) sends 0..kMessages-1 while receiving and checking the same from the peer.
  auto exchange = [](Connection& c) {
    std::atomic<bool> send_ok{true};
    std::jthread sender([&] {
      try {
        for (int i = 0; i < kMessages; ++i) c.send(std::make_pair(i, std::string(i % 50, 'x')));
      } catch (...) {
        send_ok = false;
      }
    });
    bool ok = true;
    for (int i = 0; i < kMessages && ok; ++i) {
      const auto [n, s] = recv_within<std::pair<int, std::string>>(c);
      ok = n == i && s == std::string(i % 50, 'x');
    }
    sender.join();
    return ok && send_ok.load();
  };
  const pid_t pid = fork_child([&, &ce = child_end] {
    parent_end.close();
    return exchange(ce) ? 0 : 1;
  });
  child_end.close();
  EXPECT_TRUE(exchange(parent_end));
  EXPECT_EQ(wait_child(pid), 0);
}

class ConnectionSendersTest : public ::testing::TestWithParam<std::size_t> {};

// Several threads send on one Connection (messages of varied sizes, some through a memfd) while
// one thread receives: every message arrives whole and each sender's messages in order.
TEST_P(ConnectionSendersTest, FramesNeverInterleave) {
  const std::size_t senders = GetParam();
  constexpr int kPerSender = 300;
  auto [a, b] = Pipe();
  std::atomic<bool> failed{false};
  std::vector<std::jthread> threads;
  for (std::size_t t = 0; t < senders; ++t) {
    threads.emplace_back([&a, &failed, t] {
      try {
        for (int i = 0; i < kPerSender; ++i) {
          const std::size_t len = i % 97 == 0 ? kLargeMessageThreshold + 1000
                                              : static_cast<std::size_t>((i * 977) % 9000);
          a.send(std::make_tuple(t, i, std::string(len, static_cast<char>('a' + t))));
        }
      } catch (...) {
        failed = true;
      }
    });
  }
  std::vector<int> next(senders, 0);
  for (std::size_t k = 0; k < senders * kPerSender; ++k) {
    ASSERT_TRUE(b.poll(kGenerous));
    const auto [tag, i, body] = b.recv<std::tuple<std::size_t, int, std::string>>();
    ASSERT_LT(tag, senders);
    ASSERT_EQ(i, next[tag]) << "sender " << tag << " out of order";
    ++next[tag];
    ASSERT_TRUE(std::all_of(body.begin(), body.end(), [&](char ch) {
      return ch == static_cast<char>('a' + tag);
    })) << "a message mixes bytes of two senders";
  }
  threads.clear();
  EXPECT_FALSE(failed.load());
  EXPECT_FALSE(b.poll());
}

INSTANTIATE_TEST_SUITE_P(Senders, ConnectionSendersTest,
                         ::testing::ValuesIn(concur::testing::kThreadCounts));

// ---- Passing connections and descriptors

TEST_F(ConnectionTest, ConnectionSentOverAConnectionInTheSameProcess) {
  const int fds_before = count_fds();
  {
    auto [a, b] = Pipe();
    auto [x, y] = Pipe(false);
    a.send(y);
    y.close();  // the receiver's copy keeps the end alive
    Connection y2 = b.recv<Connection>();
    EXPECT_FALSE(y2.readable());
    EXPECT_TRUE(y2.writable());
    y2.send(std::string("through a passed end"));
    EXPECT_EQ(x.recv<std::string>(), "through a passed end");
    y2.close();
    EXPECT_THROW((void)x.recv<std::string>(), EOFError);
  }
  EXPECT_EQ(count_fds(), fds_before);
}

TEST_F(ConnectionTest, ConnectionAndPayloadPassedToAForkedChild) {
  auto [control, child_control] = Pipe();
  const pid_t pid = fork_child([&, &cc = child_control] {
    control.close();
    // The ends arrive after the fork, so the child holds them only through SCM_RIGHTS.
    auto got = recv_within<Connection>(cc);
    auto [tag, more] = recv_within<std::pair<std::string, std::vector<Connection>>>(cc);
    if (tag != "two ends" || more.size() != 2) return 3;
    const auto question = recv_within<int>(got);
    got.send(question * 2);
    more[0].send_bytes("from child via more[0]");
    more[1].send(std::string("from child via more[1]"));
    return 0;
  });
  child_control.close();

  const int fds_before = count_fds();
  {
    auto [mine, theirs] = Pipe();
    auto [m0, t0] = Pipe(false);
    auto [m1, t1] = Pipe(false);
    control.send(theirs);
    std::pair<std::string, std::vector<Connection>> ends;
    ends.first = "two ends";
    ends.second.push_back(std::move(t0));
    ends.second.push_back(std::move(t1));
    control.send(ends);
    theirs.close();
    ends.second.clear();
    mine.send(21);
    EXPECT_EQ(recv_within<int>(mine), 42);
    EXPECT_EQ(recv_bytes_within(m0), "from child via more[0]");
    EXPECT_EQ(recv_within<std::string>(m1), "from child via more[1]");
    EXPECT_EQ(wait_child(pid), 0);
    // The child exited: its copies are gone, so every end now reports end of file.
    EXPECT_THROW((void)mine.recv_bytes(), EOFError);
    EXPECT_THROW((void)m0.recv_bytes(), EOFError);
    EXPECT_THROW((void)m1.recv_bytes(), EOFError);
  }
  EXPECT_EQ(count_fds(), fds_before);
}

TEST_F(ConnectionTest, AtMost253DescriptorsPerMessage) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < 2048 && lim.rlim_max >= 2048) {
    lim.rlim_cur = 2048;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 1100) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  const int fds_before = count_fds();
  {
    // Socket-kind ends carry one descriptor each.
    auto [a, b] = Pipe();
    std::vector<Connection> ends;
    std::vector<Connection> peers;
    for (std::size_t i = 0; i < kMaxDescriptors + 1; ++i) {
      auto [p, q] = socket_pair();
      ends.push_back(std::move(p));
      peers.push_back(std::move(q));
    }
    EXPECT_THROW(a.send(ends), PicklingError);
    EXPECT_FALSE(b.poll());  // nothing was sent
    ends.pop_back();
    a.send(ends);
    auto got = b.recv<std::vector<Connection>>();
    ASSERT_EQ(got.size(), kMaxDescriptors);
    got[100].send(100);
    EXPECT_EQ(peers[100].recv<int>(), 100);
    // A large message's memfd counts too.
    ends.pop_back();
    std::pair<std::vector<Connection>, std::string> big{std::move(ends), std::string(1 << 17, 'z')};
    ASSERT_EQ(big.first.size(), kMaxDescriptors - 1);
    a.send(big);  // 252 + memfd = 253
    big.first.emplace_back(std::move(peers.back()));
    EXPECT_THROW(a.send(big), PicklingError);  // 253 + memfd
    auto got_big = b.recv<std::pair<std::vector<Connection>, std::string>>();
    EXPECT_EQ(got_big.first.size(), kMaxDescriptors - 1);
    EXPECT_EQ(got_big.second.size(), std::size_t{1} << 17);
  }
  EXPECT_EQ(count_fds(), fds_before);
  {
    // A duplex Pipe() end carries three (its two pipe ends and its side socket): 84 of them are
    // 252 descriptors, 85 are too many.
    auto [a, b] = Pipe();
    std::vector<Connection> ends;
    std::vector<Connection> peers;
    for (std::size_t i = 0; i < kMaxDescriptors / 3 + 1; ++i) {
      auto [p, q] = Pipe();
      ends.push_back(std::move(p));
      peers.push_back(std::move(q));
    }
    EXPECT_THROW(a.send(ends), PicklingError);
    EXPECT_FALSE(b.poll());
    ends.pop_back();
    a.send(ends);
    auto got = b.recv<std::vector<Connection>>();
    ASSERT_EQ(got.size(), kMaxDescriptors / 3);
    got[50].send(50);
    EXPECT_EQ(peers[50].recv<int>(), 50);
    peers[60].send(60);
    EXPECT_EQ(recv_within<int>(got[60]), 60);
  }
  EXPECT_EQ(count_fds(), fds_before);
}

TEST_F(ConnectionTest, AConnectionSavedOutsideAHandOffThrowsPicklingError) {
  auto [a, b] = Pipe();
  // dumps() is a hand-off: it collects the descriptors beside the bytes (borrowed from `a`): a
  // duplex Pipe() end has three (read pipe end, write pipe end, side socket).
  const Payload payload = dumps(a);
  ASSERT_EQ(payload.fds.size(), 3U);
  EXPECT_EQ(payload.fds[0], a.fileno());
  // A plain cereal archive has no descriptor channel: the handle cannot be saved to bytes.
  std::ostringstream os;
  OutputArchive ar(os);
  EXPECT_THROW(ar(a), PicklingError);
  Connection closed;
  EXPECT_THROW(a.send(closed), PicklingError);  // a closed handle cannot travel
  EXPECT_FALSE(b.poll());
  // A handle with received data still buffered cannot travel either (the data would be lost).
  a.send(1);
  a.send(2);
  EXPECT_EQ(b.recv<int>(), 1);
  if (b.poll()) {  // 2 was read in the same recvmsg and is buffered in b
    auto [x, y] = Pipe();
    (void)y;
    EXPECT_THROW(x.send(b), PicklingError);
  }
}

// ---- Both transports: pipe-kind ends (Pipe()) and socket-kind ends (Connection(fd))

enum class EndKind { duplex_pipe, one_way_pipe, socket };

// make_ends(kind) returns (a, b) of that kind: b can send to a; with a duplex kind a can answer.
std::pair<Connection, Connection> make_ends(EndKind kind) {
  switch (kind) {
    case EndKind::duplex_pipe:
      return Pipe();
    case EndKind::one_way_pipe:
      return Pipe(false);
    case EndKind::socket:
      break;
  }
  return socket_pair();
}

class ConnectionKindTest : public ConnectionTest, public ::testing::WithParamInterface<EndKind> {};

// An end of each kind reaches a forked child three ways: inherited across fork(), received over
// another Connection, and made by the child and sent back. Every way carries all of its
// descriptors (3 for a duplex pipe end, 2 for a one-way pipe end, 1 for a socket end).
TEST_P(ConnectionKindTest, EndPassedToAForkedChildAndOverAConnection) {
  const EndKind kind = GetParam();
  const bool duplex = kind != EndKind::one_way_pipe;
  const int fds_before = count_fds();
  {
    {
      auto [x, y] = make_ends(kind);
      const std::size_t expected = kind == EndKind::duplex_pipe ? 3
                                   : kind == EndKind::socket    ? 1
                                                                : 2;
      EXPECT_EQ(dumps(y).fds.size(), expected);
      EXPECT_EQ(dumps(x).fds.size(), expected);
    }
    auto [control, child_control] = Pipe();
    auto [inherited_mine, inherited_theirs] = make_ends(kind);
    const pid_t pid =
        fork_child([&, &cc = child_control, &im = inherited_mine, &it = inherited_theirs] {
          control.close();
          im.close();
          // 1. The inherited end.
          it.send(std::string("inherited"));
          if (duplex && recv_within<int>(it) != 7) return 3;
          // 2. An end received over a Connection.
          Connection got = recv_within<Connection>(cc);
          got.send(std::string("passed"));
          if (duplex && recv_within<int>(got) != 8) return 4;
          // 3. An end the child makes and sends back.
          auto [mine, theirs] = make_ends(kind);
          cc.send(theirs);
          theirs.close();
          if (recv_within<std::string>(mine) != "back") return 5;
          if (duplex) mine.send(9);
          return 0;
        });
    child_control.close();
    inherited_theirs.close();

    EXPECT_EQ(recv_within<std::string>(inherited_mine), "inherited");
    if (duplex) inherited_mine.send(7);

    auto [passed_mine, passed_theirs] = make_ends(kind);
    control.send(passed_theirs);
    passed_theirs.close();
    EXPECT_EQ(recv_within<std::string>(passed_mine), "passed");
    if (duplex) passed_mine.send(8);

    Connection back = recv_within<Connection>(control);
    EXPECT_TRUE(back.writable());
    EXPECT_EQ(back.readable(), duplex);
    back.send(std::string("back"));
    if (duplex) {
      EXPECT_EQ(recv_within<int>(back), 9);
    }

    EXPECT_EQ(wait_child(pid), 0);
    // The child exited: the ends it held are gone, so ours report end of file (or, on a socket
    // with our messages unread, a reset).
    EXPECT_TRUE(inherited_mine.poll(kGenerous));
    EXPECT_THROW((void)inherited_mine.recv_bytes(), EOFError);
    EXPECT_TRUE(passed_mine.poll(kGenerous));
    EXPECT_THROW((void)passed_mine.recv_bytes(), EOFError);
    if (duplex) {
      EXPECT_TRUE(back.poll(kGenerous));
      EXPECT_THROW((void)back.recv_bytes(), EOFError);
    } else {
      EXPECT_THROW(back.send(1), BrokenPipeError);
    }
  }
  EXPECT_EQ(count_fds(), fds_before);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ConnectionKindTest,
                         ::testing::Values(EndKind::duplex_pipe, EndKind::one_way_pipe,
                                           EndKind::socket),
                         [](const ::testing::TestParamInfo<EndKind>& kind_info) {
                           switch (kind_info.param) {
                             case EndKind::duplex_pipe:
                               return std::string("DuplexPipe");
                             case EndKind::one_way_pipe:
                               return std::string("OneWayPipe");
                             case EndKind::socket:
                               break;
                           }
                           return std::string("Socket");
                         });

// sigpipe_pending() is whether a SIGPIPE is pending for this thread or the process.
bool sigpipe_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

// sigpipe_blocked() is whether this thread blocks SIGPIPE.
bool sigpipe_blocked() {
  sigset_t mask;
  sigemptyset(&mask);
  ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, SIGPIPE) == 1;
}

// set_sigpipe(handler) sets SIGPIPE's disposition.
void set_sigpipe(void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGPIPE, &sa, nullptr);
}

// A send to a closed pipe raises SIGPIPE in the kernel; send() must turn it into BrokenPipeError
// only, whatever the disposition, and leave the thread's mask and pending set as it found them.
// Runs in a child, so that a failure shows as an exit code rather than killing the test runner.
TEST_F(ConnectionTest, BrokenPipeErrorWithSigpipeAtItsDefaultNeitherKillsNorLeavesItPending) {
  const pid_t pid = fork_child([] {
    set_sigpipe(SIG_DFL);
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    ::pthread_sigmask(SIG_UNBLOCK, &pipe_set, nullptr);
    // expect_broken(send) is 0 when send() throws BrokenPipeError, leaving no SIGPIPE pending.
    auto expect_broken = [](const std::function<void()>& send) {
      try {
        send();
        return 10;
      } catch (const BrokenPipeError&) {
      }
      if (sigpipe_pending()) return 11;
      if (sigpipe_blocked()) return 12;  // the mask was restored
      return 0;
    };
    auto [a, b] = Pipe();
    auto [r, w] = Pipe(false);
    auto [x, y] = Pipe();
    b.close();
    r.close();
    int rc = 0;
    if ((rc = expect_broken([&a = a] { a.send(1); })) != 0) return rc;
    if ((rc = expect_broken([&a = a] { a.send_bytes("bytes"); })) != 0) return rc + 10;
    if ((rc = expect_broken([&a = a, &y = y] { a.send(y); })) != 0) return rc + 20;  // fds
    if ((rc = expect_broken([&a = a] {
           a.send_bytes(std::string(kLargeMessageThreshold + 1, 'x'));  // a memfd
         })) != 0)
      return rc + 30;
    if ((rc = expect_broken([&w = w] { w.send(std::string("one way")); })) != 0) return rc + 40;

    // Blocked already, with a SIGPIPE of its own pending: send() leaves both as they were.
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
    ::pthread_kill(::pthread_self(), SIGPIPE);
    if (!sigpipe_pending()) return 60;
    try {
      a.send(2);
      return 61;
    } catch (const BrokenPipeError&) {
    }
    if (!sigpipe_pending() || !sigpipe_blocked()) return 62;
    const timespec zero{};
    if (::sigtimedwait(&pipe_set, nullptr, &zero) != SIGPIPE) return 63;
    // Blocked already, nothing pending: the SIGPIPE this send raised is consumed.
    try {
      a.send(3);
      return 64;
    } catch (const BrokenPipeError&) {
    }
    if (sigpipe_pending() || !sigpipe_blocked()) return 65;
    ::pthread_sigmask(SIG_UNBLOCK, &pipe_set, nullptr);

    // Ignored when the end was made: the fast path (no mask changes) also throws.
    set_sigpipe(SIG_IGN);
    auto [c, d] = Pipe();
    d.close();
    if ((rc = expect_broken([&c = c] { c.send(4); })) != 0) return rc + 70;
    set_sigpipe(SIG_DFL);
    return 0;
  });
  EXPECT_EQ(wait_child(pid), 0) << "-13 means SIGPIPE killed the child";
}

// FdBox is a minimal handle for tests: one descriptor, saved with save_fd (not owned).
struct FdBox {
  int fd = -1;
  template <class Archive>
  void save(Archive& ar) const {
    save_fd(ar, fd);
  }
  template <class Archive>
  void load(Archive& ar) {
    fd = load_fd(ar);
  }
};

// inode(fd) identifies the file fd refers to.
std::uint64_t inode(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_ino);
}

// One thread sends frames with descriptors (1 to 3, some with a large payload whose memfd counts
// too) while another sends plain frames (some large: a memfd alone); each descriptor must arrive
// with the frame that names it. On the pipes kind descriptors travel on a side socket, so this
// checks that the two channels stay in step.
TEST_F(ConnectionTest, DescriptorFramesInterleavedWithPlainFramesStayMatched) {
  constexpr int kFrames = 1500;
  constexpr std::size_t kPool = 16;
  // Msg: sender tag, sequence number, the inodes of `boxes`, the boxes, a body.
  using Msg = std::tuple<int, int, std::vector<std::uint64_t>, std::vector<FdBox>, std::string>;
  const int fds_before = count_fds();
  {
    std::vector<int> pool;
    for (std::size_t i = 0; i < kPool; ++i)
      pool.push_back(::memfd_create("concur-test", MFD_CLOEXEC));
    ASSERT_TRUE(std::all_of(pool.begin(), pool.end(), [](int fd) { return fd >= 0; }));
    auto [a, b] = Pipe();
    std::atomic<bool> failed{false};
    std::jthread with_fds([&a = a, &pool, &failed] {
      try {
        for (int i = 0; i < kFrames; ++i) {
          Msg m;
          std::get<0>(m) = 0;
          std::get<1>(m) = i;
          for (int k = 0; k <= i % 3; ++k) {
            const int fd = pool[static_cast<std::size_t>(i * 7 + k) % kPool];
            std::get<2>(m).push_back(inode(fd));
            std::get<3>(m).push_back(FdBox{fd});
          }
          std::get<4>(m) =
              std::string(i % 41 == 0 ? kLargeMessageThreshold + 7 : std::size_t{10}, 'f');
          a.send(m);
        }
      } catch (...) {
        failed = true;
      }
    });
    std::jthread plain([&a = a, &failed] {
      try {
        for (int i = 0; i < kFrames; ++i) {
          Msg m;
          std::get<0>(m) = 1;
          std::get<1>(m) = i;
          std::get<4>(m) = std::string(
              i % 53 == 0 ? kLargeMessageThreshold + 3 : static_cast<std::size_t>(i % 300), 'p');
          a.send(m);
        }
      } catch (...) {
        failed = true;
      }
    });
    // On a failure the loop stops and closing `b` unblocks the senders, so the test cannot hang.
    int next[2] = {0, 0};
    bool ok = true;
    for (int k = 0; k < 2 * kFrames && ok; ++k) {
      try {
        auto [tag, seq, inodes, boxes, body] = recv_within<Msg>(b);
        ok = (tag == 0 || tag == 1) && seq == next[tag] && inodes.size() == boxes.size() &&
             (tag == 0) == !boxes.empty();
        EXPECT_TRUE(ok) << "frame " << seq << " of sender " << tag << " is out of place";
        if (ok) ++next[tag];
        for (std::size_t j = 0; j < boxes.size(); ++j) {
          if (ok && inode(boxes[j].fd) != inodes[j]) {
            ADD_FAILURE() << "frame " << seq << " of sender 0 got another frame's descriptor";
            ok = false;
          }
          ::close(boxes[j].fd);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ok = false;
      }
    }
    if (!ok) b.close();
    with_fds.join();
    plain.join();
    if (ok) {
      EXPECT_FALSE(failed.load());
      EXPECT_FALSE(b.poll());
    }
    for (const int fd : pool) ::close(fd);
  }
  EXPECT_EQ(count_fds(), fds_before);
}

// ---- wait()

TEST_F(ConnectionTest, WaitReturnsTheReadyConnections) {
  auto [r0, w0] = Pipe();
  auto [r1, w1] = Pipe();
  auto [r2, w2] = Pipe(false);
  std::vector<Connection*> conns{&r0, &r1, &r2};
  EXPECT_TRUE(wait(conns, 10ms).empty());
  EXPECT_TRUE(wait(conns, std::chrono::steady_clock::now() + 5ms).empty());

  w1.send(1);
  EXPECT_EQ(wait(conns, kGenerous), std::vector<Connection*>{&r1});
  EXPECT_EQ(wait(conns), std::vector<Connection*>{&r1});
  w2.close();  // end of file is ready too
  EXPECT_EQ(wait(conns, kGenerous), (std::vector<Connection*>{&r1, &r2}));
  EXPECT_EQ(r1.recv<int>(), 1);
  EXPECT_EQ(wait(conns, kGenerous), std::vector<Connection*>{&r2});

  // wait() wakes up when a message arrives from another thread.
  std::jthread sender([&w0] {
    std::this_thread::sleep_for(20ms);
    w0.send(0);
  });
  std::vector<Connection*> two{&r0, &r1};
  EXPECT_EQ(wait(two, kGenerous), std::vector<Connection*>{&r0});

  // Buffered messages count (several sends usually arrive in one read).
  w1.send(1);
  w1.send(2);
  EXPECT_EQ(r1.recv<int>(), 1);
  EXPECT_EQ(wait(two, kGenerous), (std::vector<Connection*>{&r0, &r1}));

  EXPECT_TRUE(wait(std::span<Connection* const>{}, 1ms).empty());
  EXPECT_THROW((void)wait(std::span<Connection* const>{}), ValueError);
  Connection closed;
  std::vector<Connection*> with_closed{&r0, &closed};
  EXPECT_THROW((void)wait(with_closed, 1ms), OSError);
}

// ---- Closed handles and moves

TEST_F(ConnectionTest, ClosedHandleErrors) {
  auto check_closed = [](Connection& c) {
    EXPECT_TRUE(c.closed());
    try {
      c.send(1);
      ADD_FAILURE() << "no throw";
    } catch (const OSError& e) {
      EXPECT_STREQ(e.what(), "OSError: handle is closed");
      EXPECT_EQ(e.errno_code(), EBADF);
    }
    EXPECT_THROW(c.send_bytes("x"), OSError);
    EXPECT_THROW((void)c.recv<int>(), OSError);
    EXPECT_THROW((void)c.recv_bytes(), OSError);
    std::vector<std::byte> buf(4);
    EXPECT_THROW((void)c.recv_bytes_into(buf), OSError);
    EXPECT_THROW((void)c.poll(), OSError);
    EXPECT_THROW((void)c.poll(1ms), OSError);
    EXPECT_THROW((void)c.fileno(), OSError);
    c.close();  // idempotent
  };
  Connection never_opened;
  check_closed(never_opened);
  EXPECT_FALSE(never_opened.readable());

  auto [a, b] = Pipe();
  EXPECT_GE(a.fileno(), 0);
  a.close();
  check_closed(a);
  EXPECT_TRUE(a.readable());  // as Python: the flags outlive close()

  EXPECT_THROW(Connection(-1), ValueError);
  EXPECT_THROW(Connection(b.fileno(), false, false), ValueError);
}

TEST_F(ConnectionTest, MovesTransferTheSocketAndBufferedMessages) {
  const int fds_before = count_fds();
  {
    auto [a, b] = Pipe();
    a.send(1);
    a.send(2);
    EXPECT_EQ(b.recv<int>(), 1);
    Connection moved(std::move(b));
    EXPECT_TRUE(b.closed());  // NOLINT(bugprone-use-after-move): moved-from is closed
    EXPECT_FALSE(b.readable());
    EXPECT_EQ(moved.recv<int>(), 2);
    Connection assigned;
    a.send(3);
    assigned = std::move(moved);
    EXPECT_EQ(assigned.recv<int>(), 3);
    auto [c, d] = Pipe();
    assigned = std::move(c);  // closes the old socket
    d.send(4);
    EXPECT_EQ(assigned.recv<int>(), 4);
    EXPECT_THROW(a.send(5), BrokenPipeError);
  }
  EXPECT_EQ(count_fds(), fds_before);
}

}  // namespace
}  // namespace concur::mp
