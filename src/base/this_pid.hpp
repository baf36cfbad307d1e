// src/base/this_pid.hpp (internal) — this_pid(): the calling process's id without a system call,
// for the checks that tell a forked copy of an object from the original on hot paths (a thread
// pool's or process pool's submit, a Redis command). getpid() is a system call (~0.1 us here);
// this is a load of a value set at static initialization and again in every child fork() makes
// (a pthread_atfork handler in this_pid.cpp). A child made by vfork() or a raw clone() runs no
// handler, and must not run concur code before it execs.
#pragma once

#include <sys/types.h>

#include <atomic>

#include "concur/detail/config.hpp"

namespace concur::detail {

// g_this_pid: this_pid()'s cache; 0 until this_pid.cpp's static initialization or a first call.
CONCUR_EXPORT extern std::atomic<pid_t> g_this_pid;
CONCUR_EXPORT pid_t this_pid_slow() noexcept;

inline pid_t this_pid() noexcept {
  const pid_t pid = g_this_pid.load(std::memory_order_relaxed);
  return pid != 0 ? pid : this_pid_slow();
}

}  // namespace concur::detail
