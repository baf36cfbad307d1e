// RedisExecutor: submits are pipelined XADDs on one connection (their entry ids read as they
// come back); a reader thread on a second connection
// reads this executor's reply list (LRANGE, then LTRIM with the next LRANGE, up to 256 messages
// at a time; BLMOVE onto itself to wait) and hands them to RemoteClient::deliver
// (remote_client.cpp), which settles the futures.
#include "concur/dist/executor.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "concur/dist/redis.hpp"
#include "protocol.hpp"
#include "remote_client.hpp"

namespace concur::dist {

namespace detail {

namespace {

// kLastText: the last index one LRANGE reads (256 messages at most).
constexpr std::string_view kLastText = "255";
// kPollSeconds: how long the reader blocks in BLMOVE before it looks at its stop flag (shutdown
// also pushes a wake message, so this only bounds a lost wake-up).
constexpr int kPollSeconds = 1;
constexpr std::string_view kPollText = "1";

// with_reconnect(conn, fn): fn(); a broken connection is reconnected once and fn retried.
template <class Fn>
auto with_reconnect(Redis& conn, Fn&& fn) {
  if (!conn.is_connected()) conn.reconnect();
  try {
    return fn();
  } catch (const ConnectionError&) {
    conn.reconnect();
    return fn();
  }
}

}  // namespace

class RedisClient final : public RemoteClient {
 public:
  RedisClient(const std::string& url, const RedisOptions& options, const std::string& client)
      : RemoteClient(settings_of(options), client, reply_key(options.prefix, client)),
        options_(options),
        url_(RedisUrl::parse(url)) {
    if (options_.prefix.empty()) throw ValueError("RedisOptions::prefix must not be empty");
    submit_ = Redis::connect(url_, options_.connect_timeout);
    ensure_group(submit_, stream_key(options_.prefix, options_.queue));
    reader_conn_ = Redis::connect(url_, options_.connect_timeout);
    // BLMOVE blocks kPollSeconds: its replies may take that long.
    reader_conn_.set_timeout(options_.connect_timeout + std::chrono::seconds(kPollSeconds));
  }
  ~RedisClient() override { join_reader(); }

  static ClientSettings settings_of(const RedisOptions& o) {
    if (o.queue.empty()) throw ValueError("RedisOptions::queue must not be empty");
    return ClientSettings{"RedisExecutor", o.queue,         o.task,
                          o.result_ttl,    o.track_started, o.max_workers};
  }

  void start() override {
    reader_ = std::thread([this] { read_loop(); });
  }

  void join_reader() override {
    std::scoped_lock lock(join_mu_);
    if (reader_.joinable()) {
      stop_.store(true);
      wake_reader();
      reader_.join();
    }
  }

 protected:
  void check_task(const TaskOptions& options) const override {
    if (options.priority != 0)
      throw ValueError(
          "RedisExecutor has no message priorities (TaskOptions::priority is AMQP's): put urgent "
          "tasks on a queue the workers serve first (WorkerOptions::queues)");
  }

  // send: the XADD goes out (pipelined) without waiting for its answer, the entry id a cancel
  // needs. The answers are read as they arrive — at every send, and by the reader thread after each
  // of its rounds — and all of them before any other command uses the connection (drain()). A
  // broken connection is made again once and the unanswered XADDs sent again (at least once, as a
  // retried XADD always was); failing that, this submit throws and the unanswered ones fail.
  std::string send(const TaskMessage& m, const std::string& queue, const TaskOptions&) override {
    Unanswered u{m.id, stream_key(options_.prefix, queue), m.task, encode(m)};
    Failures failed(*this);  // settled once the lock is released, however this ends
    std::scoped_lock lock(submit_mu_);
    if (queue != options_.queue && known_queues_.insert_if_new(queue)) {
      drain(failed);
      with_reconnect(submit_, [&] { ensure_group(submit_, u.stream); });
    }
    unanswered_.push_back(std::move(u));
    bool sent = false;
    if (submit_.is_connected()) {
      try {
        pipe(unanswered_.back());
        submit_.flush();
        sent = true;
      } catch (const ConnectionError&) {
        // made again below
      }
    }
    if (!sent) {
      try {
        resend();
      } catch (const ConnectionError&) {
        unanswered_.pop_back();  // this submit throws; the others fail with the same error
        fail_unanswered(std::current_exception(), failed);
        throw;
      }
    }
    collect_ready(failed);
    return std::string(kUnansweredEntry);
  }

  // take_back: the CANCEL script deletes the entry unless a worker took it (atomic on the server).
  FutureStateBase::Withdrawal take_back(const std::string& queue, const std::string& handle,
                                        std::uint64_t id) override {
    const std::string stream = stream_key(options_.prefix, queue);
    Failures failed(*this);
    std::scoped_lock lock(submit_mu_);
    drain(failed);  // (every answer read: the script's must be the next one)
    std::string entry = handle;
    if (entry == kUnansweredEntry) {
      entry = handle_of(id);
      if (entry.empty() || entry == kUnansweredEntry)
        return FutureStateBase::Withdrawal::kUnknown;  // its XADD failed: settled already
    }
    const Reply r = with_reconnect(submit_, [&] {
      return cancel_script().run(submit_, {stream}, {kGroup, entry});
    });
    return r.as_integer() == 1 ? FutureStateBase::Withdrawal::kWithdrawn
                               : FutureStateBase::Withdrawal::kTaken;
  }

  // send_revoke: the revoke key tells the worker (it looks every duty period). With Redis
  // unreachable the run goes on and its result is dropped.
  void send_revoke(std::uint64_t id) noexcept override {
    const std::string key = revoke_key(options_.prefix, reply(), id);
    try {
      Failures failed(*this);
      std::scoped_lock lock(submit_mu_);
      drain(failed);
      with_reconnect(submit_, [&] {
        (void)submit_.command({"SET", key, "1", "PX",
                               std::to_string(std::max<std::int64_t>(
                                   1, static_cast<std::int64_t>(options_.result_ttl.count())))});
      });
    } catch (const std::exception&) {
    }
  }

 private:
  // KnownQueues: the queues whose consumer group this executor made sure of.
  struct KnownQueues {
    std::vector<std::string> names;
    bool insert_if_new(const std::string& q) {
      if (std::find(names.begin(), names.end(), q) != names.end()) return false;
      names.push_back(q);
      return true;
    }
  };

  // Unanswered: an XADD sent whose answer (the entry id) is not read yet.
  struct Unanswered {
    std::uint64_t id;
    std::string stream;
    std::string task;
    std::string bytes;
  };
  // kUnansweredEntry: send()'s handle until the answer is read (set_handle records the entry).
  static constexpr std::string_view kUnansweredEntry = "?";

  // Failures: the jobs whose XADD failed, failed when this goes out of scope — declared before the
  // lock, so after the lock is released (a failed future's callbacks may submit again).
  class Failures {
   public:
    explicit Failures(RedisClient& client) : client_(client) {}
    Failures(const Failures&) = delete;
    Failures& operator=(const Failures&) = delete;
    ~Failures() {
      for (auto& [id, error] : jobs_) client_.fail_job(id, error);
    }
    void add(std::uint64_t id, std::exception_ptr error) { jobs_.emplace_back(id, error); }

   private:
    RedisClient& client_;
    std::vector<std::pair<std::uint64_t, std::exception_ptr>> jobs_;
  };

  // (submit_mu_ held by all below)
  void pipe(const Unanswered& u) {
    submit_.append({"XADD", u.stream, "*", "task", u.task, "m", u.bytes});
  }

  // resend(): a new connection, and every unanswered XADD sent again. Throws ConnectionError.
  void resend() {
    submit_.reconnect();
    for (const Unanswered& u : unanswered_) pipe(u);
    submit_.flush();
  }

  // answered(reply): the oldest unanswered XADD's entry id.
  void answered(const Reply& reply) {
    set_handle(unanswered_.front().id, reply.str);
    unanswered_.pop_front();
  }

  // fail_unanswered(error, failed): every unanswered job fails with `error`.
  void fail_unanswered(const std::exception_ptr& error, Failures& failed) {
    for (const Unanswered& u : unanswered_) failed.add(u.id, error);
    unanswered_.clear();
    unanswered_count_.store(0, std::memory_order_release);
  }

  // collect_ready(failed): the answers that have arrived, without waiting. An error answer fails
  // its job; a broken connection is left for the next send or drain to make again.
  void collect_ready(Failures& failed) {
    try {
      while (!unanswered_.empty()) {
        try {
          std::optional<Reply> r = submit_.try_reply();
          if (!r) break;
          answered(*r);
        } catch (const RedisError&) {
          failed.add(unanswered_.front().id, std::current_exception());
          unanswered_.pop_front();
        }
      }
    } catch (const ConnectionError&) {
      submit_.close();
    }
    unanswered_count_.store(unanswered_.size(), std::memory_order_release);
  }

  // drain(failed): every answer read, waiting for them: before another command on the connection.
  // A broken connection is made again once (the unanswered XADDs sent again); failing that, they
  // fail.
  void drain(Failures& failed) {
    bool retried = false;
    while (!unanswered_.empty()) {
      try {
        if (!submit_.is_connected()) {
          retried = true;
          resend();
        }
        answered(submit_.get_reply());
      } catch (const RedisError&) {
        failed.add(unanswered_.front().id, std::current_exception());
        unanswered_.pop_front();
      } catch (const ConnectionError&) {
        submit_.close();
        if (retried) fail_unanswered(std::current_exception(), failed);
      }
    }
    unanswered_count_.store(0, std::memory_order_release);
  }

  // drain_answers(): the reader thread's: reads the answers of the last submits, so that an XADD
  // Redis refused fails its future even if nothing else is submitted.
  void drain_answers() {
    if (unanswered_count_.load(std::memory_order_acquire) == 0) return;
    Failures failed(*this);
    std::scoped_lock lock(submit_mu_);
    drain(failed);
  }

  void wake_reader() noexcept override {
    ResultMessage w;
    w.kind = ResultMessage::wake;
    try {
      Failures failed(*this);
      std::scoped_lock lock(submit_mu_);
      drain(failed);
      with_reconnect(submit_, [&] {
        (void)submit_.command({"RPUSH", reply(), encode(w)});
        (void)submit_.command({"PEXPIRE", reply(), std::to_string(options_.result_ttl.count())});
      });
    } catch (const std::exception&) {
      // unreachable: the reader notices its stop flag within kPollSeconds
    }
  }

  // read_loop(): the reader thread. The reply list is read without destroying anything first, so
  // that a Redis that dies between running a command and sending its reply cannot take messages
  // with it (a pop would): LRANGE reads up to 256, they are delivered, and LTRIM removes them —
  // sent together with the next LRANGE, one round trip. When the list is empty, BLMOVE of the list
  // onto itself (head to head: nothing changes) waits for the next message and returns it, which
  // is delivered at once and trimmed with the next LRANGE. Only this thread removes from the head
  // (workers push to the tail), so the first n elements are exactly the n delivered. After a lost
  // connection the untrimmed ones are read again: deliver() ignores what it has seen (a settled
  // job is gone, a start is recorded once).
  void read_loop() {
    auto backoff = std::chrono::milliseconds(50);
    std::size_t delivered = 0;  // at the head of the list, not trimmed yet
    while (!finished()) {
      drain_answers();  // (each round, whatever the reader's own commands meet)
      try {
        if (!reader_conn_.is_connected()) {
          reader_conn_.reconnect();
          delivered = 0;  // read them again (a lost LTRIM may or may not have run)
        }
        Reply batch;
        if (delivered > 0) {
          const std::string n = std::to_string(delivered);
          reader_conn_.append({"LTRIM", reply(), n, "-1"});
          reader_conn_.append({"LRANGE", reply(), "0", kLastText});
          delivered = 0;
          std::exception_ptr trim_error;  // (both replies are read, whatever the first says)
          try {
            (void)reader_conn_.get_reply();
          } catch (const RedisError&) {
            trim_error = std::current_exception();
          }
          batch = reader_conn_.get_reply();
          if (trim_error) std::rethrow_exception(trim_error);
        } else {
          batch = reader_conn_.command({"LRANGE", reply(), "0", kLastText});
        }
        backoff = std::chrono::milliseconds(50);
        if (!batch.is_array() || batch.elements.empty()) {
          const Reply head =
              reader_conn_.command({"BLMOVE", reply(), reply(), "LEFT", "LEFT", kPollText});
          if (!head.is_nil()) {
            deliver(head.str);
            delivered = 1;
          }
          continue;
        }
        for (const Reply& m : batch.elements) deliver(m.str);
        delivered = batch.elements.size();
      } catch (const ConnectionError&) {
        // Redis went away: the replies wait in the list (result_ttl); try again with backoff
        pause(backoff);
      } catch (const RedisError&) {
        // LOADING (a restarted Redis reading its data), or a list someone else broke: wait
        pause(backoff);
      }
    }
  }

  void pause(std::chrono::milliseconds& backoff) {
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (std::chrono::steady_clock::now() < until && !stop_.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }

  RedisOptions options_;
  RedisUrl url_;

  std::mutex submit_mu_;  // submit_, known_queues_, unanswered_
  Redis submit_;
  KnownQueues known_queues_;
  std::deque<Unanswered> unanswered_;             // in the order sent
  std::atomic<std::size_t> unanswered_count_{0};  // unanswered_.size(), for the reader's look

  Redis reader_conn_;  // the reader thread's
  std::thread reader_;
  std::mutex join_mu_;
};

}  // namespace detail

RedisExecutor::RedisExecutor(const std::string& url, RedisOptions options)
    : RemoteExecutor(std::make_shared<detail::RedisClient>(url, options, detail::new_client_id())),
      options_(std::move(options)) {}

}  // namespace concur::dist
