// concur/sync/semaphore.hpp — Semaphore and BoundedSemaphore, Python's threading.Semaphore and
// threading.BoundedSemaphore: a counter that acquire() decrements (blocking at zero) and
// release(n) increments.
//
// acquire() blocks while the counter is zero; acquire(timeout) / acquire_until(tp) /
// try_acquire() return bool. release(n) adds n and wakes up to n waiters. BoundedSemaphore's
// release() throws ValueError("Semaphore released too many times") when the counter would
// exceed its initial value, leaving the counter unchanged. Both are *TimedLockable* (lock =
// acquire one unit), so `std::lock_guard g(sem);` is Python's `with sem:`.
// Fairness: not FIFO — a releasing thread's wake-up races new arrivals (as Python's own).
// Capacity: the counter lives in 31 bits; a larger value throws ValueError.
// Memory ordering: everything done before release() is visible to the acquire() that takes
// the released unit.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/timed_lockable.hpp"

namespace concur {

class CONCUR_EXPORT Semaphore : public detail::TimedLockable<Semaphore> {
 public:
  // kMaxValue is the largest counter value.
  static constexpr std::int64_t kMaxValue = 0x7fffffff;

  // Semaphore(value): throws ValueError when value < 0 or value > kMaxValue.
  explicit Semaphore(std::int64_t value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // acquire() blocks until the counter is positive, then decrements it.
  void acquire() {
    if (!try_acquire()) [[unlikely]]
      acquire_slow(detail::Deadline::infinite());
  }
  // acquire(timeout) waits at most `timeout` (<= 0 polls once); true when a unit was taken.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return try_acquire() || acquire_slow(detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return try_acquire() || acquire_slow(detail::Deadline::at(tp));
  }
  // try_acquire() takes a unit only if one is available now.
  bool try_acquire() noexcept {
    std::uint32_t c = count_.load(std::memory_order_relaxed);
    while (c > 0) {
      if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  // release(n) adds n units (n >= 1, else ValueError) and wakes up to n waiters. Throws
  // ValueError on overflow or, for a BoundedSemaphore, when exceeding the initial value.
  void release(std::uint32_t n = 1);
  // value() is a snapshot of the counter.
  [[nodiscard]] std::uint32_t value() const noexcept {
    return count_.load(std::memory_order_relaxed);
  }

  // lock / try_lock / unlock / try_lock_for / try_lock_until: detail::TimedLockable.

 protected:
  Semaphore(std::int64_t value, bool bounded);

 private:
  bool acquire_slow(const detail::Deadline& deadline);

  std::atomic<std::uint32_t> count_{0};
  std::atomic<std::uint32_t> waiters_{0};
  std::uint32_t bound_ = 0;  // the BoundedSemaphore's initial value (0 is a real bound)
  bool bounded_ = false;
};

class CONCUR_EXPORT BoundedSemaphore : public Semaphore {
 public:
  // BoundedSemaphore(value): release() may never raise the counter above `value`.
  explicit BoundedSemaphore(std::int64_t value = 1) : Semaphore(value, true) {}
};

}  // namespace concur
