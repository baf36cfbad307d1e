// Notes "验证线程是能够并发的" (threads run concurrently, inside one process): a Thread prints
// `in thread: i` and os.getpid() ten times, 0.5 s apart, while the main thread prints `in main`
// and `in main 2` with its own os.getpid() — the lines interleave, and every pid is the same: the
// threads share one process (the notes' next point: a thread is lighter than a process). The
// notes' 0.5 s and 1 s sleeps are 10 ms and 20 ms here. A child process started beside them
// (mp::Process) prints another pid, the contrast the notes draw with multiprocessing.
//
// The interleaving is made certain, not left to timing: the thread's first line comes before
// main's first (main waits for it), and its last line after main's second (it waits for main).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

constexpr auto kHalfSecond = 10ms;

std::mutex g_lines_mu;
std::vector<std::string> g_lines;  // who printed, in order
std::vector<int> g_pids;           // the pid each line printed

void say(const std::string& who, int pid) {
  std::scoped_lock lock(g_lines_mu);
  std::printf("%s %d\n", who.c_str(), pid);
  g_lines.push_back(who);
  g_pids.push_back(pid);
}

// The child process's pid, sent back over a queue.
void report_pid(mp::Queue<int>& out) { out.put(mp::current_process().pid); }
CONCUR_TASK(report_pid);

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  concur::Event first_line;  // the thread has printed once
  concur::Event main_spoke;  // main has printed twice
  // def func(): for i in range(10): print('in thread:', i, os.getpid()); time.sleep(0.5)
  concur::Thread t([&] {
    for (int i = 0; i < 10; ++i) {
      if (i == 9) (void)main_spoke.wait(10s);
      say("in thread: " + std::to_string(i), mp::current_process().pid);
      if (i == 0) first_line.set();
      std::this_thread::sleep_for(kHalfSecond);
    }
  });
  t.start();
  (void)first_line.wait(10s);
  std::this_thread::sleep_for(2 * kHalfSecond);  // time.sleep(1)
  say("in main", mp::current_process().pid);
  std::this_thread::sleep_for(2 * kHalfSecond);
  say("in main 2", mp::current_process().pid);
  main_spoke.set();
  t.join();

  // The contrast: a process has a pid of its own.
  mp::Queue<int> pids;
  mp::Process child(report_pid, pids);
  child.start();
  const int child_pid = pids.get(20s);
  child.join();
  std::printf("in a child process: %d (parent %d)\n", child_pid, ::getpid());

  bool ok = true;
  const auto fail = [&](const char* what) {
    std::fprintf(stderr, "FAIL: %s\n", what);
    ok = false;
  };
  if (g_lines.size() != 12) fail("not 12 lines");
  for (int pid : g_pids)
    if (pid != ::getpid()) fail("a thread printed another pid than its process's");
  std::size_t main_at = 0;
  for (std::size_t i = 0; i < g_lines.size(); ++i)
    if (g_lines[i] == "in main") main_at = i;
  if (main_at == 0 || main_at + 2 >= g_lines.size())
    fail("main's lines did not come between the thread's");
  if (child_pid == ::getpid() || child_pid <= 0) fail("the child process had the parent's pid");
  if (child.exitcode() != 0) fail("the child failed");
  return ok ? 0 : 1;
}
