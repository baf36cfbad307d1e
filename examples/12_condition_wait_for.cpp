// Notes "条件" / "条件锁" (`threading.Condition`): ten threads wait, the main thread decides how
// many go (replacing the notes' input()). Part 1, `con.notify(n)`: notify(3) then notify(7) wake
// exactly that many. Part 2, `conn.wait_for(condition)`: answer "no" — woken threads re-check the
// predicate and keep waiting — then "yes", and all ten go.
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kThreads = 10;

concur::Condition con;  // threading.Condition()
int waiting = 0;        // threads inside wait(); guarded by con
int ran = 0;            // threads past the wait; guarded by con
std::string answer;     // the main thread's decision; guarded by con

// Part 1: def run(n): con.acquire(); con.wait(); print(...); con.release()
void run(int n) {
  con.acquire();
  ++waiting;
  if (con.wait(5s)) {  // bounded: a lost notify shows up as a failed check, not a hang
    std::printf("run the thread : %d\n", n);
    ++ran;
  }
  --waiting;
  con.release();
}

// Part 2: def func(conn, i): conn.acquire(); conn.wait_for(condition); print(i + 100)
bool condition() { return answer == "yes"; }

void func(int i) {
  std::lock_guard with_con(con);
  ++waiting;
  if (con.wait_for(condition, 5s)) {
    std::printf("%d\n", i + 100);
    ++ran;
  }
  --waiting;
}

// wait_until_count(counter, n) polls, with the lock, until *counter == n (at most ~2 s).
bool wait_until_count(const int& counter, int n) {
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard with_con(con);
      if (counter == n) return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

int ran_now() {
  std::lock_guard with_con(con);
  return ran;
}

template <class F>
std::vector<concur::Thread> start_threads(F f) {
  std::vector<concur::Thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(f, i);
    threads.back().start();
  }
  return threads;
}

}  // namespace

int main() {
  // --- Part 1: notify(n) ----------------------------------------------------------------------
  int after_three = -1;
  {
    auto threads = start_threads(run);
    // Once all ten are counted under the lock, all ten are inside wait().
    if (!wait_until_count(waiting, kThreads)) {
      std::fprintf(stderr, "FAIL: the threads never all waited\n");
      return 1;
    }
    {
      std::lock_guard with_con(con);
      con.notify(3);  // con.notify(int(inp)) with inp = "3"
    }
    wait_until_count(ran, 3);
    std::this_thread::sleep_for(20ms);  // give a wrongly woken fourth thread time to show up
    after_three = ran_now();
    std::printf("*****\n");
    {
      std::lock_guard with_con(con);
      con.notify(7);
    }
    for (auto& t : threads) t.join();
  }
  const int part1 = ran_now();

  // --- Part 2: wait_for(predicate) ------------------------------------------------------------
  {
    std::lock_guard with_con(con);
    ran = 0;
  }
  int after_no = -1;
  {
    auto threads = start_threads(func);
    if (!wait_until_count(waiting, kThreads)) {
      std::fprintf(stderr, "FAIL: the threads never all waited\n");
      return 1;
    }
    {
      std::lock_guard with_con(con);
      answer = "no";
      con.notify_all();  // everyone re-checks condition() and goes back to waiting
    }
    std::this_thread::sleep_for(20ms);
    after_no = ran_now();
    {
      std::lock_guard with_con(con);
      answer = "yes";
      con.notify_all();
    }
    for (auto& t : threads) t.join();
  }
  const int part2 = ran_now();

  std::printf("notify(3) let %d go, all %d ran; \"no\" let %d go, \"yes\" all %d\n", after_three,
              part1, after_no, part2);
  if (after_three != 3 || part1 != kThreads) {
    std::fprintf(stderr, "FAIL: notify(3) woke %d threads, %d ran in all\n", after_three, part1);
    return 1;
  }
  if (after_no != 0 || part2 != kThreads) {
    std::fprintf(stderr, "FAIL: wait_for passed %d threads on \"no\", %d in all\n", after_no,
                 part2);
    return 1;
  }
  return 0;
}
