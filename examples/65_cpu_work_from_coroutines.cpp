// CPU-bound work does not belong on the event loop: it would stop every other task. The loop
// hands it to a process pool and awaits the result (the notes' is_prime, from a coroutine):
//
//   async def main():
//       loop = asyncio.get_running_loop()
//       with ProcessPoolExecutor() as pool:
//           results = await asyncio.gather(*[loop.run_in_executor(pool, is_prime, n)
//                                            for n in PRIMES])
//
// While the workers compute, a heartbeat task keeps ticking on the loop. Checked: every result is
// prime and the heartbeat ticked during the computation (the loop was never blocked).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "concur/concur.hpp"

namespace aio = concur::aio;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kNumber = 112272535095293;  // prime (the notes' PRIMES)
constexpr int kCopies = 20;

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t i = 3; i <= n / i; i += 2)
    if (n % i == 0) return false;
  return true;
}
CONCUR_TASK(is_prime);

aio::Task<bool> main_task(concur::ProcessPoolExecutor& pool) {
  aio::Loop& loop = aio::get_running_loop();
  int beats = 0;
  aio::Task<void> heartbeat = aio::create_task([](int& n) -> aio::Task<void> {
    for (;;) {
      co_await aio::sleep(5ms);
      ++n;
    }
  }(beats));
  std::vector<concur::Future<bool>> futures;
  for (int i = 0; i < kCopies; ++i)
    futures.push_back(loop.run_in_executor(pool, is_prime, kNumber));
  int primes = 0;
  for (auto& f : futures) primes += (co_await f) ? 1 : 0;  // awaits without blocking the loop
  heartbeat.cancel();
  std::printf("%d of %d numbers are prime; the heartbeat ticked %d times meanwhile\n", primes,
              kCopies, beats);
  co_return primes == kCopies&& beats > 0;
}

}  // namespace

int main() {
  concur::ProcessPoolExecutor pool;
  const bool ok = aio::run(main_task(pool));
  std::printf("%s\n", ok ? "ok: the loop stayed responsive" : "FAILED");
  return ok ? 0 : 1;
}
