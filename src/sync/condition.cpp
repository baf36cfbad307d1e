// Condition: a FIFO of waiters parked on their own futex word.
//
// wait(deadline):
//   1. Check the caller holds the lock (RuntimeError otherwise).
//   2. Link a stack-allocated Waiter at the tail of the list (under waiters_mu_).
//   3. Release the lock completely (an RLock's whole recursion count is saved).
//   4. Spin briefly (detail::spin_wait), then sleep on the waiter's word until notify() flips it
//      kWaiting -> kNotified, or the deadline passes and the waiter itself flips it
//      kWaiting -> kTimedOut (exactly one side wins).
//   5. Take waiters_mu_ once: unlink a timed-out waiter, and make sure a notifier that is still
//      touching this Waiter has finished before the frame goes away.
//   6. Re-acquire the lock (restoring the recursion count) and report notified / timed out.
// notify(n) unlinks waiters from the head, counting only those it flips to kNotified, so a
// waiter whose timeout already fired never consumes a notification.
#include "concur/sync/condition.hpp"

#include "concur/errors.hpp"

namespace concur {

struct Condition::Waiter {
  static constexpr std::uint32_t kWaiting = 0;
  static constexpr std::uint32_t kNotified = 1;
  static constexpr std::uint32_t kTimedOut = 2;
  std::atomic<std::uint32_t> state{kWaiting};
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
  bool linked = false;
};

Condition::Condition() : own_(std::make_unique<RLock>()), rlock_(own_.get()) {}
Condition::Condition(Lock& lock) noexcept : lock_(&lock) {}
Condition::Condition(RLock& rlock) noexcept : rlock_(&rlock) {}
Condition::~Condition() { CONCUR_DCHECK(head_ == nullptr); }

void Condition::acquire() {
  if (rlock_ != nullptr) {
    rlock_->acquire();
  } else {
    lock_->acquire();
  }
}

bool Condition::try_acquire() noexcept {
  return rlock_ != nullptr ? rlock_->try_acquire() : lock_->try_acquire();
}

void Condition::release() {
  if (rlock_ != nullptr) {
    rlock_->release();
  } else {
    lock_->release();
  }
}

bool Condition::is_owned() const noexcept {
  return rlock_ != nullptr ? rlock_->is_owned() : lock_->locked();
}

void Condition::unlink(Waiter& w) noexcept {
  if (!w.linked) return;
  (w.prev != nullptr ? w.prev->next : head_) = w.next;
  (w.next != nullptr ? w.next->prev : tail_) = w.prev;
  w.prev = w.next = nullptr;
  w.linked = false;
}

bool Condition::wait_deadline(const detail::Deadline& deadline) {
  // 1.
  if (!is_owned()) throw RuntimeError("cannot wait on un-acquired lock");
  // 2.
  Waiter w;
  waiters_mu_.lock();
  w.prev = tail_;
  (tail_ != nullptr ? tail_->next : head_) = &w;
  tail_ = &w;
  w.linked = true;
  waiters_mu_.unlock();
  // 3.
  std::uint32_t saved = 0;
  if (rlock_ != nullptr) {
    saved = rlock_->release_all();
  } else {
    if (detail::lock_order_on()) [[unlikely]]
      detail::lock_order_released(lock_);
    lock_->mu_.unlock();
  }
  // 4.
  bool notified = true;
  detail::spin_wait([&w] { return w.state.load(std::memory_order_acquire) != Waiter::kWaiting; },
                    deadline);
  while (w.state.load(std::memory_order_acquire) == Waiter::kWaiting) {
    if (!detail::futex_wait(w.state, Waiter::kWaiting, deadline)) {
      std::uint32_t expected = Waiter::kWaiting;
      notified =
          !w.state.compare_exchange_strong(expected, Waiter::kTimedOut, std::memory_order_acq_rel);
      break;
    }
  }
  // 5.
  waiters_mu_.lock();
  unlink(w);
  waiters_mu_.unlock();
  // 6.
  if (rlock_ != nullptr) {
    rlock_->restore(saved);
  } else {
    lock_->mu_.lock();
    if (detail::lock_order_on()) [[unlikely]]
      detail::lock_order_acquired(lock_);
  }
  return notified;
}

void Condition::notify(std::size_t n) {
  if (!is_owned()) throw RuntimeError("cannot notify on un-acquired lock");
  waiters_mu_.lock();
  while (n > 0 && head_ != nullptr) {
    Waiter* w = head_;
    unlink(*w);
    std::uint32_t expected = Waiter::kWaiting;
    if (w->state.compare_exchange_strong(expected, Waiter::kNotified, std::memory_order_acq_rel)) {
      // The waiter cannot leave before it takes waiters_mu_ (step 5), so *w is alive here.
      detail::futex_wake(w->state, 1);
      --n;
    }
  }
  waiters_mu_.unlock();
}

void Condition::notify_all() { notify(static_cast<std::size_t>(-1)); }

}  // namespace concur
