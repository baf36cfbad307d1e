// src/dist/remote_client.hpp (internal) — RemoteClient: the client side that RedisExecutor and
// AmqpExecutor share — the table of submitted jobs, the task message built from TaskOptions, the
// delivery of the workers' messages to the futures (start, result, error), cancel, and shutdown.
// A broker subclass sends the tasks (send), takes a queued one back or revokes it (take_back),
// tells a worker to kill a running one (send_revoke) and runs the reader thread that hands the
// messages of its reply destination to deliver().
// Thread-safety: every public member may be called from any thread; deliver() from the reader.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "../base/this_pid.hpp"
#include "concur/dist/executor.hpp"
#include "protocol.hpp"

namespace concur::dist::detail {

// ClientSettings: what RemoteClient needs of an executor's options.
struct ClientSettings {
  std::string kind;   // "RedisExecutor" / "AmqpExecutor", in error messages
  std::string queue;  // the default queue
  TaskOptions task{};
  std::chrono::milliseconds result_ttl{};
  bool track_started = true;
  std::size_t max_workers = 0;
};

// new_client_id(): "<16 random hex digits>-<pid>": names an executor's reply destination.
std::string new_client_id();

class RemoteClient {
 public:
  // RemoteClient(settings, client_id, reply): `reply` is where the workers send this executor's
  // messages (TaskMessage::reply: a Redis list's key, an AMQP queue's name).
  RemoteClient(ClientSettings settings, std::string client_id, std::string reply);
  RemoteClient(const RemoteClient&) = delete;
  RemoteClient& operator=(const RemoteClient&) = delete;
  virtual ~RemoteClient() = default;

  // start(): starts the reader thread (after construction: it calls the subclass).
  virtual void start() = 0;
  // join_reader(): stops the reader thread and waits for it; idempotent.
  virtual void join_reader() = 0;

  std::uint64_t reserve_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }

  // submit(fn, options, args, job): records `job` and sends its task. UsageError (not
  // registered), ValueError (bad options), RuntimeError (after shutdown), ConnectionError.
  void submit(mp::detail::AnyFn fn, const TaskOptions& options, std::string args,
              std::unique_ptr<RemoteJob> job);
  // cancel(id): job `id`'s future was cancelled (withdrawn or never sent): forget it.
  void cancel(std::uint64_t id) noexcept;
  // withdraw(id): takes job `id`'s task back unless a worker took it (kTaken also when the start
  // was reported; kUnknown when the job is settled, not sent yet, or the broker cannot be asked).
  FutureStateBase::Withdrawal withdraw(std::uint64_t id) noexcept;
  // fail_job(id, error): job `id`'s task never reached the broker after all (a publish the broker
  // refused after send() returned): its future fails with `error`. Never throws.
  void fail_job(std::uint64_t id, std::exception_ptr error) noexcept;
  // revoke(id): job `id` was cancelled while it ran on a worker that can stop it.
  void revoke(std::uint64_t id) noexcept { send_revoke(id); }
  // shutdown(wait, cancel_futures, deadline): see RemoteExecutor::shutdown; with a deadline, the
  // jobs still unsettled then fail with TimeoutError. True when everything settled.
  bool shutdown(bool wait, bool cancel_futures,
                std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  // assist(state, d): a thread blocks on `state`, one of this executor's futures: a broker that
  // can reads the workers' messages in that thread until the state is done or the deadline passes
  // — one thread hand-off less per result (RedisExecutor). False when it did not (the plain wait
  // follows) or the state is not done. Never throws.
  virtual bool assist(const FutureStateBase& /*state*/, const Deadline& /*d*/) noexcept {
    return false;
  }

  [[nodiscard]] std::size_t pending() const;
  [[nodiscard]] bool is_shutdown() const;
  [[nodiscard]] const ClientSettings& settings() const noexcept { return settings_; }
  [[nodiscard]] const std::string& client_id() const noexcept { return client_; }
  [[nodiscard]] const std::string& reply() const noexcept { return reply_; }
  // forked_copy(): this is a copy in a process forked from the one that made the executor. Its
  // reader thread, its jobs and its reply key are the parent's: the copy refuses new work
  // (check_forked) and touches nothing of the parent's (no cancel, no read, no shutdown).
  [[nodiscard]] bool forked_copy() const noexcept { return concur::detail::this_pid() != creator_; }
  // check_forked(): InvalidStateError in a forked copy.
  void check_forked() const;

 protected:
  // send(m, queue, options): puts task message `m` on `queue` → a handle for take_back (the
  // stream entry's id...). Throws ConnectionError and the like: the job is then cancelled.
  virtual std::string send(const TaskMessage& m, const std::string& queue,
                           const TaskOptions& options) = 0;
  // set_handle(id, handle) / handle_of(id): a broker whose send() answers before the broker does
  // (Redis's pipelined XADDs) records the handle when the answer comes; handle_of is "" for a job
  // no longer recorded.
  void set_handle(std::uint64_t id, std::string handle);
  std::string handle_of(std::uint64_t id) const;
  // take_back(queue, handle, id): the broker's answer to withdraw() for a task sent and not
  // reported started. May throw (kUnknown).
  virtual FutureStateBase::Withdrawal take_back(const std::string& queue, const std::string& handle,
                                                std::uint64_t id) = 0;
  // send_revoke(id): tells the worker running job `id` to kill the run. Never throws.
  virtual void send_revoke(std::uint64_t id) noexcept = 0;
  // wake_reader(): makes the reader look at its stop flag now. Never throws.
  virtual void wake_reader() noexcept = 0;
  // settled_elsewhere(): a future was settled other than by deliver() (cancelled, failed by a
  // refused send or the shutdown deadline): a thread reading for it in assist() must look.
  virtual void settled_elsewhere() noexcept {}
  // check_task(options): a broker's own refusals (ValueError) of a task's options.
  virtual void check_task(const TaskOptions& options) const = 0;

  // StartVerdict: what deliver() made of a worker's start report — kGo: the job still waits for
  // its result and is running now (or was already: a task taken over); kDrop: the job is gone
  // (cancelled before the start, or settled: a second run); kNone: not a start.
  enum class StartVerdict : std::uint8_t { kNone, kGo, kDrop };
  // deliver(bytes): one ResultMessage from a worker (the reader thread's): a start marks the
  // future running unless it was cancelled first — the future's own state decides which came
  // first, so an answer kGo/kDrop to a worker that waits for it (AMQP) makes cancel() exact; a
  // result or error settles the future. A message that is not one, or for a job this executor no
  // longer has (cancelled, settled), is dropped.
  StartVerdict deliver(std::string_view bytes);
  // deliver(m): the same for a message already decoded (one item of an AMQP ResultBatch).
  StartVerdict deliver(const ResultMessage& m);
  // Reservations (AMQP): a worker claims a task before a thread of its is free for it; the task is
  // then reserved for that worker (its `holder`: the worker's control queue) while its future
  // stays pending, and a cancel() asks the holder to withdraw it (AmqpClient::take_back).
  // reserve(id, holder): a claim — kGo: reserved for `holder`, or started already (a task taken
  // over after its worker died); kDrop: the job is gone (cancelled, settled) or was withdrawn.
  StartVerdict reserve(std::uint64_t id, const std::string& holder);
  // Holding: where a withdraw of job `id` stands (holding()).
  struct Holding {
    enum class State : std::uint8_t { kGone, kStarted, kFree, kHeld };
    State state = State::kGone;
    std::string holder{};
  };
  // holding(id): kFree — no worker holds the task, and it is marked withdrawn now (a later claim
  // is dropped); kHeld — reserved for `holder`; kStarted — running, or a withdraw gave up
  // (give_up()); kGone — settled or cancelled.
  Holding holding(std::uint64_t id);
  // release(id, holder): `holder` answered that it does not have the task: withdrawn (true)
  // unless another worker holds it now (false: ask that one).
  bool release(std::uint64_t id, const std::string& holder);
  // give_up(id): a withdraw got no answer: the task runs; every later withdraw answers kTaken.
  void give_up(std::uint64_t id);
  // finished(): the reader may end (stopped, or shut down with nothing left to settle).
  bool finished() const;

  std::atomic<bool> stop_{false};

 private:
  struct Record {
    std::unique_ptr<RemoteJob> job;
    std::string handle;  // send()'s answer (for a withdraw)
    std::string queue;
    bool started = false;
    std::string holder{};    // the worker it is reserved for (AMQP), empty when none
    bool withdrawn = false;  // cancel() took it back: a claim is dropped
    bool taken = false;      // a withdraw gave up: the task runs (give_up())
  };

  // start_job(id, job): set_running_or_notify_cancel() on a job still recorded → running.
  bool start_job(std::uint64_t id, RemoteJob* job);

  const pid_t creator_ = concur::detail::this_pid();  // the process that made the executor
  ClientSettings settings_;
  std::string client_;
  std::string reply_;
  std::atomic<std::uint64_t> next_id_{1};

  mutable std::mutex mu_;  // jobs_, shutdown_
  std::condition_variable settled_cv_;
  std::unordered_map<std::uint64_t, Record> jobs_;
  bool shutdown_ = false;
};

}  // namespace concur::dist::detail
