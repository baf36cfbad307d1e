// concur/detail/wait_queue.hpp — WaitQueue, an event count for waiting on a condition guarded
// by an external mutex without holding it while asleep (the queues' not_empty / not_full /
// all_tasks_done).
//
// Protocol (the caller's mutex guards the condition):
//   waiter:   lock; while (!cond) { t = wq.prepare(); unlock; wq.wait(t, deadline); lock;
//             wq.done(); }   — prepare() and done() under the mutex, wait() outside it.
//   notifier: lock; change cond; n = wq.signal(); unlock; wq.wake(n);
// signal() bumps the sequence only when someone is waiting (a relaxed load otherwise); wake()
// makes a system call only when a waiter went to sleep in the kernel after spinning.
// Memory ordering: the caller's mutex orders the condition; the sequence only wakes waiters.
// Thread-safety: as described by the protocol.
#pragma once

#include <atomic>
#include <cstdint>

#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"

namespace concur::detail {

class WaitQueue {
 public:
  // Wake is what signal() decided: nothing, one sleeper, or all sleepers.
  enum class Wake : std::uint8_t { kNone, kOne, kAll };

  // prepare() registers a waiter and returns the ticket to wait on (call under the mutex).
  std::uint32_t prepare() noexcept {
    waiters_.store(waiters_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return seq_.load(std::memory_order_relaxed);
  }
  // done() unregisters a waiter (call under the mutex, after wait()).
  void done() noexcept {
    waiters_.store(waiters_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  // wait(ticket, deadline) returns once signal() has run since prepare(), or on the deadline
  // (false), or spuriously; call without the mutex.
  // With spin=false it goes straight to the kernel (for callers that spun on their own
  // condition already).
  bool wait(std::uint32_t ticket, const Deadline& deadline, bool spin = true) noexcept {
    const auto changed = [&] { return seq_.load(std::memory_order_acquire) != ticket; };
    if (spin && spin_wait(changed, deadline)) return true;
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    const bool woke = futex_wait(seq_, ticket, deadline);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return woke || changed();
  }
  // signal(all) advances the sequence if anyone waits (call under the mutex) and says whom
  // wake() must wake.
  Wake signal(bool all = false) noexcept {
    if (waiters_.load(std::memory_order_relaxed) == 0) return Wake::kNone;
    seq_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) == 0) return Wake::kNone;
    return all ? Wake::kAll : Wake::kOne;
  }
  // wake(w) performs signal()'s decision (call after releasing the mutex).
  void wake(Wake w) noexcept {
    if (w == Wake::kOne) futex_wake(seq_, 1);
    if (w == Wake::kAll) futex_wake_all(seq_);
  }

 private:
  std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::uint32_t> waiters_{0};   // registered, spinning or sleeping (mutex-guarded)
  std::atomic<std::uint32_t> sleepers_{0};  // in the kernel right now
};

}  // namespace concur::detail

namespace concur::detail {

// EventCount is WaitQueue's twin for conditions kept in atomics, with no mutex at all (the
// lock-free ring queue's not_empty / not_full / all_done).
//
// Protocol:
//   waiter:   if (cond()) ...; t = ec.prepare(); if (cond()) { ec.cancel(); ... }
//             else ec.wait(t, deadline);            — then re-check cond() in a loop
//   notifier: make cond() true with a seq_cst store or read-modify-write; ec.notify(all);
// cond() must read with seq_cst loads. prepare() is a seq_cst read-modify-write on the waiter
// count and notify() a seq_cst load of it, so either the waiter's re-check sees the notifier's
// store or the notifier sees the waiter (the store-buffering pattern with every access
// seq_cst): a notification is never lost. notify() costs one load when nobody waits.
// Thread-safety: every member may be called from any thread.
class EventCount {
 public:
  // prepare() registers a waiter and returns the ticket for wait().
  std::uint32_t prepare() noexcept {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    return seq_.load(std::memory_order_seq_cst);
  }
  // cancel() unregisters a waiter whose re-check succeeded.
  void cancel() noexcept { waiters_.fetch_sub(1, std::memory_order_relaxed); }
  // wait(ticket, deadline) sleeps until a notify() since prepare(), the deadline (false) or a
  // spurious wake-up, and unregisters.
  bool wait(std::uint32_t ticket, const Deadline& deadline) noexcept {
    const bool woke = futex_wait(seq_, ticket, deadline);
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return woke;
  }
  // notify(all) wakes one (or every) registered waiter.
  void notify(bool all = false) noexcept {
    if (waiters_.load(std::memory_order_seq_cst) == 0) return;
    seq_.fetch_add(1, std::memory_order_seq_cst);
    if (all) {
      futex_wake_all(seq_);
    } else {
      futex_wake(seq_, 1);
    }
  }

 private:
  std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace concur::detail
