// Notes "全局变量在多个进程中不能共享": a child process changes a global variable and the parent
// never sees it — each process has its own copy of all data — while a thread changing the same
// global changes the one copy everyone shares (the notes' `n -= 1` in a Thread).
#include <cstdio>
#include <fstream>
#include <string>

#include "concur/concur.hpp"

namespace mp = concur::mp;

namespace {

int n = 100;

// The child decrements its copy and reports what it saw through its exit code.
void func() {
  n -= 1;
  std::printf("in the child: n = %d\n", n);
  std::fflush(stdout);
  throw mp::SystemExit(n == 99 ? 0 : 1);
}
CONCUR_TASK(func);

}  // namespace

int main() {
  mp::Process p(func);
  p.start();
  p.join();
  std::printf("after the process: n = %d (unchanged)\n", n);
  const bool process_isolated = p.exitcode() == 0 && n == 100;

  concur::Thread t([] { n -= 1; });
  t.start();
  t.join();
  std::printf("after the thread: n = %d (shared)\n", n);
  const bool thread_shared = n == 99;

  return process_isolated && thread_shared ? 0 : 1;
}
