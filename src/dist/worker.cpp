// concur::dist::Worker: a reading loop (XREADGROUP, then XAUTOCLAIM of expired leases and the
// promotion of due retries), a thread pool running the tasks, and a heartbeat thread renewing the
// leases of the tasks taken. Results and retries are stored by the pool threads through Lua
// scripts that check the lease first (protocol.hpp).
#include "concur/dist/worker.hpp"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../mp/exception_info.hpp"
#include "concur/dist/redis.hpp"
#include "concur/errors.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "concur/thread_pool.hpp"
#include "protocol.hpp"

namespace concur::dist {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string default_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "worker");
  std::string name = host;
  name += ':';
  name += std::to_string(::getpid());
  return name;
}

// Taken is a task this worker holds the lease of.
struct Taken {
  std::size_t queue = 0;
  std::string entry;
  detail::TaskMessage message;
};

}  // namespace

class Worker::Impl {
 public:
  explicit Impl(WorkerOptions options) : o_(std::move(options)) {
    if (o_.queues.empty()) throw ValueError("WorkerOptions::queues must name at least one queue");
    for (const std::string& q : o_.queues)
      if (q.empty()) throw ValueError("WorkerOptions::queues: a queue name is empty");
    if (o_.prefix.empty()) throw ValueError("WorkerOptions::prefix must not be empty");
    if (o_.lease < std::chrono::milliseconds(30))
      throw ValueError("WorkerOptions::lease must be at least 30 ms");
    if (o_.max_deliveries == 0) throw ValueError("WorkerOptions::max_deliveries must be >= 1");
    if (o_.concurrency == 0) o_.concurrency = std::max<std::size_t>(1, mp::cpu_count());
    if (o_.name.empty()) o_.name = default_name();
    url_ = RedisUrl::parse(o_.url);
    stats_key_ = detail::stats_key(o_.prefix);
    for (const std::string& q : o_.queues) {
      streams_.push_back(detail::stream_key(o_.prefix, q));
      delayed_.push_back(detail::delayed_key(o_.prefix, q));
      dead_.push_back(detail::dead_key(o_.prefix, q));
      cursors_.emplace_back("0-0");
    }
    main_ = Redis::connect(url_, o_.connect_timeout);
    main_.set_timeout(o_.connect_timeout + kBlock);
    for (const std::string& s : streams_) detail::ensure_group(main_, s);
    beat_ = Redis::connect(url_, o_.connect_timeout);
  }

  ~Impl() { stop(); }

  void run() {
    pool_ = std::make_unique<ThreadPoolExecutor>(
        ThreadPoolOptions{.max_workers = o_.concurrency, .thread_name_prefix = "dist-worker"});
    std::thread beat([this] { heartbeat_loop(); });
    auto backoff = std::chrono::milliseconds(50);
    auto last_duty = std::chrono::steady_clock::now() - duty_interval();
    while (!stop_.load(std::memory_order_acquire)) {
      try {
        if (!main_.is_connected()) {
          main_.reconnect();
          main_.set_timeout(o_.connect_timeout + kBlock);
          for (const std::string& s : streams_) detail::ensure_group(main_, s);
        }
        if (std::chrono::steady_clock::now() - last_duty >= duty_interval()) {
          duties();
          last_duty = std::chrono::steady_clock::now();
        }
        const std::size_t room = free_room();
        if (room == 0) {
          std::unique_lock lock(mu_);
          cv_.wait_for(lock, kBlock, [&] {
            return stop_.load(std::memory_order_acquire) || held() < o_.concurrency;
          });
          continue;
        }
        if (!read(room, /*block=*/false)) (void)read(1, /*block=*/true);
        backoff = std::chrono::milliseconds(50);
      } catch (const ConnectionError&) {
        main_.close();
        sleep_unless_stopped(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      } catch (const RedisError& e) {
        std::fprintf(stderr, "concur worker %s: %s\n", o_.name.c_str(), e.what());
        sleep_unless_stopped(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      }
    }
    // Warm shutdown: the tasks taken run and report.
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return running_ == 0 && ready_.empty(); });
      beat_stop_ = true;
    }
    beat_cv_.notify_all();
    beat.join();
    pool_->shutdown(true);
  }

  void stop() noexcept {
    stop_.store(true, std::memory_order_release);
    // (no notify: async-signal-safe; the loop wakes within kBlock)
  }

  WorkerStats stats() const {
    std::scoped_lock lock(mu_);
    return stats_;
  }
  const WorkerOptions& options() const noexcept { return o_; }

 private:
  // kBlock: how long one blocking read waits (and so how soon stop() is noticed).
  static constexpr std::chrono::milliseconds kBlock{100};

  std::chrono::milliseconds duty_interval() const {
    return std::clamp(o_.lease / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  }

  void sleep_unless_stopped(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until && !stop_.load(std::memory_order_acquire))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  // held(): tasks taken and not finished (running or waiting for a thread). Under mu_.
  std::size_t held() const { return running_ + ready_.size(); }

  std::size_t free_room() {
    std::scoped_lock lock(mu_);
    return held() >= o_.concurrency ? 0 : o_.concurrency - held();
  }

  // duties(): due retries back to their streams; expired leases taken over.
  void duties() {
    for (std::size_t q = 0; q < streams_.size(); ++q)
      (void)detail::promote_script().run(main_, {delayed_[q], streams_[q]}, {"100"});
    for (std::size_t q = 0; q < streams_.size(); ++q) {
      const std::size_t room = free_room();
      if (room == 0) return;
      const std::string count = std::to_string(room);
      const std::string lease = std::to_string(o_.lease.count());
      const Reply r = detail::reclaim_script().run(
          main_, {streams_[q]}, {detail::kGroup, o_.name, lease, count, cursors_[q]});
      cursors_[q] = r.at(0).str;
      std::vector<Taken> taken;
      for (const Reply& e : r.at(1).elements) {
        const long long deliveries = e.at(2).as_integer();
        std::optional<Taken> t = parse_entry(q, e.at(0).str, e.at(1));
        if (!t) continue;
        if (deliveries > static_cast<long long>(o_.max_deliveries)) {
          give_up(*t, deliveries);
          continue;
        }
        taken.push_back(std::move(*t));
      }
      if (!taken.empty()) {
        {
          std::scoped_lock lock(mu_);
          stats_.taken_over += taken.size();
        }
        accept(std::move(taken), /*announce=*/false);
      }
    }
  }

  // read(room, block): takes up to `room` new tasks, the first queue first; false when none.
  bool read(std::size_t room, bool block) {
    std::vector<Taken> taken;
    const std::string count = std::to_string(room);
    if (!block) {
      for (std::size_t q = 0; q < streams_.size() && taken.size() < room; ++q) {
        const std::string n = std::to_string(room - taken.size());
        const Reply r = main_.command({"XREADGROUP", "GROUP", detail::kGroup, o_.name, "COUNT", n,
                                       "STREAMS", streams_[q], ">"});
        collect(r, taken);
      }
    } else {
      std::vector<std::string_view> argv{"XREADGROUP", "GROUP", detail::kGroup, o_.name,
                                         "COUNT",      count,   "BLOCK"};
      const std::string ms = std::to_string(kBlock.count());
      argv.emplace_back(ms);
      argv.emplace_back("STREAMS");
      for (const std::string& s : streams_) argv.emplace_back(s);
      for (std::size_t q = 0; q < streams_.size(); ++q) argv.emplace_back(">");
      collect(main_.command(argv), taken);
    }
    if (taken.empty()) return false;
    accept(std::move(taken), /*announce=*/true);
    return true;
  }

  // collect(reply, out): the entries of an XREADGROUP reply ([[stream, [[id, fields]...]]...]).
  void collect(const Reply& r, std::vector<Taken>& out) {
    if (!r.is_array()) return;
    for (const Reply& per_stream : r.elements) {
      const std::string& key = per_stream.at(0).str;
      const auto it = std::find(streams_.begin(), streams_.end(), key);
      if (it == streams_.end()) continue;
      const auto q = static_cast<std::size_t>(it - streams_.begin());
      for (const Reply& e : per_stream.at(1).elements) {
        std::optional<Taken> t = parse_entry(q, e.at(0).str, e.at(1));
        if (t) out.push_back(std::move(*t));
      }
    }
  }

  // parse_entry(q, id, fields): the task of a stream entry; an entry that is not a task (written
  // by something else, or truncated) is acknowledged and deleted, with a line on stderr.
  std::optional<Taken> parse_entry(std::size_t q, const std::string& id, const Reply& fields) {
    const std::string* m = nullptr;
    for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2)
      if (fields.elements[i].str == "m") m = &fields.elements[i + 1].str;
    try {
      if (m == nullptr) throw ValueError("no field m");
      Taken t;
      t.queue = q;
      t.entry = id;
      t.message = detail::decode<detail::TaskMessage>(*m);
      return t;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "concur worker %s: dropping entry %s of %s, not a concur task: %s\n",
                   o_.name.c_str(), id.c_str(), streams_[q].c_str(), e.what());
      (void)main_.command({"XACK", streams_[q], detail::kGroup, id});
      (void)main_.command({"XDEL", streams_[q], id});
      return std::nullopt;
    }
  }

  // give_up(t, deliveries): a task whose workers kept dying fails for good.
  void give_up(const Taken& t, long long deliveries) {
    detail::ResultMessage r;
    r.id = t.message.id;
    r.kind = detail::ResultMessage::error;
    r.type_name = "WorkerLostError";
    r.message = "task '" + t.message.task + "' was taken by " + std::to_string(deliveries - 1) +
                " workers that died or stalled before finishing it (max_deliveries " +
                std::to_string(o_.max_deliveries) + ")";
    r.traceback = "given up by worker " + o_.name;
    if (finish(main_, t, r, /*dead=*/true)) {
      std::scoped_lock lock(mu_);
      ++stats_.failed;
    }
  }

  // accept(tasks, announce): the tasks are this worker's now: tell their executors (started),
  // then run them (or queue them for a free thread).
  void accept(std::vector<Taken> tasks, bool announce) {
    if (announce) {
      std::size_t sent = 0;
      for (const Taken& t : tasks) {
        if (!t.message.track_started) continue;
        detail::ResultMessage s;
        s.id = t.message.id;
        s.kind = detail::ResultMessage::started;
        main_.append({"RPUSH", t.message.reply, detail::encode(s)});
        ++sent;
      }
      for (std::size_t i = 0; i < sent; ++i) (void)main_.get_reply();
    }
    std::vector<Taken> start_now;
    {
      std::scoped_lock lock(mu_);
      for (Taken& t : tasks) {
        leases_.push_back({t.queue, t.entry});
        if (running_ < o_.concurrency) {
          ++running_;
          start_now.push_back(std::move(t));
        } else {
          ready_.push_back(std::move(t));
        }
      }
    }
    for (Taken& t : start_now) launch(std::move(t));
  }

  void launch(Taken t) {
    pool_->submit([this, t = std::move(t)]() mutable { execute(std::move(t)); });
  }

  // execute(t): runs one task on a pool thread and stores its outcome.
  void execute(Taken t) {
    detail::ResultMessage r;
    r.id = t.message.id;
    bool retry = false;
    const mp::detail::TaskEntry* entry = mp::detail::find_task(t.message.task);
    if (entry == nullptr) {
      r.kind = detail::ResultMessage::error;
      r.type_name = "NotRegistered";
      r.message = "task '" + t.message.task + "' is not registered in this worker (CONCUR_TASK)";
      r.traceback = "worker " + o_.name;
    } else {
      try {
        mp::detail::MemoryInBuf in(t.message.args);
        std::istream is(&in);
        mp::detail::StringOutBuf out(r.result);
        std::ostream os(&out);
        entry->invoke_batch(is, os, t.message.batch == 0 ? 1 : t.message.batch);
        os.flush();
        r.kind = detail::ResultMessage::ok;
      } catch (...) {
        mp::detail::ExceptionInfo info = mp::detail::describe_current_exception();
        r.kind = detail::ResultMessage::error;
        r.result.clear();
        r.type_name = std::move(info.type_name);
        r.message = std::move(info.message);
        r.traceback = "raised by task '" + t.message.task + "' in worker " + o_.name + " (run " +
                      std::to_string(t.message.attempt + 1) + " of " +
                      std::to_string(t.message.max_retries + 1) + ")";
        retry = t.message.attempt < t.message.max_retries;
      }
    }
    report(t, r, retry);
    done(t);
  }

  // report(t, r, retry): stores the outcome (or the retry), reconnecting while the lease may still
  // be ours; past it, another worker will run the task again.
  void report(const Taken& t, const detail::ResultMessage& r, bool retry) {
    Redis conn = take_connection();
    const auto give_up_at = std::chrono::steady_clock::now() + o_.lease;
    auto backoff = std::chrono::milliseconds(20);
    for (;;) {
      try {
        if (!conn.is_connected()) conn.reconnect();
        bool kept = false;
        if (retry) {
          kept = store_retry(conn, t);
        } else {
          kept = finish(conn, t, r, r.kind == detail::ResultMessage::error);
        }
        std::scoped_lock lock(mu_);
        if (!kept)
          ++stats_.lost;
        else if (retry)
          ++stats_.retried;
        else if (r.kind == detail::ResultMessage::ok)
          ++stats_.succeeded;
        else
          ++stats_.failed;
        break;
      } catch (const ConnectionError&) {
        conn.close();
        if (std::chrono::steady_clock::now() >= give_up_at) break;
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      } catch (const RedisError& e) {
        std::fprintf(stderr, "concur worker %s: storing task %s: %s\n", o_.name.c_str(),
                     t.entry.c_str(), e.what());
        break;
      }
    }
    give_back(std::move(conn));
  }

  // finish(conn, t, r, dead): FINISH — false when the lease had passed to another worker.
  bool finish(Redis& conn, const Taken& t, const detail::ResultMessage& r, bool dead) {
    const std::string message = detail::encode(r);
    const std::string ttl = std::to_string(std::max<std::int64_t>(1, t.message.result_ttl_ms));
    std::string error;
    std::string task_message;
    if (dead) {
      error = r.type_name + ": " + r.message;
      task_message = detail::encode(t.message);
    }
    std::string field = o_.queues[t.queue];
    field += r.kind == detail::ResultMessage::ok ? ":succeeded" : ":failed";
    const Reply out = detail::finish_script().run(
        conn, {streams_[t.queue], t.message.reply, dead_[t.queue], stats_key_},
        {detail::kGroup, o_.name, t.entry, message, ttl, dead ? "1" : "0", t.message.task, error,
         task_message, field});
    return out.as_integer() == 1;
  }

  bool store_retry(Redis& conn, const Taken& t) {
    detail::TaskMessage next = t.message;
    const std::uint32_t shift = std::min<std::uint32_t>(next.attempt, 30);
    const std::int64_t delay =
        std::min(next.backoff_max_ms, next.backoff_ms * (std::int64_t{1} << shift));
    ++next.attempt;
    std::string member = next.task;
    member += '\n';
    member += detail::encode(next);
    const Reply out =
        detail::retry_script().run(conn, {streams_[t.queue], delayed_[t.queue]},
                                   {detail::kGroup, o_.name, t.entry,
                                    std::to_string(std::max<std::int64_t>(0, delay)), member});
    return out.as_integer() == 1;
  }

  // done(t): the task's thread is free; a task waiting for one starts on it.
  void done(const Taken& t) {
    std::optional<Taken> next;
    {
      std::scoped_lock lock(mu_);
      const auto it = std::find_if(leases_.begin(), leases_.end(), [&](const Lease& l) {
        return l.queue == t.queue && l.entry == t.entry;
      });
      if (it != leases_.end()) leases_.erase(it);
      if (!ready_.empty()) {
        next = std::move(ready_.front());
        ready_.pop_front();
      } else {
        --running_;
      }
    }
    cv_.notify_all();
    if (next) launch(std::move(*next));
  }

  Redis take_connection() {
    {
      std::scoped_lock lock(conn_mu_);
      if (!spare_.empty()) {
        Redis c = std::move(spare_.back());
        spare_.pop_back();
        return c;
      }
    }
    try {
      return Redis::connect(url_, o_.connect_timeout);
    } catch (const ConnectionError&) {
      Redis closed;  // report() reconnects it with backoff
      return closed;
    }
  }
  void give_back(Redis conn) {
    if (!conn.is_connected()) return;
    std::scoped_lock lock(conn_mu_);
    spare_.push_back(std::move(conn));
  }

  // heartbeat_loop(): renews the leases of the tasks taken every lease/3, and records this
  // worker's heartbeat in P:workers.
  void heartbeat_loop() {
    const auto every = std::max(o_.lease / 3, std::chrono::milliseconds(10));
    const std::string workers = detail::workers_key(o_.prefix);
    std::unique_lock lock(mu_);
    while (!beat_stop_) {
      std::vector<std::vector<std::string>> by_queue(streams_.size());
      for (const Lease& l : leases_) by_queue[l.queue].push_back(l.entry);
      lock.unlock();
      try {
        if (!beat_.is_connected()) beat_.reconnect();
        for (std::size_t q = 0; q < by_queue.size(); ++q) {
          if (by_queue[q].empty()) continue;
          std::vector<std::string_view> args{detail::kGroup, o_.name};
          for (const std::string& e : by_queue[q]) args.emplace_back(e);
          (void)detail::extend_script().run(beat_, {streams_[q]}, args);
        }
        (void)beat_.command({"HSET", workers, o_.name, std::to_string(now_ms())});
      } catch (const std::exception&) {
        beat_.close();  // tried again next time; the leases last three periods
      }
      lock.lock();
      beat_cv_.wait_for(lock, every, [&] { return beat_stop_; });
    }
    lock.unlock();
    try {
      if (beat_.is_connected()) (void)beat_.command({"HDEL", workers, o_.name});
    } catch (const std::exception&) {
    }
  }

  struct Lease {
    std::size_t queue;
    std::string entry;
  };

  WorkerOptions o_;
  RedisUrl url_;
  std::vector<std::string> streams_, delayed_, dead_, cursors_;
  std::string stats_key_;
  Redis main_;  // the reading loop's
  Redis beat_;  // the heartbeat thread's
  std::unique_ptr<ThreadPoolExecutor> pool_;
  std::atomic<bool> stop_{false};

  mutable std::mutex mu_;  // everything below
  std::condition_variable cv_;
  std::condition_variable beat_cv_;
  std::deque<Taken> ready_;
  std::vector<Lease> leases_;
  std::size_t running_ = 0;
  bool beat_stop_ = false;
  WorkerStats stats_;

  std::mutex conn_mu_;
  std::vector<Redis> spare_;  // connections for storing outcomes
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Worker::~Worker() = default;
void Worker::run() { impl_->run(); }
void Worker::stop() noexcept { impl_->stop(); }
WorkerStats Worker::stats() const { return impl_->stats(); }
const std::string& Worker::name() const noexcept { return impl_->options().name; }
const WorkerOptions& Worker::options() const noexcept { return impl_->options(); }

// ---- worker_main

namespace {

std::atomic<Worker*> g_worker{nullptr};
std::atomic<int> g_signals{0};

extern "C" void on_stop_signal(int) {
  if (g_signals.fetch_add(1) > 0) ::_exit(130);  // the second signal: at once
  if (Worker* w = g_worker.load()) w->stop();
}

}  // namespace

int worker_main(int argc, char** argv) {
  CLI::App app{"concur worker: serves the registered tasks of this program from Redis"};
  WorkerOptions o;
  std::string queues = "default";
  double lease_s = 30;
  app.add_option("--redis", o.url, "Redis URL (redis://host:port/db or unix:///path)")
      ->capture_default_str();
  app.add_option("--queues", queues, "queues to serve, comma-separated, in priority order")
      ->capture_default_str();
  app.add_option("--concurrency", o.concurrency, "tasks run at once (0: one per CPU)")
      ->capture_default_str();
  app.add_option("--lease", lease_s, "seconds a task stays leased without a renewal")
      ->check(CLI::Range(0.03, 86400.0))
      ->capture_default_str();
  app.add_option("--max-deliveries", o.max_deliveries,
                 "a task taken over this many times fails for good")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--name", o.name, "this worker's name (default: host:pid)");
  app.add_option("--prefix", o.prefix, "key prefix shared with the executors")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.queues.clear();
  std::stringstream ss(queues);
  for (std::string q; std::getline(ss, q, ',');)
    if (!q.empty()) o.queues.push_back(q);
  o.lease = std::chrono::milliseconds(static_cast<long long>(lease_s * 1000));
  try {
    Worker worker(o);
    g_worker.store(&worker);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    (void)::sigaction(SIGINT, &sa, nullptr);
    (void)::sigaction(SIGTERM, &sa, nullptr);
    std::fprintf(stderr, "concur worker %s: serving %s from %s (%zu at once)\n",
                 worker.name().c_str(), queues.c_str(), RedisUrl::parse(o.url).str().c_str(),
                 worker.options().concurrency);
    worker.run();
    g_worker.store(nullptr);
    const WorkerStats s = worker.stats();
    std::fprintf(stderr,
                 "concur worker %s: stopped (%llu succeeded, %llu failed, %llu retried, %llu "
                 "taken over)\n",
                 worker.name().c_str(), static_cast<unsigned long long>(s.succeeded),
                 static_cast<unsigned long long>(s.failed),
                 static_cast<unsigned long long>(s.retried),
                 static_cast<unsigned long long>(s.taken_over));
    return 0;
  } catch (const ValueError& e) {
    std::fprintf(stderr, "concur worker: %s\n", e.what());
    return 2;
  } catch (const ConnectionError& e) {
    std::fprintf(stderr, "concur worker: %s\n", e.what());
    return 1;
  }
}

}  // namespace concur::dist
