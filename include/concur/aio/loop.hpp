// concur/aio/loop.hpp — Loop, asyncio's event loop: one thread runs ready callbacks and coroutine
// steps, timers and I/O completions, on a Boost.Asio io_context (the reactor).
//
// A Loop runs while a thread is inside run_forever() / run_until_complete(); that thread is the
// loop's thread and get_running_loop() returns it there. call_soon/call_later/call_at schedule
// callbacks on it (loop thread only, as Python); call_soon_threadsafe and stop() may be called from
// any thread. The Loop is also a concur::Executor: submit(fn, args...) from any thread runs fn on
// the loop's thread and returns a concur::Future. close() (and the destructor) cancels the tasks
// still pending, runs the loop until they finished, shuts the default executor down and frees the
// reactor; a closed loop refuses new work with RuntimeError.
// Thread-safety: a Loop is driven by one thread at a time; only call_soon_threadsafe, stop,
// is_running, is_closed, time and the Executor members are safe from other threads.
// Lifetime: callbacks, tasks and handles must not outlive the loop's close() in use.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"
#include "concur/thread_pool.hpp"

namespace concur::aio {

class Loop;
class LoopGroup;
template <class T>
class Task;
template <class T>
class ScheduledTask;

// Clock is the loop's monotonic clock (Python's loop.time()).
using Clock = std::chrono::steady_clock;

namespace detail {

class TaskCore;
class LoopCore;

// ReadyNode is an entry of the loop's ready queue (intrusive: a task's step, a callback).
struct ReadyNode {
  ReadyNode* next = nullptr;
  void (*run)(ReadyNode* self) noexcept = nullptr;
  // drop: frees a callback that will never run (a closed loop); nullptr for a task's step.
  void (*drop)(ReadyNode* self) noexcept = nullptr;
};

// TimerNode is a timer of the loop (intrusive: a sleep, a call_later); `index` is its place in
// the loop's timer heap, or (kInFifo set) in its deadline-ordered queue, or (kDeferred set) in
// the list of timers that came due while the loop was firing others (LoopCore::fire_timers).
struct TimerNode {
  static constexpr std::size_t kNotQueued = static_cast<std::size_t>(-1);
  static constexpr std::size_t kInFifo = std::size_t{1} << (sizeof(std::size_t) * 8 - 1);
  static constexpr std::size_t kDeferred = std::size_t{1} << (sizeof(std::size_t) * 8 - 2);
  std::int64_t when = 0;  // Clock nanoseconds since epoch
  std::uint64_t seq = 0;  // FIFO order among equal deadlines
  std::size_t index = kNotQueued;
  void (*fire)(TimerNode* self) noexcept = nullptr;
  [[nodiscard]] bool queued() const noexcept { return index != kNotQueued; }
};

inline std::int64_t to_ns(Clock::time_point tp) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
}
inline Clock::time_point from_ns(std::int64_t ns) noexcept {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

// TimerHeapEntry: an entry of the loop's timer heap. It carries the deadline, so sifting compares
// inside the heap's array and touches a node (somewhere in a coroutine frame) only to store its
// new index; the FIFO tie-break (seq) is read from the nodes only when two deadlines are equal.
struct TimerHeapEntry {
  std::int64_t when;
  TimerNode* node;
};

// The running loop and task of this thread (set by the loop while it runs a step).
inline thread_local LoopCore* tls_loop = nullptr;
inline thread_local TaskCore* tls_task = nullptr;

// LoopCore is the loop's state that header templates touch: the ready queue (loop thread only)
// and the timer heap. The reactor (Asio) and the cross-thread queue live in src/aio/loop.cpp.
class CONCUR_EXPORT LoopCore {
 public:
  // push(n): n runs in a later step of this loop, after everything queued before it.
  void push(ReadyNode* n) noexcept {
    n->next = nullptr;
    *tail_ = n;
    tail_ = &n->next;
  }
  // add_timer(n, when) / remove_timer(n): the loop's timers (loop thread).
  void add_timer(TimerNode* n, std::int64_t when);
  void remove_timer(TimerNode* n) noexcept;
  // earliest_timer(): the entry of the timer due first (deadline, then FIFO), or nullptr.
  [[nodiscard]] const TimerHeapEntry* earliest_timer() const noexcept;
  // post_threadsafe(fn): fn runs on the loop's thread; false when the loop is closed.
  bool post_threadsafe(std::function<void()> fn);
  [[nodiscard]] Loop& owner() noexcept { return *owner_; }
  // check_thread(what): RuntimeError unless called on this loop's thread while it runs, or
  // with no loop running anywhere (set-up before run).
  void check_thread(const char* what) const;
  [[nodiscard]] bool closed() const noexcept;
  // register_task / unregister_task: all_tasks() bookkeeping.
  void register_task(TaskCore* t) noexcept;
  void unregister_task(TaskCore* t) noexcept;
  std::uint64_t next_task_id() noexcept { return ++task_ids_; }
  [[nodiscard]] std::size_t task_count() const noexcept { return task_count_; }
  [[nodiscard]] TaskCore* first_task() const noexcept { return tasks_; }
  // report_slow(what, took): debug mode: a step that ran longer than slow_callback_duration.
  void report_slow(const std::string& what, Clock::duration took) const;
  // debug(): asyncio's debug mode (slow steps reported).
  [[nodiscard]] bool debug() const noexcept { return debug_; }
  // made_by_parent(): this is a child's copy of a loop its parent made before fork() (the loop
  // running the coroutine that forked, among others). It gets a reactor of its own before its
  // next iteration, its close() or any new socket (native_handle()); meanwhile the thread may run
  // a loop of its own inside it (Python 3.12's child forgets its running loop, so may too).
  [[nodiscard]] bool made_by_parent() const noexcept;

  struct Impl;  // src/aio/loop.cpp

 private:
  friend class concur::aio::Loop;
  explicit LoopCore(Loop* owner);
  ~LoopCore();
  LoopCore(const LoopCore&) = delete;
  LoopCore& operator=(const LoopCore&) = delete;
  // adopt_after_fork(): a forked copy's own reactor (Asio's notify_fork: a new epoll instance,
  // timer and wake-up descriptors, every descriptor registered again).
  void adopt_after_fork();
  ReadyNode* pop() noexcept {
    ReadyNode* n = head_;
    head_ = n->next;
    if (head_ == nullptr) tail_ = &head_;
    return n;
  }
  // detach_ready(): the whole ready queue, which is left empty.
  ReadyNode* detach_ready() noexcept {
    ReadyNode* n = head_;
    head_ = nullptr;
    tail_ = &head_;
    return n;
  }

  ReadyNode* head_ = nullptr;
  ReadyNode** tail_ = &head_;
  // The timers: a timer whose deadline is not before the last one queued in fifo_ (the common
  // case: sleeps and timeouts of one delay) is appended there, in deadline order, and leaves
  // it in O(1) without touching another timer; any other goes to the 4-ary heap. fifo_'s live
  // entries are fifo_[fifo_head_..), a removed one keeps its place with node == nullptr (never
  // the one at fifo_head_), fifo_dead_ counts them. src/aio/loop.cpp, "the timers".
  void fifo_trim() noexcept;
  void fifo_compact() noexcept;
  void heap_push(TimerHeapEntry e);
  // fire_timers(now, queued_through): fires the timers due by `now` that were queued by timer
  // number queued_through (src/aio/loop.cpp, "Loop::run_once", step 3).
  void fire_timers(std::int64_t now, std::uint64_t queued_through) noexcept;
  std::vector<TimerHeapEntry> heap_;
  std::vector<TimerHeapEntry> deferred_;  // due timers queued while fire_timers ran
  std::vector<TimerHeapEntry> fifo_;
  std::size_t fifo_head_ = 0;
  std::size_t fifo_dead_ = 0;
  std::uint64_t timer_seq_ = 0;
  TaskCore* tasks_ = nullptr;  // all pending scheduled tasks (intrusive list)
  std::size_t task_count_ = 0;
  std::uint64_t task_ids_ = 0;
  bool debug_ = false;
  Loop* owner_;
  std::unique_ptr<Impl> impl_;
};

// running_core() is this thread's running loop, or throws RuntimeError("no running event loop").
CONCUR_EXPORT LoopCore& running_core();

// CallBase: a scheduled callback (call_soon / call_later), shared with its Handle.
struct CONCUR_EXPORT CallBase : ReadyNode, TimerNode {
  CallBase() noexcept {
    ReadyNode::run = &run_ready;
    ReadyNode::drop = [](ReadyNode* n) noexcept { static_cast<CallBase*>(n)->release(); };
    TimerNode::fire = &fire_timer;
  }
  CallBase(const CallBase&) = delete;
  CallBase& operator=(const CallBase&) = delete;
  LoopCore* loop = nullptr;
  std::atomic<int> refs{1};
  std::atomic<bool> cancelled{false};
  virtual ~CallBase() = default;
  virtual void invoke() = 0;
  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  static void run_ready(ReadyNode* n) noexcept;
  static void fire_timer(TimerNode* n) noexcept;
};

template <class F>
struct CallNode final : CallBase {
  explicit CallNode(F f) : fn(std::move(f)) {}
  void invoke() override { fn(); }
  F fn;
};

}  // namespace detail

// Handle is what call_soon / call_later / call_at return (asyncio.Handle / TimerHandle):
// cancel() keeps the callback from running (no effect once it ran); cancelled(); when() for
// timers. Copyable; a Handle does not keep the loop alive.
class CONCUR_EXPORT Handle {
 public:
  Handle() noexcept = default;
  Handle(const Handle& o) noexcept;
  Handle& operator=(const Handle& o) noexcept;
  Handle(Handle&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Handle& operator=(Handle&& o) noexcept;
  ~Handle();
  // cancel(): the callback will not run (a timer leaves the heap at once). Loop thread for
  // timers; from any thread for call_soon_threadsafe's handle.
  void cancel() noexcept;
  [[nodiscard]] bool cancelled() const noexcept;
  // when(): a timer's deadline (Clock::time_point{} for a call_soon handle).
  [[nodiscard]] Clock::time_point when() const noexcept;

 private:
  friend class Loop;
  explicit Handle(detail::CallBase* c) noexcept : c_(c) {}
  void swap_into(Handle& o) noexcept;
  detail::CallBase* c_ = nullptr;
};

// LoopOptions: Loop's constructor argument.
struct LoopOptions {
  // debug: asyncio's debug mode: a callback or task step that runs longer than
  // slow_callback_duration is reported on stderr with the task's name.
  bool debug = false;
  std::chrono::nanoseconds slow_callback_duration = std::chrono::milliseconds(100);
  // io_poll_interval: while callbacks are ready, I/O is polled at least this often (a fairness
  // bound; when nothing is ready the loop blocks in the reactor until I/O or the next timer).
  std::chrono::nanoseconds io_poll_interval = std::chrono::microseconds(50);
};

class CONCUR_EXPORT Loop final : public concur::Executor {
 public:
  explicit Loop(LoopOptions options = {});
  // ~Loop() is close() (a running loop cannot be destroyed: that is a program error, it aborts).
  ~Loop() override;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // run_forever() runs until stop(). RuntimeError when already running, when another loop runs
  // in this thread, or when closed.
  void run_forever();
  // run_until_complete(task) schedules the task (if it is not scheduled yet), runs the loop until
  // it is done and returns its result or rethrows its exception. Other tasks keep their state.
  template <class T>
  T run_until_complete(Task<T> task);
  // stop(): run_forever() returns after the current batch of callbacks. Any thread.
  void stop() noexcept;
  // close(): cancels the pending tasks and runs the loop until they finished, shuts the default
  // executor down (waiting), releases the reactor. Idempotent. RuntimeError while running.
  void close();
  [[nodiscard]] bool is_running() const noexcept;
  [[nodiscard]] bool is_closed() const noexcept;

  // time(): the loop's clock.
  [[nodiscard]] Clock::time_point time() const noexcept { return Clock::now(); }

  // call_soon(fn): fn() runs in a later iteration, FIFO. Loop thread (or before the loop runs).
  template <class F>
  Handle call_soon(F&& fn);
  // call_later(delay, fn) / call_at(when, fn): fn() runs once the deadline passed.
  template <class F, class Rep, class Period>
  Handle call_later(std::chrono::duration<Rep, Period> delay, F&& fn);
  template <class F>
  Handle call_at(Clock::time_point when, F&& fn);
  // call_soon_threadsafe(fn): from any thread; wakes the loop. RuntimeError once closed.
  template <class F>
  Handle call_soon_threadsafe(F&& fn);

  // create_task(coro, name): schedules the coroutine as a task of this loop; see task.hpp.
  template <class T>
  ScheduledTask<T> create_task(Task<T> coro, std::string name = {});

  // run_in_executor(executor, fn, args...): executor.submit(fn, args...) — any concur executor
  // (ThreadPoolExecutor, ProcessPoolExecutor with a registered task, another Loop); the returned
  // concur::Future can be co_awaited without blocking the loop.
  template <class Ex, class F, class... Args>
  auto run_in_executor(Ex& executor, F&& fn, Args&&... args) {
    return executor.submit(std::forward<F>(fn), std::forward<Args>(args)...);
  }
  // run_in_executor(fn, args...): the same on the loop's default ThreadPoolExecutor (created on
  // first use, shut down by close()).
  template <class F, class... Args>
  auto run_in_executor(F&& fn, Args&&... args);
  // default_executor(): the loop's ThreadPoolExecutor (created on first use).
  concur::ThreadPoolExecutor& default_executor();

  // add_signal_handler(signum, fn): fn() runs on the loop's thread when the signal arrives
  // (replacing a previous handler for it); remove_signal_handler(signum) → whether one was set.
  void add_signal_handler(int signum, std::function<void()> fn);
  bool remove_signal_handler(int signum);

  // add_reader(fd, fn) / add_writer(fd, fn): fn() runs on the loop's thread, as a call_soon
  // callback, each time fd is readable / writable, until removed (a callback that does not read
  // runs again in the next iteration). Adding again replaces the callback. The loop neither owns
  // nor closes fd; close() removes every watcher. An exception escaping fn goes to the excepthook
  // and the watcher stays. Loop thread (or before the loop runs). ValueError for a negative fd or
  // an empty fn; OSError for a bad fd (EBADF) or a regular file (EPERM, as epoll); RuntimeError
  // when the loop is closed, when fd belongs to a stream, server or subprocess of this loop
  // ("File descriptor N is used by transport"), or when a sock_* operation (sockets.hpp) waits on
  // the same fd and direction. Remove the watchers of an fd before closing it.
  void add_reader(int fd, std::function<void()> fn);
  void add_writer(int fd, std::function<void()> fn);
  // remove_reader(fd) / remove_writer(fd): the callback will not run again (a run already
  // scheduled is skipped); returns whether one was registered (false once the loop is closed,
  // and for a sock_* operation's wait, which is not a callback).
  bool remove_reader(int fd);
  bool remove_writer(int fd);

  // set_debug / get_debug: asyncio's debug mode (see LoopOptions).
  void set_debug(bool enabled) noexcept;
  [[nodiscard]] bool get_debug() const noexcept;

  // Executor: submit(fn, args...) from any thread → Future; fn runs on the loop's thread (one at a
  // time: max_workers() == 1). shutdown(wait, cancel_futures): refuses new submissions; cancels
  // the submitted calls not yet run when cancel_futures; with wait (from another thread) returns
  // once the others ran. Submissions need a loop that runs (or will run) to make progress.
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  [[nodiscard]] std::size_t max_workers() const noexcept override { return 1; }

  // native_handle(): the boost::asio::io_context* behind the loop (for streams and Asio code).
  [[nodiscard]] void* native_handle() noexcept;
  [[nodiscard]] detail::LoopCore& core() noexcept { return core_; }

 protected:
  void execute(concur::detail::RunnablePtr task) override;

 private:
  friend class LoopGroup;
  Handle schedule_call(detail::CallBase* c);
  Handle schedule_timer(detail::CallBase* c, Clock::time_point when);
  Handle schedule_threadsafe(detail::CallBase* c);
  void run_until_done(detail::TaskCore& t);
  static void run_once(detail::LoopCore& c, bool block);

  detail::LoopCore core_;
};

// get_running_loop(): the loop running in this thread; RuntimeError("no running event loop").
CONCUR_EXPORT Loop& get_running_loop();

// ---- implementation ---------------------------------------------------------------------------

template <class F>
Handle Loop::call_soon(F&& fn) {
  return schedule_call(new detail::CallNode<std::decay_t<F>>(std::forward<F>(fn)));
}
template <class F, class Rep, class Period>
Handle Loop::call_later(std::chrono::duration<Rep, Period> delay, F&& fn) {
  return schedule_timer(new detail::CallNode<std::decay_t<F>>(std::forward<F>(fn)),
                        Clock::now() + std::chrono::duration_cast<Clock::duration>(delay));
}
template <class F>
Handle Loop::call_at(Clock::time_point when, F&& fn) {
  return schedule_timer(new detail::CallNode<std::decay_t<F>>(std::forward<F>(fn)), when);
}
template <class F>
Handle Loop::call_soon_threadsafe(F&& fn) {
  return schedule_threadsafe(new detail::CallNode<std::decay_t<F>>(std::forward<F>(fn)));
}

}  // namespace concur::aio
