// The AMQP worker (Worker with an amqp:// URL): one I/O thread owns the connection — it consumes
// the task queues (basic.qos: `prefetch` unacknowledged at most) and its control queue,
// hands tasks to `concurrency` runner threads, and stores their outcomes: the results (persistent;
// those for one executor in one ResultBatch message) and the retries' messages (on delay queues)
// are published, and the tasks are acknowledged (or rejected to their dead-letter queue) only once
// the broker confirmed them — confirms the loop does not wait for: it goes on claiming and taking
// tasks meanwhile. A task with start reports (track_started) is claimed from its executor up to
// 4 x `concurrency` claimed, ready or running, and runs once the executor answers go (reserved
// for this worker); a runner that takes it sends a notice (running()); an executor's withdraw of
// a reserved task freezes it unless it started (then drop or thaw decide). The claims, notices
// and answers of one round go to each executor in one message.
// rabbitmq-c connections are single-threaded, so the runners never touch it: they queue their
// outcomes and wake the I/O thread through an eventfd it polls beside the socket.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "amqp_protocol.hpp"
#include "concur/dist/amqp.hpp"
#include "concur/errors.hpp"
#include "task_runner.hpp"
#include "worker_impl.hpp"

namespace concur::dist::detail {

namespace {

// kPoll: how long the I/O thread waits for the socket or a runner before it looks at stop().
constexpr std::chrono::milliseconds kPoll{100};
// kClaimAhead: a worker claims tasks while fewer than this many per thread are claimed, ready or
// running (measured: 2 per thread left the threads waiting for go; docs/benchmarks.md).
constexpr std::size_t kClaimAhead = 4;
// kBatchBytes: a ResultBatch grows to about this size at most (big results travel alone).
constexpr std::size_t kBatchBytes = std::size_t{1} << 20;

// Envelope: a TaskBatch message — acknowledged once each of its tasks is settled (I/O thread).
struct Envelope {
  std::uint64_t generation = 0;
  std::uint64_t tag = 0;
  std::size_t unsettled = 0;
};

// Job is a task handed to a runner thread.
struct Job {
  std::uint64_t generation = 0;  // the connection it was delivered on (its tag means nothing on
                                 // another: the broker requeued it when that one closed)
  std::uint64_t tag = 0;
  std::size_t queue = 0;
  TaskMessage message;
  std::uint8_t priority = 0;
  std::string revoke_key;
  std::shared_ptr<Envelope> envelope{};  // the TaskBatch it came in; null: a message of its own
};

// Done is a job's outcome, for the I/O thread to store.
struct Done {
  Job job;
  RunOutcome outcome;
};

class AmqpWorker final : public Worker::Impl {
 public:
  explicit AmqpWorker(WorkerOptions options) : o_(std::move(options)) {
    check_worker_options(o_);
    url_ = AmqpUrl::parse(o_.url);
    for (const std::string& q : o_.queues) task_queues_.push_back(amqp_task_queue(o_.prefix, q));
    control_exchange_ = amqp_control_exchange(o_.prefix);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) throw OSError(errno, "eventfd");
    try {
      runner_ = std::make_unique<TaskRunner>(o_, o_.name);
      mq_ = Amqp::connect(url_, o_.connect_timeout);  // unreachable: the constructor fails
      open();
    } catch (...) {
      ::close(wake_);
      throw;
    }
  }

  ~AmqpWorker() override {
    stop();
    mq_.close();
    ::close(wake_);
  }

  void run() override {
    std::vector<std::thread> runners;
    runners.reserve(o_.concurrency);
    for (std::size_t i = 0; i < o_.concurrency; ++i) runners.emplace_back([this] { run_tasks(); });
    io_loop();
    {
      std::scoped_lock lock(mu_);
      runners_stop_ = true;
    }
    ready_cv_.notify_all();
    for (std::thread& t : runners) t.join();
    mq_.close();
  }

  void stop() noexcept override {
    stop_.store(true, std::memory_order_release);
    wake();  // (a write to an eventfd: async-signal-safe)
  }

  WorkerStats stats() const override {
    std::scoped_lock lock(mu_);
    WorkerStats s = stats_;
    runner_->add_stats(s);
    return s;
  }
  const WorkerOptions& options() const noexcept override { return o_; }

 private:
  bool stopping() const noexcept { return stop_.load(std::memory_order_acquire); }

  void wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_, &one, sizeof one);
  }

  // open(): declares the task queues (and their dead-letter queues) and this worker's control
  // queue on P.control (revokes, and the answers to its start reports), then consumes them (the
  // tasks with acknowledgements, at most `prefetch` unacknowledged).
  void open() {
    mq_.confirm_select();
    for (const std::string& q : o_.queues) declare_task_queue(mq_, o_.prefix, q);
    control_queue_ = declare_control(mq_, o_.prefix);
    (void)mq_.consume(control_queue_, /*no_ack=*/true);
    const std::size_t prefetch = o_.prefetch > 0 ? o_.prefetch : o_.concurrency;
    mq_.qos(static_cast<std::uint16_t>(std::min<std::size_t>(prefetch, 65535)));
    consumers_.clear();
    for (const std::string& q : task_queues_) consumers_.push_back(mq_.consume(q));
    delay_declared_.clear();
  }

  // idle(): nothing taken is unfinished (the warm stop's end).
  bool idle() {
    if (!claiming_.empty() || !held_.empty() || !frozen_.empty() || !storing_.empty()) return false;
    std::scoped_lock lock(mu_);
    return ready_.empty() && running_ == 0 && done_.empty();
  }

  // io_loop(): the I/O thread until a warm stop has nothing left to store.
  void io_loop() {
    auto backoff = std::chrono::milliseconds(50);
    bool consuming = true;
    while (!(stopping() && idle())) {
      try {
        if (!mq_.is_connected()) {
          mq_.reconnect();
          open();
          consuming = true;
          forget_stale();
        }
        if (stopping() && consuming) {  // no new tasks; the ones taken finish
          for (const std::string& tag : consumers_) mq_.cancel(tag);
          consuming = false;
        }
        if (stopping()) requeue_claims();
        store_outcomes();
        settle_stored();
        wait_for_work();
        take_deliveries(consuming);
        while (std::optional<Delivery> r = mq_.next_returned()) unclaimed(*r);
        expire_claims();
        claim_more();
        send_reports();
        store_outcomes();
        settle_stored();
        backoff = std::chrono::milliseconds(50);
      } catch (const std::exception& e) {
        if (dynamic_cast<const ConnectionError*>(&e) == nullptr)
          std::fprintf(stderr, "concur worker %s: %s\n", o_.name.c_str(), e.what());
        mq_.close();
        // What it had not acknowledged, the broker requeues: another worker (or this one, back)
        // runs it again. Stopping, there is nothing more to wait for.
        if (stopping()) return;
        const auto until = std::chrono::steady_clock::now() + backoff;
        while (std::chrono::steady_clock::now() < until && !stopping())
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      }
    }
  }

  // wait_for_work(): until the socket is readable, a runner finished, or kPoll passed.
  void wait_for_work() {
    if (mq_.buffered()) return;
    {
      std::scoped_lock lock(mu_);
      if (!done_.empty()) return;
    }
    pollfd fds[2] = {{mq_.fd(), POLLIN, 0}, {wake_, POLLIN, 0}};
    (void)::poll(fds, 2, static_cast<int>(kPoll.count()));
    if ((fds[1].revents & POLLIN) != 0) {
      std::uint64_t n = 0;
      [[maybe_unused]] const ssize_t r = ::read(wake_, &n, sizeof n);
    }
  }

  // take_deliveries(consuming): every delivery that has arrived, to take(). A task queue deleted
  // under this worker (its consumer cancelled by the broker: ConsumerCancelled, the connection
  // still open) is declared again and consumed again, unless the worker is stopping (it cancelled
  // its consumers itself); the tasks it holds from that queue run on and are acknowledged on this
  // connection (RabbitMQ ignores those acknowledgements: the queue took its messages with it).
  // Any other consumer cancelled (this worker's control queue): the connection is started again.
  void take_deliveries(bool consuming) {
    for (;;) {
      std::optional<Delivery> d;
      try {
        d = mq_.next_delivery(std::chrono::milliseconds(0));
      } catch (const ConsumerCancelled& e) {
        const auto it = std::find(consumers_.begin(), consumers_.end(), e.consumer_tag());
        if (it == consumers_.end()) throw;
        if (consuming) {
          const auto i = static_cast<std::size_t>(it - consumers_.begin());
          std::fprintf(stderr, "concur worker %s: %s; consuming it again\n", o_.name.c_str(),
                       e.what());
          declare_task_queue(mq_, o_.prefix, o_.queues[i]);
          *it = mq_.consume(task_queues_[i]);
        }
        continue;
      }
      if (!d) return;
      take(std::move(*d));
    }
  }

  // forget_stale(): after a reconnect, the jobs waiting for a runner were delivered on the old
  // connection: the broker requeued them, so they are not run from here.
  void forget_stale() {
    ++generation_;
    claiming_.clear();
    held_.clear();
    frozen_.clear();
    reports_.clear();
    std::scoped_lock lock(mu_);
    for (const Storing& st : storing_)  // (unacknowledged: requeued, run again)
      for (const Done& d : st.batch) started_.erase(d.job.revoke_key);
    storing_.clear();
    // (notices_ stay: those runs did begin — sent on the new connection, they keep a cancel()
    // from withdrawing a task whose first run is under way)
    std::erase_if(ready_, [&](const Job& j) { return j.generation != generation_; });
  }

  // take(d): one delivery — a revoke, or a task (or a TaskBatch of them) for the runners.
  void take(Delivery d) {
    if (d.exchange == control_exchange_ || d.routing_key == control_queue_) {
      on_control(d.body);  // (a revoke, or an executor's answer to a start report)
      return;
    }
    const bool batch = d.properties.type == kTaskBatchType;
    std::vector<Job> jobs;
    try {
      if (batch) {
        for (const std::string& item : decode<TaskBatch>(d.body).items)
          jobs.emplace_back().message = decode<TaskMessage>(item);
        if (jobs.empty()) throw ValueError("an empty batch");
      } else {
        jobs.emplace_back().message = decode<TaskMessage>(d.body);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr,
                   "concur worker %s: dead-lettering a message of %s that is not a concur task: "
                   "%s\n",
                   o_.name.c_str(), d.routing_key.c_str(), e.what());
      mq_.reject(d.delivery_tag, /*requeue=*/false);
      return;
    }
    const auto it = std::find(task_queues_.begin(), task_queues_.end(), d.routing_key);
    const std::size_t queue =
        it == task_queues_.end() ? 0 : static_cast<std::size_t>(it - task_queues_.begin());
    if (d.redelivered) {         // its worker died or lost its connection before it acknowledged it
      std::uint32_t before = 0;  // (a header that is not a count counts as none)
      if (const auto h = d.properties.headers.find(std::string(kDeliveriesHeader));
          h != d.properties.headers.end())
        (void)std::from_chars(h->second.data(), h->second.data() + h->second.size(), before);
      take_over(d, queue, jobs, before + 1);
      return;
    }
    std::shared_ptr<Envelope> envelope;
    if (batch)
      envelope = std::make_shared<Envelope>(Envelope{generation_, d.delivery_tag, jobs.size()});
    bool woke = false;
    for (Job& job : jobs) {
      job.generation = generation_;
      job.tag = d.delivery_tag;
      job.priority = d.properties.priority.value_or(0);
      job.queue = queue;
      job.revoke_key = revoke_key(o_.prefix, job.message.reply, job.message.id);
      job.envelope = envelope;
      if (job.message.track_started) {  // run once claimed and the executor answers go
        held_.push_back(std::move(job));
        continue;
      }
      std::scoped_lock lock(mu_);
      ready_.push_back(std::move(job));
      woke = true;
    }
    if (woke) ready_cv_.notify_all();
  }

  // settle(job, dead): the job is done with on this worker (stored, dropped, or put back as a
  // message of its own): its delivery is acknowledged — or rejected when `dead` (the broker
  // dead-letters it) — unless it came on an older connection (the broker requeued it). A task of
  // a TaskBatch only counts down its batch, acknowledged with the last.
  void settle(const Job& job, bool dead) {
    if (job.envelope) {
      if (--job.envelope->unsettled == 0 && job.envelope->generation == generation_)
        mq_.ack(job.envelope->tag);
      return;
    }
    if (job.generation != generation_) return;
    if (dead) {
      mq_.reject(job.tag, /*requeue=*/false);  // → P.dead.Q (x-dead-letter-exchange)
    } else {
      mq_.ack(job.tag);
    }
  }

  // put_back(jobs): tasks taken that have not started go back to their queue — a delivery of its
  // own requeued; a task of a TaskBatch published again alone (the batch cannot be requeued in
  // part), confirmed before its batch may be acknowledged.
  void put_back(std::vector<Job> jobs) {
    bool republished = false;
    for (const Job& job : jobs) {
      if (job.generation != generation_) continue;
      if (job.envelope) {
        send("", task_queues_[job.queue], encode(job.message),
             task_properties(job.message, job.priority, 0));
        republished = true;
      }
    }
    if (republished) confirm();
    for (const Job& job : jobs) {
      if (job.generation != generation_) continue;
      if (job.envelope) {
        settle(job, /*dead=*/false);
      } else {
        mq_.nack(job.tag, /*requeue=*/true);
      }
    }
  }

  // claim_more(): claims held tasks while fewer than 4 x `concurrency` are claimed, ready or
  // running — a claim round trip ahead of the threads, so that a thread that finishes a task finds
  // the next one reserved. A reserved task stays cancellable (withdraw()); the ones held beyond
  // that are not even claimed.
  void claim_more() {
    if (held_.empty()) return;
    std::size_t busy = claiming_.size();
    {
      std::scoped_lock lock(mu_);
      busy += ready_.size() + running_;
    }
    while (!held_.empty() && busy < kClaimAhead * o_.concurrency) {
      claim(std::move(held_.front()));
      held_.pop_front();
      ++busy;
    }
  }

  // claim(job): reports the start to the job's executor (send_reports()) and holds the task until
  // the answer (on_control: go or drop; expire_claims()).
  void claim(Job job) {
    report_start(job);
    const std::string key = job.revoke_key;
    claiming_.emplace(key,
                      Claim{std::move(job), std::chrono::steady_clock::now() + kQuickReclaim, 1});
  }

  void report_start(const Job& job) {
    ResultMessage s;
    s.id = job.message.id;
    s.kind = ResultMessage::started;
    s.flags = ResultMessage::kClaim;
    reports_[job.message.reply].push_back(std::move(s));
  }

  // send_reports(): the start reports of this round, one message per executor — mandatory, so that
  // a reply queue that is gone (the executor shut down) sends it back: unclaimed() — naming this
  // worker's control queue for the answers.
  void send_reports() {
    {
      std::scoped_lock lock(mu_);
      for (auto& [reply, n] : notices_) reports_[reply].push_back(std::move(n));
      notices_.clear();
    }
    for (auto& [reply, items] : reports_) {
      MessageProperties p;
      p.reply_to = control_queue_;
      publish_replies(reply, std::move(items), p, /*mandatory=*/true);
    }
    reports_.clear();
  }

  // publish_replies(reply, items, p, mandatory): ResultMessages to an executor's reply queue — one
  // alone as a ResultMessage (its correlation id set), more as ResultBatch messages of about
  // kBatchBytes at most.
  void publish_replies(const std::string& reply, std::vector<ResultMessage> items,
                       MessageProperties p, bool mandatory) {
    if (items.size() == 1) {
      p.correlation_id = std::to_string(items.front().id);
      send("", reply, encode(items.front()), p, mandatory);
      return;
    }
    p.type = std::string(kResultBatchType);
    ResultBatch batch;
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      bytes += items[i].result.size() + items[i].message.size() + items[i].traceback.size();
      batch.items.push_back(std::move(items[i]));
      if (bytes >= kBatchBytes || i + 1 == items.size()) {
        send("", reply, encode(batch), p, mandatory);
        batch.items.clear();
        bytes = 0;
      }
    }
  }

  // settle_claim(key, go): the executor's answer — the task runs, or is acknowledged and dropped.
  void settle_claim(const std::string& key, bool go) {
    Job job;
    if (const auto it = claiming_.find(key); it != claiming_.end()) {
      job = std::move(it->second.job);
      claiming_.erase(it);
    } else if (const auto f = frozen_.find(key); f != frozen_.end() && !go) {
      job = std::move(f->second);  // withdrawn: the executor cancelled it
      frozen_.erase(f);
    } else {
      return;
    }
    if (!go) {
      settle(job, /*dead=*/false);
      std::scoped_lock lock(mu_);
      ++stats_.revoked;
      return;
    }
    {
      std::scoped_lock lock(mu_);
      ready_.push_back(std::move(job));
    }
    ready_cv_.notify_one();
  }

  // withdraw(key, reply, id): the executor asks a task reserved for this worker back (a cancel()).
  // Not started (waiting for a thread, for the executor's go, or held): frozen — it waits for
  // drop (the cancel succeeded) or thaw (the executor gave up waiting). Started: a notice again.
  // Not here (put back, or lost with an older connection): gone. The answer joins this round's
  // reports.
  void withdraw(const std::string& key, const std::string& reply, std::uint64_t id) {
    ResultMessage a;
    a.id = id;
    a.kind = ResultMessage::gone;
    if (frozen_.contains(key)) {
      a.kind = ResultMessage::frozen;
    } else if (const auto c = claiming_.find(key); c != claiming_.end()) {
      frozen_.emplace(key, std::move(c->second.job));
      claiming_.erase(c);
      a.kind = ResultMessage::frozen;
    } else if (const auto h = std::find_if(held_.begin(), held_.end(),
                                           [&](const Job& j) { return j.revoke_key == key; });
               h != held_.end()) {
      frozen_.emplace(key, std::move(*h));
      held_.erase(h);
      a.kind = ResultMessage::frozen;
    } else {
      std::scoped_lock lock(mu_);
      if (const auto r = std::find_if(ready_.begin(), ready_.end(),
                                      [&](const Job& j) { return j.revoke_key == key; });
          r != ready_.end()) {
        frozen_.emplace(key, std::move(*r));
        ready_.erase(r);
        a.kind = ResultMessage::frozen;
      } else if (started_.contains(key)) {
        a.kind = ResultMessage::started;
      }
    }
    reports_[reply].push_back(std::move(a));
  }

  // thaw(key): the executor gave up waiting for the answer to its withdraw: the task runs.
  void thaw(const std::string& key) {
    const auto f = frozen_.find(key);
    if (f == frozen_.end()) return;
    Job job = std::move(f->second);
    frozen_.erase(f);
    {
      std::scoped_lock lock(mu_);
      ready_.push_front(std::move(job));
    }
    ready_cv_.notify_one();
  }

  // unclaimed(r): start reports the broker sent back: their executor's reply queue is gone —
  // nobody waits for the tasks.
  void unclaimed(const Delivery& r) {
    std::vector<ResultMessage> items;
    try {
      items = reply_messages(r.body, r.properties);
    } catch (const std::exception&) {
      return;
    }
    for (const ResultMessage& m : items)
      settle_claim(revoke_key(o_.prefix, r.routing_key, m.id), /*go=*/false);
  }

  // requeue_claims(): stopping, the tasks held or still waiting for their executor's answer have
  // not started: they go back to their queue (requeued: another worker claims them), rather than
  // make the warm stop wait for answers that may not come (an executor shutting down).
  void requeue_claims() {
    std::vector<Job> back;
    {
      std::scoped_lock lock(mu_);  // reserved tasks no thread took yet
      for (auto it = ready_.begin(); it != ready_.end();) {
        if (it->message.track_started) {
          back.push_back(std::move(*it));
          it = ready_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (claiming_.empty() && held_.empty() && frozen_.empty() && back.empty()) return;
    for (auto& [key, c] : claiming_) back.push_back(std::move(c.job));
    for (Job& job : held_) back.push_back(std::move(job));
    for (auto& [key, job] : frozen_) back.push_back(std::move(job));
    claiming_.clear();
    held_.clear();
    frozen_.clear();
    put_back(std::move(back));
    reports_.clear();
  }

  // expire_claims(): a claim not answered within kQuickReclaim is sent again — the first may have
  // been deleted with its executor's reply queue as the executor ended: the second comes back, and
  // the task is dropped (a second claim to a live executor is answered the same) — and again after
  // kClaimTimeout; not answered then either, the task runs (its executor crashed or is cut off:
  // nobody can cancel it; its result waits in the reply queue).
  void expire_claims() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::string> late;
    for (auto& [key, c] : claiming_) {
      if (c.deadline > now) continue;
      if (c.reports < 3) {
        report_start(c.job);
        ++c.reports;
        c.deadline = now + kClaimTimeout;
      } else {
        late.push_back(key);
      }
    }
    for (const std::string& key : late) settle_claim(key, /*go=*/true);
  }

  // take_over(d, queue, jobs, lost): a task message (`jobs`: its task, or its TaskBatch's)
  // delivered before to workers that did not finish it (`lost` of them). Past max_deliveries its
  // tasks fail with WorkerLostError (and it is dead-lettered); otherwise it goes back to the end
  // of its queue counting them (a classic queue does not count deliveries), so that a task that
  // kills every worker that runs it does not loop forever.
  void take_over(const Delivery& d, std::size_t queue, const std::vector<Job>& jobs,
                 std::uint32_t lost) {
    if (lost + 1 > o_.max_deliveries) {
      std::map<std::string, std::vector<ResultMessage>> results;  // by reply queue
      for (const Job& job : jobs) {
        ResultMessage r;
        r.id = job.message.id;
        r.kind = ResultMessage::error;
        r.type_name = "WorkerLostError";
        r.message = "task '" + job.message.task + "' was taken by " + std::to_string(lost) +
                    " workers that died or stalled before finishing it (max_deliveries " +
                    std::to_string(o_.max_deliveries) + ")";
        r.traceback = "given up by worker " + o_.name;
        results[job.message.reply].push_back(std::move(r));
      }
      for (auto& [reply, items] : results)
        publish_replies(reply, std::move(items), result_properties(), /*mandatory=*/false);
      confirm();
      mq_.reject(d.delivery_tag, /*requeue=*/false);
      std::scoped_lock lock(mu_);
      stats_.failed += jobs.size();
      return;
    }
    MessageProperties p = d.properties;
    p.persistent = true;
    p.headers[std::string(kDeliveriesHeader)] = std::to_string(lost);
    send("", task_queues_[queue], d.body, p);
    confirm();
    mq_.ack(d.delivery_tag);
    std::scoped_lock lock(mu_);
    stats_.taken_over += jobs.size();
  }

  static MessageProperties result_properties() {
    MessageProperties p;
    p.persistent = true;  // an acknowledged task's outcome survives a broker restart
    return p;
  }

  // send(...): publish_nowait, remembering the message's confirm tag.
  void send(std::string_view exchange, std::string_view key, std::string_view body,
            const MessageProperties& p, bool mandatory = false) {
    last_tag_ = mq_.publish_nowait(exchange, key, body, p, mandatory);
  }

  // confirm(): waits for the confirms of everything published; a refused message fails the
  // connection (what was not acknowledged is then requeued and run again).
  void confirm() {
    if (!mq_.wait_confirms(o_.connect_timeout).empty())
      throw AmqpError(0, "the broker refused a message (basic.nack)");
  }

  // on_control(body): a message of this worker's control queue — an executor's answer to a start
  // report (go / drop), or a revoke of a running task (a process run is killed).
  void on_control(std::string_view body) {
    ControlMessage c;
    try {
      c = decode<ControlMessage>(body);
    } catch (const std::exception&) {
      return;
    }
    for (const std::uint64_t id : c.ids) {
      const std::string key = revoke_key(o_.prefix, c.reply, id);
      switch (c.kind) {
        case ControlMessage::revoke:
          runner_->revoke(key);
          break;
        case ControlMessage::withdraw:
          withdraw(key, c.reply, id);
          break;
        case ControlMessage::thaw:
          thaw(key);
          break;
        default:
          settle_claim(key, c.kind == ControlMessage::go);
          break;
      }
    }
  }

  // store_outcomes(): the runners' outcomes — results to their reply queues (one ResultBatch per
  // executor), retries to their delay queues — published, their confirms left to come while the
  // loop goes on claiming and taking tasks (settle_stored()).
  void store_outcomes() {
    Storing s;
    {
      std::scoped_lock lock(mu_);
      s.batch.swap(done_);
    }
    if (s.batch.empty()) return;
    std::map<std::string, std::vector<ResultMessage>> results;  // by reply queue
    for (const Done& d : s.batch) {
      if (d.outcome.retry) {
        publish_retry(d.job);
        continue;
      }
      results[d.job.message.reply].push_back(d.outcome.result);
      if (dead(d) && d.job.envelope) dead_letter(d);
    }
    for (auto& [reply, items] : results)
      publish_replies(reply, std::move(items), result_properties(), /*mandatory=*/false);
    s.last_tag = last_tag_;
    s.deadline = std::chrono::steady_clock::now() + o_.connect_timeout;
    storing_.push_back(std::move(s));
  }

  // settle_stored(): the stored batches whose confirms all came — their tasks acknowledged (a final
  // failure rejected: dead-lettered), in order. A refused message, or confirms that do not come
  // within connect_timeout, fail the connection: the broker requeues what was not acknowledged
  // (run again: at least once); the outcomes are counted only once stored. A task of an older
  // connection is not acknowledged: the broker requeued it.
  void settle_stored() {
    if (!mq_.take_nacked().empty()) throw AmqpError(0, "the broker refused a message (basic.nack)");
    WorkerStats counted;
    std::vector<std::string> stored;  // tracked tasks no longer running here (started_)
    bool settled = false;
    while (!storing_.empty() && mq_.confirmed_through(storing_.front().last_tag)) {
      for (const Done& d : storing_.front().batch) {
        if (d.job.message.track_started) stored.push_back(d.job.revoke_key);
        settle(d.job, dead(d));
        if (d.job.generation != generation_)
          ++counted.lost;  // stored, but the broker gave the task to a worker again
        else if (d.outcome.retry)
          ++counted.retried;
        else if (d.outcome.result.kind == ResultMessage::ok)
          ++counted.succeeded;
        else
          ++counted.failed;
      }
      storing_.pop_front();
      settled = true;
    }
    if (settled) {
      std::scoped_lock lock(mu_);
      for (const std::string& key : stored) started_.erase(key);
      stats_.lost += counted.lost;
      stats_.retried += counted.retried;
      stats_.succeeded += counted.succeeded;
      stats_.failed += counted.failed;
    }
    if (!storing_.empty() && std::chrono::steady_clock::now() >= storing_.front().deadline)
      throw ConnectionError(ETIMEDOUT, "the broker did not confirm the results within " +
                                           std::to_string(o_.connect_timeout.count()) + " ms");
  }

  // dead(d): a final failure (no retry left), which goes to the dead-letter queue.
  static bool dead(const Done& d) {
    return !d.outcome.retry && !d.outcome.revoked && d.outcome.result.kind == ResultMessage::error;
  }

  // dead_letter(d): a task of a TaskBatch that failed for good, published alone to P.dead.Q with
  // its error (its batch cannot be rejected in part).
  void dead_letter(const Done& d) {
    MessageProperties p = task_properties(d.job.message, d.job.priority, 0);
    p.headers[std::string(kDeadErrorHeader)] =
        d.outcome.result.type_name + ": " + d.outcome.result.message;
    send("", amqp_dead_queue(o_.prefix, o_.queues[d.job.queue]), encode(d.job.message), p);
  }

  // publish_retry(job): the next attempt waits its backoff in P.delay.Q.<ms>, then dead-letters
  // back to P.Q.
  void publish_retry(const Job& job) {
    TaskMessage next = job.message;
    const std::uint32_t shift = std::min<std::uint32_t>(next.attempt, 30);
    const std::int64_t delay = std::max<std::int64_t>(
        1, std::min(next.backoff_max_ms, next.backoff_ms * (std::int64_t{1} << shift)));
    ++next.attempt;
    const std::string queue = amqp_delay_queue(o_.prefix, o_.queues[job.queue], delay);
    if (delay_declared_.insert(queue).second)
      (void)declare_delay_queue(mq_, o_.prefix, o_.queues[job.queue], delay);
    MessageProperties p = task_properties(next, job.priority, 0);
    p.expiration = std::chrono::milliseconds(delay);
    send("", queue, encode(next), p);
  }

  // run_tasks(): a runner thread.
  void run_tasks() {
    for (;;) {
      Job job;
      bool first_notice = false;
      {
        std::unique_lock lock(mu_);
        ready_cv_.wait(lock, [&] { return runners_stop_ || !ready_.empty(); });
        if (runners_stop_) return;  // (what waits was not acknowledged: the broker requeues it)
        job = std::move(ready_.front());
        ready_.pop_front();
        ++running_;
        if (job.message.track_started) {  // tell the executor the run begins (running())
          ResultMessage n;
          n.id = job.message.id;
          n.kind = ResultMessage::started;
          if (runner_->stoppable()) n.flags = ResultMessage::kStoppable;
          first_notice = notices_.empty();
          notices_.emplace_back(job.message.reply, std::move(n));
          started_.insert(job.revoke_key);
        }
      }
      if (first_notice) wake();  // (the I/O thread sends all the notices waiting at once)
      Done d;
      d.outcome = runner_->run(job.message);
      d.job = std::move(job);
      {
        std::scoped_lock lock(mu_);
        done_.push_back(std::move(d));
        --running_;
      }
      wake();
    }
  }

  WorkerOptions o_;
  AmqpUrl url_;
  std::vector<std::string> task_queues_;
  std::string control_exchange_;
  std::string control_queue_;  // this connection's (I/O thread)
  // claiming_: tasks whose start was reported, waiting for the executor's go (I/O thread), by
  // revoke_key (executor, job).
  struct Claim {
    Job job;
    std::chrono::steady_clock::time_point deadline;
    int reports = 1;  // start reports sent
  };
  std::unordered_map<std::string, Claim> claiming_;
  // held_: tasks with start reports, delivered, waiting for a free runner to be claimed for
  // (claim_more(); I/O thread).
  std::deque<Job> held_;
  // frozen_: reserved tasks an executor asked back (withdraw()), waiting for its drop or thaw, by
  // revoke_key (I/O thread).
  std::unordered_map<std::string, Job> frozen_;
  // storing_: outcomes published, waiting for their confirms (I/O thread).
  struct Storing {
    std::deque<Done> batch;
    std::uint64_t last_tag = 0;  // the confirm tag of the batch's last message
    std::chrono::steady_clock::time_point deadline{};
  };
  std::deque<Storing> storing_;
  std::uint64_t last_tag_ = 0;  // the last message's confirm tag (send())
  // reports_: the start reports to send this round, by executor reply queue (I/O thread).
  std::map<std::string, std::vector<ResultMessage>> reports_;
  std::vector<std::string> consumers_;    // the task consumers' tags (I/O thread)
  std::set<std::string> delay_declared_;  // delay queues declared on this connection
  std::uint64_t generation_ = 0;          // bumped by every reconnect (I/O thread)
  Amqp mq_;                               // the I/O thread's
  int wake_ = -1;                         // eventfd: a runner finished, or stop()
  std::atomic<bool> stop_{false};
  std::unique_ptr<TaskRunner> runner_;

  mutable std::mutex mu_;  // everything below
  std::condition_variable ready_cv_;
  std::deque<Job> ready_;  // delivered, waiting for a runner
  std::deque<Done> done_;  // run, waiting to be stored
  // notices_: runs that began, to tell their executors (reply queue, notice); started_: the
  // revoke_keys of tracked tasks running or run here and not yet stored (a withdraw's answer).
  std::vector<std::pair<std::string, ResultMessage>> notices_;
  std::unordered_set<std::string> started_;
  std::size_t running_ = 0;
  bool runners_stop_ = false;
  WorkerStats stats_;
};

}  // namespace

std::unique_ptr<Worker::Impl> make_amqp_worker(WorkerOptions o) {
  return std::make_unique<AmqpWorker>(std::move(o));
}

}  // namespace concur::dist::detail
