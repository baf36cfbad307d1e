// bench/experiments/is_prime_redis.cpp — the is_prime_redis experiment (is_prime_redis.hpp): rows
// "serial" and "redis workers N", the workers `concur worker` processes serving is_prime_task
// from a private redis-server. Every process started here is a Child, stopped and reaped when it
// goes out of scope, so an exception (a timeout, a worker that exits) leaves nothing running.
#include "bench/experiments/is_prime_redis.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/experiments/is_prime.hpp"
#include "bench/experiments/is_prime_pool.hpp"
#include "bench/loopback.hpp"
#include "concur/dist/executor.hpp"
#include "concur/dist/redis.hpp"
#include "concur/dist/status.hpp"
#include "concur/executor.hpp"
#include "concur/subprocess.hpp"

namespace concur::apps::bench {
namespace {

namespace dist = ::concur::dist;  // not concur::apps::dist, the `concur worker` command
using Clock = std::chrono::steady_clock;

constexpr std::string_view kName = "is_prime_redis";
constexpr std::string_view kUnit = "numbers";
// kStartTimeout bounds redis-server's first PING and the workers' registration.
constexpr std::chrono::seconds kStartTimeout{10};
// kStopTimeout: how long a SIGTERMed process may take to exit before SIGKILL.
constexpr std::chrono::seconds kStopTimeout{10};
// kMapTimeout bounds one row's map (100 numbers take ~1 s on one worker): a worker that dies or
// hangs fails the row instead of the whole bench.
constexpr std::chrono::seconds kMapTimeout{120};
constexpr std::chrono::milliseconds kPollInterval{10};
constexpr std::string_view kNoPython =
    "no Python row: Celery/RQ are measured in bench/compare/dist";

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// Child: a process started with its standard streams on /dev/null; the destructor stops it
// (SIGTERM, SIGKILL after kStopTimeout) and reaps it.
class Child {
 public:
  explicit Child(std::vector<std::string> args) : process_(std::move(args), quiet()) {}
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // exited(): the exit status once the process has exited (reaped then), else nullopt.
  [[nodiscard]] std::optional<int> exited() { return process_.poll(); }
  // terminate(): SIGTERM, unless it has exited (stop() then waits for it).
  void terminate() noexcept {
    try {
      if (!process_.poll()) process_.terminate();
    } catch (const std::exception&) {
      // stop() still reaps it
    }
  }
  // stop(): terminate(), then wait up to kStopTimeout, then SIGKILL and wait. Never throws.
  void stop() noexcept {
    try {
      if (process_.poll()) return;
      process_.terminate();
      try {
        (void)process_.wait(kStopTimeout);
      } catch (const subprocess::TimeoutExpired&) {
        process_.kill();
        (void)process_.wait();
      }
    } catch (const std::exception&) {
      // Nothing left to do: Popen's destructor reaps it in the background.
    }
  }

 private:
  static subprocess::PopenOptions quiet() {
    subprocess::PopenOptions o;
    o.stdin_ = subprocess::Redirect::DevNull;
    o.stdout_ = subprocess::Redirect::DevNull;
    o.stderr_ = subprocess::Redirect::DevNull;
    return o;
  }

  subprocess::Popen process_;
};

// TempDir: a fresh temporary directory, removed with its contents when destroyed.
class TempDir {
 public:
  TempDir() {
    std::string templ =
        (std::filesystem::temp_directory_path() / "concur-bench-redis-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw_errno(errno, "mkdtemp " + templ);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // best effort: a temporary directory
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// ping(url): true when a redis-server answers PING at url (within 1 s).
bool ping(const std::string& url) {
  try {
    dist::Redis r = dist::Redis::connect(dist::RedisUrl::parse(url), std::chrono::seconds(1));
    return r.command({"PING"}).str == "PONG";
  } catch (const std::exception&) {
    return false;  // not listening yet
  }
}

// RedisServer: kRedisServer on a free loopback port, persistence off, its --dir a fresh temporary
// directory; the constructor returns once it answers PING (std::runtime_error if it exits or
// kStartTimeout passes). Stopped (SIGTERM) and reaped when destroyed.
class RedisServer {
 public:
  RedisServer() {
    for (int attempt = 1;; ++attempt) {
      if (launch(free_loopback_port())) return;
      if (attempt == 5) throw std::runtime_error("redis-server: no free port could be bound");
    }
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  [[nodiscard]] const std::string& url() const { return url_; }

 private:
  // launch(port): true once the server answers PING; false when the port was taken meanwhile.
  bool launch(std::uint16_t port) {
    const std::filesystem::path log = dir_.path() / "redis.log";
    url_ = fmt::format("redis://127.0.0.1:{}", port);
    process_ = std::make_unique<Child>(std::vector<std::string>{
        kRedisServer, "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", dir_.path().string(), "--logfile", log.string(),
        "--daemonize", "no"});
    const Clock::time_point deadline = Clock::now() + kStartTimeout;
    while (!ping(url_)) {
      if (const std::optional<int> status = process_->exited()) {
        process_.reset();
        const std::string text = read_log(log);
        if (text.find("Address already in use") != std::string::npos) return false;
        throw std::runtime_error(
            fmt::format("redis-server exited with status {}: {:.300}", *status, text));
      }
      if (Clock::now() >= deadline) {
        process_.reset();  // stops it
        throw std::runtime_error(
            fmt::format("redis-server did not answer PING within {} s", kStartTimeout.count()));
      }
      std::this_thread::sleep_for(kPollInterval);
    }
    return true;
  }

  static std::string read_log(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  TempDir dir_;  // declared first: outlives the server
  std::string url_;
  std::unique_ptr<Child> process_;
};

// Workers: n `concur worker --concurrency 1` processes serving the default queue under `prefix`;
// the constructor returns once all n have registered their heartbeat (std::runtime_error if one
// exits first or kStartTimeout passes). stop() — and the destructor — SIGTERM them all at once,
// then reap each (SIGKILL after kStopTimeout).
class Workers {
 public:
  Workers(const std::string& executable, const std::string& url, const std::string& prefix,
          unsigned n) {
    const Clock::time_point t0 = Clock::now();
    for (unsigned i = 0; i < n; ++i) {
      children_.push_back(std::make_unique<Child>(
          std::vector<std::string>{executable, "worker", "--redis", url, "--concurrency", "1",
                                   "--prefix", prefix, "--name", fmt::format("bench-{}", i)}));
    }
    dist::Redis redis = dist::Redis::connect(dist::RedisUrl::parse(url));
    const Clock::time_point deadline = t0 + kStartTimeout;
    while (dist::read_status(redis, prefix).workers.size() < n) {
      for (const auto& c : children_) {
        if (const std::optional<int> status = c->exited()) {
          throw std::runtime_error(fmt::format(
              "`{} worker --redis {}` exited with status {} before it registered (run it by hand "
              "to see why)",
              executable, url, *status));
        }
      }
      if (Clock::now() >= deadline) {
        throw std::runtime_error(fmt::format("{} concur workers did not register within {} s", n,
                                             kStartTimeout.count()));
      }
      std::this_thread::sleep_for(kPollInterval);
    }
    startup_seconds_ = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  ~Workers() { stop(); }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  void stop() noexcept {
    for (const auto& c : children_) c->terminate();
    for (const auto& c : children_) c->stop();
  }
  // startup_seconds(): from the first spawn until every worker had registered.
  [[nodiscard]] double startup_seconds() const { return startup_seconds_; }

 private:
  std::vector<std::unique_ptr<Child>> children_;
  double startup_seconds_ = 0.0;
};

std::string answer_name(bool prime) { return prime ? "prime" : "not prime"; }

// summarize(results, expected): the common answer of all the numbers, or how many disagree.
std::string summarize(const std::vector<bool>& results, bool expected) {
  const auto wrong =
      static_cast<std::size_t>(std::count(results.begin(), results.end(), !expected));
  if (wrong == 0) return answer_name(expected);
  if (wrong == results.size()) return answer_name(!expected);
  return fmt::format("{} of {} numbers say {}", wrong, results.size(), answer_name(!expected));
}

Row make_row(std::string mode, unsigned workers, std::size_t items, bool expected) {
  Row row;
  row.experiment = std::string(kName);
  row.mode = std::move(mode);
  row.language = "c++";
  row.workers = workers;
  row.items = items;
  row.full_items = kIsPrimeCount;
  row.unit = std::string(kUnit);
  row.expected = answer_name(expected);
  return row;
}

std::string redis_mode(unsigned n) { return fmt::format("redis workers {}", n); }

// run_serial: is_prime_pool's serial row, the baseline of this experiment's speedups.
Row run_serial(const std::vector<std::uint64_t>& numbers, bool expected) {
  std::vector<bool> results(numbers.size());
  Row row = make_row("serial", 1, numbers.size(), expected);
  row.baseline = true;
  row.seconds = seconds_of([&] {
    for (std::size_t i = 0; i < numbers.size(); ++i) results[i] = is_prime(numbers[i]);
  });
  row.answer = summarize(results, expected);
  row.note = "is_prime_pool's serial loop: the baseline of the speedups";
  return row;
}

// run_redis: `with RedisExecutor(url) as ex: results = list(ex.map(is_prime, numbers))` with n
// registered workers; the executor's start and shutdown are timed, the workers' start-up is not.
Row run_redis(const std::string& executable, const std::string& url,
              const std::vector<std::uint64_t>& numbers, unsigned n, bool expected) {
  const std::string prefix = fmt::format("concur-bench-{}", n);  // fresh keys per row
  Workers workers(executable, url, prefix, n);
  const std::size_t chunksize = redis_chunksize(numbers.size(), n);
  std::vector<bool> results;
  results.reserve(numbers.size());
  Row row = make_row(redis_mode(n), n, numbers.size(), expected);
  row.seconds = seconds_of([&] {
    dist::RedisExecutor ex(url, dist::RedisOptions{.prefix = prefix, .max_workers = n});
    try {
      for (const bool r : ex.map(is_prime_task, numbers,
                                 MapOptions{.timeout = kMapTimeout, .chunksize = chunksize})) {
        results.push_back(r);
      }
    } catch (...) {
      // Futures may be unsettled (a timeout): cancel them and bound the wait, or the
      // destructor's shutdown(true) would wait for workers that may never answer.
      (void)ex.shutdown(std::chrono::seconds(1), /*cancel_futures=*/true);
      throw;
    }
  });
  workers.stop();
  if (results.size() != numbers.size()) {
    throw std::runtime_error(
        fmt::format("{}: {} results for {} numbers", row.mode, results.size(), numbers.size()));
  }
  row.answer = summarize(results, expected);
  row.note = fmt::format(
      "{} x `concur worker --concurrency 1` on a private redis-server (registered in {}, "
      "untimed); chunksize {} (numbers / (10 x workers), at least 1)",
      n, format_seconds(workers.startup_seconds()), chunksize);
  return row;
}

// skip_reason(config): why the Redis rows cannot run here ("" when they can).
std::string skip_reason(const BenchConfig& config) {
  if (::access(kRedisServer, X_OK) != 0) {
    return fmt::format("{} is missing (scripts/setup.sh installs redis-server)", kRedisServer);
  }
  if (config.concur_executable.empty()) {
    return "no concur binary to run `concur worker` (only `concur bench` runs these rows)";
  }
  return {};
}

class IsPrimeRedisExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kName; }
  [[nodiscard]] std::string_view description() const override {
    return "is_prime x 100 through dist::RedisExecutor.map on 1 and --threads `concur worker` "
           "processes and a private redis-server, beside is_prime_pool's threads and processes "
           "(issue 16; no Python row: Celery/RQ are in bench/compare/dist)";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    // The reference answer, computed once; every row must agree with it.
    const bool expected = is_prime(kIsPrimeNumber);
    const std::size_t count = config.size == Size::kQuick ? kIsPrimeQuickCount : kIsPrimeCount;
    const std::vector<std::uint64_t> numbers(count, kIsPrimeNumber);
    std::vector<unsigned> counts = {1};
    if (config.threads != 1) counts.push_back(config.threads);

    std::vector<Row> rows;
    config.report_progress(fmt::format("{}: serial, {} numbers", kName, count));
    rows.push_back(run_serial(numbers, expected));

    if (const std::string skip = skip_reason(config); !skip.empty()) {
      for (const unsigned n : counts) {
        Row row = make_row(redis_mode(n), n, count, expected);
        row.skipped = true;
        row.answer = "skipped";
        row.note = fmt::format("skipped: {}; {}", skip, kNoPython);
        rows.push_back(std::move(row));
      }
      return rows;
    }
    try {
      config.report_progress(fmt::format("{}: starting redis-server", kName));
      const RedisServer redis;
      for (const unsigned n : counts) {
        config.report_progress(fmt::format("{}: {}, {} numbers", kName, redis_mode(n), count));
        rows.push_back(run_redis(config.concur_executable, redis.url(), numbers, n, expected));
      }
    } catch (const std::exception& e) {
      throw ExperimentError(e.what(), std::move(rows));  // keep the rows measured so far
    }
    rows.back().note += fmt::format("; {}", kNoPython);
    return rows;
  }
};

}  // namespace

std::size_t redis_chunksize(std::size_t count, unsigned workers) {
  return std::max<std::size_t>(1, count / (10 * std::max(1U, workers)));
}

std::unique_ptr<Experiment> make_is_prime_redis_experiment() {
  return std::make_unique<IsPrimeRedisExperiment>();
}

}  // namespace concur::apps::bench
