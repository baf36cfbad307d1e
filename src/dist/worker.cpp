// concur::dist::Worker: `concurrency` serving threads, each with its own connection, reading one
// task at a time (XREADGROUP BLOCK, all as the worker's one consumer name), running it and storing
// its outcome through a Lua script that checks the lease first (protocol.hpp) — no hand-off
// between a reader and a pool; and a maintenance thread that renews the leases of the tasks taken,
// beats the worker's heartbeat, moves due retries back, takes over expired leases and reports the
// starts of tasks that run longer than kStartNotice.
#include "concur/dist/worker.hpp"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../mp/exception_info.hpp"
#include "concur/dist/amqp.hpp"
#include "concur/dist/redis.hpp"
#include "concur/errors.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "concur/process_pool.hpp"
#include "protocol.hpp"
#include "task_runner.hpp"
#include "worker_impl.hpp"

namespace concur::dist {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// default_name(): "<hostname>:<pid>", and "<hostname>:<pid>/<n>" for the n-th Worker of this
// process — every worker must have a consumer name of its own (two sharing one would renew,
// recover and finish each other's leases).
std::string default_name() {
  static std::atomic<int> made{0};
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "worker");
  std::string name = host;
  name += ':';
  name += std::to_string(::getpid());
  if (const int n = ++made; n > 1) {
    name += '/';
    name += std::to_string(n);
  }
  return name;
}

// Taken is a task this worker holds the lease of.
struct Taken {
  std::size_t queue = 0;
  std::string entry;
  detail::TaskMessage message;
  bool taken_over = false;  // from a dead or stalled worker (its executor heard of the start)
};

}  // namespace

namespace detail {

void check_worker_options(WorkerOptions& o) {
  if (o.queues.empty()) throw ValueError("WorkerOptions::queues must name at least one queue");
  for (const std::string& q : o.queues)
    if (q.empty()) throw ValueError("WorkerOptions::queues: a queue name is empty");
  if (o.prefix.empty()) throw ValueError("WorkerOptions::prefix must not be empty");
  if (o.lease < std::chrono::milliseconds(30))
    throw ValueError("WorkerOptions::lease must be at least 30 ms");
  if (o.max_deliveries == 0) throw ValueError("WorkerOptions::max_deliveries must be >= 1");
  if (o.time_limit.count() < 0 || o.soft_time_limit.count() < 0)
    throw ValueError("WorkerOptions::time_limit and soft_time_limit must be >= 0");
  if (o.time_limit.count() > 0 && !o.processes)
    throw ValueError(
        "WorkerOptions::time_limit needs processes (--processes): a thread cannot be stopped");
  if (o.concurrency == 0) o.concurrency = std::max<std::size_t>(1, mp::cpu_count());
  if (o.name.empty()) o.name = default_name();
}

}  // namespace detail

namespace {

// RedisWorker: a Worker over Redis streams.
class RedisWorker final : public Worker::Impl {
 public:
  explicit RedisWorker(WorkerOptions options) : o_(std::move(options)) {
    detail::check_worker_options(o_);
    url_ = RedisUrl::parse(o_.url);
    stats_key_ = detail::stats_key(o_.prefix);
    for (const std::string& q : o_.queues) {
      streams_.push_back(detail::stream_key(o_.prefix, q));
      delayed_.push_back(detail::delayed_key(o_.prefix, q));
      dead_.push_back(detail::dead_key(o_.prefix, q));
      cursors_.emplace_back("0-0");
    }
    // One connection per serving thread (made here: an unreachable Redis fails the constructor),
    // one for the maintenance thread.
    for (std::size_t i = 0; i < o_.concurrency; ++i) {
      conns_.push_back(Redis::connect(url_, o_.connect_timeout));
      conns_.back().set_timeout(o_.connect_timeout + kBlock);
    }
    for (const std::string& s : streams_) detail::ensure_group(conns_[0], s);
    upkeep_ = Redis::connect(url_, o_.connect_timeout);
    runner_ = std::make_unique<detail::TaskRunner>(o_, o_.name);
    const std::size_t prefetch = o_.prefetch > 0 ? o_.prefetch : o_.concurrency;
    per_read_ = std::to_string(std::max<std::size_t>(1, prefetch / o_.concurrency));
  }

  ~RedisWorker() override { stop(); }

  void run() override {
    std::thread upkeep([this] { upkeep_loop(); });
    std::vector<std::thread> servers;
    for (std::size_t i = 1; i < o_.concurrency; ++i)
      servers.emplace_back([this, i] { serve(conns_[i]); });
    serve(conns_[0]);  // (the calling thread is one of them)
    for (std::thread& t : servers) t.join();
    {
      std::scoped_lock lock(mu_);
      upkeep_stop_ = true;
    }
    upkeep_cv_.notify_all();
    upkeep.join();
  }

  void stop() noexcept override {
    stop_.store(true, std::memory_order_release);
    // (no notify: async-signal-safe; the serving threads see it within kBlock)
  }

  WorkerStats stats() const override {
    std::scoped_lock lock(mu_);
    WorkerStats s = stats_;
    runner_->add_stats(s);
    return s;
  }
  const WorkerOptions& options() const noexcept override { return o_; }

 private:
  // kBlock: how long one blocking read waits (and so how soon stop() is noticed).
  static constexpr std::chrono::milliseconds kBlock{100};
  // kStartNotice: how long a task runs before its start is reported (track_started).
  static constexpr std::chrono::milliseconds kStartNotice{1};
  // kTickFor: after a start report was queued, how long the maintenance thread keeps waking every
  // kStartNotice rather than being woken for the next one (upkeep_loop()).
  static constexpr std::chrono::milliseconds kTickFor{50};

  // StartNotice: a start report due at `due` unless the run ends first.
  struct StartNotice {
    std::chrono::steady_clock::time_point due;
    std::uint64_t id;
    std::string reply;    // the executor's reply list
    std::string message;  // the encoded ResultMessage (kind started)
  };

  struct Lease {
    std::size_t queue;
    std::string entry;
  };
  // Unread: a task's outcome whose finish script was written without waiting for its answer.
  struct Unread {
    Taken t;
    detail::ResultMessage r;
    bool dead_letter;
  };
  // Lane: what a serving thread keeps between its tasks. `ahead`: a blocking read sent with the
  // last finish (finish()) has its answer still to read. `unread`: finishes written while the
  // thread went on to its next task, answers not read yet, in the connection's order (settle()).
  struct Lane {
    bool ahead = false;
    std::vector<Unread> unread;
  };
  // kMaxUnread: finishes a thread writes without reading their answers before it waits for them.
  static constexpr std::size_t kMaxUnread = 256;
  struct Slot {
    std::string key;     // <prefix>:slots:<key>
    std::string holder;  // the task's entry id
  };

  bool stopping() const noexcept { return stop_.load(std::memory_order_acquire); }

  void sleep_unless_stopped(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until && !stopping())
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  // serve(conn): one serving thread — takes a task (one taken over from a dead worker or read
  // ahead first, then the first queue's, blocking on all of them: prefetch ÷ concurrency tasks per
  // read, the extras queued in ready_), runs it, stores its outcome. All threads read as the one
  // consumer o_.name: the leases are this worker's. With one queue, the blocking read for the next
  // task goes out with the finish of the last (finish()): one round trip and one wake-up per task
  // instead of two. While tasks wait in ready_, a finish is written and the thread goes on to the
  // next task; the answers are read before the thread next waits for Redis (settle()).
  void serve(Redis& conn) {
    auto backoff = std::chrono::milliseconds(50);
    Lane lane;
    while (!stopping()) {
      try {
        if (!conn.is_connected()) {
          lane.ahead = false;  // (a read lost with the connection: recover_orphans takes its task)
          settle(conn, lane);  // (finishes the connection lost unanswered run again)
          if (!conn.is_connected()) conn.reconnect();
          conn.set_timeout(o_.connect_timeout + kBlock);
          for (const std::string& s : streams_) detail::ensure_group(conn, s);
        }
        if (lane.ahead) {
          lane.ahead = false;
          receive(conn, conn.get_reply());
        }
        std::optional<Taken> t = next_ready();
        if (!t) {
          settle(conn, lane);
          t = read(conn);
        }
        backoff = std::chrono::milliseconds(50);
        if (t) execute(conn, std::move(*t), &lane);
      } catch (const ConnectionError&) {
        conn.close();
        sleep_unless_stopped(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      } catch (const RedisError& e) {
        if (!detail::transient(e))
          std::fprintf(stderr, "concur worker %s: %s\n", o_.name.c_str(), e.what());
        // A stream or its group is gone (DEL, FLUSHALL, a Redis restarted without its data): the
        // connection made again makes the groups again (from id 0: the tasks added since are
        // served), as after a lost connection.
        if (e.code() == "NOGROUP") conn.close();
        sleep_unless_stopped(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      }
    }
    // Warm shutdown: tasks taken over or read ahead and not started yet still run (their leases
    // are ours), and so do those a read sent ahead brought.
    settle(conn, lane);
    if (lane.ahead) {
      try {
        receive(conn, conn.get_reply());
      } catch (const std::exception&) {
        // Redis gone or the read refused: a task it took is recovered once its lease expires
      }
    }
    while (std::optional<Taken> t = next_ready()) {
      try {
        if (!conn.is_connected()) conn.reconnect();
        execute(conn, std::move(*t));
      } catch (const std::exception&) {
        break;  // Redis gone: their leases expire and another worker runs them
      }
    }
  }

  bool has_ready() const {
    std::scoped_lock lock(mu_);
    return !ready_.empty();
  }

  std::optional<Taken> next_ready() {
    std::scoped_lock lock(mu_);
    if (ready_.empty()) return std::nullopt;
    Taken t = std::move(ready_.front());
    ready_.pop_front();
    return t;
  }

  // block_argv(): the blocking read of new tasks over every queue (kBlock): up to per_read_ with
  // one queue; one of each with several (a read ahead of a later queue's tasks would run them
  // before an earlier queue's that come meanwhile, and per_read_ of each would pass prefetch).
  std::vector<std::string_view> block_argv() const {
    static const std::string ms = std::to_string(kBlock.count());
    const std::string_view count = streams_.size() == 1 ? std::string_view(per_read_) : "1";
    std::vector<std::string_view> argv{
        "XREADGROUP", "GROUP", detail::kGroup, o_.name, "COUNT", count, "BLOCK", ms, "STREAMS"};
    for (const std::string& s : streams_) argv.emplace_back(s);
    for (std::size_t q = 0; q < streams_.size(); ++q) argv.emplace_back(">");
    return argv;
  }

  // receive(conn, reply): the tasks of a read's reply, leased (registered at once, so that
  // recover_orphans never takes them for lost) and queued on ready_.
  void receive(Redis& conn, const Reply& reply) {
    std::vector<Taken> taken;
    collect(conn, reply, taken);
    std::scoped_lock lock(mu_);
    for (Taken& t : taken) {
      leases_.push_back({t.queue, t.entry});
      ready_.push_back(std::move(t));
    }
  }

  // read(conn): new tasks, the first queue first — up to per_read_ of the first queue that has
  // some, else a blocking read (block_argv()) — the first of them, or nullopt when none came
  // within kBlock. The extras go to ready_ (a blocking read over several queues may return one
  // task of each).
  std::optional<Taken> read(Redis& conn) {
    std::vector<Taken> taken;
    if (streams_.size() > 1) {
      for (std::size_t q = 0; q < streams_.size() && taken.empty(); ++q)
        collect(conn,
                conn.command({"XREADGROUP", "GROUP", detail::kGroup, o_.name, "COUNT", per_read_,
                              "STREAMS", streams_[q], ">"}),
                taken);
    }
    if (taken.empty()) collect(conn, conn.command(block_argv()), taken);
    if (taken.empty()) return std::nullopt;
    std::scoped_lock lock(mu_);
    for (const Taken& t : taken) leases_.push_back({t.queue, t.entry});
    for (std::size_t i = 1; i < taken.size(); ++i) ready_.push_back(std::move(taken[i]));
    return std::move(taken[0]);
  }

  // collect(conn, reply, out): the entries of an XREADGROUP reply ([[stream, [[id, fields]...]]]).
  void collect(Redis& conn, const Reply& r, std::vector<Taken>& out) {
    if (!r.is_array()) return;
    for (const Reply& per_stream : r.elements) {
      const std::string& key = per_stream.at(0).str;
      const auto it = std::find(streams_.begin(), streams_.end(), key);
      if (it == streams_.end()) continue;
      const auto q = static_cast<std::size_t>(it - streams_.begin());
      for (const Reply& e : per_stream.at(1).elements) {
        std::optional<Taken> t = parse_entry(conn, q, e.at(0).str, e.at(1));
        if (t) out.push_back(std::move(*t));
      }
    }
  }

  // parse_entry(conn, q, id, fields): the task of a stream entry; an entry that is not a task
  // (written by something else, or truncated) is acknowledged and deleted, with a line on stderr.
  std::optional<Taken> parse_entry(Redis& conn, std::size_t q, const std::string& id,
                                   const Reply& fields) {
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
      (void)conn.command({"XACK", streams_[q], detail::kGroup, id});
      (void)conn.command({"XDEL", streams_[q], id});
      return std::nullopt;
    }
  }

  // execute(conn, t, lane): runs the task on this thread (its start reported if it runs
  // kStartNotice) and stores its outcome (given a serving thread's `lane`: with the next read, or
  // without waiting for the answer — finish()).
  void execute(Redis& conn, Taken t, Lane* lane = nullptr) {
    struct Running {  // (this thread counts as busy for idle_threads() until it returns)
      RedisWorker& self;
      explicit Running(RedisWorker& w) : self(w) {
        std::scoped_lock lock(self.mu_);
        ++self.running_;
      }
      Running(const Running&) = delete;
      Running& operator=(const Running&) = delete;
      ~Running() {
        std::scoped_lock lock(self.mu_);
        --self.running_;
      }
    } running{*this};
    // Whatever happens below, the lease leaves this worker's list (no more renewals) — unless its
    // finish was written and not answered yet (settle() releases it then): a task this thread
    // could not finish is taken over once its lease expires.
    struct ReleaseLease {
      RedisWorker& self;
      const Taken& t;
      bool keep = false;
      ~ReleaseLease() {
        if (!keep) self.release_lease(t);
      }
    } release{*this, t};
    // Commands below wait for their answers: those of finishes written before them come first.
    if (lane != nullptr && (!t.message.slot_key.empty() || !t.message.rate_key.empty()))
      settle(conn, *lane);
    // Cluster-wide limits first: a task without its slot or its token goes back to wait (its lease
    // with it), holding no thread.
    std::string slot;
    if (!t.message.slot_key.empty()) {
      slot = detail::slot_key(o_.prefix, t.message.slot_key);
      const std::string limit = std::to_string(t.message.slot_limit);
      const std::string lease = std::to_string(o_.lease.count());
      if (detail::take_slot_script().run(conn, {slot}, {limit, t.entry, lease}).integer != 1) {
        defer(conn, t, slot_wait());
        return;
      }
      std::scoped_lock lock(mu_);
      slots_.push_back({slot, t.entry});
    }
    // The slot is released once the task ran, before its outcome is stored (so an executor that
    // has the result never sees the slot still held), or on any early exit.
    struct ReleaseSlot {
      RedisWorker& self;
      Redis& conn;
      std::string& slot;
      const std::string& holder;
      ~ReleaseSlot() { release(); }
      void release() {
        if (slot.empty()) return;
        const std::string key = std::exchange(slot, std::string());
        {
          std::scoped_lock lock(self.mu_);
          const auto it = std::find_if(self.slots_.begin(), self.slots_.end(), [&](const Slot& s) {
            return s.key == key && s.holder == holder;
          });
          if (it != self.slots_.end()) self.slots_.erase(it);
        }
        try {
          if (conn.is_connected()) (void)conn.command({"ZREM", key, holder});
        } catch (const std::exception&) {
          // its lease ends it
        }
      }
    } release_slot{*this, conn, slot, t.entry};
    if (!t.message.rate_key.empty()) {
      const std::string rate = std::to_string(t.message.rate_per_second);
      const std::string burst = std::to_string(t.message.rate_burst);
      const long long wait =
          detail::take_token_script()
              .run(conn, {detail::rate_key(o_.prefix, t.message.rate_key)}, {rate, burst})
              .integer;
      if (wait > 0) {
        defer(conn, t, std::chrono::milliseconds(wait));
        return;
      }
    }
    // The start is announced only if the run lasts kStartNotice: the maintenance thread sends
    // the notices that came due (best-effort: with Redis unreachable the task still runs, and
    // report() waits for Redis to store its outcome). A shorter run's result is its only message
    // (the executor takes a result as the start too), one push and one reader wake-up less per
    // task; a shorter run that ends in a retry reports its start then. cancel() does not depend on
    // it: Redis says whether a worker took the task.
    const bool announce = t.message.track_started && !t.taken_over;
    std::string notice;
    if (announce) {
      detail::ResultMessage s;
      s.id = t.message.id;
      s.kind = detail::ResultMessage::started;
      if (runner_->stoppable())
        s.flags = detail::ResultMessage::kStoppable;  // a revoke can kill the run
      notice = detail::encode(s);
      std::scoped_lock lock(mu_);
      const auto now = std::chrono::steady_clock::now();  // (under mu_: notices_ stays in order)
      const bool first = notices_.empty();
      notices_.push_back({now + kStartNotice, t.message.id, t.message.reply, notice});
      last_notice_ = now;
      // (With notices before, the thread already waits for the earliest; while ticking it wakes
      // every kStartNotice anyway: a stream of short tasks costs no wake-up each.)
      if (first && !ticking_) upkeep_cv_.notify_all();
    }
    detail::RunOutcome run = runner_->run(t.message);
    bool unsent = false;
    if (announce) {
      std::scoped_lock lock(mu_);
      const auto it = std::find_if(notices_.begin(), notices_.end(), [&](const StartNotice& n) {
        return n.id == t.message.id && n.reply == t.message.reply;
      });
      unsent = it != notices_.end();
      if (unsent) notices_.erase(it);
    }
    // A result says the task started; a retry says nothing to the executor, so a run that ends in
    // one reports its start now (the future is running: the task is taken until it is done).
    if (unsent && run.retry) {
      if (lane != nullptr) settle(conn, *lane);
      try {
        if (!conn.is_connected()) conn.reconnect();
        (void)conn.command({"RPUSH", t.message.reply, notice});
      } catch (const ConnectionError&) {
        conn.close();  // report() reconnects
      } catch (const RedisError&) {
        // LOADING...: the retry matters, not the start
      }
    }
    release_slot.release();
    release.keep = report(conn, t, run.result, run.retry, /*dead_letter=*/!run.revoked, lane);
  }

  // release_lease(t): t's lease leaves this worker's list (no more renewals).
  void release_lease(const Taken& t) {
    std::scoped_lock lock(mu_);
    const auto it = std::find_if(leases_.begin(), leases_.end(), [&](const Lease& l) {
      return l.queue == t.queue && l.entry == t.entry;
    });
    if (it != leases_.end()) leases_.erase(it);
  }

  // report(conn, t, r, retry, dead_letter, lane, until): stores the outcome (or the retry; a final
  // error goes to the dead letters if dead_letter), reconnecting while the lease may still be ours
  // (or until `until`); past it, another worker will run the task again. True when the finish was
  // written and its answer is left to settle() (a serving thread's `lane`, another task waiting:
  // finish()).
  bool report(Redis& conn, const Taken& t, const detail::ResultMessage& r, bool retry,
              bool dead_letter = true, Lane* lane = nullptr,
              std::optional<std::chrono::steady_clock::time_point> until = std::nullopt) {
    const auto give_up_at = until ? *until : std::chrono::steady_clock::now() + o_.lease;
    auto backoff = std::chrono::milliseconds(20);
    for (;;) {
      try {
        if (lane != nullptr && (retry || !conn.is_connected())) settle(conn, *lane);
        if (!conn.is_connected()) conn.reconnect();
        const std::optional<bool> kept =
            retry ? store_retry(conn, t)
                  : finish(conn, t, r, dead_letter && r.kind == detail::ResultMessage::error,
                           dead_letter, lane);
        if (!kept) return true;
        count_outcome(*kept, retry, r);
        return false;
      } catch (const ConnectionError&) {
        conn.close();
        if (std::chrono::steady_clock::now() >= give_up_at) return false;
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      } catch (const RedisError& e) {
        if (!detail::transient(e) || std::chrono::steady_clock::now() >= give_up_at) {
          std::fprintf(stderr, "concur worker %s: storing task %s: %s\n", o_.name.c_str(),
                       t.entry.c_str(), e.what());
          return false;
        }
        std::this_thread::sleep_for(backoff);  // LOADING: a restarted Redis reads its data
        backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      }
    }
  }

  // count_outcome(kept, retry, r): the stats of a stored outcome (kept: the lease was still ours).
  void count_outcome(bool kept, bool retry, const detail::ResultMessage& r) {
    std::scoped_lock lock(mu_);
    if (!kept)
      ++stats_.lost;
    else if (retry)
      ++stats_.retried;
    else if (r.kind == detail::ResultMessage::ok)
      ++stats_.succeeded;
    else
      ++stats_.failed;
  }

  // settle(conn, lane): the answers of the finishes `lane` wrote without waiting, in order. One
  // refused (NOSCRIPT after a Redis restart, LOADING…) or left unanswered by a broken connection
  // is stored again in full, waiting, as report() does — all of them within one lease from now,
  // not one each: past it they are left to be taken over. The finish script is idempotent (once
  // the entry is acknowledged, running it again finds no lease and stores nothing; that run counts
  // as lost in the stats). Their leases are released here.
  void settle(Redis& conn, Lane& lane) {
    if (lane.unread.empty()) return;
    std::vector<Unread> unread = std::exchange(lane.unread, {});
    std::vector<const Unread*> again;
    for (const Unread& u : unread) {
      if (!conn.is_connected()) {
        again.push_back(&u);
        continue;
      }
      try {
        count_outcome(conn.get_reply().as_integer() == 1, /*retry=*/false, u.r);
        release_lease(u.t);
      } catch (const ConnectionError&) {
        conn.close();
        again.push_back(&u);
      } catch (const RedisError&) {
        again.push_back(&u);
      }
    }
    const auto give_up_at = std::chrono::steady_clock::now() + o_.lease;
    for (const Unread* u : again) {
      (void)report(conn, u->t, u->r, /*retry=*/false, u->dead_letter, nullptr, give_up_at);
      release_lease(u->t);
    }
  }

  // finish(conn, t, r, dead, dead_letter, lane): FINISH — false when the lease had passed to
  // another worker. Given a serving thread's `lane` (not stopping):
  // - when another task waits in ready_ (read ahead, taken over), the script is written and the
  //   thread goes on without its answer: nullopt, the answer is settle()'s (the outcome is in
  //   Redis as soon as the script runs; only the worker's reading of the answer waits);
  // - else (one queue, no task waiting) the blocking read of the next task is pipelined behind
  //   the script, and lane->ahead set once the script's answer is in: the caller reads the task
  //   next. When the script fails (NOSCRIPT after a restart, or an error), the read's answer is
  //   taken first — it may carry a task, now leased to this worker — and the script is then run
  //   as without.
  std::optional<bool> finish(Redis& conn, const Taken& t, const detail::ResultMessage& r, bool dead,
                             bool dead_letter = true, Lane* lane = nullptr) {
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
    const std::vector<std::string_view> keys{streams_[t.queue], t.message.reply, dead_[t.queue],
                                             stats_key_};
    const std::vector<std::string_view> args{
        detail::kGroup,   o_.name,        t.entry, message,      ttl,
        dead ? "1" : "0", t.message.task, error,   task_message, field};
    const Script& script = detail::finish_script();
    if (lane == nullptr) return script.run(conn, keys, args).as_integer() == 1;
    const bool stop = stopping();
    const bool more = !stop && has_ready();
    if (more && lane->unread.size() < kMaxUnread) {
      script.append(conn, keys, args);
      conn.flush();
      lane->unread.push_back({t, r, dead_letter});
      return std::nullopt;
    }
    settle(conn, *lane);  // (the answers of the finishes written before come first)
    // (no blocking read while a task waits here: its answer would be waited for first)
    if (stop || more || streams_.size() != 1) return script.run(conn, keys, args).as_integer() == 1;
    script.append(conn, keys, args);
    conn.append(block_argv());
    std::optional<Reply> out;
    try {
      out = conn.get_reply();
    } catch (const RedisError&) {
      // (out stays empty: handled below, once the read's answer is in)
    }
    if (!out) {
      try {
        receive(conn, conn.get_reply());
      } catch (const RedisError&) {
        // the read's own refusal: the serving loop reads again
      }
      return script.run(conn, keys, args).as_integer() == 1;
    }
    lane->ahead = true;
    return out->as_integer() == 1;
  }

  // defer(conn, t, wait): the task goes back to wait for its limit (not a retry: the same message),
  // due in `wait`; a lease lost meanwhile leaves it to its new holder.
  void defer(Redis& conn, const Taken& t, std::chrono::milliseconds wait) {
    std::string member = t.message.task;
    member += '\n';
    member += detail::encode(t.message);
    const Reply out = detail::defer_script().run(
        conn, {streams_[t.queue], delayed_[t.queue]},
        {detail::kGroup, o_.name, t.entry, std::to_string(wait.count()), member});
    if (out.as_integer() == 1) {
      hint_promotion(wait);
      std::scoped_lock lock(mu_);
      ++stats_.deferred;
    } else {
      std::scoped_lock lock(mu_);
      ++stats_.lost;
    }
  }

  // hint_promotion(after): a task this worker put back is due after `after`: the maintenance
  // thread moves it back then.
  void hint_promotion(std::chrono::milliseconds after) {
    {
      std::scoped_lock lock(mu_);
      promote_hint_ = std::min(promote_hint_, std::chrono::steady_clock::now() + after);
    }
    upkeep_cv_.notify_all();
  }

  // slot_wait(): how long a task that found its slots taken waits before it tries again.
  std::chrono::milliseconds slot_wait() const {
    return std::clamp(o_.lease / 100, std::chrono::milliseconds(10),
                      std::chrono::milliseconds(200));
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
    if (out.as_integer() != 1) return false;
    hint_promotion(std::chrono::milliseconds(std::max<std::int64_t>(0, delay)));
    return true;
  }

  // upkeep_loop(): the maintenance thread — renews the leases and slots of the tasks taken (every
  // lease/3), records this worker's heartbeat, moves due retries and deferred tasks back to their
  // streams (when the next is due), and takes over expired leases and orphans (every lease/4, at
  // most once a second). Redis unreachable, it tries again after a backoff (50 ms doubling to
  // lease/3, at most 2 s), as the serving threads do.
  void upkeep_loop() {
    using clock = std::chrono::steady_clock;
    const auto beat_every = std::max(o_.lease / 3, std::chrono::milliseconds(10));
    const auto duty_every =
        std::clamp(o_.lease / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    const auto first_backoff = std::min(beat_every, std::chrono::milliseconds(50));
    const auto max_backoff = std::min(beat_every, std::chrono::milliseconds(2000));
    auto backoff = first_backoff;
    const std::string workers = detail::workers_key(o_.prefix);
    auto next_beat = clock::now();
    auto next_duty = clock::now();
    auto next_promote = clock::now();
    auto next_revoke = clock::now();
    auto retry_at = clock::time_point::min();  // after a failed pass: not before then
    std::unique_lock lock(mu_);
    while (!upkeep_stop_) {
      std::vector<std::vector<std::string>> by_queue(streams_.size());
      for (const Lease& l : leases_) by_queue[l.queue].push_back(l.entry);
      const std::vector<Slot> slots = slots_;
      const std::vector<std::shared_ptr<detail::ProcessRun>> runs = runner_->runs();
      next_promote = std::min(next_promote, std::exchange(promote_hint_, clock::time_point::max()));
      std::vector<StartNotice> due = take_due_notices(clock::now());
      lock.unlock();
      try {
        if (!upkeep_.is_connected()) upkeep_.reconnect();
        if (!due.empty()) send_notices(due);
        if (clock::now() >= next_beat) {
          for (std::size_t q = 0; q < by_queue.size(); ++q) {
            if (by_queue[q].empty()) continue;
            std::vector<std::string_view> args{detail::kGroup, o_.name};
            for (const std::string& e : by_queue[q]) args.emplace_back(e);
            (void)detail::extend_script().run(upkeep_, {streams_[q]}, args);
          }
          const std::string lease = std::to_string(o_.lease.count());
          for (const Slot& sl : slots)
            (void)detail::renew_slot_script().run(upkeep_, {sl.key}, {sl.holder, lease});
          (void)upkeep_.command({"HSET", workers, o_.name, std::to_string(now_ms())});
          next_beat = clock::now() + beat_every;
        }
        if (clock::now() >= next_promote) {
          // Due retries and deferred tasks back to their streams, and again when the next is due
          // (at least every 5 ms, at most every duty period).
          auto wait = duty_every;
          for (std::size_t q = 0; q < streams_.size(); ++q) {
            const long long ms =
                detail::promote_script().run(upkeep_, {delayed_[q], streams_[q]}, {"100"}).integer;
            if (ms >= 0) wait = std::min(wait, std::chrono::milliseconds(ms));
          }
          next_promote = clock::now() + std::max(wait, std::chrono::milliseconds(5));
        }
        if (clock::now() >= next_duty && !stopping()) {
          duties();
          next_duty = clock::now() + duty_every;
        }
        if (!runs.empty() && clock::now() >= next_revoke) {
          kill_revoked(runs);
          next_revoke = clock::now() + duty_every;
        }
        backoff = first_backoff;
      } catch (const std::exception&) {
        upkeep_.close();  // tried again after the backoff; a lease lasts three renewal periods
        retry_at = clock::now() + backoff;
        backoff = std::min(backoff * 2, max_backoff);
      }
      lock.lock();
      const auto next_notice = earliest_notice();
      auto until = std::min({next_beat, next_duty, next_promote, next_notice});
      // Ticking: start reports came within kTickFor, so more are likely: wake every kStartNotice
      // instead of being woken for each (a report is then sent up to kStartNotice late).
      const auto now = clock::now();
      ticking_ = now - last_notice_ < kTickFor;
      if (ticking_) until = std::min(until, now + kStartNotice);
      until = std::max(until, retry_at);
      upkeep_cv_.wait_until(lock, until, [&] {
        return upkeep_stop_ || promote_hint_ < next_promote || earliest_notice() < next_notice;
      });
    }
    lock.unlock();
    try {
      if (upkeep_.is_connected()) (void)upkeep_.command({"HDEL", workers, o_.name});
    } catch (const std::exception&) {
    }
  }

  // take_due_notices(now) (mu_ held): the start reports due by now, taken off the list (its
  // head: notices_ is in due order, each due its push time plus kStartNotice, pushed under mu_).
  std::vector<StartNotice> take_due_notices(std::chrono::steady_clock::time_point now) {
    const auto end = std::find_if(notices_.begin(), notices_.end(),
                                  [now](const StartNotice& n) { return n.due > now; });
    std::vector<StartNotice> due(std::make_move_iterator(notices_.begin()),
                                 std::make_move_iterator(end));
    notices_.erase(notices_.begin(), end);
    return due;
  }

  // earliest_notice() (mu_ held): when the next start report is due (max() when none is).
  std::chrono::steady_clock::time_point earliest_notice() const {
    return notices_.empty() ? std::chrono::steady_clock::time_point::max() : notices_.front().due;
  }

  // send_notices(due): the start reports, pipelined; a report that does not reach Redis is lost
  // (the task's outcome still is stored, and says it started).
  void send_notices(const std::vector<StartNotice>& due) {
    for (const StartNotice& n : due) upkeep_.append({"RPUSH", n.reply, n.message});
    upkeep_.flush();
    for (std::size_t i = 0; i < due.size(); ++i) {
      try {
        (void)upkeep_.get_reply();
      } catch (const RedisError&) {
        // LOADING...: this start was not recorded
      }
    }
  }

  // kill_revoked(runs): one MGET of the revoke keys of the runs in the pool; a revoked run is
  // cancelled (its process killed: the pool's kill_running) and its key deleted. A key whose run
  // had ended already stays (until its TTL): a retry of that task is killed when it runs.
  void kill_revoked(const std::vector<std::shared_ptr<detail::ProcessRun>>& runs) {
    std::vector<std::string_view> argv{"MGET"};
    for (const auto& r : runs) argv.emplace_back(r->revoke_key);
    const Reply got = upkeep_.command(argv);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (got.at(i).is_nil()) continue;
      if (runner_->revoke(runs[i])) (void)upkeep_.command({"DEL", runs[i]->revoke_key});
    }
  }

  // idle_threads(): serving threads without a task, less the tasks already waiting for one in
  // ready_ (a bound on how many tasks to take over). Not the leases: with prefetch, tasks read
  // ahead and finishes not answered yet hold leases too.
  std::size_t idle_threads() {
    std::scoped_lock lock(mu_);
    const std::size_t busy = running_ + ready_.size();
    return busy >= o_.concurrency ? 0 : o_.concurrency - busy;
  }

  // duties(): orphans taken back; expired leases taken over (as many as there are idle threads),
  // queued in ready_ for the serving threads.
  void duties() {
    for (std::size_t q = 0; q < streams_.size(); ++q) recover_orphans(q);
    for (std::size_t q = 0; q < streams_.size(); ++q) {
      const std::size_t room = idle_threads();
      if (room == 0) return;
      const std::string count = std::to_string(room);
      const std::string lease = std::to_string(o_.lease.count());
      const Reply r = detail::reclaim_script().run(
          upkeep_, {streams_[q]}, {detail::kGroup, o_.name, lease, count, cursors_[q]});
      cursors_[q] = r.at(0).str;
      for (const Reply& e : r.at(1).elements) {
        const long long deliveries = e.at(2).as_integer();
        std::optional<Taken> t = parse_entry(upkeep_, q, e.at(0).str, e.at(1));
        if (!t) continue;
        if (deliveries > static_cast<long long>(o_.max_deliveries)) {
          give_up(*t, deliveries);
          continue;
        }
        t->taken_over = true;
        std::scoped_lock lock(mu_);
        ++stats_.taken_over;
        leases_.push_back({t->queue, t->entry});
        ready_.push_back(std::move(*t));
      }
    }
  }

  // recover_orphans(q): entries pending under this worker's name that none of its threads holds —
  // the reply of the XREADGROUP that took them was lost (Redis died between running it and
  // answering) — are taken back now rather than after a whole lease. Only entries idle for
  // orphan_idle(): a held lease is renewed well before, and a thread registers what it read at
  // once.
  void recover_orphans(std::size_t q) {
    const std::string idle = std::to_string(orphan_idle().count());
    const Reply pending = upkeep_.command(
        {"XPENDING", streams_[q], detail::kGroup, "IDLE", idle, "-", "+", "100", o_.name});
    std::vector<std::string> orphans;
    {
      std::scoped_lock lock(mu_);
      for (const Reply& e : pending.elements) {
        const std::string& id = e.at(0).str;
        const bool held = std::any_of(leases_.begin(), leases_.end(), [&](const Lease& l) {
          return l.queue == q && l.entry == id;
        });
        if (!held) orphans.push_back(id);
      }
    }
    if (orphans.empty()) return;
    std::vector<std::string_view> argv{"XCLAIM", streams_[q], detail::kGroup, o_.name, idle};
    for (const std::string& id : orphans) argv.emplace_back(id);
    const Reply claimed = upkeep_.command(argv);
    for (const Reply& e : claimed.elements) {
      if (!e.is_array()) continue;  // deleted meanwhile
      std::optional<Taken> t = parse_entry(upkeep_, q, e.at(0).str, e.at(1));
      if (!t) continue;
      std::scoped_lock lock(mu_);
      ++stats_.recovered;
      leases_.push_back({t->queue, t->entry});
      ready_.push_back(std::move(*t));
    }
  }

  std::chrono::milliseconds orphan_idle() const {
    return std::clamp(o_.lease / 2, std::chrono::milliseconds(15), std::chrono::milliseconds(1000));
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
    if (finish(upkeep_, t, r, /*dead=*/true).value_or(false)) {
      std::scoped_lock lock(mu_);
      ++stats_.failed;
    }
  }

  WorkerOptions o_;
  RedisUrl url_;
  std::vector<std::string> streams_, delayed_, dead_, cursors_;
  std::string per_read_;  // tasks a serving thread's read takes: max(1, prefetch ÷ concurrency)
  std::string stats_key_;
  std::vector<Redis> conns_;  // one per serving thread
  Redis upkeep_;              // the maintenance thread's
  std::atomic<bool> stop_{false};

  mutable std::mutex mu_;  // everything below
  std::condition_variable upkeep_cv_;
  std::deque<Taken> ready_;    // taken (over) and not started: the next free thread runs them
  std::size_t running_ = 0;    // serving threads inside execute()
  std::vector<Lease> leases_;  // every task this worker holds
  std::vector<Slot> slots_;    // the ConcurrencyLimit slots its running tasks hold
  std::vector<StartNotice> notices_;  // start reports of running tasks, not due yet, in due order
  std::chrono::steady_clock::time_point last_notice_{};  // when the last one was queued
  bool ticking_ = false;  // the maintenance thread wakes every kStartNotice (upkeep_loop())
  // promote_hint_: when a task this worker put back (retry, limit) is due — the maintenance thread
  // promotes then rather than at its next period.
  std::chrono::steady_clock::time_point promote_hint_ =
      std::chrono::steady_clock::time_point::max();
  bool upkeep_stop_ = false;
  WorkerStats stats_;
  std::unique_ptr<detail::TaskRunner> runner_;  // runs the tasks (threads or processes)
};

}  // namespace

Worker::Worker(WorkerOptions options)
    : impl_(detail::is_amqp_url(options.url)
                ? detail::make_amqp_worker(std::move(options))
                : std::unique_ptr<Impl>(std::make_unique<RedisWorker>(std::move(options)))) {}
Worker::~Worker() = default;
void Worker::run() {
  // A copy in a forked process has its parent's consumer name (two workers of one name renew,
  // recover and finish each other's leases), and maybe its threads' process pool.
  if (::getpid() != impl_->creator)
    throw UsageError("a dist::Worker made in process " + std::to_string(impl_->creator) +
                     " cannot run in process " + std::to_string(::getpid()) +
                     ", forked from it: make the Worker in the process that runs it");
  impl_->run();
}
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
  CLI::App app{"concur worker: serves the registered tasks of this program from Redis or RabbitMQ"};
  WorkerOptions o;
  std::string queues = "default";
  double lease_s = 30;
  auto* redis = app.add_option("--redis", o.url, "Redis URL (redis://host:port/db or unix:///path)")
                    ->capture_default_str();
  std::string amqp;
  app.add_option("--amqp", amqp,
                 "RabbitMQ URL (amqp://user:password@host:port/vhost): serve AmqpExecutor's tasks "
                 "instead of Redis's")
      ->excludes(redis);
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
  app.add_option("--prefetch", o.prefetch,
                 "tasks held at once, running or waiting (0: --concurrency; more for short "
                 "tasks: over Redis a thread's read takes prefetch/concurrency tasks)")
      ->capture_default_str();
  app.add_option("--name", o.name, "this worker's name (default: host:pid)");
  app.add_option("--prefix", o.prefix, "key prefix shared with the executors")
      ->capture_default_str();
  app.add_flag("--processes", o.processes,
               "run each task in a process of the worker's pool (crash isolation; a running task "
               "can be cancelled)");
  double time_limit_s = 0;
  app.add_option("--time-limit", time_limit_s,
                 "seconds a run may take unless its task says otherwise (0: no limit; needs "
                 "--processes)")
      ->check(CLI::Range(0.0, 31'536'000.0))
      ->capture_default_str();
  double soft_time_limit_s = 0;
  app.add_option("--soft-time-limit", soft_time_limit_s,
                 "seconds after which a run is told to stop (mp::check_soft_time_limit) unless "
                 "its task says otherwise (0: never)")
      ->check(CLI::Range(0.0, 31'536'000.0))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!amqp.empty()) o.url = amqp;
  o.queues.clear();
  std::stringstream ss(queues);
  for (std::string q; std::getline(ss, q, ',');)
    if (!q.empty()) o.queues.push_back(q);
  o.lease = std::chrono::milliseconds(static_cast<long long>(lease_s * 1000));
  o.time_limit = std::chrono::milliseconds(static_cast<long long>(time_limit_s * 1000));
  o.soft_time_limit = std::chrono::milliseconds(static_cast<long long>(soft_time_limit_s * 1000));
  try {
    Worker worker(o);
    g_worker.store(&worker);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    (void)::sigaction(SIGINT, &sa, nullptr);
    (void)::sigaction(SIGTERM, &sa, nullptr);
    std::fprintf(
        stderr, "concur worker %s: serving %s from %s (%zu at once%s)\n", worker.name().c_str(),
        queues.c_str(),
        (detail::is_amqp_url(o.url) ? AmqpUrl::parse(o.url).str() : RedisUrl::parse(o.url).str())
            .c_str(),
        worker.options().concurrency, o.processes ? ", in processes" : "");
    worker.run();
    g_worker.store(nullptr);
    const WorkerStats s = worker.stats();
    std::fprintf(stderr,
                 "concur worker %s: stopped (%llu succeeded, %llu failed, %llu retried, %llu "
                 "taken over",
                 worker.name().c_str(), static_cast<unsigned long long>(s.succeeded),
                 static_cast<unsigned long long>(s.failed),
                 static_cast<unsigned long long>(s.retried),
                 static_cast<unsigned long long>(s.taken_over));
    if (o.processes)
      std::fprintf(stderr, "; %llu crashed, %llu revoked, %llu past their time limit",
                   static_cast<unsigned long long>(s.crashed),
                   static_cast<unsigned long long>(s.revoked),
                   static_cast<unsigned long long>(s.timed_out));
    std::fprintf(stderr, ")\n");
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
