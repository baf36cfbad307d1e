// Notes "multiprocessing.Pool": pool.map(f, range(10)) prints [0, 1, 4, ..., 81] (it blocks, in
// input order); pool.imap(f, range(10)) gives an iterator — next(timeout=...) raises
// multiprocessing.TimeoutError while the next result is not ready; pool.imap(get_html, [1, 5, 3])
// prints in argument order even when later ones finish first, pool.imap_unordered in completion
// order. Sleeps of 1/5/3 s are 20/400/200 ms here.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

int f(int x) { return x * x; }
CONCUR_TASK(f);

int get_html(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
CONCUR_TASK(get_html);

void print_list(const char* label, const std::vector<int>& v) {
  std::printf("%s [", label);
  for (std::size_t i = 0; i < v.size(); ++i) std::printf("%s%d", i ? ", " : "", v[i]);
  std::printf("]\n");
}

}  // namespace

int main() {
  bool ok = true;
  mp::Pool pool(mp::PoolOptions{.processes = 4});
  std::vector<int> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back(i);

  // print(pool.map(f, range(10)))
  const std::vector<int> squares = pool.map(f, inputs);
  print_list("map:", squares);
  for (int i = 0; i < 10; ++i) ok = ok && squares[static_cast<std::size_t>(i)] == i * i;

  // it = pool.imap(f, range(10)); print(next(it)); print(it.next(timeout=1))
  auto it = pool.imap(f, inputs);
  const auto first = it.next();
  const auto second = it.next(1s);
  std::printf("imap: next() = %d, next(timeout=1) = %d\n", *first, *second);
  ok = ok && first == 0 && second == 1;

  // it = pool.imap(time.sleep-ish, [400]); it.next(timeout=50 ms) raises TimeoutError
  auto slow = pool.imap(get_html, std::vector<int>{400});
  try {
    (void)slow.next(50ms);
    ok = false;
  } catch (const concur::TimeoutError& e) {
    std::printf("imap: next(timeout=50 ms) on a 400 ms task: %s\n", e.what());
  }
  ok = ok && slow.next(10s) == 400;

  // for result in pool.imap(get_html, [1, 5, 3]): argument order
  std::vector<int> ordered;
  for (int ms : pool.imap(get_html, std::vector<int>{20, 400, 200})) ordered.push_back(ms);
  print_list("imap (argument order):", ordered);
  ok = ok && ordered == std::vector<int>{20, 400, 200};

  // for result in pool.imap_unordered(get_html, [1, 5, 3]): completion order
  std::vector<int> completed;
  for (int ms : pool.imap_unordered(get_html, std::vector<int>{20, 400, 200}))
    completed.push_back(ms);
  print_list("imap_unordered (completion order):", completed);
  ok = ok && completed == std::vector<int>{20, 200, 400};

  pool.close();
  pool.join();
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
