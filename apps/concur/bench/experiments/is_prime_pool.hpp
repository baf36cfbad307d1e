// bench/experiments/is_prime_pool.hpp — the notes' is_prime experiment (seed 004) the way the
// notes write it: `with ThreadPoolExecutor() as pool: pool.map(is_prime, PRIMES)`, with
// concur::ThreadPoolExecutor beside Python's ThreadPoolExecutor (bench/compare/is_prime_pool.py).
// Python's pool is no faster than its serial loop (the GIL); concur's scales with the cores.
// The pools have --threads workers; by default Python runs the largest divisor of the 100
// numbers that fits half of --python-budget per row (is_prime already spends the full budget).
#pragma once

#include <cstdint>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// is_prime_task(n) is is_prime(n) registered with CONCUR_TASK: what the process pool rows map,
// and what `concur worker` serves to the Redis rows of is_prime_redis.
[[nodiscard]] bool is_prime_task(std::uint64_t n);

// make_is_prime_pool_experiment() is the experiment, for the registry.
[[nodiscard]] std::unique_ptr<Experiment> make_is_prime_pool_experiment();

}  // namespace concur::apps::bench
