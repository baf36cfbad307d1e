// bench/manager_bench.cpp — mp::Manager's queue (Manager().Queue()) beside the floor of its
// transport, with bench/compare/python_manager_bench.py as the Python twin.
//
//   BM_Floor_socketpair_round_trip   8 bytes to a forked echo child over a socketpair and back: one
//                                    request/answer exchange with the server, at its cheapest
//   BM_ManagerQueue_PutGet           q.put(i); q.get() from one thread: two exchanges
//   BM_ManagerQueue_ProducerConsumer a producer thread puts, a consumer thread gets (blocking,
//                                    each on its own connection): items/s through the server,
//                                    queue maxsize 0 (arg 0) or 64 (arg 64)
//
// Run: ./build/release/bench/manager_bench [--benchmark_min_time=0.5]
//      python3 bench/compare/python_manager_bench.py
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <thread>

#include "concur/mp/managers.hpp"

namespace {

namespace mp = concur::mp;

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

void BM_Floor_socketpair_round_trip(benchmark::State& state) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    state.SkipWithError("socketpair");
    return;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    char buf[8];
    while (read_all(sv[1], buf, sizeof buf) && write_all(sv[1], buf, sizeof buf)) {
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  char buf[8] = {'1', '2', '3', '4', '5', '6', '7', '8'};
  for (auto _ : state) {
    if (!write_all(sv[0], buf, sizeof buf) || !read_all(sv[0], buf, sizeof buf)) {
      state.SkipWithError("echo child gone");
      break;
    }
  }
  ::close(sv[0]);
  ::waitpid(pid, nullptr, 0);
}

void BM_ManagerQueue_PutGet(benchmark::State& state) {
  mp::Manager manager;
  auto q = manager.Queue<std::int64_t>();
  std::int64_t i = 0;
  for (auto _ : state) {
    q.put(i++);
    benchmark::DoNotOptimize(q.get());
  }
}

void BM_ManagerQueue_ProducerConsumer(benchmark::State& state) {
  mp::Manager manager;
  auto q = manager.Queue<std::int64_t>(static_cast<std::size_t>(state.range(0)));
  constexpr std::int64_t kItems = 2000;
  for (auto _ : state) {
    std::thread consumer([&] {
      for (std::int64_t k = 0; k < kItems; ++k) benchmark::DoNotOptimize(q.get());
    });
    for (std::int64_t k = 0; k < kItems; ++k) q.put(k);
    consumer.join();
  }
  state.SetItemsProcessed(state.iterations() * kItems);
}

}  // namespace

BENCHMARK(BM_Floor_socketpair_round_trip)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ManagerQueue_PutGet)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ManagerQueue_ProducerConsumer)
    ->Arg(0)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
