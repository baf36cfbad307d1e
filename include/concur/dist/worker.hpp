// concur/dist/worker.hpp — the worker side of RedisExecutor and AmqpExecutor: any program that
// registers tasks (CONCUR_TASK) can serve them, from Redis or RabbitMQ (the URL's scheme picks;
// over RabbitMQ see amqp_executor.hpp: the broker's acknowledgements replace the leases below).
//
//   int main(int argc, char** argv) {
//     if (argc > 1 && std::string_view(argv[1]) == "worker")
//       return concur::dist::worker_main(argc - 1, argv + 1);  // myapp worker --redis URL ...
//     ...
//   }
//
// A Worker reads tasks from its queues' streams as one consumer of the group "workers" (its name:
// host:pid by default) on `concurrency` threads, each taking one task at a time and running it
// itself (no hand-off: a task starts as soon as its thread reads it) or, with
// WorkerOptions::processes, in a process of its pool (crash isolation, cancellable runs). While a
// task runs its lease is renewed every lease/3; a task whose lease expired (its worker died or
// stalled) is taken over by a live worker, at most max_deliveries times (then it fails with
// WorkerLostError and goes to the dead letters: a task that kills every worker that runs it does
// not loop forever). Queues are served in the order given: a task of the first queue is taken
// before one of the second (priorities). Retries of failed tasks wait in a sorted set until due;
// every worker moves due ones back to their stream. stop() is a warm shutdown: no new task is
// taken, the ones taken finish and report, run() returns. worker_main installs SIGINT/SIGTERM
// handlers: the first signal stops warmly, a second one exits at once (the leases then expire and
// other workers take the tasks over). Thread-safety: stop() may be called from any thread or a
// signal handler; the rest from one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "concur/detail/config.hpp"

namespace concur::dist {

struct WorkerOptions {
  // url: the Redis server (redis://host:port/db or unix:///path), or a RabbitMQ broker
  // (amqp://user:password@host:port/vhost: lease does not apply there).
  std::string url = "redis://127.0.0.1:6379";
  // queues: served in this order (a task of an earlier queue is taken first).
  std::vector<std::string> queues{"default"};
  // prefix: the key namespace; executors and workers must agree.
  std::string prefix = "concur";
  // concurrency: tasks run at once (threads); 0: mp::cpu_count().
  std::size_t concurrency = 0;
  // prefetch: how many tasks the worker holds at once; 0: `concurrency`, one per thread. More
  // lets the next tasks arrive while these run, but a worker busy with long tasks then holds
  // queued ones that an idle worker could run (Celery's prefetch multiplier of 4 has that cost):
  // raise it for short tasks. A worker that dies had at most this many in flight: the bound on
  // the tasks run twice.
  // - Over RabbitMQ: unacknowledged task messages (basic.qos; each up to AmqpOptions::max_batch
  //   tasks); the ones beyond the free threads wait unclaimed, still cancellable.
  // - Over Redis: each serving thread's read takes prefetch ÷ concurrency tasks (at least one;
  //   with several queues, a blocking read over all of them takes one of each, as without).
  //   The extras wait in the worker, leased to it (`cancel()` of them fails, as for a running
  //   task), for the first free thread; while tasks wait, a thread writes a finished task's
  //   outcome and goes on without waiting for Redis's answer — fewer round trips and wake-ups per
  //   task (docs/dist.md).
  std::size_t prefetch = 0;
  // lease: how long a taken task stays this worker's without a renewal; a dead worker's tasks
  // are taken over this long after its last renewal.
  std::chrono::milliseconds lease{30000};
  // max_deliveries: a task taken over this many times (its workers kept dying) fails for good.
  std::uint32_t max_deliveries = 5;
  // name: this worker's consumer name; empty: "<hostname>:<pid>".
  std::string name{};
  // connect_timeout: bounds connecting and every reply.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // processes: each task runs in a process of a pool this worker owns (ProcessPoolExecutor,
  // `concurrency` processes), not on the serving thread. A task that crashes its process
  // (segfault, abort, _exit) then fails alone — the run fails with BrokenProcessPool and is
  // retried per its max_retries — while the worker and its other tasks go on; and a running task
  // can be cancelled (RedisExecutor's cancel(): the process is killed). Costs a round trip to the
  // process per task.
  bool processes = false;
  // time_limit: the longest a run may take unless its task says otherwise (TaskOptions::
  // time_limit); zero: no limit. Enforced with processes only: the run's process is killed (and
  // replaced) and the run fails with TimeLimitExceeded, retried per its max_retries.
  std::chrono::milliseconds time_limit{0};
  // soft_time_limit: when a run is told that it took too long unless its task says otherwise
  // (TaskOptions::soft_time_limit; see concur/mp/task.hpp); zero: never. Threads or processes.
  std::chrono::milliseconds soft_time_limit{0};
};

// WorkerStats: what a worker did so far.
struct WorkerStats {
  std::uint64_t succeeded = 0;   // tasks whose result was stored
  std::uint64_t failed = 0;      // tasks whose final error was stored
  std::uint64_t retried = 0;     // failed runs put back for a retry
  std::uint64_t taken_over = 0;  // tasks taken over from a dead or stalled worker
  std::uint64_t lost = 0;        // results dropped: the lease had passed to another worker (or
                                 // an outcome stored again after its connection broke found it
                                 // stored already)
  std::uint64_t recovered = 0;   // tasks taken back after Redis lost the reply that took them
  std::uint64_t deferred = 0;    // tasks put back to wait for their RateLimit / ConcurrencyLimit
  std::uint64_t crashed = 0;     // runs whose process died under them (processes)
  std::uint64_t revoked = 0;     // runs killed because their executor cancelled them (processes);
                                 // over AMQP also tasks dropped because their executor answered
                                 // their start report with drop (cancelled first) or was gone
  std::uint64_t timed_out = 0;   // runs killed at their time limit (processes)
};

class CONCUR_EXPORT Worker {
 public:
  // Worker(options) checks the options (ValueError) and connects (ConnectionError).
  explicit Worker(WorkerOptions options);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // run() serves tasks until stop(), then lets the tasks taken finish and returns. Redis going
  // away is waited out (reconnecting with backoff), not thrown. UsageError in a process forked
  // from the one that made the Worker (it would share the parent's consumer name).
  void run();
  // stop(): run() returns once the running tasks are done. Async-signal-safe.
  void stop() noexcept;
  [[nodiscard]] WorkerStats stats() const;
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] const WorkerOptions& options() const noexcept;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// worker_main(argc, argv): a worker's command line —
//   --redis URL | --amqp URL  --queues a,b  --concurrency N  --lease SECONDS  --max-deliveries N
//   --name NAME  --prefix P  --processes  --time-limit SECONDS  --soft-time-limit SECONDS
// serves until SIGINT/SIGTERM (warm), a second signal exits at once. Returns the exit code (0;
// 2 for bad arguments; 1 when the broker cannot be reached at start).
CONCUR_EXPORT int worker_main(int argc, char** argv);

}  // namespace concur::dist
