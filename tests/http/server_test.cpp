// Tests for include/concur/http/server.hpp: Server and Service over real loopback sockets, driven
// by a raw client (support/http_client.hpp) that sends exactly the bytes each test needs: the
// three kinds of handlers, keep-alive and pipelining, every limit and timeout, backpressure and
// its recovery, the graceful drain, a process-pool worker's death, errors as JSON, metrics,
// health, the access log, several loops, signals.
#include "concur/http/server.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/streams.hpp"
#include "concur/mp/task.hpp"
#include "support/hook_support.hpp"
#include "support/http_client.hpp"
#include "support/temp_dir.hpp"
#include "support/tls_support.hpp"

namespace {

using namespace std::chrono_literals;
using concur::test::http_get;
using concur::test::RawConnection;
using concur::testing::Gate;
using concur::testing::kGenerous;
using concur::testing::OpenAtExit;
using concur::testing::wait_until;
namespace http = concur::http;
namespace aio = concur::aio;

std::int64_t fib(std::int64_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
CONCUR_TASK(fib);

int die_now(int code) {
  std::fflush(nullptr);
  ::_exit(code);
}
CONCUR_TASK(die_now);

// Running: app served by a Service (one loop unless told), stopped when it goes.
struct Running {
  explicit Running(http::App& app, http::ServerOptions server = {}, std::size_t threads = 1)
      : service(app, http::ServiceOptions{.threads = threads, .server = server}) {
    service.start();
  }
  [[nodiscard]] std::uint16_t port() const { return service.port(); }
  http::Service service;
};

nlohmann::json body_json(const concur::test::RawResponse& r) {
  return nlohmann::json::parse(r.body);
}

class HttpServerTest : public concur::testing::HookCapturingTest {};

// Stuck: a thread-pool route whose handler counts its entries and waits behind a gate the test
// opens (declared before the App, whose pool joins its threads, and opened by an OpenAtExit
// declared after the server).
struct Stuck {
  Gate gate;
  std::atomic<int> entered{0};
  // route(app, path): the route ("done" once the gate opens).
  void route(http::App& app, const std::string& path) {
    app.get(path, [this] {
      ++entered;
      gate.pass();
      return "done";
    });
  }
  // occupy(port, path): a connection whose request's handler has entered and now waits.
  std::unique_ptr<RawConnection> occupy(std::uint16_t port, const std::string& path) {
    auto c = std::make_unique<RawConnection>(port);
    const int before = entered.load();
    c->send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(wait_until([&] { return entered.load() > before; }));
    return c;
  }
};

TEST_F(HttpServerTest, TypedParametersAndJsonResponses) {
  http::App app;
  app.get("/users/<int:id>", [](const http::Request& req) {
    return nlohmann::json{{"id", req.param<std::int64_t>("id")}, {"route", req.route}};
  });
  app.get("/files/<path:rest>", [](const http::Request& req) { return req.param("rest"); });
  Running s(app);
  const auto r = http_get(s.port(), "/users/42");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(body_json(r), (nlohmann::json{{"id", 42}, {"route", "/users/<int:id>"}}));
  EXPECT_EQ(r.header("server"), "concur");
  EXPECT_FALSE(r.header("date").empty());
  const auto files = http_get(s.port(), "/files/a/b%20c.txt");
  EXPECT_EQ(files.status, 200);
  EXPECT_EQ(files.body, "a/b c.txt");
  EXPECT_EQ(files.header("content-type"), "text/html; charset=utf-8");
  const auto missing = http_get(s.port(), "/users/abc");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(body_json(missing)["error"]["reason"], "Not Found");
  EXPECT_EQ(body_json(missing)["error"]["status"], 404);
}

TEST_F(HttpServerTest, EachKindOfHandlerRunsWhereItBelongs) {
  http::App app;
  std::atomic<std::thread::id> loop_thread{}, pool_thread{};
  app.get("/coro", [&](const http::Request&) -> aio::Task<http::Response> {
    loop_thread = std::this_thread::get_id();
    co_await aio::sleep(1ms);
    co_return http::Response::text("coroutine");
  });
  app.get("/blocking", [&](const http::Request&) {
    pool_thread = std::this_thread::get_id();
    std::this_thread::sleep_for(1ms);
    return http::Response::text("blocking");
  });
  app.get("/fib/<int:n>", http::in_process(fib));
  app.get("/coro-json", []() -> aio::Task<nlohmann::json> { co_return nlohmann::json{1, 2}; });
  Running s(app);
  EXPECT_EQ(http_get(s.port(), "/coro").body, "coroutine");
  EXPECT_EQ(http_get(s.port(), "/blocking").body, "blocking");
  EXPECT_NE(loop_thread.load(), std::thread::id{});
  EXPECT_NE(pool_thread.load(), std::thread::id{});
  EXPECT_NE(loop_thread.load(), pool_thread.load());
  const auto f = http_get(s.port(), "/fib/20");
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.body, "6765");
  EXPECT_EQ(http_get(s.port(), "/coro-json").body, "[1,2]");
}

TEST_F(HttpServerTest, MethodsHeadOptionsAndTrailingSlashRedirect) {
  http::App app;
  app.route("/items/", {"GET", "POST"}, [](const http::Request& req) {
    return http::Response::text(req.method == "POST" ? "posted:" + req.body : "list");
  });
  Running s(app);
  RawConnection c(s.port());
  EXPECT_EQ(c.request("POST", "/items/", "", "abc").body, "posted:abc");
  const auto not_allowed = c.request("DELETE", "/items/");
  EXPECT_EQ(not_allowed.status, 405);
  EXPECT_EQ(not_allowed.header("allow"), "GET, HEAD, OPTIONS, POST");
  const auto head = c.request("HEAD", "/items/");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.header("content-length"), "4");
  const auto options = c.request("OPTIONS", "/items/");
  EXPECT_EQ(options.status, 204);
  EXPECT_EQ(options.header("allow"), "GET, HEAD, OPTIONS, POST");
  const auto redirect = c.request("GET", "/items?x=1");
  EXPECT_EQ(redirect.status, 308);
  EXPECT_EQ(redirect.header("location"), "/items/?x=1");
  EXPECT_TRUE(redirect.keep_alive);
  EXPECT_EQ(c.request("GET", "/items/").body, "list");
}

TEST_F(HttpServerTest, KeepAliveAndPipelinedRequestsAnsweredInOrder) {
  http::App app;
  app.get("/echo/<word>", [](const http::Request& req) -> aio::Task<http::Response> {
    co_return http::Response::text(req.param("word"));
  });
  Running s(app);
  RawConnection c(s.port());
  for (const char* w : {"one", "two", "three"})
    EXPECT_EQ(c.request("GET", std::string("/echo/") + w).body, w);
  std::string burst;
  for (int i = 0; i < 10; ++i) {
    burst.append("GET /echo/w").append(std::to_string(i)).append(" HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  c.send(burst);
  for (int i = 0; i < 10; ++i) {
    std::string word = "w";
    word.append(std::to_string(i));
    EXPECT_EQ(c.read_response().body, word);
  }
  EXPECT_EQ(app.metrics().connections.load(), 1);
}

TEST_F(HttpServerTest, AHalfClosedClientStillGetsItsAnswers) {
  http::App app;
  app.get("/echo/<word>", [](const http::Request& req) { return req.param("word"); });
  Running s(app);
  RawConnection c(s.port());
  c.send("GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/b HTTP/1.1\r\nHost: x\r\n\r\n");
  c.shutdown_write();  // the client sends nothing more, and still reads
  EXPECT_EQ(c.read_response().body, "a");
  EXPECT_EQ(c.read_response().body, "b");
  EXPECT_TRUE(c.closed_within(kGenerous));
  EXPECT_FALSE(c.reset());
  // Half a request, then the half-close: no answer, the connection closes.
  RawConnection d(s.port());
  d.send("GET /echo/a HTTP/1.1\r\nHo");
  d.shutdown_write();
  EXPECT_TRUE(d.closed_within(kGenerous));
  EXPECT_TRUE(d.buffered().empty());
}

TEST_F(HttpServerTest, Http10ClosesUnlessKeepAliveAsked) {
  http::App app;
  app.get("/", [] { return http::Response::text("hi"); });
  Running s(app);
  {
    RawConnection c(s.port());
    c.send("GET / HTTP/1.0\r\n\r\n");
    const auto r = c.read_response();
    EXPECT_EQ(r.version, 10u);
    EXPECT_FALSE(r.keep_alive);
    EXPECT_TRUE(c.closed_within(kGenerous));
  }
  RawConnection c(s.port());
  c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_TRUE(c.read_response().keep_alive);
  c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_FALSE(c.read_response().keep_alive);
  EXPECT_TRUE(c.closed_within(kGenerous));
}

// expect_refused(port, request, status): the server answers status and closes.
void expect_answer_and_close(std::uint16_t port, const std::string& request, int status) {
  RawConnection c(port);
  c.send(request);
  const auto r = c.read_response();
  EXPECT_EQ(r.status, status) << request.substr(0, 60);
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(body_json(r)["error"]["status"], status);
  EXPECT_TRUE(c.closed_within(kGenerous));
}

TEST_F(HttpServerTest, LimitsAnswerTheRightStatusAndClose) {
  http::App app;
  app.post("/upload", [](const http::Request& req) { return std::to_string(req.body.size()); });
  http::ServerOptions o;
  o.max_url_bytes = 100;
  o.max_header_bytes = 1000;
  o.max_body_bytes = 1000;
  Running s(app, o);
  expect_answer_and_close(s.port(),
                          "GET /" + std::string(200, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414);
  // A target longer than the limit, sent slowly without its line end: 414 before the line ends.
  expect_answer_and_close(s.port(), "GET /" + std::string(300, 'a'), 414);
  expect_answer_and_close(
      s.port(), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'b') + "\r\n\r\n", 431);
  // 413 from Content-Length alone: the body is never sent.
  expect_answer_and_close(s.port(),
                          "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413);
  expect_answer_and_close(s.port(), "NOT A REQUEST\r\n\r\n", 400);
  expect_answer_and_close(s.port(), "GET / HTTP/1.1\r\n\r\n", 400);  // no Host
  expect_answer_and_close(s.port(), "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  // Within the limits all is well.
  RawConnection c(s.port());
  EXPECT_EQ(c.request("POST", "/upload", "", std::string(1000, 'c')).body, "1000");
}

TEST_F(HttpServerTest, SlowClientsTimeOut) {
  http::App app;
  app.post("/upload", [](const http::Request& req) { return std::to_string(req.body.size()); });
  app.get("/", [] { return "ok"; });
  http::ServerOptions o;
  o.header_timeout = 300ms;
  o.body_timeout = 300ms;
  o.idle_timeout = 300ms;
  Running s(app, o);
  {  // Half a header, then silence: 408.
    RawConnection c(s.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n");
    const auto r = c.read_response();
    EXPECT_EQ(r.status, 408);
    EXPECT_TRUE(c.closed_within(kGenerous));
  }
  {  // Half a body: 408.
    RawConnection c(s.port());
    c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    EXPECT_EQ(c.read_response().status, 408);
    EXPECT_TRUE(c.closed_within(kGenerous));
  }
  {  // Nothing at all: closed without a word.
    RawConnection c(s.port());
    EXPECT_TRUE(c.closed_within(kGenerous));
    EXPECT_TRUE(c.buffered().empty());
  }
  {  // Idle after a response: closed.
    RawConnection c(s.port());
    EXPECT_EQ(c.request("GET", "/").status, 200);
    EXPECT_TRUE(c.closed_within(kGenerous));
    EXPECT_TRUE(c.buffered().empty());
  }
  EXPECT_TRUE(wait_until([&] { return app.metrics().connections.load() == 0; }));
}

TEST_F(HttpServerTest, AnIdleKeepAliveConnectionLastsItsIdleTimeoutAfterAResponse) {
  http::App app;
  app.get("/", []() -> aio::Task<http::Response> { co_return http::Response::text("ok"); });
  http::ServerOptions o;
  o.idle_timeout = 600ms;
  Running s(app, o);
  RawConnection c(s.port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.request("GET", "/").status, 200);
  // The idle deadline counts from the last response: open for (most of) it, closed after.
  constexpr auto kSlack = 300ms;
  EXPECT_FALSE(c.closed_within(o.idle_timeout - kSlack));
  EXPECT_TRUE(c.closed_within(kGenerous));
  EXPECT_TRUE(c.buffered().empty());
}

TEST_F(HttpServerTest, ALargeResponseIsDrainedAndTheConnectionKept) {
  // More than the kernel takes at once: the rest waits in the writer and is drained.
  constexpr std::size_t kBig = 8 * 1024 * 1024;
  http::App app;
  app.get("/big", []() -> aio::Task<http::Response> {
    co_return http::Response::text(std::string(kBig, 'x'));
  });
  Running s(app);
  RawConnection c(s.port());
  for (int i = 0; i < 2; ++i) {
    const auto r = c.request("GET", "/big");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.size(), kBig);
    EXPECT_TRUE(r.keep_alive);
  }
}

TEST_F(HttpServerTest, AClientThatStopsReadingIsCutAfterTheWriteTimeout) {
  constexpr std::size_t kHuge = 64 * 1024 * 1024;  // more than loopback's socket buffers hold
  http::App app;
  app.get("/huge", []() -> aio::Task<http::Response> {
    co_return http::Response::text(std::string(kHuge, 'x'));
  });
  http::ServerOptions o;
  o.write_timeout = 500ms;
  Running s(app, o);
  RawConnection c(s.port());
  const auto sent = std::chrono::steady_clock::now();
  c.send("GET /huge HTTP/1.1\r\nHost: x\r\n\r\n");  // and never read
  // Aborted at the deadline, not before: the connection (and its buffered response) is gone.
  ASSERT_TRUE(wait_until([&] { return app.metrics().connections.load() == 1; }));
  EXPECT_TRUE(wait_until([&] { return app.metrics().connections.load() == 0; }));
  constexpr auto kSlack = 100ms;
  EXPECT_GE(std::chrono::steady_clock::now() - sent, o.write_timeout - kSlack);
  EXPECT_EQ(app.metrics().requests("/huge", "GET", 200), 1u);  // counted as answered
  EXPECT_TRUE(c.closed_within(kGenerous));
  EXPECT_LT(c.buffered().size(), kHuge);
}

TEST_F(HttpServerTest, HandlerTimeoutIs504AndTheServerGoesOn) {
  http::App app;
  app.get("/slow-coro", []() -> aio::Task<http::Response> {
    co_await aio::sleep(60s);
    co_return http::Response::text("late");
  });
  app.get("/slow-thread", [] {
    std::this_thread::sleep_for(600ms);
    return "late";
  });
  app.get("/", [] { return "ok"; });
  http::ServerOptions o;
  o.handler_timeout = 200ms;
  Running s(app, o);
  RawConnection c(s.port());
  const auto a = c.request("GET", "/slow-coro");
  EXPECT_EQ(a.status, 504);
  EXPECT_EQ(body_json(a)["error"]["reason"], "Gateway Timeout");
  EXPECT_EQ(c.request("GET", "/slow-thread").status, 504);
  EXPECT_EQ(c.request("GET", "/").body, "ok");
  // The pool task that ran late is counted as pending until it ended.
  EXPECT_TRUE(wait_until([&] { return app.metrics().thread_pending.load() == 0; }));
}

TEST_F(HttpServerTest, BackpressureAnswers503AtOnceAndRecovers) {
  Stuck stuck;
  http::App app;
  stuck.route(app, "/slow");
  http::ServerOptions o;
  o.max_in_flight = 1;
  o.retry_after = 2;
  Running s(app, o);
  OpenAtExit open(stuck.gate);
  const auto a = stuck.occupy(s.port(), "/slow");
  const auto busy = http_get(s.port(), "/slow");
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.header("retry-after"), "2");
  EXPECT_EQ(http_get(s.port(), "/healthz").status, 200);  // exempt
  EXPECT_EQ(app.metrics().rejected_count(http::Metrics::Reject::kServerFull), 1u);
  stuck.gate.open();
  EXPECT_EQ(a->read_response().body, "done");
  EXPECT_EQ(http_get(s.port(), "/slow").body, "done");
}

TEST_F(HttpServerTest, APoolAtItsPendingLimitAnswers503) {
  Stuck stuck;
  http::App app(http::AppOptions{.max_thread_pending = 1});
  stuck.route(app, "/slow");
  app.get("/fanout", [&app]() -> aio::Task<std::string> {
    concur::Future<std::string> f = app.run_in_thread([] { return std::string("x"); });
    co_return co_await std::move(f);
  });
  Running s(app);
  OpenAtExit open(stuck.gate);
  const auto a = stuck.occupy(s.port(), "/slow");
  const auto busy = http_get(s.port(), "/slow");
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.header("retry-after"), "1");
  EXPECT_EQ(http_get(s.port(), "/fanout").status, 503);  // run_in_thread: HTTPError 503
  EXPECT_EQ(app.metrics().rejected_count(http::Metrics::Reject::kThreadPoolFull), 2u);
  stuck.gate.open();
  EXPECT_EQ(a->read_response().body, "done");
  EXPECT_TRUE(wait_until([&] { return app.metrics().thread_pending.load() == 0; }));
  EXPECT_EQ(http_get(s.port(), "/fanout").body, "x");
}

TEST_F(HttpServerTest, GracefulDrainFinishesRequestsInFlight) {
  Stuck stuck;
  http::App app;
  stuck.route(app, "/slow");
  app.get("/", [] { return "ok"; });
  http::Service service(app, {});
  service.start();
  OpenAtExit open(stuck.gate);
  const std::uint16_t port = service.port();
  RawConnection idle(port);
  EXPECT_EQ(idle.request("GET", "/").status, 200);
  const auto busy = stuck.occupy(port, "/slow");
  service.shutdown(10s);
  // The idle keep-alive connection closes; no new connection is accepted.
  EXPECT_TRUE(idle.closed_within(kGenerous));
  EXPECT_TRUE(wait_until([&] {
    try {
      RawConnection probe(port);
      return false;
    } catch (const std::runtime_error&) {
      return true;
    }
  }));
  // The request in flight completes, and its response closes the connection.
  stuck.gate.open();
  const auto r = busy->read_response();
  EXPECT_EQ(r.body, "done");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(busy->closed_within(kGenerous));
  EXPECT_FALSE(busy->reset());
  service.wait();
}

TEST_F(HttpServerTest, DrainDeadlineCutsWhatIsLeft) {
  Stuck stuck;
  http::App app;
  stuck.route(app, "/stuck");
  http::Service service(app, {});
  service.start();
  OpenAtExit open(stuck.gate);
  const auto held = stuck.occupy(service.port(), "/stuck");
  const auto t0 = std::chrono::steady_clock::now();
  service.shutdown(200ms);
  service.wait();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_TRUE(held->closed_within(kGenerous));
  EXPECT_TRUE(held->buffered().empty());
}

TEST_F(HttpServerTest, AWorkerThatDiesFailsOnlyItsRequest) {
  http::App app(http::AppOptions{.process_workers = 1});
  app.get("/die/<int:code>", http::in_process(die_now));
  app.get("/fib/<int:n>", http::in_process(fib));
  Running s(app);
  EXPECT_EQ(http_get(s.port(), "/fib/10").body, "55");
  const auto r = http_get(s.port(), "/die/7");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(body_json(r)["error"]["message"].get<std::string>().find("BrokenProcessPool"),
            std::string::npos)
      << r.body;
  EXPECT_EQ(http_get(s.port(), "/fib/12").body, "144");
}

TEST_F(HttpServerTest, HandlerErrorsBecomeJsonNeverLost) {
  http::App app;
  app.get("/teapot", []() -> http::Response { throw http::HTTPError(418, "short and stout"); });
  app.get("/bug", []() -> http::Response { throw std::runtime_error("secret detail"); });
  app.post("/json", [](const http::Request& req) { return req.json(); });
  Running s(app);
  const auto teapot = http_get(s.port(), "/teapot");
  EXPECT_EQ(teapot.status, 418);
  EXPECT_EQ(body_json(teapot)["error"]["message"], "short and stout");
  expect_reports(1);
  const auto bug = http_get(s.port(), "/bug");
  EXPECT_EQ(bug.status, 500);
  EXPECT_EQ(body_json(bug)["error"]["message"], "Internal Server Error");
  EXPECT_EQ(bug.body.find("secret"), std::string::npos);
  EXPECT_TRUE(wait_until([&] { return reports().size() == 1; }));
  RawConnection c(s.port());
  EXPECT_EQ(c.request("POST", "/json", "", "{\"a\": [1]}").body, "{\"a\":[1]}");
  const auto bad = c.request("POST", "/json", "", "{oops");
  EXPECT_EQ(bad.status, 400);
  EXPECT_TRUE(bad.keep_alive);  // a handler's 4xx keeps the connection
}

TEST_F(HttpServerTest, MetricsAndHealth) {
  http::App app;
  app.get("/users/<int:id>", [](const http::Request&) -> aio::Task<std::string> { co_return "u"; });
  Running s(app);
  RawConnection c(s.port());
  c.request("GET", "/users/1");
  c.request("GET", "/users/2");
  c.request("GET", "/nowhere");
  EXPECT_EQ(app.metrics().requests("/users/<int:id>", "GET", 200), 2u);
  const auto m = c.request("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* line :
       {"concur_http_requests_total{route=\"/users/<int:id>\",method=\"GET\",status=\"200\"} 2\n",
        "concur_http_requests_total{route=\"\",method=\"GET\",status=\"404\"} 1\n",
        "concur_http_request_duration_seconds_count{route=\"/users/<int:id>\"} 2\n",
        "concur_http_requests_in_flight 1\n", "concur_http_max_requests_in_flight 1024\n",
        "concur_http_connections 1\n",
        "concur_http_requests_rejected_total{reason=\"server_full\"} 0\n"}) {
    EXPECT_NE(m.body.find(line), std::string::npos) << line << m.body;
  }
  EXPECT_EQ(body_json(c.request("GET", "/healthz")), (nlohmann::json{{"status", "ok"}}));
}

TEST_F(HttpServerTest, HealthSaysDrainingWhileAServerOfTheAppDrains) {
  Stuck stuck;
  http::App app;
  stuck.route(app, "/slow");
  http::Service first(app, {});
  http::Service second(app, {});
  first.start();
  second.start();
  OpenAtExit open(stuck.gate);
  const auto busy = stuck.occupy(first.port(), "/slow");
  first.shutdown(10s);
  EXPECT_TRUE(wait_until([&] { return http_get(second.port(), "/healthz").status == 503; }));
  EXPECT_EQ(body_json(http_get(second.port(), "/healthz"))["status"], "draining");
  stuck.gate.open();
  EXPECT_EQ(busy->read_response().body, "done");
  first.wait();
  EXPECT_EQ(http_get(second.port(), "/healthz").status, 200);
}

TEST_F(HttpServerTest, ExpectContinueGetsA100First) {
  http::App app;
  app.post("/upload", [](const http::Request& req) { return req.body; });
  Running s(app);
  RawConnection c(s.port());
  c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 100);
  c.send("hello");
  EXPECT_EQ(c.read_response().body, "hello");
}

TEST_F(HttpServerTest, AccessLogLines) {
  http::AccessRecord rec{"127.0.0.1",
                         std::chrono::system_clock::from_time_t(1765000000),
                         "GET",
                         "/is_prime/7?x=1",
                         11,
                         200,
                         57,
                         0.25,
                         "/is_prime/<numbers>",
                         "curl/7.88"};
  EXPECT_EQ(http::format_common(rec),
            "127.0.0.1 - - [06/Dec/2025:05:46:40 +0000] \"GET /is_prime/7?x=1 HTTP/1.1\" 200 57");
  const auto j = nlohmann::json::parse(http::format_json(rec));
  EXPECT_EQ(j["time"], "2025-12-06T05:46:40.000Z");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["route"], "/is_prime/<numbers>");
  EXPECT_EQ(j["user_agent"], "curl/7.88");

  concur::testing::TempDir dir;
  const std::string path = (dir.path() / "access.log").string();
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  {
    http::App app;
    app.get("/", [] { return "hello"; });
    http::ServerOptions o;
    o.access_log = http::AccessLog::kCommon;
    o.access_log_file = f;
    Running s(app, o);
    EXPECT_EQ(http_get(s.port(), "/").status, 200);
  }
  std::fclose(f);
  std::FILE* in = std::fopen(path.c_str(), "r");
  ASSERT_NE(in, nullptr);
  char line[512] = {};
  ASSERT_NE(std::fgets(line, sizeof line, in), nullptr);
  std::fclose(in);
  EXPECT_NE(std::string(line).find("\"GET / HTTP/1.1\" 200 5\n"), std::string::npos) << line;
}

TEST_F(HttpServerTest, ServiceOnTwoLoopsDrainsOnSigterm) {
  http::App app;
  app.get("/n/<int:n>",
          [](const http::Request& req) -> aio::Task<std::string> { co_return req.param("n"); });
  http::Service service(app, {.threads = 2, .handle_signals = true, .drain_timeout = 5000ms});
  service.start();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(http_get(service.port(), "/n/" + std::to_string(i)).body, std::to_string(i));
  }
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  service.wait();
  EXPECT_THROW(RawConnection probe(service.port()), std::runtime_error);
}

TEST_F(HttpServerTest, StartErrors) {
  http::App app;
  http::Service first(app, {});
  first.start();
  http::Service clash(app, {.port = first.port()});
  EXPECT_THROW(clash.start(), concur::OSError);
  http::ServerOptions zero;
  zero.max_in_flight = 0;
  http::Service bad(app, {.server = zero});
  EXPECT_THROW(bad.start(), concur::ValueError);
  EXPECT_THROW(http::Service(app, {.threads = 0}), concur::ValueError);
  EXPECT_THROW(first.start(), concur::RuntimeError);
}

TEST_F(HttpServerTest, ServerInsideAnAioProgram) {
  http::App app;
  app.get("/hello", []() -> aio::Task<std::string> { co_return "hello"; });
  aio::run([&]() -> aio::Task<void> {
    http::Server server = co_await http::Server::start(app);
    EXPECT_TRUE(server.is_serving());
    aio::Connection conn = co_await aio::open_connection("127.0.0.1", server.port());
    conn.writer.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string head = co_await conn.reader.readuntil("\r\n\r\n");
    EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
    EXPECT_EQ(co_await conn.reader.readexactly(5), "hello");
    EXPECT_EQ(server.active_connections(), 1u);
    co_await server.shutdown(1s);  // the idle connection is closed at once
    EXPECT_FALSE(server.is_serving());
    EXPECT_EQ(server.active_connections(), 0u);
    EXPECT_EQ(co_await conn.reader.read(), "");
  }());
}

TEST_F(HttpServerTest, ServesOverTls) {
  http::App app;
  app.get("/hello", []() -> aio::Task<std::string> { co_return "secure"; });
  const aio::SslContext tls = concur::testing::server_tls();
  http::ServerOptions o;
  o.ssl = &tls;
  Running s(app, o);
  aio::run([&]() -> aio::Task<void> {
    const aio::SslContext client = concur::testing::client_tls();
    aio::Connection conn = co_await aio::open_connection(
        "127.0.0.1", s.port(), aio::ConnectOptions{.ssl = &client, .server_hostname = "localhost"});
    conn.writer.write("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::string head = co_await conn.reader.readuntil("\r\n\r\n");
    EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
    EXPECT_EQ(co_await conn.reader.readexactly(6), "secure");
    conn.writer.close();
    co_await conn.writer.wait_closed();
  }());
  // Plain HTTP to the TLS port gets no HTTP answer.
  RawConnection plain(s.port());
  plain.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(plain.closed_within(kGenerous));
  EXPECT_EQ(plain.buffered().find("secure"), std::string::npos);
}

}  // namespace
