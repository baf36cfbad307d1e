// ProcessPoolExecutor (see include/concur/process_pool.hpp).
//
// One dispatcher thread owns the workers. Each worker is an mp::Process running the registered
// task "concur::ProcessPoolExecutor::worker" with its own mailbox (src/mp/mailbox.hpp: a request
// ring and a reply ring in a shared memfd, futex wake-ups) and a duplex Connection for the
// messages the rings do not carry (descriptors, or longer than 64 KiB; a marker in the ring keeps
// their place). The dispatcher keeps a few requests in each worker's ring (see kMinPerWorker),
// sleeps in epoll over every worker's reply eventfd (written by a worker only when the dispatcher
// announced it sleeps there) and pidfd, plus a wake-up Connection that submit() and shutdown()
// write to when it sleeps, and settles futures in the dispatcher thread — unless a thread blocked
// on a future borrows that worker's reply ring and reads the reply itself (assist_wait): then a
// round trip makes no system call when both sides are awake. A worker's pidfd turning readable
// means it exited: the replies it published are read, then the request it was running (the oldest
// unanswered) fails with BrokenProcessPool, the others go back to the front of the pending queue,
// and a new worker takes its place.
// Arguments and results past kPoolFileThreshold travel as sealed memfds (mp::detail::SpilledBytes):
// a request or reply then carries the file's descriptor (on the Connection), and each side reads
// the other's file with pread, straight into the values it loads.
#include "concur/process_pool.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <streambuf>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../base/this_pid.hpp"
#include "concur/mp/connection.hpp"
#include "exception_info.hpp"
#include "mailbox.hpp"

namespace concur {

namespace detail {

namespace {

// A worker gets at least kMinPerWorker requests in flight (one running, one waiting in its pipe,
// so it never idles between tasks) and, while the backlog is long, up to kMaxPerWorker (a
// quarter of its share of the backlog): a bulk submit then costs one wake-up per many tasks
// instead of per task, a task never waits behind another worker's queue while the backlog is
// short, and most of a long backlog stays cancellable.
constexpr std::size_t kMinPerWorker = 2;
constexpr std::size_t kMaxPerWorker = 64;
// A message carries at most kMaxPerWorker requests, hence as many argument files (descriptors),
// and the handles of their arguments within the message's budget (send_work_locked).
static_assert(kMaxPerWorker < mp::kMaxDescriptors);
// The request bytes a worker may have outstanding (see send_work_locked): below a pipe's 64 KiB
// capacity, with room for a frame header.
constexpr std::size_t kWireBudget = 48 * 1024;

// The wire format between the dispatcher and a worker.
struct PoolRequest {
  std::uint64_t id = 0;  // 0: exit
  std::string task;
  mp::detail::SpilledBytes args;    // one call's arguments, or a batch's, back to back
  std::uint64_t batch = 0;          // 0: one call; n: a batch of n calls (results back to back)
  std::uint64_t time_limit_ms = 0;  // 0: none (see ProcessPoolOptions::time_limit)
  std::uint64_t soft_limit_ms = 0;  // 0: none (see ProcessPoolOptions::soft_time_limit)
  mp::detail::Descriptors handles;  // the handles among the arguments (PoolJob::handles)
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, task, args, batch, time_limit_ms, soft_limit_ms, handles);
  }
};

// RequestMessage is one message to a worker: `requests` (the exit request), then the requests of
// `jobs`, saved straight from the jobs — their arguments are not copied, a file travels as its
// descriptor. Saved in the bytes of a std::vector<PoolRequest>; the worker loads it as one
// (`requests`).
struct RequestMessage {
  std::vector<PoolRequest> requests;
  std::vector<const PoolJob*> jobs;
  template <class Archive>
  void save(Archive& ar) const {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(requests.size() + jobs.size())));
    for (const PoolRequest& r : requests) ar(r);
    for (const PoolJob* job : jobs) {
      const std::size_t n = std::char_traits<char>::length(job->task);  // as a std::string
      ar(job->id, cereal::make_size_tag(static_cast<cereal::size_type>(n)),
         cereal::binary_data(job->task, n), job->args, static_cast<std::uint64_t>(job->batch),
         static_cast<std::uint64_t>(job->time_limit.count()),
         static_cast<std::uint64_t>(job->soft_time_limit.count()), job->handles);
    }
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(requests);
  }
};

// skipped: the request's future was cancelled (kill_running) before the worker started it.
enum class ReplyStatus : std::uint8_t { ok, error, init_failed, skipped };

// A worker's exit codes of its own: its pool is gone (the control pipe closed: the parent died),
// it stopped itself for the task it was running, cancelled with kill_running, or for the task
// that ran past its time limit (124, as GNU timeout's).
constexpr int kOrphanedExit = 1;
constexpr int kCancelledExit = 3;
constexpr int kTimeLimitExit = 124;

// kGiveBackCheck: a dispatcher callback waiting for a borrowed worker (await_give_back) is woken
// when it is given back or a job of it settles; it also looks again this often, as a backstop.
constexpr auto kGiveBackCheck = std::chrono::milliseconds(100);

struct PoolReply {
  std::uint64_t id = 0;
  ReplyStatus status = ReplyStatus::ok;
  mp::detail::SpilledBytes result;  // past kPoolFileThreshold, the worker's memfd
  std::string type_name;
  std::string message;
  std::string traceback;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, status, result, type_name, message, traceback);
  }
};

// describe_current(reply) fills the error fields from the exception being handled.
void describe_current(PoolReply& reply) {
  mp::detail::ExceptionInfo info = mp::detail::describe_current_exception();
  reply.type_name = std::move(info.type_name);
  reply.message = std::move(info.message);
}

// WorkerWatch is what a worker's main thread and its watchdog thread share: the request running
// now (0: none) and the ids cancelled before they started. Immortal (the process ends by _exit
// with the watchdog still blocked in a read).
struct WorkerWatch {
  std::mutex mu;
  std::uint64_t running CONCUR_GUARDED_BY(mu) = 0;
  // An id whose cancel raced with the task's end stays here (a few bytes, only after such a race).
  std::unordered_set<std::uint64_t> skip CONCUR_GUARDED_BY(mu);
  // The time-limited request running now (0: none) and when its time is up; the limit thread
  // (started with the first such request) waits on `limit_cv` for that moment.
  std::uint64_t limited CONCUR_GUARDED_BY(mu) = 0;
  std::chrono::steady_clock::time_point limit_deadline CONCUR_GUARDED_BY(mu){};
  std::condition_variable limit_cv;
  bool limit_thread = false;  // the main thread's only
};

// watch_limit(watch): the worker's limit thread. When the time-limited request running now is
// still running at its deadline, the worker exits with kTimeLimitExit — under watch.mu, so the
// request cannot have finished and the next one started in between; the pool fails that
// request with TimeLimitExceeded and starts another worker.
[[noreturn]] void watch_limit(WorkerWatch* watch) {
  std::unique_lock lock(watch->mu);
  for (;;) {
    if (watch->limited == 0) {
      watch->limit_cv.wait(lock);
      continue;
    }
    const std::uint64_t id = watch->limited;
    const auto deadline = watch->limit_deadline;
    if (watch->limit_cv.wait_until(lock, deadline) == std::cv_status::timeout &&
        watch->limited == id && std::chrono::steady_clock::now() >= deadline)
      ::_exit(kTimeLimitExit);
  }
}

// watch_pool(control, watch): the worker's watchdog thread. The pool holds the only write end of
// `control`: end of file means the pool's process died (a crash, Ctrl-C, kill -9), and the worker
// exits at once instead of finishing its task for nobody. A message is the id of a task cancelled
// with kill_running: the worker exits if it is running that task (under watch.mu, so the task
// cannot have finished and the next one started in between), else skips it when it comes.
[[noreturn]] void watch_pool(mp::Connection control, WorkerWatch* watch) {
  for (;;) {
    std::string message;
    try {
      message = control.recv_bytes();
    } catch (...) {
      ::_exit(kOrphanedExit);
    }
    std::uint64_t id = 0;
    if (message.size() != sizeof id) continue;
    std::memcpy(&id, message.data(), sizeof id);
    std::scoped_lock lock(watch->mu);
    if (watch->running == id) ::_exit(kCancelledExit);
    watch->skip.insert(id);
  }
}

using mp::detail::Mailbox;
using mp::detail::Ring;

// RecordInBuf is a get area over one ring record, reset for each: the std::istream over it lives
// as long as its reader, because constructing a stream (its locale) per message costs more than
// the cereal load of a small reply.
class RecordInBuf : public std::streambuf {
 public:
  void reset(std::string_view record) noexcept {
    char* p = const_cast<char*>(record.data());  // never written: a get area only
    setg(p, p, p + record.size());
  }
};

// ReplyWriter serializes replies into one reused buffer through one long-lived stream (see
// RecordInBuf).
struct ReplyWriter {
  std::string bytes;
  mp::detail::StringOutBuf buf{bytes};
  std::ostream os{&buf};
};

// recv_requests(box, conn, reader, out): the worker waits for its next request message — spinning a
// little, then asleep on the request ring's futex (the watchdog ends the worker if the pool's
// process dies meanwhile). A message that went on the side is read from the Connection. False
// when that Connection reached end of file (the pool is gone).
struct RequestReader {
  std::string buf;  // the last request record
  RecordInBuf in_buf;
  std::istream in{&in_buf};
};

bool recv_requests(Mailbox& box, mp::Connection& conn, RequestReader& reader,
                   std::vector<PoolRequest>& out) {
  std::string& buf = reader.buf;
  Ring& ring = box.requests();
  Ring::Kind kind{};
  while (!ring.try_read(buf, kind))
    (void)ring.wait_readable([] { return false; }, Deadline::infinite());
  if (kind == Ring::kSide) {
    try {
      out = conn.recv<RequestMessage>().requests;
    } catch (const mp::EOFError&) {
      return false;
    }
    return true;
  }
  reader.in_buf.reset(buf);
  reader.in.clear();
  mp::detail::FdSource none({});
  mp::detail::ScopedFdSource scope(none);
  try {
    mp::InputArchive ar(reader.in);
    ar(out);  // a RequestMessage is saved as the bytes of a std::vector<PoolRequest>
  } catch (const cereal::Exception& e) {
    mp::detail::throw_unpickling(e.what());
  }
  return true;
}

// post_reply(box, kind, bytes): one reply record. The pool's dispatcher may sleep in epoll on this
// ring (kEpoll); a thread waiting for this very reply usually takes the ring over within a few
// microseconds (ProcessPoolCore::assist_wait), and then the dispatcher need not be woken at all:
// so the worker, having nothing else to do (no request waiting), spins a little for that to
// happen before it writes the eventfd. With requests waiting it notifies at once (the dispatcher
// then reads replies in bulk and refills).
void post_reply(Mailbox& box, Ring::Kind kind, std::string_view bytes) {
  Ring& out = box.replies();
  out.write(kind, bytes, /*defer_epoll=*/true);
  if (!out.epoll_armed()) return;
  const std::uint64_t mark = out.published();
  if (box.requests().empty())
    (void)spin_wait(
        [&] { return !out.epoll_armed() || out.consumed(mark) || !box.requests().empty(); },
        Deadline::infinite());
  if (out.epoll_armed() && !out.consumed(mark)) out.notify_reader();
}

// send_reply(box, conn, writer, reply): through the ring when it fits and carries no descriptor (a
// result in a file does), else on the Connection with a kSide marker in the ring, in order.
void send_reply(Mailbox& box, mp::Connection& conn, ReplyWriter& writer, const PoolReply& reply) {
  const std::size_t limit = box.replies().max_message();
  if (!reply.result.in_file() && reply.result.size() + reply.type_name.size() +
                                         reply.message.size() + reply.traceback.size() + 64 <=
                                     limit) {
    writer.bytes.clear();
    mp::detail::FdSink sink;
    {
      mp::detail::ScopedFdSink scope(sink);
      try {
        mp::OutputArchive ar(writer.os);
        ar(reply);
      } catch (const cereal::Exception& e) {
        mp::detail::throw_pickling(e.what());
      }
    }
    if (sink.fds.empty() && writer.bytes.size() <= limit) {
      post_reply(box, Ring::kBytes, writer.bytes);
      return;
    }
  }
  conn.send(reply);
  post_reply(box, Ring::kSide, {});
}

// pool_worker is the worker process's task: run requests until told to exit, the pipe closes, or
// max_tasks were run. Ctrl-C is ignored (it is the parent's to handle; a parent that dies takes
// its workers with it through the watchdog).
void pool_worker(mp::Connection conn, mp::Connection control, mp::detail::MailboxHandle mailbox,
                 std::string initializer, std::string initargs,
                 mp::detail::Descriptors init_handles, std::uint64_t max_tasks, bool kill_running) {
  ::signal(SIGINT, SIG_IGN);
  Mailbox box = Mailbox::attach(std::move(mailbox));
  ReplyWriter writer;
  auto* watch = new WorkerWatch;  // immortal, see WorkerWatch
  std::thread(watch_pool, std::move(control), watch).detach();
  const std::string where =
      "in " + mp::current_process().name + " (pid " + std::to_string(::getpid()) + ")";
  if (!initializer.empty()) {
    try {
      const mp::detail::TaskEntry* init = mp::detail::find_task(initializer);
      if (init == nullptr) throw UsageError("initializer '" + initializer + "' is not registered");
      (void)init->invoke(initargs, init_handles.release());
    } catch (...) {
      PoolReply reply;
      reply.status = ReplyStatus::init_failed;
      describe_current(reply);
      reply.traceback = "raised by the initializer " + where;
      try {
        send_reply(box, conn, writer, reply);
      } catch (...) {
      }
      return;
    }
  }
  std::uint64_t done = 0;
  RequestReader reader;
  for (;;) {
    std::vector<PoolRequest> requests;
    if (!recv_requests(box, conn, reader, requests)) return;  // the pool is gone
    for (PoolRequest& request : requests) {
      if (request.id == 0) return;
      PoolReply reply;
      reply.id = request.id;
      if (kill_running) {
        std::scoped_lock lock(watch->mu);
        if (watch->skip.erase(request.id) != 0) {
          reply.status = ReplyStatus::skipped;
        } else {
          watch->running = request.id;
        }
      }
      if (reply.status == ReplyStatus::skipped) {
        request.handles.clear();
        try {
          send_reply(box, conn, writer, reply);
        } catch (...) {
          return;
        }
        continue;
      }
      if (request.time_limit_ms != 0) {
        if (!watch->limit_thread) {
          std::thread(watch_limit, watch).detach();
          watch->limit_thread = true;
        }
        std::scoped_lock lock(watch->mu);
        watch->limited = request.id;
        watch->limit_deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(request.time_limit_ms);
        watch->limit_cv.notify_one();
      }
      try {
        const mp::detail::TaskEntry* task = mp::detail::find_task(request.task);
        if (task == nullptr)
          throw UsageError("task '" + request.task + "' is not registered in the worker");
        // The arguments are read from the pool's file (if any) straight into the values, and a
        // large result is written straight into a file of our own.
        mp::detail::SpilledBytes result;
        mp::detail::SpillOutBuf out(result, kPoolFileThreshold, "concur-pool-result");
        std::ostream os(&out);
        mp::detail::SpillReader in(request.args, /*release_when_read=*/true);
        std::istream is(in.rdbuf());
        // The handles among the arguments load from the descriptors that came with the request
        // (the ones no argument takes are closed when the task is done).
        mp::detail::FdSource handles(request.handles.release());
        mp::detail::ScopedFdSource handle_scope(handles);
        const mp::detail::SoftLimitScope soft(std::chrono::milliseconds(request.soft_limit_ms));
        task->invoke_batch(is, os,
                           request.batch == 0 ? 1 : static_cast<std::size_t>(request.batch));
        out.close();
        reply.result = std::move(result);
      } catch (...) {
        reply.status = ReplyStatus::error;
        reply.result.clear();
        describe_current(reply);
        reply.traceback = "raised by task '" + request.task + "' " + where;
      }
      request.args.clear();     // the argument file is closed as soon as the task is done
      request.handles.clear();  // (those no argument took, had the task not started)
      if (kill_running || request.time_limit_ms != 0) {
        std::scoped_lock lock(watch->mu);
        watch->running = 0;
        watch->limited = 0;
      }
      try {
        send_reply(box, conn, writer, reply);
      } catch (...) {
        return;  // the pool is gone
      }
      if (max_tasks != 0 && ++done >= max_tasks) return;
    }
  }
}

}  // namespace

}  // namespace detail

}  // namespace concur

CONCUR_TASK_NAMED("concur::ProcessPoolExecutor::worker", &concur::detail::pool_worker);

namespace concur {

namespace detail {

namespace {
thread_local bool tls_on_dispatcher = false;  // see on_pool_dispatcher_thread()
}  // namespace

bool on_pool_dispatcher_thread() noexcept { return tls_on_dispatcher; }

[[noreturn]] void throw_unregistered() {
  throw UsageError(
      "ProcessPoolExecutor::submit: the function is not registered; add CONCUR_TASK(fn) at "
      "namespace scope next to its definition");
}

class ProcessPoolCore {
 public:
  explicit ProcessPoolCore(ProcessPoolOptions options) : options_(options) {
    if (options_.max_workers == 0) options_.max_workers = static_cast<std::size_t>(mp::cpu_count());
    if (options_.time_limit.count() < 0 || options_.soft_time_limit.count() < 0)
      throw ValueError(
          "ProcessPoolExecutor: time_limit and soft_time_limit must be >= 0 (0: no limit)");
    if (options_.start_method.value_or(mp::get_start_method()) == mp::StartMethod::fork)
      throw ValueError(
          "ProcessPoolExecutor cannot use the fork start method: its dispatcher "
          "thread makes this process multithreaded (use forkserver or spawn)");
    if (options_.initializer) {
      const mp::detail::TaskEntry* init = mp::detail::find_task(options_.initializer.function());
      if (init == nullptr)
        throw UsageError("ProcessPoolExecutor: the initializer is not registered (CONCUR_TASK)");
      initializer_ = init->name;
    }
    make_descriptors();
  }
  ProcessPoolCore(const ProcessPoolCore&) = delete;
  ProcessPoolCore& operator=(const ProcessPoolCore&) = delete;
  ~ProcessPoolCore() { ::close(epoll_fd_); }

  // After fork(): a copy of a pool that the parent never used becomes the child's own at its first
  // submit (its epoll instance and wake pipe were the parent's too, so both dispatchers would get
  // each other's events); the copy of a pool the parent used refuses work and touches nothing
  // (its dispatcher, workers, jobs and ids are the parent's: a child's task would run in the
  // parent's worker and settle a parent's future of the same id).
  [[nodiscard]] bool forked_copy() const noexcept {
    return concur::detail::this_pid() != made_in_.load(std::memory_order_acquire);
  }
  // parents_copy(): a copy of a pool its parent used: the parent started its dispatcher (which
  // starts the workers). Atomics only: a parent thread may have held mu_ at the fork.
  [[nodiscard]] bool parents_copy() const noexcept {
    // started_ first: a thread of this process that adopted the copy stored made_in_ before it
    // started the dispatcher, so whoever sees it started sees the new made_in_ too.
    return started_.load(std::memory_order_acquire) && forked_copy();
  }
  void check_fork() {
    if (!forked_copy()) return;
    if (parents_copy()) throw_parents_copy();
    std::scoped_lock lock(mu_);
    if (!forked_copy()) return;  // another thread of this process adopted it
    ::close(epoll_fd_);
    epoll_fd_ = -1;
    wake_rx_.close();  // this process's copies only
    wake_tx_.close();
    make_descriptors();
    made_in_.store(concur::detail::this_pid(), std::memory_order_release);
  }
  [[noreturn]] static void throw_parents_copy() {
    throw InvalidStateError(
        "a ProcessPoolExecutor used in the process that made it cannot be used in a process "
        "forked from it (its workers are the parent's): make the pool in the process that uses "
        "it");
  }

  void check_open() const {
    if (parents_copy()) throw_parents_copy();
    std::scoped_lock lock(mu_);
    if (broken_) throw BrokenProcessPool(broken_reason_);
    if (shutdown_) throw RuntimeError("cannot schedule new futures after shutdown");
  }

  // next_id() reserves a job id (ProcessPoolExecutor::reserve_id, kill_running futures).
  std::uint64_t next_id() noexcept { return last_id_.fetch_add(1, std::memory_order_relaxed) + 1; }

  void enqueue(mp::detail::AnyFn fn, std::unique_ptr<PoolJob> job) {
    check_fork();
    const mp::detail::TaskEntry* task = mp::detail::find_task(fn);
    if (task == nullptr) throw_unregistered();
    job->task = task->name;
    if (job->time_limit.count() == 0) job->time_limit = options_.time_limit;
    if (job->soft_time_limit.count() == 0) job->soft_time_limit = options_.soft_time_limit;
    std::vector<std::unique_ptr<PoolJob>> cancelled;
    bool sent = false;
    {
      std::scoped_lock lock(mu_);
      if (broken_) throw BrokenProcessPool(broken_reason_);
      if (shutdown_) throw RuntimeError("cannot schedule new futures after shutdown");
      if (job->id == 0) job->id = next_id();
      pending_.push_back(std::move(job));
      ++events_;
      if (!dispatcher_.joinable()) {
        dispatcher_ = std::thread([this] { run(); });
        started_.store(true, std::memory_order_release);
      }
      // The latency path: a lone task and an idle worker — send it from here, so that the
      // dispatcher is woken only by the reply (one hop fewer than waking it to send).
      if (pending_.size() == 1) {
        for (auto& w : workers_) {
          if (w->stopping || !w->in_flight.empty()) continue;
          send_work_locked(cancelled);
          sent = pending_.empty();
          break;
        }
      }
    }
    cancelled.clear();  // acknowledged cancels (their futures are cancelled already)
    if (!sent) wake();
  }

  void shutdown(bool wait, bool cancel_futures) {
    if (parents_copy()) return;
    std::vector<std::unique_ptr<PoolJob>> cancelled;
    {
      std::scoped_lock lock(mu_);
      shutdown_ = true;
      ++events_;
      if (cancel_futures) {
        for (auto& job : pending_)
          if (!job->started) cancelled.push_back(std::move(job));
        std::erase_if(pending_, [](const std::unique_ptr<PoolJob>& j) { return !j; });
      }
    }
    for (auto& job : cancelled) {
      job->cancel();
      (void)job->start();  // acknowledges the cancel (Python's set_running_or_notify_cancel)
    }
    wake();
    if (wait) join_dispatcher();
  }

  // shutdown_by(deadline, cancel_futures): shutdown(false, cancel_futures), then wait for the
  // dispatcher to finish until the deadline; past it, kill the workers (stop_now).
  bool shutdown_by(const Deadline& deadline, bool cancel_futures) {
    if (parents_copy()) return false;
    shutdown(false, cancel_futures);
    bool in_time = true;
    {
      std::unique_lock lock(done_mu_);
      if (deadline.is_infinite()) {
        done_cv_.wait(lock, [&] { return dispatcher_done_; });
      } else {
        in_time = done_cv_.wait_until(lock, deadline.when(), [&] { return dispatcher_done_; });
      }
    }
    if (!in_time)
      stop_now("shutdown(timeout): the deadline passed and the worker running the task was killed");
    join_dispatcher();
    return in_time;
  }

  // cancel_running(id): the future of job `id` was cancelled while running (kill_running). A job
  // back in pending_ (its worker died before starting it) is dropped; a job in a worker's hands
  // is named to that worker's watchdog, which kills the worker if it runs it, else skips it.
  void cancel_running(std::uint64_t id) noexcept {
    if (parents_copy()) return;        // the worker running it is the parent's
    std::unique_ptr<PoolJob> dropped;  // destroyed after the lock is released
    std::scoped_lock lock(mu_);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if ((*it)->id != id) continue;
      dropped = std::move(*it);
      pending_.erase(it);
      return;
    }
    for (auto& w : workers_) {
      for (const auto& job : w->in_flight) {
        if (job->id != id) continue;
        try {
          w->control.send_bytes(std::string_view(reinterpret_cast<const char*>(&id), sizeof id));
        } catch (...) {
          // the worker is dying: its end of file settles the rest
        }
        return;
      }
    }
  }

  void join_dispatcher() {
    std::thread t;
    {
      std::scoped_lock lock(mu_);
      if (!dispatcher_.joinable() || dispatcher_.get_id() == std::this_thread::get_id()) return;
      t = std::move(dispatcher_);
    }
    t.join();
  }

  // terminate_workers() signals every live worker with SIGTERM while holding mu_, so no pid can
  // be reaped (and reused) in between; from now on a dead worker's queued jobs fail instead of
  // going back to pending, and no replacement is started. Used by mp::Pool::terminate().
  void terminate_workers() {
    if (parents_copy()) return;
    {
      std::scoped_lock lock(mu_);
      terminating_ = true;
      for (auto& w : workers_) w->process.terminate();
    }
    wake();
  }

  // stop_now(reason): the shutdown deadline passed. Tasks never sent to a worker are cancelled;
  // every live worker is killed (SIGKILL, under mu_ as in terminate_workers) and the tasks it held
  // fail with BrokenProcessPool(reason).
  void stop_now(const std::string& reason) {
    std::vector<std::unique_ptr<PoolJob>> cancelled;
    {
      std::scoped_lock lock(mu_);
      terminating_ = true;
      stop_reason_ = reason;
      for (auto& job : pending_)
        if (!job->started) cancelled.push_back(std::move(job));
      std::erase_if(pending_, [](const std::unique_ptr<PoolJob>& j) { return !j; });
      for (auto& w : workers_) w->process.kill();
    }
    for (auto& job : cancelled) {
      job->cancel();
      (void)job->start();  // acknowledges the cancel
    }
    wake();
  }

  [[nodiscard]] std::size_t max_workers() const noexcept { return options_.max_workers; }

  [[nodiscard]] std::vector<pid_t> worker_pids() const {
    std::scoped_lock lock(mu_);
    std::vector<pid_t> out;
    for (const auto& w : workers_) out.push_back(w->process.pid());
    return out;
  }

 private:
  // make_descriptors(): the wake pipe and the epoll instance that watches it.
  void make_descriptors() {
    auto [rx, tx] = mp::Pipe(false);
    wake_rx_ = std::move(rx);
    wake_tx_ = std::move(tx);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw mp::OSError(errno, "epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the wake-up end
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_rx_.fileno(), &ev) != 0) {
      const int e = errno;
      ::close(epoll_fd_);
      epoll_fd_ = -1;
      throw mp::OSError(e, "epoll_ctl");
    }
  }

  struct Worker {
    Worker(mp::Process p, mp::Connection c, mp::Connection ctl, Mailbox b)
        : process(std::move(p)), conn(std::move(c)), control(std::move(ctl)), box(std::move(b)) {}
    mp::Process process;
    mp::Connection conn;     // the side channel: messages with descriptors or too big for the box
    mp::Connection control;  // to the worker's watchdog: cancelled ids; closing it stops the worker
    Mailbox box;             // requests and replies (see mailbox.hpp)
    int pidfd = -1;          // the process's (readable once it exited), in the epoll set
    std::string buf;         // the last reply record read (by the one reader of the moment)
    RecordInBuf in_buf;      // over buf, and the stream the replies are loaded through
    std::istream in{&in_buf};
    std::deque<std::unique_ptr<PoolJob>> in_flight;
    std::size_t wire = 0;  // the wire_size of the requests in in_flight (see send_work_locked)
    std::uint64_t sent = 0;
    bool stopping = false;  // sent the exit request (or reached max_tasks_per_child)
    bool replied = false;   // sent a task's reply: it started up and took tasks (set under mu_)
    bool borrowed = false;  // a waiting thread reads the replies (assist_wait)
    bool draining = false;  // the dispatcher reads the replies (drain)
    // dead: the dispatcher saw the pidfd readable; a borrower sleeping on the reply futex is woken
    // by it (set under mu_, read by the borrower without it). death_pending: seen while borrowed;
    // the pidfd is disarmed in epoll until the borrower gives the worker back.
    std::atomic<bool> dead{false};
    bool death_pending = false;
  };

  // Epoll tags: 0 is the wake-up pipe; a worker's address is its reply eventfd; the address + 1 is
  // its pidfd (death).
  static std::uint64_t tag(Worker* w, bool death) noexcept {
    return reinterpret_cast<std::uintptr_t>(w) | (death ? 1U : 0U);
  }

  void wake() {
    if (sleeping_.exchange(false, std::memory_order_seq_cst)) {
      try {
        wake_tx_.send_bytes("w");
      } catch (...) {
      }
    }
  }

  std::unique_ptr<Worker> start_worker() {
    mp::ProcessOptions o;
    o.start_method = options_.start_method;
    // Daemonic, as multiprocessing.Pool's workers: a pool still alive when the program exits
    // (a static one, a leaked one) has its workers terminated instead of joined forever.
    o.daemon = true;
    auto [ours, theirs] = mp::Pipe();
    auto [control_rx, control_tx] = mp::Pipe(false);
    Mailbox box = Mailbox::create();
    const mp::Payload init = options_.initializer.worker_arguments();
    const auto init_fds = mp::detail::Descriptors::copy_of(init.fds);
    auto w = std::make_unique<Worker>(
        mp::Process(o, &pool_worker, std::move(theirs), std::move(control_rx), box.handle(),
                    initializer_, init.bytes, init_fds,
                    static_cast<std::uint64_t>(options_.max_tasks_per_child),
                    options_.kill_running),
        std::move(ours), std::move(control_tx), std::move(box));
    w->process.start();
    w->pidfd = mp::detail::process_pidfd(w->process);
    w->box.replies().arm_epoll();
    // Without its pidfd in the set a death would go unseen: such a start fails (the pool retries
    // once, then breaks) rather than risk a hang. The worker exits through its watchdog.
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag(w.get(), true);
    if (w->pidfd < 0 || ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w->pidfd, &ev) != 0)
      throw mp::OSError(w->pidfd < 0 ? EBADF : errno, "process pool: watching a worker's pidfd");
    ev.data.u64 = tag(w.get(), false);
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w->box.notify_fd(), &ev) != 0) {
      const int e = errno;
      (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w->pidfd, nullptr);
      throw mp::OSError(e, "process pool: watching a worker's mailbox");
    }
    return w;
  }

  // break_pool(reason, failed): the pool broke — every pending and in-flight job fails, the
  // workers are killed.
  void break_pool(const std::string& reason, std::vector<std::unique_ptr<PoolJob>>& failed) {
    broken_ = true;
    broken_reason_ = reason;
    for (auto& job : pending_) failed.push_back(std::move(job));
    pending_.clear();
    for (auto& w : workers_) {
      for (auto& job : w->in_flight) failed.push_back(std::move(job));
      w->in_flight.clear();
      w->wire = 0;
      // What they run has failed already: stop them (Python's terminate_broken), so that a long
      // task does not hold up shutdown. Under mu_: the pid cannot be reaped and reused meanwhile.
      try {
        w->process.kill();
      } catch (const Error&) {
      }
    }
  }

  // wire_size(job) is an upper bound of the bytes its request takes in a message (arguments in a
  // file take none: their descriptor rides on the side socket).
  static std::size_t wire_size(const PoolJob& job) noexcept {
    return (job.args.in_file() ? 0 : job.args.size()) + std::char_traits<char>::length(job.task) +
           64 + 4 * job.handle_count;
  }

  // send_work_locked() tops the workers up, one round at a time (so that a free worker never
  // waits while another holds several): up to kMinPerWorker each, or a fair share of a long
  // backlog, at most kMaxPerWorker.
  void send_work_locked(std::vector<std::unique_ptr<PoolJob>>& cancelled) {
    if (pending_.empty()) return;
    std::size_t in_flight = 0;
    for (const auto& w : workers_) in_flight += w->in_flight.size();
    // A quarter of the backlog per worker: enough to keep it busy between refills, while most of
    // a long backlog stays here, cancellable (a request in a worker's pipe counts as running).
    const std::size_t share =
        workers_.empty() ? 0 : (pending_.size() + in_flight) / (4 * workers_.size());
    const std::size_t limit = std::clamp(share, kMinPerWorker, kMaxPerWorker);
    // Each worker's new requests travel in one message (one write, one wake-up). The send must
    // never block — this thread is also the one that reads the workers' replies, so a worker
    // blocked on a full reply pipe while we block on its full request pipe would deadlock both.
    // Hence the byte budget: requests not yet answered (which may still sit unread in the pipe)
    // plus the new message stay within kWireBudget, below a pipe's capacity; a message above
    // mp::kLargeMessageThreshold travels in a memfd and takes no pipe space at all.
    // A message also carries at most kMessageFds descriptors (argument files and the handles of
    // the arguments; a job carries at most Initializer::kMaxTaskHandles + 1).
    constexpr std::size_t kMessageFds = mp::kMaxDescriptors - 1;
    static_assert(Initializer::kMaxTaskHandles + 1 <= kMessageFds);
    std::vector<RequestMessage> outgoing(workers_.size());
    std::vector<std::size_t> first_new(workers_.size());
    std::vector<std::size_t> bytes(workers_.size(), 0);
    std::vector<std::size_t> fds(workers_.size(), 0);
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      first_new[i] = workers_[i]->in_flight.size();
      bytes[i] = workers_[i]->wire;
    }
    for (std::size_t depth = 1; depth <= limit && !pending_.empty(); ++depth) {
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        Worker& w = *workers_[i];
        while (!w.stopping && w.in_flight.size() < depth && !pending_.empty()) {
          // A task with handles may wait on another task through them (the notes' consumer
          // waiting for its producer): it goes to an idle worker only, and nothing is queued
          // behind it, as in Python's pools, where a worker takes a task only when free.
          if (pending_.front()->handle_count != 0 && !w.in_flight.empty()) break;
          if (!w.in_flight.empty() && w.in_flight.back()->handle_count != 0) break;
          const std::size_t size = wire_size(*pending_.front());
          if (bytes[i] != 0 && bytes[i] + size > kWireBudget) break;
          const std::size_t job_fds =
              pending_.front()->handle_count + (pending_.front()->args.in_file() ? 1 : 0);
          if (fds[i] + job_fds > kMessageFds) break;
          bytes[i] += size;
          fds[i] += job_fds;
          std::unique_ptr<PoolJob> job = std::move(pending_.front());
          pending_.pop_front();
          if (!job->started) {
            if (!job->start()) {
              cancelled.push_back(std::move(job));  // cancelled while pending: acknowledged
              continue;
            }
            job->started = true;
          } else if (job->settled()) {
            // Cancelled (kill_running) while it waited in the pipe of a worker that then died:
            // the skip died with that worker, so it is never sent again.
            cancelled.push_back(std::move(job));
            continue;
          }
          outgoing[i].jobs.push_back(job.get());  // saved from the job: no copy of its arguments
          ++w.sent;
          if (options_.max_tasks_per_child != 0 && w.sent >= options_.max_tasks_per_child)
            w.stopping = true;  // it exits after its last task
          w.wire += size;
          w.in_flight.push_back(std::move(job));
        }
      }
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      if (outgoing[i].jobs.empty()) continue;
      Worker& w = *workers_[i];
      try {
        post_request_locked(w, outgoing[i]);
        const std::uint64_t mark = w.box.requests().published();
        for (std::size_t k = first_new[i]; k < w.in_flight.size(); ++k)
          w.in_flight[k]->sent_mark = mark;  // (the jobs of outgoing[i])
        release_running_args_locked(w);
      } catch (const Error&) {
        // The worker is dying (its end of file will tell): take the new requests back, in order.
        while (w.in_flight.size() > first_new[i]) {
          w.wire -= std::min(w.wire, wire_size(*w.in_flight.back()));
          pending_.push_front(std::move(w.in_flight.back()));
          w.in_flight.pop_back();
        }
        w.stopping = true;
      }
    }
  }

  // post_request_locked(w, message) puts one request message in w's mailbox (waking the worker if
  // it sleeps): through the ring when it fits and carries no descriptor, else on the Connection
  // with a kSide marker in the ring. Never waits: the wire budget (send_work_locked) keeps what
  // the worker has not read well below the ring's size. Under mu_ (the ring's one writer).
  void post_request_locked(Worker& w, const RequestMessage& message) {
    Ring& ring = w.box.requests();
    bool side = false;
    std::size_t estimate = 64 * (1 + message.requests.size());
    for (const PoolJob* job : message.jobs) {
      side = side || job->args.in_file() || job->handle_count != 0;
      estimate += wire_size(*job);
    }
    if (!side && estimate <= ring.max_message()) {
      const mp::Payload payload = mp::dumps(message);
      if (payload.fds.empty() && ring.try_write(Ring::kBytes, payload.bytes)) return;
    }
    // The marker must fit after the message went out (else the worker would never read it): the
    // ring is never that full (see above), but if it were, the worker is given up.
    if (ring.has_room(0)) {
      w.conn.send(message);
      if (ring.try_write(Ring::kSide, {})) return;
    }
    try {
      w.process.kill();
    } catch (const Error&) {
    }
    throw mp::OSError(ENOBUFS, "process pool mailbox: no room for a request");
  }

  // release_running_args_locked(w): the job at the front of w's requests runs (or runs next),
  // and a worker's death fails that job instead of sending it again, so the pool no longer needs
  // its argument file: closing our descriptor lets the kernel free the file as soon as the worker
  // (which holds its own, received with the request) has read it. Nor its handles: the pool's
  // duplicates are closed, so that e.g. the writing end of a Pipe passed to the task is held by
  // the task alone, and its reader sees end of file when the task closes it, as in Python.
  // Arguments in memory stay: wire_size counts them against the pipe. Called under mu_, after the
  // job's request was sent.
  static void release_running_args_locked(Worker& w) noexcept {
    if (w.in_flight.empty()) return;
    PoolJob& job = *w.in_flight.front();
    if (!job.args.in_file() && job.handles.empty()) return;
    if (job.args.in_file()) job.args.clear();
    job.handles.clear();
    job.args_released = true;
  }

  // worker_gone(w, failed) handles a worker's end of file: its exit code, the job it was running.
  // The Worker object itself lives on in graveyard_ until run()'s next pass: a removal by a wait
  // in a done-callback (assist_wait on the dispatcher thread) may happen under frames of that
  // thread that still hold the worker's address (drain, on_death, run()'s event lists).
  void worker_gone(std::size_t index, std::vector<std::unique_ptr<PoolJob>>& failed) {
    graveyard_.push_back(std::move(workers_[index]));
    Worker* const w = graveyard_.back().get();
    (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w->box.notify_fd(), nullptr);
    (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w->pidfd, nullptr);
    workers_.erase(workers_.begin() + static_cast<std::ptrdiff_t>(index));
    if (!w->process.join(std::chrono::seconds(10))) {
      w->process.kill();
      w->process.join();
    }
    const int code = w->process.exitcode().value_or(-1);
    const bool stopping_all = terminating_ || mp::detail::exiting();
    // Its task was cancelled while running (kill_running) and it stopped itself for it: the
    // future stays cancelled, the requests behind it go back to the front, in order.
    if (!w->in_flight.empty() && w->in_flight.front()->settled() && !stopping_all) {
      failed.push_back(std::move(w->in_flight.front()));  // fail() leaves a cancelled future be
      w->in_flight.pop_front();
      for (auto it = w->in_flight.rbegin(); it != w->in_flight.rend(); ++it)
        pending_.push_front(std::move(*it));
      return;
    }
    if (w->in_flight.empty() && code == 0) return;  // retired (max_tasks_per_child) or stopped
    // It stopped itself for its task's time limit: that task fails alone, with its own error.
    if (code == kTimeLimitExit && !w->in_flight.empty() && !stopping_all) {
      PoolJob& job = *w->in_flight.front();
      job.failure = std::make_exception_ptr(TimeLimitExceeded(
          "task '" + std::string(job.task) + "' ran past its time limit of " +
          std::to_string(job.time_limit.count()) + " ms; its worker process was stopped"));
      failed.push_back(std::move(w->in_flight.front()));
      w->in_flight.pop_front();
      for (auto it = w->in_flight.rbegin(); it != w->in_flight.rend(); ++it)
        pending_.push_front(std::move(*it));
      return;
    }
    std::string reason =
        "a process in the process pool was terminated abruptly while the future "
        "was running or pending (" +
        (code < 0 ? "killed by signal " + std::to_string(-code)
                  : "exit code " + std::to_string(code)) +
        ")";
    if (init_failed_) reason = init_failed_reason_;
    if (!stop_reason_.empty()) reason = stop_reason_;
    if (mp::detail::exiting())
      reason = "the program is exiting; its process pool workers were stopped";
    if (options_.break_on_worker_death || init_failed_ || stopping_all) {
      for (auto& job : w->in_flight) failed.push_back(std::move(job));
      break_pool(reason, failed);
      return;
    }
    if (!w->in_flight.empty()) {
      // The job it ran fails. But a worker that died before it read its next request (killed
      // while idle, before the pool saw it go, or stopped and then killed) never ran that job:
      // it goes back with the rest — unless its argument file was let go (it fails then), or the
      // worker never replied to anything: one that dies while starting (an initializer that
      // crashes or exits) would die again in its replacement, and the pool would start workers
      // forever; its job fails instead.
      const PoolJob& next = *w->in_flight.front();
      if (next.args_released || !w->replied || w->box.requests().consumed(next.sent_mark)) {
        failed.push_back(std::move(w->in_flight.front()));
        w->in_flight.pop_front();
      }
      // The rest never started: back to the front, in order.
      for (auto it = w->in_flight.rbegin(); it != w->in_flight.rend(); ++it)
        pending_.push_front(std::move(*it));
    }
    last_death_ = reason;
  }

  void handle_reply(Worker& w, PoolReply& reply) {
    if (reply.status == ReplyStatus::init_failed) {
      std::scoped_lock lock(mu_);
      init_failed_ = true;
      init_failed_reason_ =
          "a worker's initializer failed: " + reply.type_name + ": " + reply.message;
      return;  // the worker exits; its death breaks the pool
    }
    std::unique_ptr<PoolJob> job;
    {
      std::scoped_lock lock(mu_);
      if (w.in_flight.empty() || w.in_flight.front()->id != reply.id) return;  // cannot happen
      job = std::move(w.in_flight.front());
      w.in_flight.pop_front();
      w.replied = true;
      w.wire -= std::min(w.wire, wire_size(*job));
      release_running_args_locked(w);
    }
    if (reply.status == ReplyStatus::skipped) return;  // cancelled (kill_running) before it ran
    if (reply.status == ReplyStatus::ok) {
      job->finish(reply.result);
    } else {
      job->fail(
          std::make_exception_ptr(RemoteError(reply.type_name, reply.message, reply.traceback)));
    }
  }

  // refill_locked(cancelled, failed): the dispatcher's first step — a terminated pool with no
  // worker left fails what is pending; max_workers workers are kept while there is work; the
  // backlog is sent.
  void refill_locked(std::vector<std::unique_ptr<PoolJob>>& cancelled,
                     std::vector<std::unique_ptr<PoolJob>>& failed) {
    // Terminated or stopped with nothing left to run what is still pending: it fails.
    if (terminating_ && workers_.empty() && !pending_.empty())
      break_pool(stop_reason_.empty() ? "the pool's workers were terminated" : stop_reason_,
                 failed);
    // Keep max_workers workers while there is work.
    while (!broken_ && !terminating_ && workers_.size() < options_.max_workers &&
           pending_.size() > idle_capacity_locked()) {
      std::unique_ptr<Worker> w;
      try {
        w = start_worker();
      } catch (const std::exception&) {
        // A start can fail once for a passing reason: the fork server died (was killed)
        // while serving it — the start after respawns the server. Only a second failure in
        // a row is the pool's end. (A worker that server may still have forked exits by
        // itself: its pipes to us are closed.)
        try {
          w = start_worker();
        } catch (const std::exception& e) {
          break_pool(std::string("could not start a worker: ") + e.what(), failed);
          break;
        }
      }
      workers_.push_back(std::move(w));
    }
    send_work_locked(cancelled);
  }

  void run() {
    dispatcher_thread_.store(std::this_thread::get_id());
    tls_on_dispatcher = true;
    for (;;) {
      std::vector<std::unique_ptr<PoolJob>> cancelled;
      std::vector<std::unique_ptr<PoolJob>> failed;
      std::string failed_reason;
      std::uint64_t seen_events = 0;
      bool done = false;
      {
        std::scoped_lock lock(mu_);
        graveyard_.clear();  // no frame of this thread holds a removed worker's address now
        refill_locked(cancelled, failed);
        bool busy = false;
        for (auto& w : workers_) busy = busy || !w->in_flight.empty();
        if ((shutdown_ || broken_) && pending_.empty() && !busy) {
          for (auto& w : workers_)
            if (!w->stopping) {
              try {
                RequestMessage exit;
                exit.requests.emplace_back();  // id 0
                post_request_locked(*w, exit);
              } catch (...) {
              }
              w->stopping = true;
            }
          done = workers_.empty();
        }
        failed_reason = broken_ ? broken_reason_ : last_death_;
        seen_events = events_;
      }
      settle(cancelled, failed, failed_reason);
      if (done) {
        std::scoped_lock lock(done_mu_);
        dispatcher_done_ = true;
        done_cv_.notify_all();
        return;
      }

      // Sleep unless a submit or shutdown came in since the pass above (it saw sleeping_ false
      // and did not write the wake-up byte), or a worker's reply ring holds replies already.
      // Arming a ring (kEpoll) asks its worker to write the eventfd for the next reply.
      std::vector<Worker*> ready;
      sleeping_.store(true, std::memory_order_seq_cst);
      {
        std::scoped_lock lock(mu_);
        if (events_ != seen_events) sleeping_.store(false, std::memory_order_seq_cst);
        for (auto& w : workers_)
          if (!w->borrowed && !w->dead.load(std::memory_order_relaxed) &&
              w->box.replies().arm_epoll())
            ready.push_back(w.get());
      }
      if (!ready.empty()) sleeping_.store(false, std::memory_order_seq_cst);
      // The epoll set holds the wake-up end and, per worker, its reply eventfd and its pidfd;
      // level-triggered, so a death seen while a thread borrowed that worker reports again.
      std::array<epoll_event, 32> events{};
      const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                 sleeping_.load() ? -1 : 0);
      sleeping_.store(false, std::memory_order_seq_cst);
      std::vector<Worker*> deaths;
      // Every event first (no worker is removed before the deaths below), then the replies, then
      // the deaths: a worker's last replies are read before its death is handled.
      for (int i = 0; i < n; ++i) {
        const std::uint64_t t = events[static_cast<std::size_t>(i)].data.u64;
        if (t == 0) {
          while (wake_rx_.poll()) (void)wake_rx_.recv_bytes();
          continue;
        }
        auto* w = reinterpret_cast<Worker*>(static_cast<std::uintptr_t>(t & ~std::uint64_t{1}));
        if ((t & 1U) != 0) {
          deaths.push_back(w);
        } else {
          std::uint64_t count = 0;
          (void)!::read(w->box.notify_fd(), &count, sizeof count);
          ready.push_back(w);
        }
      }
      std::sort(ready.begin(), ready.end());
      ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
      for (Worker* w : ready) drain(w, failed);
      std::sort(deaths.begin(), deaths.end());
      deaths.erase(std::unique(deaths.begin(), deaths.end()), deaths.end());
      for (Worker* w : deaths) on_death(w, failed);
      {
        std::scoped_lock lock(mu_);
        failed_reason = broken_ ? broken_reason_ : last_death_;
      }
      settle(cancelled, failed, failed_reason);
    }
  }

  // read_reply(w, reply) reads the next reply from w's ring (or, for a kSide marker, from its
  // Connection); false when there is none. By w's one reader of the moment (the dispatcher while
  // draining, or the borrower).
  static bool read_reply(Worker& w, PoolReply& reply) {
    Ring::Kind kind{};
    if (!w.box.replies().try_read(w.buf, kind)) return false;
    if (kind == Ring::kSide) {
      reply = w.conn.recv<PoolReply>();
      return true;
    }
    w.in_buf.reset(w.buf);
    w.in.clear();
    mp::detail::FdSource none({});
    mp::detail::ScopedFdSource scope(none);
    try {
      mp::InputArchive ar(w.in);
      ar(reply);
    } catch (const cereal::Exception& e) {
      mp::detail::throw_unpickling(e.what());
    }
    return true;
  }

  // reap_in_place(w): on_death for a wait on the dispatcher thread (a done-callback) that found
  // the worker holding its job dead — nobody else would handle that death while this thread
  // waits. The replies it sent before it died are read (and settled), it is removed (its jobs
  // fail or go back to the backlog, as in the dispatcher's pass), and the backlog is sent again
  // (refill_locked: a replacement worker starts).
  void reap_in_place(Worker* w) {
    std::vector<std::unique_ptr<PoolJob>> cancelled;
    std::vector<std::unique_ptr<PoolJob>> failed;
    std::string reason;
    {
      std::scoped_lock lock(mu_);
      if (!is_ours_locked(w) || w->borrowed) return;
      w->dead.store(true, std::memory_order_seq_cst);
    }
    drain(w, failed);
    {
      std::scoped_lock lock(mu_);
      remove_locked(w, failed);
      refill_locked(cancelled, failed);
      reason = broken_ ? broken_reason_ : last_death_;
    }
    settle(cancelled, failed, reason);
  }

  // is_ours_locked(w): w is still one of the pool's workers (not removed and destroyed).
  bool is_ours_locked(const Worker* w) const {
    return std::any_of(workers_.begin(), workers_.end(),
                       [w](const std::unique_ptr<Worker>& x) { return x.get() == w; });
  }

  // drain(w, failed) reads every reply waiting in worker w's ring, unless a waiting thread has
  // borrowed it.
  void drain(Worker* w, std::vector<std::unique_ptr<PoolJob>>& failed) {
    (void)failed;
    {
      std::scoped_lock lock(mu_);
      if (!is_ours_locked(w) || w->borrowed) return;
      w->draining = true;
    }
    // One reply at a time, each settled before the next is read: a done-callback run by a
    // settle may wait for the next reply of this very worker, and reads it itself (assist_wait).
    for (;;) {
      PoolReply reply;
      try {
        if (!read_reply(*w, reply)) break;
      } catch (const Error&) {
        w->process.kill();  // a garbled stream: treat as dead (its pidfd reports it)
        break;
      }
      handle_reply(*w, reply);
    }
    std::scoped_lock lock(mu_);
    w->draining = false;
  }

  // on_death(w, failed): w's pidfd is readable — the worker exited. If a thread borrowed it, that
  // thread is woken (it sleeps on the reply futex, which no exit wakes) and the pidfd is disarmed
  // until it gives the worker back (then it reports again). Else the replies it sent before it
  // died are read, then it is removed (worker_gone).
  void on_death(Worker* w, std::vector<std::unique_ptr<PoolJob>>& failed) {
    {
      std::scoped_lock lock(mu_);
      if (!is_ours_locked(w)) return;
      w->dead.store(true, std::memory_order_seq_cst);  // no borrower takes it from now on
      if (w->borrowed) {
        w->box.replies().wake_reader();
        epoll_event ev{};
        ev.events = 0;
        ev.data.u64 = tag(w, true);
        (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, w->pidfd, &ev);
        w->death_pending = true;
        return;
      }
    }
    drain(w, failed);
    std::scoped_lock lock(mu_);
    remove_locked(w, failed);
  }

  // remove_locked(w, failed): worker_gone() for w, if it is still one of the pool's workers.
  void remove_locked(const Worker* w, std::vector<std::unique_ptr<PoolJob>>& failed) {
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i].get() == w) {
        worker_gone(i, failed);
        return;
      }
    }
  }

  // wait_reply(w, deadline): the borrower waits for a reply in w's ring — spinning, then asleep on
  // its futex — until one is there (true), the worker died, or the deadline passed (false). The
  // dispatcher wakes it when the worker dies; in case the dispatcher is busy (or is this very
  // thread, waiting in a done-callback) it also looks at the pidfd itself every kDeathPoll.
  static bool wait_reply(Worker& w, const Deadline& deadline) {
    constexpr auto kDeathPoll = std::chrono::milliseconds(100);
    Ring& ring = w.box.replies();
    for (;;) {
      const Deadline slice =
          Deadline::at(std::min(deadline.when(), Clock::now() + Clock::duration(kDeathPoll)));
      if (ring.wait_readable([&] { return w.dead.load(std::memory_order_seq_cst); }, slice))
        return true;
      if (w.dead.load(std::memory_order_seq_cst) || deadline.expired()) return false;
      pollfd p{w.pidfd, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) return !ring.empty();
    }
  }

 public:
  // assist_wait(id, state, deadline): the calling thread waits for job `id`. If a worker is
  // running the job and nobody reads that worker now, borrow its reply ring: the dispatcher skips
  // the worker while it is borrowed, and this thread reads the replies (settling each, ours
  // included) until `state` is done or the deadline passes; then it reads what is already there
  // and gives the worker back. A round trip then costs two futex wake-ups at most (the worker,
  // this thread) and none when both sides are awake (each spins a little before sleeping). The
  // worker cannot go away meanwhile: only the dispatcher removes workers, and it skips a borrowed
  // one (its death wakes this thread instead). Every other way the job can be settled while this
  // thread reads — a kill_running cancel, a broken pool, the shutdown deadline — ends or skips it
  // in the worker, so a reply or a death always comes. False when it did not borrow or the state
  // is not done.
  bool assist_wait(std::uint64_t id, const FutureStateBase& state, const Deadline& deadline) {
    if (parents_copy()) return false;  // the replies in the workers' rings are the parent's
    const bool on_dispatcher = std::this_thread::get_id() == dispatcher_thread_.load();
    return on_dispatcher ? help_as_dispatcher(id, state, deadline)
                         : borrow_and_read(id, state, deadline, false);
  }

 private:
  // help_as_dispatcher(id, state, deadline): assist_wait on the dispatcher thread — a
  // done-callback that waits for another future of this pool. Nobody else reads the replies, sees
  // a death or sends the backlog while this thread waits, so it does that work itself for the
  // worker that holds the job, until the state is done or the deadline passes:
  //   1. borrow the worker and read its replies (at any depth), as any waiter does;
  //   2. the worker died (its pidfd is readable, or this thread's outer on_death saw it): handle
  //      the death here (reap_in_place) — the job fails with BrokenProcessPool, or goes back to
  //      the backlog and to a replacement worker — and look again;
  //   3. another thread borrows the worker: it settles the job or gives the worker back (a
  //      death included) soon; look again in a millisecond;
  //   4. the job is in the backlog: send it (refill_locked); if no worker can take it, only this
  //      thread, after the callback, could send it: DeadlockError;
  //   5. the job is in a list of failed jobs this thread is settling further up its stack (a
  //      broken pool fails them in turn): fail it now.
  // False when the deadline passed, or the job is in no worker and not in the backlog (being
  // settled by another thread: the plain wait follows).
  bool help_as_dispatcher(std::uint64_t id, const FutureStateBase& state,
                          const Deadline& deadline) {
    auto holds = [id](const std::unique_ptr<PoolJob>& j) { return j->id == id; };
    for (;;) {
      if (borrow_and_read(id, state, deadline, true) || state.done()) return true;
      if (deadline.expired()) return false;
      Worker* holder = nullptr;
      bool dead = false;
      bool borrowed = false;
      bool elsewhere = false;  // in no worker and not in the backlog
      std::vector<std::unique_ptr<PoolJob>> cancelled;
      std::vector<std::unique_ptr<PoolJob>> failed;
      std::string reason;
      {
        std::scoped_lock lock(mu_);
        for (auto& x : workers_)
          if (std::any_of(x->in_flight.begin(), x->in_flight.end(), holds)) holder = x.get();
        if (holder != nullptr) {
          pollfd p{holder->pidfd, POLLIN, 0};
          dead = holder->dead.load(std::memory_order_relaxed) || ::poll(&p, 1, 0) > 0;
          borrowed = holder->borrowed;
        } else if (std::any_of(pending_.begin(), pending_.end(), holds)) {
          refill_locked(cancelled, failed);
          if (std::any_of(pending_.begin(), pending_.end(), holds))
            throw DeadlockError(
                "a callback running in the process pool's dispatcher thread waits for a task of "
                "the same pool that has not been sent to a worker: only that thread sends it "
                "(wait elsewhere, or chain with then())");
          reason = broken_ ? broken_reason_ : last_death_;
        } else {
          elsewhere = true;
        }
      }
      if (elsewhere) {
        if (fail_if_settling(id)) continue;  // outside mu_: its callbacks run
        return state.done();                 // being settled by another thread
      }
      settle(cancelled, failed, reason);
      if (holder == nullptr) continue;  // sent: borrow its new worker
      if (borrowed) {
        await_give_back(*holder, state, deadline);
      } else if (dead) {
        reap_in_place(holder);
      }
    }
  }

  // await_give_back(holder, state, deadline): help_as_dispatcher() found `holder` (which holds
  // its job) borrowed by another thread: that thread settles the job as its reply comes, or gives
  // the worker back (a death included); both notify given_back_cv_ while a dispatcher waits here.
  // Returns then, or at the deadline (re-checking every kGiveBackCheck regardless).
  void await_give_back(const Worker& holder, const FutureStateBase& state,
                       const Deadline& deadline) {
    std::unique_lock lock(mu_);
    ++give_back_waiters_;
    const auto until = std::min(deadline.when(), Clock::now() + kGiveBackCheck);
    given_back_cv_.wait_until(lock, until, [&] { return !holder.borrowed || state.done(); });
    --give_back_waiters_;
  }

  // borrow_and_read(id, state, deadline, on_dispatcher): assist_wait's borrowing (above).
  bool borrow_and_read(std::uint64_t id, const FutureStateBase& state, const Deadline& deadline,
                       bool on_dispatcher) {
    Worker* w = nullptr;
    {
      std::scoped_lock lock(mu_);
      // Only for the job a worker runs now (the next reply is ours): a thread waiting behind a
      // queue of other replies is better served by the dispatcher, which reads them in bulk.
      for (auto& x : workers_) {
        // (A worker being drained is being drained by this very thread when on_dispatcher.)
        if (x->borrowed || (x->draining && !on_dispatcher) || x->in_flight.empty() ||
            x->dead.load(std::memory_order_relaxed))
          continue;
        const bool ours =
            on_dispatcher
                ? std::any_of(x->in_flight.begin(), x->in_flight.end(),
                              [id](const std::unique_ptr<PoolJob>& j) { return j->id == id; })
                : x->in_flight.front()->id == id;
        if (ours) {
          w = x.get();
          break;
        }
      }
      if (w == nullptr) return false;
      w->borrowed = true;
      w->box.replies().claim();  // the worker no longer writes the dispatcher's eventfd
    }
    bool settled_any = false;
    // take_reply(): read one reply if there is one, settle it, and keep the worker fed from the
    // backlog (the dispatcher, which would do it, did not see this reply).
    auto take_reply = [&] {
      PoolReply reply;
      if (!read_reply(*w, reply)) return false;
      handle_reply(*w, reply);
      settled_any = true;
      std::vector<std::unique_ptr<PoolJob>> cancelled;  // destroyed after the lock
      std::scoped_lock lock(mu_);
      if (!pending_.empty()) send_work_locked(cancelled);
      if (give_back_waiters_ > 0) given_back_cv_.notify_all();  // (the job may be theirs)
      return true;
    };
    try {
      while (!state.done()) {
        if (!wait_reply(*w, deadline)) break;  // the deadline, or the worker died
        (void)take_reply();
      }
      while (take_reply()) {
      }
    } catch (const Error&) {
      // A garbled stream: the dispatcher handles it (the worker is killed; its pidfd reports).
      w->process.kill();
    }
    bool nudge = false;
    {
      std::scoped_lock lock(mu_);
      w->borrowed = false;
      if (give_back_waiters_ > 0) given_back_cv_.notify_all();
      if (w->death_pending) {
        // The dispatcher saw the death while we read: report it again.
        w->death_pending = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = tag(w, true);
        (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, w->pidfd, &ev);
      } else if (w->box.replies().arm_epoll()) {
        // A reply came after our last read: the dispatcher (maybe asleep) is told at once.
        w->box.replies().notify_reader();
      }
      // What the dispatcher would have done after these replies (start workers, finish a
      // shutdown, ...) needs it awake; a plain round trip does not.
      if (settled_any && (!pending_.empty() || shutdown_ || terminating_ || broken_)) {
        ++events_;  // seen by a dispatcher about to sleep (see run())
        nudge = true;
      }
    }
    if (nudge) wake();
    return state.done();
  }

  // settle(cancelled, failed, reason): fails the failed jobs, in order (their callbacks run
  // here). On the dispatcher thread only; the list is in settling_ meanwhile, so that a callback
  // waiting for a later job of it fails that job at once (help_as_dispatcher).
  void settle(std::vector<std::unique_ptr<PoolJob>>& cancelled,
              std::vector<std::unique_ptr<PoolJob>>& failed, const std::string& reason) {
    cancelled.clear();  // acknowledged cancels: their futures are already cancelled
    settling_.push_back(Settling{&failed, &reason});
    for (auto& job : failed) fail_job(*job, reason);
    settling_.pop_back();
    failed.clear();
  }
  static void fail_job(PoolJob& job, const std::string& reason) {
    if (!job.settled())
      job.fail(job.failure ? job.failure : std::make_exception_ptr(BrokenProcessPool(reason)));
  }

  // fail_if_settling(id): the job is in a list settle() is failing further up this thread's
  // stack: fail it now (settle() then leaves it be). False when it is not there.
  bool fail_if_settling(std::uint64_t id) {
    for (const Settling& s : settling_)
      for (auto& job : *s.failed)
        if (job && job->id == id) {
          fail_job(*job, *s.reason);
          return true;
        }
    return false;
  }

  [[nodiscard]] std::size_t idle_capacity_locked() const {
    std::size_t free = 0;
    for (const auto& w : workers_)
      if (!w->stopping && w->in_flight.empty()) ++free;
    return free;
  }

  ProcessPoolOptions options_;
  std::string initializer_;
  std::atomic<pid_t> made_in_{concur::detail::this_pid()};  // whose pool this is (check_fork)
  std::atomic<bool> started_{false};  // the dispatcher was started (in made_in_)
  mp::Connection wake_rx_;
  mp::Connection wake_tx_;
  int epoll_fd_ = -1;  // the dispatcher's: wake_rx_ and every worker's connection not borrowed
  std::atomic<std::thread::id> dispatcher_thread_{};  // the thread running run()
  std::atomic<bool> sleeping_{false};

  mutable std::mutex mu_;
  std::deque<std::unique_ptr<PoolJob>> pending_ CONCUR_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Worker>> workers_ CONCUR_GUARDED_BY(mu_);
  // graveyard_: workers removed since run()'s last pass (see worker_gone); dispatcher-only.
  std::vector<std::unique_ptr<Worker>> graveyard_ CONCUR_GUARDED_BY(mu_);
  // settling_: the lists settle() is failing now, innermost last; dispatcher-only.
  struct Settling {
    std::vector<std::unique_ptr<PoolJob>>* failed;
    const std::string* reason;
  };
  std::vector<Settling> settling_;
  std::atomic<std::uint64_t> last_id_{0};
  std::uint64_t events_ CONCUR_GUARDED_BY(mu_) = 0;  // submits and shutdowns, for the sleep check
  // A dispatcher callback waiting for a job whose worker another thread borrowed
  // (await_give_back): woken by that thread's settles and its give-back.
  std::condition_variable given_back_cv_;
  std::size_t give_back_waiters_ CONCUR_GUARDED_BY(mu_) = 0;
  bool shutdown_ CONCUR_GUARDED_BY(mu_) = false;
  bool terminating_ CONCUR_GUARDED_BY(mu_) = false;
  bool broken_ CONCUR_GUARDED_BY(mu_) = false;
  bool init_failed_ CONCUR_GUARDED_BY(mu_) = false;
  std::string init_failed_reason_ CONCUR_GUARDED_BY(mu_);
  std::string broken_reason_ CONCUR_GUARDED_BY(mu_);
  std::string last_death_ CONCUR_GUARDED_BY(mu_);
  std::string stop_reason_ CONCUR_GUARDED_BY(mu_);  // why the workers were killed (stop_now)
  std::thread dispatcher_ CONCUR_GUARDED_BY(mu_);

  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool dispatcher_done_ CONCUR_GUARDED_BY(done_mu_) = false;  // run() returned
};

}  // namespace detail

namespace detail {
namespace {

// The pools alive in this process, stopped by the exit handler (Python's _python_exit): a pool
// still running at exit (static, leaked) cancels its pending work, has its workers terminated
// and its dispatcher joined before the process goes, so no thread of it runs during exit.
struct LivePools {
  std::mutex mu;
  std::vector<std::weak_ptr<ProcessPoolCore>> pools;
};
LivePools& live_pools() {
  static auto* p = new LivePools;  // immortal: used from the exit handler
  return *p;
}

void stop_live_pools() {
  std::vector<std::shared_ptr<ProcessPoolCore>> alive;
  {
    LivePools& l = live_pools();
    std::scoped_lock lock(l.mu);
    for (auto& w : l.pools)
      if (auto p = w.lock()) alive.push_back(std::move(p));
    l.pools.clear();
  }
  for (auto& p : alive) {
    p->shutdown(/*wait=*/false, /*cancel_futures=*/true);
    p->terminate_workers();
    p->join_dispatcher();
  }
}

void track_pool(const std::shared_ptr<ProcessPoolCore>& core) {
  static const bool hooked = [] {
    mp::detail::add_exit_hook(&stop_live_pools);
    return true;
  }();
  (void)hooked;
  LivePools& l = live_pools();
  std::scoped_lock lock(l.mu);
  std::erase_if(l.pools, [](const std::weak_ptr<ProcessPoolCore>& w) { return w.expired(); });
  l.pools.push_back(core);
}

}  // namespace

void pool_cancel_running(const std::weak_ptr<ProcessPoolCore>& core, std::uint64_t id) noexcept {
  if (std::shared_ptr<ProcessPoolCore> c = core.lock()) c->cancel_running(id);
}

bool pool_assist_wait(const std::weak_ptr<ProcessPoolCore>& core, std::uint64_t id,
                      const FutureStateBase& state, const Deadline& deadline) {
  std::shared_ptr<ProcessPoolCore> c = core.lock();
  return c && c->assist_wait(id, state, deadline);
}

}  // namespace detail

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options)
    : core_(std::make_shared<detail::ProcessPoolCore>(options)),
      kill_running_(options.kill_running) {
  detail::track_pool(core_);
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  if (core_->parents_copy()) {
    // Its dispatcher thread (a joinable std::thread here) does not exist in this process: the
    // copy cannot be destroyed, only left behind.
    static auto* left = new std::vector<std::shared_ptr<detail::ProcessPoolCore>>;
    left->push_back(std::move(core_));
    return;
  }
  shutdown(true);
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  core_->shutdown(wait, cancel_futures);
}

bool ProcessPoolExecutor::shutdown_by(const detail::Deadline& deadline, bool cancel_futures) {
  return core_->shutdown_by(deadline, cancel_futures);
}

void ProcessPoolExecutor::terminate_workers() { core_->terminate_workers(); }

std::uint64_t ProcessPoolExecutor::reserve_id() { return core_->next_id(); }

void ProcessPoolExecutor::check_open(mp::detail::AnyFn fn) const {
  if (mp::detail::find_task(fn) == nullptr) detail::throw_unregistered();
  core_->check_open();
}

std::size_t ProcessPoolExecutor::max_workers() const noexcept { return core_->max_workers(); }

std::vector<pid_t> ProcessPoolExecutor::worker_pids() const { return core_->worker_pids(); }

void ProcessPoolExecutor::execute(detail::RunnablePtr task) {
  (void)task;  // dropping it cancels its future
  throw UsageError(
      "ProcessPoolExecutor: an arbitrary callable cannot run in another process; call "
      "ProcessPoolExecutor::submit with a function registered by CONCUR_TASK");
}

void ProcessPoolExecutor::enqueue(mp::detail::AnyFn fn, std::unique_ptr<detail::PoolJob> job) {
  core_->enqueue(fn, std::move(job));
}

Future<std::string> ProcessPoolExecutor::submit_serialized(
    const mp::detail::TaskEntry& task, std::string_view args, std::size_t batch,
    std::chrono::milliseconds time_limit, std::chrono::milliseconds soft_time_limit) {
  if (time_limit.count() < 0 || soft_time_limit.count() < 0)
    throw ValueError("submit_serialized: time_limit and soft_time_limit must be >= 0");
  auto job = make_job<detail::SerializedJob>();
  Future<std::string> future = job->promise.get_future();
  job->batch = batch;
  job->time_limit = time_limit;
  job->soft_time_limit = soft_time_limit;
  {
    mp::detail::SpillOutBuf buf(job->args, kFileThreshold, "concur-pool-args");
    if (static_cast<std::size_t>(
            buf.sputn(args.data(), static_cast<std::streamsize>(args.size()))) != args.size())
      throw OSError(ENOMEM, "submit_serialized: the arguments could not be written");
    buf.close();
  }
  core_->enqueue(task.address, std::move(job));
  return future;
}

void ProcessPoolExecutor::enqueue_batch(mp::detail::AnyFn fn,
                                        std::unique_ptr<detail::PoolJob> job) {
  core_->enqueue(fn, std::move(job));
}

}  // namespace concur
