// dist_client: the concur side of bench/compare/dist/run_dist_bench.sh — RedisExecutor submitting
// the trivial task noop(x) to `concur worker` processes, measured as the Python clients measure
// Celery and RQ (bench/compare/dist/distbench_common.py): a warm-up, then the throughput of M
// submits (first submit to last result), then K sequential submit → result round trips. Prints one
// JSON line with the same fields.
//   dist_client --redis redis://127.0.0.1:PORT/0 --workers N --tasks M --latency-samples K
//               --warmup W --timeout S [--no-track-started]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "concur/dist/executor.hpp"
#include "concur/errors.hpp"
#include "concur/mp/task.hpp"

// noop: registered under the same name as `concur worker`'s built-in task.
std::int64_t noop(std::int64_t x) { return x; }
CONCUR_TASK(noop);

namespace {

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  const auto rank = static_cast<std::size_t>(
      std::max(1.0, std::ceil(p / 100.0 * static_cast<double>(sorted.size()))));
  return sorted[std::min(rank, sorted.size()) - 1];
}

double loadavg() {
  std::ifstream in("/proc/loadavg");
  double v = NAN;
  in >> v;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"RedisExecutor's trivial-task throughput and latency (run_dist_bench.sh)"};
  std::string url;
  int workers = 1;
  int tasks = 2000;
  int samples = 300;
  int warmup = 50;
  double timeout_s = 180;
  bool no_started = false;
  app.add_option("--redis", url, "Redis URL")->required();
  app.add_option("--workers", workers, "the workers' concurrency (reported only)");
  app.add_option("--tasks", tasks, "tasks in the throughput run")->check(CLI::PositiveNumber);
  app.add_option("--latency-samples", samples, "sequential round trips")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "round trips before measuring");
  app.add_option("--timeout", timeout_s, "seconds any one wait may take");
  app.add_flag("--no-track-started", no_started, "RedisOptions::track_started = false");
  CLI11_PARSE(app, argc, argv);

  using clock = std::chrono::steady_clock;
  const auto timeout = std::chrono::duration<double>(timeout_s);
  concur::dist::RedisOptions options;
  options.track_started = !no_started;
  concur::dist::RedisExecutor ex(url, options);
  int errors = 0;
  for (int i = 0; i < warmup; ++i)
    if (ex.submit(noop, std::int64_t{i}).result(timeout) != i) ++errors;

  const auto t0 = clock::now();
  std::vector<concur::Future<std::int64_t>> futures;
  futures.reserve(static_cast<std::size_t>(tasks));
  for (int i = 0; i < tasks; ++i) futures.push_back(ex.submit(noop, std::int64_t{i}));
  for (int i = 0; i < tasks; ++i) {
    try {
      if (futures[static_cast<std::size_t>(i)].result(timeout) != i) ++errors;
    } catch (const std::exception&) {
      ++errors;
    }
  }
  const double throughput_s = std::chrono::duration<double>(clock::now() - t0).count();

  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(samples));
  for (int i = 0; i < samples; ++i) {
    const auto s = clock::now();
    try {
      if (ex.submit(noop, std::int64_t{i}).result(timeout) != i) ++errors;
    } catch (const std::exception&) {
      ++errors;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - s).count());
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  double mean = 0;
  for (double v : ms) mean += v;
  mean /= static_cast<double>(ms.size());
  std::printf(
      "{\"system\": \"concur\", \"variant\": \"%s\", \"workers\": %d, \"tasks\": %d, "
      "\"throughput_s\": %.4f, \"tasks_per_s\": %.1f, \"latency_samples\": %d, "
      "\"latency_p50_ms\": %.4f, \"latency_p99_ms\": %.4f, \"latency_mean_ms\": %.4f, "
      "\"latency_min_ms\": %.4f, \"latency_max_ms\": %.4f, \"errors\": %d, "
      "\"versions\": {\"concur\": \"RedisExecutor (hiredis)\"}, \"loadavg_1m_after\": %.2f}\n",
      no_started ? "threads-nostarted" : "threads", workers, tasks, throughput_s,
      static_cast<double>(tasks) / throughput_s, samples, percentile(sorted, 50),
      percentile(sorted, 99), mean, sorted.front(), sorted.back(), errors, loadavg());
  std::fflush(stdout);
  return errors == 0 ? 0 : 1;
}
