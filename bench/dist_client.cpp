// dist_client: the concur side of bench/compare/dist/run_dist_bench.sh and run_amqp_bench.sh —
// RedisExecutor or AmqpExecutor submitting the trivial task noop(x) to `concur worker` processes,
// measured as the Python clients measure Celery and RQ (bench/compare/dist/distbench_common.py): a
// warm-up, then the throughput of M submits (first submit to last result), then K sequential
// submit → result round trips. Prints one JSON line with the same fields; `variant` and
// `versions` name the broker and the options.
//   dist_client (--redis redis://127.0.0.1:PORT/0 | --amqp amqp://guest:guest@127.0.0.1:PORT/)
//               --workers N --tasks M --latency-samples K --warmup W --timeout S
//               [--no-track-started] [--no-confirm (AMQP only)] [--max-batch N (AMQP only)]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "concur/dist/amqp_executor.hpp"
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
  CLI::App app{
      "RedisExecutor's or AmqpExecutor's trivial-task throughput and latency (run_dist_bench.sh, "
      "run_amqp_bench.sh)"};
  std::string redis_url;
  std::string amqp_url;
  int workers = 1;
  int tasks = 2000;
  int samples = 300;
  int warmup = 50;
  double timeout_s = 180;
  bool no_started = false;
  bool no_confirm = false;
  std::size_t max_batch = 1;
  auto* redis = app.add_option("--redis", redis_url, "Redis URL (RedisExecutor)");
  auto* amqp = app.add_option("--amqp", amqp_url, "RabbitMQ URL (AmqpExecutor)")->excludes(redis);
  app.add_option("--workers", workers, "the workers' concurrency (reported only)");
  app.add_option("--tasks", tasks, "tasks in the throughput run")->check(CLI::PositiveNumber);
  app.add_option("--latency-samples", samples, "sequential round trips")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "round trips before measuring");
  app.add_option("--timeout", timeout_s, "seconds any one wait may take");
  app.add_flag("--no-track-started", no_started, "{Redis,Amqp}Options::track_started = false");
  app.add_flag("--no-confirm", no_confirm,
               "AmqpOptions::confirm_submit = false (submit does not wait for the broker)")
      ->needs(amqp);
  app.add_option("--max-batch", max_batch, "AmqpOptions::max_batch (submits per message)")
      ->check(CLI::PositiveNumber)
      ->needs(amqp);
  CLI11_PARSE(app, argc, argv);
  if (redis_url.empty() == amqp_url.empty()) {
    std::fprintf(stderr, "dist_client: give exactly one of --redis URL and --amqp URL\n");
    return 2;
  }

  using clock = std::chrono::steady_clock;
  const auto timeout = std::chrono::duration<double>(timeout_s);
  // variant: the row label; options: what versions.options records.
  std::string variant = "threads";
  std::string executor = "RedisExecutor (hiredis)";
  std::string options_text = std::string("track_started=") + (no_started ? "false" : "true");
  std::unique_ptr<concur::dist::RemoteExecutor> ex;
  if (!amqp_url.empty()) {
    concur::dist::AmqpOptions options;
    options.track_started = !no_started;
    options.confirm_submit = !no_confirm;
    options.max_batch = max_batch;
    ex = std::make_unique<concur::dist::AmqpExecutor>(amqp_url, options);
    variant = no_confirm ? "amqp-threads-pipelined" : "amqp-threads";
    if (max_batch > 1) variant += "-batched";
    executor = "AmqpExecutor (rabbitmq-c)";
    options_text += std::string(" confirm_submit=") + (no_confirm ? "false" : "true");
    options_text += " max_batch=" + std::to_string(max_batch);
  } else {
    concur::dist::RedisOptions options;
    options.track_started = !no_started;
    ex = std::make_unique<concur::dist::RedisExecutor>(redis_url, options);
  }
  if (no_started) variant += "-nostarted";
  int errors = 0;
  for (int i = 0; i < warmup; ++i)
    if (ex->submit(noop, std::int64_t{i}).result(timeout) != i) ++errors;

  const auto t0 = clock::now();
  std::vector<concur::Future<std::int64_t>> futures;
  futures.reserve(static_cast<std::size_t>(tasks));
  for (int i = 0; i < tasks; ++i) futures.push_back(ex->submit(noop, std::int64_t{i}));
  const double submit_s = std::chrono::duration<double>(clock::now() - t0).count();
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
      if (ex->submit(noop, std::int64_t{i}).result(timeout) != i) ++errors;
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
  // The futures are all settled unless one timed out: a bounded shutdown either way.
  if (!ex->shutdown(timeout)) ++errors;
  std::printf(
      "{\"system\": \"concur\", \"variant\": \"%s\", \"workers\": %d, \"tasks\": %d, "
      "\"throughput_s\": %.4f, \"tasks_per_s\": %.1f, \"submit_s\": %.4f, "
      "\"latency_samples\": %d, \"latency_p50_ms\": %.4f, \"latency_p99_ms\": %.4f, "
      "\"latency_mean_ms\": %.4f, \"latency_min_ms\": %.4f, \"latency_max_ms\": %.4f, "
      "\"errors\": %d, \"versions\": {\"concur\": \"%s\", \"options\": \"%s\"}, "
      "\"loadavg_1m_after\": %.2f}\n",
      variant.c_str(), workers, tasks, throughput_s, static_cast<double>(tasks) / throughput_s,
      submit_s, samples, percentile(sorted, 50), percentile(sorted, 99), mean, sorted.front(),
      sorted.back(), errors, executor.c_str(), options_text.c_str(), loadavg());
  std::fflush(stdout);
  return errors == 0 ? 0 : 1;
}
