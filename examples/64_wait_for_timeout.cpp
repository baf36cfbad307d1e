// Bounding a coroutine in time: asyncio.wait_for cancels a slow request at its deadline and raises
// TimeoutError; `async with asyncio.timeout(...)` (3.11) bounds a whole block. Python:
//
//   try:
//       await asyncio.wait_for(slow_request(), timeout=0.1)
//   except TimeoutError:
//       print("gave up after 0.1 s")
//   async with asyncio.timeout(1):
//       await fast_request()
//
// Checked: the slow request was cancelled (its cleanup ran) and TimeoutError came after ~0.1 s;
// the fast one returned inside its scope.
#include <chrono>
#include <cstdio>

#include "concur/concur.hpp"

namespace aio = concur::aio;
using namespace std::chrono_literals;

namespace {

aio::Task<int> slow_request(bool& cleaned_up) {
  try {
    co_await aio::sleep(10s);
  } catch (const concur::CancelledError&) {
    cleaned_up = true;  // a `finally:` would close the connection here
    throw;
  }
  co_return 1;
}

aio::Task<int> fast_request() {
  co_await aio::sleep(10ms);
  co_return 2;
}

aio::Task<bool> main_task() {
  bool cleaned_up = false;
  bool timed_out = false;
  const auto start = aio::Clock::now();
  try {
    (void)co_await aio::wait_for(slow_request(cleaned_up), 100ms);
  } catch (const concur::TimeoutError&) {
    timed_out = true;
  }
  const std::chrono::duration<double> took = aio::Clock::now() - start;
  std::printf("wait_for: %s after %.3f s, cleanup %s\n", timed_out ? "TimeoutError" : "no timeout",
              took.count(), cleaned_up ? "ran" : "did not run");
  const int fast = co_await aio::timeout(1s, fast_request());
  std::printf("timeout(1 s) scope: fast_request() returned %d\n", fast);
  co_return timed_out&& cleaned_up&& took >= 90ms && fast == 2;
}

}  // namespace

int main() {
  const bool ok = aio::run(main_task());
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
