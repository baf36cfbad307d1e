// Semaphore: a 31-bit counter on a futex word plus a count of sleepers.
//
// Sleepers announce themselves in waiters_ before re-reading the counter, and release() adds to
// the counter before reading waiters_ (both sequentially consistent), so either the sleeper sees
// the new units or the releaser sees the sleeper and wakes it: no lost wake-up.
#include "concur/sync/semaphore.hpp"

#include <climits>
#include <string>

#include "concur/errors.hpp"

namespace concur {

namespace {
std::uint32_t checked_value(std::int64_t value) {
  if (value < 0) throw ValueError("semaphore initial value must be >= 0");
  if (value > Semaphore::kMaxValue) {
    throw ValueError("semaphore initial value must be <= " + std::to_string(Semaphore::kMaxValue));
  }
  return static_cast<std::uint32_t>(value);
}
}  // namespace

Semaphore::Semaphore(std::int64_t value) : count_(checked_value(value)) {}

Semaphore::Semaphore(std::int64_t value, bool bounded) : count_(checked_value(value)) {
  if (bounded) {
    bound_ = count_.load(std::memory_order_relaxed);
    bounded_ = true;
  }
}

void Semaphore::release(std::uint32_t n) {
  if (n < 1) throw ValueError("n must be one or more");
  const std::uint32_t limit = bounded_ ? bound_ : static_cast<std::uint32_t>(kMaxValue);
  std::uint32_t c = count_.load(std::memory_order_relaxed);
  do {
    if (n > limit || c > limit - n) {
      if (bounded_) throw ValueError("Semaphore released too many times");
      throw ValueError("Semaphore value overflow");
    }
  } while (!count_.compare_exchange_weak(c, c + n, std::memory_order_seq_cst,
                                         std::memory_order_relaxed));
  if (waiters_.load(std::memory_order_seq_cst) != 0) {
    detail::futex_wake(count_,
                       n > static_cast<std::uint32_t>(INT_MAX) ? INT_MAX : static_cast<int>(n));
  }
}

bool Semaphore::acquire_slow(const detail::Deadline& deadline) {
  // A release on the other core usually lands within microseconds: spin (bounded) first.
  if (detail::spin_wait([this] { return try_acquire(); }, deadline)) return true;
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  bool taken = false;
  for (;;) {
    std::uint32_t c = count_.load(std::memory_order_seq_cst);
    while (c > 0) {
      if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        taken = true;
        break;
      }
    }
    if (taken) break;
    if (!detail::futex_wait(count_, 0, deadline)) {
      taken = try_acquire();  // a release racing the timeout still counts
      break;
    }
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  return taken;
}

}  // namespace concur
