// concur/thread.hpp — Thread, Python's threading.Thread, and the module functions around it:
// current_thread(), main_thread(), active_count(), enumerate(), get_ident(), get_native_id(),
// excepthook.
//
// A Thread's body is its virtual run(), as in Python: the default run() calls the target callable
// with its arguments (copied, like std::thread; pass std::ref for references) and then drops
// them; a subclass overrides run() (and then the target runs only if the override calls
// Thread::run()). start() launches it (twice → RuntimeError) and returns once it runs; join() /
// join(timeout) wait for it. An exception escaping run() goes to the excepthook (default: prints
// "Exception in thread NAME:" and the message to stderr) — it is never lost and never calls
// std::terminate.
// Lifetime: ~Thread() joins a started non-daemon thread, like std::jthread (RAII replaces
// Python's join at interpreter exit). A started daemon Thread (the class itself, not a subclass)
// is left running when it is destroyed (its target lives in shared state). An object of a class
// derived from Thread must be joined before it is destroyed and must not be moved once started,
// since the thread calls its run().
// Thread-safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"

namespace concur {

namespace detail {
struct ThreadState;

// Task is a type-erased, move-only void() callable.
class Task {
 public:
  Task() = default;
  template <class F>
  requires(!std::same_as<std::decay_t<F>, Task>) explicit Task(F&& f)
      : impl_(std::make_unique<Impl<std::decay_t<F>>>(std::forward<F>(f))) {}
  explicit operator bool() const noexcept { return impl_ != nullptr; }
  void operator()() { impl_->call(); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void call() = 0;
  };
  template <class F>
  struct Impl final : Base {
    template <class G>
    explicit Impl(G&& g) : f(std::forward<G>(g)) {}
    void call() override { f(); }
    F f;
  };
  std::unique_ptr<Base> impl_;
};

// bind_task(f, args...) decays and stores f and args, and calls std::invoke(f, args...) once.
template <class F, class... Args>
Task bind_task(F&& f, Args&&... args) {
  return Task(
      [fn = std::forward<F>(f), tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
        std::apply([&fn](auto&... a) { std::invoke(fn, a...); }, tup);
      });
}
}  // namespace detail

// ThreadRef is a copyable handle to any thread concur knows: one it started, the main thread,
// or a foreign thread seen through current_thread() (Python's _DummyThread, named "Dummy-N").
class CONCUR_EXPORT ThreadRef {
 public:
  ThreadRef() = default;  // refers to no thread
  // ThreadRef(state) is concur's own constructor (the state type is internal).
  explicit ThreadRef(std::shared_ptr<detail::ThreadState> s) noexcept : state_(std::move(s)) {}
  // name() is the thread's name; set_name() renames it.
  [[nodiscard]] std::string name() const;
  void set_name(std::string name) const;
  // ident() is the thread's pthread id (Python's ident); 0 before start.
  [[nodiscard]] std::uint64_t ident() const;
  // native_id() is the kernel thread id (gettid); 0 before start.
  [[nodiscard]] std::uint64_t native_id() const;
  [[nodiscard]] bool daemon() const;
  // is_alive() is true from start() until its target or run() returns.
  [[nodiscard]] bool is_alive() const;
  // join() waits for the thread to finish. Throws RuntimeError for the calling thread itself,
  // a thread not started yet, the main thread and foreign threads.
  void join() const;
  // join(timeout) returns true when the thread finished within `timeout`.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) const {
    return join_deadline(detail::Deadline::after(timeout));
  }
  // join_until(tp) returns true when the thread finished before the time point `tp`.
  template <class C, class D>
  bool join_until(std::chrono::time_point<C, D> tp) const {
    return join_deadline(detail::Deadline::at(tp));
  }
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  friend bool operator==(const ThreadRef& a, const ThreadRef& b) noexcept {
    return a.state_ == b.state_;
  }

 private:
  bool join_deadline(const detail::Deadline& deadline) const;
  std::shared_ptr<detail::ThreadState> state_;
};

// ThreadOptions (spelled Thread::Options) configures a Thread.
struct ThreadOptions {
  // name: default "Thread-N".
  std::string name{};
  // daemon: default inherits the creating thread's flag (false for the main thread).
  std::optional<bool> daemon{};
};

class CONCUR_EXPORT Thread {
 public:
  using Options = ThreadOptions;

  // Thread(options): the subclass form; override run().
  explicit Thread(Options options = {});
  // Thread(target, args...): run std::invoke(target, args...) in the new thread.
  template <class F, class... Args>
  requires std::invocable < std::decay_t<F>
  &, std::decay_t<Args>&... > explicit Thread(F&& target, Args&&... args)
      : Thread(Options{}, detail::bind_task(std::forward<F>(target), std::forward<Args>(args)...)) {
  }
  template <class F, class... Args>
  requires std::invocable < std::decay_t<F>
  &, std::decay_t<Args>&... > Thread(Options options, F&& target, Args&&... args)
      : Thread(std::move(options),
               detail::bind_task(std::forward<F>(target), std::forward<Args>(args)...)) {}

  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  Thread(Thread&&) noexcept;
  Thread& operator=(Thread&&) = delete;
  virtual ~Thread();

  // start() launches the thread and returns once it is running. Throws RuntimeError("threads can
  // only be started once") on a second call.
  void start();
  // join() waits until the thread finishes; see ThreadRef::join for the errors.
  void join() { ref().join(); }
  // join(timeout) returns true when the thread finished (Python: check is_alive() after).
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return ref().join(timeout);
  }
  template <class C, class D>
  bool join_until(std::chrono::time_point<C, D> tp) {
    return ref().join_until(tp);
  }
  [[nodiscard]] bool is_alive() const { return ref().is_alive(); }
  [[nodiscard]] std::string name() const { return ref().name(); }
  void set_name(std::string name) { ref().set_name(std::move(name)); }
  [[nodiscard]] bool daemon() const { return ref().daemon(); }
  // set_daemon(d) before start(); throws RuntimeError once started.
  void set_daemon(bool daemon);
  [[nodiscard]] std::uint64_t ident() const { return ref().ident(); }
  [[nodiscard]] std::uint64_t native_id() const { return ref().native_id(); }
  // ref() is a copyable handle to this thread (what current_thread() returns inside it).
  [[nodiscard]] ThreadRef ref() const { return ThreadRef(state_); }

  // run() is the thread's body, what start() runs in the new thread. The default calls the
  // target with its arguments, then destroys them (Python deletes _target/_args after the call,
  // so that captured objects are released); it does nothing without a target or once the target
  // has run (Python raises AttributeError on that second call). Subclasses override it. It may
  // also be called directly, running the body in the calling thread (as in Python); the target
  // runs at most once whichever thread calls it first.
  virtual void run();

 private:
  Thread(Options options, detail::Task target);
  static void bootstrap(std::shared_ptr<detail::ThreadState> state, Thread* self);

  std::shared_ptr<detail::ThreadState> state_;
};

// current_thread() is the calling thread (a "Dummy-N" handle for threads concur did not start).
CONCUR_EXPORT ThreadRef current_thread();
// main_thread() is the process's initial thread ("MainThread").
CONCUR_EXPORT ThreadRef main_thread();
// active_count() is the number of alive threads enumerate() would list.
CONCUR_EXPORT std::size_t active_count();
// enumerate() lists every alive thread: started Threads, the main thread, known foreign threads.
CONCUR_EXPORT std::vector<ThreadRef> enumerate();
// get_ident() / get_native_id() of the calling thread.
CONCUR_EXPORT std::uint64_t get_ident() noexcept;
CONCUR_EXPORT std::uint64_t get_native_id() noexcept;

// ExceptHookArgs is what the excepthook receives for an exception that escaped a thread.
struct ExceptHookArgs {
  std::exception_ptr exc_value;  // the exception itself (rethrow to inspect its type)
  std::string exc_type;          // demangled type name, e.g. "std::runtime_error"
  std::string exc_message;       // what(), or empty for a non-std::exception
  ThreadRef thread;              // the thread it escaped from
};
using ExceptHook = std::function<void(const ExceptHookArgs&)>;

// set_excepthook(hook) installs `hook` for all threads (empty restores the default) and returns
// the previous one. A hook that throws has its own exception printed; it never terminates.
CONCUR_EXPORT ExceptHook set_excepthook(ExceptHook hook);
// excepthook(exc) hands `exc` to the installed excepthook as if it had escaped the calling thread
// (ExceptHookArgs name the calling thread): how futures report a throwing done-callback and an
// exception nobody retrieved. Never throws; a null exc is ignored.
CONCUR_EXPORT void excepthook(std::exception_ptr exc) noexcept;
// default_excepthook(args) prints "Exception in thread NAME:\nTYPE: MESSAGE" to stderr.
CONCUR_EXPORT void default_excepthook(const ExceptHookArgs& args);

}  // namespace concur
