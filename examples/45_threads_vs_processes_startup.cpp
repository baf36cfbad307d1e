// Notes "进程与线程的开启效率": start 50 Processes running func(i) (print(n**n)), join them, and
// time it; then the same with 50 Threads. Processes cost far more to start than threads — in
// Python and here — and which start method is used matters: fork copies this process, forkserver
// asks a small server to fork, spawn execs this binary anew.
#include <chrono>
#include <cstdio>
#include <vector>

#include "concur/concur.hpp"

namespace mp = concur::mp;

namespace {

// func(n): the notes print n**n; here the low digits of it, computed the same way.
void func(int n) {
  unsigned long long r = 1;
  for (int i = 0; i < n; ++i) r *= static_cast<unsigned long long>(n);
  (void)r;
}
CONCUR_TASK(func);

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool run_processes(mp::StartMethod method) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<mp::Process> ps;
  for (int i = 0; i < 50; ++i) {
    ps.emplace_back(mp::ProcessOptions{.start_method = method}, func, i);
    ps.back().start();
  }
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  std::printf("******* 50 processes (%s): %.4f s\n", mp::to_string(method), seconds_since(t0));
  return ok;
}

}  // namespace

int main() {
  bool ok = run_processes(mp::StartMethod::fork);  // before any thread exists: fork is allowed
  ok = run_processes(mp::StartMethod::forkserver) && ok;
  ok = run_processes(mp::StartMethod::spawn) && ok;

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<concur::Thread> ts;
  for (int i = 0; i < 50; ++i) {
    ts.emplace_back([i] { func(i); });
    ts.back().start();
  }
  for (auto& t : ts) t.join();
  std::printf("******* 50 threads: %.4f s\n", seconds_since(t0));
  return ok ? 0 : 1;
}
