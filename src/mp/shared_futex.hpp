// src/mp/shared_futex.hpp — futex(2) on a word in a MAP_SHARED mapping, for the process-shared
// primitives of concur/mp/synchronize.hpp.
//
// Unlike concur::detail::futex_* (FUTEX_PRIVATE_FLAG: keyed by this process's address space), these
// omit the private flag, so the kernel keys the wait queue by the mapped file page: a waiter and a
// waker in different processes, even at different addresses, meet on the same word.
// shared_futex_wait(word, expected, deadline) sleeps while *word == expected, until woken, until
// the deadline (absolute CLOCK_MONOTONIC, so retries never stretch it), or spuriously (signals);
// it returns false only when the deadline passed. shared_futex_wake(word, n) wakes up to n.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>

#include "concur/detail/deadline.hpp"

namespace concur::mp::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "a futex word must be a plain, lock-free 32-bit atomic");

inline bool shared_futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                              const concur::detail::Deadline& deadline) noexcept {
  if (deadline.expired()) return false;
  timespec ts{};
  const timespec* tsp = nullptr;
  if (!deadline.is_infinite()) {
    ts = deadline.as_timespec();
    tsp = &ts;
  }
  const long rc = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_BITSET,
                            expected, tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  return !(rc == -1 && errno == ETIMEDOUT);
}

inline void shared_futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr, nullptr,
            0);
}

inline void shared_futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  shared_futex_wake(word, INT_MAX);
}

}  // namespace concur::mp::detail
