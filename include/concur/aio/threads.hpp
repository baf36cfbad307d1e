// concur/aio/threads.hpp — coroutines and threads together: to_thread(),
// run_coroutine_threadsafe(), LoopGroup (event loops on their own threads, usable as one
// concur::Executor) and run_threads() (one loop per thread, past asyncio's one core).
//
// to_thread(fn, args...) runs fn on the running loop's default ThreadPoolExecutor and returns a
// concur::Future to co_await (asyncio.to_thread). run_coroutine_threadsafe(coro, loop) schedules
// a coroutine on a loop from any other thread and returns a concur::Future of its result;
// cancelling that future cancels the task. LoopGroup(n) starts n loops, each in its own thread;
// submit() spreads calls over them round-robin; its destructor stops the loops (cancelling their
// tasks) and joins the threads. run_threads(n, make_main) runs make_main(i) on n loops at once
// and returns when every one ended (errors: the one, or an ExceptionGroup of several).
// Rules for objects that cross loops: a Task, a stream, an aio lock or queue belongs to the loop
// that created it — touch it from another loop only through call_soon_threadsafe /
// run_coroutine_threadsafe; concur::Future, the thread-level queues and locks are safe anywhere
// (await a Future; never block a loop on a thread-level lock).
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/aio/loop.hpp"
#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"

namespace concur::aio {

// to_thread(fn, args...): asyncio.to_thread — fn(args...) on the running loop's default executor;
// co_await the returned Future (the loop keeps running meanwhile).
template <class F, class... Args>
auto to_thread(F&& fn, Args&&... args) {
  return get_running_loop().run_in_executor(std::forward<F>(fn), std::forward<Args>(args)...);
}

// run_coroutine_threadsafe(coro, loop): from a thread other than the loop's: schedules coro as a
// task on `loop` and returns a concur::Future of its result (or exception). Cancelling the future
// cancels the task. RuntimeError when the loop is closed. If the loop closes before the task ran,
// the future ends with BrokenExecutor.
template <class T>
concur::Future<T> run_coroutine_threadsafe(Task<T> coro, Loop& loop) {
  concur::Promise<T> promise;
  concur::Future<T> future = promise.get_future();
  struct Shared {
    std::mutex mu;
    TaskRef task;                   // guarded by mu (set on the loop's thread)
    bool cancel_requested = false;  // guarded by mu
  };
  auto shared = std::make_shared<Shared>();
  loop.call_soon_threadsafe(
      [coro = std::move(coro), p = std::move(promise), shared, &loop]() mutable {
        Task<T> t = loop.create_task(std::move(coro));
        bool cancel_now = false;
        {
          std::scoped_lock lock(shared->mu);
          shared->task = t;
          cancel_now = shared->cancel_requested;
        }
        if (cancel_now) (void)t.cancel();
        t.add_done_callback([p = std::move(p), shared](const Task<T>& done) mutable {
          {
            std::scoped_lock lock(shared->mu);
            shared->task.reset();  // released on the loop's thread (handles are not atomic)
          }
          try {
            if (done.cancelled()) {
              (void)p.get_future().cancel();
            } else if (std::exception_ptr e = done.exception()) {
              p.set_exception(std::move(e));
            } else if constexpr (std::is_void_v<T>) {
              p.set_result();
            } else if constexpr (std::copy_constructible<T>) {
              p.set_result(done.result());
            } else {
              Task<T> own = done;
              p.set_result(std::move(own).result());
            }
          } catch (const InvalidStateError&) {
            // the future was cancelled meanwhile
          }
        });
      });
  future.add_done_callback([shared, &loop](const concur::Future<T>& f) {
    if (!f.cancelled()) return;
    {
      std::scoped_lock lock(shared->mu);
      shared->cancel_requested = true;
    }
    try {
      // The task handle is touched on its loop's thread only.
      loop.call_soon_threadsafe([shared] {
        std::scoped_lock lock(shared->mu);
        if (shared->task.valid()) (void)shared->task.cancel();
      });
    } catch (const RuntimeError&) {
      // the loop is closed: its tasks ended already
    }
  });
  return future;
}

// LoopGroup: n event loops, each run by its own thread (run_forever), and one concur::Executor
// over them (submit: round-robin; max_workers() == n). loop(i) gives loop i for create_task via
// run_coroutine_threadsafe / call_soon_threadsafe. The destructor is shutdown(true), then stops
// every loop, joins the threads and closes the loops (their pending tasks are cancelled).
class CONCUR_EXPORT LoopGroup final : public concur::Executor {
 public:
  explicit LoopGroup(std::size_t loops = 1, LoopOptions options = {});
  ~LoopGroup() override;
  LoopGroup(const LoopGroup&) = delete;
  LoopGroup& operator=(const LoopGroup&) = delete;

  // loop(i): loop i (ValueError when i >= size()).
  Loop& loop(std::size_t i = 0);
  [[nodiscard]] std::size_t size() const noexcept { return loops_.size(); }
  // shutdown(wait, cancel_futures): Executor::shutdown on every loop; the loops keep running
  // their tasks until the destructor.
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  [[nodiscard]] std::size_t max_workers() const noexcept override { return loops_.size(); }

 protected:
  void execute(concur::detail::RunnablePtr task) override;

 private:
  struct Member;
  std::vector<std::unique_ptr<Member>> loops_;
  std::atomic<std::size_t> next_{0};
};

namespace detail {
CONCUR_EXPORT void run_in_threads(std::size_t n, const std::function<void(std::size_t)>& body);
}  // namespace detail

// run_threads(n, make_main, options): n threads, each runs aio::run(make_main(i), options) on its
// own loop; returns when all ended. One failure is rethrown as is; several come as an
// ExceptionGroup. make_main is called in the loop's thread (what it creates belongs there).
// Servers spread connections over the loops with start_server(..., {.reuse_port = true}).
template <class F>
void run_threads(std::size_t n, F make_main, RunOptions options = {.handle_sigint = false}) {
  static_assert(std::is_invocable_v<F&, std::size_t>,
                "run_threads(n, make_main): make_main must be callable as make_main(index)");
  if (n == 0) throw ValueError("run_threads(n, ...): n must be at least 1");
  detail::run_in_threads(
      n, [&make_main, options](std::size_t i) { (void)run(make_main(i), options); });
}

}  // namespace concur::aio
