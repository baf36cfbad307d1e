// Notes "信号量" (`threading.BoundedSemaphore(5)`, "最多允许5个线程同时运行"): 20 threads each
// acquire() the semaphore, work, and release() it, so at most 5 run at once. A BoundedSemaphore
// also refuses a release() without a matching acquire() — ValueError — where a plain
// `threading.Semaphore` silently grows past its initial value.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kThreads = 20;
constexpr int kLimit = 5;

std::atomic<int> running{0};
std::atomic<int> max_running{0};

void run(int n, concur::BoundedSemaphore& semaphore) {
  semaphore.acquire();
  const int now = ++running;
  int seen = max_running.load();
  while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
  }
  std::printf("run the thread: %d\n", n);
  std::this_thread::sleep_for(10ms);  // time.sleep(1)
  --running;
  semaphore.release();
}

}  // namespace

int main() {
  concur::BoundedSemaphore semaphore(kLimit);
  {
    std::vector<concur::Thread> threads;
    threads.reserve(kThreads);
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back(run, i, std::ref(semaphore));
      threads.back().start();
    }
    for (auto& t : threads) t.join();
  }
  std::printf("at most %d threads ran at once\n", max_running.load());

  // One release() too many.
  bool bounded_refused = false;
  try {
    semaphore.release();
  } catch (const concur::ValueError& e) {
    std::printf("BoundedSemaphore: %s\n", e.what());
    bounded_refused = true;
  }
  concur::Semaphore plain(kLimit);
  plain.release();
  std::printf("Semaphore: an extra release() makes the value %u\n", plain.value());

  if (max_running.load() > kLimit) {
    std::fprintf(stderr, "FAIL: %d threads ran at once, the limit is %d\n", max_running.load(),
                 kLimit);
    return 1;
  }
  if (!bounded_refused || semaphore.value() != kLimit) {
    std::fprintf(stderr, "FAIL: the extra release() was not refused (value %u)\n",
                 semaphore.value());
    return 1;
  }
  return 0;
}
