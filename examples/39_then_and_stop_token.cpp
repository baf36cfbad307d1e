// concur extras beyond concurrent.futures (not in the notes, which stop at add_done_callback):
// 1. then(fn): a continuation that gets the finished future and returns a new future — the
//    notes' get_html → parse chain without a blocking result() in between. then(fn) runs in the
//    thread that completes the future; then(executor, fn) submits fn to an executor. An
//    exception flows down the chain; cancelling a continuation before its source finishes
//    keeps fn from running.
// 2. Cooperative cancellation: Python's cancel() only works before a task starts. A task whose
//    first parameter is a std::stop_token still cannot be cancelled once it runs (cancel()
//    returns False, as in Python), but cancel() asks it to stop, and it can return early.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kSecond = 20ms;  // one second of the notes' get_html

int get_html(int times) {
  std::this_thread::sleep_for(times * kSecond);
  std::printf("get page %d success\n", times);
  return times;
}

// crawl(stop, pages): fetch up to `pages` pages, 5 ms each, unless asked to stop.
int crawl(std::stop_token stop, int pages) {
  int fetched = 0;
  while (fetched < pages && !stop.stop_requested()) {
    std::this_thread::sleep_for(5ms);
    ++fetched;
  }
  return fetched;
}

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

  concur::ThreadPoolExecutor executor(2);

  // 1a. A chain: page → parsed (inline, in the worker that finished the page) → stored (on the
  // pool).
  concur::Future<int> page = executor.submit(get_html, 2);
  concur::Future<std::string> parsed = page.then([](const concur::Future<int>& f) {
    return "parsed page " + std::to_string(f.result()) + " in " + concur::current_thread().name();
  });
  concur::Future<std::size_t> stored =
      parsed.then(executor, [](const concur::Future<std::string>& f) {
        std::printf("store: %s (in %s)\n", f.result().c_str(),
                    concur::current_thread().name().c_str());
        return f.result().size();
      });
  std::printf("stored %zu bytes\n", stored.result(10s));
  check(parsed.result().rfind("parsed page 2", 0) == 0, "the chain lost the page");

  // 1b. An exception flows down the chain: the continuation's result() rethrows it.
  concur::Future<int> broken = executor.submit([]() -> int { throw std::runtime_error("404"); });
  concur::Future<int> doubled = broken.then([](const concur::Future<int>& f) {
    return 2 * f.result();  // rethrows the 404
  });
  try {
    (void)doubled.result(10s);
    check(false, "the continuation of a failed future returned a value");
  } catch (const std::runtime_error& e) {
    std::printf("the chain failed with: %s\n", e.what());
  }

  // 1c. A continuation cancelled before its source finishes never runs.
  concur::Event release;
  std::atomic<bool> fn_ran{false};
  concur::Future<int> slow = executor.submit([&release] {
    (void)release.wait(10s);
    return 1;
  });
  concur::Future<int> next = slow.then([&fn_ran](const concur::Future<int>& f) {
    fn_ran = true;
    return f.result();
  });
  const bool next_cancelled = next.cancel();
  release.set();
  (void)slow.result(10s);
  std::printf("continuation cancel(): %s; it ran: %s\n", next_cancelled ? "True" : "False",
              fn_ran.load() ? "yes" : "no");
  check(next_cancelled && next.cancelled() && !fn_ran, "a cancelled continuation ran");

  // 2. Cooperative cancellation. One worker: the second crawl waits in the queue.
  concur::ThreadPoolExecutor one(1);
  concur::Future<int> running = one.submit(crawl, 1000);  // 5 s if nobody stops it
  concur::Future<int> queued = one.submit(crawl, 1000);
  check(wait_running(running), "the first crawl never started");
  std::this_thread::sleep_for(30ms);
  const bool queued_cancelled = queued.cancel();    // not started: cancelled, as in Python
  const bool running_cancelled = running.cancel();  // started: False, but it is asked to stop
  const int fetched = running.result(10s);
  std::printf(
      "queued crawl cancel(): %s; running crawl cancel(): %s, it stopped after %d of "
      "1000 pages\n",
      queued_cancelled ? "True" : "False", running_cancelled ? "True" : "False", fetched);
  check(queued_cancelled && queued.cancelled(), "the queued crawl was not cancelled");
  check(!running_cancelled && !running.cancelled(), "cancel() succeeded on a running task");
  check(fetched < 1000, "the running crawl did not stop early");
  return failures == 0 ? 0 : 1;
}
