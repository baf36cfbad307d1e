// concur/mp/process.hpp — multiprocessing.Process: run a registered task (task.hpp) or a run()
// override in a child process; start methods; current_process(), parent_process(),
// active_children(), cpu_count().
//
//   mp::Process p(is_prime, 112272535095293);   // is_prime registered with CONCUR_TASK
//   p.start();
//   p.join();                                   // p.exitcode() == 0
//
// Start methods (docs/internals/processes.md): forkserver (the default) sends each start to a
// server process that was exec'ed fresh, single-threaded, and forks the child there; spawn execs
// this binary for every child; fork forks the caller, and is refused when the caller has more than
// one thread (a child forked from a multithreaded parent can deadlock on a lock another thread
// held), unless the Options ask for it. With spawn and forkserver the child runs the *same binary*:
// the worker side is entered during its static initialization, before main().
// A fork server that died (killed) is replaced by the next start, as in Python; a start it was
// serving at that moment throws OSError (the child may or may not have been forked), and the
// children it had forked are still watched (is_alive, join, kill) — only their exit status is
// lost (exitcode 255).
// What crosses: the target's arguments are serialized (serialize.hpp) when the Process is
// constructed — a failure throws there; handles (Connection, mp::Lock, Value...) travel with their
// descriptors. A run() subclass is serialized at start() and must be registered with
// CONCUR_PROCESS(Class) for spawn/forkserver (fork needs nothing).
// In the child: an exception escaping the target is printed to stderr as "Process <name>:" and
// its type and message, and the exit code is 1; SystemExit(n) exits with n quietly.
// At exit of a process: daemonic children are terminated, then every child is joined (Python's
// rule). A child made by a raw fork() starts with no children and no fork server of its own: its
// exit leaves its parent's processes (a pool's workers) alone.
// Thread-safety: one Process object is used by one thread at a time, except that
// join/is_alive/exitcode/terminate/kill may be called concurrently. The module functions are
// thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"
#include "concur/mp/serialize.hpp"
#include "concur/mp/task.hpp"

namespace concur::mp {

// StartMethod: how a child process is created (Python's start method names).
enum class StartMethod { fork, spawn, forkserver };

// set_start_method(method, force) sets the default for Processes started afterwards. Like Python,
// a second call throws RuntimeError("context has already been set") unless force is true.
CONCUR_EXPORT void set_start_method(StartMethod method, bool force = false);
// get_start_method() is the default start method (forkserver unless set).
[[nodiscard]] CONCUR_EXPORT StartMethod get_start_method() noexcept;
// get_all_start_methods() lists the methods available here, the default first.
[[nodiscard]] CONCUR_EXPORT std::vector<StartMethod> get_all_start_methods();
// to_string(method) is Python's name: "fork", "spawn", "forkserver".
[[nodiscard]] CONCUR_EXPORT const char* to_string(StartMethod method) noexcept;

// SystemExit(code) thrown by a child's target ends the child with exit code `code`, printing
// nothing (Python's sys.exit(n) in a child).
class CONCUR_EXPORT SystemExit : public std::exception {
 public:
  explicit SystemExit(int code = 0) noexcept : code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }
  [[nodiscard]] const char* what() const noexcept override { return "SystemExit"; }

 private:
  int code_;
};

// ProcessInfo describes a process of the tree: current_process(), parent_process(),
// active_children().
struct ProcessInfo {
  std::string name;  // "MainProcess", "Process-1", "Process-1:2"...
  pid_t pid = 0;
  bool daemon = false;
};

// current_process() is this process: "MainProcess" in the program's first process.
[[nodiscard]] CONCUR_EXPORT ProcessInfo current_process();
// parent_process() is the process that started this one, or nullopt in the main process.
[[nodiscard]] CONCUR_EXPORT std::optional<ProcessInfo> parent_process();
// active_children() lists this process's children that are still running; children that have
// exited are reaped by the call (as Python's).
[[nodiscard]] CONCUR_EXPORT std::vector<ProcessInfo> active_children();
// cpu_count() is the number of online CPUs (os.cpu_count()).
[[nodiscard]] CONCUR_EXPORT int cpu_count() noexcept;
// freeze_support() does nothing: the worker side of spawn/forkserver is entered automatically,
// before main(). Kept so that Python code ported line by line compiles.
inline void freeze_support() noexcept {}

class Process;

namespace detail {
struct ChildState;
struct ProcessClassEntry;
// run_process(p) calls p.run() (the child side).
void run_process(Process& p);
// process_pidfd(p) is the started child's pidfd (readable once it exits, whichever start method
// made it), owned by p; -1 before start(). For the process pool's death detection.
CONCUR_EXPORT int process_pidfd(const Process& p) noexcept;
// The child side entered before main(): runs when this process was started by concur as a
// spawn/forkserver child or as the fork server. Exposed for tests only.
// forkserver_pid() is the running fork server's pid (0 before the first forkserver start); a
// server that died is replaced by the next start. forkserver_awaiting_answer() is true while a
// start waits for the server's answer. Both for tests.
CONCUR_EXPORT pid_t forkserver_pid() noexcept;
CONCUR_EXPORT bool forkserver_awaiting_answer() noexcept;
CONCUR_EXPORT int count_threads() noexcept;
// exiting() is true once this process's exit handler started (daemonic children are being
// terminated): pools stop replacing workers.
CONCUR_EXPORT bool exiting() noexcept;
// add_exit_hook(hook) runs hook() at the start of this process's exit handler (before daemonic
// children are terminated), in the process that added it: process pools stop there.
CONCUR_EXPORT void add_exit_hook(void (*hook)());
}  // namespace detail

// ProcessOptions (Process::Options): the name (default "Process-N"), daemon (default: the creating
// process's daemon flag, as Python), the start method (default get_start_method()), and
// fork_with_threads to let the fork method run from a multithreaded parent (unsafe: the child may
// deadlock on a lock another thread held).
struct ProcessOptions {
  std::string name{};
  std::optional<bool> daemon{};
  std::optional<StartMethod> start_method{};
  bool fork_with_threads = false;
};

class CONCUR_EXPORT Process {
 public:
  using Options = ProcessOptions;

  // Process(fn, args...) targets the registered task fn with `args`, converted to fn's parameter
  // types and serialized now. Throws UsageError when fn is not registered (CONCUR_TASK), or its
  // name is ambiguous; PicklingError when an argument cannot be serialized. A parameter type that
  // is not a TaskArgument is a compile error.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) explicit Process(R (*fn)(P...), A&&... args)
      : Process(Options{}, fn, std::forward<A>(args)...) {}
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) Process(Options options, R (*fn)(P...), A&&... args);

  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  // ~Process() neither kills nor waits: a child still running is joined (or, if daemonic,
  // terminated) when this process exits, as in Python.
  virtual ~Process();

  // start() starts the child. Throws InvalidStateError when already started or closed, or when
  // this process is daemonic (daemons may not have children); RuntimeError when fork is asked
  // for from a multithreaded process without fork_with_threads; UsageError when a run() subclass
  // is not registered for spawn/forkserver; OSError when the system refuses, or when the fork
  // server died while serving this start (the object may be started again: a new server serves
  // it).
  void start();
  // join() waits until the child exits. join(timeout) waits at most `timeout` and returns
  // whether it exited (Python returns None; check exitcode()). Throws InvalidStateError before
  // start(), or when called in the child on itself.
  void join();
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(concur::detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool join_until(std::chrono::time_point<C, D> tp) {
    return join_until(concur::detail::Deadline::at(tp));
  }
  // is_alive() is true between start() and the child's exit (reaping it when it has exited).
  [[nodiscard]] bool is_alive();
  // exitcode() is nullopt until the child has exited and been joined (or seen by is_alive());
  // then its exit status, or -N when signal N killed it.
  [[nodiscard]] std::optional<int> exitcode();
  // pid() is the child's process id (ident), 0 before start().
  [[nodiscard]] pid_t pid() const noexcept;
  [[nodiscard]] pid_t ident() const noexcept { return pid(); }
  // sentinel() is a descriptor that becomes readable when the child exits (for poll()), -1
  // before start(). Owned by the Process.
  [[nodiscard]] int sentinel() const noexcept;
  // terminate() sends SIGTERM, kill() SIGKILL; no-op when the child already exited.
  void terminate();
  void kill();
  // close() releases the Process's resources; throws ValueError while the child is running.
  // Every other member then throws ValueError("process object is closed").
  void close();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  [[nodiscard]] bool daemon() const noexcept { return daemon_; }
  // set_daemon(flag) before start(); throws InvalidStateError afterwards.
  void set_daemon(bool daemonic);

 protected:
  // Process(options) is for subclasses that override run().
  explicit Process(Options options = {});
  // run() is what the child executes: the target by default.
  virtual void run();

 private:
  friend void detail::run_process(Process& p);
  friend int detail::process_pidfd(const Process& p) noexcept;
  void init(const Options& options);
  void set_target(detail::AnyFn fn, Payload payload);
  bool join_until(const concur::detail::Deadline& deadline);
  void check_open() const;

  std::string name_;
  bool daemon_ = false;
  StartMethod method_ = StartMethod::forkserver;
  bool fork_with_threads_ = false;
  bool closed_ = false;
  // The target: its registered entry and its serialized arguments (descriptors dup'ed, owned).
  const detail::TaskEntry* task_ = nullptr;
  std::string args_;
  std::vector<int> arg_fds_;
  std::vector<std::uint32_t> identity_;  // for the child's name and its own children's
  pid_t creator_ = 0;                    // the process that made this object
  std::shared_ptr<detail::ChildState> child_;
};

template <class R, class... P, class... A>
requires(sizeof...(P) == sizeof...(A)) Process::Process(Options options, R (*fn)(P...),
                                                        A&&... args) {
  (detail::require_task_argument<std::remove_cvref_t<P>>(), ...);
  static_assert(((std::is_same_v<std::remove_cvref_t<A>, std::remove_cvref_t<P>> ||
                  std::is_constructible_v<std::remove_cvref_t<P>, A&&>)&&...),
                "concur::mp::Process: an argument does not convert to the task's parameter type");
  init(options);
  set_target(reinterpret_cast<detail::AnyFn>(fn),
             dumps(detail::as_param<P>(std::forward<A>(args))...));
}

namespace detail {

// ProcessClassEntry registers a Process subclass for spawn/forkserver: a factory, and the
// subclass's serializer.
struct ProcessClassEntry {
  const char* name = nullptr;
  const std::type_info* type = nullptr;
  Process* (*make)() = nullptr;
  void (*save)(const Process&, OutputArchive&) = nullptr;
  void (*load)(Process&, InputArchive&) = nullptr;
};
CONCUR_EXPORT bool register_process_class(const ProcessClassEntry& entry) noexcept;
CONCUR_EXPORT const ProcessClassEntry* find_process_class(const std::type_info& type) noexcept;
CONCUR_EXPORT const ProcessClassEntry* find_process_class(std::string_view name) noexcept;

template <class C>
ProcessClassEntry make_process_class_entry(const char* name) noexcept {
  static_assert(std::is_base_of_v<Process, C>, "CONCUR_PROCESS(C): C must derive from mp::Process");
  static_assert(Serializable<C>,
                "CONCUR_PROCESS(C): give C a cereal serialize(Archive&) member listing the fields "
                "the child needs (an empty one if none): spawn and forkserver children rebuild "
                "the object from them");
  static_assert(std::is_default_constructible_v<C>,
                "CONCUR_PROCESS(C): C must be default constructible; the child builds it, then "
                "loads its fields");
  return ProcessClassEntry{
      name, &typeid(C), []() -> Process* { return new C(); },
      [](const Process& p, OutputArchive& ar) { ar(static_cast<const C&>(p)); },
      [](Process& p, InputArchive& ar) { ar(static_cast<C&>(p)); }};
}

// ProcessClassRegistrar registers a class when constructed (see TaskRegistrar).
struct ProcessClassRegistrar {
  explicit ProcessClassRegistrar(const ProcessClassEntry& entry) noexcept {
    register_process_class(entry);
  }
};

}  // namespace detail

}  // namespace concur::mp

// CONCUR_PROCESS(Class) registers a Process subclass (at namespace scope) so that spawn and
// forkserver children can rebuild it; Class needs a default constructor and a cereal serialize().
#define CONCUR_PROCESS(Class)                                                                    \
  [[maybe_unused]] static const ::concur::mp::detail::ProcessClassRegistrar CONCUR_MP_CAT(       \
      concur_mp_process_, __COUNTER__) __attribute__((init_priority(CONCUR_MP_INIT_PRIORITY))) { \
    ::concur::mp::detail::make_process_class_entry<Class>(#Class)                                \
  }
