// bench/experiments/is_prime.hpp — experiment 1 of `concur bench`: the notes' CPU-bound test
// (seed 004), is_prime(112272535095293) for 100 copies of the number, serial, split over N
// concur::Threads, and the same in Python (serial and `threading`, bench/compare/is_prime.py).
// In Python the threads gain nothing (the GIL); in C++ they scale with the cores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// kIsPrimeNumber and kIsPrimeCount are the notes' PRIMES = [112272535095293] * 100.
inline constexpr std::uint64_t kIsPrimeNumber = 112272535095293;
inline constexpr std::size_t kIsPrimeCount = 100;
// kIsPrimeQuickCount: the C++ rows' numbers in --quick (is_prime, is_prime_pool, is_prime_redis).
inline constexpr std::size_t kIsPrimeQuickCount = 4;

// is_prime(n) is the notes' exact trial division: n < 2 is not prime, 2 is, other even numbers
// are not, else every odd i from 3 to floor(sqrt(n)) inclusive is tried as a divisor. Below 2^53
// the divisions are done in double precision, several per instruction (exact: see is_prime.cpp);
// `concur bench`, `concur serve` and `concur worker` all run this one.
[[nodiscard]] bool is_prime(std::uint64_t n);

// is_prime_by_remainder(n) is the same trial division written as the notes write it, one `n % i`
// per odd i: is_prime's reference in the tests and its baseline in bench/is_prime_bench.cpp.
[[nodiscard]] bool is_prime_by_remainder(std::uint64_t n);

// isqrt(n) is floor(sqrt(n)), exact for every 64-bit n.
[[nodiscard]] std::uint64_t isqrt(std::uint64_t n);

// make_is_prime_experiment() is the experiment, for the registry.
[[nodiscard]] std::unique_ptr<Experiment> make_is_prime_experiment();

}  // namespace concur::apps::bench
