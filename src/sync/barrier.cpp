// Barrier: Python's four-state machine (filling, draining, resetting, broken) under one mutex.
//
// wait(deadline):
//   1. enter(): wait while a previous round drains or resets; broken -> BrokenBarrierError.
//   2. Take an arrival index. The last arrival runs the action and flips the round to draining.
//   3. Others sleep until the round leaves "filling"; a timeout breaks the barrier.
//   4. exit_round(): the last thread out of a draining/resetting round re-opens it for filling.
#include "concur/sync/barrier.hpp"

#include "concur/errors.hpp"

namespace concur {

Barrier::Barrier(std::size_t parties, Options options)
    : parties_(parties), options_(std::move(options)) {
  if (parties == 0) throw ValueError("parties must be > 0");
}

Barrier::~Barrier() = default;

std::size_t Barrier::wait() {
  return wait_deadline(options_.timeout ? detail::Deadline::after(*options_.timeout)
                                        : detail::Deadline::infinite());
}

bool Barrier::wait_cv(std::unique_lock<std::mutex>& lk, const detail::Deadline& deadline) {
  if (deadline.is_infinite()) {
    cv_.wait(lk);
    return true;
  }
  return cv_.wait_until(lk, deadline.when()) == std::cv_status::no_timeout;
}

std::size_t Barrier::wait_deadline(const detail::Deadline& deadline) {
  std::unique_lock lk(mu_);
  enter(lk);                           // 1.
  const std::size_t index = count_++;  // 2.
  try {
    if (index + 1 == parties_) {
      release_round(lk);
    } else {
      wait_round(lk, deadline);  // 3.
    }
  } catch (...) {
    --count_;
    exit_round();
    throw;
  }
  --count_;
  exit_round();  // 4.
  return index;
}

void Barrier::enter(std::unique_lock<std::mutex>& lk) {
  while (state_ == State::kDraining || state_ == State::kResetting) cv_.wait(lk);
  if (state_ == State::kBroken) throw BrokenBarrierError();
}

void Barrier::release_round(std::unique_lock<std::mutex>& lk) {
  if (options_.action) {
    try {
      // The action runs with the barrier's mutex held, as in Python: it must not call back into
      // this barrier.
      options_.action();
    } catch (...) {
      break_barrier();
      throw;
    }
  }
  state_ = State::kDraining;
  cv_.notify_all();
  (void)lk;
}

void Barrier::wait_round(std::unique_lock<std::mutex>& lk, const detail::Deadline& deadline) {
  while (state_ == State::kFilling) {
    if (!wait_cv(lk, deadline) && state_ == State::kFilling) {
      break_barrier();
      throw BrokenBarrierError("barrier wait timed out");
    }
  }
  if (state_ == State::kBroken || state_ == State::kResetting) throw BrokenBarrierError();
}

void Barrier::exit_round() {
  if (count_ == 0 && (state_ == State::kResetting || state_ == State::kDraining)) {
    state_ = State::kFilling;
    cv_.notify_all();
  }
}

void Barrier::break_barrier() {
  state_ = State::kBroken;
  cv_.notify_all();
}

void Barrier::reset() {
  std::lock_guard lk(mu_);
  if (count_ > 0) {
    if (state_ == State::kFilling || state_ == State::kBroken) state_ = State::kResetting;
  } else {
    state_ = State::kFilling;
  }
  cv_.notify_all();
}

void Barrier::abort() {
  std::lock_guard lk(mu_);
  break_barrier();
}

std::size_t Barrier::n_waiting() const {
  std::lock_guard lk(mu_);
  return state_ == State::kFilling ? count_ : 0;
}

bool Barrier::broken() const {
  std::lock_guard lk(mu_);
  return state_ == State::kBroken;
}

}  // namespace concur
