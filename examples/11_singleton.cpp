// Notes p17_singleton.py: `Singleton` with `_instance_lock = threading.Lock()` and double-checked
// locking ("双重检验锁模式") — check without the lock, then again under it, so that threads
// racing past the first check still create one instance. In C++ the instance pointer must be a
// std::atomic (acquire/release) for the unlocked first check to be safe.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

class Singleton {
 public:
  // instance() is Python's Singleton(): every call returns the same object.
  static Singleton& instance() {
    Singleton* p = instance_.load(std::memory_order_acquire);
    if (p == nullptr) {  // if not hasattr(Singleton, "_instance"):
      std::lock_guard with_lock(instance_lock_);
      p = instance_.load(std::memory_order_relaxed);
      if (p == nullptr) {   // checked again: another thread may have won the lock first
        p = new Singleton;  // intentionally never deleted, like a module-level object
        instance_.store(p, std::memory_order_release);
      }
    }
    return *p;
  }

  static int constructions() { return constructions_.load(); }

 private:
  Singleton() {
    ++constructions_;
    std::this_thread::sleep_for(5ms);  // a slow constructor widens the race window
  }

  static inline std::atomic<Singleton*> instance_{nullptr};
  static inline concur::Lock instance_lock_{"Singleton._instance_lock"};
  static inline std::atomic<int> constructions_{0};
};

void task(int arg, concur::Event& go, const Singleton*& seen) {
  go.wait();  // all ten threads call Singleton() at the same moment
  seen = &Singleton::instance();
  std::printf("task %d: %p\n", arg, static_cast<const void*>(seen));
}

}  // namespace

int main() {
  constexpr int kThreads = 10;
  concur::Event go;
  std::vector<const Singleton*> seen(kThreads, nullptr);
  {
    std::vector<concur::Thread> threads;
    threads.reserve(kThreads);
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back(task, i, std::ref(go), std::ref(seen[static_cast<std::size_t>(i)]));
      threads.back().start();
    }
    go.set();
    for (auto& t : threads) t.join();
  }
  const Singleton& obj1 = Singleton::instance();
  const Singleton& obj2 = Singleton::instance();
  std::printf("obj1 %p, obj2 %p, %d construction(s)\n", static_cast<const void*>(&obj1),
              static_cast<const void*>(&obj2), Singleton::constructions());

  if (Singleton::constructions() != 1) {
    std::fprintf(stderr, "FAIL: Singleton was constructed %d times\n", Singleton::constructions());
    return 1;
  }
  for (const Singleton* p : seen) {
    if (p != &obj1 || &obj2 != &obj1) {
      std::fprintf(stderr, "FAIL: the threads got different instances\n");
      return 1;
    }
  }
  return 0;
}
