// aio subprocesses: a subprocess::Popen whose piped streams are socket pairs adopted as aio
// streams, and an exit watch on the child's pidfd in the loop's reactor (a short poll without
// pidfds).
#include "concur/aio/subprocess.hpp"

#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <utility>

#include "concur/aio/combinators.hpp"
#include "concur/aio/sync.hpp"

namespace concur::aio {
namespace detail {

namespace asio = boost::asio;

struct ProcessState : std::enable_shared_from_this<ProcessState> {
  explicit ProcessState(subprocess::Popen p) : popen(std::move(p)) {}
  ~ProcessState() {
    if (watch) (void)watch->release();  // the pidfd belongs to the Popen
  }
  ProcessState(const ProcessState&) = delete;
  ProcessState& operator=(const ProcessState&) = delete;

  subprocess::Popen popen;
  std::unique_ptr<asio::posix::stream_descriptor> watch;  // on popen.pidfd()
  bool watching = false;                                  // an async_wait on the pidfd is pending
  LoopBinding binding;
  WaitList waiters{binding};  // tasks in wait(), parked until the pidfd is readable
  LoopCore* loop = nullptr;

  // reap(): the exit status, if the child ended (never blocks).
  std::optional<int> reap() { return popen.poll(); }
  // arm(): one wait for the pidfd's readability (the child's exit); wakes every waiter then.
  void arm() {
    if (watching || !watch) return;
    watching = true;
    watch->async_wait(asio::posix::stream_descriptor::wait_read,
                      [self = shared_from_this()](const boost::system::error_code& /*ec*/) {
                        self->watching = false;
                        self->waiters.wake_all();  // they poll(); a spurious wake-up re-arms
                      });
  }
};

namespace {

Task<std::string> read_all(StreamReader reader) { co_return co_await reader.read(-1); }

subprocess::Redirect to_popen(subprocess::Redirect r) {
  // Piped streams are socket pairs: they become aio streams.
  return r == subprocess::Redirect::Pipe ? subprocess::Redirect::Socket : r;
}

}  // namespace
}  // namespace detail

struct ProcessAccess {
  static Process make(std::shared_ptr<detail::ProcessState> st) { return Process(std::move(st)); }
};

Process::Process(std::shared_ptr<detail::ProcessState> st) noexcept : st_(std::move(st)) {}
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::~Process() = default;

int Process::pid() const noexcept { return st_->popen.pid(); }

std::optional<int> Process::returncode() const noexcept { return st_->popen.returncode(); }

Task<int> Process::wait() {
  std::shared_ptr<detail::ProcessState> st = st_;  // the coroutine keeps the state alive
  for (;;) {
    if (std::optional<int> rc = st->reap()) co_return *rc;
    if (st->watch) {
      st->arm();
      co_await detail::Park(st->waiters, nullptr, "Process.wait()");
    } else {
      co_await sleep(std::chrono::milliseconds(5));  // no pidfd: poll
    }
  }
}

Task<subprocess::CommunicateResult> Process::communicate(std::string input) {
  std::optional<Task<std::string>> out;
  std::optional<Task<std::string>> err;
  // Both outputs are read at once, while stdin is written: no pipe fills up.
  if (stdout_) out.emplace(create_task(detail::read_all(*stdout_)));
  if (stderr_) err.emplace(create_task(detail::read_all(*stderr_)));
  if (stdin_) {
    try {
      if (!input.empty()) {
        stdin_->write(input);
        co_await stdin_->drain();
      }
    } catch (const ConnectionError&) {
      // the child stopped reading (BrokenPipeError / ConnectionResetError): Python ignores it
    }
    stdin_->close();
  } else if (!input.empty()) {
    throw ValueError("communicate: input given but stdin is not PIPE");
  }
  subprocess::CommunicateResult result;
  if (out) result.stdout_ = co_await *out;
  if (err) result.stderr_ = co_await *err;
  (void)co_await wait();
  co_return result;
}

void Process::send_signal(int sig) { st_->popen.send_signal(sig); }
void Process::terminate() { st_->popen.terminate(); }
void Process::kill() { st_->popen.kill(); }

namespace {

// Owned: the options with the fields SubprocessOptions only refers to copied.
struct Owned {
  explicit Owned(const SubprocessOptions& o)
      : options(o), cwd(o.cwd), env(o.env != nullptr ? std::optional(*o.env) : std::nullopt) {}
  SubprocessOptions options;
  std::string cwd;
  std::optional<subprocess::Environment> env;
};

Process start(std::vector<std::string> args, const Owned& owned) {
  const SubprocessOptions& options = owned.options;
  detail::LoopCore& loop = detail::running_core();
  subprocess::PopenOptions po;
  po.stdin_ = detail::to_popen(options.stdin_);
  po.stdout_ = detail::to_popen(options.stdout_);
  po.stderr_ = detail::to_popen(options.stderr_);
  po.cwd = owned.cwd;
  po.env = owned.env;
  auto st = std::make_shared<detail::ProcessState>(subprocess::Popen(std::move(args), po));
  st->loop = &loop;
  if (st->popen.pidfd() >= 0) {
    auto* io = static_cast<boost::asio::io_context*>(loop.owner().native_handle());
    st->watch = std::make_unique<boost::asio::posix::stream_descriptor>(*io, st->popen.pidfd());
  }
  Process p = ProcessAccess::make(st);
  if (options.stdin_ == PIPE) {
    p.stdin_ = detail::adopt_stream_socket(st->popen.release_stdin_fd(), options.limit).writer;
  }
  if (options.stdout_ == PIPE) {
    p.stdout_ = detail::adopt_stream_socket(st->popen.release_stdout_fd(), options.limit).reader;
  }
  if (options.stderr_ == PIPE) {
    p.stderr_ = detail::adopt_stream_socket(st->popen.release_stderr_fd(), options.limit).reader;
  }
  return p;
}

Task<Process> exec_impl(std::vector<std::string> args, Owned owned) {
  co_return start(std::move(args), owned);
}

}  // namespace

Task<Process> create_subprocess_exec(std::vector<std::string> args, SubprocessOptions options) {
  return exec_impl(std::move(args), Owned(options));
}

Task<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options) {
  std::vector<std::string> args{"/bin/sh", "-c", std::move(cmd)};
  return exec_impl(std::move(args), Owned(options));
}

}  // namespace concur::aio
