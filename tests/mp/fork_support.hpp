// tests/mp/fork_support.hpp — helpers for the cross-process tests of concur::mp.
//
// - ForkTest: a fixture whose fork_child(fn) runs fn in a forked child that _exit()s with fn's
//   return value (2 when fn throws); wait_child(pid) waits for it with a bounded loop; TearDown
//   kills and reaps any child left behind and fails the test (STYLE.md rule 16).
// - Flag helpers over a lock-free shared int (wait_for_flag polls for up to kGenerous).
// - open_fd_count(): the number of descriptors open in this process (fd-leak checks).
// - dup_all(fds): dup()s of a payload's descriptors, the way a spawned child receives its own.
// Tests fork from a single-threaded test process: no test starts a thread before forking.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include "concur/mp/shared_memory.hpp"
#include "support/test_support.hpp"

namespace concur::mp::testing {

using namespace std::chrono_literals;

// kChildTimeout bounds how long the parent waits for one child.
inline constexpr auto kChildTimeout = 60s;
// kChildWait bounds every blocking call made inside a child.
inline constexpr auto kChildWait = 30s;

class ForkTest : public ::testing::Test {
 protected:
  // fork_child(fn) runs fn in a forked child that then _exit()s with fn's return value (2 if fn
  // throws). Returns the child's pid.
  template <class Fn>
  pid_t fork_child(Fn fn) {
    const pid_t pid = ::fork();  // NOLINT(concurrency-mt-unsafe): tests fork single-threaded
    if (pid < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
    if (pid == 0) {
      int code = 2;
      try {
        code = fn();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      } catch (...) {
      }
      ::_exit(code);
    }
    children_.push_back(pid);
    return pid;
  }

  // wait_child(pid) waits (bounded) for the child and returns its exit code, or -signal when a
  // signal killed it, or -1000 when it did not finish in kChildTimeout (it is then killed).
  int wait_child(pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + kChildTimeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        std::erase(children_, pid);
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return -WTERMSIG(status);
        return -999;
      }
      if (r < 0 && errno != EINTR) return -998;
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        std::erase(children_, pid);
        return -1000;
      }
      std::this_thread::sleep_for(1ms);
    }
  }

  // child_running(pid) is true while the child has not exited (it is not reaped here).
  static bool child_running(pid_t pid) {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == 0;
  }

  void TearDown() override {
    const bool leftover = !children_.empty();
    for (const pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    children_.clear();
    EXPECT_FALSE(leftover) << "a child process outlived its test";
  }

  std::vector<pid_t> children_;
};

// wait_for_flag(flag[, value]) polls a shared int for up to kGenerous until it is >= value.
inline bool wait_for_flag(const Value<int>& flag, int value = 1) {
  return concur::testing::wait_until(
      [&] { return __atomic_load_n(&flag.get_obj(), __ATOMIC_ACQUIRE) >= value; });
}
inline void set_flag(Value<int>& flag) { __atomic_store_n(&flag.get_obj(), 1, __ATOMIC_RELEASE); }
inline int load_flag(const Value<int>& flag) {
  return __atomic_load_n(&flag.get_obj(), __ATOMIC_ACQUIRE);
}
inline void bump_flag(Value<int>& flag) {
  __atomic_fetch_add(&flag.get_obj(), 1, __ATOMIC_ACQ_REL);
}

// open_fd_count() counts the entries of /proc/self/fd (minus the one opendir uses).
inline int open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;
}

// dup_all(fds) duplicates each descriptor, as the process machinery hands a child its own copies.
inline std::vector<int> dup_all(const std::vector<int>& fds) {
  std::vector<int> out;
  out.reserve(fds.size());
  for (const int fd : fds) out.push_back(::dup(fd));
  return out;
}

}  // namespace concur::mp::testing
