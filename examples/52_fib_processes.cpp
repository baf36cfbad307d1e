// Notes 11-9 "多进程执行fib运算": the fib of examples/34_fib_pool.cpp on processes —
// `with ProcessPoolExecutor(3) as executor:` submits the naive fib(num) for num in range(25, 40),
// prints each "exe result" through as_completed, then "last time is: ...". Python needs processes
// here because of the GIL; on Windows the notes' cell died with BrokenProcessPool because the pool
// was not created under `if __name__ == "__main__":`. concur's workers start through a fork server
// and enter their side before main(), so main() needs no such guard.
// What differs from Python: fib must be a registered task (CONCUR_TASK), and its argument and
// result cross the process boundary serialized. C++ computes range(25, 40) in ~0.2 s of CPU, so
// the notes' own range runs (worker start-up included); every value is checked against an
// iterative fib. Completion order is timing, not a guarantee, so it is only printed.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "concur/concur.hpp"

namespace {

// fib(n): exactly the notes' function.
std::int64_t fib(int n) {
  if (n <= 2) return 1;
  return fib(n - 1) + fib(n - 2);
}
CONCUR_TASK(fib);

// fib_reference(n): the same numbers, iteratively (the check).
std::int64_t fib_reference(int n) {
  std::int64_t a = 1, b = 1;  // fib(1), fib(2)
  for (int i = 3; i <= n; ++i) {
    const std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return b;
}

}  // namespace

int main() {
  const int first = 25;
  const int last = 40;  // range(25, 40)

  std::vector<std::int64_t> yielded;
  std::vector<concur::Future<std::int64_t>> all_task;
  std::size_t workers = 0;
  std::chrono::duration<double> took{};
  {
    concur::ProcessPoolExecutor executor(concur::ProcessPoolOptions{.max_workers = 3});
    for (int num = first; num < last; ++num) all_task.push_back(executor.submit(fib, num));
    const auto start_time = std::chrono::steady_clock::now();
    for (concur::Future<std::int64_t> future : concur::as_completed(all_task)) {
      const std::int64_t data = future.result();
      std::printf("exe result: %lld\n", static_cast<long long>(data));
      yielded.push_back(data);
    }
    took = std::chrono::steady_clock::now() - start_time;
    workers = executor.worker_pids().size();
  }
  std::printf("last time is: %.3f\n", took.count());

  int failures = 0;
  for (int num = first; num < last; ++num) {
    const std::int64_t got = all_task[static_cast<std::size_t>(num - first)].result();
    if (got != fib_reference(num)) {
      std::fprintf(stderr, "FAIL: fib(%d) = %lld, expected %lld\n", num,
                   static_cast<long long>(got), static_cast<long long>(fib_reference(num)));
      ++failures;
    }
  }
  if (yielded.size() != all_task.size()) {
    std::fprintf(stderr, "FAIL: as_completed yielded %zu of %zu futures\n", yielded.size(),
                 all_task.size());
    ++failures;
  }
  bool ascending = true;
  for (std::size_t i = 1; i < yielded.size(); ++i)
    ascending = ascending && yielded[i - 1] < yielded[i];
  std::printf("results came out %s; %zu worker processes\n",
              ascending ? "smallest first, as in the notes" : "slightly out of order (timing)",
              workers);
  if (workers == 0 || workers > 3) {
    std::fprintf(stderr, "FAIL: %zu worker processes for ProcessPoolExecutor(3)\n", workers);
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
