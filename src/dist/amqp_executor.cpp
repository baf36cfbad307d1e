// AmqpExecutor: a publisher thread owns one connection (confirms on) and publishes what submit(),
// cancel() and revokes hand it, in batches — every message waiting when it wakes is published,
// then one wait for all their confirms — so concurrent submits share a confirm round trip (the
// broker's fsync of persistent messages). A reader thread owns a second connection consuming the
// reply queue and hands the messages (a ResultMessage, or a worker's ResultBatch) to
// RemoteClient::deliver (remote_client.cpp), acknowledging them (multiple) after delivery, and
// answers the start reports with go or drop (the claim that makes cancel() exact): one answer of
// each kind per worker for all the reports read at once.
#include "concur/dist/amqp_executor.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "amqp_protocol.hpp"
#include "concur/dist/amqp.hpp"
#include "remote_client.hpp"

namespace concur::dist {

namespace detail {

namespace {

// kReaderPoll: how long the reader waits for a message before it looks at its stop flag.
constexpr std::chrono::milliseconds kReaderPoll{100};
// kTaskBatchBytes: a TaskBatch grows to about this size at most (big tasks travel alone).
constexpr std::size_t kTaskBatchBytes = std::size_t{1} << 20;

}  // namespace

class AmqpClient final : public RemoteClient {
 public:
  AmqpClient(const std::string& url, const AmqpOptions& options, const std::string& client)
      : RemoteClient(settings_of(options), client, amqp_reply_queue(options.prefix, client)),
        options_(options),
        url_(AmqpUrl::parse(url)) {
    if (options_.result_ttl.count() <= 0) throw ValueError("AmqpOptions::result_ttl must be > 0");
    publisher_ = Amqp::connect(url_, options_.connect_timeout);
    publisher_.confirm_select();
    declare_task_queue(publisher_, options_.prefix, options_.queue);
    publisher_.declare_exchange(amqp_control_exchange(options_.prefix), "fanout", true);
    reader_conn_ = Amqp::connect(url_, options_.connect_timeout);
    open_reader();
  }
  ~AmqpClient() override { join_reader(); }

  static ClientSettings settings_of(const AmqpOptions& o) {
    if (o.queue.empty()) throw ValueError("AmqpOptions::queue must not be empty");
    if (o.prefix.empty()) throw ValueError("AmqpOptions::prefix must not be empty");
    if (o.max_batch == 0) throw ValueError("AmqpOptions::max_batch must be >= 1");
    return ClientSettings{"AmqpExecutor", o.queue,         o.task,
                          o.result_ttl,   o.track_started, o.max_workers};
  }

  void start() override {
    publisher_thread_ = std::thread([this] { publish_loop(); });
    reader_ = std::thread([this] { read_loop(); });
  }

  void join_reader() override {
    std::scoped_lock lock(join_mu_);
    stop_.store(true);
    if (reader_.joinable()) reader_.join();
    {
      std::scoped_lock pl(pub_mu_);
      pub_stop_ = true;
    }
    pub_cv_.notify_all();
    if (publisher_thread_.joinable()) publisher_thread_.join();
  }

 protected:
  void check_task(const TaskOptions& options) const override {
    if (!options.rate_limit.key.empty() || !options.concurrency_limit.key.empty())
      throw ValueError(
          "AmqpExecutor: RateLimit and ConcurrencyLimit are cluster-wide counters AMQP does not "
          "have; use RedisExecutor for tasks that need them (docs/dist.md)");
  }

  std::string send(const TaskMessage& m, const std::string& queue,
                   const TaskOptions& options) override {
    Outgoing out;
    out.routing_key = amqp_task_queue(options_.prefix, queue);
    out.body = encode(m);
    out.properties = task_properties(m, options.priority, 0);
    out.priority = options.priority;
    out.queue = queue;
    std::string handle = out.routing_key;
    out.job = m.id;
    publish(std::move(out), /*wait=*/options_.confirm_submit);
    return handle;
  }

  // take_back: AMQP cannot delete a queued message, and needs not: a worker runs a task only after
  // this executor answered its claim with go. A task no worker holds is marked withdrawn (a later
  // claim is dropped): kWithdrawn. A task reserved for a worker is asked back from it (withdraw):
  // it answers frozen (not started: this executor then sends drop, and the cancel succeeds),
  // started (its notice marks the future running: kTaken) or gone (it does not have the task:
  // withdrawn, unless another worker holds it now: ask that one). No answer within
  // connect_timeout (the worker stalled): thaw, and the cancel fails — the task runs; until that
  // worker is heard from again, the withdraws of its other tasks fail at once. Without
  // start reports (track_started off) nothing can be known: kUnknown.
  FutureStateBase::Withdrawal take_back(const std::string&, const std::string&,
                                        std::uint64_t id) override {
    using W = FutureStateBase::Withdrawal;
    using S = Holding::State;
    if (!options_.track_started) return W::kUnknown;
    std::scoped_lock serial(withdraw_mu_);  // (one withdraw at a time: concurrent cancels agree)
    for (;;) {
      const Holding h = holding(id);
      if (h.state == S::kGone) return W::kUnknown;
      if (h.state == S::kStarted) return W::kTaken;
      if (h.state == S::kFree) return W::kWithdrawn;
      {
        std::scoped_lock lock(answers_mu_);
        if (stalled_.contains(h.holder)) {  // it did not answer the last withdraw either
          give_up(id);
          return W::kTaken;
        }
        asked_ = id;
        answer_.reset();
      }
      publish(control_message(ControlMessage::withdraw, {id}, Destination{"", h.holder}),
              /*wait=*/false);
      std::optional<std::uint8_t> answer;
      {
        std::unique_lock lock(answers_mu_);
        (void)answers_cv_.wait_for(lock, options_.connect_timeout,
                                   [&] { return answer_.has_value() || stop_.load(); });
        answer = answer_;
        asked_ = 0;
        if (!answer) stalled_.insert(h.holder);
      }
      if (!answer) {  // the holder stalled (or this executor is closing): the task runs
        give_up(id);
        publish(control_message(ControlMessage::thaw, {id}, Destination{"", h.holder}),
                /*wait=*/false);
        return W::kTaken;
      }
      if (*answer == ResultMessage::frozen) {
        if (release(id, h.holder)) {
          publish(control_message(ControlMessage::drop, {id}, Destination{"", h.holder}),
                  /*wait=*/false);
          return W::kWithdrawn;
        }
        continue;
      }
      if (*answer == ResultMessage::gone) {
        if (release(id, h.holder)) return W::kWithdrawn;
        continue;
      }
      // started: its notice marked the future running (the next round answers kTaken)
    }
  }

  // send_revoke: a running task on a process worker was cancelled: broadcast on P.control, the
  // worker running it kills the run.
  void send_revoke(std::uint64_t id) noexcept override {
    try {
      publish(control_message(ControlMessage::revoke, {id},
                              Destination{amqp_control_exchange(options_.prefix), ""}),
              /*wait=*/false);
    } catch (const std::exception&) {
    }
  }

  void wake_reader() noexcept override {}  // the reader looks at its flag every kReaderPoll

 private:
  // Outgoing: one message for the publisher thread.
  struct Outgoing {
    std::string exchange{};
    std::string routing_key{};
    std::string body{};
    MessageProperties properties{};
    std::string queue{};        // a task's queue (its name without the prefix)
    std::uint64_t job = 0;      // a task's job (its future fails if nobody waits and it is refused)
    std::uint8_t priority = 0;  // a task's
  };
  // Ticket: a waiting publish's outcome.
  struct Ticket {
    bool done = false;
    std::exception_ptr error{};
  };

  struct Destination {
    std::string exchange;
    std::string routing_key;
  };

  // control_message(kind, ids, to): a ControlMessage about this executor's jobs `ids`.
  Outgoing control_message(ControlMessage::Kind kind, std::vector<std::uint64_t> ids,
                           Destination to) const {
    Outgoing out;
    out.exchange = std::move(to.exchange);
    out.routing_key = std::move(to.routing_key);
    ControlMessage c;
    c.kind = kind;
    c.reply = reply();
    c.ids = std::move(ids);
    out.body = encode(c);
    return out;
  }

  // Answers: the go and drop answers owed to one worker's control queue.
  struct Answers {
    std::vector<std::uint64_t> go;
    std::vector<std::uint64_t> drop;
  };

  // take_reply(d, answers): a reply-queue message — one ResultMessage or a ResultBatch — delivered
  // item by item; the verdicts on start reports are added to what the worker that sent it (its
  // control queue: reply_to) is owed.
  void take_reply(const Delivery& d, std::map<std::string, Answers>& answers) {
    if (!d.properties.reply_to.empty()) {  // a worker that stalled is back
      std::scoped_lock lock(answers_mu_);
      if (!stalled_.empty()) stalled_.erase(d.properties.reply_to);
    }
    std::vector<ResultMessage> items;
    try {
      items = reply_messages(d.body, d.properties);
    } catch (const std::exception&) {
      return;  // not ours
    }
    for (const ResultMessage& m : items) {
      if (m.kind == ResultMessage::frozen || m.kind == ResultMessage::gone) {
        answered(m.id, m.kind);
        continue;
      }
      const bool claim = m.kind == ResultMessage::started && (m.flags & ResultMessage::kClaim) != 0;
      if (!claim) {
        (void)deliver(m);  // a result, or a notice that a run began (marks the future running)
        if (m.kind == ResultMessage::started) answered(m.id, m.kind);
        continue;
      }
      if (d.properties.reply_to.empty()) continue;
      const StartVerdict verdict = reserve(m.id, d.properties.reply_to);
      Answers& a = answers[d.properties.reply_to];
      (verdict == StartVerdict::kGo ? a.go : a.drop).push_back(m.id);
    }
  }

  // answered(id, kind): a worker's answer about job `id`, for the withdraw waiting for it.
  void answered(std::uint64_t id, std::uint8_t kind) {
    {
      std::scoped_lock lock(answers_mu_);
      if (asked_ != id) return;
      answer_ = kind;
    }
    answers_cv_.notify_all();
  }

  // answer(answers): the answers to the start reports just read — at most a go and a drop per
  // worker, published at once on the reader's own connection (transient, no confirm: they must not
  // wait behind the publisher's batch of task confirms). A lost answer costs the worker its claim
  // timeout: it reports again.
  void answer(const std::map<std::string, Answers>& answers) {
    for (const auto& [to, a] : answers) {
      if (!a.go.empty()) {
        const Outgoing out = control_message(ControlMessage::go, a.go, Destination{"", to});
        (void)reader_conn_.publish_nowait(out.exchange, out.routing_key, out.body);
      }
      if (!a.drop.empty()) {
        const Outgoing out = control_message(ControlMessage::drop, a.drop, Destination{"", to});
        (void)reader_conn_.publish_nowait(out.exchange, out.routing_key, out.body);
      }
    }
  }

  // publish(out, wait): hands `out` to the publisher thread; with `wait`, returns once the broker
  // confirmed it (throws what publishing threw: ConnectionError, AmqpError).
  void publish(Outgoing out, bool wait) {
    auto ticket = wait ? std::make_shared<Ticket>() : nullptr;
    std::unique_lock lock(pub_mu_);
    if (pub_stop_) throw RuntimeError("AmqpExecutor: the publisher has stopped");
    outbox_.emplace_back(std::move(out), ticket);
    pub_cv_.notify_all();
    if (!wait) return;
    pub_cv_.wait(lock, [&] { return ticket->done; });
    if (ticket->error) std::rethrow_exception(ticket->error);
  }

  // publish_loop(): the publisher thread — takes every message waiting, publishes them, waits for
  // their confirms once. A broken connection is reconnected and the batch published again once
  // (a message the broker had may then be there twice: at least once); a second failure fails
  // the batch's tickets.
  void publish_loop() {
    std::unique_lock lock(pub_mu_);
    for (;;) {
      pub_cv_.wait(lock, [&] { return pub_stop_ || !outbox_.empty(); });
      if (outbox_.empty()) return;  // stopped with nothing left
      std::vector<std::pair<Outgoing, std::shared_ptr<Ticket>>> batch(
          std::make_move_iterator(outbox_.begin()), std::make_move_iterator(outbox_.end()));
      outbox_.clear();
      lock.unlock();
      std::exception_ptr error;
      for (int attempt = 0; attempt < 2; ++attempt) {
        try {
          if (!publisher_.is_connected()) {
            publisher_.reconnect();
            publisher_.confirm_select();
            declared_.clear();
          }
          publish_batch(batch);
          error = nullptr;
          break;
        } catch (const ConnectionError&) {
          error = std::current_exception();
          publisher_.close();
        } catch (const std::exception&) {  // AmqpError (the connection is closed), a nack
          error = std::current_exception();
          break;
        }
      }
      if (error) {  // tasks whose submit did not wait: their futures fail
        for (auto& [out, ticket] : batch)
          if (!ticket && out.job != 0) fail_job(out.job, error);
      }
      lock.lock();
      for (auto& [out, ticket] : batch) {
        if (!ticket) continue;
        ticket->done = true;
        ticket->error = error;
      }
      pub_cv_.notify_all();
    }
  }

  // publish_batch(batch): every message of the batch published — runs of tasks for one queue at
  // one priority as TaskBatch messages of max_batch tasks at most (1: each alone) — then one wait
  // for all their confirms. Tasks go out mandatory: one the broker sends back had no queue (it
  // was deleted after this connection declared it), and is published again (republish_returned).
  void publish_batch(std::vector<std::pair<Outgoing, std::shared_ptr<Ticket>>>& batch) {
    // (returns left by a batch that failed, a nack before them: its futures have failed already)
    while (publisher_.next_returned()) {
    }
    for (std::size_t i = 0; i < batch.size();) {
      const Outgoing& out = batch[i].first;
      // (a queue other than the executor's own, declared by the constructor: once per connection)
      if (out.job != 0 && out.queue != options_.queue && declared_.insert(out.queue).second)
        declare_task_queue(publisher_, options_.prefix, out.queue);
      std::size_t end = i + 1;
      std::size_t bytes = out.body.size();
      if (out.job != 0) {
        while (end < batch.size() && end - i < options_.max_batch && bytes < kTaskBatchBytes) {
          const Outgoing& next = batch[end].first;
          if (next.job == 0 || next.routing_key != out.routing_key || next.priority != out.priority)
            break;
          bytes += next.body.size();
          ++end;
        }
      }
      if (end == i + 1) {
        (void)publisher_.publish_nowait(out.exchange, out.routing_key, out.body, out.properties,
                                        /*mandatory=*/out.job != 0);
      } else {
        TaskBatch tasks;
        tasks.items.reserve(end - i);
        for (std::size_t k = i; k < end; ++k) tasks.items.push_back(batch[k].first.body);
        MessageProperties p;
        p.persistent = true;
        if (out.priority > 0) p.priority = out.priority;
        p.type = std::string(kTaskBatchType);
        (void)publisher_.publish_nowait("", out.routing_key, encode(tasks), p, /*mandatory=*/true);
      }
      i = end;
    }
    wait_confirms();
    republish_returned(batch);
  }

  // wait_confirms(): the confirms of everything published; AmqpError when the broker refused some.
  void wait_confirms() {
    const std::vector<std::uint64_t> nacked = publisher_.wait_confirms(options_.connect_timeout);
    if (!nacked.empty())
      throw AmqpError(
          0, "the broker refused " + std::to_string(nacked.size()) + " message(s) (basic.nack)");
  }

  // republish_returned(batch): the task messages the broker sent back (basic.return, read
  // with the confirms: their queue no longer exists) are published again, as they were, once
  // their queue is declared anew. Sent back a second time, the batch fails (AmqpError 312: every
  // submit of the batch, as for a nack).
  void republish_returned(const std::vector<std::pair<Outgoing, std::shared_ptr<Ticket>>>& batch) {
    for (int round = 0;; ++round) {
      std::vector<Delivery> back;
      while (std::optional<Delivery> r = publisher_.next_returned()) back.push_back(std::move(*r));
      if (back.empty()) return;
      if (round == 1)
        throw AmqpError(312, "NO_ROUTE - " + std::to_string(back.size()) +
                                 " task message(s) found no queue, even after it was declared "
                                 "again");
      std::set<std::string> declared;
      for (const Delivery& r : back) {
        // its queue: that of a task of the batch with its routing key (only tasks are mandatory)
        const auto task = std::find_if(batch.begin(), batch.end(), [&](const auto& b) {
          return b.first.job != 0 && b.first.routing_key == r.routing_key;
        });
        if (task == batch.end()) continue;
        if (declared.insert(task->first.queue).second)
          declare_task_queue(publisher_, options_.prefix, task->first.queue);
        (void)publisher_.publish_nowait(r.exchange, r.routing_key, r.body, r.properties,
                                        /*mandatory=*/true);
      }
      wait_confirms();
    }
  }

  // open_reader(): declares the reply queue and consumes it (the reader connection).
  void open_reader() {
    declare_reply_queue(reader_conn_, reply(), options_.result_ttl);
    reader_conn_.qos(1024);
    (void)reader_conn_.consume(reply());
  }

  // read_loop(): the reader thread — delivers every message that has arrived, then acknowledges
  // them all at once (multiple); a redelivered one (after a lost connection) is recognised by
  // deliver(). The reply queue is deleted once every future is settled (the executor's end).
  void read_loop() {
    auto backoff = std::chrono::milliseconds(50);
    while (!finished()) {
      try {
        if (!reader_conn_.is_connected()) {
          reader_conn_.reconnect();
          open_reader();
        }
        std::optional<Delivery> d = reader_conn_.next_delivery(kReaderPoll);
        backoff = std::chrono::milliseconds(50);
        std::uint64_t last = 0;
        std::map<std::string, Answers> answers;
        while (d) {
          take_reply(*d, answers);
          last = d->delivery_tag;
          d = reader_conn_.next_delivery(std::chrono::milliseconds(0));
        }
        answer(answers);
        if (last != 0) reader_conn_.ack(last, /*multiple=*/true);
      } catch (const std::exception&) {
        // the broker went away (or closed the channel): the replies wait in their queue
        reader_conn_.close();
        const auto until = std::chrono::steady_clock::now() + backoff;
        while (std::chrono::steady_clock::now() < until && !stop_.load())
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      }
    }
    if (pending() == 0) {
      try {
        if (reader_conn_.is_connected()) reader_conn_.delete_queue(reply());
      } catch (const std::exception&) {
        // x-expires removes it
      }
    }
    reader_conn_.close();
  }

  AmqpOptions options_;
  AmqpUrl url_;

  std::mutex pub_mu_;  // outbox_, pub_stop_, the tickets
  std::condition_variable pub_cv_;
  std::deque<std::pair<Outgoing, std::shared_ptr<Ticket>>> outbox_;
  bool pub_stop_ = false;
  Amqp publisher_;                  // the publisher thread's (before start(): the constructor's)
  std::set<std::string> declared_;  // queues declared on publisher_ (the publisher thread's)
  std::thread publisher_thread_;

  std::mutex withdraw_mu_;  // one withdraw at a time (take_back)
  std::mutex answers_mu_;   // asked_, answer_
  std::condition_variable answers_cv_;
  std::uint64_t asked_ = 0;               // the job a withdraw waits for an answer about
  std::optional<std::uint8_t> answer_{};  // its answer (ResultMessage::frozen, gone, started)
  // stalled_: workers (control queues) that left a withdraw unanswered: the next withdraws from
  // them fail at once, until a message of theirs arrives.
  std::set<std::string> stalled_;

  Amqp reader_conn_;  // the reader thread's
  std::thread reader_;
  std::mutex join_mu_;
};

}  // namespace detail

AmqpExecutor::AmqpExecutor(const std::string& url, AmqpOptions options)
    : RemoteExecutor(std::make_shared<detail::AmqpClient>(url, options, detail::new_client_id())),
      options_(std::move(options)) {}

}  // namespace concur::dist
