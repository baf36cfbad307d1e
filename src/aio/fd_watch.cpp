// The loop's fd watchers: Loop::add_reader / remove_reader / add_writer / remove_writer and the
// registry that the sock_* operations share with them (fd_watch.hpp; docs/internals/
// aio-streams.md, "Fd watchers", narrates it).
//
// A callback watcher is a CallBase (call_soon's node) whose run also re-arms the wait once the
// callback returned: the callback runs once per readiness, like Python's level-triggered
// selectors, and never twice for one readiness (the wait is not pending while it is queued).
#include "fd_watch.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <utility>

#include "concur/errors.hpp"
#include "fd_pin.hpp"
#include "os_error.hpp"

namespace concur::aio {
namespace detail {

namespace asio = boost::asio;

namespace {

asio::io_context& io_of(LoopCore& loop) {
  return *static_cast<asio::io_context*>(loop.owner().native_handle());
}

const char* direction(FdDir d) noexcept { return d == FdDir::kRead ? "readable" : "writable"; }
const char* adder(FdDir d) noexcept { return d == FdDir::kRead ? "add_reader()" : "add_writer()"; }

}  // namespace

// WatchCall: one add_reader/add_writer callback. The slot holds a reference while the callback is
// registered, the ready queue one while a run is queued.
struct WatchCall final : CallBase {
  WatchCall(std::function<void()> f, std::shared_ptr<FdEntry> e, FdDir d)
      : fn(std::move(f)), entry(std::move(e)), dir(d) {
    ReadyNode::run = &run_watch;
  }
  void invoke() override { fn(); }

  // run_watch(): CallBase::run_ready (skipped once removed or replaced; an exception goes to the
  // excepthook, as call_soon's), then the wait is re-armed if this is still the fd's watcher.
  static void run_watch(ReadyNode* n) noexcept {
    // (n is never null: said for g++ 12, whose -Wstringop-overflow otherwise follows the null
    // branch of the downcast — CallBase's ReadyNode is not at offset 0 — into add_ref().)
    if (n == nullptr) __builtin_unreachable();
    auto* w = static_cast<WatchCall*>(static_cast<CallBase*>(n));
    w->add_ref();
    CallBase::run_ready(n);  // drops the queue's reference
    FdEntry& e = *w->entry;
    if (!e.dead() && e.slot(w->dir).watch == w && !e.slot(w->dir).armed) {
      try {
        e.arm(w->dir);
      } catch (...) {
        concur::detail::report_exception(std::current_exception());
      }
    }
    w->release();
  }

  std::function<void()> fn;
  std::shared_ptr<FdEntry> entry;
  FdDir dir;
};

// ---- FdEntry ----

FdEntry::~FdEntry() { release(); }

void FdEntry::arm(FdDir d) {
  FdSlot& s = slot(d);
  CONCUR_DCHECK(!s.armed && !dead_);
  const std::uint32_t gen = ++s.gen;
  auto done = [self = shared_from_this(), d, gen](const boost::system::error_code& /*ec*/) {
    // Any completion (readiness, or an error such as a descriptor closed behind our back) wakes
    // the watcher: the task retries its system call and meets the error there; a callback runs.
    self->on_ready(d, gen);
  };
  desc_->async_wait(d == FdDir::kRead ? asio::posix::stream_descriptor::wait_read
                                      : asio::posix::stream_descriptor::wait_write,
                    asio::bind_cancellation_slot(s.cancel.slot(), std::move(done)));
  s.armed = true;
}

void FdEntry::disarm(FdDir d) noexcept {
  FdSlot& s = slot(d);
  if (!s.armed) return;
  s.armed = false;
  ++s.gen;  // its completion (operation_aborted) is stale
  s.cancel.emit(asio::cancellation_type::terminal);
  s.cancel.slot().clear();
}

void FdEntry::on_ready(FdDir d, std::uint32_t gen) noexcept {
  FdSlot& s = slot(d);
  if (dead_ || !s.armed || gen != s.gen) return;  // withdrawn meanwhile
  s.armed = false;
  s.cancel.slot().clear();
  if (TaskCore* t = std::exchange(s.task, nullptr)) {
    t->wake();
  } else if (WatchCall* w = s.watch) {
    w->add_ref();  // the ready queue's reference
    service_->loop().push(w);
  }
}

void FdEntry::drop_watch(FdDir d) noexcept {
  FdSlot& s = slot(d);
  WatchCall* w = std::exchange(s.watch, nullptr);
  if (w == nullptr) return;
  w->cancelled.store(true, std::memory_order_release);  // a queued run does nothing
  disarm(d);
  w->release();  // may drop the last other reference to this entry: callers hold one
}

void FdEntry::release() noexcept {
  if (dead_) return;
  dead_ = true;
  for (FdDir d : {FdDir::kRead, FdDir::kWrite}) {
    FdSlot& s = slot(d);
    s.op = nullptr;
    s.task = nullptr;
    disarm(d);
    if (WatchCall* w = std::exchange(s.watch, nullptr)) {
      w->cancelled.store(true, std::memory_order_release);
      w->release();
    }
  }
  if (desc_) {
    (void)desc_->release();  // leaves the reactor; the fd stays open: it is the caller's
    desc_.reset();
  }
}

// ---- FdWatchService ----

asio::execution_context::id FdWatchService::id;

FdWatchService::FdWatchService(asio::execution_context& ctx)
    : asio::execution_context::service(ctx), io_(&static_cast<asio::io_context&>(ctx)) {}

FdWatchService& FdWatchService::of(LoopCore& loop) {
  auto& svc = asio::use_service<FdWatchService>(io_of(loop));
  if (svc.loop_ == nullptr) svc.loop_ = &loop;
  return svc;
}

std::shared_ptr<FdEntry> FdWatchService::find(int fd) const {
  const auto it = entries_.find(fd);
  return it == entries_.end() ? nullptr : it->second;
}

std::shared_ptr<FdEntry> FdWatchService::open(int fd, const char* what) {
  if (closed_) throw RuntimeError("Event loop is closed");
  if (auto it = entries_.find(fd); it != entries_.end()) return it->second;
  if (fd < 0) throw ValueError("Invalid file descriptor: " + std::to_string(fd));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    std::rethrow_exception(os_error(e, errno_text(e)));
  }
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
    // epoll refuses them (Python's add_reader raises PermissionError from epoll.register).
    std::rethrow_exception(os_error(EPERM, errno_text(EPERM)));
  }
  auto e = std::make_shared<FdEntry>(*this, fd);
  e->desc_.emplace(*io_);
  boost::system::error_code ec;
  e->desc_->assign(fd, ec);  // epoll_ctl(ADD): fails with EEXIST when this reactor has fd already
  if (ec) {
    e->desc_.reset();  // not open: nothing is closed
    e->dead_ = true;
    if (ec.value() == EEXIST) {
      throw RuntimeError(std::string(what) + ": File descriptor " + std::to_string(fd) +
                         " is used by transport (a stream, server or subprocess of this loop)");
    }
    std::rethrow_exception(os_error(ec.value(), errno_text(ec.value())));
  }
  entries_.emplace(fd, e);
  ++registrations_;
  return e;
}

void FdWatchService::maybe_erase(FdEntry& e) noexcept {
  if (e.dead_ || e.pinned_ || !e.slots_[0].free() || !e.slots_[1].free()) return;
  const std::shared_ptr<FdEntry> keep = e.shared_from_this();
  if (auto it = entries_.find(e.fd_); it != entries_.end() && it->second.get() == &e) {
    entries_.erase(it);
  }
  e.release();
}

void FdWatchService::pin(int fd) { open(fd, "pin_fd()")->pinned_ = true; }

void FdWatchService::unpin(int fd) noexcept {
  const auto it = entries_.find(fd);
  if (it == entries_.end()) return;
  const std::shared_ptr<FdEntry> e = it->second;
  e->pinned_ = false;
  maybe_erase(*e);
}

void FdWatchService::close_all() noexcept {  // pinned entries too
  closed_ = true;
  std::unordered_map<int, std::shared_ptr<FdEntry>> entries;
  entries.swap(entries_);
  for (auto& [fd, e] : entries) e->release();
}

void close_fd_watchers(asio::io_context& io) noexcept {
  if (asio::has_service<FdWatchService>(io)) asio::use_service<FdWatchService>(io).close_all();
}

// ---- FdClaim (the sock_* operations) ----

void check_fd_free(LoopCore& loop, int fd, FdDir d, const char* what) {
  if (!asio::has_service<FdWatchService>(io_of(loop))) return;
  const std::shared_ptr<FdEntry> e = FdWatchService::of(loop).find(fd);
  if (!e) return;
  const FdSlot& s = e->slot(d);
  if (s.op != nullptr) {
    throw RuntimeError(std::string(what) + "(): another coroutine is already waiting in " + s.op +
                       "() for file descriptor " + std::to_string(fd) + " to be " + direction(d));
  }
  if (s.watch != nullptr) {
    throw RuntimeError(std::string(what) + "(): file descriptor " + std::to_string(fd) +
                       " has a callback of " + adder(d));
  }
}

FdClaim::FdClaim(LoopCore& loop, int fd, FdDir d, const char* what)
    : loop_(&loop), fd_(fd), d_(d), what_(what) {
  check_fd_free(loop, fd, d, what);
}

FdClaim::~FdClaim() {
  if (!entry_ || entry_->dead()) return;
  FdSlot& s = entry_->slot(d_);
  s.op = nullptr;
  s.task = nullptr;
  entry_->disarm(d_);
  entry_->service().maybe_erase(*entry_);
}

FdWait FdClaim::wait() {
  if (!entry_) {
    // Python's _ensure_fd_no_transport happens here too: only once the operation must wait.
    std::shared_ptr<FdEntry> e = FdWatchService::of(*loop_).open(fd_, what_);
    check_fd_free(*loop_, fd_, d_, what_);
    e->slot(d_).op = what_;
    entry_ = std::move(e);
  }
  return FdWait(*entry_, d_);
}

// ---- the Loop's watchers ----

namespace {

void add_watcher(LoopCore& core, int fd, FdDir d, std::function<void()> fn, const char* what) {
  core.check_thread(what);
  if (core.closed()) throw RuntimeError("Event loop is closed");
  if (!fn) throw ValueError(std::string(what) + ": the callback is empty");
  FdWatchService& svc = FdWatchService::of(core);
  const std::shared_ptr<FdEntry> e = svc.open(fd, what);
  FdSlot& s = e->slot(d);
  if (s.op != nullptr) {
    throw RuntimeError(std::string(what) + ": a coroutine is waiting in " + s.op +
                       "() for file descriptor " + std::to_string(fd) + " to be " + direction(d));
  }
  auto* w = new WatchCall(std::move(fn), e, d);
  w->loop = &core;
  if (!s.armed) {
    try {
      e->arm(d);
    } catch (...) {
      w->release();
      svc.maybe_erase(*e);
      throw;
    }
  }
  // Replacing: the old callback will not run again (a run already queued is skipped).
  if (WatchCall* old = std::exchange(s.watch, w)) {
    old->cancelled.store(true, std::memory_order_release);
    old->release();
  }
}

bool remove_watcher(LoopCore& core, int fd, FdDir d, const char* what) {
  if (core.closed()) return false;
  core.check_thread(what);
  if (!asio::has_service<FdWatchService>(io_of(core))) return false;
  FdWatchService& svc = FdWatchService::of(core);
  const std::shared_ptr<FdEntry> e = svc.find(fd);
  if (!e || e->slot(d).watch == nullptr) return false;
  e->drop_watch(d);
  svc.maybe_erase(*e);
  return true;
}

}  // namespace

void pin_fd(LoopCore& loop, int fd) {
  loop.check_thread("pin_fd()");
  if (loop.closed()) throw RuntimeError("Event loop is closed");
  FdWatchService::of(loop).pin(fd);
}

void unpin_fd(LoopCore& loop, int fd) {
  if (loop.closed()) return;  // close_all() released every entry
  loop.check_thread("unpin_fd()");
  if (!asio::has_service<FdWatchService>(io_of(loop))) return;
  FdWatchService::of(loop).unpin(fd);
}

FdWatchCounts fd_watch_counts(LoopCore& loop) {
  FdWatchCounts c;
  if (!asio::has_service<FdWatchService>(io_of(loop))) return c;
  const FdWatchService& svc = FdWatchService::of(loop);
  c.registrations = svc.registrations();
  svc.for_each([&c](const FdEntry& e) {
    ++c.entries;
    if (e.pinned()) ++c.pinned;
  });
  return c;
}

}  // namespace detail

void Loop::add_reader(int fd, std::function<void()> fn) {
  detail::add_watcher(core_, fd, detail::FdDir::kRead, std::move(fn), "add_reader()");
}
bool Loop::remove_reader(int fd) {
  return detail::remove_watcher(core_, fd, detail::FdDir::kRead, "remove_reader()");
}
void Loop::add_writer(int fd, std::function<void()> fn) {
  detail::add_watcher(core_, fd, detail::FdDir::kWrite, std::move(fn), "add_writer()");
}
bool Loop::remove_writer(int fd) {
  return detail::remove_watcher(core_, fd, detail::FdDir::kWrite, "remove_writer()");
}

}  // namespace concur::aio
