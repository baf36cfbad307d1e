// concur/detail/config.hpp — macros shared by every concur header: symbol export, the
// thread-safety annotations of STYLE.md (checked by clang's -Wthread-safety, no-ops on g++),
// and CONCUR_DCHECK for internal invariants (on in debug builds and in CI's sanitizer builds).
#pragma once

#include <cstdio>
#include <cstdlib>

#if defined(__GNUC__)
#define CONCUR_EXPORT __attribute__((visibility("default")))
#else
#define CONCUR_EXPORT
#endif

#if defined(__clang__)
#define CONCUR_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CONCUR_THREAD_ANNOTATION(x)
#endif
// CONCUR_GUARDED_BY(mu): the member is only read or written while `mu` is held.
#define CONCUR_GUARDED_BY(mu) CONCUR_THREAD_ANNOTATION(guarded_by(mu))

#if !defined(NDEBUG) || defined(CONCUR_ENABLE_DCHECK)
#define CONCUR_DCHECK(cond)                                                                 \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: CONCUR_DCHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)
#else
#define CONCUR_DCHECK(cond) \
  do {                      \
  } while (false)
#endif
