// Notes "定时器" (`threading.Timer`): Timer(1, hello).start() calls hello() in its own thread
// after the interval (1 s / 3 s in the notes, 30 ms here). A second Timer is cancel()ed while it
// is still counting down, so its function never runs.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

std::atomic<bool> hello_ran{false};
std::atomic<bool> cancelled_ran{false};
std::string hello_thread;  // written by hello() before its Timer finishes; read after join()

void hello() {
  hello_thread = concur::current_thread().name();
  std::printf("hello, world (in func, %s)\n", hello_thread.c_str());
  hello_ran = true;
}

void never() {
  std::printf("this cancelled timer fired!\n");
  cancelled_ran = true;
}

}  // namespace

int main() {
  const auto start = std::chrono::steady_clock::now();
  concur::Timer t(30ms, hello);  // t = Timer(1, hello)
  t.start();
  std::printf("%s goes on while the timer counts down\n",
              concur::current_thread().name().c_str());  // print(currentThread())
  t.join();
  const auto waited = std::chrono::steady_clock::now() - start;
  std::printf("hello ran after %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()));

  concur::Timer cancelled(1s, never);
  cancelled.start();
  cancelled.cancel();  // still counting down: never() will not run
  cancelled.join();    // returns at once, not after 1 s

  if (!hello_ran || hello_thread == "MainThread") {
    std::fprintf(stderr, "FAIL: the timer did not call hello() in its own thread\n");
    return 1;
  }
  if (waited < 30ms) {
    std::fprintf(stderr, "FAIL: the timer fired before its interval\n");
    return 1;
  }
  if (cancelled_ran) {
    std::fprintf(stderr, "FAIL: a cancelled timer fired\n");
    return 1;
  }
  return 0;
}
