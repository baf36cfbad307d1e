// concur/thread_pool.hpp — ThreadPoolExecutor, concurrent.futures.ThreadPoolExecutor on a
// work-stealing pool.
//
// ThreadPoolExecutor pool(Options{.max_workers = 4}); auto f = pool.submit(fn, args...);
// Workers start lazily, one per submit that finds no idle worker, up to max_workers (default
// min(32, cores + 4), Python's), named "<thread_name_prefix>_<i>" (default prefix
// "ThreadPoolExecutor-<n>"). Each runs the initializer first; if it throws, the pool is broken:
// every pending task and every later submit fails with BrokenThreadPool.
//
// Scheduling: every worker owns a work-stealing deque. A task submitted from inside a worker goes
// to that worker's deque and runs newest-first there (fork-join order); idle workers steal the
// oldest from the others. Tasks submitted from other threads go to one lock-free FIFO injection
// queue; workers move them in batches to per-worker inboxes that everyone takes from oldest first,
// so they start in submission order, as in Python. An idle worker searches for
// work for a few microseconds (yielding the CPU), then sleeps on a futex: an idle pool uses no
// CPU, and a submit wakes a sleeper only when no worker is searching already.
//
// Helping, only on the pool's own futures: a blocking wait (result(), exception(), wait(),
// as_completed(), concur::wait) inside a worker of this pool on a future that a task of this same
// pool finishes — a task submitted to it, a then() continuation of one, then(pool, fn), an eager
// map's results, as_completed()/wait() over some of these — runs the pool's queued and stolen
// tasks until the future is done (the awaited task among them), so recursive fork-join (a task
// that submits subtasks and waits for them) completes on any number of workers, where Python's
// pool can deadlock. Every other future (a Promise fed by I/O, aio::run_coroutine_threadsafe's, a
// ProcessPoolExecutor's or another pool's) blocks the worker like a plain thread: nothing else
// runs on it meanwhile, so max_workers stays a true bound on the tasks running at once, as in
// Python. A wait that can never end — a task waiting on its own future, or tasks waiting on each
// other around a cycle of workers (the notes' wait_on_a / wait_on_b) — throws DeadlockError from
// the wait, naming the workers involved, instead of hanging.
//
// map(): an eager map runs as one range task per worker that steal inputs from each other (see
// executor.hpp); the tasks ask the pool before each input, so shutdown(cancel_futures) and a broken
// pool reach the inputs not started as they reach queued tasks.
//
// shutdown(wait, cancel_futures): later submits throw RuntimeError; cancel_futures cancels the
// tasks queued from outside at once and those in worker deques as workers reach them; wait joins
// every worker (a worker calling it skips itself). Idempotent, from any thread. The destructor is
// shutdown(true); destroying the pool from one of its own tasks is allowed (the worker finishes
// later, on its own). An exception escaping a task always reaches its future (and the excepthook
// if the future was dropped unobserved).
//
// After fork() (a raw fork, or a task of a fork-started process that uses a pool its parent made),
// the child's copy of a pool has none of its parent's workers: its first use there gives it a
// pool of its own — same options, no tasks (the parent's queued tasks stay the parent's, and
// their futures' copies never complete; a shut-down or broken pool stays so) — instead of
// queueing work that nothing runs. Destroying a copy never used in the child leaves the parent's
// part alone. A task that forks: in the child its waits do not run the parent's queued tasks, an
// eager map's range takes no more inputs, and its worker ends when the task returns (the child's
// last thread, it ends the child with exit(0)). Python's copied pool hangs.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "concur/detail/config.hpp"
#include "concur/executor.hpp"

namespace concur {

namespace detail {
class PoolCore;
}  // namespace detail

// ThreadPoolOptions: ThreadPoolExecutor's constructor arguments (designated initializers work).
struct ThreadPoolOptions {
  // max_workers: 0 means min(32, cores + 4).
  std::size_t max_workers = 0;
  // thread_name_prefix: "" means "ThreadPoolExecutor-<n>", n counting pools.
  std::string thread_name_prefix{};
  // initializer: run by each worker before its first task (Python's initializer + initargs).
  std::function<void()> initializer{};
  // min_workers (beyond Python): workers started with the pool, before any submit; they wait for
  // work, and count as idle from the start (a burst submitted while their threads still start, or
  // run the initializer, waits for them rather than starting more; a submit counts a worker that
  // is looking for work at that moment as busy, so a burst may start one more per such worker —
  // never fewer than its tasks need). Beyond them workers start on demand, as in Python (a submit
  // starts one unless an idle worker can take its task). A server sizes it to its burst, so that
  // no submit on its event loop pays for starting threads (~0.1 ms each on the VMs measured).
  // Above max_workers (after max_workers' default is applied): ValueError.
  std::size_t min_workers = 0;
};

class CONCUR_EXPORT ThreadPoolExecutor final : public Executor {
 public:
  using Options = ThreadPoolOptions;

  ThreadPoolExecutor();
  // ThreadPoolExecutor(max_workers): throws ValueError for 0 ("max_workers must be greater than
  // 0", as Python) and above 4096 (what a negative count becomes as a size_t).
  explicit ThreadPoolExecutor(std::size_t max_workers);
  explicit ThreadPoolExecutor(Options options);
  ~ThreadPoolExecutor() override;

  void shutdown(bool wait = true, bool cancel_futures = false) override;
  [[nodiscard]] std::size_t max_workers() const noexcept override;

  // Stats: a snapshot. queued: submitted and not started; running: started and not finished;
  // completed: finished (including cancelled-before-start tasks the pool dropped). An eager map
  // counts its range tasks, not its inputs (see executor.hpp).
  struct Stats {
    std::size_t workers = 0;
    std::uint64_t queued = 0;
    std::uint64_t running = 0;
    std::uint64_t completed = 0;
  };
  [[nodiscard]] Stats stats() const noexcept;

 protected:
  void execute(detail::RunnablePtr task) override;
  // bulk_gate(): the pool's tasks run in this process: an eager map runs as range tasks.
  [[nodiscard]] std::shared_ptr<const detail::BulkGate> bulk_gate() const override;

 private:
  // core(): this process's core — in a child forked since core_ was made, a new one (see above).
  detail::PoolCore& core() const;
  detail::PoolCore& adopt_after_fork(bool start) const;

  // core_ changes only in a forked child, once, under a lock; made_in_ is then stored (release)
  // after it, and every use reads made_in_ (acquire) first.
  mutable std::shared_ptr<detail::PoolCore> core_;
  mutable std::atomic<pid_t> made_in_;  // the process core_ belongs to
};

}  // namespace concur
