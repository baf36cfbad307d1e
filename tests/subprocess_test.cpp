// Tests for concur/subprocess.hpp, after CPython's Lib/test/test_subprocess.py: run() exit codes,
// check, capture, input, timeouts (run kills, communicate/wait do not), signals, cwd/env, missing
// programs, large transfers both ways without deadlock, spawning from many threads without fd
// leaks, and no zombie left behind. Only /bin/sh and coreutils are used; every wait is bounded.
#include "concur/subprocess.hpp"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "concur/errors.hpp"
#include "support/process_support.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using namespace concur::subprocess;
using ::testing::HasSubstr;

// count_fds() is the number of open descriptors of this process.
std::size_t count_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory stream's own fd
}

// has_children() is true while this process has any child, exited (zombie) or not.
bool has_children() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

// has_zombie_children() is true when a child of this process has exited but was not reaped.
bool has_zombie_children() {
  const std::string me = std::to_string(::getpid());
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return false;
  bool found = false;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos || close + 4 > line.size()) continue;
    // "pid (comm) S ppid ..."
    const char state = line[close + 2];
    const auto rest = line.substr(close + 4);
    const std::string ppid = rest.substr(0, rest.find(' '));
    if (ppid == me && state == 'Z') found = true;
  }
  ::closedir(d);
  return found;
}

// SubprocessTest checks in TearDown that no child of the test is left (STYLE.md rule 16).
class SubprocessTest : public QuiescentTest {
 protected:
  void TearDown() override {
    QuiescentTest::TearDown();
    EXPECT_TRUE(wait_until([] { return !has_children(); })) << "a child process outlived its test";
  }
};

TEST_F(SubprocessTest, RunReturnsExitCodes) {
  EXPECT_EQ(run({"true"}).returncode, 0);
  EXPECT_EQ(run({"false"}).returncode, 1);
  const CompletedProcess p = run({"sh", "-c", "exit 3"});
  EXPECT_EQ(p.returncode, 3);
  EXPECT_EQ(p.args, (std::vector<std::string>{"sh", "-c", "exit 3"}));
  EXPECT_TRUE(p.stdout_.empty());
}

TEST_F(SubprocessTest, CheckThrowsCalledProcessError) {
  try {
    run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {.capture_output = true, .check = true});
    FAIL() << "no CalledProcessError";
  } catch (const CalledProcessError& e) {
    EXPECT_EQ(e.returncode(), 3);
    EXPECT_EQ(e.output(), "out\n");
    EXPECT_EQ(e.stderr_output(), "err\n");
    EXPECT_STREQ(e.what(),
                 "CalledProcessError: Command '['sh', '-c', 'echo out; echo err >&2; exit 3']' "
                 "returned non-zero exit status 3.");
  }
  EXPECT_NO_THROW(run({"true"}, {.check = true}));
  const CompletedProcess p = run({"false"});
  EXPECT_THROW(p.check_returncode(), CalledProcessError);
  EXPECT_THROW(p.check_returncode(), SubprocessError);
  EXPECT_THROW(p.check_returncode(), concur::Error);
}

TEST_F(SubprocessTest, CaptureOutput) {
  const CompletedProcess out = run({"echo", "hello", "world"}, {.capture_output = true});
  EXPECT_EQ(out.stdout_, "hello world\n");
  EXPECT_EQ(out.stderr_, "");
  const CompletedProcess err = run({"sh", "-c", "echo oops >&2"}, {.capture_output = true});
  EXPECT_EQ(err.stdout_, "");
  EXPECT_EQ(err.stderr_, "oops\n");
  const CompletedProcess merged = run({"sh", "-c", "echo a; echo b >&2"},
                                      {.stdout_ = Redirect::Pipe, .stderr_ = Redirect::Stdout});
  EXPECT_EQ(merged.stdout_, "a\nb\n");
  const CompletedProcess devnull =
      run({"echo", "gone"}, {.stdout_ = Redirect::DevNull, .stderr_ = Redirect::Pipe});
  EXPECT_EQ(devnull.stdout_, "");
  EXPECT_THROW(run({"true"}, {.capture_output = true, .stdout_ = Redirect::Pipe}), ValueError);
}

TEST_F(SubprocessTest, InputIsPipedToCat) {
  const CompletedProcess p = run({"cat"}, {.input = "line 1\nline 2\n", .capture_output = true});
  EXPECT_EQ(p.returncode, 0);
  EXPECT_EQ(p.stdout_, "line 1\nline 2\n");
  // An empty input still gives the child an immediate end of file.
  EXPECT_EQ(run({"cat"}, {.input = "", .capture_output = true}).stdout_, "");
}

TEST_F(SubprocessTest, CommunicateMoreThanAMegabyteBothWaysDoesNotDeadlock) {
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  // tee echoes stdin to stdout and to stderr while still reading it: both output
  // pipes fill up while the parent is still writing.
  Popen p({"sh", "-c", "tee /dev/stderr"},
          {.stdin_ = Redirect::Pipe, .stdout_ = Redirect::Pipe, .stderr_ = Redirect::Pipe});
  const CommunicateResult r = p.communicate(big, 60s);
  EXPECT_EQ(r.stdout_.size(), big.size());
  EXPECT_TRUE(r.stdout_ == big);
  EXPECT_TRUE(r.stderr_ == big);
  EXPECT_EQ(p.returncode(), 0);
}

TEST_F(SubprocessTest, ChildClosingStdinEarlyDoesNotKillTheParent) {
  std::string big(2 * 1024 * 1024, 'x');
  Popen p({"head", "-c", "10"}, {.stdin_ = Redirect::Pipe, .stdout_ = Redirect::Pipe});
  const CommunicateResult r = p.communicate(big, 60s);  // EPIPE, not SIGPIPE
  EXPECT_EQ(r.stdout_, "xxxxxxxxxx");
  EXPECT_EQ(p.returncode(), 0);
}

TEST_F(SubprocessTest, RunTimeoutKillsTheChildAndReturnsFast) {
  const auto took = elapsed([] {
    try {
      run({"sh", "-c", "echo started; exec sleep 5"}, {.capture_output = true, .timeout = 200ms});
      ADD_FAILURE() << "no TimeoutExpired";
    } catch (const TimeoutExpired& e) {
      EXPECT_THAT(e.what(), HasSubstr("timed out after 0.2 seconds"));
      EXPECT_EQ(e.output(), "started\n");
      EXPECT_EQ(e.timeout(), 200ms);
    }
  });
  EXPECT_GE(took, 200ms - kSlack);
  EXPECT_LT(took, 4s);  // far below sleep's 5 s: the child was killed
  EXPECT_FALSE(has_zombie_children());
}

TEST_F(SubprocessTest, CommunicateTimeoutThenContinue) {
  Popen p({"sh", "-c", "echo first; exec sleep 5"}, {.stdout_ = Redirect::Pipe});
  try {
    p.communicate("", 200ms);
    FAIL() << "no TimeoutExpired";
  } catch (const TimeoutExpired& e) {
    EXPECT_EQ(e.output(), "first\n");
  }
  EXPECT_FALSE(p.poll().has_value()) << "communicate's timeout must not kill the child";
  EXPECT_THROW(p.communicate("late input", 10ms), ValueError);
  p.terminate();
  const CommunicateResult r = p.communicate("", 10s);
  EXPECT_EQ(r.stdout_, "first\n");  // the whole output, the part read before the timeout too
  EXPECT_EQ(p.returncode(), -SIGTERM);
}

TEST_F(SubprocessTest, WaitTimeoutDoesNotKill) {
  Popen p({"sleep", "5"});
  const auto took = elapsed([&] { EXPECT_THROW(p.wait(100ms), TimeoutExpired); });
  EXPECT_GE(took, 100ms - kSlack);
  EXPECT_FALSE(p.poll().has_value());
  EXPECT_FALSE(p.returncode().has_value());
  p.kill();
  EXPECT_EQ(p.wait(10s), -SIGKILL);
  EXPECT_EQ(p.returncode(), -9);
  EXPECT_EQ(p.poll(), -9);
  p.kill();  // after reaping: nothing is sent
}

TEST_F(SubprocessTest, TerminateAndKillGiveNegativeSignalNumbers) {
  Popen t({"sleep", "5"});
  t.terminate();
  EXPECT_EQ(t.wait(10s), -15);
  Popen k({"sleep", "5"});
  k.kill();
  EXPECT_EQ(k.wait(10s), -9);
  try {
    CompletedProcess{{"x"}, -9, "", ""}.check_returncode();
  } catch (const CalledProcessError& e) {
    EXPECT_STREQ(e.what(), "CalledProcessError: Command '['x']' died with <Signals.SIGKILL: 9>.");
  }
}

// ---- Process groups: start_new_session, process_group (Python 3.11), killpg, run()'s
// kill_group_on_timeout

TEST_F(SubprocessTest, StartNewSessionAndProcessGroupPlaceTheChild) {
  Popen plain({"sleep", "30"});
  EXPECT_EQ(::getpgid(plain.pid()), ::getpgrp());  // inherited, as without the options in Python
  EXPECT_EQ(::getsid(plain.pid()), ::getsid(0));
  Popen session({"sleep", "30"}, {.start_new_session = true});
  EXPECT_EQ(::getsid(session.pid()), session.pid());  // setsid(): a session and a group of its own
  EXPECT_EQ(::getpgid(session.pid()), session.pid());
  Popen leader({"sleep", "30"}, {.process_group = 0});
  EXPECT_EQ(::getpgid(leader.pid()), leader.pid());  // setpgid(0, 0): a new group...
  EXPECT_EQ(::getsid(leader.pid()), ::getsid(0));    // ...in our session
  Popen member({"sleep", "30"}, {.process_group = leader.pid()});
  EXPECT_EQ(::getpgid(member.pid()), leader.pid());  // joins an existing group
  // killpg() reaches every member of the leader's group.
  leader.killpg(SIGKILL);
  EXPECT_EQ(leader.wait(10s), -SIGKILL);
  EXPECT_EQ(member.wait(10s), -SIGKILL);
  EXPECT_FALSE(plain.poll().has_value());
  session.killpg(SIGTERM);
  EXPECT_EQ(session.wait(10s), -SIGTERM);
  session.killpg(SIGTERM);  // the group is empty now: not an error
  // killpg() needs a group of the child's own: the plain child's is ours, the member's another's.
  EXPECT_THROW(plain.killpg(SIGKILL), ValueError);
  EXPECT_THROW(member.killpg(SIGKILL), ValueError);
  plain.kill();
  EXPECT_EQ(plain.wait(10s), -SIGKILL);
}

TEST_F(SubprocessTest, BadProcessGroupOptionsAreRejected) {
  EXPECT_THROW(Popen({"true"}, {.process_group = -1}), ValueError);
  EXPECT_THROW(Popen({"true"}, {.start_new_session = true, .process_group = 0}), ValueError);
  // A group id that is no group: setpgid fails in the child, posix_spawn reports EPERM (Python:
  // PermissionError), and no child is left. `plain` is a child that leads no group.
  Popen plain({"sleep", "30"});
  try {
    Popen joined({"true"}, {.process_group = plain.pid()});
    ADD_FAILURE() << "no SpawnError";
  } catch (const SpawnError& e) {
    EXPECT_EQ(e.errno_code(), EPERM);
    EXPECT_THAT(e.what(), HasSubstr("PermissionError: [Errno 1]"));
  }
  plain.kill();
  EXPECT_EQ(plain.wait(10s), -SIGKILL);
  // run(kill_group_on_timeout) without a group of the child's own.
  EXPECT_THROW(run({"true"}, {.timeout = 10s, .kill_group_on_timeout = true}), ValueError);
  EXPECT_THROW(
      run({"true"}, {.timeout = 10s, .process_group = ::getpgrp(), .kill_group_on_timeout = true}),
      ValueError);
  EXPECT_EQ(
      run({"true"}, {.timeout = 10s, .process_group = 0, .kill_group_on_timeout = true}).returncode,
      0);
}

// Timed out runs of `sh -c 'echo $$; sleep 30 & echo $!; wait'` in a group of its own: the
// shell's pid (the group's id) and the background sleep's (the grandchild's), as printed before
// the timeout. A run on a machine so slow that the shell had not printed both in time is retried
// with a longer timeout (its leftovers killed), so the test never depends on timing.
struct TimedOutTree {
  pid_t shell = 0;
  pid_t grandchild = 0;
};

TimedOutTree run_tree_until_timeout(RunOptions options) {
  for (auto timeout = std::chrono::nanoseconds(1s); timeout <= 16s; timeout *= 2) {
    options.capture_output = true;
    options.timeout = timeout;
    std::string out;
    try {
      run({"sh", "-c", "echo $$; sleep 30 & echo $!; wait"}, options);
      ADD_FAILURE() << "no TimeoutExpired";
      return {};
    } catch (const TimeoutExpired& e) {
      out = e.output();
    }
    TimedOutTree tree;
    std::istringstream lines(out);
    lines >> tree.shell >> tree.grandchild;
    if (tree.grandchild > 0) return tree;
    if (tree.shell > 0) (void)::killpg(tree.shell, SIGKILL);  // a sleep it may have started
  }
  ADD_FAILURE() << "the shell never printed its grandchild's pid";
  return {};
}

TEST_F(SubprocessTest, RunTimeoutKillsOnlyTheChildAsPython) {
  const TimedOutTree tree = run_tree_until_timeout({.start_new_session = true});
  ASSERT_GT(tree.grandchild, 0);
  EXPECT_TRUE(process_gone(tree.shell));
  EXPECT_FALSE(process_gone(tree.grandchild)) << "the grandchild survives run()'s timeout";
  ::kill(tree.grandchild, SIGKILL);  // cleanup (it is init's child now, not ours)
  EXPECT_TRUE(wait_until([&] { return process_gone(tree.grandchild); }));
}

TEST_F(SubprocessTest, RunTimeoutWithKillGroupOnTimeoutKillsTheTree) {
  for (const RunOptions& options :
       {RunOptions{.start_new_session = true, .kill_group_on_timeout = true},
        RunOptions{.process_group = 0, .kill_group_on_timeout = true}}) {
    const TimedOutTree tree = run_tree_until_timeout(options);
    ASSERT_GT(tree.grandchild, 0);
    EXPECT_TRUE(process_gone(tree.shell));
    EXPECT_TRUE(wait_until([&] { return process_gone(tree.grandchild); }))
        << "grandchild " << tree.grandchild << " survived";
    if (!process_gone(tree.grandchild)) ::kill(tree.grandchild, SIGKILL);
  }
}

TEST_F(SubprocessTest, CwdAndEnv) {
  EXPECT_EQ(run({"sh", "-c", "pwd"}, {.capture_output = true, .cwd = "/"}).stdout_, "/\n");
  const CompletedProcess e =
      run({"sh", "-c", "echo $FOO; echo ${HOME:-unset}"},
          {.capture_output = true, .env = Environment{{"FOO", "bar"}, {"PATH", "/usr/bin:/bin"}}});
  EXPECT_EQ(e.stdout_, "bar\nunset\n");  // the environment is replaced, not extended
  // Without PATH in env, the program is still found in /bin:/usr/bin (Python's os.defpath).
  EXPECT_EQ(run({"sh", "-c", "echo ok"}, {.capture_output = true, .env = Environment{}}).stdout_,
            "ok\n");
}

TEST_F(SubprocessTest, MissingProgramThrowsAtOnce) {
  const auto took = elapsed([] {
    try {
      run({"concur-no-such-program"});
      ADD_FAILURE() << "no FileNotFoundError";
    } catch (const FileNotFoundError& e) {
      EXPECT_EQ(e.errno_code(), ENOENT);
      EXPECT_STREQ(e.what(),
                   "FileNotFoundError: [Errno 2] No such file or directory: "
                   "'concur-no-such-program'");
    }
  });
  EXPECT_LT(took, kGenerous);
  EXPECT_THROW(Popen({"/no/such/dir/prog"}), FileNotFoundError);
  EXPECT_THROW(Popen({"true"}, {.cwd = "/no/such/dir"}), FileNotFoundError);
  EXPECT_THROW(Popen({"/dev/null"}), SpawnError);  // not executable: PermissionError
  EXPECT_THROW(Popen(std::vector<std::string>{}), ValueError);
  EXPECT_THROW(run({"concur-no-such-program"}, {.env = Environment{{"PATH", "/usr/bin:/bin"}}}),
               FileNotFoundError);
}

TEST_F(SubprocessTest, SpawnFromManyThreadsLeaksNoFds) {
  const std::size_t before = count_fds();
  std::atomic<int> ok{0};
  run_threads(8, [&](std::size_t i) {
    for (int round = 0; round < 5; ++round) {
      const std::string word = "thread" + std::to_string(i);
      const CompletedProcess p =
          run({"cat"}, {.input = word, .capture_output = true, .timeout = 30s});
      if (p.returncode == 0 && p.stdout_ == word) ok.fetch_add(1);
    }
  });
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(count_fds(), before);
}

TEST_F(SubprocessTest, ChildSeesOnlyStandardFds) {
  // Pipes of other Popens (all O_CLOEXEC) and anything else are closed in the child.
  Popen other({"cat"}, {.stdin_ = Redirect::Pipe, .stdout_ = Redirect::Pipe});
  const CompletedProcess p = run({"ls", "/proc/self/fd"}, {.capture_output = true});
  EXPECT_EQ(p.stdout_, "0\n1\n2\n3\n");  // 3 is ls's own directory stream
  other.communicate("", 10s);
}

TEST_F(SubprocessTest, NoZombieLeft) {
  {
    Popen done({"true"});
    EXPECT_TRUE(wait_until([&] { return has_zombie_children(); }));
  }  // an exited child is reaped by the destructor
  EXPECT_FALSE(has_zombie_children());
  { Popen running({"sleep", "0.2"}); }  // left running; a background reaper waits for it
  EXPECT_TRUE(wait_until([] { return !has_children(); }));
  EXPECT_FALSE(has_zombie_children());
}

TEST_F(SubprocessTest, PollAndWaitFromSeveralThreads) {
  Popen p({"sleep", "0.2"});
  std::atomic<int> seen{0};
  run_threads(4, [&](std::size_t i) {
    if (i % 2 == 0) {
      if (p.wait(10s) == 0) seen.fetch_add(1);
    } else {
      while (!p.poll()) std::this_thread::sleep_for(1ms);
      if (p.returncode() == 0) seen.fetch_add(1);
    }
  });
  EXPECT_EQ(seen.load(), 4);
}

}  // namespace
