// concur/aio/task_group.hpp — TaskGroup, Python 3.11's structured concurrency:
//
//   co_await aio::task_group([&](aio::TaskGroup& tg) -> aio::Task<void> {   // async with
//   TaskGroup()
//     tg.create_task(fetch(a));                                             //   as tg:
//     tg.create_task(fetch(b));
//     co_return;
//   });
//
// The body runs inline in the calling task; task_group() returns once every child ended. The
// first child that raises (anything but CancelledError) cancels the other children and the body
// (if it still runs), and once all ended the errors reach the caller together as a
// concur::ExceptionGroup("unhandled errors in a TaskGroup"). An exception escaping the body
// cancels the children too and joins the group. Cancelling the calling task cancels the children
// and, once they ended, raises CancelledError. create_task() on a group that is shutting down or
// finished throws RuntimeError. Thread-safety: the loop's thread only.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

namespace concur::aio {

class CONCUR_EXPORT TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // create_task(coro, name): schedules coro as a child of the group and returns its handle.
  // RuntimeError once the group is shutting down (a child failed) or finished.
  template <class T>
  ScheduledTask<T> create_task(Task<T> coro, std::string name = {}) {
    check_open();
    ScheduledTask<T> t = aio::create_task(std::move(coro), std::move(name));
    adopt(TaskAccess::core(t));
    return t;
  }
  // size(): the children not finished yet.
  [[nodiscard]] std::size_t size() const noexcept { return live_; }

  class Exit;

 private:
  template <class F>
  friend Task<void> task_group(F body);
  TaskGroup();
  ~TaskGroup();

  struct Child final : detail::DoneNode {
    TaskGroup* group = nullptr;
    TaskRef task;
  };
  void check_open() const;
  void adopt(detail::TaskCore* child);
  static void on_child_done(detail::DoneNode* n, detail::TaskCore& child) noexcept;
  void on_outcome(detail::TaskCore& child) noexcept;
  void abort() noexcept;
  // exit(body_error): Python's __aexit__, awaited by task_group().
  Task<void> exit(std::exception_ptr body_error, bool body_cancelled);

  std::vector<std::unique_ptr<Child>> children_;
  std::vector<std::exception_ptr> errors_;
  detail::TaskCore* parent_;
  detail::LoopBinding binding_;
  detail::WaitList waiting_{binding_};  // exit() parked until the last child ended
  std::size_t live_ = 0;
  bool aborting_ = false;
  bool exiting_ = false;
  bool finished_ = false;
  bool parent_cancel_requested_ = false;
};

// task_group(body): see the header comment. body is called as body(TaskGroup&) and must return
// an aio::Task<void>.
template <class F>
Task<void> task_group(F body) {
  static_assert(
      std::is_same_v<std::invoke_result_t<F&, TaskGroup&>, Task<void>>,
      "task_group(body): body must be callable as body(aio::TaskGroup&) -> aio::Task<void>");
  TaskGroup tg;
  std::exception_ptr body_error;
  bool body_cancelled = false;
  try {
    co_await body(tg);
  } catch (const CancelledError&) {
    body_error = std::current_exception();
    body_cancelled = true;
  } catch (...) {
    body_error = std::current_exception();
  }
  co_await tg.exit(body_error, body_cancelled);
}

}  // namespace concur::aio
