// Future states: the slow paths of completion (waking sleepers, firing the completion list,
// reporting unobserved exceptions), blocking waits (WaitHelper, spin, futex), cancellation, and
// the CompletionWaiter behind as_completed() and wait(). docs/internals/futures.md narrates them;
// the numbers in the comments match its steps.
#include "concur/future.hpp"

#include <cstdio>
#include <string>
#include <utility>

#include "concur/thread.hpp"

namespace concur {
namespace detail {

namespace {
thread_local WaitHelper* tls_wait_helper = nullptr;

const char* state_name(std::uint32_t w) noexcept {
  if ((w & FutureStateBase::kClaimed) != 0) return "FINISHED";  // a result is being set
  switch (FutureStateBase::state_of(w)) {
    case FutureStateBase::kPending:
      return "PENDING";
    case FutureStateBase::kRunning:
      return "RUNNING";
    case FutureStateBase::kFinished:
      return "FINISHED";
    case FutureStateBase::kCancelled:
      return "CANCELLED";
    default:
      return "CANCELLED_AND_NOTIFIED";
  }
}

std::exception_ptr broken_error(const char* msg) noexcept {
  try {
    return std::make_exception_ptr(BrokenExecutor(msg));
  } catch (...) {
    return std::current_exception();  // bad_alloc: still an exception, never a null pointer
  }
}
}  // namespace

WaitHelper* set_wait_helper(WaitHelper* h) noexcept { return std::exchange(tls_wait_helper, h); }
WaitHelper* wait_helper() noexcept { return tls_wait_helper; }

void report_exception(std::exception_ptr e) noexcept { excepthook(std::move(e)); }

void throw_no_state() { throw InvalidStateError("the future has no shared state"); }
void throw_cancelled() { throw CancelledError(); }
void throw_timeout() { throw TimeoutError(); }
void throw_moved_out() { throw InvalidStateError("the result was already moved out"); }
void throw_invalid_state(const char* operation, std::uint32_t word) {
  throw InvalidStateError(std::string(state_name(word)) + ": " + operation +
                          " on a future that is not pending");
}
std::exception_ptr broken_promise_error() noexcept {
  return broken_error("the promise was destroyed before it set a result");
}
std::exception_ptr broken_task_error() noexcept {
  return broken_error("the task was destroyed before it ran");
}

// ---- FutureStateBase ---------------------------------------------------------------------------

FutureStateBase::~FutureStateBase() {
  // Pending nodes hold references, so a state with nodes cannot reach its destructor.
  CONCUR_DCHECK(nodes_ == nullptr);
}

bool FutureStateBase::wait_slow(const Deadline& d) {
  // 1. The executor's hook: a pool worker helps (runs tasks) until the state is done.
  if (WaitHelper* h = tls_wait_helper) {
    if (h->help_until(*this, d) || done()) return true;
    if (d.expired()) return false;
  }
  // 2. The producer's hook: it may finish the work in this thread.
  if (assist_wait(d) || done()) return true;
  if (d.expired()) return false;
  // 3. Spin, then sleep on the word.
  return wait_plain(d);
}

bool FutureStateBase::wait_plain(const Deadline& d) noexcept {
  if (spin_wait([this] { return done(); }, d)) return true;
  std::uint32_t w = word_.load(std::memory_order_acquire);
  while (!is_done(w)) {
    // Announce the sleeper with an RMW: either it precedes the completing RMW (which then sees
    // kSleeper and wakes us) or it follows it (and returns the done word).
    if ((w & kSleeper) == 0) {
      w = word_.fetch_or(kSleeper, std::memory_order_seq_cst) | kSleeper;
      if (is_done(w)) break;
    }
    if (!futex_wait(word_, w, d)) return done();
    w = word_.load(std::memory_order_acquire);
  }
  return true;
}

bool FutureStateBase::cancel() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  if (state_of(w) == kPending && withdraws()) {
    const Withdrawal found = withdraw();
    w = word_.load(std::memory_order_relaxed);
    if (found == Withdrawal::kTaken) {
      // It runs elsewhere: PENDING → RUNNING (the producer's own start finds it running); below,
      // a running state is cancelled only by a producer that can stop it (cancels_running()).
      while (state_of(w) == kPending && (w & kClaimed) == 0 &&
             !word_.compare_exchange_weak(w, w + kRunning, std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      }
      w = word_.load(std::memory_order_relaxed);
    } else if (found == Withdrawal::kUnknown) {
      return is_cancelled(w);
    }
  }
  for (;;) {
    const std::uint32_t s = state_of(w);
    if (s == kPending && (w & kClaimed) == 0) {
      if (word_.compare_exchange_weak(w, w + kCancelled, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        completed(w, false);
        return true;
      }
    } else if (s >= kCancelled) {
      return true;
    } else if (s == kRunning && (w & kClaimed) == 0 && cancels_running()) {
      if (word_.compare_exchange_weak(w, w + (kCancelled - kRunning), std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        running_cancelled();
        completed(w, false);
        return true;
      }
    } else {
      if (s == kRunning) request_stop();
      return false;
    }
  }
}

void FutureStateBase::notify_cancel() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  while (state_of(w) == kCancelled) {
    if (word_.compare_exchange_weak(w, w + (kCancelledNotified - kCancelled),
                                    std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return;
    }
  }
}

void FutureStateBase::abandon_pending(std::exception_ptr why) noexcept {
  const bool with_error = static_cast<bool>(why);
  if (with_error) exc_ = std::move(why);  // read only once FINISHED with kHasException
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint32_t s = state_of(w);
    if (s == kPending) {
      const std::uint32_t next =
          with_error ? w + kFinished + kHasException : w + kCancelledNotified;
      if (word_.compare_exchange_weak(w, next, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        completed(w, false);
        return;
      }
    } else if (s == kCancelled) {
      if (word_.compare_exchange_weak(w, w + (kCancelledNotified - kCancelled),
                                      std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return;
      }
    } else {
      return;  // the sole producer never finishes twice; nothing to do
    }
  }
}

// completed(old, unobserved): after the RMW that made the state done; `old` is the word before.
void FutureStateBase::completed(std::uint32_t old, bool unobserved) noexcept {
  // 1. Wake sleepers, only if one announced itself.
  if ((old & kSleeper) != 0) futex_wake_all(word_);
  // 2. Fire the completion list. A callback may drop the last handle (even the producer's
  //    object), so hold a reference across it.
  const bool nodes = (old & kHasNodes) != 0;
  if (nodes) {
    add_ref();
    fire_nodes();
  }
  // 3. An exception from the work: report it now if no handle is left, else let the last handle.
  if (unobserved) mark_unobserved();
  if (nodes) release_ref();
}

void FutureStateBase::fire_nodes() noexcept {
  list_mu_.lock();
  WaitNode* n = std::exchange(nodes_, nullptr);
  WaitNode* ordered = nullptr;  // the list is LIFO: reverse it into registration order
  while (n != nullptr) {
    WaitNode* next = n->next;
    n->next = ordered;
    ordered = n;
    n = next;
  }
  // Internal waiters fire under the lock: once remove_node() returns, their owner may go away.
  WaitNode* callbacks = nullptr;
  WaitNode** tail = &callbacks;
  for (n = ordered; n != nullptr;) {
    WaitNode* next = n->next;
    if (n->internal) {
      n->fire(n, *this);
    } else {
      *tail = n;
      tail = &n->next;
    }
    n = next;
  }
  *tail = nullptr;
  list_mu_.unlock();
  // User code runs without the lock (a callback may add callbacks or wait on other futures).
  for (n = callbacks; n != nullptr;) {
    WaitNode* next = n->next;
    n->fire(n, *this);
    n = next;
  }
}

void FutureStateBase::mark_unobserved() noexcept {
  std::uint64_t old = refs_.load(std::memory_order_acquire);
  for (;;) {
    if ((old & kFutureMask) == 0) {  // no handle can retrieve it any more
      report_if_unretrieved();
      return;
    }
    if (refs_.compare_exchange_weak(old, old | kUnobserved, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      return;  // the last handle reports it (release_future_ref)
    }
  }
}

void FutureStateBase::report_if_unretrieved() noexcept {
  if ((word_.load(std::memory_order_acquire) & kRetrieved) == 0) report_exception(exc_);
}

bool FutureStateBase::add_node(WaitNode* n) noexcept {
  list_mu_.lock();
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  // Setting kHasNodes is an RMW ordered with the completing RMW: it either sees the state done
  // (the caller fires n itself) or the completer sees kHasNodes and takes this lock after us.
  do {
    if (is_done(w)) {
      list_mu_.unlock();
      return false;
    }
  } while (!word_.compare_exchange_weak(w, w | kHasNodes, std::memory_order_seq_cst,
                                        std::memory_order_relaxed));
  n->next = nodes_;
  nodes_ = n;
  list_mu_.unlock();
  return true;
}

void FutureStateBase::remove_node(WaitNode* n) noexcept {
  list_mu_.lock();
  for (WaitNode** p = &nodes_; *p != nullptr; p = &(*p)->next) {
    if (*p == n) {
      *p = n->next;
      break;
    }
  }
  list_mu_.unlock();
}

// ---- Gate --------------------------------------------------------------------------------------

Gate::~Gate() = default;

void Gate::open() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  if (is_done(w)) return;
  w = word_.fetch_add(kFinished, std::memory_order_seq_cst);
  if ((w & kSleeper) != 0) futex_wake_all(word_);
}

std::uint8_t Gate::add_pool(std::uint32_t id) noexcept {
  if (id == kNoPool) return kNoSlot;
  for (std::size_t k = 0; k < kPools; ++k) {
    if (ids_[k] == kNoPool) ids_[k] = id;
    if (ids_[k] == id) {
      pending_[k].fetch_add(1, std::memory_order_relaxed);
      return static_cast<std::uint8_t>(k);
    }
  }
  overflow_.fetch_add(1, std::memory_order_relaxed);
  return kOverflow;
}

void Gate::drop_pool(std::uint8_t slot) noexcept {
  if (slot == kNoSlot) return;
  if (slot == kOverflow) {
    overflow_.fetch_sub(1, std::memory_order_relaxed);
  } else {
    pending_[slot].fetch_sub(1, std::memory_order_relaxed);
  }
}

bool Gate::finished_by_pool(std::uint32_t id) const noexcept {
  if (id == kNoPool) return false;
  // Futures of more pools than kPools: every pool among them (and, rarely, another) helps.
  if (overflow_.load(std::memory_order_relaxed) != 0) return true;
  for (std::size_t k = 0; k < kPools && ids_[k] != kNoPool; ++k) {
    if (ids_[k] == id) return pending_[k].load(std::memory_order_relaxed) != 0;
  }
  return false;
}

// ---- CompletionWaiter --------------------------------------------------------------------------

CompletionWaiter::CompletionWaiter(Mode mode, std::size_t total, std::size_t max_pending)
    : mode_(mode), nodes_(std::make_unique<Node[]>(max_pending)), max_nodes_(max_pending) {
  if (mode_ == Mode::kAsCompleted) ready_.reserve(total);
}

CompletionWaiter::~CompletionWaiter() {
  for (std::size_t i = 0; i < used_nodes_; ++i) {
    Node& n = nodes_[i];
    if (!n.registered) continue;
    bool fired = false;
    mu_.lock();
    fired = n.fired;
    mu_.unlock();
    // A fired node is out of its list (and its state may be gone with the yielded future); an
    // unfired one is unlinked under the state's list lock, after which it can no longer fire.
    if (!fired) n.state->remove_node(&n);
  }
}

void CompletionWaiter::watch(std::size_t i, FutureStateBase& s) noexcept {
  // max_nodes_ counted the pending futures before; done is final, so there are never more now.
  CONCUR_DCHECK(s.done() || used_nodes_ < max_nodes_);
  if (!s.done() && used_nodes_ < max_nodes_) {
    if (mode_ != Mode::kAsCompleted) {
      mu_.lock();
      const bool triggered = triggered_;
      if (!triggered) ++pending_;
      mu_.unlock();
      if (triggered) return;  // wait() returns anyway; no need to register
    }
    Node& n = nodes_[used_nodes_++];
    n.owner = this;
    n.state = &s;
    n.index = i;
    n.internal = true;
    n.fire = &on_fire;
    n.pool = gate_.add_pool(s.pool_id());  // before it can fire (which drops it)
    if (s.add_node(&n)) {
      n.registered = true;
      return;
    }
    // It finished meanwhile: count it as a completion of a registered future.
    gate_.drop_pool(n.pool);
    mu_.lock();
    record(i, s, true);
    mu_.unlock();
    return;
  }
  mu_.lock();
  record(i, s, false);
  mu_.unlock();
}

void CompletionWaiter::arm() noexcept {
  if (mode_ == Mode::kAsCompleted) return;
  mu_.lock();
  if (--pending_ == 0) trigger();
  mu_.unlock();
}

void CompletionWaiter::on_fire(WaitNode* node, FutureStateBase& s) noexcept {
  auto* n = static_cast<Node*>(node);
  CompletionWaiter* self = n->owner;
  self->gate_.drop_pool(n->pool);  // before record() may open the gate
  self->mu_.lock();
  n->fired = true;
  self->record(n->index, s, true);
  self->mu_.unlock();
}

void CompletionWaiter::record(std::size_t i, const FutureStateBase& s, bool counted) noexcept {
  switch (mode_) {
    case Mode::kAsCompleted:
      ready_.push_back(i);  // reserved for every future: never allocates
      gate_.open();
      return;
    case Mode::kFirstCompleted:
      trigger();
      return;
    case Mode::kFirstException: {
      const std::uint32_t w = s.word();
      if (!FutureStateBase::is_cancelled(w) && (w & FutureStateBase::kHasException) != 0) {
        trigger();
        return;
      }
      break;
    }
    case Mode::kAllCompleted:
      break;
  }
  if (counted && --pending_ == 0) trigger();
}

void CompletionWaiter::trigger() noexcept {
  triggered_ = true;
  gate_.open();
}

std::size_t CompletionWaiter::next(const Deadline& d) {
  for (;;) {
    mu_.lock();
    if (read_ < ready_.size()) {
      const std::size_t i = ready_[read_++];
      mu_.unlock();
      return i;
    }
    if (d.expired()) {
      bool finishing = false;
      for (std::size_t k = 0; k < used_nodes_; ++k) {
        if (nodes_[k].registered && !nodes_[k].fired && nodes_[k].state->done()) finishing = true;
      }
      mu_.unlock();
      if (!finishing) return kNone;
      yield_cpu();
      continue;
    }
    gate_.reset();  // under mu_: a completion recorded after this opens it again
    mu_.unlock();
    gate_.wait(d);
  }
}

void CompletionWaiter::wait(const Deadline& d) { gate_.wait(d); }

}  // namespace detail

// ---- AnyFuture ---------------------------------------------------------------------------------

std::exception_ptr AnyFuture::exception_deadline(const detail::Deadline& d) const {
  const std::uint32_t w = wait_done(d);
  if (detail::FutureStateBase::is_cancelled(w)) detail::throw_cancelled();
  if ((w & detail::FutureStateBase::kHasException) == 0) return nullptr;
  state_->mark_retrieved(w);
  return state_->stored_exception();
}

}  // namespace concur
