// TaskRunner (task_runner.hpp): one task message run on this thread or in the worker's pool.
#include "task_runner.hpp"

#include <algorithm>
#include <istream>
#include <ostream>
#include <utility>

#include "../mp/exception_info.hpp"
#include "concur/errors.hpp"
#include "concur/mp/task.hpp"

namespace concur::dist::detail {

namespace {

// TaskRevoked: a run killed because its executor cancelled the running future.
class TaskRevoked : public Error {
 public:
  TaskRevoked() : Error("TaskRevokedError: the task was cancelled by its executor while it ran") {}
};

// kEarlyRevokesKept: how many revokes of runs not started yet a runner remembers.
constexpr std::size_t kEarlyRevokesKept = 10'000;

}  // namespace

TaskRunner::TaskRunner(const WorkerOptions& options, std::string name)
    : o_(options), name_(std::move(name)) {
  if (o_.processes) {
    ProcessPoolOptions po;
    po.max_workers = o_.concurrency;
    po.kill_running = true;  // a revoke cancels a running task: its process is killed
    pool_ = std::make_unique<ProcessPoolExecutor>(std::move(po));
  }
}

RunOutcome TaskRunner::run(const TaskMessage& m) {
  RunOutcome out;
  ResultMessage& r = out.result;
  r.id = m.id;
  const mp::detail::TaskEntry* entry = mp::detail::find_task(m.task);
  if (entry == nullptr) {
    r.kind = ResultMessage::error;
    r.type_name = "NotRegistered";
    r.message = "task '" + m.task + "' is not registered in this worker (CONCUR_TASK)";
    r.traceback = "worker " + name_;
    return out;
  }
  std::string where;  // where a process-pool run raised (RemoteError's traceback)
  try {
    if (pool_) {
      r.result = run_in_process(*entry, m);
    } else {
      mp::detail::MemoryInBuf in(m.args);
      std::istream is(&in);
      mp::detail::StringOutBuf buf(r.result);
      std::ostream os(&buf);
      const mp::detail::SoftLimitScope soft(soft_limit(m));
      entry->invoke_batch(is, os, m.batch == 0 ? 1 : m.batch);
      os.flush();
    }
    r.kind = ResultMessage::ok;
  } catch (const TaskRevoked&) {  // nobody waits for it: no retry, no dead letter
    r.kind = ResultMessage::error;
    r.type_name = "TaskRevokedError";
    r.message = "the task was cancelled by its executor while it ran";
    out.revoked = true;
  } catch (const RemoteError& e) {  // raised in the pool's process: keep the original type
    r.kind = ResultMessage::error;
    r.type_name = e.type_name();
    r.message = e.message();
    where = e.traceback();
  } catch (...) {
    mp::detail::ExceptionInfo info = mp::detail::describe_current_exception();
    r.kind = ResultMessage::error;
    r.type_name = std::move(info.type_name);
    r.message = std::move(info.message);
  }
  if (r.kind == ResultMessage::error) {
    r.result.clear();
    r.traceback = "raised by task '" + m.task + "' in worker " + name_ + " (run " +
                  std::to_string(m.attempt + 1) + " of " + std::to_string(m.max_retries + 1) + ")";
    if (!where.empty()) r.traceback += "; " + where;
    out.retry = !out.revoked && m.attempt < m.max_retries;
  }
  return out;
}

std::chrono::milliseconds TaskRunner::soft_limit(const TaskMessage& m) const {
  return m.soft_time_limit_ms > 0 ? std::chrono::milliseconds(m.soft_time_limit_ms)
                                  : o_.soft_time_limit;
}

// run_in_process(entry, m): one run of m in the pool → its serialized result. A process that dies
// under it throws BrokenProcessPool; the task's own exception comes as RemoteError; a run its
// executor revoked (revoke() kills it) throws TaskRevoked.
std::string TaskRunner::run_in_process(const mp::detail::TaskEntry& entry, const TaskMessage& m) {
  const std::chrono::milliseconds limit =
      m.time_limit_ms > 0 ? std::chrono::milliseconds(m.time_limit_ms) : o_.time_limit;
  Future<std::string> f = pool_->submit_serialized(entry, m.args, m.batch, limit, soft_limit(m));
  auto run = std::make_shared<ProcessRun>(ProcessRun{revoke_key(o_.prefix, m.reply, m.id), f});
  bool early = false;
  {
    std::scoped_lock lock(mu_);
    runs_.push_back(run);
    early = early_revokes_.erase(run->revoke_key) > 0;
  }
  if (early) (void)revoke(run);
  struct Unregister {
    TaskRunner& self;
    const std::shared_ptr<ProcessRun>& run;
    ~Unregister() {
      std::scoped_lock lock(self.mu_);
      std::erase(self.runs_, run);
    }
  } unregister{*this, run};
  f.wait();
  if (f.cancelled()) {
    std::scoped_lock lock(mu_);
    if (run->revoked) {
      ++revoked_;
      throw TaskRevoked();
    }
  }
  try {
    return f.result();
  } catch (const BrokenProcessPool&) {
    {
      std::scoped_lock lock(mu_);
      ++crashed_;
    }
    throw;
  } catch (const TimeLimitExceeded&) {
    {
      std::scoped_lock lock(mu_);
      ++timed_out_;
    }
    throw;
  }
}

std::vector<std::shared_ptr<ProcessRun>> TaskRunner::runs() const {
  std::scoped_lock lock(mu_);
  return runs_;
}

bool TaskRunner::revoke(const std::shared_ptr<ProcessRun>& run) {
  Future<std::string> f;
  {
    std::scoped_lock lock(mu_);
    run->revoked = true;
    f = run->future;
  }
  return f.cancel();
}

void TaskRunner::revoke(const std::string& key) {
  if (!pool_) return;  // a thread's run cannot be stopped
  std::vector<std::shared_ptr<ProcessRun>> found;
  {
    std::scoped_lock lock(mu_);
    for (const auto& run : runs_)
      if (run->revoke_key == key) found.push_back(run);
    if (found.empty() && early_revokes_.insert(key).second) {
      early_order_.push_back(key);
      if (early_order_.size() > kEarlyRevokesKept) {
        early_revokes_.erase(early_order_.front());
        early_order_.pop_front();
      }
    }
  }
  for (const auto& run : found) (void)revoke(run);
}

void TaskRunner::add_stats(WorkerStats& s) const {
  std::scoped_lock lock(mu_);
  s.crashed += crashed_;
  s.revoked += revoked_;
  s.timed_out += timed_out_;
}

}  // namespace concur::dist::detail
