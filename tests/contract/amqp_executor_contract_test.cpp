// The process-executor contract suite (tests/contract/process_executor_contract.hpp) for
// dist::AmqpExecutor: the suite RedisExecutor passes (redis_executor_contract_test.cpp), with
// `concur worker --amqp`-style worker processes through a private RabbitMQ broker
// (remote_cluster.hpp; one broker for the binary: ONE_PROCESS). What is specific to AMQP (delay
// queues, dead letters, redeliveries, the consumer timeout, a broker crash) is in
// tests/dist/amqp_executor_test.cpp.
#include <gtest/gtest.h>

#include <string>

#include "concur/dist/amqp_executor.hpp"
#include "contract/process_executor_contract.hpp"
#include "contract/remote_cluster.hpp"
#include "support/rabbitmq_server.hpp"

namespace concur::testing::contract_cluster {

using Factory = ClusterFactory<concur::dist::AmqpExecutor, concur::dist::AmqpOptions,
                               concur::testing::RabbitMqServer>;
template <>
std::string Factory::flag() {
  return "--amqp";
}

[[maybe_unused]] ::testing::Environment* const g_environment =
    ::testing::AddGlobalTestEnvironment(new ServerEnvironment<concur::testing::RabbitMqServer>);

}  // namespace concur::testing::contract_cluster

namespace concur::testing::process_contract {
INSTANTIATE_TYPED_TEST_SUITE_P(AmqpExecutor, ProcessExecutorContract, contract_cluster::Factory);
}  // namespace concur::testing::process_contract
