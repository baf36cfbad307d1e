// concur/crawl/http.hpp — HttpClient, the crawler's downloader: HTTP(S) fetches as aio coroutines,
// libcurl's multi interface driven by the aio loop (no second reactor, no thread of ours).
//
// `Response r = co_await client.fetch(request);` — keep-alive connections reused across fetches,
// HTTP/2 multiplexing where the server offers it (TLS + ALPN), gzip/deflate/br/zstd decoded, a
// shared DNS cache, optional cookies, proxies, per-client connection limits. Redirects are NOT
// followed by default (the crawler follows them under its own policy): the 3xx is the Response.
// HTTP statuses are never errors; transport failures are (errors.hpp: ConnectionRefusedError,
// ConnectionResetError, TimeoutError, SSLError, OSError; crawl::DownloadError and its
// ResponseTooLarge, TruncatedResponse, TooManyRedirects, DNSLookupError).
// Thread-safety: a client belongs to one aio::Loop and is used on that loop's thread only (its
// fetches run there; the loop, not the client, is what other threads reach).
// Lifetime: cancelling a fetch's task withdraws the transfer at once; destroying the client, or
// closing its loop, cancels every fetch in flight (CancelledError) and frees libcurl's state. The
// client may outlive its loop (it is then closed). docs/internals/crawl-http.md narrates it.
// g++ 12: Request has constructors on purpose: g++ 12 destroys a braced *aggregate* written
// inside a co_await expression twice, and a non-aggregate cannot be written that way
// (`co_await client.fetch(Request(url))` is safe; `Request{.url = ...}` does not compile).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/aio/loop.hpp"
#include "concur/aio/task.hpp"
#include "concur/crawl/selector.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

namespace concur::crawl {

namespace detail {
class ClientCore;  // src/crawl/http.cpp: the multi handle and its loop bindings
class Transfer;    // src/crawl/http.cpp: one fetch in flight
}  // namespace detail

// Headers: an ordered multi-map of HTTP header fields with case-insensitive names (aiohttp's
// CIMultiDict): a name may repeat (Set-Cookie); order and the names' spelling are kept.
class CONCUR_EXPORT Headers {
 public:
  using Field = std::pair<std::string, std::string>;
  Headers() = default;
  Headers(std::initializer_list<Field> fields) : fields_(fields) {}

  // add(name, value): appends a field (an existing one of that name stays).
  void add(std::string name, std::string value);
  // set(name, value): replaces every field of that name by one.
  void set(std::string name, std::string value);
  // remove(name): removes every field of that name; returns how many went.
  std::size_t remove(std::string_view name);
  // get(name): the first value of the field (case-insensitive name), or nullopt. The view is
  // valid until the Headers change or go.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const;
  // get_all(name): every value of that name, in order.
  [[nodiscard]] std::vector<std::string_view> get_all(std::string_view name) const;
  [[nodiscard]] bool contains(std::string_view name) const { return get(name).has_value(); }
  [[nodiscard]] std::size_t size() const noexcept { return fields_.size(); }
  [[nodiscard]] bool empty() const noexcept { return fields_.empty(); }
  void clear() noexcept { fields_.clear(); }
  [[nodiscard]] auto begin() const noexcept { return fields_.begin(); }
  [[nodiscard]] auto end() const noexcept { return fields_.end(); }

 private:
  friend class detail::Transfer;  // fills a response's fields as they arrive
  std::vector<Field> fields_;
};

// Request: one fetch. Only `url` is required; unset optionals take the client's defaults.
// Built with a constructor and then its fields (not an aggregate: see the file comment):
// `Request req(url, "POST"); req.body = "..."; req.timeout = 10s;`.
struct Request {
  Request() = default;
  // Request(url, method): a request of url (GET unless method says otherwise).
  explicit Request(std::string url_string, std::string http_method = "GET")
      : method(std::move(http_method)), url(std::move(url_string)) {}

  // method: "GET" (default), "HEAD" (no body is read), "POST", "PUT", "DELETE", "PATCH"...
  std::string method = "GET";
  // url: an absolute http:// or https:// URL (other schemes are refused: DownloadError).
  std::string url;
  // headers: sent as given (after libcurl's Host, Accept-Encoding, User-Agent and, for a body,
  // Content-Length; a field of the same name replaces libcurl's).
  Headers headers;
  // body: sent when not empty (and always for POST, as Content-Length: 0 when empty).
  std::string body;
  // timeout: Scrapy's DOWNLOAD_TIMEOUT: the whole fetch (connect, send, wait, read); zero: none.
  // Exceeded: TimeoutError.
  std::optional<std::chrono::milliseconds> timeout;
  // max_size: Scrapy's DOWNLOAD_MAXSIZE, in bytes of (decoded) body; 0: no limit. A response
  // announcing more (Content-Length) is abandoned at its headers, one that streams more is
  // abandoned as soon as it does: ResponseTooLarge.
  std::optional<std::size_t> max_size;
  // warn_size: Scrapy's DOWNLOAD_WARNSIZE: a response above it sets Response::size_warning.
  std::optional<std::size_t> warn_size;
  // proxy: "http://host:port", "socks5h://host:port"...; "" for none (overrides the client's).
  std::optional<std::string> proxy;
  // follow_redirects: libcurl follows 3xx Location itself, at most max_redirects times
  // (TooManyRedirects beyond). Off by default: the crawler applies its own redirect policy.
  bool follow_redirects = false;
  int max_redirects = 20;  // Scrapy's REDIRECT_MAX_TIMES
  // user_agent: the User-Agent header (else the client's).
  std::optional<std::string> user_agent;
  // fail_on_dataloss: Scrapy's DOWNLOAD_FAIL_ON_DATALOSS. A body cut short by the server (fewer
  // bytes than Content-Length, a chunked body without its last chunk) raises TruncatedResponse;
  // false returns what arrived with Response::dataloss set.
  bool fail_on_dataloss = true;

  // ---- the crawler's fields (crawler.hpp; HttpClient ignores them), Scrapy's Request ----
  // callback / errback: names of the Spider's callbacks (Spider::callback()); an empty callback
  // is parse(), an empty errback is none. Names, not functions, so a request can be stored.
  std::string callback;
  std::string errback;
  int priority = 0;          // higher first (DEPTH_PRIORITY and retries adjust it)
  bool dont_filter = false;  // skip the dupefilter (and the offsite filter, as Scrapy)
  // meta: what the spider carries from one callback to the next (Scrapy's meta / cb_kwargs).
  std::map<std::string, std::string> meta;
  std::string download_slot;  // the slot's key; empty: the URL's host
  // Kept by the crawler: the link depth (start requests 0), and how often it was retried or
  // redirected on the way here.
  int depth = 0;
  int retry_times = 0;
  int redirect_times = 0;
};

// Timing: libcurl's clock for one fetch, each from the fetch's start (microseconds).
struct Timing {
  std::chrono::microseconds name_lookup{0};  // DNS done
  std::chrono::microseconds connect{0};      // TCP connected (0 on a reused connection)
  std::chrono::microseconds tls{0};          // TLS handshake done (0 for plain HTTP / reuse)
  std::chrono::microseconds pretransfer{0};  // about to send the request
  std::chrono::microseconds first_byte{0};   // first response byte (Scrapy's download_latency)
  std::chrono::microseconds total{0};        // the whole fetch
  std::chrono::microseconds redirect{0};     // spent in followed redirects before the last one
  // latency: request sent → first byte of the response's headers (first_byte − pretransfer):
  // the server's think time plus one round trip, without DNS, connect and TLS. What AutoThrottle
  // wants ("request sent → headers received"); Scrapy's download_latency is first_byte.
  std::chrono::microseconds latency{0};
};

// Response: what a fetch got. status is any HTTP status (4xx/5xx are not errors).
struct Response {
  int status = 0;
  std::string reason;        // "OK" (HTTP/2 has none: empty)
  std::string http_version;  // "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"
  Headers headers;           // of the final response (after followed redirects)
  std::string body;          // decoded (gzip/deflate/br/zstd); empty for HEAD
  std::string url;           // the effective URL (the last one after followed redirects)
  std::string method;        // the request's method
  // redirect_url: where a 3xx not followed points (Location resolved against url); else empty.
  std::string redirect_url;
  int redirect_count = 0;  // redirects followed
  Timing timing;
  std::uint64_t bytes_downloaded = 0;  // body bytes as received (before decoding)
  std::uint64_t header_bytes = 0;      // bytes of every header received
  std::string ip;                      // the address the response came from ("127.0.0.1")
  int port = 0;                        // and its port
  // new_connections: connections this fetch had to open (0: it reused a kept-alive one).
  long new_connections = 0;
  bool size_warning = false;  // the body (or Content-Length) exceeded warn_size
  bool dataloss = false;      // truncated, returned because fail_on_dataloss was false

  // ---- the crawler's view (crawler.hpp), Scrapy's Response ----
  // request: the request this answers, as the crawler scheduled it (its meta, depth, callback);
  // HttpClient::fetch leaves it empty.
  Request request;
  // selector(): the page parsed (Selector with this URL and Content-Type), once, on first use;
  // copies of the Response share it, so use them from one thread at a time (selector.hpp).
  [[nodiscard]] const Selector& selector() const;
  // text(): the body decoded to UTF-8 (html_to_unicode: BOM, Content-Type, <meta>, else UTF-8).
  [[nodiscard]] std::string text() const;
  // xpath(expr) / css(selector): selector().xpath / css.
  [[nodiscard]] SelectorList xpath(std::string_view expr) const;
  [[nodiscard]] SelectorList css(std::string_view css_selector) const;
  // links(options): the page's links (extract_links, Scrapy's LinkExtractor): from the parsed page
  // when selector() has already parsed it, else by scan_links without building a tree — so a
  // callback that only follows links never pays for one.
  [[nodiscard]] std::vector<Link> links(const LinkExtractorOptions& options = {}) const;
  // urljoin(ref): ref resolved against the page (its <base href> counts). ValueError if no URL.
  [[nodiscard]] std::string urljoin(std::string_view ref) const;
  // follow(ref, callback): a GET Request of urljoin(ref) to be handled by `callback` (a name
  // Spider::callback() registered; empty: parse). ValueError if ref is no URL.
  [[nodiscard]] Request follow(std::string_view ref, std::string callback = {}) const;

  // The parse cache behind selector() (shared by copies); not for direct use.
  mutable std::shared_ptr<const Selector> parsed;
};

// ClientOptions: HttpClient's settings (the defaults of every Request, the pool's limits).
struct ClientOptions {
  std::string user_agent = "concur-crawl/0.1";
  std::chrono::milliseconds timeout{180'000};         // Scrapy's DOWNLOAD_TIMEOUT; zero: none
  std::chrono::milliseconds connect_timeout{30'000};  // connecting (TCP + TLS); zero: libcurl's
  std::size_t max_size = std::size_t{1024} * 1024 * 1024;  // DOWNLOAD_MAXSIZE (1 GiB); 0: none
  std::size_t warn_size = std::size_t{32} * 1024 * 1024;   // DOWNLOAD_WARNSIZE (32 MiB); 0: none
  // max_total_connections / max_host_connections: libcurl's CURLMOPT_MAX_TOTAL_CONNECTIONS and
  // CURLMOPT_MAX_HOST_CONNECTIONS: open connections at once, in all and per host:port (a fetch
  // beyond waits inside libcurl for a connection to free up); 0: unlimited.
  long max_total_connections = 0;
  long max_host_connections = 0;
  // max_idle_connections: kept-alive connections kept for reuse (CURLMOPT_MAXCONNECTS); 0:
  // libcurl's default (4 per transfer added, at least).
  long max_idle_connections = 0;
  bool http2 = true;           // HTTP/2 over TLS when the server offers it (ALPN), multiplexed
  bool verify_tls = true;      // verify the server's certificate and name; false for self-signed
  std::string ca_file;         // trusted CAs (PEM file) instead of the system's
  bool decode_content = true;  // Accept-Encoding: what libcurl decodes (gzip, deflate, br, zstd)
  bool cookies = false;        // a cookie engine shared by every fetch of the client
  std::string proxy;           // every fetch's proxy unless the Request names one
  // trust_env: with no proxy set, use http_proxy / https_proxy / no_proxy from the environment
  // (aiohttp's trust_env); off, the environment is ignored.
  bool trust_env = false;
  std::chrono::seconds dns_cache_timeout{60};
};

// ClientStats: what a client did so far.
struct ClientStats {
  std::uint64_t fetches = 0;             // fetches started
  std::uint64_t completed = 0;           // ended with a Response
  std::uint64_t failed = 0;              // ended with an error (cancellations not counted)
  std::uint64_t cancelled = 0;           // withdrawn by a cancellation or the client's close
  std::uint64_t connections_opened = 0;  // libcurl's new connections, summed over the fetches
  std::uint64_t bytes_downloaded = 0;
};

// HttpClient: the downloader. Python: aiohttp.ClientSession (one per loop, many fetches).
class CONCUR_EXPORT HttpClient {
 public:
  // HttpClient(loop, options) / HttpClient(options): a client of that loop (the running loop).
  // RuntimeError when the loop is closed (or none runs, for the second form).
  explicit HttpClient(aio::Loop& loop, ClientOptions options = {});
  explicit HttpClient(ClientOptions options = {});
  // ~HttpClient() is close().
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // fetch(request): performs the request; returns the Response of any HTTP status. Raises
  // TimeoutError (request.timeout), ResponseTooLarge (max_size), TruncatedResponse (the body was
  // cut short), TooManyRedirects, DNSLookupError, ConnectionRefusedError, ConnectionResetError
  // (also a server that closed without answering), SSLError, OSError, DownloadError (any other
  // libcurl failure, with its code); RuntimeError once the client is closed or from another
  // thread than the loop's. Cancelling the awaiting task removes the transfer at once (its
  // connection is closed or kept as libcurl decides): CancelledError. The coroutine shares the
  // client's state, not the client: a fetch in flight when the client goes ends with
  // CancelledError("HttpClient closed"); one first run after it went raises RuntimeError.
  aio::Task<Response> fetch(Request request);
  // fetch(url): a GET of url with the client's defaults.
  aio::Task<Response> fetch(std::string url);

  // close(): every fetch in flight ends with CancelledError("HttpClient closed"), libcurl's
  // handles (and their connections) are freed; later fetches raise RuntimeError. Idempotent.
  // On the loop's thread (or with the loop not running).
  void close();
  [[nodiscard]] bool closed() const noexcept;
  // in_flight(): fetches started and not ended.
  [[nodiscard]] std::size_t in_flight() const noexcept;
  [[nodiscard]] ClientStats stats() const noexcept;
  // cookies(): the cookie engine's cookies as Netscape cookie-file lines (empty without it).
  [[nodiscard]] std::vector<std::string> cookies() const;
  [[nodiscard]] const ClientOptions& options() const noexcept;

 private:
  std::shared_ptr<detail::ClientCore> core_;
};

// curl_version_text(): libcurl's version and features ("libcurl/7.88.1 OpenSSL/3.0 ... nghttp2").
CONCUR_EXPORT std::string curl_version_text();
// curl_has_http2(): whether this libcurl speaks HTTP/2 (built with nghttp2).
CONCUR_EXPORT bool curl_has_http2();

}  // namespace concur::crawl
