// concur/sync/lock.hpp — Lock, Python's threading.Lock: a non-recursive mutual-exclusion lock
// with no owner.
//
// Operations: acquire() blocks, acquire(timeout) / acquire_until(tp) / try_acquire() return
// bool, release() frees it. As in Python, any thread may release a held Lock; releasing an
// unlocked Lock throws RuntimeError. Lock meets *TimedLockable* (lock, try_lock, unlock,
// try_lock_for, try_lock_until), so std::scoped_lock / std::unique_lock replace `with lock:`.
// A second acquire() by the holder blocks forever (use RLock for re-entry) — or, with the
// lock-order checker on, is reported as a DeadlockError.
// Memory ordering: everything done before release() is visible once acquire() returns true.
// Thread-safety: every member may be called from any thread. Lifetime: destroying a held Lock
// is undefined, as for std::mutex.
#pragma once

#include <chrono>
#include <string>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/timed_lockable.hpp"
#include "concur/sync/lock_order.hpp"

namespace concur {

class Condition;

class CONCUR_EXPORT Lock : public detail::TimedLockable<Lock> {
 public:
  Lock() noexcept = default;
  // Lock(name): the name appears in lock-order reports (default "Lock@<address>").
  explicit Lock(std::string name) : name_(std::move(name)) {}
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock();

  // acquire() blocks until the lock is free and takes it. With the lock-order checker on, it
  // throws DeadlockError (default handler) instead of taking a lock in an inverted order.
  void acquire();
  // acquire(timeout) waits at most `timeout` (<= 0 polls once); true when taken.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_deadline(detail::Deadline::after(timeout));
  }
  // acquire_until(tp) waits until the time point `tp`; true when taken.
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return acquire_deadline(detail::Deadline::at(tp));
  }
  // try_acquire() takes the lock only if it is free now (Python: acquire(blocking=False)).
  bool try_acquire() noexcept;
  // release() frees the lock and wakes one waiter; throws RuntimeError("release unlocked lock")
  // when the lock is not held.
  void release();
  // locked() is true while some thread holds the lock (a snapshot).
  [[nodiscard]] bool locked() const noexcept { return mu_.is_locked(); }
  // name() is the name given at construction, or "Lock@<address>".
  [[nodiscard]] std::string name() const;

  // lock / try_lock / unlock / try_lock_for / try_lock_until: detail::TimedLockable.

 private:
  friend class Condition;  // waits release and re-take mu_ directly
  bool acquire_deadline(const detail::Deadline& deadline);
  bool acquire_tracked(const detail::Deadline& deadline);

  detail::FutexMutex mu_;
  std::string name_;
};

// ---------------------------------------------------------------------------------------------

inline void Lock::acquire() {
  if (detail::lock_order_on()) [[unlikely]] {
    acquire_tracked(detail::Deadline::infinite());
    return;
  }
  mu_.lock();
}

inline bool Lock::try_acquire() noexcept {
  const bool taken = mu_.try_lock();
  if (taken && detail::lock_order_on()) [[unlikely]]
    detail::lock_order_acquired(this);
  return taken;
}

inline bool Lock::acquire_deadline(const detail::Deadline& deadline) {
  if (detail::lock_order_on()) [[unlikely]]
    return acquire_tracked(deadline);
  return mu_.lock_until(deadline);
}

}  // namespace concur
