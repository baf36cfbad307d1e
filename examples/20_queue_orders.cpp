// Notes "线程队列" / "多线程：队列 Queue": `queue.Queue` (先进先出), `queue.LifoQueue` (后进先出)
// and `queue.PriorityQueue` with the notes' tuples `(20,'a') (10,'a') (30,'a') (30,'b')` and
// `(1,"work") (-1,"life") (1,"drink") (-2,"sleep")`, printed in Python's order; then
// `q = queue.Queue(5)` with put/get/task_done/qsize/empty/full, and put_nowait/get_nowait.
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

// A Python tuple (priority, name); std::less on std::pair compares like Python tuples.
using Job = std::pair<int, std::string>;

// repr(job) is Python's repr of the tuple: (1, 'work').
std::string repr(const Job& job) {
  // Appended piece by piece: `"(" + std::to_string(...)` trips g++ 12's false -Wrestrict at -O3.
  std::string out = "(";
  out += std::to_string(job.first);
  out += ", '";
  out += job.second;
  out += "')";
  return out;
}

// ByPriority orders Jobs by priority only: equal priorities leave in arrival order (FIFO).
struct ByPriority {
  bool operator()(const Job& a, const Job& b) const { return a.first < b.first; }
};

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what);
    ++failures;
  }
}

template <class Q>
std::vector<Job> drain(Q& q) {
  std::vector<Job> out;
  while (!q.empty()) out.push_back(q.get());
  return out;
}

std::vector<Job> print_all(const char* title, std::vector<Job> jobs) {
  std::printf("%s:", title);
  for (const Job& job : jobs) std::printf(" %s", repr(job).c_str());
  std::printf("\n");
  return jobs;
}

}  // namespace

int main() {
  // --- queue.Queue(): first in, first out -----------------------------------------------------
  {
    concur::Queue<int> q;
    for (int v : {2, 3, 4, 5}) q.put(v);
    const int a = q.get();
    const int b = q.get();
    std::printf("Queue:      %d %d\n", a, b);  // 2 3
    check(a == 2 && b == 3 && q.qsize() == 2, "Queue is not FIFO");
  }

  // --- queue.LifoQueue(): last in, first out (a stack) ----------------------------------------
  {
    concur::LifoQueue<int> q;
    for (int v : {2, 3, 4, 5}) q.put(v);
    const int a = q.get();
    const int b = q.get();
    std::printf("LifoQueue:  %d %d\n", a, b);  // 5 4
    check(a == 5 && b == 4 && q.qsize() == 2, "LifoQueue is not LIFO");
  }

  // --- queue.PriorityQueue(): the smallest tuple first ----------------------------------------
  {
    // "如果,前面相同,那么就根据asicc码来判断优先级": equal priorities compare the second field
    // ('a' < 'b'); the next block shows that comparison beating arrival order.
    concur::PriorityQueue<Job> q;
    q.put({20, "a"});
    q.put({10, "a"});
    q.put({30, "a"});
    q.put({30, "b"});
    const auto got = print_all("PriorityQueue", drain(q));
    check(got == std::vector<Job>{{10, "a"}, {20, "a"}, {30, "a"}, {30, "b"}},
          "(20,'a') (10,'a') (30,'a') (30,'b') left in the wrong order");
  }
  {
    // The notes say "同优先级先进先出" (equal priorities FIFO), but Python compares the whole
    // tuple: "drink" < "work", so (1,'drink') leaves before (1,'work') although put later.
    // Python prints (-2, 'sleep') (-1, 'life') (1, 'drink') (1, 'work'); so does std::less.
    concur::PriorityQueue<Job> q;
    q.put({1, "work"});
    q.put({-1, "life"});
    q.put({1, "drink"});
    q.put({-2, "sleep"});
    const auto got = print_all("PriorityQueue", drain(q));
    check(got == std::vector<Job>{{-2, "sleep"}, {-1, "life"}, {1, "drink"}, {1, "work"}},
          "the tuples did not leave in Python's order");
  }
  {
    // What the notes meant: compare the priority only. concur's PriorityQueue keeps equal
    // priorities in arrival order, so (1,'work') leaves before (1,'drink') — Python needs a
    // (priority, count, item) wrapper for this.
    concur::PriorityQueue<Job, ByPriority> q;
    q.put({1, "work"});
    q.put({-1, "life"});
    q.put({1, "drink"});
    q.put({-2, "sleep"});
    const auto got = print_all("by priority", drain(q));
    check(got == std::vector<Job>{{-2, "sleep"}, {-1, "life"}, {1, "work"}, {1, "drink"}},
          "equal priorities did not leave FIFO");
  }

  // --- q = queue.Queue(5): put, get, task_done, qsize, empty, full ----------------------------
  {
    concur::Queue<int> q(5);
    q.put(111);  // 存队列
    q.put(222);
    q.put(333);
    const int first = q.get();  // 取队列
    const int second = q.get();
    std::printf("%d\n%d\n", first, second);  // 111 222
    q.task_done();  // one of the two items got is processed; join() would still wait for one
    std::printf("%zu\n%s\n%s\n", q.qsize(), q.empty() ? "True" : "False",
                q.full() ? "True" : "False");  // 1 False False
    check(first == 111 && second == 222, "Queue(5) did not return 111, 222");
    check(q.qsize() == 1 && !q.empty() && !q.full(), "qsize/empty/full after two gets");
    check(q.unfinished_tasks() == 2 && !q.join(1ms), "join() did not wait for two unfinished");

    // Fill it up: full() turns true and put_nowait / put(timeout) raise queue.Full.
    for (int v : {444, 555, 666, 777}) q.put(v);
    check(q.full() && q.qsize() == 5, "five items did not fill Queue(5)");
    bool full_raised = false;
    try {
      q.put_nowait(888);
    } catch (const concur::Full& e) {
      std::printf("%s\n", e.what());
      full_raised = true;
    }
    bool timeout_raised = false;
    try {
      q.put(888, 10ms);  // q.put(888, timeout=0.01)
    } catch (const concur::Full&) {
      timeout_raised = true;
    }
    check(full_raised && timeout_raised, "put on a full queue did not raise Full");

    // Empty it: get_nowait / get(timeout) on an empty queue raise queue.Empty.
    std::vector<int> rest;
    while (!q.empty()) rest.push_back(q.get_nowait());
    check(rest == std::vector<int>{333, 444, 555, 666, 777}, "the rest did not come out FIFO");
    bool empty_raised = false;
    try {
      (void)q.get(10ms);
    } catch (const concur::Empty& e) {
      std::printf("%s\n", e.what());
      empty_raised = true;
    }
    check(empty_raised, "get on an empty queue did not raise Empty");

    // Seven items were put and one task_done() given: six more settle join().
    for (int i = 0; i < 6; ++i) q.task_done();
    check(q.unfinished_tasks() == 0 && q.join(1ms), "join() did not return after task_done()s");
  }

  return failures == 0 ? 0 : 1;
}
