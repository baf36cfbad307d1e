// site/blog_site.hpp — the project's own HTTP test site: a local stand-in for the notes' blog
// (https://www.cnblogs.com/sitehome/p/1 … /50, ~70 KB pages) for the crawler examples, `concur
// bench` and tests. An aio HTTP/1.1 server on 127.0.0.1 (a free port) answers each page after a
// delay standing for the network's latency; http_get() is a GET on aio streams. HTTP is parsed and
// written by Boost.Beast's message parsers and serializers (fed from and into aio streams); one
// request per connection ("Connection: close"), as the notes open one aiohttp session per URL.
// The site counts requests in flight, so a test can check a concurrency ceiling from the
// server's side. Loopback only. Header-only: examples include it too.
#pragma once

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
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
};

// Stats: what the site saw (shared with the handlers, which outlive no loop).
struct Stats {
  int in_flight = 0;
  int most_in_flight = 0;
  int served = 0;
};

// page(n, bytes): the HTML of post n.
inline std::string page(int n, std::size_t bytes) {
  std::string html = "<html><head><title>Post " + std::to_string(n) +
                     "</title></head><body><h1>Post " + std::to_string(n) + "</h1>";
  const std::string filler = "<p>coroutines wait for the network while others run.</p>\n";
  while (html.size() + filler.size() + 16 < bytes) html += filler;
  html += "</body></html>";
  return html;
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
      res.body() = page(n, options.page_bytes);
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
