// Notes "线程池在web服务中实现加速", as the real web service: the flask view index() submits
// read_file() (0.1 s), read_db() (0.2 s) and read_api() (0.3 s) to the global pool and answers
// json.dumps({...}) once all three are back — 0.3 s a page instead of 0.6 s.
//
//   pool = ThreadPoolExecutor()
//   @app.route("/")
//   def index():
//       result_file = pool.submit(read_file)
//       ...
//       return json.dumps({"result_file": result_file.result(), ...})
//
// In C++ the App's own thread pool is the notes' global `pool` (app.run_in_thread), the view is a
// coroutine, so the loop serves other requests while the three reads sleep on pool threads;
// "/serial" is the view before the pool. The server listens on 127.0.0.1 at a free port; the
// "browser" is concur's HTTP client (crawl::HttpClient), fetching both pages three times at once.
// Checked: every body is byte for byte the notes' json.dumps; each "/" took at least 0.3 s and
// each "/serial" at least 0.6 s (lower bounds only: this machine is noisy).
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "concur/crawl/http.hpp"
#include "concur/http/server.hpp"

namespace aio = concur::aio;
namespace http = concur::http;
using namespace std::chrono_literals;

namespace {

std::string read_file() {
  std::this_thread::sleep_for(100ms);  // tm.sleep(0.1)
  return "file result";
}
std::string read_db() {
  std::this_thread::sleep_for(200ms);
  return "db result";
}
std::string read_api() {
  std::this_thread::sleep_for(300ms);
  return "api result";
}

// dumps(file, db, api): json.dumps of the notes' dict (", " and ": " separators).
std::string dumps(const std::string& file, const std::string& db, const std::string& api) {
  std::string out = R"({"result_file": ")";
  out.append(file).append(R"(", "result_db": ")").append(db);
  out.append(R"(", "result_api": ")").append(api).append("\"}");
  return out;
}

constexpr const char* kExpected =
    R"({"result_file": "file result", "result_db": "db result", "result_api": "api result"})";

// get(client, url): one page's body and how long it took.
aio::Task<std::pair<std::string, double>> get(concur::crawl::HttpClient& client, std::string url) {
  const auto t0 = std::chrono::steady_clock::now();
  concur::crawl::Response r = co_await client.fetch(concur::crawl::Request(url));
  co_return std::make_pair(
      r.text(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

int main() {
  http::App app;
  app.get("/", [&app]() -> aio::Task<http::Response> {
    concur::Future<std::string> result_file = app.run_in_thread(read_file);
    concur::Future<std::string> result_db = app.run_in_thread(read_db);
    concur::Future<std::string> result_api = app.run_in_thread(read_api);
    std::string file = co_await std::move(result_file);
    std::string db = co_await std::move(result_db);
    std::string api = co_await std::move(result_api);
    co_return http::Response::json_text(dumps(file, db, api));
  });
  app.get("/serial",
          [] { return http::Response::json_text(dumps(read_file(), read_db(), read_api())); });

  http::Service service(app, {});  // 127.0.0.1, a free port
  service.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(service.port());
  std::printf("serving on %s/\n", base.c_str());

  int failures = 0;
  aio::run([&]() -> aio::Task<void> {
    concur::crawl::HttpClient client;
    for (const char* path : {"/", "/serial"}) {
      std::vector<aio::Task<std::pair<std::string, double>>> pages;
      for (int i = 0; i < 3; ++i) pages.push_back(aio::create_task(get(client, base + path)));
      const double floor = std::string(path) == "/" ? 0.3 : 0.6;
      for (auto& page : pages) {
        auto [body, seconds] = co_await std::move(page);
        std::printf("GET %-7s %.2f s  %s\n", path, seconds, body.c_str());
        if (body != kExpected || seconds < floor - 0.005) ++failures;
      }
    }
  }());
  service.shutdown(1s);
  service.wait();
  if (failures != 0) std::fprintf(stderr, "FAIL: %d answers were wrong or too fast\n", failures);
  return failures == 0 ? 0 : 1;
}
