// Notes "互斥锁/递归锁" ("Lock普通锁不可嵌套，RLock普通锁可嵌套"): a `threading.Lock` acquired
// twice by its holder blocks forever (acquire(timeout) shows it), a `threading.RLock` re-enters,
// one release() per acquire(). Then the notes' two MyThread(threading.Thread) classes: five threads
// counting `num` under a Lock, five threads taking an RLock twice.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

int num = 0;  // guarded by mutex
concur::Lock mutex;
concur::RLock rmutex;

// class MyThread(threading.Thread): time.sleep(1); if mutex.acquire(1): num = num + 1
class CountingThread : public concur::Thread {
 protected:
  void run() override {
    std::this_thread::sleep_for(10ms);
    if (mutex.acquire(1s)) {  // if mutex.acquire(1): bounded here, true once the lock is ours
      num = num + 1;
      std::printf("%s : num value is  %d\n", name().c_str(), num);
      mutex.release();
    }
  }
};

// class MyThread(threading.Thread) with mutex = threading.RLock(): the owner re-enters.
class ReentrantThread : public concur::Thread {
 public:
  std::optional<unsigned> depth;  // recursion_count() seen inside, read after join()

 protected:
  void run() override {
    if (rmutex.acquire(1s)) {
      std::printf("thread %s get mutex\n", name().c_str());
      std::this_thread::sleep_for(10ms);
      rmutex.acquire();  // the owner: returns at once
      depth = rmutex.recursion_count();
      rmutex.release();
    }
    rmutex.release();
  }
};

}  // namespace

int main() {
  // lock = Lock(); lock.acquire(); lock.acquire()  -> blocks forever. Bounded, it gives up.
  concur::Lock lock;
  lock.acquire();
  const bool second = lock.acquire(20ms);
  std::printf("Lock: second acquire by the holder %s\n", second ? "succeeded?!" : "timed out");
  lock.release();

  // lock = RLock(); three acquires, three releases.
  concur::RLock rlock;
  rlock.acquire();
  rlock.acquire();  // 不会被阻塞
  rlock.acquire();
  std::printf("123 (RLock held %u times)\n", rlock.recursion_count());
  const unsigned held = rlock.recursion_count();
  rlock.release();
  rlock.release();
  rlock.release();
  // One release too many: RuntimeError, as in Python.
  bool extra_release_refused = false;
  try {
    rlock.release();
  } catch (const concur::RuntimeError& e) {
    std::printf("%s\n", e.what());
    extra_release_refused = true;
  }

  std::vector<std::unique_ptr<CountingThread>> counters;
  std::vector<std::unique_ptr<ReentrantThread>> reentrants;
  for (int i = 0; i < 5; ++i) {
    counters.push_back(std::make_unique<CountingThread>());
    counters.back()->start();
  }
  for (auto& t : counters) t->join();
  for (int i = 0; i < 5; ++i) {
    reentrants.push_back(std::make_unique<ReentrantThread>());
    reentrants.back()->start();
  }
  for (auto& t : reentrants) t->join();

  if (second) {
    std::fprintf(stderr, "FAIL: a Lock was acquired twice by its holder\n");
    return 1;
  }
  if (held != 3 || rlock.locked() || !extra_release_refused) {
    std::fprintf(stderr, "FAIL: RLock re-entry: count %u, locked %d\n", held, rlock.locked());
    return 1;
  }
  if (num != 5) {
    std::fprintf(stderr, "FAIL: num is %d, expected 5\n", num);
    return 1;
  }
  for (const auto& t : reentrants) {
    if (t->depth != 2u) {
      std::fprintf(stderr, "FAIL: %s did not re-enter the RLock\n", t->name().c_str());
      return 1;
    }
  }
  return 0;
}
