// concur/detail/deadline.hpp — the one internal deadline type behind every bounded wait.
//
// Every blocking call of concur has three public forms (no timeout, a duration, a time point);
// all three funnel into Deadline. Conversion saturates: a duration too large to add to now()
// (std::chrono::hours::max()) becomes "never", and a negative or zero duration is "already
// expired", so a timed call polls once — std::timed_mutex::try_lock_for's convention.
// Thread-safety: a value type.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>

namespace concur {

// Clock is the clock of every concur timeout: monotonic, immune to wall-clock changes.
using Clock = std::chrono::steady_clock;

namespace detail {

class Deadline {
 public:
  // infinite() never expires.
  static constexpr Deadline infinite() noexcept { return Deadline(Clock::time_point::max()); }

  // after(d) expires d from now; saturates to infinite() and clamps negatives to now.
  template <class Rep, class Period>
  static Deadline after(std::chrono::duration<Rep, Period> d) noexcept {
    const auto now = Clock::now();
    if (!(d > d.zero())) return Deadline(now);
    const auto room = Clock::time_point::max() - now;
    if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(room)) {
      return infinite();
    }
    return Deadline(now + std::chrono::ceil<Clock::duration>(d));
  }

  // at(tp) expires at tp; a time point of another clock (or another precision) is converted
  // through its now(). The difference is taken in floating-point seconds, so the extremes of any
  // clock (system_clock::time_point::min()/max()) clamp instead of overflowing; the cost is
  // sub-microsecond rounding, far below any timer's resolution.
  static constexpr Deadline at(Clock::time_point tp) noexcept { return Deadline(tp); }
  template <class C, class D>
  static Deadline at(std::chrono::time_point<C, D> tp) noexcept {
    using Seconds = std::chrono::duration<double>;
    const Seconds target = std::chrono::duration_cast<Seconds>(tp.time_since_epoch());
    const Seconds now = std::chrono::duration_cast<Seconds>(C::now().time_since_epoch());
    return after(target - now);
  }

  [[nodiscard]] constexpr bool is_infinite() const noexcept {
    return when_ == Clock::time_point::max();
  }
  [[nodiscard]] constexpr Clock::time_point when() const noexcept { return when_; }
  // expired() reads the clock; an infinite deadline never expires.
  [[nodiscard]] bool expired() const noexcept { return !is_infinite() && Clock::now() >= when_; }
  // remaining() is the time left, zero once expired, Clock::duration::max() when infinite.
  [[nodiscard]] Clock::duration remaining() const noexcept {
    if (is_infinite()) return Clock::duration::max();
    const auto left = when_ - Clock::now();
    return left > Clock::duration::zero() ? left : Clock::duration::zero();
  }
  // as_timespec() is the absolute CLOCK_MONOTONIC time (steady_clock's clock on Linux).
  [[nodiscard]] timespec as_timespec() const noexcept {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(when_.time_since_epoch()).count();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    return ts;
  }

 private:
  constexpr explicit Deadline(Clock::time_point when) noexcept : when_(when) {}
  Clock::time_point when_;
};

// saturating_ns(d) converts d to nanoseconds, clamping at nanoseconds::max() and at zero.
template <class Rep, class Period>
constexpr std::chrono::nanoseconds saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
  using std::chrono::nanoseconds;
  if (!(d > d.zero())) return nanoseconds::zero();
  if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(nanoseconds::max())) {
    return nanoseconds::max();
  }
  return std::chrono::ceil<nanoseconds>(d);
}

}  // namespace detail
}  // namespace concur
