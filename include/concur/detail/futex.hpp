// concur/detail/futex.hpp — the kernel wait queue every concur primitive parks on, the cheap
// per-thread identity used for lock ownership, and FutexMutex, the untracked mutex core
// shared by Lock, RLock and Condition.
//
// futex_wait(word, expected, deadline) sleeps while *word == expected, until woken, until the
// deadline, or spuriously; callers re-check their condition in a loop. futex_wake(word, n) wakes
// up to n sleepers. Both are Linux futex(2) calls on a private 32-bit word.
// Thread-safety: all functions are safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"

namespace concur::detail {

// futex_wait returns false only when the deadline passed; true on a wake-up, a value
// mismatch or a spurious return.
CONCUR_EXPORT bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                              const Deadline& deadline) noexcept;
CONCUR_EXPORT void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept;
CONCUR_EXPORT void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;

// cpu_relax() is the spin-loop hint (pause on x86).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// spinning_allowed() is false on a single-CPU machine, where spinning only delays the thread
// that would make progress.
CONCUR_EXPORT bool spinning_allowed() noexcept;

// kSpinBudget bounds how long a waiter spins before it sleeps in the kernel. On the VMs measured
// here a futex wake-up costs ~20 us and a hand-off between two spinning threads well under 1 us
// (docs/benchmarks.md); spinning a few microseconds keeps ping-pong hand-offs out of the kernel
// while capping the CPU a doomed spin can burn.
inline constexpr std::chrono::nanoseconds kSpinBudget{8'000};

// yield_cpu() offers the core to another runnable thread (sched_yield).
CONCUR_EXPORT void yield_cpu() noexcept;

// kSpinPauses is the pure cpu_relax() phase of spin_wait: ~0.5-1 us, long enough for a partner
// running on another core, short enough not to delay one waiting for this core.
inline constexpr int kSpinPauses = 16;

// spin_wait(pred, deadline) waits for pred() without sleeping in the kernel: kSpinPauses
// cpu_relax() steps first (a partner on another core usually answers within them), then yield_cpu()
// between checks, so that when threads outnumber cores the spinner hands its core to the thread it
// waits for instead of burning it. Returns true as soon as pred() is true, or pred() once
// kSpinBudget or the deadline ran out.
template <class Pred>
bool spin_wait(Pred pred, const Deadline& deadline) noexcept {
  if (pred()) return true;
  if (!spinning_allowed()) return false;
  for (int i = 0; i < kSpinPauses; ++i) {
    cpu_relax();
    if (pred()) return true;
  }
  auto end = Clock::now() + kSpinBudget;
  if (!deadline.is_infinite() && deadline.when() < end) end = deadline.when();
  while (Clock::now() < end) {
    yield_cpu();
    if (pred()) return true;
  }
  return pred();
}

// this_thread_token() is a small, never-reused, non-zero id of the calling thread.
extern thread_local constinit std::uint64_t tls_thread_token;
CONCUR_EXPORT std::uint64_t assign_thread_token() noexcept;
inline std::uint64_t this_thread_token() noexcept {
  const std::uint64_t token = tls_thread_token;
  return token != 0 ? token : assign_thread_token();
}

// FutexMutex is a three-state futex mutex (0 free, 1 held, 2 held with sleepers): one CAS to
// lock and one exchange to unlock when uncontended, a short spin, then a kernel sleep. It has no
// owner and no lock-order tracking; the public Lock adds those.
// Memory ordering: everything done before unlock() is visible to the next successful lock().
class FutexMutex {
 public:
  FutexMutex() noexcept = default;
  FutexMutex(const FutexMutex&) = delete;
  FutexMutex& operator=(const FutexMutex&) = delete;

  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void lock() noexcept {
    if (!try_lock()) [[unlikely]]
      lock_slow(Deadline::infinite());
  }
  // lock_until() returns false when the deadline passed first.
  bool lock_until(const Deadline& deadline) noexcept { return try_lock() || lock_slow(deadline); }
  // unlock() returns the previous state; 0 means the mutex was not held (misuse the caller
  // reports).
  std::uint32_t unlock() noexcept {
    const std::uint32_t prev = state_.exchange(0, std::memory_order_release);
    if (prev == 2) [[unlikely]]
      futex_wake(state_, 1);
    return prev;
  }
  [[nodiscard]] bool is_locked() const noexcept {
    return state_.load(std::memory_order_relaxed) != 0;
  }

 private:
  CONCUR_EXPORT bool lock_slow(const Deadline& deadline) noexcept;
  std::atomic<std::uint32_t> state_{0};
};

}  // namespace concur::detail
