// RemoteClient (remote_client.hpp) and RemoteExecutor: what RedisExecutor and AmqpExecutor share.
#include "remote_client.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <random>
#include <utility>
#include <vector>

namespace concur::dist {

namespace detail {

std::string new_client_id() {
  std::random_device rd;
  const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%016llx-%d", static_cast<unsigned long long>(r),
                              static_cast<int>(::getpid()));
  return std::string(buf, static_cast<std::size_t>(n));
}

RemoteClient::RemoteClient(ClientSettings settings, std::string client_id, std::string reply)
    : settings_(std::move(settings)), client_(std::move(client_id)), reply_(std::move(reply)) {
  if (settings_.queue.empty())
    throw ValueError(settings_.kind + ": the options' queue must not be empty");
}

void RemoteClient::check_forked() const {
  if (forked_copy())
    throw InvalidStateError(settings_.kind + " made in process " + std::to_string(creator_) +
                            " cannot be used in process " + std::to_string(::getpid()) +
                            ", forked from it: make the executor in the process that uses it");
}

void RemoteClient::submit(mp::detail::AnyFn fn, const TaskOptions& options, std::string args,
                          std::unique_ptr<RemoteJob> job) {
  check_forked();
  const mp::detail::TaskEntry* entry = mp::detail::find_task(fn);
  if (entry == nullptr)
    throw UsageError(settings_.kind +
                     "::submit: the function is not a registered task (CONCUR_TASK(fn))");
  const std::string& queue = options.queue.empty() ? settings_.queue : options.queue;
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
  if (options.priority > 9) throw ValueError("TaskOptions::priority must be 0-9");
  check_task(options);
  m.result_ttl_ms = settings_.result_ttl.count();
  m.track_started = settings_.track_started;
  const std::uint64_t id = job->id;
  RemoteJob* raw = job.get();
  {
    std::scoped_lock lock(mu_);
    if (shutdown_) {
      job->cancel_unsent();
      throw RuntimeError("cannot schedule new futures after shutdown");
    }
    jobs_.emplace(id, Record{std::move(job), {}, queue, false});
  }
  std::string handle;
  try {
    handle = send(m, queue, options);
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
  // (a handle recorded by set_handle meanwhile is the real one: send() answered a placeholder)
  if (it != jobs_.end() && it->second.job.get() == raw && it->second.handle.empty())
    it->second.handle = std::move(handle);
}

void RemoteClient::set_handle(std::uint64_t id, std::string handle) {
  std::scoped_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it != jobs_.end()) it->second.handle = std::move(handle);
}

std::string RemoteClient::handle_of(std::uint64_t id) const {
  std::scoped_lock lock(mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? std::string() : it->second.handle;
}

void RemoteClient::cancel(std::uint64_t id) noexcept {
  {
    std::scoped_lock lock(mu_);
    jobs_.erase(id);
  }
  settled_cv_.notify_all();
  settled_elsewhere();
}

void RemoteClient::fail_job(std::uint64_t id, std::exception_ptr error) noexcept {
  std::unique_ptr<RemoteJob> job;
  {
    std::scoped_lock lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    job = std::move(it->second.job);
    jobs_.erase(it);
  }
  if (job) job->fail(std::move(error));
  settled_cv_.notify_all();
  settled_elsewhere();
}

FutureStateBase::Withdrawal RemoteClient::withdraw(std::uint64_t id) noexcept {
  using W = FutureStateBase::Withdrawal;
  std::string handle, queue;
  {
    std::scoped_lock lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return W::kUnknown;
    if (it->second.started || it->second.taken) return W::kTaken;
    handle = it->second.handle;
    queue = it->second.queue;
  }
  if (handle.empty()) return W::kUnknown;
  try {
    return take_back(queue, handle, id);
  } catch (const std::exception&) {
    return W::kUnknown;
  }
}

bool RemoteClient::shutdown(bool wait, bool cancel_futures,
                            std::optional<std::chrono::steady_clock::time_point> deadline) {
  if (forked_copy()) return false;  // the parent's executor: not ours to stop
  // With cancel_futures, every future whose start has not been reported is cancelled: each
  // cancel() asks the broker to take its task back (and fails for one a worker took meanwhile);
  // its done-callback then forgets the job. The states are referenced while the lock is released.
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
        TimeoutError(settings_.kind + " was shut down before the task's result came back")));
  if (!late.empty()) settled_elsewhere();
  join_reader();
  return late.empty();
}

std::size_t RemoteClient::pending() const {
  std::scoped_lock lock(mu_);
  return jobs_.size();
}

bool RemoteClient::is_shutdown() const {
  std::scoped_lock lock(mu_);
  return shutdown_;
}

bool RemoteClient::finished() const {
  std::scoped_lock lock(mu_);
  return stop_.load() || (shutdown_ && jobs_.empty());
}

RemoteClient::StartVerdict RemoteClient::deliver(std::string_view bytes) {
  ResultMessage m;
  try {
    m = decode<ResultMessage>(bytes);
  } catch (const std::exception&) {
    return StartVerdict::kNone;  // not ours
  }
  return deliver(m);
}

RemoteClient::StartVerdict RemoteClient::deliver(const ResultMessage& m) {
  if (m.kind == ResultMessage::wake) return StartVerdict::kNone;
  const bool start = m.kind == ResultMessage::started;
  std::unique_ptr<RemoteJob> job;
  RemoteJob* starting = nullptr;
  {
    std::scoped_lock lock(mu_);
    auto it = jobs_.find(m.id);
    if (it == jobs_.end())  // cancelled, or a second run's report (at-least-once)
      return start ? StartVerdict::kDrop : StartVerdict::kNone;
    if (start) {
      if (it->second.started) return StartVerdict::kGo;  // taken over by another worker
      it->second.started = true;
      starting = it->second.job.get();
      if ((m.flags & ResultMessage::kStoppable) != 0) starting->mark_stoppable();
    } else {
      job = std::move(it->second.job);
      jobs_.erase(it);
    }
  }
  if (starting != nullptr)
    return start_job(m.id, starting) ? StartVerdict::kGo : StartVerdict::kDrop;
  if (m.kind == ResultMessage::ok) {
    job->finish(m.result);
  } else {
    job->fail(std::make_exception_ptr(RemoteError(m.type_name, m.message, m.traceback)));
  }
  job.reset();
  settled_cv_.notify_all();
  return StartVerdict::kNone;
}

RemoteClient::StartVerdict RemoteClient::reserve(std::uint64_t id, const std::string& holder) {
  std::scoped_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !it->second.job || it->second.withdrawn) return StartVerdict::kDrop;
  if (!it->second.started) it->second.holder = holder;
  return StartVerdict::kGo;
}

RemoteClient::Holding RemoteClient::holding(std::uint64_t id) {
  using S = Holding::State;
  std::scoped_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !it->second.job) return {S::kGone, {}};
  Record& r = it->second;
  if (r.started || r.taken) return {S::kStarted, {}};
  if (r.holder.empty()) {
    r.withdrawn = true;
    return {S::kFree, {}};
  }
  return {S::kHeld, r.holder};
}

bool RemoteClient::release(std::uint64_t id, const std::string& holder) {
  std::scoped_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.holder != holder) return false;
  it->second.holder.clear();
  it->second.withdrawn = true;
  return true;
}

void RemoteClient::give_up(std::uint64_t id) {
  std::scoped_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it != jobs_.end()) it->second.taken = true;
}

// start_job(id, job): set_running_or_notify_cancel() on a job still recorded. A cancel() racing
// in (the future was cancelled before the start arrived) finds the record and erases it, so the
// job is moved out under the lock and put back after.
bool RemoteClient::start_job(std::uint64_t id, RemoteJob* job) {
  std::unique_ptr<RemoteJob> held;
  {
    std::scoped_lock lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.job.get() != job) return false;
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
  return running;
}

void remote_submit(const std::shared_ptr<RemoteClient>& core, mp::detail::AnyFn fn,
                   const TaskOptions& options, std::string args, std::unique_ptr<RemoteJob> job) {
  core->submit(fn, options, std::move(args), std::move(job));
}

void remote_cancel(const std::weak_ptr<RemoteClient>& core, std::uint64_t id) noexcept {
  if (auto c = core.lock(); c && !c->forked_copy()) c->cancel(id);
}

void remote_revoke(const std::weak_ptr<RemoteClient>& core, std::uint64_t id) noexcept {
  if (auto c = core.lock(); c && !c->forked_copy()) c->revoke(id);
}

bool remote_assist_wait(const std::weak_ptr<RemoteClient>& core, const FutureStateBase& state,
                        const Deadline& d) noexcept {
  if (auto c = core.lock(); c && !c->forked_copy()) return c->assist(state, d);
  return false;
}

FutureStateBase::Withdrawal remote_withdraw(const std::weak_ptr<RemoteClient>& core,
                                            std::uint64_t id) noexcept {
  if (auto c = core.lock(); c && !c->forked_copy()) return c->withdraw(id);
  return FutureStateBase::Withdrawal::kUnknown;
}

std::uint64_t remote_reserve_id(RemoteClient& core) noexcept { return core.reserve_id(); }

}  // namespace detail

RemoteExecutor::RemoteExecutor(std::shared_ptr<detail::RemoteClient> core)
    : core_(std::move(core)) {
  core_->start();
}

RemoteExecutor::~RemoteExecutor() {
  if (core_->forked_copy()) {
    // Its reader thread does not exist here and its jobs are the parent's: nothing can be waited
    // for, joined or sent. The copy is left as it is (memory of a process about to go its way).
    static auto* left = new std::vector<std::shared_ptr<detail::RemoteClient>>;
    left->push_back(std::move(core_));
    return;
  }
  shutdown(true);
  core_->join_reader();
}

void RemoteExecutor::shutdown(bool wait, bool cancel_futures) {
  (void)core_->shutdown(wait, cancel_futures);
}

bool RemoteExecutor::shutdown_for(std::chrono::milliseconds timeout, bool cancel_futures) {
  return core_->shutdown(true, cancel_futures, std::chrono::steady_clock::now() + timeout);
}

std::size_t RemoteExecutor::max_workers() const noexcept {
  return std::max<std::size_t>(1, core_->settings().max_workers);
}

std::size_t RemoteExecutor::pending() const { return core_->pending(); }

const TaskOptions& RemoteExecutor::default_options() const noexcept {
  return core_->settings().task;
}

void RemoteExecutor::check_open(mp::detail::AnyFn fn) const {
  core_->check_forked();
  if (mp::detail::find_task(fn) == nullptr)
    throw UsageError(core_->settings().kind +
                     "::submit: the function is not a registered task (CONCUR_TASK(fn))");
  if (core_->is_shutdown()) throw RuntimeError("cannot schedule new futures after shutdown");
}

void RemoteExecutor::execute(concur::detail::RunnablePtr) {
  throw UsageError(core_->settings().kind +
                   " runs registered tasks only: submit(fn, args...) with fn registered by "
                   "CONCUR_TASK (an arbitrary callable cannot cross to another machine)");
}

}  // namespace concur::dist
