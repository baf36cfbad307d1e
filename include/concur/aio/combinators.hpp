// concur/aio/combinators.hpp — asyncio's functions over several tasks: gather, wait,
// as_completed, wait_for, timeout / timeout_at (Python 3.11's scopes), shield.
//
// Coroutines passed in are scheduled as tasks on the running loop at once (Python's
// ensure_future), so they run concurrently whether or not the result is awaited yet.
// gather(a, b, ...) → a tuple of the values (std::monostate for void), gather(vector) → a vector;
// the first exception (or cancellation) of a child propagates at once and the other children go
// on running; with `return_exceptions` every child's Outcome is returned instead. Cancelling a
// gather cancels its unfinished children. wait() splits tasks into done and pending, never
// cancelling; as_completed() yields tasks as they finish; wait_for() and timeout() cancel the work
// at the deadline and raise TimeoutError; shield() protects a task from its awaiter's cancellation.
// Thread-safety: the running loop's thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concur/aio/loop.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"

namespace concur::aio {

// value_of_t<T>: what a Task<T> contributes to gather()'s result (std::monostate for void).
template <class T>
using value_of_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Outcome<T>: one child's ending under return_exceptions: a value or an exception (a cancelled
// child holds a CancelledError).
template <class T>
class Outcome {
 public:
  explicit Outcome(value_of_t<T> v) : v_(std::move(v)) {}
  explicit Outcome(std::exception_ptr e) : v_(std::move(e)) {}
  // has_value(): the child returned.
  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
  // value(): the value, or rethrows the child's exception.
  const value_of_t<T>& value() const {
    if (v_.index() == 1) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(v_);
  }
  // exception(): the exception, nullptr for a value.
  [[nodiscard]] std::exception_ptr exception() const noexcept {
    return v_.index() == 1 ? std::get<1>(v_) : nullptr;
  }

 private:
  std::variant<value_of_t<T>, std::exception_ptr> v_;
};

// ReturnExceptions: pass `return_exceptions` as gather's first argument (Python's keyword).
struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

namespace detail {

// ensure_task(t): a created coroutine is scheduled on the running loop; a task is kept.
template <class T>
Task<T> ensure_task(Task<T> t) {
  TaskCore* c = TaskAccess::core(t);
  if (c == nullptr) throw InvalidStateError("the task handle is empty");
  if (c->stage() == TaskCore::Stage::kCreated) return create_task(std::move(t));
  if (!c->scheduled()) throw RuntimeError("cannot reuse already awaited coroutine");
  return t;
}

// ChildWatch: waits, in the current task, on a set of tasks: woken when `ready(...)` holds. One
// DoneNode per child; the nodes still linked are removed when the watch ends. Cancelling the
// waiting task cancels every unfinished child when `forward` (gather), else detaches (wait).
class CONCUR_EXPORT ChildWatch final : public Waiter {
 public:
  using aio_awaitable = void;
  enum class Until : std::uint8_t { kAll, kFirstCompleted, kFirstException, kFirstError };

  ChildWatch(std::vector<TaskCore*> children, Until until, bool forward_cancel);
  ChildWatch(ChildWatch&& o) noexcept;
  ChildWatch& operator=(ChildWatch&&) = delete;
  ~ChildWatch();

  // arm_timer(when): the watch also ends at `when` (wait(timeout)).
  void arm_timer(std::int64_t when) noexcept {
    timer_when_ = when;
    has_timer_ = true;
  }
  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume();
  bool cancel(TaskCore& task) noexcept override;
  // first_failed(): the child whose exception or cancellation ended a kFirstError watch.
  [[nodiscard]] TaskCore* first_failed() const noexcept { return first_failed_; }

 private:
  struct Node final : DoneNode {
    ChildWatch* owner = nullptr;
    TaskCore* child = nullptr;
  };
  struct Timer final : TimerNode {
    ChildWatch* owner = nullptr;
  };
  static void on_child(DoneNode* n, TaskCore& child) noexcept;
  static void on_timer(TimerNode* n) noexcept;
  [[nodiscard]] bool satisfied() const noexcept;
  void note_first_failure() noexcept;
  void finish_wait() noexcept;
  void end_waiting() noexcept;
  void retrieve_later() noexcept;
  void acquire_nodes();
  void release_nodes() noexcept;
  struct Spare;  // src/aio/combinators.cpp

  std::vector<TaskCore*> children_;
  std::unique_ptr<Node[]> nodes_;
  std::size_t nodes_size_ = 0;
  Timer timer_;
  TaskCore* task_ = nullptr;
  TaskCore* first_failed_ = nullptr;
  std::size_t remaining_ = 0;
  std::int64_t timer_when_ = 0;
  Until until_;
  bool forward_;
  bool forwarded_ = false;
  bool has_timer_ = false;
  bool waiting_ = false;
};

template <class T>
value_of_t<T> take_value(Task<T>& t) {
  if constexpr (std::is_void_v<T>) {
    t.result();
    return {};
  } else if constexpr (std::copy_constructible<T>) {
    return t.result();
  } else {
    return std::move(t).result();
  }
}

template <class T>
Outcome<T> take_outcome(Task<T>& t) {
  if (t.cancelled()) return Outcome<T>(TaskAccess::core(t)->cancelled_error());
  if (std::exception_ptr e = t.exception()) return Outcome<T>(std::move(e));
  return Outcome<T>(take_value(t));
}

// The failing child's error, as gather propagates it (the exception, or CancelledError).
CONCUR_EXPORT void rethrow_child_failure(TaskCore& child);

template <class... T>
Task<std::tuple<value_of_t<T>...>> gather_tuple(Task<T>... tasks) {
  ChildWatch watch({TaskAccess::core(tasks)...}, ChildWatch::Until::kFirstError, true);
  co_await by_ref(watch);  // throws CancelledError once a forwarded cancel ended every child
  if (TaskCore* failed = watch.first_failed()) rethrow_child_failure(*failed);
  co_return std::tuple<value_of_t<T>...>(take_value(tasks)...);
}

template <class... T>
Task<std::tuple<Outcome<T>...>> gather_tuple_outcomes(Task<T>... tasks) {
  ChildWatch watch({TaskAccess::core(tasks)...}, ChildWatch::Until::kAll, true);
  co_await by_ref(watch);
  co_return std::tuple<Outcome<T>...>(take_outcome(tasks)...);
}

std::vector<TaskCore*> cores_of(const std::vector<TaskRef>& tasks);

template <class T>
std::vector<TaskCore*> cores_of(const std::vector<Task<T>>& tasks) {
  std::vector<TaskCore*> out;
  out.reserve(tasks.size());
  for (const auto& t : tasks) out.push_back(TaskAccess::core(t));
  return out;
}

template <class T>
Task<std::vector<value_of_t<T>>> gather_range(std::vector<Task<T>> tasks) {
  ChildWatch watch(cores_of(tasks), ChildWatch::Until::kFirstError, true);
  co_await by_ref(watch);
  if (TaskCore* failed = watch.first_failed()) rethrow_child_failure(*failed);
  std::vector<value_of_t<T>> out;
  out.reserve(tasks.size());
  for (auto& t : tasks) out.push_back(take_value(t));
  co_return out;
}

template <class T>
Task<std::vector<Outcome<T>>> gather_range_outcomes(std::vector<Task<T>> tasks) {
  ChildWatch watch(cores_of(tasks), ChildWatch::Until::kAll, true);
  co_await by_ref(watch);
  std::vector<Outcome<T>> out;
  out.reserve(tasks.size());
  for (auto& t : tasks) out.push_back(take_outcome(t));
  co_return out;
}

}  // namespace detail

// gather(aws...) → Task<tuple<value_of_t<T>...>>: runs the awaitables concurrently (coroutines
// become tasks now) and returns their values in argument order. The first child to raise (or to be
// cancelled) ends the gather with that exception (CancelledError for a cancelled child) while the
// others go on running. Cancelling the gather (or the task awaiting it) cancels every unfinished
// child and then raises CancelledError.
template <class... T>
Task<std::tuple<value_of_t<T>...>> gather(Task<T>... aws) {
  return detail::gather_tuple<T...>(detail::ensure_task(std::move(aws))...);
}
// gather(return_exceptions, aws...) → Task<tuple<Outcome<T>...>>: waits for every child;
// exceptions and cancellations are returned, not raised.
template <class... T>
Task<std::tuple<Outcome<T>...>> gather(ReturnExceptions /*tag*/, Task<T>... aws) {
  return detail::gather_tuple_outcomes<T...>(detail::ensure_task(std::move(aws))...);
}
// gather(vector) / gather(return_exceptions, vector): the range forms (results in input order).
template <class T>
Task<std::vector<value_of_t<T>>> gather(std::vector<Task<T>> aws) {
  for (auto& t : aws) t = detail::ensure_task(std::move(t));
  return detail::gather_range<T>(std::move(aws));
}
template <class T>
Task<std::vector<Outcome<T>>> gather(ReturnExceptions /*tag*/, std::vector<Task<T>> aws) {
  for (auto& t : aws) t = detail::ensure_task(std::move(t));
  return detail::gather_range_outcomes<T>(std::move(aws));
}

// ReturnWhen for wait(): asyncio.FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED.
enum class ReturnWhen : std::uint8_t { kFirstCompleted, kFirstException, kAllCompleted };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::kFirstCompleted;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::kFirstException;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::kAllCompleted;

// DonePending<T>: wait()'s result (Python's (done, pending)), each in input order.
template <class T>
struct DonePending {
  std::vector<Task<T>> done;
  std::vector<Task<T>> pending;
};

namespace detail {
template <class T>
Task<DonePending<T>> wait_impl(std::vector<Task<T>> tasks, std::optional<std::int64_t> deadline,
                               ReturnWhen when) {
  const auto until = when == ReturnWhen::kFirstCompleted   ? ChildWatch::Until::kFirstCompleted
                     : when == ReturnWhen::kFirstException ? ChildWatch::Until::kFirstException
                                                           : ChildWatch::Until::kAll;
  ChildWatch watch(cores_of(tasks), until, false);
  if (deadline) watch.arm_timer(*deadline);
  co_await by_ref(watch);
  DonePending<T> out;
  for (auto& t : tasks) (t.done() ? out.done : out.pending).push_back(std::move(t));
  co_return out;
}
template <class T>
std::vector<Task<T>> ensure_all(std::vector<Task<T>> tasks) {
  if (tasks.empty()) throw ValueError("Set of Tasks/Futures is empty.");
  for (auto& t : tasks) t = ensure_task(std::move(t));
  return tasks;
}
}  // namespace detail

// wait(tasks, return_when) / wait(tasks, timeout, return_when): asyncio.wait: suspends until
// return_when holds or the timeout passed, then returns {done, pending}. Never cancels and never
// raises the tasks' exceptions. ValueError for an empty vector.
template <class T>
Task<DonePending<T>> wait(std::vector<Task<T>> tasks, ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_impl<T>(detail::ensure_all(std::move(tasks)), std::nullopt, return_when);
}
template <class T, class Rep, class Period>
Task<DonePending<T>> wait(std::vector<Task<T>> tasks, std::chrono::duration<Rep, Period> timeout,
                          ReturnWhen return_when = ALL_COMPLETED) {
  const auto deadline = detail::to_ns(Clock::now() + std::chrono::ceil<Clock::duration>(timeout));
  return detail::wait_impl<T>(detail::ensure_all(std::move(tasks)), deadline, return_when);
}

// AsCompleted<T> is as_completed()'s result: `co_await ac.next()` returns the next task to finish
// (already-finished ones first, in input order), raising TimeoutError once the timeout (counted
// from as_completed()) passed with none left finished. size() tasks in all; remaining() not yet
// returned. Not movable (the tasks' done-lists point at it); destroying it unregisters.
template <class T>
class AsCompleted {
 public:
  AsCompleted(std::vector<Task<T>> tasks, std::optional<std::int64_t> deadline);
  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;
  ~AsCompleted() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].linked) TaskAccess::core(tasks_[i])->remove_done(&nodes_[i]);
    }
  }
  [[nodiscard]] std::size_t size() const noexcept { return tasks_.size(); }
  [[nodiscard]] std::size_t remaining() const noexcept { return tasks_.size() - yielded_; }

  class Next;
  // next(): the awaitable for the next finished task (InvalidStateError past the end).
  Next next() {
    if (yielded_ == tasks_.size()) throw InvalidStateError("as_completed: no more tasks");
    return Next(*this);
  }

 private:
  struct Node final : detail::DoneNode {
    AsCompleted* owner = nullptr;
    std::size_t index = 0;
  };
  static void on_done(detail::DoneNode* n, detail::TaskCore& /*t*/) noexcept {
    auto* node = static_cast<Node*>(n);
    AsCompleted* self = node->owner;
    self->ready_.push_back(node->index);
    if (self->waiter_ != nullptr) self->waiter_->wake_up();
  }

  std::vector<Task<T>> tasks_;
  std::vector<Node> nodes_;
  std::deque<std::size_t> ready_;
  std::optional<std::int64_t> deadline_;
  std::size_t yielded_ = 0;
  Next* waiter_ = nullptr;
};

template <class T>
class AsCompleted<T>::Next final : public detail::Waiter, private detail::TimerNode {
 public:
  using aio_awaitable = void;
  explicit Next(AsCompleted& ac) noexcept : ac_(&ac) { fire = &on_timer; }
  Next(Next&& o) noexcept : Waiter(), TimerNode(), ac_(o.ac_) { fire = &on_timer; }
  Next& operator=(Next&&) = delete;
  ~Next() {
    if (queued()) task_->loop()->remove_timer(this);
    if (ac_->waiter_ == this) ac_->waiter_ = nullptr;
  }
  bool await_ready() const noexcept { return !ac_->ready_.empty(); }
  bool await_suspend(std::coroutine_handle<> /*h*/) {
    task_ = detail::tls_task;
    if (ac_->deadline_ && *ac_->deadline_ <= detail::to_ns(Clock::now())) {
      timed_out_ = true;
      return false;
    }
    if (!task_->suspend_on(this)) return false;
    ac_->waiter_ = this;
    if (ac_->deadline_) task_->loop()->add_timer(this, *ac_->deadline_);
    return true;
  }
  Task<T> await_resume() {
    if (task_ != nullptr) detail::tls_task->check_cancel();
    if (ac_->ready_.empty()) {
      throw TimeoutError("as_completed: " + std::to_string(ac_->remaining()) + " (of " +
                         std::to_string(ac_->size()) + ") tasks unfinished");
    }
    const std::size_t i = ac_->ready_.front();
    ac_->ready_.pop_front();
    ++ac_->yielded_;
    return std::move(ac_->tasks_[i]);
  }
  bool cancel(detail::TaskCore& task) noexcept override {
    if (ac_->waiter_ == this) {
      ac_->waiter_ = nullptr;
      if (queued()) task.loop()->remove_timer(this);
      task.wake();
    }
    return false;
  }
  void wake_up() noexcept {
    ac_->waiter_ = nullptr;
    if (queued()) task_->loop()->remove_timer(this);
    task_->wake();
  }

 private:
  static void on_timer(detail::TimerNode* n) noexcept {
    auto* self = static_cast<Next*>(n);
    self->ac_->waiter_ = nullptr;
    self->timed_out_ = true;
    self->task_->wake();
  }
  AsCompleted* ac_;
  detail::TaskCore* task_ = nullptr;
  bool timed_out_ = false;
};

template <class T>
AsCompleted<T>::AsCompleted(std::vector<Task<T>> tasks, std::optional<std::int64_t> deadline)
    : tasks_(std::move(tasks)), nodes_(tasks_.size()), deadline_(deadline) {
  for (auto& t : tasks_) t = detail::ensure_task(std::move(t));
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    nodes_[i].owner = this;
    nodes_[i].index = i;
    nodes_[i].fire = &on_done;
    if (!TaskAccess::core(tasks_[i])->add_done(&nodes_[i])) ready_.push_back(i);
  }
}

// as_completed(tasks) / as_completed(tasks, timeout): see AsCompleted.
template <class T>
AsCompleted<T> as_completed(std::vector<Task<T>> tasks) {
  return AsCompleted<T>(std::move(tasks), std::nullopt);
}
template <class T, class Rep, class Period>
AsCompleted<T> as_completed(std::vector<Task<T>> tasks,
                            std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<T>(std::move(tasks),
                        detail::to_ns(Clock::now() + std::chrono::ceil<Clock::duration>(timeout)));
}

// ---- timeouts ---------------------------------------------------------------------------------

namespace detail {

// TimeoutScope: Python 3.11's asyncio.Timeout around one awaited body in the current task: at
// the deadline the task is cancelled; on the way out a CancelledError that the deadline caused
// (and that uncancel() brings back to the count at entry) becomes TimeoutError.
class CONCUR_EXPORT TimeoutScope {
 public:
  explicit TimeoutScope(Clock::time_point when);
  ~TimeoutScope();
  TimeoutScope(const TimeoutScope&) = delete;
  TimeoutScope& operator=(const TimeoutScope&) = delete;
  // on_cancelled(): in the handler of the body's CancelledError: throws TimeoutError when it was
  // ours (the caller rethrows the CancelledError otherwise).
  void on_cancelled();
  // disarm(): the body ended; the deadline no longer fires.
  void disarm() noexcept;
  [[nodiscard]] bool expired() const noexcept { return expired_; }

 private:
  struct Timer final : TimerNode {
    TimeoutScope* owner = nullptr;
  };
  static void on_timer(TimerNode* n) noexcept;
  Timer timer_;
  TaskCore* task_;
  int cancelling_at_entry_;
  bool expired_ = false;
};

template <class T>
Task<T> timeout_impl(Clock::time_point when, Task<T> body) {
  TimeoutScope scope(when);
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(body);
      scope.disarm();
      co_return;
    } else {
      T v = co_await std::move(body);
      scope.disarm();
      co_return v;
    }
  } catch (const CancelledError&) {
    scope.disarm();
    scope.on_cancelled();
    throw;
  }
}

}  // namespace detail

// timeout_at(when, aw): awaits `aw` (a coroutine runs inline, in this task) and cancels it when
// the loop's clock reaches `when`; a cancellation caused by the deadline comes out as
// TimeoutError (Python 3.11's `async with asyncio.timeout_at(when):`); one from elsewhere stays a
// CancelledError. An awaited scheduled task is cancelled with it.
template <class T>
Task<T> timeout_at(Clock::time_point when, Task<T> aw) {
  return detail::timeout_impl<T>(when, std::move(aw));
}
// timeout(delay, aw): the same with a delay from now (`async with asyncio.timeout(delay):`).
template <class T, class Rep, class Period>
Task<T> timeout(std::chrono::duration<Rep, Period> delay, Task<T> aw) {
  return detail::timeout_impl<T>(Clock::now() + std::chrono::ceil<Clock::duration>(delay),
                                 std::move(aw));
}

// wait_for(aw, timeout): asyncio.wait_for (3.12): runs aw as a task, cancels it at the deadline
// and waits for it to end, then raises TimeoutError; cancelling the caller cancels aw. A zero or
// negative timeout gives a task that is already done its result, else cancels it at once.
namespace detail {
template <class T>
Task<T> wait_for_expired(Task<T> task) {
  if (!task.done()) {
    (void)task.cancel();
    std::vector<Task<T>> one;  // (g++ 12: no braced list inside a coroutine's co_await)
    one.push_back(task);
    (void)co_await wait_impl<T>(std::move(one), std::nullopt, ALL_COMPLETED);
  }
  if (task.cancelled()) throw TimeoutError();
  if constexpr (std::is_void_v<T>) {
    task.result();
  } else {
    co_return take_value(task);
  }
}
}  // namespace detail

template <class T, class Rep, class Period>
Task<T> wait_for(Task<T> aw, std::chrono::duration<Rep, Period> timeout) {
  Task<T> task = detail::ensure_task(std::move(aw));
  if (timeout <= timeout.zero()) return detail::wait_for_expired<T>(std::move(task));
  return detail::timeout_impl<T>(Clock::now() + std::chrono::ceil<Clock::duration>(timeout),
                                 std::move(task));
}

// ---- shield -----------------------------------------------------------------------------------

namespace detail {
// ShieldAwaiter: awaits a task without forwarding the awaiting task's cancellation to it.
template <class T>
class ShieldAwaiter final : public Waiter, private DoneNode {
 public:
  using aio_awaitable = void;
  explicit ShieldAwaiter(Task<T> t) noexcept : task_(std::move(t)) {}
  ShieldAwaiter(ShieldAwaiter&& o) noexcept : Waiter(), DoneNode(), task_(std::move(o.task_)) {}
  ShieldAwaiter& operator=(ShieldAwaiter&&) = delete;
  ~ShieldAwaiter() {
    if (linked) TaskAccess::core(task_)->remove_done(this);
  }
  bool await_ready() const noexcept { return task_.done(); }
  bool await_suspend(std::coroutine_handle<> /*h*/) {
    me_ = tls_task;
    if (!me_->suspend_on(this)) return false;
    fire = &on_done;
    TaskAccess::core(task_)->add_done(this);
    return true;
  }
  T await_resume() {
    if (me_ != nullptr) tls_task->check_cancel();
    if constexpr (std::is_void_v<T> || std::copy_constructible<T>) {
      return task_.result();
    } else {
      return std::move(task_).result();
    }
  }
  bool cancel(TaskCore& task) noexcept override {
    TaskAccess::core(task_)->remove_done(this);
    task.wake();
    return false;
  }

 private:
  static void on_done(DoneNode* n, TaskCore& /*t*/) noexcept {
    static_cast<ShieldAwaiter*>(n)->me_->wake();
  }
  Task<T> task_;
  TaskCore* me_ = nullptr;
};

template <class T>
Task<T> shield_impl(Task<T> inner) {
  co_return co_await ShieldAwaiter<T>(std::move(inner));
}
}  // namespace detail

// shield(aw): asyncio.shield: awaits aw (scheduled as a task) but cancelling the awaiting task
// does not cancel aw — the awaiter gets CancelledError, aw goes on running. Cancelling aw itself
// still cancels it.
template <class T>
Task<T> shield(Task<T> aw) {
  return detail::shield_impl<T>(detail::ensure_task(std::move(aw)));
}

}  // namespace concur::aio
