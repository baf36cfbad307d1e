// The process-executor contract suite (tests/contract/process_executor_contract.hpp) for
// dist::RedisExecutor: CPython's ExecutorTest, ExecutorShutdownTest, WaitTest, AsCompletedTest and
// the Executor-level cases of test_process_pool.py, with the tasks run by `concur worker`-style
// worker processes through a private redis-server (remote_cluster.hpp). What is specific to Redis
// (leases, retries, dead letters, restarts) is in tests/dist/executor_test.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "concur/dist/executor.hpp"
#include "contract/process_executor_contract.hpp"
#include "contract/remote_cluster.hpp"
#include "support/redis_server.hpp"

namespace {

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

struct ClusterFactory {
  using executor_type =
      concur::testing::contract_cluster::RemoteCluster<concur::dist::RedisExecutor,
                                                       concur::dist::RedisOptions>;
  static std::unique_ptr<executor_type> make(std::size_t workers) {
    static std::atomic<int> n{0};
    return std::make_unique<executor_type>("--redis", g_server->url(),
                                           "contract" + std::to_string(++n), workers);
  }
};

}  // namespace

namespace concur::testing::process_contract {
INSTANTIATE_TYPED_TEST_SUITE_P(RedisExecutor, ProcessExecutorContract, ClusterFactory);
}  // namespace concur::testing::process_contract
