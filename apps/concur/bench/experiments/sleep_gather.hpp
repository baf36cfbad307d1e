// bench/experiments/sleep_gather.hpp — the coroutine idea of the notes' "协程" section (issue 12;
// example 60): 30 tasks that each sleep 1 s (standing for a wait on the network), run as coroutines
// on one event loop and collected with gather — aio::gather in C++, asyncio.gather in Python
// (bench/compare/sleep_gather.py) — beside the same sleeps one after another. While one task
// sleeps the loop runs the others, so the 30 sleeps overlap on one thread and take about one.
//
// Sizes: every task sleeps 1 s (50 ms with --quick). The gather rows run all 30 tasks; the serial
// rows run as many as fit a fifth of --python-budget (2 of 30 by default; 3 in 0.2 s with --quick;
// all 30 with --full): their time per task is exact, so the speedup is too (the note extrapolates).
// Every task returns its index; a row's answer counts the tasks that came back in order.
#pragma once

#include <chrono>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// kGatherTasks coroutines each run asyncio.sleep(kGatherSleep) (issue 12's sizes).
inline constexpr int kGatherTasks = 30;
inline constexpr std::chrono::seconds kGatherSleep{1};

// make_sleep_gather_experiment() is the experiment, for the registry.
[[nodiscard]] std::unique_ptr<Experiment> make_sleep_gather_experiment();

}  // namespace concur::apps::bench
