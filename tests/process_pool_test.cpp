// tests/process_pool_test.cpp — ProcessPoolExecutor (concur/process_pool.hpp). References:
// CPython's Lib/test/test_concurrent_futures (ProcessPoolExecutorTest, the BrokenProcessPool
// cases) and gh-66587 (a dead worker must never hang the pool). Every wait is bounded.
#include "concur/process_pool.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/mp/connection.hpp"
#include "concur/mp/queues.hpp"
#include "concur/mp/synchronize.hpp"
#include "support/process_support.hpp"
#include "support/test_support.hpp"

namespace concur {

// ---- Tasks

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}
CONCUR_TASK(is_prime);

int square(int x) { return x * x; }
CONCUR_TASK(square);

std::string greet(const std::string& name, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hello " + name + ";";
  return out;
}
CONCUR_TASK(greet);

void nothing() {}
CONCUR_TASK(nothing);

int fail_value(int x) { throw ValueError("bad value " + std::to_string(x)); }
CONCUR_TASK(fail_value);

int fail_std(int) { throw std::out_of_range("index 7"); }
CONCUR_TASK(fail_std);

// die(how): 0 SIGKILL, 1 abort, 2 segfault, 3 _exit(3); returns otherwise.
int die(int how) {
  switch (how) {
    case 0:
      ::raise(SIGKILL);
      break;
    case 1:
      std::abort();
    case 2:
      ::raise(SIGSEGV);
      break;
    case 3:
      ::_exit(3);
    default:
      break;
  }
  return how;
}
CONCUR_TASK(die);

int sleep_then(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
CONCUR_TASK(sleep_then);

int my_pid() { return static_cast<int>(::getpid()); }
CONCUR_TASK(my_pid);

int g_initialized = 0;
void init_worker() { g_initialized = 42; }
CONCUR_TASK(init_worker);
int read_initialized() { return g_initialized; }
CONCUR_TASK(read_initialized);

void init_with(int base, std::string suffix) {
  g_initialized = base + static_cast<int>(suffix.size());
}
CONCUR_TASK(init_with);

void failing_init() { throw RuntimeError("initializer refused"); }
CONCUR_TASK(failing_init);

void exiting_init() { ::_exit(3); }  // the worker ends before it reads any request
CONCUR_TASK(exiting_init);

// leak_pool: a process that leaves a busy pool behind when it exits must still exit (its daemonic
// workers are terminated by the exit handler).
void leak_pool() {
  auto* pool = new ProcessPoolExecutor(ProcessPoolOptions{.max_workers = 2});
  if (pool->submit(square, 7).result(std::chrono::seconds(60)) != 49) throw mp::SystemExit(2);
  (void)pool->submit(sleep_then, 60'000);  // still running at exit
}
CONCUR_TASK(leak_pool);

// sleep_marked(path, ms): creates `path` holding the worker's pid (the test's sign that the task
// runs; write_file: never seen half-written), then sleeps.
int sleep_marked(std::string path, int ms) {
  testing::write_file(path, std::to_string(::getpid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
CONCUR_TASK(sleep_marked);

// soft_loop(): works in 5 ms steps until its soft time limit passes, then stops as a task should:
// mp::check_soft_time_limit() throws SoftTimeLimitExceeded. Gives up after 60 s (returns -1).
int soft_loop() {
  for (int i = 0; i < 12000; ++i) {
    mp::check_soft_time_limit();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}
CONCUR_TASK(soft_loop);

// soft_left(): the milliseconds left before the task's soft limit; -1 without one.
long long soft_left() {
  const auto left = mp::soft_time_left();
  return left ? left->count() : -1;
}
CONCUR_TASK(soft_left);

// die_at_gate(path): waits (at most 60 s) until `path` exists, then its worker dies (_exit(3)).
int die_at_gate(std::string path) {
  for (int i = 0; i < 6000 && !std::filesystem::exists(path); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ::_exit(3);
}
CONCUR_TASK(die_at_gate);

// Unsendable: a result whose serialization fails in the worker.
struct Unsendable {
  template <class Archive>
  void save(Archive&) const {
    throw std::length_error("this result cannot be serialized");
  }
  template <class Archive>
  void load(Archive&) {}
};
Unsendable make_unsendable(int) { return {}; }
CONCUR_TASK(make_unsendable);

// Unloadable: a result that the worker sends but the parent cannot load.
struct Unloadable {
  template <class Archive>
  void save(Archive& ar) const {
    ar(std::string("x"));
  }
  template <class Archive>
  void load(Archive&) {
    throw std::length_error("this result cannot be loaded");
  }
};
Unloadable make_unloadable(int) { return {}; }
CONCUR_TASK(make_unloadable);

// Odd: an exception type outside std::exception.
struct Odd {};
int throw_odd(int) { throw Odd{}; }
CONCUR_TASK(throw_odd);

// orphan_pool(pid_file): a process that starts a busy pool, writes its workers' pids to
// `pid_file` and waits to be killed (the Ctrl-C tests). With `own_group`, it first becomes a
// process group of its own, so that the test can signal the group as a terminal's Ctrl-C does.
void orphan_pool(std::string pid_file, bool own_group) {
  if (own_group) ::setpgid(0, 0);
  auto* pool = new ProcessPoolExecutor(ProcessPoolOptions{.max_workers = 2});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 100; ++i) fs.push_back(pool->submit(sleep_then, 60'000));
  for (int i = 0; i < 200 && pool->worker_pids().size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::string pids;
  for (pid_t pid : pool->worker_pids()) pids += std::to_string(pid) + ' ';
  testing::write_file(pid_file, pids);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  throw mp::SystemExit(7);  // not killed: the test fails on this code
}
CONCUR_TASK(orphan_pool);

// rotated(s): s with its first byte moved to the end — a result as large as the argument, and
// different from it (copied with memcpy: cheap under the sanitizers).
std::string rotated(const std::string& s) {
  if (s.empty()) return s;
  std::string out;
  out.reserve(s.size());
  out.append(s, 1, std::string::npos).push_back(s.front());
  return out;
}
CONCUR_TASK(rotated);

// byte_sum(s): the sum of s's bytes (a big argument, a small result).
std::uint64_t byte_sum(const std::string& s) {
  std::uint64_t sum = 0;
  for (const char c : s) sum += static_cast<unsigned char>(c);
  return sum;
}
CONCUR_TASK(byte_sum);

// sized_sleep(big, path, ms): sleep_marked with a big argument; returns its size.
std::uint64_t sized_sleep(const std::string& big, std::string path, int ms) {
  (void)sleep_marked(std::move(path), ms);
  return big.size();
}
CONCUR_TASK(sized_sleep);

// pipe_end(): a result carrying a handle (descriptors cannot come back from a pool worker).
mp::Connection pipe_end(int) { return mp::Pipe().first; }
CONCUR_TASK(pipe_end);

// Handles as task arguments: the notes' producer and consumer, two pool tasks joined by a Pipe
// or a process Queue.
std::string send_on(mp::Connection conn, std::string text) {
  conn.send(text);
  return text;
}
CONCUR_TASK(send_on);
std::string recv_on(mp::Connection conn) {
  if (!conn.poll(std::chrono::seconds(60))) throw TimeoutError("nothing came in 60 s");
  return conn.recv<std::string>();
}
CONCUR_TASK(recv_on);
int produce_into(mp::Queue<int>& q, int n) {
  for (int i = 1; i <= n; ++i) q.put(i);
  return n;
}
CONCUR_TASK(produce_into);
long consume_from(mp::Queue<int>& q, int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += q.get(std::chrono::seconds(60));
  return sum;
}
CONCUR_TASK(consume_from);
// send_then_wait(conn, seen): sends "x", closes its end, and waits for the test to say it saw the
// end of file (1), or 60 s (0).
int send_then_wait(mp::Connection conn, mp::Event& seen) {
  conn.send(std::string("x"));
  conn.close();
  return seen.wait(std::chrono::seconds(60)) ? 1 : 0;
}
CONCUR_TASK(send_then_wait);
int wait_for_event(mp::Event& go) { return go.wait(std::chrono::seconds(60)) ? 1 : 0; }
CONCUR_TASK(wait_for_event);
int send_index(mp::Connection conn, int i) {
  conn.send(i);
  return i;
}
CONCUR_TASK(send_index);
int count_ends(std::vector<mp::Connection> ends) { return static_cast<int>(ends.size()); }
CONCUR_TASK(count_ends);
void init_with_ends(std::vector<mp::Connection> ends) {
  g_initialized = static_cast<int>(ends.size());
}
CONCUR_TASK(init_with_ends);
// The initializer keeps the end it was given; report_pid() sends the worker's pid on it.
mp::Connection g_init_pipe;
void init_with_pipe(mp::Connection conn) { g_init_pipe = std::move(conn); }
CONCUR_TASK(init_with_pipe);
int report_pid() {
  g_init_pipe.send(static_cast<int>(::getpid()));
  return static_cast<int>(::getpid());
}
CONCUR_TASK(report_pid);

int not_registered(int x) { return x; }
void unregistered_init() {}

namespace {

using namespace std::chrono_literals;
constexpr auto kWait = 60s;

class ProcessPoolTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(mp::active_children().empty()); }
};

using testing::file_exists;
using testing::kill_forkserver;
using testing::process_gone;
using testing::TempDir;

// eventually(pred): pred() became true within kWait (polled).
template <class Pred>
bool eventually(Pred pred) {
  return testing::poll_until(kWait, pred);
}

TEST_F(ProcessPoolTest, SubmitAndResult) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  EXPECT_EQ(pool.max_workers(), 2u);
  auto a = pool.submit(is_prime, 112272535095293ULL);
  auto b = pool.submit(square, 12);
  auto c = pool.submit(greet, "bob", 2);
  auto d = pool.submit(nothing);
  EXPECT_TRUE(a.result(kWait));
  EXPECT_EQ(b.result(kWait), 144);
  EXPECT_EQ(c.result(kWait), "hello bob;hello bob;");
  d.result(kWait);
  EXPECT_TRUE(d.done());
}

// submit_serialized: a task relayed as bytes (what dist::Worker's processes mode sends) runs as
// submit() would — one call (batch 0) or a batch of calls back to back — and its failures come
// back as from submit(): the task's exception as RemoteError, bad bytes as RemoteError too.
// A copy of a pool its parent used, in a process forked from it (the dispatcher and workers are
// the parent's): submit is refused, and dropping the copy returns at once; the parent's pool goes
// on (a child's task would have run in the parent's worker and settled a parent's future).
TEST_F(ProcessPoolTest, AForkedCopyOfAUsedPoolRefusesWorkAndLeavesTheParentsPoolAlone) {
  std::optional<ProcessPoolExecutor> pool(std::in_place, ProcessPoolOptions{.max_workers = 1});
  EXPECT_EQ(pool->submit(square, 3).result(kWait), 9);
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the child exits at once
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      (void)pool->submit(square, 4);
      code = 1;
    } catch (const InvalidStateError&) {
    } catch (...) {
      code = 2;
    }
    if (code == 0) pool.reset();  // must neither join the parent's dispatcher nor stop its workers
    ::_exit(code);
  }
  EXPECT_EQ(testing::wait_forked(child, std::chrono::seconds(30)), 0);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(pool->submit(square, i).result(kWait), i * i);
}

// A child made by a raw fork that ends with exit() (its atexit handlers run) must not treat its
// parent's processes as its own: the parent's pool workers (daemonic children) were terminated
// and reaped by the child's exit.
TEST_F(ProcessPoolTest, ARawForkChildsExitLeavesTheParentsWorkersAlone) {
#if defined(__SANITIZE_ADDRESS__)
  // LeakSanitizer's end-of-process check in a forked child of a multithreaded parent reports the
  // parent's allocations held by threads the child does not have ("False leaks are possible"), and
  // fails the child's exit. The release and TSan suites run this test.
  GTEST_SKIP() << "LeakSanitizer's exit check in a forked child reports false leaks";
#endif
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  EXPECT_EQ(pool.submit(square, 5).result(kWait), 25);
  const std::vector<pid_t> before = pool.worker_pids();
  ASSERT_FALSE(before.empty());
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the child only exits
  ASSERT_GE(child, 0);
  if (child == 0) std::exit(0);  // NOLINT(concurrency-mt-unsafe): the point of the test
  EXPECT_EQ(testing::wait_forked(child, std::chrono::seconds(30)), 0);
  for (const pid_t pid : before) EXPECT_FALSE(process_gone(pid)) << "worker " << pid;
  EXPECT_EQ(pool.worker_pids(), before);
  EXPECT_EQ(pool.submit(square, 6).result(kWait), 36);
}

// A copy of a pool its parent never used becomes the child's own: parent and child use their
// pools at the same time, each with its own workers and dispatcher (before, both dispatchers
// watched one epoll instance and could take each other's events). Workers are spawned: a child
// made by a raw fork shares its parent's fork server connection (not this test's point).
TEST_F(ProcessPoolTest, AForkedCopyOfAnUnusedPoolBecomesTheChildsOwn) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .start_method = mp::StartMethod::spawn});
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): no thread exists yet
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      for (int i = 0; i < 200 && code == 0; ++i)
        if (pool.submit(square, i + 1000).result(kWait) != (i + 1000) * (i + 1000)) code = 1;
      pool.shutdown(true);
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  for (int i = 0; i < 200; ++i) EXPECT_EQ(pool.submit(square, i).result(kWait), i * i);
  EXPECT_EQ(testing::wait_forked(child, std::chrono::seconds(60)), 0);
}

TEST_F(ProcessPoolTest, SubmitSerializedRelaysATaskGivenAsBytes) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  const mp::detail::TaskEntry* sq =
      mp::detail::find_task(reinterpret_cast<mp::detail::AnyFn>(&square));
  ASSERT_NE(sq, nullptr);
  int one = 0;
  mp::loads(pool.submit_serialized(*sq, mp::dumps(12).bytes, 0).result(kWait), {}, one);
  EXPECT_EQ(one, 144);
  const std::string two = mp::dumps(3).bytes + mp::dumps(4).bytes;
  const std::string out = pool.submit_serialized(*sq, two, 2).result(kWait);
  EXPECT_FALSE(out.empty());
  const mp::detail::TaskEntry* fail =
      mp::detail::find_task(reinterpret_cast<mp::detail::AnyFn>(&fail_value));
  ASSERT_NE(fail, nullptr);
  try {
    (void)pool.submit_serialized(*fail, mp::dumps(5).bytes, 0).result(kWait);
    FAIL() << "expected RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
    EXPECT_EQ(e.message(), "bad value 5");
  }
  EXPECT_THROW((void)pool.submit_serialized(*sq, "", 0).result(kWait), RemoteError)
      << "arguments that do not load";
  pool.shutdown();
  EXPECT_THROW((void)pool.submit_serialized(*sq, mp::dumps(1).bytes, 0), RuntimeError);
}

TEST_F(ProcessPoolTest, DefaultWorkersIsCpuCount) {
  ProcessPoolExecutor pool;
  EXPECT_EQ(pool.max_workers(), static_cast<std::size_t>(mp::cpu_count()));
}

TEST_F(ProcessPoolTest, ManyTasksInOrderOfSubmission) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 500; ++i) fs.push_back(pool.submit(square, i));
  for (int i = 0; i < 500; ++i) ASSERT_EQ(fs[static_cast<std::size_t>(i)].result(kWait), i * i);
}

TEST_F(ProcessPoolTest, ExceptionBecomesRemoteError) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto f = pool.submit(fail_value, 5);
  try {
    (void)f.result(kWait);
    FAIL() << "no exception";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
    EXPECT_EQ(e.message(), "bad value 5");
    EXPECT_STREQ(e.what(), "RemoteError: ValueError: bad value 5");
    EXPECT_NE(e.traceback().find("fail_value"), std::string::npos) << e.traceback();
  }
  auto g = pool.submit(fail_std, 0);
  try {
    (void)g.result(kWait);
    FAIL() << "no exception";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::out_of_range");
    EXPECT_EQ(e.message(), "index 7");
  }
  EXPECT_EQ(pool.submit(square, 3).result(kWait), 9);  // the worker survived
}

// Every kind of death fails exactly the task that was running; the others complete.
class WorkerDeathTest : public ::testing::TestWithParam<int> {
 protected:
  void TearDown() override { EXPECT_TRUE(mp::active_children().empty()); }
};

TEST_P(WorkerDeathTest, FailsOnlyTheRunningTask) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 100; ++i)
    fs.push_back(i == 37 ? pool.submit(die, GetParam()) : pool.submit(square, i));
  for (int i = 0; i < 100; ++i) {
    auto& f = fs[static_cast<std::size_t>(i)];
    if (i == 37) {
      EXPECT_THROW((void)f.result(kWait), BrokenProcessPool);
    } else {
      EXPECT_EQ(f.result(kWait), i * i) << i;
    }
  }
  EXPECT_EQ(pool.submit(square, 5).result(kWait), 25);  // replaced, carries on
}

std::string death_name(const ::testing::TestParamInfo<int>& param_info) {
  static const char* const kNames[] = {"sigkill", "abort", "segfault", "exit3"};
  return kNames[param_info.param];
}
INSTANTIATE_TEST_SUITE_P(Deaths, WorkerDeathTest, ::testing::Values(0, 1, 2, 3), death_name);

TEST_F(ProcessPoolTest, DeathMessageNamesTheSignal) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto f = pool.submit(die, 0);
  try {
    (void)f.result(kWait);
    FAIL() << "no exception";
  } catch (const BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("signal 9"), std::string::npos) << e.what();
  }
}

TEST_F(ProcessPoolTest, BreakOnWorkerDeathIsPythonsMode) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .break_on_worker_death = true});
  auto slow = pool.submit(sleep_then, 50);
  auto dead = pool.submit(die, 0);
  std::vector<Future<int>> after;
  for (int i = 0; i < 10; ++i) after.push_back(pool.submit(square, i));
  EXPECT_EQ(slow.result(kWait), 50);
  EXPECT_THROW((void)dead.result(kWait), BrokenProcessPool);
  for (auto& f : after) EXPECT_THROW((void)f.result(kWait), BrokenProcessPool);
  EXPECT_THROW((void)pool.submit(square, 1), BrokenProcessPool);
}

TEST_F(ProcessPoolTest, MaxTasksPerChildReplacesWorkers) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .max_tasks_per_child = 2});
  std::set<int> pids;
  for (int i = 0; i < 10; ++i) pids.insert(pool.submit(my_pid).result(kWait));
  EXPECT_EQ(pids.size(), 5u);
}

// ---- The fork server dies (killed): the pool carries on

TEST_F(ProcessPoolTest, AKilledForkServerDoesNotBreakThePool) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 2, .start_method = mp::StartMethod::forkserver});
  EXPECT_EQ(pool.submit(square, 2).result(kWait), 4);  // workers forked by the server
  const pid_t server = kill_forkserver();
  // The workers it forked go on.
  std::vector<Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(square, i));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kWait), i * i);
  // A worker that dies now fails its task only, and is replaced through a new server.
  EXPECT_THROW((void)pool.submit(die, 0).result(kWait), BrokenProcessPool);
  fs.clear();
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(square, i));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kWait), i * i);
  EXPECT_NE(mp::detail::forkserver_pid(), server);
}

TEST_F(ProcessPoolTest, WorkersStartThroughARespawnedForkServer) {
  // max_tasks_per_child = 1: every task needs a new worker, so every one after the kill goes
  // through a respawned server.
  ProcessPoolExecutor pool(ProcessPoolOptions{
      .max_workers = 1, .start_method = mp::StartMethod::forkserver, .max_tasks_per_child = 1});
  std::set<int> pids;
  pids.insert(pool.submit(my_pid).result(kWait));
  const pid_t server = kill_forkserver();
  for (int i = 0; i < 5; ++i) pids.insert(pool.submit(my_pid).result(kWait));
  EXPECT_EQ(pids.size(), 6u);
  const pid_t respawned = mp::detail::forkserver_pid();
  EXPECT_NE(respawned, server);
  // And again: a second kill is survived the same way.
  (void)kill_forkserver();
  EXPECT_EQ(pool.submit(square, 9).result(kWait), 81);
  EXPECT_NE(mp::detail::forkserver_pid(), respawned);
}

TEST_F(ProcessPoolTest, ShutdownCancelsWhatWasNotSent) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto first = pool.submit(sleep_then, 200);
  std::vector<Future<int>> rest;
  for (int i = 0; i < 10; ++i) rest.push_back(pool.submit(square, i));
  std::this_thread::sleep_for(50ms);  // the first is running
  pool.shutdown(true, true);
  EXPECT_EQ(first.result(kWait), 200);
  int cancelled = 0;
  for (auto& f : rest) {
    EXPECT_TRUE(f.done());
    if (f.cancelled()) ++cancelled;
  }
  EXPECT_GE(cancelled, 9);  // at most one was already queued in the worker's pipe
  EXPECT_THROW((void)pool.submit(square, 1), RuntimeError);
}

TEST_F(ProcessPoolTest, ShutdownWithoutWaitStillFinishesWork) {
  auto pool = std::make_unique<ProcessPoolExecutor>(ProcessPoolOptions{.max_workers = 2});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool->submit(square, i));
  pool->shutdown(false);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kWait), i * i);
  pool.reset();  // joins
}

TEST_F(ProcessPoolTest, Initializer) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .initializer = init_worker});
  EXPECT_EQ(pool.submit(read_initialized).result(kWait), 42);
}

TEST_F(ProcessPoolTest, InitializerWithInitargs) {
  // ProcessPoolExecutor(2, initializer=init_with, initargs=(40, "ab"))
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 2, .initializer = {init_with, 40, std::string("ab")}});
  EXPECT_EQ(pool.submit(read_initialized).result(kWait), 42);
  EXPECT_FALSE(Initializer());
  EXPECT_FALSE(Initializer(nullptr));
  EXPECT_TRUE(Initializer(init_worker));
}

TEST_F(ProcessPoolTest, FailingInitializerBreaksThePool) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .initializer = failing_init});
  auto f = pool.submit(square, 2);
  try {
    (void)f.result(kWait);
    FAIL() << "no exception";
  } catch (const BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("initializer refused"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)pool.submit(square, 1), BrokenProcessPool);
}

// An initializer that ends the process (exits, or crashes) fails each task sent to a worker it
// killed: the task never ran, but a replacement would die the same way, and sending it on would
// start workers forever (the future never settling).
TEST_F(ProcessPoolTest, AnInitializerThatExitsFailsTheTasksInsteadOfRestartingWorkersForever) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .initializer = exiting_init});
  for (int i = 0; i < 3; ++i) {
    auto f = pool.submit(square, i);
    try {
      (void)f.result(kWait);
      FAIL() << "no exception";
    } catch (const BrokenProcessPool& e) {
      EXPECT_NE(std::string(e.what()).find("exit code 3"), std::string::npos) << e.what();
    }
  }
}

TEST_F(ProcessPoolTest, MisuseIsRejectedAtOnce) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  EXPECT_THROW((void)pool.submit(not_registered, 1), UsageError);
  Executor& ex = pool;
  EXPECT_THROW((void)ex.submit([] { return 1; }), UsageError);
  EXPECT_THROW(ProcessPoolExecutor(ProcessPoolOptions{.start_method = mp::StartMethod::fork}),
               ValueError);
  EXPECT_THROW(ProcessPoolExecutor(ProcessPoolOptions{.initializer = unregistered_init}),
               UsageError);
}

TEST_F(ProcessPoolTest, ALeakedBusyPoolDoesNotHangExit) {
  mp::Process p(leak_pool);
  p.start();
  ASSERT_TRUE(p.join(kWait)) << "the process hung at exit";
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ProcessPoolTest, AsCompletedAndWait) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<Future<int>> fs;
  for (int ms : {120, 10, 60}) fs.push_back(pool.submit(sleep_then, ms));
  std::vector<int> order;
  for (auto f : as_completed(fs, kWait)) order.push_back(f.result());
  EXPECT_EQ(order.size(), 3u);
  EXPECT_EQ(order.front(), 10);
  auto [done, not_done] = wait(fs, kWait);
  EXPECT_EQ(done.size(), 3u);
}

TEST_F(ProcessPoolTest, ConcurrentSubmitters) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::atomic<long> sum{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      std::vector<Future<int>> fs;
      for (int i = 0; i < 100; ++i) fs.push_back(pool.submit(square, t * 100 + i));
      for (auto& f : fs) sum += f.result(kWait);
    });
  for (auto& t : ts) t.join();
  long expected = 0;
  for (long i = 0; i < 400; ++i) expected += i * i;
  EXPECT_EQ(sum.load(), expected);
}

}  // namespace
}  // namespace concur

namespace concur {
namespace {

TEST(ProcessPoolMapTest, MapInOrderWithAndWithoutChunks) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<int> xs(1000);
  for (int i = 0; i < 1000; ++i) xs[static_cast<std::size_t>(i)] = i;
  for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{1000}, std::size_t{5000}}) {
    int i = 0;
    for (int r : pool.map(square, xs, MapOptions{.chunksize = chunk})) {
      ASSERT_EQ(r, i * i) << "chunksize " << chunk;
      ++i;
    }
    EXPECT_EQ(i, 1000);
  }
  std::vector<std::string> names{"a", "b"};
  std::vector<int> times{1, 2, 3};  // zipped: the shortest range ends the map
  std::vector<std::string> out;
  for (auto& s : pool.map(greet, names, times)) out.push_back(s);
  EXPECT_EQ(out, (std::vector<std::string>{"hello a;", "hello b;hello b;"}));
  EXPECT_THROW((void)pool.map(square, xs, MapOptions{.chunksize = 0}), ValueError);
}

TEST(ProcessPoolMapTest, MapRaisesTheFirstErrorInOrder) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<int> xs{1, 2, 3};
  auto results = pool.map(fail_value, xs, MapOptions{.chunksize = 2});
  EXPECT_THROW((void)*results.begin(), RemoteError);
}

TEST(ProcessPoolMapTest, MapTimeoutCountsFromTheCall) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  std::vector<int> ms{300};
  auto results = pool.map(sleep_then, ms, MapOptions{.timeout = std::chrono::milliseconds(20)});
  EXPECT_THROW((void)*results.begin(), TimeoutError);
}

TEST(ProcessPoolMapTest, SubmitBatch) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto f = pool.submit_batch(square, std::vector<std::tuple<int>>{{2}, {3}, {4}});
  EXPECT_EQ(f.result(std::chrono::seconds(60)), (std::vector<int>{4, 9, 16}));
  // No calls: done at once, nothing sent (a worker would read it as one call without arguments).
  auto none = pool.submit_batch(square, std::vector<std::tuple<int>>{});
  EXPECT_TRUE(none.done());
  EXPECT_TRUE(none.result().empty());
  EXPECT_THROW((void)pool.submit_batch(not_registered, std::vector<std::tuple<int>>{}), UsageError);
  pool.shutdown();
  EXPECT_THROW((void)pool.submit_batch(square, std::vector<std::tuple<int>>{}), RuntimeError);
}

}  // namespace
}  // namespace concur

namespace concur {
namespace {

// ---- kill_running: cancel() of a running task

TEST_F(ProcessPoolTest, WithoutKillRunningARunningTaskIsNotCancelled) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  TempDir dir;
  auto f = pool.submit(sleep_marked, dir.file("run"), 100);
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("run")); }));
  EXPECT_FALSE(f.cancel());
  EXPECT_EQ(f.result(kWait), 100);
}

TEST_F(ProcessPoolTest, KillRunningStopsTheRunningTaskAndItsWorkerOnly) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .kill_running = true});
  TempDir dir;
  auto doomed = pool.submit(sleep_marked, dir.file("doomed"), 60'000);
  auto other = pool.submit(sleep_marked, dir.file("other"), 300);
  std::vector<Future<int>> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(pool.submit(square, i));
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("doomed")); }));
  int doomed_pid = 0;
  std::ifstream(dir.file("doomed")) >> doomed_pid;
  ASSERT_GT(doomed_pid, 0);
  EXPECT_TRUE(doomed.running());
  EXPECT_TRUE(doomed.cancel());
  EXPECT_TRUE(doomed.cancelled());
  EXPECT_TRUE(doomed.done());
  EXPECT_THROW((void)doomed.result(kWait), CancelledError);
  EXPECT_TRUE(doomed.cancel());  // idempotent
  EXPECT_EQ(other.result(kWait), 300);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(queued[static_cast<std::size_t>(i)].result(kWait), i * i);
  EXPECT_TRUE(eventually([&] { return process_gone(doomed_pid); }));
  EXPECT_TRUE(eventually([&] {
    const auto pids = pool.worker_pids();
    return std::find(pids.begin(), pids.end(), doomed_pid) == pids.end();
  }));
  EXPECT_EQ(pool.submit(square, 9).result(kWait), 81);  // replaced, carries on
}

TEST_F(ProcessPoolTest, KillRunningSkipsATaskWaitingInTheWorkersPipe) {
  // One worker: the first task runs, the second waits in the worker's pipe (sent, so running as
  // far as its future goes). Cancelling it must not kill the first: the worker skips it.
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .kill_running = true});
  TempDir dir;
  auto first = pool.submit(sleep_marked, dir.file("first"), 300);
  auto second = pool.submit(sleep_marked, dir.file("second"), 60'000);
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("first")); }));
  ASSERT_TRUE(eventually([&] { return second.running(); }));  // sent: in the worker's pipe
  EXPECT_TRUE(second.cancel());
  EXPECT_EQ(first.result(kWait), 300);
  int first_pid = 0;
  std::ifstream(dir.file("first")) >> first_pid;
  EXPECT_EQ(pool.submit(my_pid).result(kWait), first_pid);  // the same worker
  EXPECT_FALSE(file_exists(dir.file("second")));            // never ran
  EXPECT_TRUE(second.cancelled());
}

// A task cancelled while it waits in the pipe of a worker that then dies is not sent again to
// the replacement (the skip it was given died with that worker): it never runs.
TEST_F(ProcessPoolTest, KillRunningNeverResendsATaskCancelledBehindAWorkerThatDied) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .kill_running = true});
  TempDir dir;
  auto dying = pool.submit(die_at_gate, dir.file("gate"));
  auto second = pool.submit(sleep_marked, dir.file("second"), 10);
  ASSERT_TRUE(eventually([&] { return second.running(); }));  // sent behind the first
  EXPECT_TRUE(second.cancel());
  testing::write_file(dir.file("gate"), "open");
  EXPECT_THROW((void)dying.result(kWait), BrokenProcessPool);
  // The replacement takes what was queued behind the dead worker's task first, then this.
  EXPECT_EQ(pool.submit(square, 3).result(kWait), 9);
  EXPECT_FALSE(file_exists(dir.file("second"))) << "a cancelled task ran on the replacement";
  EXPECT_TRUE(second.cancelled());
}

TEST_F(ProcessPoolTest, KillRunningInPythonsModeDoesNotBreakThePool) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .break_on_worker_death = true, .kill_running = true});
  TempDir dir;
  auto doomed = pool.submit(sleep_marked, dir.file("doomed"), 60'000);
  auto after = pool.submit(square, 4);
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("doomed")); }));
  EXPECT_TRUE(doomed.cancel());
  EXPECT_EQ(after.result(kWait), 16);
  EXPECT_EQ(pool.submit(square, 5).result(kWait), 25);
}

TEST_F(ProcessPoolTest, KillRunningCancelsARunningMapChunk) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .kill_running = true});
  TempDir dir;
  auto batch = pool.submit_batch(sleep_marked, std::vector<std::tuple<std::string, int>>{
                                                   {dir.file("a"), 10}, {dir.file("b"), 60'000}});
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("b")); }));
  EXPECT_TRUE(batch.cancel());
  EXPECT_THROW((void)batch.result(kWait), CancelledError);
  EXPECT_EQ(pool.submit(square, 6).result(kWait), 36);
}

TEST_F(ProcessPoolTest, KillRunningCancelRacingCompletionLeavesEveryFutureDone) {
  // Cancel each task at a random point of its life: whatever cancel() answers, the future ends
  // cancelled or with its value, and the pool keeps working.
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .kill_running = true});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 60; ++i) fs.push_back(pool.submit(sleep_then, i % 3));
  for (std::size_t i = 0; i < fs.size(); i += 2) {
    const bool cancelled = fs[i].cancel();
    EXPECT_EQ(cancelled, fs[i].cancelled()) << i;
  }
  for (std::size_t i = 0; i < fs.size(); ++i) {
    ASSERT_TRUE(fs[i].wait(kWait)) << i;
    if (!fs[i].cancelled()) {
      EXPECT_EQ(fs[i].result(), static_cast<int>(i % 3)) << i;
    }
  }
  EXPECT_EQ(pool.submit(square, 7).result(kWait), 49);
}

// ---- time_limit: a task that runs too long is stopped

TEST_F(ProcessPoolTest, TimeLimitStopsALongTaskAndItsWorkerOnly) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .time_limit = 300ms});
  TempDir dir;
  auto doomed = pool.submit(sleep_marked, dir.file("doomed"), 60'000);
  std::vector<Future<int>> quick;
  for (int i = 0; i < 20; ++i) quick.push_back(pool.submit(square, i));
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("doomed")); }));
  int doomed_pid = 0;
  std::ifstream(dir.file("doomed")) >> doomed_pid;
  ASSERT_GT(doomed_pid, 0);
  try {
    (void)doomed.result(kWait);
    ADD_FAILURE() << "a task past its time limit returned";
  } catch (const TimeLimitExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("TimeLimitExceeded: task 'sleep_marked' ran past its "
                                         "time limit of 300 ms"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)doomed.result(), TimeoutError);  // a TimeoutError, as Pebble's
  for (int i = 0; i < 20; ++i) EXPECT_EQ(quick[static_cast<std::size_t>(i)].result(kWait), i * i);
  EXPECT_TRUE(eventually([&] { return process_gone(doomed_pid); }));
  EXPECT_EQ(pool.submit(square, 9).result(kWait), 81);  // replaced, carries on
}

// The limit counts from the task's start in its worker: four 500 ms tasks on one worker under a
// 1.5 s limit all finish, though the last one ends 2 s after its submit.
TEST_F(ProcessPoolTest, TimeLimitCountsFromTheStartInTheWorkerNotFromSubmit) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .time_limit = 1500ms});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 4; ++i) fs.push_back(pool.submit(sleep_then, 500));
  for (auto& f : fs) EXPECT_EQ(f.result(kWait), 500);
}

TEST_F(ProcessPoolTest, TimeLimitBoundsAMapChunkAsAWhole) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .time_limit = 300ms});
  TempDir dir;
  auto batch = pool.submit_batch(sleep_marked, std::vector<std::tuple<std::string, int>>{
                                                   {dir.file("a"), 10}, {dir.file("b"), 60'000}});
  EXPECT_THROW((void)batch.result(kWait), TimeLimitExceeded);
  EXPECT_TRUE(file_exists(dir.file("b")));
  EXPECT_EQ(pool.submit(square, 6).result(kWait), 36);
}

// A worker stopped by its task's time limit did not crash: Python's break-on-death mode leaves
// the pool working.
TEST_F(ProcessPoolTest, TimeLimitInPythonsModeDoesNotBreakThePool) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .break_on_worker_death = true, .time_limit = 200ms});
  auto doomed = pool.submit(sleep_then, 60'000);
  auto after = pool.submit(square, 4);
  EXPECT_THROW((void)doomed.result(kWait), TimeLimitExceeded);
  EXPECT_EQ(after.result(kWait), 16);
  EXPECT_EQ(pool.submit(square, 5).result(kWait), 25);
}

// Tasks that end about when their limit does: each one either returns or fails with
// TimeLimitExceeded — never BrokenProcessPool, never the wrong task — and nothing hangs.
TEST_F(ProcessPoolTest, TimeLimitRacingTheTasksEndFailsOnlyThatTask) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .time_limit = 20ms});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 24; ++i) fs.push_back(pool.submit(sleep_then, 15 + i % 11));
  for (std::size_t i = 0; i < fs.size(); ++i) {
    try {
      EXPECT_EQ(fs[i].result(kWait), static_cast<int>(15 + i % 11)) << i;
    } catch (const TimeLimitExceeded&) {  // stopped: anything else fails the test
    }
  }
  EXPECT_EQ(pool.submit(square, 7).result(kWait), 49);
}

TEST_F(ProcessPoolTest, NegativeTimeLimitIsRefused) {
  EXPECT_THROW(ProcessPoolExecutor(ProcessPoolOptions{.time_limit = -1ms}), ValueError);
  EXPECT_THROW(ProcessPoolExecutor(ProcessPoolOptions{.soft_time_limit = -1ms}), ValueError);
}

// ---- soft_time_limit: the task is told, and stops itself

TEST_F(ProcessPoolTest, SoftTimeLimitTellsTheTaskWhichStopsItself) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .soft_time_limit = 200ms});
  const int pid = pool.submit(my_pid).result(kWait);
  try {
    (void)pool.submit(soft_loop).result(kWait);
    ADD_FAILURE() << "the task did not see its soft limit";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "SoftTimeLimitExceeded") << e.what();
    EXPECT_EQ(e.message(), "the task passed its soft time limit of 200 ms");
  }
  const long long left = pool.submit(soft_left).result(kWait);
  EXPECT_GT(left, 0);
  EXPECT_LE(left, 200);
  EXPECT_EQ(pool.submit(my_pid).result(kWait), pid) << "a soft limit stops no process";
}

// With both limits, the soft one comes first: the task stops itself cleanly and the hard one
// never has to kill it.
TEST_F(ProcessPoolTest, ASoftLimitBeforeTheHardOneLetsTheTaskStopCleanly) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .time_limit = 60s, .soft_time_limit = 100ms});
  try {
    (void)pool.submit(soft_loop).result(kWait);
    ADD_FAILURE() << "the task did not see its soft limit";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "SoftTimeLimitExceeded") << e.what();
  }
}

TEST_F(ProcessPoolTest, WithoutASoftLimitThereIsNone) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  EXPECT_EQ(pool.submit(soft_left).result(kWait), -1);
  // Nor on a thread that runs no task.
  EXPECT_FALSE(mp::soft_time_left().has_value());
  EXPECT_FALSE(mp::soft_time_limit_exceeded());
  EXPECT_NO_THROW(mp::check_soft_time_limit());
}

// SoftLimitScope (what the runners wrap a run in) counts from its start and restores the limit
// around it: a nested run without a limit has none, and the outer one's comes back.
TEST(SoftLimitScope, CountsFromItsStartAndRestoresTheOuterLimit) {
  {
    const mp::detail::SoftLimitScope outer(30ms);
    ASSERT_TRUE(mp::soft_time_left().has_value());
    EXPECT_LE(*mp::soft_time_left(), 30ms);
    {
      const mp::detail::SoftLimitScope inner(0ms);
      EXPECT_FALSE(mp::soft_time_left().has_value());
    }
    ASSERT_TRUE(mp::soft_time_left().has_value());
    std::this_thread::sleep_for(40ms);
    EXPECT_TRUE(mp::soft_time_limit_exceeded());
    EXPECT_EQ(*mp::soft_time_left(), 0ms);
    EXPECT_THROW(mp::check_soft_time_limit(), SoftTimeLimitExceeded);
    EXPECT_THROW(mp::check_soft_time_limit(), TimeoutError);
  }
  EXPECT_FALSE(mp::soft_time_left().has_value());
  EXPECT_FALSE(mp::soft_time_limit_exceeded());
}

// ---- shutdown with a deadline

TEST_F(ProcessPoolTest, ShutdownWithADeadlineThatIsMet) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(square, i));
  EXPECT_TRUE(pool.shutdown(kWait));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(), i * i);
  EXPECT_TRUE(pool.shutdown(0s));  // idempotent, nothing left
  EXPECT_THROW((void)pool.submit(square, 1), RuntimeError);
}

TEST_F(ProcessPoolTest, ShutdownDeadlineKillsWhatStillRuns) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  TempDir dir;
  auto a = pool.submit(sleep_marked, dir.file("a"), 60'000);
  auto b = pool.submit(sleep_marked, dir.file("b"), 60'000);
  std::vector<Future<int>> queued;
  for (int i = 0; i < 50; ++i) queued.push_back(pool.submit(square, i));
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("a")) && file_exists(dir.file("b")); }));
  const std::vector<pid_t> pids = pool.worker_pids();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(pool.shutdown_until(std::chrono::steady_clock::now() + 200ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  for (auto* f : {&a, &b}) {
    ASSERT_TRUE(f->done());
    try {
      (void)f->result();
      FAIL() << "no exception";
    } catch (const BrokenProcessPool& e) {
      EXPECT_NE(std::string(e.what()).find("deadline"), std::string::npos) << e.what();
    }
  }
  int cancelled = 0;
  for (auto& f : queued) {
    ASSERT_TRUE(f.done());
    if (f.cancelled()) {
      ++cancelled;
    } else {
      EXPECT_THROW((void)f.result(), BrokenProcessPool);  // it was in a killed worker's pipe
    }
  }
  // Those still in the pool were cancelled; those already in a worker's pipe (a few per worker,
  // see kMaxPerWorker) died with it.
  EXPECT_GT(cancelled, 0);
  for (pid_t pid : pids) EXPECT_TRUE(eventually([&] { return process_gone(pid); })) << pid;
}

// ---- errors that cannot travel, with 100 tasks queued

TEST_F(ProcessPoolTest, AResultOrExceptionThatCannotTravelFailsOnlyItsTask) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<Future<int>> fs;
  Future<Unsendable> unsendable;
  Future<Unloadable> unloadable;
  Future<int> odd;
  for (int i = 0; i < 100; ++i) {
    if (i == 30) unsendable = pool.submit(make_unsendable, i);
    if (i == 50) unloadable = pool.submit(make_unloadable, i);
    if (i == 70) odd = pool.submit(throw_odd, i);
    fs.push_back(pool.submit(square, i));
  }
  try {
    (void)unsendable.result(kWait);
    FAIL() << "no exception";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::length_error") << e.what();
    EXPECT_EQ(e.message(), "this result cannot be serialized");
  }
  EXPECT_THROW((void)unloadable.result(kWait), std::length_error);
  try {
    (void)odd.result(kWait);
    FAIL() << "no exception";
  } catch (const RemoteError& e) {
    EXPECT_NE(e.type_name().find("Odd"), std::string::npos) << e.type_name();
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(kWait), i * i);
}

// ---- Ctrl-C: the parent dies, its workers follow

class ParentDeathTest : public ::testing::TestWithParam<bool> {
 protected:
  void TearDown() override { EXPECT_TRUE(mp::active_children().empty()); }
};

TEST_P(ParentDeathTest, CtrlCStopsTheProgramAndItsWorkers) {
  const bool to_group = GetParam();
  TempDir dir;
  const std::string pid_file = dir.file("pids");
  mp::Process parent(orphan_pool, pid_file, to_group);
  parent.start();
  ASSERT_TRUE(eventually([&] { return file_exists(pid_file); }));
  std::vector<pid_t> workers;
  {
    std::ifstream in(pid_file);
    for (pid_t pid = 0; in >> pid;) workers.push_back(pid);
  }
  ASSERT_EQ(workers.size(), 2u);
  // A terminal's Ctrl-C signals the foreground process group; `kill -INT` the parent alone.
  ASSERT_EQ(::kill(to_group ? -parent.pid() : parent.pid(), SIGINT), 0);
  ASSERT_TRUE(parent.join(kWait));
  EXPECT_EQ(parent.exitcode(), -SIGINT);  // the first press ends the program
  for (pid_t pid : workers) EXPECT_TRUE(eventually([&] { return process_gone(pid); })) << pid;
}

INSTANTIATE_TEST_SUITE_P(Signals, ParentDeathTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& signal_info) {
                           return signal_info.param ? std::string("group") : std::string("parent");
                         });

}  // namespace
}  // namespace concur

namespace concur {
namespace {

// ---- map: lazy and bounded

TEST(ProcessPoolMapTest, MapIsLazyOverAnEndlessRange) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  int taken = 0;
  for (int r : pool.map(square, std::views::iota(0), MapOptions{.chunksize = 5})) {
    ASSERT_EQ(r, taken * taken);
    if (++taken == 100) break;  // leaving the loop cancels the chunks not yet sent
  }
  EXPECT_EQ(taken, 100);
}

TEST(ProcessPoolMapTest, MapPullsOnlyTheWindowOfChunks) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::size_t pulled = 0;
  auto counted = std::views::iota(0, 1000) | std::views::transform([&pulled](int i) {
                   ++pulled;
                   return i;
                 });
  auto results = pool.map(square, counted, MapOptions{.window = 3, .chunksize = 4});
  EXPECT_EQ(pulled, 12u);  // 3 chunks of 4
  auto it = results.begin();
  EXPECT_EQ(*it, 0);
  EXPECT_EQ(pulled, 16u);  // the first chunk was taken: one more submitted
  int expected = 0;
  for (; it != results.end(); ++it, ++expected) ASSERT_EQ(*it, expected * expected);
  EXPECT_EQ(expected, 1000);
  EXPECT_EQ(pulled, 1000u);
}

TEST(ProcessPoolMapTest, MapOwnsAnRvalueContainerAndEagerNeedsSizedRanges) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<int> out;
  for (int r : pool.map(square, std::vector<int>{1, 2, 3}, MapOptions{.chunksize = 2}))
    out.push_back(r);
  EXPECT_EQ(out, (std::vector<int>{1, 4, 9}));
  out.clear();
  for (int r : pool.map(square, std::vector<int>{4, 5}, MapOptions{.eager = true}))
    out.push_back(r);
  EXPECT_EQ(out, (std::vector<int>{16, 25}));
  EXPECT_THROW((void)pool.map(square, std::views::iota(0), MapOptions{.eager = true}), ValueError);
  int n = 0;
  for (int r : pool.map(square, std::vector<int>{})) n += r + 1;
  EXPECT_EQ(n, 0);
}

TEST(ProcessPoolMapTest, ShutdownDuringALazyMapYieldsWhatWasInFlightThenRaises) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto results =
      pool.map(square, std::views::iota(0, 100), MapOptions{.window = 2, .chunksize = 3});
  pool.shutdown(false);
  int taken = 0;
  try {
    for (int r : results) {
      ASSERT_EQ(r, taken * taken);
      ++taken;
    }
    FAIL() << "no exception";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("after shutdown"), std::string::npos) << e.what();
  }
  EXPECT_EQ(taken, 6);  // the two chunks in flight
}

}  // namespace
}  // namespace concur

namespace concur {
namespace {

// ---- a thread blocked on a running task's future reads its worker's reply itself
// (assist_wait); it must still wake when the future is settled another way

TEST_F(ProcessPoolTest, AWaiterOnARunningTaskWakesWhenItIsCancelled) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .kill_running = true});
  TempDir dir;
  auto running = pool.submit(sleep_marked, dir.file("running"), 60'000);
  auto next = pool.submit(square, 3);  // waits in the worker's pipe
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("running")); }));
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    EXPECT_THROW((void)running.result(kWait), CancelledError);  // reading the worker's replies
    woke = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(running.cancel());
  ASSERT_TRUE(eventually([&] { return woke.load(); }));
  waiter.join();
  EXPECT_EQ(next.result(kWait), 9);  // went back to the pool with the replaced worker
}

TEST_F(ProcessPoolTest, AWaiterWakesWhenAnotherWorkersDeathBreaksThePool) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .break_on_worker_death = true});
  TempDir dir;
  auto slow = pool.submit(sleep_marked, dir.file("slow"), 60'000);
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("slow")); }));
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    EXPECT_THROW((void)slow.result(kWait), BrokenProcessPool);
    woke = true;
  });
  std::this_thread::sleep_for(50ms);
  auto dead = pool.submit(die, 0);  // the other worker
  EXPECT_THROW((void)dead.result(kWait), BrokenProcessPool);
  const auto start = std::chrono::steady_clock::now();
  waiter.join();
  EXPECT_TRUE(woke.load());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST_F(ProcessPoolTest, ATimedOutWaiterGivesTheWorkerBack) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  TempDir dir;
  auto f = pool.submit(sleep_marked, dir.file("run"), 300);
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("run")); }));
  EXPECT_THROW((void)f.result(50ms), TimeoutError);  // read the worker's connection until then
  std::atomic<bool> called{false};
  f.add_done_callback([&called](const Future<int>&) { called = true; });
  // Nobody waits now: the dispatcher must read the reply, so it must have the connection back.
  EXPECT_TRUE(eventually([&] { return called.load(); }));
  EXPECT_EQ(f.result(), 300);
  EXPECT_EQ(pool.submit(square, 2).result(kWait), 4);
}

TEST_F(ProcessPoolTest, ManyWaitersAndCallbacksTogether) {
  // Waiting threads read replies, the dispatcher reads the others, callbacks run in either.
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::atomic<long> callbacks{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto f = pool.submit(square, t * 1000 + i);
        if (i % 3 == 0) {
          f.add_done_callback([&callbacks](const Future<int>&) { ++callbacks; });
        } else {
          ASSERT_EQ(f.result(kWait), (t * 1000 + i) * (t * 1000 + i));
        }
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_TRUE(eventually([&] { return callbacks.load() == 4 * 67; }));
}

}  // namespace
}  // namespace concur

namespace concur {
namespace {

// ---- a done-callback runs in the dispatcher thread; waiting there must never hang

TEST_F(ProcessPoolTest, ACallbackInTheDispatcherThreadMayWaitForASentTask) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto first = pool.submit(sleep_then, 100);
  auto second = pool.submit(square, 6);  // sent behind `first`, in the same worker's pipe
  ASSERT_TRUE(eventually([&] { return second.running(); }));
  std::atomic<int> seen{0};
  first.add_done_callback([&](const Future<int>&) { seen = second.result(kWait); });
  EXPECT_TRUE(eventually([&] { return seen.load() == 36; }));
}

TEST_F(ProcessPoolTest, ACallbackInTheDispatcherThreadWaitingForTheBacklogIsADeadlockError) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto first = pool.submit(sleep_then, 100);
  auto second = pool.submit(sleep_then, 100);
  auto third = pool.submit(square, 3);
  auto fourth = pool.submit(square, 4);  // in the backlog while the callback runs
  std::atomic<bool> raised{false};
  first.add_done_callback([&](const Future<int>&) {
    try {
      (void)fourth.result(kWait);
    } catch (const DeadlockError&) {
      raised = true;
    }
  });
  // Nobody waits for `first`, so the dispatcher reads its reply and runs the callback, before it
  // sends more work: `fourth` is still in the backlog (one worker holds two requests at most while
  // the backlog is this short), which only that thread could send — Python's pool hangs here.
  EXPECT_TRUE(eventually([&] { return raised.load(); }));
  EXPECT_EQ(second.result(kWait), 100);
  EXPECT_EQ(third.result(kWait), 9);
  EXPECT_EQ(fourth.result(kWait), 16);
}

// The dispatcher thread watches the workers' pidfds; a callback blocking it must not keep it from
// seeing the death of the worker it waits on. kCallbackWait bounds that wait: past it the test
// fails (TimeoutError) instead of hanging the suite.
constexpr auto kCallbackWait = 20s;

// wait_in_callback(first, other, gate, open_gate_now): first's done-callback (run by the
// dispatcher: nobody waits for `first`) waits for `other`; returns what it saw: "value N",
// "broken", "timeout" or "other: ...". The file `gate`, if any, is made by the callback before it
// waits, or right after the callback is added (open_gate_now).
std::string wait_in_callback(Future<int>& first, Future<int>& other, const std::string& gate = {},
                             bool open_gate_now = false) {
  std::mutex mu;
  std::string seen;
  std::atomic<bool> done{false};
  first.add_done_callback([&](const Future<int>&) {
    if (!gate.empty() && !open_gate_now) std::ofstream(gate).put('x');
    std::string out;
    try {
      out = "value " + std::to_string(other.result(kCallbackWait));
    } catch (const BrokenProcessPool&) {
      out = "broken";
    } catch (const TimeoutError&) {
      out = "timeout";
    } catch (const std::exception& e) {
      out = std::string("other: ") + e.what();
    }
    std::scoped_lock lock(mu);
    seen = out;
    done = true;
  });
  if (open_gate_now) std::ofstream(gate).put('x');
  EXPECT_TRUE(eventually([&] { return done.load(); }));
  std::scoped_lock lock(mu);
  return seen;
}

TEST_F(ProcessPoolTest, ACallbackInTheDispatcherThreadWaitingForAnotherWorkerGetsItsResult) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto first = pool.submit(sleep_then, 100);
  auto other = pool.submit(sleep_then, 400);  // the other worker: both went out at once
  ASSERT_TRUE(eventually([&] { return other.running(); }));
  EXPECT_EQ(wait_in_callback(first, other), "value 400");
}

TEST_F(ProcessPoolTest, ACallbackInTheDispatcherThreadWaitingForABorrowedWorkerGetsItsResult) {
  // A thread blocked on `other` borrows its worker (it reads that worker's replies itself): the
  // callback waiting for `other` waits for that thread to settle it or to give the worker back.
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto first = pool.submit(sleep_then, 100);
  auto other = pool.submit(sleep_then, 400);
  ASSERT_TRUE(eventually([&] { return other.running(); }));
  int seen_by_thread = 0;
  std::thread reader([&] { seen_by_thread = other.result(kWait); });
  EXPECT_EQ(wait_in_callback(first, other), "value 400");
  reader.join();
  EXPECT_EQ(seen_by_thread, 400);
}

TEST_F(ProcessPoolTest, ACallbackInTheDispatcherThreadWaitingForADyingWorkerSeesItBroken) {
  for (const bool same_worker : {false, true}) {
    SCOPED_TRACE(same_worker ? "behind it, in the same worker" : "in another worker");
    TempDir dir;
    const std::string gate = dir.file("gate");
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = same_worker ? 1u : 2u});
    auto first = pool.submit(sleep_then, 100);
    auto dying = pool.submit(die_at_gate, gate);  // dies once the callback opened the gate
    ASSERT_TRUE(eventually([&] { return dying.running(); }));
    EXPECT_EQ(wait_in_callback(first, dying, gate), "broken");
    EXPECT_THROW((void)dying.result(kWait), BrokenProcessPool);
    EXPECT_EQ(pool.submit(square, 7).result(kWait), 49);  // replaced, carries on
  }
}

TEST_F(ProcessPoolTest, ACallbackInTheDispatcherThreadWaitingBehindADyingTaskGetsItsResult) {
  // `queued` waits in the dying worker's ring behind `dying`: a death sends it to a new worker,
  // and the waiting callback (in the only thread that could send it) must see it through.
  TempDir dir;
  const std::string gate = dir.file("gate");
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto dying = pool.submit(die_at_gate, gate);  // the first worker
  auto first = pool.submit(sleep_then, 100);    // the second
  auto queued = pool.submit(square, 9);         // depth 2: behind `dying`, in the first
  ASSERT_TRUE(eventually([&] { return queued.running(); }));
  EXPECT_EQ(wait_in_callback(first, queued, gate), "value 81");
  EXPECT_THROW((void)dying.result(kWait), BrokenProcessPool);
}

TEST_F(ProcessPoolTest, ACallbackInTheDispatcherThreadWaitingForALaterJobOfABreakSeesItBroken) {
  // The death breaks the pool: the dispatcher fails every job in turn, running `dying`'s callback
  // before it reaches `last` — which that callback waits for.
  TempDir dir;
  const std::string gate = dir.file("gate");
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .break_on_worker_death = true});
  auto dying = pool.submit(die_at_gate, gate);
  auto next = pool.submit(square, 2);
  auto last = pool.submit(square, 3);
  ASSERT_TRUE(eventually([&] { return dying.running(); }));
  EXPECT_EQ(wait_in_callback(dying, last, gate, /*open_gate_now=*/true), "broken");
  EXPECT_THROW((void)next.result(kWait), BrokenProcessPool);
}

}  // namespace
}  // namespace concur

// ---- Big arguments and results: a memfd each, never a copy in the parent

namespace concur {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// pattern(n, seed): n bytes that do not repeat (xorshift64, 8 bytes at a time) and differ from
// seed to seed.
std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ULL;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(s.data() + i, &x, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(seed + i);
  return s;
}

// open_fds(): this process's open descriptors; pool_files(): those that are the pool's memfds
// (arguments and results: "/memfd:concur-pool-args (deleted)").
std::size_t open_fds() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}
std::size_t pool_files(const char* kind = "concur-pool", const std::string& pid = "self") {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + pid + "/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.find(std::string("memfd:") + kind) != std::string::npos) ++n;
  }
  return n;
}

// 64 MiB (16 MiB under sanitizers, which slow every byte copied).
TEST_F(ProcessPoolTest, A64MiBArgumentAndResultRoundTripIsByteExact) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  const std::string arg = pattern((testing::kSanitized ? 16 : 64) * kMiB, 1);
  const std::string expected = rotated(arg);
  Future<std::string> f = pool.submit(rotated, arg);
  Future<std::uint64_t> sum = pool.submit(byte_sum, arg);
  EXPECT_TRUE(f.result(kWait) == expected);  // (not EXPECT_EQ: a mismatch would print 64 MiB)
  EXPECT_EQ(sum.result(kWait), byte_sum(arg));
  // A batch whose arguments together pass the threshold travels in one file too.
  std::vector<std::tuple<std::string>> calls;
  for (unsigned i = 0; i < 3; ++i) calls.emplace_back(pattern(kMiB / 2 + i, i));
  const std::vector<std::string> results = pool.submit_batch(rotated, calls).result(kWait);
  ASSERT_EQ(results.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const std::string& a = std::get<0>(calls[i]);
    EXPECT_TRUE(results[i] == rotated(a)) << i;
  }
  // Every file is closed once its task is done (the job goes right after its future is set).
  EXPECT_TRUE(eventually([] { return pool_files() == 0; })) << pool_files();
}

TEST_F(ProcessPoolTest, BigArgumentsAndResultsWithTheSpawnStartMethod) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .start_method = mp::StartMethod::spawn});
  const std::string arg = pattern(8 * kMiB, 5);
  EXPECT_TRUE(pool.submit(rotated, arg).result(kWait) == rotated(arg));
  EXPECT_TRUE(eventually([] { return pool_files() == 0; })) << pool_files();
}

TEST_F(ProcessPoolTest, ArgumentsBelowTheThresholdStayInMemoryAndAboveItGoToAFile) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  TempDir dir;
  auto busy = pool.submit(sleep_marked, dir.file("run"), 300);  // the jobs below stay ours
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("run")); }));
  // A std::string argument is an 8-byte length, then the bytes.
  const std::string below = pattern(ProcessPoolExecutor::kFileThreshold - 8, 2);
  const std::string above = pattern(ProcessPoolExecutor::kFileThreshold - 7, 3);
  auto small = pool.submit(byte_sum, below);
  EXPECT_EQ(pool_files("concur-pool-args"), 0u);
  auto large = pool.submit(byte_sum, above);
  EXPECT_EQ(pool_files("concur-pool-args"), 1u);
  EXPECT_EQ(small.result(kWait), byte_sum(below));
  EXPECT_EQ(large.result(kWait), byte_sum(above));
  EXPECT_EQ(busy.result(kWait), 300);
  EXPECT_TRUE(eventually([] { return pool_files() == 0; })) << pool_files();
}

TEST_F(ProcessPoolTest, ABigArgumentTaskIsSentAgainWhenItsWorkerIsKilled) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  TempDir dir;
  auto doomed = pool.submit(sleep_marked, dir.file("run"), 60'000);
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("run")); }));
  const std::string arg = pattern((testing::kSanitized ? 4 : 16) * kMiB, 4);
  Future<std::string> big = pool.submit(rotated, arg);
  // running(): the request is in the worker's pipe (a request sent counts as running), its
  // file's descriptor with it.
  ASSERT_TRUE(eventually([&] { return big.running(); }));
  const pid_t first = static_cast<pid_t>(std::stoi(testing::read_file(dir.file("run"))));
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  EXPECT_THROW((void)doomed.result(kWait), BrokenProcessPool);
  // The pool kept the file and sends it to the replacement worker.
  EXPECT_TRUE(big.result(kWait) == rotated(arg));
  const std::vector<pid_t> now = pool.worker_pids();
  EXPECT_TRUE(now.empty() || now.front() != first);
  EXPECT_TRUE(eventually([] { return pool_files() == 0; })) << pool_files();
}

TEST_F(ProcessPoolTest, ARunningTasksArgumentFileIsLetGoOnBothSides) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  TempDir dir;
  const std::string arg = pattern(16 * kMiB, 6);
  auto f = pool.submit(sized_sleep, arg, dir.file("run"), 300);
  ASSERT_TRUE(eventually([&] { return file_exists(dir.file("run")); }));
  // It runs: a worker's death would fail it, not send it again — the pool closed its descriptor;
  // the worker closed its own once the arguments were loaded. The kernel has freed the file.
  EXPECT_EQ(pool_files("concur-pool-args"), 0u);
  EXPECT_EQ(pool_files("concur-pool-args", testing::read_file(dir.file("run"))), 0u);
  EXPECT_EQ(f.result(kWait), arg.size());
}

// A worker that dies before it reads its next request never ran that task: the task goes to the
// replacement worker instead of failing. (A worker killed while idle, before the pool saw it go,
// is sent a task so; here the worker is stopped — /proc says so — then sent the task, then killed.)
TEST_F(ProcessPoolTest, ATaskSentToAWorkerThatDiedBeforeReadingItRunsOnTheReplacement) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  EXPECT_EQ(pool.submit(square, 3).result(kWait), 9);  // the worker exists and waits for work
  const std::vector<pid_t> pids = pool.worker_pids();
  ASSERT_EQ(pids.size(), 1u);
  ASSERT_EQ(::kill(pids[0], SIGSTOP), 0);
  ASSERT_TRUE(eventually([&] { return testing::process_state(pids[0]) == 'T'; }))
      << testing::process_state(pids[0]);
  Future<int> f = pool.submit(square, 7);
  ASSERT_TRUE(eventually([&] { return f.running(); }));  // sent: in the stopped worker's mailbox
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  EXPECT_EQ(f.result(kWait), 49);
  const std::vector<pid_t> now = pool.worker_pids();
  EXPECT_TRUE(now.empty() || now.front() != pids[0]);
}

TEST_F(ProcessPoolTest, WorkersKilledDuringBigTransfersLoseNothingAndLeakNothing) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::mt19937 rng(20261205);
  int broken = 0;
  int exact = 0;
  pid_t killed = 0;
  for (unsigned round = 0; round < 6; ++round) {
    std::vector<std::string> args;
    std::vector<Future<std::string>> fs;
    for (unsigned i = 0; i < 4; ++i) {
      args.push_back(pattern(2 * kMiB + i, round * 4 + i));
      fs.push_back(pool.submit(rotated, args.back()));
    }
    // kill -9 at a random moment: reading an argument file, reversing, writing the result...
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 25));
    const std::vector<pid_t> pids = pool.worker_pids();
    if (!pids.empty()) (void)::kill(killed = pids[rng() % pids.size()], SIGKILL);
    for (std::size_t i = 0; i < fs.size(); ++i) {
      try {
        const std::string r = fs[i].result(kWait);
        EXPECT_TRUE(r == rotated(args[i])) << round << "/" << i;
        ++exact;
      } catch (const BrokenProcessPool&) {
        ++broken;  // it ran in the killed worker
      }
    }
  }
  EXPECT_LE(broken, 6);  // one running task per kill at most
  EXPECT_GE(exact, 18);
  // The pool carries on — once it has seen the last kill: a task whose argument goes by file and
  // is sent to a worker already dead (killed idle) fails, as a running one does (its file was let
  // go when it was sent).
  ASSERT_TRUE(eventually([&] {
    const std::vector<pid_t> now = pool.worker_pids();
    return std::find(now.begin(), now.end(), killed) == now.end();
  }));
  EXPECT_EQ(pool.submit(byte_sum, pattern(2 * kMiB, 9)).result(kWait),
            byte_sum(pattern(2 * kMiB, 9)));
  EXPECT_TRUE(eventually([] { return pool_files() == 0; })) << pool_files();
}

TEST_F(ProcessPoolTest, AResultCarryingAHandleFailsItsTaskWithPicklingError) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  try {
    (void)pool.submit(pipe_end, 1).result(kWait);
    FAIL() << "no exception";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "PicklingError") << e.what();
  }
  EXPECT_EQ(pool.submit(square, 5).result(kWait), 25);
}

// The notes' Pipe between two pool tasks (`pool.apply_async(producer, args=(send_pipe,))`).
TEST_F(ProcessPoolTest, APipesEndsReachTwoTasksThatTalkThroughIt) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto [receive_pipe, send_pipe] = mp::Pipe();
  Future<std::string> got = pool.submit(recv_on, receive_pipe);
  Future<std::string> sent = pool.submit(send_on, send_pipe, "bobby");
  EXPECT_EQ(sent.result(kWait), "bobby");
  EXPECT_EQ(got.result(kWait), "bobby");
}

TEST_F(ProcessPoolTest, AProcessQueueCarriesItemsBetweenTwoTasks) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  mp::Queue<int> q(10);  // smaller than what goes through: the producer waits for the consumer
  Future<long> sum = pool.submit(consume_from, q, 100);
  Future<int> made = pool.submit(produce_into, q, 100);
  EXPECT_EQ(made.result(kWait), 100);
  EXPECT_EQ(sum.result(kWait), 5050);
  EXPECT_TRUE(q.empty());
}

// Once its task runs, a handle is the task's alone: the pool's duplicate is closed, so the reader
// of a Pipe whose writing end went to a task sees end of file when the task closes it.
TEST_F(ProcessPoolTest, APipeEndGivenToARunningTaskIsHeldByTheTaskAlone) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto [reader, writer] = mp::Pipe(false);
  mp::Event seen;
  Future<int> f = pool.submit(send_then_wait, writer, seen);
  writer.close();
  ASSERT_TRUE(reader.poll(kWait));
  EXPECT_EQ(reader.recv<std::string>(), "x");
  ASSERT_TRUE(reader.poll(kWait));  // end of file, while the task still runs
  EXPECT_THROW((void)reader.recv<std::string>(), mp::EOFError);
  EXPECT_FALSE(f.done());
  seen.set();
  EXPECT_EQ(f.result(kWait), 1);
}

// A batch numbers its handles across its calls: each call gets its own.
TEST_F(ProcessPoolTest, EachCallOfABatchGetsItsOwnHandles) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  std::vector<mp::Connection> readers;
  std::vector<std::tuple<mp::Connection, int>> calls;
  for (int i = 0; i < 5; ++i) {
    auto [r, w] = mp::Pipe(false);
    readers.push_back(std::move(r));
    calls.emplace_back(std::move(w), i);
  }
  EXPECT_EQ(pool.submit_batch(send_index, calls).result(kWait), (std::vector<int>{0, 1, 2, 3, 4}));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(readers[static_cast<std::size_t>(i)].poll(kWait));
    EXPECT_EQ(readers[static_cast<std::size_t>(i)].recv<int>(), i);
  }
}

// Tasks with 70 Pipe ends each (140 descriptors: two do not fit one message), queued to one
// worker. Past Initializer::kMaxTaskHandles descriptors, submit() refuses the task. (At most ~600
// descriptors at once: within a 1024 RLIMIT_NOFILE.)
TEST_F(ProcessPoolTest, ManyHandlesGoInSeveralMessagesAndTooManyAreRefused) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  std::vector<mp::Connection> ends;
  for (int i = 0; i < 70; ++i) ends.push_back(mp::Pipe(false).second);
  std::vector<Future<int>> counted;
  for (int k = 0; k < 3; ++k) counted.push_back(pool.submit(count_ends, ends));
  for (auto& f : counted) EXPECT_EQ(f.result(kWait), 70);
  for (int i = 0; i < 60; ++i) ends.push_back(mp::Pipe(false).second);
  EXPECT_THROW((void)pool.submit(count_ends, ends), mp::PicklingError);
  EXPECT_EQ(pool.submit(square, 6).result(kWait), 36);
}

// A task with handles is never queued behind another in one worker, nor is anything queued behind
// it: the consumer waits in worker 1, the second worker is busy, and the producer submitted last
// waits for a free worker instead of going behind the consumer, where neither would ever finish.
TEST_F(ProcessPoolTest, ATaskWithHandlesWaitsForAFreeWorkerNotBehindAnother) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  mp::Queue<int> q(10);
  mp::Event go;
  Future<long> sum = pool.submit(consume_from, q, 3);
  Future<int> busy = pool.submit(wait_for_event, go);
  Future<int> made = pool.submit(produce_into, q, 3);
  go.set();
  EXPECT_EQ(busy.result(kWait), 1);
  EXPECT_EQ(made.result(kWait), 3);
  EXPECT_EQ(sum.result(kWait), 6);
}

// Tasks without handles still fill a worker's pipe (two each); the first task with handles then
// waits for a worker to empty it.
TEST_F(ProcessPoolTest, TasksWithAndWithoutHandlesAllFinish) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  mp::Event go;
  go.set();
  std::vector<Future<int>> plain;
  std::vector<Future<int>> handled;
  for (int i = 0; i < 20; ++i) {
    plain.push_back(pool.submit(square, i));
    handled.push_back(pool.submit(wait_for_event, go));
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(plain[static_cast<std::size_t>(i)].result(kWait), i * i);
    EXPECT_EQ(handled[static_cast<std::size_t>(i)].result(kWait), 1);
  }
}

// Python's `Pool(initializer=init, initargs=(q,))`: every worker, the first ones and a
// replacement, gets the handle.
TEST_F(ProcessPoolTest, AnInitializerGetsItsHandleInEveryWorker) {
  auto [reader, writer] = mp::Pipe(false);
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .initializer = {init_with_pipe, writer}});
  writer.close();
  const int first = pool.submit(report_pid).result(kWait);
  ASSERT_TRUE(reader.poll(kWait));
  EXPECT_EQ(reader.recv<int>(), first);
  EXPECT_THROW((void)pool.submit(die, 0).result(kWait), BrokenProcessPool);
  const int second = pool.submit(report_pid).result(kWait);
  EXPECT_NE(second, first);
  ASSERT_TRUE(reader.poll(kWait));
  EXPECT_EQ(reader.recv<int>(), second);
}

TEST_F(ProcessPoolTest, AnInitializerWithTooManyDescriptorsIsRefused) {
  std::vector<mp::Connection> ends;
  for (int i = 0; i < 120; ++i) ends.push_back(mp::Pipe(false).second);  // 240 descriptors
  EXPECT_THROW((void)Initializer(init_with_ends, ends), mp::PicklingError);
  ends.resize(100);  // 200: they fit beside the worker's own
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .initializer = {init_with_ends, ends}});
  EXPECT_EQ(pool.submit(read_initialized).result(kWait), 100);
}

// 100 tasks (25 under sanitizers), each with its arguments and result in files.
TEST_F(ProcessPoolTest, NoDescriptorLeaksAfter100BigTasks) {
  {
    // The first pool of the process starts the fork server (its descriptors stay): not a leak.
    ProcessPoolExecutor warm(ProcessPoolOptions{.max_workers = 2});
    EXPECT_EQ(warm.submit(square, 3).result(kWait), 9);
  }
  const std::size_t baseline = open_fds();
  {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
    std::vector<std::string> args;
    std::vector<Future<std::string>> fs;
    for (unsigned i = 0; i < (testing::kSanitized ? 25U : 100U); ++i) {
      args.push_back(pattern(ProcessPoolExecutor::kFileThreshold + 64 * i, i));
      fs.push_back(pool.submit(rotated, args.back()));
    }
    for (std::size_t i = 0; i < fs.size(); ++i)
      ASSERT_TRUE(fs[i].result(kWait) == rotated(args[i])) << i;
    EXPECT_TRUE(eventually([] { return pool_files() == 0; })) << pool_files();
  }
  EXPECT_EQ(open_fds(), baseline);
}

}  // namespace
}  // namespace concur

// ---- The mailbox transport (src/mp/mailbox.hpp): requests and replies through two shared rings
// per worker, futex wake-ups, the worker's pidfd for its death.

namespace concur {
namespace {

using namespace std::chrono_literals;
constexpr auto kMailWait = kWait;

using MailboxTest = ProcessPoolTest;  // the same check: no worker outlives its pool

// mail_pattern(n, seed): n bytes that differ by position and seed (a swapped or torn record shows).
std::string mail_pattern(std::size_t n, std::size_t seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xff);
  return s;
}

std::string rotated_copy(const std::string& s) {
  std::string out = s.substr(1);
  out.push_back(s.front());
  return out;
}

TEST_F(MailboxTest, ManyRoundTripsOneAtATime) {
  for (std::size_t workers : {1U, 2U, 3U}) {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = workers});
    for (int i = 0; i < 3000; ++i) ASSERT_EQ(pool.submit(square, i).result(kMailWait), i * i) << i;
  }
}

// Sizes chosen so that records wrap around the end of the 128 KiB rings at ever other offsets,
// and some messages go on the side: above the ring's 64 KiB message limit (through the pipe, or
// a memfd above 64 KiB) and above kFileThreshold (an argument file and a result file).
TEST_F(MailboxTest, MessagesOfEverySizeAcrossTheRingBoundary) {
  const std::size_t sizes[] = {
      1,     7,      9,      1000, 4093, 20000,  40000,   65528,           65536,
      70001, 131072, 140000, 1,    300,  500000, 1 << 20, (1 << 20) + 3000};
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  // One at a time (the waiter reads the replies), then all in flight (the dispatcher does).
  std::size_t seed = 0;
  for (int round = 0; round < 3; ++round)
    for (const std::size_t n : sizes) {
      const std::string s = mail_pattern(n, ++seed);
      ASSERT_EQ(pool.submit(rotated, s).result(kMailWait), rotated_copy(s)) << n;
    }
  std::vector<std::pair<std::string, Future<std::string>>> fs;
  for (int round = 0; round < 4; ++round)
    for (const std::size_t n : sizes) {
      std::string s = mail_pattern(n, ++seed);
      auto f = pool.submit(rotated, s);
      fs.emplace_back(std::move(s), std::move(f));
    }
  for (auto& [s, f] : fs) ASSERT_EQ(f.result(kMailWait), rotated_copy(s)) << s.size();
}

TEST_F(MailboxTest, AWorkerKilledWhileTheWaiterSleepsOnTheMailboxFailsOnlyItsTask) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  testing::TempDir dir;
  auto f = pool.submit(sleep_marked, dir.file("run"), 60'000);
  ASSERT_TRUE(
      testing::poll_until(kMailWait, [&] { return testing::file_exists(dir.file("run")); }));
  const pid_t pid = pool.worker_pids().at(0);
  std::thread killer([pid] {
    std::this_thread::sleep_for(200ms);  // the waiter is asleep on the reply futex by then
    ::kill(pid, SIGKILL);
  });
  EXPECT_THROW((void)f.result(kMailWait), BrokenProcessPool);  // borrowed the worker's mailbox
  killer.join();
  EXPECT_EQ(pool.submit(square, 6).result(kMailWait), 36);  // replaced
}

TEST_F(MailboxTest, AWorkerKilledWithRequestsQueuedInItsRingResendsThem) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  testing::TempDir dir;
  auto f = pool.submit(sleep_marked, dir.file("run"), 60'000);
  auto g = pool.submit(square, 4);  // waits in the request ring
  ASSERT_TRUE(
      testing::poll_until(kMailWait, [&] { return testing::file_exists(dir.file("run")); }));
  ::kill(pool.worker_pids().at(0), SIGKILL);
  EXPECT_THROW((void)f.result(kMailWait), BrokenProcessPool);
  EXPECT_EQ(g.result(kMailWait), 16);  // never started: sent again to the new worker
}

TEST_F(MailboxTest, AStoppedWorkerOnlyDelaysItsTask) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  ASSERT_EQ(pool.submit(square, 2).result(kMailWait), 4);
  const pid_t pid = pool.worker_pids().at(0);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  auto f = pool.submit(square, 9);
  EXPECT_THROW((void)f.result(100ms), TimeoutError);  // a stopped worker is not a dead one
  EXPECT_THROW((void)f.result(100ms), TimeoutError);
  EXPECT_FALSE(f.done());
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  EXPECT_EQ(f.result(kMailWait), 81);
  // (Stopped, then killed before it read its task: ProcessPoolTest.ATaskSentToAWorkerThatDied…)
}

TEST_F(MailboxTest, ManyConcurrentSubmittersEachWaitingForItsOwnResult) {
  for (std::size_t workers : {1U, 2U, 8U}) {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = workers});
    constexpr int kThreads = 8;
    constexpr int kRounds = 300;
    std::atomic<int> wrong{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t)
      ts.emplace_back([&, t] {
        for (int i = 0; i < kRounds; ++i) {
          const int x = t * kRounds + i;
          if (i % 50 == 7) {
            const std::string s = mail_pattern(30000 + static_cast<std::size_t>(x), 3);
            if (pool.submit(rotated, s).result(kMailWait) != rotated_copy(s)) ++wrong;
          } else if (pool.submit(square, x).result(kMailWait) != x * x) {
            ++wrong;
          }
        }
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(wrong.load(), 0) << workers;
  }
}

TEST_F(MailboxTest, MaxTasksPerChildAndShutdownStillEndEveryWorker) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .max_tasks_per_child = 3});
  std::set<int> pids;
  for (int i = 0; i < 30; ++i) pids.insert(pool.submit(my_pid).result(kMailWait));
  EXPECT_GE(pids.size(), 10U);
  pool.shutdown(true);
}

}  // namespace
}  // namespace concur
