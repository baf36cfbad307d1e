// site/blog_site.hpp — the project's own HTTP test site: a local stand-in for the notes' blog
// (https://www.cnblogs.com/sitehome/p/1 … /50, ~70 KB pages) for the crawler examples, `concur
// bench` and tests. An aio HTTP/1.1 server on 127.0.0.1 (a free port) answers each page after a
// delay standing for the network's latency; http_get() is a GET on aio streams. HTTP is parsed and
// written by Boost.Beast's message parsers and serializers (fed from and into aio streams); one
// request per connection ("Connection: close"), as the notes open one aiohttp session per URL.
// Each list page shows posts_per_page `<a class="post-item-title" href=...>title</a>` links spread
// through its padding (posts(n): what the notes' parse() must find on page n, no two pages alike).
// The site counts requests in flight, so a test can check a concurrency ceiling from the
// server's side. Site runs on the caller's loop; SiteThread serves it from a loop of its own, for
// crawlers that are threads. Loopback only. Header-only: examples include it too.
#pragma once

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/concur.hpp"

namespace blog {

namespace aio = concur::aio;
namespace http = boost::beast::http;

struct SiteOptions {
  int pages = 50;                        // /sitehome/p/1 … /sitehome/p/<pages>
  std::size_t page_bytes = 70'000;       // about the size the notes print
  std::chrono::milliseconds delay{100};  // latency of each answer
  int posts_per_page = 20;               // `a.post-item-title` links on each list page
};

// Stats: what the site saw (shared with the handlers, which outlive no loop).
struct Stats {
  int in_flight = 0;
  int most_in_flight = 0;
  int served = 0;
};

// Post: one post a list page shows, as the notes' parse() returns it: the href of its
// `<a class="post-item-title">` as written in the page and the link's text, entities decoded.
struct Post {
  std::string href;
  std::string title;
  bool operator==(const Post&) const = default;
};

// posts(n, per_page): the posts list page n shows, in page order: posts (n-1)·per_page+1 …
// n·per_page, so no two pages share one. Titles mix Chinese and '&', '<', '>' (escaped in the
// page), hrefs carry a query with '&' (written &amp;): a parser must decode them.
inline std::vector<Post> posts(int n, int per_page = 20) {
  static constexpr std::array<std::string_view, 5> kTopics = {
      "python创建多线程的方法 threading.Thread", "生产者消费者爬虫: url_queue -> html_queue",
      "线程安全 & Lock", "线程池 ThreadPoolExecutor <concurrent.futures>",
      "异步IO asyncio + Semaphore(10)"};
  std::vector<Post> out;
  for (int k = 1; k <= per_page; ++k) {
    const int id = (n - 1) * per_page + k;
    out.push_back(
        {"/blog/p/" + std::to_string(id) + ".html?from=sitehome&page=" + std::to_string(n),
         "Post " + std::to_string(id) + ": " +
             std::string(kTopics[static_cast<std::size_t>(id) % kTopics.size()])});
  }
  return out;
}

// html_escape(text): text with & < > " written as HTML entities.
inline std::string html_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// page(n, bytes, posts_per_page): the HTML of list page n, about `bytes` long: posts(n) as
// cnblogs writes them (each beside an author link that is not a post-item-title) spread through
// the padding.
inline std::string page(int n, std::size_t bytes, int posts_per_page = 20) {
  std::string html = "<html><head><meta charset=\"utf-8\"><title>Post " + std::to_string(n) +
                     "</title></head><body><h1>Post " + std::to_string(n) + "</h1>";
  const std::string filler = "<p>coroutines wait for the network while others run.</p>\n";
  const auto pad_to = [&](std::size_t size) {
    while (html.size() + filler.size() + 16 < size) html += filler;
  };
  const std::vector<Post> shown = posts(n, posts_per_page);
  for (std::size_t k = 0; k < shown.size(); ++k) {
    pad_to(bytes * k / shown.size());
    html +=
        "<article class=\"post-item\"><section class=\"post-item-body\">"
        "<div class=\"post-item-text\"><a class=\"post-item-title\" href=\"" +
        html_escape(shown[k].href) + "\" target=\"_blank\">" + html_escape(shown[k].title) +
        "</a></div><footer class=\"post-item-foot\"><a href=\"/u/author" + std::to_string(k % 7) +
        "\" class=\"post-item-author\"><span>author" + std::to_string(k % 7) +
        "</span></a></footer></section></article>\n";
  }
  pad_to(bytes);
  html += "</body></html>";
  return html;
}

// page_number(url): n for a URL or target ending in /sitehome/p/<n>, else 0.
inline int page_number(std::string_view url) {
  constexpr std::string_view kPrefix = "/sitehome/p/";
  const std::size_t at = url.rfind(kPrefix);
  if (at == std::string_view::npos) return 0;
  const std::string_view digits = url.substr(at + kPrefix.size());
  if (digits.empty() || digits.size() > 6) return 0;
  int n = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + (c - '0');
  }
  return n;
}

// Site: start() it inside a running loop; close() (or the loop's end) stops it.
class Site {
 public:
  static aio::Task<Site> start(SiteOptions options = {}) {
    auto stats = std::make_shared<Stats>();
    // Named before the co_await: g++ 12 destroys a capturing lambda written inside a co_await
    // expression twice (docs/python-mapping.md, "g++ 12").
    aio::ClientConnected handler = [options, stats](aio::StreamReader reader,
                                                    aio::StreamWriter writer) {
      return serve(options, stats, std::move(reader), std::move(writer));
    };
    aio::Server server = co_await aio::start_server(std::move(handler), "127.0.0.1", 0);
    co_return Site(std::move(server), stats, options);
  }
  [[nodiscard]] std::uint16_t port() const { return server_.port(); }
  [[nodiscard]] const Stats& stats() const { return *stats_; }
  // urls(): the targets of every page, in order.
  [[nodiscard]] std::vector<std::string> urls() const {
    std::vector<std::string> out;
    for (int i = 1; i <= options_.pages; ++i) out.push_back("/sitehome/p/" + std::to_string(i));
    return out;
  }
  // origin(): "http://127.0.0.1:<port>", what a target is appended to for an absolute URL.
  [[nodiscard]] std::string origin() const { return "http://127.0.0.1:" + std::to_string(port()); }
  // posts(n): the posts list page n shows (blog::posts with this site's posts_per_page).
  [[nodiscard]] std::vector<Post> posts(int n) const {
    return blog::posts(n, options_.posts_per_page);
  }
  [[nodiscard]] const SiteOptions& options() const { return options_; }
  void close() { server_.close(); }
  aio::Task<void> wait_closed() { return server_.wait_closed(); }

 private:
  Site(aio::Server server, std::shared_ptr<Stats> stats, SiteOptions options)
      : server_(std::move(server)), stats_(std::move(stats)), options_(options) {}

  static aio::Task<void> serve(SiteOptions options, std::shared_ptr<Stats> stats,
                               aio::StreamReader reader, aio::StreamWriter writer) {
    const std::string head = co_await reader.readuntil("\r\n\r\n");
    http::request_parser<http::empty_body> parser;
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(head), ec);
    http::response<http::string_body> res;
    res.version(11);
    res.set(http::field::connection, "close");
    const std::string target = ec ? std::string() : std::string(parser.get().target());
    int n = 0;
    if (target.rfind("/sitehome/p/", 0) == 0) n = std::atoi(target.c_str() + 12);
    ++stats->in_flight;
    stats->most_in_flight = std::max(stats->most_in_flight, stats->in_flight);
    co_await aio::sleep(options.delay);  // the network's latency
    --stats->in_flight;
    if (n >= 1 && n <= options.pages) {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.body() = page(n, options.page_bytes, options.posts_per_page);
    } else {
      res.result(http::status::not_found);
      res.body() = "no such page";
    }
    res.prepare_payload();
    std::ostringstream out;
    out << res;  // Beast's serializer
    writer.write(out.str());
    co_await writer.drain();
    ++stats->served;
    writer.close();
    co_await writer.wait_closed();
  }

  aio::Server server_;
  std::shared_ptr<Stats> stats_;
  SiteOptions options_;
};

// SiteThread: a Site served by an event loop on a thread of its own (aio::LoopGroup(1)), for
// crawlers that are threads: the constructor starts the site, any thread may fetch from it while
// it serves, stop() (or the destructor) closes it. The Site lives on its loop's thread only;
// stats() copies its Stats there. Blocking calls are bounded by kTimeout (TimeoutError).
class SiteThread {
 public:
  static constexpr std::chrono::seconds kTimeout{10};

  explicit SiteThread(SiteOptions options = {}) : options_(options) {
    port_ = aio::run_coroutine_threadsafe(open(&slot_, options), group_.loop()).result(kTimeout);
  }
  // ~SiteThread(): stop(); the loop's close ends a connection still open.
  ~SiteThread() {
    try {
      stop();
    } catch (const std::exception&) {
      // The group's destructor cancels whatever still runs on the loop.
    }
  }
  SiteThread(const SiteThread&) = delete;
  SiteThread& operator=(const SiteThread&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  // url(n): "http://127.0.0.1:<port>/sitehome/p/<n>"; urls(): every page's, in order.
  [[nodiscard]] std::string url(int n) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/sitehome/p/" + std::to_string(n);
  }
  [[nodiscard]] std::vector<std::string> urls() const {
    std::vector<std::string> out;
    for (int n = 1; n <= options_.pages; ++n) out.push_back(url(n));
    return out;
  }
  // posts(n): the posts list page n shows.
  [[nodiscard]] std::vector<Post> posts(int n) const {
    return blog::posts(n, options_.posts_per_page);
  }
  [[nodiscard]] const SiteOptions& options() const { return options_; }
  // stats(): what the site saw so far (a copy taken on its loop; after stop(), the last ones).
  [[nodiscard]] Stats stats() {
    return group_.loop().submit([this] { return slot_ ? slot_->stats() : last_; }).result(kTimeout);
  }
  // stop(): closes the site and waits (kTimeout) for its connections to end. Idempotent.
  void stop() {
    aio::run_coroutine_threadsafe(close(&slot_, &last_), group_.loop()).result(2 * kTimeout);
  }

 private:
  static aio::Task<std::uint16_t> open(std::optional<Site>* slot, SiteOptions options) {
    slot->emplace(co_await Site::start(options));
    co_return (*slot)->port();
  }
  static aio::Task<void> close(std::optional<Site>* slot, Stats* last) {
    if (!*slot) co_return;
    Site site = std::move(**slot);
    slot->reset();
    site.close();
    try {
      co_await aio::timeout(kTimeout, site.wait_closed());
    } catch (const concur::TimeoutError&) {
      // A client left a connection open: the loop's close ends it.
    }
    *last = site.stats();
  }

  SiteOptions options_;
  std::uint16_t port_ = 0;
  std::optional<Site> slot_;  // on the loop's thread only; destroyed after the loop closed
  Stats last_;                // on the loop's thread only: the stats stop() found
  aio::LoopGroup group_{1};
};

// http_get(port, target): GET http://127.0.0.1:<port><target> on aio streams; the body of a 200
// answer, concur::RuntimeError for any other status or a malformed answer.
inline aio::Task<std::string> http_get(std::uint16_t port, std::string target) {
  auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::connection, "close");
  std::ostringstream out;
  out << req;
  writer.write(out.str());
  co_await writer.drain();
  const std::string raw = co_await reader.read(-1);  // until the server closes
  writer.close();
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(16 * 1024 * 1024);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(raw), ec);
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) {
    throw concur::RuntimeError("GET " + target + ": malformed answer (" + ec.message() + ")");
  }
  if (parser.get().result() != http::status::ok) {
    throw concur::RuntimeError("GET " + target + ": HTTP " +
                               std::to_string(parser.get().result_int()));
  }
  co_return std::move(parser.get().body());
}

}  // namespace blog
