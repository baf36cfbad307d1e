// concur/detail/timed_lockable.hpp — TimedLockable<Derived>, the C++ spelling (lock, try_lock,
// unlock, try_lock_for, try_lock_until) of a primitive's Python-named operations (acquire,
// try_acquire, release, acquire(timeout), acquire_until), so that std::scoped_lock,
// std::unique_lock and std::condition_variable_any accept Lock, RLock, Condition and Semaphore.
// Derived provides acquire(), try_acquire() noexcept, release(), acquire(duration) and
// acquire_until(time_point); the mixin adds no state.
// Thread-safety: that of Derived's operations.
#pragma once

#include <chrono>

namespace concur::detail {

template <class Derived>
class TimedLockable {
 public:
  void lock() { (void)self().acquire(); }
  bool try_lock() noexcept { return self().try_acquire(); }
  void unlock() { self().release(); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return self().acquire(timeout);
  }
  template <class C, class D>
  bool try_lock_until(std::chrono::time_point<C, D> tp) {
    return self().acquire_until(tp);
  }

 protected:
  TimedLockable() = default;
  TimedLockable(const TimedLockable&) = default;
  TimedLockable& operator=(const TimedLockable&) = default;
  ~TimedLockable() = default;

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

}  // namespace concur::detail
