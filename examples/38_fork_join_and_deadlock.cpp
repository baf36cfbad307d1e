// Notes "p16_deadlock.py" (from the concurrent.futures docs): on `ThreadPoolExecutor(
// max_workers=2)`, `a = executor.submit(wait_on_b)` and `b = executor.submit(wait_on_a)`, where
// wait_on_b prints `b.result()` and wait_on_a prints `a.result()`: each task waits for the other,
// both workers are taken, and Python hangs for ever ("当回调已关联了一个 Future 然后再等待另一个
// Future 的结果时就会发产死锁情况").
// concur, part 1: a task that waits for tasks it submitted to its own pool is fine — a worker
// waiting on its own pool's future runs the pool's queued tasks meanwhile ("helping"; on any other
// future it just blocks, as in Python), so a naive recursive fib that submits two
// tasks per call and waits for them completes on any number of workers (Python's pool would hang
// as soon as every worker waits). Part 2: a wait that still can never end — the notes' pair —
// raises DeadlockError in the waiting task instead of hanging; the error reaches both futures.
// The notes' time.sleep(5) lets both submit() calls finish before either task looks at the other
// future; here an Event does that job.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

// fork_join_fib(pool, n): fib(n) as two subtasks on `pool`, waited for inside the task.
std::int64_t fork_join_fib(concur::ThreadPoolExecutor& pool, int n) {
  if (n <= 2) return 1;
  concur::Future<std::int64_t> x = pool.submit(fork_join_fib, std::ref(pool), n - 1);
  concur::Future<std::int64_t> y = pool.submit(fork_join_fib, std::ref(pool), n - 2);
  return x.result() + y.result();  // helps: runs queued tasks while it waits
}

constexpr int kFibN = 20;
constexpr std::int64_t kFib20 = 6765;

// outcome(f) waits (bounded) and names how f ended; "hung" when it did not end in time.
std::string outcome(const concur::Future<int>& f, bool& deadlock) {
  deadlock = false;
  try {
    return "returned " + std::to_string(f.result(10s));
  } catch (const concur::DeadlockError& e) {
    deadlock = true;
    return e.what();
  } catch (const concur::TimeoutError&) {
    return "hung";
  }
}

}  // namespace

int main() {
  int failures = 0;

  // 1. Recursive fork-join: completes even on one worker.
  for (std::size_t workers : {1U, 2U, 4U}) {
    concur::ThreadPoolExecutor pool(workers);
    const std::int64_t v = pool.submit(fork_join_fib, std::ref(pool), kFibN).result();
    std::printf("fork-join fib(%d) on %zu worker%s = %lld\n", kFibN, workers,
                workers == 1 ? "" : "s", static_cast<long long>(v));
    if (v != kFib20) {
      std::fprintf(stderr, "FAIL: fork-join fib(%d) = %lld\n", kFibN, static_cast<long long>(v));
      ++failures;
    }
  }

  // 2. The notes' wait_on_a / wait_on_b.
  bool a_deadlock = false;
  bool b_deadlock = false;
  {
    concur::ThreadPoolExecutor executor(concur::ThreadPoolExecutor::Options{
        .max_workers = 2, .thread_name_prefix = "executor", .initializer = {}});
    concur::Event both_submitted;
    concur::Future<int> a;
    concur::Future<int> b;
    auto wait_on_b = [&] {
      (void)both_submitted.wait(10s);   // time.sleep(5)
      std::printf("%d\n", b.result());  // b will never complete because it is waiting on a.
      return 5;
    };
    auto wait_on_a = [&] {
      (void)both_submitted.wait(10s);
      std::printf("%d\n", a.result());  // a will never complete because it is waiting on b.
      return 6;
    };
    a = executor.submit(wait_on_b);
    b = executor.submit(wait_on_a);
    both_submitted.set();  // a and b are assigned: the tasks may read them now

    std::printf("a: %s\n", outcome(a, a_deadlock).c_str());
    std::printf("b: %s\n", outcome(b, b_deadlock).c_str());
    if (!(a.done() && b.done())) {
      // The pool's destructor would wait for the hung tasks for ever: stop right here.
      std::fprintf(stderr, "FAIL: wait_on_a / wait_on_b hung instead of raising DeadlockError\n");
      std::fflush(nullptr);
      std::_Exit(1);
    }
  }
  if (!a_deadlock || !b_deadlock) {
    std::fprintf(stderr, "FAIL: both futures should end with DeadlockError\n");
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
