// Tests for include/concur/http/message.hpp: Headers, Request's accessors (parameters, query
// arguments, JSON, keep-alive), Response's constructors, reason phrases; HTTPError (errors.hpp).
#include "concur/http/message.hpp"

#include <gtest/gtest.h>

namespace {

namespace http = concur::http;

TEST(HttpHeaders, CaseInsensitiveOrderedFields) {
  http::Headers h;
  h.add("Set-Cookie", "a=1");
  h.add("set-cookie", "b=2");
  h.add("Content-Type", "text/plain");
  EXPECT_EQ(h.get("SET-COOKIE"), "a=1");
  EXPECT_EQ(h.get("missing"), "");
  EXPECT_FALSE(h.find("missing").has_value());
  EXPECT_TRUE(h.contains("content-type"));
  h.set("Set-Cookie", "c=3");  // replaces both
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.fields()[0], (http::Headers::Field{"Set-Cookie", "c=3"}));
  EXPECT_EQ(h.fields()[1].first, "Content-Type");
  h.set("X-New", "1");
  EXPECT_EQ(h.fields().back().first, "X-New");
  EXPECT_EQ(h.erase("x-new"), 1u);
  EXPECT_EQ(h.erase("x-new"), 0u);
}

TEST(HttpRequest, ParametersConvertOrSay400) {
  http::Request r;
  r.route = "/u/<id>/<name>";
  r.params = {{"id", "42"}, {"name", "bob"}, {"x", "1.5"}, {"big", "99999999999"}};
  EXPECT_EQ(r.param("name"), "bob");
  EXPECT_EQ(r.param<int>("id"), 42);
  EXPECT_EQ(r.param<std::int64_t>("big"), 99999999999);
  EXPECT_DOUBLE_EQ(r.param<double>("x"), 1.5);
  EXPECT_EQ(r.param<std::string>("name"), "bob");
  try {
    (void)r.param<int>("big");
    FAIL() << "no HTTPError";
  } catch (const concur::http::HTTPError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(e.message().find("big"), std::string::npos);
  }
  EXPECT_THROW((void)r.param<int>("name"), concur::http::HTTPError);
  EXPECT_THROW((void)r.param("nope"), concur::ValueError);
}

TEST(HttpRequest, QueryArgumentsAreDecoded) {
  http::Request r;
  r.query = "q=a+b%20c&n=1&n=2&empty=&flag";
  const auto args = r.args();
  ASSERT_EQ(args.size(), 5u);
  EXPECT_EQ(args[0], (std::pair<std::string, std::string>{"q", "a b c"}));
  EXPECT_EQ(r.arg("n"), "1");
  EXPECT_EQ(r.arg("empty"), "");
  EXPECT_EQ(r.arg("flag"), "");
  EXPECT_FALSE(r.arg("none").has_value());
  r.query.clear();
  EXPECT_TRUE(r.args().empty());
}

TEST(HttpRequest, JsonBodyOr400) {
  http::Request r;
  r.body = R"({"k": [1, 2]})";
  EXPECT_EQ(r.json()["k"][1], 2);
  r.body = "{nope";
  try {
    (void)r.json();
    FAIL() << "no HTTPError";
  } catch (const concur::http::HTTPError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.message().rfind("Failed to decode JSON object: ", 0), 0u);
  }
}

TEST(HttpRequest, KeepAliveByVersionAndConnectionTokens) {
  http::Request r;
  EXPECT_TRUE(r.keep_alive());
  r.headers.set("Connection", "Upgrade, close");
  EXPECT_FALSE(r.keep_alive());
  r.version = 10;
  r.headers.set("Connection", "Keep-Alive");
  EXPECT_TRUE(r.keep_alive());
  r.headers.erase("Connection");
  EXPECT_FALSE(r.keep_alive());
}

TEST(HttpResponse, Constructors) {
  const auto j = http::Response::json({{"a", 1}}, 201);
  EXPECT_EQ(j.status, 201);
  EXPECT_EQ(j.body, R"({"a":1})");
  EXPECT_EQ(j.headers.get("Content-Type"), "application/json");
  EXPECT_EQ(http::Response::json_text(R"({"1": true})").body, R"({"1": true})");
  EXPECT_EQ(http::Response::text("t").headers.get("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(http::Response::html("<p>").headers.get("content-type"), "text/html; charset=utf-8");
  const auto r = http::Response::redirect("/x", 301);
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(r.headers.get("Location"), "/x");
  const auto e = http::Response::error(404, "gone");
  EXPECT_EQ(
      nlohmann::json::parse(e.body),
      (nlohmann::json{{"error", {{"status", 404}, {"reason", "Not Found"}, {"message", "gone"}}}}));
  EXPECT_EQ(http::to_response(std::string("s")).headers.get("content-type"),
            "text/html; charset=utf-8");
  EXPECT_EQ(http::to_response(nlohmann::json(3)).body, "3");
}

TEST(HttpResponse, ReasonPhrases) {
  EXPECT_EQ(http::reason_phrase(200), "OK");
  EXPECT_EQ(http::reason_phrase(503), "Service Unavailable");
  EXPECT_EQ(http::reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(http::reason_phrase(555), "");
  EXPECT_EQ(http::reason_phrase(-1), "");
}

TEST(HttpError, StatusRangeAndWhat) {
  const concur::http::HTTPError e(404, "no such user");
  EXPECT_STREQ(e.what(), "HTTPError: 404: no such user");
  EXPECT_EQ(e.status(), 404);
  EXPECT_THROW(concur::http::HTTPError(200, "ok"), concur::ValueError);
  EXPECT_THROW(concur::http::HTTPError(600, "x"), concur::ValueError);
}

}  // namespace
