// Notes "守护线程" (`t.setDaemon(True)`, `t.daemon = True`): the process waits for ordinary
// threads but not for daemon threads. func1 (a normal thread) finishes before main's Thread is
// destroyed; func2 loops forever as a daemon and simply stops when the process exits.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

std::atomic<bool> func1_done{false};
std::atomic<int> func2_rounds{0};

void func1() {
  std::this_thread::sleep_for(30ms);  // time.sleep(3)
  std::printf("in func1\n");
  func1_done = true;
}

void func2() {
  while (true) {
    std::this_thread::sleep_for(5ms);  // time.sleep(0.5)
    std::printf("in func2\n");
    ++func2_rounds;
  }
}

}  // namespace

int main() {
  bool daemon_alive_at_exit = false;
  bool late_set_daemon_refused = false;
  {
    concur::Thread t1(func1);  // Thread(target=func1).start()
    t1.start();

    concur::Thread t(func2);
    t.set_daemon(true);  // t.setDaemon(True), or Options{.daemon = true}
    t.start();
    std::printf("主线程\n");

    try {
      t.set_daemon(false);  // too late once started
    } catch (const concur::RuntimeError& e) {
      std::printf("%s\n", e.what());
      late_set_daemon_refused = true;
    }
    if (t1.daemon() || !t.daemon()) {
      std::fprintf(stderr, "FAIL: daemon flags t1=%d t=%d\n", t1.daemon(), t.daemon());
      return 1;
    }
    // Leaving this scope: ~Thread joins t1 (a normal thread, like Python waiting for it at
    // exit) and leaves the daemon t running.
    t.join(10ms);  // a daemon never finishes: a bounded join just times out
    daemon_alive_at_exit = t.is_alive();
  }

  std::printf("main returns; func2 has run %d rounds and is still looping\n", func2_rounds.load());
  if (!func1_done) {
    std::fprintf(stderr, "FAIL: the non-daemon thread was not waited for\n");
    return 1;
  }
  if (!daemon_alive_at_exit || !late_set_daemon_refused) {
    std::fprintf(stderr, "FAIL: the daemon thread stopped early, or set_daemon was accepted\n");
    return 1;
  }
  std::fflush(stdout);
  return 0;
}
