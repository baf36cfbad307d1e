// src/mp/this_pid.hpp (internal) — this_pid(): the calling process's id without a system call,
// for the checks that tell a forked copy of an object from the original on hot paths (a process
// pool's submit, a Redis command). getpid() is a system call (~0.1 us here); this is a load of a
// value set at the first call and again in every child fork() makes (a pthread_atfork handler in
// process.cpp). A child made by vfork() or a raw clone() runs no handler, and must not run concur
// code before it execs.
#pragma once

#include <sys/types.h>

#include "concur/detail/config.hpp"

namespace concur::mp::detail {

CONCUR_EXPORT pid_t this_pid() noexcept;

}  // namespace concur::mp::detail
