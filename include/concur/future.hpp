// concur/future.hpp — Future<T>, Promise<T>, AnyFuture, as_completed() and wait(): Python's
// concurrent.futures result handles, plus the one-allocation task path the executors use.
//
// A Future<T> is a copyable handle to one shared state (intrusive reference count): pending →
// running → finished (a value or an exception) | cancelled. result() / exception() block until it
// is done (duration and time-point twins throw TimeoutError), cancel() succeeds only while pending
// (and asks a running stop-token task to stop; a producer that can stop running work, such as
// ProcessPoolExecutor with kill_running, lets it cancel a running future), add_done_callback()
// and then() run code when it completes. A Promise<T> is the producer side; detail::make_task()
// builds a runnable task and its future in one allocation. as_completed() yields futures as they
// finish; wait() returns the done and the not-done ones. Guarantees: no lost wake-up, no lost
// exception (a producer that vanishes finishes the future with BrokenExecutor; an exception nobody
// retrieved goes to the excepthook).
// Memory ordering: everything the producer did before the future became done (the value, the
// side effects of the task) is visible to every thread that sees it done (done(), result(), a
// callback, as_completed, wait). Thread-safety: distinct handles to one state may be used from any
// threads at once; one handle object, like a std::shared_ptr, must not be assigned or moved while
// another thread uses it. Lifetime: a state lives as long as any handle, Promise, task or pending
// callback refers to it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <new>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/errors.hpp"

namespace concur {

template <class T>
class Future;
template <class T>
class Promise;
class AnyFuture;

namespace detail {

class FutureStateBase;

// WaitNode is an entry of a state's completion list: a done-callback, a then() continuation, or
// an internal waiter of as_completed()/wait(). `fire` runs once when the state becomes done;
// internal nodes fire under the state's list lock (so their owner can unregister safely), the
// others after it is released, in registration order.
struct WaitNode {
  WaitNode* next = nullptr;
  void (*fire)(WaitNode* self, FutureStateBase& state) noexcept = nullptr;
  bool internal = false;
};

// FutureStateBase is the untyped part of every shared state. Internal: used by Future, Promise,
// the task path and the executors' WaitHelper; its members are not a user API.
//
// word_ (the futex word): bits 0-2 the state, then flags. Completion is one RMW on it (plus a
// futex wake only when a waiter set kSleeper, and a walk of the list only when kHasNodes is set).
// refs_: bits 0-31 count every reference (handles, Promise, task, pending callbacks), bits 32-62
// the Future/AnyFuture handles among them, bit 63 "an unobserved exception waits to be reported
// by the last handle" (see docs/internals/futures.md).
class CONCUR_EXPORT FutureStateBase {
 public:
  static constexpr std::uint32_t kStateMask = 0x7;
  static constexpr std::uint32_t kPending = 0;
  static constexpr std::uint32_t kRunning = 1;
  static constexpr std::uint32_t kFinished = 2;
  static constexpr std::uint32_t kCancelled = 3;
  static constexpr std::uint32_t kCancelledNotified = 4;
  static constexpr std::uint32_t kClaimed = 1U << 3;       // a Promise is storing the outcome
  static constexpr std::uint32_t kSleeper = 1U << 4;       // a waiter may sleep in the kernel
  static constexpr std::uint32_t kHasNodes = 1U << 5;      // the completion list was used
  static constexpr std::uint32_t kHasException = 1U << 6;  // finished with an exception
  static constexpr std::uint32_t kRetrieved = 1U << 7;     // result()/exception() saw it
  static constexpr std::uint32_t kMovedOut = 1U << 8;      // a move-only value was taken

  static constexpr std::uint64_t kRef = 1;
  static constexpr std::uint64_t kFutureRef = std::uint64_t{1} << 32;
  static constexpr std::uint64_t kUnobserved = std::uint64_t{1} << 63;
  static constexpr std::uint64_t kRefMask = kFutureRef - 1;
  static constexpr std::uint64_t kFutureMask = ~kRefMask & ~kUnobserved;

  static constexpr std::uint32_t state_of(std::uint32_t w) noexcept { return w & kStateMask; }
  static constexpr bool is_done(std::uint32_t w) noexcept { return state_of(w) >= kFinished; }
  static constexpr bool is_cancelled(std::uint32_t w) noexcept { return state_of(w) >= kCancelled; }

  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;

  // ---- queries ---------------------------------------------------------------------------------
  [[nodiscard]] std::uint32_t word() const noexcept {
    return word_.load(std::memory_order_acquire);
  }
  [[nodiscard]] bool done() const noexcept { return is_done(word()); }
  [[nodiscard]] const std::exception_ptr& stored_exception() const noexcept { return exc_; }
  // finisher(): for a state that no task of its own finishes (map()'s gate, executor.hpp), the
  // state of the task running the work that will finish it, if one runs it now; else nullptr.
  // A pool's deadlock check follows it; the pointer may be stale: compare it, never dereference.
  [[nodiscard]] virtual const FutureStateBase* finisher() const noexcept { return nullptr; }

  // ---- the pool that finishes it ---------------------------------------------------------------
  // kNoPool: no thread pool's task finishes the state (a Promise fed by I/O or another thread, a
  // process pool, the event loop): a pool worker waiting on it blocks like any thread.
  static constexpr std::uint32_t kNoPool = 0;
  // pool_id(): the id of the in-process thread pool whose task finishes this state — set by the
  // pool when it accepts the task, copied by then() from its source — or kNoPool.
  [[nodiscard]] std::uint32_t pool_id() const noexcept {
    return pool_.load(std::memory_order_relaxed);
  }
  void set_pool_id(std::uint32_t id) noexcept { pool_.store(id, std::memory_order_relaxed); }
  // finished_by_pool(id): whether a task of pool `id` (not kNoPool) finishes this state now; what
  // a worker of that pool asks before it helps (runs the pool's other tasks) in a wait on it. A
  // state standing for several futures (as_completed()/wait()'s gate) answers for the pending ones.
  [[nodiscard]] virtual bool finished_by_pool(std::uint32_t id) const noexcept {
    return id != kNoPool && pool_id() == id;
  }

  // ---- references ------------------------------------------------------------------------------
  void add_ref() noexcept { refs_.fetch_add(kRef, std::memory_order_relaxed); }
  void release_ref() noexcept {
    if ((refs_.fetch_sub(kRef, std::memory_order_acq_rel) & kRefMask) == kRef) destroy();
  }
  void add_future_ref() noexcept { refs_.fetch_add(kFutureRef + kRef, std::memory_order_relaxed); }
  // release_future_ref() drops a handle; the last handle reports an unobserved exception.
  void release_future_ref() noexcept;

  // ---- consumer side ---------------------------------------------------------------------------
  // cancel(): Python's Future.cancel() (see Future::cancel).
  bool cancel() noexcept;
  // wait(d) blocks until done (true) or the deadline (false): the thread's WaitHelper first, then
  // wait_plain(). May throw what the WaitHelper throws (DeadlockError).
  bool wait(const Deadline& d) { return done() || wait_slow(d); }
  // wait_plain(d): a bounded spin (detail::spin_wait), then a futex sleep on the state word.
  // Never consults the WaitHelper (a helper with nothing to run calls this).
  bool wait_plain(const Deadline& d) noexcept;
  void mark_retrieved(std::uint32_t w) noexcept {
    if ((w & kRetrieved) == 0) word_.fetch_or(kRetrieved, std::memory_order_relaxed);
  }
  // sole_reader(): the caller's handle is the only Future/AnyFuture handle and no callback or
  // waiter node was ever linked, so nobody else can read the value (a copyable value may then be
  // moved out by std::move(f).result()).
  [[nodiscard]] bool sole_reader() const noexcept {
    return (refs_.load(std::memory_order_acquire) & kFutureMask) == kFutureRef &&
           (word() & kHasNodes) == 0;
  }
  // take_move() claims the one move of a value; false when it was already taken.
  bool take_move() noexcept {
    return (word_.fetch_or(kMovedOut, std::memory_order_acq_rel) & kMovedOut) == 0;
  }

  // ---- producer side ---------------------------------------------------------------------------
  // Withdrawal: what withdraw() (below) found out about pending work.
  enum class Withdrawal : std::uint8_t { kWithdrawn, kTaken, kUnknown };
  enum class Start : std::uint8_t { kStarted, kCancelled, kInvalid };
  // try_start(): PENDING → RUNNING (kStarted); CANCELLED → CANCELLED_NOTIFIED (kCancelled);
  // anything else (running, finished, already notified, being set) → kInvalid.
  Start try_start() noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint32_t s = state_of(w);
      if (s == kPending && (w & kClaimed) == 0) {
        if (word_.compare_exchange_weak(w, w + kRunning, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
          return Start::kStarted;
        }
      } else if (s == kCancelled) {
        if (word_.compare_exchange_weak(w, w + (kCancelledNotified - kCancelled),
                                        std::memory_order_acq_rel, std::memory_order_relaxed)) {
          return Start::kCancelled;
        }
      } else {
        return Start::kInvalid;
      }
    }
  }
  // try_claim(from): a pending or running, unclaimed state becomes claimed (cancel() fails from
  // now on); `from` receives its state. False when it is done or claimed already.
  bool try_claim(std::uint32_t& from) noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint32_t s = state_of(w);
      if ((s != kPending && s != kRunning) || (w & kClaimed) != 0) return false;
      if (word_.compare_exchange_weak(w, w | kClaimed, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        from = s;
        return true;
      }
    }
  }
  void unclaim() noexcept { word_.fetch_and(~kClaimed, std::memory_order_release); }
  void set_exception_ptr(std::exception_ptr e) noexcept { exc_ = std::move(e); }
  // finish(from, claimed, exception, report): the one RMW that publishes the outcome stored before
  // it. The caller is the only producer (it ran the task, or it holds the claim), so the state is
  // known to be `from` and one fetch_add moves it to FINISHED, drops the claim and sets
  // kHasException. `report`: an exception nobody retrieves goes to the excepthook.
  void finish(std::uint32_t from, bool claimed, bool exception, bool report) noexcept {
    std::uint32_t delta = kFinished - from;
    if (exception) delta += kHasException;
    if (claimed) delta -= kClaimed;  // unsigned wrap-around: clears the (set) claim bit
    const std::uint32_t old = word_.fetch_add(delta, std::memory_order_seq_cst);
    const bool unobserved = exception && report;
    if ((old & (kSleeper | kHasNodes)) != 0 || unobserved) [[unlikely]] {
      completed(old, unobserved);
    }
  }
  // notify_cancel(): CANCELLED → CANCELLED_NOTIFIED (a producer acknowledging a cancel).
  void notify_cancel() noexcept;
  // abandon_pending(why): a sole producer that never ran the work: PENDING → CANCELLED_NOTIFIED
  // (why == nullptr) or FINISHED with `why` (never reported as unobserved); CANCELLED →
  // CANCELLED_NOTIFIED.
  void abandon_pending(std::exception_ptr why) noexcept;

  // ---- completion list -------------------------------------------------------------------------
  // add_node(n) links n unless the state is done already (false: the caller fires it itself).
  bool add_node(WaitNode* n) noexcept;
  // remove_node(n) unlinks n if it has not fired; after it returns, n is never touched again.
  void remove_node(WaitNode* n) noexcept;

 protected:
  explicit FutureStateBase(std::uint64_t refs) noexcept : refs_(refs) {}
  virtual ~FutureStateBase();
  // request_stop(): cancel() on a running task; a stop-token task forwards it to its stop_source.
  virtual void request_stop() noexcept {}
  // cancels_running(): true for a producer that can stop its work while it runs
  // (ProcessPoolExecutor with kill_running): cancel() then moves a running, unclaimed state to
  // CANCELLED and calls running_cancelled() before the waiters wake and the callbacks run.
  virtual bool cancels_running() const noexcept { return false; }
  // running_cancelled(): cancel() cancelled the running work; the producer stops it. Called once,
  // in the cancelling thread. The producer's later set_result()/set_exception() fail
  // (InvalidStateError) and its destructor acknowledges the cancel.
  virtual void running_cancelled() noexcept {}
  // withdraws(): true for a producer whose pending work may be taken elsewhere before the state
  // hears of it (RedisExecutor: a worker took the task and its report is on the way). cancel() of
  // a pending state then asks withdraw() first.
  virtual bool withdraws() const noexcept { return false; }
  // withdraw(): takes the pending work back from where it waits. kWithdrawn: it will never run,
  // the cancel goes ahead; kTaken: it runs (or ran) elsewhere: a pending state becomes RUNNING and
  // cancel() goes on as for a running one (fails unless cancels_running()); kUnknown (it cannot
  // tell: the broker is unreachable): cancel() fails, the state stays as it is. Called in the
  // cancelling thread with no lock held; it may block. Once it answered kWithdrawn or kTaken it
  // must give every later and concurrent call the same answer.
  virtual Withdrawal withdraw() noexcept { return Withdrawal::kWithdrawn; }
  // assist_wait(d): a producer that can move the work forward in the waiting thread does so until
  // the state is done or the deadline passes (ProcessPoolExecutor reads its worker's reply itself,
  // saving a thread hand-off); false when it cannot or did not finish. Called by a blocking wait
  // before it spins and sleeps.
  virtual bool assist_wait(const Deadline& /*d*/) { return false; }

  std::atomic<std::uint32_t> word_{kPending};

 private:
  std::atomic<std::uint32_t> pool_{kNoPool};  // beside word_: fills its padding (see pool_id())

  bool wait_slow(const Deadline& d);
  void completed(std::uint32_t old, bool unobserved) noexcept;
  void fire_nodes() noexcept;
  void mark_unobserved() noexcept;
  void report_if_unretrieved() noexcept;
  void destroy() noexcept { delete this; }

  std::atomic<std::uint64_t> refs_;
  FutexMutex list_mu_;
  WaitNode* nodes_ CONCUR_GUARDED_BY(list_mu_) = nullptr;  // LIFO; reversed when fired
  std::exception_ptr exc_;
};

inline void FutureStateBase::release_future_ref() noexcept {
  std::uint64_t old = refs_.load(std::memory_order_relaxed);
  for (;;) {
    if ((old & kFutureMask) == kFutureRef && (old & kUnobserved) != 0) [[unlikely]] {
      // The last handle of a state that finished with an exception nobody had retrieved then:
      // keep our reference while we look, report, then let go.
      if (refs_.compare_exchange_weak(old, (old - kFutureRef) & ~kUnobserved,
                                      std::memory_order_acq_rel, std::memory_order_relaxed)) {
        report_if_unretrieved();
        release_ref();
        return;
      }
    } else if (refs_.compare_exchange_weak(old, old - kFutureRef - kRef, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
      if ((old & kRefMask) == kRef) destroy();
      return;
    }
  }
}

// FutureState<T> adds the value. It is constructed in place by the producer before finish() and
// destroyed with the state (a moved-out value is still destroyed: it is a moved-from object).
template <class T>
class FutureState : public FutureStateBase {
 public:
  explicit FutureState(std::uint64_t refs) noexcept : FutureStateBase(refs) {}
  ~FutureState() override {
    const std::uint32_t w = word_.load(std::memory_order_relaxed);
    if (state_of(w) == kFinished && (w & kHasException) == 0) std::destroy_at(&value_);
  }
  T& value() noexcept { return value_; }
  template <class... A>
  void construct_value(A&&... args) {
    ::new (static_cast<void*>(std::addressof(value_))) T(std::forward<A>(args)...);
  }
  // construct_from(g): the value is g()'s result itself (guaranteed copy elision).
  template <class G>
  void construct_from(G&& g) {
    ::new (static_cast<void*>(std::addressof(value_))) T(std::forward<G>(g)());
  }

 private:
  union {
    T value_;
  };
};

template <>
class FutureState<void> : public FutureStateBase {
 public:
  explicit FutureState(std::uint64_t refs) noexcept : FutureStateBase(refs) {}
};

// WaitHelper is the executors' hook into blocking waits. Every blocking wait on a future
// (result, exception, wait, as_completed, concur::wait) that finds it not done calls the calling
// thread's helper first, if one is installed: help_until(s, d) returns once s is done or the
// deadline d passed — a pool worker whose own pool finishes s (s.finished_by_pool) runs the
// pool's queued tasks meanwhile ("helping"), and may throw DeadlockError when the wait can never
// end; the exception propagates out of the waiting call. It may also return early (false) to
// decline — a pool worker does for every future its pool does not finish — and the wait then
// continues as any thread's would (the producer's assist_wait, then s.wait_plain(d)).
// For as_completed()/wait() over many futures, `s` is an internal state that becomes done when
// the condition holds. The pool installs its helper on its worker threads with set_wait_helper().
class WaitHelper {
 public:
  virtual ~WaitHelper() = default;
  // help_until(s, d): true when s is done, false when the deadline passed or it declines.
  virtual bool help_until(FutureStateBase& s, const Deadline& d) = 0;

 protected:
  WaitHelper() = default;
  WaitHelper(const WaitHelper&) = default;
  WaitHelper& operator=(const WaitHelper&) = default;
};

// set_wait_helper(h) installs h for the calling thread (nullptr removes it); returns the previous.
CONCUR_EXPORT WaitHelper* set_wait_helper(WaitHelper* h) noexcept;
// wait_helper() is the calling thread's helper, or nullptr.
CONCUR_EXPORT WaitHelper* wait_helper() noexcept;

// ScopedWaitHelper installs a helper for the lifetime of the object, then restores the previous.
class ScopedWaitHelper {
 public:
  explicit ScopedWaitHelper(WaitHelper* h) noexcept : previous_(set_wait_helper(h)) {}
  ~ScopedWaitHelper() { set_wait_helper(previous_); }
  ScopedWaitHelper(const ScopedWaitHelper&) = delete;
  ScopedWaitHelper& operator=(const ScopedWaitHelper&) = delete;

 private:
  WaitHelper* previous_;
};

// report_exception(e) hands e to concur's excepthook (ExceptHookArgs naming the calling thread);
// never throws. What a throwing callback and an unobserved exception go through.
CONCUR_EXPORT void report_exception(std::exception_ptr e) noexcept;

// Out-of-line throws (keep the inline paths small).
[[noreturn]] CONCUR_EXPORT void throw_no_state();
[[noreturn]] CONCUR_EXPORT void throw_cancelled();
[[noreturn]] CONCUR_EXPORT void throw_timeout();
[[noreturn]] CONCUR_EXPORT void throw_invalid_state(const char* operation, std::uint32_t word);
[[noreturn]] CONCUR_EXPORT void throw_moved_out();
// The BrokenExecutor a vanished producer leaves (never throws; falls back to bad_alloc).
CONCUR_EXPORT std::exception_ptr broken_promise_error() noexcept;
CONCUR_EXPORT std::exception_ptr broken_task_error() noexcept;

// PromiseAccess: how a producer with its own state type (derived from FutureState<T>, created
// with one reference) builds the Promise that owns it (ProcessPoolExecutor's cancellable states).
struct PromiseAccess {
  template <class T>
  static Promise<T> adopt(FutureState<T>* s) noexcept {
    return Promise<T>(s);
  }
};

// FutureAccess: how the library builds handles from states and reads them back.
struct FutureAccess {
  template <class T>
  static Future<T> adopt(FutureStateBase* s) noexcept;
  static FutureStateBase* state(const AnyFuture& f) noexcept;
};

// Gate is a reusable internal state as_completed()/wait() block on (so that the WaitHelper sees a
// FutureStateBase): reset() and open() are called under the owner's mutex.
// It also counts, per pool, the watched futures still pending that a pool's task finishes, so
// that finished_by_pool() answers for them (a worker helps only while one of its pool's is left).
class CONCUR_EXPORT Gate final : public FutureStateBase {
 public:
  static constexpr std::uint8_t kNoSlot = 0xff;    // a future no pool finishes
  static constexpr std::uint8_t kOverflow = 0xfe;  // a pool beyond kPools: counted as any pool
  static constexpr std::size_t kPools = 4;

  Gate() noexcept : FutureStateBase(kRef) {}
  ~Gate() override;
  void reset() noexcept { word_.store(kPending, std::memory_order_relaxed); }
  void open() noexcept;
  // add_pool(id): one more pending future finished by pool id; returns the slot to drop later.
  // Called by the waiting thread only, before it waits.
  std::uint8_t add_pool(std::uint32_t id) noexcept;
  // drop_pool(slot): that future is done (from any thread).
  void drop_pool(std::uint8_t slot) noexcept;
  [[nodiscard]] bool finished_by_pool(std::uint32_t id) const noexcept override;

 private:
  std::uint32_t ids_[kPools] = {};  // written by the waiting thread before it waits
  std::atomic<std::uint32_t> pending_[kPools] = {};
  std::atomic<std::uint32_t> overflow_{0};
};

// CompletionWaiter is the one waiter behind as_completed() and wait(): one WaitNode per pending
// future, a FIFO of finished indices (as_completed) or a trigger condition (wait), and a Gate.
// Usage: construct with the number of futures and an upper bound of the pending ones, watch(i, s)
// each future in input order, arm(), then next() / wait(). The destructor unlinks every node
// that has not fired, so an abandoned as_completed leaves nothing behind in the states.
class CONCUR_EXPORT CompletionWaiter {
 public:
  enum class Mode : std::uint8_t { kAsCompleted, kFirstCompleted, kFirstException, kAllCompleted };
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  CompletionWaiter(Mode mode, std::size_t total, std::size_t max_pending);
  ~CompletionWaiter();
  CompletionWaiter(const CompletionWaiter&) = delete;
  CompletionWaiter& operator=(const CompletionWaiter&) = delete;

  // watch(i, s): record future i (state s): done now → ready at once; else register a node.
  void watch(std::size_t i, FutureStateBase& s) noexcept;
  // arm(): registration is complete (wait modes: the condition may now trigger).
  void arm() noexcept;
  // next(d) (as_completed): the index of the next finished future, in completion order
  // (already-done ones first, in input order); kNone once the deadline passed with none ready.
  std::size_t next(const Deadline& d);
  // wait(d) (wait modes): until the return_when condition holds or the deadline passed.
  void wait(const Deadline& d);

 private:
  struct Node : WaitNode {
    CompletionWaiter* owner = nullptr;
    FutureStateBase* state = nullptr;
    std::size_t index = 0;
    std::uint8_t pool = Gate::kNoSlot;  // its slot in gate_'s pool counts
    bool registered = false;
    bool fired = false;  // guarded by owner->mu_
  };
  static void on_fire(WaitNode* n, FutureStateBase& s) noexcept;
  void record(std::size_t i, const FutureStateBase& s, bool counted) noexcept;  // under mu_
  void trigger() noexcept;                                                      // under mu_

  const Mode mode_;
  std::unique_ptr<Node[]> nodes_;
  std::size_t max_nodes_;
  std::size_t used_nodes_ = 0;
  FutexMutex mu_;
  std::vector<std::size_t> ready_ CONCUR_GUARDED_BY(mu_);  // reserved: push_back never allocates
  std::size_t read_ CONCUR_GUARDED_BY(mu_) = 0;
  std::size_t pending_ CONCUR_GUARDED_BY(mu_) = 1;  // + 1 until arm(): no early trigger
  bool triggered_ CONCUR_GUARDED_BY(mu_) = false;
  Gate gate_;
};

// Runnable is an intrusive, type-erased unit of work with its future (what executors queue).
// Owned through a RunnablePtr. run() or abandon() is called at most once, by the owner.
class Runnable {
 public:
  // next: an intrusive link for the queue that holds the task (owned by that queue; atomic so
  // that lock-free queues can link it).
  std::atomic<Runnable*> next{nullptr};

  // run(): set_running_or_notify_cancel(), then (unless cancelled) invoke the callable and
  // finish the future with its value or exception. The callable and its arguments are destroyed
  // before the future becomes done.
  virtual void run() noexcept = 0;
  // abandon(why): the task will never run: its future is cancelled (why == nullptr) or finishes
  // with `why` (e.g. BrokenThreadPool; never reported as unobserved). Destroys the callable.
  void abandon(std::exception_ptr why = nullptr) noexcept { do_abandon(std::move(why)); }
  // future_state(): the state this task completes (a helping pool matches waits to tasks).
  virtual FutureStateBase& future_state() noexcept = 0;
  // dispose(): the owner lets go; a task never run nor abandoned finishes its future with
  // BrokenExecutor("the task was destroyed before it ran"). Called by ~RunnablePtr.
  virtual void dispose() noexcept = 0;

 protected:
  Runnable() = default;
  Runnable(const Runnable&) = delete;
  Runnable& operator=(const Runnable&) = delete;
  ~Runnable() = default;
  virtual void do_abandon(std::exception_ptr why) noexcept = 0;
};

// RunnablePtr is the unique owner of a Runnable (move-only, like std::unique_ptr). release() /
// the adopting constructor let an intrusive queue hold the raw pointer in between.
class RunnablePtr {
 public:
  RunnablePtr() noexcept = default;
  explicit RunnablePtr(Runnable* r) noexcept : r_(r) {}
  RunnablePtr(RunnablePtr&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  RunnablePtr& operator=(RunnablePtr&& o) noexcept {
    RunnablePtr(std::move(o)).swap(*this);
    return *this;
  }
  RunnablePtr(const RunnablePtr&) = delete;
  RunnablePtr& operator=(const RunnablePtr&) = delete;
  ~RunnablePtr() { reset(); }

  [[nodiscard]] Runnable* get() const noexcept { return r_; }
  Runnable* operator->() const noexcept { return r_; }
  Runnable& operator*() const noexcept { return *r_; }
  explicit operator bool() const noexcept { return r_ != nullptr; }
  // release() gives up ownership without disposing (adopt it back with RunnablePtr(r)).
  [[nodiscard]] Runnable* release() noexcept { return std::exchange(r_, nullptr); }
  void reset() noexcept {
    if (Runnable* r = std::exchange(r_, nullptr)) r->dispose();
  }
  void swap(RunnablePtr& o) noexcept { std::swap(r_, o.r_); }

 private:
  Runnable* r_ = nullptr;
};

template <class R>
struct TaskAndFuture {
  RunnablePtr task;
  Future<R> future;
};

template <class F, class... Args>
auto make_task(F&& f, Args&&... args);

}  // namespace detail

// AnyFuture is a type-erased handle over any future's state (Future<T> converts to it): done(),
// running(), cancelled(), cancel(), exception(), wait(). It counts as a handle (it may retrieve
// the exception), and it is what as_completed()/wait() take for futures of mixed types.
class CONCUR_EXPORT AnyFuture {
 public:
  // AnyFuture() has no state: every member but valid() throws InvalidStateError.
  AnyFuture() noexcept = default;
  AnyFuture(const AnyFuture& o) noexcept : state_(o.state_) {
    if (state_ != nullptr) state_->add_future_ref();
  }
  AnyFuture(AnyFuture&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  AnyFuture& operator=(const AnyFuture& o) noexcept {
    AnyFuture(o).swap(*this);
    return *this;
  }
  AnyFuture& operator=(AnyFuture&& o) noexcept {
    AnyFuture(std::move(o)).swap(*this);
    return *this;
  }
  ~AnyFuture() {
    if (state_ != nullptr) state_->release_future_ref();
  }

  // valid() is true for a handle with a state (not default-constructed, not moved from).
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  // done() is true once finished or cancelled.
  [[nodiscard]] bool done() const { return checked()->done(); }
  // running() is true while the work runs (after set_running_or_notify_cancel()).
  [[nodiscard]] bool running() const {
    return detail::FutureStateBase::state_of(checked()->word()) ==
           detail::FutureStateBase::kRunning;
  }
  // cancelled() is true once cancel() succeeded.
  [[nodiscard]] bool cancelled() const {
    return detail::FutureStateBase::is_cancelled(checked()->word());
  }
  // cancel() cancels a pending future and returns true (also when it was cancelled already): it
  // becomes done, waiters wake, callbacks run in this thread. It returns false for a finished
  // future and for a running one — and a running stop-token task (detail::make_task with a
  // std::stop_token first parameter) additionally gets a stop request. A producer that can stop
  // running work (ProcessPoolExecutor with ProcessPoolOptions::kill_running) lets cancel() succeed
  // on a running future too: it stops the work and the future is cancelled. A remote executor's
  // pending future (RedisExecutor) first asks the broker whether a worker took the task: if one
  // did, cancel() returns false and the future is running from then on.
  bool cancel() { return checked()->cancel(); }

  // exception() blocks until done and returns the exception the work raised (nullptr when it
  // returned normally); throws CancelledError when cancelled. Marks the exception retrieved.
  [[nodiscard]] std::exception_ptr exception() const {
    return exception_deadline(detail::Deadline::infinite());
  }
  // exception(timeout) / exception_until(tp): the same, throwing TimeoutError when not done in
  // time (a zero or negative timeout polls).
  template <class Rep, class Period>
  [[nodiscard]] std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    return exception_deadline(detail::Deadline::after(timeout));
  }
  template <class C, class D>
  [[nodiscard]] std::exception_ptr exception_until(std::chrono::time_point<C, D> tp) const {
    return exception_deadline(detail::Deadline::at(tp));
  }

  // wait() blocks until done. It does not retrieve the exception (see the reporting rule).
  void wait() const { checked()->wait(detail::Deadline::infinite()); }
  // wait(timeout) / wait_until(tp) return true when done within the time, false otherwise.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return checked()->wait(detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) const {
    return checked()->wait(detail::Deadline::at(tp));
  }

  // Two handles are equal when they refer to the same state (Python: the same Future object).
  friend bool operator==(const AnyFuture& a, const AnyFuture& b) noexcept {
    return a.state_ == b.state_;
  }

 protected:
  struct AdoptTag {};
  AnyFuture(detail::FutureStateBase* s, AdoptTag /*tag*/) noexcept : state_(s) {}
  detail::FutureStateBase* checked() const {
    if (state_ == nullptr) [[unlikely]]
      detail::throw_no_state();
    return state_;
  }
  // wait_done(d): the state word once done; throws TimeoutError at the deadline.
  std::uint32_t wait_done(const detail::Deadline& d) const {
    detail::FutureStateBase* s = checked();
    std::uint32_t w = s->word();
    if (!detail::FutureStateBase::is_done(w)) {
      if (!s->wait(d)) detail::throw_timeout();
      w = s->word();
    }
    return w;
  }
  void swap(AnyFuture& o) noexcept { std::swap(state_, o.state_); }

  detail::FutureStateBase* state_ = nullptr;

 private:
  friend struct detail::FutureAccess;
  std::exception_ptr exception_deadline(const detail::Deadline& d) const;
};

// Future<T> is the result handle of one piece of work (T may be void or move-only; not a
// reference). Every member of AnyFuture, plus result(), add_done_callback() and then().
//
// Unobserved exceptions: when the work raised (the task threw, set_exception() was called, a
// then() function threw) and the last Future/AnyFuture handle goes away without result() or
// exception() having been called on any handle — done-callbacks and then() functions count, they
// receive a handle — the exception is reported once to the excepthook in the thread that drops
// that handle; if no handle existed when it finished, in the finishing thread. Never reported:
// cancellation, and the BrokenExecutor of a vanished producer (Promise destroyed, abandon(why)).
template <class T>
class Future : public AnyFuture {
  static_assert(!std::is_reference_v<T>, "Future<T&> is not supported: use a pointer or std::ref");

 public:
  using value_type = T;

  // Future() has no state (valid() == false); members throw InvalidStateError.
  Future() noexcept = default;

  // result() blocks until done and returns the value (a copy: every handle sees the same
  // value), rethrows the work's exception, or throws CancelledError. On an rvalue,
  // std::move(f).result() moves the value out instead of copying it — always for a move-only T,
  // for a copyable T when f is the only handle and no callback was ever added (otherwise it
  // copies); after a move, any later result() of any handle throws
  // InvalidStateError("the result was already moved out").
  T result() const& requires(std::is_void_v<T> || std::copy_constructible<T>) {
    return get(wait_done(detail::Deadline::infinite()));
  }
  T result() && requires(!std::is_void_v<T>) {
    return take(wait_done(detail::Deadline::infinite()));
  }
  // result(timeout) / result_until(tp): the same, throwing TimeoutError when not done in time.
  template <class Rep, class Period>
  T result(std::chrono::duration<Rep, Period> timeout) const& requires(std::is_void_v<T> ||
                                                                       std::copy_constructible<T>) {
    return get(wait_done(detail::Deadline::after(timeout)));
  }
  template <class Rep, class Period>
      T result(std::chrono::duration<Rep, Period> timeout) && requires(!std::is_void_v<T>) {
    return take(wait_done(detail::Deadline::after(timeout)));
  }
  template <class C, class D>
  T result_until(std::chrono::time_point<C, D> tp) const& requires(std::is_void_v<T> ||
                                                                   std::copy_constructible<T>) {
    return get(wait_done(detail::Deadline::at(tp)));
  }
  template <class C, class D>
      T result_until(std::chrono::time_point<C, D> tp) && requires(!std::is_void_v<T>) {
    return take(wait_done(detail::Deadline::at(tp)));
  }

  // add_done_callback(fn) calls fn(const Future<T>&) once the future is done: at once in this
  // thread when it is done already, otherwise in the thread that finishes or cancels it, in
  // registration order. An exception escaping fn goes to the excepthook; the future and the
  // other callbacks are unaffected. fn is stored decayed (move-only callables are fine).
  template <class F>
  void add_done_callback(F&& fn) const;

  // then(fn) returns a Future<U> (U = fn's decayed return type) that finishes with
  // fn(const Future<T>&)'s value or exception once this future is done; fn runs in the thread
  // that completes this future, or now when it is done. Cancelling the returned future before
  // then keeps fn from running. One allocation.
  template <class F>
  auto then(F&& fn) const;
  // then(executor, fn): the same, but fn is submitted to `executor` (anything with a
  // submit(callable) returning a concur::Future) when this future is done; the returned future
  // follows the submitted one (cancelled with it). It stays pending until fn's outcome arrives:
  // cancel() on it succeeds until then (a started fn still runs; its result is dropped). A
  // throwing submit() finishes it with that exception. The executor must outlive the wait for
  // this future.
  template <class Executor, class F>
  auto then(Executor& executor, F&& fn) const;

 private:
  friend struct detail::FutureAccess;
  Future(detail::FutureStateBase* s, AdoptTag tag) noexcept : AnyFuture(s, tag) {}
  detail::FutureState<T>* typed() const noexcept {
    return static_cast<detail::FutureState<T>*>(state_);
  }
  T get(std::uint32_t w) const {
    using B = detail::FutureStateBase;
    if (B::is_cancelled(w)) detail::throw_cancelled();
    if ((w & B::kHasException) != 0) {
      state_->mark_retrieved(w);
      std::rethrow_exception(state_->stored_exception());
    }
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      if ((w & B::kMovedOut) != 0) detail::throw_moved_out();
      return typed()->value();
    }
  }
  T take(std::uint32_t w) const {
    using B = detail::FutureStateBase;
    if (B::is_cancelled(w)) detail::throw_cancelled();
    if ((w & B::kHasException) != 0) {
      state_->mark_retrieved(w);
      std::rethrow_exception(state_->stored_exception());
    }
    if constexpr (std::copy_constructible<T>) {
      if (!state_->sole_reader()) return get(w);
    }
    if (!state_->take_move()) detail::throw_moved_out();
    return std::move(typed()->value());
  }
};

// Promise<T> is the producer side of a future (Python's executor-facing Future methods):
// get_future(), set_running_or_notify_cancel(), set_result(), set_exception(). Move-only. Its
// members may race each other from several threads (exactly one set wins, the others throw
// InvalidStateError) and any Future member. A Promise destroyed before its future is done finishes
// it with BrokenExecutor("the promise was destroyed before it set a result"), so no waiter hangs.
template <class T>
class Promise {
 public:
  // Promise() allocates the shared state (one allocation).
  Promise() : state_(new detail::FutureState<T>(detail::FutureStateBase::kRef)) {}
  Promise(Promise&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  Promise& operator=(Promise&& o) noexcept {
    if (this != &o) {
      abandon();
      state_ = std::exchange(o.state_, nullptr);
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { abandon(); }

  // valid() is false for a moved-from Promise; the other members then throw InvalidStateError.
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  // get_future() returns a handle to the state; call it as often as needed (futures are shared).
  [[nodiscard]] Future<T> get_future() const {
    detail::FutureStateBase* s = checked();
    s->add_future_ref();
    return detail::FutureAccess::adopt<T>(s);
  }
  // set_running_or_notify_cancel(): true and RUNNING when pending; false when the future was
  // cancelled (acknowledging it); InvalidStateError when running, finished or acknowledged.
  bool set_running_or_notify_cancel() {
    detail::FutureStateBase* s = checked();
    switch (s->try_start()) {
      case detail::FutureStateBase::Start::kStarted:
        return true;
      case detail::FutureStateBase::Start::kCancelled:
        return false;
      case detail::FutureStateBase::Start::kInvalid:
        break;
    }
    detail::throw_invalid_state("set_running_or_notify_cancel()", s->word());
  }
  // set_result(v...) constructs the value from v... and finishes the future (set_result() for
  // T = void). InvalidStateError when it is done (finished or cancelled) already — Python 3.8+.
  // If constructing the value throws, the future is left unchanged and the exception propagates.
  template <class... V>
  requires(std::is_void_v<T> ? sizeof...(V) == 0
                             : std::constructible_from<T, V...>) void set_result(V&&... v) {
    detail::FutureStateBase* s = checked();
    std::uint32_t from = 0;
    if (!s->try_claim(from)) detail::throw_invalid_state("set_result()", s->word());
    if constexpr (!std::is_void_v<T>) {
      try {
        state_->construct_value(std::forward<V>(v)...);
      } catch (...) {
        s->unclaim();
        throw;
      }
    }
    s->finish(from, true, false, false);
  }
  // set_exception(e) finishes the future with e (a non-null exception_ptr, else ValueError).
  // InvalidStateError when it is done already.
  void set_exception(std::exception_ptr e) {
    detail::FutureStateBase* s = checked();
    if (!e) throw ValueError("set_exception() needs an exception, not a null exception_ptr");
    std::uint32_t from = 0;
    if (!s->try_claim(from)) detail::throw_invalid_state("set_exception()", s->word());
    s->set_exception_ptr(std::move(e));
    s->finish(from, true, true, true);
  }
  // is_done() is true once the future is finished or cancelled.
  [[nodiscard]] bool is_done() const { return checked()->done(); }

 private:
  detail::FutureStateBase* checked() const {
    if (state_ == nullptr) [[unlikely]]
      detail::throw_no_state();
    return state_;
  }
  void abandon() noexcept {
    detail::FutureStateBase* s = std::exchange(state_, nullptr);
    if (s == nullptr) return;
    std::uint32_t from = 0;
    if (s->try_claim(from)) {
      s->set_exception_ptr(detail::broken_promise_error());
      s->finish(from, true, true, false);
    } else {
      s->notify_cancel();
    }
    s->release_ref();
  }

  friend struct detail::PromiseAccess;
  // Promise(state) adopts a state a producer derived from FutureState<T> (one reference).
  explicit Promise(detail::FutureState<T>* adopted) noexcept : state_(adopted) {}

  detail::FutureState<T>* state_;
};

// ---- detail: handles, callback nodes, continuations, tasks ----------------------------------

namespace detail {

template <class T>
Future<T> FutureAccess::adopt(FutureStateBase* s) noexcept {
  return Future<T>(s, AnyFuture::AdoptTag{});
}
inline FutureStateBase* FutureAccess::state(const AnyFuture& f) noexcept { return f.state_; }

// CallbackNode<H, F>: a done-callback; it holds the handle passed to fn (so the callback counts
// as a handle for the unobserved-exception rule) and deletes itself after running.
template <class H, class F>
struct CallbackNode final : WaitNode {
  template <class G>
  CallbackNode(H h, G&& g) : handle(std::move(h)), fn(std::forward<G>(g)) {
    fire = &run;
  }
  static void run(WaitNode* n, FutureStateBase& /*state*/) noexcept {
    auto* self = static_cast<CallbackNode*>(n);
    try {
      std::invoke(self->fn, std::as_const(self->handle));
    } catch (...) {
      report_exception(std::current_exception());
    }
    delete self;
  }
  H handle;
  F fn;
};

// ThenState: a continuation's state and its node in the source's list, in one allocation. It
// holds the source handle (passed to fn) and fn until it runs.
template <class U, class T, class F>
class ThenState final : public FutureState<U>, public WaitNode {
 public:
  template <class G>
  ThenState(Future<T> src, G&& g)
      : FutureState<U>(FutureStateBase::kFutureRef + 2 * FutureStateBase::kRef),
        src_(std::move(src)) {
    ::new (static_cast<void*>(std::addressof(fn_))) F(std::forward<G>(g));
    fire = &thunk;
    // fn runs where the source completes: a task of the source's pool, if any, finishes this.
    this->set_pool_id(FutureAccess::state(src_)->pool_id());
  }
  ~ThenState() override {}  // fn_ is destroyed by run_continuation()

  static void thunk(WaitNode* n, FutureStateBase& /*state*/) noexcept {
    static_cast<ThenState*>(n)->run_continuation();
  }
  void run_continuation() noexcept {
    if (this->try_start() == FutureStateBase::Start::kStarted) {
      std::exception_ptr error;
      try {
        if constexpr (std::is_void_v<U>) {
          std::invoke(fn_, std::as_const(src_));
        } else {
          this->construct_from([this]() -> U { return std::invoke(fn_, std::as_const(src_)); });
        }
      } catch (...) {
        error = std::current_exception();
      }
      drop_inputs();
      if (error) {
        this->set_exception_ptr(std::move(error));
        this->finish(FutureStateBase::kRunning, false, true, true);
      } else {
        this->finish(FutureStateBase::kRunning, false, false, false);
      }
    } else {
      drop_inputs();  // cancelled before the source completed: fn never runs
    }
    this->release_ref();  // the source's list held this reference
  }

 private:
  void drop_inputs() noexcept {
    std::destroy_at(&fn_);
    src_ = Future<T>();
  }
  Future<T> src_;
  union {
    F fn_;
  };
};

// TaskState: the future state, the Runnable, the decayed callable and arguments (and, for a
// stop-token task, its std::stop_source) in one object — make_task's single allocation.
struct NoStopSource {};

template <class R, bool kStop, class F, class... Args>
class TaskState final : public FutureState<R>, public Runnable {
 public:
  template <class G, class... A>
  explicit TaskState(G&& g, A&&... a)
      : FutureState<R>(FutureStateBase::kFutureRef + 2 * FutureStateBase::kRef) {
    ::new (static_cast<void*>(std::addressof(call_)))
        std::tuple<F, Args...>(std::forward<G>(g), std::forward<A>(a)...);
  }
  ~TaskState() override {}  // call_ is destroyed by run() / abandon()

  void run() noexcept override {
    CONCUR_DCHECK(!consumed_);
    consumed_ = true;
    if (this->try_start() != FutureStateBase::Start::kStarted) {
      destroy_call();  // cancelled while queued: now CANCELLED_AND_NOTIFIED
      return;
    }
    std::exception_ptr error;
    try {
      if constexpr (std::is_void_v<R>) {
        invoke();
      } else {
        this->construct_from([this]() -> R { return invoke(); });
      }
    } catch (...) {
      error = std::current_exception();
    }
    destroy_call();
    if (error) {
      this->set_exception_ptr(std::move(error));
      this->finish(FutureStateBase::kRunning, false, true, true);
    } else {
      this->finish(FutureStateBase::kRunning, false, false, false);
    }
  }
  FutureStateBase& future_state() noexcept override { return *this; }
  void dispose() noexcept override {
    if (!consumed_) do_abandon(broken_task_error());
    this->release_ref();
  }

 protected:
  void do_abandon(std::exception_ptr why) noexcept override {
    CONCUR_DCHECK(!consumed_);
    consumed_ = true;
    destroy_call();
    this->abandon_pending(std::move(why));
  }
  void request_stop() noexcept override {
    if constexpr (kStop) stop_.request_stop();
  }

 private:
  decltype(auto) invoke() {
    return std::apply(
        [this](F& f, Args&... args) -> decltype(auto) {
          if constexpr (kStop) {
            return std::invoke(std::move(f), stop_.get_token(), std::move(args)...);
          } else {
            return std::invoke(std::move(f), std::move(args)...);
          }
        },
        call_);
  }
  void destroy_call() noexcept { std::destroy_at(&call_); }

  union {
    std::tuple<F, Args...> call_;
  };
  [[no_unique_address]] std::conditional_t<kStop, std::stop_source, NoStopSource> stop_{};
  bool consumed_ = false;
};

template <class F, class... Args>
inline constexpr bool kTakesStopToken =
    std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>;

// make_task(f, args...) → {RunnablePtr task, Future<R> future}: R is the decayed result of
// std::invoke(std::move(f'), std::move(args')...) on decayed copies f', args' (std::thread's
// rule: pass std::ref for references). If f is invocable as f(std::stop_token, args...), it is
// called that way, with a token whose stop is requested by Future::cancel() while it runs (only
// such tasks create a std::stop_source, a second allocation). Otherwise one allocation holds the
// state, the callable and the arguments.
template <class F, class... Args>
auto make_task(F&& f, Args&&... args) {
  using DF = std::decay_t<F>;
  constexpr bool kStop = kTakesStopToken<F, Args...>;
  static_assert(kStop || std::is_invocable_v<DF, std::decay_t<Args>...>,
                "make_task(f, args...): f is not callable with (args...) nor with "
                "(std::stop_token, args...) (arguments are passed as rvalues of their decayed "
                "types; use std::ref for references)");
  using Raw =
      typename std::conditional_t<kStop,
                                  std::invoke_result<DF, std::stop_token, std::decay_t<Args>...>,
                                  std::invoke_result<DF, std::decay_t<Args>...>>::type;
  using R = std::decay_t<Raw>;
  auto* t = new TaskState<R, kStop, DF, std::decay_t<Args>...>(std::forward<F>(f),
                                                               std::forward<Args>(args)...);
  return TaskAndFuture<R>{RunnablePtr(t), FutureAccess::adopt<R>(t)};
}

// forward_outcome(in, p): settle p with the outcome of the done future `in` (then(executor, ..)).
template <class U, class In>
void forward_outcome(const In& in, Promise<U>& p) noexcept {
  try {
    if (in.cancelled()) {
      (void)p.get_future().cancel();
      return;
    }
    if (std::exception_ptr e = in.exception()) {
      p.set_exception(std::move(e));
      return;
    }
    if constexpr (std::is_void_v<U>) {
      p.set_result();
    } else if constexpr (std::copy_constructible<U>) {
      p.set_result(in.result());
    } else {
      In own = in;
      p.set_result(std::move(own).result());
    }
  } catch (const InvalidStateError&) {
    // the continuation was cancelled meanwhile: the outcome is dropped
  } catch (...) {
    try {
      p.set_exception(std::current_exception());
    } catch (...) {
      report_exception(std::current_exception());
    }
  }
}

}  // namespace detail

template <class T>
template <class F>
void Future<T>::add_done_callback(F&& fn) const {
  static_assert(std::is_invocable_v<std::decay_t<F>&, const Future<T>&>,
                "add_done_callback(fn): fn must be callable as fn(const Future<T>&)");
  detail::FutureStateBase* s = checked();
  if (s->done()) {
    try {
      std::invoke(fn, *this);
    } catch (...) {
      detail::report_exception(std::current_exception());
    }
    return;
  }
  auto* node = new detail::CallbackNode<Future<T>, std::decay_t<F>>(*this, std::forward<F>(fn));
  if (!s->add_node(node)) node->fire(node, *s);  // it became done meanwhile: run it now
}

template <class T>
template <class F>
auto Future<T>::then(F&& fn) const {
  static_assert(std::is_invocable_v<std::decay_t<F>&, const Future<T>&>,
                "then(fn): fn must be callable as fn(const Future<T>&)");
  using U = std::decay_t<std::invoke_result_t<std::decay_t<F>&, const Future<T>&>>;
  detail::FutureStateBase* s = checked();
  auto* c = new detail::ThenState<U, T, std::decay_t<F>>(*this, std::forward<F>(fn));
  Future<U> out = detail::FutureAccess::adopt<U>(c);
  if (!s->add_node(c)) c->run_continuation();
  return out;
}

template <class T>
template <class Executor, class F>
auto Future<T>::then(Executor& executor, F&& fn) const {
  static_assert(std::is_invocable_v<std::decay_t<F>&, const Future<T>&>,
                "then(executor, fn): fn must be callable as fn(const Future<T>&)");
  using U = std::decay_t<std::invoke_result_t<std::decay_t<F>&, const Future<T>&>>;
  detail::FutureStateBase* s = checked();
  Promise<U> promise;
  Future<U> out = promise.get_future();
  // Until fn is submitted, whoever finishes this future's source finishes the result; then the
  // pool (if any) that runs fn does (a waiting pool worker helps only while that is its own pool).
  detail::FutureStateBase* o = detail::FutureAccess::state(out);
  o->set_pool_id(s->pool_id());
  add_done_callback([ex = &executor, f = std::decay_t<F>(std::forward<F>(fn)), o,
                     p = std::move(promise)](const Future<T>& src) mutable {
    if (p.is_done()) return;  // the continuation was cancelled: fn never runs
    try {
      auto inner = ex->submit(
          [g = std::move(f), src]() mutable -> U { return std::invoke(g, std::as_const(src)); });
      o->set_pool_id(detail::FutureAccess::state(inner)->pool_id());  // p keeps o alive
      inner.add_done_callback(
          [q = std::move(p)](const auto& in) mutable { detail::forward_outcome<U>(in, q); });
    } catch (...) {
      if (p.valid()) {
        try {
          p.set_exception(std::current_exception());
        } catch (const InvalidStateError&) {
        }
      }
    }
  });
  return out;
}

// ---- as_completed() and wait() ---------------------------------------------------------------

// ReturnWhen: when wait() returns (concurrent.futures.FIRST_COMPLETED etc.).
enum class ReturnWhen : std::uint8_t {
  kFirstCompleted,  // any future finished or was cancelled
  kFirstException,  // any future finished with an exception; else like kAllCompleted
  kAllCompleted,    // all futures finished or were cancelled
};
// Python's spellings, for readers of the notes.
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::kFirstCompleted;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::kFirstException;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::kAllCompleted;

namespace detail {
template <class T>
struct HandleOf {
  using type = Future<T>;
};
template <>
struct HandleOf<AnyFuture> {
  using type = AnyFuture;
};
// handle_t<T>: Future<T>, or AnyFuture for T = AnyFuture (futures of mixed types).
template <class T>
using handle_t = typename HandleOf<T>::type;

// dedupe(fs): drop later duplicates (same state), keeping input order; InvalidStateError for a
// handle without state.
template <class H>
void dedupe(std::vector<H>& fs) {
  for (const H& f : fs) {
    if (FutureAccess::state(f) == nullptr) throw_no_state();
  }
  if (fs.size() < 2) return;
  std::vector<std::pair<std::uintptr_t, std::size_t>> keys;
  keys.reserve(fs.size());
  for (std::size_t i = 0; i < fs.size(); ++i) {
    keys.emplace_back(reinterpret_cast<std::uintptr_t>(FutureAccess::state(fs[i])), i);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<bool> drop(fs.size(), false);
  bool any = false;
  for (std::size_t k = 1; k < keys.size(); ++k) {
    if (keys[k].first == keys[k - 1].first) drop[keys[k].second] = any = true;
  }
  if (!any) return;
  std::size_t out = 0;
  for (std::size_t i = 0; i < fs.size(); ++i) {
    if (drop[i]) continue;
    if (out != i) fs[out] = std::move(fs[i]);
    ++out;
  }
  fs.erase(fs.begin() + static_cast<std::ptrdiff_t>(out), fs.end());
}
}  // namespace detail

// DoneAndNotDone<T>: wait()'s result (Python's DoneAndNotDoneFutures), each list in input order
// without duplicates. For T = AnyFuture the lists hold AnyFuture handles.
template <class T>
struct DoneAndNotDone {
  std::vector<detail::handle_t<T>> done;
  std::vector<detail::handle_t<T>> not_done;
};

// AsCompleted<T> is what as_completed() returns: a single-pass input range of the futures in
// completion order (already-done ones first, in input order; duplicates once). It holds a handle
// to each future only until it yields it, and unregisters from every unfinished future when
// destroyed (an abandoned range leaves nothing behind). Dereference once per position (*it moves
// the future out to the caller). `it != end()` never blocks; *it (or ++it without *it) blocks
// until the next future is done — through the WaitHelper, like result() — and throws
// TimeoutError("N (of M) futures unfinished") once the timeout (measured from the as_completed()
// call) passed with none ready; the range stays usable (later calls yield what finished since).
// Thread-safety: one thread iterates; the futures may complete in any threads.
template <class T>
class AsCompleted {
 public:
  using future_type = detail::handle_t<T>;
  struct sentinel {};
  class iterator {
   public:
    using value_type = future_type;
    using difference_type = std::ptrdiff_t;
    using iterator_concept = std::input_iterator_tag;
    iterator() = default;
    future_type operator*() const { return range_->current(); }
    iterator& operator++() {
      range_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, sentinel /*end*/) noexcept { return it.at_end(); }

   private:
    friend class AsCompleted;
    explicit iterator(AsCompleted* r) noexcept : range_(r) {}
    [[nodiscard]] bool at_end() const noexcept { return range_->exhausted(); }
    AsCompleted* range_ = nullptr;
  };

  AsCompleted(std::vector<future_type> fs, const detail::Deadline& deadline)
      : fs_(std::move(fs)), deadline_(deadline) {
    detail::dedupe(fs_);
    std::size_t pending = 0;
    for (const auto& f : fs_) pending += detail::FutureAccess::state(f)->done() ? 0 : 1;
    waiter_ = std::make_unique<detail::CompletionWaiter>(
        detail::CompletionWaiter::Mode::kAsCompleted, fs_.size(), pending);
    for (std::size_t i = 0; i < fs_.size(); ++i) {
      waiter_->watch(i, *detail::FutureAccess::state(fs_[i]));
    }
    waiter_->arm();
  }
  AsCompleted(AsCompleted&&) noexcept = default;
  AsCompleted& operator=(AsCompleted&&) noexcept = default;
  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;
  ~AsCompleted() = default;

  iterator begin() noexcept { return iterator(this); }
  sentinel end() const noexcept { return {}; }
  // size() is the number of distinct futures; remaining() how many are not yielded yet.
  [[nodiscard]] std::size_t size() const noexcept { return fs_.size(); }
  [[nodiscard]] std::size_t remaining() const noexcept { return fs_.size() - yielded_; }

 private:
  future_type current() {
    if (!fetched_) {
      current_ = take_next();
      fetched_ = true;
    }
    return std::move(current_);
  }
  void advance() {
    if (!fetched_) (void)take_next();
    fetched_ = false;
    current_ = future_type();
  }
  [[nodiscard]] bool exhausted() const noexcept { return yielded_ == fs_.size() && !fetched_; }
  future_type take_next() {
    if (yielded_ == fs_.size()) throw InvalidStateError("as_completed: advanced past the end");
    const std::size_t i = waiter_->next(deadline_);
    if (i == detail::CompletionWaiter::kNone) {
      throw TimeoutError(std::to_string(fs_.size() - yielded_) + " (of " +
                         std::to_string(fs_.size()) + ") futures unfinished");
    }
    ++yielded_;
    return std::move(fs_[i]);
  }
  std::vector<future_type> fs_;  // declared before waiter_: destroyed after it unregisters
  std::unique_ptr<detail::CompletionWaiter> waiter_;
  detail::Deadline deadline_;
  std::size_t yielded_ = 0;
  future_type current_{};
  bool fetched_ = false;
};

namespace detail {
template <class T>
DoneAndNotDone<T> wait_impl(std::vector<handle_t<T>> fs, const Deadline& deadline,
                            ReturnWhen return_when) {
  dedupe(fs);
  std::size_t done = 0;
  bool any_exception = false;
  for (const auto& f : fs) {
    const std::uint32_t w = FutureAccess::state(f)->word();
    if (!FutureStateBase::is_done(w)) continue;
    ++done;
    any_exception = any_exception || (w & FutureStateBase::kHasException) != 0;
  }
  // Python's early returns: nothing to wait for.
  const bool satisfied = done == fs.size() ||
                         (return_when == ReturnWhen::kFirstCompleted && done > 0) ||
                         (return_when == ReturnWhen::kFirstException && any_exception);
  if (!satisfied) {
    const auto mode =
        return_when == ReturnWhen::kFirstCompleted   ? CompletionWaiter::Mode::kFirstCompleted
        : return_when == ReturnWhen::kFirstException ? CompletionWaiter::Mode::kFirstException
                                                     : CompletionWaiter::Mode::kAllCompleted;
    CompletionWaiter waiter(mode, fs.size(), fs.size() - done);
    for (std::size_t i = 0; i < fs.size(); ++i) waiter.watch(i, *FutureAccess::state(fs[i]));
    waiter.arm();
    waiter.wait(deadline);
  }
  DoneAndNotDone<T> out;
  for (auto& f : fs) {
    (FutureAccess::state(f)->done() ? out.done : out.not_done).push_back(std::move(f));
  }
  return out;
}
}  // namespace detail

// as_completed(fs) / as_completed(fs, timeout) / as_completed_until(fs, tp): the futures of fs
// as they complete (see AsCompleted). InvalidStateError for an invalid handle in fs.
template <class T>
AsCompleted<T> as_completed(std::vector<Future<T>> fs) {
  return AsCompleted<T>(std::move(fs), detail::Deadline::infinite());
}
template <class T, class Rep, class Period>
AsCompleted<T> as_completed(std::vector<Future<T>> fs, std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<T>(std::move(fs), detail::Deadline::after(timeout));
}
template <class T, class C, class D>
AsCompleted<T> as_completed_until(std::vector<Future<T>> fs, std::chrono::time_point<C, D> tp) {
  return AsCompleted<T>(std::move(fs), detail::Deadline::at(tp));
}
inline AsCompleted<AnyFuture> as_completed(std::vector<AnyFuture> fs) {
  return AsCompleted<AnyFuture>(std::move(fs), detail::Deadline::infinite());
}
template <class Rep, class Period>
AsCompleted<AnyFuture> as_completed(std::vector<AnyFuture> fs,
                                    std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<AnyFuture>(std::move(fs), detail::Deadline::after(timeout));
}

// wait(fs, return_when) / wait(fs, timeout, return_when) / wait_until(fs, tp, return_when):
// Python's concurrent.futures.wait(fs, timeout, return_when): blocks until return_when holds or
// the timeout passes (no TimeoutError: the not-done list says so), then splits fs into done and
// not_done (input order, duplicates once). A cancelled future counts as done as soon as cancel()
// returned true (Python waits for the executor to acknowledge it). Blocking goes through the
// WaitHelper like result().
template <class T>
DoneAndNotDone<T> wait(std::vector<Future<T>> fs,
                       ReturnWhen return_when = ReturnWhen::kAllCompleted) {
  return detail::wait_impl<T>(std::move(fs), detail::Deadline::infinite(), return_when);
}
template <class T, class Rep, class Period>
DoneAndNotDone<T> wait(std::vector<Future<T>> fs, std::chrono::duration<Rep, Period> timeout,
                       ReturnWhen return_when = ReturnWhen::kAllCompleted) {
  return detail::wait_impl<T>(std::move(fs), detail::Deadline::after(timeout), return_when);
}
template <class T, class C, class D>
DoneAndNotDone<T> wait_until(std::vector<Future<T>> fs, std::chrono::time_point<C, D> tp,
                             ReturnWhen return_when = ReturnWhen::kAllCompleted) {
  return detail::wait_impl<T>(std::move(fs), detail::Deadline::at(tp), return_when);
}
inline DoneAndNotDone<AnyFuture> wait(std::vector<AnyFuture> fs,
                                      ReturnWhen return_when = ReturnWhen::kAllCompleted) {
  return detail::wait_impl<AnyFuture>(std::move(fs), detail::Deadline::infinite(), return_when);
}
template <class Rep, class Period>
DoneAndNotDone<AnyFuture> wait(std::vector<AnyFuture> fs,
                               std::chrono::duration<Rep, Period> timeout,
                               ReturnWhen return_when = ReturnWhen::kAllCompleted) {
  return detail::wait_impl<AnyFuture>(std::move(fs), detail::Deadline::after(timeout), return_when);
}

}  // namespace concur
