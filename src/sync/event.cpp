// Event: a flag plus a set() generation on one futex word, and a count of sleepers.
//
// set() raises the flag and bumps the generation in one CAS, then wakes sleepers if any (the
// same announce-then-recheck handshake as Semaphore: no lost wake-up). A sleeper returns true
// when it sees the flag up *or* the generation moved since it started waiting, so a set()
// immediately undone by clear() still releases everyone who was waiting at that moment.
#include "concur/sync/event.hpp"

namespace concur {

void Event::set() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  do {
    if ((w & kSetBit) != 0) return;  // already set: every waiter has been released
  } while (!word_.compare_exchange_weak(w, (w + 2) | kSetBit, std::memory_order_seq_cst,
                                        std::memory_order_relaxed));
  if (waiters_.load(std::memory_order_seq_cst) != 0) detail::futex_wake_all(word_);
}

bool Event::wait_slow(const detail::Deadline& deadline) noexcept {
  if (detail::spin_wait([this] { return is_set(); }, deadline)) return true;
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  const std::uint32_t start = word_.load(std::memory_order_seq_cst);
  bool signaled = (start & kSetBit) != 0;
  std::uint32_t w = start;
  while (!signaled) {
    if (!detail::futex_wait(word_, w, deadline)) {
      w = word_.load(std::memory_order_acquire);
      signaled = (w & kSetBit) != 0 || (w >> 1) != (start >> 1);
      break;
    }
    w = word_.load(std::memory_order_acquire);
    signaled = (w & kSetBit) != 0 || (w >> 1) != (start >> 1);
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  return signaled;
}

}  // namespace concur
