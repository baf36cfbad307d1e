// src/dist/amqp_protocol.hpp (internal) — what AmqpExecutor (amqp_executor.cpp) and the AMQP
// worker (amqp_worker.cpp) agree on: the names of the queues and exchanges, their arguments, the
// message properties, and the control messages. The bodies are protocol.hpp's TaskMessage and
// ResultMessage, as over Redis — or, on a reply queue, a ResultBatch (AMQP type kResultBatchType):
// the start reports, or the results, a worker has for one executor at once, in one message (the
// broker's work is per message, not per byte).
//
// Names (P = the prefix, Q = a queue):
//   P.Q            durable, x-max-priority 9, dead-letters to P.dead.Q: the tasks (a TaskMessage,
//                  or a TaskBatch of several)
//   P.dead.Q       durable: tasks past their retries or deliveries (the broker's x-death header;
//                  a task of a TaskBatch alone, with kDeadErrorHeader)
//   P.delay.Q.<ms> durable, x-expires: retries waiting <ms> (per-message TTL), then dead-lettered
//                  back to P.Q
//   P.reply.<C>    durable, x-expires result_ttl: executor C's messages (ResultMessage)
//   P.control      a durable fanout exchange: revokes of running tasks (executors → workers),
//                  each worker consuming it through an exclusive queue of its own, where its
//                  executors' answers to its start reports (go / drop) arrive too
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "concur/dist/amqp.hpp"
#include "protocol.hpp"

namespace concur::dist::detail {

inline constexpr int kAmqpMaxPriority = 9;
// kDeliveriesHeader: how many times the task was delivered to a worker that did not finish it
// (a worker that takes a redelivered task puts it back with the count raised).
inline constexpr std::string_view kDeliveriesHeader = "x-concur-deliveries";
// kDeadErrorHeader: on a task of a TaskBatch that a worker dead-lettered itself (the broker's
// x-death header can only describe a whole message), its error ("Type: message").
inline constexpr std::string_view kDeadErrorHeader = "x-concur-error";

inline std::string dotted(std::string_view prefix, std::string_view kind, std::string_view name) {
  std::string s(prefix);
  s += '.';
  s += kind;
  if (!kind.empty()) s += '.';
  s += name;
  return s;
}
inline std::string amqp_task_queue(std::string_view prefix, std::string_view queue) {
  return dotted(prefix, "", queue);
}
inline std::string amqp_dead_queue(std::string_view prefix, std::string_view queue) {
  return dotted(prefix, "dead", queue);
}
inline std::string amqp_delay_queue(std::string_view prefix, std::string_view queue,
                                    std::int64_t ms) {
  std::string name(queue);
  name += '.';
  name += std::to_string(ms);
  return dotted(prefix, "delay", name);
}
inline std::string amqp_reply_queue(std::string_view prefix, std::string_view client) {
  return dotted(prefix, "reply", client);
}
inline std::string amqp_control_exchange(std::string_view prefix) {
  std::string s(prefix);
  s += ".control";
  return s;
}

// kResultBatchType: the `type` property of a message whose body is a ResultBatch.
inline constexpr std::string_view kResultBatchType = "concur.results";

// ResultBatch: several ResultMessages for one executor, in order.
struct ResultBatch {
  std::vector<ResultMessage> items;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(items);
  }
};

// reply_messages(body, properties): the ResultMessages of a reply-queue message — a ResultBatch's
// items, or the one ResultMessage. Throws (mp's errors) for a body that is neither.
inline std::vector<ResultMessage> reply_messages(std::string_view body,
                                                 const MessageProperties& properties) {
  if (properties.type == kResultBatchType) return decode<ResultBatch>(body).items;
  std::vector<ResultMessage> one(1);
  one[0] = decode<ResultMessage>(body);
  return one;
}

// kTaskBatchType: the `type` property of a task message whose body is a TaskBatch: the submits an
// executor had waiting at once (AmqpOptions::max_batch), taken by one worker, acknowledged once all
// of them are settled.
inline constexpr std::string_view kTaskBatchType = "concur.tasks";

// TaskBatch: encoded TaskMessages, in submit order.
struct TaskBatch {
  std::vector<std::string> items;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(items);
  }
};

// kQuickReclaim / kClaimTimeout: a worker whose claim is not answered within kQuickReclaim claims
// again (the first may have gone with its executor's reply queue: the second then comes back), and
// again after kClaimTimeout; unanswered kClaimTimeout after that, it runs the task (the executor
// crashed or is cut off: nobody can cancel it).
inline constexpr std::chrono::milliseconds kQuickReclaim{500};
inline constexpr std::chrono::milliseconds kClaimTimeout{5'000};

// ControlMessage: about the jobs `ids` of the executor whose reply queue is `reply`.
//   revoke: broadcast on P.control — the running job was cancelled: a process worker kills it.
//   go / drop: the executor's answer to a worker's claim (sent to the control queue the claim
//           named in reply_to): the task is reserved for this worker — it runs it when a thread
//           takes it — or dropped (its future was cancelled first, or nobody waits for it any
//           more). drop also ends a withdraw the worker answered frozen: the task never runs.
//   withdraw: cancel() of a task reserved for this worker: the worker answers frozen (not
//           started: it now waits for drop or thaw), started (a notice) or gone (not here).
//   thaw: the executor gave up waiting for the answer to its withdraw (cancel() failed): a frozen
//           task goes back to the worker's ready tasks.
struct ControlMessage {
  enum Kind : std::uint8_t { revoke = 0, go = 1, drop = 2, withdraw = 3, thaw = 4 };
  std::uint8_t kind = revoke;
  std::string reply;
  std::vector<std::uint64_t> ids;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(kind, reply, ids);
  }
};

// declare_control(mq, prefix) → the name of a new exclusive queue bound to P.control.
inline std::string declare_control(Amqp& mq, std::string_view prefix) {
  const std::string exchange = amqp_control_exchange(prefix);
  mq.declare_exchange(exchange, "fanout", true);
  const QueueInfo q = mq.declare_queue("", QueueOptions{.exclusive = true, .auto_delete = true});
  mq.bind_queue(q.name, exchange, "");
  return q.name;
}

// declare_task_queue(mq, prefix, queue): P.dead.Q, then P.Q dead-lettering to it. Executors and
// workers declare the same arguments (a mismatch is AmqpError 406).
inline void declare_task_queue(Amqp& mq, std::string_view prefix, std::string_view queue) {
  const std::string dead = amqp_dead_queue(prefix, queue);
  (void)mq.declare_queue(dead, QueueOptions{.durable = true});
  QueueOptions q{.durable = true};
  q.max_priority = kAmqpMaxPriority;
  q.dead_letter = true;
  q.dead_letter_routing_key = dead;
  (void)mq.declare_queue(amqp_task_queue(prefix, queue), q);
}

// declare_delay_queue(mq, prefix, queue, ms): P.delay.Q.<ms>, dead-lettering to P.Q; it expires
// a minute after its last use (longer than any message in it waits).
inline std::string declare_delay_queue(Amqp& mq, std::string_view prefix, std::string_view queue,
                                       std::int64_t ms) {
  const std::string name = amqp_delay_queue(prefix, queue, ms);
  QueueOptions q{.durable = true};
  q.dead_letter = true;
  q.dead_letter_routing_key = amqp_task_queue(prefix, queue);
  q.expires = std::chrono::milliseconds(ms + 60'000);
  (void)mq.declare_queue(name, q);
  return name;
}

// declare_reply_queue(mq, name, ttl): an executor's reply queue.
inline void declare_reply_queue(Amqp& mq, std::string_view name, std::chrono::milliseconds ttl) {
  QueueOptions q{.durable = true};
  q.expires = ttl;
  (void)mq.declare_queue(name, q);
}

// task_properties(m, priority, deliveries): a task message's properties.
inline MessageProperties task_properties(const TaskMessage& m, std::uint8_t priority,
                                         std::uint32_t deliveries) {
  MessageProperties p;
  p.persistent = true;
  if (priority > 0) p.priority = priority;
  p.correlation_id = std::to_string(m.id);
  p.reply_to = m.reply;
  p.type = m.task;
  if (deliveries > 0) p.headers.emplace(std::string(kDeliveriesHeader), std::to_string(deliveries));
  return p;
}

}  // namespace concur::dist::detail
