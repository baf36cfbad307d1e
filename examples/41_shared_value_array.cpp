// Notes "共享内存" and "进程锁Lock": `num = Value('d', 0.0)`, `arr = Array('i', range(10))`, and a
// child Process running f(n, a) sets n.value = 3.1415927 and negates every element — the parent
// prints 3.1415927 and [0, -1, ..., -9], because Value and Array live in shared memory (a plain
// global changed by a child stays the child's own). Then the notes' job(v, num): two processes add
// 1 and 3 to a shared Value('i') five times each, printing v.value after each step — first without
// a lock (the read-modify-write races; the totals of a racing run may be wrong), then holding an
// mp::Lock around the whole loop, so p1's five steps run before p2's (or the reverse) and the final
// value is exactly 20. The notes' 0.1 s sleeps are 5 ms here; the racy run uses more steps so that
// the race can show.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

// def f(n, a): n.value = 3.1415927; for i in a: a[i] = -a[i]
void f(mp::Value<double>& n, mp::Array<int>& a) {
  n.set_value(3.1415927);
  std::scoped_lock guard(a.get_lock());
  for (int& x : a) x = -x;
}
CONCUR_TASK(f);

// The unlocked job: v.value += num is a read, an add and a write, not atomic.
void job_unlocked(mp::Value<int>& v, int num, int steps) {
  for (int i = 0; i < steps; ++i) {
    const int seen = v.value();
    std::this_thread::yield();
    v.set_value(seen + num);
  }
}
CONCUR_TASK(job_unlocked);

// The locked job: l.acquire(); five steps of v.value += num, printing each; l.release().
void job(mp::Value<int>& v, int num, mp::Lock& l) {
  std::scoped_lock guard(l);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(5ms);
    v.set_value(v.value() + num);
    std::printf("%d|", v.value());
    std::fflush(stdout);
  }
}
CONCUR_TASK(job);

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines in the order they happen
  mp::Value<double> num(0.0);
  mp::Array<int> arr{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  mp::Process p(f, num, arr);
  p.start();
  p.join();
  std::printf("%.7f\n[", num.value());
  for (std::size_t i = 0; i < arr.size(); ++i) std::printf(i ? ", %d" : "%d", arr[i]);
  std::printf("]\n");
  bool ok = p.exitcode() == 0 && num.value() == 3.1415927;
  for (std::size_t i = 0; i < arr.size(); ++i) ok = ok && arr[i] == -static_cast<int>(i);

  // Without a lock: each process adds 1 (or 3) 20,000 times; updates may be lost.
  constexpr int kSteps = 20'000;
  mp::Value<int> racy(0, mp::Options{.lock = false});
  mp::Process r1(job_unlocked, racy, 1, kSteps);
  mp::Process r2(job_unlocked, racy, 3, kSteps);
  r1.start();
  r2.start();
  r1.join();
  r2.join();
  std::printf("without a lock: %d (%d if no update was lost)\n", racy.value(), 4 * kSteps);

  // With the notes' process Lock around the whole loop: 1|2|3|4|5|8|11|14|17|20| (or the reverse).
  mp::Lock l;
  mp::Value<int> v(0);
  mp::Process p1(job, v, 1, l);
  mp::Process p2(job, v, 3, l);
  p1.start();
  p2.start();
  p1.join();
  p2.join();
  std::printf("\nwith the lock: %d\n", v.value());
  ok = ok && r1.exitcode() == 0 && r2.exitcode() == 0 && p1.exitcode() == 0 && p2.exitcode() == 0 &&
       v.value() == 20 && racy.value() <= 4 * kSteps;
  std::printf(ok ? "invariants hold\n" : "INVARIANT VIOLATED\n");
  return ok ? 0 : 1;
}
