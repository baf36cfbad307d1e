// tests/contract/process_executor_contract.hpp — the typed contract suite for executors whose
// tasks run in other processes (STYLE.md rule 17): ProcessPoolExecutor today, the Redis executor
// later. It is executor_contract.hpp's list rewritten for tasks that share no memory with the
// test: every task is a registered function (CONCUR_TASK) taking and returning serializable
// values, and the test holds a task with a file-system gate instead of an Event. An executor
// joins with one line in its own test file:
//
//   struct MyFactory {
//     using executor_type = MyExecutor;  // submit(fn, args...), submit_batch, map(fn, ranges...,
//                                        // MapOptions), shutdown, max_workers(), worker_pids()
//     static std::unique_ptr<executor_type> make(std::size_t workers);  // max_workers() == workers
//   };
//   INSTANTIATE_TYPED_TEST_SUITE_P(Mine, ProcessExecutorContract, MyFactory);
//
// Include this header in ONE test file per binary: it defines the suite and registers its tasks
// (inline functions, so a second inclusion would register the same addresses again, which
// task.hpp accepts, but would also instantiate the suite twice).
//
// Covered, with the CPython test each case ports (Lib/test/test_concurrent_futures/):
// - submit: a value (executor.py test_submit), several arguments, strings, vectors, a tuple
//   (test_submit_keyword), void, arguments serialized at submit; an exception arrives as
//   RemoteError with its type name, message and where it was raised (test_process_pool.py
//   test_traceback) for a concur, a std and a non-std exception; submits from several threads at
//   every worker count; a lambda through the Executor interface and an unregistered function are
//   UsageError; submit_batch.
// - result / exception: timeouts while the task runs, then the value (test_future.py).
// - cancel: a queued task is cancelled and never runs; a running one is not (false); a finished
//   one is not.
// - map: input order at every worker count and several chunksizes (test_map,
//   test_process_pool.py test_map_chunksize), zipped ranges with the shortest winning, the
//   exception at its position (test_map_exception), the timeout (test_map_timeout), the current
//   and pending tasks cancelled when it fires (test_executor_map_current_future_cancel), an empty
//   input, no reference kept to taken results (test_free_reference), a shutdown right after map
//   (test_shutdown_race_issue12456).
// - shutdown (test_shutdown.py): idempotent, submit/map afterwards raise RuntimeError with
//   Python's message (test_run_after_shutdown), wait=true waits (test_hang_issue12364,
//   test_processes_terminate), wait=false returns at once yet the tasks finish
//   (test_shutdown_no_wait, test_hang_gh83386), cancel_futures (test_cancel_futures), a cancelled
//   submit right before shutdown (test_hang_gh94440), the destructor (test_del_shutdown,
//   test_context_manager_shutdown).
// - the executor's futures with as_completed, wait (test_wait.py), add_done_callback and then();
//   max_workers() tasks run at once, in max_workers() processes, and no more (test_saturation).
// Every test: the excepthook is captured (HookCapturingTest), every wait is bounded (a gate task
// never opened throws after kGateTimeout), and no worker process outlives its executor.
// Not portable here: std::ref and shared-memory arguments, stop tokens, submitting from inside a
// task, the callable's references (test_no_stale_references) — a task is a function name plus
// copied bytes — and map laziness and its window (the process pool's map is eager for now: the
// cases that need every input submitted at once say MapOptions{.eager = true}). Every map that
// yields results has MapOptions::timeout = kRemote: a stuck map fails with TimeoutError.
//
// Holding a task across processes: contract_gate(dir, name, v) leaves dir/name.started, then
// polls (every millisecond) for dir/name.open or dir/all.open and returns v. The fixture's
// open() / open_all() create those files, OpenGatesAtExit opens every gate when a test ends
// early, and the per-test directory (gate_dir(), under the temp directory) is removed in
// TearDown. hold_workers() fills every worker, and whatever the executor sends ahead to its
// workers, with held tasks, so that the next submits stay queued (cancellable).
// Every executor from make() is destroyed through Reaper: it lists worker_pids() first and
// checks that those processes are gone afterwards (an unreaped zombie counts as gone).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "concur/thread_pool.hpp"
#include "support/hook_support.hpp"
#include "support/process_support.hpp"
#include "support/test_support.hpp"

namespace concur::testing::process_contract {

// kRemote bounds a wait for another process (its start included; slower under TSan).
inline constexpr auto kRemote = std::chrono::seconds(30);
// kGateTimeout: a gate task never opened throws after this, so a broken test fails, never hangs.
inline constexpr auto kGateTimeout = std::chrono::seconds(30);
// kSettle: how long a submitted task must stay not running to count as queued (hold_workers).
inline constexpr auto kSettle = std::chrono::milliseconds(300);
// kExitGrace: a worker's descriptors close a moment before the kernel marks it exited.
inline constexpr auto kExitGrace = std::chrono::milliseconds(500);

// named(prefix, i) is prefix followed by i ("q" + std::to_string(i) trips GCC 12's -Wrestrict).
template <class I>
std::string named(std::string prefix, I i) {
  prefix += std::to_string(i);
  return prefix;
}

// ---- The registered tasks
// ------------------------------------------------------------------------

// ContractError and ZeroDivisionError stand in for the exceptions CPython's tests raise.
struct ContractError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ZeroDivisionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// NotAnException is thrown by value, as `throw 7` would be.
struct NotAnException {
  int code = 0;
};

inline long contract_pow(long base, int exp) {
  long r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}
CONCUR_TASK(contract_pow);

inline int contract_mul(int x, int y) { return x * y; }
CONCUR_TASK(contract_mul);

inline std::tuple<int, std::string, double> contract_echo3(int a, std::string s, double d) {
  return {a, std::move(s), d};
}
CONCUR_TASK(contract_echo3);

inline int contract_seven() { return 7; }
CONCUR_TASK(contract_seven);

inline std::vector<std::string> contract_split(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : text) {
    if (c == ' ') {
      if (!word.empty()) words.push_back(std::exchange(word, {}));
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(word);
  return words;
}
CONCUR_TASK(contract_split);

inline std::string contract_join(const std::string& s, const std::vector<int>& v) {
  return s + std::to_string(v.size());
}
CONCUR_TASK(contract_join);

// contract_mark(dir, name, value) leaves dir/name.ran (holding its pid) and returns value: the
// proof that a task ran.
inline int contract_mark(std::string dir, std::string name, int value) {
  write_file(dir + "/" + name + ".ran", std::to_string(::getpid()));
  return value;
}
CONCUR_TASK(contract_mark);

// contract_touch(dir, name) is contract_mark without a result.
inline void contract_touch(std::string dir, std::string name) {
  (void)contract_mark(std::move(dir), std::move(name), 0);
}
CONCUR_TASK(contract_touch);

// contract_gate(dir, name, value): leaves dir/name.started (holding its pid), then waits until
// dir/name.open or dir/all.open exists and returns value. Throws TimeoutError after kGateTimeout
// and RuntimeError when the directory disappears (its test is over).
inline int contract_gate(std::string dir, std::string name, int value) {
  write_file(dir + "/" + name + ".started", std::to_string(::getpid()));
  const auto deadline = std::chrono::steady_clock::now() + kGateTimeout;
  for (;;) {
    if (file_exists(dir + "/" + name + ".open") || file_exists(dir + "/all.open")) return value;
    if (!file_exists(dir)) throw RuntimeError("the gate directory " + dir + " is gone");
    if (std::chrono::steady_clock::now() >= deadline)
      throw TimeoutError("the test never opened the gate " + name);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}
CONCUR_TASK(contract_gate);

inline std::unique_ptr<int> contract_bump(std::unique_ptr<int> p) {
  *p += 1;
  return p;
}
CONCUR_TASK(contract_bump);

inline int contract_pid() { return static_cast<int>(::getpid()); }
CONCUR_TASK(contract_pid);

inline int contract_sleep_ms(int ms, int value) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
CONCUR_TASK(contract_sleep_ms);

// contract_slow_pow: the early inputs take longest, so completion order differs from input order.
inline long contract_slow_pow(int x, int y) {
  std::this_thread::sleep_for(std::chrono::milliseconds((10 - x) % 4));
  return contract_pow(x, y);
}
CONCUR_TASK(contract_slow_pow);

inline int contract_add3(int x, int y, int z) { return x + y + z; }
CONCUR_TASK(contract_add3);

inline int contract_neg(int x) { return -x; }
CONCUR_TASK(contract_neg);

inline int contract_abs(int x) { return x < 0 ? -x : x; }
CONCUR_TASK(contract_abs);

inline std::string contract_to_string(int x) { return std::to_string(x); }
CONCUR_TASK(contract_to_string);

inline std::pair<int, int> contract_divmod(int a, int b) {
  if (b == 0) throw ZeroDivisionError("integer division or modulo by zero");
  return {a / b, a % b};
}
CONCUR_TASK(contract_divmod);

inline int contract_raise_value(int x) { throw ValueError("bad value " + std::to_string(x)); }
CONCUR_TASK(contract_raise_value);

inline int contract_raise_out_of_range(int) { throw std::out_of_range("index 7"); }
CONCUR_TASK(contract_raise_out_of_range);

inline int contract_raise_non_std(int code) { throw NotAnException{code}; }
CONCUR_TASK(contract_raise_non_std);

inline void contract_raise_void() { throw ContractError("void boom"); }
CONCUR_TASK(contract_raise_void);

// Tracked counts its live instances in this process, per value (test_free_reference: who still
// holds a result). Serializable, so a task can return it.
struct Tracked {
  static constexpr int kValues = 16;
  static inline std::array<std::atomic<int>, kValues + 1> live{};  // [kValues]: other values

  Tracked() { add(1); }
  explicit Tracked(int x) : v(x) { add(1); }
  Tracked(const Tracked& o) : v(o.v) { add(1); }
  Tracked& operator=(const Tracked& o) {
    if (this != &o) {
      add(-1);
      v = o.v;
      add(1);
    }
    return *this;
  }
  ~Tracked() { add(-1); }
  template <class Archive>
  void save(Archive& ar) const {
    ar(v);
  }
  template <class Archive>
  void load(Archive& ar) {
    add(-1);
    ar(v);
    add(1);
  }
  static int alive(int value) { return live[slot(value)].load(); }
  static int alive_total() {
    int n = 0;
    for (const auto& c : live) n += c.load();
    return n;
  }

  int v = -1;

 private:
  static std::size_t slot(int value) {
    return value >= 0 && value < kValues ? static_cast<std::size_t>(value)
                                         : static_cast<std::size_t>(kValues);
  }
  void add(int d) const { live[slot(v)].fetch_add(d); }
};

inline Tracked contract_make_tracked(int x) { return Tracked(x); }
CONCUR_TASK(contract_make_tracked);

// contract_unregistered has no CONCUR_TASK on purpose.
inline int contract_unregistered(int x) { return x; }

// ---- The fixture
// ---------------------------------------------------------------------------------

// ProcessExecutorContract<Factory>: make(workers) builds an executor whose deleter checks that its
// worker processes are gone once it is destroyed; gate_dir() is a per-test temporary directory
// for gates and markers (removed in TearDown); the excepthook is captured (HookCapturingTest).
template <class Factory>
class ProcessExecutorContract : public HookCapturingTest {
 public:
  using Exec = typename Factory::executor_type;

  // Reaper destroys an executor (shutdown(wait=true)) and checks that every worker it had is gone.
  struct Reaper {
    ProcessExecutorContract* test = nullptr;
    void operator()(Exec* ex) const {
      const std::vector<pid_t> pids = ex->worker_pids();
      test->note(pids);
      delete ex;
      for (const pid_t pid : pids)
        EXPECT_TRUE(poll_until(kExitGrace, [pid] { return process_gone(pid); }))
            << "worker " << pid << " outlived its executor";
    }
  };
  using Handle = std::unique_ptr<Exec, Reaper>;

 protected:
  Handle make(std::size_t workers) {
    return Handle(Factory::make(workers).release(), Reaper{this});
  }

  void TearDown() override {
    std::vector<pid_t> pids;
    {
      std::lock_guard lk(pids_mu_);
      pids.assign(pids_.begin(), pids_.end());
    }
    for (const pid_t pid : pids)
      EXPECT_TRUE(poll_until(kExitGrace, [pid] { return process_gone(pid); }))
          << "worker " << pid << " outlived its test";
    EXPECT_TRUE(mp::active_children().empty()) << "a child process outlived its test";
    HookCapturingTest::TearDown();
  }

  // note(ex) / note(pids) remembers worker pids for TearDown's check (call before a shutdown:
  // the pids of workers that have exited are no longer listed).
  void note(const Exec& ex) { note(ex.worker_pids()); }
  void note(const std::vector<pid_t>& pids) {
    std::lock_guard lk(pids_mu_);
    pids_.insert(pids.begin(), pids.end());
  }

  // gate_dir() is where gate tasks wait and markers are left; subdir(name) makes gate_dir()/name
  // (a fresh set of gates, e.g. per iteration). Every other helper takes names relative to
  // gate_dir(): "g" is a gate of gate_dir(), "w1/g" one of subdir("w1").
  [[nodiscard]] const std::string& gate_dir() const { return dir_.path(); }
  std::string subdir(const std::string& name) {
    std::filesystem::create_directories(path(name));
    return path(name);
  }
  [[nodiscard]] std::string path(const std::string& file) const { return dir_.file(file); }
  // open(name) lets the contract_gate task `name` pass; open_all(sub) lets every one of
  // gate_dir()/sub pass.
  void open(const std::string& name) { write_file(path(name + ".open"), ""); }
  void open_all(const std::string& sub = "") {
    write_file(path(sub.empty() ? "all.open" : sub + "/all.open"), "");
  }
  // started(name): a contract_gate task named `name` began. ran(name): a contract_mark one ran.
  [[nodiscard]] bool started(const std::string& name) const {
    return file_exists(path(name + ".started"));
  }
  [[nodiscard]] bool ran(const std::string& name) const { return file_exists(path(name + ".ran")); }
  // wait_started(name) waits (bounded by kRemote) for the gate task `name` to begin; remembers
  // the pid of the worker running it.
  bool wait_started(const std::string& name) {
    if (!poll_until(kRemote, [&] { return started(name); })) return false;
    note(std::vector<pid_t>{
        static_cast<pid_t>(std::atoi(read_file(path(name + ".started")).c_str()))});
    return true;
  }
  // count_started(sub): how many gate tasks of gate_dir()/sub began.
  [[nodiscard]] std::size_t count_started(const std::string& sub = "") const {
    std::size_t n = 0;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator(sub.empty() ? dir_.path() : path(sub), ec)) {
      if (e.path().filename().string().ends_with(".started")) ++n;
    }
    return n;
  }

  // hold_workers(ex, dir) submits gate tasks hold0, hold1... of `dir` until one stays queued (not
  // running) for kSettle: every worker then runs a held task and whatever the executor sends
  // ahead to its workers is full, so the next submits stay queued — cancellable — until the gates
  // open (open_all). Returns the futures (task i returns i), the last one queued.
  std::vector<Future<int>> hold_workers(Exec& ex, const std::string& dir) {
    std::vector<Future<int>> held;
    const std::size_t limit = 8 * ex.max_workers() + 16;
    for (std::size_t i = 0; i < limit; ++i) {
      held.push_back(ex.submit(contract_gate, dir, named("hold", i), static_cast<int>(i)));
      Future<int>& f = held.back();
      if (!poll_until(kSettle, [&] { return f.running(); })) return held;
    }
    ADD_FAILURE() << "every one of " << limit << " held tasks was started";
    return held;
  }

 private:
  TempDir dir_;  // the gates and markers; removed, with everything in it, after TearDown
  std::mutex pids_mu_;
  std::set<pid_t> pids_;
};

// OpenGatesAtExit opens every gate when it goes out of scope. Declared after the executor, it is
// destroyed first: a failed assertion does not leave the executor's destructor waiting on a gate.
class OpenGatesAtExit {
 public:
  explicit OpenGatesAtExit(std::string dir) : dir_(std::move(dir)) {}
  OpenGatesAtExit(const OpenGatesAtExit&) = delete;
  OpenGatesAtExit& operator=(const OpenGatesAtExit&) = delete;
  ~OpenGatesAtExit() {
    try {
      write_file(dir_ + "/all.open", "");
    } catch (...) {
    }
  }

 private:
  std::string dir_;
};

// expect_remote_error(f, type, message) checks that f failed with RemoteError(type, message).
template <class T>
void expect_remote_error(const Future<T>& f, const std::string& type, const std::string& message) {
  try {
    (void)f.result(kRemote);
    ADD_FAILURE() << "result() returned";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), type);
    EXPECT_EQ(e.message(), message);
  }
}

TYPED_TEST_SUITE_P(ProcessExecutorContract);

// ==== submit =====================================================================================

// executor.py test_submit: submit(pow, 2, 8).
TYPED_TEST_P(ProcessExecutorContract, SubmitReturnsTheValue) {
  auto ex = this->make(2);
  Future<long> f = ex->submit(contract_pow, 2L, 8);
  EXPECT_EQ(f.result(kRemote), 256);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.exception(kRemote), nullptr);
}

// executor.py test_submit_keyword: no keywords in C++; several arguments of several types,
// strings and vectors both ways, no argument at all; arguments converted to the parameter types.
TYPED_TEST_P(ProcessExecutorContract, SubmitPassesEveryArgument) {
  auto ex = this->make(2);
  EXPECT_EQ(ex->submit(contract_mul, 2, 8).result(kRemote), 16);
  EXPECT_EQ(ex->submit(contract_echo3, 1, "fn", 3.5).result(kRemote),
            std::tuple(1, std::string("fn"), 3.5));
  EXPECT_EQ(ex->submit(contract_seven).result(kRemote), 7);
  EXPECT_EQ(ex->submit(contract_split, std::string("a bb  ccc")).result(kRemote),
            (std::vector<std::string>{"a", "bb", "ccc"}));
  EXPECT_EQ(ex->submit(contract_join, "x", std::vector<int>{1, 2, 3}).result(kRemote), "x3");
  const std::string big(100'000, 'z');  // larger than a pipe's capacity
  EXPECT_EQ(ex->submit(contract_join, big, std::vector<int>(50'000, 1)).result(kRemote),
            big + "50000");
}

// A move-only argument and result (std::unique_ptr travels by value).
TYPED_TEST_P(ProcessExecutorContract, SubmitMoveOnlyArgumentAndResult) {
  auto ex = this->make(1);
  Future<std::unique_ptr<int>> f = ex->submit(contract_bump, std::make_unique<int>(41));
  std::unique_ptr<int> r = std::move(f).result(kRemote);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(*r, 42);
}

// A void task: its side effect (a file, here) is visible once result() returned.
TYPED_TEST_P(ProcessExecutorContract, SubmitVoidFunction) {
  auto ex = this->make(2);
  Future<void> f = ex->submit(contract_touch, this->gate_dir(), "void");
  f.result(kRemote);
  EXPECT_TRUE(this->ran("void")) << "the side effect is visible once result() returned";
  EXPECT_EQ(f.exception(kRemote), nullptr);
}

// The arguments are serialized at submit(): changing the originals later is not seen.
TYPED_TEST_P(ProcessExecutorContract, SubmitCopiesItsArguments) {
  auto ex = this->make(1);
  OpenGatesAtExit opener(this->gate_dir());
  auto blocker = ex->submit(contract_gate, this->gate_dir(), "blocker", 1);
  ASSERT_TRUE(this->wait_started("blocker"));
  std::string s = "before";
  std::vector<int> v{1, 2, 3};
  auto f = ex->submit(contract_join, s, v);
  s = "after";
  v.clear();
  this->open("blocker");
  EXPECT_EQ(f.result(kRemote), "before3");
  EXPECT_EQ(blocker.result(kRemote), 1);
}

// A task's exception reaches the future as RemoteError: the type's name, the message, and where it
// was raised (test_process_pool.py test_traceback: the remote traceback is kept). The worker
// survives it.
TYPED_TEST_P(ProcessExecutorContract, ExceptionArrivesAsRemoteErrorWithTypeAndMessage) {
  auto ex = this->make(2);
  auto f = ex->submit(contract_raise_value, 5);
  try {
    (void)f.result(kRemote);
    ADD_FAILURE() << "result() returned";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "ValueError") << "a concur error keeps its Python name";
    EXPECT_EQ(e.message(), "bad value 5");
    EXPECT_STREQ(e.what(), "RemoteError: ValueError: bad value 5");
    EXPECT_NE(e.traceback().find("contract_raise_value"), std::string::npos) << e.traceback();
  }
  std::exception_ptr e = f.exception(kRemote);
  ASSERT_NE(e, nullptr);
  EXPECT_THROW(std::rethrow_exception(e), RemoteError);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.cancelled());

  expect_remote_error(ex->submit(contract_raise_out_of_range, 0), "std::out_of_range", "index 7");
  expect_remote_error(ex->submit(contract_raise_void),
                      "concur::testing::process_contract::ContractError", "void boom");
  auto h = ex->submit(contract_raise_non_std, 7);
  try {
    (void)h.result(kRemote);
    ADD_FAILURE() << "result() returned";
  } catch (const RemoteError& err) {
    EXPECT_EQ(err.type_name(), "concur::testing::process_contract::NotAnException");
  }
  EXPECT_EQ(ex->submit(contract_pow, 3L, 2).result(kRemote), 9) << "the worker survived";
}

// Submits from several threads at once, at every worker count: every future gets its own value.
TYPED_TEST_P(ProcessExecutorContract, SubmitFromManyThreadsAtEveryWorkerCount) {
  constexpr std::size_t kSubmitters = 4;
  constexpr int kPerThread = 100;
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE(named("workers=", workers));
    auto ex = this->make(workers);
    std::array<std::vector<Future<int>>, kSubmitters> fs;
    {
      Bunch submitters(kSubmitters, [&](std::size_t t) {
        for (int i = 0; i < kPerThread; ++i) {
          fs[t].push_back(ex->submit(contract_mul, static_cast<int>(t), i));
        }
      });
    }
    for (std::size_t t = 0; t < kSubmitters; ++t) {
      ASSERT_EQ(fs[t].size(), static_cast<std::size_t>(kPerThread));
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_EQ(fs[t][static_cast<std::size_t>(i)].result(kRemote), static_cast<int>(t) * i);
      }
    }
  }
}

// What cannot cross a process boundary is refused at once with UsageError: a lambda (or map of
// one) through the Executor interface, a function that was not registered. The executor carries on.
TYPED_TEST_P(ProcessExecutorContract, UnregisteredCallablesAreUsageErrors) {
  auto ex = this->make(1);
  Executor& base = *ex;
  EXPECT_THROW((void)base.submit([] { return 1; }), UsageError);
  try {
    auto r = base.map([](int x) { return x; }, std::vector<int>{1, 2});
    (void)*r.begin();
    ADD_FAILURE() << "map of a lambda through the Executor interface ran";
  } catch (const UsageError&) {
  }
  EXPECT_THROW((void)ex->submit(contract_unregistered, 1), UsageError);
  EXPECT_EQ(ex->submit(contract_seven).result(kRemote), 7);
}

// submit_batch runs the calls in order in one round trip; one failing call fails the batch.
TYPED_TEST_P(ProcessExecutorContract, SubmitBatchRunsEveryCallInOrder) {
  auto ex = this->make(2);
  auto f =
      ex->submit_batch(contract_mul, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}, {5, 6}});
  EXPECT_EQ(f.result(kRemote), (std::vector<int>{2, 12, 30}));
  auto g = ex->submit_batch(contract_divmod, std::vector<std::tuple<int, int>>{{7, 2}, {1, 0}});
  expect_remote_error(g, "concur::testing::process_contract::ZeroDivisionError",
                      "integer division or modulo by zero");
  // An empty batch has an empty result (it is never sent: batch 0 means one call on the wire).
  try {
    EXPECT_TRUE(ex->submit_batch(contract_mul, std::vector<std::tuple<int, int>>{})
                    .result(kRemote)
                    .empty());
  } catch (const RemoteError& e) {
    ADD_FAILURE() << "an empty batch failed: " << e.what();
  }
}

// ==== result / exception with timeouts (test_future.py test_result_with_timeout) ================

TYPED_TEST_P(ProcessExecutorContract, ResultAndExceptionTimeOutWhileTheTaskRuns) {
  auto ex = this->make(1);
  OpenGatesAtExit opener(this->gate_dir());
  auto f = ex->submit(contract_gate, this->gate_dir(), "g", 7);
  const auto took = elapsed([&] { EXPECT_THROW((void)f.result(kShort), TimeoutError); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_THROW((void)f.exception(kShort), TimeoutError);
  EXPECT_THROW((void)f.result(std::chrono::seconds(0)), TimeoutError) << "a zero timeout polls";
  EXPECT_THROW((void)f.result_until(std::chrono::steady_clock::now() + kShort), TimeoutError);
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.wait(std::chrono::milliseconds(1)));
  this->open("g");
  EXPECT_EQ(f.result(kRemote), 7);
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 7) << "a done future answers a zero timeout";
  EXPECT_EQ(f.exception(std::chrono::seconds(0)), nullptr);
}

// ==== cancel =====================================================================================

// test_future.py test_cancel: a queued task (every worker held) is cancelled, never runs, and the
// tasks behind it do.
TYPED_TEST_P(ProcessExecutorContract, CancelBeforeTheTaskStarts) {
  for (const std::size_t workers : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE(named("workers=", workers));
    const std::string sub = named("w", workers);
    const std::string dir = this->subdir(sub);
    auto ex = this->make(workers);
    OpenGatesAtExit opener(dir);
    auto held = this->hold_workers(*ex, dir);
    auto f = ex->submit(contract_mark, dir, "cancelled", 2);
    auto behind = ex->submit(contract_mark, dir, "behind", 3);
    EXPECT_FALSE(f.running());
    EXPECT_FALSE(f.done());
    EXPECT_TRUE(f.cancel());
    EXPECT_TRUE(f.cancelled());
    EXPECT_TRUE(f.done());
    EXPECT_TRUE(f.cancel()) << "cancelling a cancelled future succeeds again";
    EXPECT_THROW((void)f.result(kRemote), CancelledError);
    EXPECT_THROW((void)f.exception(kRemote), CancelledError);
    this->open_all(sub);
    for (std::size_t i = 0; i < held.size(); ++i)
      EXPECT_EQ(held[i].result(kRemote), static_cast<int>(i));
    EXPECT_EQ(behind.result(kRemote), 3);
    this->note(*ex);
    ex->shutdown(true);
    EXPECT_FALSE(this->ran(sub + "/cancelled")) << "a cancelled task must never run";
  }
}

// test_future.py test_cancel (RUNNING): cancel() on a running future returns false and the task
// completes normally; a finished future cannot be cancelled either. (cancel() comes first: a
// remote executor may hear that a worker took the task after the task began — its cancel() asks
// the broker, fails, and the future is running from then on.)
TYPED_TEST_P(ProcessExecutorContract, CancelOfARunningOrFinishedTaskFails) {
  auto ex = this->make(1);
  OpenGatesAtExit opener(this->gate_dir());
  auto f = ex->submit(contract_gate, this->gate_dir(), "g", 5);
  ASSERT_TRUE(this->wait_started("g"));
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.cancel()) << "a second cancel() agrees";
  this->open("g");
  EXPECT_EQ(f.result(kRemote), 5);
  EXPECT_FALSE(f.cancel()) << "a finished future cannot be cancelled";
  EXPECT_FALSE(f.cancelled());
  auto failed = ex->submit(contract_raise_value, 1);
  EXPECT_NE(failed.exception(kRemote), nullptr);
  EXPECT_FALSE(failed.cancel()) << "a failed future cannot be cancelled";
  EXPECT_FALSE(failed.cancelled());
}

// ==== map ========================================================================================

// executor.py test_map, test_process_pool.py test_map_chunksize: results in input order, whatever
// order the tasks finish in, at every worker count and chunksize; chunksize 0 is a ValueError.
TYPED_TEST_P(ProcessExecutorContract, MapYieldsInInputOrderAtEveryWorkerCountAndChunksize) {
  std::vector<int> a(10);
  std::iota(a.begin(), a.end(), 0);
  std::vector<long> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(contract_pow(i, i));
  for (const std::size_t workers : kThreadCounts) {
    auto ex = this->make(workers);
    for (const std::size_t chunksize : {std::size_t{1}, std::size_t{3}, std::size_t{16}}) {
      SCOPED_TRACE(named("workers=", workers) + " chunksize=" + std::to_string(chunksize));
      std::vector<long> got;
      for (long v :
           ex->map(contract_slow_pow, a, a, MapOptions{.timeout = kRemote, .chunksize = chunksize}))
        got.push_back(v);
      EXPECT_EQ(got, expected);
    }
  }
  auto ex = this->make(2);
  EXPECT_THROW((void)ex->map(contract_neg, a, MapOptions{.chunksize = 0}), ValueError);
}

// Several ranges are zipped, the shortest one ending the map (Python's map(fn, *iterables)); an
// endless range among them is fine; a view too; an rvalue container or view is owned by the range.
TYPED_TEST_P(ProcessExecutorContract, MapZipsRangesAndTheShortestWins) {
  auto ex = this->make(2);
  std::vector<int> a{1, 2, 3, 4, 5};
  std::vector<int> b{10, 20, 30};
  auto endless = std::views::iota(100);
  for (const std::size_t chunksize : {std::size_t{1}, std::size_t{2}}) {
    std::vector<int> got;
    for (int v : ex->map(contract_add3, a, b, endless,
                         MapOptions{.timeout = kRemote, .chunksize = chunksize}))
      got.push_back(v);
    EXPECT_EQ(got, (std::vector<int>{111, 123, 135}));
  }
  std::vector<int> got;
  const std::vector<int> c{4, 5, 6};
  for (int v : ex->map(contract_neg, c, MapOptions{.timeout = kRemote})) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{-4, -5, -6}));
  got.clear();
  for (int v : ex->map(contract_neg, std::vector<int>{7, 8}, MapOptions{.timeout = kRemote}))
    got.push_back(v);
  for (int v : ex->map(contract_neg, std::views::iota(0, 2), MapOptions{.timeout = kRemote}))
    got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{-7, -8, 0, -1}));
}

// executor.py test_map_exception: divmod(1, 0) raises when its result is taken, not before (with
// chunks, the chunk holding it).
TYPED_TEST_P(ProcessExecutorContract, MapRethrowsAnExceptionAtItsPosition) {
  auto ex = this->make(2);
  for (const std::size_t chunksize : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE(named("chunksize=", chunksize));
    const std::vector<int> a{1, 1, 1, 1};
    const std::vector<int> b{2, 3, 0, 5};
    auto results =
        ex->map(contract_divmod, a, b, MapOptions{.timeout = kRemote, .chunksize = chunksize});
    auto it = results.begin();
    ASSERT_FALSE(it == results.end());
    EXPECT_EQ(*it, std::pair(0, 1));
    ++it;
    ASSERT_FALSE(it == results.end());
    EXPECT_EQ(*it, std::pair(0, 1));
    ++it;
    try {
      (void)*it;
      ADD_FAILURE() << "the third result did not raise";
    } catch (const RemoteError& e) {
      EXPECT_EQ(e.type_name(), "concur::testing::process_contract::ZeroDivisionError");
      EXPECT_EQ(e.message(), "integer division or modulo by zero");
    }
  }
}

// executor.py test_map_timeout: the results that arrive in time are yielded, then TimeoutError;
// the timeout counts from the map() call.
TYPED_TEST_P(ProcessExecutorContract, MapTimeout) {
  auto ex = this->make(2);
  OpenGatesAtExit opener(this->gate_dir());
  constexpr auto kTimeout = std::chrono::seconds(1);  // long enough for the two quick tasks
  this->open("quick0");
  this->open("quick1");
  const std::vector<std::string> dirs(3, this->gate_dir());
  const std::vector<std::string> names{"quick0", "quick1", "blocked"};
  const std::vector<int> values{10, 20, 30};
  std::vector<int> results;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (int v : ex->map(contract_gate, dirs, names, values, MapOptions{.timeout = kTimeout})) {
      results.push_back(v);
    }
    ADD_FAILURE() << "expected TimeoutError";
  } catch (const TimeoutError&) {
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t0, kTimeout - kSlack);
  EXPECT_EQ(results, (std::vector<int>{10, 20}));
}

// test_thread_pool.py test_executor_map_current_future_cancel: when taking a result times out,
// that task (queued: every worker is held) is cancelled, and so are the ones still queued when the
// range goes away — neither ever runs.
TYPED_TEST_P(ProcessExecutorContract, MapTimeoutCancelsTheCurrentAndThePendingTasks) {
  {
    auto ex = this->make(1);
    OpenGatesAtExit opener(this->gate_dir());
    auto held = this->hold_workers(*ex, this->gate_dir());
    const std::vector<std::string> dirs(2, this->gate_dir());
    const std::vector<std::string> names{"second", "third"};
    const std::vector<int> values{2, 3};
    {
      auto gen = ex->map(contract_mark, dirs, names, values,
                         MapOptions{.timeout = std::chrono::nanoseconds(0)});
      EXPECT_THROW((void)*gen.begin(), TimeoutError);
    }
    this->open_all();
    for (auto& f : held) (void)f.result(kRemote);
  }  // the destructor waits: a task left queued would run here
  EXPECT_FALSE(this->ran("second"));
  EXPECT_FALSE(this->ran("third"));
}

// An empty input (or an empty range zipped with others) submits nothing.
TYPED_TEST_P(ProcessExecutorContract, MapOverAnEmptyRange) {
  auto ex = this->make(2);
  const std::vector<int> none;
  auto results = ex->map(contract_neg, none);
  EXPECT_TRUE(results.begin() == results.end());
  const std::vector<std::string> dirs(3, this->gate_dir());
  const std::vector<std::string> no_names;
  const std::vector<int> values{1, 2, 3};
  auto zipped = ex->map(contract_mark, dirs, no_names, values);
  EXPECT_TRUE(zipped.begin() == zipped.end());
  ex.reset();
  EXPECT_EQ(this->count_started(""), 0U);
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(this->gate_dir(), ec)) << "a task ran";
}

// executor.py test_free_reference (issue 14406): the range keeps no reference to a result it gave
// out: once the loop moved past a result, it is gone; after the loop, none is left alive while the
// range still exists. (Python's chained chunks pop each element as they yield it.) As in
// Python's test, the check retries for a moment: the producer side may let go of its copy (the
// future's state) a little after the consumer took the result.
TYPED_TEST_P(ProcessExecutorContract, MapKeepsNoReferenceToTakenResults) {
  constexpr auto kReleaseGrace = std::chrono::seconds(1);
  auto ex = this->make(2);
  for (const std::size_t chunksize : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE(named("chunksize=", chunksize));
    ASSERT_TRUE(poll_until(kReleaseGrace, [] { return Tracked::alive_total() == 0; }));
    {
      auto inputs = std::views::iota(0, 10);
      auto results = ex->map(contract_make_tracked, inputs,
                             MapOptions{.timeout = kRemote, .chunksize = chunksize});
      int i = 0;
      for (const Tracked& t : results) {
        EXPECT_EQ(t.v, i);
        if (i > 0) {
          EXPECT_TRUE(poll_until(kReleaseGrace, [i] { return Tracked::alive(i - 1) == 0; }))
              << "result " << i - 1 << " still alive";
        }
        ++i;
      }
      EXPECT_EQ(i, 10);
      EXPECT_TRUE(poll_until(kReleaseGrace, [] { return Tracked::alive_total() == 0; }))
          << Tracked::alive_total() << " results still alive after the loop";
    }
  }
}

// executor.py test_shutdown_race_issue12456: map over max_workers + 1 inputs, then shutdown at
// once; nothing hangs and every result is there.
TYPED_TEST_P(ProcessExecutorContract, MapThenShutdownAtOnce) {
  for (const std::size_t workers : kThreadCounts) {
    auto ex = this->make(workers);
    const std::vector<int> twos(workers + 1, 2);
    auto results = ex->map(contract_to_string, twos, MapOptions{.timeout = kRemote, .eager = true});
    this->note(*ex);
    ex->shutdown();
    std::size_t n = 0;
    for (const std::string& s : results) {
      EXPECT_EQ(s, "2");
      ++n;
    }
    EXPECT_EQ(n, workers + 1);
  }
}

// ==== shutdown ===================================================================================

TYPED_TEST_P(ProcessExecutorContract, ShutdownIsIdempotent) {
  auto ex = this->make(2);
  auto f = ex->submit(contract_seven);
  this->note(*ex);
  ex->shutdown();
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 7) << "shutdown(wait=true) returned before the task";
  ex->shutdown();
  ex->shutdown(false);
  ex->shutdown(true, true);
  auto unused = this->make(3);
  unused->shutdown(false);
  unused->shutdown(true);
  EXPECT_TRUE(unused->worker_pids().empty()) << "an executor never used started workers";
}

// test_shutdown.py test_run_after_shutdown (and Python's message), for submit and map.
TYPED_TEST_P(ProcessExecutorContract, SubmitAfterShutdownRaisesRuntimeError) {
  for (const bool wait : {true, false}) {
    auto ex = this->make(2);
    (void)ex->submit(contract_seven).result(kRemote);
    this->note(*ex);
    ex->shutdown(wait);
    try {
      (void)ex->submit(contract_pow, 2L, 5);
      ADD_FAILURE() << "submit() after shutdown(" << wait << ") succeeded";
    } catch (const RuntimeError& e) {
      EXPECT_STREQ(e.what(), "RuntimeError: cannot schedule new futures after shutdown");
    }
    const std::vector<int> inputs{1, 2};
    EXPECT_THROW((void)ex->map(contract_neg, inputs), RuntimeError);
    EXPECT_THROW((void)ex->submit_batch(contract_mul, std::vector<std::tuple<int, int>>{{1, 2}}),
                 RuntimeError);
  }
  auto never_used = this->make(2);
  never_used->shutdown();
  EXPECT_THROW((void)never_used->submit(contract_seven), RuntimeError);
}

// test_shutdown.py test_hang_issue12364 / test_processes_terminate: shutdown(wait=true) returns
// once every task, running or queued, has finished, and the workers are gone (the Reaper checks).
TYPED_TEST_P(ProcessExecutorContract, ShutdownWaitsForRunningAndQueuedTasks) {
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE(named("workers=", workers));
    auto ex = this->make(workers);
    std::vector<Future<int>> fs;
    for (int i = 0; i < 50; ++i) fs.push_back(ex->submit(contract_sleep_ms, 1, i));
    ASSERT_EQ(fs.front().result(kRemote), 0);
    this->note(*ex);
    ex->shutdown();
    for (int i = 0; i < 50; ++i) {
      const Future<int>& f = fs[static_cast<std::size_t>(i)];
      ASSERT_TRUE(f.done()) << "task " << i << " still pending after shutdown(wait=true)";
      EXPECT_EQ(f.result(std::chrono::seconds(0)), i);
    }
    EXPECT_TRUE(ex->worker_pids().empty()) << "workers listed after shutdown(wait=true)";
  }
}

// shutdown(wait=true) blocks while a task runs: another thread opens its gate, and shutdown
// returns only after that.
TYPED_TEST_P(ProcessExecutorContract, ShutdownWaitBlocksUntilTheRunningTaskEnds) {
  auto ex = this->make(1);
  OpenGatesAtExit open_gates(this->gate_dir());
  std::atomic<bool> opened{false};
  auto f = ex->submit(contract_gate, this->gate_dir(), "g", 1);
  ASSERT_TRUE(this->wait_started("g"));
  Bunch opener(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    opened = true;
    this->open("g");
  });
  this->note(*ex);
  ex->shutdown(true);
  EXPECT_TRUE(opened.load()) << "shutdown(wait=true) returned while the task was still blocked";
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 1);
}

// test_shutdown.py test_shutdown_no_wait / test_hang_gh83386: shutdown(wait=false) returns while a
// task is blocked; that task and the queued one behind it still finish (no cancel_futures).
TYPED_TEST_P(ProcessExecutorContract, ShutdownWithoutWaitReturnsAtOnceYetTasksFinish) {
  auto ex = this->make(1);
  OpenGatesAtExit opener(this->gate_dir());
  auto running = ex->submit(contract_gate, this->gate_dir(), "g", 1);
  auto queued = ex->submit(contract_mark, this->gate_dir(), "queued", 2);
  ASSERT_TRUE(this->wait_started("g"));
  this->note(*ex);
  ex->shutdown(false);
  EXPECT_FALSE(running.done()) << "shutdown(wait=false) waited for the running task";
  EXPECT_FALSE(queued.cancelled());
  this->open("g");
  EXPECT_EQ(running.result(kRemote), 1);
  EXPECT_EQ(queued.result(kRemote), 2);

  // test_shutdown_no_wait: the results of a map are all computed after shutdown(wait=false).
  auto ex2 = this->make(5);
  auto inputs = std::views::iota(-5, 5);
  auto res = ex2->map(contract_abs, inputs, MapOptions{.timeout = kRemote, .eager = true});
  this->note(*ex2);
  ex2->shutdown(false);
  std::vector<int> got;
  for (int v : res) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
}

// test_shutdown.py test_cancel_futures: with every worker held, shutdown(cancel_futures=true)
// cancels the queued tasks before it returns, and none of them runs; a task already handed to a
// worker (running()) is not cancelled and finishes.
TYPED_TEST_P(ProcessExecutorContract, ShutdownCancelFuturesCancelsQueuedTasks) {
  auto ex = this->make(1);
  OpenGatesAtExit opener(this->gate_dir());
  auto held = this->hold_workers(*ex, this->gate_dir());
  std::vector<Future<int>> queued;
  for (int i = 0; i < 20; ++i)
    queued.push_back(ex->submit(contract_mark, this->gate_dir(), named("q", i), i));
  std::vector<bool> held_running;
  for (auto& f : held) held_running.push_back(f.running());
  this->note(*ex);
  ex->shutdown(false, true);
  std::size_t cancelled = 0;
  for (auto& f : queued) {
    if (f.cancelled()) {
      ++cancelled;
      EXPECT_THROW((void)f.result(std::chrono::seconds(0)), CancelledError);
    }
  }
  EXPECT_GE(cancelled, 10U) << "most queued tasks are cancelled";
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (held_running[i]) {
      EXPECT_FALSE(held[i].cancelled()) << "a running task was cancelled";
    }
  }
  this->open_all();
  ex->shutdown(true);
  for (int i = 0; i < 20; ++i) {
    const Future<int>& f = queued[static_cast<std::size_t>(i)];
    ASSERT_TRUE(f.done());
    if (f.cancelled()) {
      EXPECT_FALSE(this->ran(named("q", i))) << "cancelled task " << i << " ran";
    } else {
      EXPECT_EQ(f.result(std::chrono::seconds(0)), i);
    }
  }
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (held_running[i]) {
      EXPECT_EQ(held[i].result(std::chrono::seconds(0)), static_cast<int>(i));
    }
  }
}

// test_cancel_futures with several workers: each future ends cancelled or finished cleanly, and
// both happen (50 tasks of 5 ms, at most 3 workers: the queue cannot be drained at once). The
// first result is awaited before the shutdown: CPython's test relies on its manager thread
// handing some tasks to the workers first; concur's shutdown may cancel every task not yet sent.
TYPED_TEST_P(ProcessExecutorContract, ShutdownCancelFuturesWithSeveralWorkers) {
  for (const std::size_t workers : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
    SCOPED_TRACE(named("workers=", workers));
    auto ex = this->make(workers);
    std::vector<Future<int>> fs;
    for (int i = 0; i < 50; ++i) fs.push_back(ex->submit(contract_sleep_ms, 5, i));
    ASSERT_EQ(fs.front().result(kRemote), 0);
    this->note(*ex);
    ex->shutdown(true, true);
    std::size_t cancelled = 0;
    for (int i = 0; i < 50; ++i) {
      const Future<int>& f = fs[static_cast<std::size_t>(i)];
      ASSERT_TRUE(f.done()) << "future " << i << " left pending";
      if (f.cancelled()) {
        ++cancelled;
      } else {
        EXPECT_EQ(f.exception(std::chrono::seconds(0)), nullptr);
        EXPECT_EQ(f.result(std::chrono::seconds(0)), i);
      }
    }
    EXPECT_GT(cancelled, 0U);
    EXPECT_LT(cancelled, 50U);
  }
}

// test_shutdown.py test_hang_gh94440: futures submitted and cancelled right before
// shutdown(wait=true) do not make it hang.
TYPED_TEST_P(ProcessExecutorContract, ShutdownAfterACancelledSubmitDoesNotHang) {
  auto ex = this->make(1);
  (void)ex->submit(contract_seven).result(kRemote);
  for (int i = 0; i < 20; ++i) (void)ex->submit(contract_seven).cancel();
  this->note(*ex);
  in_thread([&] { ex->shutdown(true); });
}

// test_shutdown.py test_del_shutdown / test_context_manager_shutdown: destroying the executor
// waits for every task, and the results of a map are still there afterwards.
TYPED_TEST_P(ProcessExecutorContract, DestructorShutsDownAndWaits) {
  std::vector<Future<int>> fs;
  std::optional<std::vector<int>> mapped;
  {
    auto ex = this->make(2);
    for (int i = 0; i < 10; ++i)
      fs.push_back(ex->submit(contract_mark, this->gate_dir(), named("t", i), i));
    auto inputs = std::views::iota(-5, 5);
    auto res = ex->map(contract_abs, inputs, MapOptions{.timeout = kRemote, .eager = true});
    ex.reset();
    for (int i = 0; i < 10; ++i) {
      EXPECT_TRUE(fs[static_cast<std::size_t>(i)].done())
          << "the destructor returned before task " << i;
      EXPECT_TRUE(this->ran(named("t", i)));
    }
    mapped.emplace();
    for (int v : res) mapped->push_back(v);
  }
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(std::chrono::seconds(0)), i);
  EXPECT_EQ(*mapped, (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
}

TYPED_TEST_P(ProcessExecutorContract, DestructorWaitsForARunningTask) {
  std::atomic<bool> opened{false};
  Future<int> f;
  {
    auto ex = this->make(2);
    OpenGatesAtExit open_gates(this->gate_dir());
    f = ex->submit(contract_gate, this->gate_dir(), "g", 3);
    ASSERT_TRUE(this->wait_started("g"));
    Bunch opener(1, [&](std::size_t) {
      std::this_thread::sleep_for(kShort);
      opened = true;
      this->open("g");
    });
    ex.reset();
    EXPECT_TRUE(opened.load()) << "the destructor returned while the task was still blocked";
  }
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 3);
}

// ==== the executor's futures with as_completed / wait / callbacks / then =========================

// test_as_completed.py: the tasks finish in the order the test opens their gates; as_completed
// follows it.
TYPED_TEST_P(ProcessExecutorContract, AsCompletedYieldsInCompletionOrder) {
  auto ex = this->make(3);
  OpenGatesAtExit opener(this->gate_dir());
  std::vector<Future<int>> fs;
  for (int i = 0; i < 3; ++i)
    fs.push_back(ex->submit(contract_gate, this->gate_dir(), named("g", i), i));
  auto completed = as_completed(fs, kRemote);
  auto it = completed.begin();
  for (const int k : {2, 0, 1}) {
    this->open(named("g", k));
    ASSERT_FALSE(it == completed.end());
    Future<int> f = *it;
    EXPECT_TRUE(f == fs[static_cast<std::size_t>(k)]) << "expected future " << k;
    EXPECT_EQ(f.result(std::chrono::seconds(0)), k);
    ++it;
  }
  EXPECT_TRUE(it == completed.end());
}

// test_as_completed.py test_zero_timeout: a pending task makes as_completed time out, and the
// range stays usable.
TYPED_TEST_P(ProcessExecutorContract, AsCompletedTimesOutOnAPendingTask) {
  auto ex = this->make(1);
  OpenGatesAtExit opener(this->gate_dir());
  auto done = ex->submit(contract_seven);
  ASSERT_EQ(done.result(kRemote), 7);
  auto blocked = ex->submit(contract_gate, this->gate_dir(), "g", 2);
  auto completed = as_completed(std::vector<Future<int>>{done, blocked}, kShort);
  auto it = completed.begin();
  EXPECT_TRUE(*it == done);
  ++it;
  try {
    (void)*it;
    ADD_FAILURE() << "as_completed did not time out";
  } catch (const TimeoutError& e) {
    EXPECT_STREQ(e.what(), "TimeoutError: 1 (of 2) futures unfinished");
  }
  this->open("g");
  ASSERT_EQ(blocked.result(kRemote), 2);
  EXPECT_TRUE(*it == blocked) << "the range stays usable after a timeout";
}

// test_wait.py test_first_completed, test_first_exception, test_all_completed, test_timeout.
TYPED_TEST_P(ProcessExecutorContract, WaitReturnWhenModes) {
  auto ex = this->make(2);
  OpenGatesAtExit opener(this->gate_dir());
  auto quick = ex->submit(contract_seven);
  auto slow = ex->submit(contract_gate, this->gate_dir(), "g", 2);
  auto r = wait(std::vector<Future<int>>{quick, slow}, kRemote, FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1U);
  ASSERT_EQ(r.not_done.size(), 1U);
  EXPECT_TRUE(r.done[0] == quick);
  EXPECT_TRUE(r.not_done[0] == slow);

  auto r2 = wait(std::vector<Future<int>>{quick, slow}, kShort, ALL_COMPLETED);
  EXPECT_EQ(r2.done.size(), 1U);
  ASSERT_EQ(r2.not_done.size(), 1U) << "ALL_COMPLETED cannot be met while slow is blocked";
  EXPECT_TRUE(r2.not_done[0] == slow);

  auto bad = ex->submit(contract_raise_value, 3);
  auto r3 = wait(std::vector<Future<int>>{slow, bad}, kRemote, FIRST_EXCEPTION);
  ASSERT_EQ(r3.done.size(), 1U);
  EXPECT_TRUE(r3.done[0] == bad);
  ASSERT_EQ(r3.not_done.size(), 1U);
  EXPECT_TRUE(r3.not_done[0] == slow);
  expect_remote_error(bad, "ValueError", "bad value 3");

  this->open("g");
  auto r4 = wait(std::vector<Future<int>>{quick, slow, bad}, kRemote);
  EXPECT_EQ(r4.done.size(), 3U);
  EXPECT_TRUE(r4.not_done.empty());
}

// test_future.py test_done_callback_*: a callback runs once the task is done (in a thread of the
// executor's), at once on a done future, and with a cancelled future when a queued task is
// cancelled (in the cancelling thread).
TYPED_TEST_P(ProcessExecutorContract, AddDoneCallbackOnTheExecutorsFutures) {
  auto ex = this->make(1);
  OpenGatesAtExit opener(this->gate_dir());
  Event called;
  auto f = ex->submit(contract_gate, this->gate_dir(), "g", 5);
  std::atomic<int> calls{0};
  std::atomic<int> seen{0};
  f.add_done_callback([&](const Future<int>& g) {
    seen = g.result();
    calls.fetch_add(1);
    called.set();
  });
  EXPECT_EQ(calls.load(), 0) << "the callback ran before the task finished";
  this->open("g");
  ASSERT_TRUE(called.wait(kRemote));
  EXPECT_EQ(seen.load(), 5);
  const ThreadRef me = current_thread();
  bool here = false;
  f.add_done_callback([&](const Future<int>&) { here = current_thread() == me; });
  EXPECT_TRUE(here) << "on a done future the callback runs at once, in this thread";
  EXPECT_EQ(calls.load(), 1);

  auto held = this->hold_workers(*ex, this->gate_dir());
  auto c = ex->submit(contract_seven);
  bool saw_cancelled = false;
  c.add_done_callback([&](const Future<int>& g) { saw_cancelled = g.cancelled(); });
  EXPECT_TRUE(c.cancel());
  EXPECT_TRUE(saw_cancelled) << "cancel() runs the callbacks in the cancelling thread";
  this->open_all();
  for (auto& h : held) (void)h.result(kRemote);
}

// A throwing callback goes to the excepthook; the future and the later callbacks are unaffected.
TYPED_TEST_P(ProcessExecutorContract, ThrowingCallbackGoesToTheExcepthook) {
  this->expect_reports(1);
  auto ex = this->make(1);
  auto f = ex->submit(contract_seven);
  ASSERT_EQ(f.result(kRemote), 7);
  bool second = false;
  f.add_done_callback([](const Future<int>&) { throw ContractError("callback failed"); });
  f.add_done_callback([&](const Future<int>&) { second = true; });
  EXPECT_TRUE(second);
  EXPECT_EQ(f.result(std::chrono::seconds(0)), 7);
  const auto reports = this->reports();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0].message, "callback failed");
}

// then(): inline, and onto a thread pool; the continuation itself cannot be sent to a process
// executor through the Executor interface (a lambda): it fails with UsageError.
TYPED_TEST_P(ProcessExecutorContract, ThenOnTheExecutorsFutures) {
  ThreadPoolExecutor threads(2);
  {
    auto ex = this->make(2);
    OpenGatesAtExit opener(this->gate_dir());
    auto source = ex->submit(contract_gate, this->gate_dir(), "g", 20);
    auto plus_one = source.then([](const Future<int>& f) { return f.result() + 1; });
    auto chained =
        plus_one.then(threads, [](const Future<int>& f) { return std::to_string(f.result()); });
    auto failing =
        source.then(threads, [](const Future<int>&) -> int { throw ContractError("then"); });
    Executor& base = *ex;
    auto refused = source.then(base, [](const Future<int>& f) { return f.result(); });
    EXPECT_FALSE(plus_one.done());
    this->open("g");
    EXPECT_EQ(plus_one.result(kRemote), 21);
    EXPECT_EQ(chained.result(kRemote), "21");
    EXPECT_THROW((void)failing.result(kRemote), ContractError);
    EXPECT_THROW((void)refused.result(kRemote), UsageError);
    auto remote_failure = ex->submit(contract_raise_value, 4).then([](const Future<int>& f) {
      return f.exception() != nullptr;
    });
    EXPECT_TRUE(remote_failure.result(kRemote)) << "the continuation sees the RemoteError";
  }
  threads.shutdown();
}

// ==== max_workers, saturation, worker processes ==================================================

// test_process_pool.py test_saturation: max_workers() tasks run at once, in max_workers()
// processes, and no more; every task of the executor ran in one of them.
TYPED_TEST_P(ProcessExecutorContract, MaxWorkersTasksRunAtOnceAndNoMore) {
  for (const std::size_t workers : kThreadCounts) {
    SCOPED_TRACE(named("workers=", workers));
    const std::string sub = named("w", workers);
    const std::string dir = this->subdir(sub);
    auto ex = this->make(workers);
    OpenGatesAtExit opener(dir);
    EXPECT_EQ(ex->max_workers(), workers);
    std::vector<Future<int>> fs;
    for (std::size_t i = 0; i < 3 * workers; ++i)
      fs.push_back(ex->submit(contract_gate, dir, std::to_string(i), static_cast<int>(i)));
    EXPECT_TRUE(poll_until(kRemote, [&] { return this->count_started(sub) == workers; }))
        << this->count_started(sub) << " of " << workers << " tasks run at once";
    EXPECT_TRUE(holds_for(kShort, [&] { return this->count_started(sub) <= workers; }))
        << "more tasks ran at once than max_workers";
    const std::vector<pid_t> pids = ex->worker_pids();
    EXPECT_EQ(pids.size(), workers);
    this->note(pids);
    this->open_all(sub);
    std::set<pid_t> ran_in;
    for (std::size_t i = 0; i < fs.size(); ++i) {
      EXPECT_EQ(fs[i].result(kRemote), static_cast<int>(i));
      ran_in.insert(static_cast<pid_t>(
          std::atoi(read_file(this->path(sub + "/" + std::to_string(i) + ".started")).c_str())));
    }
    EXPECT_EQ(ran_in.size(), workers) << "tasks ran in more or fewer processes than max_workers";
    for (const pid_t pid : ran_in)
      EXPECT_NE(std::find(pids.begin(), pids.end(), pid), pids.end()) << pid << " is no worker";
    ex.reset();
  }
}

// test_shutdown.py test_processes_terminate: the pids the tasks report are the executor's
// workers, and none of them outlives it.
TYPED_TEST_P(ProcessExecutorContract, NoWorkerOutlivesTheExecutor) {
  std::set<pid_t> pids;
  {
    auto ex = this->make(3);
    std::vector<Future<int>> fs;
    for (int i = 0; i < 30; ++i) fs.push_back(ex->submit(contract_pid));
    for (auto& f : fs) pids.insert(static_cast<pid_t>(f.result(kRemote)));
    const std::vector<pid_t> listed = ex->worker_pids();
    for (const pid_t pid : pids) {
      EXPECT_NE(pid, ::getpid()) << "a task ran in the test process";
      EXPECT_NE(std::find(listed.begin(), listed.end(), pid), listed.end());
    }
    EXPECT_LE(pids.size(), 3U);
  }
  for (const pid_t pid : pids) EXPECT_TRUE(process_gone(pid)) << "worker " << pid << " outlived it";
}

REGISTER_TYPED_TEST_SUITE_P(
    ProcessExecutorContract, SubmitReturnsTheValue, SubmitPassesEveryArgument,
    SubmitMoveOnlyArgumentAndResult, SubmitVoidFunction, SubmitCopiesItsArguments,
    ExceptionArrivesAsRemoteErrorWithTypeAndMessage, SubmitFromManyThreadsAtEveryWorkerCount,
    UnregisteredCallablesAreUsageErrors, SubmitBatchRunsEveryCallInOrder,
    ResultAndExceptionTimeOutWhileTheTaskRuns, CancelBeforeTheTaskStarts,
    CancelOfARunningOrFinishedTaskFails, MapYieldsInInputOrderAtEveryWorkerCountAndChunksize,
    MapZipsRangesAndTheShortestWins, MapRethrowsAnExceptionAtItsPosition, MapTimeout,
    MapTimeoutCancelsTheCurrentAndThePendingTasks, MapOverAnEmptyRange,
    MapKeepsNoReferenceToTakenResults, MapThenShutdownAtOnce, ShutdownIsIdempotent,
    SubmitAfterShutdownRaisesRuntimeError, ShutdownWaitsForRunningAndQueuedTasks,
    ShutdownWaitBlocksUntilTheRunningTaskEnds, ShutdownWithoutWaitReturnsAtOnceYetTasksFinish,
    ShutdownCancelFuturesCancelsQueuedTasks, ShutdownCancelFuturesWithSeveralWorkers,
    ShutdownAfterACancelledSubmitDoesNotHang, DestructorShutsDownAndWaits,
    DestructorWaitsForARunningTask, AsCompletedYieldsInCompletionOrder,
    AsCompletedTimesOutOnAPendingTask, WaitReturnWhenModes, AddDoneCallbackOnTheExecutorsFutures,
    ThrowingCallbackGoesToTheExcepthook, ThenOnTheExecutorsFutures,
    MaxWorkersTasksRunAtOnceAndNoMore, NoWorkerOutlivesTheExecutor);

}  // namespace concur::testing::process_contract
