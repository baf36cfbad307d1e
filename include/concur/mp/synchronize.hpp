// concur/mp/synchronize.hpp — process-shared locks (multiprocessing.Lock and RLock) and
// OwnerDiedError.
//
// A Lock or RLock keeps its mutex (a robust, PTHREAD_PROCESS_SHARED pthread mutex) in an anonymous
// MAP_SHARED page allocated at construction, so children forked after construction share it with
// the parent: it is inherited, never attached by name. Operations mirror concur::Lock: acquire(),
// acquire(timeout), acquire_until(tp), try_acquire(), release(), plus detail::TimedLockable, so
// std::scoped_lock / std::unique_lock work.
// Owner death: when a process (or thread) dies holding the lock, the next acquirer does not hang
// (Python's semaphore-based Lock stays locked forever). The lock is repaired
// (pthread_mutex_consistent) and released, and acquire() / acquire(timeout) throw OwnerDiedError
// *without* holding the lock: the data it guarded may be half-updated; the caller decides, then
// acquires again. try_acquire() (noexcept) repairs it and returns false.
// Differences from Python: the lock has an owner (the acquiring thread of the acquiring process);
// releasing it from another thread or process throws RuntimeError, where Python's Lock allows it.
// Re-acquiring a Lock by its holder throws DeadlockError (try_acquire() returns false) instead of
// blocking forever.
// Memory ordering: everything done before release() is visible once acquire() returns true, in
// any process sharing the lock.
// Thread- and process-safety: every member may be called from any thread of any process that
// inherited the lock. Lifetime: each process unmaps its own copy of the page when its Lock object
// is destroyed; destroying it while this process holds it is undefined, as for std::mutex.
#pragma once

#include <chrono>
#include <string>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/timed_lockable.hpp"
#include "concur/errors.hpp"

namespace concur::mp {

// OwnerDiedError: the process (or thread) holding a process-shared lock died without releasing it.
// The lock was made consistent and is free again; what() is "OwnerDiedError: the owner of the lock
// died holding it; the lock was recovered and released".
class CONCUR_EXPORT OwnerDiedError : public BrokenError {
 public:
  explicit OwnerDiedError(const std::string& msg =
                              "the owner of the lock died holding it; the lock was recovered "
                              "and released")
      : BrokenError("OwnerDiedError: " + msg) {}
};

namespace detail {

// RobustMutex is the shared core of Lock and RLock: a robust, process-shared pthread mutex in its
// own anonymous shared page. Not movable: children hold the same address.
class CONCUR_EXPORT RobustMutex {
 public:
  explicit RobustMutex(bool recursive);
  RobustMutex(const RobustMutex&) = delete;
  RobustMutex& operator=(const RobustMutex&) = delete;
  ~RobustMutex();

  void lock();
  bool lock_until(const concur::detail::Deadline& deadline);
  bool try_lock() noexcept;
  void unlock();

 private:
  // reenter() is true (depth counted) when the caller already holds an RLock; throws
  // DeadlockError when it already holds a Lock; false when it does not hold the mutex.
  bool reenter();

  void* page_ = nullptr;  // the mutex, its owner and depth, in a MAP_SHARED | MAP_ANONYMOUS page
  bool recursive_;
};

}  // namespace detail

// Lock is multiprocessing.Lock: non-recursive, process-shared, robust against owner death.
class CONCUR_EXPORT Lock : public concur::detail::TimedLockable<Lock> {
 public:
  // Lock() maps a shared page and initializes the mutex; throws mp::OSError (declared in
  // shared_memory.hpp) when the system refuses.
  Lock() : mu_(false) {}
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // acquire() blocks until the lock is free and takes it. Throws OwnerDiedError (lock not held)
  // when the previous holder died holding it, DeadlockError when this thread already holds it.
  void acquire() { mu_.lock(); }
  // acquire(timeout) waits at most `timeout` (<= 0 polls once); true when taken. Throws as
  // acquire().
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return mu_.lock_until(concur::detail::Deadline::after(timeout));
  }
  // acquire_until(tp) waits until `tp`; true when taken. Throws as acquire().
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return mu_.lock_until(concur::detail::Deadline::at(tp));
  }
  // try_acquire() takes the lock only if it is free now; false when held or just recovered from a
  // dead owner.
  bool try_acquire() noexcept { return mu_.try_lock(); }
  // release() frees the lock; throws RuntimeError when the caller does not hold it.
  void release() { mu_.unlock(); }

 private:
  detail::RobustMutex mu_;
};

// RLock is multiprocessing.RLock: a recursive Lock; the holder may acquire it again and must
// release it as many times. Same owner-death and error rules as Lock.
class CONCUR_EXPORT RLock : public concur::detail::TimedLockable<RLock> {
 public:
  RLock() : mu_(true) {}
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;

  // acquire() blocks until the lock is free or already held by this thread.
  void acquire() { mu_.lock(); }
  // acquire(timeout) waits at most `timeout` (<= 0 polls once); true when taken.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return mu_.lock_until(concur::detail::Deadline::after(timeout));
  }
  // acquire_until(tp) waits until `tp`; true when taken.
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return mu_.lock_until(concur::detail::Deadline::at(tp));
  }
  // try_acquire() takes the lock only if it is free now or held by this thread.
  bool try_acquire() noexcept { return mu_.try_lock(); }
  // release() undoes one acquire; throws RuntimeError("cannot release un-acquired lock") when the
  // caller does not hold it.
  void release() { mu_.unlock(); }

 private:
  detail::RobustMutex mu_;
};

}  // namespace concur::mp
