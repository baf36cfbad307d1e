// RedisExecutor: submits are pipelined XADDs on one connection (their entry ids read as they
// come back); a second connection reads this executor's reply list (LTRIM + LRANGE of up to 256
// messages + BLMOVE onto itself to wait, one write per cycle) and hands the messages to
// RemoteClient::deliver (remote_client.cpp), which settles the futures. That connection is read by
// a reader thread, or by a thread blocked on one of the futures (assist()), which is then woken by
// its result directly.
#include "concur/dist/executor.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
// kPollSeconds: how long BLMOVE waits for a message; the reader thread also wakes this often to
// read the submits' answers (its stop flag has an eventfd).
constexpr int kPollSeconds = 1;
constexpr std::string_view kPollText = "1";
// kBorrowSpin: how long a waiter looks for the reader thread to finish its turn (assist()).
constexpr auto kBorrowSpin = std::chrono::microseconds(20);

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
    probe_reply_skip();
  }
  ~RedisClient() override { join_reader(); }

  static ClientSettings settings_of(const RedisOptions& o) {
    if (o.queue.empty()) throw ValueError("RedisOptions::queue must not be empty");
    return ClientSettings{"RedisExecutor", o.queue,         o.task,
                          o.result_ttl,    o.track_started, o.max_workers};
  }

  void start() override {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_.get();
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev) != 0)
      throw OSError(errno, "RedisExecutor: epoll_ctl");
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
    {
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
    }
    resume_reading();
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
      bool read_socket = true;  // once: what comes later is read by the next look
      while (!unanswered_.empty()) {
        try {
          std::optional<Reply> r = submit_.buffered_reply();
          if (!r && read_socket) {
            read_socket = false;
            r = submit_.try_reply();
          }
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

  // wake_reader(): the reader thread's eventfd (its stop flag, a lost connection, a job for it).
  void wake_reader() noexcept override { signal(wake_fd_.get()); }

  void settled_elsewhere() noexcept override {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // (see set_assisting())
    if (assisting_.load(std::memory_order_seq_cst)) signal(kick_fd_.get());
  }

  // ---- reading the reply list ----
  //
  // The list is read without destroying anything first, so that a Redis that dies between running
  // a command and sending its reply cannot take messages with it (a pop would). One cycle is one
  // write: LTRIM of the messages delivered (when there are), LRANGE of up to 256, and BLMOVE of
  // the list onto itself (head to head: nothing changes), which returns at once with the head when
  // the list is not empty — LRANGE's first message, ignored — and otherwise waits up to
  // kPollSeconds for the next message, which is delivered and trimmed by the next cycle. Only the
  // reader removes from the head (workers push to the tail), so the first n elements are exactly
  // the n delivered. After a lost connection the untrimmed ones are read again: deliver() ignores
  // what it has seen (a settled job is gone, a start is recorded once).
  //
  // Whoever holds busy_ reads: the reader thread, which waits for the socket in epoll, or a thread
  // blocked on one of this executor's futures (assist()), which takes the socket out of the
  // reader's epoll set, reads (delivering every message, not only its own) until its future is
  // done and puts the socket back (hand_back()). That thread is then woken by its result itself,
  // not by the reader thread: one hand-off less per round trip. Whenever nobody holds busy_, a
  // cycle is on its way, so a reply — at the latest BLMOVE's timeout — wakes the reader; or the
  // connection is idle with no job waiting (idle_: the next send() sends a cycle); or it was lost
  // and the reader thread was woken to connect again.

  // Outstanding: the replies of the cycle sent and not read yet (head: BLMOVE's answer should be
  // the head LRANGE delivered already, head_msg, to be ignored).
  struct Outstanding {
    bool trim = false;
    bool range = false;
    bool block = false;
    bool head = false;
    std::string head_msg;
    // answered(): every reply of the cycle was read (or none was sent).
    [[nodiscard]] bool answered() const noexcept { return !trim && !range && !block; }
  };
  // Step: where advance() stopped.
  enum class Step : std::uint8_t { kWaiting, kDone };

  // connect_reader() (busy_ held): reconnects reader_conn_ and asks about CLIENT REPLY SKIP.
  // Throws ConnectionError and RedisError (AUTH, SELECT refused).
  void connect_reader() {
    {
      std::scoped_lock lock(rd_mu_);
      unregister_locked();  // (the new socket may get the old one's number)
    }
    reader_conn_.reconnect();
    out_ = Outstanding{};
    delivered_ = 0;
    blmove_answered_ = false;
    probe_reply_skip();
  }
  // probe_reply_skip(): whether this server takes CLIENT REPLY SKIP (an ACL user without it, a
  // renamed CLIENT or a proxy may refuse it): one write of CLIENT REPLY SKIP and two LLENs of the
  // reply list (which this connection may run anyway); the first LLEN's reply is skipped where it
  // works, so one reply comes — three (an error, two lengths) where it does not.
  void probe_reply_skip() {
    reader_conn_.append({"CLIENT", "REPLY", "SKIP"});
    reader_conn_.append({"LLEN", reply()});
    reader_conn_.append({"LLEN", reply()});
    try {
      skip_ok_ = reader_conn_.get_reply().type == Reply::Type::integer;
    } catch (const RedisError&) {
      skip_ok_ = false;
    }
    if (!skip_ok_) {
      (void)reader_conn_.get_reply();
      (void)reader_conn_.get_reply();
    }
  }

  // send_cycle(range): LTRIM (when messages were delivered) + LRANGE + BLMOVE, one write. Without
  // range (a waiter hands the socket back: the next message is likely one result), LTRIM's reply is
  // skipped (CLIENT REPLY SKIP, where the server takes it) and there is no LRANGE: only BLMOVE
  // answers, so nobody is woken before the next message comes — the head once the delivered ones
  // are gone.
  void send_cycle(bool range) {
    if (delivered_ > 0) {
      const std::string n = std::to_string(delivered_);
      const bool skip = !range && skip_ok_;
      if (skip) reader_conn_.append({"CLIENT", "REPLY", "SKIP"});
      reader_conn_.append({"LTRIM", reply(), n, "-1"});
      out_.trim = !skip;
      delivered_ = 0;
    }
    if (range) reader_conn_.append({"LRANGE", reply(), "0", kLastText});
    reader_conn_.append({"BLMOVE", reply(), reply(), "LEFT", "LEFT", kPollText});
    out_.range = range;
    out_.block = true;
    out_.head = false;
    reader_conn_.flush();
  }

  // next_reply(read_socket): the cycle's next reply if it was received, else — when read_socket
  // (cleared then: one read per advance(), the socket says when there is more) — after one
  // non-blocking read. Throws RedisError (an error reply) and ConnectionError.
  std::optional<Reply> next_reply(bool& read_socket) {
    std::optional<Reply> r = reader_conn_.buffered_reply();
    if (!r && read_socket) {
      read_socket = false;
      r = reader_conn_.try_reply();
    }
    return r;
  }

  [[noreturn]] void unexpected(const char* what) {
    throw ConnectionError(EPROTO, std::string("RedisExecutor: unexpected reply to ") + what +
                                      " on the reply list's connection (reconnecting)");
  }

  // advance(until, read_socket): reads the replies that are here (never waits), delivering the
  // messages and sending the next cycle when one is answered, until a reply has not come yet
  // (kWaiting) — or, with `until`, as soon as that state is done (kDone; the next cycle is then
  // sent by hand_back()). read_socket false looks only at what was received already. An error
  // reply (LOADING after a restart, BUSY...) or one of the wrong type leaves the count of replies
  // in doubt: ConnectionError, and the caller starts the connection again (the messages not
  // trimmed are read again; deliver() drops what it has seen). State changes come before each
  // deliver(): a done-callback it runs may wait for another future and read on (assist()).
  Step advance(const FutureStateBase* until, bool read_socket) {
    for (;;) {
      if (out_.answered()) {
        if (until != nullptr && until->done()) return Step::kDone;
        send_cycle(true);
      }
      std::optional<Reply> r;
      try {
        r = next_reply(read_socket);
      } catch (const RedisError& e) {
        throw ConnectionError(EPROTO, std::string("RedisExecutor: the reply list: ") + e.what());
      }
      if (!r) return Step::kWaiting;
      if (out_.trim) {
        if (r->type != Reply::Type::status) unexpected("LTRIM");
        out_.trim = false;
      } else if (out_.range) {
        if (!r->is_array()) unexpected("LRANGE");
        out_.range = false;
        if (!r->elements.empty()) {
          delivered_ = r->elements.size();
          out_.head = true;  // BLMOVE answers at once: the head, delivered here
          out_.head_msg = r->elements.front().str;
          for (const Reply& m : r->elements) deliver(m.str);
        }
      } else {
        if (!r->is_nil() && r->type != Reply::Type::string) unexpected("BLMOVE");
        out_.block = false;
        blmove_answered_ = true;
        const bool head = std::exchange(out_.head, false);
        if (head && !r->is_nil() && r->str == out_.head_msg) continue;  // (delivered)
        // Not the head after all: the list went (its TTL, a DEL) between LRANGE and BLMOVE, so
        // nothing delivered is left to trim; this message (if any) is a new list's first.
        if (head) delivered_ = 0;
        if (!r->is_nil()) {
          delivered_ = 1;
          deliver(r->str);
        }
      }
    }
  }

  // lost_connection() (busy_ held): reader_conn_ is closed (out of the reader's epoll set first: a
  // copy of the socket in a child process would keep a closed one there); the reader thread
  // connects again.
  void lost_connection() noexcept {
    {
      std::scoped_lock lock(rd_mu_);
      unregister_locked();
    }
    reader_conn_.close();
    out_ = Outstanding{};
    delivered_ = 0;  // read them again (a lost LTRIM may or may not have run)
  }

  // unregister_locked() (rd_mu_ and busy_ held): reader_conn_'s socket leaves the reader's epoll
  // set. Not when reader_conn_ has closed it already (Redis closes its socket on an I/O error,
  // before the error reaches us): closing took it out of the set (no other process holds a copy:
  // fork is refused in a process with threads, spawn closes what it does not pass), and its number
  // may be another thread's new descriptor by now.
  void unregister_locked() noexcept {
    if (registered_fd_ < 0) return;
    if (reader_conn_.fd() == registered_fd_)
      (void)::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, registered_fd_, nullptr);
    registered_fd_ = -1;
  }

  // take_locked() (rd_mu_ held, busy_ free): the calling thread holds busy_ now.
  void take_locked() noexcept {
    busy_ = true;
    owner_ = std::this_thread::get_id();
    idle_ = false;  // (the holder sends what it needs; hand_back() decides again)
  }

  // release(): gives up busy_; the socket goes (back) into the reader's epoll set.
  void release() {
    std::scoped_lock lock(rd_mu_);
    release_locked();
  }
  void release_locked() noexcept {
    busy_ = false;
    owner_ = std::thread::id();
    const int fd = reader_conn_.fd();
    if (fd >= 0 && registered_fd_ != fd) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) == 0) registered_fd_ = fd;
    }
  }

  // hand_back() (busy_ held): releases busy_. Nothing is sent when the cycle is answered and no
  // job waits for a message: the connection is idle, and the next send() sends a cycle after its
  // XADD — so Redis has the task first, and the waiter returns without a write. Otherwise a cycle
  // without LRANGE goes out first. False when the connection broke (the reader thread reconnects).
  bool hand_back() noexcept {
    try {
      for (;;) {
        {
          std::scoped_lock lock(rd_mu_);
          const bool answered = out_.answered();
          if (!answered || !reader_conn_.is_connected() || pending() == 0) {
            idle_ = answered && reader_conn_.is_connected();
            release_locked();
            return true;
          }
        }
        send_cycle(false);  // (a job waits: its message must be read)
      }
    } catch (const std::exception&) {
      lost_connection();  // (a broken connection, or an allocation: the reader starts again)
    }
    std::scoped_lock lock(rd_mu_);
    idle_ = false;
    release_locked();
    return false;
  }

  // resume_reading(): after an XADD: an idle connection (hand_back()) gets its next cycle, sent
  // here, so that someone is woken by the task's messages.
  void resume_reading() noexcept {
    {
      std::scoped_lock lock(rd_mu_);
      if (busy_ || !idle_) return;  // (whoever holds busy_ sends one in hand_back())
      take_locked();
    }
    bool broken = false;
    try {
      send_cycle(false);
    } catch (const std::exception&) {
      lost_connection();
      broken = true;
    }
    release();
    if (broken) wake_reader();
  }

  // assist(state, d): see above. Only one thread reads at a time: when the reader thread or
  // another waiter reads, this one waits plainly (the reader delivers its result). A done-callback
  // that a reading thread runs (in deliver()) and that waits for another future reads on, in
  // place (read_nested()).
  bool assist(const FutureStateBase& state, const Deadline& d) noexcept override {
    if (state.done()) return true;
    if (d.expired()) return false;  // (a poll: not worth taking the connection)
    const Borrow b = borrow();
    if (b == Borrow::kNested) return read_nested(state, d);
    if (b == Borrow::kRefused) return false;
    const bool was_assisting = set_assisting(true);
    bool wake = false;
    try {
      bool readable = false;  // (the reader thread read what had come when it was last readable)
      for (;;) {
        if (advance(&state, readable) != Step::kWaiting || state.done()) break;
        if (!wait_readable(d)) break;
        readable = true;
      }
    } catch (const std::exception&) {
      lost_connection();  // (an error reply, a broken connection, an allocation)
      wake = true;
    }
    set_assisting(was_assisting);
    if (!hand_back()) wake = true;
    if (wake) wake_reader();
    return state.done();
  }

  // read_nested(state, d): assist() in the thread that holds busy_ already, inside a deliver()
  // of its own (a done-callback waiting for another future of this executor): it reads on as
  // the holder; the outer reading carries on from the state it leaves.
  bool read_nested(const FutureStateBase& state, const Deadline& d) noexcept {
    const bool was_assisting = set_assisting(true);
    try {
      bool readable = true;
      while (reader_conn_.is_connected() && !state.done()) {
        if (advance(&state, readable) != Step::kWaiting || state.done()) break;
        if (!wait_readable(d)) break;
      }
    } catch (const std::exception&) {
      lost_connection();  // (the outer reading meets the closed connection and gives it up)
      wake_reader();
    }
    set_assisting(was_assisting);
    return state.done();
  }

  // set_assisting(on): assisting_ (settled_elsewhere() kicks a thread in assist()); returns the
  // previous value. The fence orders the store before the caller's next look at its state, as
  // settled_elsewhere()'s orders the settle before its look at assisting_.
  bool set_assisting(bool on) noexcept {
    const bool was = assisting_.exchange(on, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return was;
  }

  // borrow(): takes busy_ for assist(), the socket out of the reader's epoll set. The reader
  // thread holds busy_ only while it handles what it read, so a waiter that finds it busy looks
  // again for a few microseconds before it gives up (the plain wait follows).
  // kNested: this thread holds busy_ already (assist() from a done-callback it runs).
  enum class Borrow : std::uint8_t { kTaken, kNested, kRefused };
  Borrow borrow() {
    const auto give_up = std::chrono::steady_clock::now() + kBorrowSpin;
    for (;;) {
      {
        std::scoped_lock lock(rd_mu_);
        if (busy_ && owner_ == std::this_thread::get_id()) return Borrow::kNested;
        if (stop_.load()) return Borrow::kRefused;
        if (!busy_) {
          // (the connection is looked at only once busy_ is free: its holder changes it)
          if (!reader_conn_.is_connected()) return Borrow::kRefused;
          take_locked();
          unregister_locked();
          return Borrow::kTaken;
        }
      }
      if (std::chrono::steady_clock::now() >= give_up) return Borrow::kRefused;
      std::this_thread::yield();
    }
  }

  // wait_readable(d): waits until the socket is readable (true), the kick eventfd was signalled
  // (true: the state may be done) or the deadline passed (false).
  bool wait_readable(const Deadline& d) {
    pollfd fds[2] = {{reader_conn_.fd(), POLLIN, 0}, {kick_fd_.get(), POLLIN, 0}};
    for (;;) {
      const auto left = d.remaining();
      if (left == Clock::duration::zero()) return false;
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(
          std::min<Clock::duration>(left, std::chrono::seconds(kPollSeconds + 1)));
      const int n = ::poll(fds, 2, static_cast<int>(ms.count()));
      if (n > 0) {
        if ((fds[1].revents & POLLIN) != 0) drain_eventfd(kick_fd_.get());
        return true;
      }
      if (n < 0 && errno != EINTR) return true;  // (advance() then meets the error)
    }
  }

  // read_loop(): the reader thread: reads whenever the socket is readable and no waiter reads;
  // wakes at least every kPollSeconds to read the submits' answers and look at its stop flag.
  void read_loop() {
    auto backoff = std::chrono::milliseconds(50);
    while (!finished()) {
      drain_answers();  // (each round: an XADD Redis refused fails its future)
      bool mine = false;
      {
        std::scoped_lock lock(rd_mu_);
        if (!busy_) {
          take_locked();
          mine = true;
        }
      }
      if (mine) {
        bool failed = false;
        bool served = false;
        try {
          if (!reader_conn_.is_connected()) connect_reader();
          (void)advance(nullptr, true);
          served = blmove_answered_;
        } catch (const std::exception&) {
          // Redis went away, refused AUTH, or answered an error: the replies wait in the list
          // (result_ttl); connect again after a pause
          lost_connection();
          failed = true;
        }
        release();
        if (failed) {
          pause(backoff);
          continue;
        }
        // The backoff starts again once Redis has answered a BLMOVE on this connection: one that
        // takes the connection but refuses the read (a read-only replica, OOM, an ACL) does not
        // reset it (it reconnected every 50 ms).
        if (served) backoff = std::chrono::milliseconds(50);
      }
      wait_events();
    }
  }

  // wait_events(): the reader thread sleeps until its socket is readable, its eventfd is
  // signalled, or kPollSeconds passed.
  void wait_events() {
    epoll_event events[2];
    const int n = ::epoll_wait(epoll_fd_.get(), events, 2, kPollSeconds * 1000);
    for (int i = 0; i < n; ++i)
      if (events[i].data.fd == wake_fd_.get()) drain_eventfd(wake_fd_.get());
  }

  static void signal(int fd) noexcept {
    const std::uint64_t one = 1;
    (void)!::write(fd, &one, sizeof one);
  }
  static void drain_eventfd(int fd) noexcept {
    std::uint64_t count = 0;
    (void)!::read(fd, &count, sizeof count);
  }

  void pause(std::chrono::milliseconds& backoff) {
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (std::chrono::steady_clock::now() < until && !stop_.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }

  // Fd: an owned descriptor.
  class Fd {
   public:
    explicit Fd(int fd) : fd_(fd) {
      if (fd_ < 0) throw OSError(errno, "RedisExecutor: eventfd/epoll_create1");
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { ::close(fd_); }
    [[nodiscard]] int get() const noexcept { return fd_; }

   private:
    int fd_;
  };

  RedisOptions options_;
  RedisUrl url_;

  std::mutex submit_mu_;  // submit_, known_queues_, unanswered_
  Redis submit_;
  KnownQueues known_queues_;
  std::deque<Unanswered> unanswered_;             // in the order sent
  std::atomic<std::size_t> unanswered_count_{0};  // unanswered_.size(), for the reader's look

  Fd wake_fd_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};  // wakes the reader thread
  Fd kick_fd_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};  // wakes a thread in assist()
  Fd epoll_fd_{::epoll_create1(EPOLL_CLOEXEC)};           // the reader thread's: wake_fd_, socket
  std::mutex rd_mu_;                                      // busy_, registered_fd_
  bool busy_ = false;       // a thread reads reader_conn_ (it owns the four below)
  std::thread::id owner_;   // that thread
  bool idle_ = false;       // nothing is sent on reader_conn_ and no job waits (hand_back())
  int registered_fd_ = -1;  // reader_conn_'s socket while it is in epoll_fd_
  Redis reader_conn_;
  Outstanding out_;
  std::size_t delivered_ = 0;     // at the head of the list, not trimmed yet
  bool skip_ok_ = false;          // the server takes CLIENT REPLY SKIP (connect_reader())
  bool blmove_answered_ = false;  // a BLMOVE was answered on reader_conn_'s connection
  std::atomic<bool> assisting_{false};
  std::thread reader_;
  std::mutex join_mu_;
};

}  // namespace detail

RedisExecutor::RedisExecutor(const std::string& url, RedisOptions options)
    : RemoteExecutor(std::make_shared<detail::RedisClient>(url, options, detail::new_client_id())),
      options_(std::move(options)) {}

}  // namespace concur::dist
