// An outside program on an installed concur (tests/consumer/check_install.sh builds it with CMake
// and with pkg-config): the thread pool, the process pool with a registered task, and a coroutine
// gather — the three models of the notes. Exits 0 when every answer is right.
#include <concur/concur.hpp>
#include <concur/version.hpp>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace aio = concur::aio;

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t i = 2; i <= n / i; ++i)
    if (n % i == 0) return false;
  return true;
}
CONCUR_TASK(is_prime);

aio::Task<int> twice(int x) {
  co_await aio::sleep(std::chrono::milliseconds(10));
  co_return 2 * x;
}

aio::Task<int> sum_of_twice() {
  auto [a, b, c] = co_await aio::gather(twice(1), twice(2), twice(3));
  co_return a + b + c;
}

int main() {
  const std::vector<std::uint64_t> numbers = {2, 9, 97, 1'000'003, 112272535095293};
  const std::vector<bool> expected = {true, false, true, true, true};
  std::vector<bool> threads;
  {
    concur::ThreadPoolExecutor pool(2);
    for (bool r : pool.map(is_prime, numbers)) threads.push_back(r);
  }
  std::vector<bool> processes;
  {
    concur::ProcessPoolExecutor pool({.max_workers = 2});
    for (bool r : pool.map(is_prime, numbers)) processes.push_back(r);
  }
  const int gathered = aio::run(sum_of_twice());
  const bool ok =
      threads == expected && processes == expected && gathered == 12 && CONCUR_VERSION >= 100;
  std::printf("concur %s: threads %s, processes %s, coroutines %s\n", concur::version_string,
              threads == expected ? "ok" : "WRONG", processes == expected ? "ok" : "WRONG",
              gathered == 12 ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
