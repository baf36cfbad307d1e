// process_bench: mp::Process start + join per start method, beside the raw system calls it is
// built on (fork + waitpid, posix_spawn of a tiny program + waitpid) in the same run. Python's
// multiprocessing twin: bench/compare/python_process_bench.py.
//
//   StartJoin/<method>   Process(noop) constructed, start()ed and join()ed; per iteration.
//   RawForkWaitpid       fork(); child _exit(0); waitpid — the floor of the fork method.
//   RawSpawnTrue         posix_spawn("/bin/true") + waitpid — an exec of a small binary.
//   ValueIncrements      2 processes (fork) each add 1 to an mp::Value<long> kIncrements times
//                        under get_lock(); items = increments, both processes together.
//   QueueItems/PxC       P producer processes put kItems ints (in total) into an mp::Queue, C
//                        consumer processes get them; from the first start to the last join, as
//                        Python's twin (start-up included).
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "concur/mp/process.hpp"
#include "concur/mp/queues.hpp"
#include "concur/mp/shared_memory.hpp"

extern char** environ;

namespace mp = concur::mp;

namespace {

void noop() {}
CONCUR_TASK(noop);

constexpr std::int64_t kIncrements = 100'000;
constexpr std::int64_t kItems = 200'000;

void add_many(mp::Value<long>& v, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    std::scoped_lock lock(v.get_lock());
    v.set_value(v.value() + 1);
  }
}
CONCUR_TASK(add_many);

void produce(mp::Queue<std::int64_t>& q, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) q.put(i);
}
CONCUR_TASK(produce);

void consume(mp::Queue<std::int64_t>& q, std::int64_t n, mp::Value<std::int64_t>& out) {
  std::int64_t s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += q.get();
  std::scoped_lock lock(out.get_lock());
  out.set_value(out.value() + s);
}
CONCUR_TASK(consume);

void finish_all(benchmark::State& state, std::vector<mp::Process>& ps) {
  for (auto& p : ps) p.start();
  for (auto& p : ps) {
    p.join();
    if (p.exitcode() != 0) state.SkipWithError("child failed");
  }
}

void ValueIncrements(benchmark::State& state) {
  for (auto _ : state) {
    mp::Value<long> v(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 2; ++i)
      ps.emplace_back(mp::ProcessOptions{.start_method = mp::StartMethod::fork}, add_many, v,
                      kIncrements);
    finish_all(state, ps);
    if (v.value() != 2 * kIncrements) state.SkipWithError("lost increments");
  }
  state.SetItemsProcessed(state.iterations() * 2 * kIncrements);
}
BENCHMARK(ValueIncrements)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);

void QueueItems(benchmark::State& state) {
  const auto producers = static_cast<int>(state.range(0));
  const auto consumers = static_cast<int>(state.range(1));
  for (auto _ : state) {
    mp::Queue<std::int64_t> q;
    mp::Value<std::int64_t> out(0);
    std::vector<mp::Process> ps;
    const mp::ProcessOptions fork{.start_method = mp::StartMethod::fork};
    for (int i = 0; i < producers; ++i) ps.emplace_back(fork, produce, q, kItems / producers);
    for (int i = 0; i < consumers; ++i) ps.emplace_back(fork, consume, q, kItems / consumers, out);
    finish_all(state, ps);
    const std::int64_t per = kItems / producers;
    if (out.value() != producers * (per * (per - 1) / 2)) state.SkipWithError("lost items");
  }
  state.SetItemsProcessed(state.iterations() * kItems);
}
BENCHMARK(QueueItems)
    ->Args({1, 1})
    ->Args({2, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(1.0);

void StartJoin(benchmark::State& state, mp::StartMethod method) {
  // Warm-up: the first forkserver start also starts the server.
  {
    mp::Process p(mp::ProcessOptions{.start_method = method}, noop);
    p.start();
    p.join();
  }
  for (auto _ : state) {
    mp::Process p(mp::ProcessOptions{.start_method = method}, noop);
    p.start();
    p.join();
    if (p.exitcode() != 0) state.SkipWithError("child failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(StartJoin, fork, mp::StartMethod::fork)->UseRealTime()->MinTime(1.0);
BENCHMARK_CAPTURE(StartJoin, forkserver, mp::StartMethod::forkserver)->UseRealTime()->MinTime(1.0);
BENCHMARK_CAPTURE(StartJoin, spawn, mp::StartMethod::spawn)->UseRealTime()->MinTime(1.0);

void RawForkWaitpid(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(RawForkWaitpid)->UseRealTime()->MinTime(1.0);

void RawSpawnTrue(benchmark::State& state) {
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  for (auto _ : state) {
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) {
      state.SkipWithError("posix_spawn failed");
      break;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(RawSpawnTrue)->UseRealTime()->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
