// Notes "协程" (coroutines): one thread, one event loop, many tasks — while one task waits (the
// notes' `await asyncio.sleep(...)`, standing for network I/O) the loop runs the others. Python:
//
//   async def work(i):
//       await asyncio.sleep(0.5)
//   loop = asyncio.get_event_loop()
//   tasks = [loop.create_task(work(i)) for i in range(30)]
//   loop.run_until_complete(asyncio.wait(tasks))
//
// 30 sleeping tasks finish in about the time of one, on one thread. Checked: every task ran, all
// on the loop's thread, and the whole took less than twice one sleep (it would be 30 × 0.5 s
// run one after the other); the time is printed.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

namespace aio = concur::aio;
using namespace std::chrono_literals;

namespace {

constexpr auto kSleep = 500ms;
constexpr int kTasks = 30;

aio::Task<std::thread::id> work(int i) {
  co_await aio::sleep(kSleep);  // await asyncio.sleep(0.5)
  (void)i;
  co_return std::this_thread::get_id();
}

aio::Task<bool> main_task() {
  std::vector<aio::Task<std::thread::id>> tasks;
  for (int i = 0; i < kTasks; ++i) tasks.push_back(aio::create_task(work(i)));
  const auto start = aio::Clock::now();
  auto [done, pending] = co_await aio::wait(tasks);  // asyncio.wait(tasks)
  const std::chrono::duration<double> took = aio::Clock::now() - start;
  std::printf("%d tasks of %.1f s each took %.3f s on one thread\n", kTasks,
              std::chrono::duration<double>(kSleep).count(), took.count());
  bool ok = done.size() == static_cast<std::size_t>(kTasks) && pending.empty();
  for (auto& t : done) ok = ok && t.result() == std::this_thread::get_id();
  ok = ok && took < 2 * kSleep;
  co_return ok;
}

}  // namespace

int main() {
  const bool ok = aio::run(main_task());
  std::printf("%s\n", ok ? "ok: the sleeps overlapped on one thread" : "FAILED");
  return ok ? 0 : 1;
}
