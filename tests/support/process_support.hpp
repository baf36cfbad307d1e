// tests/support/process_support.hpp — helpers for tests whose work runs in other processes
// (process pools, later remote executors), where the test and the task share only the file
// system and process ids.
//
// - poll_until(d, pred): poll pred every millisecond for up to d; returns pred().
// - file_exists(path); write_file(path, text): the whole content at once (written aside, renamed),
//   so that a reader who sees the file sees its content; read_file(path): its first line.
// - process_gone(pid): no such process, or it exited and waits to be reaped (a zombie is gone).
// - wait_forked(pid, d): reaps a child made with fork(): its exit code, or -1 when it did not end
//   within d (it is then killed) or was killed by a signal.
// - TempDir: a fresh directory for a test's marker files, removed with everything in it.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include "concur/errors.hpp"
#include "concur/mp/process.hpp"

namespace concur::testing {

// kill_forkserver() kills the running fork server with SIGKILL and waits until it is dead (not
// reaped: it is the library's child). Returns its pid.
inline pid_t kill_forkserver() {
  const pid_t server = mp::detail::forkserver_pid();
  EXPECT_GT(server, 0);
  if (server <= 0) return 0;
  EXPECT_EQ(::kill(server, SIGKILL), 0);
  siginfo_t info{};
  EXPECT_EQ(::waitid(P_PID, static_cast<id_t>(server), &info, WEXITED | WNOWAIT), 0);
  return server;
}

template <class Pred>
bool poll_until(std::chrono::steady_clock::duration d, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

inline bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

inline void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    out << text;
    if (!out) throw RuntimeError("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  return text;
}

// process_state(pid): the state letter of /proc/PID/stat (R, S, T, Z...); '\0' when the process
// is not there.
inline char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return '\0';
  return line[close + 2];
}

inline bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  const char state = process_state(pid);
  return state == '\0' || state == 'Z' || state == 'X';  // ('\0': vanished meanwhile)
}

inline int wait_forked(pid_t pid, std::chrono::milliseconds d) {
  int status = 0;
  const bool ended = poll_until(d, [&] { return ::waitpid(pid, &status, WNOHANG) == pid; });
  if (!ended) {
    ::kill(pid, SIGKILL);
    (void)::waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "concur-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw RuntimeError("mkdtemp failed");
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  // file(name): the path of `name` inside the directory.
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace concur::testing
