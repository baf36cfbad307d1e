// RedisExecutor: submits are XADDs on one connection; a reader thread on a second connection
// reads this executor's reply list (LRANGE, then LTRIM with the next LRANGE, up to 256 messages
// at a time; BLMOVE onto itself to wait) and hands them to RemoteClient::deliver
// (remote_client.cpp), which settles the futures.
#include "concur/dist/executor.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <mutex>
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

  std::string send(const TaskMessage& m, const std::string& queue, const TaskOptions&) override {
    const std::string bytes = encode(m);
    const std::string stream = stream_key(options_.prefix, queue);
    std::scoped_lock lock(submit_mu_);
    if (queue != options_.queue && known_queues_.insert_if_new(queue))
      with_reconnect(submit_, [&] { ensure_group(submit_, stream); });
    return with_reconnect(submit_, [&] {
      return submit_.command({"XADD", stream, "*", "task", m.task, "m", bytes}).str;
    });
  }

  // take_back: the CANCEL script deletes the entry unless a worker took it (atomic on the server).
  FutureStateBase::Withdrawal take_back(const std::string& queue, const std::string& entry,
                                        std::uint64_t) override {
    const std::string stream = stream_key(options_.prefix, queue);
    std::scoped_lock lock(submit_mu_);
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
      std::scoped_lock lock(submit_mu_);
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

  void wake_reader() noexcept override {
    ResultMessage w;
    w.kind = ResultMessage::wake;
    try {
      std::scoped_lock lock(submit_mu_);
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

  std::mutex submit_mu_;  // submit_, known_queues_
  Redis submit_;
  KnownQueues known_queues_;

  Redis reader_conn_;  // the reader thread's
  std::thread reader_;
  std::mutex join_mu_;
};

}  // namespace detail

RedisExecutor::RedisExecutor(const std::string& url, RedisOptions options)
    : RemoteExecutor(std::make_shared<detail::RedisClient>(url, options, detail::new_client_id())),
      options_(std::move(options)) {}

}  // namespace concur::dist
