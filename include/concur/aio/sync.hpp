// concur/aio/sync.hpp — asyncio's synchronization primitives for coroutines (asyncio/locks.py,
// Python 3.11–3.13): Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier, and Guard.
// Waiting is co_await: lock.acquire(), ev.wait(), cond.wait(), sem.acquire(), b.wait(), and
// `auto g = co_await lock.scoped();` is `async with lock:`. Timeouts: aio::timeout / wait_for.
// Waiters are served FIFO; a task cancelled while waiting leaves at once, and one cancelled after
// it was woken (given the lock, a unit, a notification) passes that on: nothing is lost or doubled.
// Thread-safety: loop thread only (RuntimeError for a task of another loop while others wait).
// Memory: no allocation per wait (awaiters are list nodes in the frame); outlive your waiters.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <type_traits>
#include <utility>

#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/future.hpp"

namespace concur::aio {

namespace detail {

class WaitList;

// WaitState: where a waiting awaiter stands.
enum class WaitState : std::uint8_t {
  kIdle,       // not suspended (yet): await_ready() was true, or before await_suspend()
  kWaiting,    // linked in a WaitList, its task suspended
  kWoken,      // popped by a waker (given the lock / a permit / an item / a notification)
  kShutdown,   // popped by a queue's shutdown()
  kCancelled,  // unlinked by its task's cancellation
  kRefused,    // never suspended: a cancellation was pending (TaskCore::suspend_on was false)
  kDone,       // resumed; nothing left to undo
};

// WaitNode: an entry of a WaitList (intrusive, doubly linked; lives in the awaiter).
struct WaitNode {
  WaitNode* prev = nullptr;
  WaitNode* next = nullptr;
  WaitList* list = nullptr;  // the list it is linked in; nullptr when not linked
  TaskCore* task = nullptr;  // the suspended task
  WaitState state = WaitState::kIdle;
};

// LoopBinding: the loop a primitive's waiters belong to (Python's _LoopBoundMixin, relaxed: it
// re-binds whenever nobody waits).
class CONCUR_EXPORT LoopBinding {
 public:
  // check(task, what): binds to task's loop when nobody waits; RuntimeError("<what> is bound to a
  // different event loop") when tasks of another loop wait.
  void check(const TaskCore& task, const char* what) {
    if (waiters_ == 0) {
      loop_ = task.loop();
    } else if (loop_ != task.loop()) [[unlikely]] {
      throw_other_loop(what);
    }
  }

 private:
  friend class WaitList;
  [[noreturn]] static void throw_other_loop(const char* what);
  LoopCore* loop_ = nullptr;
  std::size_t waiters_ = 0;  // nodes linked in the lists that share this binding
};

// WaitList: a FIFO of suspended awaiters (loop thread only).
class CONCUR_EXPORT WaitList {
 public:
  explicit WaitList(LoopBinding& binding) noexcept : binding_(&binding) {}
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList() { CONCUR_DCHECK(head_ == nullptr); }

  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  // check_loop(task, what): see LoopBinding::check.
  void check_loop(const TaskCore& task, const char* what) { binding_->check(task, what); }
  // push_back(n): n waits last (state kWaiting).
  void push_back(WaitNode* n) noexcept;
  // remove(n): unlinks n (n must be linked here).
  void remove(WaitNode* n) noexcept;
  // wake_one(state): the first waiter leaves with `state` and its task is rescheduled.
  void wake_one(WaitState state = WaitState::kWoken) noexcept;
  // wake_all(state): wake_one until empty, in FIFO order.
  void wake_all(WaitState state = WaitState::kWoken) noexcept {
    while (head_ != nullptr) wake_one(state);
  }

 private:
  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
  std::size_t size_ = 0;
  LoopBinding* binding_;
};

// Park: waits in a WaitList until a waker pops it (Event::wait, Queue::join, and the inner waits
// of Condition and Barrier). Ready at once when *ready is true. A woken task cancelled before it
// resumed raises CancelledError and calls pass_on(owner) (Condition: notify one other waiter).
class CONCUR_EXPORT Park final : public Waiter, public WaitNode {
 public:
  using aio_awaitable = void;
  using PassOn = void (*)(void* owner) noexcept;
  Park(WaitList& queue, const bool* ready, const char* what, PassOn pass_on = nullptr,
       void* owner = nullptr) noexcept
      : list_(&queue), ready_(ready), what_(what), pass_on_(pass_on), owner_(owner) {}
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  Park(Park&& o) noexcept
      : Waiter(),
        WaitNode(),
        list_(o.list_),
        ready_(o.ready_),
        what_(o.what_),
        pass_on_(o.pass_on_),
        owner_(o.owner_) {}
  Park& operator=(Park&&) = delete;
  ~Park();

  bool await_ready() const noexcept { return ready_ != nullptr && *ready_; }
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume();
  bool cancel(TaskCore& task) noexcept override;

 private:
  WaitList* list_;
  const bool* ready_;
  const char* what_;
  PassOn pass_on_;
  void* owner_;
};

// AcquireAwaiter<P, kScoped>: co_await p.acquire() (kScoped false: returns nothing) or
// co_await p.scoped() (returns a Guard<P>), for Lock and Semaphore. P provides kWhat, waiters_,
// try_take() (the fast path), resume_woken(cancelled) (a woken waiter resumes: it takes what it
// was given or, cancelled, hands it on) and left_queue() (a waiter left the queue, cancelled).
template <class P, bool kScoped>
class [[nodiscard]] AcquireAwaiter final : public Waiter, public WaitNode {
 public:
  using aio_awaitable = void;
  explicit AcquireAwaiter(P& p) noexcept : p_(&p) {}
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  AcquireAwaiter(AcquireAwaiter&& o) noexcept : Waiter(), WaitNode(), p_(o.p_) {}
  AcquireAwaiter& operator=(AcquireAwaiter&&) = delete;
  ~AcquireAwaiter();

  bool await_ready() noexcept { return p_->try_take(); }
  bool await_suspend(std::coroutine_handle<> h);
  auto await_resume();
  bool cancel(TaskCore& task) noexcept override;

 private:
  P* p_;
};

}  // namespace detail

// Guard<P>: one acquisition of P (a Lock, a Semaphore), released by the destructor — what
// `co_await x.scoped()` returns, C++'s `async with x:`. Move-only.
template <class P>
class [[nodiscard]] Guard {
 public:
  Guard() noexcept = default;
  // Guard(p): adopts an acquisition the caller already holds.
  explicit Guard(P& p) noexcept : p_(&p) {}
  Guard(Guard&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Guard& operator=(Guard&& o) noexcept;
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  // ~Guard() releases (an exception from release() — misuse, such as a lock released behind the
  // guard's back — goes to concur's excepthook).
  ~Guard() { drop(); }

  // release(): releases now (at most once); later calls and the destructor do nothing.
  void release() {
    if (P* p = std::exchange(p_, nullptr)) p->release();
  }
  // owns(): still holds the acquisition.
  [[nodiscard]] bool owns() const noexcept { return p_ != nullptr; }

 private:
  void drop() noexcept;
  P* p_ = nullptr;
};

// Lock: asyncio.Lock, a non-reentrant lock with no owner.
// Memory ordering: single-threaded; what a task did before release() is seen by the next holder.
class CONCUR_EXPORT Lock {
 public:
  Lock() noexcept = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock() = default;

  // acquire(): `co_await lock.acquire()` takes the lock, waiting (FIFO) while it is held or other
  // tasks wait for it; returns at once, without suspending, when it is free. CancelledError when
  // the task is cancelled while waiting (the lock is not taken; a wake-up it had received goes to
  // the next waiter).
  detail::AcquireAwaiter<Lock, false> acquire() noexcept {
    return detail::AcquireAwaiter<Lock, false>(*this);
  }
  // scoped(): `auto g = co_await lock.scoped();` is acquire() returning a Guard that releases.
  detail::AcquireAwaiter<Lock, true> scoped() noexcept {
    return detail::AcquireAwaiter<Lock, true>(*this);
  }
  // release(): unlocks and wakes the first waiter, which takes the lock when it resumes (until
  // then locked() is false, as in Python, but no other task can take it). Any task may release.
  // RuntimeError("Lock is not acquired.") when not locked.
  void release();
  // locked(): some task holds the lock.
  [[nodiscard]] bool locked() const noexcept { return locked_; }

 private:
  template <class, bool>
  friend class detail::AcquireAwaiter;

  bool try_take() noexcept {
    if (locked_ || woken_ || !waiters_.empty()) return false;
    locked_ = true;
    return true;
  }
  void wake_first() noexcept;
  void resume_woken(bool cancelled) noexcept;
  void left_queue() noexcept;
  static constexpr const char* kWhat = "aio::Lock";

  detail::LoopBinding binding_;
  detail::WaitList waiters_{binding_};  // not yet woken, FIFO
  bool locked_ = false;
  bool woken_ = false;  // the first waiter was told the lock is free and takes it on resuming
};

// Event: asyncio.Event, a flag tasks wait to become true.
// Memory ordering: single-threaded; what a task did before set() is seen by the woken waiters.
class CONCUR_EXPORT Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // wait(): `co_await ev.wait()` returns once the flag is true (at once, without suspending, when
  // it is). A waiter woken by set() returns even if clear() follows before it runs. CancelledError
  // when the task is cancelled while waiting, or after set() woke it but before it resumed.
  [[nodiscard]] detail::Park wait() noexcept { return {waiters_, &value_, "aio::Event"}; }
  // set(): the flag becomes true and every waiter is woken.
  void set() noexcept;
  // clear(): the flag becomes false; later wait() calls block until the next set().
  void clear() noexcept { value_ = false; }
  // is_set(): the flag.
  [[nodiscard]] bool is_set() const noexcept { return value_; }

 private:
  detail::LoopBinding binding_;
  detail::WaitList waiters_{binding_};
  bool value_ = false;
};

// Condition: asyncio.Condition, a condition variable over an aio::Lock (its own, or the caller's).
// Memory ordering: single-threaded; wait() returns holding the lock the notifier released.
class CONCUR_EXPORT Condition {
 public:
  // Condition(): over a Lock of its own.
  Condition() noexcept : lock_(&own_) {}
  // Condition(lock): over the caller's lock, which must outlive the Condition.
  explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  // acquire() / scoped() / release() / locked(): the lock's (see Lock).
  detail::AcquireAwaiter<Lock, false> acquire() noexcept { return lock_->acquire(); }
  detail::AcquireAwaiter<Lock, true> scoped() noexcept { return lock_->scoped(); }
  void release() { lock_->release(); }
  [[nodiscard]] bool locked() const noexcept { return lock_->locked(); }

  // wait(): `co_await cond.wait()` releases the lock, waits (FIFO) until notify() / notify_all()
  // wakes it, re-acquires the lock and returns. It always returns or throws holding the lock: a
  // cancelled waiter re-acquires it before CancelledError propagates, and one that had been
  // notified passes the notification on to the next waiter. RuntimeError("cannot wait on
  // un-acquired lock") when the lock is not locked. An inline coroutine (its frame comes from the
  // task frame cache).
  Task<void> wait();
  // wait_for(pred): `co_await cond.wait_for(pred)` waits until pred() (called with the lock held)
  // is truthy and returns its value; pred() is checked before the first wait. Needs the lock held,
  // as wait().
  template <class Predicate>
  Task<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate pred);
  // notify(n): wakes the first n waiters (fewer if fewer wait); each returns from wait() once it
  // has re-acquired the lock. RuntimeError("cannot notify on un-acquired lock") when not locked.
  void notify(std::size_t n = 1);
  // notify_all(): wakes every waiter; RuntimeError as notify().
  void notify_all();

 private:
  void notify_internal(std::size_t n) noexcept;
  static void pass_on(void* self) noexcept;

  Lock own_;
  Lock* lock_;
  detail::LoopBinding binding_;
  detail::WaitList waiters_{binding_};
};

// Semaphore: asyncio.Semaphore, a counter acquire() decrements (waiting at zero) and release()
// increments. BoundedSemaphore refuses to grow past its initial value.
// Memory ordering: single-threaded; what a task did before release() is seen by the task it wakes.
class CONCUR_EXPORT Semaphore {
 public:
  // Semaphore(value): ValueError("Semaphore initial value must be >= 0") when value < 0.
  explicit Semaphore(std::int64_t value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // acquire(): `co_await sem.acquire()` takes one unit, waiting (FIFO) while locked(); returns at
  // once, without suspending, when a unit is free and nobody waits. CancelledError when cancelled
  // while waiting (no unit taken; a unit it had been handed goes to the next waiter).
  detail::AcquireAwaiter<Semaphore, false> acquire() noexcept {
    return detail::AcquireAwaiter<Semaphore, false>(*this);
  }
  // scoped(): `auto g = co_await sem.scoped();` is acquire() returning a Guard that releases.
  detail::AcquireAwaiter<Semaphore, true> scoped() noexcept {
    return detail::AcquireAwaiter<Semaphore, true>(*this);
  }
  // release(n): adds n units and hands them to the first n waiters. ValueError when n < 1;
  // BoundedSemaphore: ValueError("BoundedSemaphore released too many times") when the counter
  // would exceed its initial value (nothing changes).
  void release(std::int64_t n = 1);
  // locked(): acquire() would wait: no unit free, or other tasks wait or were woken ahead.
  [[nodiscard]] bool locked() const noexcept {
    return value_ == 0 || !waiters_.empty() || woken_ > 0;
  }
  // value(): the free units (units handed to woken waiters are not free).
  [[nodiscard]] std::int64_t value() const noexcept { return value_; }

 protected:
  Semaphore(std::int64_t value, bool bounded);

 private:
  template <class, bool>
  friend class detail::AcquireAwaiter;

  bool try_take() noexcept {
    if (locked()) return false;
    --value_;
    return true;
  }
  bool wake_next() noexcept;
  void wake_while_free() noexcept;
  void resume_woken(bool cancelled) noexcept;
  void left_queue() noexcept { wake_while_free(); }
  static constexpr const char* kWhat = "aio::Semaphore";

  detail::LoopBinding binding_;
  detail::WaitList waiters_{binding_};  // not yet woken, FIFO
  std::int64_t value_;
  std::int64_t bound_;      // the largest value (BoundedSemaphore), else -1
  std::int64_t woken_ = 0;  // waiters handed a unit that have not resumed yet
};

// BoundedSemaphore: a Semaphore whose release() throws ValueError instead of exceeding the
// initial value (asyncio.BoundedSemaphore).
class CONCUR_EXPORT BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::int64_t value = 1) : Semaphore(value, true) {}
};

// Barrier: asyncio.Barrier: `parties` tasks meet in wait(), then all proceed; the barrier then
// fills again. While the released tasks leave (draining), newcomers wait for the next round.
// Memory ordering: single-threaded; what each party did before wait() is seen by all after it.
class CONCUR_EXPORT Barrier {
 public:
  // Barrier(parties): ValueError("parties must be > 0") when parties == 0.
  explicit Barrier(std::size_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // wait(): `co_await b.wait()` returns the task's arrival index in its round (0 .. parties-1;
  // the count of tasks inside the barrier when it arrived, as Python: a waiter cancelled before
  // the round fills leaves and frees its index). The last arrival releases everyone without
  // suspending. BrokenBarrierError when the barrier is broken (abort()) on arrival or while
  // waiting, or reset() while waiting (also a released task that had not resumed yet). A waiter
  // cancelled before the round fills leaves it (the barrier stays whole) and raises
  // CancelledError. An inline coroutine (its frame comes from the task frame cache).
  Task<std::size_t> wait();
  // reset(): back to the empty state; current waiters raise BrokenBarrierError. Unlike Python's,
  // not a coroutine: it never waits.
  void reset() noexcept;
  // abort(): breaks the barrier: current and later wait() raise BrokenBarrierError until reset().
  void abort() noexcept;
  // parties(): the number of tasks a round needs.
  [[nodiscard]] std::size_t parties() const noexcept { return parties_; }
  // n_waiting(): the tasks waiting in the current round (0 while draining or broken).
  [[nodiscard]] std::size_t n_waiting() const noexcept {
    return state_ == State::kFilling ? count_ : 0;
  }
  // broken(): abort() was called and no reset() since.
  [[nodiscard]] bool broken() const noexcept { return state_ == State::kBroken; }

 private:
  enum class State : std::uint8_t { kFilling, kDraining, kResetting, kBroken };
  void leave() noexcept;

  const std::size_t parties_;
  std::size_t count_ = 0;  // tasks inside wait() past the entry (filling, or released not yet out)
  State state_ = State::kFilling;
  detail::LoopBinding binding_;
  detail::WaitList blocked_{binding_};  // arrived while draining or resetting
  detail::WaitList filling_{binding_};  // in the current round
};

// ---- implementation ---------------------------------------------------------------------------

namespace detail {

inline void WaitList::push_back(WaitNode* n) noexcept {
  n->prev = tail_;
  n->next = nullptr;
  if (tail_ != nullptr) {
    tail_->next = n;
  } else {
    head_ = n;
  }
  tail_ = n;
  n->list = this;
  n->state = WaitState::kWaiting;
  ++size_;
  ++binding_->waiters_;
}

inline void WaitList::remove(WaitNode* n) noexcept {
  CONCUR_DCHECK(n->list == this);
  if (n->prev != nullptr) {
    n->prev->next = n->next;
  } else {
    head_ = n->next;
  }
  if (n->next != nullptr) {
    n->next->prev = n->prev;
  } else {
    tail_ = n->prev;
  }
  n->prev = n->next = nullptr;
  n->list = nullptr;
  --size_;
  --binding_->waiters_;
}

inline void WaitList::wake_one(WaitState state) noexcept {
  WaitNode* n = head_;
  remove(n);
  n->state = state;
  n->task->wake();
}

template <class P, bool kScoped>
AcquireAwaiter<P, kScoped>::~AcquireAwaiter() {
  // A frame destroyed mid-wait: leave the queue, or hand on what this waiter was given.
  if (list != nullptr) {
    list->remove(this);
    p_->left_queue();
  } else if (state == WaitState::kWoken) {
    p_->resume_woken(true);
  }
}

template <class P, bool kScoped>
bool AcquireAwaiter<P, kScoped>::await_suspend(std::coroutine_handle<> /*h*/) {
  TaskCore* t = tls_task;
  p_->waiters_.check_loop(*t, P::kWhat);
  if (!t->suspend_on(this)) {
    state = WaitState::kRefused;
    return false;
  }
  task = t;
  p_->waiters_.push_back(this);
  return true;
}

template <class P, bool kScoped>
auto AcquireAwaiter<P, kScoped>::await_resume() {
  switch (state) {
    case WaitState::kIdle:  // taken by await_ready()
      break;
    case WaitState::kWoken:
      state = WaitState::kDone;
      try {
        tls_task->check_cancel();
      } catch (...) {
        p_->resume_woken(true);  // cancelled after the wake-up: hand it on
        throw;
      }
      p_->resume_woken(false);
      break;
    default:  // kCancelled, kRefused
      state = WaitState::kDone;
      tls_task->check_cancel();
      throw CancelledError();  // the cancellation was withdrawn (uncancel), the wait was not
  }
  if constexpr (kScoped) return Guard<P>(*p_);
}

template <class P, bool kScoped>
bool AcquireAwaiter<P, kScoped>::cancel(TaskCore& t) noexcept {
  if (list != nullptr) {
    list->remove(this);
    state = WaitState::kCancelled;
    p_->left_queue();
    t.wake();
  }
  // Woken already: await_resume() sees the pending cancellation and hands the wake-up on.
  return false;
}

}  // namespace detail

template <class P>
Guard<P>& Guard<P>::operator=(Guard&& o) noexcept {
  if (this != &o) {
    drop();
    p_ = std::exchange(o.p_, nullptr);
  }
  return *this;
}

template <class P>
void Guard<P>::drop() noexcept {
  if (P* p = std::exchange(p_, nullptr)) {
    try {
      p->release();
    } catch (...) {
      concur::detail::report_exception(std::current_exception());
    }
  }
}

template <class Predicate>
Task<std::decay_t<std::invoke_result_t<Predicate&>>> Condition::wait_for(Predicate pred) {
  auto result = pred();
  while (!result) {
    co_await wait();
    result = pred();
  }
  co_return result;
}

}  // namespace concur::aio
