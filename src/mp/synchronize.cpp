// src/mp/synchronize.cpp — the process-shared primitives of concur/mp/synchronize.hpp, each a
// struct in its own SharedRegion:
//
// - RobustMutex (Lock, RLock): a robust, process-shared pthread mutex plus owner tid and depth.
// - Semaphore: a 31-bit counter on a shared futex word plus a sleepers hint; sleepers announce
//   themselves before re-reading the counter and release() adds before reading the hint (both
//   seq_cst), so no wake-up is lost. A dead sleeper only leaves the hint high (extra wake calls).
// - Event: flag + set() generation on one shared futex word (concur::Event's algorithm).
// - Condition: kMaxWaiters slots; a waiter claims one (under the user's lock), locks the slot's
//   robust mutex, publishes kWaiting with a FIFO ticket, releases the user's lock and sleeps on the
//   slot's state word. notify(n) (under the user's lock) flips the oldest kWaiting slots to
//   kNotified — counting only successful flips — after a trylock on the slot mutex proves the
//   waiter alive (EBUSY) or dead (EOWNERDEAD: the slot is reclaimed, nothing counted). A timed-out
//   waiter flips its own slot kWaiting -> kTimedOut; exactly one side wins.
// - Barrier: counters under a robust mutex; waiters sleep on a sequence word bumped by every
//   change (release, break, reset), waking once a second to notice a holder of the mutex that
//   died (in the action); each round's outcome (released or reset) is kept in a 1024-round
//   history bitmap.
#include "concur/mp/synchronize.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <limits>
#include <new>
#include <string>

#include "concur/detail/futex.hpp"      // spin_wait
#include "concur/mp/shared_memory.hpp"  // OSError
#include "shared_futex.hpp"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace concur::mp {

namespace detail {

namespace {

using concur::detail::Deadline;

// Every shared struct starts with a Header, checked when a region is loaded: bytes meant for
// another primitive (or garbage) throw UnpicklingError instead of being used.
constexpr std::uint32_t kMagic = 0x636f6e63;  // "conc"
enum Kind : std::uint32_t {
  kLockKind = 1,
  kRLockKind,
  kSemaphoreKind,
  kBoundedSemaphoreKind,
  kEventKind,
  kConditionKind,
  kBarrierKind
};
struct Header {
  std::uint32_t magic;
  std::uint32_t kind;
};

// check_kind(region, bytes, kind, what) validates a received region before it replaces one.
void check_kind(const SharedRegion& region, std::size_t bytes, Kind kind, const char* what) {
  const auto* h = region.as<Header>();
  if (region.size() != bytes || h->magic != kMagic || h->kind != kind) {
    throw UnpicklingError(std::string("the received shared region is not an mp::") + what);
  }
}

// throw_errno(err) throws mp::OSError ("OSError: [Errno 12] Cannot allocate memory").
[[noreturn]] void throw_errno(int err) { throw OSError(err, ""); }

// init_robust(m, type) initializes a robust, process-shared pthread mutex of `type`.
void init_robust(pthread_mutex_t* m, int type) {
  pthread_mutexattr_t attr;
  ::pthread_mutexattr_init(&attr);
  ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  ::pthread_mutexattr_settype(&attr, type);
  const int err = ::pthread_mutex_init(m, &attr);
  ::pthread_mutexattr_destroy(&attr);
  if (err != 0) throw_errno(err);
}

// ---- RobustMutex

// MutexState is what a Lock's region holds: the robust mutex plus the owner's thread id and
// recursion depth. Tracking the owner here lets misuse (release by a non-owner, re-acquiring a
// Lock) be reported before any pthread call, and makes RLock's recursion ours.
struct MutexState {
  Header header;
  pthread_mutex_t mutex;
  std::atomic<pid_t> owner;  // gettid() of the holder, 0 when free (written only by the holder)
  std::uint32_t depth;       // the holder's recursion depth
};
static_assert(std::atomic<pid_t>::is_always_lock_free, "owner must be lock-free across processes");

// self_tid() is the caller's kernel thread id, cached per thread; a forked child resets its copy
// of the cache (pthread_atfork, registered before any lock exists), since it has a new id.
thread_local pid_t tls_tid = 0;
void reset_tid() noexcept { tls_tid = 0; }
pid_t self_tid() noexcept {
  if (tls_tid == 0) tls_tid = static_cast<pid_t>(::gettid());
  return tls_tid;
}
void register_atfork() {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, &reset_tid);
    return true;
  }();
  (void)registered;
}

// held_by_me(s) is true when the caller holds the mutex. Besides our owner field it checks the
// robust futex word, whose TID bits the kernel clears when the holder dies: a new thread that
// reuses a dead holder's thread id must not mistake the dead holder's lock for its own.
bool held_by_me(MutexState* s) noexcept {
  const pid_t tid = self_tid();
  if (s->owner.load(std::memory_order_relaxed) != tid) return false;
  const auto word =
      static_cast<unsigned>(__atomic_load_n(&s->mutex.__data.__lock, __ATOMIC_RELAXED));
  return (word & FUTEX_TID_MASK) == static_cast<unsigned>(tid);
}

// took(s) records the caller as the new holder.
void took(MutexState* s) noexcept {
  s->depth = 1;
  s->owner.store(self_tid(), std::memory_order_relaxed);
}

// repair_and_release(s) handles EOWNERDEAD: the caller now holds a mutex whose owner died. It
// marks the mutex consistent and releases it.
void repair_and_release(MutexState* s) noexcept {
  s->depth = 0;
  s->owner.store(0, std::memory_order_relaxed);
  ::pthread_mutex_consistent(&s->mutex);
  ::pthread_mutex_unlock(&s->mutex);
}

// recover(s) repairs and releases, then throws OwnerDiedError, so the caller never holds a lock
// whose data may be half-updated without having been told, and an RAII guard never leaks it.
[[noreturn]] void recover(MutexState* s) {
  repair_and_release(s);
  throw OwnerDiedError();
}

// realtime_deadline(d) converts the monotonic deadline to CLOCK_REALTIME for
// pthread_mutex_timedlock (pthread_mutex_clocklock is not intercepted by every sanitizer); a
// wall-clock jump is caught by re-checking the monotonic deadline after ETIMEDOUT.
timespec realtime_deadline(const Deadline& d) {
  const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(d.remaining()).count();
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const long long total = static_cast<long long>(now.tv_nsec) + left % 1'000'000'000;
  timespec ts{};
  ts.tv_sec = now.tv_sec + static_cast<time_t>(left / 1'000'000'000 + total / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(total % 1'000'000'000);
  return ts;
}

// ---- Internal robust lock (Condition slots, Barrier)

// InternalLock locks a robust mutex guarding a primitive's own bookkeeping. owner_died() is true
// when the previous holder died holding it (the mutex was made consistent and is held).
class InternalLock {
 public:
  explicit InternalLock(pthread_mutex_t* m) : m_(m) {
    int err = 0;
    do {
      err = ::pthread_mutex_lock(m_);
    } while (err == EINTR || err == EAGAIN);
    if (err == EOWNERDEAD) {
      ::pthread_mutex_consistent(m_);
      owner_died_ = true;
    } else if (err != 0) {
      throw_errno(err);
    }
  }
  InternalLock(const InternalLock&) = delete;
  InternalLock& operator=(const InternalLock&) = delete;
  ~InternalLock() { ::pthread_mutex_unlock(m_); }
  [[nodiscard]] bool owner_died() const noexcept { return owner_died_; }

 private:
  pthread_mutex_t* m_;
  bool owner_died_ = false;
};

}  // namespace

RobustMutex::RobustMutex(bool recursive) : region_(sizeof(MutexState)), recursive_(recursive) {
  register_atfork();
  auto* s = new (region_.data()) MutexState{};
  // Error-checking even for RLock: recursion is counted in MutexState, never by pthread.
  init_robust(&s->mutex, PTHREAD_MUTEX_ERRORCHECK);
  s->header = {kMagic, recursive ? kRLockKind : kLockKind};
}

void RobustMutex::adopt(SharedRegion region) {
  register_atfork();
  check_kind(region, sizeof(MutexState), recursive_ ? kRLockKind : kLockKind,
             recursive_ ? "RLock" : "Lock");
  region_ = std::move(region);
}

bool RobustMutex::held_by_caller() const noexcept { return held_by_me(region_.as<MutexState>()); }

bool RobustMutex::reenter() {
  MutexState* s = region_.as<MutexState>();
  if (!held_by_me(s)) return false;
  if (!recursive_) throw DeadlockError("mp::Lock acquired again by the thread holding it");
  ++s->depth;
  return true;
}

void RobustMutex::lock() {
  if (reenter()) return;
  MutexState* s = region_.as<MutexState>();
  int err = 0;
  do {
    err = ::pthread_mutex_lock(&s->mutex);
  } while (err == EINTR || err == EAGAIN);
  if (err == 0) return took(s);
  if (err == EOWNERDEAD) recover(s);
  throw_errno(err);
}

bool RobustMutex::lock_until(const Deadline& deadline) {
  if (deadline.is_infinite()) {
    lock();
    return true;
  }
  if (reenter()) return true;
  MutexState* s = region_.as<MutexState>();
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
        throw_errno(err);
    }
  }
}

bool RobustMutex::try_lock() noexcept {
  MutexState* s = region_.as<MutexState>();
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
  MutexState* s = region_.as<MutexState>();
  if (!held_by_me(s)) {
    throw RuntimeError(recursive_ ? "cannot release un-acquired lock"
                                  : "release unlocked lock (or a lock held by another thread)");
  }
  if (--s->depth > 0) return;
  s->owner.store(0, std::memory_order_relaxed);
  const int err = ::pthread_mutex_unlock(&s->mutex);
  if (err != 0) throw_errno(err);
}

std::uint32_t RobustMutex::unlock_all() {
  MutexState* s = region_.as<MutexState>();
  if (!held_by_me(s)) throw RuntimeError("cannot release un-acquired lock");
  const std::uint32_t depth = s->depth;
  s->depth = 1;
  unlock();
  return depth;
}

void RobustMutex::lock_restore(std::uint32_t depth) {
  lock();
  region_.as<MutexState>()->depth = depth;
}

}  // namespace detail

namespace {

using concur::detail::Deadline;
using detail::check_kind;
using detail::Header;
using detail::InternalLock;
using detail::kMagic;
using detail::shared_futex_wait;
using detail::shared_futex_wake;
using detail::shared_futex_wake_all;
using detail::SharedRegion;

// ---- Semaphore

struct SemaphoreState {
  Header header;
  std::atomic<std::uint32_t> count;    // the futex word
  std::atomic<std::uint32_t> waiters;  // sleepers hint (a dead sleeper leaves it high)
  std::uint32_t bound;                 // BoundedSemaphore's initial value
};

std::uint32_t checked_value(std::int64_t value) {
  if (value < 0) throw ValueError("semaphore initial value must be >= 0");
  if (value > Semaphore::kMaxValue) {
    throw ValueError("semaphore initial value must be <= " + std::to_string(Semaphore::kMaxValue));
  }
  return static_cast<std::uint32_t>(value);
}

bool take_unit(SemaphoreState* s) noexcept {
  std::uint32_t c = s->count.load(std::memory_order_relaxed);
  while (c > 0) {
    if (s->count.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

// ---- Event

struct EventState {
  Header header;
  std::atomic<std::uint32_t> word;  // bit 0: the flag; bits 1..31: set() generation (wrapping)
  std::atomic<std::uint32_t> waiters;
};
constexpr std::uint32_t kSetBit = 1;

// ---- Condition

enum SlotState : std::uint32_t { kFree = 0, kClaimed, kWaiting, kNotified, kTimedOut };

// Slot is one waiter's place. Invariant: while state != kFree, the slot's waiter holds `mutex`
// (or died holding it), because it locks the mutex before leaving kClaimed and sets kFree before
// unlocking; so a trylock on a non-free slot returns EBUSY for a live waiter and EOWNERDEAD for a
// dead one. Slots are claimed and reclaimed only under the Condition's user lock.
struct Slot {
  pthread_mutex_t mutex;
  std::atomic<std::uint32_t> state;  // SlotState; the waiter's futex word
  std::uint64_t ticket;              // FIFO order among kWaiting slots
};

struct ConditionState {
  Header header;
  std::atomic<std::uint64_t> next_ticket;
  std::atomic<std::uint32_t> occupied;  // non-free slots (a hint to skip scans)
  Slot slots[Condition::kMaxWaiters];
};

// free_slot(st, slot) returns a slot to the pool (its owner, or a reclaimer holding the mutex).
void free_slot(ConditionState* st, Slot& slot) noexcept {
  slot.state.store(kFree, std::memory_order_release);
  st->occupied.fetch_sub(1, std::memory_order_relaxed);
}

// Probe is what a trylock on a non-free slot's mutex says about its waiter.
enum class Probe { kAlive, kReclaimed, kGone };

// probe(st, slot) checks the waiter of a non-free slot: kAlive (it holds the mutex), kReclaimed
// (it died: the slot was freed), kGone (it left meanwhile). Caller holds the user lock.
Probe probe(ConditionState* st, Slot& slot) noexcept {
  const int err = ::pthread_mutex_trylock(&slot.mutex);
  if (err == EBUSY) return Probe::kAlive;
  if (err == EOWNERDEAD) {
    ::pthread_mutex_consistent(&slot.mutex);
    if (slot.state.load(std::memory_order_acquire) != kFree) free_slot(st, slot);
    ::pthread_mutex_unlock(&slot.mutex);
    return Probe::kReclaimed;
  }
  if (err == 0) {
    // Not held: the waiter freed the slot between our read of its state and the trylock (no
    // waiter ever holds a non-free slot without its mutex while the user lock is held by us).
    if (slot.state.load(std::memory_order_acquire) != kFree) free_slot(st, slot);
    ::pthread_mutex_unlock(&slot.mutex);
  }
  return Probe::kGone;
}

// claim_slot(st) takes a free slot for the calling waiter (which holds the user lock), reclaiming
// the slots of dead waiters when none is free. Throws RuntimeError when all are in use.
Slot& claim_slot(ConditionState* st) {
  for (int pass = 0; pass < 2; ++pass) {
    for (Slot& slot : st->slots) {
      std::uint32_t expected = kFree;
      if (slot.state.load(std::memory_order_relaxed) == kFree &&
          slot.state.compare_exchange_strong(expected, kClaimed, std::memory_order_acquire)) {
        st->occupied.fetch_add(1, std::memory_order_relaxed);
        return slot;
      }
    }
    if (pass == 0) {
      for (Slot& slot : st->slots) {
        if (slot.state.load(std::memory_order_acquire) != kFree) (void)probe(st, slot);
      }
    }
  }
  throw RuntimeError("too many waiters on a Condition (kMaxWaiters = " +
                     std::to_string(Condition::kMaxWaiters) + ")");
}

// ---- Barrier

constexpr std::size_t kHistoryRounds = 1024;
// kBarrierProbe is how often a sleeping Barrier waiter checks that the internal lock's holder
// (the process running the action) is alive.
constexpr auto kBarrierProbe = std::chrono::seconds(1);

struct BarrierState {
  Header header;
  pthread_mutex_t mutex;           // robust; guards everything below but seq
  std::atomic<std::uint32_t> seq;  // the futex word: bumped by every release, break and reset
  std::uint32_t parties;
  std::int64_t timeout_ns;  // Options::timeout, -1 for none
  std::uint32_t has_action;
  std::uint32_t count;                            // arrivals in the current round
  std::uint32_t broken;                           // 1 while broken
  std::uint64_t generation;                       // rounds ended so far
  std::uint64_t reset_bits[kHistoryRounds / 64];  // bit g % 1024: round g ended by reset()
};

bool ended_by_reset(const BarrierState* s, std::uint64_t g) noexcept {
  return ((s->reset_bits[(g % kHistoryRounds) / 64] >> (g % 64)) & 1U) != 0;
}

// end_round(s, by_reset) closes the current round (caller holds s->mutex) and wakes everyone.
void end_round(BarrierState* s, bool by_reset) noexcept {
  const std::uint64_t g = s->generation;
  std::uint64_t& word = s->reset_bits[(g % kHistoryRounds) / 64];
  const std::uint64_t bit = std::uint64_t{1} << (g % 64);
  word = by_reset ? (word | bit) : (word & ~bit);
  s->generation = g + 1;
  s->count = 0;
  s->seq.fetch_add(1, std::memory_order_release);
  shared_futex_wake_all(s->seq);
}

void break_barrier(BarrierState* s) noexcept {
  s->broken = 1;
  s->seq.fetch_add(1, std::memory_order_release);
  shared_futex_wake_all(s->seq);
}

// check_owner(lk, s): when the internal lock's previous holder died (its bookkeeping or action
// may be half-done), break the barrier and throw BrokenBarrierError.
void check_owner(const InternalLock& lk, BarrierState* s) {
  if (lk.owner_died()) {
    break_barrier(s);
    throw BrokenBarrierError("a process died inside the barrier");
  }
}

}  // namespace

// ---- Semaphore

Semaphore::Semaphore(std::int64_t value) : Semaphore(value, false) {}

Semaphore::Semaphore(std::int64_t value, bool bounded)
    : region_(sizeof(SemaphoreState)), bounded_(bounded) {
  const std::uint32_t v = checked_value(value);
  auto* s = new (region_.data()) SemaphoreState{};
  s->count.store(v, std::memory_order_relaxed);
  s->bound = bounded ? v : static_cast<std::uint32_t>(kMaxValue);
  s->header = {kMagic, bounded ? detail::kBoundedSemaphoreKind : detail::kSemaphoreKind};
}

void Semaphore::adopt(SharedRegion region) {
  check_kind(region, sizeof(SemaphoreState),
             bounded_ ? detail::kBoundedSemaphoreKind : detail::kSemaphoreKind,
             bounded_ ? "BoundedSemaphore" : "Semaphore");
  region_ = std::move(region);
}

bool Semaphore::try_acquire() noexcept { return take_unit(region_.as<SemaphoreState>()); }

std::uint32_t Semaphore::get_value() const noexcept {
  return region_.as<SemaphoreState>()->count.load(std::memory_order_relaxed);
}

void Semaphore::release(std::uint32_t n) {
  if (n < 1) throw ValueError("n must be one or more");
  SemaphoreState* s = region_.as<SemaphoreState>();
  const std::uint32_t limit = s->bound;
  std::uint32_t c = s->count.load(std::memory_order_relaxed);
  do {
    if (n > limit || c > limit - n) {
      if (bounded_) throw ValueError("Semaphore released too many times");
      throw ValueError("Semaphore value overflow");
    }
  } while (!s->count.compare_exchange_weak(c, c + n, std::memory_order_seq_cst,
                                           std::memory_order_relaxed));
  if (s->waiters.load(std::memory_order_seq_cst) != 0) {
    shared_futex_wake(s->count,
                      n > static_cast<std::uint32_t>(INT_MAX) ? INT_MAX : static_cast<int>(n));
  }
}

bool Semaphore::acquire_deadline(const Deadline& deadline) {
  SemaphoreState* s = region_.as<SemaphoreState>();
  if (take_unit(s)) return true;
  if (concur::detail::spin_wait([s] { return take_unit(s); }, deadline)) return true;
  s->waiters.fetch_add(1, std::memory_order_seq_cst);
  bool taken = false;
  for (;;) {
    std::uint32_t c = s->count.load(std::memory_order_seq_cst);
    while (c > 0) {
      if (s->count.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
        taken = true;
        break;
      }
    }
    if (taken) break;
    if (!shared_futex_wait(s->count, 0, deadline)) {
      taken = take_unit(s);  // a release racing the timeout still counts
      break;
    }
  }
  s->waiters.fetch_sub(1, std::memory_order_relaxed);
  return taken;
}

// ---- Event

Event::Event() : region_(sizeof(EventState)) {
  auto* s = new (region_.data()) EventState{};
  s->header = {kMagic, detail::kEventKind};
}

void Event::adopt(SharedRegion region) {
  check_kind(region, sizeof(EventState), detail::kEventKind, "Event");
  region_ = std::move(region);
}

void Event::set() noexcept {
  EventState* s = region_.as<EventState>();
  std::uint32_t w = s->word.load(std::memory_order_relaxed);
  do {
    if ((w & kSetBit) != 0) return;  // already set: every waiter has been released
  } while (!s->word.compare_exchange_weak(w, (w + 2) | kSetBit, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  if (s->waiters.load(std::memory_order_seq_cst) != 0) shared_futex_wake_all(s->word);
}

void Event::clear() noexcept {
  region_.as<EventState>()->word.fetch_and(~kSetBit, std::memory_order_relaxed);
}

bool Event::is_set() const noexcept {
  return (region_.as<EventState>()->word.load(std::memory_order_acquire) & kSetBit) != 0;
}

bool Event::wait_deadline(const Deadline& deadline) noexcept {
  EventState* s = region_.as<EventState>();
  if ((s->word.load(std::memory_order_acquire) & kSetBit) != 0) return true;
  if (concur::detail::spin_wait(
          [s] { return (s->word.load(std::memory_order_acquire) & kSetBit) != 0; }, deadline)) {
    return true;
  }
  s->waiters.fetch_add(1, std::memory_order_seq_cst);
  const std::uint32_t start = s->word.load(std::memory_order_seq_cst);
  bool signaled = (start & kSetBit) != 0;
  std::uint32_t w = start;
  while (!signaled) {
    const bool woke = shared_futex_wait(s->word, w, deadline);
    w = s->word.load(std::memory_order_acquire);
    signaled = (w & kSetBit) != 0 || (w >> 1) != (start >> 1);
    if (!woke) break;
  }
  s->waiters.fetch_sub(1, std::memory_order_relaxed);
  return signaled;
}

// ---- Condition

namespace {
SharedRegion make_condition_region() {
  SharedRegion region(sizeof(ConditionState));
  auto* st = new (region.data()) ConditionState{};
  for (Slot& slot : st->slots) detail::init_robust(&slot.mutex, PTHREAD_MUTEX_NORMAL);
  st->header = {kMagic, detail::kConditionKind};
  return region;
}
}  // namespace

Condition::Condition()
    : own_rlock_(std::make_unique<RLock>()),
      rlock_(own_rlock_.get()),
      region_(make_condition_region()) {}
Condition::Condition(Lock& lock) : lock_(&lock), region_(make_condition_region()) {}
Condition::Condition(RLock& rlock) : rlock_(&rlock), region_(make_condition_region()) {}
Condition::~Condition() = default;

void Condition::adopt(SharedRegion region, std::unique_ptr<RLock> rlock,
                      std::unique_ptr<Lock> lock) {
  check_kind(region, sizeof(ConditionState), detail::kConditionKind, "Condition");
  region_ = std::move(region);
  own_rlock_ = std::move(rlock);
  own_lock_ = std::move(lock);
  rlock_ = own_rlock_.get();
  lock_ = own_lock_.get();
}

bool Condition::wait_deadline(const Deadline& deadline) {
  detail::RobustMutex& mu = mutex();
  if (!mu.held_by_caller()) throw RuntimeError("cannot wait on un-acquired lock");
  auto* st = region_.as<ConditionState>();
  // 1. Claim a slot and hold its robust mutex (the proof of life notify() checks), then publish
  //    kWaiting with a ticket; all under the user's lock, so no notify() runs meanwhile.
  Slot& slot = claim_slot(st);
  if (::pthread_mutex_lock(&slot.mutex) == EOWNERDEAD) ::pthread_mutex_consistent(&slot.mutex);
  slot.ticket = st->next_ticket.fetch_add(1, std::memory_order_relaxed);
  slot.state.store(kWaiting, std::memory_order_release);
  // 2. Release the lock (every level of an RLock).
  const std::uint32_t depth = mu.unlock_all();
  // 3. Sleep until notify() flips the slot, or time out by flipping it ourselves.
  bool notified = true;
  concur::detail::spin_wait(
      [&slot] { return slot.state.load(std::memory_order_acquire) != kWaiting; }, deadline);
  while (slot.state.load(std::memory_order_acquire) == kWaiting) {
    if (!shared_futex_wait(slot.state, kWaiting, deadline)) {
      std::uint32_t expected = kWaiting;
      notified =
          !slot.state.compare_exchange_strong(expected, kTimedOut, std::memory_order_acq_rel);
      break;
    }
  }
  // 4. Free the slot (state first, then the mutex: see Slot), then re-acquire the lock.
  free_slot(st, slot);
  ::pthread_mutex_unlock(&slot.mutex);
  mu.lock_restore(depth);
  return notified;
}

void Condition::notify(std::size_t n) {
  if (!mutex().held_by_caller()) throw RuntimeError("cannot notify on un-acquired lock");
  auto* st = region_.as<ConditionState>();
  while (n > 0 && st->occupied.load(std::memory_order_acquire) != 0) {
    // The oldest waiting slot.
    Slot* oldest = nullptr;
    for (Slot& slot : st->slots) {
      if (slot.state.load(std::memory_order_acquire) == kWaiting &&
          (oldest == nullptr || slot.ticket < oldest->ticket)) {
        oldest = &slot;
      }
    }
    if (oldest == nullptr) return;
    if (probe(st, *oldest) != Probe::kAlive) continue;
    std::uint32_t expected = kWaiting;
    if (oldest->state.compare_exchange_strong(expected, kNotified, std::memory_order_acq_rel)) {
      shared_futex_wake(oldest->state, 1);
      --n;
    }
  }
}

void Condition::notify_all() {
  if (!mutex().held_by_caller()) throw RuntimeError("cannot notify on un-acquired lock");
  auto* st = region_.as<ConditionState>();
  if (st->occupied.load(std::memory_order_acquire) == 0) return;
  for (Slot& slot : st->slots) {
    if (slot.state.load(std::memory_order_acquire) != kWaiting) continue;
    if (probe(st, slot) != Probe::kAlive) continue;
    std::uint32_t expected = kWaiting;
    if (slot.state.compare_exchange_strong(expected, kNotified, std::memory_order_acq_rel)) {
      shared_futex_wake(slot.state, 1);
    }
  }
}

// ---- Barrier

Barrier::Barrier(std::size_t parties, Options options)
    : region_(sizeof(BarrierState)), action_(options.action) {
  if (parties == 0) throw ValueError("parties must be > 0");
  if (parties > std::numeric_limits<std::uint32_t>::max()) throw ValueError("too many parties");
  auto* s = new (region_.data()) BarrierState{};
  detail::init_robust(&s->mutex, PTHREAD_MUTEX_NORMAL);
  s->parties = static_cast<std::uint32_t>(parties);
  s->timeout_ns = options.timeout ? std::max<std::int64_t>(options.timeout->count(), 0) : -1;
  s->has_action = options.action != nullptr ? 1 : 0;
  s->header = {kMagic, detail::kBarrierKind};
}

Barrier::~Barrier() = default;

void Barrier::adopt(SharedRegion region) {
  check_kind(region, sizeof(BarrierState), detail::kBarrierKind, "Barrier");
  if (region.as<BarrierState>()->has_action != 0) {
    throw UnpicklingError("an mp::Barrier with an action cannot be passed to another process");
  }
  region_ = std::move(region);
  action_ = nullptr;
}

void Barrier::check_serializable() const {
  if (region_.as<BarrierState>()->has_action != 0) {
    throw PicklingError(
        "an mp::Barrier with an action cannot be passed to another process (the action is a "
        "function pointer of this process); share it with forked children instead");
  }
}

std::size_t Barrier::wait() {
  const std::int64_t ns = region_.as<BarrierState>()->timeout_ns;
  return wait_deadline(ns < 0 ? Deadline::infinite()
                              : Deadline::after(std::chrono::nanoseconds(ns)));
}

std::size_t Barrier::wait_deadline(const Deadline& deadline) {
  BarrierState* s = region_.as<BarrierState>();
  std::uint64_t round = 0;
  std::size_t index = 0;
  std::uint32_t seen = 0;
  {
    InternalLock lk(&s->mutex);
    check_owner(lk, s);
    if (s->broken != 0) throw BrokenBarrierError();
    index = s->count++;
    round = s->generation;
    if (s->count == s->parties) {
      if (action_ != nullptr) {
        try {
          action_();
        } catch (...) {
          break_barrier(s);
          throw;
        }
      }
      end_round(s, false);
      return index;
    }
    seen = s->seq.load(std::memory_order_acquire);
  }
  for (;;) {
    // Sleep in slices of kBarrierProbe, so that a process dying inside the action (holding the
    // internal lock, which nobody else may be about to take) is noticed: the lock below then
    // reports its death and the barrier breaks.
    const Deadline slice = Deadline::after(kBarrierProbe);
    const bool sliced = deadline.is_infinite() || slice.when() < deadline.when();
    const bool woke = shared_futex_wait(s->seq, seen, sliced ? slice : deadline) || sliced;
    InternalLock lk(&s->mutex);
    check_owner(lk, s);
    if (s->generation != round) {
      if (ended_by_reset(s, round)) throw BrokenBarrierError();
      return index;
    }
    if (s->broken != 0) throw BrokenBarrierError();
    if (!woke || deadline.expired()) {
      break_barrier(s);
      throw BrokenBarrierError("barrier wait timed out");
    }
    seen = s->seq.load(std::memory_order_acquire);
  }
}

void Barrier::reset() {
  BarrierState* s = region_.as<BarrierState>();
  InternalLock lk(&s->mutex);
  if (s->count > 0) {
    end_round(s, true);
  } else {
    s->seq.fetch_add(1, std::memory_order_release);
    shared_futex_wake_all(s->seq);
  }
  s->broken = 0;
}

void Barrier::abort() {
  BarrierState* s = region_.as<BarrierState>();
  InternalLock lk(&s->mutex);
  break_barrier(s);
}

std::size_t Barrier::parties() const noexcept { return region_.as<BarrierState>()->parties; }

std::size_t Barrier::n_waiting() const {
  BarrierState* s = region_.as<BarrierState>();
  InternalLock lk(&s->mutex);
  if (lk.owner_died()) break_barrier(s);
  return s->broken != 0 ? 0 : s->count;
}

bool Barrier::broken() const {
  BarrierState* s = region_.as<BarrierState>();
  InternalLock lk(&s->mutex);
  if (lk.owner_died()) break_barrier(s);
  return s->broken != 0;
}

}  // namespace concur::mp
