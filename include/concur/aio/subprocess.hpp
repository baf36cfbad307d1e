// concur/aio/subprocess.hpp — asyncio's subprocesses: create_subprocess_exec / _shell start a
// child whose piped stdin / stdout / stderr are aio streams, and Process waits for it without
// blocking the loop.
//
// `auto p = co_await aio::create_subprocess_exec({"sort"}, {.stdin_ = aio::PIPE, .stdout_ =
// aio::PIPE});` then `auto [out, err] = co_await p.communicate("b\na\n");` or read p.stdout_ and
// `co_await p.wait()`. The child is started with posix_spawn (safe with threads), with close-on-
// exec everywhere but its three standard streams. Piped streams are stream sockets (socketpair)
// rather than pipes, so they share the TCP streams' machinery (backpressure, cancellation); a
// program that insists on a FIFO on its standard streams is the rare exception. The exit is
// watched through a pidfd on the loop's reactor: wait() never blocks the loop, and the child is
// reaped exactly once. A Process destroyed while its child runs leaves the child running (as
// Python does) but reaps it once it exits only if wait() was called; kill() first to stop it.
// Thread-safety: a Process belongs to the loop that started it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/subprocess.hpp"

namespace concur::aio {

// The redirections (Python's asyncio.subprocess.PIPE, DEVNULL, STDOUT; the default inherits).
inline constexpr subprocess::Redirect PIPE = subprocess::Redirect::Pipe;
inline constexpr subprocess::Redirect DEVNULL = subprocess::Redirect::DevNull;
inline constexpr subprocess::Redirect STDOUT = subprocess::Redirect::Stdout;

// SubprocessOptions: create_subprocess_exec/_shell's options (fields end in '_': stdin/stdout/
// stderr are C macros). Trivially destructible on purpose, like ConnectOptions: g++ 12 destroys an
// aggregate temporary inside a co_await expression twice, so the fields that own memory are views,
// copied by create_subprocess_exec/_shell before they return.
struct SubprocessOptions {
  subprocess::Redirect stdin_ = subprocess::Redirect::Inherit;
  subprocess::Redirect stdout_ = subprocess::Redirect::Inherit;
  subprocess::Redirect stderr_ = subprocess::Redirect::Inherit;  // may be STDOUT
  std::string_view cwd{};                                        // empty: the parent's
  const subprocess::Environment* env = nullptr;  // the child's whole environment (copied)
  std::size_t limit = kDefaultStreamLimit;       // the piped readers' limit
};
static_assert(std::is_trivially_destructible_v<SubprocessOptions>,
              "see SubprocessOptions' comment");

namespace detail {
struct ProcessState;  // src/aio/subprocess.cpp
}  // namespace detail

// Process: asyncio.subprocess.Process. Movable handle.
class CONCUR_EXPORT Process {
 public:
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  // stdin_, stdout_, stderr_: the piped streams (empty when that stream is not PIPE).
  std::optional<StreamWriter> stdin_;
  std::optional<StreamReader> stdout_;
  std::optional<StreamReader> stderr_;

  // pid(): the child's process id.
  [[nodiscard]] int pid() const noexcept;
  // returncode(): the exit status once wait() saw it (−N when a signal N ended it).
  [[nodiscard]] std::optional<int> returncode() const noexcept;
  // wait(): suspends until the child exits and returns its returncode (reaps it). Cancelling the
  // wait leaves the child running. Python's deadlock warning applies: with PIPE streams, read them
  // (or use communicate()) so the child is not stuck on a full pipe.
  Task<int> wait();
  // communicate(input): writes input to stdin (then closes it), reads stdout and stderr to EOF at
  // once, waits for the exit; returns both outputs (empty for a stream that is not PIPE). A
  // BrokenPipeError / ConnectionResetError on stdin (the child did not read it all) is ignored,
  // as Python does. Bound it in time with wait_for(p.communicate(...), timeout) (which raises
  // TimeoutError and leaves the child running: kill() it).
  Task<subprocess::CommunicateResult> communicate(std::string input = {});
  // send_signal(sig), terminate() (SIGTERM), kill() (SIGKILL): no effect once the child was
  // reaped.
  void send_signal(int sig);
  void terminate();
  void kill();

 private:
  friend struct ProcessAccess;
  explicit Process(std::shared_ptr<detail::ProcessState> st) noexcept;
  std::shared_ptr<detail::ProcessState> st_;
};

// create_subprocess_exec(args, options): starts args[0] (searched in PATH without a '/') with
// args when awaited. subprocess::FileNotFoundError / SpawnError when it cannot be executed,
// ValueError for an empty args, RuntimeError outside a running loop. Not a coroutine itself: the
// options are copied at the call.
CONCUR_EXPORT Task<Process> create_subprocess_exec(std::vector<std::string> args,
                                                   SubprocessOptions options = {});
// create_subprocess_shell(cmd, options): `/bin/sh -c cmd`.
CONCUR_EXPORT Task<Process> create_subprocess_shell(std::string cmd,
                                                    SubprocessOptions options = {});

}  // namespace concur::aio
