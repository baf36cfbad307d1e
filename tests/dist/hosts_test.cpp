// concur::dist across "hosts": redis-server, the workers and the executor each in a network
// namespace of their own (support/netns.hpp), talking over veth links as over a network — and a
// network partition of one worker host. Skipped, with the reason, where this machine does not
// allow network namespaces.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "concur/dist/executor.hpp"
#include "concur/dist/redis.hpp"
#include "concur/dist/worker.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "support/netns.hpp"
#include "support/process_support.hpp"
#include "support/redis_server.hpp"
#include "support/test_support.hpp"

namespace concur::dist::test {

using namespace std::chrono_literals;
using concur::testing::NetworkLab;
using concur::testing::RedisServer;

constexpr auto kRemote = std::chrono::seconds(60);
constexpr const char* kUrlVariable = "CONCUR_TEST_REDIS_URL";  // the Redis of a worker's host

// net_id(path): the network namespace `path` (/proc/<pid>/ns/net) is in: which "host".
std::string net_id(const std::string& path) {
  char buf[64];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// host_id(ns): the id net_id() reads in namespace `ns` (the inode of its /run/netns file).
std::string host_id(const std::string& ns) {
  struct stat st {};
  if (::stat(("/run/netns/" + ns).c_str(), &st) != 0) return {};
  return "net:[" + std::to_string(st.st_ino) + "]";
}

// host_run(key, ms): counts its run in Redis (INCR key, through its host's address), sleeps ms,
// returns the host it ran on.
std::string host_run(std::string key, int ms) {
  const char* url = std::getenv(kUrlVariable);
  if (url == nullptr) throw RuntimeError("host_run outside a host worker");
  (void)Redis::connect(RedisUrl::parse(url)).command({"INCR", key});
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return net_id("/proc/self/ns/net");
}
CONCUR_TASK(host_run);

// run_host_worker(ns, url, lease_ms): a worker on a host: this process joins namespace `ns`
// before it starts any thread, then serves Redis at `url` (the server as that host reaches it).
void run_host_worker(std::string ns, std::string url, int lease_ms) {
  NetworkLab::enter(ns);
  ::setenv(kUrlVariable, url.c_str(), 1);
  WorkerOptions o;
  o.url = url;
  o.concurrency = 2;
  o.lease = std::chrono::milliseconds(lease_ms);
  o.connect_timeout = 2s;
  Worker w(o);
  w.run();
}
CONCUR_TASK(run_host_worker);

class DistHostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    lab_ = NetworkLab::create(2, why);
    if (!lab_) GTEST_SKIP() << "several hosts need network namespaces: " << why;
    server_.start(RedisServer::Options{
        .appendonly = false, .netns = lab_->server_ns(), .host = lab_->server_address()});
  }
  void TearDown() override {
    for (auto& w : workers_) {
      if (w->is_alive()) w->terminate();
      w->join();
    }
    server_.stop();
  }

  // start_worker(host, lease): a worker process on worker host `host` (1 or 2).
  void start_worker(int host, std::chrono::milliseconds lease) {
    const std::string url = "redis://" + lab_->server_address_from(host) + ":6379";
    auto p = std::make_unique<mp::Process>(run_host_worker, lab_->worker_ns(host), url,
                                           static_cast<int>(lease.count()));
    p->set_daemon(true);
    p->start();
    workers_.push_back(std::move(p));
  }
  long long counter(const std::string& key) {
    const Reply v = server_.client().command({"GET", key});
    return v.is_nil() ? 0 : v.as_integer();
  }

  std::unique_ptr<NetworkLab> lab_;
  RedisServer server_;
  std::vector<std::unique_ptr<mp::Process>> workers_;
};

// The executor (the test's namespace) reaches the server host over link 0; each worker host over
// its own link. Tasks run on both worker hosts, on neither the server's nor the test's.
TEST_F(DistHostsTest, WorkersOnTwoHostsServeAnExecutorOnAThird) {
  start_worker(1, 30s);
  start_worker(2, 30s);
  RedisExecutor ex(server_.url());
  std::vector<Future<std::string>> fs;
  for (int i = 0; i < 100; ++i) fs.push_back(ex.submit(host_run, std::string("runs"), 20));
  std::set<std::string> hosts;
  for (auto& f : fs) hosts.insert(f.result(kRemote));
  const std::set<std::string> expected{host_id(lab_->worker_ns(1)), host_id(lab_->worker_ns(2))};
  EXPECT_EQ(hosts, expected) << "every task ran on a worker host, and both hosts took tasks";
  EXPECT_EQ(hosts.count(net_id("/proc/self/ns/net")), 0u);
  EXPECT_EQ(counter("runs"), 100);
}

// A network partition: worker host 1 is cut off while it runs a task. Its lease expires, host 2
// takes the task over and its result is the one delivered; host 1's run, finished behind the
// partition, stores nothing (one success in the stats). Healed, host 1's worker serves again.
TEST_F(DistHostsTest, APartitionedHostsTaskIsTakenOverAndItsRunStoresNothing) {
  start_worker(1, 500ms);
  const std::string host1 = host_id(lab_->worker_ns(1));
  RedisExecutor ex(server_.url());
  Future<std::string> f = ex.submit(host_run, std::string("cut"), 2000);
  ASSERT_TRUE(concur::testing::poll_until(kRemote, [&] { return counter("cut") == 1; }));
  lab_->cut(1);
  start_worker(2, 500ms);
  const std::string host2 = host_id(lab_->worker_ns(2));
  EXPECT_EQ(f.result(kRemote), host2) << "the result of the run that took the task over";
  EXPECT_EQ(counter("cut"), 2);
  lab_->heal(1);
  std::this_thread::sleep_for(1500ms);  // host 1's run has ended behind the partition by now
  EXPECT_EQ(server_.client().command({"HGET", "concur:stats", "default:succeeded"}).as_integer(), 1)
      << "the partitioned run stored a second result";
  // Healed, host 1 reconnects (backoff at most 2 s) and takes tasks again.
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i)
    served = ex.submit(host_run, std::string("after"), 50).result(kRemote) == host1;
  if (!served) {
    // What Redis knows of the workers: heartbeats, and each consumer's pending count and idle time.
    std::string state = "heartbeats:";
    Redis r = server_.client();
    for (const Reply& e : r.command({"HGETALL", "concur:workers"}).elements) state += " " + e.str;
    for (const Reply& c :
         r.command({"XINFO", "CONSUMERS", "concur:q:default", "workers"}).elements) {
      state += "\nconsumer:";
      for (const Reply& field : c.elements)
        state +=
            " " + (field.type == Reply::Type::integer ? std::to_string(field.integer) : field.str);
    }
    // And whether host 1's worker process still lives (a signal that killed it: exit code -N).
    mp::Process& w1 = *workers_[0];
    const bool alive = w1.is_alive();
    const std::optional<int> code = w1.exitcode();
    state += alive ? "\nhost 1's worker is alive"
                   : "\nhost 1's worker exited: " + (code ? std::to_string(*code) : "?");
    ADD_FAILURE() << "host 1 never served again after the partition healed\n" << state;
  }
}

}  // namespace concur::dist::test
