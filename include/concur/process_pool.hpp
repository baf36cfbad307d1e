// concur/process_pool.hpp — ProcessPoolExecutor, concurrent.futures.ProcessPoolExecutor on
// worker processes that never hang the pool.
//
//   ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
//   Future<bool> f = pool.submit(is_prime, 112272535095293);   // is_prime: CONCUR_TASK
//
// Tasks are registered functions (concur/mp/task.hpp) with serializable arguments and results;
// submit() serializes the arguments at once (PicklingError there), and a parameter or result type
// that cannot be serialized is a compile error. Workers are mp::Processes (the default start
// method: forkserver), started on the first submit, each with its own shared-memory mailbox (a
// request ring and a reply ring, futex wake-ups; its death seen through its pidfd) to the pool's
// dispatcher thread, which keeps a few tasks in each worker's ring (two, or while the backlog is
// long a quarter of the worker's share of it, at most 64: those count as running and are no longer
// cancellable) and the rest in submission order. A thread blocked on the future of a running task
// reads its worker's reply itself when no other thread does (one hand-off fewer; no system call
// when both it and the worker are awake). A task's
// exception reaches its future as RemoteError (type name, message, where it was raised); the
// worker always answers.
// Handles among the arguments (a Pipe() end, an mp::Queue, Lock, Value, a Manager proxy) travel as
// their descriptors: the pool holds a duplicate until the task is its worker's next, then the
// task holds them alone; an initializer's handles reach every worker the pool starts.
// Large arguments and results are never copied in user space: arguments whose serialized form
// outgrows ProcessPoolExecutor::kFileThreshold (1 MiB) are serialized straight into a sealed
// memfd, which the worker receives as a descriptor and reads with pread; the pool keeps that file
// (not a heap copy) to send the task again if its worker dies before running it, and lets go of
// it once the task runs (the worker closes its own as soon as it has read it). A large result
// comes back the same way and is loaded straight from the worker's file. A 200 MB round trip
// therefore peaks at the argument plus the result in the parent's RSS (docs/benchmarks.md); the
// file of the moment (the argument's, then the result's) is kernel memory. Note that
// f.result() returns a copy for a copyable result type: take a large result with
// std::move(f).result(), which moves it out of the future's only handle.
// A worker that dies (signal, abort, exit, out of memory) fails exactly the task it was running
// with BrokenProcessPool, naming the exit code (a task it was sent but had not read yet goes back
// to the pool: it never ran — unless its big argument's file was already let go, or the worker
// never replied to anything (it died starting: its initializer exits or crashes), and then it
// fails); the task queued behind it goes back to the pool,
// a new worker replaces the dead one, and the pool carries on. With Options{.break_on_worker_death
// = true} (Python's behaviour) the first death breaks the pool instead: every pending future and
// every later submit fail with BrokenProcessPool. No future stays pending because a worker died.
// A fork server that dies (forkserver start method; e.g. killed) costs nothing but the worker
// start it was serving, which is retried: the next start respawns the server, and the workers it
// had forked go on. Only a worker start that fails twice in a row breaks the pool.
// max_tasks_per_child replaces a worker after that many tasks (Python 3.11).
// shutdown(wait, cancel_futures): later submits throw RuntimeError; cancel_futures cancels what has
// not been sent to a worker; the workers exit when the work is done; wait joins them. The
// destructor is shutdown(true). Beyond Python: shutdown(timeout) kills what still runs at the
// deadline, and with Options{.kill_running = true} future.cancel() stops a running task (its
// worker is killed and replaced; the other tasks are untouched).
// Ctrl-C: workers ignore SIGINT, and every worker has a watchdog thread that ends it as soon as the
// pool's process is gone — so Ctrl-C (SIGINT's default action) ends the program on the first
// press and takes the workers with it, whether it reached the whole process group (a terminal)
// or the parent alone; so do a crash and kill -9 of the parent. A program that handles SIGINT
// itself decides: e.g. shutdown(false, true) then terminate_workers(), or shutdown(timeout).
// Through the Executor interface, submit(fn, args...) of an arbitrary callable and map() cannot
// cross a process boundary: they throw UsageError (use this class's submit with a registered
// task).
// After fork(): a pool the parent never used is the child's own from its first submit (new epoll
// instance and wake pipe); the copy of a pool the parent used refuses submit (InvalidStateError),
// and its shutdown, cancel and destructor touch nothing — its dispatcher and workers are the
// parent's (make such a pool in the process that uses it).
// Thread-safety: every member may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/chunked_map.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"
#include "concur/mp/connection.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/serialize.hpp"
#include "concur/mp/task.hpp"

namespace concur {

// Initializer: a process pool's initializer with its arguments (Python's initializer and
// initargs), run by each worker before its first task:
//   ProcessPoolOptions{.initializer = init_worker}             // initializer=init_worker
//   ProcessPoolOptions{.initializer = {set_level, 3, "db"}}    // initargs=(3, "db")
// The function must be registered (CONCUR_TASK), its parameters serializable (a compile error
// otherwise); the arguments are serialized here (PicklingError). Handles (an mp::Queue, a Lock, a
// Value, a Connection end, a Manager proxy) may be initargs, as in Python's
// `Pool(initializer=init, initargs=(q,))`: the pool keeps a duplicate of their descriptors and
// gives one to every worker it starts — but for a Manager proxy, whose connection to the server
// is made anew for each worker (as Python unpickles the initargs in each worker, connecting it).
class Initializer {
 public:
  Initializer() = default;
  Initializer(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor): none
  template <class... P, class... A>
  requires(sizeof...(P) == sizeof...(A))
      Initializer(void (*fn)(P...), A&&... args)  // NOLINT(google-explicit-constructor)
      : fn_(reinterpret_cast<mp::detail::AnyFn>(fn)) {
    (mp::detail::require_task_argument<std::remove_cvref_t<P>>(), ...);
    mp::Payload payload = mp::dumps(mp::detail::as_param<P>(std::forward<A>(args))...);
    if (payload.fds.size() > kMaxInitializerDescriptors)
      throw mp::PicklingError("a pool initializer's arguments carry " +
                              std::to_string(payload.fds.size()) + " descriptors; at most " +
                              std::to_string(kMaxInitializerDescriptors) + " can reach a worker");
    if (!payload.fds.empty())
      handles_ = std::make_shared<const mp::detail::Descriptors>(
          mp::detail::Descriptors::copy_of(payload.fds));
    if (!payload.remakers.empty())
      remakers_ =
          std::make_shared<const std::vector<mp::detail::Remaker>>(std::move(payload.remakers));
    args_ = std::move(payload.bytes);
  }
  // kMaxTaskHandles: the most descriptors one task's arguments may carry (a Pipe() end is up to
  // 3, a Lock or Value 1) — what one message between processes can hold (mp::kMaxDescriptors),
  // less the room for an argument file and the message's own.
  static constexpr std::size_t kMaxTaskHandles = mp::kMaxDescriptors - 2;
  // kMaxInitializerDescriptors: the same for an initializer's arguments, which go in the message
  // that starts a worker beside the worker's own descriptors.
  static constexpr std::size_t kMaxInitializerDescriptors = mp::kMaxDescriptors - 16;
  // explicit bool: whether there is an initializer.
  explicit operator bool() const noexcept { return fn_ != nullptr; }
  [[nodiscard]] mp::detail::AnyFn function() const noexcept { return fn_; }
  // worker_arguments(): the serialized initargs for one worker start, with the descriptors they
  // refer to by position (owned by this Initializer, or by the Payload: fresh proxy connections).
  // Throws what serializing them throws (initargs holding a proxy are serialized anew).
  [[nodiscard]] mp::Payload worker_arguments() const {
    mp::Payload out;
    out.bytes = args_;
    if (handles_) out.fds = handles_->fds();
    if (remakers_) {
      for (const mp::detail::Remaker& r : *remakers_) {
        const int fd = r.make();
        out.owned.push_back(fd);
        out.fds.at(r.index) = fd;
      }
    }
    return out;
  }

 private:
  mp::detail::AnyFn fn_ = nullptr;
  std::string args_;
  // Shared by the copies of the options (the descriptors are the pool's, not copied again).
  std::shared_ptr<const mp::detail::Descriptors> handles_;
  // The descriptors among handles_ that each worker needs a new one of (a Manager proxy's
  // connection to its server: one shared by all the workers would mix their requests).
  std::shared_ptr<const std::vector<mp::detail::Remaker>> remakers_;
};

// ProcessPoolOptions: ProcessPoolExecutor's constructor arguments (designated initializers work).
struct ProcessPoolOptions {
  // max_workers: 0 means mp::cpu_count().
  std::size_t max_workers = 0;
  // start_method: the workers' (default mp::get_start_method(), forkserver); fork is refused
  // (ValueError): the pool's dispatcher thread makes this process multithreaded.
  std::optional<mp::StartMethod> start_method{};
  // initializer: a registered task and its arguments (see Initializer), run by each worker before
  // its first task; if it throws, the pool is broken (BrokenProcessPool), as Python's.
  Initializer initializer{};
  // max_tasks_per_child: a worker exits and is replaced after this many tasks (0: never).
  std::size_t max_tasks_per_child = 0;
  // break_on_worker_death: Python's behaviour — a dead worker breaks the whole pool.
  bool break_on_worker_death = false;
  // kill_running: future.cancel() succeeds on a running task too: its worker is killed and
  // replaced, the future is cancelled, the other tasks are untouched (a task sent to a worker
  // but not started yet is skipped instead). Off by default: cancel() of a running task returns
  // false, as in Python.
  bool kill_running = false;
  // time_limit: a task (a map chunk: the whole chunk) running longer than this in its worker is
  // stopped — the worker kills itself and is replaced — and its future fails with
  // TimeLimitExceeded; the other tasks are untouched. Counted from the moment the worker starts
  // the task: time waiting in the queue or for a worker to start does not count. Zero: no limit
  // (Python has none; Celery's time_limit, Pebble's timeout).
  std::chrono::milliseconds time_limit{0};
  // soft_time_limit: a task running longer than this is told so — mp::soft_time_limit_exceeded()
  // becomes true and mp::check_soft_time_limit() throws SoftTimeLimitExceeded in it — and may stop
  // cleanly; it is not stopped (see concur/mp/task.hpp). Counted as time_limit is. Zero: none.
  std::chrono::milliseconds soft_time_limit{0};
};

namespace detail {

class ProcessPoolCore;

// pool_cancel_running(core, id): a kill_running pool's future `id` was cancelled while running:
// the pool stops the task (see ProcessPoolOptions::kill_running). Never throws.
CONCUR_EXPORT void pool_cancel_running(const std::weak_ptr<ProcessPoolCore>& core,
                                       std::uint64_t id) noexcept;
// pool_assist_wait(core, id, state, deadline): a thread blocks on the future of job `id`: if no
// other thread reads that job's worker, this one reads the worker's replies itself until `state`
// is done or the deadline passes (FutureStateBase::assist_wait).
CONCUR_EXPORT bool pool_assist_wait(const std::weak_ptr<ProcessPoolCore>& core, std::uint64_t id,
                                    const FutureStateBase& state, const Deadline& deadline);

// PoolFutureState is the future state of a process pool's task: a blocking wait reads the reply
// itself (assist_wait: one thread hand-off fewer per round trip), and with kill_running, cancel()
// of the running task reaches the pool (cancels_running).
template <class R>
class PoolFutureState final : public FutureState<R> {
 public:
  PoolFutureState(std::weak_ptr<ProcessPoolCore> core, std::uint64_t id, bool kill_running) noexcept
      : FutureState<R>(FutureStateBase::kRef),
        core_(std::move(core)),
        id_(id),
        kill_running_(kill_running) {}

 protected:
  bool cancels_running() const noexcept override { return kill_running_; }
  void running_cancelled() noexcept override { pool_cancel_running(core_, id_); }
  bool assist_wait(const Deadline& d) override { return pool_assist_wait(core_, id_, *this, d); }

 private:
  std::weak_ptr<ProcessPoolCore> core_;
  std::uint64_t id_;
  bool kill_running_;
};

// on_pool_dispatcher_thread() is true in the dispatcher thread of any ProcessPoolExecutor — where
// the done-callbacks of its futures run. A wait there on a future of the pool reads the worker's
// reply itself, or raises DeadlockError for a task still queued (only that thread sends it); what
// waits on a promise that such a callback settles (mp::Pool's AsyncResult) waits on the task's
// future first, to get the same.
CONCUR_EXPORT bool on_pool_dispatcher_thread() noexcept;

// make_pool_promise<R>(core, id, kill_running): the Promise of job `id`, over a PoolFutureState.
template <class R>
Promise<R> make_pool_promise(const std::shared_ptr<ProcessPoolCore>& core, std::uint64_t id,
                             bool kill_running) {
  return PromiseAccess::adopt<R>(new PoolFutureState<R>(core, id, kill_running));
}

// PoolJob is one submitted task as the dispatcher sees it: the registered name, the serialized
// arguments, and how to finish its future (typed in JobImpl).
struct PoolJob {
  PoolJob() = default;
  PoolJob(const PoolJob&) = delete;
  PoolJob& operator=(const PoolJob&) = delete;
  virtual ~PoolJob() = default;
  // start() is the future's set_running_or_notify_cancel(): false when it was cancelled.
  virtual bool start() = 0;
  // cancel() cancels the future if it is still pending (shutdown(cancel_futures = true)).
  virtual void cancel() = 0;
  // finish(result bytes) / fail(exception) settle the future; a future cancelled meanwhile
  // (kill_running) stays cancelled.
  virtual void finish(const mp::detail::SpilledBytes& result) = 0;
  virtual void fail(std::exception_ptr e) = 0;
  // settled() is true once the future is done (for a job in flight: cancelled while running).
  [[nodiscard]] virtual bool settled() const = 0;

  std::uint64_t id = 0;
  const char* task = nullptr;
  // args: the serialized arguments (of every call of a batch, back to back); past
  // kPoolFileThreshold in a sealed memfd, kept for a re-dispatch until the job's worker runs it
  // (then a worker's death fails the job instead of sending it again).
  mp::detail::SpilledBytes args;
  // handles: duplicates of the descriptors of the handles among the arguments (a Connection end,
  // an mp::Queue, a Manager proxy's connection...), which `args` refers to by position. They go
  // with the request and are let go as the argument file is. handle_count (how many) stays
  // after that: such a job is sent only to an idle worker, and nothing is queued behind it (a
  // task that waits on a handle for another task must never wait behind it in one worker).
  mp::detail::Descriptors handles;
  std::size_t handle_count = 0;
  std::size_t batch = 0;  // 0: one call; n: a batch of n calls
  bool started = false;
  // sent_mark: the worker's request ring's tail once the request carrying this job was written
  // (the worker has read it when the ring's head has passed it); args_released: its argument file
  // and its handles were let go once it became the worker's next job. Together they tell whether a
  // job in flight on a worker that died never reached it, and can be sent again.
  std::uint64_t sent_mark = 0;
  bool args_released = false;
  // time_limit / soft_time_limit: the job's own (submit_serialized); zero: the pool's
  // ProcessPoolOptions::time_limit / soft_time_limit.
  std::chrono::milliseconds time_limit{0};
  std::chrono::milliseconds soft_time_limit{0};
  // failure: why the job failed when its worker died for a reason of its own (its time limit);
  // null: the worker crashed (BrokenProcessPool).
  std::exception_ptr failure;
};

// kPoolFileThreshold: serialized arguments and results longer than this travel in a memfd.
inline constexpr std::size_t kPoolFileThreshold = std::size_t{1} << 20;

// BatchWriter writes the argument lists of a batch back to back into one archive, in the job's
// memory or, past kPoolFileThreshold, in a memfd, and the descriptors of the handles among them
// (numbered across the batch) into the job's handles; close() completes them (throws OSError, and
// PicklingError past Initializer::kMaxTaskHandles handles).
class BatchWriter {
 public:
  explicit BatchWriter(PoolJob& job)
      : job_(job), buf_(job.args, kPoolFileThreshold, "concur-pool-args"), os_(&buf_), ar_(os_) {}
  // add(values...) writes one call of a batch.
  template <class... V>
  void add(const V&... values) {
    write(values...);
    ++job_.batch;
  }
  // write(values...) writes one call's arguments.
  template <class... V>
  void write(const V&... values) {
    mp::detail::ScopedFdSink scope(sink_);
    try {
      if constexpr (sizeof...(V) > 0) ar_(values...);
    } catch (const cereal::Exception& e) {
      mp::detail::throw_pickling(e.what());
    }
  }
  void close() {
    buf_.close();
    if (sink_.fds.empty()) return;
    if (sink_.fds.size() > Initializer::kMaxTaskHandles)
      throw mp::PicklingError("a process pool task's arguments carry " +
                              std::to_string(sink_.fds.size()) + " descriptors; at most " +
                              std::to_string(Initializer::kMaxTaskHandles) + " can reach a worker");
    // Duplicates: the handles stay the caller's (a proxy's fresh connection, made for this
    // hand-off, is closed with sink_).
    job_.handles = mp::detail::Descriptors::copy_of(sink_.fds);
    job_.handle_count = sink_.fds.size();
  }

 private:
  PoolJob& job_;
  mp::detail::FdSink sink_;
  mp::detail::SpillOutBuf buf_;
  std::ostream os_;
  mp::OutputArchive ar_;
};

// settle_unless_cancelled(fn) runs fn (a Promise set), unless the future was cancelled while
// running (kill_running), which makes the set fail.
template <class Fn>
void settle_unless_cancelled(Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
  } catch (const InvalidStateError&) {
    // cancelled by kill_running meanwhile: the cancel stands
  }
}

template <class R>
struct PoolJobImpl final : PoolJob {
  PoolJobImpl(const std::shared_ptr<ProcessPoolCore>& core, std::uint64_t job_id, bool kill_running)
      : promise(make_pool_promise<R>(core, job_id, kill_running)) {
    id = job_id;
  }
  bool start() override { return promise.set_running_or_notify_cancel(); }
  void cancel() override { (void)promise.get_future().cancel(); }
  void finish(const mp::detail::SpilledBytes& result) override {
    if constexpr (std::is_void_v<R>) {
      settle_unless_cancelled([&] { promise.set_result(); });
    } else {
      R value{};
      try {
        mp::detail::loads_spilled(result, value);  // a file: read straight into the value
      } catch (...) {
        fail(std::current_exception());
        return;
      }
      settle_unless_cancelled([&] { promise.set_result(std::move(value)); });
    }
  }
  void fail(std::exception_ptr e) override {
    settle_unless_cancelled([&] { promise.set_exception(std::move(e)); });
  }
  [[nodiscard]] bool settled() const override { return promise.is_done(); }

  Promise<R> promise;
};

// PoolBatchJobImpl settles a batch: the worker's reply is the serialized list of each call's
// serialized result.
template <class R>
struct PoolBatchJobImpl final : PoolJob {
  PoolBatchJobImpl(const std::shared_ptr<ProcessPoolCore>& core, std::uint64_t job_id,
                   bool kill_running)
      : promise(make_pool_promise<std::vector<R>>(core, job_id, kill_running)) {
    id = job_id;
  }
  bool start() override { return promise.set_running_or_notify_cancel(); }
  void cancel() override { (void)promise.get_future().cancel(); }
  void finish(const mp::detail::SpilledBytes& result) override {
    std::vector<R> values(batch);
    try {
      mp::detail::SpillReader in(result);
      std::istream is(in.rdbuf());
      mp::InputArchive ar(is);
      for (std::size_t i = 0; i < values.size(); ++i) {  // (not R&: std::vector<bool>)
        R v{};
        ar(v);
        values[i] = std::move(v);
      }
    } catch (const cereal::Exception& e) {
      fail(std::make_exception_ptr(mp::UnpicklingError(e.what())));
      return;
    } catch (...) {
      fail(std::current_exception());
      return;
    }
    settle_unless_cancelled([&] { promise.set_result(std::move(values)); });
  }
  void fail(std::exception_ptr e) override {
    settle_unless_cancelled([&] { promise.set_exception(std::move(e)); });
  }
  [[nodiscard]] bool settled() const override { return promise.is_done(); }

  Promise<std::vector<R>> promise;
};

// SerializedJob is a job that arrives serialized already — a registered task's arguments as
// TaskEntry::invoke_batch reads them (`batch` calls back to back; 0: one call) — and whose future
// holds the results as invoke_batch writes them (dist::Worker's WorkerOptions::processes).
struct SerializedJob final : PoolJob {
  SerializedJob(const std::shared_ptr<ProcessPoolCore>& core, std::uint64_t job_id,
                bool kill_running)
      : promise(make_pool_promise<std::string>(core, job_id, kill_running)) {
    id = job_id;
  }
  bool start() override { return promise.set_running_or_notify_cancel(); }
  void cancel() override { (void)promise.get_future().cancel(); }
  void finish(const mp::detail::SpilledBytes& result) override {
    std::string bytes;
    if (result.in_file()) {
      bytes.resize(result.size());
      mp::detail::SpillInBuf in(result);
      if (static_cast<std::size_t>(
              in.sgetn(bytes.data(), static_cast<std::streamsize>(bytes.size()))) != bytes.size()) {
        fail(std::make_exception_ptr(mp::UnpicklingError("a task's result file ended early")));
        return;
      }
    } else {
      bytes = result.bytes();
    }
    settle_unless_cancelled([&] { promise.set_result(std::move(bytes)); });
  }
  void fail(std::exception_ptr e) override {
    settle_unless_cancelled([&] { promise.set_exception(std::move(e)); });
  }
  [[nodiscard]] bool settled() const override { return promise.is_done(); }

  Promise<std::string> promise;
};

}  // namespace detail

class CONCUR_EXPORT ProcessPoolExecutor final : public Executor {
 public:
  // ProcessPoolExecutor(options) prepares the pool; workers start on the first submit. Throws
  // UsageError when the initializer is not a registered task, ValueError for the fork method.
  explicit ProcessPoolExecutor(ProcessPoolOptions options = {});
  ProcessPoolExecutor(const ProcessPoolExecutor&) = delete;
  ProcessPoolExecutor& operator=(const ProcessPoolExecutor&) = delete;
  // ~ProcessPoolExecutor() is shutdown(true).
  ~ProcessPoolExecutor() override;

  // kFileThreshold: a task's serialized arguments (a batch's, together) or result longer than
  // this travel in a sealed memfd instead of the mailbox: written once, never copied in memory.
  static constexpr std::size_t kFileThreshold = detail::kPoolFileThreshold;

  // submit(fn, args...) runs the registered task fn(args...) in a worker → Future<R>. Handles
  // (a Connection end, an mp::Queue, Lock, Value, a Manager proxy...) may be arguments: the pool
  // keeps a duplicate of their descriptors until the task runs, and the worker gets its own
  // (beyond Python, whose pools refuse an mp.Queue). Throws
  // UsageError when fn is not registered, PicklingError when an argument cannot be serialized
  // (or the arguments carry more than Initializer::kMaxTaskHandles handles), RuntimeError after
  // shutdown(),
  // BrokenProcessPool when the pool is broken, mp::OSError when arguments longer than
  // kFileThreshold cannot be written to their memfd (out of memory).
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) Future<R> submit(R (*fn)(P...), A&&... args) {
    (mp::detail::require_task_argument<std::remove_cvref_t<P>>(), ...);
    static_assert(std::is_void_v<R> || mp::TaskArgument<R>,
                  "ProcessPoolExecutor::submit: the task's result type must be serializable and "
                  "default constructible, so that it can come back from the worker");
    auto job = make_job<detail::PoolJobImpl<R>>();
    Future<R> future = job->promise.get_future();
    {
      detail::BatchWriter writer(*job);  // one call: batch stays 0
      writer.write(mp::detail::as_param<P>(std::forward<A>(args))...);
      writer.close();
    }
    enqueue(reinterpret_cast<mp::detail::AnyFn>(fn), std::move(job));
    return future;
  }

  // submit_batch(fn, calls) runs fn once per argument tuple of `calls`, in order, in one worker,
  // in one round trip → the results in order. An exception in any call fails the batch with that
  // call's RemoteError. This is what map(..., MapOptions{.chunksize = n}) sends.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) Future<std::vector<R>> submit_batch(
      R (*fn)(P...), const std::vector<std::tuple<A...>>& calls) {
    auto job = start_batch<R, P...>();
    {
      detail::BatchWriter writer(*job);
      for (const auto& call : calls)
        std::apply([&](const auto&... a) { add_call<P...>(writer, a...); }, call);
      writer.close();
    }
    return finish_batch(fn, std::move(job));
  }

  // map(fn, ranges..., [MapOptions]) is Python's ProcessPoolExecutor.map, lazy and bounded: the
  // inputs go in chunks of MapOptions::chunksize calls (one submit_batch, one round trip to a
  // worker each), at most MapOptions::window chunks in flight (0: 64 per worker), the next chunk
  // submitted as results are taken, so an endless input range is fine; eager = true submits
  // every chunk at once, as Python (sized ranges only). Results come back in input order; the
  // inputs are zipped (the shortest range ends the map); an rvalue container is moved into the
  // range. MapOptions::timeout counts from the call (TimeoutError when taking a result after it,
  // and that chunk is cancelled). Destroying the range cancels the chunks not yet sent to a
  // worker (and, with kill_running, stops the running ones).
  template <class R, class... P, class... Rest>
  [[nodiscard(
      "map() returns its results as a range; dropping it cancels the chunks not sent "
      "(submit() each call to run it for its effect)")]] auto
  map(R (*fn)(P...), Rest&&... rest) {
    return detail::chunked_map(*this, fn, std::forward<Rest>(rest)...);
  }

  void shutdown(bool wait = true, bool cancel_futures = false) override;
  // shutdown(timeout, cancel_futures) / shutdown_until(time_point, cancel_futures): shutdown(true,
  // cancel_futures) that waits until the deadline at most; then the workers still busy are killed
  // (SIGKILL): the tasks they held fail with BrokenProcessPool, the tasks never sent to a worker
  // are cancelled. True when everything finished in time.
  template <class Rep, class Period>
  bool shutdown(std::chrono::duration<Rep, Period> timeout, bool cancel_futures = false) {
    return shutdown_by(detail::Deadline::after(timeout), cancel_futures);
  }
  template <class C, class D>
  bool shutdown_until(std::chrono::time_point<C, D> when, bool cancel_futures = false) {
    return shutdown_by(detail::Deadline::at(when), cancel_futures);
  }
  // terminate_workers() sends SIGTERM to every worker now (mp::Pool::terminate): the tasks they
  // hold fail with BrokenProcessPool, and no worker is started again. Combine with
  // shutdown(false, true) to stop everything at once.
  void terminate_workers();
  [[nodiscard]] std::size_t max_workers() const noexcept override;
  // submit_serialized(task, args, batch, time_limit, soft_time_limit) runs a task given
  // serialized: `args` as mp::detail::TaskEntry::invoke_batch reads them (`batch` argument lists
  // back to back; 0: one call, as submit() writes it) → the serialized results as invoke_batch
  // writes them. For programs that relay tasks (dist::Worker with WorkerOptions::processes).
  // `time_limit` / `soft_time_limit` (zero: the pool's) apply to this task's run as
  // ProcessPoolOptions' do. Throws as submit(), ValueError for a negative limit.
  Future<std::string> submit_serialized(const mp::detail::TaskEntry& task, std::string_view args,
                                        std::size_t batch,
                                        std::chrono::milliseconds time_limit = {},
                                        std::chrono::milliseconds soft_time_limit = {});
  // worker_pids() lists the live workers' process ids (for tests and monitoring).
  [[nodiscard]] std::vector<pid_t> worker_pids() const;

 protected:
  // execute(task): an arbitrary callable cannot run in another process — UsageError.
  void execute(detail::RunnablePtr task) override;

 private:
  template <class Ex, class R, class Fn, class... Ranges>
  friend class detail::ChunkedMapResults;

  // submit_inputs(fn, fill): one chunk of a map — fill(add) calls add(args...) once per call.
  template <class R, class... P, class Fill>
  Future<std::vector<R>> submit_inputs(R (*fn)(P...), Fill&& fill) {
    auto job = start_batch<R, P...>();
    {
      detail::BatchWriter writer(*job);
      fill([&](auto&&... x) { add_call<P...>(writer, x...); });
      writer.close();
    }
    return finish_batch(fn, std::move(job));
  }
  template <class R, class... P>
  std::unique_ptr<detail::PoolBatchJobImpl<R>> start_batch() {
    (mp::detail::require_task_argument<std::remove_cvref_t<P>>(), ...);
    static_assert(!std::is_void_v<R> && mp::TaskArgument<R>,
                  "ProcessPoolExecutor batches (map with chunksize): the task must return a "
                  "serializable, default-constructible value");
    return make_job<detail::PoolBatchJobImpl<R>>();
  }
  // make_job<Job>(): a job with its id reserved now (its future's state needs it).
  template <class Job>
  std::unique_ptr<Job> make_job() {
    return std::make_unique<Job>(core_, reserve_id(), kill_running_);
  }
  std::uint64_t reserve_id();
  template <class... P, class... A>
  static void add_call(detail::BatchWriter& writer, A&&... args) {
    writer.add(mp::detail::as_param<P>(std::forward<A>(args))...);
  }
  template <class R, class Fn>
  Future<std::vector<R>> finish_batch(Fn fn, std::unique_ptr<detail::PoolBatchJobImpl<R>> job) {
    Future<std::vector<R>> future = job->promise.get_future();
    if (job->batch == 0) {  // no calls: nothing to send (batch 0 means one call on the wire)
      check_open(reinterpret_cast<mp::detail::AnyFn>(fn));
      (void)job->promise.set_running_or_notify_cancel();
      job->promise.set_result();
      return future;
    }
    enqueue_batch(reinterpret_cast<mp::detail::AnyFn>(fn), std::move(job));
    return future;
  }
  // check_open(fn): what submit(fn) would refuse — UsageError (fn not registered), RuntimeError
  // after shutdown(), BrokenProcessPool when broken.
  void check_open(mp::detail::AnyFn fn) const;
  void enqueue_batch(mp::detail::AnyFn fn, std::unique_ptr<detail::PoolJob> job);

  // enqueue(fn, job): job's arguments are written (UsageError for an unregistered fn).
  void enqueue(mp::detail::AnyFn fn, std::unique_ptr<detail::PoolJob> job);
  bool shutdown_by(const detail::Deadline& deadline, bool cancel_futures);

  std::shared_ptr<detail::ProcessPoolCore> core_;
  bool kill_running_ = false;
};

}  // namespace concur
