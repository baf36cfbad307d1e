// Notes "在flask服务中使用进程池加速": the view `/is_prime/<numbers>` splits its argument on ',',
// maps is_prime over the numbers on a process pool created once, in `__main__`
// (`process_pool = ProcessPoolExecutor()`), and answers json.dumps(dict(zip(number_list,
// results))). The pool lives as long as the server: every request reuses its warm workers.
// No web server here: get(path) routes a path to the view, and main() calls it a few times, as
// requests would (like examples/36_flask_fan_out.cpp), and checks every answer.
// What differs from Python:
// - Parsing: a piece must be an integer, optionally signed and surrounded by spaces, that fits
//   int64 — Python's int() also takes "1_000" and any size. Bad input throws concur::ValueError
//   with Python's message (what() is "ValueError: invalid literal for int() with base 10: 'x'");
//   get() answers it with "400 Bad Request: <what()>" (Flask would answer 500: the view does not
//   catch it).
// - The JSON is written by hand, byte for byte as json.dumps writes it: keys are str(int) in
//   first-seen order, a repeated number is one key (a dict), `", "` and `": "` separators.
// - is_prime is a registered task (CONCUR_TASK); the pool is a local of main() handed to the view
//   through a global pointer, so that it is shut down (workers joined) before main() returns.
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/concur.hpp"

namespace {

// is_prime(n): the notes' trial division by 3, 5, 7, ... up to floor(sqrt(n)) (`i <= n / i`
// is that bound without floating point); negative numbers are not prime, as in Python.
bool is_prime(std::int64_t n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  const auto u = static_cast<std::uint64_t>(n);
  for (std::uint64_t i = 3; i <= u / i; i += 2)
    if (u % i == 0) return false;
  return true;
}
CONCUR_TASK(is_prime);

// process_pool: the notes' global, set by main().
concur::ProcessPoolExecutor* process_pool = nullptr;

// parse_int(text) is Python's int(text) for what fits int64; else ValueError.
std::int64_t parse_int(std::string_view text) {
  const std::string_view original = text;
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  const bool plus = !text.empty() && text.front() == '+';
  if (plus) text.remove_prefix(1);  // from_chars takes '-' but not '+'
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    throw concur::ValueError("int() out of int64 range: '" + std::string(original) + "'");
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
      (plus && text.front() == '-'))  // "+-5"
    throw concur::ValueError("invalid literal for int() with base 10: '" + std::string(original) +
                             "'");
  return value;
}

// api_is_prime(numbers) is the view: `number_list = [int(x) for x in numbers.split(',')]`,
// `results = process_pool.map(is_prime, number_list)`, `json.dumps(dict(zip(...)))`.
// Throws ValueError for a piece that is not an integer.
std::string api_is_prime(const std::string& numbers) {
  std::vector<std::int64_t> number_list;
  std::size_t from = 0;
  while (true) {  // str.split(','): "" gives [""], "1,,2" gives ["1", "", "2"]
    const std::size_t comma = numbers.find(',', from);
    number_list.push_back(parse_int(std::string_view(numbers).substr(from, comma - from)));
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  std::vector<bool> results;
  for (bool r : process_pool->map(is_prime, number_list)) results.push_back(r);

  // dict(zip(number_list, results)): first-seen key order, a later duplicate overwrites.
  std::vector<std::pair<std::int64_t, bool>> dict;
  for (std::size_t i = 0; i < number_list.size(); ++i) {
    auto it = dict.begin();
    while (it != dict.end() && it->first != number_list[i]) ++it;
    if (it == dict.end()) {
      dict.emplace_back(number_list[i], results[i]);
    } else {
      it->second = results[i];
    }
  }
  std::string json = "{";
  for (const auto& [n, prime] : dict) {
    if (json.size() > 1) json += ", ";
    json += '"' + std::to_string(n) + "\": " + (prime ? "true" : "false");
  }
  return json + "}";
}

// get(path) is the routing Flask does: "/is_prime/<numbers>" → "200 OK: <body>".
std::string get(const std::string& path) {
  constexpr std::string_view kRoute = "/is_prime/";
  if (!path.starts_with(kRoute)) return "404 Not Found";
  try {
    return "200 OK: " + api_is_prime(path.substr(kRoute.size()));
  } catch (const concur::ValueError& e) {
    return std::string("400 Bad Request: ") + e.what();
  }
}

}  // namespace

int main() {
  concur::ProcessPoolExecutor pool;  // `process_pool = ProcessPoolExecutor()`, once
  process_pool = &pool;

  const std::vector<std::pair<std::string, std::string>> requests = {
      {"/is_prime/1,2,3,4,5",
       R"(200 OK: {"1": false, "2": true, "3": true, "4": false, "5": true})"},
      {"/is_prime/112272535095293,112272535095291",
       R"(200 OK: {"112272535095293": true, "112272535095291": false})"},
      {"/is_prime/97", R"(200 OK: {"97": true})"},
      {"/is_prime/7,8,7,+007, -3", R"(200 OK: {"7": true, "8": false, "-3": false})"},
      {"/is_prime/1000000007,1000000009,1000000011",
       R"(200 OK: {"1000000007": true, "1000000009": true, "1000000011": false})"},
      {"/is_prime/12,abc",
       "400 Bad Request: ValueError: invalid literal for int() with base 10: 'abc'"},
      {"/is_prime/1,,2", "400 Bad Request: ValueError: invalid literal for int() with base 10: ''"},
      {"/is_prime/+-5",
       "400 Bad Request: ValueError: invalid literal for int() with base 10: '+-5'"},
      {"/is_prime/99999999999999999999",
       "400 Bad Request: ValueError: int() out of int64 range: '99999999999999999999'"},
      {"/index", "404 Not Found"},
  };
  int failures = 0;
  for (const auto& [path, expected] : requests) {
    const std::string answer = get(path);
    std::printf("GET %s -> %s\n", path.c_str(), answer.c_str());
    if (answer != expected) {
      std::fprintf(stderr, "FAIL: expected %s\n", expected.c_str());
      ++failures;
    }
  }
  std::printf("%zu requests on %zu worker processes\n", requests.size(), pool.worker_pids().size());
  process_pool = nullptr;
  return failures == 0 ? 0 : 1;
}
