// The process-executor contract suite (tests/contract/process_executor_contract.hpp) for
// dist::AmqpExecutor: the suite RedisExecutor passes (redis_executor_contract_test.cpp), with
// `concur worker --amqp`-style worker processes through a private RabbitMQ broker
// (remote_cluster.hpp; one broker for the binary: ONE_PROCESS). What is specific to AMQP (delay
// queues, dead letters, redeliveries, the consumer timeout, a broker crash) is in
// tests/dist/amqp_executor_test.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "concur/dist/amqp_executor.hpp"
#include "contract/process_executor_contract.hpp"
#include "contract/remote_cluster.hpp"
#include "support/rabbitmq_server.hpp"

namespace {

// The suite's broker: one per test binary, started before the first test.
concur::testing::RabbitMqServer* g_server = nullptr;

class AmqpEnvironment : public ::testing::Environment {
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
  concur::testing::RabbitMqServer server_;
};

[[maybe_unused]] ::testing::Environment* const g_environment =
    ::testing::AddGlobalTestEnvironment(new AmqpEnvironment);

struct ClusterFactory {
  using executor_type = concur::testing::contract_cluster::RemoteCluster<concur::dist::AmqpExecutor,
                                                                         concur::dist::AmqpOptions>;
  static std::unique_ptr<executor_type> make(std::size_t workers) {
    static std::atomic<int> n{0};
    return std::make_unique<executor_type>("--amqp", g_server->url(),
                                           "contract" + std::to_string(++n), workers);
  }
};

}  // namespace

namespace concur::testing::process_contract {
INSTANTIATE_TYPED_TEST_SUITE_P(AmqpExecutor, ProcessExecutorContract, ClusterFactory);
}  // namespace concur::testing::process_contract
