// concur/timer.hpp — Timer, Python's threading.Timer: a Thread that calls a function after an
// interval unless cancel() is called first.
//
// start() begins the countdown (the interval is measured from the moment the thread runs);
// cancel() stops a timer still waiting — the function then never runs — and does nothing once
// the function has started. ~Timer() cancels and joins, so a Timer never outlives its function.
// An exception from the function goes to the excepthook, as for any Thread.
// Thread-safety: cancel() may be called from any thread, before or after start().
#pragma once

#include <chrono>
#include <utility>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/sync/event.hpp"
#include "concur/thread.hpp"

namespace concur {

class CONCUR_EXPORT Timer : public Thread {
 public:
  // Timer(interval, fn, args...): after start(), wait `interval`, then call fn(args...).
  template <class Rep, class Period, class F, class... Args>
  requires std::invocable < std::decay_t<F>
  &,
      std::decay_t<Args>&... >
          Timer(std::chrono::duration<Rep, Period> interval, F&& fn, Args&&... args)
      : Thread(Options{}),
  interval_(detail::saturating_ns(interval)),
  function_(detail::bind_task(std::forward<F>(fn), std::forward<Args>(args)...)) {}
  Timer(Timer&&) = delete;
  ~Timer() override;

  // cancel() stops the timer if it is still waiting.
  void cancel() noexcept { finished_.set(); }
  // interval() is the configured delay.
  [[nodiscard]] std::chrono::nanoseconds interval() const noexcept { return interval_; }

 protected:
  void run() override;

 private:
  std::chrono::nanoseconds interval_;
  detail::Task function_;
  Event finished_;
};

}  // namespace concur
