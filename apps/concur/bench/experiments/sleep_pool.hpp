// bench/experiments/sleep_pool.hpp — the notes' I/O-bound experiment (seed 000, 11-9 "对于io操作
// 来说，多线程优于多进程"): random_sleep(2) for `[2]*30` on ThreadPoolExecutor(3), collected
// through as_completed, and the same on 30 workers; serially, on the pools, and in Python
// (bench/compare/sleep_pool.py). A sleeping thread needs no CPU and, in Python, releases the GIL:
// here the worker count sets the time in both languages (3 workers: ten rounds, 30: one).
//
// The notes' 2 s sleeps are scaled down (50 ms by default, capped so that the 30 serial sleeps
// fit --python-budget; 10 ms with --quick; 2 s with --full); each task still returns the notes'
// n = 2. The worker counts are the notes' 3 and 30 whatever --threads says: sleeping tasks do
// not use the CPUs that --threads counts.
#pragma once

#include <chrono>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// kSleepTasks is the notes' `[2]*30`; kSleepNotes the notes' time.sleep(2).
inline constexpr int kSleepTasks = 30;
inline constexpr std::chrono::seconds kSleepNotes{2};

// make_sleep_pool_experiment() is the experiment, for the registry.
[[nodiscard]] std::unique_ptr<Experiment> make_sleep_pool_experiment();

}  // namespace concur::apps::bench
