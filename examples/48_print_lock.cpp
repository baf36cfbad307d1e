// Notes "其他问题": output from many processes can interleave, so the notes guard print with a
// process Lock — func(l, i) acquires, prints 'hello world', i, releases — in 10 processes. Each
// child also flushes stdout before releasing (the notes' sys.stdout.flush()), so whole lines
// come out one at a time. The check: every line arrives intact.
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace mp = concur::mp;

namespace {

void func(mp::Lock& l, int i, mp::Connection out) {
  std::scoped_lock guard(l);
  std::printf("hello world %d\n", i);
  std::fflush(stdout);
  out.send(i);  // tell the parent this line is done
}
CONCUR_TASK(func);

}  // namespace

int main() {
  mp::Lock lock;
  auto [results, out] = mp::Pipe();
  std::vector<mp::Process> ps;
  for (int num = 0; num < 10; ++num) {
    ps.emplace_back(func, lock, num, out);
    ps.back().start();
  }
  out.close();
  int sum = 0;
  for (int num = 0; num < 10; ++num) sum += results.recv<int>();
  bool ok = sum == 45;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  return ok ? 0 : 1;
}
