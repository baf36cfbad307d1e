// The coroutine synchronization primitives (asyncio/locks.py): the shared waiting machinery (Park,
// the loop binding), Lock's and Semaphore's wake-up bookkeeping, Event, Condition's wait (release,
// wait for a notification, re-acquire even when cancelled) and Barrier's rounds.
#include "concur/aio/sync.hpp"

#include <limits>
#include <string>

namespace concur::aio {
namespace detail {

void LoopBinding::throw_other_loop(const char* what) {
  throw RuntimeError(std::string(what) + " is bound to a different event loop");
}

// ---- Park ----

Park::~Park() {
  // A frame destroyed mid-wait: leave the queue, or hand on a wake-up that was never consumed.
  if (list != nullptr) {
    list->remove(this);
  } else if (state == WaitState::kWoken && pass_on_ != nullptr) {
    pass_on_(owner_);
  }
}

bool Park::await_suspend(std::coroutine_handle<> /*h*/) {
  TaskCore* t = tls_task;
  list_->check_loop(*t, what_);
  if (!t->suspend_on(this)) {
    state = WaitState::kRefused;
    return false;
  }
  task = t;
  list_->push_back(this);
  return true;
}

void Park::await_resume() {
  switch (state) {
    case WaitState::kIdle:  // ready without waiting
      return;
    case WaitState::kWoken:
      state = WaitState::kDone;
      try {
        tls_task->check_cancel();
      } catch (...) {
        if (pass_on_ != nullptr) pass_on_(owner_);  // cancelled after the wake-up: hand it on
        throw;
      }
      return;
    default:  // kCancelled, kRefused
      state = WaitState::kDone;
      tls_task->check_cancel();
      throw CancelledError();  // the cancellation was withdrawn (uncancel), the wait was not
  }
}

bool Park::cancel(TaskCore& t) noexcept {
  if (list != nullptr) {
    list->remove(this);
    state = WaitState::kCancelled;
    t.wake();
  }
  return false;
}

}  // namespace detail

// ---- Lock ----
// Python's model: release() unlocks and wakes the first waiter; the woken waiter takes the lock
// when it resumes. Until then `woken_` keeps newcomers from overtaking it (FIFO), and a woken
// waiter that was cancelled instead wakes the next one.

void Lock::release() {
  if (!locked_) throw RuntimeError("Lock is not acquired.");
  locked_ = false;
  wake_first();
}

void Lock::wake_first() noexcept {
  if (woken_ || waiters_.empty()) return;
  woken_ = true;
  waiters_.wake_one();
}

void Lock::resume_woken(bool cancelled) noexcept {
  woken_ = false;
  if (cancelled) {
    if (!locked_) wake_first();
    return;
  }
  CONCUR_DCHECK(!locked_);
  locked_ = true;
}

void Lock::left_queue() noexcept {
  if (!locked_) wake_first();
}

// ---- Event ----

void Event::set() noexcept {
  if (value_) return;
  value_ = true;
  waiters_.wake_all();
}

// ---- Condition ----

Task<void> Condition::wait() {
  if (!lock_->locked()) throw RuntimeError("cannot wait on un-acquired lock");
  lock_->release();
  std::exception_ptr error;
  bool notified = false;
  try {
    co_await detail::Park(waiters_, nullptr, "aio::Condition", &Condition::pass_on, this);
    notified = true;
  } catch (...) {
    error = std::current_exception();
  }
  // The lock is re-acquired even when the wait was cancelled (only CancelledError is retried:
  // another error would repeat forever).
  for (;;) {
    try {
      co_await lock_->acquire();
      break;
    } catch (const CancelledError&) {
      error = std::current_exception();
    }
  }
  if (error) {
    // Notified, then cancelled while re-acquiring: the notification goes to another waiter.
    if (notified) notify_internal(1);
    std::rethrow_exception(error);
  }
}

void Condition::notify(std::size_t n) {
  if (!lock_->locked()) throw RuntimeError("cannot notify on un-acquired lock");
  notify_internal(n);
}

void Condition::notify_all() {
  if (!lock_->locked()) throw RuntimeError("cannot notify on un-acquired lock");
  waiters_.wake_all();
}

void Condition::notify_internal(std::size_t n) noexcept {
  for (; n > 0 && !waiters_.empty(); --n) waiters_.wake_one();
}

void Condition::pass_on(void* self) noexcept { static_cast<Condition*>(self)->notify_internal(1); }

// ---- Semaphore ----
// Python 3.12's model: a unit is handed over at wake-up time (value_ drops then); the woken task
// takes it when it resumes, or, cancelled first, gives it back and wakes the next waiter.

Semaphore::Semaphore(std::int64_t value) : Semaphore(value, false) {}

Semaphore::Semaphore(std::int64_t value, bool bounded) : value_(value), bound_(-1) {
  if (value < 0) throw ValueError("Semaphore initial value must be >= 0");
  if (bounded) bound_ = value;
}

void Semaphore::release(std::int64_t n) {
  if (n < 1) throw ValueError("n must be one or more");
  if (bound_ >= 0 && n > bound_ - value_) {
    throw ValueError("BoundedSemaphore released too many times");
  }
  if (n > std::numeric_limits<std::int64_t>::max() - value_) {
    throw ValueError("Semaphore value would overflow");
  }
  value_ += n;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!wake_next()) break;
  }
}

bool Semaphore::wake_next() noexcept {
  if (waiters_.empty()) return false;
  --value_;
  ++woken_;
  waiters_.wake_one();
  return true;
}

void Semaphore::wake_while_free() noexcept {
  while (value_ > 0 && wake_next()) {
  }
}

void Semaphore::resume_woken(bool cancelled) noexcept {
  --woken_;
  if (cancelled) ++value_;  // the unit it was handed goes back
  // Newcomers queued behind it (FIFO) while units were free: wake as many as there are units.
  wake_while_free();
}

// ---- Barrier ----
// asyncio's states: FILLING (tasks arrive), DRAINING (a full round leaves; newcomers wait),
// RESETTING (reset() with tasks inside: they fail, newcomers wait), BROKEN (abort()).

Barrier::Barrier(std::size_t parties) : parties_(parties) {
  if (parties == 0) throw ValueError("parties must be > 0");
}

Task<std::size_t> Barrier::wait() {
  // 1. Wait while the previous round drains or the barrier resets.
  while (state_ == State::kDraining || state_ == State::kResetting) {
    co_await detail::Park(blocked_, nullptr, "aio::Barrier");
  }
  if (state_ == State::kBroken) throw BrokenBarrierError("Barrier aborted");
  // 2. Enter the round; the last arrival releases it.
  const std::size_t index = count_++;
  std::exception_ptr error;
  try {
    if (index + 1 == parties_) {
      state_ = State::kDraining;
      filling_.wake_all();
    } else {
      while (state_ == State::kFilling) co_await detail::Park(filling_, nullptr, "aio::Barrier");
      if (state_ == State::kBroken || state_ == State::kResetting) {
        throw BrokenBarrierError("Abort or reset of barrier");
      }
    }
  } catch (...) {
    error = std::current_exception();
  }
  // 3. Leave (also when cancelled or broken); the last one out ends the draining.
  leave();
  if (error) std::rethrow_exception(error);
  co_return index;
}

void Barrier::leave() noexcept {
  if (--count_ > 0) return;
  if (state_ == State::kResetting || state_ == State::kDraining) state_ = State::kFilling;
  blocked_.wake_all();
}

void Barrier::reset() noexcept {
  if (count_ > 0) {
    state_ = State::kResetting;  // the tasks inside fail; newcomers wait until they left
    filling_.wake_all();
  } else {
    state_ = State::kFilling;
    blocked_.wake_all();
  }
}

void Barrier::abort() noexcept {
  state_ = State::kBroken;
  filling_.wake_all();
  blocked_.wake_all();
}

}  // namespace concur::aio
