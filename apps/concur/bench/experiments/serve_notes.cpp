// bench/experiments/serve_notes.cpp — the serve_fanout and serve_is_prime experiments
// (serve_notes.hpp): concur serve's app in-process (CppService) and flask_notes_app.py under
// gunicorn (GunicornServer), loaded by the same client.
//
// The client is crawl::HttpClient (libcurl on the aio loop, keep-alive connections where the
// server keeps them: gunicorn's gthread worker and concur do, its sync workers do not), one per
// load, each GET bounded by kServeGetTimeout; a response counts when it is a 200 with the expected
// body. A response ends at its Content-Length, not at the connection's close: a gunicorn worker's
// ProcessPoolExecutor forks its processes while a request is open, and they keep that connection's
// socket open after the worker has answered. A load is one aio::run on the calling thread: n
// client tasks, each sending its requests one after another (closed loop), all awaited with
// aio::wait; a row's latencies are a load of one client. The servers run on threads (C++: the
// Service's loop and the App's pools) or in processes (gunicorn) of their own, so the client's
// loop only waits.
// Each server is warmed up before the rows of serve_is_prime (the App's process pool and each
// gunicorn worker's ProcessPoolExecutor start on their first /is_prime): kServeIsPrimeClients
// small requests at once, untimed (gunicorn's accepts are racy: a worker may still start its pool
// in the first timed request, ~0.1 s against Python's ~2 s per request).
#include "bench/experiments/serve_notes.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/experiments/is_prime.hpp"
#include "bench/loopback.hpp"
#include "bench/python.hpp"
#include "concur/aio.hpp"
#include "concur/crawl/http.hpp"
#include "concur/errors.hpp"
#include "concur/http/app.hpp"
#include "concur/http/server.hpp"
#include "embedded/kFlaskNotesAppPy.hpp"
#include "serve/serve_command.hpp"

extern char** environ;

namespace concur::apps::bench {
namespace {

namespace crawl = ::concur::crawl;  // not concur::apps::crawl, the `concur crawl` command
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kFanoutName = "serve_fanout";
constexpr std::string_view kIsPrimeName = "serve_is_prime";
// The notes' json.dumps of the fan-out page.
constexpr std::string_view kNotesJson =
    R"({"result_file": "file result", "result_db": "db result", "result_api": "api result"})";
// aio::run without its Ctrl-C handling: a Ctrl-C during `concur bench` ends it as before.
constexpr aio::RunOptions kRunOptions{.handle_sigint = false};
// kPollInterval: how often a starting gunicorn is asked for /hello, and a stopping one checked.
constexpr milliseconds kPollInterval{100};

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// ---- the client -------------------------------------------------------------------------------

// Probe: what the requests of one row got.
struct Probe {
  std::size_t planned = 0;        // requests the row meant to send
  std::size_t sent = 0;           // requests started (fewer when the deadline passed)
  std::size_t right = 0;          // answered 200 with the expected body
  std::string first_problem;      // the first error or unexpected body
  std::string first_body;         // the first 200's body
  std::vector<double> latencies;  // seconds per request answered, in completion order
  double seconds = 0.0;           // the load's wall time
};

// Load: the fixed inputs of one load, read by its client tasks (it outlives them).
struct Load {
  std::string url;
  std::string expected;  // the body every request must get
  std::size_t each = 0;  // requests per client
  Clock::time_point deadline;
};

// url_of(port, target): http://127.0.0.1:<port><target>.
std::string url_of(std::uint16_t port, std::string_view target) {
  return fmt::format("http://127.0.0.1:{}{}", port, target);
}

// client_options(): the loads' client: every GET bounded, no proxy from the environment.
crawl::ClientOptions client_options() {
  crawl::ClientOptions o;
  o.timeout = kServeGetTimeout;
  o.connect_timeout = kServeGetTimeout;
  o.decode_content = false;
  return o;
}

aio::Task<void> one_get(crawl::HttpClient* http, const Load* load, Probe* probe) {
  ++probe->sent;
  const Clock::time_point t0 = Clock::now();
  crawl::Response response;
  std::string problem;
  try {
    response = co_await http->fetch(crawl::Request(load->url));
  } catch (const CancelledError&) {
    throw;
  } catch (const std::exception& e) {
    problem = e.what();
  }
  if (problem.empty()) {
    probe->latencies.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (response.status != 200) {
      problem = fmt::format("HTTP {}: {:.200}", response.status, response.body);
    } else {
      if (probe->first_body.empty()) probe->first_body = response.body;
      if (response.body == load->expected) {
        ++probe->right;
      } else {
        problem = fmt::format("unexpected body {:.200}", response.body);
      }
    }
  }
  if (!problem.empty() && probe->first_problem.empty()) {
    probe->first_problem = fmt::format("GET {}: {}", load->url, problem);
  }
}

// client(load, probe): one closed-loop client: its requests one after another, none started
// after the deadline.
aio::Task<void> client(crawl::HttpClient* http, const Load* load, Probe* probe) {
  for (std::size_t i = 0; i < load->each && Clock::now() < load->deadline; ++i) {
    co_await one_get(http, load, probe);
  }
}

aio::Task<void> clients(const Load* load, std::size_t n, Probe* probe) {
  crawl::HttpClient http(client_options());
  std::vector<aio::Task<void>> tasks;
  tasks.reserve(n);
  for (std::size_t i = 0; i < n; ++i) tasks.push_back(aio::create_task(client(&http, load, probe)));
  (void)co_await aio::wait(tasks);
  for (aio::Task<void>& t : tasks) {
    if (const std::exception_ptr e = t.exception()) std::rethrow_exception(e);
  }
}

// run_load(port, target, expected, n, each): n clients of `each` requests on target.
Probe run_load(std::uint16_t port, std::string_view target, std::string expected, std::size_t n,
               std::size_t each) {
  Load load{.url = url_of(port, target),
            .expected = std::move(expected),
            .each = each,
            .deadline = Clock::now() + kServeLoadDeadline};
  Probe probe;
  probe.planned = n * each;
  probe.seconds = seconds_of([&] { aio::run(clients(&load, n, &probe), kRunOptions); });
  return probe;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

double throughput(const Probe& p) {
  return p.seconds > 0 ? static_cast<double>(p.latencies.size()) / p.seconds : 0.0;
}

// ---- the servers ------------------------------------------------------------------------------

// CppService: `concur serve`'s app on a free 127.0.0.1 port, one event loop, the pools' pending
// limits as run_serve sets them by default; stopped (a 1 s drain) when destroyed.
class CppService {
 public:
  CppService(const serve::NotesOptions& notes, std::size_t pool_threads, std::size_t processes)
      : app_(http::AppOptions{.thread_workers = pool_threads,
                              .process_workers = processes,
                              .max_thread_pending = 2 * pool_threads,
                              .max_process_pending = 8 * processes}),
        service_(app_, http::ServiceOptions{}) {
    serve::add_notes_routes(app_, notes);
    service_.start();
  }
  ~CppService() {
    service_.shutdown(std::chrono::seconds(1));
    service_.wait();
  }
  CppService(const CppService&) = delete;
  CppService& operator=(const CppService&) = delete;

  [[nodiscard]] std::uint16_t port() const { return service_.port(); }

 private:
  http::App app_;  // declared first: outlives the service
  http::Service service_;
};

// AppDir: flask_notes_app.py (embedded) written to a fresh temporary directory, removed with it.
class AppDir {
 public:
  AppDir() {
    std::string templ =
        (std::filesystem::temp_directory_path() / "concur-bench-flask-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw_errno(errno, "mkdtemp " + templ);
    path_ = templ;
    std::ofstream file(path_ / "flask_notes_app.py");
    file << embedded::kFlaskNotesAppPy;
    file.close();
    if (!file) throw std::runtime_error("cannot write flask_notes_app.py to " + path_.string());
  }
  ~AppDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // best effort: a temporary directory
  }
  AppDir(const AppDir&) = delete;
  AppDir& operator=(const AppDir&) = delete;

  [[nodiscard]] std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// missing_modules(python): which of flask and gunicorn the interpreter cannot import ("" if none);
// std::runtime_error when the interpreter does not run.
std::string missing_modules(const PythonInfo& python) {
  const CaptureResult r = run_capture(
      {python.executable, "-I", "-c",
       "import importlib.util as u; print(' and '.join(m for m in ('flask', 'gunicorn') "
       "if u.find_spec(m) is None))"});
  if (r.exit_code != 0) {
    throw std::runtime_error(
        fmt::format("{} exited with status {}", python.executable, r.exit_code));
  }
  std::string out = r.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// skip_reason(config): why the flask rows cannot run ("" when they can).
std::string skip_reason(const BenchConfig& config) {
  if (!config.python) return {};  // no Python rows at all
  const std::string missing = missing_modules(*config.python);
  if (missing.empty()) return {};
  return fmt::format(
      "{} cannot import {} (Debian's /usr/bin/python3 can: --python /usr/bin/python3)",
      config.python->executable, missing);
}

// status_of(url): the status of a GET, 0 when it fails (nothing listens yet), within 5 s.
aio::Task<int> status_of(std::string url) {
  crawl::ClientOptions o = client_options();
  o.timeout = std::chrono::seconds(5);
  crawl::HttpClient http(o);
  int status = 0;
  try {
    status = (co_await http.fetch(crawl::Request(url))).status;
  } catch (const CancelledError&) {
    throw;
  } catch (const std::exception&) {
    // Not listening yet.
  }
  co_return status;
}

// GunicornServer: `python -I -m gunicorn ... flask_notes_app:app` on a free loopback port, in a
// process group of its own, with extra environment variables; the constructor returns once
// /hello answers 200 (RuntimeError if gunicorn exits first or kServeStartTimeout passes). The
// destructor stops it: SIGTERM to the group (gunicorn's graceful stop), up to kServeStopTimeout,
// then SIGKILL to the group (the workers' pool processes included), then the master is reaped.
class GunicornServer {
 public:
  GunicornServer(const PythonInfo& python, const std::vector<std::string>& gunicorn_args,
                 const std::vector<std::string>& env)
      : port_(free_loopback_port()) {
    std::vector<std::string> argv = {python.executable,
                                     "-I",
                                     "-m",
                                     "gunicorn",
                                     "-b",
                                     fmt::format("127.0.0.1:{}", port_),
                                     "--chdir",
                                     dir_.path(),
                                     "--log-level",
                                     "warning",
                                     "--graceful-timeout",
                                     "5"};
    argv.insert(argv.end(), gunicorn_args.begin(), gunicorn_args.end());
    argv.emplace_back("flask_notes_app:app");
    spawn(argv, env);
    try {
      wait_ready();
    } catch (...) {
      stop();
      throw;
    }
  }
  ~GunicornServer() { stop(); }
  GunicornServer(const GunicornServer&) = delete;
  GunicornServer& operator=(const GunicornServer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  void spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    // The environment: ours, with env's NAME=value entries replacing any of the same name.
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const std::string_view name = entry.substr(0, entry.find('='));
      const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& v) {
        return std::string_view(v).substr(0, v.find('=')) == name;
      });
      if (!replaced) envs.emplace_back(entry);
    }
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> cargv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    std::vector<char*> cenv;
    for (const std::string& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
    // stdout (gunicorn prints nothing there) to /dev/null; stderr stays ours, so errors show.
    ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    // A group of its own (stopped as one); no signal blocked or ignored that this thread has.
    sigset_t none;
    sigset_t defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (const int s : {SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP}) sigaddset(&defaults, s);
    ::posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    ::posix_spawnattr_setpgroup(&attr, 0);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    const int err = ::posix_spawn(&pid_, cargv[0], &actions, &attr, cargv.data(), cenv.data());
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    if (err != 0) {
      pid_ = -1;
      throw_errno(err, "cannot run " + argv[0]);
    }
  }

  // exited(): whether the master has exited (not reaped: WNOWAIT keeps its pid, and so its group
  // id, ours until the reap in stop()).
  [[nodiscard]] bool exited() const {
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno != EINTR) return true;  // ECHILD: nothing left to wait for
    }
    return info.si_pid == pid_;
  }

  void wait_ready() const {
    const Clock::time_point deadline = Clock::now() + kServeStartTimeout;
    while (true) {
      if (exited()) {
        throw std::runtime_error("gunicorn exited before answering (its stderr is above)");
      }
      if (aio::run(status_of(url_of(port_, "/hello")), kRunOptions) == 200) return;
      if (Clock::now() > deadline) {
        throw std::runtime_error(
            fmt::format("gunicorn did not answer /hello on port {} within {} s", port_,
                        kServeStartTimeout.count()));
      }
      std::this_thread::sleep_for(kPollInterval);
    }
  }

  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    const Clock::time_point deadline = Clock::now() + kServeStopTimeout;
    while (!exited() && Clock::now() < deadline) std::this_thread::sleep_for(kPollInterval);
    ::kill(-pid_, SIGKILL);  // whatever of the group is left (the master is not reaped yet)
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  AppDir dir_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// ---- rows -------------------------------------------------------------------------------------

// answer_text(right, unit): "12 × the notes' JSON".
std::string answer_text(std::size_t right, std::string_view what) {
  return fmt::format("{} × {}", right, what);
}

// fill_answer(row, probe, what): the row's answer (responses that were right) and expected (every
// planned request right); the first problem goes to the note.
void fill_answer(Row& row, const Probe& probe, std::string_view what) {
  row.answer = answer_text(probe.right, what);
  row.expected = answer_text(probe.planned, what);
  if (!probe.first_problem.empty()) row.note += "; first problem: " + probe.first_problem;
}

Row skipped_row(std::string experiment, std::string mode, unsigned workers, std::string unit,
                std::size_t items, const std::string& reason) {
  Row row;
  row.experiment = std::move(experiment);
  row.mode = std::move(mode);
  row.language = "python";
  row.workers = workers;
  row.baseline = false;
  row.items = items;
  row.full_items = items;
  row.unit = std::move(unit);
  row.skipped = true;
  row.answer = "skipped";
  row.note = "skipped: " + reason;
  return row;
}

// ---- serve_fanout -----------------------------------------------------------------------------

// FanoutPlan: the sizes of serve_fanout.
struct FanoutPlan {
  double scale = 1.0;                // on the notes' three sleeps
  std::size_t latency_requests = 0;  // sequential requests whose median is the row's time
  std::size_t requests_each = 0;     // per client, in the kServeClients load
};

FanoutPlan fanout_plan(const BenchConfig& config) {
  switch (config.size) {
    case Size::kQuick:
      return {kServeQuickSleepScale, 3, 2};
    case Size::kFull:
      return {1.0, 9, 5};
    case Size::kDefault:
      break;
  }
  return {1.0, 5, 3};
}

// fanout_row: one row of serve_fanout from its latency probe and its load probe.
Row fanout_row(std::string mode, std::string language, bool serial, const FanoutPlan& plan,
               const Probe& latency, const Probe& load, const std::string& server) {
  Row row;
  row.experiment = std::string(kFanoutName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = serial ? 1 : 3;  // the reads in flight per request
  row.baseline = serial;
  row.items = 1;
  row.full_items = 1;
  row.unit = "page";
  row.seconds = median(latency.latencies);
  const auto [lo, hi] = std::minmax_element(latency.latencies.begin(), latency.latencies.end());
  row.note =
      fmt::format("median of {} sequential requests ({}..{}); {} clients x {}: {:.1f} req/s; {}",
                  latency.latencies.size(), latency.latencies.empty() ? "-" : format_seconds(*lo),
                  latency.latencies.empty() ? "-" : format_seconds(*hi), kServeClients,
                  plan.requests_each, throughput(load), server);
  if (plan.scale != 1.0) {
    row.note += fmt::format("; sleeps x{} (≈ {} with the notes' 0.1/0.2/0.3 s)", plan.scale,
                            format_seconds(row.seconds / plan.scale));
  }
  Probe both = latency;
  both.planned += load.planned;
  both.right += load.right;
  if (both.first_problem.empty()) both.first_problem = load.first_problem;
  fill_answer(row, both, "the notes' JSON");
  return row;
}

// measure_fanout(port, ...): the serial and pooled rows of one server.
std::vector<Row> measure_fanout(const BenchConfig& config, std::uint16_t port,
                                const std::string& prefix, const std::string& language,
                                const FanoutPlan& plan, const std::string& server) {
  std::vector<Row> rows;
  for (const bool serial : {true, false}) {
    const std::string target = serial ? "/serial" : "/";
    const std::string mode =
        fmt::format("{}{} page ({})", prefix, serial ? "serial" : "pooled", target);
    config.report_progress(fmt::format("{}: {}", kFanoutName, mode));
    const Probe latency = run_load(port, target, std::string(kNotesJson), 1, plan.latency_requests);
    const Probe load =
        run_load(port, target, std::string(kNotesJson), kServeClients, plan.requests_each);
    rows.push_back(fanout_row(mode, language, serial, plan, latency, load, server));
  }
  return rows;
}

class ServeFanoutExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kFanoutName; }
  [[nodiscard]] std::string_view description() const override {
    return "the notes' flask fan-out page served by concur serve's app in-process: read_file "
           "0.1 s, read_db 0.2 s, read_api 0.3 s one after another (/serial, 0.6 s) or on the "
           "thread pool at once (/, 0.3 s); latency and 8 clients' throughput, beside "
           "flask_notes_app.py on gunicorn gthread (issue 15)";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    const FanoutPlan plan = fanout_plan(config);
    const std::size_t pool_threads = 3 * kServeClients;
    serve::NotesOptions notes;
    auto scaled = [&](milliseconds d) {
      return milliseconds(static_cast<std::int64_t>(static_cast<double>(d.count()) * plan.scale));
    };
    notes.file = scaled(notes.file);
    notes.db = scaled(notes.db);
    notes.api = scaled(notes.api);

    std::vector<Row> rows;
    {
      CppService service(notes, pool_threads, 1);
      rows = measure_fanout(config, service.port(), "", "c++", plan,
                            fmt::format("concur::http, 1 loop, thread pool {}", pool_threads));
    }
    if (!config.python) return rows;
    try {
      const std::string skip = skip_reason(config);
      if (!skip.empty()) {
        rows.push_back(skipped_row(std::string(kFanoutName), "python serial page (/serial)", 1,
                                   "page", 1, skip));
        rows.push_back(
            skipped_row(std::string(kFanoutName), "python pooled page (/)", 3, "page", 1, skip));
        return rows;
      }
      config.report_progress(fmt::format("{}: starting gunicorn", kFanoutName));
      GunicornServer gunicorn(*config.python,
                              {"-k", "gthread", "--workers", "1", "--threads",
                               std::to_string(kServeClients), "--timeout", "120"},
                              {fmt::format("POOL_THREADS={}", pool_threads),
                               fmt::format("SLEEP_SCALE={}", plan.scale)});
      std::vector<Row> py =
          measure_fanout(config, gunicorn.port(), "python ", "python", plan,
                         fmt::format("flask on gunicorn gthread {} threads, pool {}", kServeClients,
                                     pool_threads));
      rows.insert(rows.end(), py.begin(), py.end());
    } catch (const std::exception& e) {
      throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
    }
    return rows;
  }
};

// ---- serve_is_prime ---------------------------------------------------------------------------

// IsPrimePlan: the sizes of serve_is_prime.
struct IsPrimePlan {
  bool quick = false;
  std::size_t cpp_sequential = 0;  // requests of the one-client row
  std::size_t cpp_each = 0;        // per client of the kServeIsPrimeClients row
  std::size_t python_sequential = 0;
  std::size_t python_each = 0;
};

IsPrimePlan is_prime_plan(const BenchConfig& config) {
  switch (config.size) {
    case Size::kQuick:
      return {true, 3, 2, 3, 2};
    case Size::kFull:
      return {false, 10, 10, 4, 2};
    case Size::kDefault:
      break;
  }
  // Python answers one request in ~2 s (10 numbers of ~1.1e14 in one process).
  return {false, 5, 5, 2, 1};
}

// expected_is_prime_json(numbers): json.dumps(dict(zip(numbers, map(is_prime, numbers)))).
std::string expected_is_prime_json(const std::vector<std::int64_t>& numbers) {
  std::vector<bool> results;
  results.reserve(numbers.size());
  for (const std::int64_t n : numbers) results.push_back(is_prime(static_cast<std::uint64_t>(n)));
  return serve::is_prime_json(numbers, results);
}

Row is_prime_row(std::string mode, std::string language, std::size_t clients, const Probe& probe,
                 const std::string& server, bool quick) {
  Row row;
  row.experiment = std::string(kIsPrimeName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = kServeProcesses;
  row.baseline = clients == 1;
  row.items = probe.planned;
  row.full_items = probe.planned;
  row.unit = "requests";
  row.seconds = probe.seconds;
  row.note = fmt::format("{} client{}: {:.1f} req/s, median latency {}; {}", clients,
                         clients == 1 ? "" : "s", throughput(probe),
                         format_seconds(median(probe.latencies)), server);
  if (quick) row.note += "; 10 primes near 1e9 (the notes' are ~1.1e14)";
  fill_answer(row, probe, "the expected JSON");
  return row;
}

// measure_is_prime: the one-client and the kServeIsPrimeClients rows of one server, and the first
// body it answered (for the byte-for-byte comparison).
std::vector<Row> measure_is_prime(const BenchConfig& config, std::uint16_t port,
                                  const std::string& target, const std::string& expected,
                                  const std::string& mode, const std::string& language,
                                  std::size_t sequential, std::size_t each,
                                  const std::string& server, bool quick, std::string* first_body) {
  // Warm-up, untimed: one small request per client, so that every process pool has started.
  (void)run_load(port, "/is_prime/7,9,11", R"({"7": true, "9": false, "11": true})",
                 kServeIsPrimeClients, 1);
  std::vector<Row> rows;
  config.report_progress(fmt::format("{}: {}, 1 client", kIsPrimeName, mode));
  const Probe one = run_load(port, target, expected, 1, sequential);
  rows.push_back(is_prime_row(mode + ", 1 client", language, 1, one, server, quick));
  config.report_progress(
      fmt::format("{}: {}, {} clients", kIsPrimeName, mode, kServeIsPrimeClients));
  const Probe many = run_load(port, target, expected, kServeIsPrimeClients, each);
  rows.push_back(is_prime_row(fmt::format("{}, {} clients", mode, kServeIsPrimeClients), language,
                              kServeIsPrimeClients, many, server, quick));
  *first_body = !one.first_body.empty() ? one.first_body : many.first_body;
  return rows;
}

class ServeIsPrimeExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kIsPrimeName; }
  [[nodiscard]] std::string_view description() const override {
    return "the notes' flask /is_prime/<10 numbers> (process_pool.map(is_prime, ...)) served by "
           "concur serve's app in-process with 2 worker processes, 1 and 4 clients, beside "
           "flask_notes_app.py on gunicorn --workers 2; bodies must be byte-identical (issue 15)";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    const IsPrimePlan plan = is_prime_plan(config);
    const auto& source = plan.quick ? kServeQuickNumbers : kServeIsPrimeNumbers;
    const std::vector<std::int64_t> numbers(source.begin(), source.end());
    std::string target = "/is_prime/";
    for (std::size_t i = 0; i < numbers.size(); ++i) {
      target += fmt::format("{}{}", i == 0 ? "" : ",", numbers[i]);
    }
    const std::string expected = expected_is_prime_json(numbers);

    std::vector<Row> rows;
    std::string cpp_body;
    {
      CppService service(serve::NotesOptions{}, 1, kServeProcesses);
      rows = measure_is_prime(
          config, service.port(), target, expected, fmt::format("process pool {}", kServeProcesses),
          "c++", plan.cpp_sequential, plan.cpp_each,
          fmt::format("concur::http, 1 loop, ProcessPoolExecutor({})", kServeProcesses), plan.quick,
          &cpp_body);
    }
    if (!config.python) return rows;
    const std::string mode = fmt::format("python gunicorn {} workers", kServeProcesses);
    std::string python_body;
    try {
      const std::string skip = skip_reason(config);
      if (!skip.empty()) {
        rows.push_back(skipped_row(std::string(kIsPrimeName), mode + ", 1 client", kServeProcesses,
                                   "requests", plan.python_sequential, skip));
        rows.push_back(skipped_row(
            std::string(kIsPrimeName), fmt::format("{}, {} clients", mode, kServeIsPrimeClients),
            kServeProcesses, "requests", kServeIsPrimeClients * plan.python_each, skip));
        return rows;
      }
      config.report_progress(fmt::format("{}: starting gunicorn", kIsPrimeName));
      GunicornServer gunicorn(*config.python,
                              {"--workers", std::to_string(kServeProcesses), "--timeout", "120"},
                              {"POOL_PROCESSES=1"});
      std::vector<Row> py = measure_is_prime(
          config, gunicorn.port(), target, expected, mode, "python", plan.python_sequential,
          plan.python_each,
          fmt::format("flask on gunicorn, {} sync workers, each ProcessPoolExecutor(1)",
                      kServeProcesses),
          plan.quick, &python_body);
      rows.insert(rows.end(), py.begin(), py.end());
    } catch (const std::exception& e) {
      throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
    }
    // The notes' point of the twin: the same JSON, byte for byte (Content-Type aside: flask's
    // view returns a str, text/html).
    if (cpp_body != python_body) {
      throw ExperimentError(
          fmt::format("concur's and flask's /is_prime bodies differ: concur {:.300}, flask {:.300}",
                      cpp_body, python_body),
          std::move(rows));
    }
    // Beside the twin: concur's throughput over flask's at the same client count (rows 0 and 1
    // are concur's 1 and kServeIsPrimeClients clients, rows 2 and 3 flask's).
    for (std::size_t i = 2; i < rows.size(); ++i) {
      Row& r = rows[i];
      r.note += "; body byte-identical to concur's";
      if (r.seconds_per_item() > 0.0) {
        r.note += fmt::format("; concur answers {:.1f}x as many requests a second",
                              r.seconds_per_item() / rows[i - 2].seconds_per_item());
      }
    }
    return rows;
  }
};

}  // namespace

std::unique_ptr<Experiment> make_serve_fanout_experiment() {
  return std::make_unique<ServeFanoutExperiment>();
}

std::unique_ptr<Experiment> make_serve_is_prime_experiment() {
  return std::make_unique<ServeIsPrimeExperiment>();
}

}  // namespace concur::apps::bench
