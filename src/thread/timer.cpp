// Timer: wait on the `finished_` Event for the interval; run the function unless cancelled.
#include "concur/timer.hpp"

#include "concur/errors.hpp"

namespace concur {

Timer::~Timer() {
  cancel();
  try {
    if (ident() != 0 && current_thread() != ref()) join();
  } catch (...) {  // not started, or destroyed from its own function: nothing to wait for
  }
}

void Timer::run() {
  finished_.wait(interval_);
  if (!finished_.is_set()) function_();
  finished_.set();
}

}  // namespace concur
