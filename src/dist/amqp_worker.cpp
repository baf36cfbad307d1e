// The AMQP worker (Worker with an amqp:// URL): one I/O thread owns the connection — it consumes
// the task queues (basic.qos: `concurrency` unacknowledged at most) and the revoke stream,
// hands tasks to `concurrency` runner threads, and stores their outcomes: each result (or the
// retry's message, on a delay queue) is published persistent, the batch's publisher confirms are
// awaited once, and only then are the tasks acknowledged (or rejected to their dead-letter queue).
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
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
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
// kInternalError: AMQP's 541 INTERNAL_ERROR.
constexpr int kInternalError = 541;
// kRevokedKept: how many revokes a worker remembers (the oldest are forgotten first).
constexpr std::size_t kRevokedKept = 100'000;

// Job is a task handed to a runner thread.
struct Job {
  std::uint64_t generation = 0;  // the connection it was delivered on (its tag means nothing on
                                 // another: the broker requeued it when that one closed)
  std::uint64_t tag = 0;
  std::size_t queue = 0;
  TaskMessage message;
  std::uint8_t priority = 0;
  std::string revoke_key;
};

// Done is a job's outcome, for the I/O thread to store.
struct Done {
  Job job;
  RunOutcome outcome;
  bool dropped = false;  // revoked before it ran: acknowledged, nothing stored
};

class AmqpWorker final : public Worker::Impl {
 public:
  explicit AmqpWorker(WorkerOptions options) : o_(std::move(options)) {
    check_worker_options(o_);
    url_ = AmqpUrl::parse(o_.url);
    for (const std::string& q : o_.queues) task_queues_.push_back(amqp_task_queue(o_.prefix, q));
    revoke_stream_ = amqp_revoke_stream(o_.prefix);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) throw OSError(errno, "eventfd");
    try {
      runner_ = std::make_unique<TaskRunner>(o_, o_.name);
      // Unreachable: the constructor fails. A stream just declared by another worker may refuse a
      // consumer for a moment (541 INTERNAL_ERROR while its replica starts): tried again.
      const auto deadline = std::chrono::steady_clock::now() + o_.connect_timeout;
      for (;;) {
        try {
          mq_ = Amqp::connect(url_, o_.connect_timeout);
          open();
          break;
        } catch (const AmqpError& e) {
          if (e.code() != kInternalError || std::chrono::steady_clock::now() >= deadline) throw;
          mq_.close();
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
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

  // open(): declares the task queues (and their dead-letter queues) and the revoke stream; reads
  // the stream from its start up to a marker this worker writes (so every revoke made before is
  // known before any task is taken), then consumes the task queues (at most `concurrency`
  // unacknowledged) and the rest of the stream.
  void open() {
    mq_.confirm_select();
    for (const std::string& q : o_.queues) declare_task_queue(mq_, o_.prefix, q);
    declare_revoke_stream(mq_, o_.prefix);
    mq_.qos(1000);  // (a stream's consumer needs a prefetch; the revokes are read in bulk)
    (void)mq_.consume(revoke_stream_, /*no_ack=*/false, /*exclusive=*/false,
                      {{"x-stream-offset", "first"}});
    const std::string marker = "marker:" + o_.name + ":" + std::to_string(++markers_);
    MessageProperties p;
    p.persistent = true;
    (void)mq_.publish_nowait("", revoke_stream_, encode(ControlMessage{marker, 0}), p);
    confirm();
    const auto deadline = std::chrono::steady_clock::now() + o_.connect_timeout;
    for (bool seen = false; !seen;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        throw ConnectionError(ETIMEDOUT, "the revoke stream " + revoke_stream_ +
                                             " did not give back this worker's marker");
      std::optional<Delivery> d = mq_.next_delivery(left);
      if (!d) continue;
      seen = on_revoke(d->body) == marker;
      mq_.ack(d->delivery_tag);
    }
    mq_.qos(static_cast<std::uint16_t>(std::min<std::size_t>(o_.concurrency, 65535)));
    consumers_.clear();
    for (const std::string& q : task_queues_) consumers_.push_back(mq_.consume(q));
    delay_declared_.clear();
  }

  // idle(): nothing taken is unfinished (the warm stop's end).
  bool idle() {
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
        store_outcomes();
        wait_for_work();
        while (std::optional<Delivery> d = mq_.next_delivery(std::chrono::milliseconds(0)))
          take(std::move(*d));
        store_outcomes();
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

  // forget_stale(): after a reconnect, the jobs waiting for a runner were delivered on the old
  // connection: the broker requeued them, so they are not run from here.
  void forget_stale() {
    ++generation_;
    std::scoped_lock lock(mu_);
    std::erase_if(ready_, [&](const Job& j) { return j.generation != generation_; });
  }

  // take(d): one delivery — a revoke, or a task for the runners.
  void take(Delivery d) {
    if (d.routing_key == revoke_stream_) {
      (void)on_revoke(d.body);
      mq_.ack(d.delivery_tag);
      return;
    }
    Job job;
    try {
      job.message = decode<TaskMessage>(d.body);
    } catch (const std::exception& e) {
      std::fprintf(stderr,
                   "concur worker %s: dead-lettering a message of %s that is not a concur task: "
                   "%s\n",
                   o_.name.c_str(), d.routing_key.c_str(), e.what());
      mq_.reject(d.delivery_tag, /*requeue=*/false);
      return;
    }
    job.generation = generation_;
    job.tag = d.delivery_tag;
    job.priority = d.properties.priority.value_or(0);
    const auto it = std::find(task_queues_.begin(), task_queues_.end(), d.routing_key);
    job.queue = it == task_queues_.end() ? 0 : static_cast<std::size_t>(it - task_queues_.begin());
    job.revoke_key = revoke_key(o_.prefix, job.message.reply, job.message.id);
    if (revoked(job.revoke_key)) {
      mq_.ack(job.tag);
      return;
    }
    if (d.redelivered) {         // its worker died or lost its connection before it acknowledged it
      std::uint32_t before = 0;  // (a header that is not a count counts as none)
      if (const auto h = d.properties.headers.find(std::string(kDeliveriesHeader));
          h != d.properties.headers.end())
        (void)std::from_chars(h->second.data(), h->second.data() + h->second.size(), before);
      take_over(job, before + 1);
      return;
    }
    if (job.message.track_started) {
      ResultMessage s;
      s.id = job.message.id;
      s.kind = ResultMessage::started;
      if (runner_->stoppable()) s.flags = ResultMessage::kStoppable;
      MessageProperties p;
      p.correlation_id = std::to_string(s.id);
      (void)mq_.publish_nowait("", job.message.reply, encode(s), p);
    }
    {
      std::scoped_lock lock(mu_);
      ready_.push_back(std::move(job));
    }
    ready_cv_.notify_one();
  }

  // take_over(job, lost): a task delivered before to workers that did not finish it (`lost` of
  // them). Past max_deliveries it fails with WorkerLostError (and is dead-lettered); otherwise it
  // goes back to the end of its queue counting them (a classic queue does not count deliveries),
  // so that a task that kills every worker that runs it does not loop forever.
  void take_over(const Job& job, std::uint32_t lost) {
    if (lost + 1 > o_.max_deliveries) {
      ResultMessage r;
      r.id = job.message.id;
      r.kind = ResultMessage::error;
      r.type_name = "WorkerLostError";
      r.message = "task '" + job.message.task + "' was taken by " + std::to_string(lost) +
                  " workers that died or stalled before finishing it (max_deliveries " +
                  std::to_string(o_.max_deliveries) + ")";
      r.traceback = "given up by worker " + o_.name;
      publish_result(job.message, r);
      confirm();
      mq_.reject(job.tag, /*requeue=*/false);
      std::scoped_lock lock(mu_);
      ++stats_.failed;
      return;
    }
    (void)mq_.publish_nowait("", task_queues_[job.queue], encode(job.message),
                             task_properties(job.message, job.priority, lost));
    confirm();
    mq_.ack(job.tag);
    std::scoped_lock lock(mu_);
    ++stats_.taken_over;
  }

  void publish_result(const TaskMessage& m, const ResultMessage& r) {
    MessageProperties p;
    p.persistent = true;  // an acknowledged task's outcome survives a broker restart
    p.correlation_id = std::to_string(r.id);
    (void)mq_.publish_nowait("", m.reply, encode(r), p);
  }

  // confirm(): waits for the confirms of everything published; a refused message fails the
  // connection (what was not acknowledged is then requeued and run again).
  void confirm() {
    if (!mq_.wait_confirms(o_.connect_timeout).empty())
      throw AmqpError(0, "the broker refused a message (basic.nack)");
  }

  // on_revoke(body): a message of the revoke stream — remember the revoke, drop the task if it
  // waits for a runner, kill its run if it runs in a process → its `reply` (a worker's marker).
  std::string on_revoke(std::string_view body) {
    ControlMessage c;
    try {
      c = decode<ControlMessage>(body);
    } catch (const std::exception&) {
      return {};
    }
    if (c.id == 0) return c.reply;  // a marker (job ids start at 1)
    const std::string key = revoke_key(o_.prefix, c.reply, c.id);
    std::vector<Job> dropped;
    {
      std::scoped_lock lock(mu_);
      if (revoked_set_.insert(key).second) {
        revoked_order_.push_back(key);
        if (revoked_order_.size() > kRevokedKept) {
          revoked_set_.erase(revoked_order_.front());
          revoked_order_.pop_front();
        }
      }
      for (auto it = ready_.begin(); it != ready_.end();) {
        if (it->revoke_key == key) {
          dropped.push_back(std::move(*it));
          it = ready_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const Job& j : dropped)
      if (j.generation == generation_) mq_.ack(j.tag);
    runner_->revoke(key);
    return c.reply;
  }

  bool revoked(const std::string& key) {
    std::scoped_lock lock(mu_);
    return revoked_set_.contains(key);
  }

  // store_outcomes(): the runners' outcomes — results to their reply queues, retries to their
  // delay queues — confirmed as one batch, then the tasks acknowledged (a final failure rejected:
  // dead-lettered). A task of an older connection is not acknowledged: the broker requeued it.
  void store_outcomes() {
    std::deque<Done> batch;
    {
      std::scoped_lock lock(mu_);
      batch.swap(done_);
    }
    if (batch.empty()) return;
    // A failure below (the connection lost) leaves the whole batch to the broker's requeue; the
    // outcomes are counted only once stored.
    for (const Done& d : batch) {
      if (d.dropped) continue;
      if (d.outcome.retry) {
        publish_retry(d.job);
      } else {
        publish_result(d.job.message, d.outcome.result);
      }
    }
    confirm();
    WorkerStats counted;
    for (const Done& d : batch) {
      const bool current = d.job.generation == generation_;
      if (current) {
        const bool dead = !d.dropped && !d.outcome.retry && !d.outcome.revoked &&
                          d.outcome.result.kind == ResultMessage::error;
        if (dead) {
          mq_.reject(d.job.tag, /*requeue=*/false);  // → P.dead.Q (x-dead-letter-exchange)
        } else {
          mq_.ack(d.job.tag);
        }
      }
      if (d.dropped) continue;
      if (!current)
        ++counted.lost;  // stored, but the broker gave the task to a worker again
      else if (d.outcome.retry)
        ++counted.retried;
      else if (d.outcome.result.kind == ResultMessage::ok)
        ++counted.succeeded;
      else
        ++counted.failed;
    }
    std::scoped_lock lock(mu_);
    stats_.lost += counted.lost;
    stats_.retried += counted.retried;
    stats_.succeeded += counted.succeeded;
    stats_.failed += counted.failed;
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
    (void)mq_.publish_nowait("", queue, encode(next), p);
  }

  // run_tasks(): a runner thread.
  void run_tasks() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        ready_cv_.wait(lock, [&] { return runners_stop_ || !ready_.empty(); });
        if (runners_stop_) return;  // (what waits was not acknowledged: the broker requeues it)
        job = std::move(ready_.front());
        ready_.pop_front();
        ++running_;
      }
      Done d;
      if (revoked(job.revoke_key)) {  // revoked since it was taken: it does not run
        d.dropped = true;
      } else {
        d.outcome = runner_->run(job.message);
      }
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
  std::string revoke_stream_;
  std::vector<std::string> consumers_;    // the task consumers' tags (I/O thread)
  std::set<std::string> delay_declared_;  // delay queues declared on this connection
  std::uint64_t generation_ = 0;          // bumped by every reconnect (I/O thread)
  std::uint64_t markers_ = 0;             // markers written to the revoke stream
  Amqp mq_;                               // the I/O thread's
  int wake_ = -1;                         // eventfd: a runner finished, or stop()
  std::atomic<bool> stop_{false};
  std::unique_ptr<TaskRunner> runner_;

  mutable std::mutex mu_;  // everything below
  std::condition_variable ready_cv_;
  std::deque<Job> ready_;  // delivered, waiting for a runner
  std::deque<Done> done_;  // run, waiting to be stored
  std::size_t running_ = 0;
  bool runners_stop_ = false;
  std::unordered_set<std::string> revoked_set_;
  std::deque<std::string> revoked_order_;
  WorkerStats stats_;
};

}  // namespace

std::unique_ptr<Worker::Impl> make_amqp_worker(WorkerOptions o) {
  return std::make_unique<AmqpWorker>(std::move(o));
}

}  // namespace concur::dist::detail
