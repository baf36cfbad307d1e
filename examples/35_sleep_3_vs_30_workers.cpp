// Notes 11-9 "对于io操作来说，多线程优于多进程": `random_sleep(n)` sleeps n seconds and returns n;
// `with ThreadPoolExecutor(3) as executor:` submits it for `[2]*30` and collects through
// as_completed. Three workers sleep ten rounds (about 20 s); thirty workers sleep all at once
// (about 2 s). A sleeping thread holds no CPU (and, in Python, no GIL), so the worker count,
// not the core count, sets the time: this is about waiting, not about CPU speed.
// The notes' 2 s sleeps are 150 ms here, so the runs take about 1.5 s and 0.15 s. The check is
// loose on purpose (30 workers at least 3× faster, where ~10× is expected), so that a busy
// 2-core machine cannot make it fail; the lower bounds follow from the sleeps themselves.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kTwoSeconds = 150ms;  // the notes' time.sleep(2)
constexpr int kTasks = 30;           // [2]*30
constexpr double kMinRatio = 3.0;    // expected ~10

int random_sleep(int n) {
  std::this_thread::sleep_for(n * kTwoSeconds / 2);
  return n;
}

// run(workers) is the notes' block for one pool size; returns the seconds it took, or a
// negative number when a result was wrong.
double run(std::size_t workers) {
  const auto start_time = std::chrono::steady_clock::now();
  int sum = 0;
  std::size_t started = 0;
  {
    concur::ThreadPoolExecutor executor(workers);
    std::vector<concur::Future<int>> all_task;
    for (int i = 0; i < kTasks; ++i) all_task.push_back(executor.submit(random_sleep, 2));
    for (concur::Future<int> future : concur::as_completed(all_task, 30s)) sum += future.result();
    started = executor.stats().workers;
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start_time;
  std::printf(
      "ThreadPoolExecutor(%zu): %d × random_sleep(2) on %zu threads, results sum to %d, "
      "last time is: %.3f\n",
      workers, kTasks, started, sum, took.count());
  return sum == 2 * kTasks ? took.count() : -1.0;
}

}  // namespace

int main() {
  const double three = run(3);
  const double thirty = run(30);
  const double sleep_s = std::chrono::duration<double>(kTwoSeconds).count();
  std::printf("30 workers were %.1f× faster than 3\n", thirty > 0 ? three / thirty : 0.0);

  int failures = 0;
  if (three < 0 || thirty < 0) {
    std::fprintf(stderr, "FAIL: a random_sleep(2) returned something else\n");
    ++failures;
  }
  // Lower bounds: 3 workers need ten rounds, 30 workers one.
  if (three < 10 * sleep_s || thirty < sleep_s) {
    std::fprintf(stderr, "FAIL: faster than the sleeps allow (%.3f s, %.3f s)\n", three, thirty);
    ++failures;
  }
  if (thirty > 0 && three / thirty < kMinRatio) {
    std::fprintf(stderr, "FAIL: 30 workers were only %.1f× faster than 3 (expected ~10×)\n",
                 three / thirty);
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
