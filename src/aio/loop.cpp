// The event loop: one iteration (run_once) waits for I/O in the Asio reactor, moves expired
// timers and cross-thread calls to the ready queue, then runs the ready batch. The timer heap,
// the cross-thread queue (Remote), the loop as an Executor, signal handlers and close().
// docs/internals/aio.md narrates run_once; the numbers in the comments match its steps.
#include "concur/aio/loop.hpp"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "../base/this_pid.hpp"
#include "concur/aio/task.hpp"
#include "concur/thread_pool.hpp"
#include "fd_watch.hpp"

namespace concur::aio {
namespace detail {

namespace asio = boost::asio;

// Remote: the cross-thread queue. Shared (shared_ptr) with whoever may post after the loop is
// gone (a future's callback in another thread): posting to a closed Remote fails cleanly.
struct Remote {
  std::mutex mu;
  std::vector<CallBase*> items;  // guarded by mu
  bool closed = false;           // guarded by mu
  bool wake_posted = false;      // guarded by mu
  asio::io_context* io = nullptr;
  LoopCore* core = nullptr;

  bool post(CallBase* c) {
    std::scoped_lock lock(mu);
    if (closed) return false;
    items.push_back(c);
    if (!wake_posted) {
      wake_posted = true;
      asio::post(*io, [this] { drain(); });
    }
    return true;
  }
  // drain(): on the loop's thread: the posted calls join the ready queue, in posting order.
  void drain() {
    std::vector<CallBase*> batch;
    {
      std::scoped_lock lock(mu);
      batch.swap(items);
      wake_posted = false;
    }
    for (CallBase* c : batch) core->push(c);
  }
  // close(): refuses later posts; returns what was posted and never drained.
  std::vector<CallBase*> close() {
    std::scoped_lock lock(mu);
    closed = true;
    return std::move(items);
  }
};

struct LoopCore::Impl {
  explicit Impl(LoopCore* core) : io(1), guard(asio::make_work_guard(io)) {
    remote = std::make_shared<Remote>();
    remote->io = &io;
    remote->core = core;
  }
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::shared_ptr<Remote> remote;
  LoopOptions options;
  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> closed{false};
  std::thread::id thread;
  std::int64_t last_io_poll = 0;
  const pid_t made_in = concur::detail::this_pid();  // the process that made the loop
  pid_t reactor_in = made_in;  // the process whose epoll instance and descriptors `io` has

  // reactor_is_parents(): a forked copy that has not taken a reactor of its own yet.
  [[nodiscard]] bool reactor_is_parents() const noexcept {
    return reactor_in != concur::detail::this_pid();
  }

  // The loop as an Executor: submitted calls wait here until the loop runs them.
  std::mutex exec_mu;
  std::condition_variable exec_cv;
  std::deque<concur::detail::RunnablePtr> exec_queue;  // guarded by exec_mu
  std::size_t exec_unfinished = 0;                     // guarded by exec_mu
  bool exec_shutdown = false;                          // guarded by exec_mu
  bool exec_drain_posted = false;                      // guarded by exec_mu

  std::mutex default_mu;
  std::unique_ptr<concur::ThreadPoolExecutor> default_executor;  // guarded by default_mu

  std::unique_ptr<asio::signal_set> signals;
  std::map<int, std::function<void()>> signal_handlers;

  // The blocking wait ends at the next deadline through an Asio timer (a timerfd, to the
  // microsecond), not io_context::run_one_for, whose epoll_wait timeout is rounded up to whole
  // milliseconds: every sleep would end up to 1 ms late. Re-armed only when the deadline changes.
  asio::steady_timer wake{io};
  std::int64_t wake_at = kWakeNone;  // the deadline `wake` is armed for
  static constexpr std::int64_t kWakeNone = std::numeric_limits<std::int64_t>::max();

  // arm_wake(when): `wake` completes at `when` (and so ends io.run_one()).
  void arm_wake(std::int64_t when) {
    if (wake_at == when) return;
    wake_at = when;
    wake.expires_at(from_ns(when));  // a wait armed for another deadline completes, aborted
    wake.async_wait([this, when](const boost::system::error_code& /*ec*/) {
      if (wake_at == when) wake_at = kWakeNone;
    });
  }
};

// ---- the timers: a deadline-ordered FIFO and a 4-ary min-heap on (when, seq) ----
// A timer due no earlier than the last one in the FIFO is appended to it (10,000 sleeps of one
// delay all are): adding and removing it is O(1) and touches no other timer's node. The others go
// to the heap, whose entries carry their deadline (TimerHeapEntry) and which is 4-ary (half the
// levels of a binary heap): sifting touches a node's memory only to store its new index. A timer
// removed from the middle of the FIFO leaves a hole (node == nullptr); the FIFO is compacted when
// holes are more than half of it, so cancelled timeouts behind a long sleep do not pile up.

namespace {
constexpr std::size_t kArity = 4;
bool earlier(const TimerHeapEntry& a, const TimerHeapEntry& b) noexcept {
  return a.when != b.when ? a.when < b.when : a.node->seq < b.node->seq;
}
}  // namespace

void LoopCore::add_timer(TimerNode* n, std::int64_t when) {
  CONCUR_DCHECK(!n->queued());
  n->when = when;
  n->seq = ++timer_seq_;
  const TimerHeapEntry e{when, n};
  if (fifo_head_ == fifo_.size() || when >= fifo_.back().when) {
    if (fifo_.size() == fifo_.capacity() && fifo_head_ > 0) fifo_compact();  // reuse the prefix
    n->index = TimerNode::kInFifo | fifo_.size();
    fifo_.push_back(e);
    return;
  }
  heap_push(e);
}

void LoopCore::heap_push(TimerHeapEntry e) {
  heap_.push_back(e);
  std::size_t i = heap_.size() - 1;
  while (i > 0) {
    const std::size_t parent = (i - 1) / kArity;
    if (!earlier(e, heap_[parent])) break;
    heap_[i] = heap_[parent];
    heap_[i].node->index = i;
    i = parent;
  }
  heap_[i] = e;
  e.node->index = i;
}

void LoopCore::remove_timer(TimerNode* n) noexcept {
  if (!n->queued()) return;
  std::size_t i = n->index;
  n->index = TimerNode::kNotQueued;
  if ((i & TimerNode::kDeferred) != 0) {
    deferred_[i & ~TimerNode::kDeferred].node = nullptr;
    return;
  }
  if ((i & TimerNode::kInFifo) != 0) {
    fifo_[i & ~TimerNode::kInFifo].node = nullptr;
    ++fifo_dead_;
    fifo_trim();
    return;
  }
  const TimerHeapEntry last = heap_.back();
  heap_.pop_back();
  if (last.node == n) return;
  // Put `last` at i, then sift it up or down.
  while (i > 0) {
    const std::size_t parent = (i - 1) / kArity;
    if (!earlier(last, heap_[parent])) break;
    heap_[i] = heap_[parent];
    heap_[i].node->index = i;
    i = parent;
  }
  const std::size_t size = heap_.size();
  for (;;) {
    const std::size_t first = kArity * i + 1;
    if (first >= size) break;
    const std::size_t end = first + kArity < size ? first + kArity : size;
    std::size_t c = first;
    for (std::size_t k = first + 1; k < end; ++k) {
      if (earlier(heap_[k], heap_[c])) c = k;
    }
    if (!earlier(heap_[c], last)) break;
    heap_[i] = heap_[c];
    heap_[i].node->index = i;
    i = c;
  }
  heap_[i] = last;
  last.node->index = i;
}

// fifo_trim(): the FIFO's first entry is a live timer (or the FIFO is empty and reset), and
// holes are at most half of it.
void LoopCore::fifo_trim() noexcept {
  while (fifo_head_ < fifo_.size() && fifo_[fifo_head_].node == nullptr) {
    ++fifo_head_;
    --fifo_dead_;
  }
  if (fifo_head_ == fifo_.size()) {
    fifo_.clear();
    fifo_head_ = 0;
    return;
  }
  constexpr std::size_t kMinHoles = 64;
  if (fifo_dead_ > kMinHoles && fifo_dead_ * 2 > fifo_.size() - fifo_head_) fifo_compact();
}

// fifo_compact(): the live entries move to the front of fifo_, in order (each node learns its new
// index); no holes are left.
void LoopCore::fifo_compact() noexcept {
  std::size_t out = 0;
  for (std::size_t i = fifo_head_; i < fifo_.size(); ++i) {
    if (fifo_[i].node == nullptr) continue;
    fifo_[out] = fifo_[i];
    fifo_[out].node->index = TimerNode::kInFifo | out;
    ++out;
  }
  fifo_.resize(out);
  fifo_head_ = 0;
  fifo_dead_ = 0;
}

const TimerHeapEntry* LoopCore::earliest_timer() const noexcept {
  const TimerHeapEntry* f = fifo_head_ < fifo_.size() ? &fifo_[fifo_head_] : nullptr;
  if (heap_.empty()) return f;
  const TimerHeapEntry* h = &heap_.front();
  if (f == nullptr) return h;
  return earlier(*h, *f) ? h : f;
}

namespace {
// run_list(n): runs a detached list of ready nodes in order (each may free itself).
void run_list(ReadyNode* n) noexcept {
  while (n != nullptr) {
    ReadyNode* next = n->next;
    n->run(n);
    n = next;
  }
}
}  // namespace

// fire_timers(now, queued_through): every timer due by `now` and queued by timer number
// `queued_through` fires, earliest first, and what its firing schedules (its task's step, its
// callback) runs at once, while its frame is still in the cache; what that schedules in turn runs
// in the next iteration. This is the order of queueing every due timer's work and then running
// the queue (ready work first, then the timers by deadline, then what they scheduled), with one
// pass over the timers instead of two. A timer queued meanwhile (by the batch or by a timer's
// work) waits for the next iteration even if it is due: it is set aside in deferred_ (still
// cancellable there) and queued again afterwards with its place among equal deadlines kept.
void LoopCore::fire_timers(std::int64_t now, std::uint64_t queued_through) noexcept {
  for (const TimerHeapEntry* e = earliest_timer(); e != nullptr && e->when <= now;
       e = earliest_timer()) {
    TimerNode* t = e->node;
    remove_timer(t);
    if (t->seq > queued_through) {
      t->index = TimerNode::kDeferred | deferred_.size();
      deferred_.push_back({t->when, t});  // the capacity is kept from one use to the next
      continue;
    }
    ReadyNode** mark = tail_;
    t->fire(t);
    ReadyNode* fired = *mark;
    if (fired == nullptr) continue;
    *mark = nullptr;
    tail_ = mark;
    run_list(fired);
  }
  if (deferred_.empty()) return;
  for (const TimerHeapEntry& d : deferred_) {
    if (d.node != nullptr) heap_push(d);  // by (when, seq): the heap keeps the FIFO tie-break
  }
  deferred_.clear();
}

// ---- LoopCore ----

LoopCore::LoopCore(Loop* owner) : owner_(owner), impl_(std::make_unique<Impl>(this)) {}
LoopCore::~LoopCore() = default;

bool LoopCore::post_threadsafe(std::function<void()> fn) {
  auto* c = new CallNode<std::function<void()>>(std::move(fn));
  c->loop = this;
  if (impl_->remote->post(c)) return true;
  delete c;
  return false;
}

bool LoopCore::closed() const noexcept { return impl_->closed.load(std::memory_order_acquire); }

bool LoopCore::made_by_parent() const noexcept {
  return impl_->made_in != concur::detail::this_pid();
}

// After fork(): the child's copy of a loop shares its parent's epoll instance and timer and
// wake-up descriptors, so an iteration run in the child would take the parent's I/O events and
// re-arm its timers. Asio's notify_fork gives the copy descriptors of its own and registers every
// socket again there. The sockets themselves stay shared, as fork() leaves them: a child that
// goes on with its parent's loop goes on with all of its tasks and their pending reads.
void LoopCore::adopt_after_fork() {
  asio::io_context& io = impl_->io;
  io.notify_fork(asio::execution_context::fork_child);
  if (impl_->signals) {
    // Asio's signal self-pipe is process-wide and still the parent's: a signal sent to the child
    // would reach whichever process reads the pipe first. Asio makes a new one at a fork_child
    // that follows a fork_prepare; the prepare unregisters the pipe from the reactor, which is the
    // child's own by now. (A fork_prepare also joins the thread of an Asio resolver, which a
    // forked copy does not have: concur resolves names on the default executor, never there.)
    io.notify_fork(asio::execution_context::fork_prepare);
    io.notify_fork(asio::execution_context::fork_child);
  }
  impl_->reactor_in = concur::detail::this_pid();
}

namespace {
// In the child of fork(), the loop the forking thread was running (the coroutine that called
// fork() is in its step) takes its own reactor at once, before the child's code goes on: a socket
// it opens then, or a signal sent to it, never reaches the parent's reactor. Other copied loops
// do so lazily (run_once, close, native_handle).
// The forking thread blocks every signal from just before the fork until the child's loop has a
// signal pipe of its own: one sent to the child meanwhile (by a parent that signals it as soon as
// fork() returns) waits, instead of reaching the parent's handler through the shared pipe.
thread_local sigset_t tls_mask_before_fork;
thread_local bool tls_masked_for_fork = false;
void block_signals_before_fork() noexcept {
  if (tls_loop == nullptr) return;
  sigset_t all;
  ::sigfillset(&all);
  tls_masked_for_fork = ::pthread_sigmask(SIG_BLOCK, &all, &tls_mask_before_fork) == 0;
}
void restore_signals() noexcept {
  if (!tls_masked_for_fork) return;
  tls_masked_for_fork = false;
  ::pthread_sigmask(SIG_SETMASK, &tls_mask_before_fork, nullptr);
}
void adopt_running_loop_after_fork() noexcept {
  if (tls_loop != nullptr) {
    concur::detail::this_pid_slow();          // (this handler may run before this_pid's own)
    (void)tls_loop->owner().native_handle();  // adopts (and reports a failure)
  }
  restore_signals();
}
[[maybe_unused]] const bool kAdoptAtFork =
    ::pthread_atfork(&block_signals_before_fork, &restore_signals,
                     &adopt_running_loop_after_fork) == 0;
}  // namespace

void LoopCore::check_thread(const char* what) const {
  if (tls_loop == this) return;
  if (impl_->running.load(std::memory_order_acquire)) {
    throw RuntimeError(std::string(what) +
                       ": non-thread-safe operation invoked on an event loop other than the "
                       "current one");
  }
  if (closed()) throw RuntimeError(std::string(what) + ": the event loop is closed");
}

void LoopCore::register_task(TaskCore* t) noexcept {
  t->all_prev_ = nullptr;
  t->all_next_ = tasks_;
  if (tasks_ != nullptr) tasks_->all_prev_ = t;
  tasks_ = t;
  ++task_count_;
}

void LoopCore::unregister_task(TaskCore* t) noexcept {
  if (t->all_prev_ != nullptr) {
    t->all_prev_->all_next_ = t->all_next_;
  } else {
    tasks_ = t->all_next_;
  }
  if (t->all_next_ != nullptr) t->all_next_->all_prev_ = t->all_prev_;
  t->all_prev_ = t->all_next_ = nullptr;
  --task_count_;
}

void LoopCore::report_slow(const std::string& what, Clock::duration took) const {
  if (took < impl_->options.slow_callback_duration) return;
  const double seconds = std::chrono::duration<double>(took).count();
  std::fprintf(stderr, "concur::aio: executing %s took %.3f seconds\n", what.c_str(), seconds);
}

LoopCore& running_core() {
  if (tls_loop == nullptr) throw RuntimeError("no running event loop");
  return *tls_loop;
}

// ---- callbacks ----

void CallBase::run_ready(ReadyNode* n) noexcept {
  auto* self = static_cast<CallBase*>(n);
  if (!self->cancelled.load(std::memory_order_acquire)) {
    const bool debug = self->loop != nullptr && self->loop->debug();
    const auto start = debug ? Clock::now() : Clock::time_point{};
    try {
      self->invoke();
    } catch (...) {
      concur::detail::report_exception(std::current_exception());
    }
    if (debug) self->loop->report_slow("a callback", Clock::now() - start);
  }
  self->release();  // the queue's reference
}

void CallBase::fire_timer(TimerNode* n) noexcept {
  auto* self = static_cast<CallBase*>(n);
  self->loop->push(self);  // runs with this iteration's ready batch; the heap's ref goes along
}

}  // namespace detail

// ---- Handle ----

Handle::Handle(const Handle& o) noexcept : c_(o.c_) {
  if (c_ != nullptr) c_->add_ref();
}
Handle& Handle::operator=(const Handle& o) noexcept {
  Handle(o).swap_into(*this);
  return *this;
}
Handle& Handle::operator=(Handle&& o) noexcept {
  Handle(std::move(o)).swap_into(*this);
  return *this;
}
Handle::~Handle() {
  if (c_ != nullptr) c_->release();
}
void Handle::swap_into(Handle& o) noexcept { std::swap(c_, o.c_); }
void Handle::cancel() noexcept {
  if (c_ == nullptr) return;
  if (c_->cancelled.exchange(true, std::memory_order_acq_rel)) return;
  if (c_->TimerNode::queued()) {
    // Only the loop's thread touches the heap; the timer's reference goes with it.
    c_->loop->remove_timer(c_);
    c_->release();
  }
}
bool Handle::cancelled() const noexcept {
  return c_ != nullptr && c_->cancelled.load(std::memory_order_acquire);
}
Clock::time_point Handle::when() const noexcept {
  if (c_ == nullptr || c_->TimerNode::when == 0) return {};
  return detail::from_ns(c_->TimerNode::when);
}

// ---- Loop ----

Loop::Loop(LoopOptions options) : core_(this) {
  core_.impl_->options = options;
  core_.debug_ = options.debug;
}

Loop::~Loop() {
  if (is_running()) {
    std::fprintf(stderr, "concur::aio::Loop destroyed while running\n");
    std::abort();
  }
  try {
    close();
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
}

bool Loop::is_running() const noexcept {
  return core_.impl_->running.load(std::memory_order_acquire);
}
bool Loop::is_closed() const noexcept { return core_.closed(); }
void* Loop::native_handle() noexcept {
  // A forked copy registers no socket in its parent's epoll instance: each would be a pointer
  // into this process's memory handed to the parent's reactor.
  if (core_.impl_->reactor_is_parents()) [[unlikely]] {
    try {
      core_.adopt_after_fork();
    } catch (...) {
      concur::detail::report_exception(std::current_exception());
    }
  }
  return &core_.impl_->io;
}
void Loop::set_debug(bool enabled) noexcept { core_.debug_ = enabled; }
bool Loop::get_debug() const noexcept { return core_.debug_; }

void Loop::stop() noexcept {
  auto& impl = *core_.impl_;
  impl.stopping.store(true, std::memory_order_release);
  if (detail::tls_loop != &core_) {
    // Wake a loop blocked in the reactor (a no-op post; harmless when it is not running).
    try {
      boost::asio::post(impl.io, [] {});
    } catch (...) {
    }
  }
}

namespace {

// close(): how many iterations the callbacks scheduled by the last tasks' ends may take.
constexpr int kCloseCallbackRounds = 64;

// LoopScope: the loop runs on this thread. Inside another loop only when that one is a forked
// child's copy of its parent's (LoopCore::made_by_parent), which is this thread's again after.
struct LoopScope {
  LoopScope(detail::LoopCore& c, detail::LoopCore::Impl& impl)
      : impl_(impl), outer_(detail::tls_loop) {
    if (outer_ != nullptr && !outer_->made_by_parent()) {
      throw RuntimeError("Cannot run the event loop while another loop is running");
    }
    if (impl.running.exchange(true, std::memory_order_acq_rel)) {
      throw RuntimeError("This event loop is already running");
    }
    detail::tls_loop = &c;
    impl.thread = std::this_thread::get_id();
    if (impl.io.stopped()) impl.io.restart();
  }
  ~LoopScope() {
    detail::tls_loop = outer_;
    impl_.thread = std::thread::id();
    impl_.running.store(false, std::memory_order_release);
  }
  LoopScope(const LoopScope&) = delete;
  LoopScope& operator=(const LoopScope&) = delete;
  detail::LoopCore::Impl& impl_;
  detail::LoopCore* const outer_;
};

}  // namespace

// run_once(): one iteration (docs/internals/aio.md, "One iteration").
void Loop::run_once(detail::LoopCore& c, bool block) {
  using detail::to_ns;
  detail::LoopCore::Impl& impl = *c.impl_;
  if (impl.reactor_is_parents()) [[unlikely]]
    c.adopt_after_fork();
  std::int64_t now = to_ns(Clock::now());
  const std::int64_t interval = impl.options.io_poll_interval.count();
  // 1. Wait for I/O: block when nothing is ready (until the next timer), else poll now and then.
  if (c.head_ == nullptr && block && !impl.stopping.load(std::memory_order_acquire)) {
    const detail::TimerHeapEntry* first = c.earliest_timer();
    if (first == nullptr) {
      impl.io.run_one();
    } else if (first->when > now) {
      impl.arm_wake(first->when);
      impl.io.run_one();
    }
    impl.io.poll();
    now = to_ns(Clock::now());
    impl.last_io_poll = now;
  } else if (now - impl.last_io_poll >= interval) {
    impl.io.poll();
    impl.last_io_poll = now;
  }
  // 2. Run the batch that was ready before the timers; what it schedules runs in the next
  // iteration. The timers due now are those queued before it ran (a timer the batch adds waits
  // for the next iteration, as one it cancels does not fire).
  const std::uint64_t timers_queued = c.timer_seq_;
  detail::run_list(c.detach_ready());
  // 3. The timers due by `now` that were queued before the batch ran, earliest first.
  c.fire_timers(now, timers_queued);
}

void Loop::run_forever() {
  auto& impl = *core_.impl_;
  if (is_closed()) throw RuntimeError("Event loop is closed");
  LoopScope scope(core_, impl);
  for (;;) {
    run_once(core_, true);
    if (impl.stopping.exchange(false, std::memory_order_acq_rel)) break;
  }
}

void Loop::run_until_done(detail::TaskCore& t) {
  if (t.done()) return;
  struct StopNode final : detail::DoneNode {
    Loop* loop = nullptr;
  } node;
  node.loop = this;
  node.fire = [](detail::DoneNode* n, detail::TaskCore& /*t*/) noexcept {
    static_cast<StopNode*>(n)->loop->stop();
  };
  t.add_done(&node);
  try {
    run_forever();
  } catch (...) {
    if (node.linked) t.remove_done(&node);
    throw;
  }
  if (node.linked) t.remove_done(&node);
  if (!t.done()) throw RuntimeError("Event loop stopped before the task completed");
}

void Loop::close() {
  auto& impl = *core_.impl_;
  if (is_running()) throw RuntimeError("Cannot close a running event loop");
  if (is_closed()) return;
  // A forked copy closes on a reactor of its own: what it unregisters stays in its parent's.
  if (core_.impl_->reactor_is_parents()) core_.adopt_after_fork();
  // 1. Pending tasks are cancelled and the loop runs until every one of them ended, then a
  //    bounded number of iterations more for the callbacks their ends scheduled (done-callbacks
  //    settle run_coroutine_threadsafe's futures).
  if (core_.task_count() > 0 || core_.head_ != nullptr) {
    LoopScope scope(core_, impl);
    // A task created meanwhile (a connection accepted as the loop closes) or one that withdrew
    // its cancellation is cancelled on the next pass, so close() cannot wait forever on it.
    while (core_.task_count() > 0) {
      for (detail::TaskCore* t = core_.tasks_; t != nullptr; t = t->all_next_) {
        if (t->cancelling() == 0) (void)t->cancel();
      }
      run_once(core_, true);
    }
    for (int i = 0; i < kCloseCallbackRounds && core_.head_ != nullptr; ++i) run_once(core_, false);
  }
  // 2. Submitted calls never run are cancelled; the default executor is shut down.
  {
    std::unique_lock lock(impl.exec_mu);
    impl.exec_shutdown = true;
    std::deque<concur::detail::RunnablePtr> left = std::move(impl.exec_queue);
    impl.exec_unfinished -= left.size();
    lock.unlock();
    for (auto& r : left) r->abandon();
    impl.exec_cv.notify_all();
  }
  std::unique_ptr<concur::ThreadPoolExecutor> pool;
  {
    std::scoped_lock lock(impl.default_mu);
    pool = std::move(impl.default_executor);
  }
  if (pool) pool->shutdown(true);
  // 3. Later cross-thread posts fail; the callbacks never run are dropped (ready queue, timers).
  impl.closed.store(true, std::memory_order_release);
  detail::close_fd_watchers(impl.io);  // add_reader/add_writer: fd_watch.cpp
  for (detail::CallBase* c : impl.remote->close()) c->release();
  impl.signals.reset();
  impl.signal_handlers.clear();
  while (core_.head_ != nullptr) {
    detail::ReadyNode* n = core_.pop();
    // Only callbacks can be left (tasks are done): freed without running.
    if (n->drop != nullptr) n->drop(n);
  }
  while (const detail::TimerHeapEntry* e = core_.earliest_timer()) {
    detail::TimerNode* t = e->node;
    core_.remove_timer(t);
    static_cast<detail::CallBase*>(t)->release();
  }
  impl.guard.reset();
  impl.io.stop();
}

Handle Loop::schedule_call(detail::CallBase* c) {
  c->loop = &core_;
  try {
    core_.check_thread("call_soon()");
  } catch (...) {
    c->release();
    throw;
  }
  c->add_ref();  // the queue's reference
  core_.push(c);
  return Handle(c);
}

Handle Loop::schedule_timer(detail::CallBase* c, Clock::time_point when) {
  c->loop = &core_;
  try {
    core_.check_thread("call_at()");
  } catch (...) {
    c->release();
    throw;
  }
  c->TimerNode::fire = &detail::CallBase::fire_timer;
  c->add_ref();  // the heap's reference
  core_.add_timer(c, detail::to_ns(when));
  return Handle(c);
}

Handle Loop::schedule_threadsafe(detail::CallBase* c) {
  c->loop = &core_;
  c->add_ref();  // the queue's reference
  if (!core_.impl_->remote->post(c)) {
    c->release();
    c->release();
    throw RuntimeError("Event loop is closed");
  }
  return Handle(c);
}

concur::ThreadPoolExecutor& Loop::default_executor() {
  auto& impl = *core_.impl_;
  std::scoped_lock lock(impl.default_mu);
  if (is_closed()) throw RuntimeError("Event loop is closed");
  if (!impl.default_executor) {
    impl.default_executor = std::make_unique<concur::ThreadPoolExecutor>(
        concur::ThreadPoolOptions{.thread_name_prefix = "asyncio"});
  }
  return *impl.default_executor;
}

// ---- the loop as an Executor ----

void Loop::execute(concur::detail::RunnablePtr task) {
  auto& impl = *core_.impl_;
  std::unique_lock lock(impl.exec_mu);
  if (impl.exec_shutdown || is_closed()) {
    lock.unlock();
    task->abandon();
    throw RuntimeError("cannot schedule new futures after shutdown");
  }
  impl.exec_queue.push_back(std::move(task));
  ++impl.exec_unfinished;
  if (impl.exec_drain_posted) return;
  impl.exec_drain_posted = true;
  lock.unlock();
  // One drain call runs the submissions queued by the time it runs (later ones wait for the drain
  // they post), taking them from the queue one at a time: shutdown(cancel_futures) while one of
  // them runs still cancels the rest.
  const bool posted = core_.post_threadsafe([&impl] {
    std::unique_lock l(impl.exec_mu);
    impl.exec_drain_posted = false;
    for (std::size_t n = impl.exec_queue.size(); n > 0 && !impl.exec_queue.empty(); --n) {
      concur::detail::RunnablePtr r = std::move(impl.exec_queue.front());
      impl.exec_queue.pop_front();
      l.unlock();
      r->run();
      r.reset();  // the task's own reference: the callable and the result are not kept
      l.lock();
      --impl.exec_unfinished;
      impl.exec_cv.notify_all();
    }
  });
  if (!posted) {
    lock.lock();
    std::deque<concur::detail::RunnablePtr> left = std::move(impl.exec_queue);
    impl.exec_unfinished -= left.size();
    impl.exec_drain_posted = false;
    lock.unlock();
    for (auto& r : left) r->abandon();
    throw RuntimeError("cannot schedule new futures after shutdown");
  }
}

void Loop::shutdown(bool wait, bool cancel_futures) {
  auto& impl = *core_.impl_;
  std::unique_lock lock(impl.exec_mu);
  impl.exec_shutdown = true;
  if (cancel_futures) {
    std::deque<concur::detail::RunnablePtr> left = std::move(impl.exec_queue);
    impl.exec_unfinished -= left.size();
    lock.unlock();
    for (auto& r : left) r->abandon();
    impl.exec_cv.notify_all();
    lock.lock();
  }
  // The loop's own thread cannot wait for itself; a closed loop has nothing left to run.
  if (!wait || detail::tls_loop == &core_) return;
  impl.exec_cv.wait(lock, [&] { return impl.exec_unfinished == 0 || is_closed(); });
}

// ---- signals ----

namespace {
void arm_signals(detail::LoopCore::Impl& impl) {
  impl.signals->async_wait([&impl](const boost::system::error_code& ec, int signum) {
    if (ec) return;
    auto it = impl.signal_handlers.find(signum);
    if (it != impl.signal_handlers.end()) {
      std::function<void()> fn = it->second;
      try {
        fn();
      } catch (...) {
        concur::detail::report_exception(std::current_exception());
      }
    }
    if (impl.signals) arm_signals(impl);
  });
}
}  // namespace

void Loop::add_signal_handler(int signum, std::function<void()> fn) {
  core_.check_thread("add_signal_handler()");
  auto& impl = *core_.impl_;
  if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP) {
    throw ValueError("invalid signal number " + std::to_string(signum));
  }
  const bool first = !impl.signals;
  if (first) impl.signals = std::make_unique<boost::asio::signal_set>(impl.io);
  boost::system::error_code ec;
  impl.signals->add(signum, ec);
  if (ec) throw RuntimeError("add_signal_handler(): " + ec.message());
  impl.signal_handlers[signum] = std::move(fn);
  if (first) arm_signals(impl);
}

bool Loop::remove_signal_handler(int signum) {
  core_.check_thread("remove_signal_handler()");
  auto& impl = *core_.impl_;
  if (!impl.signals || impl.signal_handlers.erase(signum) == 0) return false;
  boost::system::error_code ec;
  impl.signals->remove(signum, ec);
  return true;
}

Loop& get_running_loop() { return detail::running_core().owner(); }

}  // namespace concur::aio
