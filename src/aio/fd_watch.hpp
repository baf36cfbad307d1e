// src/aio/fd_watch.hpp (internal) — the loop's registry of watched file descriptors: what
// Loop::add_reader / add_writer (callbacks) and the sock_* operations (a task waiting for
// readiness) share. docs/internals/aio-streams.md, "Fd watchers", narrates it.
//
// One FdEntry per watched descriptor, in an Asio service of the loop's io_context (so a loop has
// one registry, created on first use, and loop.cpp keeps no state for it). An entry holds an
// asio::posix::stream_descriptor assigned to the user's fd — registered with the reactor, never
// owning the fd: it is release()d, not closed, when the last watcher of the fd goes — and two
// slots, read and write. A slot is free, or holds one add_reader/add_writer callback (a WatchCall),
// or is claimed by one sock_* operation (FdClaim) and then, while that operation waits, names its
// task. A slot with a watcher keeps one async_wait(wait_read / wait_write) armed; its completion
// schedules the callback (a ready-queue node) or wakes the task; a callback's wait is re-armed once
// the callback has run. An entry may be pinned (fd_pin.hpp: the crawler's libcurl sockets): it
// then stays registered while both slots are free, until unpinned. Loop thread only, like
// everything on a loop.
#pragma once

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

#include "concur/aio/loop.hpp"
#include "concur/aio/task.hpp"

namespace concur::aio::detail {

enum class FdDir : std::uint8_t { kRead = 0, kWrite = 1 };

class FdWatchService;
struct WatchCall;

// FdSlot: one direction of a watched descriptor.
struct FdSlot {
  WatchCall* watch = nullptr;  // add_reader/add_writer's callback (the slot holds a reference)
  const char* op = nullptr;    // the sock_* operation that claimed the slot ("sock_recv"), or null
  TaskCore* task = nullptr;    // that operation's task while it waits for readiness
  bool armed = false;          // an async_wait is pending
  std::uint32_t gen = 0;       // which async_wait is current (a withdrawn one completes stale)
  boost::asio::cancellation_signal cancel;  // withdraws the pending async_wait
  [[nodiscard]] bool free() const noexcept { return watch == nullptr && op == nullptr; }
};

// FdEntry: one watched descriptor (see the file comment). Shared by the registry's map, the
// pending Asio handlers and the callbacks, so a late completion never touches freed memory.
class FdEntry : public std::enable_shared_from_this<FdEntry> {
 public:
  FdEntry(FdWatchService& service, int fd) noexcept : service_(&service), fd_(fd) {}
  ~FdEntry();
  FdEntry(const FdEntry&) = delete;
  FdEntry& operator=(const FdEntry&) = delete;

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool dead() const noexcept { return dead_; }
  [[nodiscard]] bool pinned() const noexcept { return pinned_; }
  FdSlot& slot(FdDir d) noexcept { return slots_[static_cast<int>(d)]; }
  [[nodiscard]] FdWatchService& service() const noexcept { return *service_; }

  // arm(d): starts the direction's async_wait (its completion calls on_ready).
  void arm(FdDir d);
  // disarm(d): withdraws a pending async_wait (its late completion is ignored).
  void disarm(FdDir d) noexcept;
  // drop_watch(d): the direction's callback is removed: it will not run again.
  void drop_watch(FdDir d) noexcept;
  // release(): the fd leaves the reactor (stream_descriptor::release(): never closed); every
  // slot is emptied; the entry is dead from now on.
  void release() noexcept;

 private:
  friend class FdWatchService;
  void on_ready(FdDir d, std::uint32_t gen) noexcept;

  FdWatchService* service_;
  int fd_;
  bool dead_ = false;
  bool pinned_ = false;  // kept registered while both slots are free (FdWatchService::pin)
  std::optional<boost::asio::posix::stream_descriptor> desc_;
  FdSlot slots_[2];
};

// FdWatchService: the registry of one loop (an Asio service of its io_context). close_all() runs
// when the loop closes, and again (a no-op then) when its io_context is destroyed.
class FdWatchService final : public boost::asio::execution_context::service {
 public:
  static boost::asio::execution_context::id id;
  explicit FdWatchService(boost::asio::execution_context& ctx);
  // of(loop): the loop's registry (created on first use).
  static FdWatchService& of(LoopCore& loop);
  // find(fd): the entry of fd, or null.
  std::shared_ptr<FdEntry> find(int fd) const;
  // open(fd, what): the entry of fd, created (and fd registered with the reactor) when missing.
  // ValueError for a negative fd; OSError (EBADF, EPERM for a regular file or directory, as epoll
  // refuses them); RuntimeError when the loop's reactor has fd already (a stream, server or
  // subprocess pipe of this loop: Python's "File descriptor is used by transport").
  std::shared_ptr<FdEntry> open(int fd, const char* what);
  // maybe_erase(e): releases e when both of its slots are free and it is not pinned.
  void maybe_erase(FdEntry& e) noexcept;
  // pin(fd): the entry of fd (open()'s errors) stays registered when both of its slots are free:
  // no fstat, epoll_ctl ADD / DEL or ioctl for the next watcher of fd. unpin() must run before fd
  // is closed.
  void pin(int fd);
  // unpin(fd): fd is no longer pinned; its entry is released now if both slots are free, else by
  // the last watcher's removal. Nothing for an fd without an entry (the registry closed meanwhile).
  void unpin(int fd) noexcept;
  // registrations(): how many entries open() registered with the reactor so far.
  [[nodiscard]] std::uint64_t registrations() const noexcept { return registrations_; }
  // for_each(f): f(entry) for every registered entry.
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [fd, e] : entries_) f(static_cast<const FdEntry&>(*e));
  }
  // close_all(): every watcher goes (callbacks dropped, fds released); the registry is closed.
  void close_all() noexcept;
  [[nodiscard]] LoopCore& loop() const noexcept { return *loop_; }
  [[nodiscard]] boost::asio::io_context& io() const noexcept { return *io_; }

 private:
  void shutdown() override { close_all(); }
  boost::asio::io_context* io_;
  LoopCore* loop_ = nullptr;
  bool closed_ = false;
  std::uint64_t registrations_ = 0;
  std::unordered_map<int, std::shared_ptr<FdEntry>> entries_;
};

// close_fd_watchers(io): Loop::close()'s step: removes every watcher of the loop (nothing when none
// was ever added).
void close_fd_watchers(boost::asio::io_context& io) noexcept;

// FdWait: the awaiter a claimed sock_* operation suspends on until its direction is ready
// (task.hpp's Waiter protocol). Cancelled, it withdraws the async_wait and reschedules the task,
// which then raises CancelledError.
class FdWait final : public Waiter {
 public:
  using aio_awaitable = void;
  FdWait(FdEntry& e, FdDir d) noexcept : e_(&e), d_(d) {}
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  FdWait(FdWait&& o) noexcept : Waiter(), e_(o.e_), d_(o.d_) {}
  FdWait& operator=(FdWait&&) = delete;
  ~FdWait() = default;

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> /*h*/) {
    TaskCore* me = tls_task;
    e_->arm(d_);  // may throw: nothing is recorded yet
    if (!me->suspend_on(this)) {
      e_->disarm(d_);
      return false;
    }
    e_->slot(d_).task = me;
    return true;
  }
  void await_resume() { tls_task->check_cancel(); }
  bool cancel(TaskCore& task) noexcept override {
    FdSlot& s = e_->slot(d_);
    if (s.task == &task) {
      s.task = nullptr;
      e_->disarm(d_);
      task.wake();
    }
    return false;
  }

 private:
  FdEntry* e_;  // kept alive by the FdClaim of the awaiting coroutine
  FdDir d_;
};

// FdClaim: a sock_* operation's hold on one direction of fd, from its first wait for readiness
// until it ends (the destructor frees the direction). Constructing it checks that the direction
// is free now (RuntimeError otherwise: a second task waiting for the same fd and direction, or an
// add_reader/add_writer callback on it), before the operation's first system call.
class FdClaim {
 public:
  FdClaim(LoopCore& loop, int fd, FdDir d, const char* what);
  ~FdClaim();
  FdClaim(const FdClaim&) = delete;
  FdClaim& operator=(const FdClaim&) = delete;
  // wait(): the awaiter of the next readiness; the first call claims the direction (registering
  // fd with the reactor: FdWatchService::open's errors, RuntimeError when it was taken).
  FdWait wait();

 private:
  LoopCore* loop_;
  int fd_;
  FdDir d_;
  const char* what_;
  std::shared_ptr<FdEntry> entry_;
};

// check_fd_free(loop, fd, d, what): RuntimeError when the direction d of fd has a callback or a
// sock_* operation.
void check_fd_free(LoopCore& loop, int fd, FdDir d, const char* what);

}  // namespace concur::aio::detail
