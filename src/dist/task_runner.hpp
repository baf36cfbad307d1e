// src/dist/task_runner.hpp (internal) — TaskRunner: how a worker runs one task message, whatever
// broker it came from (Redis: worker.cpp, AMQP: amqp_worker.cpp): the registered task invoked on
// the calling thread with its soft time limit, or in a process of the worker's pool
// (WorkerOptions::processes: crash isolation, time limits, revocable runs), and the outcome as the
// ResultMessage for the executor, with whether to retry.
// Thread-safety: run() from any number of threads at once; revoke()/runs() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "concur/dist/worker.hpp"
#include "concur/process_pool.hpp"
#include "protocol.hpp"

namespace concur::dist::detail {

// ProcessRun is a task running in the worker's pool: what a revoke needs to kill it.
struct ProcessRun {
  std::string revoke_key;  // revoke_key(prefix, reply, id): the run's name across brokers
  Future<std::string> future;
  bool revoked = false;  // under TaskRunner's mutex
};

// RunOutcome: one run's result.
struct RunOutcome {
  ResultMessage result;  // ok (the serialized result) or error (RemoteError's fields); id set
  bool retry = false;    // failed with retries left (TaskMessage::max_retries)
  bool revoked = false;  // killed because its executor cancelled it: no retry, no dead letter
};

class TaskRunner {
 public:
  // TaskRunner(options, name): with options.processes, a pool of options.concurrency processes.
  TaskRunner(const WorkerOptions& options, std::string name);
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  // run(m): runs task message `m` → its outcome. Never throws for the task's own failures.
  RunOutcome run(const TaskMessage& m);
  // stoppable(): runs can be killed (processes): the start report says so.
  [[nodiscard]] bool stoppable() const noexcept { return pool_ != nullptr; }
  // runs(): the runs in the pool now.
  [[nodiscard]] std::vector<std::shared_ptr<ProcessRun>> runs() const;
  // revoke(run): kills `run` (its executor cancelled it) → true when it was still running.
  bool revoke(const std::shared_ptr<ProcessRun>& run);
  // revoke(key): revoke() of the runs named `key`; with none running yet, a run of that name that
  // starts later (a revoke that overtook its task on the way to the pool) is killed at once.
  void revoke(const std::string& key);
  // add_stats(s): the runs' counters (crashed, revoked, timed_out) into `s`.
  void add_stats(WorkerStats& s) const;

 private:
  std::chrono::milliseconds soft_limit(const TaskMessage& m) const;
  std::string run_in_process(const mp::detail::TaskEntry& entry, const TaskMessage& m);

  WorkerOptions o_;
  std::string name_;
  std::unique_ptr<ProcessPoolExecutor> pool_;
  mutable std::mutex mu_;  // runs_, the counters, ProcessRun::revoked
  std::vector<std::shared_ptr<ProcessRun>> runs_;
  std::unordered_set<std::string> early_revokes_;  // revoke(key) before its run started
  std::deque<std::string> early_order_;            // (the oldest forgotten first)
  std::uint64_t crashed_ = 0, revoked_ = 0, timed_out_ = 0;
};

}  // namespace concur::dist::detail
