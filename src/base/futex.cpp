// Linux futex(2) wrappers, thread tokens and FutexMutex's contended path.
#include "concur/detail/futex.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace concur::detail {

bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const Deadline& deadline) noexcept {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so retries after a signal
  // never stretch the total wait.
  timespec ts{};
  const timespec* tsp = nullptr;
  if (!deadline.is_infinite()) {
    ts = deadline.as_timespec();
    tsp = &ts;
  }
  const long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
                          FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp, nullptr,
                          FUTEX_BITSET_MATCH_ANY);
  return !(rc == -1 && errno == ETIMEDOUT);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
          count, nullptr, nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept { futex_wake(word, INT_MAX); }

void yield_cpu() noexcept { ::sched_yield(); }

bool spinning_allowed() noexcept {
  static const bool allowed = ::sysconf(_SC_NPROCESSORS_ONLN) > 1;
  return allowed;
}

thread_local constinit std::uint64_t tls_thread_token = 0;

std::uint64_t assign_thread_token() noexcept {
  static std::atomic<std::uint64_t> next{1};
  tls_thread_token = next.fetch_add(1, std::memory_order_relaxed);
  return tls_thread_token;
}

bool FutexMutex::lock_slow(const Deadline& deadline) noexcept {
  // 1. Spin briefly: a holder on another core usually releases within a few hundred cycles.
  for (int i = 0; i < 64; ++i) {
    if (state_.load(std::memory_order_relaxed) == 0 && try_lock()) return true;
    cpu_relax();
  }
  // 2. Announce a sleeper (state 2) and sleep until the word changes; whoever sees 0 in the
  //    exchange owns the mutex, still marked 2 so its unlock wakes the next sleeper.
  std::uint32_t c = state_.exchange(2, std::memory_order_acquire);
  while (c != 0) {
    if (!futex_wait(state_, 2, deadline)) {
      // 3. Timed out: one last attempt so a release racing the timeout is not wasted.
      c = state_.exchange(2, std::memory_order_acquire);
      return c == 0;
    }
    c = state_.exchange(2, std::memory_order_acquire);
  }
  return true;
}

}  // namespace concur::detail
