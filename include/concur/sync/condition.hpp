// concur/sync/condition.hpp — Condition, Python's threading.Condition: a condition variable
// bound to one lock (its own RLock by default, or a Lock / RLock the caller passes).
//
// wait() atomically releases the lock (every level of an RLock), sleeps until notified, and
// re-acquires it before returning; wait(timeout) / wait_until(tp) return false on timeout.
// wait_for(pred[, timeout]) loops until pred() is true and returns pred()'s last value.
// notify(n) wakes exactly min(n, waiting) waiters in FIFO order — a waiter whose timeout fired
// is never counted as woken; notify_all() wakes every waiter. Calling wait or notify without
// holding the lock throws RuntimeError, as in Python. Condition itself is *TimedLockable*
// (it locks the underlying lock), so `std::unique_lock lk(cond);` is Python's `with cond:`.
// Memory ordering: everything done before notify() under the lock is visible once wait()
// returns, because wait() re-acquires the lock.
// Thread-safety: every member may be called from any thread. Lifetime: a Condition built over a
// caller's lock must not outlive it; destroying a Condition with waiters is undefined.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/timed_lockable.hpp"
#include "concur/sync/lock.hpp"
#include "concur/sync/rlock.hpp"

namespace concur {

class CONCUR_EXPORT Condition : public detail::TimedLockable<Condition> {
 public:
  // Condition() owns a fresh RLock, like threading.Condition().
  Condition();
  // Condition(lock) / Condition(rlock) use the caller's lock, which must outlive the Condition.
  explicit Condition(Lock& lock) noexcept;
  explicit Condition(RLock& rlock) noexcept;
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition();

  // wait() releases the lock, blocks until notified, re-acquires the lock. Throws RuntimeError
  // ("cannot wait on un-acquired lock") when the caller does not hold the lock.
  void wait() { wait_deadline(detail::Deadline::infinite()); }
  // wait(timeout) is wait() bounded by `timeout`; false when it timed out (the lock is held
  // again either way).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_deadline(detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) {
    return wait_deadline(detail::Deadline::at(tp));
  }

  // wait_for(pred) waits until pred() is true (pred is evaluated with the lock held).
  template <class Predicate>
  bool wait_for(Predicate pred) {
    return wait_pred(pred, detail::Deadline::infinite());
  }
  // wait_for(pred, timeout) returns pred()'s value when it became true or the timeout passed.
  template <class Predicate, class Rep, class Period>
  bool wait_for(Predicate pred, std::chrono::duration<Rep, Period> timeout) {
    return wait_pred(pred, detail::Deadline::after(timeout));
  }
  template <class Predicate, class C, class D>
  bool wait_until(Predicate pred, std::chrono::time_point<C, D> tp) {
    return wait_pred(pred, detail::Deadline::at(tp));
  }

  // notify(n) wakes up to n waiters (oldest first). Throws RuntimeError ("cannot notify on
  // un-acquired lock") when the caller does not hold the lock.
  void notify(std::size_t n = 1);
  // notify_all() wakes every current waiter.
  void notify_all();

  // The underlying lock, and its Lockable spelling.
  void acquire();
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return rlock_ != nullptr ? rlock_->acquire(timeout) : lock_->acquire(timeout);
  }
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return rlock_ != nullptr ? rlock_->acquire_until(tp) : lock_->acquire_until(tp);
  }
  bool try_acquire() noexcept;
  void release();
  // lock / try_lock / unlock / try_lock_for / try_lock_until: detail::TimedLockable.

 private:
  struct Waiter;

  bool wait_deadline(const detail::Deadline& deadline);
  template <class Predicate>
  bool wait_pred(Predicate& pred, const detail::Deadline& deadline) {
    bool result = static_cast<bool>(pred());
    while (!result) {
      if (deadline.expired()) break;
      wait_deadline(deadline);
      result = static_cast<bool>(pred());
    }
    return result;
  }
  // is_owned(): RLock — owned by the caller; Lock — held by someone (Python's own test).
  [[nodiscard]] bool is_owned() const noexcept;
  void unlink(Waiter& w) noexcept;

  std::unique_ptr<RLock> own_;  // set by Condition()
  Lock* lock_ = nullptr;        // exactly one of lock_ / rlock_ is set
  RLock* rlock_ = nullptr;

  detail::FutexMutex waiters_mu_;                          // guards the waiter list
  Waiter* head_ CONCUR_GUARDED_BY(waiters_mu_) = nullptr;  // FIFO of sleeping waiters
  Waiter* tail_ CONCUR_GUARDED_BY(waiters_mu_) = nullptr;
};

}  // namespace concur
