// src/mp/synchronize.cpp — RobustMutex: a robust, process-shared pthread mutex in an anonymous
// shared page, the core of mp::Lock and mp::RLock.
#include "concur/mp/synchronize.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <new>
#include <string>

#include "concur/mp/shared_memory.hpp"  // OSError

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace concur::mp::detail {

namespace {

// SharedState is what the shared page holds: the robust mutex plus the owner's thread id and
// recursion depth. Tracking the owner here lets misuse (release by a non-owner, re-acquiring a
// Lock) be reported before any pthread call, and makes RLock's recursion ours.
struct SharedState {
  pthread_mutex_t mutex;
  std::atomic<pid_t> owner;  // gettid() of the holder, 0 when free (written only by the holder)
  std::uint32_t depth;       // the holder's recursion depth
};
static_assert(std::atomic<pid_t>::is_always_lock_free, "owner must be lock-free across processes");

SharedState* state(void* page) noexcept { return static_cast<SharedState*>(page); }

// self_tid() is the caller's kernel thread id, cached per thread; a forked child resets its copy
// of the cache (pthread_atfork, registered before any lock exists), since it has a new id.
thread_local pid_t tls_tid = 0;
void reset_tid() noexcept { tls_tid = 0; }
pid_t self_tid() noexcept {
  if (tls_tid == 0) tls_tid = static_cast<pid_t>(::gettid());
  return tls_tid;
}

// throw_errno(call, err) throws mp::OSError ("OSError: [Errno 12] Cannot allocate memory"); the
// failing call is not part of the message, as Python's OSError for a failed mmap.
[[noreturn]] void throw_errno(const char* /*call*/, int err) { throw OSError(err, ""); }

// held_by_me(s) is true when the caller holds the mutex. Besides our owner field it checks the
// robust futex word, whose TID bits the kernel clears when the holder dies: a new thread that
// reuses a dead holder's thread id must not mistake the dead holder's lock for its own.
bool held_by_me(SharedState* s) noexcept {
  const pid_t tid = self_tid();
  if (s->owner.load(std::memory_order_relaxed) != tid) return false;
  const auto word =
      static_cast<unsigned>(__atomic_load_n(&s->mutex.__data.__lock, __ATOMIC_RELAXED));
  return (word & FUTEX_TID_MASK) == static_cast<unsigned>(tid);
}

// took(s) records the caller as the new holder.
void took(SharedState* s) noexcept {
  s->depth = 1;
  s->owner.store(self_tid(), std::memory_order_relaxed);
}

// repair_and_release(s) handles EOWNERDEAD: the caller now holds a mutex whose owner died. It
// marks the mutex consistent and releases it.
void repair_and_release(SharedState* s) noexcept {
  s->depth = 0;
  s->owner.store(0, std::memory_order_relaxed);
  ::pthread_mutex_consistent(&s->mutex);
  ::pthread_mutex_unlock(&s->mutex);
}

// recover(s) repairs and releases, then throws OwnerDiedError, so the caller never holds a lock
// whose data may be half-updated without having been told, and an RAII guard never leaks it.
[[noreturn]] void recover(SharedState* s) {
  repair_and_release(s);
  throw OwnerDiedError();
}

// realtime_deadline(d) converts the monotonic deadline to CLOCK_REALTIME for
// pthread_mutex_timedlock (pthread_mutex_clocklock is not intercepted by every sanitizer); a
// wall-clock jump is caught by re-checking the monotonic deadline after ETIMEDOUT.
timespec realtime_deadline(const concur::detail::Deadline& d) {
  const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(d.remaining()).count();
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const long long total = static_cast<long long>(now.tv_nsec) + left % 1'000'000'000;
  timespec ts{};
  ts.tv_sec = now.tv_sec + static_cast<time_t>(left / 1'000'000'000 + total / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(total % 1'000'000'000);
  return ts;
}

}  // namespace

RobustMutex::RobustMutex(bool recursive) : recursive_(recursive) {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, &reset_tid);
    return true;
  }();
  (void)registered;
  void* p = ::mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
  if (p == MAP_FAILED) throw_errno("mmap", errno);
  auto* s = new (p) SharedState{};
  pthread_mutexattr_t attr;
  ::pthread_mutexattr_init(&attr);
  ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  // Error-checking even for RLock: recursion is counted in SharedState, never by pthread.
  ::pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  const int err = ::pthread_mutex_init(&s->mutex, &attr);
  ::pthread_mutexattr_destroy(&attr);
  if (err != 0) {
    ::munmap(p, sizeof(SharedState));
    throw_errno("pthread_mutex_init", err);
  }
  page_ = p;
}

RobustMutex::~RobustMutex() {
  // Not pthread_mutex_destroy: children may still use their inherited copy of the page; each
  // process only drops its own mapping.
  ::munmap(page_, sizeof(SharedState));
}

bool RobustMutex::reenter() {
  SharedState* s = state(page_);
  if (!held_by_me(s)) return false;
  if (!recursive_) throw DeadlockError("mp::Lock acquired again by the thread holding it");
  ++s->depth;
  return true;
}

void RobustMutex::lock() {
  if (reenter()) return;
  SharedState* s = state(page_);
  int err = 0;
  do {
    err = ::pthread_mutex_lock(&s->mutex);
  } while (err == EINTR || err == EAGAIN);
  if (err == 0) return took(s);
  if (err == EOWNERDEAD) recover(s);
  throw_errno("pthread_mutex_lock", err);
}

bool RobustMutex::lock_until(const concur::detail::Deadline& deadline) {
  if (deadline.is_infinite()) {
    lock();
    return true;
  }
  if (reenter()) return true;
  SharedState* s = state(page_);
  for (;;) {
    int err = ::pthread_mutex_trylock(&s->mutex);
    if (err == EBUSY && !deadline.expired()) {
      const timespec ts = realtime_deadline(deadline);
      err = ::pthread_mutex_timedlock(&s->mutex, &ts);
#if defined(__SANITIZE_THREAD__)
      // TSan's timedlock interceptor does not count EOWNERDEAD as acquired (its lock and trylock
      // interceptors do); tell it, so the repair's unlock is not reported as a misuse.
      if (err == EOWNERDEAD) {
        __tsan_mutex_pre_lock(&s->mutex, __tsan_mutex_try_lock);
        __tsan_mutex_post_lock(&s->mutex, __tsan_mutex_try_lock, 0);
      }
#endif
    }
    switch (err) {
      case 0:
        took(s);
        return true;
      case EOWNERDEAD:
        recover(s);
      case EBUSY:
        return false;
      case ETIMEDOUT:
        if (deadline.expired()) return false;
        continue;  // the realtime clock jumped; recompute from the monotonic deadline
      case EINTR:
      case EAGAIN:
        continue;
      default:
        throw_errno("pthread_mutex_timedlock", err);
    }
  }
}

bool RobustMutex::try_lock() noexcept {
  SharedState* s = state(page_);
  if (held_by_me(s)) {
    if (!recursive_) return false;
    ++s->depth;
    return true;
  }
  const int err = ::pthread_mutex_trylock(&s->mutex);
  if (err == 0) {
    took(s);
    return true;
  }
  // EOWNERDEAD: repair and release, and report "not taken" (this form cannot throw).
  if (err == EOWNERDEAD) repair_and_release(s);
  return false;
}

void RobustMutex::unlock() {
  SharedState* s = state(page_);
  if (!held_by_me(s)) {
    throw RuntimeError(recursive_ ? "cannot release un-acquired lock"
                                  : "release unlocked lock (or a lock held by another thread)");
  }
  if (--s->depth > 0) return;
  s->owner.store(0, std::memory_order_relaxed);
  const int err = ::pthread_mutex_unlock(&s->mutex);
  if (err != 0) throw_errno("pthread_mutex_unlock", err);
}

}  // namespace concur::mp::detail
