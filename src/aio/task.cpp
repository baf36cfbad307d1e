// Tasks: a task's step (resume its innermost coroutine), cancellation, completion (the done
// list, the loop's reference), the reports of lost exceptions and unawaited coroutines, frame
// recycling, the bridge from concur::Future, run()'s Ctrl-C handling.
#include "concur/aio/task.hpp"

#include <pthread.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

namespace concur::aio {
namespace detail {

// ---- frames: per-thread free lists by size class (16-byte steps up to 1 KiB) ----
// A thread keeps up to kKeepBytes of freed frames, whatever their sizes: a burst of ten thousand
// tasks (a gather, a server's connections) reuses its frames on the next burst instead of going
// through malloc twice per task.

namespace {
constexpr std::size_t kClassBytes = 16;  // malloc's own granularity: no rounding waste
constexpr std::size_t kClasses = 64;
constexpr std::size_t kKeepBytes = std::size_t{8} << 20;

struct FreeFrame {
  FreeFrame* next;
};

struct FrameCache {
  FreeFrame* heads[kClasses] = {};
  std::size_t kept_bytes = 0;
  ~FrameCache() {
    for (std::size_t i = 0; i < kClasses; ++i) {
      while (heads[i] != nullptr) {
        FreeFrame* f = heads[i];
        heads[i] = f->next;
        ::operator delete(static_cast<void*>(f));
      }
    }
  }
};
thread_local FrameCache tls_frames;

std::size_t class_of(std::size_t size) noexcept { return (size + kClassBytes - 1) / kClassBytes; }
}  // namespace

void* allocate_frame(std::size_t size) {
  const std::size_t k = class_of(size);
  if (k < kClasses) {
    FrameCache& cache = tls_frames;
    if (FreeFrame* f = cache.heads[k]) {
      cache.heads[k] = f->next;
      cache.kept_bytes -= k * kClassBytes;
      return f;
    }
    return ::operator new(k* kClassBytes);
  }
  return ::operator new(size);
}

void free_frame(void* p, std::size_t size) noexcept {
  const std::size_t k = class_of(size);
  if (k < kClasses) {
    FrameCache& cache = tls_frames;
    if (cache.kept_bytes + k * kClassBytes <= kKeepBytes) {
      auto* f = static_cast<FreeFrame*>(p);
      f->next = cache.heads[k];
      cache.heads[k] = f;
      cache.kept_bytes += k * kClassBytes;
      return;
    }
  }
  ::operator delete(p);
}

// ---- TaskCore ----

TaskCore::~TaskCore() = default;

std::string TaskCore::name() const {
  if (extra_ && !extra_[0].empty()) return extra_[0];
  if (id_ == 0) return "coroutine";
  return "Task-" + std::to_string(id_);
}

void TaskCore::set_name(std::string name) {
  if (!extra_) extra_ = std::make_unique<std::string[]>(2);
  extra_[0] = std::move(name);
}

void TaskCore::start(LoopCore& loop, std::string name) {
  if (stage_ != Stage::kCreated) {
    throw RuntimeError(stage_ == Stage::kScheduled || (loop_ != nullptr && root_ == this)
                           ? "create_task(): the task is scheduled already"
                           : "create_task(): the coroutine was awaited already");
  }
  loop.check_thread("create_task()");
  loop_ = &loop;
  root_ = this;
  leaf_ = self_;
  stage_ = Stage::kScheduled;
  id_ = loop.next_task_id();
  if (!name.empty()) set_name(std::move(name));
  loop.register_task(this);
  add_ref();  // the loop's reference, until the task is done
  queued_ = true;
  loop.push(this);
}

bool TaskCore::cancel(const std::string& msg) {
  if (done() || !scheduled()) return false;
  ++cancels_;
  if (!msg.empty()) {
    if (!extra_) extra_ = std::make_unique<std::string[]>(2);
    extra_[1] = msg;
  }
  if (waiter_ != nullptr) {
    if (waiter_->cancel(*this)) return true;  // forwarded
    if (waiter_ == nullptr) {
      // The waiter detached itself (wake() cleared waiter_): its wait is cancelled for good.
      waiter_cancelled_ = true;
      return true;
    }
  }
  must_cancel_ = true;
  return true;
}

namespace {
// The CancelledError that throw_cancel() raised last on this thread: on_exception() recognises it
// (the same exception object, rethrown by `throw;` or propagated out of awaited coroutines)
// without a rethrow to learn its type: a cancelled task then costs one throw, not two.
thread_local std::exception_ptr tls_cancel_thrown;
}  // namespace

void TaskCore::throw_cancel() {
  must_cancel_ = false;
  waiter_cancelled_ = false;
  tls_cancel_thrown = std::make_exception_ptr(
      CancelledError(extra_ && !extra_[1].empty() ? extra_[1] : "cancelled"));
  std::rethrow_exception(tls_cancel_thrown);
}

std::exception_ptr TaskCore::exception_or_throw() {
  if (!done()) throw InvalidStateError("Exception is not set.");
  if (stage_ == Stage::kCancelled) {
    retrieved_ = true;
    if (exc_) std::rethrow_exception(exc_);
    throw CancelledError();
  }
  retrieved_ = true;
  return exc_;
}

std::exception_ptr TaskCore::cancelled_error() {
  CONCUR_DCHECK(stage_ == Stage::kCancelled);
  retrieved_ = true;
  return exc_ ? exc_ : std::make_exception_ptr(CancelledError());
}

void TaskCore::rethrow_if_failed() {
  if (!done()) throw InvalidStateError("Result is not set.");
  if (exc_) {
    retrieved_ = true;
    std::rethrow_exception(exc_);
  }
  if (stage_ == Stage::kCancelled) throw CancelledError();
}

void TaskCore::on_exception() noexcept {
  exc_ = std::current_exception();
  bool cancelled = exc_ == tls_cancel_thrown;
  if (!cancelled) {
    try {
      throw;
    } catch (const CancelledError&) {
      cancelled = true;
    } catch (...) {
    }
  }
  if (cancelled) {
    must_cancel_ = false;
    stage_ = Stage::kCancelled;  // provisional: finish() keeps it
  }
}

bool TaskCore::add_done(DoneNode* n) noexcept {
  if (done()) return false;
  n->next = nullptr;
  n->prev = done_tail_;
  if (done_tail_ != nullptr) {
    done_tail_->next = n;
  } else {
    done_head_ = n;
  }
  done_tail_ = n;
  n->linked = true;
  return true;
}

void TaskCore::remove_done(DoneNode* n) noexcept {
  if (!n->linked) return;
  if (n->prev != nullptr) {
    n->prev->next = n->next;
  } else {
    done_head_ = n->next;
  }
  if (n->next != nullptr) {
    n->next->prev = n->prev;
  } else {
    done_tail_ = n->prev;
  }
  n->next = n->prev = nullptr;
  n->linked = false;
}

std::coroutine_handle<> TaskCore::finish() noexcept {
  // on_exception() marked a CancelledError ending as kCancelled.
  stage_ = stage_ == Stage::kCancelled ? Stage::kCancelled : Stage::kFinished;
  if (loop_ == nullptr) {
    // An inline coroutine: its awaiting coroutine continues in the same step.
    root_->leaf_ = continuation_;
    return continuation_;
  }
  loop_->unregister_task(this);
  while (DoneNode* n = done_head_) {
    remove_done(n);
    n->fire(n, *this);
  }
  release();  // the loop's reference; may destroy the frame (we are suspended: allowed)
  return std::noop_coroutine();
}

void TaskCore::run_step(ReadyNode* n) noexcept {
  auto* t = static_cast<TaskCore*>(n);
  t->queued_ = false;
  if (!t->started_) {
    t->started_ = true;
    if (t->must_cancel_) {
      // Cancelled before its first step: the coroutine body never runs (Python's coro.throw on a
      // coroutine that has not started).
      t->must_cancel_ = false;
      try {
        t->throw_cancel();
      } catch (...) {
        t->exc_ = std::current_exception();
      }
      t->stage_ = Stage::kCancelled;
      t->leaf_ = std::coroutine_handle<>();
      (void)t->finish();
      return;
    }
  }
  TaskCore* const previous = tls_task;
  tls_task = t;
  if (t->loop_->debug()) [[unlikely]] {
    const std::string name = t->name();
    LoopCore* const loop = t->loop_;
    const auto start = std::chrono::steady_clock::now();
    t->leaf_.resume();
    const auto took = std::chrono::steady_clock::now() - start;
    loop->report_slow(name, took);
  } else {
    t->leaf_.resume();
  }
  tls_task = previous;
}

void TaskCore::report_unretrieved() noexcept {
  try {
    std::string what;
    try {
      std::rethrow_exception(exc_);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "a non-std exception";
    }
    try {
      std::rethrow_exception(exc_);
    } catch (...) {
      std::throw_with_nested(
          RuntimeError("Task exception was never retrieved: task '" + name() + "': " + what));
    }
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
}

void TaskCore::destroy() noexcept {
  if (stage_ == Stage::kCreated) {
    report_never_awaited();
  } else if (stage_ == Stage::kFinished && exc_ && !retrieved_ && loop_ != nullptr &&
             root_ == this) {
    report_unretrieved();
  }
  self_.destroy();
}

void report_never_awaited() noexcept {
  try {
    throw RuntimeError("coroutine was never awaited (an aio::Task dropped before it ran)");
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
}

// ---- concur::Future bridge ----

std::shared_ptr<FutureLink> make_future_link(TaskCore& task) {
  auto link = std::make_shared<FutureLink>();
  link->task = &task;
  link->loop = task.loop();
  return link;
}

void FutureLink::complete() noexcept {
  int expected = 0;
  if (!state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return;
  if (tls_loop == loop) {
    task->wake();
    return;
  }
  // Another thread: the wake-up travels through the loop's cross-thread queue. The loop outlives
  // this task's wait (close() runs until every task ended, draining this queue meanwhile).
  try {
    (void)loop->post_threadsafe([t = task] { t->wake(); });
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
}

[[noreturn]] void throw_keyboard_interrupt() { throw concur::KeyboardInterrupt(); }

}  // namespace detail
namespace detail {}  // namespace detail

void TaskRef::reset() noexcept {
  if (detail::TaskCore* c = std::exchange(c_, nullptr)) c->release();
}

// ---- Runner: Ctrl-C cancels the main task once; the second one ends the process ----

struct Runner::Sigint {
  std::unique_ptr<boost::asio::signal_set> set;
  detail::TaskCore* main = nullptr;
  bool fired = false;
};

Runner::Runner(RunOptions options) : options_(options) {
  if (detail::tls_loop != nullptr && !detail::tls_loop->made_by_parent()) {
    throw RuntimeError("asyncio.run() cannot be called from a running event loop");
  }
}

Runner::~Runner() {
  try {
    close();
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
}

Loop& Runner::get_loop() {
  if (!loop_) {
    if (closed_) throw RuntimeError("Runner is closed");
    loop_ = std::make_unique<Loop>(LoopOptions{.debug = options_.debug});
  }
  return *loop_;
}

void Runner::begin(detail::TaskCore& main) {
  if (!options_.handle_sigint || getpid() != gettid()) return;
  struct sigaction current {};
  if (sigaction(SIGINT, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) return;
  sigint_ = std::make_unique<Sigint>();
  sigint_->main = &main;
  auto* io = static_cast<boost::asio::io_context*>(loop_->native_handle());
  sigint_->set = std::make_unique<boost::asio::signal_set>(*io, SIGINT);
  Sigint* s = sigint_.get();
  s->set->async_wait([s](const boost::system::error_code& ec, int /*signum*/) {
    if (ec) return;
    s->fired = true;
    // The second Ctrl-C takes SIGINT's default action: the process ends at once.
    boost::system::error_code ignored;
    s->set->remove(SIGINT, ignored);
    if (s->main != nullptr && !s->main->done()) (void)s->main->cancel();
  });
}

bool Runner::end() noexcept {
  if (!sigint_) return false;
  const bool fired = sigint_->fired;
  sigint_->set.reset();  // restores SIGINT's default action
  sigint_.reset();
  return fired;
}

void Runner::close() {
  (void)end();
  closed_ = true;
  if (!loop_) return;
  loop_->close();
  loop_.reset();
}

Loop& TaskRef::get_loop() const {
  detail::LoopCore* l = core().loop();
  if (l == nullptr) throw RuntimeError("the coroutine is not a task: it has no loop");
  return l->owner();
}

TaskRef current_task() noexcept {
  if (detail::tls_task == nullptr) return {};
  return TaskAccess::ref(detail::tls_task);
}

std::vector<TaskRef> all_tasks() {
  detail::LoopCore& loop = detail::running_core();
  std::vector<TaskRef> out;
  out.reserve(loop.task_count());
  for (detail::TaskCore* t = loop.first_task(); t != nullptr; t = t->all_next_) {
    out.push_back(TaskAccess::ref(t));
  }
  return out;
}

}  // namespace concur::aio
