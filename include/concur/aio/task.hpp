// concur/aio/task.hpp — Task<T>, asyncio's coroutines and Tasks: `aio::Task<T> f()` is Python's
// `async def f()`; create_task() schedules one on the running loop; sleep(), run() and friends.
//
// A function returning Task<T> is a lazy coroutine: calling it runs nothing. `co_await f()` runs
// it inline, as part of the awaiting task (Python's `await coro`); create_task(f()) schedules it
// as an independent task on the running loop and returns a handle to it (Python's Task): done(),
// result(), exception(), cancel(msg), cancelling()/uncancel(), add_done_callback(), name(), and
// `co_await task` waits for it (cancelling the awaiting task cancels the awaited one, as Python).
// cancel() delivers CancelledError at the task's current or next suspension point. A task whose
// exception nobody retrieved is reported through concur's excepthook when its last handle goes
// ("Task exception was never retrieved"); a coroutine never awaited nor scheduled is reported
// when dropped; Task is [[nodiscard]].
// Inside an aio coroutine, co_await accepts aio awaitables only (Tasks, sleep, the aio sync
// primitives and queues, streams) and concur::Future<T> (awaited without blocking the loop);
// anything else is a compile error, so no foreign awaitable can resume a task on another thread.
// Thread-safety: tasks and their handles belong to their loop's thread (a handle may be moved to
// another thread, not used there concurrently); run_coroutine_threadsafe() crosses threads.
// g++ 12 (Debian 12's compiler) destroys a lambda with non-trivial captures (or a braced
// aggregate) that is written inside a co_await expression twice — a compiler bug, fixed in g++ 13.
// Name such an argument in a local before the co_await: `auto h = [p] {...}; co_await f(h);`.
#pragma once

#include <cassert>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/aio/loop.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/future.hpp"

namespace concur::aio {

class TaskRef;

namespace detail {

// Waiter is what a task is suspended on (a sleep, a lock, another task...). cancel() is the
// task's cancel() reaching it: it returns true when it forwarded the cancellation (an awaited task
// accepted it: the waiter stays and the awaited task's end wakes the task), false when it
// detached itself and rescheduled the task with task.wake(), or could not (the wake-up was already
// on its way: it leaves waiter_ set). A detached wait raises CancelledError when the task resumes
// even if uncancel() ran meanwhile (Python: the awaited future is cancelled); a late one raises it
// unless uncancel() withdrew the request. cancel() never reaches a waiter that was already woken
// (wake() clears waiter_): a primitive that handed something to a woken waiter (a lock, a permit,
// an item) passes it on in await_resume() — or its destructor — when the task resumes cancelled.
class Waiter {
 public:
  virtual bool cancel(TaskCore& task) noexcept = 0;

 protected:
  Waiter() = default;
  ~Waiter() = default;
  Waiter(const Waiter&) = default;
  Waiter& operator=(const Waiter&) = default;
};

// DoneNode is an entry of a task's completion list (an awaiting task, gather, a done-callback).
struct DoneNode {
  DoneNode* next = nullptr;
  DoneNode* prev = nullptr;
  void (*fire)(DoneNode* self, TaskCore& done) noexcept = nullptr;
  bool linked = false;
};

// AwaitableTag: a type with `using aio_awaitable = void;` is an aio awaitable (await_transform's
// gate).
template <class A>
concept AioAwaitable = requires {
  typename std::remove_cvref_t<A>::aio_awaitable;
};

template <class A>
struct IsConcurFuture : std::false_type {};
template <class U>
struct IsConcurFuture<concur::Future<U>> : std::true_type {};

class CONCUR_EXPORT TaskCore : private ReadyNode {
 public:
  enum class Stage : std::uint8_t { kCreated, kInline, kScheduled, kFinished, kCancelled };

  TaskCore() noexcept { ReadyNode::run = &TaskCore::run_step; }
  TaskCore(const TaskCore&) = delete;
  TaskCore& operator=(const TaskCore&) = delete;

  // ---- references (the frame is destroyed with the last one) ----
  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) destroy();
  }

  // ---- queries ----
  [[nodiscard]] Stage stage() const noexcept { return stage_; }
  [[nodiscard]] bool done() const noexcept { return stage_ >= Stage::kFinished; }
  [[nodiscard]] bool cancelled() const noexcept { return stage_ == Stage::kCancelled; }
  // has_exception(): finished with an exception (not cancelled).
  [[nodiscard]] bool has_exception() const noexcept {
    return stage_ == Stage::kFinished && exc_ != nullptr;
  }
  void mark_retrieved() noexcept { retrieved_ = true; }
  [[nodiscard]] bool scheduled() const noexcept { return loop_ != nullptr && root_ == this; }
  [[nodiscard]] int cancelling() const noexcept { return cancels_; }
  int uncancel() noexcept {
    if (cancels_ > 0) --cancels_;
    if (cancels_ == 0) must_cancel_ = false;
    return cancels_;
  }
  [[nodiscard]] std::string name() const;
  void set_name(std::string name);
  [[nodiscard]] LoopCore* loop() const noexcept { return loop_; }
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }

  // cancel(msg): asyncio's Task.cancel(): false when done (or never scheduled); otherwise counts a
  // request and delivers CancelledError(msg) at the current or next suspension point.
  bool cancel(const std::string& msg = {});
  // exception_or_throw(): the stored exception (nullptr for a value); InvalidStateError when not
  // done; CancelledError when cancelled. Marks it retrieved.
  std::exception_ptr exception_or_throw();
  // cancelled_error(): for a cancelled task, the CancelledError exception_or_throw() raises,
  // returned instead of thrown. Marks it retrieved.
  std::exception_ptr cancelled_error();
  // rethrow_if_failed(): result()'s checks (InvalidStateError / CancelledError / the exception).
  void rethrow_if_failed();

  // ---- the loop side ----
  // start(loop, name): a created coroutine becomes a scheduled task (create_task).
  void start(LoopCore& loop, std::string name);
  // add_done(n) links n (false when done already: the caller fires it); remove_done(n) unlinks.
  bool add_done(DoneNode* n) noexcept;
  void remove_done(DoneNode* n) noexcept;
  // wake(): the task's suspension ended; its next step runs in a later iteration.
  void wake() noexcept {
    CONCUR_DCHECK(!queued_);  // an awaiter that wakes a task twice would corrupt the queue
    queued_ = true;
    waiter_ = nullptr;
    loop_->push(this);
  }
  // suspend_on(w): true when the task may suspend on w (records it); false when a cancellation
  // is pending: the awaiter must not suspend and resume() then throws CancelledError. Call it
  // last in await_suspend: an awaiter that throws after it would leave waiter_ dangling.
  bool suspend_on(Waiter* w) noexcept {
    if (must_cancel_) return false;
    waiter_ = w;
    return true;
  }
  // check_cancel(): called as an await resumes: throws the pending CancelledError, if any.
  void check_cancel() {
    if (must_cancel_ || waiter_cancelled_) [[unlikely]]
      throw_cancel();
  }
  // Inline coroutines (co_await of a created Task): the root task resumes the innermost one.
  std::coroutine_handle<> enter_inline(TaskCore& child, std::coroutine_handle<> parent) noexcept {
    child.stage_ = Stage::kInline;
    child.root_ = this;
    child.continuation_ = parent;
    leaf_ = child.self_;
    return child.self_;
  }

  // ---- the coroutine side (the promise) ----
  void set_self(std::coroutine_handle<> h) noexcept { self_ = h; }
  void on_exception() noexcept;
  // finish(): at final suspension; returns what to resume (an inline parent, or nothing).
  std::coroutine_handle<> finish() noexcept;

  // all-tasks list links (LoopCore).
  TaskCore* all_prev_ = nullptr;
  TaskCore* all_next_ = nullptr;

 protected:
  ~TaskCore();
  [[noreturn]] void throw_cancel();
  void report_unretrieved() noexcept;
  void destroy() noexcept;

  LoopCore* loop_ = nullptr;
  TaskCore* root_ = this;
  std::coroutine_handle<> self_;
  std::coroutine_handle<> leaf_;          // root: the coroutine its next step resumes
  std::coroutine_handle<> continuation_;  // inline: the awaiting coroutine
  Waiter* waiter_ = nullptr;              // root: what it is suspended on
  DoneNode* done_head_ = nullptr;         // completion list, FIFO
  DoneNode* done_tail_ = nullptr;
  std::exception_ptr exc_;
  std::unique_ptr<std::string[]> extra_;  // [0] name, [1] cancel message (rarely used)
  std::uint64_t id_ = 0;
  std::uint32_t refs_ = 1;
  int cancels_ = 0;
  Stage stage_ = Stage::kCreated;
  bool must_cancel_ = false;
  bool waiter_cancelled_ = false;  // cancel() detached the waiter: CancelledError at resume
  bool retrieved_ = false;
  bool started_ = false;  // a scheduled task's first step ran
  bool queued_ = false;   // in the ready queue (wake() ran, the step did not yet)

 private:
  static void run_step(ReadyNode* n) noexcept;
};

// ByRef<W>: awaits the awaiter object *w in place (g++ 12 copies an awaiter named by an lvalue
// into the frame; library code that reads its awaiter after the await goes through this).
template <class W>
struct ByRef {
  using aio_awaitable = void;
  W* w;
  bool await_ready() { return w->await_ready(); }
  auto await_suspend(std::coroutine_handle<> h) { return w->await_suspend(h); }
  decltype(auto) await_resume() { return w->await_resume(); }
};
template <class W>
ByRef<W> by_ref(W& w) noexcept {
  return ByRef<W>{&w};
}

// Promise<T>: the coroutine promise of Task<T> (the task state and the value, in the frame).
template <class T>
class Promise;

template <class Derived>
class PromiseBase : public TaskCore {
 public:
  std::suspend_always initial_suspend() noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Derived> h) noexcept {
      return h.promise().finish();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { on_exception(); }

  // await_transform: only aio awaitables and concur::Future<T> (see the header comment).
  template <class A>
  requires(!IsConcurFuture<std::remove_cvref_t<A>>::value) decltype(auto)
      await_transform(A&& a) noexcept {
    static_assert(AioAwaitable<A>,
                  "co_await inside an aio::Task accepts aio awaitables (aio::Task, aio::sleep, "
                  "the aio locks and queues, streams...) and concur::Future<T> only");
    // An awaiter is awaited in place, through a pointer: returning it by reference makes g++ 12
    // keep a second copy in the frame (the temporary and the transformed result both live across
    // the suspension: 64 bytes more per co_await of aio::sleep). Awaitables that are not awaiters
    // themselves (Task: operator co_await) pass through.
    if constexpr (requires { a.await_ready(); }) {
      return ByRef<std::remove_reference_t<A>>{&a};
    } else {
      return std::forward<A>(a);
    }
  }
  template <class U>
  auto await_transform(const concur::Future<U>& f);
  template <class U>
  auto await_transform(concur::Future<U>&& f);

  // Frame allocation (sized operator new: frames of one size are recycled per thread).
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;
};

CONCUR_EXPORT void* allocate_frame(std::size_t size);
CONCUR_EXPORT void free_frame(void* p, std::size_t size) noexcept;

template <class Derived>
void* PromiseBase<Derived>::operator new(std::size_t size) {
  return allocate_frame(size);
}
template <class Derived>
void PromiseBase<Derived>::operator delete(void* p, std::size_t size) noexcept {
  free_frame(p, size);
}

template <class T>
class Promise final : public PromiseBase<Promise<T>> {
 public:
  Promise() noexcept {}  // value_ is constructed by return_value()
  Task<T> get_return_object() noexcept;
  template <class V>
  requires std::convertible_to<V&&, T>
  void return_value(V&& v) {
    ::new (static_cast<void*>(std::addressof(value_))) T(std::forward<V>(v));
    has_value_ = true;
  }
  T& value() noexcept { return value_; }
  ~Promise() {
    if (has_value_) std::destroy_at(std::addressof(value_));
  }

 private:
  union {
    T value_;
  };
  bool has_value_ = false;
};

template <>
class Promise<void> final : public PromiseBase<Promise<void>> {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

template <class T>
Promise<T>& promise_of(TaskCore* c) noexcept {
  return *static_cast<Promise<T>*>(c);
}

CONCUR_EXPORT void report_never_awaited() noexcept;

}  // namespace detail

// TaskRef is an untyped handle to a task (Python's Task object without its result type): what
// current_task() and all_tasks() return. Copyable (reference-counted; the loop holds its own
// reference while the task is pending).
class CONCUR_EXPORT TaskRef {
 public:
  TaskRef() noexcept = default;
  TaskRef(const TaskRef& o) noexcept : c_(o.c_) {
    if (c_ != nullptr) c_->add_ref();
  }
  TaskRef(TaskRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  TaskRef& operator=(const TaskRef& o) noexcept {
    TaskRef(o).swap(*this);
    return *this;
  }
  TaskRef& operator=(TaskRef&& o) noexcept {
    TaskRef(std::move(o)).swap(*this);
    return *this;
  }
  ~TaskRef() { reset(); }

  // valid(): a handle with a task behind it.
  [[nodiscard]] bool valid() const noexcept { return c_ != nullptr; }
  // done(): finished (a value or an exception) or cancelled.
  [[nodiscard]] bool done() const { return core().done(); }
  // cancelled(): the task ended with CancelledError.
  [[nodiscard]] bool cancelled() const { return core().cancelled(); }
  // cancel(msg): asyncio's Task.cancel(msg): false when the task is done (or is a coroutine that
  // was never scheduled); otherwise true, and CancelledError(msg) is raised inside it at its
  // current suspension point (or its next one, if it is running or about to resume). An awaited
  // task is cancelled with it. The request is counted (cancelling()).
  bool cancel(const std::string& msg = {}) { return core().cancel(msg); }
  // cancelling(): the number of pending cancellation requests (Python 3.11).
  [[nodiscard]] int cancelling() const { return core().cancelling(); }
  // uncancel(): one request fewer; returns what remains. At zero, a cancellation not yet
  // delivered is withdrawn (Python 3.13).
  int uncancel() { return core().uncancel(); }
  // exception(): the exception the task raised, nullptr when it returned; InvalidStateError when
  // not done, CancelledError when cancelled. Marks it retrieved.
  [[nodiscard]] std::exception_ptr exception() const { return core().exception_or_throw(); }
  // name() / set_name(): "Task-<n>" unless named.
  [[nodiscard]] std::string name() const { return core().name(); }
  void set_name(std::string name) { core().set_name(std::move(name)); }
  // get_loop(): the loop the task runs on.
  [[nodiscard]] Loop& get_loop() const;
  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept { return a.c_ == b.c_; }

  // reset(): drops this handle.
  void reset() noexcept;

 protected:
  explicit TaskRef(detail::TaskCore* adopted) noexcept : c_(adopted) {}
  detail::TaskCore& core() const {
    if (c_ == nullptr) [[unlikely]]
      throw InvalidStateError("the task handle is empty");
    return *c_;
  }
  void swap(TaskRef& o) noexcept { std::swap(c_, o.c_); }

  detail::TaskCore* c_ = nullptr;

  friend struct TaskAccess;
};

// TaskAccess: how the library reaches a handle's core.
struct TaskAccess {
  static detail::TaskCore* core(const TaskRef& t) noexcept { return t.c_; }
  static TaskRef ref(detail::TaskCore* c) noexcept {
    c->add_ref();
    return TaskRef(c);
  }
};

// Task<T>: the coroutine type (Python's `async def` returning T) and the handle of a scheduled
// task. Every member of TaskRef, plus result(), add_done_callback() and co_await.
template <class T = void>
class [[nodiscard]] Task : public TaskRef {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;
  using aio_awaitable = void;

  Task() noexcept = default;

  // result(): the value (a copy; move-only values: std::move(task).result()); rethrows the task's
  // exception; CancelledError when cancelled; InvalidStateError when not done.
  T result() const& requires(std::is_void_v<T> || std::copy_constructible<T>) {
    core().rethrow_if_failed();
    if constexpr (!std::is_void_v<T>) return detail::promise_of<T>(c_).value();
  }
  T result() && requires(!std::is_void_v<T> && !std::copy_constructible<T>) {
    core().rethrow_if_failed();
    return std::move(detail::promise_of<T>(c_).value());
  }

  // add_done_callback(fn): fn(const Task<T>&) runs on the loop (call_soon) once the task is done
  // (at the next iteration if it is done already). An exception escaping fn goes to the
  // excepthook.
  template <class F>
  void add_done_callback(F&& fn) const;

  // co_await task: a created coroutine runs inline; a scheduled task is waited for.
  struct Awaiter;
  Awaiter operator co_await() const& noexcept { return Awaiter{*this}; }
  Awaiter operator co_await() && noexcept { return Awaiter{std::move(*this)}; }

 private:
  friend class detail::Promise<T>;
  friend struct TaskAccess;
  explicit Task(detail::TaskCore* adopted) noexcept : TaskRef(adopted) {}
};

template <class T>
struct Task<T>::Awaiter final : detail::Waiter, detail::DoneNode {
  using aio_awaitable = void;
  explicit Awaiter(Task<T> t) noexcept : task(std::move(t)) {}
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  Awaiter(Awaiter&& o) noexcept : Waiter(), DoneNode(), task(std::move(o.task)) {}
  Awaiter& operator=(Awaiter&&) = delete;
  ~Awaiter() {
    if (linked) task.c_->remove_done(this);
  }

  bool await_ready() const {
    detail::TaskCore& c = task.core();
    if (c.stage() == detail::TaskCore::Stage::kInline) {
      throw RuntimeError("coroutine is being awaited already");
    }
    if (c.stage() == detail::TaskCore::Stage::kCreated) return false;
    if (!c.scheduled() && c.done()) throw RuntimeError("cannot reuse already awaited coroutine");
    return c.done();
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    detail::TaskCore& c = *task.c_;
    detail::TaskCore* me = detail::tls_task;
    if (c.stage() == detail::TaskCore::Stage::kCreated) {
      inline_ = true;
      return me->enter_inline(c, h);
    }
    if (&c == me) throw RuntimeError("Task cannot await on itself: " + c.name());
    if (!me->suspend_on(this)) return h;
    fire = &on_done;
    waiting_ = me;
    c.add_done(this);  // not done (await_ready said so)
    return std::noop_coroutine();
  }
  T await_resume() {
    if (!inline_) detail::tls_task->check_cancel();
    detail::TaskCore& c = *task.c_;
    c.rethrow_if_failed();
    if constexpr (std::is_void_v<T>) {
      return;
    } else if constexpr (std::copy_constructible<T>) {
      // An inline coroutine's value belongs to this await alone: move it out.
      if (inline_) return std::move(detail::promise_of<T>(&c).value());
      return detail::promise_of<T>(&c).value();
    } else {
      return std::move(detail::promise_of<T>(&c).value());
    }
  }
  bool cancel(detail::TaskCore& /*me*/) noexcept override {
    try {
      return task.c_->cancel(std::string());  // forwarded: the awaited task's end wakes us
    } catch (...) {
      return false;
    }
  }
  static void on_done(detail::DoneNode* n, detail::TaskCore& /*done*/) noexcept {
    static_cast<Awaiter*>(n)->waiting_->wake();
  }

  Task<T> task;
  detail::TaskCore* waiting_ = nullptr;
  bool inline_ = false;
};

// ScheduledTask<T>: what create_task returns — a Task<T> that may be discarded (the loop, or the
// TaskGroup, keeps the task alive; an exception nobody retrieves is still reported). Converts to
// Task<T>; every Task member works on it.
template <class T = void>
class ScheduledTask : public Task<T> {
 public:
  ScheduledTask() noexcept = default;
  explicit ScheduledTask(Task<T> t) noexcept : Task<T>(std::move(t)) {}
};

namespace detail {

template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  this->set_self(std::coroutine_handle<Promise<T>>::from_promise(*this));
  return Task<T>(this);
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  this->set_self(std::coroutine_handle<Promise<void>>::from_promise(*this));
  return Task<void>(this);
}

// DoneCallback<T, F>: add_done_callback's node: a DoneNode, then a ready callback.
template <class T, class F>
struct DoneCallback final : DoneNode, ReadyNode {
  DoneCallback(Task<T> t, F f) : task(std::move(t)), fn(std::move(f)) {
    fire = &on_done;
    run = &on_ready;
    drop = [](ReadyNode* r) noexcept { delete static_cast<DoneCallback*>(r); };
  }
  static void on_done(DoneNode* n, TaskCore& done) noexcept {
    done.loop()->push(static_cast<DoneCallback*>(n));
  }
  static void on_ready(ReadyNode* r) noexcept {
    auto* self = static_cast<DoneCallback*>(r);
    try {
      self->fn(std::as_const(self->task));
    } catch (...) {
      concur::detail::report_exception(std::current_exception());
    }
    delete self;
  }
  Task<T> task;
  F fn;
};

}  // namespace detail

template <class T>
template <class F>
void Task<T>::add_done_callback(F&& fn) const {
  static_assert(std::is_invocable_v<std::decay_t<F>&, const Task<T>&>,
                "add_done_callback(fn): fn must be callable as fn(const aio::Task<T>&)");
  detail::TaskCore& c = core();
  if (!c.scheduled()) throw RuntimeError("add_done_callback(): the coroutine is not a task");
  auto* node = new detail::DoneCallback<T, std::decay_t<F>>(*this, std::forward<F>(fn));
  if (!c.add_done(node)) detail::DoneCallback<T, std::decay_t<F>>::on_done(node, c);
}

// ---- creating and running tasks ----------------------------------------------------------------

// create_task(coro, name): schedules a created coroutine on the running loop (RuntimeError
// "no running event loop" outside one; RuntimeError when it was awaited or scheduled already).
template <class T>
ScheduledTask<T> create_task(Task<T> coro, std::string name = {}) {
  return get_running_loop().create_task(std::move(coro), std::move(name));
}

template <class T>
ScheduledTask<T> Loop::create_task(Task<T> coro, std::string name) {
  detail::TaskCore* c = TaskAccess::core(coro);
  if (c == nullptr) throw InvalidStateError("create_task(): the task handle is empty");
  c->start(core_, std::move(name));
  return ScheduledTask<T>(std::move(coro));
}

template <class T>
T Loop::run_until_complete(Task<T> task) {
  detail::TaskCore* c = TaskAccess::core(task);
  if (c == nullptr) throw InvalidStateError("run_until_complete(): the task handle is empty");
  if (c->stage() == detail::TaskCore::Stage::kCreated) c->start(core_, {});
  if (c->loop() != &core_)
    throw ValueError("run_until_complete(): the task belongs to another loop");
  run_until_done(*c);
  if constexpr (std::is_void_v<T> || std::copy_constructible<T>) {
    return task.result();
  } else {
    return std::move(task).result();
  }
}

template <class F, class... Args>
auto Loop::run_in_executor(F&& fn, Args&&... args) {
  return static_cast<concur::Executor&>(default_executor())
      .submit(std::forward<F>(fn), std::forward<Args>(args)...);
}

// current_task(): the task running in this thread (an empty TaskRef outside any task).
CONCUR_EXPORT TaskRef current_task() noexcept;
// all_tasks(): the running loop's tasks that are not done.
CONCUR_EXPORT std::vector<TaskRef> all_tasks();

// RunOptions: run()'s and Runner's options.
struct RunOptions {
  bool debug = false;
  // handle_sigint: the first SIGINT cancels the main task (its CancelledError becomes
  // concur::KeyboardInterrupt out of run()), the second ends the process at once — Python 3.11's
  // Runner. Only when running in the main thread and SIGINT has its default action.
  bool handle_sigint = true;
};

// Runner: asyncio.Runner (3.11): one loop for several run() calls, closed by close() or the
// destructor (which cancel the leftover tasks, shut the default executor down, close the loop).
class CONCUR_EXPORT Runner {
 public:
  explicit Runner(RunOptions options = {});
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // run(main): runs main as a task on the runner's loop until it is done; returns its result or
  // rethrows its exception (KeyboardInterrupt when Ctrl-C cancelled it). RuntimeError when called
  // from a running loop or after close().
  template <class T>
  T run(Task<T> main);
  // get_loop(): the runner's loop (RuntimeError after close()).
  Loop& get_loop();
  // close(): leftover tasks cancelled and run to their end, default executor shut down, loop
  // closed. Idempotent.
  void close();

 private:
  void begin(detail::TaskCore& main);
  // end(): stops watching Ctrl-C; true when it cancelled the main task.
  bool end() noexcept;

  RunOptions options_;
  std::unique_ptr<Loop> loop_;
  struct Sigint;
  std::unique_ptr<Sigint> sigint_;
  bool closed_ = false;
};

// run(main, options): asyncio.run(): a new loop runs `main` to completion, then cancels the tasks
// still pending (and waits for them), shuts down the default executor, closes the loop; returns
// main's result or rethrows its exception. RuntimeError when a loop already runs in this thread.
template <class T>
T run(Task<T> main, RunOptions options = {}) {
  Runner runner(options);
  if constexpr (std::is_void_v<T>) {
    runner.run(std::move(main));
    runner.close();
  } else {
    T out = runner.run(std::move(main));
    runner.close();
    return out;
  }
}

namespace detail {
[[noreturn]] CONCUR_EXPORT void throw_keyboard_interrupt();
}  // namespace detail

template <class T>
T Runner::run(Task<T> main) {
  if (detail::tls_loop != nullptr && !detail::tls_loop->made_by_parent()) {
    throw RuntimeError("Runner.run() cannot be called from a running event loop");
  }
  Loop& loop = get_loop();
  detail::TaskCore* core = TaskAccess::core(main);
  if (core == nullptr) throw InvalidStateError("run(): the task handle is empty");
  if (core->stage() == detail::TaskCore::Stage::kCreated) (void)loop.create_task(main);
  begin(*core);
  try {
    if constexpr (std::is_void_v<T>) {
      loop.run_until_complete(std::move(main));
      (void)end();
      return;
    } else {
      T out = loop.run_until_complete(std::move(main));
      (void)end();
      return out;
    }
  } catch (const CancelledError&) {
    if (end() && core->uncancel() == 0) detail::throw_keyboard_interrupt();
    throw;
  } catch (...) {
    (void)end();
    throw;
  }
}

// ---- sleeping ----------------------------------------------------------------------------------

namespace detail {

// SleepAwaiter: sleep(delay) / sleep_until(when). A zero or negative delay yields: the task
// goes to the back of the ready queue (Python's sleep(0)).
class SleepAwaiter final : public Waiter, private TimerNode {
 public:
  using aio_awaitable = void;
  explicit SleepAwaiter(std::int64_t deadline, bool yield_only) noexcept
      : when_(deadline), yield_(yield_only) {
    fire = &on_timer;
  }
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  SleepAwaiter(SleepAwaiter&& o) noexcept
      : Waiter(), TimerNode(), when_(o.when_), yield_(o.yield_) {
    fire = &on_timer;
  }
  SleepAwaiter& operator=(SleepAwaiter&&) = delete;
  ~SleepAwaiter() {
    if (queued()) task_->loop()->remove_timer(this);
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> /*h*/) {
    task_ = tls_task;
    if (!task_->suspend_on(this)) return false;
    if (yield_) {
      task_->wake();  // to the back of the queue; the waiter is cleared again
    } else {
      task_->loop()->add_timer(this, when_);
    }
    return true;
  }
  void await_resume() { tls_task->check_cancel(); }
  bool cancel(TaskCore& task) noexcept override {
    if (queued()) {
      task.loop()->remove_timer(this);
      task.wake();
    }
    return false;
  }

 private:
  static void on_timer(TimerNode* n) noexcept { static_cast<SleepAwaiter*>(n)->task_->wake(); }
  TaskCore* task_ = nullptr;
  std::int64_t when_;
  bool yield_;
};

}  // namespace detail

// sleep(delay): suspends the task for at least `delay` (Python's asyncio.sleep); cancellable.
// sleep(0) (or a negative delay) yields to the other ready tasks once.
template <class Rep, class Period>
detail::SleepAwaiter sleep(std::chrono::duration<Rep, Period> delay) {
  if (delay <= delay.zero()) return detail::SleepAwaiter(0, true);
  return detail::SleepAwaiter(
      detail::to_ns(Clock::now() + std::chrono::ceil<Clock::duration>(delay)), false);
}
// sleep_until(when): until the loop's clock reaches `when`.
inline detail::SleepAwaiter sleep_until(Clock::time_point when) {
  return detail::SleepAwaiter(detail::to_ns(when), false);
}

// ---- awaiting a concur::Future ------------------------------------------------------------------

namespace detail {

// FutureLink: what a future's done-callback and the awaiting task share (the callback may run in
// any thread, after the task gave up waiting).
struct CONCUR_EXPORT FutureLink {
  std::atomic<int> state{0};  // 0 waiting, 1 completed (wake posted), 2 detached (cancelled)
  TaskCore* task = nullptr;
  std::shared_ptr<void> loop_keepalive;  // the loop's cross-thread queue
  LoopCore* loop = nullptr;
  // complete(): the future is done: wake the task on its loop (any thread).
  void complete() noexcept;
};
CONCUR_EXPORT std::shared_ptr<FutureLink> make_future_link(TaskCore& task);

// FutureAwaiter<U>: co_await concur::Future<U> inside a task, without blocking the loop.
// Cancelling the task cancels the future (asyncio.wrap_future's rule) and resumes the task with
// CancelledError at once, whether or not the future could be cancelled.
template <class U>
class FutureAwaiter final : public Waiter {
 public:
  using aio_awaitable = void;
  explicit FutureAwaiter(concur::Future<U> f) noexcept : f_(std::move(f)) {}
  bool await_ready() const { return f_.done(); }
  bool await_suspend(std::coroutine_handle<> /*h*/) {
    TaskCore* me = tls_task;
    link_ = make_future_link(*me);
    if (!me->suspend_on(this)) return false;
    f_.add_done_callback([link = link_](const concur::Future<U>& /*f*/) { link->complete(); });
    return true;
  }
  U await_resume() {
    if (link_) tls_task->check_cancel();
    if constexpr (std::is_void_v<U> || std::copy_constructible<U>) {
      return f_.result();
    } else {
      return std::move(f_).result();
    }
  }
  bool cancel(TaskCore& task) noexcept override {
    int expected = 0;
    if (link_->state.compare_exchange_strong(expected, 2, std::memory_order_acq_rel)) {
      try {
        (void)f_.cancel();
      } catch (...) {
      }
      task.wake();
    }
    return false;
  }

 private:
  concur::Future<U> f_;
  std::shared_ptr<FutureLink> link_;
};

template <class Derived>
template <class U>
auto PromiseBase<Derived>::await_transform(const concur::Future<U>& f) {
  return FutureAwaiter<U>(f);
}
template <class Derived>
template <class U>
auto PromiseBase<Derived>::await_transform(concur::Future<U>&& f) {
  return FutureAwaiter<U>(std::move(f));
}

}  // namespace detail

}  // namespace concur::aio
