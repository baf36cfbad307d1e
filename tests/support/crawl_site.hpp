// tests/support/crawl_site.hpp — the crawler's test site (issue 14, "Test site"): a deterministic
// generated blog served on 127.0.0.1 (a free port) by an aio HTTP/1.1 server that logs every
// request, so crawler tests check politeness from the server's side (concurrency, delays, robots,
// each page fetched once). Requests are parsed by Boost.Beast's parser and answers serialized by
// Beast (as tests/support/http_test_server.hpp), except the endpoints that misbehave on purpose.
//
// The site (everything follows from CrawlSiteOptions; docs in the class):
//   /                 links to /list/1
//   /list/K           the notes' cnblogs list: `<a class="post-item-title" href="/post/N">Title N`
//                     for its posts, `<a class="next" href="/list/K+1">` unless last (and a prev)
//   /post/N           `<h1 class="title">Post N`, `<span class="author">author-(N%7)`, a
//                     `<div class="content">` padded to about post_bytes, and post_links(N): other
//                     posts in relative, absolute, query-shuffled and #fragment forms, and by a
//                     fixed hash of N: /private/N (robots-disallowed), http://offsite.invalid/N,
//                     /missing/N (404), /r/M (302 -> /post/M)
//   /robots.txt       options.robots with options.robots_status
//   misbehaving (linked from nowhere): /slow?ms=M, /status?code=N&retry_after=V,
//   /flaky?key=K&fail=F&code=C&retry_after=V, /redirect-chain?n=N, /redirect-loop, /truncated,
//   /huge?size=N, /binary?size=N, /badenc, /notext, /reset, /close-early; anything else 404.
// reachable_allowed_paths() is what a correct crawler fetches (a BFS over the generator), which a
// test compares with the log; write_static_site() writes the same pages for nginx
// (tests/support/nginx_server.hpp), the benchmarks' fast static server.
// Thread-safety: the server runs on the loop that started it. The log, counters and stats are
// guarded by a mutex, so they may be read from any thread, but they only settle once the requests
// of interest have been answered: read them on the loop after the fetches returned, or after the
// loop ended. Lifetime: close() + wait_closed() stop it; the log stays readable afterwards.
// Header-only (tests and benchmarks include it); loopback only.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

namespace concur::testing {

// CrawlSiteOptions: the whole site follows from these (same options, same bytes).
struct CrawlSiteOptions {
  // posts: /post/1 … /post/<posts>.
  int posts = 2000;
  // posts_per_list: posts per list page; list pages: ceil(posts / posts_per_list) (at least 1).
  int posts_per_list = 40;
  // latency: every answer waits this long before its head is written (the network's latency:
  // the benchmarks' "50 ms per response").
  std::chrono::milliseconds latency{0};
  // post_bytes: the size a post page is padded to (about).
  std::size_t post_bytes = 5000;
  // robots / robots_status: the body and status of /robots.txt (404: a crawler allows all; 5xx:
  // it disallows all — RFC 9309 §2.3.1).
  std::string robots = "User-agent: *\nDisallow: /private/\n";
  int robots_status = 200;
  // keep_alive: HTTP/1.1 persistent connections; false answers every request with
  // "Connection: close" and closes.
  bool keep_alive = true;
};

// RequestRecord: one request as the server saw it.
struct RequestRecord {
  // arrival: the request's head was read; finish: its answer was written (or the connection
  // ended); time_point{} while the request is still being answered.
  std::chrono::steady_clock::time_point arrival{};
  std::chrono::steady_clock::time_point finish{};
  std::string method;
  std::string target;  // as requested ("/post/3?utm=x&a=1")
  std::string path;    // the target without its query ("/post/3")
  std::string user_agent;
  int connection = 0;            // the accepted connection's id (1, 2, … in accept order)
  int in_flight_at_arrival = 0;  // requests being answered site-wide then, this one included
  int status = 0;                // the status sent; 0 when none was (/close-early)
};

// CrawlSiteStats: connections and requests so far.
struct CrawlSiteStats {
  int connections = 0;  // accepted
  int open = 0;         // open now
  int most_open = 0;    // the most open at once
  int requests = 0;
};

namespace crawl_site_detail {

namespace http = boost::beast::http;

// mix(n, salt): splitmix64 of n and salt: the fixed hash the extra links of a post follow.
inline std::uint64_t mix(std::uint64_t n, std::uint64_t salt) {
  std::uint64_t z = n * 0x9E3779B97F4A7C15ULL + (salt + 1) * 0xD1B54A32D192ED03ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// pick(n, salt, modulo): mix(n, salt) in [0, modulo).
inline int pick(int n, int salt, int modulo) {
  return static_cast<int>(mix(static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(salt)) %
                          static_cast<std::uint64_t>(modulo));
}

// number_after(path, prefix, max): N when path is prefix + N with 1 <= N <= max written without
// leading zeros (each page has one URL), else nullopt.
inline std::optional<int> number_after(std::string_view path, std::string_view prefix, int max) {
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view digits = path.substr(prefix.size());
  if (digits.empty() || digits.size() > 9 || digits[0] == '0') return std::nullopt;
  int n = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n > max) return std::nullopt;
  return n;
}

// percent_decode(s): a query component decoded ('+' is a space, %XX a byte; a stray '%' stays).
// Hand-written on purpose: the site is the crawler's oracle, so it shares no URL code with it.
inline std::string percent_decode(std::string_view s) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

using Query = std::map<std::string, std::string, std::less<>>;

inline Query parse_query(std::string_view q) {
  Query out;
  while (!q.empty()) {
    const std::size_t amp = q.find('&');
    const std::string_view kv = q.substr(0, amp);
    const std::size_t eq = kv.find('=');
    out.emplace(percent_decode(kv.substr(0, eq)),
                eq == std::string_view::npos ? std::string() : percent_decode(kv.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

inline long query_number(const Query& q, std::string_view key, long fallback) {
  const auto it = q.find(key);
  return it == q.end() ? fallback : std::strtol(it->second.c_str(), nullptr, 10);
}

// glob_match(pattern, path): robots.txt matching — '*' any run of characters, a final '$' anchors
// the end, otherwise a prefix match.
inline bool glob_match(std::string_view pattern, std::string_view path) {
  if (pattern.empty()) return true;
  if (pattern == "$") return path.empty();
  if (pattern[0] == '*') {
    for (std::size_t skip = 0; skip <= path.size(); ++skip) {
      if (glob_match(pattern.substr(1), path.substr(skip))) return true;
    }
    return false;
  }
  return !path.empty() && pattern[0] == path[0] && glob_match(pattern.substr(1), path.substr(1));
}

// remove_dot_segments(path): RFC 3986 §5.2.4 for the generator's own link forms.
inline std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 1;  // path starts with '/'
  while (start <= path.size()) {
    const std::size_t slash = std::min(path.find('/', start), path.size());
    const std::string_view seg = path.substr(start, slash - start);
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      if (slash == path.size()) out.emplace_back();
    } else if (seg == ".") {
      if (slash == path.size()) out.emplace_back();
    } else {
      out.push_back(seg);
    }
    start = slash + 1;
  }
  std::string joined;
  for (const std::string_view seg : out) {
    joined += '/';
    joined += seg;
  }
  return joined.empty() ? "/" : joined;
}

inline void write_file(const std::filesystem::path& file, std::string_view data) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw RuntimeError("write_static_site: cannot write " + file.string());
  out.close();
  // Readable by others: nginx's workers run as `nobody` when the tests run as root.
  namespace fs = std::filesystem;
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
}

// kPng: a valid 1x1 PNG (/notext).
inline constexpr char kPng[] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00"
    "\x00\x01\x08\x02\x00\x00\x00\x90\x77\x53\xde\x00\x00\x00\x0c\x49\x44\x41\x54\x78\x9c\x63"
    "\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00\x49\x45\x4e\x44\xae"
    "\x42\x60\x82";

}  // namespace crawl_site_detail

// CrawlSite: the server, its log, and the generator (static members: expectations are computed
// from the options without a server).
class CrawlSite {
 public:
  // ---- the server

  // start(options): listens on 127.0.0.1, a free port, and serves (inside a running loop).
  // OSError when it cannot bind; RuntimeError outside a running loop. start() uses the defaults
  // (an overload, not a default argument: g++ 12 destroys a `{}` aggregate argument written
  // inside a co_await expression twice).
  static aio::Task<CrawlSite> start(CrawlSiteOptions options);
  static aio::Task<CrawlSite> start() { return start(CrawlSiteOptions()); }
  [[nodiscard]] std::uint16_t port() const { return server_.port(); }
  // origin(): "http://127.0.0.1:<port>"; url(target): origin() + target.
  [[nodiscard]] std::string origin() const { return state_->origin; }
  [[nodiscard]] std::string url(std::string_view target) const {
    return state_->origin + std::string(target);
  }
  [[nodiscard]] const CrawlSiteOptions& options() const { return state_->options; }
  // close(): stops accepting and closes every open connection (answers in progress end).
  void close() {
    server_.close();
    server_.close_clients();
  }
  // wait_closed(): suspends until the server is closed and every connection's handler returned.
  aio::Task<void> wait_closed() { return server_.wait_closed(); }

  // ---- the log (what the server saw; see the file comment for when it settles)

  // log(): every request so far, in arrival order (a copy).
  [[nodiscard]] std::vector<RequestRecord> log() const;
  // count(path_or_target): requests whose path or whole target equals it ("/post/3" counts every
  // query of it, "/post/3?a=1" that target only).
  [[nodiscard]] int count(std::string_view path_or_target) const;
  // count_with_prefix(prefix): requests whose path starts with prefix ("/private/").
  [[nodiscard]] int count_with_prefix(std::string_view prefix) const;
  // max_in_flight(): the most requests answered at once, site-wide.
  [[nodiscard]] int max_in_flight() const;
  // max_in_flight_for(prefix): the most requests whose path starts with prefix answered at once
  // (a request unfinished counts as in flight until now).
  [[nodiscard]] int max_in_flight_for(std::string_view prefix) const;
  // min_start_gap(prefix): the smallest gap between consecutive arrivals of requests whose path
  // starts with prefix (a download delay seen from the server); duration::max() for fewer than 2.
  [[nodiscard]] std::chrono::steady_clock::duration min_start_gap(std::string_view prefix) const;
  // fetched_more_than_once(): the targets requested more than once, compared as
  // canonical_target() (query order and fragments do not make a page new), sorted.
  [[nodiscard]] std::vector<std::string> fetched_more_than_once() const;
  [[nodiscard]] CrawlSiteStats stats() const;

  // ---- the generator (deterministic from the options)

  // list_pages(options): ceil(posts / posts_per_list), at least 1.
  [[nodiscard]] static int list_pages(const CrawlSiteOptions& options);
  [[nodiscard]] int list_pages() const { return list_pages(state_->options); }
  // home_page() / list_page(k) / post_page(n, origin) / private_page(n) / not_found_page(): the
  // HTML bodies of /, /list/K, /post/N (its absolute links start with origin), /private/N and of
  // every 404.
  [[nodiscard]] static std::string home_page();
  [[nodiscard]] static std::string list_page(int k, const CrawlSiteOptions& options);
  [[nodiscard]] static std::string post_page(int n, const CrawlSiteOptions& options,
                                             std::string_view origin);
  [[nodiscard]] static std::string private_page(int n);
  [[nodiscard]] static std::string not_found_page();
  // list_links(k) / post_links(n, origin) / private_links(n): each page's hrefs in document
  // order, as a parser reads them (entities decoded: "?utm=x&a=1" is written "?utm=x&amp;a=1").
  [[nodiscard]] static std::vector<std::string> list_links(int k, const CrawlSiteOptions& options);
  [[nodiscard]] static std::vector<std::string> post_links(int n, const CrawlSiteOptions& options,
                                                           std::string_view origin);
  [[nodiscard]] static std::vector<std::string> private_links(int n);
  // badenc_page(): /badenc's bytes (declared UTF-8; latin-1 and invalid sequences; one link,
  // kBadencLink). binary_body(size): /binary's bytes. png(): /notext's.
  static constexpr std::string_view kBadencLink = "/post/1";
  [[nodiscard]] static std::string badenc_page();
  [[nodiscard]] static std::string binary_body(std::size_t size);
  [[nodiscard]] static std::string png() {
    return std::string(crawl_site_detail::kPng, sizeof crawl_site_detail::kPng - 1);
  }

  // robots_allows(options, path): what a crawler obeying the site's robots.txt decides for path
  // ("/robots.txt" itself is always allowed). Status 2xx: options.robots is obeyed, its groups
  // naming "*" only (for a crawler with a group of its own, use reachable_paths()), '*' and '$'
  // in patterns, the longest matching pattern wins and Allow wins a tie. 3xx and 4xx but 429:
  // everything is allowed; 429 and 5xx: nothing is. Written here rather than taken from
  // crawl::RobotsTxt: the site is the crawler's oracle.
  [[nodiscard]] static bool robots_allows(const CrawlSiteOptions& options, std::string_view path);
  // reachable_paths(options, allowed, start): the paths (targets without query) a crawler fetches
  // starting from `start`, following every in-domain link (never http://offsite.invalid), every
  // redirect, and only paths for which allowed(path) is true; plus "/robots.txt", which it
  // fetches first. A BFS over the generator (no server, no parsing).
  [[nodiscard]] static std::set<std::string> reachable_paths(
      const CrawlSiteOptions& options, const std::function<bool(std::string_view)>& allowed,
      std::string_view start = "/");
  // reachable_allowed_paths(): reachable_paths() with robots_allows(): what a correct crawler
  // obeying robots fetches — what tests compare the server's log with.
  [[nodiscard]] static std::set<std::string> reachable_allowed_paths(
      const CrawlSiteOptions& options, std::string_view start = "/");
  [[nodiscard]] std::set<std::string> reachable_allowed_paths() const {
    return reachable_allowed_paths(state_->options);
  }
  // canonical_target(target): target without its fragment, its query's parameters sorted
  // ("/post/3?utm=x&a=1#top" -> "/post/3?a=1&utm=x"): the key fetched_more_than_once() uses.
  [[nodiscard]] static std::string canonical_target(std::string_view target);

 private:
  using Query = crawl_site_detail::Query;

  // State: shared by the server's handlers and the handle.
  struct State {
    CrawlSiteOptions options;
    std::string origin;  // set before the server starts serving
    mutable std::mutex mu;
    std::vector<RequestRecord> log CONCUR_GUARDED_BY(mu);
    std::map<std::string, int, std::less<>> flaky_seen CONCUR_GUARDED_BY(mu);
    CrawlSiteStats stats CONCUR_GUARDED_BY(mu);
    int in_flight CONCUR_GUARDED_BY(mu) = 0;
  };

  // Incoming: one parsed request.
  struct Incoming {
    std::string method;
    std::string target;
    std::string path;
    Query query;
    std::string user_agent;
    bool close = false;  // the answer closes the connection (client's or options' wish)
  };

  // InFlight: a request from its arrival (constructor: appends its record, counts it in flight)
  // to its end (destructor: its finish time and status, whatever ended it — the answer, an error,
  // the loop's close).
  class InFlight {
   public:
    InFlight(State& state, const Incoming& in, int connection);
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    int status = 0;  // set by the handler before the head is written

   private:
    State& state_;
    std::size_t index_;
  };

  CrawlSite(aio::Server server, std::shared_ptr<State> state)
      : server_(std::move(server)), state_(std::move(state)) {}

  static aio::Task<void> serve(std::shared_ptr<State> state, aio::StreamReader reader,
                               aio::StreamWriter writer);
  static aio::Task<void> serve_connection(std::shared_ptr<State> state, int connection,
                                          aio::StreamReader& reader, aio::StreamWriter& writer);
  static aio::Task<std::optional<Incoming>> read_request(const State& state,
                                                         aio::StreamReader& reader);
  // handle(...): answers one request; false when the connection must close afterwards.
  static aio::Task<bool> handle(std::shared_ptr<State> state, const Incoming& in,
                                aio::StreamWriter& writer, int& status);
  // answer(...): a whole answer by Beast's serializer (the head only for HEAD).
  static std::string answer(const Incoming& in, int status, std::string body,
                            std::string_view content_type = "text/html; charset=utf-8",
                            const std::vector<std::pair<std::string, std::string>>& fields = {});
  static std::string simple_page(std::string_view title, std::string_view text);

  aio::Server server_;
  std::shared_ptr<State> state_;
};

// write_static_site(dir, options, origin): the site's generated pages as files for nginx —
// index.html (/), list/K.html, post/N.html (absolute links start with origin: the nginx server's,
// so start it first — it serves files as they appear), private/N.html, robots.txt (for status
// 200; none for 404), 404.html — served at the site's URLs by static_site_nginx_locations().
// Directories 0755, files 0644 (nginx's workers may run as another user). A robots_status other
// than 200 and 404 writes no robots.txt: static_site_nginx_locations() answers it with that status.
inline void write_static_site(const std::filesystem::path& dir, const CrawlSiteOptions& options,
                              std::string_view origin);
// static_site_nginx_locations(options): the nginx server-block directives that serve
// write_static_site()'s files at the site's URLs (for NginxServer::start()): /list/K, /post/N and
// /private/N by `try_files $uri.html`, / by index.html, robots.txt with its status, /r/N -> 302
// /post/N (for any N: an out-of-range one 404s after the redirect, where the site 404s at once),
// the 404 page for anything else (*.html URLs included, as on the site).
inline std::string static_site_nginx_locations(const CrawlSiteOptions& options);

// ---- implementation ------------------------------------------------------------------------

inline aio::Task<CrawlSite> CrawlSite::start(CrawlSiteOptions options) {
  auto state = std::make_shared<State>();
  state->options = std::move(options);
  // Named before the co_await (g++ 12: docs/python-mapping.md).
  aio::ClientConnected handler = [state](aio::StreamReader reader, aio::StreamWriter writer) {
    return serve(state, std::move(reader), std::move(writer));
  };
  aio::ServerOptions server_options;
  server_options.start_serving = false;  // the origin is known before the first request
  aio::Server server =
      co_await aio::start_server(std::move(handler), "127.0.0.1", 0, server_options);
  state->origin = "http://127.0.0.1:" + std::to_string(server.port());
  server.start_serving();
  co_return CrawlSite(std::move(server), std::move(state));
}

inline std::vector<RequestRecord> CrawlSite::log() const {
  std::lock_guard lk(state_->mu);
  return state_->log;
}

inline int CrawlSite::count(std::string_view path_or_target) const {
  std::lock_guard lk(state_->mu);
  return static_cast<int>(
      std::count_if(state_->log.begin(), state_->log.end(), [&](const RequestRecord& r) {
        return r.path == path_or_target || r.target == path_or_target;
      }));
}

inline int CrawlSite::count_with_prefix(std::string_view prefix) const {
  std::lock_guard lk(state_->mu);
  return static_cast<int>(std::count_if(
      state_->log.begin(), state_->log.end(),
      [&](const RequestRecord& r) { return r.path.substr(0, prefix.size()) == prefix; }));
}

inline int CrawlSite::max_in_flight() const {
  std::lock_guard lk(state_->mu);
  int most = 0;
  for (const RequestRecord& r : state_->log) most = std::max(most, r.in_flight_at_arrival);
  return most;
}

inline int CrawlSite::max_in_flight_for(std::string_view prefix) const {
  using Clock = std::chrono::steady_clock;
  const std::vector<RequestRecord> records = log();  // arrival order
  // A sweep over arrivals: the finish times of the matching requests still in flight, earliest
  // on top; a request that finished at or before an arrival no longer overlaps it.
  std::priority_queue<Clock::time_point, std::vector<Clock::time_point>, std::greater<>> finishes;
  int most = 0;
  for (const RequestRecord& r : records) {
    if (r.path.substr(0, prefix.size()) != prefix) continue;
    while (!finishes.empty() && finishes.top() <= r.arrival) finishes.pop();
    finishes.push(r.finish == Clock::time_point{} ? Clock::time_point::max() : r.finish);
    most = std::max(most, static_cast<int>(finishes.size()));
  }
  return most;
}

inline std::chrono::steady_clock::duration CrawlSite::min_start_gap(std::string_view prefix) const {
  const std::vector<RequestRecord> records = log();
  auto gap = std::chrono::steady_clock::duration::max();
  std::optional<std::chrono::steady_clock::time_point> previous;
  for (const RequestRecord& r : records) {
    if (r.path.substr(0, prefix.size()) != prefix) continue;
    if (previous) gap = std::min(gap, r.arrival - *previous);
    previous = r.arrival;
  }
  return gap;
}

inline std::vector<std::string> CrawlSite::fetched_more_than_once() const {
  std::map<std::string, int> seen;
  for (const RequestRecord& r : log()) ++seen[canonical_target(r.target)];
  std::vector<std::string> out;
  for (const auto& [target, times] : seen) {
    if (times > 1) out.push_back(target);
  }
  return out;
}

inline CrawlSiteStats CrawlSite::stats() const {
  std::lock_guard lk(state_->mu);
  return state_->stats;
}

// ---- generator

inline int CrawlSite::list_pages(const CrawlSiteOptions& options) {
  const int per = std::max(1, options.posts_per_list);
  return std::max(1, (std::max(0, options.posts) + per - 1) / per);
}

inline std::string CrawlSite::simple_page(std::string_view title, std::string_view text) {
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + std::string(title) +
         "</title></head>\n<body><h1>" + std::string(title) + "</h1>\n<p>" + std::string(text) +
         "</p>\n</body></html>\n";
}

inline std::string CrawlSite::home_page() {
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>concur blog</title></head>\n"
         "<body><h1>concur blog</h1>\n<a class=\"blog\" href=\"/list/1\">All posts</a>\n"
         "</body></html>\n";
}

inline std::vector<std::string> CrawlSite::list_links(int k, const CrawlSiteOptions& options) {
  std::vector<std::string> links;
  const int first = (k - 1) * options.posts_per_list + 1;
  const int last = std::min(options.posts, k * options.posts_per_list);
  for (int n = first; n <= last; ++n) links.push_back("/post/" + std::to_string(n));
  if (k > 1) links.push_back("/list/" + std::to_string(k - 1));
  if (k < list_pages(options)) links.push_back("/list/" + std::to_string(k + 1));
  return links;
}

inline std::string CrawlSite::list_page(int k, const CrawlSiteOptions& options) {
  const std::string ks = std::to_string(k);
  std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>concur blog - page " + ks +
      "</title></head>\n<body>\n<div id=\"post_list\" class=\"post-list\">\n";
  const int first = (k - 1) * options.posts_per_list + 1;
  const int last = std::min(options.posts, k * options.posts_per_list);
  for (int n = first; n <= last; ++n) {
    const std::string ns = std::to_string(n);
    html +=
        "<article class=\"post-item\"><section class=\"post-item-body\">"
        "<div class=\"post-item-text\"><a class=\"post-item-title\" href=\"/post/" +
        ns + "\" target=\"_blank\">Title " + ns +
        "</a>\n<p class=\"post-item-summary\">Summary of post " + ns +
        ": threads, processes and coroutines.</p></div></section></article>\n";
  }
  html += "</div>\n<div class=\"pager\">";
  if (k > 1) html += "<a class=\"prev\" href=\"/list/" + std::to_string(k - 1) + "\">Prev</a>";
  if (k < list_pages(options)) {
    html += "<a class=\"next\" href=\"/list/" + std::to_string(k + 1) + "\">Next</a>";
  }
  html += "</div>\n</body></html>\n";
  return html;
}

inline std::vector<std::string> CrawlSite::post_links(int n, const CrawlSiteOptions& options,
                                                      std::string_view origin) {
  using crawl_site_detail::pick;
  const int posts = std::max(1, options.posts);
  const std::string next = std::to_string(n % posts + 1);
  const std::string other = std::to_string(1 + pick(n, 1, posts));
  const std::string third = std::to_string(1 + pick(n, 2, posts));
  const std::string ns = std::to_string(n);
  std::vector<std::string> links = {
      "/",                                     // home, root-relative
      "/post/" + next,                         // the next post, root-relative
      next + "#comments",                      // the same, relative to /post/, with a fragment
      std::string(origin) + "/post/" + other,  // absolute
      "../post/" + third + "?utm=x&a=1",       // dot segments and a query
      "/post/" + third + "?a=1&utm=x#top",     // the same URL, its query shuffled, a fragment
  };
  if (pick(n, 3, 4) == 0) links.push_back("/private/" + ns);                // robots-disallowed
  if (pick(n, 4, 5) == 0) links.push_back("http://offsite.invalid/" + ns);  // off-domain
  if (pick(n, 5, 6) == 0) links.push_back("/missing/" + ns);                // 404
  if (pick(n, 6, 6) == 0) links.push_back("/r/" + other);                   // 302 -> /post/other
  return links;
}

inline std::string CrawlSite::post_page(int n, const CrawlSiteOptions& options,
                                        std::string_view origin) {
  const std::string ns = std::to_string(n);
  std::string html = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Post " + ns +
                     "</title></head>\n<body>\n<h1 class=\"title\">Post " + ns +
                     "</h1>\n<span class=\"author\">author-" + std::to_string(n % 7) +
                     "</span>\n<ul class=\"related\">\n";
  for (const std::string& link : post_links(n, options, origin)) {
    std::string href;  // the attribute's text: '&' written as an entity
    for (const char c : link) href += c == '&' ? std::string("&amp;") : std::string(1, c);
    html += "<li><a href=\"" + href + "\">link</a></li>\n";
  }
  html += "</ul>\n<div class=\"content\">\n";
  const std::string tail = "</div>\n</body></html>\n";
  for (int i = 1;; ++i) {
    const std::string para = "<p>Post " + ns + ", paragraph " + std::to_string(i) +
                             ": producers fill the queue while consumers drain it.</p>\n";
    if (i > 1 && html.size() + para.size() + tail.size() > options.post_bytes) break;
    html += para;
  }
  html += tail;
  return html;
}

inline std::vector<std::string> CrawlSite::private_links(int n) {
  return {"/post/" + std::to_string(n)};
}

inline std::string CrawlSite::private_page(int n) {
  const std::string ns = std::to_string(n);
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Private " + ns +
         "</title></head>\n<body><h1>Private " + ns + "</h1>\n<a href=\"/post/" + ns +
         "\">back</a>\n</body></html>\n";
}

inline std::string CrawlSite::not_found_page() {
  return simple_page("404 Not Found", "There is no such page on this site.");
}

inline std::string CrawlSite::badenc_page() {
  // Declared UTF-8; "caf\xe9", "na\xefve", "\xa9" are latin-1; then an invalid continuation, an
  // impossible byte pair, a truncated sequence and an encoded surrogate.
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>caf\xe9</title></head>\n"
         "<body><h1>Caf\xe9 na\xefve \xa9 2024</h1>\n"
         "<p>stray bytes: \xc3\x28 \xff\xfe \xe2\x82 \xed\xa0\x80 end</p>\n"
         "<a href=\"" +
         std::string(kBadencLink) + "\">na\xefve link</a>\n</body></html>\n";
}

inline std::string CrawlSite::binary_body(std::size_t size) {
  std::string out(size, '\0');
  std::uint64_t x = 0x2545F4914F6CDD1DULL;  // xorshift64: random-looking, the same every time
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xff);
  }
  return out;
}

inline bool CrawlSite::robots_allows(const CrawlSiteOptions& options, std::string_view path) {
  if (path == "/robots.txt") return true;
  const int status = options.robots_status;
  if (status >= 300 && status < 500 && status != 429) return true;
  if (status < 200 || status >= 300) return false;
  // The rules of the groups naming "*": consecutive user-agent lines open a group.
  struct Rule {
    bool allow;
    std::string pattern;
  };
  std::vector<Rule> rules;
  bool star = false;
  bool after_agent = false;
  std::istringstream lines(options.robots);
  for (std::string line; std::getline(lines, line);) {
    line = line.substr(0, line.find('#'));
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto trim = [](std::string s) {
      const std::size_t b = s.find_first_not_of(" \t\r");
      const std::size_t e = s.find_last_not_of(" \t\r");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    std::string key = trim(line.substr(0, colon));
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string value = trim(line.substr(colon + 1));
    if (key == "user-agent") {
      if (!after_agent) star = false;
      star = star || value == "*";
      after_agent = true;
      continue;
    }
    after_agent = false;
    if (star && (key == "allow" || key == "disallow") && !value.empty()) {
      rules.push_back({key == "allow", value});
    }
  }
  const Rule* best = nullptr;
  for (const Rule& r : rules) {
    if (!crawl_site_detail::glob_match(r.pattern, path)) continue;
    if (best == nullptr || r.pattern.size() > best->pattern.size() ||
        (r.pattern.size() == best->pattern.size() && r.allow)) {
      best = &r;
    }
  }
  return best == nullptr || best->allow;
}

inline std::set<std::string> CrawlSite::reachable_paths(
    const CrawlSiteOptions& options, const std::function<bool(std::string_view)>& allowed,
    std::string_view start) {
  using crawl_site_detail::number_after;
  // The origin the BFS writes absolute links with (and recognizes as in-domain).
  const std::string origin = "http://crawl-site.test";
  // resolve(base, href): the in-domain path href leads to from the page at base (the generator's
  // forms only: absolute on origin, root-relative, relative with dot segments), else nullopt.
  const auto resolve = [&](const std::string& base,
                           std::string href) -> std::optional<std::string> {
    href = href.substr(0, href.find_first_of("?#"));
    if (href.rfind(origin, 0) == 0) href = href.substr(origin.size());
    if (href.find("://") != std::string::npos) return std::nullopt;  // off-domain
    if (href.empty() || href[0] != '/') href = base.substr(0, base.rfind('/') + 1) + href;
    return crawl_site_detail::remove_dot_segments(href);
  };
  const int posts = options.posts;
  std::set<std::string> fetched = {"/robots.txt"};
  std::set<std::string> seen;
  std::deque<std::string> frontier;
  const auto enqueue = [&](const std::string& path) {
    if (seen.insert(path).second && allowed(path)) frontier.push_back(path);
  };
  enqueue(std::string(start));
  while (!frontier.empty()) {
    const std::string path = frontier.front();
    frontier.pop_front();
    fetched.insert(path);
    std::vector<std::string> links;
    if (path == "/") {
      links = {"/list/1"};
    } else if (const auto k = number_after(path, "/list/", list_pages(options))) {
      links = list_links(*k, options);
    } else if (const auto n = number_after(path, "/post/", posts)) {
      links = post_links(*n, options, origin);
    } else if (const auto p = number_after(path, "/private/", posts)) {
      links = private_links(*p);
    } else if (const auto r = number_after(path, "/r/", posts)) {
      links = {"/post/" + std::to_string(*r)};  // the redirect's Location
    }
    for (const std::string& link : links) {
      if (const auto to = resolve(path, link)) enqueue(*to);
    }
  }
  return fetched;
}

inline std::set<std::string> CrawlSite::reachable_allowed_paths(const CrawlSiteOptions& options,
                                                                std::string_view start) {
  const auto allowed = [&options](std::string_view path) { return robots_allows(options, path); };
  return reachable_paths(options, allowed, start);
}

inline std::string CrawlSite::canonical_target(std::string_view target) {
  target = target.substr(0, target.find('#'));
  const std::size_t qm = target.find('?');
  if (qm == std::string_view::npos) return std::string(target);
  std::vector<std::string> params;
  std::string_view q = target.substr(qm + 1);
  while (true) {
    const std::size_t amp = q.find('&');
    if (!q.substr(0, amp).empty()) params.emplace_back(q.substr(0, amp));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  std::sort(params.begin(), params.end());
  std::string out(target.substr(0, qm));
  for (std::size_t i = 0; i < params.size(); ++i) out += (i == 0 ? "?" : "&") + params[i];
  return out;
}

// ---- server

inline CrawlSite::InFlight::InFlight(State& state, const Incoming& in, int connection)
    : state_(state) {
  RequestRecord r;
  r.arrival = std::chrono::steady_clock::now();
  r.method = in.method;
  r.target = in.target;
  r.path = in.path;
  r.user_agent = in.user_agent;
  r.connection = connection;
  std::lock_guard lk(state_.mu);
  r.in_flight_at_arrival = ++state_.in_flight;
  ++state_.stats.requests;
  index_ = state_.log.size();
  state_.log.push_back(std::move(r));
}

inline CrawlSite::InFlight::~InFlight() {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lk(state_.mu);
  state_.log[index_].finish = now;
  state_.log[index_].status = status;
  --state_.in_flight;
}

inline aio::Task<void> CrawlSite::serve(std::shared_ptr<State> state, aio::StreamReader reader,
                                        aio::StreamWriter writer) {
  int connection = 0;
  {
    std::lock_guard lk(state->mu);
    connection = ++state->stats.connections;
    state->stats.most_open = std::max(state->stats.most_open, ++state->stats.open);
  }
  struct Closed {
    State* s;
    ~Closed() {
      std::lock_guard lk(s->mu);
      --s->stats.open;
    }
  } closed{state.get()};
  try {
    co_await serve_connection(state, connection, reader, writer);
  } catch (const CancelledError&) {
    throw;
  } catch (const std::exception&) {
    // The client went away mid-answer (an abandoned transfer) or sent garbage: nothing to report.
  }
  writer.close();
}

inline aio::Task<void> CrawlSite::serve_connection(std::shared_ptr<State> state, int connection,
                                                   aio::StreamReader& reader,
                                                   aio::StreamWriter& writer) {
  for (;;) {
    std::optional<Incoming> in = co_await read_request(*state, reader);
    if (!in) break;
    InFlight request(*state, *in, connection);
    const bool keep = co_await handle(state, *in, writer, request.status);
    if (!keep || in->close) break;
  }
}

inline aio::Task<std::optional<CrawlSite::Incoming>> CrawlSite::read_request(
    const State& state, aio::StreamReader& reader) {
  namespace http = crawl_site_detail::http;
  std::string head;
  bool eof = false;
  try {
    head = co_await reader.readexactly(1);
  } catch (const IncompleteReadError&) {
    eof = true;  // the client closed between requests
  }
  if (eof) co_return std::nullopt;
  head += co_await reader.readuntil("\r\n\r\n");
  http::request_parser<http::empty_body> parser;
  parser.eager(false);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(head), ec);
  if (!parser.is_header_done()) throw RuntimeError("malformed request head");
  const auto& req = parser.get();
  Incoming in;
  in.method = std::string(req.method_string());
  in.target = std::string(req.target());
  const std::size_t qm = in.target.find('?');
  in.path = in.target.substr(0, qm);
  if (qm != std::string::npos) {
    in.query = crawl_site_detail::parse_query(std::string_view(in.target).substr(qm + 1));
  }
  if (const auto ua = req.find(http::field::user_agent); ua != req.end()) {
    in.user_agent = std::string(ua->value());
  }
  in.close = !req.keep_alive() || !state.options.keep_alive;
  if (const auto len = parser.content_length(); len && *len > 0) {
    (void)co_await reader.readexactly(static_cast<std::size_t>(*len));  // a body is ignored
  }
  co_return in;
}

inline std::string CrawlSite::answer(
    const Incoming& in, int status, std::string body, std::string_view content_type,
    const std::vector<std::pair<std::string, std::string>>& fields) {
  namespace http = crawl_site_detail::http;
  http::response<http::string_body> res;
  res.version(11);
  res.result(static_cast<unsigned>(status));
  res.set(http::field::server, "concur-crawl-site");
  res.set(http::field::content_type, content_type);
  if (in.close) res.set(http::field::connection, "close");
  for (const auto& [name, value] : fields) res.set(name, value);
  res.body() = std::move(body);
  res.prepare_payload();
  std::ostringstream out;
  out << res;
  std::string text = out.str();
  if (in.method == "HEAD") text.resize(text.find("\r\n\r\n") + 4);
  return text;
}

inline aio::Task<bool> CrawlSite::handle(std::shared_ptr<State> state, const Incoming& in,
                                         aio::StreamWriter& writer, int& status) {
  using crawl_site_detail::number_after;
  using crawl_site_detail::query_number;
  const CrawlSiteOptions& options = state->options;
  const std::string& p = in.path;
  const Query& q = in.query;
  if (options.latency.count() > 0) co_await aio::sleep(options.latency);
  // send(code, body, ...): the whole answer.
  const auto send = [&](int code, std::string body,
                        std::string_view type = "text/html; charset=utf-8",
                        const std::vector<std::pair<std::string, std::string>>& fields = {}) {
    status = code;
    writer.write(answer(in, code, std::move(body), type, fields));
  };
  const auto retry_after = [&]() {
    std::vector<std::pair<std::string, std::string>> fields;
    if (const auto it = q.find("retry_after"); it != q.end()) {
      fields.emplace_back("Retry-After", it->second);  // as given: seconds or an HTTP-date
    }
    return fields;
  };
  if (p == "/") {
    send(200, home_page());
  } else if (p == "/robots.txt") {
    const int code = options.robots_status;
    if (code == 200) {
      send(200, options.robots, "text/plain; charset=utf-8");
    } else {
      send(code, code == 404 ? not_found_page()
                             : simple_page("robots.txt", "status " + std::to_string(code)));
    }
  } else if (const auto k = number_after(p, "/list/", list_pages(options))) {
    send(200, list_page(*k, options));
  } else if (const auto n = number_after(p, "/post/", options.posts)) {
    send(200, post_page(*n, options, state->origin));
  } else if (const auto pn = number_after(p, "/private/", options.posts)) {
    send(200, private_page(*pn));
  } else if (const auto r = number_after(p, "/r/", options.posts)) {
    send(302, simple_page("Moved", "moved"), "text/html; charset=utf-8",
         {{"Location", "/post/" + std::to_string(*r)}});
  } else if (p == "/slow") {
    const long ms = query_number(q, "ms", 100);
    co_await aio::sleep(std::chrono::milliseconds(ms));
    send(200, simple_page("Slow", "answered after " + std::to_string(ms) + " ms"));
  } else if (p == "/status") {
    const int code = static_cast<int>(query_number(q, "code", 500));
    send(code, simple_page("Status", "status " + std::to_string(code)), "text/html; charset=utf-8",
         retry_after());
  } else if (p == "/flaky") {
    const auto key_it = q.find("key");
    const std::string key = key_it == q.end() ? std::string() : key_it->second;
    int seen = 0;
    {
      std::lock_guard lk(state->mu);
      seen = ++state->flaky_seen[key];
    }
    if (seen <= query_number(q, "fail", 1)) {
      const int code = static_cast<int>(query_number(q, "code", 503));
      send(code, simple_page("Flaky", "failure " + std::to_string(seen) + " of " + key),
           "text/html; charset=utf-8", retry_after());
    } else {
      send(200, simple_page("Flaky", "recovered: " + key));
    }
  } else if (p == "/redirect-chain") {
    const long left = query_number(q, "n", 1);
    if (left > 0) {
      send(302, simple_page("Moved", "moved"), "text/html; charset=utf-8",
           {{"Location", "/redirect-chain?n=" + std::to_string(left - 1)}});
    } else {
      send(200, simple_page("End", "the end of the chain"));
    }
  } else if (p == "/redirect-loop") {
    send(302, simple_page("Moved", "again"), "text/html; charset=utf-8",
         {{"Location", "/redirect-loop"}});
  } else if (p == "/truncated") {
    status = 200;  // announces 1000 bytes, sends 100, closes
    writer.write("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n" +
                 std::string(100, 't'));
    co_await writer.drain();
    co_return false;
  } else if (p == "/huge") {
    const auto size = static_cast<std::size_t>(query_number(q, "size", 1 << 20));
    status = 200;
    writer.write(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: " + std::to_string(size) +
        "\r\n" + (in.close ? "Connection: close\r\n" : "") + "\r\n");
    if (in.method != "HEAD") {
      const std::string piece(65536, 'x');
      for (std::size_t sent = 0; sent < size; sent += piece.size()) {
        writer.write(std::string_view(piece).substr(0, std::min(piece.size(), size - sent)));
        co_await writer.drain();  // the client's pace; an abandoned transfer raises here
      }
    }
  } else if (p == "/binary") {
    send(200, binary_body(static_cast<std::size_t>(query_number(q, "size", 65536))));
  } else if (p == "/badenc") {
    send(200, badenc_page());
  } else if (p == "/notext") {
    send(200, png(), "image/png");
  } else if (p == "/reset") {
    status = 200;  // a head and 10 of 1000 bytes, then RST
    writer.write("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n" +
                 std::string(10, 'r'));
    co_await writer.drain();
    co_await aio::sleep(std::chrono::milliseconds(20));
    const linger abort_on_close{1, 0};  // close() sends RST
    ::setsockopt(writer.fileno(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    co_return false;
  } else if (p == "/close-early") {
    co_return false;  // no answer at all
  } else {
    send(404, not_found_page());
  }
  co_await writer.drain();
  co_return true;
}

// ---- static copy

inline void write_static_site(const std::filesystem::path& dir, const CrawlSiteOptions& options,
                              std::string_view origin) {
  namespace fs = std::filesystem;
  using crawl_site_detail::write_file;
  const auto directory = [](const fs::path& d) {
    fs::create_directories(d);
    fs::permissions(d, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
  };
  directory(dir);
  directory(dir / "list");
  directory(dir / "post");
  directory(dir / "private");
  write_file(dir / "index.html", CrawlSite::home_page());
  for (int k = 1; k <= CrawlSite::list_pages(options); ++k) {
    write_file(dir / "list" / (std::to_string(k) + ".html"), CrawlSite::list_page(k, options));
  }
  for (int n = 1; n <= options.posts; ++n) {
    write_file(dir / "post" / (std::to_string(n) + ".html"),
               CrawlSite::post_page(n, options, origin));
    write_file(dir / "private" / (std::to_string(n) + ".html"), CrawlSite::private_page(n));
  }
  if (options.robots_status == 200) write_file(dir / "robots.txt", options.robots);
  write_file(dir / "404.html", CrawlSite::not_found_page());
}

inline std::string static_site_nginx_locations(const CrawlSiteOptions& options) {
  // Each kind of page is reached only at its own URLs, as on the site: the files through
  // try_files (which serves in the location that matched) and error_page (an internal redirect);
  // a URL naming a file (/post/1.html, /index.html) or anything else is the 404 page.
  std::string conf =
      "error_page 404 /404.html;\n"
      "absolute_redirect off;\n"
      "location ~ \\.html$ { internal; }\n"
      "location = / { try_files /index.html =404; }\n"
      "location /list/ { try_files $uri.html =404; }\n"
      "location /post/ { try_files $uri.html =404; }\n"
      "location /private/ { try_files $uri.html =404; }\n"
      "location ~ \"^/r/([1-9][0-9]*)$\" { return 302 /post/$1; }\n"
      "location / { return 404; }\n";
  if (options.robots_status == 200 || options.robots_status == 404) {
    conf += "location = /robots.txt { }\n";  // the file, or the 404 page without it
  } else {
    conf += "location = /robots.txt { return " + std::to_string(options.robots_status) + "; }\n";
  }
  return conf;
}

}  // namespace concur::testing
