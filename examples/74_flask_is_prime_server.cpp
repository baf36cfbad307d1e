// Notes "在flask服务中使用进程池加速", as the real web service:
//
//   @app.route("/is_prime/<numbers>")
//   def api_is_prime(numbers):
//       number_list = [int(x) for x in numbers.split(',')]
//       results = process_pool.map(is_prime, number_list)
//       return json.dumps(dict(zip(number_list, results)))
//   if __name__ == "__main__":
//       process_pool = ProcessPoolExecutor()
//       app.run()
//
// In C++ the App's process pool is the notes' process_pool (started once, reused by every
// request); the view submits one task per number, as map() does, and awaits them in order without
// blocking the loop. int() of a piece that is not a number raises ValueError: the view answers it
// with HTTPError 400 and Python's message (Flask would answer 500). Example 53 is the same view
// without a server. The "browser" is concur's HTTP client (crawl::HttpClient).
// Checked: each answer byte for byte as Python's, and 400 for bad input.
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/crawl/http.hpp"
#include "concur/http/server.hpp"

namespace aio = concur::aio;
namespace http = concur::http;
using namespace std::chrono_literals;

namespace {

bool is_prime(std::int64_t n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  const auto u = static_cast<std::uint64_t>(n);
  for (std::uint64_t i = 3; i <= u / i; i += 2) {
    if (u % i == 0) return false;
  }
  return true;
}
CONCUR_TASK(is_prime);

// to_int(piece): int(piece) for a plain decimal (spaces around allowed), else ValueError.
std::int64_t to_int(std::string_view piece) {
  std::string_view t = piece;
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  if (!t.empty() && t.front() == '+') t.remove_prefix(1);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc{} || end != t.data() + t.size()) {
    throw concur::ValueError("invalid literal for int() with base 10: '" + std::string(piece) +
                             "'");
  }
  return v;
}

// dumps(numbers, results): json.dumps(dict(zip(numbers, results))).
std::string dumps(const std::vector<std::int64_t>& numbers, const std::vector<bool>& results) {
  std::vector<std::pair<std::int64_t, bool>> dict;  // first-seen order, a repeat overwrites
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    bool found = false;
    for (auto& kv : dict) {
      if (kv.first == numbers[i]) {
        kv.second = results[i];
        found = true;
      }
    }
    if (!found) dict.emplace_back(numbers[i], results[i]);
  }
  std::string out = "{";
  for (const auto& [n, prime] : dict) {
    if (out.size() > 1) out.append(", ");
    out.append("\"").append(std::to_string(n)).append("\": ").append(prime ? "true" : "false");
  }
  return out.append("}");
}

aio::Task<http::Response> api_is_prime(http::App& app, const http::Request& req) {
  std::vector<std::int64_t> number_list;
  std::string error;
  try {
    const std::string& numbers = req.param("numbers");
    for (std::size_t from = 0;;) {  // numbers.split(',')
      const std::size_t comma = numbers.find(',', from);
      number_list.push_back(to_int(std::string_view(numbers).substr(from, comma - from)));
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
  } catch (const concur::ValueError& e) {
    error = e.what();
  }
  if (!error.empty()) throw http::HTTPError(400, error);
  std::vector<concur::Future<bool>> futures;  // process_pool.map(is_prime, number_list)
  for (const std::int64_t n : number_list) futures.push_back(app.run_in_process(is_prime, n));
  std::vector<bool> results;
  for (auto& f : futures) results.push_back(co_await std::move(f));
  co_return http::Response::json_text(dumps(number_list, results));
}

}  // namespace

int main() {
  http::App app;
  app.get("/is_prime/<numbers>",
          [&app](const http::Request& req) { return api_is_prime(app, req); });
  http::Service service(app, {});  // 127.0.0.1, a free port
  service.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(service.port());

  const std::vector<std::pair<std::string, std::string>> requests = {
      {"/is_prime/1,2,3,4,5", R"({"1": false, "2": true, "3": true, "4": false, "5": true})"},
      {"/is_prime/112272535095293,112272535095291",
       R"({"112272535095293": true, "112272535095291": false})"},
      {"/is_prime/7,8,7", R"({"7": true, "8": false})"},
      {"/is_prime/12,abc",
       R"({"error":{"status":400,"reason":"Bad Request","message":"ValueError: invalid literal for int() with base 10: 'abc'"}})"},
  };
  int failures = 0;
  aio::run([&]() -> aio::Task<void> {
    concur::crawl::HttpClient client;
    for (const auto& [path, expected] : requests) {
      concur::crawl::Response r = co_await client.fetch(concur::crawl::Request(base + path));
      std::printf("GET %s -> %d %s\n", path.c_str(), r.status, r.text().c_str());
      if (r.text() != expected) {
        std::fprintf(stderr, "FAIL: expected %s\n", expected.c_str());
        ++failures;
      }
    }
  }());
  service.shutdown(1s);
  service.wait();
  return failures == 0 ? 0 : 1;
}
