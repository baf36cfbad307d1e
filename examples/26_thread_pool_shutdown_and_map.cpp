// Notes "ThreadPoolExecutor例子" and "tp.map实现for循环" (notes 001), and the p15 snippet (notes
// 002): a pool of 10 threads runs func(n) — print n, sleep 0–5 s at random — for n in range(20),
// first by 20 submit() calls and then by one map(); tp.shutdown() makes the main thread's
// "主线程" come after every task ("希望主线程这句话在所有子线程执行完后,在打印"). Then p15:
// `executor.submit(func, seed)` calls func once with the whole list, `executor2.map(func, seed)`
// once per element, and `ThreadPoolExecutor(max_workers=1).submit(pow, 2, 3).result()` is 8.
// A notes-second is 2 ms here.
//
// Two differences from Python, both on purpose:
// - map() of a function that returns nothing does not compile ("use submit() for functions
//   without a result"): the notes' func(n) returns n here.
// - map()'s results are a range that must be kept: a discarded map() range cancels the calls
//   that have not started (Python runs them all when its iterator is never started). The
//   compiler warns about a discarded map() ([[nodiscard]]); here the range is read.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kSecond = 2ms;

std::atomic<int> g_ran{0};

// def func(n): print(n); time.sleep(random.randint(0, 5))
int func(int n) {
  std::printf("%d\n", n);
  thread_local std::mt19937 rng(std::random_device{}());
  std::this_thread::sleep_for(std::uniform_int_distribution<int>(0, 5)(rng) * kSecond);
  g_ran.fetch_add(1);
  return n;
}

std::mutex g_calls_mu;
std::vector<std::string> g_calls;

// p15's def func(args): print(f'call func {args}') — for a list or for one element.
void call_func(const std::vector<std::string>& args) {
  std::string s = "[";
  for (std::size_t i = 0; i < args.size(); ++i) s += (i ? ", '" : "'") + args[i] + "'";
  s += "]";
  std::printf("call func %s\n", s.c_str());
  std::scoped_lock lock(g_calls_mu);
  g_calls.push_back(s);
}
std::string call_func_one(const std::string& arg) {
  std::printf("call func %s\n", arg.c_str());
  std::scoped_lock lock(g_calls_mu);
  g_calls.push_back(arg);
  return arg;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  bool ok = true;
  const auto check = [&](bool good, const char* what) {
    if (!good) {
      std::fprintf(stderr, "FAIL: %s\n", what);
      ok = false;
    }
  };

  // tp = ThreadPoolExecutor(10); for i in range(20): tp.submit(func, i); tp.shutdown()
  {
    concur::ThreadPoolExecutor tp(10);
    for (int i = 0; i < 20; ++i) (void)tp.submit(func, i);  // the futures are not needed
    tp.shutdown();  // wait=True: every task has run when it returns
    std::printf("主线程\n");
    check(g_ran.load() == 20, "shutdown() returned before the 20 submitted tasks ran");
  }

  // tp.map(func, range(20)); tp.shutdown()
  {
    g_ran.store(0);
    concur::ThreadPoolExecutor tp(10);
    std::vector<int> inputs(20);
    for (int i = 0; i < 20; ++i) inputs[static_cast<std::size_t>(i)] = i;
    std::vector<int> results;
    for (int r : tp.map(func, inputs)) results.push_back(r);  // in input order
    tp.shutdown();
    std::printf("主线程\n");
    check(g_ran.load() == 20, "map() did not run func 20 times");
    check(results == inputs, "map()'s results are not in input order");
  }

  // p15: submit(func, seed) — one call with the list; map(func, seed) — a call per element.
  const std::vector<std::string> seed = {"a", "b", "c", "d"};
  {
    concur::ThreadPoolExecutor executor(3);
    (void)executor.submit(call_func, seed);
  }  // `with ThreadPoolExecutor(3) as executor:` — leaving the block waits (shutdown)
  check(g_calls.size() == 1 && g_calls[0] == "['a', 'b', 'c', 'd']",
        "submit(func, seed) did not call func once with the whole list");
  {
    concur::ThreadPoolExecutor executor2(3);
    std::vector<std::string> got;
    for (std::string s : executor2.map(call_func_one, seed)) got.push_back(std::move(s));
    check(got == seed, "map(func, seed) did not call func once per element, in order");
  }
  check(g_calls.size() == 5, "map(func, seed) did not make 4 calls");

  // with ThreadPoolExecutor(max_workers=1) as executor: print(executor.submit(pow, 2, 3).result())
  {
    concur::ThreadPoolExecutor executor(1);
    const auto pow = [](double base, double exp) { return std::pow(base, exp); };
    const double eight = executor.submit(pow, 2.0, 3.0).result();
    std::printf("%g\n", eight);
    check(eight == 8.0, "pow(2, 3) is not 8");
  }
  return ok ? 0 : 1;
}
