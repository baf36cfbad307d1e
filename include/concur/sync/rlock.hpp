// concur/sync/rlock.hpp — RLock, Python's threading.RLock: a re-entrant lock with an owner and
// a recursion count.
//
// The owning thread may acquire() again without blocking; each acquire() needs one release(),
// and the lock is free when the count returns to zero. release() by a thread that does not own
// the lock (including release of a free RLock) throws RuntimeError("cannot release un-acquired
// lock") and leaves the lock unchanged. RLock meets *TimedLockable*.
// Memory ordering: everything the owner did before its final release() is visible once another
// thread's acquire() returns true.
// Thread-safety: every member may be called from any thread. Lifetime: destroying a held RLock
// is undefined.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/timed_lockable.hpp"
#include "concur/sync/lock_order.hpp"

namespace concur {

class Condition;

class CONCUR_EXPORT RLock : public detail::TimedLockable<RLock> {
 public:
  RLock() noexcept = default;
  // RLock(name): the name appears in lock-order reports (default "RLock@<address>").
  explicit RLock(std::string name) : name_(std::move(name)) {}
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;
  ~RLock();

  // acquire() returns at once when the caller owns the lock (count + 1), else blocks until free.
  void acquire();
  // acquire(timeout) waits at most `timeout` (<= 0 polls once); true when taken.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_deadline(detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return acquire_deadline(detail::Deadline::at(tp));
  }
  // try_acquire() takes the lock if free or already owned by the caller; never blocks.
  bool try_acquire() noexcept;
  // release() drops one level; throws RuntimeError when the caller is not the owner.
  void release();

  // is_owned() is true when the calling thread owns the lock.
  [[nodiscard]] bool is_owned() const noexcept {
    return owner_.load(std::memory_order_relaxed) == detail::this_thread_token();
  }
  // recursion_count() is the owner's count when called by the owner, else 0 (Python's
  // RLock._recursion_count()).
  [[nodiscard]] std::uint32_t recursion_count() const noexcept { return is_owned() ? count_ : 0; }
  // locked() is true while any thread owns the lock (a snapshot).
  [[nodiscard]] bool locked() const noexcept { return mu_.is_locked(); }
  [[nodiscard]] std::string name() const;

  // lock / try_lock / unlock / try_lock_for / try_lock_until: detail::TimedLockable.

 private:
  friend class Condition;
  bool acquire_deadline(const detail::Deadline& deadline);
  // Condition::wait releases every level at once and restores them after the wait.
  std::uint32_t release_all();
  void restore(std::uint32_t count);

  detail::FutexMutex mu_;
  std::atomic<std::uint64_t> owner_{0};  // token of the owning thread, 0 when free
  std::uint32_t count_ = 0;              // written only by the owner
  std::string name_;
};

}  // namespace concur
