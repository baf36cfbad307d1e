// Notes "分布式": "to share work across machines, use Redis or RabbitMQ". The notes' CPU experiment
// (PRIMES = [112272535095293] * n mapped over is_prime) with the process pool replaced by a
// RedisExecutor — one line — and its "machines" played by two worker processes serving the same
// registered task through a private redis-server on this machine (loopback only). Every result
// is checked; the times of the process pool and of the Redis workers are printed, never asserted
// (the difference is the price of going through Redis). Needs redis-server (scripts/setup.sh);
// without it the example says so and exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"
#include "concur/dist/executor.hpp"
#include "concur/dist/redis.hpp"
#include "concur/dist/worker.hpp"

namespace {

constexpr std::uint64_t kNumber = 112272535095293;  // prime
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kCopies = 10;
#else
constexpr std::size_t kCopies = 100;
#endif

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  for (std::uint64_t i = 3; i <= n / i; i += 2)
    if (n % i == 0) return false;
  return true;
}
CONCUR_TASK(is_prime);

// worker(url): a "machine": myapp worker --redis URL --concurrency 1.
void worker(std::string url) {
  std::vector<std::string> args = {"worker", "--redis", url, "--concurrency", "1"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  (void)concur::dist::worker_main(static_cast<int>(args.size()), argv.data());
}
CONCUR_TASK(worker);

// free_port(): a port the kernel hands out for 127.0.0.1 (bound, then released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// count(results): how many are true; every one must be.
template <class Range>
std::size_t count(Range&& results) {
  std::size_t n = 0;
  for (const bool r : results) n += r ? 1 : 0;
  return n;
}

}  // namespace

int main() {
  if (::access("/usr/bin/redis-server", X_OK) != 0) {
    std::printf("redis-server is not installed (scripts/setup.sh installs it): skipped\n");
    return 0;
  }
  // A private redis-server on a free loopback port (another process may take the port first: a
  // few tries).
  std::string url;
  std::unique_ptr<concur::subprocess::Popen> redis;
  for (int tries = 0; tries < 5; ++tries) {
    const int port = free_port();
    concur::subprocess::PopenOptions o;
    o.stdout_ = concur::subprocess::Redirect::DevNull;
    o.stderr_ = concur::subprocess::Redirect::DevNull;
    redis = std::make_unique<concur::subprocess::Popen>(
        std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(port), "--bind",
                                 "127.0.0.1", "--save", "", "--appendonly", "no"},
        o);
    url = "redis://127.0.0.1:" + std::to_string(port);
    bool up = false;
    for (int i = 0; i < 500 && !up && !redis->poll(); ++i) {
      try {
        up = concur::dist::Redis::connect(concur::dist::RedisUrl::parse(url))
                 .command({"PING"})
                 .str == "PONG";
      } catch (const concur::Error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (up) break;
    if (!redis->poll()) redis->kill();
    redis->wait();
    redis.reset();
  }
  if (!redis) {
    std::printf("could not start redis-server\n");
    return 1;
  }

  const std::vector<std::uint64_t> primes(kCopies, kNumber);
  using clock = std::chrono::steady_clock;
  std::size_t ok_pool = 0, ok_redis = 0;
  double pool_s = 0, redis_s = 0;
  {
    const auto t0 = clock::now();
    concur::ProcessPoolExecutor ex(concur::ProcessPoolOptions{.max_workers = 2});
    ok_pool = count(ex.map(is_prime, primes));
    pool_s = std::chrono::duration<double>(clock::now() - t0).count();
  }
  concur::mp::Process machine1(worker, url);
  concur::mp::Process machine2(worker, url);
  machine1.start();
  machine2.start();
  {
    const auto t0 = clock::now();
    concur::dist::RedisExecutor ex(url);  // the one line that changed
    ok_redis = count(ex.map(is_prime, primes));
    redis_s = std::chrono::duration<double>(clock::now() - t0).count();
  }
  machine1.terminate();  // SIGTERM: each stops warmly
  machine2.terminate();
  machine1.join();
  machine2.join();
  redis->terminate();
  redis->wait();

  std::printf("process pool (2 processes)   cost: %.3f s, %zu/%zu prime\n", pool_s, ok_pool,
              kCopies);
  std::printf("redis workers (2 \"machines\") cost: %.3f s, %zu/%zu prime\n", redis_s, ok_redis,
              kCopies);
  return ok_pool == kCopies && ok_redis == kCopies && machine1.exitcode() == 0 &&
                 machine2.exitcode() == 0
             ? 0
             : 1;
}
