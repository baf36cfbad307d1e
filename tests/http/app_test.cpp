// Tests for include/concur/http/app.hpp: route patterns (Flask's converters), their order,
// matching (found, 404, 405 with Allow, HEAD by GET, OPTIONS, the trailing-slash redirect), the
// checks made at registration, the built-in routes, and the pools' pending limits.
#include "concur/http/app.hpp"

#include <gtest/gtest.h>

#include "concur/mp/task.hpp"

namespace {

namespace http = concur::http;
using Kind = http::Match::Kind;

std::int64_t twice(std::int64_t n) { return 2 * n; }
CONCUR_TASK(twice);
std::string shout(std::string s, double x) { return s + std::to_string(x); }
CONCUR_TASK(shout);

http::Response ok() { return http::Response::text("ok"); }

TEST(HttpApp, PatternsAndTheirErrors) {
  const auto r = http::detail::parse_pattern("/a/<int:id>/<name>/<path:rest>");
  ASSERT_EQ(r.segments.size(), 4u);
  EXPECT_EQ(r.segments[1].converter, http::detail::Converter::kInt);
  EXPECT_EQ(r.segments[2].converter, http::detail::Converter::kString);
  EXPECT_TRUE(http::detail::parse_pattern("/x/").trailing_slash);
  for (const char* bad : {"", "x", "//", "/a//b", "/<>", "/<1x>", "/a<id>", "/<id>x", "/<bad:id>",
                          "/<id>/<id>", "/<path:p>/more", "/<int:a"}) {
    EXPECT_THROW((void)http::detail::parse_pattern(bad), concur::ValueError) << bad;
  }
}

TEST(HttpApp, MatchingConvertersAndOrder) {
  http::App app;
  app.get("/users/<int:id>", ok);
  app.get("/users/<name>", ok);
  app.get("/users/me", ok);
  app.get("/price/<float:x>", ok);
  app.get("/files/<path:p>", ok);
  app.get("/", ok);
  auto m = app.match("GET", "/users/me");
  EXPECT_EQ(m.route->pattern, "/users/me");  // literal first
  m = app.match("GET", "/users/12");
  EXPECT_EQ(m.route->pattern, "/users/<int:id>");  // int before string
  EXPECT_EQ(m.params, (std::vector<std::pair<std::string, std::string>>{{"id", "12"}}));
  m = app.match("GET", "/users/-12");
  EXPECT_EQ(m.route->pattern, "/users/<name>");  // int takes digits only
  EXPECT_EQ(app.match("GET", "/users/99999999999999999999").route->pattern, "/users/<name>");
  EXPECT_EQ(app.match("GET", "/price/1.5").kind, Kind::kFound);
  EXPECT_EQ(app.match("GET", "/price/15").kind, Kind::kNotFound);
  m = app.match("GET", "/files/a/b/c");
  EXPECT_EQ(m.params.at(0).second, "a/b/c");
  EXPECT_EQ(app.match("GET", "/files/").kind, Kind::kNotFound);
  EXPECT_EQ(app.match("GET", "/").kind, Kind::kFound);
  EXPECT_EQ(app.match("GET", "/users").kind, Kind::kNotFound);
  EXPECT_EQ(app.match("GET", "/users/12/").kind, Kind::kNotFound);  // strict slashes
  EXPECT_EQ(app.match("GET", "/users/").kind, Kind::kNotFound);
}

TEST(HttpApp, MethodsHeadOptionsRedirect) {
  http::App app;
  app.route("/things/", {"GET", "POST"}, ok);
  app.route("/things/<int:id>/", {"PUT"}, ok);
  auto m = app.match("HEAD", "/things/");
  EXPECT_EQ(m.kind, Kind::kFound);
  EXPECT_TRUE(m.head);
  m = app.match("DELETE", "/things/");
  EXPECT_EQ(m.kind, Kind::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "GET, HEAD, OPTIONS, POST");
  m = app.match("OPTIONS", "/things/3/");
  EXPECT_EQ(m.kind, Kind::kOptions);
  EXPECT_EQ(m.allow, "OPTIONS, PUT");
  m = app.match("GET", "/things");
  EXPECT_EQ(m.kind, Kind::kRedirect);
  EXPECT_EQ(m.location, "/things/");
  m = app.match("PUT", "/things/3");
  EXPECT_EQ(m.kind, Kind::kRedirect);
  EXPECT_EQ(m.location, "/things/3/");
}

TEST(HttpApp, RegistrationChecks) {
  http::App app;
  app.get("/a", ok);
  EXPECT_THROW(app.get("/a", ok), concur::ValueError);
  app.post("/a", ok);  // another method of the same route
  EXPECT_THROW(app.route("/b", {}, ok), concur::ValueError);
  EXPECT_THROW(app.route("/b", {"get"}, ok), concur::ValueError);
  app.get("/twice/<int:n>", http::in_process(twice));
  EXPECT_THROW(app.get("/twice/<n>", http::in_process(twice)), concur::ValueError);  // not <int:>
  EXPECT_THROW(app.get("/twice/<int:n>/<int:m>", http::in_process(twice)), concur::ValueError);
  app.get("/shout/<s>/<float:x>", http::in_process(shout));
  app.get("/shout2/<path:s>/", [] { return "x"; });
  EXPECT_THROW(app.get("/shout3/<s>/<x>", http::in_process(shout)), concur::ValueError);
}

TEST(HttpApp, HandlerKindsByReturnType) {
  http::App app;
  app.get("/loop", []() -> concur::aio::Task<http::Response> { co_return ok(); });
  app.get("/thread", [](const http::Request&) { return nlohmann::json{1}; });
  app.get("/process/<int:n>", http::in_process(twice));
  EXPECT_EQ(app.match("GET", "/loop").handler->kind, http::detail::Handler::Kind::kLoop);
  EXPECT_EQ(app.match("GET", "/thread").handler->kind, http::detail::Handler::Kind::kThread);
  EXPECT_EQ(app.match("GET", "/process/2").handler->kind, http::detail::Handler::Kind::kProcess);
  http::Request req;
  EXPECT_EQ(app.match("GET", "/thread").handler->blocking(req).body, "[1]");
}

TEST(HttpApp, BuiltinRoutesCanBeReplacedOrDisabled) {
  http::App app;
  EXPECT_EQ(app.match("GET", "/metrics").kind, Kind::kFound);
  EXPECT_TRUE(app.match("GET", "/healthz").route->builtin);
  app.get("/healthz", [] { return "mine"; });
  EXPECT_FALSE(app.match("GET", "/healthz").route->builtin);
  http::Request req;
  EXPECT_EQ(app.match("GET", "/healthz").handler->blocking(req).body, "mine");
  http::App bare(http::AppOptions{.metrics_path = "", .health_path = ""});
  EXPECT_EQ(bare.match("GET", "/metrics").kind, Kind::kNotFound);
  EXPECT_EQ(bare.match("GET", "/healthz").kind, Kind::kNotFound);
}

TEST(HttpApp, PendingLimitsPerPool) {
  http::App app(http::AppOptions{.max_thread_pending = 2, .max_process_pending = 0});
  using HK = http::detail::Handler::Kind;
  EXPECT_TRUE(app.try_reserve(HK::kThread));
  EXPECT_TRUE(app.try_reserve(HK::kThread));
  EXPECT_FALSE(app.try_reserve(HK::kThread));
  EXPECT_EQ(app.metrics().thread_pending.load(), 2);
  EXPECT_EQ(app.metrics().rejected_count(http::Metrics::Reject::kThreadPoolFull), 1u);
  app.release(HK::kThread);
  EXPECT_TRUE(app.try_reserve(HK::kThread));
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(app.try_reserve(HK::kProcess));  // 0: no limit
  EXPECT_TRUE(app.try_reserve(HK::kLoop));
  auto f = app.run_in_process(twice, 21);
  EXPECT_EQ(f.result(), 42);
}

}  // namespace
