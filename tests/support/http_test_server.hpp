// tests/support/http_test_server.hpp — a small HTTP/1.1 server for the downloader's tests: an aio
// server on 127.0.0.1 (port 0) with keep-alive, plain or TLS, requests parsed by Boost.Beast's
// parser (as apps/concur/site/blog_site.hpp does), answers built by Beast's serializer or, for the
// endpoints that misbehave on purpose, written by hand. Loopback only; header-only.
//
// Endpoints (GET unless said; HEAD works on the plain ones and sends no body):
//   /page?size=N                 200 text/html of about N bytes (default 1000)
//   /slow?delay=MS               waits MS ms, then 200 "slow"
//   /redirect?to=TARGET          302 Location: TARGET
//   /redirect-chain?n=N          302 to /redirect-chain?n=N-1 … then 200 "end" at 0
//   /redirect-loop               302 to itself
//   /gzip?size=N                 200, the page body gzip-encoded (Content-Encoding: gzip)
//   /deflate?size=N              the same, zlib-encoded (Content-Encoding: deflate)
//   /chunked?chunks=N&size=S     200, Transfer-Encoding: chunked, N chunks of S bytes
//   /huge?size=N&mode=length|chunked   N bytes, announced (Content-Length) or streamed (chunked)
//   /truncated?mode=length|chunked     a body cut short: the connection closes mid-body
//   /status?code=N&retry_after=S status N (Retry-After: S when given)
//   /echo (any method)           200, the request body; X-Method, X-Body-Length, X-Content-Type
//   /headers                     200, the request's header fields, one "name: value" a line
//   /set-cookie?name=A&value=B   200, Set-Cookie: A=B; Path=/
//   /close                       200 with Connection: close, then closes
//   /drop-idle?after=MS          200 "idle" kept alive, then closes the connection MS ms later
//                                (a server dropping idle keep-alive connections)
//   /empty                       closes the connection without answering
//   /reset                       a head and 10 of 1000 bytes, then resets the connection (RST)
//   absolute-form targets (http://host/path, a proxy's request) are served by their path and
//   recorded in stats().proxied
//   anything else                404
// Stats count accepted connections (how a test proves keep-alive reuse), open connections and the
// most open at once (a connection limit seen from the server's side), requests.
#pragma once

#include <sys/socket.h>
#include <zlib.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"

namespace concur::testing {

namespace http_server_detail {
namespace http = boost::beast::http;
}  // namespace http_server_detail

struct HttpServerStats {
  int connections = 0;  // accepted so far
  int open = 0;         // open now
  int most_open = 0;    // the most open at once
  int requests = 0;
  std::vector<std::string> proxied;  // absolute URLs asked for as a proxy
};

class HttpTestServer {
 public:
  // start(ssl): listens on 127.0.0.1, a free port (inside a running loop); HTTPS with a server
  // context (its certificate loaded), plain HTTP without.
  static aio::Task<HttpTestServer> start(const aio::SslContext* ssl = nullptr) {
    auto stats = std::make_shared<HttpServerStats>();
    // Named before the co_await (g++ 12: docs/python-mapping.md).
    aio::ClientConnected handler = [stats](aio::StreamReader reader, aio::StreamWriter writer) {
      return serve(stats, std::move(reader), std::move(writer));
    };
    aio::ServerOptions options;
    options.ssl = ssl;
    aio::Server server = co_await aio::start_server(std::move(handler), "127.0.0.1", 0, options);
    co_return HttpTestServer(std::move(server), std::move(stats), ssl != nullptr);
  }

  [[nodiscard]] std::uint16_t port() const { return server_.port(); }
  // url(target): "http://127.0.0.1:<port><target>" (https:// with TLS).
  [[nodiscard]] std::string url(std::string_view target) const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port()) +
           std::string(target);
  }
  [[nodiscard]] const HttpServerStats& stats() const { return *stats_; }
  void close() {
    server_.close();
    server_.close_clients();
  }
  aio::Task<void> wait_closed() { return server_.wait_closed(); }

  // page(n): the HTML body of /page?size=n.
  static std::string page(std::size_t n) {
    std::string html = "<html><head><title>test</title></head><body>";
    const std::string filler = "<p>the downloader reads this page.</p>\n";
    while (html.size() + filler.size() + 14 < n) html += filler;
    html += "</body></html>";
    return html;
  }

  // gzip(data, gzip_format): data gzip-encoded, or in the zlib format HTTP calls "deflate".
  static std::string gzip(const std::string& data, bool gzip_format = true) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, gzip_format ? 15 + 16 : 15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      throw RuntimeError("deflateInit2 failed");
    }
    std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) throw RuntimeError("deflate failed");
    return out;
  }

 private:
  using Query = std::map<std::string, std::string, std::less<>>;

  HttpTestServer(aio::Server server, std::shared_ptr<HttpServerStats> stats, bool tls)
      : server_(std::move(server)), stats_(std::move(stats)), tls_(tls) {}

  struct Incoming {
    std::string method;
    std::string path;
    Query query;
    std::string head;  // the request's header block
    std::string body;
    std::string proxied;  // the absolute URL of a proxy request, else empty
    bool keep_alive = true;
  };

  static Query parse_query(std::string_view q) {
    Query out;
    while (!q.empty()) {
      const std::size_t amp = q.find('&');
      const std::string_view kv = q.substr(0, amp);
      const std::size_t eq = kv.find('=');
      out.emplace(std::string(kv.substr(0, eq)),
                  eq == std::string_view::npos ? std::string() : std::string(kv.substr(eq + 1)));
      if (amp == std::string_view::npos) break;
      q.remove_prefix(amp + 1);
    }
    return out;
  }

  static long num(const Query& q, std::string_view key, long fallback) {
    const auto it = q.find(key);
    return it == q.end() ? fallback : std::strtol(it->second.c_str(), nullptr, 10);
  }
  static std::string str(const Query& q, std::string_view key, std::string fallback = {}) {
    const auto it = q.find(key);
    return it == q.end() ? fallback : it->second;
  }

  // respond(...): a complete answer by Beast's serializer (no body for HEAD).
  static std::string respond(const Incoming& in, int status, std::string body,
                             const std::map<std::string, std::string>& fields = {},
                             bool close = false) {
    namespace http = http_server_detail::http;
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::server, "concur-test");
    if (close) res.set(http::field::connection, "close");
    for (const auto& [k, v] : fields) res.set(k, v);
    if (!res.count(http::field::content_type)) res.set(http::field::content_type, "text/html");
    res.body() = std::move(body);
    res.prepare_payload();
    std::ostringstream out;
    out << res;
    std::string text = out.str();
    if (in.method == "HEAD") text.resize(text.find("\r\n\r\n") + 4);
    return text;
  }

  static std::string chunk(std::string_view data) {
    std::ostringstream hex;
    hex << std::hex << data.size();
    return hex.str() + "\r\n" + std::string(data) + "\r\n";
  }

  // read_request(reader): the next request, or nullopt at EOF.
  static aio::Task<std::optional<Incoming>> read_request(aio::StreamReader& reader) {
    namespace http = http_server_detail::http;
    std::string head;
    bool eof = false;
    try {
      head = co_await reader.readexactly(1);
    } catch (const IncompleteReadError&) {
      eof = true;  // the client closed (between requests)
    }
    if (eof) co_return std::nullopt;
    // Not HTTP (a TLS ClientHello starts with 0x16): a plain server closes the connection.
    if (head[0] < 'A' || head[0] > 'Z') throw RuntimeError("not an HTTP request");
    head += co_await reader.readuntil("\r\n\r\n");
    http::request_parser<http::empty_body> parser;
    parser.eager(false);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(head), ec);
    if (!parser.is_header_done()) throw RuntimeError("malformed request head");
    Incoming in;
    const auto& req = parser.get();
    in.method = std::string(req.method_string());
    std::string target(req.target());
    if (target.rfind("http://", 0) == 0) {
      // absolute-form: the client took this server for its proxy.
      in.proxied = target;
      const std::size_t slash = target.find('/', 7);
      target = slash == std::string::npos ? "/" : target.substr(slash);
    }
    const std::size_t qm = target.find('?');
    in.path = target.substr(0, qm);
    if (qm != std::string::npos) in.query = parse_query(std::string_view(target).substr(qm + 1));
    in.head = head;
    in.keep_alive = req.keep_alive();
    if (const auto len = parser.content_length(); len && *len > 0) {
      in.body = co_await reader.readexactly(static_cast<std::ptrdiff_t>(*len));
    }
    co_return in;
  }

  // handle(...): answers one request; false when the connection must close afterwards.
  static aio::Task<bool> handle(const Incoming& in, aio::StreamWriter& writer) {
    const std::string& p = in.path;
    const Query& q = in.query;
    if (p == "/page") {
      writer.write(respond(in, 200, page(static_cast<std::size_t>(num(q, "size", 1000)))));
    } else if (p == "/slow") {
      co_await aio::sleep(std::chrono::milliseconds(num(q, "delay", 100)));
      writer.write(respond(in, 200, "slow"));
    } else if (p == "/redirect") {
      writer.write(respond(in, 302, "moved", {{"Location", str(q, "to", "/page")}}));
    } else if (p == "/redirect-chain") {
      const long n = num(q, "n", 1);
      if (n > 0) {
        writer.write(respond(in, 302, "moved",
                             {{"Location", "/redirect-chain?n=" + std::to_string(n - 1)}}));
      } else {
        writer.write(respond(in, 200, "end"));
      }
    } else if (p == "/redirect-loop") {
      writer.write(respond(in, 302, "again", {{"Location", "/redirect-loop"}}));
    } else if (p == "/gzip" || p == "/deflate") {
      const bool gz = p == "/gzip";
      const std::string body = gzip(page(static_cast<std::size_t>(num(q, "size", 20000))), gz);
      writer.write(respond(in, 200, body, {{"Content-Encoding", gz ? "gzip" : "deflate"}}));
    } else if (p == "/chunked" || (p == "/huge" && str(q, "mode") == "chunked")) {
      const bool huge = p == "/huge";
      const long chunks = huge ? num(q, "size", 1 << 20) / 16384 + 1 : num(q, "chunks", 5);
      const long size = huge ? 16384 : num(q, "size", 100);
      writer.write(
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (long i = 0; i < chunks; ++i) {
        writer.write(
            chunk(std::string(static_cast<std::size_t>(size), static_cast<char>('a' + i % 26))));
        co_await writer.drain();
        if (!huge) co_await aio::sleep(std::chrono::milliseconds(1));
      }
      writer.write("0\r\n\r\n");
    } else if (p == "/huge") {
      const auto size = static_cast<std::size_t>(num(q, "size", 1 << 20));
      writer.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                   std::to_string(size) + "\r\n\r\n");
      const std::string piece(65536, 'x');
      for (std::size_t sent = 0; sent < size; sent += piece.size()) {
        writer.write(std::string_view(piece).substr(0, std::min(piece.size(), size - sent)));
        co_await writer.drain();
      }
    } else if (p == "/truncated") {
      if (str(q, "mode") == "chunked") {
        writer.write(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
            chunk(std::string(100, 't')));
      } else {
        writer.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" +
                     std::string(100, 't'));
      }
      co_await writer.drain();
      co_return false;  // closes mid-body
    } else if (p == "/status") {
      const int code = static_cast<int>(num(q, "code", 500));
      std::map<std::string, std::string> fields;
      if (q.count("retry_after") != 0) fields["Retry-After"] = str(q, "retry_after");
      writer.write(respond(in, code, "status " + std::to_string(code), fields));
    } else if (p == "/echo") {
      std::map<std::string, std::string> fields = {
          {"X-Method", in.method}, {"X-Body-Length", std::to_string(in.body.size())}};
      namespace http = http_server_detail::http;
      http::request_parser<http::empty_body> parser;
      boost::beast::error_code ec;
      parser.put(boost::asio::buffer(in.head), ec);
      const auto ct = parser.get().find(http::field::content_type);
      if (ct != parser.get().end()) fields["X-Content-Type"] = std::string(ct->value());
      writer.write(respond(in, 200, in.body, fields));
    } else if (p == "/headers") {
      namespace http = http_server_detail::http;
      http::request_parser<http::empty_body> parser;
      boost::beast::error_code ec;
      parser.put(boost::asio::buffer(in.head), ec);
      std::string lines;
      for (const auto& f : parser.get()) {
        lines += std::string(f.name_string()) + ": " + std::string(f.value()) + "\n";
      }
      writer.write(respond(in, 200, lines, {{"Content-Type", "text/plain"}}));
    } else if (p == "/set-cookie") {
      writer.write(
          respond(in, 200, "cookie set",
                  {{"Set-Cookie", str(q, "name", "a") + "=" + str(q, "value", "1") + "; Path=/"}}));
    } else if (p == "/close") {
      writer.write(respond(in, 200, "bye", {}, /*close=*/true));
      co_await writer.drain();
      co_return false;
    } else if (p == "/drop-idle") {
      writer.write(respond(in, 200, "idle"));
      co_await writer.drain();
      co_await aio::sleep(std::chrono::milliseconds(num(q, "after", 20)));
      co_return false;
    } else if (p == "/empty") {
      co_return false;
    } else if (p == "/reset") {
      writer.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" +
                   std::string(10, 'r'));
      co_await writer.drain();
      co_await aio::sleep(std::chrono::milliseconds(20));
      const linger abort_on_close{1, 0};  // close() sends RST
      ::setsockopt(writer.fileno(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
      co_return false;
    } else {
      writer.write(respond(in, 404, "no such page"));
    }
    co_await writer.drain();
    co_return true;
  }

  static aio::Task<void> serve_connection(std::shared_ptr<HttpServerStats> stats,
                                          aio::StreamReader& reader, aio::StreamWriter& writer) {
    for (;;) {
      std::optional<Incoming> in = co_await read_request(reader);
      if (!in) break;
      ++stats->requests;
      if (!in->proxied.empty()) stats->proxied.push_back(in->proxied);
      const bool keep = co_await handle(*in, writer);
      if (!keep || !in->keep_alive) break;
    }
  }

  static aio::Task<void> serve(std::shared_ptr<HttpServerStats> stats, aio::StreamReader reader,
                               aio::StreamWriter writer) {
    ++stats->connections;
    ++stats->open;
    stats->most_open = std::max(stats->most_open, stats->open);
    struct Closed {
      HttpServerStats* s;
      ~Closed() { --s->open; }
    } closed{stats.get()};
    try {
      co_await serve_connection(stats, reader, writer);
    } catch (const CancelledError&) {
      throw;
    } catch (const std::exception&) {
      // The client went away mid-answer (an abandoned transfer): nothing to report.
    }
    writer.close();
  }

  aio::Server server_;
  std::shared_ptr<HttpServerStats> stats_;
  bool tls_ = false;
};

}  // namespace concur::testing
