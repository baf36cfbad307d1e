// bench/experiments/is_prime_redis.hpp — the notes' CPU experiment (seed 004's is_prime over the
// same numbers as is_prime_pool, with the same --quick scaling) through a dist::RedisExecutor whose
// workers are `concur worker --concurrency 1` processes: the notes' "分布式" step, beside
// is_prime_pool's threads and processes. Rows: "serial" (is_prime_pool's serial loop: the
// baseline of the speedups) and "redis workers N" for N = 1 and --threads.
//
// The experiment starts a private redis-server (kRedisServer, persistence off, a free loopback
// port, a fresh temporary --dir) and, per row, N worker processes (BenchConfig::concur_executable
// `worker --redis URL --concurrency 1 --prefix P`, a fresh key prefix per row); the clock starts
// once they have registered (their start-up is not timed) and covers the executor's construction,
// map(is_prime_task, numbers, chunksize) and its shutdown. Every result is checked. Workers are
// stopped with SIGTERM (SIGKILL after kStopTimeout) and reaped, redis-server likewise, on every
// path out. Without redis-server, or without a concur binary to run, the Redis rows are skipped
// with a note. No Python row: Celery and RQ are measured in bench/compare/dist.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// kRedisServer is the server the experiment runs (Debian's package; scripts/setup.sh installs it).
inline constexpr const char* kRedisServer = "/usr/bin/redis-server";

// redis_chunksize(count, workers) is the chunksize of the Redis rows: about ten chunks per worker
// (count / (10 × workers), at least 1): a chunk of the notes' numbers is tens of milliseconds of
// work against a loopback round trip well under one, and ten per worker keep the last chunk's
// tail short.
[[nodiscard]] std::size_t redis_chunksize(std::size_t count, unsigned workers);

// make_is_prime_redis_experiment() is the experiment, for the registry.
[[nodiscard]] std::unique_ptr<Experiment> make_is_prime_redis_experiment();

}  // namespace concur::apps::bench
