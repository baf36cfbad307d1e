// concur::dist::Redis, RedisUrl and Script against a private redis-server
// (tests/support/redis_server.hpp).
#include "concur/dist/redis.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "support/process_support.hpp"
#include "support/redis_server.hpp"

namespace concur::dist {
namespace {

using concur::testing::RedisServer;

TEST(RedisUrlTest, ParsesHostPortDatabaseAndCredentials) {
  RedisUrl u = RedisUrl::parse("redis://127.0.0.1:6400/3");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6400);
  EXPECT_EQ(u.db, 3);
  EXPECT_TRUE(u.password.empty());

  u = RedisUrl::parse("redis://example.internal");
  EXPECT_EQ(u.host, "example.internal");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);

  u = RedisUrl::parse("redis://alice:s3cret@10.0.0.5:7000/");
  EXPECT_EQ(u.username, "alice");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.str(), "redis://alice:***@10.0.0.5:7000") << "the password never shows";

  u = RedisUrl::parse("redis://:only@h");
  EXPECT_TRUE(u.username.empty());
  EXPECT_EQ(u.password, "only");

  u = RedisUrl::parse("redis://[::1]:6380/1");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.str(), "redis://[::1]:6380/1");

  u = RedisUrl::parse("unix:///run/redis.sock?db=2");
  EXPECT_EQ(u.unix_path, "/run/redis.sock");
  EXPECT_EQ(u.db, 2);
}

TEST(RedisUrlTest, RejectsMalformedUrls) {
  for (const char* bad :
       {"http://h:1", "redis://", "redis://h:notaport", "redis://h:70000", "redis://h:0",
        "redis://h/x", "redis://[::1", "unix://relative", "unix:///s?x=1", "127.0.0.1:6379"}) {
    EXPECT_THROW((void)RedisUrl::parse(bad), ValueError) << bad;
  }
}

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.start(); }
  RedisServer server_;
};

TEST_F(RedisTest, CommandsRepliesAndBinarySafeArguments) {
  Redis r = server_.client();
  EXPECT_EQ(r.command({"PING"}).type, Reply::Type::status);
  EXPECT_EQ(r.command({"PING"}).str, "PONG");
  const std::string binary("a\0b\r\n\xff", 6);
  EXPECT_EQ(r.command({"SET", "k", binary}).str, "OK");
  const Reply got = r.command({"GET", "k"});
  EXPECT_EQ(got.type, Reply::Type::string);
  EXPECT_EQ(got.str, binary) << "arguments are sent with their lengths";
  EXPECT_TRUE(r.command({"GET", "missing"}).is_nil());
  EXPECT_EQ(r.command({"INCRBY", "n", "41"}).integer, 41);
  (void)r.command({"RPUSH", "l", "x", "y"});
  const Reply list = r.command({"LRANGE", "l", "0", "-1"});
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.elements.size(), 2u);
  EXPECT_EQ(list.at(1).str, "y");
  EXPECT_THROW((void)list.at(2), RedisError);
  EXPECT_EQ(list.at(0).str, "x");
  EXPECT_EQ(r.command({"GET", "n"}).as_integer(), 41);
}

// A child forked with a connection in its memory speaks on a connection of its own (its parent may
// be waiting for a reply on the inherited one): both count their own keys at the same time, and
// every reply must be the caller's.
TEST_F(RedisTest, AConnectionUsedInAForkedChildIsItsOwn) {
  Redis r = server_.client();
  EXPECT_EQ(r.command({"PING"}).str, "PONG");
  constexpr long long kEach = 2000;
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the child only speaks to Redis
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      for (long long i = 1; i <= kEach && code == 0; ++i)
        if (r.command({"INCR", "child"}).integer != i) code = 1;
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  long long wrong = 0;
  try {
    for (long long i = 1; i <= kEach; ++i)
      if (r.command({"INCR", "parent"}).integer != i) ++wrong;
  } catch (const ConnectionError& e) {
    ADD_FAILURE() << e.what();
  }
  EXPECT_EQ(concur::testing::wait_forked(child, std::chrono::seconds(60)), 0);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(r.command({"GET", "child"}).as_integer(), kEach);
  EXPECT_EQ(r.command({"GET", "parent"}).as_integer(), kEach);
}

TEST_F(RedisTest, ErrorRepliesAreRedisErrorsAndTheConnectionStaysUsable) {
  Redis r = server_.client();
  (void)r.command({"SET", "s", "text"});
  try {
    (void)r.command({"INCR", "s"});
    FAIL() << "INCR of a non-number must fail";
  } catch (const RedisError& e) {
    EXPECT_EQ(e.code(), "ERR");
    EXPECT_NE(std::string(e.what()).find("RedisError: ERR"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)r.command({"NOSUCHCOMMAND"}), RedisError);
  EXPECT_TRUE(r.is_connected());
  EXPECT_EQ(r.command({"PING"}).str, "PONG");
}

TEST_F(RedisTest, PipelinedRepliesComeBackInOrder) {
  Redis r = server_.client();
  for (int i = 0; i < 100; ++i) r.append({"INCR", "p"});
  r.append({"INCR", "not a number key", "extra"});  // an error in the middle
  r.append({"GET", "p"});
  for (int i = 1; i <= 100; ++i) EXPECT_EQ(r.get_reply().integer, i);
  EXPECT_THROW((void)r.get_reply(), RedisError);
  EXPECT_EQ(r.get_reply().str, "100");
}

TEST_F(RedisTest, ScriptsRunByShaAndAfterAFlush) {
  Redis r = server_.client();
  const Script s("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  EXPECT_EQ(s.sha1().size(), 40u);
  EXPECT_EQ(s.run(r, {"c"}, {"5"}).integer, 5);   // NOSCRIPT → EVAL
  EXPECT_EQ(s.run(r, {"c"}, {"5"}).integer, 10);  // EVALSHA
  EXPECT_EQ(r.command({"SCRIPT", "EXISTS", s.sha1()}).at(0).integer, 1)
      << "the digest is the one Redis computes";
  (void)r.command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(s.run(r, {"c"}, {"1"}).integer, 11);
  const Script bad("return redis.call('NOSUCH')");
  EXPECT_THROW((void)bad.run(r, {}, {}), RedisError);
}

TEST_F(RedisTest, AServerThatGoesAwayIsAConnectionErrorUntilReconnect) {
  Redis r = server_.client();
  (void)r.command({"SET", "a", "1"});
  server_.stop();
  EXPECT_THROW((void)r.command({"GET", "a"}), ConnectionError);
  EXPECT_FALSE(r.is_connected());
  EXPECT_THROW((void)r.command({"GET", "a"}), ConnectionError) << "closed until reconnect()";
  EXPECT_THROW(r.reconnect(), ConnectionError) << "nothing listens";
  server_.restart();
  r.reconnect();
  EXPECT_EQ(r.command({"PING"}).str, "PONG");
}

// Redis closes a connection (CLIENT KILL, a restart, a timeout): writing to it again is a
// ConnectionError — never the SIGPIPE that would kill the process (hiredis writes with write(2);
// concur sends with MSG_NOSIGNAL).
TEST_F(RedisTest, WritingToAConnectionRedisClosedIsAConnectionErrorNotASigpipe) {
  Redis r = server_.client();
  (void)r.command({"CLIENT", "SETNAME", "victim"});
  (void)server_.client().command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  // The first write after the close may still be taken by the kernel (the peer answers it with a
  // reset); one after that fails with EPIPE.
  int errors = 0;
  for (int i = 0; i < 5 && r.is_connected(); ++i) {
    try {
      r.append({"PING"});
      r.flush();
    } catch (const ConnectionError&) {
      ++errors;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(r.is_connected());
  r.reconnect();
  EXPECT_EQ(r.command({"PING"}).str, "PONG");
}

TEST_F(RedisTest, AReplySlowerThanTheTimeoutIsAConnectionError) {
  Redis r = Redis::connect(RedisUrl::parse(server_.url()), std::chrono::milliseconds(200));
  // BLPOP itself would answer nil after 5 s: the throw is the read's own timeout.
  EXPECT_THROW((void)r.command({"BLPOP", "nothing", "5"}), ConnectionError);
  EXPECT_FALSE(r.is_connected());
}

TEST_F(RedisTest, SelectsTheUrlsDatabase) {
  Redis db0 = server_.client();
  Redis db2 = Redis::connect(RedisUrl::parse(server_.url() + "/2"));
  (void)db2.command({"SET", "only-in-2", "x"});
  EXPECT_TRUE(db0.command({"GET", "only-in-2"}).is_nil());
  EXPECT_EQ(db2.command({"GET", "only-in-2"}).str, "x");
}

TEST(RedisConnectTest, NothingListeningIsAConnectionError) {
  const std::uint16_t port = concur::testing::free_loopback_port();
  EXPECT_THROW((void)Redis::connect(RedisUrl::parse("redis://127.0.0.1:" + std::to_string(port))),
               ConnectionError);
}

}  // namespace
}  // namespace concur::dist
