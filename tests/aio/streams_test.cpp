// Tests for include/concur/aio/streams.hpp: StreamReader on fed data (ported from CPython's
// test_asyncio/test_streams.py: read, readline, readuntil, readexactly, limits, EOF, exceptions,
// one waiter at a time), and TCP streams on 127.0.0.1 / ::1 with port 0: echo round trips, the
// reads over a socket, read(-1) until EOF, write_eof, drain() backpressure against a peer that
// does not read (the writer's buffer stays bounded), cancelled reads keep their bytes, cancelled
// drains and connects leave the stream consistent, peername/sockname, a connection reset, a
// refused connection, an unknown host, server close/close_clients/wait_closed/serve_forever, a
// handler that throws (reported once), 200 concurrent clients, handles that outlive their loop,
// streams used from another loop; TLS (a certificate made at run time): round trips, a large
// transfer ended by close_notify, certificate and host-name failures, a plain client on a TLS
// server, a cancelled TLS read; Unix streams (test_unix_events' create_unix_server /
// open_unix_connection cases): echo with names and limits, backpressure, a stale socket file
// replaced, a regular file refused, cleanup_socket, abstract names, connect errors, TLS;
// StreamWriter::sendfile (test_sendfile's loop.sendfile cases) over TCP, Unix and TLS (fallback),
// and cancelled mid-transfer.
// Every test's coroutine runs under aio::wait_for(kAioBound): nothing can hang.
#include "concur/aio/streams.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "support/aio_support.hpp"
#include "support/hook_support.hpp"
#include "support/temp_dir.hpp"
#include "support/tls_support.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

const std::string kData = "line1\nline2\nline3\n";  // CPython's DATA

class AioStreamsTest : public HookCapturingTest {};

void set_int_option(int fd, int level, int name, int value) {
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::setsockopt(fd, level, name, &value, sizeof value), 0) << errno;
}

// ---- StreamReader on fed data (CPython test_streams.py) ----------------------------------------

TEST_F(AioStreamsTest, ReadReturnsWhatIsBufferedUpToN) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;
    stream.feed_data(kData);
    const std::string zero = co_await stream.read(0);  // test_read_zero
    EXPECT_EQ(zero, "");
    const std::string first = co_await stream.read(5);
    EXPECT_EQ(first, "line1");
    const std::string rest = co_await stream.read(100);
    EXPECT_EQ(rest, "\nline2\nline3\n");
    EXPECT_EQ(stream.buffered(), 0u);
  }());
}

TEST_F(AioStreamsTest, ReadWaitsForDataAndEof) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;
    // test_read: a read waiting for data gets what is fed.
    auto reading = aio::create_task(stream.read(30));
    co_await aio::sleep(0ms);
    EXPECT_FALSE(reading.done());
    stream.feed_data(kData);
    const std::string got = co_await reading;
    EXPECT_EQ(got, kData);
    // test_read_eof: a read waiting at EOF returns "".
    auto at_eof = aio::create_task(stream.read(1024));
    co_await aio::sleep(0ms);
    stream.feed_eof();
    const std::string none = co_await at_eof;
    EXPECT_EQ(none, "");
    EXPECT_TRUE(stream.at_eof());
  }());
}

TEST_F(AioStreamsTest, ReadMinusOneReadsUntilEof) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_read_until_eof
    auto reading = aio::create_task(stream.read(-1));
    co_await aio::sleep(0ms);
    stream.feed_data("chunk1\n");
    co_await aio::sleep(0ms);
    stream.feed_data("chunk2");
    co_await aio::sleep(0ms);
    EXPECT_FALSE(reading.done());
    stream.feed_eof();
    const std::string all = co_await reading;
    EXPECT_EQ(all, "chunk1\nchunk2");
  }());
}

TEST_F(AioStreamsTest, ReadRaisesTheStreamsException) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_read_exception
    stream.feed_data("line\n");
    const std::string two = co_await stream.read(2);
    EXPECT_EQ(two, "li");
    stream.set_exception(std::make_exception_ptr(ValueError("boom")));
    bool raised = false;
    try {
      (void)co_await stream.read(2);
    } catch (const ValueError&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    EXPECT_NE(stream.exception(), nullptr);
    // test_exception_waiter: a waiting read wakes with the exception.
    aio::StreamReader other;
    auto waiting = aio::create_task(other.readline());
    co_await aio::sleep(0ms);
    other.set_exception(std::make_exception_ptr(ValueError("later")));
    bool woke = false;
    try {
      (void)co_await waiting;
    } catch (const ValueError&) {
      woke = true;
    }
    EXPECT_TRUE(woke);
  }());
}

TEST_F(AioStreamsTest, ReadlineJoinsChunksAndKeepsTheRest) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_readline
    stream.feed_data("chunk1 ");
    auto reading = aio::create_task(stream.readline());
    co_await aio::sleep(0ms);
    stream.feed_data("chunk2 ");
    stream.feed_data("chunk3 ");
    stream.feed_data("\n chunk4");
    const std::string line = co_await reading;
    EXPECT_EQ(line, "chunk1 chunk2 chunk3 \n");
    EXPECT_EQ(stream.buffered(), std::string(" chunk4").size());
    // test_readline_read_byte_count
    aio::StreamReader s2;
    s2.feed_data(kData);
    (void)co_await s2.readline();
    const std::string seven = co_await s2.read(7);
    EXPECT_EQ(seven, "line2\nl");
    EXPECT_EQ(s2.buffered(), std::string("ine3\n").size());
  }());
}

TEST_F(AioStreamsTest, ReadlineAtEof) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_readline_eof
    stream.feed_data("some data");
    stream.feed_eof();
    const std::string line = co_await stream.readline();
    EXPECT_EQ(line, "some data");
    const std::string none = co_await stream.readline();
    EXPECT_EQ(none, "");
    aio::StreamReader empty;  // test_readline_empty_eof
    empty.feed_eof();
    const std::string nothing = co_await empty.readline();
    EXPECT_EQ(nothing, "");
    aio::StreamReader s3;  // test_at_eof
    s3.feed_data("some data\n");
    EXPECT_FALSE(s3.at_eof());
    (void)co_await s3.readline();
    EXPECT_FALSE(s3.at_eof());
    s3.feed_data("more");
    s3.feed_eof();
    EXPECT_FALSE(s3.at_eof());
    (void)co_await s3.readline();
    EXPECT_TRUE(s3.at_eof());
  }());
}

TEST_F(AioStreamsTest, ReadlineOverTheLimitIsAValueErrorAndDiscardsTheLine) {
  run_bounded([]() -> aio::Task<void> {
    // test_readline_limit_with_existing_data
    aio::StreamReader stream(3);
    stream.feed_data("li");
    stream.feed_data("ne1\nline2\n");
    bool raised = false;
    try {
      (void)co_await stream.readline();
    } catch (const ValueError& e) {
      raised = std::string(e.what()).find("chunk is longer than limit") != std::string::npos;
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(stream.buffered(), std::string("line2\n").size());  // the rest stays
    aio::StreamReader s2(3);
    s2.feed_data("li");
    s2.feed_data("ne1");
    s2.feed_data("li");
    raised = false;
    try {
      (void)co_await s2.readline();
    } catch (const ValueError& e) {
      raised = std::string(e.what()).find("not found") != std::string::npos;
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(s2.buffered(), 0u);  // no separator: the whole buffer went
    EXPECT_THROW(aio::StreamReader(0), ValueError);
  }());
}

TEST_F(AioStreamsTest, ReaduntilFindsSeparatorsAcrossChunks) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_readuntil_multi_chunks
    stream.feed_data("lineAAA");
    std::string data = co_await stream.readuntil("AAA");
    EXPECT_EQ(data, "lineAAA");
    stream.feed_data("lineAAAxxx");
    data = co_await stream.readuntil("AAA");
    EXPECT_EQ(data, "lineAAA");
    EXPECT_EQ(stream.buffered(), 3u);
    (void)co_await stream.read(3);
    // test_readuntil_multi_chunks_1
    struct Case {
      std::vector<std::string> feeds;
      std::string want;
    };
    const std::vector<Case> cases = {{{"QWEaa", "XYaa", "a"}, "QWEaaXYaaa"},
                                     {{"QWEaa", "XYa", "aa"}, "QWEaaXYaaa"},
                                     {{"aaa"}, "aaa"},
                                     {{"Xaaa"}, "Xaaa"},
                                     {{"XXX", "a", "a", "a"}, "XXXaaa"}};
    for (const Case& c : cases) {
      for (const auto& f : c.feeds) stream.feed_data(f);
      data = co_await stream.readuntil("aaa");
      EXPECT_EQ(data, c.want);
      EXPECT_EQ(stream.buffered(), 0u);
    }
    bool empty_sep = false;  // test_readuntil_separator
    try {
      (void)co_await stream.readuntil("");
    } catch (const ValueError&) {
      empty_sep = true;
    }
    EXPECT_TRUE(empty_sep);
  }());
}

TEST_F(AioStreamsTest, ReaduntilAtEofRaisesIncompleteReadError) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_readuntil_eof
    stream.feed_data("some dataAA");
    stream.feed_eof();
    bool raised = false;
    try {
      (void)co_await stream.readuntil("AAA");
    } catch (const IncompleteReadError& e) {
      raised = true;
      EXPECT_EQ(e.partial(), "some dataAA");
      EXPECT_EQ(e.expected(), 0u);  // Python's None
      EXPECT_NE(std::string(e.what()).find("undefined"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(stream.buffered(), 0u);
  }());
}

TEST_F(AioStreamsTest, ReaduntilOverTheLimitRaisesLimitOverrunErrorAndKeepsTheData) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream(3);  // test_readuntil_limit_found_sep
    stream.feed_data("some dataAA");
    std::string what;
    std::size_t consumed = 0;
    try {
      (void)co_await stream.readuntil("AAA");
    } catch (const LimitOverrunError& e) {
      what = e.what();
      consumed = e.consumed();
    }
    EXPECT_NE(what.find("not found"), std::string::npos) << what;
    EXPECT_EQ(consumed, 9u);
    EXPECT_EQ(stream.buffered(), 11u);
    stream.feed_data("A");
    what.clear();
    try {
      (void)co_await stream.readuntil("AAA");
    } catch (const LimitOverrunError& e) {
      what = e.what();
      consumed = e.consumed();
    }
    EXPECT_NE(what.find("is found"), std::string::npos) << what;
    EXPECT_EQ(consumed, 9u);
    EXPECT_EQ(stream.buffered(), 12u);
  }());
}

TEST_F(AioStreamsTest, ReadexactlyWaitsForAllBytes) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_readexactly
    const std::size_t n = 2 * kData.size();
    auto reading = aio::create_task(stream.readexactly(n));
    co_await aio::sleep(0ms);
    stream.feed_data(kData);
    co_await aio::sleep(0ms);
    EXPECT_FALSE(reading.done());
    stream.feed_data(kData);
    stream.feed_data(kData);
    const std::string got = co_await reading;
    EXPECT_EQ(got, kData + kData);
    EXPECT_EQ(stream.buffered(), kData.size());
    const std::string zero = co_await stream.readexactly(0);  // test_readexactly_zero_or_less
    EXPECT_EQ(zero, "");
    aio::StreamReader limited(3);  // test_readexactly_limit: the limit does not apply
    limited.feed_data("chunk");
    const std::string chunk = co_await limited.readexactly(5);
    EXPECT_EQ(chunk, "chunk");
  }());
}

TEST_F(AioStreamsTest, ReadexactlyAtEofRaisesIncompleteReadError) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_readexactly_eof
    const std::size_t n = 2 * kData.size();
    auto reading = aio::create_task(stream.readexactly(n));
    co_await aio::sleep(0ms);
    stream.feed_data(kData);
    stream.feed_eof();
    bool raised = false;
    try {
      (void)co_await reading;
    } catch (const IncompleteReadError& e) {
      raised = true;
      EXPECT_EQ(e.partial(), kData);
      EXPECT_EQ(e.expected(), n);
      EXPECT_STREQ(e.what(), "IncompleteReadError: 18 bytes read on a total of 36 expected bytes");
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(stream.buffered(), 0u);
  }());
}

TEST_F(AioStreamsTest, OneTaskAtATimeMayWaitForData) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;
    auto first = aio::create_task(stream.readline());
    co_await aio::sleep(0ms);
    bool refused = false;
    try {
      (void)co_await stream.read(1);
    } catch (const RuntimeError& e) {
      refused = std::string(e.what()).find("already waiting") != std::string::npos;
    }
    EXPECT_TRUE(refused);
    stream.feed_data("x\n");
    const std::string line = co_await first;
    EXPECT_EQ(line, "x\n");
    stream.feed_eof();
    EXPECT_THROW(stream.feed_data("late"), RuntimeError);
  }());
}

TEST_F(AioStreamsTest, CancellingAWaitingReadLeavesTheReaderUsable) {
  run_bounded([]() -> aio::Task<void> {
    aio::StreamReader stream;  // test_exception_cancel
    auto reading = aio::create_task(stream.readline());
    co_await aio::sleep(0ms);
    EXPECT_TRUE(reading.cancel());
    co_await expect_cancelled(reading);
    stream.feed_data("after\n");
    const std::string line = co_await stream.readline();
    EXPECT_EQ(line, "after\n");
  }());
}

// ---- TCP ---------------------------------------------------------------------------------------

TEST_F(AioStreamsTest, EchoRoundTrip) {
  run_bounded([]() -> aio::Task<void> {
    aio::Server server = co_await aio::start_server(echo_lines, "127.0.0.1", 0);
    EXPECT_NE(server.port(), 0);
    EXPECT_TRUE(server.is_serving());
    CO_ASSERT_EQ(server.sockets().size(), 1u);
    EXPECT_EQ(server.sockets()[0].to_string(), "127.0.0.1:" + std::to_string(server.port()));
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", server.port());
    writer.write("hello\n");
    co_await writer.drain();
    const std::string back = co_await reader.readline();
    EXPECT_EQ(back, "hello\n");
    writer.writelines({"two ", "parts\n"});
    std::vector<std::string> lines = {"third\n", "fourth\n"};
    writer.writelines(lines);
    co_await writer.drain();
    const std::string two = co_await reader.readline();
    const std::string three = co_await reader.readline();
    const std::string four = co_await reader.readline();
    EXPECT_EQ(two, "two parts\n");
    EXPECT_EQ(three, "third\n");
    EXPECT_EQ(four, "fourth\n");
    EXPECT_FALSE(writer.is_closing());
    writer.close();
    EXPECT_TRUE(writer.is_closing());
    co_await writer.wait_closed();
    server.close();
    EXPECT_FALSE(server.is_serving());
    co_await server.wait_closed();
    EXPECT_EQ(server.active_connections(), 0u);
  }());
}

TEST_F(AioStreamsTest, SocketReadsHonourSeparatorsLimitsAndEof) {
  run_bounded([]() -> aio::Task<void> {
    auto handler = [](aio::StreamReader, aio::StreamWriter w) -> aio::Task<void> {
      w.write("line1\nline2\n");
      w.write(std::string(100, 'x'));  // no separator: past a limit of 16
      w.write("\npartial");
      w.close();
      co_await w.wait_closed();
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c =
        co_await aio::open_connection("127.0.0.1", server.port(), aio::ConnectOptions{.limit = 16});
    EXPECT_EQ(c.reader.limit(), 16u);
    const std::string l1 = co_await c.reader.readline();
    EXPECT_EQ(l1, "line1\n");
    const std::string l2 = co_await c.reader.readuntil("2\n");
    EXPECT_EQ(l2, "line2\n");
    bool overrun = false;
    try {
      (void)co_await c.reader.readuntil("\n");
    } catch (const LimitOverrunError& e) {
      overrun = e.consumed() > 16;
    }
    EXPECT_TRUE(overrun);
    const std::string xs = co_await c.reader.readexactly(101);  // the bytes stayed buffered
    EXPECT_EQ(xs, std::string(100, 'x') + "\n");
    bool incomplete = false;
    try {
      (void)co_await c.reader.readexactly(100);
    } catch (const IncompleteReadError& e) {
      incomplete = e.partial() == "partial" && e.expected() == 100;
    }
    EXPECT_TRUE(incomplete);
    EXPECT_TRUE(c.reader.at_eof());
    const std::string none = co_await c.reader.read();
    EXPECT_EQ(none, "");
  }());
}

TEST_F(AioStreamsTest, ReadMinusOneReturnsEverythingUntilThePeerCloses) {
  run_bounded([]() -> aio::Task<void> {
    static const std::string kBig = [] {
      std::string s(1 << 20, '\0');
      for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('a' + i % 23);
      return s;
    }();
    auto handler = [](aio::StreamReader, aio::StreamWriter w) -> aio::Task<void> {
      for (std::size_t off = 0; off < kBig.size(); off += 100'000) {
        w.write(std::string_view(kBig).substr(off, 100'000));
        co_await w.drain();
      }
      w.close();
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    const std::string all = co_await c.reader.read(-1);
    EXPECT_EQ(all.size(), kBig.size());
    EXPECT_TRUE(all == kBig);
    EXPECT_TRUE(c.reader.at_eof());
  }());
}

TEST_F(AioStreamsTest, WriteEofHalfClosesAndReadingGoesOn) {
  run_bounded([]() -> aio::Task<void> {
    auto handler = [](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      const std::string all = co_await r.read(-1);  // until the client's write_eof
      w.write("pong:" + all);
      w.close();
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    EXPECT_TRUE(c.writer.can_write_eof());
    c.writer.write("ping");
    c.writer.write_eof();
    EXPECT_THROW(c.writer.write("more"), RuntimeError);
    const std::string reply = co_await c.reader.read(-1);
    EXPECT_EQ(reply, "pong:ping");
  }());
}

// write_chunks: writes `count` chunks of `chunk` bytes (chunk i filled with 'a' + i % 26),
// draining after each; records progress for the test to watch.
struct WriteProgress {
  std::size_t chunks = 0;
  bool in_drain = false;
  std::size_t max_buffer = 0;
};

char fill_of(std::size_t i) { return static_cast<char>('a' + i % 26); }

aio::Task<void> write_chunks(aio::StreamWriter w, std::size_t chunk, std::size_t first,
                             std::size_t count, WriteProgress* p) {
  for (std::size_t i = first; i < first + count; ++i) {
    w.write(std::string(chunk, fill_of(i)));
    p->max_buffer = std::max(p->max_buffer, w.get_write_buffer_size());
    p->in_drain = true;
    co_await w.drain();
    p->in_drain = false;
    ++p->chunks;
  }
}

// blocked_in_drain(p): the writer sits in drain() with no progress for 200 ms (bounded).
aio::Task<bool> blocked_in_drain(const WriteProgress& p) {
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  std::size_t last = p.chunks;
  int still = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    co_await aio::sleep(20ms);
    if (p.in_drain && p.chunks == last) {
      if (++still == 10) co_return true;
    } else {
      still = 0;
      last = p.chunks;
    }
  }
  co_return false;
}

// check_pattern(data, chunk): data is chunks 0, 1, 2... in order.
bool check_pattern(const std::string& data, std::size_t chunk) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] != fill_of(i / chunk)) return false;
  }
  return true;
}

TEST_F(AioStreamsTest, DrainSuspendsTheWriterAndBoundsItsBufferWhileThePeerDoesNotRead) {
  run_bounded([]() -> aio::Task<void> {
    constexpr std::size_t kChunk = 16 * 1024;
    constexpr std::size_t kChunks = 512;  // 8 MiB: far more than the socket buffers hold
    aio::Event start_reading;
    std::string received;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter) -> aio::Task<void> {
      co_await start_reading.wait();
      received = co_await r.read(-1);
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    // A small kernel send buffer, so the writer's own buffer fills soon. (Only the sender's: a
    // receive buffer shrunk after the handshake makes Linux drop segments and stall for seconds.)
    set_int_option(c.writer.fileno(), SOL_SOCKET, SO_SNDBUF, 16 * 1024);
    WriteProgress p;
    auto writing = aio::create_task(write_chunks(c.writer, kChunk, 0, kChunks, &p));
    const bool blocked = co_await blocked_in_drain(p);
    EXPECT_TRUE(blocked) << "the writer never waited in drain()";
    EXPECT_LT(p.chunks, kChunks);
    EXPECT_FALSE(writing.done());
    // Suspended above the high-water mark, with at most one chunk more than it buffered.
    EXPECT_GT(c.writer.get_write_buffer_size(), aio::kDefaultLowWater);
    EXPECT_LE(c.writer.get_write_buffer_size(), aio::kDefaultHighWater + kChunk);
    start_reading.set();
    co_await writing;
    EXPECT_EQ(p.chunks, kChunks);
    EXPECT_LE(p.max_buffer, aio::kDefaultHighWater + kChunk);
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(received.size(), kChunk * kChunks);
    EXPECT_TRUE(check_pattern(received, kChunk));
  }());
}

TEST_F(AioStreamsTest, SetWriteBufferLimitsMovesTheMarks) {
  run_bounded([]() -> aio::Task<void> {
    aio::Event start_reading;
    std::string received;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter) -> aio::Task<void> {
      co_await start_reading.wait();
      received = co_await r.read(-1);
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    set_int_option(c.writer.fileno(), SOL_SOCKET, SO_SNDBUF, 16 * 1024);
    EXPECT_THROW(c.writer.set_write_buffer_limits(10, 20), ValueError);
    c.writer.set_write_buffer_limits(4096);  // low = 1024
    WriteProgress p;
    auto writing = aio::create_task(write_chunks(c.writer, 1024, 0, 8192, &p));
    EXPECT_TRUE(co_await blocked_in_drain(p));
    EXPECT_LE(c.writer.get_write_buffer_size(), 4096u + 1024u);
    start_reading.set();
    co_await writing;
    EXPECT_LE(p.max_buffer, 4096u + 1024u);
    c.writer.close();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(received.size(), 8192u * 1024u);
    EXPECT_TRUE(check_pattern(received, 1024));  // every byte once, in order
  }());
}

TEST_F(AioStreamsTest, CancelledDrainLeavesTheStreamConsistent) {
  run_bounded([]() -> aio::Task<void> {
    constexpr std::size_t kChunk = 16 * 1024;
    aio::Event start_reading;
    std::string received;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter) -> aio::Task<void> {
      co_await start_reading.wait();
      received = co_await r.read(-1);
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    set_int_option(c.writer.fileno(), SOL_SOCKET, SO_SNDBUF, 16 * 1024);
    WriteProgress p;
    auto writing = aio::create_task(write_chunks(c.writer, kChunk, 0, 100000, &p));
    EXPECT_TRUE(co_await blocked_in_drain(p));
    writing.cancel();
    co_await expect_cancelled(writing);
    // The chunk whose drain was cancelled was written: p.chunks + 1 chunks went in. The stream
    // goes on from there.
    const std::size_t done = p.chunks + 1;
    WriteProgress more;
    auto rest = aio::create_task(write_chunks(c.writer, kChunk, done, 4, &more));
    start_reading.set();
    co_await rest;
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(received.size(), (done + 4) * kChunk);
    EXPECT_TRUE(check_pattern(received, kChunk));
  }());
}

TEST_F(AioStreamsTest, CancelledReadKeepsTheBytesAlreadyReceived) {
  run_bounded([]() -> aio::Task<void> {
    aio::Event second_half;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      w.write("01234");
      co_await w.drain();
      co_await second_half.wait();
      w.write("56789");
      (void)co_await r.read(-1);
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    // Cancelled while nothing has come yet...
    auto early = aio::create_task(c.reader.readuntil("never"));
    EXPECT_TRUE(co_await eventually([&] { return c.reader.buffered() == 5; }));
    early.cancel();
    co_await expect_cancelled(early);
    // ... and while half of what it needs is in the buffer.
    auto reading = aio::create_task(c.reader.readexactly(10));
    co_await aio::sleep(10ms);
    EXPECT_FALSE(reading.done());
    EXPECT_EQ(c.reader.buffered(), 5u);
    reading.cancel();
    co_await expect_cancelled(reading);
    EXPECT_EQ(c.reader.buffered(), 5u);
    second_half.set();
    const std::string all = co_await c.reader.readexactly(10);
    EXPECT_EQ(all, "0123456789");
    c.writer.close();
  }());
}

// A TCP read starts its socket operation from the loop's ready queue, after the step that asked
// for it: a read cancelled, or a stream closed, before that start loses nothing and leaks nothing
// (ASan), and a read left waiting when the loop closes ends with the loop.
TEST_F(AioStreamsTest, AReadCancelledOrClosedBeforeItsSocketReadStartsLosesNothing) {
  run_bounded([]() -> aio::Task<void> {
    aio::Event send;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      co_await send.wait();
      w.write("hello");
      co_await w.drain();
      (void)co_await r.read(-1);
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    for (int i = 0; i < 3; ++i) {
      auto reading = aio::create_task(c.reader.read(100));
      co_await aio::sleep(0ms);  // `reading` ran its step: it waits, its socket read is queued
      EXPECT_FALSE(reading.done());
      reading.cancel();  // before the queued start runs
      co_await expect_cancelled(reading);
    }
    send.set();
    const std::string got = co_await c.reader.readexactly(5);
    EXPECT_EQ(got, "hello");
    auto last = aio::create_task(c.reader.read(100));
    co_await aio::sleep(0ms);
    c.writer.close();  // the reader sees EOF; the queued start finds the stream closing
    const std::string rest = co_await last;
    EXPECT_EQ(rest, "");
    co_await c.writer.wait_closed();
  }());
  std::vector<aio::ScheduledTask<std::string>> left;
  run_bounded([&]() -> aio::Task<void> {
    aio::Server server = co_await aio::start_server(echo_lines, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    left.push_back(aio::create_task(c.reader.readline()));
    co_await aio::sleep(0ms);  // the read's start is queued as the main task ends
  }());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_TRUE(left[0].done());
  EXPECT_TRUE(left[0].cancelled());
}

TEST_F(AioStreamsTest, CancelledConnectIsWithdrawn) {
  run_bounded([]() -> aio::Task<void> {
    // A listener with a full accept queue that never accepts: the kernel drops further SYNs, so
    // some connects stay pending.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CO_ASSERT_TRUE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    CO_ASSERT_TRUE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    CO_ASSERT_TRUE(::listen(fd, 0) == 0);
    CO_ASSERT_TRUE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const std::uint16_t port = ntohs(addr.sin_port);
    std::vector<aio::ScheduledTask<aio::Connection>> connects;
    for (int i = 0; i < 6; ++i)
      connects.push_back(aio::create_task(aio::open_connection("127.0.0.1", port)));
    co_await aio::sleep(300ms);
    int pending = 0;
    for (auto& t : connects) {
      if (t.done()) continue;
      ++pending;
      t.cancel();
      co_await expect_cancelled(t);
    }
    EXPECT_GT(pending, 0) << "every connect completed: the kernel queued them all";
    ::close(fd);
  }());
}

TEST_F(AioStreamsTest, PeernameAndSockname) {
  run_bounded([]() -> aio::Task<void> {
    std::string server_peer, server_sock;
    aio::Event seen;
    auto handler = [&](aio::StreamReader, aio::StreamWriter w) -> aio::Task<void> {
      server_peer = w.get_extra_info("peername");
      server_sock = w.get_extra_info("sockname");
      seen.set();
      co_return;
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    co_await seen.wait();
    EXPECT_EQ(c.writer.get_extra_info("peername"), "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(c.writer.get_extra_info("sockname"), server_peer);
    EXPECT_EQ(server_sock, c.writer.get_extra_info("peername"));
    EXPECT_EQ(c.writer.peername().port, server.port());
    EXPECT_FALSE(c.writer.peername().ipv6);
    EXPECT_EQ(c.writer.get_extra_info("socket"), "");
    EXPECT_GE(c.writer.fileno(), 0);
    c.writer.close();
    co_await c.writer.wait_closed();
    EXPECT_EQ(c.writer.fileno(), -1);
    EXPECT_EQ(c.writer.get_extra_info("peername"), "127.0.0.1:" + std::to_string(server.port()));
  }());
}

bool kernel_has_ipv6() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

TEST_F(AioStreamsTest, Ipv6Loopback) {
  if (!kernel_has_ipv6()) GTEST_SKIP() << "no IPv6 on this kernel";
  run_bounded([]() -> aio::Task<void> {
    aio::Server server = co_await aio::start_server(echo_lines, "::1", 0);
    CO_ASSERT_EQ(server.sockets().size(), 1u);
    EXPECT_TRUE(server.sockets()[0].ipv6);
    EXPECT_EQ(server.sockets()[0].to_string(), "[::1]:" + std::to_string(server.port()));
    aio::Connection c = co_await aio::open_connection("::1", server.port());
    EXPECT_EQ(c.writer.get_extra_info("peername"), "[::1]:" + std::to_string(server.port()));
    c.writer.write("over v6\n");
    const std::string back = co_await c.reader.readline();
    EXPECT_EQ(back, "over v6\n");
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_F(AioStreamsTest, NamesResolveAndEveryListenerSharesThePort) {
  run_bounded([]() -> aio::Task<void> {
    // "localhost" resolves to 127.0.0.1 (and ::1 where /etc/hosts says so); port 0 picks one
    // port for every listening socket.
    aio::Server server = co_await aio::start_server(echo_lines, "localhost", 0);
    CO_ASSERT_TRUE(!server.sockets().empty());
    for (const aio::Endpoint& e : server.sockets()) EXPECT_EQ(e.port, server.port());
    for (const char* host : {"localhost", "127.0.0.1"}) {
      aio::Connection c = co_await aio::open_connection(host, server.port());
      c.writer.write("hi\n");
      const std::string back = co_await c.reader.readline();
      EXPECT_EQ(back, "hi\n") << host;
      c.writer.close();
    }
    // "" listens on every interface, IPv4 and IPv6 (where there is IPv6).
    aio::Server any = co_await aio::start_server(echo_lines, "", 0);
    EXPECT_GE(any.sockets().size(), 1u);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", any.port());
    c.writer.write("any\n");
    const std::string back = co_await c.reader.readline();
    EXPECT_EQ(back, "any\n");
  }());
}

TEST_F(AioStreamsTest, UnknownHostIsAnOSError) {
  run_bounded([]() -> aio::Task<void> {
    bool raised = false;
    try {
      (void)co_await aio::open_connection("nonexistent.invalid", 80);
    } catch (const OSError& e) {
      raised = std::string(e.what()).find("nonexistent.invalid") != std::string::npos;
    }
    EXPECT_TRUE(raised);
  }());
}

TEST_F(AioStreamsTest, ConnectionRefusedError) {
  run_bounded([]() -> aio::Task<void> {
    std::uint16_t port = 0;
    {
      aio::Server gone = co_await aio::start_server(echo_lines, "127.0.0.1", 0);
      port = gone.port();
    }  // the last handle closes it
    std::string what;
    int err = 0;
    try {
      (void)co_await aio::open_connection("127.0.0.1", port);
    } catch (const ConnectionRefusedError& e) {
      what = e.what();
      err = e.errno_code();
      const ConnectionError& as_connection_error = e;  // Python's hierarchy
      const OSError& as_os_error = e;
      (void)as_connection_error;
      (void)as_os_error;
    }
    EXPECT_EQ(err, ECONNREFUSED);
    EXPECT_EQ(what, "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', " +
                        std::to_string(port) + ")");
  }());
}

TEST_F(AioStreamsTest, AResetConnectionRaisesConnectionResetError) {
  run_bounded([]() -> aio::Task<void> {
    auto handler = [](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      (void)co_await r.readline();
      const linger hard{.l_onoff = 1, .l_linger = 0};  // close() sends RST
      ::setsockopt(w.fileno(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      w.abort();
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    c.writer.write("go\n");
    int read_errno = 0;
    try {
      (void)co_await c.reader.read(100);
    } catch (const ConnectionResetError& e) {
      read_errno = e.errno_code();
    }
    EXPECT_EQ(read_errno, ECONNRESET);
    EXPECT_TRUE(c.writer.is_closing());
    bool drain_raised = false;
    try {
      co_await c.writer.drain();
    } catch (const ConnectionResetError&) {
      drain_raised = true;
    }
    EXPECT_TRUE(drain_raised);
    bool closed_raised = false;
    try {
      co_await c.writer.wait_closed();
    } catch (const ConnectionResetError&) {
      closed_raised = true;  // Python 3.12: wait_closed() raises what ended the connection
    }
    EXPECT_TRUE(closed_raised);
    c.writer.write("discarded");  // after the connection was lost: no error (Python)
  }());
}

TEST_F(AioStreamsTest, CloseStopsAcceptingAndWaitClosedWaitsForTheHandlers) {
  run_bounded([]() -> aio::Task<void> {
    int finished = 0;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      const std::string line = co_await r.readline();
      w.write("bye " + line);
      ++finished;
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    EXPECT_TRUE(co_await eventually([&] { return server.active_connections() == 1; }));
    server.close();
    EXPECT_FALSE(server.is_serving());
    EXPECT_TRUE(server.sockets().empty());
    bool refused = false;
    try {
      (void)co_await aio::open_connection("127.0.0.1", server.port());
    } catch (const ConnectionRefusedError&) {
      refused = true;
    }
    EXPECT_TRUE(refused) << "a closed server accepted";
    auto waiting = aio::create_task(server.wait_closed());
    co_await aio::sleep(50ms);
    EXPECT_FALSE(waiting.done()) << "wait_closed() returned while a handler was running";
    // The live connection still works; the handler returns, its connection closes.
    c.writer.write("x\n");
    const std::string reply = co_await c.reader.read(-1);
    EXPECT_EQ(reply, "bye x\n");
    co_await waiting;
    EXPECT_EQ(finished, 1);
    EXPECT_EQ(server.active_connections(), 0u);
    EXPECT_THROW(server.start_serving(), RuntimeError);
  }());
}

TEST_F(AioStreamsTest, CloseClientsEndsTheLiveConnections) {
  run_bounded([]() -> aio::Task<void> {
    int eofs = 0;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter) -> aio::Task<void> {
      const std::string line = co_await r.readline();  // EOF once close_clients() ran
      if (line.empty()) ++eofs;
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection a = co_await aio::open_connection("127.0.0.1", server.port());
    aio::Connection b = co_await aio::open_connection("127.0.0.1", server.port());
    EXPECT_TRUE(co_await eventually([&] { return server.active_connections() == 2; }));
    server.close();
    server.close_clients();
    co_await server.wait_closed();
    EXPECT_EQ(eofs, 2);
    const std::string ea = co_await a.reader.read();
    const std::string eb = co_await b.reader.read();
    EXPECT_EQ(ea, "");
    EXPECT_EQ(eb, "");
    // abort_clients() on a fresh server: the same, buffered bytes dropped.
    aio::Server s2 = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection d = co_await aio::open_connection("127.0.0.1", s2.port());
    EXPECT_TRUE(co_await eventually([&] { return s2.active_connections() == 1; }));
    s2.close();
    s2.abort_clients();
    co_await s2.wait_closed();
    EXPECT_EQ(eofs, 3);
  }());
}

TEST_F(AioStreamsTest, ServeForeverReturnsOnCloseAndClosesWhenCancelled) {
  run_bounded([]() -> aio::Task<void> {
    aio::Server server = co_await aio::start_server(echo_lines, "127.0.0.1", 0,
                                                    aio::ServerOptions{.start_serving = false});
    EXPECT_FALSE(server.is_serving());
    auto forever = aio::create_task(server.serve_forever());
    co_await aio::sleep(0ms);
    EXPECT_TRUE(server.is_serving());
    bool twice = false;
    try {
      co_await server.serve_forever();
    } catch (const RuntimeError&) {
      twice = true;
    }
    EXPECT_TRUE(twice);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    c.writer.write("up\n");
    const std::string up = co_await c.reader.readline();
    EXPECT_EQ(up, "up\n");
    c.writer.close();
    server.close();
    co_await forever;  // returns normally
    co_await server.wait_closed();

    // Cancelled while it waits for connections: the server closes, CancelledError.
    aio::Server s2 = co_await aio::start_server(echo_lines, "127.0.0.1", 0);
    auto f2 = aio::create_task(s2.serve_forever());
    co_await aio::sleep(0ms);
    f2.cancel();
    co_await expect_cancelled(f2);
    EXPECT_FALSE(s2.is_serving());
    bool refused = false;
    try {
      (void)co_await aio::open_connection("127.0.0.1", s2.port());
    } catch (const ConnectionRefusedError&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
  }());
}

TEST_F(AioStreamsTest, AHandlerThatThrowsIsReportedOnceAndItsConnectionClosed) {
  expect_reports(1);
  run_bounded([]() -> aio::Task<void> {
    auto handler = [](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      (void)co_await r.readline();
      w.write("partial answer");
      throw std::runtime_error("boom in the handler");
    };
    aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    c.writer.write("hi\n");
    const std::string got = co_await c.reader.read(-1);  // then EOF: the connection was closed
    EXPECT_EQ(got, "partial answer");
    server.close();
    co_await server.wait_closed();
  }());
  const auto got = reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].message.find("boom in the handler"), std::string::npos) << got[0].message;
  EXPECT_NE(got[0].message.find("client_connected_cb"), std::string::npos) << got[0].message;
}

aio::Task<int> line_client(std::uint16_t port, int id, int lines) {
  aio::Connection c = co_await aio::open_connection("127.0.0.1", port);
  int ok = 0;
  for (int i = 0; i < lines; ++i) {
    const std::string line = "client " + std::to_string(id) + " line " + std::to_string(i) + "\n";
    c.writer.write(line);
    co_await c.writer.drain();
    const std::string back = co_await c.reader.readline();
    if (back == line) ++ok;
  }
  c.writer.close();
  co_await c.writer.wait_closed();
  co_return ok;
}

TEST_F(AioStreamsTest, TwoHundredConcurrentClients) {
  run_bounded([]() -> aio::Task<void> {
    constexpr int kClients = 200;
    constexpr int kLines = 5;
    aio::Server server =
        co_await aio::start_server(echo_lines, "127.0.0.1", 0, aio::ServerOptions{.backlog = 512});
    std::vector<aio::Task<int>> clients;
    clients.reserve(kClients);
    for (int i = 0; i < kClients; ++i) clients.push_back(line_client(server.port(), i, kLines));
    const std::vector<int> oks = co_await aio::gather(std::move(clients));
    EXPECT_EQ(oks.size(), static_cast<std::size_t>(kClients));
    for (int ok : oks) EXPECT_EQ(ok, kLines);
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_F(AioStreamsTest, HandlesMayOutliveTheirLoop) {
  // (std::vector, not std::optional: g++ 12 -O3 warns maybe-uninitialized on optional<Server>.)
  std::vector<aio::StreamWriter> kept;
  std::vector<aio::StreamReader> kept_reader;
  std::vector<aio::Server> kept_server;
  run_bounded([&]() -> aio::Task<void> {
    aio::Server server = co_await aio::start_server(echo_lines, "127.0.0.1", 0);
    aio::Connection c = co_await aio::open_connection("127.0.0.1", server.port());
    c.writer.write("ping\n");
    const std::string back = co_await c.reader.readline();
    EXPECT_EQ(back, "ping\n");
    kept.push_back(c.writer);
    kept_reader.push_back(c.reader);
    kept_server.push_back(server);
  }());
  ASSERT_EQ(kept.size(), 1u);
  ASSERT_EQ(kept_server.size(), 1u);
  // The loop is gone: its sockets were closed when its io_context was destroyed.
  EXPECT_TRUE(kept[0].is_closing());
  EXPECT_NO_THROW(kept[0].write("discarded"));
  EXPECT_FALSE(kept[0].get_extra_info("peername").empty());
  EXPECT_FALSE(kept_server[0].is_serving());
  EXPECT_TRUE(kept_reader[0].at_eof());
  kept.clear();
  kept_reader.clear();
  kept_server.clear();
}

TEST_F(AioStreamsTest, AStreamIsUsedFromItsOwnLoopOnly) {
  aio::Runner first;
  aio::Server server = first.run([]() -> aio::Task<aio::Server> {
    co_return co_await aio::start_server(echo_lines, "127.0.0.1", 0);
  }());
  aio::Connection c = first.run(aio::open_connection("127.0.0.1", server.port()));
  // Another loop (in the same thread) may not touch them.
  run_bounded([&]() -> aio::Task<void> {
    EXPECT_THROW(c.writer.write("x"), RuntimeError);
    bool refused = false;
    try {
      (void)co_await c.reader.readline();
    } catch (const RuntimeError&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
    EXPECT_THROW(server.start_serving(), RuntimeError);
  }());
  // Their own loop still can.
  const std::string back = first.run([](aio::Connection conn) -> aio::Task<std::string> {
    conn.writer.write("mine\n");
    co_return co_await conn.reader.readline();
  }(c));
  EXPECT_EQ(back, "mine\n");
  server.close();
  c.writer.close();
  first.run([](aio::Server s) -> aio::Task<void> { co_await s.wait_closed(); }(server));
}

// ---- TLS ---------------------------------------------------------------------------------------

// The test certificate and contexts: support/tls_support.hpp.

TEST_F(AioStreamsTest, TlsEchoRoundTrip) {
  run_bounded([]() -> aio::Task<void> {
    const aio::SslContext tls = server_tls();
    aio::Server server =
        co_await aio::start_server(echo_lines, "127.0.0.1", 0, aio::ServerOptions{.ssl = &tls});
    aio::SslContext client = client_tls();
    EXPECT_TRUE(client.verify());
    EXPECT_TRUE(client.check_hostname());
    EXPECT_THROW(client.set_verify(false), ValueError);  // check_hostname is on (Python)
    // By address with the name to check, then by name.
    aio::Connection a = co_await aio::open_connection(
        "127.0.0.1", server.port(),
        aio::ConnectOptions{.ssl = &client, .server_hostname = "localhost"});
    aio::Connection b = co_await aio::open_connection("localhost", server.port(),
                                                      aio::ConnectOptions{.ssl = &client});
    for (aio::Connection* c : {&a, &b}) {
      EXPECT_FALSE(c->writer.can_write_eof());
      EXPECT_THROW(c->writer.write_eof(), RuntimeError);
      c->writer.write("over tls\n");
      co_await c->writer.drain();
      const std::string back = co_await c->reader.readline();
      EXPECT_EQ(back, "over tls\n");
      EXPECT_EQ(c->writer.get_extra_info("peername"), "127.0.0.1:" + std::to_string(server.port()));
      c->writer.close();
      co_await c->writer.wait_closed();  // close_notify both ways
    }
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_F(AioStreamsTest, TlsLargeTransferEndsWithCloseNotify) {
  run_bounded([]() -> aio::Task<void> {
    static const std::string kBig = [] {
      std::string s(3 << 20, '\0');
      for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('A' + i % 29);
      return s;
    }();
    auto handler = [](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      for (std::size_t off = 0; off < kBig.size(); off += 70'000) {
        w.write(std::string_view(kBig).substr(off, 70'000));
        co_await w.drain();
      }
      w.close();  // after the buffer: close_notify
      co_await w.wait_closed();
      (void)r;
    };
    const aio::SslContext tls = server_tls();
    const aio::SslContext client = client_tls();
    aio::Server server =
        co_await aio::start_server(handler, "127.0.0.1", 0, aio::ServerOptions{.ssl = &tls});
    aio::Connection c = co_await aio::open_connection(
        "127.0.0.1", server.port(),
        aio::ConnectOptions{.ssl = &client, .server_hostname = "localhost"});
    const std::string all = co_await c.reader.read(-1);
    EXPECT_EQ(all.size(), kBig.size());
    EXPECT_TRUE(all == kBig);
    EXPECT_TRUE(c.reader.at_eof());
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_F(AioStreamsTest, TlsCertificateAndHostNameFailuresAreSSLErrors) {
  run_bounded([]() -> aio::Task<void> {
    int handled = 0;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      ++handled;
      co_await echo_lines(r, w);
    };
    const aio::SslContext tls = server_tls();
    aio::Server server =
        co_await aio::start_server(handler, "127.0.0.1", 0, aio::ServerOptions{.ssl = &tls});
    // The system's CAs do not know the test certificate.
    const aio::SslContext system_cas = aio::SslContext::create_default_context();
    const aio::SslContext client = client_tls();
    std::string what;
    try {
      (void)co_await aio::open_connection(
          "127.0.0.1", server.port(),
          aio::ConnectOptions{.ssl = &system_cas, .server_hostname = "localhost"});
    } catch (const SSLError& e) {
      what = e.what();
    }
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
    EXPECT_NE(what.find("self-signed certificate"), std::string::npos) << what;
    // The certificate is trusted, but it does not name this host.
    what.clear();
    try {
      (void)co_await aio::open_connection(
          "127.0.0.1", server.port(),
          aio::ConnectOptions{.ssl = &client, .server_hostname = "example.com"});
    } catch (const SSLError& e) {
      what = e.what();
    }
    EXPECT_NE(what.find("certificate is not valid for 'example.com'"), std::string::npos) << what;
    // A plain TCP client: the server's handshake fails; nothing is reported.
    aio::Connection plain = co_await aio::open_connection("127.0.0.1", server.port());
    plain.writer.write("GET / HTTP/1.0\r\n\r\n");
    bool ended = false;
    try {
      (void)co_await plain.reader.read(-1);
      ended = true;
    } catch (const ConnectionError&) {
      ended = true;
    }
    EXPECT_TRUE(ended);
    // Without verification (check_hostname off first, as Python wants) it connects.
    aio::SslContext lax = aio::SslContext::create_default_context();
    lax.set_check_hostname(false);
    lax.set_verify(false);
    aio::Connection ok =
        co_await aio::open_connection("127.0.0.1", server.port(), aio::ConnectOptions{.ssl = &lax});
    ok.writer.write("fine\n");
    const std::string back = co_await ok.reader.readline();
    EXPECT_EQ(back, "fine\n");
    ok.writer.close();
    co_await ok.writer.wait_closed();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(handled, 1) << "only the verified-less client got past the handshake";
  }());
}

TEST_F(AioStreamsTest, TlsHandshakesAreBoundedAndCloseClientsEndsThem) {
  run_bounded([]() -> aio::Task<void> {
    int handled = 0;
    auto handler = [&](aio::StreamReader, aio::StreamWriter) -> aio::Task<void> {
      ++handled;
      co_return;
    };
    const aio::SslContext tls = server_tls();
    // A client that never starts its handshake is dropped after ssl_handshake_timeout.
    aio::Server quick = co_await aio::start_server(
        handler, "127.0.0.1", 0,
        aio::ServerOptions{.ssl = &tls, .ssl_handshake_timeout = std::chrono::milliseconds(100)});
    // (Timed from before the connect: the server's timer starts at its accept, which may run
    // before the connecting task resumes.)
    const auto start = std::chrono::steady_clock::now();
    aio::Connection silent = co_await aio::open_connection("127.0.0.1", quick.port());
    const std::string nothing = co_await silent.reader.read(-1);  // EOF once the server gives up
    EXPECT_EQ(nothing, "");
    EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms - kSlack);
    quick.close();
    co_await quick.wait_closed();
    // close_clients() ends a connection still in its handshake.
    aio::Server patient =
        co_await aio::start_server(handler, "127.0.0.1", 0, aio::ServerOptions{.ssl = &tls});
    aio::Connection waiting = co_await aio::open_connection("127.0.0.1", patient.port());
    EXPECT_TRUE(co_await eventually([&] { return patient.active_connections() == 1; }));
    patient.close();
    patient.close_clients();
    co_await patient.wait_closed();
    const std::string eof = co_await waiting.reader.read(-1);
    EXPECT_EQ(eof, "");
    EXPECT_EQ(handled, 0);
  }());
}

TEST_F(AioStreamsTest, TlsCancelledReadKeepsTheBytes) {
  run_bounded([]() -> aio::Task<void> {
    aio::Event second_half;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      w.write("01234");
      co_await w.drain();
      co_await second_half.wait();
      w.write("56789");
      (void)co_await r.read(-1);
    };
    const aio::SslContext tls = server_tls();
    const aio::SslContext client = client_tls();
    aio::Server server =
        co_await aio::start_server(handler, "127.0.0.1", 0, aio::ServerOptions{.ssl = &tls});
    aio::Connection c = co_await aio::open_connection(
        "127.0.0.1", server.port(),
        aio::ConnectOptions{.ssl = &client, .server_hostname = "localhost"});
    auto reading = aio::create_task(c.reader.readexactly(10));
    EXPECT_TRUE(co_await eventually([&] { return c.reader.buffered() == 5; }));
    reading.cancel();
    co_await expect_cancelled(reading);
    auto again = aio::create_task(c.reader.readexactly(10));
    co_await aio::sleep(10ms);
    again.cancel();  // cancelled while the TLS read it started is still pending
    co_await expect_cancelled(again);
    second_half.set();
    const std::string all = co_await c.reader.readexactly(10);
    EXPECT_EQ(all, "0123456789");
    c.writer.close();
    co_await c.writer.wait_closed();
  }());
}

TEST_F(AioStreamsTest, StreamsNeedARunningLoopAndEmptyHandlesRefuseUse) {
  EXPECT_THROW((void)aio::run(aio::open_connection("", 1)), ValueError);
  aio::StreamWriter empty;
  EXPECT_THROW(empty.write("x"), InvalidStateError);
  EXPECT_THROW((void)empty.is_closing(), InvalidStateError);
}

// ---- Unix streams (open_unix_connection / start_unix_server) ------------------------------------

bool is_socket_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

TEST_F(AioStreamsTest, UnixEchoWithNamesLimitsAndCleanup) {
  TempDir dir("concur-unix-");
  const std::string path = (dir.path() / "echo.sock").string();
  run_bounded([&]() -> aio::Task<void> {
    std::string server_sockname = "unset";
    std::string server_peername = "unset";
    auto handler = [&](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
      server_sockname = w.get_extra_info("sockname");
      server_peername = w.get_extra_info("peername");
      co_await echo_lines(std::move(r), std::move(w));
    };
    aio::Server server = co_await aio::start_unix_server(handler, path);
    EXPECT_TRUE(is_socket_file(path));
    EXPECT_TRUE(server.is_serving());
    EXPECT_EQ(server.port(), 0);
    const std::vector<aio::Endpoint> names = server.sockets();
    CO_ASSERT_EQ(names.size(), 1u);
    EXPECT_EQ(names[0], (aio::Endpoint{path, 0, false, true}));

    aio::Connection c = co_await aio::open_unix_connection(path);
    EXPECT_EQ(c.writer.get_extra_info("peername"), path);
    EXPECT_EQ(c.writer.get_extra_info("sockname"), "");  // an unbound client (Python's '')
    EXPECT_TRUE(c.writer.peername().is_unix);
    EXPECT_TRUE(c.writer.can_write_eof());
    c.writer.write(kData);
    co_await c.writer.drain();
    for (const char* line : {"line1\n", "line2\n", "line3\n"}) {
      const std::string back = co_await c.reader.readline();
      EXPECT_EQ(back, line);
    }
    EXPECT_EQ(server_sockname, path);
    EXPECT_EQ(server_peername, "");
    // write_eof: the server sees EOF, closes; the reader sees EOF.
    c.writer.write_eof();
    const std::string rest = co_await c.reader.read();
    EXPECT_EQ(rest, "");
    c.writer.close();
    co_await c.writer.wait_closed();

    // The reader's limit applies as for TCP.
    aio::Connection small =
        co_await aio::open_unix_connection(path, aio::ConnectOptions{.limit = 16});
    EXPECT_EQ(small.reader.limit(), 16u);
    small.writer.write(std::string(100, 'x') + "\n");
    bool too_long = false;
    try {
      (void)co_await small.reader.readline();
    } catch (const ValueError&) {
      too_long = true;
    }
    EXPECT_TRUE(too_long);
    small.writer.close();
    co_await small.writer.wait_closed();

    server.close();
    co_await server.wait_closed();
    // cleanup_socket (Python 3.13's default): the socket file is gone.
    EXPECT_FALSE(std::filesystem::exists(path));
  }());
}

TEST_F(AioStreamsTest, UnixDrainBoundsTheWriterWhileThePeerDoesNotRead) {
  TempDir dir("concur-unix-");
  const std::string path = (dir.path() / "bulk.sock").string();
  run_bounded([&]() -> aio::Task<void> {
    constexpr std::size_t kChunk = 16 * 1024;
    constexpr std::size_t kChunks = 256;  // 4 MiB
    aio::Event start_reading;
    std::string received;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter) -> aio::Task<void> {
      co_await start_reading.wait();
      received = co_await r.read(-1);
    };
    aio::Server server = co_await aio::start_unix_server(handler, path);
    aio::Connection c = co_await aio::open_unix_connection(path);
    set_int_option(c.writer.fileno(), SOL_SOCKET, SO_SNDBUF, 16 * 1024);
    WriteProgress p;
    auto writing = aio::create_task(write_chunks(c.writer, kChunk, 0, kChunks, &p));
    const bool blocked = co_await blocked_in_drain(p);
    EXPECT_TRUE(blocked) << "the writer never waited in drain()";
    EXPECT_FALSE(writing.done());
    EXPECT_LE(c.writer.get_write_buffer_size(), aio::kDefaultHighWater + kChunk);
    start_reading.set();
    co_await writing;
    EXPECT_LE(p.max_buffer, aio::kDefaultHighWater + kChunk);
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(received.size(), kChunk * kChunks);
    EXPECT_TRUE(check_pattern(received, kChunk));
  }());
}

TEST_F(AioStreamsTest, StartUnixServerReplacesAStaleSocketAndRefusesARegularFile) {
  // test_create_unix_server_path_stale_socket / _existing_path_nonsock.
  TempDir dir("concur-unix-");
  const std::string stale = (dir.path() / "stale.sock").string();
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, stale.c_str(), stale.size() + 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << errno;
    ::close(fd);  // the file stays: a stale socket
  }
  ASSERT_TRUE(is_socket_file(stale));
  const std::string regular = (dir.path() / "regular.file").string();
  std::ofstream(regular) << "keep me";
  run_bounded([&]() -> aio::Task<void> {
    // Nobody listens on the stale file: ConnectionRefusedError; a missing file: ENOENT.
    bool refused = false;
    try {
      (void)co_await aio::open_unix_connection(stale);
    } catch (const ConnectionRefusedError&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
    const std::string missing = (dir.path() / "missing.sock").string();
    int code = 0;
    try {
      (void)co_await aio::open_unix_connection(missing);
    } catch (const OSError& e) {
      code = e.errno_code();
    }
    EXPECT_EQ(code, ENOENT);

    aio::Server server = co_await aio::start_unix_server(echo_lines, stale);
    aio::Connection c = co_await aio::open_unix_connection(stale);
    c.writer.write("over a stale path\n");
    const std::string back = co_await c.reader.readline();
    EXPECT_EQ(back, "over a stale path\n");
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();

    std::string what;
    code = 0;
    try {
      (void)co_await aio::start_unix_server(echo_lines, regular);
    } catch (const OSError& e) {
      code = e.errno_code();
      what = e.what();
    }
    EXPECT_EQ(code, EADDRINUSE);
    EXPECT_EQ(what, "OSError: [Errno " + std::to_string(EADDRINUSE) + "] Address '" + regular +
                        "' is already in use");

    // cleanup_socket off: the file stays after close (Python before 3.13).
    const std::string kept = (dir.path() / "kept.sock").string();
    aio::Server keeping = co_await aio::start_unix_server(
        echo_lines, kept, aio::ServerOptions{.cleanup_socket = false});
    keeping.close();
    co_await keeping.wait_closed();
    EXPECT_TRUE(is_socket_file(kept));
    // A server whose file was replaced by another's does not remove the newer one.
    const std::string shared = (dir.path() / "shared.sock").string();
    aio::Server first = co_await aio::start_unix_server(echo_lines, shared);
    aio::Server second = co_await aio::start_unix_server(echo_lines, shared);  // replaces it
    first.close();
    co_await first.wait_closed();
    EXPECT_TRUE(is_socket_file(shared));
    second.close();
    co_await second.wait_closed();
    EXPECT_FALSE(std::filesystem::exists(shared));
    // Argument errors.
    const std::string empty;
    bool value_error = false;
    try {
      (void)co_await aio::start_unix_server(echo_lines, empty);
    } catch (const ValueError&) {
      value_error = true;
    }
    EXPECT_TRUE(value_error);
  }());
  std::ifstream in(regular);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");  // the regular file was not touched
}

TEST_F(AioStreamsTest, UnixStreamsOnAnAbstractNameAndWithTls) {
  // (Built by appending: g++ 12's -Warray-bounds misfires on a chain of + here under TSan.)
  std::string name = "concur-streams-test-";
  name += std::to_string(::getpid());
  name.insert(name.begin(), '\0');
  run_bounded([&]() -> aio::Task<void> {
    aio::Server server = co_await aio::start_unix_server(echo_lines, name);
    aio::Connection c = co_await aio::open_unix_connection(name);
    EXPECT_EQ(c.writer.get_extra_info("peername"), name);
    c.writer.write("abstract\n");
    const std::string back = co_await c.reader.readline();
    EXPECT_EQ(back, "abstract\n");
    c.writer.close();
    co_await c.writer.wait_closed();
    server.close();
    co_await server.wait_closed();

    // TLS over a Unix socket: the server name must be given (Python's ValueError).
    const aio::SslContext tls = server_tls();
    const std::string tls_name = name + "-tls";
    aio::Server secure =
        co_await aio::start_unix_server(echo_lines, tls_name, aio::ServerOptions{.ssl = &tls});
    aio::SslContext client = client_tls();
    bool no_name = false;
    try {
      (void)co_await aio::open_unix_connection(tls_name, aio::ConnectOptions{.ssl = &client});
    } catch (const ValueError&) {
      no_name = true;
    }
    EXPECT_TRUE(no_name);
    aio::Connection s = co_await aio::open_unix_connection(
        tls_name, aio::ConnectOptions{.ssl = &client, .server_hostname = "localhost"});
    s.writer.write("secure\n");
    const std::string secure_back = co_await s.reader.readline();
    EXPECT_EQ(secure_back, "secure\n");
    s.writer.close();
    co_await s.writer.wait_closed();
    secure.close();
    co_await secure.wait_closed();
  }());
}

// ---- StreamWriter::sendfile (test_sendfile's loop.sendfile cases)
// --------------------------------

// DataFile: a file of `content` in a fresh directory, open for reading.
struct DataFile {
  explicit DataFile(const std::string& content) {
    const std::string path = (dir.path() / "data.bin").string();
    std::ofstream(path, std::ios::binary) << content;
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << errno;
  }
  ~DataFile() {
    if (fd >= 0) ::close(fd);
  }
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;
  [[nodiscard]] off_t position() const { return ::lseek(fd, 0, SEEK_CUR); }
  TempDir dir{"concur-sendfile-"};
  int fd = -1;
};

std::string byte_pattern(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>('0' + i % 10);
  return out;
}

// read_all_slowly(reader): everything until EOF, with a pause every 16 reads (a slow peer).
aio::Task<std::string> read_all_slowly(aio::StreamReader reader) {
  std::string got;
  for (int reads = 1;; ++reads) {
    std::string more = co_await reader.read(16 * 1024);
    if (more.empty()) co_return got;
    got += more;
    if (reads % 16 == 0) co_await aio::sleep(1ms);
  }
}

TEST_F(AioStreamsTest, SendfileOverTcpUnixAndTls) {
  const std::string data = byte_pattern(4 * 1024 * 1024);
  DataFile file(data);
  TempDir dir("concur-unix-");
  const std::string path = (dir.path() / "sendfile.sock").string();
  run_bounded([&]() -> aio::Task<void> {
    std::string received;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter) -> aio::Task<void> {
      received = co_await read_all_slowly(std::move(r));
    };
    const aio::SslContext tls = server_tls();
    aio::Server tcp_server = co_await aio::start_server(handler, "127.0.0.1", 0);
    aio::Server unix_server = co_await aio::start_unix_server(handler, path);
    aio::Server tls_server =
        co_await aio::start_server(handler, "127.0.0.1", 0, aio::ServerOptions{.ssl = &tls});
    aio::SslContext client = client_tls();
    for (int kind = 0; kind < 3; ++kind) {
      // (One co_await per statement: g++ 12 destroys a Connection temporary of a conditional
      // expression around co_awaits twice.)
      aio::Connection c;
      if (kind == 0) {
        c = co_await aio::open_connection("127.0.0.1", tcp_server.port());
      } else if (kind == 1) {
        c = co_await aio::open_unix_connection(path);
      } else {
        c = co_await aio::open_connection(
            "127.0.0.1", tls_server.port(),
            aio::ConnectOptions{.ssl = &client, .server_hostname = "localhost"});
      }
      if (kind == 2) {
        // TLS has no native sendfile: without the fallback, SendfileNotAvailableError.
        bool unavailable = false;
        try {
          (void)co_await c.writer.sendfile(file.fd, 0, 0, /*fallback=*/false);
        } catch (const SendfileNotAvailableError&) {
          unavailable = true;
        }
        EXPECT_TRUE(unavailable);
      }
      // Written before (sent first), the whole file, offset/count, written after (sent last).
      c.writer.write("head|");
      const std::size_t sent = co_await c.writer.sendfile(file.fd);
      EXPECT_EQ(sent, data.size());
      EXPECT_EQ(file.position(), static_cast<off_t>(data.size()));
      const std::size_t part = co_await c.writer.sendfile(file.fd, 100, 1000);
      EXPECT_EQ(part, 1000u);
      EXPECT_EQ(file.position(), 1100);
      c.writer.write("|tail");
      c.writer.close();
      co_await c.writer.wait_closed();
      EXPECT_TRUE(co_await eventually([&] { return !received.empty(); }));
      EXPECT_EQ(received.size(), 5 + data.size() + 1000 + 5) << kind;
      EXPECT_TRUE(received == "head|" + data + data.substr(100, 1000) + "|tail") << kind;
      received.clear();
    }
    tcp_server.close();
    unix_server.close();
    tls_server.close();
    co_await tcp_server.wait_closed();
    co_await unix_server.wait_closed();
    co_await tls_server.wait_closed();
  }());
}

TEST_F(AioStreamsTest, ACancelledStreamSendfileLosesNothing) {
  // Cancelled while the peer does not read: the position says how much went; what is written
  // next follows exactly those bytes; argument errors.
  const std::string data = byte_pattern(8 * 1024 * 1024);
  DataFile file(data);
  TempDir dir("concur-unix-");
  const std::string path = (dir.path() / "cancel.sock").string();
  run_bounded([&]() -> aio::Task<void> {
    aio::Event start_reading;
    std::string received;
    bool got_all = false;
    auto handler = [&](aio::StreamReader r, aio::StreamWriter) -> aio::Task<void> {
      co_await start_reading.wait();
      received = co_await r.read(-1);
      got_all = true;
    };
    aio::Server server = co_await aio::start_unix_server(handler, path);
    aio::Connection c = co_await aio::open_unix_connection(path);
    set_int_option(c.writer.fileno(), SOL_SOCKET, SO_SNDBUF, 16 * 1024);
    bool bad_offset = false;
    try {
      (void)co_await c.writer.sendfile(file.fd, -5);
    } catch (const ValueError&) {
      bad_offset = true;
    }
    EXPECT_TRUE(bad_offset);
    auto sending = aio::create_task(c.writer.sendfile(file.fd));
    for (int i = 0; i < 5; ++i) co_await aio::sleep(1ms);
    CO_ASSERT_TRUE(!sending.done());
    // A write meanwhile is buffered behind the file; a second sendfile is refused.
    c.writer.write("during|");
    bool second = false;
    try {
      (void)co_await c.writer.sendfile(file.fd);
    } catch (const RuntimeError&) {
      second = true;
    }
    EXPECT_TRUE(second);
    EXPECT_TRUE(sending.cancel());
    co_await expect_cancelled(sending);
    const off_t pos = file.position();
    EXPECT_GT(pos, 0);
    EXPECT_LT(pos, static_cast<off_t>(data.size()));
    c.writer.write("after");
    c.writer.close();
    start_reading.set();
    co_await c.writer.wait_closed();
    EXPECT_TRUE(co_await eventually([&] { return got_all; }));
    EXPECT_EQ(received.size(), static_cast<std::size_t>(pos) + 12);
    EXPECT_TRUE(received == data.substr(0, static_cast<std::size_t>(pos)) + "during|after");
    // A closing stream refuses.
    bool closing = false;
    try {
      (void)co_await c.writer.sendfile(file.fd);
    } catch (const RuntimeError&) {
      closing = true;
    }
    EXPECT_TRUE(closing);
    server.close();
    co_await server.wait_closed();
  }());
}

}  // namespace
}  // namespace concur::testing
