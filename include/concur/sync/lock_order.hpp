// concur/sync/lock_order.hpp — the lock-order checker: finds lock-order inversions (potential
// deadlocks) the first time the inverted order is seen, even on runs that happen not to hang.
//
// When enabled — CONCUR_LOCK_ORDER=1 in the environment at start-up, or enable() at run time —
// every blocking acquisition of a Lock or RLock records "held -> acquired" edges in one global
// graph. An acquisition that would close a cycle (thread A took fork then noodle, thread B
// holding noodle now asks for fork) is reported *before* the thread blocks, naming every lock
// and the thread that established each edge of the cycle. Non-blocking acquisitions
// (try_acquire) cannot deadlock and are recorded as held but never checked.
// Reporting: the handler is called in the acquiring thread. The default handler throws
// DeadlockError, so the inverted acquisition fails instead of deadlocking; a custom handler may
// log and return, in which case the acquisition proceeds and that inversion is not reported again.
// Cost when off: one relaxed atomic load per acquire and release.
// Thread-safety: every function is safe from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "concur/detail/config.hpp"

namespace concur::lock_order {

// Edge is one recorded order: `thread` acquired `to` while holding `from`.
struct Edge {
  std::string from;
  std::string to;
  std::string thread;
};

// Violation describes one inversion: the acquisition that closes the cycle, then the recorded
// edges that lead from the lock being acquired back to the lock being held.
struct Violation {
  std::string thread;     // name of the acquiring thread
  std::string acquiring;  // name of the lock it asked for
  std::string held;       // name of the lock it holds that closes the cycle
  std::vector<Edge> cycle;
  std::string message;  // one readable paragraph naming all of the above
};

using Handler = std::function<void(const Violation&)>;

// enable(on) switches checking on or off for the whole process. Locks held while the switch
// flips are not known to the checker; enable it before the threads under test start.
CONCUR_EXPORT void enable(bool on = true) noexcept;
// enabled() reports the switch.
[[nodiscard]] CONCUR_EXPORT bool enabled() noexcept;
// set_handler(h) installs h (an empty h restores the default, which throws DeadlockError) and
// returns the previous handler.
CONCUR_EXPORT Handler set_handler(Handler handler);
// reset() forgets every recorded edge and held lock; for tests.
CONCUR_EXPORT void reset();

}  // namespace concur::lock_order

namespace concur::detail {

// The hooks Lock and RLock call; `blocking` is false for try-acquisitions.
extern constinit std::atomic<bool> g_lock_order_enabled;
inline bool lock_order_on() noexcept {
  return g_lock_order_enabled.load(std::memory_order_relaxed);
}
CONCUR_EXPORT void lock_order_before_acquire(const void* lock, const std::string& name);
CONCUR_EXPORT void lock_order_acquired(const void* lock) noexcept;
CONCUR_EXPORT void lock_order_released(const void* lock) noexcept;
CONCUR_EXPORT void lock_order_forget(const void* lock) noexcept;

// Thread names for reports come from the thread layer, which installs a provider; the
// default names a thread by its kernel id.
using ThreadNameProvider = std::string (*)();
CONCUR_EXPORT void set_thread_name_provider(ThreadNameProvider provider) noexcept;
CONCUR_EXPORT std::string current_thread_name();

}  // namespace concur::detail
