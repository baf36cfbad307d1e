// bench/is_prime_bench.cpp — the notes' is_prime kernel (apps/concur/bench/experiments/
// is_prime.cpp): `concur bench`'s, `concur serve`'s and `concur worker`'s is_prime (divisions in
// double precision, vector blocks; AVX2 where the CPU has it) beside the plain `n % i` loop
// written as the notes write it, on the same numbers in the same run:
//   IsPrimeKernel/blocks/<number>        is_prime(number)
//   IsPrimeKernel/by_remainder/<number>  is_prime_by_remainder(number)
// Numbers: the notes' 112272535095293 (prime, seed 004's PRIMES) and 2^53 - 111 (prime; the
// largest number the double path takes, 9x the divisors).
// Items per second are numbers tested; both kernels try the same divisors.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "bench/experiments/is_prime.hpp"

namespace {

using concur::apps::bench::is_prime;
using concur::apps::bench::is_prime_by_remainder;

void register_numbers(benchmark::internal::Benchmark* b) {
  b->Arg(112272535095293)->Arg(9007199254740881)->Unit(benchmark::kMillisecond);
}

// IsPrimeKernel(state, kernel): kernel(number) per iteration; items per second are numbers tested.
void IsPrimeKernel(benchmark::State& state, bool (*kernel)(std::uint64_t)) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(kernel(n));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(IsPrimeKernel, blocks, &is_prime)->Apply(register_numbers);
BENCHMARK_CAPTURE(IsPrimeKernel, by_remainder, &is_prime_by_remainder)->Apply(register_numbers);

}  // namespace

BENCHMARK_MAIN();
