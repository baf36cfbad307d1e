// RLock: ownership, recursion and the Condition hand-off.
#include "concur/sync/rlock.hpp"

#include <cstdio>

#include "concur/errors.hpp"

namespace concur {

RLock::~RLock() {
  if (detail::lock_order_on()) detail::lock_order_forget(this);
}

void RLock::acquire() { acquire_deadline(detail::Deadline::infinite()); }

bool RLock::acquire_deadline(const detail::Deadline& deadline) {
  const std::uint64_t me = detail::this_thread_token();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++count_;  // re-entry: no new lock-order edge
    return true;
  }
  const bool tracked = detail::lock_order_on();
  if (tracked) [[unlikely]]
    detail::lock_order_before_acquire(this, name());
  if (!mu_.lock_until(deadline)) return false;
  owner_.store(me, std::memory_order_relaxed);
  count_ = 1;
  if (tracked) [[unlikely]]
    detail::lock_order_acquired(this);
  return true;
}

bool RLock::try_acquire() noexcept {
  const std::uint64_t me = detail::this_thread_token();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++count_;
    return true;
  }
  if (!mu_.try_lock()) return false;
  owner_.store(me, std::memory_order_relaxed);
  count_ = 1;
  if (detail::lock_order_on()) [[unlikely]]
    detail::lock_order_acquired(this);
  return true;
}

void RLock::release() {
  if (owner_.load(std::memory_order_relaxed) != detail::this_thread_token()) {
    throw RuntimeError("cannot release un-acquired lock");
  }
  if (--count_ == 0) {
    owner_.store(0, std::memory_order_relaxed);
    if (detail::lock_order_on()) [[unlikely]]
      detail::lock_order_released(this);
    mu_.unlock();
  }
}

std::uint32_t RLock::release_all() {
  const std::uint32_t saved = count_;
  count_ = 0;
  owner_.store(0, std::memory_order_relaxed);
  if (detail::lock_order_on()) [[unlikely]]
    detail::lock_order_released(this);
  mu_.unlock();
  return saved;
}

void RLock::restore(std::uint32_t count) {
  // Re-taking the condition's own lock after a wait is not a new ordering decision.
  mu_.lock();
  owner_.store(detail::this_thread_token(), std::memory_order_relaxed);
  count_ = count;
  if (detail::lock_order_on()) [[unlikely]]
    detail::lock_order_acquired(this);
}

std::string RLock::name() const {
  if (!name_.empty()) return name_;
  char buf[48];
  std::snprintf(buf, sizeof buf, "RLock@%p", static_cast<const void*>(this));
  return buf;
}

}  // namespace concur
