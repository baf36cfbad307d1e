// bench/python.cpp — spawning python3 with posix_spawnp and a stdout pipe.
#include "bench/python.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

extern char** environ;

namespace concur::apps::bench {
namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// which(name) is the absolute path of `name` as execvp would find it, or empty.
std::string which(const std::string& name) {
  if (name.find('/') != std::string::npos) return is_executable_file(name) ? name : std::string();
  // NOLINTNEXTLINE(concurrency-mt-unsafe): concur never modifies the environment.
  const char* path_env = std::getenv("PATH");
  const std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string_view::npos) end = path.size();
    std::string dir(path.substr(start, end - start));
    if (dir.empty()) dir = ".";
    std::string candidate = std::move(dir);
    candidate += '/';
    candidate += name;
    if (is_executable_file(candidate)) return candidate;
    start = end + 1;
  }
  return {};
}

// Pipe closes whichever ends are still open.
struct Pipe {
  std::array<int, 2> fd{-1, -1};
  Pipe() {
    if (::pipe2(fd.data(), O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  }
  ~Pipe() {
    close_end(0);
    close_end(1);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_end(int i) {
    const auto k = static_cast<std::size_t>(i);
    if (fd[k] >= 0) ::close(fd[k]);
    fd[k] = -1;
  }
};

}  // namespace

CaptureResult run_capture(const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::invalid_argument("run_capture: empty argv");
  Pipe out;
  posix_spawn_file_actions_t actions;
  if (int err = ::posix_spawn_file_actions_init(&actions); err != 0) {
    throw_errno(err, "posix_spawn_file_actions_init");
  }
  // dup2 clears O_CLOEXEC on the child's stdout; every other descriptor of ours stays closed.
  ::posix_spawn_file_actions_adddup2(&actions, out.fd[1], STDOUT_FILENO);

  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  pid_t pid = -1;
  const int err = ::posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (err != 0) throw_errno(err, fmt::format("cannot run {}", argv[0]));
  out.close_end(1);

  CaptureResult result;
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(out.fd[0], buf.data(), buf.size());
    if (n > 0) {
      result.out.append(buf.data(), static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw_errno(errno, "waitpid");
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

std::optional<PythonInfo> find_python(const std::string& name) {
  const std::string exe = which(name);
  if (exe.empty()) return std::nullopt;
  try {
    const CaptureResult r =
        run_capture({exe, "-I", "-c", "import sys; print(sys.version.split()[0])"});
    if (r.exit_code != 0) return std::nullopt;
    std::string version = r.out;
    while (!version.empty() && (version.back() == '\n' || version.back() == '\r')) {
      version.pop_back();
    }
    if (version.empty()) return std::nullopt;
    return PythonInfo{exe, version};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

nlohmann::json run_python(const PythonInfo& python, std::string_view script,
                          const std::vector<std::string>& args) {
  std::vector<std::string> argv = {python.executable, "-I", "-c", std::string(script)};
  argv.insert(argv.end(), args.begin(), args.end());
  const CaptureResult r = run_capture(argv);
  if (r.exit_code != 0) {
    throw std::runtime_error(fmt::format("{} exited with status {} (its stderr is above)",
                                         python.executable, r.exit_code));
  }
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    throw std::runtime_error(
        fmt::format("{} printed no JSON object: {:.200}", python.executable, r.out));
  }
  return j;
}

}  // namespace concur::apps::bench
