// src/dist/amqp_protocol.hpp (internal) — what AmqpExecutor (amqp_executor.cpp) and the AMQP
// worker (amqp_worker.cpp) agree on: the names of the queues and exchanges, their arguments, the
// message properties, and the control messages. The bodies are protocol.hpp's TaskMessage and
// ResultMessage, as over Redis.
//
// Names (P = the prefix, Q = a queue):
//   P.Q            durable, x-max-priority 9, dead-letters to P.dead.Q: the tasks
//   P.dead.Q       durable: tasks past their retries or deliveries (the broker's x-death header)
//   P.delay.Q.<ms> durable, x-expires: retries waiting <ms> (per-message TTL), then dead-lettered
//                  back to P.Q
//   P.reply.<C>    durable, x-expires result_ttl: executor C's messages (ResultMessage)
//   P.revoked      a stream (x-queue-type stream, x-max-age 1 day): the revokes, read by every
//                  worker from the start (a worker that comes later still knows them)
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "concur/dist/amqp.hpp"
#include "protocol.hpp"

namespace concur::dist::detail {

inline constexpr int kAmqpMaxPriority = 9;
// kDeliveriesHeader: how many times the task was delivered to a worker that did not finish it
// (a worker that takes a redelivered task puts it back with the count raised).
inline constexpr std::string_view kDeliveriesHeader = "x-concur-deliveries";

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
inline std::string amqp_revoke_stream(std::string_view prefix) {
  std::string s(prefix);
  s += ".revoked";
  return s;
}

// kRevokesKeptFor: how long a revoke stays in the stream (x-max-age).
inline constexpr std::string_view kRevokesKeptFor = "1D";

// declare_revoke_stream(mq, prefix): P.revoked.
inline void declare_revoke_stream(Amqp& mq, std::string_view prefix) {
  QueueOptions q{.durable = true};
  q.queue_type = "stream";
  q.max_age = std::string(kRevokesKeptFor);
  (void)mq.declare_queue(amqp_revoke_stream(prefix), q);
}

// ControlMessage: to every worker through P.revoked — job `id` of the executor whose reply
// queue is `reply` was cancelled: drop it when taken, kill its run when running (processes).
// A worker also writes one with its own marker as `reply` (and id 0) when it opens the stream:
// once it reads its marker back, it has read every revoke before it.
struct ControlMessage {
  std::string reply;
  std::uint64_t id = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(reply, id);
  }
};

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
