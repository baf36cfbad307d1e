// TaskGroup (Python 3.11): structured concurrency. Three downloads run in a group; one fails, so
// the group cancels the other two and the error reaches the caller in an ExceptionGroup —
// nothing keeps running behind the caller's back. Python:
//
//   async with asyncio.TaskGroup() as tg:
//       tg.create_task(download("a", 0.1))
//       tg.create_task(download("b", 5))
//       tg.create_task(broken("c"))          # raises ValueError after 0.05 s
//   # -> ExceptionGroup('unhandled errors in a TaskGroup', [ValueError(...)])
//
// Checked: one ValueError in the group, "a" finished, "b" was cancelled, within ~0.1 s.
#include <chrono>
#include <cstdio>
#include <string>

#include "concur/concur.hpp"

namespace aio = concur::aio;
using namespace std::chrono_literals;

namespace {

aio::Task<std::string> download(std::string name, std::chrono::milliseconds delay) {
  co_await aio::sleep(delay);
  std::printf("downloaded %s\n", name.c_str());
  co_return name;
}

aio::Task<std::string> broken(std::string name) {
  co_await aio::sleep(50ms);
  throw concur::ValueError("the server sent garbage for " + name);
}

aio::Task<bool> main_task() {
  aio::Task<std::string> a;
  aio::Task<std::string> b;
  bool grouped = false;
  const auto start = aio::Clock::now();
  try {
    co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {
      a = tg.create_task(download("a", 10ms));
      b = tg.create_task(download("b", 5s));
      (void)tg.create_task(broken("c"));
      co_return;
    });
  } catch (const concur::ExceptionGroup& g) {
    std::printf("%s\n", g.what());
    grouped = g.exceptions().size() == 1;
  }
  const auto took = aio::Clock::now() - start;
  std::printf("a: %s, b: %s\n", a.done() && !a.cancelled() ? "finished" : "?",
              b.cancelled() ? "cancelled" : "?");
  co_return grouped&& a.result() == "a" && b.cancelled() && took < 2s;
}

}  // namespace

int main() {
  const bool ok = aio::run(main_task());
  std::printf("%s\n", ok ? "ok: the failure cancelled the rest and reached the caller" : "FAILED");
  return ok ? 0 : 1;
}
