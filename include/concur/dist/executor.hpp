// concur/dist/executor.hpp — RedisExecutor: concurrent.futures' Executor over Redis, the way
// Celery and RQ share work between machines, with concur's Future.
//
//   bool is_prime(std::uint64_t n);
//   CONCUR_TASK(is_prime);                               // the same registry as the process pool
//
//   dist::RedisExecutor ex("redis://10.0.0.5:6379");      // was: ProcessPoolExecutor ex;
//   Future<bool> f = ex.submit(is_prime, 112272535095293);
//   f.result();                                          // run by any worker serving the queue
//
// Workers are programs that register the same tasks and run dist::Worker (worker.hpp) —
// `myapp worker --redis URL`, on any number of machines. A task is an entry of a Redis stream
// (one per queue) read by the workers' consumer group; the worker that reads it holds a lease (the
// entry is pending under its name) and renews it while the task runs, so a long task is never
// run twice while its worker lives, and a worker that dies (kill -9, host gone) has its tasks
// taken over by another once the lease expires: every task runs at least once. The result goes
// back atomically with the lease's release (a Lua script: XACK, XDEL, RPUSH to this executor's
// reply list), so an acknowledged task always has its result stored, and a worker that lost its
// lease (paused past it) drops its result instead of racing the new holder.
// A task that throws is retried with exponential backoff up to TaskOptions::max_retries times;
// its final error reaches the future as RemoteError (type, message, where it was raised) and is
// copied to the queue's dead-letter stream (<prefix>:dead:<queue>, capped) with the task's name.
// running() is true once the report that a worker took the task arrives
// (RedisOptions::track_started). cancel() of a pending future asks Redis (one round trip): it
// succeeds when the entry could be deleted from the stream before any worker took it — the task
// then never runs — and fails when a worker has it, even one whose report is still on its way (the
// future is running from then on); with Redis unreachable it fails and nothing changes. A task a
// worker took and deferred (a rate or concurrency limit) or is retrying counts as taken. A running
// task can be cancelled when its worker runs tasks in processes (WorkerOptions::processes, which
// its start report says): cancel() succeeds and the worker kills the run within its duty period
// (lease/4, 10 ms to 1 s); on a thread worker cancel() of a running task fails, as in Python.
// Submits are pipelined: submit() returns once its XADD is written, without waiting for Redis's
// answer (the entry id, which a cancel() waits for if it has not come yet). An XADD Redis refuses
// (an error reply: out of memory...) fails its future with RedisError; XADDs left unanswered by a
// broken connection are sent again on a new one (a task may then be queued twice: at least once).
// Redis unreachable: submit() throws ConnectionError (after one reconnect attempt); the results
// of submitted tasks wait in Redis (for RedisOptions::result_ttl) while this executor reconnects
// with backoff. Nothing acknowledged is lost while Redis keeps its data (appendonly yes with
// appendfsync everysec or always survives a Redis restart; see docs/dist.md).
// shutdown(wait, cancel_futures): later submits throw RuntimeError; cancel_futures cancels the
// tasks no worker has taken; wait blocks until every future is settled (with no workers left,
// forever: shutdown(timeout) bounds it). The destructor is shutdown(true). Through the Executor
// interface, submit(callable) cannot cross machines: UsageError (use this class's submit with a
// registered task). A copy in a process forked from the one that made the executor (a raw fork of
// a prefork server) is not an executor: its reader thread and jobs are the parent's, so submit()
// throws InvalidStateError there, and shutdown, cancel and the destructor do nothing (a future the
// parent would complete never completes in the copy). Make the executor after the fork.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/chunked_map.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"
#include "concur/mp/serialize.hpp"
#include "concur/mp/task.hpp"

namespace concur::dist {

// RateLimit: at most `per_second` runs a second of the tasks sharing `key`, in bursts of at most
// `burst`, across every worker of the cluster (a token bucket in Redis). A task without a token is
// put back until one is due, holding no worker thread.
struct RateLimit {
  std::string key{};  // empty: no limit
  double per_second = 0;
  std::uint32_t burst = 1;
};

// ConcurrencyLimit: at most `limit` of the tasks sharing `key` run at once across the cluster (a
// keyed semaphore in Redis; a holder's slot is leased like its task, so a dead worker's slot
// frees itself). A task finding the slots taken is put back for a moment, holding no thread.
struct ConcurrencyLimit {
  std::string key{};  // empty: no limit
  std::uint32_t limit = 0;
};

// TaskOptions: how one submission is run (RedisExecutor::submit_with; RedisOptions::task is the
// default of submit).
struct TaskOptions {
  // queue: the queue (a stream) to put the task on; empty: the executor's.
  std::string queue{};
  // max_retries: a task that throws runs again, up to this many more times, before its error is
  // final (Celery's max_retries; 0: never retried).
  std::uint32_t max_retries = 0;
  // retry_backoff: the wait before the first retry, doubled for each next one, at most
  // retry_backoff_max (Celery's retry_backoff / retry_backoff_max).
  std::chrono::milliseconds retry_backoff{1000};
  std::chrono::milliseconds retry_backoff_max{60000};
  // rate_limit / concurrency_limit: cluster-wide limits of the tasks sharing a key (none of
  // Celery, RQ or scrapy-redis has them: Celery's rate_limit is per worker).
  RateLimit rate_limit{};
  ConcurrencyLimit concurrency_limit{};
  // time_limit: a run longer than this is stopped and fails with TimeLimitExceeded (retried per
  // max_retries, as any failed run); zero: the worker's WorkerOptions::time_limit. Enforced by
  // workers that run tasks in processes (--processes; Celery's time_limit, prefork pool): a
  // thread cannot be stopped, so a thread worker runs the task without a limit.
  std::chrono::milliseconds time_limit{0};
  // soft_time_limit: a run longer than this is told so (mp::soft_time_limit_exceeded(),
  // mp::check_soft_time_limit() throwing SoftTimeLimitExceeded) and may stop cleanly; zero: the
  // worker's WorkerOptions::soft_time_limit. Kept by every worker, threads or processes.
  std::chrono::milliseconds soft_time_limit{0};
  // priority: 0-9, higher first — AMQP's message priority (AmqpExecutor: queues declared with
  // x-max-priority 9). RedisExecutor has no message priorities (serve queues in order instead:
  // WorkerOptions::queues) and refuses a nonzero one with ValueError.
  std::uint8_t priority = 0;
};

// RedisOptions: RedisExecutor's constructor arguments.
struct RedisOptions {
  // queue: the default queue (workers serve queues by name: --queues).
  std::string queue = "default";
  // prefix: the namespace of every key concur uses (<prefix>:q:<queue>, ...); workers must agree.
  std::string prefix = "concur";
  // task: the TaskOptions of submit() (its queue is ignored: see `queue`).
  TaskOptions task{};
  // result_ttl: how long results wait in Redis for this executor (e.g. while it reconnects).
  std::chrono::milliseconds result_ttl = std::chrono::hours(24);
  // connect_timeout: bounds connecting and every reply.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // track_started: workers report a task that has run for 1 ms (or whose run ends in a retry), so
  // that running() is true from then on (Celery's task_track_started; one message more for such a
  // task — a shorter run's result is its only message: its future goes from pending to done).
  // Without it a future stays pending until its result arrives — cancel() is right either way: it
  // asks Redis.
  bool track_started = true;
  // max_workers: what max_workers() reports (the workers are elsewhere: how many tasks run at once
  // is up to them); 0: 1.
  std::size_t max_workers = 0;
};

namespace detail {

using concur::detail::Deadline;
using concur::detail::FutureState;
using concur::detail::FutureStateBase;
using concur::detail::PromiseAccess;

class RemoteClient;

// remote_withdraw(core, id): deletes the task of job `id` from its stream unless a worker took
// it (RemoteFutureState::withdraw). Never throws: kUnknown when Redis cannot be asked.
CONCUR_EXPORT FutureStateBase::Withdrawal remote_withdraw(const std::weak_ptr<RemoteClient>& core,
                                                          std::uint64_t id) noexcept;
// remote_revoke(core, id): the running future of job `id` was cancelled: tells the worker running
// it to kill the run (RemoteFutureState::running_cancelled). Never throws.
CONCUR_EXPORT void remote_revoke(const std::weak_ptr<RemoteClient>& core,
                                 std::uint64_t id) noexcept;

// remote_assist_wait(core, state, deadline): a thread blocks on `state`, a future of this
// executor: it may read the workers' messages itself instead of being woken by the reader thread
// (RemoteFutureState::assist_wait). Never throws.
CONCUR_EXPORT bool remote_assist_wait(const std::weak_ptr<RemoteClient>& core,
                                      const FutureStateBase& state, const Deadline& d) noexcept;

// RemoteFutureState is the state of a RedisExecutor future. A worker may take the task before the
// executor hears of it, so cancel() of a pending future first asks Redis to delete the task from
// its stream: it succeeds only if that worked, and fails — the future becomes running — when a
// worker has the task. The first definite answer is kept: concurrent and later cancels agree.
// A task running on a worker that can stop it (a process worker said so when it started it) is
// cancelled too: the worker is told to kill the run (remote_revoke).
template <class T>
class RemoteFutureState final : public FutureState<T> {
 public:
  RemoteFutureState(std::weak_ptr<RemoteClient> core, std::uint64_t id) noexcept
      : FutureState<T>(FutureStateBase::kRef), core_(std::move(core)), id_(id) {}
  // mark_unsent(): the task never reached Redis: a cancel needs no answer from it.
  void mark_unsent() noexcept {
    std::scoped_lock lock(mu_);
    found_ = FutureStateBase::Withdrawal::kWithdrawn;
  }
  // mark_stoppable(): the worker that started the task can stop it (set before the start).
  void mark_stoppable() noexcept { stoppable_.store(true, std::memory_order_release); }

 protected:
  bool withdraws() const noexcept override { return true; }
  bool cancels_running() const noexcept override {
    return stoppable_.load(std::memory_order_acquire);
  }
  void running_cancelled() noexcept override { remote_revoke(core_, id_); }
  bool assist_wait(const Deadline& d) override { return remote_assist_wait(core_, *this, d); }
  FutureStateBase::Withdrawal withdraw() noexcept override {
    std::scoped_lock lock(mu_);  // one round trip at a time; the others take its answer
    if (found_ == FutureStateBase::Withdrawal::kUnknown) found_ = remote_withdraw(core_, id_);
    return found_;
  }

 private:
  std::weak_ptr<RemoteClient> core_;
  std::uint64_t id_;
  std::mutex mu_;
  FutureStateBase::Withdrawal found_ = FutureStateBase::Withdrawal::kUnknown;
  std::atomic<bool> stoppable_{false};
};

// RemoteJob is one submitted task as the executor's reader thread sees it: how to settle its
// future from the worker's messages (typed in RemoteJobImpl).
struct RemoteJob {
  RemoteJob(std::uint64_t job_id, std::size_t calls) noexcept : id(job_id), batch(calls) {}
  RemoteJob(const RemoteJob&) = delete;
  RemoteJob& operator=(const RemoteJob&) = delete;
  virtual ~RemoteJob() = default;
  // start(): a worker took the task: the future runs (true) — it may be running already, a
  // cancel() having learnt it first — or was cancelled or settled (false).
  virtual bool start() = 0;
  // finish(bytes): the serialized result (dumps(result), or a batch's results back to back).
  virtual void finish(std::string_view bytes) = 0;
  virtual void fail(std::exception_ptr e) = 0;
  // cancel_unsent(): the task never reached Redis: its future is cancelled.
  virtual void cancel_unsent() = 0;
  // mark_stoppable(): its worker can stop the run (see RemoteFutureState).
  virtual void mark_stoppable() noexcept = 0;
  // state(): the future's state (the job's Promise holds a reference to it).
  [[nodiscard]] virtual FutureStateBase& state() noexcept = 0;
  [[nodiscard]] virtual bool settled() const = 0;

  std::uint64_t id = 0;
  std::size_t batch = 0;  // 0: one call; n: a batch of n calls
};

// RemoteJobBase<T> is a job whose future is a Future<T> (over a RemoteFutureState<T>).
template <class T>
struct RemoteJobBase : RemoteJob {
  RemoteJobBase(const std::shared_ptr<RemoteClient>& core, std::uint64_t job_id, std::size_t calls)
      : RemoteJob(job_id, calls),
        remote(new RemoteFutureState<T>(core, job_id)),
        promise(PromiseAccess::adopt<T>(remote)) {}
  bool start() override {
    try {
      return promise.set_running_or_notify_cancel();
    } catch (const InvalidStateError&) {
      return !promise.is_done();  // running already: a cancel() found the task taken
    }
  }
  void fail(std::exception_ptr e) override {
    settle([&] { promise.set_exception(std::move(e)); });
  }
  void cancel_unsent() override {
    remote->mark_unsent();
    (void)promise.get_future().cancel();
  }
  void mark_stoppable() noexcept override { remote->mark_stoppable(); }
  FutureStateBase& state() noexcept override { return *remote; }
  [[nodiscard]] bool settled() const override { return promise.is_done(); }

  // settle(fn) runs a Promise set unless the future was cancelled meanwhile (then it stays so).
  template <class Fn>
  void settle(Fn&& fn) {
    if (promise.is_done()) return;
    try {
      std::forward<Fn>(fn)();
    } catch (const InvalidStateError&) {
      // cancelled between the check and the set: the cancel stands
    }
  }

  RemoteFutureState<T>* remote;  // owned by `promise` (and the futures)
  Promise<T> promise;
};

template <class R>
struct RemoteJobImpl final : RemoteJobBase<R> {
  RemoteJobImpl(const std::shared_ptr<RemoteClient>& core, std::uint64_t job_id)
      : RemoteJobBase<R>(core, job_id, 0) {}
  void finish(std::string_view bytes) override {
    if constexpr (std::is_void_v<R>) {
      this->settle([&] { this->promise.set_result(); });
    } else {
      R value{};
      try {
        mp::loads(bytes, {}, value);
      } catch (...) {
        this->fail(std::current_exception());
        return;
      }
      this->settle([&] { this->promise.set_result(std::move(value)); });
    }
  }
};

template <class R>
struct RemoteBatchJobImpl final : RemoteJobBase<std::vector<R>> {
  RemoteBatchJobImpl(const std::shared_ptr<RemoteClient>& core, std::uint64_t job_id,
                     std::size_t calls)
      : RemoteJobBase<std::vector<R>>(core, job_id, calls) {}
  void finish(std::string_view bytes) override {
    std::vector<R> values(this->batch);
    try {
      mp::detail::MemoryInBuf buf(bytes);
      std::istream is(&buf);
      mp::InputArchive ar(is);
      for (std::size_t i = 0; i < values.size(); ++i) {  // (not R&: std::vector<bool>)
        R v{};
        ar(v);
        values[i] = std::move(v);
      }
    } catch (const cereal::Exception& e) {
      this->fail(std::make_exception_ptr(mp::UnpicklingError(e.what())));
      return;
    } catch (...) {
      this->fail(std::current_exception());
      return;
    }
    this->settle([&] { this->promise.set_result(std::move(values)); });
  }
};

// ArgsWriter writes the argument lists of a task (one call, or a batch's calls back to back) into
// one archive, as the process pool's workers read them (TaskEntry::invoke_batch).
class ArgsWriter {
 public:
  ArgsWriter() : buf_(bytes_), os_(&buf_), ar_(os_) {}
  template <class... V>
  void write(const V&... values) {
    mp::detail::FdSink sink;
    {
      mp::detail::ScopedFdSink scope(sink);
      try {
        if constexpr (sizeof...(V) > 0) ar_(values...);
      } catch (const cereal::Exception& e) {
        mp::detail::throw_pickling(e.what());
      }
    }
    if (!sink.fds.empty())
      throw mp::PicklingError("handles (descriptors) cannot be passed to remote tasks");
  }
  std::string take() && {
    os_.flush();
    return std::move(bytes_);
  }

 private:
  std::string bytes_;
  mp::detail::StringOutBuf buf_;
  std::ostream os_;
  mp::OutputArchive ar_;
};

// remote_submit(core, fn, options, args, job): registers `job` and puts the task on its queue.
// Throws UsageError (fn not registered), RuntimeError (after shutdown), ConnectionError (Redis
// unreachable).
CONCUR_EXPORT void remote_submit(const std::shared_ptr<RemoteClient>& core, mp::detail::AnyFn fn,
                                 const TaskOptions& options, std::string args,
                                 std::unique_ptr<RemoteJob> job);
// remote_cancel(core, id): the future of job `id` was cancelled (its task was withdrawn, or never
// sent): the executor forgets the job. Never throws.
CONCUR_EXPORT void remote_cancel(const std::weak_ptr<RemoteClient>& core,
                                 std::uint64_t id) noexcept;
CONCUR_EXPORT std::uint64_t remote_reserve_id(RemoteClient& core) noexcept;

}  // namespace detail

// RemoteExecutor is what RedisExecutor and AmqpExecutor (amqp_executor.hpp) share: the
// registered-task submit, submit_with, submit_batch, map and shutdown over a broker, every future
// settled by a reader thread from the workers' messages. Its members are as documented at the top
// of this file; a broker's own behaviour is in its class. Not constructed directly.
class CONCUR_EXPORT RemoteExecutor : public Executor {
 public:
  RemoteExecutor(const RemoteExecutor&) = delete;
  RemoteExecutor& operator=(const RemoteExecutor&) = delete;
  // ~RemoteExecutor() is shutdown(true).
  ~RemoteExecutor() override;

  // submit(fn, args...) runs the registered task fn(args...) on a worker → Future<R>: the
  // arguments are serialized now (PicklingError); UsageError when fn is not registered,
  // RuntimeError after shutdown(), ConnectionError when the broker cannot be reached.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) Future<R> submit(R (*fn)(P...), A&&... args) {
    return submit_with(default_options(), fn, std::forward<A>(args)...);
  }
  // submit_with(options, fn, args...) is submit with this task's own queue, retries, limits and
  // priority.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) Future<R> submit_with(const TaskOptions& options,
                                                               R (*fn)(P...), A&&... args) {
    (mp::detail::require_task_argument<std::remove_cvref_t<P>>(), ...);
    static_assert(std::is_void_v<R> || mp::TaskArgument<R>,
                  "dist executor submit: the task's result type must be serializable and "
                  "default constructible, so that it can come back from the worker");
    detail::ArgsWriter writer;
    writer.write(mp::detail::as_param<P>(std::forward<A>(args))...);
    auto job = std::make_unique<detail::RemoteJobImpl<R>>(core_, detail::remote_reserve_id(*core_));
    Future<R> future = job->promise.get_future();
    send(reinterpret_cast<mp::detail::AnyFn>(fn), options, std::move(writer).take(), std::move(job),
         future);
    return future;
  }

  // submit_batch(fn, calls) runs fn once per argument tuple, in order, on one worker, in one round
  // trip → the results in order; an exception in any call fails the batch with its RemoteError.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) Future<std::vector<R>> submit_batch(
      R (*fn)(P...), const std::vector<std::tuple<A...>>& calls) {
    return submit_inputs(fn, [&](auto&& add) {
      for (const auto& call : calls) std::apply(add, call);
    });
  }

  // map(fn, ranges..., [MapOptions]) is ProcessPoolExecutor::map over the broker: lazy, ordered,
  // chunks of MapOptions::chunksize calls (one task each: raise it for short tasks, a round trip
  // costs more than a trivial call), at most MapOptions::window chunks in flight (0: 64 per
  // max_workers()), zipped ranges, MapOptions::timeout from the call
  // (concur/detail/chunked_map.hpp).
  template <class R, class... P, class... Rest>
  [[nodiscard(
      "map() returns its results as a range; dropping it cancels the chunks not sent "
      "(submit() each call to run it for its effect)")]] auto
  map(R (*fn)(P...), Rest&&... rest) {
    return concur::detail::chunked_map(*this, fn, std::forward<Rest>(rest)...);
  }

  void shutdown(bool wait = true, bool cancel_futures = false) override;
  // shutdown(timeout, cancel_futures): shutdown(true, cancel_futures) that waits until the
  // deadline at most (the workers may be gone); the futures still unsettled then fail with
  // TimeoutError (their tasks may still run somewhere: their results are dropped). True when
  // everything settled in time.
  template <class Rep, class Period>
  bool shutdown(std::chrono::duration<Rep, Period> timeout, bool cancel_futures = false) {
    return shutdown_for(std::chrono::ceil<std::chrono::milliseconds>(timeout), cancel_futures);
  }
  [[nodiscard]] std::size_t max_workers() const noexcept override;
  // pending() is how many of this executor's futures are not settled yet.
  [[nodiscard]] std::size_t pending() const;

 protected:
  explicit RemoteExecutor(std::shared_ptr<detail::RemoteClient> core);
  // execute(task): an arbitrary callable cannot run on another machine — UsageError.
  void execute(concur::detail::RunnablePtr task) override;

  std::shared_ptr<detail::RemoteClient> core_;

 private:
  template <class Ex, class R, class Fn, class... Ranges>
  friend class concur::detail::ChunkedMapResults;

  // submit_inputs(fn, fill): one chunk of a map — fill(add) calls add(args...) once per call.
  template <class R, class... P, class Fill>
  Future<std::vector<R>> submit_inputs(R (*fn)(P...), Fill&& fill) {
    (mp::detail::require_task_argument<std::remove_cvref_t<P>>(), ...);
    static_assert(!std::is_void_v<R> && mp::TaskArgument<R>,
                  "dist executor submit_batch / map: the task must return a serializable, "
                  "default-constructible value");
    detail::ArgsWriter writer;
    std::size_t calls = 0;
    fill([&](auto&&... x) {
      writer.write(mp::detail::as_param<P>(x)...);
      ++calls;
    });
    auto job = std::make_unique<detail::RemoteBatchJobImpl<R>>(
        core_, detail::remote_reserve_id(*core_), calls);
    Future<std::vector<R>> future = job->promise.get_future();
    if (calls == 0) {
      check_open(reinterpret_cast<mp::detail::AnyFn>(fn));
      (void)job->promise.set_running_or_notify_cancel();
      job->promise.set_result();
      return future;
    }
    send(reinterpret_cast<mp::detail::AnyFn>(fn), default_options(), std::move(writer).take(),
         std::move(job), future);
    return future;
  }

  [[nodiscard]] const TaskOptions& default_options() const noexcept;
  bool shutdown_for(std::chrono::milliseconds timeout, bool cancel_futures);
  void check_open(mp::detail::AnyFn fn) const;
  template <class F>
  void send(mp::detail::AnyFn fn, const TaskOptions& options, std::string args,
            std::unique_ptr<detail::RemoteJob> job, const F& future) {
    const std::uint64_t id = job->id;
    detail::remote_submit(core_, fn, options, std::move(args), std::move(job));
    // (after the submit: a refused one cancels its job, which must not reach the broker)
    future.add_done_callback([core = std::weak_ptr<detail::RemoteClient>(core_), id](const F& f) {
      if (f.cancelled()) detail::remote_cancel(core, id);
    });
  }
};

class CONCUR_EXPORT RedisExecutor final : public RemoteExecutor {
 public:
  // RedisExecutor(url, options) connects (ConnectionError when Redis cannot be reached, ValueError
  // for a bad URL) and starts the thread that reads results.
  explicit RedisExecutor(const std::string& url, RedisOptions options = {});
  // options() are the constructor's options.
  [[nodiscard]] const RedisOptions& options() const noexcept { return options_; }

 private:
  RedisOptions options_;
};

}  // namespace concur::dist
