// concur/subprocess.hpp — Python's subprocess module: Popen, run(), CompletedProcess and the
// errors SubprocessError, TimeoutExpired, CalledProcessError, FileNotFoundError.
//
// Popen starts a program with posix_spawn (no fork: safe from a multithreaded parent), with each
// standard stream inherited, piped or sent to /dev/null; communicate(input, timeout) feeds stdin
// and drains stdout and stderr together with poll(2), so it never deadlocks on full pipes.
// run() is Popen + communicate + wait, killing the child on timeout as Python does.
// Process groups: start_new_session (setsid) and process_group (setpgid, Python 3.11) put the
// child at the head of its own group; then killpg() signals the child with every descendant that
// stayed in the group, and run(kill_group_on_timeout) kills that whole tree on timeout — Python's
// run() kills only the child, so the grandchildren of `sh -c 'cmd &'` survive it.
// Every pipe is O_CLOEXEC and the child keeps only fds 0-2 (Python's close_fds=True), so spawning
// from many threads at once leaks no descriptor into another child.
// Thread-safety: poll/wait/returncode/send_signal/terminate/kill may be called from any thread;
// communicate() calls are serialized (a second caller waits for the first to return).
// Lifetime: ~Popen never blocks on a running child; see ~Popen for how it is still reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"

namespace concur::subprocess {

// ---- Errors (Python's subprocess exceptions; not in errors.hpp because only this layer throws
// them). TimeoutExpired is deliberately not a concur::TimeoutError, as in Python.

// SubprocessError is the base of every error this module throws (subprocess.SubprocessError).
class CONCUR_EXPORT SubprocessError : public Error {
 public:
  using Error::Error;
};

// TimeoutExpired: a timeout given to Popen::wait/communicate or run() ran out. what() is
// "TimeoutExpired: Command '['sleep', '5']' timed out after 0.1 seconds". output() and
// stderr_output() hold what communicate()/run() had captured so far (empty otherwise).
class CONCUR_EXPORT TimeoutExpired : public SubprocessError {
 public:
  TimeoutExpired(std::vector<std::string> cmd, std::chrono::duration<double> timeout,
                 std::string output = {}, std::string stderr_output = {});
  [[nodiscard]] const std::vector<std::string>& cmd() const noexcept { return cmd_; }
  [[nodiscard]] std::chrono::duration<double> timeout() const noexcept { return timeout_; }
  [[nodiscard]] const std::string& output() const noexcept { return output_; }
  [[nodiscard]] const std::string& stderr_output() const noexcept { return stderr_; }

 private:
  std::vector<std::string> cmd_;
  std::chrono::duration<double> timeout_;
  std::string output_;
  std::string stderr_;
};

// CalledProcessError: run(check = true) or check_returncode() saw a non-zero exit status.
// what() is Python's message: "CalledProcessError: Command '['sh', '-c', 'exit 3']' returned
// non-zero exit status 3." or, for a signal, "... died with <Signals.SIGKILL: 9>."
class CONCUR_EXPORT CalledProcessError : public SubprocessError {
 public:
  CalledProcessError(int returncode, std::vector<std::string> cmd, std::string output = {},
                     std::string stderr_output = {});
  [[nodiscard]] int returncode() const noexcept { return returncode_; }
  [[nodiscard]] const std::vector<std::string>& cmd() const noexcept { return cmd_; }
  // output() is the captured stdout (Python's .output / .stdout); stderr_output() is .stderr.
  [[nodiscard]] const std::string& output() const noexcept { return output_; }
  [[nodiscard]] const std::string& stderr_output() const noexcept { return stderr_; }

 private:
  int returncode_;
  std::vector<std::string> cmd_;
  std::string output_;
  std::string stderr_;
};

// SpawnError: the program could not be started (Python raises OSError in the parent). errno_code()
// is the errno posix_spawn reported, filename() the program (or the cwd when that is missing).
// what() is "PermissionError: [Errno 13] Permission denied: 'prog'" (EACCES and EPERM, as Python)
// or "OSError: ...".
class CONCUR_EXPORT SpawnError : public SubprocessError {
 public:
  SpawnError(int errno_code, std::string filename);
  [[nodiscard]] int errno_code() const noexcept { return errno_; }
  [[nodiscard]] const std::string& filename() const noexcept { return filename_; }

 protected:
  SpawnError(const char* type_name, int errno_code, std::string filename);

 private:
  int errno_;
  std::string filename_;
};

// FileNotFoundError: the program (or the cwd) does not exist (errno ENOENT): "FileNotFoundError:
// [Errno 2] No such file or directory: 'no-such-program'".
class CONCUR_EXPORT FileNotFoundError : public SpawnError {
 public:
  explicit FileNotFoundError(std::string filename);
};

// ---- Options

// Redirect says what a child's standard stream is connected to.
enum class Redirect {
  Inherit,  // the parent's stream (Python: None)
  Pipe,     // a new pipe; the parent's end is Popen::stdin_fd()/stdout_fd()/stderr_fd() (PIPE)
  DevNull,  // /dev/null (DEVNULL)
  Stdout,   // stderr_ only: wherever stdout goes (STDOUT)
  Socket,   // a new stream socket pair instead of a pipe (what aio's subprocesses read and write
            // through their streams); the parent's end as for Pipe
};

// Environment replaces the child's whole environment (Python's env=).
using Environment = std::map<std::string, std::string>;

// PopenOptions configures a Popen. Fields end in '_' because stdin/stdout/stderr are C macros.
struct PopenOptions {
  Redirect stdin_ = Redirect::Inherit;
  Redirect stdout_ = Redirect::Inherit;
  Redirect stderr_ = Redirect::Inherit;  // may also be Redirect::Stdout
  // cwd: the child's working directory (empty: the parent's). A relative program path is found
  // relative to it, as in Python on POSIX.
  std::string cwd{};
  // env: when set, the child's entire environment. A program name without '/' is then looked up
  // in env's PATH (or /bin:/usr/bin when env has no PATH), as Python's os.get_exec_path(env).
  std::optional<Environment> env{};
  // start_new_session: the child calls setsid() before the program runs (Python's
  // start_new_session=True): it leads a new session and a new process group, both with its pid
  // as id, with no controlling terminal (a terminal's Ctrl-C no longer reaches it).
  bool start_new_session = false;
  // process_group: the child calls setpgid(0, *process_group) before the program runs (Python
  // 3.11's process_group=): 0 makes it the leader of a new group whose id is its pid; another
  // value joins that existing group of this session (SpawnError "PermissionError" when there is
  // none). Negative → ValueError; together with start_new_session → ValueError (a session leader
  // cannot change its group; Python fails in the child with EPERM).
  std::optional<pid_t> process_group{};
};

// CommunicateResult is what communicate() returns: the whole output of each piped stream
// (empty for a stream that is not Redirect::Pipe, where Python returns None).
struct CommunicateResult {
  std::string stdout_;
  std::string stderr_;
};

// ---- Popen

class CONCUR_EXPORT Popen {
 public:
  // Popen(args, options) starts args[0] (searched in PATH when it has no '/') with arguments
  // args and returns once the child exists. Throws FileNotFoundError / SpawnError at once when
  // it cannot be executed (no child is left behind), ValueError when args is empty or
  // Redirect::Stdout is used for anything but stderr_.
  explicit Popen(std::vector<std::string> args, PopenOptions options = {});
  Popen(const Popen&) = delete;
  Popen& operator=(const Popen&) = delete;
  // Popen(Popen&&) takes over the child; the moved-from Popen may only be destroyed.
  Popen(Popen&& other) noexcept;
  Popen& operator=(Popen&&) = delete;
  // ~Popen() closes the parent's pipe ends. It never blocks: a child that already exited is
  // reaped here; a child still running is left running (as Python does, which only warns) and
  // a small detached background thread waits for it, so it never stays a zombie.
  ~Popen();

  [[nodiscard]] const std::vector<std::string>& args() const noexcept;
  [[nodiscard]] int pid() const noexcept;
  // stdin_fd()/stdout_fd()/stderr_fd(): the parent's end of a Redirect::Pipe stream, -1 when
  // the stream is not a pipe or was closed (communicate() closes them once drained).
  [[nodiscard]] int stdin_fd() const noexcept;
  [[nodiscard]] int stdout_fd() const noexcept;
  [[nodiscard]] int stderr_fd() const noexcept;
  // release_stdin_fd()/release_stdout_fd()/release_stderr_fd(): hands the parent's end over to
  // the caller (who closes it); -1 when there is none. communicate() no longer sees that stream.
  [[nodiscard]] int release_stdin_fd() noexcept;
  [[nodiscard]] int release_stdout_fd() noexcept;
  [[nodiscard]] int release_stderr_fd() noexcept;
  // pidfd(): a descriptor that becomes readable once the child exits (Linux >= 5.3), -1 without
  // pidfds; owned by the Popen. What an event loop watches to learn of the exit (then poll()).
  [[nodiscard]] int pidfd() const noexcept;

  // poll() reaps the child if it has exited and returns its returncode, else nullopt. Never blocks.
  std::optional<int> poll();
  // wait() blocks until the child exits and returns its returncode. Pipes are not drained: a
  // child blocked writing to a full pipe makes this wait forever — use communicate().
  int wait();
  // wait(timeout) is wait() bounded by `timeout`; throws TimeoutExpired when the child is still
  // running then. The child is not killed (Python's rule).
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_deadline(detail::Deadline::after(timeout),
                         std::chrono::duration_cast<std::chrono::duration<double>>(timeout));
  }
  // returncode() is nullopt until the child has been reaped by poll/wait/communicate; then its
  // exit status, or -N when signal N killed it (Python's returncode).
  [[nodiscard]] std::optional<int> returncode() const;

  // communicate(input) writes `input` to stdin (when piped) and closes it, reads stdout and
  // stderr (when piped) to end of file concurrently, waits for the child, and returns both
  // outputs. Throws ValueError when input is non-empty but stdin is not a pipe, or when input
  // is given to a call after a communicate() that timed out (as Python). A child that closes
  // stdin early is fine (the rest of the input is dropped, no SIGPIPE reaches the parent).
  CommunicateResult communicate(const std::string& input = {});
  // communicate(input, timeout) is communicate() bounded by `timeout`: on expiry it throws
  // TimeoutExpired carrying the output read so far. The child is not killed; a later
  // communicate() continues where this one stopped and returns the whole output (Python's rule).
  template <class Rep, class Period>
  CommunicateResult communicate(const std::string& input,
                                std::chrono::duration<Rep, Period> timeout) {
    return communicate_deadline(input, detail::Deadline::after(timeout),
                                std::chrono::duration_cast<std::chrono::duration<double>>(timeout));
  }

  // send_signal(sig) sends `sig` to the child; does nothing once the child has been reaped (its
  // pid may belong to another process by then).
  void send_signal(int sig);
  // terminate() sends SIGTERM; kill() sends SIGKILL.
  void terminate();
  void kill();
  // killpg(sig) sends `sig` to the child's process group (Python: os.killpg(p.pid, sig)): the
  // child and every descendant still in the group, e.g. the background jobs of `sh -c 'cmd &'`.
  // Only for a child that leads its own group (start_new_session, or process_group = 0); else
  // ValueError, since the group would be someone else's — this process's own when inherited.
  // Unlike send_signal(), it is also sent once the child has been reaped: descendants may outlive
  // it, and Linux keeps a group's id from being reused while any member lives. A group with no
  // member left is not an error.
  void killpg(int sig);

 private:
  struct State;
  int wait_deadline(const detail::Deadline& deadline, std::chrono::duration<double> timeout);
  CommunicateResult communicate_deadline(const std::string& input, const detail::Deadline& deadline,
                                         std::chrono::duration<double> timeout);
  std::unique_ptr<State> state_;
};

// ---- run()

// RunOptions configures run(); the stream fields mean what PopenOptions' do.
struct RunOptions {
  // input: when set, sent to the child's stdin through a pipe (stdin_ must then stay Inherit).
  std::optional<std::string> input{};
  // capture_output: pipe stdout and stderr into the result (stdout_/stderr_ must stay Inherit).
  bool capture_output = false;
  // timeout: when set and exceeded, the child is killed and waited for, then TimeoutExpired is
  // thrown carrying the output captured so far.
  std::optional<std::chrono::nanoseconds> timeout{};
  // check: a non-zero returncode throws CalledProcessError.
  bool check = false;
  std::string cwd{};
  std::optional<Environment> env{};
  Redirect stdin_ = Redirect::Inherit;
  Redirect stdout_ = Redirect::Inherit;
  Redirect stderr_ = Redirect::Inherit;
  // start_new_session, process_group: as PopenOptions'.
  bool start_new_session = false;
  std::optional<pid_t> process_group{};
  // kill_group_on_timeout (beyond Python): at the timeout — and on any other exception after the
  // start — kill (SIGKILL) the child's whole process group instead of the child alone, so that
  // no descendant that stayed in the group survives run(). Needs the child to lead its own group:
  // start_new_session = true or process_group = 0, else ValueError (concur does not move the
  // child into a new group on its own: that also takes it out of the terminal's Ctrl-C).
  bool kill_group_on_timeout = false;
};

// CompletedProcess is run()'s result. stdout_ / stderr_ are the captured outputs (empty when not
// captured; Python has None) — named with '_' because stdout and stderr are C macros.
struct CONCUR_EXPORT CompletedProcess {
  std::vector<std::string> args;
  int returncode = 0;
  std::string stdout_;
  std::string stderr_;
  // check_returncode() throws CalledProcessError when returncode is non-zero.
  void check_returncode() const;
};

// run(args, options) runs the command, waits for it and returns a CompletedProcess. Throws
// FileNotFoundError / SpawnError when it cannot start, TimeoutExpired (child killed and reaped
// first), CalledProcessError with check, ValueError when capture_output is combined with
// stdout_/stderr_ or input with stdin_, or for kill_group_on_timeout without a group of the
// child's own. On any exception no child is left running (nor, with kill_group_on_timeout, any
// descendant that stayed in its group).
CONCUR_EXPORT CompletedProcess run(std::vector<std::string> args, RunOptions options = {});

}  // namespace concur::subprocess
