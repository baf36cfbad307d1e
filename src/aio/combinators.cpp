// The waits behind gather / wait (ChildWatch) and the deadline behind timeout / wait_for
// (TimeoutScope).
#include "concur/aio/combinators.hpp"

namespace concur::aio::detail {

namespace {
bool failed(const TaskCore& t) noexcept { return t.cancelled() || t.has_exception(); }

// RetrieveOnDone: after gather raised its first error, the later children's exceptions are
// marked retrieved as they end (Python's gather does the same), so they are not reported.
struct RetrieveOnDone final : DoneNode {
  static void on_done(DoneNode* n, TaskCore& t) noexcept {
    t.mark_retrieved();
    delete static_cast<RetrieveOnDone*>(n);
  }
};
}  // namespace

ChildWatch::ChildWatch(std::vector<TaskCore*> children, Until until, bool forward_cancel)
    : children_(std::move(children)), until_(until), forward_(forward_cancel) {
  timer_.owner = this;
  timer_.fire = &on_timer;
}

ChildWatch::ChildWatch(ChildWatch&& o) noexcept
    : Waiter(),
      children_(std::move(o.children_)),
      timer_when_(o.timer_when_),
      until_(o.until_),
      forward_(o.forward_),
      has_timer_(o.has_timer_) {
  timer_.owner = this;
  timer_.fire = &on_timer;
}

ChildWatch::~ChildWatch() {
  end_waiting();
  release_nodes();
}

// ChildWatch::Spare: one spare node array per thread. The next wait on as many children or fewer
// reuses it: a gather of 10,000 tasks would otherwise allocate, and fault in, half a megabyte
// each time. Arrays of more than kMax nodes are not kept. A watch destroyed after the thread's
// spare (a static loop closed at exit) frees its array.
struct ChildWatch::Spare {
  static constexpr std::size_t kMax = 16 * 1024;
  std::unique_ptr<Node[]> nodes;
  std::size_t size = 0;
  Spare() = default;
  Spare(const Spare&) = delete;
  Spare& operator=(const Spare&) = delete;
  ~Spare() { gone = true; }
  static inline thread_local bool gone = false;
  static Spare* of_thread() noexcept {
    if (gone) return nullptr;
    thread_local Spare spare;
    return &spare;
  }
};

void ChildWatch::acquire_nodes() {
  if (nodes_ != nullptr && nodes_size_ >= children_.size()) return;
  Spare* spare = Spare::of_thread();
  if (spare != nullptr && spare->nodes != nullptr && spare->size >= children_.size()) {
    nodes_ = std::move(spare->nodes);
    nodes_size_ = spare->size;
    spare->size = 0;
  } else {
    nodes_ = std::make_unique<Node[]>(children_.size());
    nodes_size_ = children_.size();
  }
}

// release_nodes(): the array (every node unlinked) becomes the thread's spare if it is larger.
void ChildWatch::release_nodes() noexcept {
  if (nodes_ == nullptr) return;
  Spare* spare = Spare::of_thread();
  if (spare != nullptr && nodes_size_ <= Spare::kMax && nodes_size_ > spare->size) {
    spare->nodes = std::move(nodes_);
    spare->size = nodes_size_;
  }
  nodes_.reset();
  nodes_size_ = 0;
}

bool ChildWatch::satisfied() const noexcept {
  std::size_t done = 0;
  for (TaskCore* c : children_) {
    if (!c->done()) continue;
    ++done;
    switch (until_) {
      case Until::kFirstCompleted:
        return true;
      case Until::kFirstException:
        if (!c->cancelled() && c->has_exception()) return true;
        break;
      case Until::kFirstError:
        if (failed(*c)) return true;
        break;
      case Until::kAll:
        break;
    }
  }
  return done == children_.size();
}

bool ChildWatch::await_ready() noexcept {
  if (!satisfied()) return false;
  if (until_ == Until::kFirstError) note_first_failure();
  return true;
}

void ChildWatch::note_first_failure() noexcept {
  for (TaskCore* c : children_) {
    if (c->done() && failed(*c)) {
      first_failed_ = c;
      break;
    }
  }
  if (first_failed_ != nullptr) retrieve_later();
}

bool ChildWatch::await_suspend(std::coroutine_handle<> /*h*/) {
  task_ = tls_task;
  if (!task_->suspend_on(this)) return false;
  acquire_nodes();
  remaining_ = 0;
  for (std::size_t i = 0; i < children_.size(); ++i) {
    Node& n = nodes_[i];
    n.linked = false;
    n.owner = this;
    n.child = children_[i];
    n.fire = &on_child;
    if (children_[i]->add_done(&n)) ++remaining_;
  }
  if (has_timer_) task_->loop()->add_timer(&timer_, timer_when_);
  waiting_ = true;
  return true;
}

void ChildWatch::await_resume() {
  if (task_ != nullptr) tls_task->check_cancel();
  if (forwarded_) throw CancelledError();
}

void ChildWatch::on_child(DoneNode* n, TaskCore& child) noexcept {
  ChildWatch* self = static_cast<Node*>(n)->owner;
  --self->remaining_;
  bool end = self->remaining_ == 0;
  if (!self->forwarded_) {
    switch (self->until_) {
      case Until::kFirstCompleted:
        end = true;
        break;
      case Until::kFirstException:
        end = end || (!child.cancelled() && child.has_exception());
        break;
      case Until::kFirstError:
        if (failed(child)) {
          self->first_failed_ = &child;
          end = true;
        }
        break;
      case Until::kAll:
        break;
    }
  }
  if (end) self->finish_wait();
}

void ChildWatch::on_timer(TimerNode* n) noexcept {
  ChildWatch* self = static_cast<Timer*>(n)->owner;
  self->finish_wait();
}

void ChildWatch::finish_wait() noexcept {
  end_waiting();
  if (first_failed_ != nullptr) retrieve_later();
  task_->wake();
}

void ChildWatch::end_waiting() noexcept {
  if (!waiting_) return;
  waiting_ = false;
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (nodes_[i].linked) children_[i]->remove_done(&nodes_[i]);
  }
  if (timer_.queued()) task_->loop()->remove_timer(&timer_);
}

void ChildWatch::retrieve_later() noexcept {
  for (TaskCore* c : children_) {
    if (c == first_failed_) continue;
    if (c->done()) {
      c->mark_retrieved();
      continue;
    }
    auto* r = new (std::nothrow) RetrieveOnDone();
    if (r == nullptr) continue;
    r->fire = &RetrieveOnDone::on_done;
    if (!c->add_done(r)) delete r;
  }
}

bool ChildWatch::cancel(TaskCore& task) noexcept {
  if (forward_) {
    for (TaskCore* c : children_) {
      try {
        if (!c->done() && c->cancel()) forwarded_ = true;
      } catch (...) {
      }
    }
    if (forwarded_) return true;  // the children's ends wake us; await_resume raises
  }
  end_waiting();
  task.wake();
  return false;
}

void rethrow_child_failure(TaskCore& child) {
  if (child.cancelled()) {
    child.mark_retrieved();
    throw CancelledError();
  }
  child.rethrow_if_failed();
}

std::vector<TaskCore*> cores_of(const std::vector<TaskRef>& tasks) {
  std::vector<TaskCore*> out;
  out.reserve(tasks.size());
  for (const auto& t : tasks) out.push_back(TaskAccess::core(t));
  return out;
}

// ---- TimeoutScope ----

TimeoutScope::TimeoutScope(Clock::time_point when) : task_(tls_task) {
  if (task_ == nullptr) throw RuntimeError("Timeout should be used inside a task");
  cancelling_at_entry_ = task_->cancelling();
  timer_.owner = this;
  timer_.fire = &on_timer;
  task_->loop()->add_timer(&timer_, to_ns(when));
}

TimeoutScope::~TimeoutScope() { disarm(); }

void TimeoutScope::disarm() noexcept {
  if (timer_.queued()) task_->loop()->remove_timer(&timer_);
}

void TimeoutScope::on_timer(TimerNode* n) noexcept {
  TimeoutScope* self = static_cast<Timer*>(n)->owner;
  self->expired_ = true;
  try {
    (void)self->task_->cancel();
  } catch (...) {
  }
}

void TimeoutScope::on_cancelled() {
  if (expired_ && task_->uncancel() <= cancelling_at_entry_) throw TimeoutError();
}

}  // namespace concur::aio::detail
