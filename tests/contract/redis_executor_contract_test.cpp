// The process-executor contract suite (tests/contract/process_executor_contract.hpp) for
// dist::RedisExecutor: CPython's ExecutorTest, ExecutorShutdownTest, WaitTest, AsCompletedTest and
// the Executor-level cases of test_process_pool.py, with the tasks run by `concur worker`-style
// worker processes through a private redis-server (remote_cluster.hpp). What is specific to Redis
// (leases, retries, dead letters, restarts) is in tests/dist/executor_test.cpp.
#include <gtest/gtest.h>

#include <string>

#include "concur/dist/executor.hpp"
#include "contract/process_executor_contract.hpp"
#include "contract/remote_cluster.hpp"
#include "support/redis_server.hpp"

namespace concur::testing::contract_cluster {

using Factory = ClusterFactory<concur::dist::RedisExecutor, concur::dist::RedisOptions,
                               concur::testing::RedisServer>;
template <>
std::string Factory::flag() {
  return "--redis";
}

[[maybe_unused]] ::testing::Environment* const g_environment =
    ::testing::AddGlobalTestEnvironment(new ServerEnvironment<concur::testing::RedisServer>);

}  // namespace concur::testing::contract_cluster

namespace concur::testing::process_contract {
INSTANTIATE_TYPED_TEST_SUITE_P(RedisExecutor, ProcessExecutorContract, contract_cluster::Factory);
}  // namespace concur::testing::process_contract
