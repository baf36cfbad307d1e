// gather keeps the argument order; as_completed hands tasks over as they finish — the coroutine
// twins of the notes' `executor.map` (input order) and `as_completed` (completion order).
// Python:
//
//   async def fetch(page, delay):
//       await asyncio.sleep(delay)
//       return page
//   results = await asyncio.gather(fetch(1, .3), fetch(2, .1), fetch(3, .2))     # [1, 2, 3]
//   for t in asyncio.as_completed([fetch(1, .3), fetch(2, .1), fetch(3, .2)]):
//       print(await t)                                                          # 2, 3, 1
//
// Checked: gather's order is [1, 2, 3], as_completed's is [2, 3, 1].
#include <chrono>
#include <cstdio>
#include <vector>

#include "concur/concur.hpp"

namespace aio = concur::aio;
using namespace std::chrono_literals;

namespace {

aio::Task<int> fetch(int page, std::chrono::milliseconds delay) {
  co_await aio::sleep(delay);
  co_return page;
}

aio::Task<bool> main_task() {
  std::vector<aio::Task<int>> first{fetch(1, 300ms), fetch(2, 100ms), fetch(3, 200ms)};
  const std::vector<int> gathered = co_await aio::gather(std::move(first));
  std::printf("gather:       ");
  for (int p : gathered) std::printf(" %d", p);
  std::printf("\n");

  std::vector<aio::Task<int>> second{fetch(1, 300ms), fetch(2, 100ms), fetch(3, 200ms)};
  auto finished = aio::as_completed(std::move(second));
  std::vector<int> completed;
  std::printf("as_completed: ");
  while (finished.remaining() > 0) {
    aio::Task<int> t = co_await finished.next();
    completed.push_back(t.result());
    std::printf(" %d", completed.back());
  }
  std::printf("\n");
  co_return gathered == std::vector<int>{1, 2, 3} && completed == std::vector<int>{2, 3, 1};
}

}  // namespace

int main() {
  const bool ok = aio::run(main_task());
  std::printf("%s\n", ok ? "ok: gather keeps the order, as_completed follows the clock" : "FAILED");
  return ok ? 0 : 1;
}
