// Notes "线程的锁" (the `balance` bank account): run_thread(n) calls change_it(n) — deposit n,
// then withdraw n — 150000 times, in two `threading.Thread`s with n = 5 and n = 8. Unlocked,
// the two threads' updates interleave and balance drifts; `with lock:` around change_it makes
// each deposit-and-withdraw one step, so balance ends at 0.
#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>

#include "concur/concur.hpp"

namespace {

constexpr int kRounds = 150'000;

// Unlocked: each statement is a separate load and store (a std::atomic, so no undefined
// behaviour, but nothing makes the pair atomic).
std::atomic<long> racy_balance{0};

void racy_change_it(long n) {
  racy_balance.store(racy_balance.load() + n);
  racy_balance.store(racy_balance.load() - n);
}

void racy_run_thread(long n, concur::Event& go) {
  go.wait();  // both threads start together, so their loops really overlap
  for (int i = 0; i < kRounds; ++i) racy_change_it(n);
}

// Locked: balance is only touched by the thread holding `lock`.
long balance = 0;  // guarded by the lock passed to run_thread

void change_it(long n) {
  balance = balance + n;
  balance = balance - n;
}

void run_thread(long n, concur::Lock& lock) {
  for (int i = 0; i < kRounds; ++i) {
    std::lock_guard with_lock(lock);  // with lock: change_it(n)
    change_it(n);
  }
}

}  // namespace

int main() {
  {
    concur::Event go;
    concur::Thread t1(racy_run_thread, 5L, std::ref(go));
    concur::Thread t2(racy_run_thread, 8L, std::ref(go));
    t1.start();
    t2.start();
    go.set();
    t1.join();
    t2.join();
  }
  std::printf("without a lock: balance = %ld (0 only by luck)\n", racy_balance.load());

  concur::Lock lock;
  {
    // args=(5, lock): arguments are copied like std::thread's, so shared objects go by std::ref.
    concur::Thread t1(run_thread, 5L, std::ref(lock));
    concur::Thread t2(run_thread, 8L, std::ref(lock));
    t1.start();
    t2.start();
    t1.join();
    t2.join();
  }
  std::printf("with lock: balance = %ld\n", balance);
  if (balance != 0) {
    std::fprintf(stderr, "FAIL: the locked balance is %ld, expected 0\n", balance);
    return 1;
  }
  return 0;
}
