// concur/dist/redis.hpp — the Redis connection under concur::dist (hiredis, synchronous).
//
//   dist::Redis r = dist::Redis::connect(dist::RedisUrl::parse("redis://127.0.0.1:6379/0"));
//   dist::Reply pong = r.command({"PING"});            // pong.str == "PONG"
//   r.append({"INCR", "n"}); r.append({"INCR", "n"});  // a pipeline: one write, two replies
//   long long n = r.get_reply().integer; n = r.get_reply().integer;
//
// One Redis is one TCP (or Unix-socket) connection speaking RESP2 through hiredis; arguments are
// binary-safe (string_views, sent with their lengths). A server error reply (-ERR, -BUSYGROUP,
// -NOSCRIPT...) is thrown as RedisError; a connection that cannot be made, times out or breaks is
// thrown as concur::ConnectionError, after which the Redis is closed (is_connected() false) until
// reconnect(). RedisExecutor and the worker reconnect with backoff themselves.
// A process forked from the one that connected must not speak on the connection it inherited (its
// parent may be waiting for a reply on it): its first command drops that copy, without a byte on
// the wire, and connects anew — redis-py's connection pools do the same after fork. Replies of
// commands sent before the fork are the parent's.
// Thread-safety: none — one connection per thread (or a mutex around it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

struct redisContext;

namespace concur::dist {

// RedisError: the server answered a command with an error reply; what() is "RedisError: " and the
// server's text ("ERR unknown command...", "BUSYGROUP Consumer Group name already exists").
class RedisError : public Error {
 public:
  explicit RedisError(const std::string& server_text)
      : Error("RedisError: " + server_text), text_(server_text) {}
  // text() is the server's error text; code() its first word ("ERR", "BUSYGROUP", "NOSCRIPT").
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  [[nodiscard]] std::string code() const { return text_.substr(0, text_.find(' ')); }

 private:
  std::string text_;
};

// RedisUrl is where a Redis server is: redis://[[user]:password@]host[:port][/db] (port 6379,
// db 0 by default; an IPv6 host in brackets) or unix:///path/to/socket[?db=N]. parse() throws
// ValueError for anything else.
struct CONCUR_EXPORT RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path;  // set for unix:// URLs (host and port unused)
  std::string username;
  std::string password;
  int db = 0;

  static RedisUrl parse(std::string_view url);
  // str() is the URL without the password (for logs and errors).
  [[nodiscard]] std::string str() const;
};

// Reply is one RESP2 reply, owned (copied out of hiredis's reply object).
struct Reply {
  enum class Type { nil, status, integer, string, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string str;  // status and string replies
  std::vector<Reply> elements;

  [[nodiscard]] bool is_nil() const noexcept { return type == Type::nil; }
  [[nodiscard]] bool is_array() const noexcept { return type == Type::array; }
  // at(i) is element i of an array reply; throws RedisError("protocol: ...") when this is not an
  // array or i is out of range (a reply of an unexpected shape).
  [[nodiscard]] const Reply& at(std::size_t i) const;
  // as_integer() is an integer reply's value, or a string reply's digits; RedisError otherwise.
  [[nodiscard]] long long as_integer() const;
};

class CONCUR_EXPORT Redis {
 public:
  // connect(url, timeout): connects (timeout bounds the connect and, unless set_timeout changes it,
  // every reply), then AUTH and SELECT as the URL asks. Throws ConnectionError when the server
  // cannot be reached, RedisError when AUTH or SELECT is refused.
  static Redis connect(const RedisUrl& url,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

  Redis() noexcept;  // not connected
  Redis(Redis&& other) noexcept;
  Redis& operator=(Redis&& other) noexcept;
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;
  ~Redis();

  // command(argv) sends one command and returns its reply; throws RedisError for an error reply,
  // ConnectionError when the connection fails (it is then closed).
  Reply command(std::initializer_list<std::string_view> argv);
  Reply command(const std::vector<std::string_view>& argv);
  Reply command(const std::vector<std::string>& argv);
  // append(argv) queues a command without waiting (a pipeline); get_reply() reads the next reply
  // in order (an error reply is thrown, and the pipeline's later replies are still readable).
  void append(std::initializer_list<std::string_view> argv);
  void append(const std::vector<std::string_view>& argv);
  Reply get_reply();
  // try_reply(): the next reply if it has arrived, nullopt if not — never waits (throws as
  // get_reply()).
  std::optional<Reply> try_reply();
  // buffered_reply(): the next reply if it was received already — no system call (after a
  // pipeline's replies came in one read, or to check before waiting for the socket).
  std::optional<Reply> buffered_reply();
  // flush() sends the commands appended so far now (get_reply() would send them first anyway):
  // the server works on them while the caller does something else before reading the replies.
  void flush();

  // set_timeout(t): how long a reply may take (0: forever); for blocking commands (BLPOP,
  // XREADGROUP BLOCK) make it longer than their own timeout.
  void set_timeout(std::chrono::milliseconds timeout);
  // reconnect(): connects again to the same URL (closing the old connection). Throws as connect.
  void reconnect();
  // close(): drops the connection (is_connected() becomes false).
  void close() noexcept;
  [[nodiscard]] bool is_connected() const noexcept { return ctx_ != nullptr; }
  // fd(): the connection's socket, to wait for a reply with poll/epoll (then try_reply()); -1 when
  // not connected. Reading, writing or closing it breaks the connection.
  [[nodiscard]] int fd() const noexcept;
  [[nodiscard]] const RedisUrl& url() const noexcept { return url_; }

 private:
  void open();
  void own_connection();  // in a process forked from the one that connected: connects anew
  void append_argv(std::size_t argc, const char** argv, const std::size_t* lens);
  [[noreturn]] void fail_io(const char* what);

  redisContext* ctx_ = nullptr;
  pid_t pid_ = 0;  // the process that made ctx_
  RedisUrl url_;
  std::chrono::milliseconds timeout_{5000};
};

// Script is a Lua script run with EVALSHA (EVAL once when the server does not know it yet, e.g.
// after a restart or SCRIPT FLUSH).
class CONCUR_EXPORT Script {
 public:
  explicit Script(std::string source);
  // run(redis, keys, args) runs the script; throws as Redis::command.
  Reply run(Redis& redis, const std::vector<std::string_view>& keys,
            const std::vector<std::string_view>& args) const;
  // append(redis, keys, args) queues the script's EVALSHA in a pipeline (Redis::append): its reply
  // is read with get_reply(), and a NOSCRIPT answer is the caller's to handle (run() again).
  void append(Redis& redis, const std::vector<std::string_view>& keys,
              const std::vector<std::string_view>& args) const;
  [[nodiscard]] const std::string& sha1() const noexcept { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

}  // namespace concur::dist
