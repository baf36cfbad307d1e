// concur::dist::Redis over hiredis's synchronous API (redisConnectWithTimeout,
// redisAppendCommandArgv, redisGetReply; the writes are its own, send(MSG_NOSIGNAL)), and Script's
// EVALSHA with its SHA-1 from OpenSSL.
#include "concur/dist/redis.hpp"

// sds.h (included by hiredis.h) has no extern "C" of its own: first, inside one.
extern "C" {
#include <hiredis/sds.h>
}
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../base/this_pid.hpp"

namespace concur::dist {

namespace {

timeval to_timeval(std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  return tv;
}

[[noreturn]] void bad_url(std::string_view url, const char* why) {
  throw ValueError("invalid Redis URL '" + std::string(url) + "': " + why);
}

int parse_int(std::string_view url, std::string_view digits, const char* what) {
  int v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || v < 0)
    bad_url(url, what);
  return v;
}

// copy_reply(r) owns what hiredis's reply holds; an error reply (at any depth) throws.
Reply copy_reply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(copy_reply(r->element[i]));
      break;
    case REDIS_REPLY_ERROR:
      throw RedisError(std::string(r->str, r->len));
    default:  // REDIS_REPLY_NIL
      break;
  }
  return out;
}

struct ReplyDeleter {
  void operator()(void* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

}  // namespace

// ---- RedisUrl

RedisUrl RedisUrl::parse(std::string_view url) {
  RedisUrl out;
  constexpr std::string_view kTcp = "redis://";
  constexpr std::string_view kUnix = "unix://";
  if (url.starts_with(kUnix)) {
    std::string_view rest = url.substr(kUnix.size());
    const auto q = rest.find('?');
    if (q != std::string_view::npos) {
      const std::string_view query = rest.substr(q + 1);
      if (!query.starts_with("db=")) bad_url(url, "the only query parameter is db=N");
      out.db = parse_int(url, query.substr(3), "db is not a number");
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest.front() != '/') bad_url(url, "a unix:// URL needs an absolute path");
    out.unix_path = std::string(rest);
    return out;
  }
  if (!url.starts_with(kTcp)) bad_url(url, "expected redis://host:port[/db] or unix:///path");
  std::string_view rest = url.substr(kTcp.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) out.db = parse_int(url, db, "the database is not a number");
  }
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      out.password = std::string(userinfo);  // redis://secret@host: a password alone
    } else {
      out.username = std::string(userinfo.substr(0, colon));
      out.password = std::string(userinfo.substr(colon + 1));
    }
  }
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {  // [::1]:6379
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad_url(url, "an IPv6 host needs its closing ']'");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad_url(url, "expected ':port' after the IPv6 host");
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
  }
  if (host.empty()) bad_url(url, "no host");
  out.host = std::string(host);
  if (!port.empty()) {
    out.port = parse_int(url, port, "the port is not a number");
    if (out.port == 0 || out.port > 65535) bad_url(url, "the port is out of range");
  }
  return out;
}

std::string RedisUrl::str() const {
  std::string s;
  if (!unix_path.empty()) {
    s = "unix://" + unix_path;
    if (db != 0) s += "?db=" + std::to_string(db);
    return s;
  }
  s = "redis://";
  if (!username.empty() || !password.empty()) {
    s += username;
    s += ":***@";
  }
  if (host.find(':') != std::string::npos) {
    s += '[';
    s += host;
    s += ']';
  } else {
    s += host;
  }
  s += ':';
  s += std::to_string(port);
  if (db != 0) {
    s += '/';
    s += std::to_string(db);
  }
  return s;
}

// ---- Reply

const Reply& Reply::at(std::size_t i) const {
  if (type != Type::array || i >= elements.size())
    throw RedisError("protocol: expected an array reply with an element " + std::to_string(i));
  return elements[i];
}

long long Reply::as_integer() const {
  if (type == Type::integer) return integer;
  if (type == Type::string) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(str.data(), str.data() + str.size(), v);
    if (ec == std::errc() && end == str.data() + str.size()) return v;
  }
  throw RedisError("protocol: expected an integer reply");
}

// ---- Redis

Redis::Redis() noexcept = default;

Redis::Redis(Redis&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)),
      pid_(other.pid_),
      url_(std::move(other.url_)),
      timeout_(other.timeout_) {}

Redis& Redis::operator=(Redis&& other) noexcept {
  if (this != &other) {
    close();
    ctx_ = std::exchange(other.ctx_, nullptr);
    pid_ = other.pid_;
    url_ = std::move(other.url_);
    timeout_ = other.timeout_;
  }
  return *this;
}

Redis::~Redis() { close(); }

Redis Redis::connect(const RedisUrl& url, std::chrono::milliseconds timeout) {
  Redis r;
  r.url_ = url;
  r.timeout_ = timeout;
  r.open();
  return r;
}

void Redis::open() {
  close();
  const timeval tv = to_timeval(timeout_);
  redisContext* c = url_.unix_path.empty()
                        ? redisConnectWithTimeout(url_.host.c_str(), url_.port, tv)
                        : redisConnectUnixWithTimeout(url_.unix_path.c_str(), tv);
  if (c == nullptr) throw ConnectionError(ENOMEM, "cannot allocate a Redis connection");
  if (c->err != 0) {
    const std::string why = c->errstr;
    const int code = c->err == REDIS_ERR_IO && errno != 0 ? errno : ECONNREFUSED;
    redisFree(c);
    throw ConnectionError(code, "cannot connect to Redis at " + url_.str() + ": " + why);
  }
  ctx_ = c;
  pid_ = concur::detail::this_pid();
  // Not inherited across exec (subprocesses, spawned workers), which would keep the connection
  // open after this side closed it; a forked child's copy is dropped at its first command.
  (void)::fcntl(ctx_->fd, F_SETFD, FD_CLOEXEC);
  if (timeout_.count() > 0) redisSetTimeout(ctx_, tv);
  try {
    if (!url_.password.empty()) {
      if (url_.username.empty())
        (void)command({"AUTH", url_.password});
      else
        (void)command({"AUTH", url_.username, url_.password});
    }
    if (url_.db != 0) (void)command({"SELECT", std::to_string(url_.db)});
  } catch (const RedisError&) {
    close();  // refused: not left connected without its credentials or database
    throw;
  }
}

void Redis::reconnect() { open(); }

void Redis::own_connection() {
  if (ctx_ == nullptr || pid_ == concur::detail::this_pid()) return;
  close();  // hiredis only closes this process's descriptor and frees its buffers
  open();
}

void Redis::close() noexcept {
  if (ctx_ != nullptr) redisFree(std::exchange(ctx_, nullptr));
}

int Redis::fd() const noexcept { return ctx_ != nullptr ? ctx_->fd : -1; }

void Redis::set_timeout(std::chrono::milliseconds timeout) {
  timeout_ = timeout;
  own_connection();  // not the parent's socket's timeout
  if (ctx_ != nullptr) redisSetTimeout(ctx_, to_timeval(timeout));
}

void Redis::fail_io(const char* what) {
  const std::string why = ctx_ != nullptr ? ctx_->errstr : "not connected";
  const bool timed_out =
      ctx_ != nullptr && ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
  close();
  throw ConnectionError(timed_out ? ETIMEDOUT : ECONNRESET,
                        std::string(what) + " Redis at " + url_.str() + ": " +
                            (timed_out ? std::string("timed out") : why));
}

void Redis::append_argv(std::size_t argc, const char** argv, const std::size_t* lens) {
  own_connection();
  if (ctx_ == nullptr) fail_io("not connected to");
  if (redisAppendCommandArgv(ctx_, static_cast<int>(argc), argv, lens) != REDIS_OK)
    fail_io("cannot send to");
}

void Redis::append(const std::vector<std::string_view>& argv) {
  std::vector<const char*> ptrs(argv.size());
  std::vector<std::size_t> lens(argv.size());
  for (std::size_t i = 0; i < argv.size(); ++i) {
    ptrs[i] = argv[i].data();
    lens[i] = argv[i].size();
  }
  append_argv(argv.size(), ptrs.data(), lens.data());
}

void Redis::append(std::initializer_list<std::string_view> argv) {
  append(std::vector<std::string_view>(argv));
}

Reply Redis::get_reply() {
  flush();  // (before hiredis would write: see flush())
  void* raw = nullptr;
  if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) fail_io("lost the connection to");
  const ReplyPtr reply(static_cast<redisReply*>(raw));
  return copy_reply(reply.get());
}

namespace {

// socket_error(e, what, url): the ConnectionError for a failed send/recv of our own (errno e); a
// send that timed out (SO_SNDTIMEO: EAGAIN) is ETIMEDOUT, as fail_io reports hiredis's reads.
ConnectionError socket_error(int e, const char* what, const RedisUrl& url) {
  const bool timed_out = e == EAGAIN || e == EWOULDBLOCK;
  return ConnectionError(
      timed_out ? ETIMEDOUT : e,
      std::string(what) + " Redis at " + url.str() + ": " +
          (timed_out ? std::string("timed out") : std::system_category().message(e)));
}

}  // namespace

std::optional<Reply> Redis::buffered_reply() {
  own_connection();
  if (ctx_ == nullptr) fail_io("not connected to");
  void* raw = nullptr;
  if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) fail_io("lost the connection to");
  if (raw == nullptr) return std::nullopt;
  const ReplyPtr reply(static_cast<redisReply*>(raw));
  return copy_reply(reply.get());
}

std::optional<Reply> Redis::try_reply() {
  if (std::optional<Reply> r = buffered_reply()) return r;
  // One non-blocking recv() (the socket itself blocks, for get_reply's timeout) fed to the reader.
  char buf[16 * 1024];
  const ssize_t n = ::recv(ctx_->fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return std::nullopt;
    const int e = errno;
    close();
    throw socket_error(e, "lost the connection to", url_);
  }
  if (n == 0) {
    close();
    throw ConnectionError(ECONNRESET, "lost the connection to Redis at " + url_.str() +
                                          ": Server closed the connection");
  }
  if (redisReaderFeed(ctx_->reader, buf, static_cast<std::size_t>(n)) != REDIS_OK)
    fail_io("lost the connection to");
  return buffered_reply();
}

void Redis::flush() {
  own_connection();
  if (ctx_ == nullptr) fail_io("not connected to");
  // hiredis 0.14 writes with write(2): a peer that closed the connection would raise SIGPIPE and
  // kill the process. The buffered commands go out here with send(MSG_NOSIGNAL) instead (a
  // closed peer is then EPIPE: a ConnectionError), and get_reply() flushes first, so hiredis
  // never writes itself.
  while (sdslen(ctx_->obuf) > 0) {
    const ssize_t n = ::send(ctx_->fd, ctx_->obuf, sdslen(ctx_->obuf), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      close();
      throw socket_error(e, "cannot send to", url_);
    }
    if (static_cast<std::size_t>(n) == sdslen(ctx_->obuf)) {
      sdsclear(ctx_->obuf);
    } else {
      sdsrange(ctx_->obuf, static_cast<int>(n), -1);
    }
  }
}

Reply Redis::command(const std::vector<std::string_view>& argv) {
  append(argv);
  return get_reply();
}

Reply Redis::command(std::initializer_list<std::string_view> argv) {
  return command(std::vector<std::string_view>(argv));
}

Reply Redis::command(const std::vector<std::string>& argv) {
  std::vector<std::string_view> views(argv.begin(), argv.end());
  return command(views);
}

// ---- Script

namespace {

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr) != 1)
    throw RuntimeError("OpenSSL cannot compute a SHA-1 digest");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

}  // namespace

Script::Script(std::string source) : source_(std::move(source)), sha1_(sha1_hex(source_)) {}

namespace {

// evalsha_argv(sha1, nkeys, keys, args): EVALSHA sha1 nkeys keys... args... (nkeys must outlive
// it).
std::vector<std::string_view> evalsha_argv(std::string_view sha1, std::string_view nkeys,
                                           const std::vector<std::string_view>& keys,
                                           const std::vector<std::string_view>& args) {
  std::vector<std::string_view> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.emplace_back(sha1);
  argv.emplace_back(nkeys);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

void Script::append(Redis& redis, const std::vector<std::string_view>& keys,
                    const std::vector<std::string_view>& args) const {
  const std::string nkeys = std::to_string(keys.size());
  redis.append(evalsha_argv(sha1_, nkeys, keys, args));
}

Reply Script::run(Redis& redis, const std::vector<std::string_view>& keys,
                  const std::vector<std::string_view>& args) const {
  const std::string nkeys = std::to_string(keys.size());
  std::vector<std::string_view> argv = evalsha_argv(sha1_, nkeys, keys, args);
  try {
    return redis.command(argv);
  } catch (const RedisError& e) {
    if (e.code() != "NOSCRIPT") throw;
  }
  argv[0] = "EVAL";
  argv[1] = source_;
  return redis.command(argv);
}

}  // namespace concur::dist
