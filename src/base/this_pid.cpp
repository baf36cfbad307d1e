// this_pid()'s cache and the fork handler that renews it (see this_pid.hpp).
#include "this_pid.hpp"

#include <pthread.h>
#include <unistd.h>

namespace concur::detail {

constinit std::atomic<pid_t> g_this_pid{0};

pid_t this_pid_slow() noexcept {
  const pid_t pid = ::getpid();
  g_this_pid.store(pid, std::memory_order_relaxed);
  return pid;
}

namespace {
// Registered before main() (this file is linked whenever this_pid() is used), so every child of
// fork() runs it; pthread_atfork runs child handlers in the order they were registered, and
// no other handler here reads this_pid().
void renew_after_fork() noexcept { g_this_pid.store(::getpid(), std::memory_order_relaxed); }
[[maybe_unused]] const bool kRenewAtFork = [] {
  this_pid_slow();
  return ::pthread_atfork(nullptr, nullptr, &renew_after_fork) == 0;
}();
}  // namespace

}  // namespace concur::detail
