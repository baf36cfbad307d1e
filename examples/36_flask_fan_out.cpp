// Notes "线程池在web服务中实现加速": a flask view `index()` needs read_file() (0.1 s), read_db()
// (0.2 s) and read_api() (0.3 s). Called one after another they cost the sum, 0.6 s; submitted
// to a global `pool = ThreadPoolExecutor()` they run at once, and the view waits only as long as
// the slowest, 0.3 s, before it returns `json.dumps({...})`.
// No web server here: index() is called directly, a few times, as requests would. The notes'
// sleeps are short already and kept as they are.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kFile = 100ms;  // tm.sleep(0.1)
constexpr auto kDb = 200ms;    // tm.sleep(0.2)
constexpr auto kApi = 300ms;   // tm.sleep(0.3)

std::string read_file() {
  std::this_thread::sleep_for(kFile);
  return "file result";
}
std::string read_db() {
  std::this_thread::sleep_for(kDb);
  return "db result";
}
std::string read_api() {
  std::this_thread::sleep_for(kApi);
  return "api result";
}

std::string to_json(const std::string& file, const std::string& db, const std::string& api) {
  return R"({"result_file": ")" + file + R"(", "result_db": ")" + db + R"(", "result_api": ")" +
         api + R"("})";
}

// index_serial(): the view before the notes add the pool.
std::string index_serial() { return to_json(read_file(), read_db(), read_api()); }

// index(pool): the notes' view — submit all three, then wait for each result.
std::string index(concur::ThreadPoolExecutor& pool) {
  concur::Future<std::string> result_file = pool.submit(read_file);
  concur::Future<std::string> result_db = pool.submit(read_db);
  concur::Future<std::string> result_api = pool.submit(read_api);
  return to_json(result_file.result(), result_db.result(), result_api.result());
}

template <class F>
double seconds_of(F&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  const double slowest = std::chrono::duration<double>(kApi).count();
  const double sum = std::chrono::duration<double>(kFile + kDb + kApi).count();
  const std::string expected = to_json("file result", "db result", "api result");
  int failures = 0;

  std::string body;
  const double serial = seconds_of([&] { body = index_serial(); });
  std::printf("GET / (serial): %s in %.3f s\n", body.c_str(), serial);
  if (body != expected) ++failures;

  concur::ThreadPoolExecutor pool;  // the notes' global `pool = ThreadPoolExecutor()`
  constexpr int kRequests = 3;
  for (int i = 0; i < kRequests; ++i) {
    const double took = seconds_of([&] { body = index(pool); });
    std::printf("GET / (pool):   %s in %.3f s\n", body.c_str(), took);
    if (body != expected) {
      std::fprintf(stderr, "FAIL: the pooled view answered %s\n", body.c_str());
      ++failures;
    }
    // At least the slowest read; well below the sum (0.6 s) — 0.2 s of slack for a busy machine.
    if (took < slowest || took > sum - 0.1) {
      std::fprintf(stderr, "FAIL: the pooled view took %.3f s, expected about %.1f s (< %.1f s)\n",
                   took, slowest, sum - 0.1);
      ++failures;
    }
  }
  if (serial < sum) {
    std::fprintf(stderr, "FAIL: the serial view took %.3f s, less than the sum %.1f s\n", serial,
                 sum);
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
