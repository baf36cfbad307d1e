// tests/mp/process_test.cpp — mp::Process, start methods and the module functions
// (concur/mp/process.hpp). References: CPython's Lib/test/_test_multiprocessing.py (_TestProcess).
//
// Every test runs under each start method (fork, spawn, forkserver) where it applies. Children
// report through files in a per-test temporary directory (the IPC tests live with Connection and
// Queue). Every wait is bounded: join(timeout) then kill; TearDown checks that no child of this
// process (nor of the fork server) is left.
#include "concur/mp/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "concur/mp/shared_memory.hpp"  // mp::OSError
#include "support/process_support.hpp"
#include "support/test_support.hpp"

namespace concur::mp {

// ---- Tasks (registered at namespace scope, as users do)

int g_counter = 0;  // the notes' global variable: a child's change never reaches the parent

void noop() {}
CONCUR_TASK(noop);

void exit_with(int code) { throw SystemExit(code); }
CONCUR_TASK(exit_with);

void throw_value_error(std::string message) { throw ValueError(message); }
CONCUR_TASK(throw_value_error);

void throw_int() { throw 42; }
CONCUR_TASK(throw_int);

void raise_signal(int sig) { ::raise(sig); }
CONCUR_TASK(raise_signal);

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
CONCUR_TASK(sleep_ms);

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// report_self(path) writes what the child knows about itself and its parent.
void report_self(std::string path) {
  const ProcessInfo me = current_process();
  const auto parent = parent_process();
  std::ostringstream out;
  out << me.name << '\n'
      << me.pid << '\n'
      << me.daemon << '\n'
      << (parent ? parent->name : std::string("none")) << '\n'
      << (parent ? parent->pid : 0) << '\n';
  write_file(path, out.str());
}
CONCUR_TASK(report_self);

struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y, label);
  }
};

// check_args exits 0 when every argument arrived intact, 2 otherwise.
void check_args(int i, const std::string& s, std::vector<double> v, Point p, std::int64_t big) {
  const bool ok = i == -7 && s == "hello" && v == std::vector<double>{1.5, -2.25} && p.x == 3 &&
                  p.y == 0.5 && p.label == "pt" && big == 112272535095293;
  if (!ok) throw SystemExit(2);
}
CONCUR_TASK(check_args);

void bump_global(std::string path) {
  g_counter += 100;
  write_file(path, std::to_string(g_counter));
}
CONCUR_TASK(bump_global);

// start_grandchild(path, daemonic, ms): starts a grandchild sleeping `ms` then writing "done" to
// path + ".grandchild"; writes the grandchild's pid to `path`; returns without joining it.
void grandchild_work(std::string path, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  write_file(path + ".grandchild", "done");
}
CONCUR_TASK(grandchild_work);

void start_grandchild(std::string path, bool daemonic, int ms) {
  Process p(ProcessOptions{.daemon = daemonic}, grandchild_work, path, ms);
  p.start();
  write_file(path, std::to_string(p.pid()));
}
CONCUR_TASK(start_grandchild);

// try_start_child: a daemonic process may not have children (exit 1 with InvalidStateError).
void try_start_child() {
  Process p(noop);
  p.start();
  p.join();
}
CONCUR_TASK(try_start_child);

// A run() subclass, registered so that spawn and forkserver children can rebuild it.
class Writer : public Process {
 public:
  Writer() = default;
  Writer(ProcessOptions options, std::string path, std::string text)
      : Process(std::move(options)), path_(std::move(path)), text_(std::move(text)) {}
  template <class Archive>
  void serialize(Archive& ar) {
    ar(path_, text_);
  }

 protected:
  void run() override { write_file(path_, text_ + " from " + current_process().name); }

 private:
  std::string path_;
  std::string text_;
};
CONCUR_PROCESS(Writer);

class Unregistered : public Process {
 public:
  explicit Unregistered(ProcessOptions options) : Process(std::move(options)) {}

 protected:
  void run() override {}
};

void not_registered() {}

struct Unserializable {
  int x = 0;
  template <class Archive>
  void save(Archive& /*ar*/) const {
    throw cereal::Exception("this value refuses to be saved");
  }
  template <class Archive>
  void load(Archive& /*ar*/) {}
};
void takes_unserializable(Unserializable) {}
CONCUR_TASK(takes_unserializable);

namespace {

using concur::testing::kill_forkserver;

using namespace std::chrono_literals;
constexpr auto kJoin = 60s;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// children_of(pid) lists the processes whose parent is `pid`.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

class ProcessTest : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/concur_process_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }

  void TearDown() override {
    // No child outlives its test: neither ours nor the fork server's.
    EXPECT_TRUE(active_children().empty());
    const pid_t server = detail::forkserver_pid();
    for (const pid_t pid : children_of(::getpid()))
      EXPECT_EQ(pid, server) << "child " << pid << " outlived the test";
    if (server != 0) {
      // The server reaps its children as they exit; give it a moment to do so.
      for (int i = 0; i < 200 && !children_of(server).empty(); ++i)
        std::this_thread::sleep_for(5ms);
      EXPECT_TRUE(children_of(server).empty());
    }
    (void)std::system(("rm -rf " + dir_).c_str());
  }

  [[nodiscard]] ProcessOptions opts() const { return ProcessOptions{.start_method = GetParam()}; }
  [[nodiscard]] std::string path(const std::string& leaf) const { return dir_ + "/" + leaf; }

  // finish(p) joins p (bounded) and returns its exit code; a child still running is killed.
  static int finish(Process& p) {
    if (!p.join(kJoin)) {
      ADD_FAILURE() << p.name() << " did not exit within the bound; killing it";
      p.kill();
      p.join();
    }
    return p.exitcode().value_or(-1000);
  }

  std::string dir_;
};

TEST_P(ProcessTest, NormalExitGivesZero) {
  Process p(opts(), noop);
  EXPECT_FALSE(p.exitcode().has_value());
  EXPECT_EQ(p.pid(), 0);
  p.start();
  EXPECT_GT(p.pid(), 0);
  EXPECT_EQ(finish(p), 0);
  EXPECT_FALSE(p.is_alive());
}

TEST_P(ProcessTest, SystemExitGivesItsCode) {
  Process p(opts(), exit_with, 3);
  p.start();
  EXPECT_EQ(finish(p), 3);
}

TEST_P(ProcessTest, ExceptionGivesOneAndIsPrinted) {
  // stderr is captured for fork and spawn children (they inherit our descriptor 2 at start); a
  // forkserver child writes to the server's stderr, so only the code is checked there.
  const std::string err_path = path("stderr");
  const int saved = ::dup(2);
  const int file = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  ::dup2(file, 2);
  Process p(opts(), throw_value_error, std::string("bad value"));
  p.start();
  const int code = finish(p);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(file);
  EXPECT_EQ(code, 1);
  if (GetParam() != StartMethod::forkserver) {
    EXPECT_EQ(read_file(err_path), "Process " + p.name() + ":\nValueError: bad value\n");
  }
}

TEST_P(ProcessTest, NonStandardExceptionGivesOne) {
  Process p(opts(), throw_int);
  p.start();
  EXPECT_EQ(finish(p), 1);
}

TEST_P(ProcessTest, SignalGivesMinusSignum) {
  Process p(opts(), raise_signal, static_cast<int>(SIGKILL));
  p.start();
  EXPECT_EQ(finish(p), -SIGKILL);
  Process q(opts(), raise_signal, static_cast<int>(SIGABRT));
  q.start();
  EXPECT_EQ(finish(q), -SIGABRT);
}

TEST_P(ProcessTest, JoinTimeoutThenTerminate) {
  Process p(opts(), sleep_ms, 60'000);
  p.start();
  EXPECT_TRUE(p.is_alive());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.join(100ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_FALSE(p.exitcode().has_value());
  EXPECT_TRUE(p.is_alive());
  p.terminate();
  EXPECT_EQ(finish(p), -SIGTERM);
  EXPECT_FALSE(p.is_alive());
  p.terminate();  // no-op once it exited
  p.kill();
}

TEST_P(ProcessTest, Kill) {
  Process p(opts(), sleep_ms, 60'000);
  p.start();
  p.kill();
  EXPECT_EQ(finish(p), -SIGKILL);
}

TEST_P(ProcessTest, JoinUntilTimePoint) {
  Process p(opts(), sleep_ms, 60'000);
  p.start();
  EXPECT_FALSE(p.join_until(std::chrono::steady_clock::now() + 50ms));
  EXPECT_FALSE(p.join(0s));
  p.kill();
  EXPECT_EQ(finish(p), -SIGKILL);
}

TEST_P(ProcessTest, ArgumentsArriveIntact) {
  Process p(opts(), check_args, -7, "hello", std::vector<double>{1.5, -2.25}, Point{3, 0.5, "pt"},
            112272535095293LL);
  p.start();
  EXPECT_EQ(finish(p), 0);
}

TEST_P(ProcessTest, ChildKnowsItsNameAndParent) {
  const std::string out = path("self");
  Process p(opts(), report_self, out);
  p.start();
  ASSERT_EQ(finish(p), 0);
  std::istringstream in(read_file(out));
  std::string name, pid, daemon, parent_name, parent_pid;
  std::getline(in, name);
  std::getline(in, pid);
  std::getline(in, daemon);
  std::getline(in, parent_name);
  std::getline(in, parent_pid);
  EXPECT_EQ(name, p.name());
  EXPECT_EQ(pid, std::to_string(p.pid()));
  EXPECT_EQ(daemon, "0");
  EXPECT_EQ(parent_name, "MainProcess");
  EXPECT_EQ(parent_pid, std::to_string(::getpid()));
}

TEST_P(ProcessTest, NamesAndDaemonOption) {
  Process a(opts(), noop);
  Process b(opts(), noop);
  EXPECT_EQ(a.name().rfind("Process-", 0), 0u);
  EXPECT_NE(a.name(), b.name());
  ProcessOptions o = opts();
  o.name = "worker";
  o.daemon = true;
  Process c(o, report_self, path("c"));
  EXPECT_EQ(c.name(), "worker");
  EXPECT_TRUE(c.daemon());
  c.start();
  ASSERT_EQ(finish(c), 0);
  std::istringstream in(read_file(path("c")));
  std::string name, pid, daemon;
  std::getline(in, name);
  std::getline(in, pid);
  std::getline(in, daemon);
  EXPECT_EQ(name, "worker");
  EXPECT_EQ(daemon, "1");
  EXPECT_THROW(c.set_daemon(false), InvalidStateError);
}

TEST_P(ProcessTest, GlobalChangedByChildIsNotSeen) {
  g_counter = 1;
  Process p(opts(), bump_global, path("g"));
  p.start();
  ASSERT_EQ(finish(p), 0);
  EXPECT_EQ(g_counter, 1);  // the parent's copy
  // fork copies the parent's 1; spawn and forkserver start from the binary's initial 0.
  EXPECT_EQ(read_file(path("g")), GetParam() == StartMethod::fork ? "101" : "100");
}

TEST_P(ProcessTest, DaemonicProcessMayNotHaveChildren) {
  ProcessOptions o = opts();
  o.daemon = true;
  Process p(o, try_start_child);
  p.start();
  EXPECT_EQ(finish(p), 1);
}

TEST_P(ProcessTest, DaemonGrandchildIsTerminatedWhenItsParentExits) {
  const std::string out = path("daemon");
  Process p(opts(), start_grandchild, out, true, 60'000);
  p.start();
  ASSERT_EQ(finish(p), 0);  // returns promptly: the daemon is terminated, not awaited
  const pid_t grandchild = static_cast<pid_t>(std::stol(read_file(out)));
  EXPECT_NE(::kill(grandchild, 0), 0);  // gone (reaped by its parent)
  EXPECT_FALSE(exists(out + ".grandchild"));
}

TEST_P(ProcessTest, NonDaemonGrandchildIsJoinedWhenItsParentExits) {
  const std::string out = path("joined");
  Process p(opts(), start_grandchild, out, false, 200);
  p.start();
  ASSERT_EQ(finish(p), 0);
  EXPECT_EQ(read_file(out + ".grandchild"), "done");  // the child waited for it before exiting
}

TEST_P(ProcessTest, SubclassRunCarriesItsFields) {
  Writer w(opts(), path("w"), "hi");
  w.start();
  ASSERT_EQ(finish(w), 0);
  EXPECT_EQ(read_file(path("w")), "hi from " + w.name());
}

TEST_P(ProcessTest, UnregisteredSubclassNeedsFork) {
  Unregistered u(opts());
  if (GetParam() == StartMethod::fork) {
    u.start();
    EXPECT_EQ(finish(u), 0);
  } else {
    EXPECT_THROW(u.start(), UsageError);
  }
}

TEST_P(ProcessTest, MisuseThrows) {
  Process p(opts(), noop);
  EXPECT_THROW(p.join(), InvalidStateError);
  EXPECT_THROW((void)p.join(1ms), InvalidStateError);
  p.start();
  EXPECT_THROW(p.start(), InvalidStateError);
  ASSERT_EQ(finish(p), 0);
  p.close();
  p.close();  // idempotent
  EXPECT_THROW(p.start(), ValueError);
  EXPECT_THROW(p.join(), ValueError);
  EXPECT_THROW((void)p.is_alive(), ValueError);
  EXPECT_THROW(p.terminate(), ValueError);
}

TEST_P(ProcessTest, CloseWhileRunningThrows) {
  Process p(opts(), sleep_ms, 60'000);
  p.start();
  EXPECT_THROW(p.close(), ValueError);
  p.kill();
  EXPECT_EQ(finish(p), -SIGKILL);
  p.close();
}

TEST_P(ProcessTest, ActiveChildren) {
  Process p(opts(), sleep_ms, 60'000);
  p.start();
  const auto live = active_children();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].pid, p.pid());
  EXPECT_EQ(live[0].name, p.name());
  p.kill();
  EXPECT_EQ(finish(p), -SIGKILL);
  EXPECT_TRUE(active_children().empty());
}

TEST_P(ProcessTest, SentinelBecomesReadableAtExit) {
  Process p(opts(), sleep_ms, 50);
  p.start();
  pollfd fd{p.sentinel(), POLLIN, 0};
  ASSERT_GE(fd.fd, 0);
  EXPECT_EQ(::poll(&fd, 1, 60'000), 1);
  EXPECT_EQ(finish(p), 0);
}

TEST_P(ProcessTest, MovedProcessKeepsItsChild) {
  std::vector<Process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(opts(), exit_with, i);
  for (auto& p : ps) p.start();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(finish(ps[static_cast<std::size_t>(i)]), i);
}

TEST_P(ProcessTest, ConcurrentStartsFromThreads) {
  if (GetParam() == StartMethod::fork) GTEST_SKIP() << "fork refuses a multithreaded parent";
  constexpr int kThreads = 4;
  constexpr int kEach = 5;
  std::atomic<int> sum{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        Process p(opts(), exit_with, t * kEach + i);
        p.start();
        sum += finish(p);
      }
    });
  }
  for (auto& th : threads) th.join();
  constexpr int kCount = kThreads * kEach;
  EXPECT_EQ(sum.load(), kCount * (kCount - 1) / 2);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessTest,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         [](const auto& param_info) {
                           return std::string(to_string(param_info.param));
                         });

// ---- Not per start method

TEST(ProcessModuleTest, UnregisteredTargetIsRejectedAtConstruction) {
  EXPECT_THROW(Process p(not_registered), UsageError);
}

TEST(ProcessModuleTest, SerializationFailureThrowsAtConstruction) {
  EXPECT_THROW(Process p(takes_unserializable, Unserializable{}), PicklingError);
  EXPECT_TRUE(active_children().empty());
}

TEST(ProcessModuleTest, MainProcessIdentity) {
  EXPECT_EQ(current_process().name, "MainProcess");
  EXPECT_EQ(current_process().pid, ::getpid());
  EXPECT_FALSE(current_process().daemon);
  EXPECT_FALSE(parent_process().has_value());
  EXPECT_GE(cpu_count(), 1);
}

TEST(ProcessModuleTest, StartMethods) {
  EXPECT_EQ(get_start_method(), StartMethod::forkserver);
  const auto all = get_all_start_methods();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], StartMethod::forkserver);
  set_start_method(StartMethod::spawn);
  EXPECT_EQ(get_start_method(), StartMethod::spawn);
  EXPECT_THROW(set_start_method(StartMethod::fork), RuntimeError);
  set_start_method(StartMethod::forkserver, /*force=*/true);
  EXPECT_EQ(get_start_method(), StartMethod::forkserver);
  EXPECT_STREQ(to_string(StartMethod::fork), "fork");
  EXPECT_STREQ(to_string(StartMethod::spawn), "spawn");
  EXPECT_STREQ(to_string(StartMethod::forkserver), "forkserver");
}

// ---- A fork server that dies (Python's ForkServer.ensure_running respawns it)

TEST(ProcessModuleTest, AKilledForkServerIsReplacedAndItsChildrenStayWatched) {
  const ProcessOptions fs{.start_method = StartMethod::forkserver};
  Process running(fs, sleep_ms, 60'000);
  running.start();
  const pid_t server = kill_forkserver();
  // The child it forked lives on, as an orphan: still alive, and still ours to stop and join.
  EXPECT_TRUE(running.is_alive());
  EXPECT_FALSE(running.join(0ms));
  // A later start spawns a new server.
  Process after(fs, exit_with, 4);
  after.start();
  ASSERT_TRUE(after.join(kJoin));
  EXPECT_EQ(after.exitcode(), 4);
  EXPECT_NE(detail::forkserver_pid(), server);
  EXPECT_GT(detail::forkserver_pid(), 0);
  EXPECT_TRUE(running.is_alive());
  running.kill();
  ASSERT_TRUE(running.join(kJoin));
  EXPECT_EQ(running.exitcode(), 255);  // its status died with the server: "unknown"
  EXPECT_TRUE(active_children().empty());
}

TEST(ProcessModuleTest, AForkServerDyingMidStartFailsThatStartOnly) {
  const ProcessOptions fs{.start_method = StartMethod::forkserver};
  {  // make sure a server runs
    Process warm(fs, noop);
    warm.start();
    ASSERT_TRUE(warm.join(kJoin));
  }
  const pid_t server = detail::forkserver_pid();
  ASSERT_GT(server, 0);
  // Stop the server, so that a start sends its request and waits; then kill it.
  ASSERT_EQ(::kill(server, SIGSTOP), 0);
  Process stuck(fs, exit_with, 5);
  std::string error;
  std::thread starter([&] {
    try {
      stuck.start();
    } catch (const OSError& e) {
      error = e.what();
    }
  });
  bool waiting = false;
  for (int i = 0; i < 60'000 && !(waiting = detail::forkserver_awaiting_answer()); ++i)
    std::this_thread::sleep_for(1ms);
  ::kill(server, SIGKILL);  // also when the wait failed: the starter must not hang
  starter.join();
  ASSERT_TRUE(waiting);
  EXPECT_NE(error.find("Broken pipe: 'fork server (it died while starting"), std::string::npos)
      << error;
  EXPECT_EQ(stuck.pid(), 0);
  // Later starts succeed through a new server, the failed object included.
  Process after(fs, exit_with, 6);
  after.start();
  ASSERT_TRUE(after.join(kJoin));
  EXPECT_EQ(after.exitcode(), 6);
  EXPECT_NE(detail::forkserver_pid(), server);
  stuck.start();
  ASSERT_TRUE(stuck.join(kJoin));
  EXPECT_EQ(stuck.exitcode(), 5);
  EXPECT_TRUE(active_children().empty());
}

// busy_threads(n) runs n threads spinning (and taking a mutex, the classic fork hazard) until
// stop; the fork start method must refuse, the safe ones must never hang.
class BusyThreads {
 public:
  explicit BusyThreads(int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        while (!stop_.load(std::memory_order_relaxed)) {
          std::scoped_lock lock(mu_);
          ++spins_;
        }
      });
  }
  BusyThreads(const BusyThreads&) = delete;
  BusyThreads& operator=(const BusyThreads&) = delete;
  ~BusyThreads() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  long spins_ = 0;
  std::vector<std::thread> threads_;
};

TEST(ProcessModuleTest, ForkIsRefusedWithThreadsUnlessForced) {
  BusyThreads busy(2);
  Process p(ProcessOptions{.start_method = StartMethod::fork}, noop);
  EXPECT_THROW(p.start(), RuntimeError);
  EXPECT_TRUE(active_children().empty());
}

TEST(ProcessModuleTest, StartsFromABusyMultithreadedParentNeverHang) {
  BusyThreads busy(8);
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kStarts = 40;  // each spawn execs an instrumented binary: ~10x slower
#else
  constexpr int kStarts = 200;
#endif
  int sum = 0;
  for (int i = 0; i < kStarts; ++i) {
    Process p(
        ProcessOptions{.start_method = i % 4 == 0 ? StartMethod::spawn : StartMethod::forkserver},
        exit_with, i % 7);
    p.start();
    ASSERT_TRUE(p.join(kJoin)) << "start " << i << " hung";
    sum += p.exitcode().value_or(-1000);
  }
  int expected = 0;
  for (int i = 0; i < kStarts; ++i) expected += i % 7;
  EXPECT_EQ(sum, expected);
}

}  // namespace
}  // namespace concur::mp
