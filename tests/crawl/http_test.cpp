// Tests for include/concur/crawl/http.hpp: HttpClient against the loopback test server
// (tests/support/http_test_server.hpp): a page and its fields, statuses that are not errors, HEAD,
// POST/PUT echo, keep-alive reuse (100 fetches over one connection), 200 concurrent fetches under
// a connection limit (checked from the server's side), timeouts, max size (Content-Length and
// streamed), truncated bodies, refused, empty and reset connections, bad URLs, proxies (and the
// environment's, ignored unless trust_env), TLS (verified by default; a self-signed certificate
// accepted when asked or trusted as a CA file; TLS to a plain server), cancellation mid-fetch (the
// client and loop keep working), the client destroyed and the loop closed with fetches in flight,
// redirects (not followed by default; followed; endless), gzip and deflate (and not decoded),
// chunked bodies, latency, cookies,
// the user agent; the sockets libcurl opens staying registered with the loop's reactor (aio's
// pinned fds) — one registration per connection over keep-alive, none left pinned once servers
// close connections (Connection: close, idle ones dropped: numbers reused), the client is closed
// mid-transfer or the loop closes. Every test's coroutine runs under aio::wait_for(kAioBound):
// nothing can hang.
#include "concur/crawl/http.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../../src/aio/fd_pin.hpp"  // internal: the loop's fd watcher counts
#include "concur/aio/combinators.hpp"
#include "concur/aio/streams.hpp"
#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "support/aio_support.hpp"
#include "support/hook_support.hpp"
#include "support/http_test_server.hpp"
#include "support/nginx_server.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;
namespace crawl = concur::crawl;

class HttpClientTest : public HookCapturingTest {};

crawl::Request get(std::string url) {
  crawl::Request r;
  r.url = std::move(url);
  return r;
}

TEST_F(HttpClientTest, FetchesAPage) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Response r = co_await client.fetch(server.url("/page?size=5000"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.reason, "OK");
    EXPECT_EQ(r.http_version, "HTTP/1.1");
    EXPECT_EQ(r.body, HttpTestServer::page(5000));
    EXPECT_EQ(r.url, server.url("/page?size=5000"));
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.headers.get("content-type").value_or(""), "text/html");  // any case
    EXPECT_EQ(r.headers.get("CONTENT-LENGTH").value_or(""), std::to_string(r.body.size()));
    EXPECT_EQ(r.headers.get("Server").value_or(""), "concur-test");
    EXPECT_FALSE(r.headers.contains("X-Nothing"));
    EXPECT_EQ(r.ip, "127.0.0.1");
    EXPECT_EQ(r.port, server.port());
    EXPECT_EQ(r.bytes_downloaded, r.body.size());
    EXPECT_GT(r.header_bytes, 0u);
    EXPECT_EQ(r.new_connections, 1);
    EXPECT_TRUE(r.redirect_url.empty());
    EXPECT_FALSE(r.size_warning);
    EXPECT_GE(r.timing.first_byte, r.timing.pretransfer);
    EXPECT_GE(r.timing.total, r.timing.first_byte);
    EXPECT_EQ(r.timing.latency, r.timing.first_byte - r.timing.pretransfer);
    EXPECT_EQ(client.in_flight(), 0u);
    const crawl::ClientStats st = client.stats();
    EXPECT_EQ(st.fetches, 1u);
    EXPECT_EQ(st.completed, 1u);
    EXPECT_EQ(st.connections_opened, 1u);
    server.close();
  }());
}

TEST_F(HttpClientTest, HttpStatusesAreNotErrors) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Response r404 = co_await client.fetch(server.url("/nowhere"));
    EXPECT_EQ(r404.status, 404);
    EXPECT_EQ(r404.reason, "Not Found");
    EXPECT_EQ(r404.body, "no such page");
    crawl::Response r500 = co_await client.fetch(server.url("/status?code=500"));
    EXPECT_EQ(r500.status, 500);
    crawl::Response r429 = co_await client.fetch(server.url("/status?code=429&retry_after=7"));
    EXPECT_EQ(r429.status, 429);
    EXPECT_EQ(r429.headers.get("retry-after").value_or(""), "7");
    crawl::Response r503 = co_await client.fetch(server.url("/status?code=503&retry_after=1"));
    EXPECT_EQ(r503.status, 503);
    EXPECT_EQ(r503.headers.get("Retry-After").value_or(""), "1");
    EXPECT_EQ(client.stats().failed, 0u);
    server.close();
  }());
}

TEST_F(HttpClientTest, HeadReadsNoBody) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Request req = get(server.url("/page?size=3000"));
    req.method = "HEAD";
    req.max_size = 10;  // a HEAD's Content-Length is not a body
    crawl::Response r = co_await client.fetch(std::move(req));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.method, "HEAD");
    EXPECT_TRUE(r.body.empty());
    EXPECT_EQ(r.headers.get("Content-Length").value_or(""),
              std::to_string(HttpTestServer::page(3000).size()));
    // A Request constructed inside the co_await expression (not an aggregate: safe on g++ 12).
    crawl::Response inline_head =
        co_await client.fetch(crawl::Request(server.url("/page?size=3000"), "HEAD"));
    EXPECT_EQ(inline_head.status, 200);
    EXPECT_TRUE(inline_head.body.empty());
    // The connection stays usable.
    crawl::Response after = co_await client.fetch(server.url("/page"));
    EXPECT_EQ(after.status, 200);
    EXPECT_EQ(after.new_connections, 0);
    server.close();
  }());
}

TEST_F(HttpClientTest, PostAndPutSendTheirBody) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Request post = get(server.url("/echo"));
    post.method = "POST";
    post.body = std::string(5000, 'p') + "end";  // large enough for libcurl's Expect: 100
    post.headers.add("Content-Type", "application/json");
    crawl::Response r = co_await client.fetch(std::move(post));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers.get("X-Method").value_or(""), "POST");
    EXPECT_EQ(r.headers.get("X-Content-Type").value_or(""), "application/json");
    EXPECT_EQ(r.body, std::string(5000, 'p') + "end");
    crawl::Request put = get(server.url("/echo"));
    put.method = "PUT";
    put.body = "replace";
    crawl::Response r2 = co_await client.fetch(std::move(put));
    EXPECT_EQ(r2.headers.get("X-Method").value_or(""), "PUT");
    EXPECT_EQ(r2.body, "replace");
    crawl::Request empty_post = get(server.url("/echo"));
    empty_post.method = "POST";
    crawl::Response r3 = co_await client.fetch(std::move(empty_post));
    EXPECT_EQ(r3.headers.get("X-Body-Length").value_or(""), "0");
    crawl::Request del = get(server.url("/echo"));
    del.method = "DELETE";
    crawl::Response r4 = co_await client.fetch(std::move(del));
    EXPECT_EQ(r4.headers.get("X-Method").value_or(""), "DELETE");
    server.close();
  }());
}

// watch_counts(): the running loop's fd watcher registry (registrations, entries, pinned).
aio::detail::FdWatchCounts watch_counts() {
  return aio::detail::fd_watch_counts(aio::get_running_loop().core());
}

// open_fds(): how many descriptors this process has open.
std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// kSpareRegistrations: registrations a crawl may make beyond one per connection (none expected
// on loopback with a numeric host: libcurl's resolver socketpair is not used).
constexpr std::uint64_t kSpareRegistrations = 2;

TEST_F(HttpClientTest, SequentialFetchesReuseOneConnection) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    const aio::detail::FdWatchCounts before = watch_counts();
    crawl::HttpClient client;
    long opened = 0;
    for (int i = 0; i < 100; ++i) {
      crawl::Response r = co_await client.fetch(server.url("/page?size=200"));
      CO_ASSERT_EQ(r.status, 200);
      opened += r.new_connections;
    }
    EXPECT_EQ(opened, 1);
    EXPECT_EQ(server.stats().requests, 100);
    EXPECT_EQ(server.stats().connections, 1);
    EXPECT_EQ(client.stats().connections_opened, 1u);
    // The socket was registered with the loop's reactor once, not once per transfer.
    const aio::detail::FdWatchCounts after = watch_counts();
    EXPECT_LE(after.registrations - before.registrations, 1 + kSpareRegistrations);
    EXPECT_EQ(after.pinned, before.pinned + 1);  // the idle connection's socket
    client.close();
    EXPECT_EQ(watch_counts().pinned, before.pinned);
    EXPECT_EQ(watch_counts().entries, before.entries);
    server.close();
  }());
}

aio::Task<void> fetch_ok(crawl::HttpClient& client, std::string url, int& ok) {
  crawl::Response r = co_await client.fetch(std::move(url));
  if (r.status == 200) ++ok;
}

TEST_F(HttpClientTest, ConcurrentFetchesStayUnderTheConnectionLimit) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::ClientOptions options;
    options.max_total_connections = 16;
    crawl::HttpClient client(options);
    int ok = 0;
    std::vector<aio::Task<void>> fetches;
    for (int i = 0; i < 200; ++i) {
      fetches.push_back(fetch_ok(client, server.url("/slow?delay=5"), ok));
    }
    co_await aio::gather(std::move(fetches));
    EXPECT_EQ(ok, 200);
    EXPECT_EQ(server.stats().requests, 200);
    EXPECT_LE(server.stats().most_open, 16);
    EXPECT_GE(server.stats().most_open, 2);  // they did overlap
    EXPECT_LE(server.stats().connections, 16);
    EXPECT_EQ(client.in_flight(), 0u);
    server.close();
  }());
}

// fetch_bounded: one fetch while holding a unit of `sem` (the crawler's CONCURRENT_REQUESTS).
aio::Task<void> fetch_bounded(crawl::HttpClient& client, aio::Semaphore& sem, std::string url,
                              int& ok, std::size_t& most_in_flight) {
  auto held = co_await sem.scoped();
  most_in_flight = std::max(most_in_flight, client.in_flight() + 1);
  crawl::Response r = co_await client.fetch(std::move(url));
  if (r.status == 200) ++ok;
}

TEST_F(HttpClientTest, SixteenInFlightUnderAPerHostLimit) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::ClientOptions options;
    options.max_host_connections = 4;
    crawl::HttpClient client(options);
    aio::Semaphore sem(16);
    int ok = 0;
    std::size_t most_in_flight = 0;
    std::vector<aio::Task<void>> fetches;
    for (int i = 0; i < 200; ++i) {
      fetches.push_back(
          fetch_bounded(client, sem, server.url("/slow?delay=2"), ok, most_in_flight));
    }
    co_await aio::gather(std::move(fetches));
    EXPECT_EQ(ok, 200);
    EXPECT_EQ(most_in_flight, 16u);          // the semaphore's bound, reached
    EXPECT_LE(server.stats().most_open, 4);  // libcurl queued the rest for a connection
    EXPECT_LE(server.stats().connections, 4);
    server.close();
  }());
}

// ---- sockets kept registered (aio's pinned fds) ----

TEST_F(HttpClientTest, KeepAliveSocketsAreRegisteredOncePerConnection) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    const aio::detail::FdWatchCounts before = watch_counts();
    crawl::ClientOptions options;
    options.max_host_connections = 4;
    crawl::HttpClient client(options);
    aio::Semaphore sem(16);
    int ok = 0;
    std::size_t most_in_flight = 0;
    std::vector<aio::Task<void>> fetches;
    constexpr int kFetches = 400;
    for (int i = 0; i < kFetches; ++i) {
      const std::string path = i % 4 == 0 ? "/slow?delay=1" : "/page?size=3000";
      fetches.push_back(fetch_bounded(client, sem, server.url(path), ok, most_in_flight));
    }
    co_await aio::gather(std::move(fetches));
    EXPECT_EQ(ok, kFetches);
    const auto connections = static_cast<std::uint64_t>(server.stats().connections);
    EXPECT_LE(connections, 4u);
    // N requests over K connections: about K registrations, not N.
    const aio::detail::FdWatchCounts after = watch_counts();
    EXPECT_LE(after.registrations - before.registrations, connections + kSpareRegistrations);
    EXPECT_GE(after.pinned, before.pinned + 1);
    EXPECT_LE(after.pinned, before.pinned + connections);
    client.close();
    EXPECT_EQ(watch_counts().pinned, before.pinned);
    EXPECT_EQ(watch_counts().entries, before.entries);
    server.close();
  }());
}

TEST_F(HttpClientTest, SocketsOfClosedConnectionsAreUnpinnedAndClosed) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    const aio::detail::FdWatchCounts before = watch_counts();
    const std::size_t fds_before = open_fds();
    crawl::HttpClient client;
    // Connection: close: libcurl closes the socket at the end of each transfer (and the next
    // socket usually gets the same number back).
    constexpr int kCloses = 30;
    for (int i = 0; i < kCloses; ++i) {
      crawl::Response r = co_await client.fetch(server.url("/close"));
      CO_ASSERT_EQ(r.status, 200);
      EXPECT_EQ(watch_counts().pinned, before.pinned);
    }
    // A server that drops idle keep-alive connections: libcurl finds the cached one dead at the
    // next fetch, closes it and opens another.
    constexpr int kDrops = 15;
    for (int i = 0; i < kDrops; ++i) {
      crawl::Response r = co_await client.fetch(server.url("/drop-idle?after=5"));
      CO_ASSERT_EQ(r.status, 200);
      EXPECT_EQ(watch_counts().pinned, before.pinned + 1);  // the idle socket, until dropped
      co_await aio::sleep(30ms);
    }
    // And keep-alive again on a fresh connection, with the two kinds mixed in.
    for (int i = 0; i < 20; ++i) {
      crawl::Response r = co_await client.fetch(server.url(i % 5 == 4 ? "/close" : "/page"));
      CO_ASSERT_EQ(r.status, 200);
    }
    const auto connections = static_cast<std::uint64_t>(server.stats().connections);
    EXPECT_GE(connections, static_cast<std::uint64_t>(kCloses + kDrops));
    EXPECT_EQ(client.stats().connections_opened, connections);
    const aio::detail::FdWatchCounts after = watch_counts();
    EXPECT_LE(after.registrations - before.registrations, connections + kSpareRegistrations);
    client.close();
    EXPECT_EQ(watch_counts().pinned, before.pinned);
    EXPECT_EQ(watch_counts().entries, before.entries);
    // Every socket closed (once: a second close could have closed a reused number).
    EXPECT_TRUE(co_await eventually([&] { return open_fds() == fds_before; }))
        << open_fds() << " open, " << fds_before << " before";
    server.close();
  }());
}

// A slow first fetch to a host must not hold back the others: libcurl's PIPEWAIT (wait for the
// first connection to learn whether it multiplexes) is asked for https:// only, where HTTP/2 may
// come by ALPN; on http:// it kept every fetch to a fresh host waiting for the first answer.
TEST_F(HttpClientTest, ASlowFirstFetchDoesNotHoldTheHostBack) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;  // http2 on: the default
    aio::Task<crawl::Response> slow =
        aio::create_task(client.fetch(server.url("/slow?delay=3000")));
    co_await aio::sleep(std::chrono::milliseconds(0));  // the slow fetch starts first
    std::vector<aio::Task<crawl::Response>> quick;
    for (int i = 0; i < 4; ++i) quick.push_back(client.fetch(server.url("/page?size=100")));
    std::vector<crawl::Response> done = co_await aio::gather(std::move(quick));
    for (const crawl::Response& r : done) EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(slow.done());  // the quick ones did not wait for it
    (void)slow.cancel();
    co_await expect_cancelled(std::move(slow));
    server.close();
  }());
}

TEST_F(HttpClientTest, TimeoutRaisesTimeoutError) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Request req = get(server.url("/slow?delay=3000"));
    req.timeout = 200ms;
    const auto t0 = std::chrono::steady_clock::now();
    bool timed_out = false;
    try {
      (void)co_await client.fetch(std::move(req));
    } catch (const TimeoutError& e) {
      timed_out = true;
      EXPECT_NE(std::string(e.what()).find("/slow?delay=3000"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(timed_out);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms - kSlack);
    EXPECT_EQ(client.stats().failed, 1u);
    // The client goes on.
    crawl::Response r = co_await client.fetch(server.url("/page"));
    EXPECT_EQ(r.status, 200);
    server.close();
  }());
}

TEST_F(HttpClientTest, MaxSizeByContentLength) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Request req = get(server.url("/huge?size=5000000&mode=length"));
    req.max_size = 100'000;
    bool raised = false;
    try {
      (void)co_await client.fetch(std::move(req));
    } catch (const crawl::ResponseTooLarge& e) {
      raised = true;
      EXPECT_EQ(e.max_size(), 100'000u);
      EXPECT_EQ(e.expected_size(), 5'000'000u);
      EXPECT_NE(std::string(e.what()).find("Content-Length 5000000"), std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(raised);
    crawl::Response r = co_await client.fetch(server.url("/page"));
    EXPECT_EQ(r.status, 200);
    server.close();
  }());
}

TEST_F(HttpClientTest, MaxSizeWhileStreaming) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Request req = get(server.url("/huge?size=5000000&mode=chunked"));
    req.max_size = 100'000;
    bool raised = false;
    try {
      (void)co_await client.fetch(std::move(req));
    } catch (const crawl::ResponseTooLarge& e) {
      raised = true;
      EXPECT_EQ(e.max_size(), 100'000u);
      EXPECT_EQ(e.expected_size(), 0u);  // unknown: streamed
    }
    EXPECT_TRUE(raised);
    // The client-wide default applies when the request says nothing.
    crawl::ClientOptions options;
    options.max_size = 50'000;
    crawl::HttpClient small(options);
    bool raised2 = false;
    try {
      (void)co_await small.fetch(server.url("/huge?size=200000&mode=chunked"));
    } catch (const crawl::ResponseTooLarge&) {
      raised2 = true;
    }
    EXPECT_TRUE(raised2);
    crawl::Response r = co_await small.fetch(server.url("/page?size=1000"));
    EXPECT_EQ(r.status, 200);
    server.close();
  }());
}

TEST_F(HttpClientTest, WarnSizeFlagsTheResponse) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Request req = get(server.url("/page?size=4000"));
    req.warn_size = 1000;
    crawl::Response r = co_await client.fetch(std::move(req));
    EXPECT_TRUE(r.size_warning);
    EXPECT_EQ(r.body.size(), HttpTestServer::page(4000).size());
    crawl::Request chunked = get(server.url("/chunked?chunks=4&size=500"));
    chunked.warn_size = 1000;
    crawl::Response r2 = co_await client.fetch(std::move(chunked));
    EXPECT_TRUE(r2.size_warning);
    server.close();
  }());
}

TEST_F(HttpClientTest, TruncatedBodyIsAnError) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    const std::vector<std::string> modes = {"length", "chunked"};
    for (const std::string& mode : modes) {
      bool raised = false;
      try {
        (void)co_await client.fetch(server.url("/truncated?mode=" + mode));
      } catch (const crawl::TruncatedResponse& e) {
        raised = true;
        EXPECT_EQ(e.received(), 100u) << mode;
      } catch (const std::exception& e) {
        ADD_FAILURE() << mode << ": " << e.what();
      }
      EXPECT_TRUE(raised) << mode;
    }
    // Scrapy's DOWNLOAD_FAIL_ON_DATALOSS = False: the partial body, flagged.
    crawl::Request req = get(server.url("/truncated?mode=length"));
    req.fail_on_dataloss = false;
    crawl::Response r = co_await client.fetch(std::move(req));
    EXPECT_TRUE(r.dataloss);
    EXPECT_EQ(r.body, std::string(100, 't'));
    server.close();
  }());
}

TEST_F(HttpClientTest, RefusedAndEmptyConnections) {
  run_bounded([]() -> aio::Task<void> {
    // A port nobody listens on: a server's, closed.
    auto noop = [](aio::StreamReader, aio::StreamWriter) -> aio::Task<void> { co_return; };
    aio::ClientConnected handler = noop;
    aio::Server closed = co_await aio::start_server(std::move(handler), "127.0.0.1", 0);
    const std::uint16_t port = closed.port();
    closed.close();
    co_await closed.wait_closed();
    crawl::HttpClient client;
    bool refused = false;
    try {
      (void)co_await client.fetch("http://127.0.0.1:" + std::to_string(port) + "/");
    } catch (const ConnectionRefusedError& e) {
      refused = true;
      EXPECT_EQ(e.errno_code(), ECONNREFUSED);
    }
    EXPECT_TRUE(refused);
    HttpTestServer server = co_await HttpTestServer::start();
    bool reset = false;
    try {
      (void)co_await client.fetch(server.url("/empty"));
    } catch (const ConnectionResetError& e) {
      reset = true;
      EXPECT_NE(std::string(e.what()).find("Empty reply"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(reset);
    server.close();
  }());
}

TEST_F(HttpClientTest, ResetMidBodyIsAConnectionResetError) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    bool reset = false;
    try {
      (void)co_await client.fetch(server.url("/reset"));
    } catch (const ConnectionResetError& e) {
      reset = true;
      EXPECT_EQ(e.errno_code(), ECONNRESET) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
    EXPECT_TRUE(reset);
    server.close();
  }());
}

TEST_F(HttpClientTest, ThroughAProxy) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer proxy = co_await HttpTestServer::start();  // answers proxy requests itself
    crawl::HttpClient client;
    crawl::Request req = get("http://crawl.test/page?size=400");  // never resolved here
    req.proxy = proxy.url("");
    crawl::Response r = co_await client.fetch(std::move(req));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, HttpTestServer::page(400));
    CO_ASSERT_EQ(proxy.stats().proxied.size(), 1u);
    EXPECT_EQ(proxy.stats().proxied[0], "http://crawl.test/page?size=400");
    // The client-wide proxy, and "" to go direct.
    crawl::ClientOptions options;
    options.proxy = proxy.url("");
    crawl::HttpClient proxied(options);
    crawl::Response r2 = co_await proxied.fetch("http://crawl.test/page");
    EXPECT_EQ(r2.status, 200);
    EXPECT_EQ(proxy.stats().proxied.size(), 2u);
    HttpTestServer direct = co_await HttpTestServer::start();
    crawl::Request no_proxy = get(direct.url("/page"));
    no_proxy.proxy = "";
    crawl::Response r3 = co_await proxied.fetch(std::move(no_proxy));
    EXPECT_EQ(r3.status, 200);
    EXPECT_EQ(direct.stats().requests, 1);
    EXPECT_EQ(proxy.stats().proxied.size(), 2u);
    // The environment's http_proxy: ignored by default, used with trust_env.
    ::setenv("http_proxy", proxy.url("").c_str(), 1);
    crawl::HttpClient ignores_env;
    crawl::Response r4 = co_await ignores_env.fetch(direct.url("/page"));
    EXPECT_EQ(r4.status, 200);
    EXPECT_EQ(direct.stats().requests, 2);
    crawl::ClientOptions env_options;
    env_options.trust_env = true;
    crawl::HttpClient uses_env(env_options);
    crawl::Response r5 = co_await uses_env.fetch("http://crawl.test/page");
    ::unsetenv("http_proxy");
    EXPECT_EQ(r5.status, 200);
    EXPECT_EQ(proxy.stats().proxied.size(), 3u);
    proxy.close();
    direct.close();
  }());
}

TEST_F(HttpClientTest, BadUrlsAreDownloadErrors) {
  run_bounded([]() -> aio::Task<void> {
    crawl::HttpClient client;
    const std::vector<std::string> urls = {"file:///etc/passwd", "ftp://127.0.0.1/", "http://",
                                           "not a url"};
    for (const std::string& url : urls) {
      bool raised = false;
      try {
        (void)co_await client.fetch(url);
      } catch (const crawl::DownloadError& e) {
        raised = true;
        EXPECT_NE(e.curl_code(), 0) << url;
      }
      EXPECT_TRUE(raised) << url;
    }
  }());
}

TEST_F(HttpClientTest, TlsToAPlainServerIsAnSSLError) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    bool raised = false;
    try {
      (void)co_await client.fetch("https://127.0.0.1:" + std::to_string(server.port()) + "/page");
    } catch (const SSLError&) {
      raised = true;
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
    EXPECT_TRUE(raised);
    server.close();
  }());
}

// TempCert: a self-signed certificate for 127.0.0.1 (SAN IP) made by the openssl tool in a
// temporary directory, removed at the end.
struct TempCert {
  std::string dir, cert, key;
  TempCert() {
    char tmpl[] = "/tmp/concur_http_tls_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir = tmpl;
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
        key + " -out " + cert + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) cert.clear();
  }
  ~TempCert() {
    if (!dir.empty()) (void)std::system(("rm -rf " + dir).c_str());
  }
  TempCert(const TempCert&) = delete;
  TempCert& operator=(const TempCert&) = delete;
};

aio::Task<void> tls_checks(std::string cert, std::string key) {
  aio::SslContext context = aio::SslContext::create_default_context(aio::SslPurpose::kClientAuth);
  context.load_cert_chain(cert, key);
  HttpTestServer server = co_await HttpTestServer::start(&context);
  // Verified by default: a self-signed certificate is refused.
  crawl::HttpClient strict;
  bool refused = false;
  try {
    (void)co_await strict.fetch(server.url("/page"));
  } catch (const SSLError& e) {
    refused = true;
    EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(refused);
  // Accepted when asked (tests), and with the certificate as the trusted CA.
  crawl::ClientOptions lax;
  lax.verify_tls = false;
  crawl::HttpClient insecure(lax);
  crawl::Response r = co_await insecure.fetch(server.url("/page?size=2000"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, HttpTestServer::page(2000));
  EXPECT_EQ(r.http_version, "HTTP/1.1");  // the server offers no h2 (ALPN)
  EXPECT_GT(r.timing.tls, r.timing.connect);
  crawl::Response again = co_await insecure.fetch(server.url("/page"));
  EXPECT_EQ(again.new_connections, 0);  // TLS connections are kept alive too
  crawl::ClientOptions trusted;
  trusted.ca_file = cert;
  crawl::HttpClient with_ca(trusted);
  crawl::Response r2 = co_await with_ca.fetch(server.url("/page"));
  EXPECT_EQ(r2.status, 200);
  server.close();
}

TEST_F(HttpClientTest, TlsVerifiesByDefaultAndAcceptsSelfSignedWhenAsked) {
  const TempCert cert;
  ASSERT_FALSE(cert.cert.empty()) << "openssl could not make a certificate";
  run_bounded(tls_checks(cert.cert, cert.key));
}

TEST_F(HttpClientTest, CancellingAFetchWithdrawsIt) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    aio::ScheduledTask<crawl::Response> slow =
        aio::create_task(client.fetch(server.url("/slow?delay=10000")));
    co_await aio::sleep(50ms);
    EXPECT_EQ(client.in_flight(), 1u);
    slow.cancel();
    co_await expect_cancelled(slow);
    EXPECT_EQ(client.in_flight(), 0u);
    EXPECT_EQ(client.stats().cancelled, 1u);
    // The client and the loop keep working; libcurl dropped the connection whose answer never
    // came (it cannot be reused), so the next fetch opens another.
    crawl::Response r = co_await client.fetch(server.url("/page"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.new_connections, 1);
    server.close();
  }());
}

TEST_F(HttpClientTest, CancellingManyFetchesAtOnce) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    std::vector<aio::ScheduledTask<crawl::Response>> tasks;
    for (int i = 0; i < 50; ++i) {
      // Some wait for an answer, some are being read: cancellations land at every stage.
      const std::string target = i % 2 == 0 ? "/slow?delay=5000" : "/chunked?chunks=200&size=10";
      tasks.push_back(aio::create_task(client.fetch(server.url(target))));
    }
    co_await aio::sleep(30ms);
    for (auto& t : tasks) t.cancel();
    for (auto& t : tasks) {
      try {
        (void)co_await t;
      } catch (const CancelledError&) {
      }
    }
    EXPECT_EQ(client.in_flight(), 0u);
    int ok = 0;
    std::vector<aio::Task<void>> again;
    for (int i = 0; i < 10; ++i) again.push_back(fetch_ok(client, server.url("/page"), ok));
    co_await aio::gather(std::move(again));
    EXPECT_EQ(ok, 10);
    server.close();
  }());
}

TEST_F(HttpClientTest, CancelledBeforeItStartsNeverRuns) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    aio::ScheduledTask<crawl::Response> t = aio::create_task(client.fetch(server.url("/page")));
    t.cancel();  // before its first step
    co_await expect_cancelled(t);
    co_await aio::sleep(20ms);
    EXPECT_EQ(server.stats().requests, 0);
    EXPECT_EQ(client.in_flight(), 0u);
    server.close();
  }());
}

TEST_F(HttpClientTest, WaitForTimeoutCancelsTheFetch) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    bool timed_out = false;
    try {
      (void)co_await aio::wait_for(client.fetch(server.url("/slow?delay=5000")), 100ms);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(client.in_flight(), 0u);
    crawl::Response r = co_await client.fetch(server.url("/page"));
    EXPECT_EQ(r.status, 200);
    server.close();
  }());
}

TEST_F(HttpClientTest, DestroyingTheClientCancelsItsFetches) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    auto client = std::make_unique<crawl::HttpClient>();
    std::vector<aio::ScheduledTask<crawl::Response>> tasks;
    for (int i = 0; i < 5; ++i) {
      tasks.push_back(aio::create_task(client->fetch(server.url("/slow?delay=10000"))));
    }
    co_await aio::sleep(50ms);
    client.reset();
    for (auto& t : tasks) {
      bool cancelled = false;
      try {
        (void)co_await t;
      } catch (const CancelledError& e) {
        cancelled = true;
        EXPECT_NE(std::string(e.what()).find("HttpClient closed"), std::string::npos);
      }
      EXPECT_TRUE(cancelled);
    }
    // A fetch created before the client goes, first run after: RuntimeError, no dangling client.
    auto brief = std::make_unique<crawl::HttpClient>();
    aio::ScheduledTask<crawl::Response> late = aio::create_task(brief->fetch(server.url("/page")));
    brief.reset();
    bool late_refused = false;
    try {
      (void)co_await late;
    } catch (const RuntimeError&) {
      late_refused = true;
    }
    EXPECT_TRUE(late_refused);
    // A closed client refuses; a new one works.
    crawl::HttpClient other;
    other.close();
    EXPECT_TRUE(other.closed());
    bool refused = false;
    try {
      (void)co_await other.fetch(server.url("/page"));
    } catch (const RuntimeError&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
    crawl::HttpClient fresh;
    crawl::Response r = co_await fresh.fetch(server.url("/page"));
    EXPECT_EQ(r.status, 200);
    server.close();
  }());
}

// Starts the server and `n` slow fetches on the running loop, then returns (the fetches stay in
// flight).
aio::Task<void> start_slow_fetches(std::optional<HttpTestServer>& server,
                                   std::unique_ptr<crawl::HttpClient>& client,
                                   std::vector<aio::ScheduledTask<crawl::Response>>& tasks, int n) {
  server.emplace(co_await HttpTestServer::start());
  client = std::make_unique<crawl::HttpClient>();
  for (int i = 0; i < n; ++i) {
    tasks.push_back(aio::create_task(client->fetch(server->url("/slow?delay=20000"))));
  }
  co_await aio::sleep(50ms);
  EXPECT_EQ(client->in_flight(), static_cast<std::size_t>(n));
}

TEST_F(HttpClientTest, ClosingTheClientMidTransferUnpinsItsSockets) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    const aio::detail::FdWatchCounts before = watch_counts();
    crawl::ClientOptions options;
    options.max_host_connections = 8;
    for (int round = 0; round < 3; ++round) {
      auto client = std::make_unique<crawl::HttpClient>(options);
      // Idle pinned sockets (finished fetches) beside sockets with a transfer in flight.
      std::vector<aio::Task<void>> warm;
      int ok = 0;
      for (int i = 0; i < 4; ++i)
        warm.push_back(fetch_ok(*client, server.url("/slow?delay=5"), ok));
      co_await aio::gather(std::move(warm));
      EXPECT_EQ(ok, 4);
      std::vector<aio::ScheduledTask<crawl::Response>> tasks;
      for (int i = 0; i < 6; ++i) {
        tasks.push_back(aio::create_task(client->fetch(server.url("/slow?delay=10000"))));
      }
      co_await aio::sleep(50ms);
      EXPECT_EQ(client->in_flight(), 6u);
      EXPECT_GE(watch_counts().pinned, before.pinned + 6);
      if (round == 0) {
        client->close();
      } else if (round == 1) {
        client.reset();
      } else {
        tasks.front().cancel();  // one withdrawn first (libcurl closes its connection)
        co_await aio::sleep(0ms);
        client.reset();
      }
      for (auto& t : tasks) co_await expect_cancelled(t);
      EXPECT_EQ(watch_counts().pinned, before.pinned);
      EXPECT_EQ(watch_counts().entries, before.entries);
    }
    server.close();
  }());
}

TEST_F(HttpClientTest, ClosingTheLoopWithPinnedSockets) {
  std::optional<HttpTestServer> server;
  std::unique_ptr<crawl::HttpClient> client;
  std::vector<aio::ScheduledTask<crawl::Response>> tasks;
  {
    aio::Loop loop;
    loop.run_until_complete([&]() -> aio::Task<void> {
      co_await start_slow_fetches(server, client, tasks, 3);
      // Two more connections, idle once their fetches ended.
      int ok = 0;
      std::vector<aio::Task<void>> warm;
      for (int i = 0; i < 2; ++i)
        warm.push_back(fetch_ok(*client, server->url("/slow?delay=5"), ok));
      co_await aio::gather(std::move(warm));
      EXPECT_EQ(ok, 2);
      EXPECT_GE(watch_counts().pinned, 5u);
    }());
    loop.close();  // the guard closes the client: it unpins and closes its sockets
    EXPECT_TRUE(client->closed());
    const aio::detail::FdWatchCounts after = aio::detail::fd_watch_counts(loop.core());
    EXPECT_EQ(after.pinned, 0u);
    EXPECT_EQ(after.entries, 0u);
  }
  client.reset();  // after its loop is gone: touches nothing of it
  tasks.clear();
  server.reset();
}

TEST_F(HttpClientTest, ClosingTheLoopCancelsFetchesInFlight) {
  std::optional<HttpTestServer> server;
  std::unique_ptr<crawl::HttpClient> client;
  std::vector<aio::ScheduledTask<crawl::Response>> tasks;
  {
    aio::Loop loop;
    loop.run_until_complete(start_slow_fetches(server, client, tasks, 5));
    loop.close();  // cancels the fetches; the client's guard closes it
    EXPECT_TRUE(client->closed());
    EXPECT_EQ(client->in_flight(), 0u);
    for (auto& t : tasks) EXPECT_TRUE(t.cancelled());
  }
  client.reset();  // after its loop is gone: touches nothing of it
  tasks.clear();
  server.reset();
}

TEST_F(HttpClientTest, ClientOutlivesItsDestroyedLoop) {
  std::optional<HttpTestServer> server;
  std::unique_ptr<crawl::HttpClient> client;
  std::vector<aio::ScheduledTask<crawl::Response>> tasks;
  auto loop = std::make_unique<aio::Loop>();
  loop->run_until_complete(start_slow_fetches(server, client, tasks, 3));
  loop.reset();  // ~Loop is close()
  EXPECT_TRUE(client->closed());
  tasks.clear();
  client.reset();
  server.reset();
}

TEST_F(HttpClientTest, ClientMadeOnALoopThatNeverRuns) {
  auto loop = std::make_unique<aio::Loop>();
  auto client = std::make_unique<crawl::HttpClient>(*loop);
  loop.reset();  // the guard task is cancelled before it ever ran
  EXPECT_FALSE(client->closed());
  client.reset();  // must not touch the loop
}

TEST_F(HttpClientTest, RedirectsAreNotFollowedByDefault) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Response r = co_await client.fetch(server.url("/redirect?to=/page"));
    EXPECT_EQ(r.status, 302);
    EXPECT_EQ(r.headers.get("location").value_or(""), "/page");
    EXPECT_EQ(r.redirect_url, server.url("/page"));  // resolved against the request's URL
    EXPECT_EQ(r.redirect_count, 0);
    EXPECT_EQ(r.body, "moved");
    server.close();
  }());
}

TEST_F(HttpClientTest, RedirectsFollowedWhenAsked) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Request one = get(server.url("/redirect?to=/page"));
    one.follow_redirects = true;
    crawl::Response r = co_await client.fetch(std::move(one));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.redirect_count, 1);
    EXPECT_EQ(r.body, HttpTestServer::page(1000));
    EXPECT_EQ(r.url, server.url("/page"));
    EXPECT_TRUE(r.headers.get("Location") == std::nullopt);  // the final response's headers
    crawl::Request chain = get(server.url("/redirect-chain?n=3"));
    chain.follow_redirects = true;
    chain.max_redirects = 3;
    crawl::Response r2 = co_await client.fetch(std::move(chain));
    EXPECT_EQ(r2.status, 200);
    EXPECT_EQ(r2.body, "end");
    EXPECT_EQ(r2.redirect_count, 3);
    EXPECT_EQ(r2.url, server.url("/redirect-chain?n=0"));
    crawl::Request endless = get(server.url("/redirect-loop"));
    endless.follow_redirects = true;
    endless.max_redirects = 5;
    bool raised = false;
    try {
      (void)co_await client.fetch(std::move(endless));
    } catch (const crawl::TooManyRedirects& e) {
      raised = true;
      EXPECT_NE(e.curl_code(), 0);
    }
    EXPECT_TRUE(raised);
    server.close();
  }());
}

TEST_F(HttpClientTest, GzipAndChunkedBodiesAreDecoded) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Response r = co_await client.fetch(server.url("/gzip?size=20000"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, HttpTestServer::page(20000));
    EXPECT_EQ(r.headers.get("Content-Encoding").value_or(""), "gzip");
    EXPECT_LT(r.bytes_downloaded, r.body.size());  // what travelled was compressed
    crawl::Response d = co_await client.fetch(server.url("/deflate?size=20000"));
    EXPECT_EQ(d.body, HttpTestServer::page(20000));
    EXPECT_EQ(d.headers.get("Content-Encoding").value_or(""), "deflate");
    EXPECT_LT(d.bytes_downloaded, d.body.size());
    // Without decoding: the bytes as sent.
    crawl::ClientOptions raw;
    raw.decode_content = false;
    crawl::HttpClient undecoded(raw);
    crawl::Response g = co_await undecoded.fetch(server.url("/gzip?size=20000"));
    EXPECT_EQ(g.body, HttpTestServer::gzip(HttpTestServer::page(20000)));
    crawl::Response c = co_await client.fetch(server.url("/chunked?chunks=5&size=100"));
    EXPECT_EQ(c.status, 200);
    EXPECT_EQ(c.body, std::string(100, 'a') + std::string(100, 'b') + std::string(100, 'c') +
                          std::string(100, 'd') + std::string(100, 'e'));
    server.close();
  }());
}

TEST_F(HttpClientTest, LatencyIsAtLeastTheServersDelay) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::HttpClient client;
    crawl::Response r = co_await client.fetch(server.url("/slow?delay=200"));
    EXPECT_EQ(r.status, 200);
    EXPECT_GE(r.timing.latency, 200ms - kSlack);
    EXPECT_GE(r.timing.first_byte, r.timing.latency);
    EXPECT_GE(r.timing.total, r.timing.first_byte);
    server.close();
  }());
}

TEST_F(HttpClientTest, CookiesAndUserAgent) {
  run_bounded([]() -> aio::Task<void> {
    HttpTestServer server = co_await HttpTestServer::start();
    crawl::ClientOptions options;
    options.cookies = true;
    options.user_agent = "test-agent/1";
    crawl::HttpClient client(options);
    crawl::Response set = co_await client.fetch(server.url("/set-cookie?name=session&value=42"));
    EXPECT_EQ(set.headers.get("Set-Cookie").value_or(""), "session=42; Path=/");
    crawl::Response echo = co_await client.fetch(server.url("/headers"));
    EXPECT_NE(echo.body.find("Cookie: session=42"), std::string::npos) << echo.body;
    EXPECT_NE(echo.body.find("User-Agent: test-agent/1"), std::string::npos) << echo.body;
    const std::vector<std::string> jar = client.cookies();
    CO_ASSERT_EQ(jar.size(), 1u);
    EXPECT_NE(jar[0].find("session"), std::string::npos);
    // Per request: another agent, extra headers; and no cookies without the engine.
    crawl::Request req = get(server.url("/headers"));
    req.user_agent = "other/2";
    req.headers.add("X-Custom", "yes");
    req.headers.add("X-Empty", "");
    crawl::HttpClient plain;
    crawl::Response r = co_await plain.fetch(std::move(req));
    EXPECT_NE(r.body.find("User-Agent: other/2"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("X-Custom: yes"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("X-Empty: \n"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("Cookie:"), std::string::npos) << r.body;
    EXPECT_TRUE(plain.cookies().empty());
    server.close();
  }());
}

TEST_F(HttpClientTest, HeadersAreACaseInsensitiveMultiMap) {
  crawl::Headers h{{"Set-Cookie", "a=1"}, {"Content-Type", "text/html"}};
  h.add("set-cookie", "b=2");
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.get("SET-COOKIE").value_or(""), "a=1");
  const auto all = h.get_all("Set-Cookie");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1], "b=2");
  h.set("content-type", "text/plain");
  EXPECT_EQ(h.get("Content-Type").value_or(""), "text/plain");
  EXPECT_EQ(h.remove("set-cookie"), 2u);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_FALSE(h.contains("Set-Cookie"));
}

aio::Task<void> fetch_on_wrong_loop(crawl::HttpClient& client) {
  bool refused = false;
  try {
    (void)co_await client.fetch("http://127.0.0.1:1/");
  } catch (const RuntimeError& e) {
    refused = true;
    EXPECT_NE(std::string(e.what()).find("loop's thread"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(client.in_flight(), 0u);
}

// HTTP/2 end to end against nginx (TLS, ALPN): twenty fetches at once share one connection as
// multiplexed streams (PIPEWAIT makes the later ones wait for the first connection's ALPN), each
// answered as HTTP/2 with its own body.
aio::Task<void> http2_checks(std::string base, std::string ca_file) {
  crawl::ClientOptions options;
  options.ca_file = std::move(ca_file);
  crawl::HttpClient client(options);
  std::vector<aio::Task<crawl::Response>> fetches;
  for (int i = 0; i < 20; ++i) {
    fetches.push_back(client.fetch(base + "/page" + std::to_string(i) + ".html"));
  }
  std::vector<crawl::Response> done = co_await aio::gather(std::move(fetches));
  for (std::size_t i = 0; i < done.size(); ++i) {
    EXPECT_EQ(done[i].status, 200);
    EXPECT_EQ(done[i].http_version, "HTTP/2");
    EXPECT_EQ(done[i].body, "<p>page " + std::to_string(i) + "</p>");
  }
  EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST_F(HttpClientTest, Http2MultiplexesOnOneConnectionToNginx) {
  const TempCert cert;
  ASSERT_FALSE(cert.cert.empty()) << "openssl could not make a certificate";
  PublicTempDir root("concur-h2-");
  for (int i = 0; i < 20; ++i) {
    std::ofstream(root.path() / ("page" + std::to_string(i) + ".html"))
        << "<p>page " << i << "</p>";
    std::filesystem::permissions(root.path() / ("page" + std::to_string(i) + ".html"),
                                 std::filesystem::perms::others_read,
                                 std::filesystem::perm_options::add);
  }
  NginxServer nginx;
  nginx.use_tls(cert.cert, cert.key);
  nginx.start(root.path());
  run_bounded(http2_checks(nginx.url(""), cert.cert));
  // The server agrees: one connection served every request (the log's last lines are written
  // just after their answers: waited for).
  const std::vector<std::string> lines = nginx.access_log_lines(20, kGenerous);
  std::set<std::string> connections;
  for (const std::string& line : lines) {
    std::istringstream fields(line);
    std::string msec, method, target, version, status, bytes, time, connection;
    fields >> msec >> method >> target >> version >> status >> bytes >> time >> connection;
    connections.insert(connection);
  }
  EXPECT_EQ(lines.size(), 20u);
  EXPECT_EQ(connections.size(), 1u);
}

TEST_F(HttpClientTest, FetchOnAnotherLoopIsARuntimeError) {
  aio::Loop other;  // never the running one
  crawl::HttpClient client(other);
  run_bounded(fetch_on_wrong_loop(client));
}

TEST_F(HttpClientTest, Http2IsAvailable) {
  // Debian 12's libcurl4-openssl is built with nghttp2: HTTP/2 is offered over TLS (ALPN).
  EXPECT_TRUE(crawl::curl_has_http2()) << crawl::curl_version_text();
  EXPECT_NE(crawl::curl_version_text().find("libcurl/"), std::string::npos);
  // …and with brotli and zstd, which Accept-Encoding then offers besides gzip and deflate.
  EXPECT_NE(crawl::curl_version_text().find("brotli/"), std::string::npos);
  EXPECT_NE(crawl::curl_version_text().find("zstd/"), std::string::npos);
}

}  // namespace
}  // namespace concur::testing
