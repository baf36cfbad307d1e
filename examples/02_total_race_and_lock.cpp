// Notes 11-1 "GIL" / 11-4 "Lock": two `threading.Thread`s run `total += 1` and `total -= 1` a
// million times each. Unlocked, the read-modify-write (a std::atomic read and written in two
// steps: lost updates, but no undefined behaviour) interleaves and the total drifts; with a
// `threading.Lock` around it (acquire()/release(), or `with lock:`) the total is always 0.
#include <atomic>
#include <cstdio>
#include <mutex>

#include "concur/concur.hpp"

namespace {

constexpr int kRounds = 1'000'000;

// --- Without a lock: load, add, store — another thread may store in between. ------------------
std::atomic<long> racy_total{0};

void racy_add() {
  for (int i = 0; i < kRounds; ++i) {
    racy_total.store(racy_total.load() + 1);
  }
}

void racy_desc() {
  for (int i = 0; i < kRounds; ++i) {
    racy_total.store(racy_total.load() - 1);
  }
}

// --- With lock = threading.Lock(). -----------------------------------------------------------
concur::Lock lock;
long total = 0;  // guarded by lock

void add() {
  for (int i = 0; i < kRounds; ++i) {
    lock.acquire();  // lock.acquire(); total += 1; lock.release()
    total += 1;
    lock.release();
  }
}

void desc() {
  for (int i = 0; i < kRounds; ++i) {
    std::lock_guard with_lock(lock);  // with lock: total -= 1
    total -= 1;
  }
}

}  // namespace

int main() {
  {
    concur::Thread thread1(racy_add);
    concur::Thread thread2(racy_desc);
    thread1.start();
    thread2.start();
    thread1.join();
    thread2.join();
  }
  std::printf("without a lock: total = %ld (0 only by luck: lost updates)\n", racy_total.load());

  {
    concur::Thread thread1(add);
    concur::Thread thread2(desc);
    thread1.start();
    thread2.start();
    thread1.join();
    thread2.join();
  }
  std::printf("with threading.Lock: total = %ld\n", total);
  if (total != 0) {
    std::fprintf(stderr, "FAIL: the locked total is %ld, expected 0\n", total);
    return 1;
  }
  return 0;
}
