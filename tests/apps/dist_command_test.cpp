// `concur worker` and `concur dist status`: the binary (CONCUR_CLI_PATH) serving its built-in
// tasks to a RedisExecutor in this process, stopped warmly by SIGTERM; the status table and JSON;
// the same worker serving an AmqpExecutor (--amqp, a private RabbitMQ broker); bad arguments.
#include "dist/dist_command.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "concur/dist/amqp_executor.hpp"
#include "concur/dist/executor.hpp"
#include "concur/subprocess.hpp"
#include "support/process_support.hpp"
#include "support/rabbitmq_server.hpp"
#include "support/redis_server.hpp"

namespace {

namespace sp = concur::subprocess;
using concur::testing::RedisServer;
constexpr auto kRemote = std::chrono::seconds(60);

TEST(DistCommandTest, TheWorkerServesBuiltInTasksAndStopsWarmlyOnSigterm) {
  RedisServer server;
  server.start();
  sp::PopenOptions options;
  options.stdout_ = sp::Redirect::Pipe;
  options.stderr_ = sp::Redirect::Pipe;
  sp::Popen worker({CONCUR_CLI_PATH, "worker", "--redis", server.url(), "--concurrency", "2",
                    "--name", "cli-worker", "--lease", "5"},
                   options);
  concur::dist::RedisExecutor ex(server.url());
  EXPECT_EQ(ex.submit(concur::apps::dist::noop, std::int64_t{41}).result(kRemote), 41);

  concur::apps::dist::StatusOptions status;
  status.redis = server.url();
  std::ostringstream out, err;
  ASSERT_TRUE(
      concur::testing::poll_until(kRemote,
                                  [&] {
                                    out.str("");
                                    return concur::apps::dist::run_dist(status, out, err) == 0 &&
                                           out.str().find("cli-worker") != std::string::npos;
                                  }))
      << out.str() << err.str();
  EXPECT_NE(out.str().find("default"), std::string::npos) << out.str();
  status.json = true;
  out.str("");
  ASSERT_EQ(concur::apps::dist::run_dist(status, out, err), 0);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["queues"][0]["name"], "default");
  EXPECT_EQ(j["queues"][0]["succeeded"], 1);
  EXPECT_EQ(j["workers"][0]["name"], "cli-worker");

  worker.send_signal(SIGTERM);
  const sp::CommunicateResult done = worker.communicate({}, kRemote);
  EXPECT_EQ(worker.returncode(), 0) << done.stderr_;
  EXPECT_NE(done.stderr_.find("serving default from redis://127.0.0.1:"), std::string::npos)
      << done.stderr_;
  EXPECT_NE(done.stderr_.find("stopped (1 succeeded"), std::string::npos) << done.stderr_;
}

TEST(DistCommandTest, TheWorkerServesAnAmqpExecutorWithTheSameTasks) {
  if (!concur::testing::RabbitMqServer::available()) GTEST_SKIP() << "no rabbitmq-server";
  concur::testing::RabbitMqServer broker;
  broker.start();
  sp::PopenOptions options;
  options.stdout_ = sp::Redirect::Pipe;
  options.stderr_ = sp::Redirect::Pipe;
  sp::Popen worker({CONCUR_CLI_PATH, "worker", "--amqp", broker.url(), "--concurrency", "2"},
                   options);
  {
    concur::dist::AmqpExecutor ex(broker.url());
    EXPECT_EQ(ex.submit(concur::apps::dist::noop, std::int64_t{41}).result(kRemote), 41);
  }
  worker.send_signal(SIGTERM);
  const sp::CommunicateResult done = worker.communicate({}, kRemote);
  EXPECT_EQ(worker.returncode(), 0) << done.stderr_;
  EXPECT_NE(done.stderr_.find("serving default from amqp://guest@127.0.0.1:"), std::string::npos)
      << done.stderr_;
  EXPECT_NE(done.stderr_.find("stopped (1 succeeded"), std::string::npos) << done.stderr_;
  // One broker at a time; none reachable.
  sp::Popen both({CONCUR_CLI_PATH, "worker", "--amqp", broker.url(), "--redis", "redis://x"},
                 options);
  (void)both.communicate({}, kRemote);
  EXPECT_EQ(both.returncode(), 2);
  const std::string nowhere =
      "amqp://127.0.0.1:" + std::to_string(concur::testing::free_loopback_port()) + "/";
  sp::Popen unreachable({CONCUR_CLI_PATH, "worker", "--amqp", nowhere}, options);
  const sp::CommunicateResult out = unreachable.communicate({}, kRemote);
  EXPECT_EQ(unreachable.returncode(), 1) << out.stderr_;
  EXPECT_NE(out.stderr_.find("cannot connect to amqp://"), std::string::npos) << out.stderr_;
}

TEST(DistCommandTest, BadArgumentsAndNoRedis) {
  sp::PopenOptions options;
  options.stdout_ = sp::Redirect::Pipe;
  options.stderr_ = sp::Redirect::Pipe;
  sp::Popen bad({CONCUR_CLI_PATH, "worker", "--lease", "0"}, options);
  (void)bad.communicate({}, kRemote);
  EXPECT_EQ(bad.returncode(), 2);
  sp::Popen negative({CONCUR_CLI_PATH, "worker", "--processes", "--time-limit", "-1"}, options);
  (void)negative.communicate({}, kRemote);
  EXPECT_EQ(negative.returncode(), 2);
  // A time limit on a thread worker is refused before Redis is asked: a thread cannot be stopped.
  sp::Popen threads({CONCUR_CLI_PATH, "worker", "--time-limit", "5"}, options);
  const sp::CommunicateResult refused = threads.communicate({}, kRemote);
  EXPECT_EQ(threads.returncode(), 2);
  EXPECT_NE(refused.stderr_.find("time_limit needs processes (--processes)"), std::string::npos)
      << refused.stderr_;
  const std::uint16_t port = concur::testing::free_loopback_port();
  const std::string nowhere = "redis://127.0.0.1:" + std::to_string(port);
  sp::Popen unreachable({CONCUR_CLI_PATH, "worker", "--redis", nowhere}, options);
  const sp::CommunicateResult out = unreachable.communicate({}, kRemote);
  EXPECT_EQ(unreachable.returncode(), 1);
  EXPECT_NE(out.stderr_.find("cannot connect to Redis"), std::string::npos) << out.stderr_;
  concur::apps::dist::StatusOptions status;
  status.redis = nowhere;
  std::ostringstream o, e;
  EXPECT_EQ(concur::apps::dist::run_dist(status, o, e), 1);
  status.redis = "nonsense";
  EXPECT_EQ(concur::apps::dist::run_dist(status, o, e), 2);
}

}  // namespace
