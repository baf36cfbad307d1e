// Notes "死锁 / 科学家吃面问题": eat1 takes fork_lock then noodle_lock, eat2 the reverse. concur's
// lock-order checker raises DeadlockError (naming both locks and threads) the first time the
// inverted order is *seen*, on a run that never hangs. Then the fixes: the notes' one lock for
// both (`noodle_lock = fork_lock = RLock()`), and one order for everybody.
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

// eat1 / eat2 as in the notes; `with` (std::lock_guard) so that a throwing acquire still
// releases what is held. L is concur::Lock or concur::RLock.
template <class L>
void eat1(const std::string& name, L& fork_lock, L& noodle_lock) {
  std::lock_guard fork(fork_lock);
  std::printf("%s拿到叉子了\n", name.c_str());
  std::lock_guard noodle(noodle_lock);
  std::printf("%s拿到面条了\n", name.c_str());
  std::printf("%s吃面\n", name.c_str());
}

template <class L>
void eat2(const std::string& name, L& fork_lock, L& noodle_lock) {
  std::lock_guard noodle(noodle_lock);
  std::printf("%s拿到面条了\n", name.c_str());
  std::this_thread::sleep_for(10ms);  // time.sleep(1)
  std::lock_guard fork(fork_lock);
  std::printf("%s拿到叉子了\n", name.c_str());
  std::printf("%s吃面\n", name.c_str());
}

// A thread named after the philosopher, so reports say "aaa" rather than "Thread-3".
concur::Thread::Options named(const std::string& name) { return {.name = name}; }

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

int main() {
  concur::lock_order::enable();  // or CONCUR_LOCK_ORDER=1 in the environment
  // Keep every report for the checks at the end, then throw DeadlockError as the default does.
  std::mutex reports_mu;  // a std::mutex: the checker does not track it
  std::vector<concur::lock_order::Violation> reports;
  concur::lock_order::set_handler([&](const concur::lock_order::Violation& v) {
    {
      std::lock_guard guard(reports_mu);
      reports.push_back(v);
    }
    throw concur::DeadlockError(v.message);
  });

  // 1. The inversion, seen without deadlocking: "aaa" eats (fork -> noodle) and finishes, then
  //    "111" holds noodle and asks for fork. Run concurrently these two could hang forever;
  //    here the checker raises DeadlockError in "111" before it blocks.
  std::string report;
  {
    concur::Lock fork_lock("fork_lock");
    concur::Lock noodle_lock("noodle_lock");
    concur::Thread aaa(named("aaa"), eat1<concur::Lock>, std::string("aaa"), std::ref(fork_lock),
                       std::ref(noodle_lock));
    aaa.start();
    aaa.join();
    concur::Thread p111(named("111"), [&] {
      try {
        eat2(std::string("111"), fork_lock, noodle_lock);
      } catch (const concur::DeadlockError& e) {
        report = e.what();
      }
    });
    p111.start();
    p111.join();
  }
  std::printf("\n%s\n\n", report.c_str());

  // 2. The notes' fix: noodle_lock = fork_lock = RLock(). One lock cannot be taken in two
  //    orders; the RLock lets eat1/eat2 "take" it twice. All four philosophers, concurrently.
  {
    concur::RLock fork_and_noodle("fork_lock=noodle_lock");
    concur::RLock& fork_lock = fork_and_noodle;
    concur::RLock& noodle_lock = fork_and_noodle;
    std::vector<concur::Thread> philosophers;
    philosophers.reserve(4);
    philosophers.emplace_back(named("aaa"), eat1<concur::RLock>, std::string("aaa"),
                              std::ref(fork_lock), std::ref(noodle_lock));
    philosophers.emplace_back(named("111"), eat2<concur::RLock>, std::string("111"),
                              std::ref(fork_lock), std::ref(noodle_lock));
    philosophers.emplace_back(named("bbb"), eat1<concur::RLock>, std::string("bbb"),
                              std::ref(fork_lock), std::ref(noodle_lock));
    philosophers.emplace_back(named("222"), eat2<concur::RLock>, std::string("222"),
                              std::ref(fork_lock), std::ref(noodle_lock));
    for (auto& t : philosophers) t.start();
    for (auto& t : philosophers) t.join();
  }

  // 3. The other fix — "死锁从本质上来讲是一种逻辑错误": keep two Locks, but everyone takes
  //    fork_lock before noodle_lock. The checker sees one order only and stays silent.
  {
    concur::Lock fork_lock("fork_lock");
    concur::Lock noodle_lock("noodle_lock");
    std::vector<concur::Thread> philosophers;
    philosophers.reserve(4);
    for (const char* name : {"aaa", "111", "bbb", "222"}) {
      philosophers.emplace_back(named(name), eat1<concur::Lock>, std::string(name),
                                std::ref(fork_lock), std::ref(noodle_lock));
    }
    for (auto& t : philosophers) t.start();
    for (auto& t : philosophers) t.join();
  }

  // Exactly one report (part 1): "111" asked for fork_lock holding noodle_lock, against the
  // order fork_lock -> noodle_lock that "aaa" established.
  if (reports.size() != 1) {
    std::fprintf(stderr, "FAIL: %zu lock-order reports, expected 1\n", reports.size());
    return 1;
  }
  const concur::lock_order::Violation& v = reports.front();
  if (v.thread != "111" || v.acquiring != "fork_lock" || v.held != "noodle_lock" ||
      v.cycle.size() != 1 || v.cycle[0].thread != "aaa") {
    std::fprintf(stderr, "FAIL: unexpected report: %s\n", v.message.c_str());
    return 1;
  }
  for (const char* part : {"DeadlockError", "fork_lock", "noodle_lock", "'aaa'", "'111'"}) {
    if (!contains(report, part)) {
      std::fprintf(stderr, "FAIL: the DeadlockError does not name %s: %s\n", part, report.c_str());
      return 1;
    }
  }
  concur::lock_order::set_handler({});
  concur::lock_order::enable(false);
  return 0;
}
