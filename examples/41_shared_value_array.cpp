// Notes "共享内存" (`multiprocessing.Value` / `Array`): a child process negates a shared double and
// a shared int array, and the parent sees the change — unlike a plain global variable, which a
// child only changes in its own copy. The notes start the child with Process(target=f); until
// concur::mp::Process exists this example forks directly (the parent has no threads yet, so fork
// is safe) and waits with a bounded waitpid loop. Then two children add 1 and 3 to a shared
// Value 10,000 times each under its lock, and the total is exact.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

int plain_global = 1;

// start(fn) forks a child that runs fn and _exit()s with its result.
template <class Fn>
pid_t start(Fn fn) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  return pid;
}

// join(pid) waits at most 30 s for the child; true when it exited with status 0.
bool join(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main() {
  // A plain global changed by a child: the parent never sees it.
  const pid_t changer = start([] {
    plain_global = 100;  // the child's own copy
    return 0;
  });
  if (changer < 0 || !join(changer)) return 1;

  // num = Value('d', 3.1415927); arr = Array('i', range(10))
  mp::Value<double> num(3.1415927);
  mp::Array<int> arr{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

  // def f(n, a): n.value = -n.value; for i in range(len(a)): a[i] = -a[i]
  const pid_t child = start([&] {
    num.set_value(-num.value());
    std::scoped_lock guard(arr.get_lock());
    for (int& x : arr) x = -x;
    return 0;
  });
  bool ok = child > 0 && join(child);

  std::printf("num = %.7f\narr = [", num.value());
  for (std::size_t i = 0; i < arr.size(); ++i) std::printf(i ? ", %d" : "%d", arr[i]);
  std::printf("]\nplain_global in the parent = %d (the child changed only its copy)\n",
              plain_global);
  ok = ok && num.value() == -3.1415927 && plain_global == 1;
  for (std::size_t i = 0; i < arr.size(); ++i) ok = ok && arr[i] == -static_cast<int>(i);

  // Two processes adding 1 and 3 under the Value's lock: the total is exact.
  constexpr int kRounds = 10'000;
  mp::Value<int> total(0);
  auto adder = [&total](int step) {
    return [&total, step] {
      for (int i = 0; i < kRounds; ++i) {
        std::scoped_lock guard(total.get_lock());
        total.get_obj() += step;
      }
      return 0;
    };
  };
  const pid_t a = start(adder(1));
  const pid_t b = start(adder(3));
  ok = a > 0 && b > 0 && join(a) && join(b) && ok;
  std::printf("total with the lock = %d (expected %d)\n", total.value(), 4 * kRounds);
  ok = ok && total.value() == 4 * kRounds;

  std::printf(ok ? "invariants hold\n" : "INVARIANT VIOLATED\n");
  return ok ? 0 : 1;
}
