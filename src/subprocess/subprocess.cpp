// Popen and run() on posix_spawn, poll(2) and pidfds (see include/concur/subprocess.hpp).
//
// Waiting for a child: one loop for every form of wait. Under the state mutex, waitpid(WNOHANG)
// reaps the child if it exited; otherwise the caller sleeps outside the mutex on the child's
// pidfd (pidfd_open, Linux >= 5.3: readable once the child exits), or, without pidfds, in short
// sleeps growing from 1 ms to 50 ms (CPython's fallback loop). Reaping and signalling happen
// under the same mutex, so a signal never reaches a recycled pid.
#include "concur/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

extern char** environ;

namespace concur::subprocess {

namespace {

using Seconds = std::chrono::duration<double>;

// py_repr(s) quotes s as Python's repr() of a str does (single quotes unless s contains one).
std::string py_repr(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (const char c : s) {
    if (c == '\\' || c == q) out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += q;
  return out;
}

// cmd_repr(args) is Python's str() of the args list: ['sh', '-c', 'exit 3'].
std::string cmd_repr(const std::vector<std::string>& args) {
  std::string out = "[";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i != 0) out += ", ";
    out += py_repr(args[i]);
  }
  return out + "]";
}

std::string seconds_repr(Seconds s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", s.count());
  return buf;
}

std::string timeout_message(const std::vector<std::string>& cmd, Seconds timeout) {
  std::string msg = "TimeoutExpired: Command '";
  msg.append(cmd_repr(cmd))
      .append("' timed out after ")
      .append(seconds_repr(timeout))
      .append(" seconds");
  return msg;
}

std::string called_message(int returncode, const std::vector<std::string>& cmd) {
  // Built by append(): GCC 12 reports a false -Wrestrict for `"literal" + std::string`.
  std::string msg = "CalledProcessError: Command '";
  msg.append(cmd_repr(cmd)).append("' ");
  if (returncode < 0) {
    const char* abbrev = sigabbrev_np(-returncode);
    msg.append("died with <Signals.SIG")
        .append(abbrev != nullptr ? abbrev : "?")
        .append(": ")
        .append(std::to_string(-returncode))
        .append(">.");
  } else {
    msg.append("returned non-zero exit status ").append(std::to_string(returncode)).append(".");
  }
  return msg;
}

std::string spawn_message(const char* type_name, int err, const std::string& filename) {
  std::string msg = type_name;
  msg.append(": [Errno ")
      .append(std::to_string(err))
      .append("] ")
      .append(strerrordesc_np(err))
      .append(": ")
      .append(py_repr(filename));
  return msg;
}

[[noreturn]] void throw_spawn_error(int err, const std::string& filename) {
  if (err == ENOENT) throw FileNotFoundError(filename);
  throw SpawnError(err, filename);
}

[[noreturn]] void throw_os(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Fd owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_os("pipe2");
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// decode(status) turns a waitpid status into Python's returncode.
int decode(int status) {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return status;  // stopped/continued are not reported (no WUNTRACED)
}

// find_in_path(prog, path) is the first executable regular file prog in the ':'-separated path.
std::optional<std::string> find_in_path(const std::string& prog, const std::string& path) {
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    // assign/push_back, not `dir = "."`: GCC 12 reports a false -Wrestrict for that.
    std::string candidate;
    candidate.assign(path, begin, end - begin);
    if (candidate.empty()) candidate.push_back('.');
    candidate.push_back('/');
    candidate.append(prog);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    begin = end + 1;
  }
  return std::nullopt;
}

// SpawnGuard frees posix_spawn's attribute and file-action objects.
struct SpawnGuard {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attr{};
  SpawnGuard() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnGuard() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnGuard(const SpawnGuard&) = delete;
  SpawnGuard& operator=(const SpawnGuard&) = delete;
};

void check_spawn_call(int rc, const char* what) {
  if (rc != 0) throw std::system_error(rc, std::generic_category(), what);
}

// write_no_sigpipe(fd, data, n) writes without letting SIGPIPE reach the process: SIGPIPE is
// blocked in this thread for the write and a SIGPIPE it raised is consumed before unblocking.
ssize_t write_no_sigpipe(int fd, const char* data, std::size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  const ssize_t r = ::write(fd, data, n);
  const int err = errno;
  if (r < 0 && err == EPIPE && !was_pending) {
    const timespec zero{};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return r;
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);  // pidfds are always CLOEXEC; be explicit
    return static_cast<int>(fd);
  }
#else
  (void)pid;
#endif
  return -1;
}

int poll_ms(const detail::Deadline& deadline) {
  if (deadline.is_infinite()) return -1;
  const auto left = deadline.remaining();
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, 1'000'000));
}

}  // namespace

// ---- Errors

TimeoutExpired::TimeoutExpired(std::vector<std::string> cmd, std::chrono::duration<double> timeout,
                               std::string output, std::string stderr_output)
    : SubprocessError(timeout_message(cmd, timeout)),
      cmd_(std::move(cmd)),
      timeout_(timeout),
      output_(std::move(output)),
      stderr_(std::move(stderr_output)) {}

CalledProcessError::CalledProcessError(int returncode, std::vector<std::string> cmd,
                                       std::string output, std::string stderr_output)
    : SubprocessError(called_message(returncode, cmd)),
      returncode_(returncode),
      cmd_(std::move(cmd)),
      output_(std::move(output)),
      stderr_(std::move(stderr_output)) {}

SpawnError::SpawnError(int errno_code, std::string filename)
    : SpawnError(errno_code == EACCES || errno_code == EPERM ? "PermissionError" : "OSError",
                 errno_code, std::move(filename)) {}

SpawnError::SpawnError(const char* type_name, int errno_code, std::string filename)
    : SubprocessError(spawn_message(type_name, errno_code, filename)),
      errno_(errno_code),
      filename_(std::move(filename)) {}

FileNotFoundError::FileNotFoundError(std::string filename)
    : SpawnError("FileNotFoundError", ENOENT, std::move(filename)) {}

// ---- Popen

struct Popen::State {
  std::vector<std::string> args;
  pid_t pid = -1;
  Fd pidfd;
  bool leads_group = false;  // start_new_session or process_group = 0: its group's id is pid

  std::mutex mu;  // guards the reaping state below
  std::optional<int> returncode CONCUR_GUARDED_BY(mu);

  // The parent's pipe ends; only communicate() (serialized by comm_mu) and ~Popen close them.
  Fd stdin_pipe, stdout_pipe, stderr_pipe;

  std::mutex comm_mu;  // serializes communicate(); guards the fields below
  bool communication_started CONCUR_GUARDED_BY(comm_mu) = false;
  std::string input CONCUR_GUARDED_BY(comm_mu);
  std::size_t input_offset CONCUR_GUARDED_BY(comm_mu) = 0;
  std::string out CONCUR_GUARDED_BY(comm_mu);
  std::string err CONCUR_GUARDED_BY(comm_mu);

  // try_reap() reaps the child if it exited. Caller holds mu.
  bool try_reap() {
    if (returncode) return true;
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        returncode = decode(status);
        return true;
      }
      if (r == 0) return false;
      if (errno == EINTR) continue;
      // ECHILD: someone else (a waitpid(-1) elsewhere) reaped it; Python reports 0 then.
      returncode = 0;
      return true;
    }
  }
};

Popen::Popen(std::vector<std::string> args, PopenOptions options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  if (args.empty()) throw ValueError("Popen: args must not be empty");
  if (options.stdin_ == Redirect::Stdout || options.stdout_ == Redirect::Stdout) {
    throw ValueError("Popen: Redirect::Stdout is only valid for stderr_");
  }
  if (options.process_group && *options.process_group < 0) {
    throw ValueError("Popen: process_group must be 0 (a new group) or a group id, not " +
                     std::to_string(*options.process_group));
  }
  if (options.process_group && options.start_new_session) {
    throw ValueError(
        "Popen: start_new_session and process_group cannot be combined: the new session's "
        "leader cannot change its process group (setpgid: EPERM)");
  }
  s.args = std::move(args);
  s.leads_group = options.start_new_session || options.process_group == 0;

  SpawnGuard g;
  // The child ends of the pipes (closed in the parent after the spawn).
  Fd child_in, child_out, child_err;
  auto setup = [&](Redirect r, int target, Fd& parent_end, Fd& child_end) {
    const bool reading = target == STDIN_FILENO;
    switch (r) {
      case Redirect::Inherit:
      case Redirect::Stdout:
        return;
      case Redirect::DevNull:
        check_spawn_call(posix_spawn_file_actions_addopen(&g.actions, target, "/dev/null",
                                                          reading ? O_RDONLY : O_WRONLY, 0),
                         "posix_spawn_file_actions_addopen");
        return;
      case Redirect::Pipe: {
        Pipe p = make_pipe();
        parent_end = reading ? std::move(p.write) : std::move(p.read);
        child_end = reading ? std::move(p.read) : std::move(p.write);
        // dup2 onto 0/1/2 clears FD_CLOEXEC on the copy; the originals close at exec.
        check_spawn_call(posix_spawn_file_actions_adddup2(&g.actions, child_end.get(), target),
                         "posix_spawn_file_actions_adddup2");
        return;
      }
      case Redirect::Socket: {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
          throw std::system_error(errno, std::generic_category(), "socketpair");
        }
        parent_end = Fd(sv[0]);
        child_end = Fd(sv[1]);
        check_spawn_call(posix_spawn_file_actions_adddup2(&g.actions, child_end.get(), target),
                         "posix_spawn_file_actions_adddup2");
        return;
      }
    }
  };
  setup(options.stdin_, STDIN_FILENO, s.stdin_pipe, child_in);
  setup(options.stdout_, STDOUT_FILENO, s.stdout_pipe, child_out);
  if (options.stderr_ == Redirect::Stdout) {
    check_spawn_call(posix_spawn_file_actions_adddup2(&g.actions, STDOUT_FILENO, STDERR_FILENO),
                     "posix_spawn_file_actions_adddup2");
  } else {
    setup(options.stderr_, STDERR_FILENO, s.stderr_pipe, child_err);
  }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // close_fds=True: the child keeps only 0, 1 and 2, whatever other threads left open.
  check_spawn_call(posix_spawn_file_actions_addclosefrom_np(&g.actions, 3),
                   "posix_spawn_file_actions_addclosefrom_np");
#endif
  if (!options.cwd.empty()) {
    check_spawn_call(posix_spawn_file_actions_addchdir_np(&g.actions, options.cwd.c_str()),
                     "posix_spawn_file_actions_addchdir_np");
  }

  // The child starts with no blocked signals and SIGPIPE/SIGXFSZ at their defaults
  // (Python's restore_signals=True), whatever this thread blocks or ignores.
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  check_spawn_call(posix_spawnattr_setsigmask(&g.attr, &empty), "posix_spawnattr_setsigmask");
  check_spawn_call(posix_spawnattr_setsigdefault(&g.attr, &defaults),
                   "posix_spawnattr_setsigdefault");
  int flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  // Python's start_new_session / process_group: setsid() or setpgid(0, pgid) in the child before
  // the exec (glibc's posix_spawn does them in that order; a failure is posix_spawn's error).
  if (options.start_new_session) flags |= POSIX_SPAWN_SETSID;
  if (options.process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    check_spawn_call(posix_spawnattr_setpgroup(&g.attr, *options.process_group),
                     "posix_spawnattr_setpgroup");
  }
  check_spawn_call(posix_spawnattr_setflags(&g.attr, static_cast<short>(flags)),
                   "posix_spawnattr_setflags");

  std::vector<char*> argv;
  argv.reserve(s.args.size() + 1);
  for (auto& a : s.args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  char** env = environ;
  std::string program = s.args[0];
  bool search_path = program.find('/') == std::string::npos;
  if (options.env) {
    for (const auto& [k, v] : *options.env) env_strings.push_back(k + "=" + v);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    env = envp.data();
    if (search_path) {
      // Look the program up in the new environment's PATH, as Python does.
      const auto it = options.env->find("PATH");
      const std::string path = it != options.env->end() ? it->second : "/bin:/usr/bin";
      auto found = find_in_path(program, path);
      if (!found) throw FileNotFoundError(program);
      program = std::move(*found);
      search_path = false;
    }
  }

  pid_t pid = -1;
  const int rc = search_path
                     ? ::posix_spawnp(&pid, program.c_str(), &g.actions, &g.attr, argv.data(), env)
                     : ::posix_spawn(&pid, program.c_str(), &g.actions, &g.attr, argv.data(), env);
  if (rc != 0) {
    // A failing chdir also reports ENOENT; name the directory then, as Python does.
    struct stat st {};
    if (rc == ENOENT && !options.cwd.empty() &&
        !(::stat(options.cwd.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
      throw_spawn_error(rc, options.cwd);
    }
    throw_spawn_error(rc, s.args[0]);
  }
  s.pid = pid;
  s.pidfd = Fd(open_pidfd(pid));
}

Popen::Popen(Popen&& other) noexcept = default;

Popen::~Popen() {
  if (!state_) return;
  State& s = *state_;
  s.stdin_pipe.reset();
  s.stdout_pipe.reset();
  s.stderr_pipe.reset();
  std::lock_guard lock(s.mu);
  if (s.try_reap()) return;
  // Still running: leave it running (Python's choice) but never as a zombie.
  try {
    std::thread([pid = s.pid] {
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }).detach();
  } catch (const std::system_error&) {
    // No thread to be had: the child stays a zombie until this process exits (Python's own
    // outcome for an unwaited Popen), which beats throwing from a destructor.
  }
}

const std::vector<std::string>& Popen::args() const noexcept { return state_->args; }
int Popen::pid() const noexcept { return state_->pid; }
int Popen::stdin_fd() const noexcept { return state_->stdin_pipe.get(); }
int Popen::stdout_fd() const noexcept { return state_->stdout_pipe.get(); }
int Popen::stderr_fd() const noexcept { return state_->stderr_pipe.get(); }
int Popen::release_stdin_fd() noexcept { return state_->stdin_pipe.release(); }
int Popen::release_stdout_fd() noexcept { return state_->stdout_pipe.release(); }
int Popen::release_stderr_fd() noexcept { return state_->stderr_pipe.release(); }
int Popen::pidfd() const noexcept { return state_->pidfd.get(); }

std::optional<int> Popen::poll() {
  std::lock_guard lock(state_->mu);
  state_->try_reap();
  return state_->returncode;
}

std::optional<int> Popen::returncode() const {
  std::lock_guard lock(state_->mu);
  return state_->returncode;
}

int Popen::wait() { return wait_deadline(detail::Deadline::infinite(), Seconds::zero()); }

int Popen::wait_deadline(const detail::Deadline& deadline, Seconds timeout) {
  State& s = *state_;
  auto sleep = std::chrono::milliseconds(1);
  for (;;) {
    {
      std::lock_guard lock(s.mu);
      if (s.try_reap()) return *s.returncode;
    }
    if (deadline.expired()) throw TimeoutExpired(s.args, timeout);
    if (s.pidfd.get() >= 0) {
      pollfd p{s.pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, poll_ms(deadline));  // EINTR or a spurious return: the loop re-checks
    } else {
      const auto left = deadline.remaining();
      std::this_thread::sleep_for(std::min<Clock::duration>(sleep, left));
      sleep = std::min<std::chrono::milliseconds>(sleep * 2, std::chrono::milliseconds(50));
    }
  }
}

CommunicateResult Popen::communicate(const std::string& input) {
  return communicate_deadline(input, detail::Deadline::infinite(), Seconds::zero());
}

CommunicateResult Popen::communicate_deadline(const std::string& input,
                                              const detail::Deadline& deadline, Seconds timeout) {
  State& s = *state_;
  std::unique_lock comm(s.comm_mu);
  if (s.communication_started && !input.empty()) {
    throw ValueError("Cannot send input after starting communication");
  }
  if (!s.communication_started) {
    if (!input.empty() && s.stdin_pipe.get() < 0) {
      throw ValueError("communicate: input given but stdin is not Redirect::Pipe");
    }
    s.communication_started = true;
    s.input = input;
    s.input_offset = 0;
    if (s.stdin_pipe.get() >= 0) {
      if (s.input.empty()) {
        s.stdin_pipe.reset();
      } else {
        // Our end only (a pipe end is its own open file description): writes never block.
        const int fl = ::fcntl(s.stdin_pipe.get(), F_GETFL);
        ::fcntl(s.stdin_pipe.get(), F_SETFL, fl | O_NONBLOCK);
      }
    }
  }

  constexpr std::size_t kChunk = 64 * 1024;
  char buf[kChunk];
  while (s.stdin_pipe.get() >= 0 || s.stdout_pipe.get() >= 0 || s.stderr_pipe.get() >= 0) {
    pollfd fds[3];
    nfds_t n = 0;
    if (s.stdin_pipe.get() >= 0) fds[n++] = {s.stdin_pipe.get(), POLLOUT, 0};
    if (s.stdout_pipe.get() >= 0) fds[n++] = {s.stdout_pipe.get(), POLLIN, 0};
    if (s.stderr_pipe.get() >= 0) fds[n++] = {s.stderr_pipe.get(), POLLIN, 0};
    const int ready = ::poll(fds, n, poll_ms(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw_os("poll");
    }
    if (ready == 0) {
      if (deadline.expired()) throw TimeoutExpired(s.args, timeout, s.out, s.err);
      continue;  // poll's millisecond rounding woke us a little early
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      if (fd == s.stdin_pipe.get()) {
        const std::size_t left = s.input.size() - s.input_offset;
        const ssize_t w =
            write_no_sigpipe(fd, s.input.data() + s.input_offset, std::min(left, kChunk));
        if (w > 0) {
          s.input_offset += static_cast<std::size_t>(w);
          if (s.input_offset == s.input.size()) s.stdin_pipe.reset();
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          s.stdin_pipe.reset();  // EPIPE: the child closed its stdin; drop the rest (Python)
        }
      } else {
        const bool is_out = fd == s.stdout_pipe.get();
        const ssize_t r = ::read(fd, buf, sizeof buf);
        if (r > 0) {
          (is_out ? s.out : s.err).append(buf, static_cast<std::size_t>(r));
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          (is_out ? s.stdout_pipe : s.stderr_pipe).reset();
        }
      }
    }
  }
  // Every pipe is drained and closed; now the child itself.
  try {
    wait_deadline(deadline, timeout);
  } catch (const TimeoutExpired&) {
    throw TimeoutExpired(s.args, timeout, s.out, s.err);
  }
  CommunicateResult result{std::move(s.out), std::move(s.err)};
  s.out.clear();
  s.err.clear();
  return result;
}

void Popen::send_signal(int sig) {
  std::lock_guard lock(state_->mu);
  // Reap first if it exited: after that the pid may be recycled, so nothing is sent.
  if (state_->try_reap()) return;
  ::kill(state_->pid, sig);
}

void Popen::terminate() { send_signal(SIGTERM); }
void Popen::kill() { send_signal(SIGKILL); }

void Popen::killpg(int sig) {
  if (!state_->leads_group) {
    throw ValueError(
        "killpg: the child does not lead a process group of its own (start it with "
        "start_new_session = true or process_group = 0)");
  }
  // Under the state mutex, so a concurrent poll() cannot reap the child in between: while it is
  // unreaped its pid (the group id) is certainly not reused. ESRCH: nobody is left in the group.
  std::lock_guard lock(state_->mu);
  (void)::killpg(state_->pid, sig);
}

// ---- run()

void CompletedProcess::check_returncode() const {
  if (returncode != 0) throw CalledProcessError(returncode, args, stdout_, stderr_);
}

CompletedProcess run(std::vector<std::string> args, RunOptions options) {
  if (options.kill_group_on_timeout && !options.start_new_session && options.process_group != 0) {
    throw ValueError(
        "kill_group_on_timeout needs the child to lead its own process group: set "
        "start_new_session = true or process_group = 0");
  }
  PopenOptions popen{.stdin_ = options.stdin_,
                     .stdout_ = options.stdout_,
                     .stderr_ = options.stderr_,
                     .cwd = std::move(options.cwd),
                     .env = std::move(options.env),
                     .start_new_session = options.start_new_session,
                     .process_group = options.process_group};
  if (options.input) {
    if (options.stdin_ != Redirect::Inherit) {
      throw ValueError("stdin and input arguments may not both be used.");
    }
    popen.stdin_ = Redirect::Pipe;
  }
  if (options.capture_output) {
    if (options.stdout_ != Redirect::Inherit || options.stderr_ != Redirect::Inherit) {
      throw ValueError("stdout and stderr arguments may not be used with capture_output.");
    }
    popen.stdout_ = Redirect::Pipe;
    popen.stderr_ = Redirect::Pipe;
  }
  Popen process(std::move(args), std::move(popen));
  CommunicateResult out;
  try {
    const std::string input = options.input.value_or(std::string());
    out =
        options.timeout ? process.communicate(input, *options.timeout) : process.communicate(input);
  } catch (...) {
    // Python: kill the child and wait for it before re-raising (TimeoutExpired included). With
    // kill_group_on_timeout the whole group goes, before the child is reaped (its pid, the
    // group's id, cannot have been reused).
    if (options.kill_group_on_timeout) {
      process.killpg(SIGKILL);
    } else {
      process.kill();
    }
    process.wait();
    throw;
  }
  CompletedProcess done{process.args(), process.wait(), std::move(out.stdout_),
                        std::move(out.stderr_)};
  if (options.check) done.check_returncode();
  return done;
}

}  // namespace concur::subprocess
