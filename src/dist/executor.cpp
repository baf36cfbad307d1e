// RedisExecutor: submits are XADDs on one connection; a reader thread on a second connection
// reads this executor's reply list (LRANGE, then LTRIM with the next LRANGE, up to 256 messages
// at a time; BLMOVE onto itself to wait) and settles the futures.
#include "concur/dist/executor.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "concur/dist/redis.hpp"
#include "protocol.hpp"

namespace concur::dist {

namespace detail {

namespace {

// kLastText: the last index one LRANGE reads (256 messages at most).
constexpr std::string_view kLastText = "255";
// kPollSeconds: how long the reader blocks in BLMOVE before it looks at its stop flag (shutdown
// also pushes a wake message, so this only bounds a lost wake-up).
constexpr int kPollSeconds = 1;
constexpr std::string_view kPollText = "1";

std::string new_client_id() {
  std::random_device rd;
  const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%016llx-%d", static_cast<unsigned long long>(r),
                              static_cast<int>(::getpid()));
  return std::string(buf, static_cast<std::size_t>(n));
}

// with_reconnect(conn, fn): fn(); a broken connection is reconnected once and fn retried.
template <class Fn>
auto with_reconnect(Redis& conn, Fn&& fn) {
  if (!conn.is_connected()) conn.reconnect();
  try {
    return fn();
  } catch (const ConnectionError&) {
    conn.reconnect();
    return fn();
  }
}

}  // namespace

class RedisClientCore {
 public:
  RedisClientCore(const std::string& url, RedisOptions options)
      : options_(std::move(options)),
        url_(RedisUrl::parse(url)),
        client_(new_client_id()),
        reply_(reply_key(options_.prefix, client_)) {
    if (options_.queue.empty()) throw ValueError("RedisOptions::queue must not be empty");
    if (options_.prefix.empty()) throw ValueError("RedisOptions::prefix must not be empty");
    submit_ = Redis::connect(url_, options_.connect_timeout);
    ensure_group(submit_, stream_key(options_.prefix, options_.queue));
    reader_conn_ = Redis::connect(url_, options_.connect_timeout);
    // BLMOVE blocks kPollSeconds: its replies may take that long.
    reader_conn_.set_timeout(options_.connect_timeout + std::chrono::seconds(kPollSeconds));
  }

  void start() {
    reader_ = std::thread([this] { read_loop(); });
  }

  std::uint64_t reserve_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }

  void submit(mp::detail::AnyFn fn, const TaskOptions& options, std::string args,
              std::unique_ptr<RemoteJob> job) {
    const mp::detail::TaskEntry* entry = mp::detail::find_task(fn);
    if (entry == nullptr)
      throw UsageError(
          "RedisExecutor::submit: the function is not a registered task (CONCUR_TASK(fn))");
    const std::string& queue = options.queue.empty() ? options_.queue : options.queue;
    TaskMessage m;
    m.id = job->id;
    m.task = entry->name;
    m.args = std::move(args);
    m.batch = static_cast<std::uint32_t>(job->batch);
    m.reply = reply_;
    m.max_retries = options.max_retries;
    m.backoff_ms = options.retry_backoff.count();
    m.backoff_max_ms = options.retry_backoff_max.count();
    if (options.time_limit.count() < 0 || options.soft_time_limit.count() < 0)
      throw ValueError("TaskOptions: time_limit and soft_time_limit must be >= 0");
    m.time_limit_ms = options.time_limit.count();
    m.soft_time_limit_ms = options.soft_time_limit.count();
    if (!options.rate_limit.key.empty()) {
      if (!(options.rate_limit.per_second > 0) || options.rate_limit.burst == 0)
        throw ValueError("RateLimit: per_second must be > 0 and burst >= 1");
      m.rate_key = options.rate_limit.key;
      m.rate_per_second = options.rate_limit.per_second;
      m.rate_burst = options.rate_limit.burst;
    }
    if (!options.concurrency_limit.key.empty()) {
      if (options.concurrency_limit.limit == 0)
        throw ValueError("ConcurrencyLimit: limit must be >= 1");
      m.slot_key = options.concurrency_limit.key;
      m.slot_limit = options.concurrency_limit.limit;
    }
    m.result_ttl_ms = options_.result_ttl.count();
    m.track_started = options_.track_started;
    const std::string bytes = encode(m);
    const std::string stream = stream_key(options_.prefix, queue);
    const std::uint64_t id = job->id;
    RemoteJob* raw = job.get();
    {
      std::scoped_lock lock(mu_);
      if (shutdown_) {
        job->cancel_unsent();
        throw RuntimeError("cannot schedule new futures after shutdown");
      }
      jobs_.emplace(id, Record{std::move(job), {}, stream, false});
    }
    std::string entry_id;
    try {
      std::scoped_lock lock(submit_mu_);
      if (queue != options_.queue && known_queues_.insert_if_new(queue))
        with_reconnect(submit_, [&] { ensure_group(submit_, stream); });
      entry_id = with_reconnect(submit_, [&] {
        return submit_.command({"XADD", stream, "*", "task", m.task, "m", bytes}).str;
      });
    } catch (...) {
      std::unique_ptr<RemoteJob> back;
      {
        std::scoped_lock lock(mu_);
        auto it = jobs_.find(id);
        if (it != jobs_.end()) {
          back = std::move(it->second.job);
          jobs_.erase(it);
        }
      }
      if (back) back->cancel_unsent();  // never sent: nobody will settle it
      settled_cv_.notify_all();
      throw;
    }
    std::scoped_lock lock(mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end() && it->second.job.get() == raw) it->second.entry = std::move(entry_id);
  }

  // cancel(id): job `id`'s future was cancelled (withdrawn or never sent): forget it.
  void cancel(std::uint64_t id) noexcept {
    {
      std::scoped_lock lock(mu_);
      jobs_.erase(id);
    }
    settled_cv_.notify_all();
  }

  // withdraw(id): deletes job `id`'s task from its stream unless a worker took it (the CANCEL
  // script, atomic on the server). kTaken also when the start was reported; kUnknown when the job
  // is settled or not sent yet, or Redis cannot be reached.
  FutureStateBase::Withdrawal withdraw(std::uint64_t id) noexcept {
    using W = FutureStateBase::Withdrawal;
    std::string entry, stream;
    {
      std::scoped_lock lock(mu_);
      auto it = jobs_.find(id);
      if (it == jobs_.end()) return W::kUnknown;
      if (it->second.started) return W::kTaken;
      entry = it->second.entry;
      stream = it->second.stream;
    }
    if (entry.empty()) return W::kUnknown;
    try {
      std::scoped_lock lock(submit_mu_);
      const Reply r = with_reconnect(submit_, [&] {
        return cancel_script().run(submit_, {stream}, {kGroup, entry});
      });
      return r.as_integer() == 1 ? W::kWithdrawn : W::kTaken;
    } catch (const std::exception&) {
      return W::kUnknown;
    }
  }

  // revoke(id): job `id` was cancelled while it ran on a worker that can stop it: the revoke key
  // tells that worker (it looks every duty period). With Redis unreachable the run goes on and its
  // result is dropped.
  void revoke(std::uint64_t id) noexcept {
    const std::string key = revoke_key(options_.prefix, reply_, id);
    try {
      std::scoped_lock lock(submit_mu_);
      with_reconnect(submit_, [&] {
        (void)submit_.command({"SET", key, "1", "PX",
                               std::to_string(std::max<std::int64_t>(
                                   1, static_cast<std::int64_t>(options_.result_ttl.count())))});
      });
    } catch (const std::exception&) {
    }
  }

  // shutdown(wait, cancel_futures, deadline): see RedisExecutor::shutdown; with a deadline, the
  // jobs still unsettled then fail with TimeoutError. True when everything settled.
  bool shutdown(bool wait, bool cancel_futures,
                std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) {
    // With cancel_futures, every future whose start has not been reported is cancelled: each
    // cancel() asks Redis to delete its task (and fails for one a worker took meanwhile); its
    // done-callback then forgets the job. The states are referenced while the lock is released.
    std::vector<FutureStateBase*> untaken;
    {
      std::scoped_lock lock(mu_);
      shutdown_ = true;
      if (cancel_futures) {
        for (auto& [id, r] : jobs_) {
          if (r.started || !r.job) continue;
          FutureStateBase& state = r.job->state();
          state.add_ref();
          untaken.push_back(&state);
        }
      }
    }
    for (FutureStateBase* state : untaken) {
      (void)state->cancel();
      state->release_ref();
    }
    wake_reader();
    if (!wait) return false;
    std::vector<std::unique_ptr<RemoteJob>> late;
    {
      std::unique_lock lock(mu_);
      const auto settled = [&] { return jobs_.empty(); };
      if (!deadline) {
        settled_cv_.wait(lock, settled);
      } else if (!settled_cv_.wait_until(lock, *deadline, settled)) {
        for (auto& [id, r] : jobs_)
          if (r.job) late.push_back(std::move(r.job));
        jobs_.clear();
      }
    }
    for (auto& j : late)
      j->fail(std::make_exception_ptr(
          TimeoutError("RedisExecutor was shut down before the task's result came back")));
    join_reader();
    return late.empty();
  }

  void join_reader() {
    std::scoped_lock lock(join_mu_);
    if (reader_.joinable()) {
      stop_.store(true);
      wake_reader();
      reader_.join();
    }
  }

  std::size_t pending() const {
    std::scoped_lock lock(mu_);
    return jobs_.size();
  }

  bool is_shutdown() const {
    std::scoped_lock lock(mu_);
    return shutdown_;
  }

  const RedisOptions& options() const noexcept { return options_; }

 private:
  struct Record {
    std::unique_ptr<RemoteJob> job;
    std::string entry;   // the stream entry's id (for a cancel)
    std::string stream;  // the stream's key
    bool started = false;
  };

  // KnownQueues: the queues whose consumer group this executor made sure of.
  struct KnownQueues {
    std::vector<std::string> names;
    bool insert_if_new(const std::string& q) {
      if (std::find(names.begin(), names.end(), q) != names.end()) return false;
      names.push_back(q);
      return true;
    }
  };

  void wake_reader() {
    ResultMessage w;
    w.kind = ResultMessage::wake;
    try {
      std::scoped_lock lock(submit_mu_);
      with_reconnect(submit_, [&] {
        (void)submit_.command({"RPUSH", reply_, encode(w)});
        (void)submit_.command({"PEXPIRE", reply_, std::to_string(options_.result_ttl.count())});
      });
    } catch (const std::exception&) {
      // unreachable: the reader notices its stop flag within kPollSeconds
    }
  }

  bool finished() {
    std::scoped_lock lock(mu_);
    return stop_.load() || (shutdown_ && jobs_.empty());
  }

  // read_loop(): the reader thread. The reply list is read without destroying anything first, so
  // that a Redis that dies between running a command and sending its reply cannot take messages
  // with it (a pop would): LRANGE reads up to 256, they are delivered, and LTRIM removes them —
  // sent together with the next LRANGE, one round trip. When the list is empty, BLMOVE of the list
  // onto itself (head to head: nothing changes) waits for the next message and returns it, which
  // is delivered at once and trimmed with the next LRANGE. Only this thread removes from the head
  // (workers push to the tail), so the first n elements are exactly the n delivered. After a lost
  // connection the untrimmed ones are read again: deliver() ignores what it has seen (a settled
  // job is gone, a start is recorded once).
  void read_loop() {
    auto backoff = std::chrono::milliseconds(50);
    std::size_t delivered = 0;  // at the head of the list, not trimmed yet
    while (!finished()) {
      try {
        if (!reader_conn_.is_connected()) {
          reader_conn_.reconnect();
          delivered = 0;  // read them again (a lost LTRIM may or may not have run)
        }
        Reply batch;
        if (delivered > 0) {
          const std::string n = std::to_string(delivered);
          reader_conn_.append({"LTRIM", reply_, n, "-1"});
          reader_conn_.append({"LRANGE", reply_, "0", kLastText});
          delivered = 0;
          std::exception_ptr trim_error;  // (both replies are read, whatever the first says)
          try {
            (void)reader_conn_.get_reply();
          } catch (const RedisError&) {
            trim_error = std::current_exception();
          }
          batch = reader_conn_.get_reply();
          if (trim_error) std::rethrow_exception(trim_error);
        } else {
          batch = reader_conn_.command({"LRANGE", reply_, "0", kLastText});
        }
        backoff = std::chrono::milliseconds(50);
        if (!batch.is_array() || batch.elements.empty()) {
          const Reply head =
              reader_conn_.command({"BLMOVE", reply_, reply_, "LEFT", "LEFT", kPollText});
          if (!head.is_nil()) {
            deliver(head.str);
            delivered = 1;
          }
          continue;
        }
        for (const Reply& m : batch.elements) deliver(m.str);
        delivered = batch.elements.size();
      } catch (const ConnectionError&) {
        // Redis went away: the replies wait in the list (result_ttl); try again with backoff
        pause(backoff);
      } catch (const RedisError&) {
        // LOADING (a restarted Redis reading its data), or a list someone else broke: wait
        pause(backoff);
      }
    }
  }

  void pause(std::chrono::milliseconds& backoff) {
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (std::chrono::steady_clock::now() < until && !stop_.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }

  // deliver(bytes): one message from a worker.
  void deliver(std::string_view bytes) {
    ResultMessage m;
    try {
      m = decode<ResultMessage>(bytes);
    } catch (const std::exception&) {
      return;  // not ours
    }
    if (m.kind == ResultMessage::wake) return;
    std::unique_ptr<RemoteJob> job;
    RemoteJob* starting = nullptr;
    {
      std::scoped_lock lock(mu_);
      auto it = jobs_.find(m.id);
      if (it == jobs_.end()) return;  // cancelled, or a second run's result (at-least-once)
      if (m.kind == ResultMessage::started) {
        if (it->second.started) return;  // taken over by another worker: still running
        it->second.started = true;
        starting = it->second.job.get();
        if ((m.flags & ResultMessage::kStoppable) != 0) starting->mark_stoppable();
      } else {
        job = std::move(it->second.job);
        jobs_.erase(it);
      }
    }
    if (starting != nullptr) {
      start_job(m.id, starting);
      return;
    }
    if (m.kind == ResultMessage::ok) {
      job->finish(m.result);
    } else {
      job->fail(std::make_exception_ptr(RemoteError(m.type_name, m.message, m.traceback)));
    }
    job.reset();
    settled_cv_.notify_all();
  }

  // start_job(id, job): set_running_or_notify_cancel() on a job still recorded. A cancel() racing
  // in (the future was cancelled before the start arrived) finds the record and erases it, so the
  // job is moved out under the lock and put back after.
  void start_job(std::uint64_t id, RemoteJob* job) {
    std::unique_ptr<RemoteJob> held;
    {
      std::scoped_lock lock(mu_);
      auto it = jobs_.find(id);
      if (it == jobs_.end() || it->second.job.get() != job) return;
      held = std::move(it->second.job);
    }
    const bool running = held->start();
    std::scoped_lock lock(mu_);
    auto it = jobs_.find(id);
    if (running && it != jobs_.end()) {
      it->second.job = std::move(held);
    } else if (it != jobs_.end()) {
      jobs_.erase(it);  // cancelled before it started: settled
    }
    settled_cv_.notify_all();
  }

  RedisOptions options_;
  RedisUrl url_;
  std::string client_;
  std::string reply_;
  std::atomic<std::uint64_t> next_id_{1};

  mutable std::mutex mu_;  // jobs_, shutdown_
  std::condition_variable settled_cv_;
  std::unordered_map<std::uint64_t, Record> jobs_;
  bool shutdown_ = false;

  std::mutex submit_mu_;  // submit_, known_queues_
  Redis submit_;
  KnownQueues known_queues_;

  Redis reader_conn_;  // the reader thread's
  std::thread reader_;
  std::mutex join_mu_;
  std::atomic<bool> stop_{false};
};

void remote_submit(const std::shared_ptr<RedisClientCore>& core, mp::detail::AnyFn fn,
                   const TaskOptions& options, std::string args, std::unique_ptr<RemoteJob> job) {
  core->submit(fn, options, std::move(args), std::move(job));
}

void remote_cancel(const std::weak_ptr<RedisClientCore>& core, std::uint64_t id) noexcept {
  if (auto c = core.lock()) c->cancel(id);
}

void remote_revoke(const std::weak_ptr<RedisClientCore>& core, std::uint64_t id) noexcept {
  if (auto c = core.lock()) c->revoke(id);
}

FutureStateBase::Withdrawal remote_withdraw(const std::weak_ptr<RedisClientCore>& core,
                                            std::uint64_t id) noexcept {
  if (auto c = core.lock()) return c->withdraw(id);
  return FutureStateBase::Withdrawal::kUnknown;
}

std::uint64_t remote_reserve_id(RedisClientCore& core) noexcept { return core.reserve_id(); }

}  // namespace detail

RedisExecutor::RedisExecutor(const std::string& url, RedisOptions options)
    : core_(std::make_shared<detail::RedisClientCore>(url, std::move(options))) {
  core_->start();
}

RedisExecutor::~RedisExecutor() {
  shutdown(true);
  core_->join_reader();
}

void RedisExecutor::shutdown(bool wait, bool cancel_futures) {
  (void)core_->shutdown(wait, cancel_futures);
}

bool RedisExecutor::shutdown_for(std::chrono::milliseconds timeout, bool cancel_futures) {
  return core_->shutdown(true, cancel_futures, std::chrono::steady_clock::now() + timeout);
}

std::size_t RedisExecutor::max_workers() const noexcept {
  return std::max<std::size_t>(1, core_->options().max_workers);
}

std::size_t RedisExecutor::pending() const { return core_->pending(); }

const RedisOptions& RedisExecutor::options() const noexcept { return core_->options(); }

const TaskOptions& RedisExecutor::default_options() const noexcept { return core_->options().task; }

void RedisExecutor::check_open(mp::detail::AnyFn fn) const {
  if (mp::detail::find_task(fn) == nullptr)
    throw UsageError(
        "RedisExecutor::submit: the function is not a registered task (CONCUR_TASK(fn))");
  if (core_->is_shutdown()) throw RuntimeError("cannot schedule new futures after shutdown");
}

void RedisExecutor::execute(concur::detail::RunnablePtr) {
  throw UsageError(
      "RedisExecutor runs registered tasks only: submit(fn, args...) with fn registered by "
      "CONCUR_TASK (an arbitrary callable cannot cross to another machine)");
}

}  // namespace concur::dist
