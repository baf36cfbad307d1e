// The process-executor contract suite (tests/contract/process_executor_contract.hpp) for
// dist::RedisExecutor: CPython's ExecutorTest, ExecutorShutdownTest, WaitTest, AsCompletedTest and
// the Executor-level cases of test_process_pool.py, with the tasks run by `concur worker`-style
// worker processes through a private redis-server. What is specific to Redis (leases, retries,
// dead letters, restarts) is in tests/dist/executor_test.cpp.
//
// The suite's executor owns its workers (worker_pids(), none before the first submit, none after
// shutdown(wait=true)); a RedisExecutor does not — its workers are wherever users run them — so
// the factory's executor is RedisCluster: a RedisExecutor plus `workers` worker processes
// (dist::worker_main in an mp::Process, concurrency 1 each) on a key prefix of its own, started on
// the first submit and stopped (SIGTERM: a warm stop) by shutdown(wait=true).
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "concur/dist/executor.hpp"
#include "concur/dist/worker.hpp"
#include "concur/mp/process.hpp"
#include "contract/process_executor_contract.hpp"
#include "support/redis_server.hpp"

namespace {

// run_contract_worker(url, prefix): a worker process of the suite.
void run_contract_worker(std::string url, std::string prefix) {
  std::vector<std::string> args = {"worker", "--redis",       url, "--prefix",
                                   prefix,   "--concurrency", "1"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (concur::dist::worker_main(static_cast<int>(args.size()), argv.data()) != 0)
    throw concur::mp::SystemExit(1);
}
CONCUR_TASK(run_contract_worker);

// The suite's redis-server: one per test binary, started before the first test.
concur::testing::RedisServer* g_server = nullptr;

class RedisEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    server_.start();
    g_server = &server_;
  }
  void TearDown() override {
    g_server = nullptr;
    server_.stop();
  }

 private:
  concur::testing::RedisServer server_;
};

[[maybe_unused]] ::testing::Environment* const g_environment =
    ::testing::AddGlobalTestEnvironment(new RedisEnvironment);

class RedisCluster final : public concur::Executor {
 public:
  RedisCluster(const std::string& url, std::string prefix, std::size_t workers)
      : url_(url),
        prefix_(std::move(prefix)),
        workers_(workers),
        ex_(url, concur::dist::RedisOptions{.prefix = prefix_, .max_workers = workers}) {}
  ~RedisCluster() override {
    ex_.shutdown(true);
    stop_workers();
  }

  template <class R, class... P, class... A>
  auto submit(R (*fn)(P...), A&&... args) {
    start_workers();
    return ex_.submit(fn, std::forward<A>(args)...);
  }
  template <class R, class... P, class Calls>
  auto submit_batch(R (*fn)(P...), const Calls& calls) {
    start_workers();
    return ex_.submit_batch(fn, calls);
  }
  template <class R, class... P, class... Rest>
  auto map(R (*fn)(P...), Rest&&... rest) {
    start_workers();
    return ex_.map(fn, std::forward<Rest>(rest)...);
  }
  void shutdown(bool wait = true, bool cancel_futures = false) override {
    {
      std::scoped_lock lock(mu_);
      shut_ = true;
    }
    ex_.shutdown(wait, cancel_futures);
    if (wait) stop_workers();
  }
  [[nodiscard]] std::size_t max_workers() const noexcept override { return workers_; }
  [[nodiscard]] std::vector<pid_t> worker_pids() const {
    std::scoped_lock lock(mu_);
    std::vector<pid_t> pids;
    for (const auto& p : processes_)
      if (p->is_alive()) pids.push_back(p->pid());
    return pids;
  }

 protected:
  void execute(concur::detail::RunnablePtr) override {
    throw concur::UsageError("RedisExecutor runs registered tasks only");
  }

 private:
  void start_workers() {
    std::scoped_lock lock(mu_);
    if (started_ || shut_) return;
    started_ = true;
    for (std::size_t i = 0; i < workers_; ++i) {
      auto p = std::make_unique<concur::mp::Process>(run_contract_worker, url_, prefix_);
      p->set_daemon(true);
      p->start();
      processes_.push_back(std::move(p));
    }
  }
  void stop_workers() {
    std::vector<std::unique_ptr<concur::mp::Process>> processes;
    {
      std::scoped_lock lock(mu_);
      processes.swap(processes_);
    }
    for (auto& p : processes) p->terminate();  // SIGTERM: the worker stops warmly
    for (auto& p : processes) p->join();
  }

  std::string url_;
  std::string prefix_;
  std::size_t workers_;
  concur::dist::RedisExecutor ex_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<concur::mp::Process>> processes_;
  bool started_ = false;
  bool shut_ = false;
};

struct RedisClusterFactory {
  using executor_type = RedisCluster;
  static std::unique_ptr<executor_type> make(std::size_t workers) {
    static std::atomic<int> n{0};
    return std::make_unique<executor_type>(g_server->url(), "contract" + std::to_string(++n),
                                           workers);
  }
};

}  // namespace

namespace concur::testing::process_contract {
INSTANTIATE_TYPED_TEST_SUITE_P(RedisExecutor, ProcessExecutorContract, RedisClusterFactory);
}  // namespace concur::testing::process_contract
