// tests/contract/remote_cluster.hpp — RemoteCluster: a distributed executor (RedisExecutor,
// AmqpExecutor) plus the worker processes the process-executor contract suite expects it to own.
// The suite's executor owns its workers (worker_pids(), none before the first submit, none after
// shutdown(wait=true)); a remote executor does not — its workers are wherever users run them — so
// the factory's executor is a RemoteCluster: the executor plus `workers` worker processes
// (dist::worker_main in an mp::Process, concurrency 1 each) on a prefix of its own, started on the
// first submit and stopped (SIGTERM: a warm stop) by shutdown(wait=true).
// Include in one test file per binary (it registers run_contract_worker).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "concur/dist/worker.hpp"
#include "concur/executor.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"

namespace concur::testing::contract_cluster {

// run_contract_worker(flag, url, prefix): a worker process of the suite (`worker <flag> <url>`,
// flag --redis or --amqp).
inline void run_contract_worker(std::string flag, std::string url, std::string prefix) {
  std::vector<std::string> args = {"worker", flag, url, "--prefix", prefix, "--concurrency", "1"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (concur::dist::worker_main(static_cast<int>(args.size()), argv.data()) != 0)
    throw concur::mp::SystemExit(1);
}
CONCUR_TASK(run_contract_worker);

template <class Ex, class Options>
class RemoteCluster final : public concur::Executor {
 public:
  // RemoteCluster(flag, url, prefix, workers): flag is the worker's broker option.
  RemoteCluster(std::string flag, const std::string& url, std::string prefix, std::size_t workers)
      : flag_(std::move(flag)),
        url_(url),
        prefix_(std::move(prefix)),
        workers_(workers),
        ex_(url, Options{.prefix = prefix_, .max_workers = workers}) {}
  ~RemoteCluster() override {
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
    throw concur::UsageError("a remote executor runs registered tasks only");
  }

 private:
  void start_workers() {
    std::scoped_lock lock(mu_);
    if (started_ || shut_) return;
    started_ = true;
    for (std::size_t i = 0; i < workers_; ++i) {
      auto p = std::make_unique<concur::mp::Process>(run_contract_worker, flag_, url_, prefix_);
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

  std::string flag_;
  std::string url_;
  std::string prefix_;
  std::size_t workers_;
  Ex ex_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<concur::mp::Process>> processes_;
  bool started_ = false;
  bool shut_ = false;
};

// ServerEnvironment<Server>: the binary's broker (RedisServer, RabbitMqServer), started before the
// first test and stopped after the last; current() while it runs.
template <class Server>
class ServerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    server_.start();
    current_ = &server_;
  }
  void TearDown() override {
    current_ = nullptr;
    server_.stop();
  }
  static Server& current() { return *current_; }

 private:
  Server server_;
  static inline Server* current_ = nullptr;
};

// ClusterFactory<Ex, Options, Server>: the suite's factory — a RemoteCluster on the binary's
// broker (`flag` for its workers: "--redis", "--amqp"), each on a prefix of its own.
template <class Ex, class Options, class Server>
struct ClusterFactory {
  using executor_type = RemoteCluster<Ex, Options>;
  static std::unique_ptr<executor_type> make(std::size_t workers) {
    static std::atomic<int> n{0};
    return std::make_unique<executor_type>(flag(), ServerEnvironment<Server>::current().url(),
                                           "contract" + std::to_string(++n), workers);
  }
  static std::string flag();
};

}  // namespace concur::testing::contract_cluster
