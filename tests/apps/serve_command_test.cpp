// Tests for apps/concur/serve/serve_command.hpp: the notes' two flask programs as concur serve
// runs them — `/` (thread-pool fan-out) and `/serial`, `/is_prime/<numbers>` byte for byte as
// Python answers, bad input as 400, `/hello`'s fixed body — in process on a free loopback port;
// and the real binary: its first-run line, a request, SIGTERM's drain and exit status.
#include "serve/serve_command.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "concur/http/server.hpp"
#include "concur/subprocess.hpp"
#include "support/http_client.hpp"
#include "support/test_support.hpp"

namespace {

using namespace std::chrono_literals;
using concur::test::http_get;
using concur::testing::kGenerous;
namespace http = concur::http;
namespace serve = concur::apps::serve;
namespace sp = concur::subprocess;

constexpr const char* kNotesJson =
    R"({"result_file": "file result", "result_db": "db result", "result_api": "api result"})";

TEST(ServeCommandTest, ParseNumbersIsPythonsInt) {
  EXPECT_EQ(serve::parse_numbers("1,2, 3 ,+4,-5,1_000"),
            (std::vector<std::int64_t>{1, 2, 3, 4, -5, 1000}));
  for (const char* bad : {"12,abc", "1,,2", "", "+-5", "1__0", "_1", "1_", "0x10", "1.5"}) {
    EXPECT_THROW((void)serve::parse_numbers(bad), concur::ValueError) << bad;
  }
  try {
    (void)serve::parse_numbers("7,abc");
  } catch (const concur::ValueError& e) {
    EXPECT_STREQ(e.what(), "ValueError: invalid literal for int() with base 10: 'abc'");
  }
  EXPECT_THROW((void)serve::parse_numbers("99999999999999999999"), concur::ValueError);
}

TEST(ServeCommandTest, IsPrimeJsonIsPythonsDictDumps) {
  EXPECT_EQ(serve::is_prime_json({7, 8, 7, -3}, {true, false, true, false}),
            R"({"7": true, "8": false, "-3": false})");
  EXPECT_EQ(serve::is_prime_json({}, {}), "{}");
}

class NotesApp : public ::testing::Test {
 protected:
  void SetUp() override {
    serve::add_notes_routes(app_, {.file = 10ms, .db = 20ms, .api = 40ms, .max_numbers = 5});
    service_.start();
  }
  http::App app_{http::AppOptions{.process_workers = 2}};
  http::Service service_{app_, {}};
};

TEST_F(NotesApp, FanOutCostsTheSlowestCallNotTheSum) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto pooled = http_get(service_.port(), "/");
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(pooled.status, 200);
  EXPECT_EQ(pooled.body, kNotesJson);
  EXPECT_GE(t1 - t0, 40ms);  // the slowest call; the sum (70 ms) only with generous slack
  const auto serial = http_get(service_.port(), "/serial");
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(serial.body, kNotesJson);
  EXPECT_GE(t2 - t1, 70ms);
}

TEST_F(NotesApp, IsPrimeAnswersAsTheFlaskApp) {
  const auto r = http_get(service_.port(), "/is_prime/112272535095293,112272535095291,7,8,7");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.body,
            R"({"112272535095293": true, "112272535095291": false, "7": true, "8": false})");
  EXPECT_EQ(http_get(service_.port(), "/is_prime/97").body, R"({"97": true})");
  const auto bad = http_get(service_.port(), "/is_prime/12,abc");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad.body)["error"]["message"],
            "ValueError: invalid literal for int() with base 10: 'abc'");
  EXPECT_EQ(http_get(service_.port(), "/is_prime/1,2,3,4,5,6").status, 400);  // max_numbers
  EXPECT_EQ(http_get(service_.port(), "/is_prime/" + std::string(20000, ',')).status, 414);
  EXPECT_EQ(http_get(service_.port(), "/is_prime/").status, 404);
}

TEST_F(NotesApp, HelloAnswersAFixedJsonBody) {
  for (int i = 0; i < 3; ++i) {
    const auto r = http_get(service_.port(), "/hello");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-type"), "application/json");
    EXPECT_EQ(r.body, R"({"hello": "world"})");
    EXPECT_EQ(r.body, serve::kHelloJson);
  }
  EXPECT_EQ(http_get(service_.port(), "/hello/").status, 404);
}

// read_line(fd): one line from the child's stdout, within kGenerous.
std::string read_line(int fd) {
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char c = 0;
    if (::read(fd, &c, 1) != 1) break;
    if (c == '\n') return line;
    line.push_back(c);
  }
  return line;
}

TEST(ServeCommandTest, TheBinaryServesAndDrainsOnSigterm) {
  sp::PopenOptions options;
  options.stdout_ = sp::Redirect::Pipe;
  options.stderr_ = sp::Redirect::Pipe;
  sp::Popen child({CONCUR_CLI_PATH, "serve", "--port", "0", "--processes", "1", "--file-ms", "1",
                   "--db-ms", "1", "--api-ms", "1"},
                  options);
  const std::string first = read_line(child.stdout_fd());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(first, m, std::regex(R"(http://127\.0\.0\.1:(\d+)/)"))) << first;
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  EXPECT_NE(read_line(child.stdout_fd()).find("try: curl http://127.0.0.1:"), std::string::npos);
  EXPECT_EQ(http_get(port, "/").body, kNotesJson);
  EXPECT_EQ(http_get(port, "/is_prime/7,9").body, R"({"7": true, "9": false})");
  EXPECT_EQ(http_get(port, "/hello").body, R"({"hello": "world"})");
  child.send_signal(SIGTERM);
  const sp::CommunicateResult out = child.communicate({}, kGenerous);
  EXPECT_EQ(child.returncode(), 0) << out.stderr_;
  EXPECT_NE(out.stdout_.find("drained"), std::string::npos) << out.stdout_;
}

// The pools' pending limits follow their sizes by default: with 2 pool threads, 4 pending tasks.
// Three fan-out requests at once (3 tasks each): the first is served, the others get 503 at once.
TEST(ServeCommandTest, TheDefaultPendingLimitFollowsThePoolSize) {
  sp::PopenOptions options;
  options.stdout_ = sp::Redirect::Pipe;
  options.stderr_ = sp::Redirect::Pipe;
  sp::Popen child({CONCUR_CLI_PATH, "serve", "--port", "0", "--pool-threads", "2", "--file-ms",
                   "300", "--db-ms", "300", "--api-ms", "300"},
                  options);
  const std::string first = read_line(child.stdout_fd());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(first, m, std::regex(R"(http://127\.0\.0\.1:(\d+)/)"))) << first;
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  std::vector<std::unique_ptr<concur::test::RawConnection>> conns;
  for (int i = 0; i < 3; ++i) {
    conns.push_back(std::make_unique<concur::test::RawConnection>(port));
    conns.back()->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  int ok = 0, busy = 0;
  for (auto& c : conns) {
    const int status = c->read_response().status;
    ok += status == 200 ? 1 : 0;
    busy += status == 503 ? 1 : 0;
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1);
  EXPECT_EQ(ok + busy, 3);
  child.send_signal(SIGTERM);
  const sp::CommunicateResult out = child.communicate({}, kGenerous);
  EXPECT_EQ(child.returncode(), 0) << out.stderr_;
}

TEST(ServeCommandTest, ATakenPortExitsWithStatus1) {
  http::App app;
  http::Service taken(app, {});
  taken.start();
  sp::PopenOptions options;
  options.stdout_ = sp::Redirect::Pipe;
  options.stderr_ = sp::Redirect::Pipe;
  sp::Popen child({CONCUR_CLI_PATH, "serve", "--port", std::to_string(taken.port())}, options);
  const sp::CommunicateResult out = child.communicate({}, kGenerous);
  EXPECT_EQ(child.returncode(), 1);
  EXPECT_NE(out.stderr_.find("Address already in use"), std::string::npos) << out.stderr_;
  sp::Popen usage({CONCUR_CLI_PATH, "serve", "--access-log", "loud"}, options);
  usage.communicate({}, kGenerous);
  EXPECT_EQ(usage.returncode(), 2);
}

}  // namespace
