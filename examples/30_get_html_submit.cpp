// Notes 11-7 "ThreadPoolExecutor线程池": `executor = ThreadPoolExecutor(max_workers=2)`,
// `task1 = executor.submit(get_html, 3)`, `task2 = executor.submit(get_html, 2)`; submit()
// returns a Future at once ("submit 是立即返回，非阻塞的"); done() is False while the page
// loads; cancel() fails (False) once a task runs ("只有在没有开始执行的时候，才可以取消");
// result() blocks for the value; later done() is True.
// The notes' get_html sleeps `times` seconds; here a notes-second is 50 ms (time.sleep(3) is
// 150 ms). A third task, queued behind the two busy workers, shows the cancel() that succeeds.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kSecond = 50ms;  // one second of the notes

// get_html(times): the notes' fake download — sleep, say so, return the argument.
int get_html(int times) {
  std::this_thread::sleep_for(times * kSecond);
  std::printf("get page %d success\n", times);
  return times;
}

// repr(f) mimics Python's `<Future at 0x... state=running>` (without the address).
std::string repr(const concur::AnyFuture& f) {
  const char* state = f.cancelled() ? "cancelled"
                      : f.done()    ? "finished"
                      : f.running() ? "running"
                                    : "pending";
  return std::string("<Future state=") + state + ">";
}

// wait_running(f): poll until f's task has started (bounded). In the notes both workers have
// picked up their task by the time cancel() is called; here we make sure of it.
bool wait_running(const concur::AnyFuture& f) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!f.running() && !f.done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "FAIL: %s\n", what);
      ++failures;
    }
  };

  concur::ThreadPoolExecutor executor(2);  // ThreadPoolExecutor(max_workers=2)
  concur::Future<int> task1 = executor.submit(get_html, 3);
  concur::Future<int> task2 = executor.submit(get_html, 2);
  // Not in the notes: both workers are busy, so this one waits in the queue, and cancel()
  // succeeds (it can start only once get_html(2) or get_html(3) returned, 100 ms from now).
  concur::Future<int> task3 = executor.submit(get_html, 1);
  const bool cancelled_queued = task3.cancel();  // not started yet: cancelled
  std::printf("task3 (queued) cancel(): %s, %s\n", cancelled_queued ? "True" : "False",
              repr(task3).c_str());
  check(cancelled_queued && task3.cancelled() && task3.done(), "a queued task was not cancelled");
  try {
    (void)task3.result();
    check(false, "result() of a cancelled future returned a value");
  } catch (const concur::CancelledError& e) {
    std::printf("task3.result(): %s\n", e.what());
  }

  std::printf("%s\n", repr(task1).c_str());
  const bool done_at_first = task1.done();
  std::printf("task1的状态： %s\n", done_at_first ? "True" : "False");
  check(!done_at_first, "task1 was done right after submit()");

  check(wait_running(task2), "task2 never started");
  const bool cancelled_running = task2.cancel();  // running: cannot be cancelled
  std::printf("%s\n", cancelled_running ? "True" : "False");
  check(!cancelled_running && !task2.cancelled(), "cancel() succeeded on a running task");

  const int result = task1.result();  // blocks until get_html(3) returns
  std::printf("%d\n", result);
  check(result == 3, "task1.result() is not 3");
  check(task2.result() == 2, "task2.result() is not 2");

  std::this_thread::sleep_for(3 * kSecond);  // time.sleep(3)
  std::printf("task1的状态： %s\n", task1.done() ? "True" : "False");
  std::printf("%s\n", repr(task1).c_str());
  check(task1.done() && !task1.cancelled(), "task1 is not finished at the end");

  executor.shutdown();
  const auto stats = executor.stats();
  std::printf("stats: %zu workers, %llu completed, %llu queued\n", stats.workers,
              static_cast<unsigned long long>(stats.completed),
              static_cast<unsigned long long>(stats.queued));
  check(stats.workers <= 2, "more than max_workers=2 workers started");
  return failures == 0 ? 0 : 1;
}
