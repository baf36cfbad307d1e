// Thread: shared per-thread state, the registry behind enumerate(), the bootstrap that runs a
// thread's body, and the excepthook.
//
// Thread::bootstrap(state, self) — the first and last code of every concur thread:
//   1. Publish ident / native_id, make current_thread() answer this state, signal start().
//   2. Run the body: self->run() for a subclass (virtual: an override wins over the target, as
//      in Python), else the target, as Thread::run() would; any exception goes to the excepthook.
//   3. Destroy the target if an override left it (its captured arguments die in this thread).
//   4. Leave the registry, mark not alive, then set `finished` — join() returns after this.
#include "concur/thread.hpp"

#include <cxxabi.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>
#include <typeinfo>

#include "../base/this_pid.hpp"
#include "concur/errors.hpp"
#include "concur/sync/event.hpp"
#include "concur/sync/lock_order.hpp"

namespace concur {
namespace detail {

enum class ThreadKind { kConcur, kMain, kDummy };

struct ThreadState {
  ThreadState(ThreadKind k, std::string n, bool d) : kind(k), name(std::move(n)), daemon(d) {}
  ~ThreadState() {
    // Every started Thread is joined or detached by ~Thread; this is a last line of defence.
    if (handle.joinable() && !started_here()) {
      park_foreign_handle(std::move(handle));
    } else if (handle.joinable()) {
      if (handle.get_id() == std::this_thread::get_id()) {
        handle.detach();
      } else {
        handle.join();
      }
    }
  }

  // started_here(): the thread was started in this process — not in a parent that forked it,
  // where its std::thread handle names a thread that is not here (never join or detach it).
  [[nodiscard]] bool started_here() const noexcept {
    return started_in.load(std::memory_order_relaxed) == concur::detail::this_pid();
  }
  // park_foreign_handle(h): keeps the handle of a thread of the parent's, unjoined, for the
  // process's life (std::thread's destructor would terminate, join and detach are undefined).
  static void park_foreign_handle(std::thread h) noexcept {
    static std::mutex mu;
    static auto* parked = new std::vector<std::thread>;
    std::scoped_lock lk(mu);
    try {
      parked->push_back(std::move(h));
    } catch (...) {
      new std::thread(std::move(h));  // NOLINT: out of memory: kept all the same
    }
  }

  const ThreadKind kind;
  std::atomic<pid_t> started_in{0};  // the process start() ran in
  mutable std::mutex mu;
  std::string name CONCUR_GUARDED_BY(mu);
  bool daemon CONCUR_GUARDED_BY(mu);
  bool started CONCUR_GUARDED_BY(mu) = false;
  std::atomic<bool> alive{false};
  std::atomic<std::uint64_t> ident{0};
  std::atomic<std::uint64_t> native_id{0};
  Event running;   // set by the bootstrap once the thread runs
  Event finished;  // set by the bootstrap as its last step
  std::mutex join_mu;
  std::thread handle CONCUR_GUARDED_BY(join_mu);
  Task target CONCUR_GUARDED_BY(mu);  // taken out by the first run(); dropped after the body
  // runs_self: set by start() when the object is a subclass, whose run() the thread calls (the
  // object must then outlive the thread); a plain Thread's thread uses only this state.
  bool runs_self CONCUR_GUARDED_BY(mu) = false;
};

namespace {
// run_target(st) is Thread::run()'s default body: take the target (under the lock, so that it runs
// once even when run() is called from two threads), call it, destroy it with its arguments.
void run_target(ThreadState& st) {
  Task target;
  {
    std::lock_guard lk(st.mu);
    target = std::move(st.target);
  }
  if (target) target();
}
}  // namespace

}  // namespace detail

namespace {

using detail::ThreadKind;
using detail::ThreadState;

std::uint64_t self_ident() noexcept { return static_cast<std::uint64_t>(::pthread_self()); }
std::uint64_t self_native_id() noexcept {
  return static_cast<std::uint64_t>(::syscall(SYS_gettid));
}

struct Registry {
  std::mutex mu;
  std::vector<std::shared_ptr<ThreadState>> alive CONCUR_GUARDED_BY(mu);
  std::atomic<std::uint64_t> thread_counter{0};
  std::atomic<std::uint64_t> dummy_counter{0};
  std::mutex hook_mu;
  ExceptHook hook CONCUR_GUARDED_BY(hook_mu);
};

Registry& registry() {
  static Registry* r = new Registry;  // immortal: threads may outlive static destruction
  return *r;
}

void register_alive(const std::shared_ptr<ThreadState>& st) {
  auto& r = registry();
  std::lock_guard lk(r.mu);
  st->alive.store(true, std::memory_order_release);
  r.alive.push_back(st);
}

void unregister_alive(const ThreadState* st) {
  auto& r = registry();
  std::lock_guard lk(r.mu);
  std::erase_if(r.alive, [st](const auto& p) { return p.get() == st; });
  const_cast<ThreadState*>(st)->alive.store(false, std::memory_order_release);
}

// The process's initial thread.
const std::shared_ptr<ThreadState>& initial_state() {
  static const std::shared_ptr<ThreadState> m = [] {
    auto s = std::make_shared<ThreadState>(ThreadKind::kMain, "MainThread", false);
    s->ident = self_ident();
    s->native_id = static_cast<std::uint64_t>(::getpid());
    s->started = true;
    s->running.set();
    register_alive(s);
    return s;
  }();
  return m;
}
// In a child of fork(), the thread that forked is its main thread (after_fork_in_child): its
// state is published once, through the pointer (g_child_main_state owns it).
std::shared_ptr<ThreadState> g_child_main_state;
std::atomic<const std::shared_ptr<ThreadState>*> g_child_main{nullptr};

const std::shared_ptr<ThreadState>& main_state() {
  if (const auto* m = g_child_main.load(std::memory_order_acquire)) [[unlikely]]
    return *m;
  return initial_state();
}

// The calling thread's state: set by the bootstrap, or created on first use for a foreign
// thread (and retired when that thread exits).
struct Current {
  std::shared_ptr<ThreadState> state;
  bool dummy = false;
  Current() = default;
  Current(const Current&) = delete;
  Current& operator=(const Current&) = delete;
  ~Current() {
    if (dummy && state) {
      unregister_alive(state.get());
      state->finished.set();
    }
  }
};
thread_local Current tls_current;

std::shared_ptr<ThreadState> current_state() {
  if (tls_current.state) return tls_current.state;
  if (self_native_id() == static_cast<std::uint64_t>(concur::detail::this_pid())) {
    return main_state();
  }
  auto& r = registry();
  auto s = std::make_shared<ThreadState>(ThreadKind::kDummy,
                                         "Dummy-" + std::to_string(++r.dummy_counter), true);
  s->ident = self_ident();
  s->native_id = self_native_id();
  s->started = true;
  s->running.set();
  register_alive(s);
  tls_current.state = s;
  tls_current.dummy = true;
  return s;
}

std::string provide_thread_name() { return current_thread().name(); }

// The registry across fork(): the forking thread takes its mutexes in the prepare handler, so
// the child's copies are free (and consistent) when after_fork_in_child runs.
void lock_registry_for_fork() noexcept {
  registry().mu.lock();
  registry().hook_mu.lock();
}
void unlock_registry_in_parent() noexcept {
  registry().hook_mu.unlock();
  registry().mu.unlock();
}

// after_fork_in_child(): Python's threading._after_fork, run in every child of fork()
// (pthread_atfork). The child has one thread, the one that forked: it becomes main_thread() (as
// in Python when a thread other than the main one forks) and is the only one alive. Every other
// thread of the parent's is not here: is_alive() is false and join() returns at once (a thread
// that had left the registry but not ended is covered too: joins look at started_in, and the
// handles of the parent's threads are never joined nor detached here). Only atomics of the
// states are written: the forking thread holds the registry's mutex, and nothing else.
void after_fork_in_child() noexcept {
  auto& r = registry();
  // The forking thread: a concur thread, a foreign thread seen before, or else the main thread
  // (or a foreign thread never seen, which the child now knows as its main thread).
  const std::shared_ptr<ThreadState> self = tls_current.state ? tls_current.state : main_state();
  for (const auto& st : r.alive) {
    if (st == self) continue;
    st->alive.store(false, std::memory_order_release);
    st->running.set();
    st->finished.set();
  }
  self->ident.store(self_ident());
  self->native_id.store(self_native_id());
  self->alive.store(true, std::memory_order_release);
  r.alive.clear();
  r.alive.push_back(self);  // (within the capacity the parent's list had: no allocation)
  if (self != main_state()) {
    g_child_main_state = self;
    g_child_main.store(&g_child_main_state, std::memory_order_release);
  }
  r.hook_mu.unlock();
  r.mu.unlock();
}

// Runs during static initialization, on the main thread: pins main_thread() to it, gives
// lock-order reports real thread names, and registers the fork handler.
const bool g_thread_layer_ready = [] {
  main_state();
  detail::set_thread_name_provider(&provide_thread_name);
  ::pthread_atfork(&lock_registry_for_fork, &unlock_registry_in_parent, &after_fork_in_child);
  return true;
}();

std::string demangle(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string result = (status == 0 && out != nullptr) ? out : mangled;
  std::free(out);
  return result;
}

// report_exception is called inside a catch block; it never throws.
void report_exception(const std::shared_ptr<ThreadState>& st) noexcept {
  try {
    ExceptHookArgs args;
    args.exc_value = std::current_exception();
    const std::type_info* t = abi::__cxa_current_exception_type();
    args.exc_type = t != nullptr ? demangle(t->name()) : "unknown";
    try {
      std::rethrow_exception(args.exc_value);
    } catch (const std::exception& e) {
      args.exc_message = e.what();
    } catch (...) {
    }
    args.thread = ThreadRef(st);
    ExceptHook hook;
    {
      auto& r = registry();
      std::lock_guard lk(r.hook_mu);
      hook = r.hook;
    }
    if (!hook) {
      default_excepthook(args);
      return;
    }
    try {
      hook(args);
    } catch (...) {
      std::string what = "unknown exception";
      try {
        throw;
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      std::fprintf(stderr, "Exception in threading.excepthook:\n%s\n", what.c_str());
      default_excepthook(args);
    }
  } catch (...) {
    std::fputs("Exception in thread: (details lost: out of memory)\n", stderr);
  }
}

}  // namespace

// ---- ThreadRef ---------------------------------------------------------------------------------

namespace {
ThreadState& checked(const std::shared_ptr<ThreadState>& s) {
  if (!s) throw RuntimeError("empty thread handle");
  return *s;
}
}  // namespace

std::string ThreadRef::name() const {
  auto& st = checked(state_);
  std::lock_guard lk(st.mu);
  return st.name;
}

void ThreadRef::set_name(std::string name) const {
  auto& st = checked(state_);
  std::lock_guard lk(st.mu);
  st.name = std::move(name);
}

std::uint64_t ThreadRef::ident() const { return checked(state_).ident.load(); }
std::uint64_t ThreadRef::native_id() const { return checked(state_).native_id.load(); }

bool ThreadRef::daemon() const {
  auto& st = checked(state_);
  std::lock_guard lk(st.mu);
  return st.daemon;
}

bool ThreadRef::is_alive() const { return checked(state_).alive.load(std::memory_order_acquire); }

void ThreadRef::join() const { join_deadline(detail::Deadline::infinite()); }

bool ThreadRef::join_deadline(const detail::Deadline& deadline) const {
  auto& st = checked(state_);
  if (st.kind == ThreadKind::kMain) throw RuntimeError("cannot join the main thread");
  if (st.kind == ThreadKind::kDummy) throw RuntimeError("cannot join a dummy thread");
  {
    std::lock_guard lk(st.mu);
    if (!st.started) throw RuntimeError("cannot join thread before it is started");
  }
  if (tls_current.state.get() == &st) throw RuntimeError("cannot join current thread");
  if (!st.started_here()) return true;  // a thread of the parent's: not in this process
  if (!st.finished.wait_until(deadline.when())) return false;
  std::lock_guard lk(st.join_mu);
  if (st.handle.joinable()) st.handle.join();
  return true;
}

// ---- Thread ------------------------------------------------------------------------------------

Thread::Thread(Options options) : Thread(std::move(options), detail::Task{}) {}

Thread::Thread(Options options, detail::Task target) {
  auto& r = registry();
  std::string name = options.name.empty() ? "Thread-" + std::to_string(++r.thread_counter)
                                          : std::move(options.name);
  const bool daemon = options.daemon ? *options.daemon : current_thread().daemon();
  state_ = std::make_shared<ThreadState>(ThreadKind::kConcur, std::move(name), daemon);
  std::lock_guard lk(state_->mu);
  state_->target = std::move(target);
}

Thread::Thread(Thread&& other) noexcept = default;

Thread::~Thread() {
  if (!state_) return;
  auto& st = *state_;
  [[maybe_unused]] bool runs_self = false;
  {
    std::lock_guard lk(st.mu);
    if (!st.started) return;
    runs_self = st.runs_self;
  }
  // A subclass's run() uses the subclass, which is already destroyed by now: it must have been
  // joined (see thread.hpp). Debug builds stop here instead of running into a use-after-free.
  CONCUR_DCHECK(!runs_self || st.finished.is_set() || !st.started_here() ||
                st.handle.get_id() == std::this_thread::get_id());
  if (!st.started_here()) return;  // a parent's thread: ~ThreadState parks the handle
  std::lock_guard lk(st.join_mu);
  if (!st.handle.joinable()) return;
  const bool self = st.handle.get_id() == std::this_thread::get_id();
  if (self || (daemon() && !st.finished.is_set())) {
    st.handle.detach();  // a daemon keeps running; its state is shared with the bootstrap
  } else {
    st.handle.join();
  }
}

void Thread::set_daemon(bool daemon) {
  auto& st = checked(state_);
  std::lock_guard lk(st.mu);
  if (st.started) throw RuntimeError("cannot set daemon status of active thread");
  st.daemon = daemon;
}

void Thread::run() { detail::run_target(checked(state_)); }

void Thread::start() {
  auto& st = checked(state_);
  // The thread calls the virtual run() of a subclass (an override, or Thread::run() reached
  // through it); for the class itself it calls run_target() directly — the same body — so that a
  // plain Thread's thread never touches the object (which may be moved, or destroyed while a
  // daemon runs).
  Thread* self = typeid(*this) == typeid(Thread) ? nullptr : this;
  {
    std::lock_guard lk(st.mu);
    if (st.started) throw RuntimeError("threads can only be started once");
    st.started = true;
    st.runs_self = self != nullptr;
  }
  st.started_in.store(concur::detail::this_pid(), std::memory_order_relaxed);
  register_alive(state_);
  try {
    std::thread th(&Thread::bootstrap, state_, self);
    std::lock_guard lk(st.join_mu);
    st.handle = std::move(th);
  } catch (const std::system_error& e) {
    unregister_alive(&st);
    st.finished.set();
    throw RuntimeError(std::string("can't start new thread: ") + e.what());
  }
  st.running.wait();
}

void Thread::bootstrap(std::shared_ptr<detail::ThreadState> state, Thread* self) {
  // 1.
  state->ident = self_ident();
  state->native_id = self_native_id();
  tls_current.state = state;
  state->running.set();
  // 2.
  try {
    if (self != nullptr) {
      self->run();
    } else {
      detail::run_target(*state);
    }
  } catch (abi::__forced_unwind&) {
    unregister_alive(state.get());
    tls_current.state.reset();
    state->finished.set();
    throw;
  } catch (...) {
    report_exception(state);
  }
  // 3.
  try {
    detail::Task left;
    {
      std::lock_guard lk(state->mu);
      left = std::move(state->target);
    }
  } catch (...) {
    report_exception(state);
  }
  // 4.
  unregister_alive(state.get());
  tls_current.state.reset();
  state->finished.set();
}

// ---- module functions --------------------------------------------------------------------------

ThreadRef current_thread() { return ThreadRef(current_state()); }
ThreadRef main_thread() { return ThreadRef(main_state()); }

std::size_t active_count() {
  auto& r = registry();
  std::lock_guard lk(r.mu);
  return r.alive.size();
}

std::vector<ThreadRef> enumerate() {
  current_state();  // a foreign caller appears in its own listing, as in Python
  auto& r = registry();
  std::lock_guard lk(r.mu);
  std::vector<ThreadRef> out;
  out.reserve(r.alive.size());
  for (const auto& s : r.alive) out.push_back(ThreadRef(s));
  return out;
}

std::uint64_t get_ident() noexcept { return self_ident(); }
std::uint64_t get_native_id() noexcept { return self_native_id(); }

ExceptHook set_excepthook(ExceptHook hook) {
  auto& r = registry();
  std::lock_guard lk(r.hook_mu);
  std::swap(r.hook, hook);
  return hook;
}

void excepthook(std::exception_ptr exc) noexcept {
  if (!exc) return;
  try {
    const std::shared_ptr<ThreadState> self = current_state();
    try {
      std::rethrow_exception(exc);
    } catch (...) {
      report_exception(self);
    }
  } catch (...) {
    std::fputs("Exception in thread: (details lost: out of memory)\n", stderr);
  }
}

void default_excepthook(const ExceptHookArgs& args) {
  const std::string name = args.thread.valid() ? args.thread.name() : "<unknown>";
  std::string text = "Exception in thread " + name + ":\n" + args.exc_type;
  if (!args.exc_message.empty()) {
    // concur's errors already start with their Python name ("TimeoutError: ..."): print it once.
    const std::string short_type = args.exc_type.substr(args.exc_type.rfind(':') + 1);
    std::string_view message = args.exc_message;
    if (message.starts_with(short_type + ": ")) message.remove_prefix(short_type.size() + 2);
    text += ": ";
    text += message;
  }
  text += "\n";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace concur
