// concur/sync/barrier.hpp — Barrier, Python's threading.Barrier: `parties` threads meet, then
// all proceed together; the barrier then resets for the next round.
//
// wait() blocks until `parties` threads have called it and returns a distinct arrival index in
// [0, parties) (the last arrival gets parties - 1). Before releasing the round, the last
// arrival runs Options::action; if the action throws, the barrier breaks and the exception
// propagates from that thread's wait(). A wait that times out (its own timeout or
// Options::timeout) breaks the barrier and throws BrokenBarrierError. abort() breaks it;
// reset() returns it to the empty state, failing the current waiters with BrokenBarrierError.
// While broken, every wait() throws BrokenBarrierError until reset().
// Memory ordering: everything each party did before wait() is visible to all parties after
// their wait() returns.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"

namespace concur {

// BarrierOptions (spelled Barrier::Options) configures a Barrier.
struct BarrierOptions {
  // action runs in the last arriving thread before the round is released, with the barrier's
  // internal mutex held (as in CPython): it must not call back into the same Barrier.
  std::function<void()> action{};
  // timeout is the default for wait() without an explicit timeout (none: wait forever).
  std::optional<std::chrono::nanoseconds> timeout{};
};

class CONCUR_EXPORT Barrier {
 public:
  using Options = BarrierOptions;

  // Barrier(parties): throws ValueError when parties == 0.
  explicit Barrier(std::size_t parties, Options options = {});
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier();

  // wait() uses Options::timeout; see the header comment for every outcome.
  std::size_t wait();
  template <class Rep, class Period>
  std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_deadline(detail::Deadline::after(timeout));
  }
  template <class C, class D>
  std::size_t wait_until(std::chrono::time_point<C, D> tp) {
    return wait_deadline(detail::Deadline::at(tp));
  }

  // reset() empties the barrier; current waiters throw BrokenBarrierError.
  void reset();
  // abort() breaks the barrier; current and future waiters throw BrokenBarrierError.
  void abort();

  [[nodiscard]] std::size_t parties() const noexcept { return parties_; }
  // n_waiting() is the number of threads blocked in the current round.
  [[nodiscard]] std::size_t n_waiting() const;
  // broken() is true after abort(), a timeout or a throwing action, until reset().
  [[nodiscard]] bool broken() const;

 private:
  enum class State { kFilling, kDraining, kResetting, kBroken };

  std::size_t wait_deadline(const detail::Deadline& deadline);
  void enter(std::unique_lock<std::mutex>& lk);
  void release_round(std::unique_lock<std::mutex>& lk);
  void wait_round(std::unique_lock<std::mutex>& lk, const detail::Deadline& deadline);
  void exit_round();
  void break_barrier();
  bool wait_cv(std::unique_lock<std::mutex>& lk, const detail::Deadline& deadline);

  const std::size_t parties_;
  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  State state_ CONCUR_GUARDED_BY(mu_) = State::kFilling;
  std::size_t count_ CONCUR_GUARDED_BY(mu_) = 0;
};

}  // namespace concur
