// mp::Process and its start methods (see include/concur/mp/process.hpp and
// docs/internals/processes.md).
//
// A start is a LaunchInfo (who the child is, which task or class, the serialized arguments) plus
// descriptors. fork runs it in the forked caller; spawn posix_spawns /proc/self/exe with
// CONCUR_MP_CHILD=spawn and sends the LaunchInfo over a socket at descriptor 3; forkserver sends
// it to the fork server (itself a spawned copy, CONCUR_MP_CHILD=forkserver), which forks the child
// and answers with the child's pid, a pidfd and the read end of a pipe on which it will write the
// child's wait status (the child is the server's, so only the server can reap it).
// A fork server that dies (killed) is replaced by the next start, as Python's ensure_running():
// only a start it was serving at that moment fails; its children live on as orphans, watched
// through their pidfds (their exit status is lost: 255).
// The child side is entered from this file's static initializer, which runs after the user's
// translation units registered their tasks (link order: the program's objects come before
// libconcur_mp.a's), and never returns to main().
#include "concur/mp/process.hpp"

#include <cxxabi.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>

#include "concur/mp/shared_memory.hpp"  // OSError

extern char** environ;

namespace concur::mp {

namespace detail {

namespace {

constexpr const char* kChildEnv = "CONCUR_MP_CHILD";
constexpr int kBootstrapFd = 3;       // where a spawned child / the fork server finds its socket
constexpr std::size_t kMaxFds = 253;  // SCM_MAX_FD

[[noreturn]] void throw_os(int err, const char* what) { throw OSError(err, what); }

// ---- Descriptors

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void close_all(std::vector<int>& fds) noexcept {
  for (int& fd : fds) close_fd(fd);
  fds.clear();
}

std::vector<int> dup_all(const std::vector<int>& fds) {
  std::vector<int> out;
  out.reserve(fds.size());
  for (const int fd : fds) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
      const int err = errno;
      close_all(out);
      throw_os(err, "dup");
    }
    out.push_back(copy);
  }
  return out;
}

// ---- Frames: an 8-byte length, the bytes; descriptors ride on the length (SCM_RIGHTS).

bool write_all(int fd, const char* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// send_frame(sock, bytes, fds) returns 0, or the errno that stopped it.
int send_frame(int sock, std::string_view bytes, const std::vector<int>& fds) noexcept {
  if (fds.size() > kMaxFds) return EMSGSIZE;
  std::uint64_t len = bytes.size();
  iovec iov{&len, sizeof len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t w;
  do {
    w = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  if (w < 0) return errno;
  const auto* head = reinterpret_cast<const char*>(&len);
  if (static_cast<std::size_t>(w) < sizeof len &&
      !write_all(sock, head + w, sizeof len - static_cast<std::size_t>(w)))
    return errno;
  return write_all(sock, bytes.data(), bytes.size()) ? 0 : errno;
}

bool read_all(int fd, char* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// recv_frame(sock, bytes, fds) is false at EOF or on an error (errno set; 0 for a clean EOF).
bool recv_frame(int sock, std::string& bytes, std::vector<int>& fds) {
  std::uint64_t len = 0;
  iovec iov{&len, sizeof len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t r;
  do {
    r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    if (r == 0) errno = 0;
    return false;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const std::size_t at = fds.size();
    fds.resize(at + n);
    std::memcpy(fds.data() + at, CMSG_DATA(c), n * sizeof(int));
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    close_all(fds);
    errno = EMSGSIZE;
    return false;
  }
  auto* head = reinterpret_cast<char*>(&len);
  if (static_cast<std::size_t>(r) < sizeof len &&
      !read_all(sock, head + r, sizeof len - static_cast<std::size_t>(r)))
    return false;
  bytes.resize(len);
  return read_all(sock, bytes.data(), bytes.size());
}

// ---- What a child is told.

enum class Kind : std::uint8_t { task = 0, process_class = 1 };

struct LaunchInfo {
  std::string name;
  std::vector<std::uint32_t> identity;
  bool daemon = false;
  std::int32_t parent_pid = 0;
  std::string parent_name;
  Kind kind = Kind::task;
  std::string entry;    // the task's or the class's registered name
  std::string payload;  // the serialized arguments / object

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, identity, daemon, parent_pid, parent_name, kind, entry, payload);
  }
};

std::string encode(const LaunchInfo& info) {
  std::string out;
  StringOutBuf buf(out);
  std::ostream os(&buf);
  {
    OutputArchive ar(os);
    ar(info);
  }
  return out;
}

LaunchInfo decode(std::string_view bytes) {
  LaunchInfo info;
  MemoryInBuf buf(bytes);
  std::istream is(&buf);
  InputArchive ar(is);
  ar(info);
  return info;
}

// ---- This process.

struct Self {
  std::string name = "MainProcess";
  std::vector<std::uint32_t> identity;
  bool daemon = false;
  std::optional<ProcessInfo> parent;
  std::uint32_t counter = 0;  // children named so far
};

// The module's state is immortal (never destroyed): static destructors of the program (a static
// ProcessPoolExecutor, a static Manager) may still start, join or reap children after this file's
// statics would have been destroyed.
std::mutex& self_mu() {
  static auto* mu = new std::mutex;
  return *mu;
}
Self& self() {
  static auto* s = new Self;
  return *s;
}

std::string child_name(std::vector<std::uint32_t>& identity) {
  std::scoped_lock lock(self_mu());
  identity = self().identity;
  identity.push_back(++self().counter);
  std::string name = "Process-";
  for (std::size_t i = 0; i < identity.size(); ++i) {
    if (i != 0) name += ':';
    name += std::to_string(identity[i]);
  }
  return name;
}

std::atomic<bool> g_method_set{false};
std::atomic<StartMethod> g_method{StartMethod::forkserver};

}  // namespace

// ---- A started child, as its parent sees it.

struct ChildState {
  std::mutex mu;
  pid_t pid = 0;
  int pidfd = -1;      // for signals (and the sentinel of direct children)
  int status_fd = -1;  // forkserver children: the server writes the wait status here
  // orphaned: the fork server died before reporting this child's status; status_fd is now a
  // duplicate of pidfd (same descriptor number, so a sentinel handed out stays valid), readable
  // once the child exits.
  bool orphaned = false;
  std::optional<int> exitcode;
  std::string name;
  bool daemon = false;

  ChildState() = default;
  ChildState(const ChildState&) = delete;
  ChildState& operator=(const ChildState&) = delete;
  ~ChildState() {
    close_fd(pidfd);
    close_fd(status_fd);
  }

  [[nodiscard]] int sentinel() const noexcept { return status_fd >= 0 ? status_fd : pidfd; }

  static int decode_status(int status) noexcept {
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 255;
  }

  // collect_locked() reaps the child if it has exited; true when exitcode is known.
  bool collect_locked() {
    if (exitcode) return true;
    if (status_fd >= 0) {
      pollfd p{status_fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) return false;
      int status = 0;
      if (orphaned) {
        exitcode = 255;  // exited; its status went with the dead fork server: "unknown"
      } else if (read_all(status_fd, reinterpret_cast<char*>(&status), sizeof status)) {
        exitcode = decode_status(status);
      } else if (pidfd >= 0 && ::dup3(pidfd, status_fd, O_CLOEXEC) >= 0) {
        // The fork server died (killed) before reporting; the child may well still run, now an
        // orphan. Its pidfd tells when it exits (not how).
        orphaned = true;
        return collect_locked();
      } else {
        exitcode = 255;
      }
      close_fd(status_fd);
      return true;
    }
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return false;
    exitcode = r == pid ? decode_status(status) : 255;  // ECHILD: someone else reaped it
    return true;
  }

  // wait_until(deadline) is true once the child has exited and been reaped.
  bool wait_until(const concur::detail::Deadline& deadline) {
    for (;;) {
      int fd;
      {
        std::scoped_lock lock(mu);
        if (collect_locked()) return true;
        fd = sentinel();
      }
      int timeout_ms = -1;
      if (!deadline.is_infinite()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline.remaining());
        if (left.count() <= 0) {
          std::scoped_lock lock(mu);
          return collect_locked();
        }
        timeout_ms = static_cast<int>(std::min<long long>(left.count(), 60'000));
      }
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, timeout_ms);
      if (r < 0 && errno != EINTR) throw_os(errno, "poll");
    }
  }

  void signal(int sig) {
    std::scoped_lock lock(mu);
    if (collect_locked()) return;
    if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0 && errno != ESRCH)
      throw_os(errno, "pidfd_send_signal");
  }
};

namespace {

// ---- The children of this process (Python's _children), for active_children() and exit.

struct Children {
  std::mutex mu;
  std::vector<std::shared_ptr<ChildState>> live;
};
Children& children() {
  static auto* c = new Children;
  return *c;
}

void add_child(std::shared_ptr<ChildState> child) {
  std::scoped_lock lock(children().mu);
  children().live.push_back(std::move(child));
}

std::vector<std::shared_ptr<ChildState>> reap_children() {
  std::vector<std::shared_ptr<ChildState>> snapshot;
  {
    std::scoped_lock lock(children().mu);
    snapshot = children().live;
  }
  std::vector<std::shared_ptr<ChildState>> running;
  for (auto& c : snapshot) {
    std::scoped_lock lock(c->mu);
    if (!c->collect_locked()) running.push_back(c);
  }
  std::scoped_lock lock(children().mu);
  auto& live = children().live;
  live.erase(std::remove_if(live.begin(), live.end(),
                            [](const std::shared_ptr<ChildState>& c) {
                              std::scoped_lock l(c->mu);
                              return c->exitcode.has_value();
                            }),
             live.end());
  return running;
}

// ---- The fork server, client side.

struct ForkServer {
  std::mutex mu;  // one request at a time
  pid_t pid = 0;
  int control = -1;
  int pidfd = -1;                            // the server's: readable once it died
  std::vector<pid_t> retired;                // replaced servers not reaped yet
  std::atomic<bool> awaiting_answer{false};  // a start sent its request, waits for the answer
};
ForkServer& forkserver() {
  static auto* s = new ForkServer;
  return *s;
}

std::vector<std::string> spawn_env(const char* mode) {
  std::vector<std::string> env;
  const std::string prefix = std::string(kChildEnv) + "=";
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) env.emplace_back(*e);
  env.push_back(prefix + mode);
  return env;
}

// spawn_self(mode, child_end) runs /proc/self/exe with CONCUR_MP_CHILD=mode, `child_end` as
// descriptor 3, stdin from /dev/null and every other descriptor above 2 closed.
pid_t spawn_self(const char* mode, int child_end) {
  int fd = child_end;
  int moved = -1;
  if (fd == kBootstrapFd) {  // dup2(3, 3) would keep close-on-exec set
    moved = ::fcntl(fd, F_DUPFD_CLOEXEC, kBootstrapFd + 1);
    if (moved < 0) throw_os(errno, "fcntl");
    fd = moved;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, fd, kBootstrapFd);
  ::posix_spawn_file_actions_addclosefrom_np(&actions, kBootstrapFd + 1);
  sigset_t none;
  sigemptyset(&none);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<std::string> env = spawn_env(mode);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = "concur-mp-" + std::string(mode);
  char* argv[] = {arg0.data(), nullptr};
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, "/proc/self/exe", &actions, &attr, argv, envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (moved >= 0) ::close(moved);
  if (err != 0) throw_os(err, "posix_spawn");
  return pid;
}

int open_pidfd(pid_t pid) {
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) throw_os(errno, "pidfd_open");
  ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return static_cast<int>(fd);
}

void exit_function();

void register_exit_function() {
  static const bool registered = [] {
    std::atexit(&exit_function);
    return true;
  }();
  (void)registered;
}

// reap_retired_locked(flags) reaps the replaced servers that have exited (all of them, waiting,
// with flags 0). Call with forkserver().mu held.
void reap_retired_locked(int flags) {
  ForkServer& s = forkserver();
  std::erase_if(s.retired, [flags](pid_t pid) {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &status, flags);
    } while (r < 0 && errno == EINTR);
    return r != 0;  // reaped, or not ours any more (ECHILD)
  });
}

// retire_forkserver_locked() drops the current server (dead, or its connection broken): closing
// our end makes a live one report its last children and exit. The next start spawns a new one.
void retire_forkserver_locked() {
  ForkServer& s = forkserver();
  if (s.control < 0) return;
  close_fd(s.control);
  close_fd(s.pidfd);
  s.retired.push_back(s.pid);
  s.pid = 0;
  reap_retired_locked(WNOHANG);
}

// ensure_forkserver_locked() starts the server on first use, and again when the previous one died
// (Python's ForkServer.ensure_running). Call with forkserver().mu held.
void ensure_forkserver_locked() {
  ForkServer& s = forkserver();
  if (!s.retired.empty()) reap_retired_locked(WNOHANG);
  if (s.control >= 0) {
    pollfd p{s.pidfd, POLLIN, 0};
    if (s.pidfd < 0 || ::poll(&p, 1, 0) == 0) return;  // alive
    retire_forkserver_locked();
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_os(errno, "socketpair");
  try {
    s.pid = spawn_self("forkserver", sv[1]);
  } catch (...) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw;
  }
  ::close(sv[1]);
  s.control = sv[0];
  const long fd = ::syscall(SYS_pidfd_open, s.pid, 0);
  s.pidfd = fd >= 0 ? static_cast<int>(fd) : -1;  // without pidfds a dead server shows as EPIPE
  if (s.pidfd >= 0) ::fcntl(s.pidfd, F_SETFD, FD_CLOEXEC);
}

void stop_forkserver() {
  ForkServer& s = forkserver();
  std::scoped_lock lock(s.mu);
  if (s.control >= 0) {
    close_fd(s.control);  // EOF: the server reports its last children and exits
    close_fd(s.pidfd);
    s.retired.push_back(s.pid);
    s.pid = 0;
  }
  reap_retired_locked(0);
}

// ---- The child side.

// report_exception(name) prints the current exception as Python prints a child's traceback tail.
void report_exception(const std::string& process_name) {
  std::string text = "Process " + process_name + ":\n";
  try {
    throw;
  } catch (const Error& e) {
    text += e.what();  // concur errors already start with their Python name
  } catch (const std::exception& e) {
    text += demangle(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    text += t != nullptr ? demangle(t->name()) : std::string("unknown exception");
  }
  text += '\n';
  std::fflush(stdout);
  std::cout.flush();
  (void)!::write(2, text.data(), text.size());
}

// forget_parents_processes(): in a child made by fork(), the parent's children and fork server
// are not this process's. Runs in every forked child (pthread_atfork: a raw fork, another
// library's), so that its exit neither terminates and reaps the parent's daemonic children (a
// pool's workers) nor keeps the parent's fork server alive, and its starts do not go over the
// parent's fork server connection. Not locked: the child has one thread, and a parent thread may
// have held the mutexes. The children's descriptors stay open (copies of the parent's Process
// objects may still refer to them).
void forget_parents_processes() noexcept {
  ForkServer& s = forkserver();
  if (s.control >= 0) ::close(s.control);
  if (s.pidfd >= 0) ::close(s.pidfd);
  new (&children()) Children();
  new (&forkserver()) ForkServer();
}
[[maybe_unused]] const bool kForgetAtFork =
    ::pthread_atfork(nullptr, nullptr, &forget_parents_processes) == 0;

// become_child(info) turns this process's bookkeeping into the child's: its name and parent, no
// children, no fork server, stdin from /dev/null.
void become_child(const LaunchInfo& info) {
  forget_parents_processes();  // (again: a spawned child was not forked)
  new (&self_mu()) std::mutex();
  Self& s = self();
  s.name = info.name;
  s.identity = info.identity;
  s.daemon = info.daemon;
  s.counter = 0;
  s.parent = ProcessInfo{info.parent_name, info.parent_pid, false};
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::close(null);
  }
}

[[noreturn]] void finish_child(int code) {
  try {
    exit_function();  // the child's own children: daemons terminated, all joined
  } catch (...) {
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  ::_exit(code);
}

// run_body(name, body) runs the child's work and maps its outcome to an exit code.
template <class Body>
[[noreturn]] void run_body(const std::string& name, Body&& body) {
  int code = 0;
  try {
    body();
  } catch (const SystemExit& e) {
    code = e.code();
  } catch (...) {
    report_exception(name);
    code = 1;
  }
  finish_child(code);
}

// run_launch(info, fds) is the child of a spawn or forkserver start.
[[noreturn]] void run_launch(LaunchInfo& info, std::vector<int> fds) {
  become_child(info);
  run_body(info.name, [&] {
    if (info.kind == Kind::task) {
      const TaskEntry* task = find_task(info.entry);
      if (task == nullptr)
        throw UsageError("concur::mp: task '" + info.entry +
                         "' is not registered in this binary (CONCUR_TASK)");
      (void)task->invoke(info.payload, std::move(fds));
      return;
    }
    const ProcessClassEntry* cls = find_process_class(info.entry);
    if (cls == nullptr)
      throw UsageError("concur::mp: Process class '" + info.entry +
                       "' is not registered in this binary (CONCUR_PROCESS)");
    std::unique_ptr<Process> object(cls->make());
    {
      FdSource source(std::move(fds));
      ScopedFdSource scope(source);
      MemoryInBuf buf(info.payload);
      std::istream is(&buf);
      InputArchive ar(is);
      cls->load(*object, ar);
    }
    object->set_name(info.name);
    run_process(*object);
  });
}

// ---- The fork server itself.

[[noreturn]] void serve_forkserver(int control) {
  ::signal(SIGINT, SIG_IGN);  // Ctrl-C is for the parent; it stops us by closing `control`
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &chld, &old);
  const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  std::map<pid_t, int> status_pipes;  // child -> write end of its status pipe
  bool open = true;
  auto reap = [&](int flags) {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, flags);
      if (pid <= 0) return;
      const auto it = status_pipes.find(pid);
      if (it == status_pipes.end()) continue;
      (void)!::write(it->second, &status, sizeof status);
      ::close(it->second);
      status_pipes.erase(it);
    }
  };
  while (open) {
    pollfd p[2] = {{control, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((p[1].revents & POLLIN) != 0) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) > 0) {
      }
      reap(WNOHANG);
    }
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    std::string bytes;
    std::vector<int> fds;
    if (!recv_frame(control, bytes, fds)) break;
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
      close_all(fds);
      const std::int32_t failed = -errno;
      (void)send_frame(control, std::string_view(reinterpret_cast<const char*>(&failed), 4), {});
      continue;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(control);
      ::close(sfd);
      ::close(pipefd[0]);
      ::close(pipefd[1]);
      for (auto& [child, fd] : status_pipes) ::close(fd);
      ::signal(SIGINT, SIG_DFL);
      ::sigprocmask(SIG_SETMASK, &old, nullptr);
      LaunchInfo info;
      try {
        info = decode(bytes);
      } catch (...) {
        ::_exit(255);
      }
      run_launch(info, std::move(fds));
    }
    close_all(fds);
    if (pid < 0) {
      const std::int32_t failed = -errno;
      ::close(pipefd[0]);
      ::close(pipefd[1]);
      (void)send_frame(control, std::string_view(reinterpret_cast<const char*>(&failed), 4), {});
      continue;
    }
    status_pipes[pid] = pipefd[1];
    const long pidfd = ::syscall(SYS_pidfd_open, pid, 0);
    const std::int32_t answer = pid;
    std::vector<int> give{pipefd[0]};
    if (pidfd >= 0) give.push_back(static_cast<int>(pidfd));
    (void)send_frame(control, std::string_view(reinterpret_cast<const char*>(&answer), 4), give);
    ::close(pipefd[0]);
    if (pidfd >= 0) ::close(static_cast<int>(pidfd));
  }
  // The parent is gone or finished: report the remaining children as they exit, then leave.
  while (!status_pipes.empty()) {
    const std::size_t before = status_pipes.size();
    reap(0);
    if (status_pipes.size() == before) break;  // ECHILD: nothing left to wait for
  }
  ::_exit(0);
}

// dispatch_child() runs at static initialization: the worker side of spawn / forkserver.
int dispatch_child() {
  const char* mode = std::getenv(kChildEnv);
  if (mode == nullptr) return 0;
  const std::string m = mode;
  ::unsetenv(kChildEnv);
  if (m == "forkserver") serve_forkserver(kBootstrapFd);
  if (m != "spawn") return 0;
  std::string bytes;
  std::vector<int> fds;
  const bool ok = recv_frame(kBootstrapFd, bytes, fds);
  ::close(kBootstrapFd);
  if (!ok) ::_exit(255);  // the parent died before sending
  LaunchInfo info;
  try {
    info = decode(bytes);
  } catch (...) {
    ::_exit(255);
  }
  run_launch(info, std::move(fds));
}

}  // namespace

void run_process(Process& p) { p.run(); }

pid_t forkserver_pid() noexcept {
  std::scoped_lock lock(forkserver().mu);
  return forkserver().control >= 0 ? forkserver().pid : 0;
}

bool forkserver_awaiting_answer() noexcept { return forkserver().awaiting_answer.load(); }

namespace {
std::atomic<bool> g_exiting{false};  // set by exit_function

struct ExitHooks {
  std::mutex mu;
  std::vector<std::pair<pid_t, void (*)()>> hooks;  // (the process that added it, the hook)
};
ExitHooks& exit_hooks() {
  static auto* h = new ExitHooks;
  return *h;
}
}  // namespace

void add_exit_hook(void (*hook)()) {
  register_exit_function();
  ExitHooks& h = exit_hooks();
  std::scoped_lock lock(h.mu);
  h.hooks.emplace_back(::getpid(), hook);
}

bool exiting() noexcept { return g_exiting.load(); }

int count_threads() noexcept {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer starts one background thread of its own before the first user thread.
  if (n > 1) --n;
#endif
  return n;
}

namespace {

void exit_function() {
  g_exiting.store(true);
  std::vector<void (*)()> hooks;
  {
    ExitHooks& h = exit_hooks();
    std::scoped_lock lock(h.mu);
    for (const auto& [pid, hook] : h.hooks)
      if (pid == ::getpid()) hooks.push_back(hook);  // a forked child skips its parent's hooks
  }
  for (void (*hook)() : hooks) {
    try {
      hook();
    } catch (...) {
    }
  }
  std::vector<std::shared_ptr<ChildState>> live;
  {
    std::scoped_lock lock(children().mu);
    live = children().live;
  }
  bool server = false;
  {
    std::scoped_lock lock(forkserver().mu);
    server = forkserver().control >= 0 || !forkserver().retired.empty();
  }
  if (live.empty() && !server) return;  // the common case in a child
  for (auto& c : live)
    if (c->daemon) c->signal(SIGTERM);
  for (auto& c : live) c->wait_until(concur::detail::Deadline::infinite());
  {
    std::scoped_lock lock(children().mu);
    children().live.clear();
  }
  stop_forkserver();
}

}  // namespace

}  // namespace detail

// ---- Module functions

void set_start_method(StartMethod method, bool force) {
  if (detail::g_method_set.exchange(true) && !force)
    throw RuntimeError("context has already been set");
  detail::g_method.store(method);
}

StartMethod get_start_method() noexcept { return detail::g_method.load(); }

std::vector<StartMethod> get_all_start_methods() {
  return {StartMethod::forkserver, StartMethod::spawn, StartMethod::fork};
}

const char* to_string(StartMethod method) noexcept {
  switch (method) {
    case StartMethod::fork:
      return "fork";
    case StartMethod::spawn:
      return "spawn";
    case StartMethod::forkserver:
      return "forkserver";
  }
  return "?";
}

ProcessInfo current_process() {
  std::scoped_lock lock(detail::self_mu());
  return ProcessInfo{detail::self().name, ::getpid(), detail::self().daemon};
}

std::optional<ProcessInfo> parent_process() {
  std::scoped_lock lock(detail::self_mu());
  return detail::self().parent;
}

std::vector<ProcessInfo> active_children() {
  std::vector<ProcessInfo> out;
  for (auto& c : detail::reap_children()) out.push_back(ProcessInfo{c->name, c->pid, c->daemon});
  return out;
}

int cpu_count() noexcept {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

// ---- Process

Process::Process(Options options) { init(options); }

void Process::init(const Options& options) {
  std::vector<std::uint32_t> identity;
  name_ = detail::child_name(identity);
  if (!options.name.empty()) name_ = options.name;
  daemon_ = options.daemon.value_or(current_process().daemon);
  method_ = options.start_method.value_or(get_start_method());
  fork_with_threads_ = options.fork_with_threads;
  identity_ = std::move(identity);
  creator_ = ::getpid();
}

void Process::set_target(detail::AnyFn fn, Payload payload) {
  task_ = detail::find_task(fn);
  if (task_ == nullptr)
    throw UsageError(
        "concur::mp::Process: the target function is not registered; add CONCUR_TASK(fn) at "
        "namespace scope next to its definition");
  if (detail::task_name_ambiguous(task_->name))
    throw UsageError(
        std::string("concur::mp::Process: two different functions are registered as '") +
        task_->name + "'; give one another name with CONCUR_TASK_NAMED");
  args_ = std::move(payload.bytes);
  arg_fds_ = detail::dup_all(payload.fds);
}

Process::Process(Process&& other) noexcept
    : name_(std::move(other.name_)),
      daemon_(other.daemon_),
      method_(other.method_),
      fork_with_threads_(other.fork_with_threads_),
      closed_(other.closed_),
      task_(std::exchange(other.task_, nullptr)),
      args_(std::move(other.args_)),
      arg_fds_(std::move(other.arg_fds_)),
      identity_(std::move(other.identity_)),
      creator_(other.creator_),
      child_(std::move(other.child_)) {
  other.arg_fds_.clear();
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    detail::close_all(arg_fds_);
    name_ = std::move(other.name_);
    daemon_ = other.daemon_;
    method_ = other.method_;
    fork_with_threads_ = other.fork_with_threads_;
    closed_ = other.closed_;
    task_ = std::exchange(other.task_, nullptr);
    args_ = std::move(other.args_);
    arg_fds_ = std::move(other.arg_fds_);
    other.arg_fds_.clear();
    identity_ = std::move(other.identity_);
    creator_ = other.creator_;
    child_ = std::move(other.child_);
  }
  return *this;
}

Process::~Process() { detail::close_all(arg_fds_); }

void Process::check_open() const {
  if (closed_) throw ValueError("process object is closed");
}

void Process::set_daemon(bool daemonic) {
  check_open();
  if (child_) throw InvalidStateError("process has already started");
  daemon_ = daemonic;
}

void Process::run() {
  if (task_ == nullptr) return;  // Python: a Process without a target does nothing
  (void)task_->invoke(args_, detail::dup_all(arg_fds_));
}

void Process::start() {
  check_open();
  if (child_) throw InvalidStateError("cannot start a process twice");
  if (creator_ != ::getpid())
    throw InvalidStateError(
        "can only start a process object created by the "
        "current process");
  const ProcessInfo me = current_process();
  if (me.daemon) throw InvalidStateError("daemonic processes are not allowed to have children");
  detail::register_exit_function();

  detail::LaunchInfo info;
  info.name = name_;
  info.identity = identity_;
  info.daemon = daemon_;
  info.parent_pid = ::getpid();
  info.parent_name = me.name;
  const bool subclass = typeid(*this) != typeid(Process);
  std::vector<int> fds;  // borrowed: ours (arg_fds_) or the object's handles
  detail::FdSink sink;   // a subclass's handles; lives until the child has its copies
  if (method_ != StartMethod::fork) {
    if (!subclass) {
      info.kind = detail::Kind::task;
      if (task_ == nullptr)
        throw UsageError("concur::mp::Process: a Process without a target must be a subclass");
      info.entry = task_->name;
      info.payload = args_;
      fds = arg_fds_;
    } else {
      const detail::ProcessClassEntry* cls = detail::find_process_class(typeid(*this));
      if (cls == nullptr)
        throw UsageError("concur::mp::Process: the subclass " +
                         detail::demangle(typeid(*this).name()) +
                         " must be registered with CONCUR_PROCESS(Class) to start with " +
                         to_string(method_) + " (or use StartMethod::fork)");
      info.kind = detail::Kind::process_class;
      info.entry = cls->name;
      {
        detail::ScopedFdSink scope(sink);
        detail::StringOutBuf buf(info.payload);
        std::ostream os(&buf);
        try {
          OutputArchive ar(os);
          cls->save(*this, ar);
        } catch (const cereal::Exception& e) {
          throw PicklingError(e.what());
        }
      }
      fds = sink.fds;
    }
    if (fds.size() > detail::kMaxFds)
      throw PicklingError("more than 253 descriptors (handles) in one start");
  }

  auto child = std::make_shared<detail::ChildState>();
  child->name = name_;
  child->daemon = daemon_;

  switch (method_) {
    case StartMethod::fork: {
      const int threads = detail::count_threads();
      if (threads > 1 && !fork_with_threads_)
        throw RuntimeError(
            "the fork start method was asked for while this process "
            "runs " +
            std::to_string(threads) +
            " threads; a child forked from a multithreaded process can deadlock. "
            "Use forkserver or spawn, or Options{.fork_with_threads = true}");
      std::fflush(nullptr);
      std::cout.flush();
      const pid_t pid = ::fork();
      if (pid < 0) throw OSError(errno, "fork");
      if (pid == 0) {
        detail::LaunchInfo self_info = info;
        detail::become_child(self_info);
        detail::run_body(name_, [&] { detail::run_process(*this); });
      }
      child->pid = pid;
      child->pidfd = detail::open_pidfd(pid);
      break;
    }
    case StartMethod::spawn: {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        throw OSError(errno, "socketpair");
      pid_t pid = 0;
      try {
        pid = detail::spawn_self("spawn", sv[1]);
      } catch (...) {
        ::close(sv[0]);
        ::close(sv[1]);
        throw;
      }
      ::close(sv[1]);
      child->pid = pid;
      child->pidfd = detail::open_pidfd(pid);
      // The child reads the frame as it starts; a child that dies first only makes us see EPIPE,
      // and its exit code tells the rest.
      (void)detail::send_frame(sv[0], detail::encode(info), fds);
      ::close(sv[0]);
      break;
    }
    case StartMethod::forkserver: {
      detail::ForkServer& server = detail::forkserver();
      std::scoped_lock lock(server.mu);
      const std::string request = detail::encode(info);
      // A server that died since the last start is replaced by ensure_forkserver_locked(). One
      // that dies between that check and our send cannot have read the whole request (the send
      // failed), so nothing was started: replace it and send again, once.
      for (int attempt = 0;; ++attempt) {
        detail::ensure_forkserver_locked();
        const int err = detail::send_frame(server.control, request, fds);
        if (err == 0) break;
        detail::retire_forkserver_locked();
        if (attempt == 0 && (err == EPIPE || err == ECONNRESET)) continue;
        throw OSError(err, "fork server");
      }
      std::string answer;
      std::vector<int> got;
      server.awaiting_answer.store(true);
      const bool answered = detail::recv_frame(server.control, answer, got) && answer.size() == 4;
      server.awaiting_answer.store(false);
      if (!answered) {
        // The server died (killed) while serving this start: whether it forked the child is
        // unknown, so this start fails (a child it did fork runs unwatched: an orphan). The next
        // start spawns a new server.
        detail::close_all(got);
        detail::retire_forkserver_locked();
        throw OSError(EPIPE, "fork server (it died while starting " + name_ +
                                 "; the next start respawns it)");
      }
      std::int32_t pid = 0;
      std::memcpy(&pid, answer.data(), 4);
      if (pid <= 0) {
        detail::close_all(got);
        throw OSError(-pid, "fork server: fork");
      }
      child->pid = pid;
      child->status_fd = got.size() > 0 ? got[0] : -1;
      child->pidfd = got.size() > 1 ? got[1] : -1;
      break;
    }
  }
  detail::close_all(arg_fds_);  // the child has its own copies now
  child_ = child;
  detail::add_child(std::move(child));
}

void Process::join() { (void)join_until(concur::detail::Deadline::infinite()); }

bool Process::join_until(const concur::detail::Deadline& deadline) {
  check_open();
  if (creator_ != ::getpid()) throw InvalidStateError("can only join a child process");
  if (!child_) throw InvalidStateError("can only join a started process");
  const bool done = child_->wait_until(deadline);
  if (done) (void)detail::reap_children();
  return done;
}

bool Process::is_alive() {
  check_open();
  if (!child_ || creator_ != ::getpid()) return false;
  std::scoped_lock lock(child_->mu);
  return !child_->collect_locked();
}

std::optional<int> Process::exitcode() {
  check_open();
  if (!child_) return std::nullopt;
  std::scoped_lock lock(child_->mu);
  (void)child_->collect_locked();
  return child_->exitcode;
}

pid_t Process::pid() const noexcept { return child_ ? child_->pid : 0; }

int Process::sentinel() const noexcept { return child_ ? child_->sentinel() : -1; }

int detail::process_pidfd(const Process& p) noexcept { return p.child_ ? p.child_->pidfd : -1; }

void Process::terminate() {
  check_open();
  if (child_) child_->signal(SIGTERM);
}

void Process::kill() {
  check_open();
  if (child_) child_->signal(SIGKILL);
}

void Process::close() {
  if (closed_) return;
  if (child_) {
    std::scoped_lock lock(child_->mu);
    if (!child_->collect_locked())
      throw ValueError(
          "Cannot close a process while it is still running. You should "
          "first call join() or terminate().");
  }
  detail::close_all(arg_fds_);
  child_.reset();
  closed_ = true;
}

namespace detail {
namespace {
// The child side of spawn / forkserver: see the file comment. Defined last, so every other
// static of this file is initialized before it runs.
[[maybe_unused]] const int kDispatched = dispatch_child();
}  // namespace
}  // namespace detail

}  // namespace concur::mp
