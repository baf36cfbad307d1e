// TaskGroup: the children's done-callbacks (Python's _on_task_done) and the exit wait
// (__aexit__), following CPython's asyncio/taskgroups.py semantics.
#include "concur/aio/task_group.hpp"

namespace concur::aio {

TaskGroup::TaskGroup() : parent_(detail::tls_task) {
  if (parent_ == nullptr) throw RuntimeError("TaskGroup must be used inside a task");
}

TaskGroup::~TaskGroup() {
  // Normally every child ended before exit() returned; a frame destroyed early unlinks.
  for (auto& c : children_) {
    if (c->linked) TaskAccess::core(c->task)->remove_done(c.get());
  }
}

void TaskGroup::check_open() const {
  if (finished_) throw RuntimeError("TaskGroup is finished");
  if (aborting_) throw RuntimeError("TaskGroup is shutting down");
}

void TaskGroup::adopt(detail::TaskCore* child) {
  auto node = std::make_unique<Child>();
  node->group = this;
  node->task = TaskAccess::ref(child);
  node->fire = &on_child_done;
  const bool pending = child->add_done(node.get());
  children_.push_back(std::move(node));
  if (pending) {
    ++live_;
  } else {
    on_outcome(*child);
  }
}

void TaskGroup::on_child_done(detail::DoneNode* n, detail::TaskCore& child) noexcept {
  TaskGroup* g = static_cast<Child*>(n)->group;
  --g->live_;
  if (g->live_ == 0) g->waiting_.wake_all();
  g->on_outcome(child);
}

// on_outcome(child): Python's _on_task_done for a child that ended: an error is collected, the
// other children are cancelled, and so is the parent (once).
void TaskGroup::on_outcome(detail::TaskCore& child) noexcept {
  if (child.cancelled() || !child.has_exception()) return;
  try {
    errors_.push_back(child.exception_or_throw());
  } catch (...) {
    errors_.push_back(std::current_exception());
  }
  if (!aborting_) abort();
  if (!parent_cancel_requested_) {
    parent_cancel_requested_ = true;
    try {
      (void)parent_->cancel();
    } catch (...) {
    }
  }
}

void TaskGroup::abort() noexcept {
  aborting_ = true;
  for (auto& c : children_) {
    if (!c->task.done()) {
      try {
        (void)c->task.cancel();
      } catch (...) {
      }
    }
  }
}

Task<void> TaskGroup::exit(std::exception_ptr body_error, bool body_cancelled) {
  exiting_ = true;
  std::exception_ptr propagate_cancel = body_cancelled ? body_error : nullptr;
  if (body_error && !aborting_) abort();
  while (live_ > 0) {
    bool cancelled = false;
    try {
      co_await detail::Park(waiting_, nullptr, "TaskGroup");
    } catch (const CancelledError&) {
      cancelled = true;
      if (!aborting_) propagate_cancel = std::current_exception();
    }
    if (cancelled && !aborting_) abort();
  }
  finished_ = true;
  // Our own cancellation of the parent is withdrawn; when no other request is left, the
  // CancelledError it caused is not propagated (Python 3.12).
  if (parent_cancel_requested_ && parent_->uncancel() == 0) propagate_cancel = nullptr;
  if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);
  if (body_error && !body_cancelled) errors_.push_back(body_error);
  if (!errors_.empty()) throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
}

}  // namespace concur::aio
