// concur/mp/synchronize.hpp — process-shared synchronization, Python's multiprocessing.synchronize:
// Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier, and OwnerDiedError.
//
// Every object keeps its state in its own small memfd-backed MAP_SHARED region
// (detail::SharedRegion). A child forked after construction inherits the mapping; any other
// process (spawn, forkserver) receives the object as a task argument or through a Connection:
// each object is mp::Serializable — save() passes the region's descriptor (mp::save_fd) and load()
// maps the received one, so the loaded object shares its state with the original. Loading into an
// existing object replaces its region, like an assignment (the default constructor's own region is
// then thrown away).
// Operations mirror concur/sync/: acquire / release, the timed and try forms, Event set / clear /
// wait, Condition wait / notify, Barrier wait / reset / abort. Every blocking call has three forms
// (no timeout, a duration, a time point) funnelled into one detail::Deadline; Lock, RLock,
// Semaphore and Condition are detail::TimedLockable, so std::scoped_lock / std::unique_lock work.
// Process death: a process that dies while *waiting* affects nobody (Condition reclaims its slot
// through a robust mutex; Semaphore and Event waiters leave only a stale "sleepers" hint). A
// process that dies *holding* a Lock or RLock makes the next acquire throw OwnerDiedError (below);
// one that dies inside a Barrier's action breaks the barrier. Semaphore units held by a process
// that dies are lost, as in Python.
// Thread- and process-safety: every member may be called from any thread of any process sharing
// the object, except loading (assignment), which needs the object to be otherwise unused.
// Lifetime: each process unmaps its own view when its object is destroyed (or loaded into); the
// shared state lives while any process maps it. Destroying an object this process holds or waits
// on is undefined, as for std::mutex (a Lock unmapped while held is not even reported as
// owner-dead when the process exits: the kernel can no longer reach it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/timed_lockable.hpp"
#include "concur/errors.hpp"
#include "concur/mp/serialize.hpp"

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

// SharedRegion is a memfd-backed shared mapping: memfd_create(MFD_CLOEXEC) + ftruncate + mmap
// (MAP_SHARED), zero-filled, with its descriptor kept open so the region can be sent to another
// process. A forked child inherits the same mapping (and a copy of the descriptor). Serializable:
// save() writes the size and passes the descriptor (save_fd); load() maps the received descriptor
// after checking its size with fstat (UnpicklingError on a mismatch). Move-only; the destructor
// unmaps and closes this process's view only. Thread-safety: a value type.
class CONCUR_EXPORT SharedRegion {
 public:
  // SharedRegion() is empty: no mapping, fd() == -1.
  SharedRegion() noexcept = default;
  // SharedRegion(bytes) creates and maps `bytes` (> 0) zero-filled bytes; throws mp::OSError
  // (declared in shared_memory.hpp) when the system refuses.
  explicit SharedRegion(std::size_t bytes);
  // adopt(fd, bytes) takes ownership of `fd` (closed on failure) and maps it. Throws
  // UnpicklingError when the object's size is not `bytes`, mp::OSError when mapping fails.
  static SharedRegion adopt(int fd, std::size_t bytes);
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  SharedRegion(SharedRegion&& other) noexcept;
  SharedRegion& operator=(SharedRegion&& other) noexcept;
  ~SharedRegion();

  // data() is the start of the mapping (null when empty); size() its length; fd() the memfd.
  [[nodiscard]] void* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool empty() const noexcept { return data_ == nullptr; }
  // as<T>() is the mapping viewed as the shared struct T.
  template <class T>
  [[nodiscard]] T* as() const noexcept {
    return static_cast<T*>(data_);
  }

  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<std::uint64_t>(size_));
    save_fd(ar, fd_);
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint64_t bytes = 0;
    ar(bytes);
    *this = adopt(load_fd(ar), static_cast<std::size_t>(bytes));
  }

 private:
  void reset() noexcept;

  void* data_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
};

// ForLoad tags the constructors that make an unmapped object, only to be loaded into.
struct ForLoad {};

// RobustMutex is the shared core of Lock and RLock: a robust, process-shared pthread mutex plus
// its owner's thread id and recursion depth, in a SharedRegion.
class CONCUR_EXPORT RobustMutex {
 public:
  explicit RobustMutex(bool recursive);
  RobustMutex(bool recursive, ForLoad) noexcept : recursive_(recursive) {}
  RobustMutex(const RobustMutex&) = delete;
  RobustMutex& operator=(const RobustMutex&) = delete;
  ~RobustMutex() = default;

  void lock();
  bool lock_until(const concur::detail::Deadline& deadline);
  bool try_lock() noexcept;
  void unlock();
  // held_by_caller() is true when the calling thread holds the mutex.
  [[nodiscard]] bool held_by_caller() const noexcept;
  // unlock_all() releases every level held by the caller and returns the depth (Condition::wait).
  std::uint32_t unlock_all();
  // lock_restore(depth) locks and restores the depth unlock_all() returned; throws as lock().
  void lock_restore(std::uint32_t depth);

  template <class Archive>
  void save(Archive& ar) const {
    ar(region_);
  }
  template <class Archive>
  void load(Archive& ar) {
    SharedRegion region;
    ar(region);
    adopt(std::move(region));
  }

 private:
  // reenter() is true (depth counted) when the caller already holds an RLock; throws
  // DeadlockError when it already holds a Lock; false when it does not hold the mutex.
  bool reenter();
  // adopt(region) checks that region holds a mutex of this kind, then replaces region_.
  void adopt(SharedRegion region);

  SharedRegion region_;
  bool recursive_;
};

}  // namespace detail

// Lock is multiprocessing.Lock: non-recursive, process-shared, robust against owner death.
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
class CONCUR_EXPORT Lock : public concur::detail::TimedLockable<Lock> {
 public:
  // Lock() maps a shared region and initializes the mutex; throws mp::OSError when the system
  // refuses.
  Lock() : mu_(false) {}
  // Lock(ForLoad) is unmapped: only a target for loads() (used by Condition and Value).
  explicit Lock(detail::ForLoad tag) noexcept : mu_(false, tag) {}
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
  // is_owned() is true when the calling thread holds the lock.
  [[nodiscard]] bool is_owned() const noexcept { return mu_.held_by_caller(); }

  // save / load: cereal (see the header comment); loading an RLock's bytes throws UnpicklingError.
  template <class Archive>
  void save(Archive& ar) const {
    ar(mu_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(mu_);
  }

 private:
  friend class Condition;
  detail::RobustMutex mu_;
};

// RLock is multiprocessing.RLock: a recursive Lock; the holder may acquire it again and must
// release it as many times. Same owner-death and error rules as Lock.
// Memory ordering: everything done before the last release() is visible once acquire() returns
// true, in any process sharing the lock.
class CONCUR_EXPORT RLock : public concur::detail::TimedLockable<RLock> {
 public:
  RLock() : mu_(true) {}
  // RLock(ForLoad) is unmapped: only a target for loads() (used by Condition and Value).
  explicit RLock(detail::ForLoad tag) noexcept : mu_(true, tag) {}
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
  // is_owned() is true when the calling thread holds the lock.
  [[nodiscard]] bool is_owned() const noexcept { return mu_.held_by_caller(); }

  // save / load: cereal; loading a Lock's bytes throws UnpicklingError.
  template <class Archive>
  void save(Archive& ar) const {
    ar(mu_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(mu_);
  }

 private:
  friend class Condition;
  detail::RobustMutex mu_;
};

// Semaphore is multiprocessing.Semaphore (BoundedSemaphore below): a counter that acquire()
// decrements, blocking at zero, and release(n) increments, waking up to n waiters. Not FIFO. The
// counter lives in 31 bits (kMaxValue). A process that dies holding units does not give them back.
// Memory ordering: everything done before release() is visible to the acquire() that takes the
// released unit, in any process.
class CONCUR_EXPORT Semaphore : public concur::detail::TimedLockable<Semaphore> {
 public:
  // kMaxValue is the largest counter value.
  static constexpr std::int64_t kMaxValue = 0x7fffffff;

  // Semaphore(value) maps the shared counter; throws ValueError when value < 0 or value >
  // kMaxValue, mp::OSError when the system refuses the mapping.
  explicit Semaphore(std::int64_t value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // acquire() blocks until the counter is positive, then decrements it.
  void acquire() { (void)acquire_deadline(concur::detail::Deadline::infinite()); }
  // acquire(timeout) waits at most `timeout` (<= 0 polls once); true when a unit was taken.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_deadline(concur::detail::Deadline::after(timeout));
  }
  // acquire_until(tp) waits until `tp`; true when a unit was taken.
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return acquire_deadline(concur::detail::Deadline::at(tp));
  }
  // try_acquire() takes a unit only if one is available now.
  bool try_acquire() noexcept;
  // release(n) adds n units (n >= 1, else ValueError) and wakes up to n waiters. Throws
  // ValueError on overflow or, for a BoundedSemaphore, when the counter would exceed the initial
  // value ("Semaphore released too many times"); the counter is then unchanged.
  void release(std::uint32_t n = 1);
  // get_value() is a snapshot of the counter (Python's Semaphore.get_value()).
  [[nodiscard]] std::uint32_t get_value() const noexcept;
  // value() is get_value(), the spelling of concur::Semaphore.
  [[nodiscard]] std::uint32_t value() const noexcept { return get_value(); }

  // save / load: cereal; loading a BoundedSemaphore's bytes into a Semaphore (or the reverse)
  // throws UnpicklingError.
  template <class Archive>
  void save(Archive& ar) const {
    ar(region_);
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::SharedRegion region;
    ar(region);
    adopt(std::move(region));
  }

 protected:
  Semaphore(std::int64_t value, bool bounded);

 private:
  bool acquire_deadline(const concur::detail::Deadline& deadline);
  void adopt(detail::SharedRegion region);

  detail::SharedRegion region_;
  bool bounded_ = false;
};

// BoundedSemaphore is multiprocessing.BoundedSemaphore: release() may never raise the counter
// above the initial value (ValueError). Everything else is Semaphore's.
class CONCUR_EXPORT BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::int64_t value = 1) : Semaphore(value, true) {}
};

// Event is multiprocessing.Event: a flag that processes wait to become true. A waiter already
// blocked when set() is called returns true even if clear() follows at once.
// Memory ordering: everything done before set() is visible once wait() or is_set() returns true,
// in any process.
class CONCUR_EXPORT Event {
 public:
  // Event() maps the shared flag (false); throws mp::OSError when the system refuses.
  Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // set() makes the flag true and wakes every waiter.
  void set() noexcept;
  // clear() makes the flag false; later wait() calls block until the next set().
  void clear() noexcept;
  // is_set() reads the flag.
  [[nodiscard]] bool is_set() const noexcept;
  // wait() blocks until the flag is true.
  void wait() noexcept { (void)wait_deadline(concur::detail::Deadline::infinite()); }
  // wait(timeout) blocks at most `timeout`; returns true when the flag was set during the wait
  // (false only when the timeout passed without a set()).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) noexcept {
    return wait_deadline(concur::detail::Deadline::after(timeout));
  }
  // wait_until(tp) is wait(timeout) with a time point.
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) noexcept {
    return wait_deadline(concur::detail::Deadline::at(tp));
  }

  // save / load: cereal.
  template <class Archive>
  void save(Archive& ar) const {
    ar(region_);
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::SharedRegion region;
    ar(region);
    adopt(std::move(region));
  }

 private:
  bool wait_deadline(const concur::detail::Deadline& deadline) noexcept;
  void adopt(detail::SharedRegion region);

  detail::SharedRegion region_;
};

// Condition is multiprocessing.Condition: a condition variable bound to one process-shared lock —
// its own RLock by default (as Python), or a Lock / RLock the caller passes, which must outlive
// the Condition. wait() releases the lock (every level of an RLock), sleeps until notified and
// re-acquires it (without a timeout, as Python) before returning; wait(timeout) / wait_until(tp)
// return false on timeout. wait_for(pred[, timeout]) loops until pred() is true and returns its
// last value. notify(n) wakes min(n, waiting) of the current waiters, oldest first; a waiter whose
// timeout fired is never counted as woken; notify_all() wakes every current waiter. Waiting or
// notifying without holding the lock throws RuntimeError, as in Python.
// Capacity: at most kMaxWaiters threads (of all processes) wait at once; one more throws
// RuntimeError("too many waiters on a Condition"). A waiter that dies frees its slot (detected
// through a robust mutex it holds while waiting) and is never counted by notify().
// Owner death: when a process dies holding the lock, the next acquire — including the
// re-acquire at the end of wait() — throws OwnerDiedError without holding the lock.
// Serialization sends the lock with the Condition; the loaded Condition owns a handle to the same
// shared lock (and, as Python, stays bound to it).
// Memory ordering: everything done under the lock before notify() is visible once wait()
// returns, because wait() re-acquires the lock.
class CONCUR_EXPORT Condition : public concur::detail::TimedLockable<Condition> {
 public:
  // kMaxWaiters is the number of waiter slots in the shared region.
  static constexpr std::size_t kMaxWaiters = 256;

  // Condition() owns a fresh mp::RLock; throws mp::OSError when the system refuses a mapping.
  Condition();
  // Condition(lock) / Condition(rlock) use the caller's lock, which must outlive the Condition.
  explicit Condition(Lock& lock);
  explicit Condition(RLock& rlock);
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition();

  // wait() releases the lock, blocks until notified, re-acquires the lock. Throws RuntimeError
  // ("cannot wait on un-acquired lock") when the caller does not hold the lock, OwnerDiedError
  // (lock not held) when the re-acquire finds the lock's holder dead.
  void wait() { (void)wait_deadline(concur::detail::Deadline::infinite()); }
  // wait(timeout) is wait() bounded by `timeout`; false when it timed out (the lock is held again
  // either way).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_deadline(concur::detail::Deadline::after(timeout));
  }
  // wait_until(tp) is wait(timeout) with a time point.
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) {
    return wait_deadline(concur::detail::Deadline::at(tp));
  }
  // wait_for(pred) waits until pred() is true (pred runs with the lock held); returns true.
  template <class Predicate>
  bool wait_for(Predicate pred) {
    return wait_pred(pred, concur::detail::Deadline::infinite());
  }
  // wait_for(pred, timeout) returns pred()'s value when it became true or the timeout passed.
  template <class Predicate, class Rep, class Period>
  bool wait_for(Predicate pred, std::chrono::duration<Rep, Period> timeout) {
    return wait_pred(pred, concur::detail::Deadline::after(timeout));
  }
  // wait_until(pred, tp) is wait_for(pred, timeout) with a time point.
  template <class Predicate, class C, class D>
  bool wait_until(Predicate pred, std::chrono::time_point<C, D> tp) {
    return wait_pred(pred, concur::detail::Deadline::at(tp));
  }

  // notify(n) wakes up to n current waiters (oldest first). Throws RuntimeError ("cannot notify
  // on un-acquired lock") when the caller does not hold the lock.
  void notify(std::size_t n = 1);
  // notify_all() wakes every current waiter; throws as notify().
  void notify_all();

  // acquire / acquire(timeout) / acquire_until / try_acquire / release act on the underlying lock
  // (same contracts as Lock's); lock / try_lock / unlock / try_lock_for / try_lock_until come
  // from detail::TimedLockable.
  void acquire() { mutex().lock(); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return mutex().lock_until(concur::detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool acquire_until(std::chrono::time_point<C, D> tp) {
    return mutex().lock_until(concur::detail::Deadline::at(tp));
  }
  bool try_acquire() noexcept { return mutex().try_lock(); }
  void release() { mutex().unlock(); }

  // save / load: cereal (the lock travels with the Condition).
  template <class Archive>
  void save(Archive& ar) const {
    const bool recursive = rlock_ != nullptr;
    ar(recursive);
    if (recursive) {
      ar(*rlock_);
    } else {
      ar(*lock_);
    }
    ar(region_);
  }
  template <class Archive>
  void load(Archive& ar) {
    bool recursive = false;
    ar(recursive);
    std::unique_ptr<RLock> rlock;
    std::unique_ptr<Lock> lock;
    if (recursive) {
      rlock = std::make_unique<RLock>(detail::ForLoad{});
      ar(*rlock);
    } else {
      lock = std::make_unique<Lock>(detail::ForLoad{});
      ar(*lock);
    }
    detail::SharedRegion region;
    ar(region);
    adopt(std::move(region), std::move(rlock), std::move(lock));
  }

 private:
  detail::RobustMutex& mutex() const noexcept {
    return rlock_ != nullptr ? rlock_->mu_ : lock_->mu_;
  }
  bool wait_deadline(const concur::detail::Deadline& deadline);
  template <class Predicate>
  bool wait_pred(Predicate& pred, const concur::detail::Deadline& deadline) {
    bool result = static_cast<bool>(pred());
    while (!result) {
      if (deadline.expired()) break;
      (void)wait_deadline(deadline);
      result = static_cast<bool>(pred());
    }
    return result;
  }
  void adopt(detail::SharedRegion region, std::unique_ptr<RLock> rlock, std::unique_ptr<Lock> lock);

  std::unique_ptr<RLock> own_rlock_;  // set by Condition() and by load
  std::unique_ptr<Lock> own_lock_;    // set by load of a Condition over a Lock
  Lock* lock_ = nullptr;              // exactly one of lock_ / rlock_ is set
  RLock* rlock_ = nullptr;
  detail::SharedRegion region_;  // the waiter slots
};

// BarrierOptions (spelled Barrier::Options) configures an mp::Barrier.
struct BarrierOptions {
  // action runs in the process of the last arriving party before the round is released, with the
  // barrier's internal lock held: it must not call back into the same Barrier. It is a plain
  // function pointer, valid in this process and in children forked from it; a Barrier with an
  // action cannot be serialized (PicklingError), since a spawned process has other addresses.
  void (*action)() = nullptr;
  // timeout is the default for wait() without an explicit timeout (none: wait forever); it is
  // shared, so every process's wait() uses it.
  std::optional<std::chrono::nanoseconds> timeout{};
};

// Barrier is multiprocessing.Barrier: `parties` waiters (threads of any processes) meet, then all
// proceed together; the barrier then resets for the next round. wait() returns a distinct arrival
// index in [0, parties) (the last arrival gets parties - 1) after the last arrival ran
// Options::action; if the action throws, the barrier breaks and the exception propagates from
// that wait(). A wait that times out (its own timeout or Options::timeout) breaks the barrier and
// throws BrokenBarrierError. abort() breaks it; reset() returns it to the empty state, failing
// the current waiters with BrokenBarrierError. While broken, every wait() throws
// BrokenBarrierError until reset().
// Process death: a party that dies after arriving still counts as arrived (the round can complete
// without it, as in Python). A process that dies inside the action (holding the barrier's
// internal lock) breaks the barrier: the next call to touch it throws BrokenBarrierError, and
// sleeping waiters notice within about a second.
// Limit: a waiter learns how its round ended from a history of the last 1024 rounds; one that
// sleeps through more rounds after its own ended (impossible with `parties` processes) may report
// a reset as a release.
// Memory ordering: everything each party did before wait() is visible to all parties after their
// wait() returns, in every process.
class CONCUR_EXPORT Barrier {
 public:
  using Options = BarrierOptions;

  // Barrier(parties, options): throws ValueError when parties == 0, mp::OSError when the system
  // refuses the mapping. Barrier() is a one-party barrier, mainly a target for loads().
  explicit Barrier(std::size_t parties = 1, Options options = {});
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier();

  // wait() waits with Options::timeout (forever without one); see the class comment for every
  // outcome.
  std::size_t wait();
  // wait(timeout) waits at most `timeout`; on timeout it breaks the barrier and throws
  // BrokenBarrierError("barrier wait timed out").
  template <class Rep, class Period>
  std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_deadline(concur::detail::Deadline::after(timeout));
  }
  // wait_until(tp) is wait(timeout) with a time point.
  template <class C, class D>
  std::size_t wait_until(std::chrono::time_point<C, D> tp) {
    return wait_deadline(concur::detail::Deadline::at(tp));
  }

  // reset() empties the barrier and un-breaks it; current waiters throw BrokenBarrierError.
  void reset();
  // abort() breaks the barrier; current and future waiters throw BrokenBarrierError.
  void abort();

  // parties() is the number of parties per round.
  [[nodiscard]] std::size_t parties() const noexcept;
  // n_waiting() is the number of parties arrived in the current round (0 while broken).
  [[nodiscard]] std::size_t n_waiting() const;
  // broken() is true after abort(), a timeout, a throwing action or a dead lock holder, until
  // reset().
  [[nodiscard]] bool broken() const;

  // save / load: cereal; save throws PicklingError for a Barrier with an action.
  template <class Archive>
  void save(Archive& ar) const {
    check_serializable();
    ar(region_);
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::SharedRegion region;
    ar(region);
    adopt(std::move(region));
  }

 private:
  std::size_t wait_deadline(const concur::detail::Deadline& deadline);
  void check_serializable() const;
  void adopt(detail::SharedRegion region);

  detail::SharedRegion region_;
  void (*action_)() = nullptr;  // this process's copy of Options::action
};

}  // namespace concur::mp
