// concur/sync/event.hpp — Event, Python's threading.Event: a flag that threads wait to become
// true.
//
// set() makes the flag true and wakes every waiter; clear() makes it false; wait() blocks until
// the flag is true; wait(timeout) / wait_until(tp) return true when the flag was set during the
// wait (false only when the timeout passed without a set()). A waiter already blocked when set()
// is called returns true even if clear() follows at once (CPython gh-57711): the word carries a
// set() generation as well as the flag.
// Memory ordering: everything done before set() is visible once wait() or is_set() returns true.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"

namespace concur {

class CONCUR_EXPORT Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // set() makes the flag true and wakes all waiters.
  void set() noexcept;
  // clear() makes the flag false; later wait() calls block until the next set().
  void clear() noexcept { word_.fetch_and(~kSetBit, std::memory_order_relaxed); }
  // is_set() reads the flag.
  [[nodiscard]] bool is_set() const noexcept {
    return (word_.load(std::memory_order_acquire) & kSetBit) != 0;
  }

  // wait() blocks until the flag is true.
  void wait() noexcept {
    if (!is_set()) [[unlikely]]
      wait_slow(detail::Deadline::infinite());
  }
  // wait(timeout) blocks at most `timeout`; returns the flag (true unless timed out).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) noexcept {
    return is_set() || wait_slow(detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) noexcept {
    return is_set() || wait_slow(detail::Deadline::at(tp));
  }

 private:
  bool wait_slow(const detail::Deadline& deadline) noexcept;

  // word_: bit 0 is the flag; bits 1..31 count set() calls that raised it (wrapping).
  static constexpr std::uint32_t kSetBit = 1;
  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace concur
