// bench/experiments/fib_pool.hpp — the notes' fib experiment (seed 000, 11-9 "多线程和多进程对比"):
// the naive fib(num) for num in range(25, 40) submitted to `ThreadPoolExecutor(3)` and collected
// through as_completed, serially, on the pool and on `ProcessPoolExecutor(3)` (the notes'
// "多进程执行fib运算"), in C++ and in Python (bench/compare/fib_pool.py). Python's three threads
// are no faster than one (the GIL: the notes measured 70 s), its processes are; concur's threads
// run on as many cores as there are, and its processes add only the workers' start-up.
//
// The work is counted in calls of fib: fib(n) makes 2·fib(n) − 1 of them, so the numbers of
// range(25, 40) differ in cost by a factor of 300, but every call costs the same. A scaled-down
// row runs range(25, last) for a smaller `last`, and the table extrapolates per call. By default
// Python gets the longest range that fits half of --python-budget per row. (An optimizing C++
// compiler inlines and unrolls part of the recursion, so C++'s "per call" is per call of the
// notes' algorithm, not per machine-level call.)
#pragma once

#include <cstdint>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// kFibFirst and kFibLast are the notes' range(25, 40) (kFibLast excluded); kFibWorkers is the
// notes' ThreadPoolExecutor(3) and ProcessPoolExecutor(3).
inline constexpr int kFibFirst = 25;
inline constexpr int kFibLast = 40;
inline constexpr unsigned kFibWorkers = 3;

// fib(n) is the notes' naive recursion: 1 for n <= 2, else fib(n - 1) + fib(n - 2).
[[nodiscard]] std::int64_t fib(int n);

// fib_calls(first, last) is how many calls of fib() computing fib(first) .. fib(last - 1) makes
// (2·fib(n) − 1 for each n, fib(n) computed iteratively).
[[nodiscard]] std::uint64_t fib_calls(int first, int last);

// make_fib_pool_experiment() is the experiment, for the registry.
[[nodiscard]] std::unique_ptr<Experiment> make_fib_pool_experiment();

}  // namespace concur::apps::bench
