// Notes "守护进程": Process(target=func1).start(); t = Process(target=func2); t.daemon = True.
// func2 loops forever printing "in func2"; when the main process is done it terminates its
// daemonic children (and joins the others), so the program ends once func1 finishes. The notes'
// 3 s / 0.5 s are 150 ms / 25 ms here.
#include <chrono>
#include <cstdio>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

void func1() {
  std::this_thread::sleep_for(150ms);
  std::printf("in func1\n");
  std::fflush(stdout);
}
CONCUR_TASK(func1);

void func2() {
  for (;;) {
    std::this_thread::sleep_for(25ms);
    std::printf("in func2\n");
    std::fflush(stdout);
  }
}
CONCUR_TASK(func2);

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines in the order they happen
  mp::Process first(func1);
  first.start();
  mp::Process t(func2);
  t.set_daemon(true);  // Python: t.daemon = True (an attribute, not setDaemon)
  t.start();
  std::printf("main thread\n");
  // Returning from main runs concur's exit handler: t is terminated, first is joined. This
  // example checks the same thing explicitly so that its exit code means something.
  first.join();
  t.terminate();
  t.join(5s);
  const bool ok = first.exitcode() == 0 && t.exitcode() == -15;
  std::printf("func1 exit %d, daemon func2 exit %d\n", first.exitcode().value_or(-1000),
              t.exitcode().value_or(-1000));
  return ok ? 0 : 1;
}
