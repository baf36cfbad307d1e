// concur/dist/amqp_executor.hpp — AmqpExecutor: RedisExecutor's contract over RabbitMQ (AMQP
// 0-9-1), Celery's default broker. The same program switches brokers by changing one line:
//
//   dist::AmqpExecutor ex("amqp://guest:guest@10.0.0.5/");  // was: dist::RedisExecutor ex(url);
//   Future<bool> f = ex.submit(is_prime, 112272535095293);   // the same registered tasks
//
// and the workers by one flag (`myapp worker --amqp URL`, WorkerOptions::url "amqp://...").
// AMQP's own reliability does the work (names: P = AmqpOptions::prefix, Q = a queue):
// - a task is a persistent message on the durable queue P.Q (x-max-priority 9: TaskOptions::
//   priority), published with publisher confirms: submit() returns once the broker has it
//   (AmqpOptions::confirm_submit; concurrent submits share one confirm wait);
// - a worker holds at most `prefetch` task messages unacknowledged (basic.qos) and acknowledges a
//   task only after its outcome is confirmed stored, so a worker that dies (kill -9, host gone)
//   has its tasks requeued by the broker and run by another: at least once. A task redelivered
//   more than WorkerOptions::max_deliveries times fails with WorkerLostError;
// - AmqpOptions::max_batch > 1: submits waiting for the publisher together share one message (a
//   TaskBatch), acknowledged once each of its tasks is settled — several times the throughput of
//   short tasks;
// - a failed run with retries left waits in P.delay.Q.<ms> (a per-message TTL) and comes back by
//   dead-lettering to P.Q; a task past its retries is rejected and dead-lettered to P.dead.Q
//   (x-dead-letter-exchange; its x-death header says when);
// - outcomes come back as persistent messages on this executor's durable reply queue
//   P.reply.<id> (x-expires = result_ttl; those a worker has at once in one message), read by a
//   reader thread;
// - running() and an exact cancel(): a worker claims a task (up to 4 x its threads claimed,
//   ready or running: a round trip ahead of them) and runs it only after this executor answered
//   go, which reserves the task for that worker; the future turns running when the worker's
//   notice that the run began arrives. cancel() of a task no worker holds marks it withdrawn (a
//   later claim is answered drop); of a reserved one, it asks the worker back (withdraw) and
//   succeeds only if the worker answers that the task had not started — it then never does. A
//   worker that does not answer within connect_timeout (stalled) keeps the task: cancel() fails,
//   at once for its other tasks until it is heard from again. A claim to an executor that is gone
//   comes back (mandatory) and the task is dropped; unanswered three times (0.5 s, then 5 s each)
//   the task runs. A running task on a --processes worker is cancelled by a revoke on the fanout
//   exchange P.control (its process is killed).
// Differences from RedisExecutor: cluster-wide RateLimit / ConcurrencyLimit need Redis:
// AmqpExecutor refuses them (ValueError). Queues are served round robin, not in the order given
// (use priorities). RedisExecutor refuses TaskOptions::priority.
// Broker unreachable: submit() throws ConnectionError (after one reconnect); the results of
// submitted tasks wait in the reply queue while the reader reconnects with backoff.
// In a process forked from the one that made it, it refuses work as RedisExecutor does
// (executor.hpp). Thread-safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "concur/dist/executor.hpp"

namespace concur::dist {

// AmqpOptions: AmqpExecutor's constructor arguments.
struct AmqpOptions {
  // queue: the default queue (workers serve queues by name: --queues).
  std::string queue = "default";
  // prefix: the namespace of every queue and exchange concur declares (P.Q, P.dead.Q, ...);
  // workers must agree.
  std::string prefix = "concur";
  // task: the TaskOptions of submit() (its queue is ignored: see `queue`).
  TaskOptions task{};
  // result_ttl: how long the reply queue outlives this executor's connection (x-expires): the
  // results wait that long while it reconnects.
  std::chrono::milliseconds result_ttl = std::chrono::hours(24);
  // connect_timeout: bounds connecting, every reply and every publisher confirm.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // confirm_submit: submit() returns once the broker confirmed the task (publisher confirms).
  // False: once the task is handed to the publisher thread (pipelined: several times the submit
  // rate of one thread); a task the broker then refuses, or loses with a connection that cannot be
  // reopened, fails its future (AmqpError, ConnectionError): never lost silently.
  bool confirm_submit = true;
  // track_started: workers report each start and wait for this executor's go (running() from
  // then on; cancel() exact): two transient messages and a round trip per task. False: workers
  // run tasks at once, and cancel() of a task already sent fails (nothing can tell whether a
  // worker has it) — faster (docs/benchmarks.md).
  bool track_started = true;
  // max_batch: up to this many submits waiting for the publisher at once (a burst of submits,
  // map's chunks) for one queue and priority travel as one message (a TaskBatch), taken by one
  // worker. The broker's work is per message, so short tasks go several times faster
  // (docs/benchmarks.md); the costs: the tasks of a message go to one worker (another, idle,
  // cannot take them: keep 1 for long tasks), and a worker that dies has its whole message run
  // again. Each task keeps its own future, start report, cancel, retries and result; one that
  // fails for good is dead-lettered alone (with an x-concur-error header). 1: each task alone.
  std::size_t max_batch = 1;
  // max_workers: what max_workers() reports; 0: 1.
  std::size_t max_workers = 0;
};

class CONCUR_EXPORT AmqpExecutor final : public RemoteExecutor {
 public:
  // AmqpExecutor(url, options) connects twice (the publisher and the reader: ConnectionError when
  // the broker cannot be reached, ValueError for a bad URL or options), declares the default
  // queue, its dead-letter queue, the revoke stream and the reply queue (AmqpError 406 when
  // one exists with other arguments), and starts its threads.
  explicit AmqpExecutor(const std::string& url, AmqpOptions options = {});
  // options() are the constructor's options.
  [[nodiscard]] const AmqpOptions& options() const noexcept { return options_; }

 private:
  AmqpOptions options_;
};

}  // namespace concur::dist
