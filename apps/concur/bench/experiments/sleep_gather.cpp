// bench/experiments/sleep_gather.cpp — the sleep_gather experiment: rows "serial",
// "coroutines 30", "python serial", "python asyncio 30". The serial rows sleep their tasks one
// after another on the calling thread (std::this_thread::sleep_for, Python's time.sleep); the
// coroutine rows run `aio::run(gather of 30 sleeping tasks)` — asyncio.run(asyncio.gather(...))
// in Python — timed around the run, the loop's creation and closing included.
#include "bench/experiments/sleep_gather.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/python.hpp"
#include "concur/aio.hpp"
#include "embedded/kSleepGatherPy.hpp"

namespace concur::apps::bench {
namespace {

using Seconds = std::chrono::duration<double>;

constexpr std::string_view kName = "sleep_gather";
constexpr std::string_view kUnit = "tasks";
constexpr Seconds kQuickSleep{0.05};
// kSerialBudgetShare: by default the serial rows run the tasks that fit this share of
// --python-budget (30 × 1 s one after another would be a minute for the two of them).
constexpr double kSerialBudgetShare = 0.2;
constexpr double kQuickSerialBudget = 0.2;  // seconds, with --quick
// aio::run without its Ctrl-C handling: a Ctrl-C during `concur bench` ends it as before.
constexpr aio::RunOptions kRunOptions{.handle_sigint = false};

std::string answer_text(std::size_t done) { return fmt::format("{} tasks done", done); }

// answer_of(results, tasks): how many of the tasks returned their own index, in order.
std::string answer_of(const std::vector<int>& results, std::size_t tasks) {
  if (results.size() != tasks) return fmt::format("{} results for {} tasks", results.size(), tasks);
  std::size_t done = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    done += results[i] == static_cast<int>(i) ? 1 : 0;
  }
  return answer_text(done);
}

Row make_row(std::string mode, std::string language, unsigned workers, Seconds sleep,
             std::size_t tasks, double seconds, const std::vector<int>& results) {
  Row row;
  row.experiment = std::string(kName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = workers;
  row.baseline = row.mode.find("serial") != std::string::npos;
  row.items = tasks;
  row.full_items = static_cast<std::size_t>(kGatherTasks);
  row.unit = std::string(kUnit);
  row.seconds = seconds;
  row.answer = answer_of(results, tasks);
  row.expected = answer_text(tasks);
  if (sleep < kGatherSleep) {
    // Both scalings at once (finalize_rows only knows the task count's).
    const double scale = Seconds(kGatherSleep) / sleep * static_cast<double>(row.full_items) /
                         static_cast<double>(tasks);
    row.note = fmt::format("sleep(1) scaled to {}: ≈ {} for 30 × 1 s",
                           format_seconds(sleep.count()), format_seconds(seconds * scale));
  } else if (!row.baseline) {
    row.note = row.language == "c++" ? "aio::gather, one thread" : "asyncio.gather, one thread";
  }
  return row;
}

Row run_serial(Seconds sleep, std::size_t tasks) {
  std::vector<int> results;
  const double seconds = seconds_of([&] {
    for (std::size_t i = 0; i < tasks; ++i) {
      std::this_thread::sleep_for(sleep);
      results.push_back(static_cast<int>(i));
    }
  });
  return make_row("serial", "c++", 1, sleep, tasks, seconds, results);
}

// work(i, sleep): `async def work(i): await asyncio.sleep(...); return i`.
aio::Task<int> work(int i, Seconds sleep) {
  co_await aio::sleep(sleep);
  co_return i;
}

// gather_all(tasks, sleep): `await asyncio.gather(*[work(i) for i in range(tasks)])`.
aio::Task<std::vector<int>> gather_all(int tasks, Seconds sleep) {
  std::vector<aio::Task<int>> all;
  all.reserve(static_cast<std::size_t>(tasks));
  for (int i = 0; i < tasks; ++i) all.push_back(work(i, sleep));
  co_return co_await aio::gather(std::move(all));
}

Row run_coroutines(Seconds sleep) {
  std::vector<int> results;
  const double seconds =
      seconds_of([&] { results = aio::run(gather_all(kGatherTasks, sleep), kRunOptions); });
  return make_row(fmt::format("coroutines {}", kGatherTasks), "c++", kGatherTasks, sleep,
                  static_cast<std::size_t>(kGatherTasks), seconds, results);
}

// run_python_mode runs bench/compare/sleep_gather.py and turns its JSON into a row.
Row run_python_mode(const PythonInfo& python, std::string_view mode, std::size_t tasks,
                    Seconds sleep) {
  const nlohmann::json j =
      run_python(python, embedded::kSleepGatherPy,
                 {"--mode", std::string(mode), "--tasks", std::to_string(tasks), "--sleep",
                  fmt::format("{}", sleep.count())});
  try {
    const auto results = j.at("results").get<std::vector<int>>();
    const double seconds = j.at("seconds").get<double>();
    const bool serial = mode == "serial";
    return make_row(
        serial ? std::string("python serial") : fmt::format("python asyncio {}", kGatherTasks),
        "python", serial ? 1 : kGatherTasks, sleep, tasks, seconds, results);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("sleep_gather.py printed unexpected JSON: {}", e.what()));
  }
}

class SleepGatherExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kName; }
  [[nodiscard]] std::string_view description() const override {
    return "30 coroutines x sleep(1) through aio::gather and asyncio.gather vs one after another "
           "(issue 12): one thread, overlapped waits";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    const auto all = static_cast<std::size_t>(kGatherTasks);
    Seconds sleep = kGatherSleep;
    std::size_t serial_tasks = all;
    switch (config.size) {
      case Size::kQuick:
        sleep = kQuickSleep;
        serial_tasks = scaled_count(all, sleep.count(), kQuickSerialBudget);
        break;
      case Size::kDefault:
        serial_tasks =
            scaled_count(all, sleep.count(), kSerialBudgetShare * config.python_budget_seconds);
        break;
      case Size::kFull:
        break;
    }
    const std::string each = fmt::format("sleep {}", format_seconds(sleep.count()));
    std::vector<Row> rows;
    config.report_progress(fmt::format("sleep_gather: serial, {} × {}", serial_tasks, each));
    rows.push_back(run_serial(sleep, serial_tasks));
    config.report_progress(
        fmt::format("sleep_gather: coroutines {}, {} × {}", kGatherTasks, kGatherTasks, each));
    rows.push_back(run_coroutines(sleep));

    if (config.python) {
      try {
        config.report_progress(
            fmt::format("sleep_gather: python serial, {} × {}", serial_tasks, each));
        rows.push_back(run_python_mode(*config.python, "serial", serial_tasks, sleep));
        config.report_progress(fmt::format("sleep_gather: python asyncio {}, {} × {}", kGatherTasks,
                                           kGatherTasks, each));
        rows.push_back(run_python_mode(*config.python, "asyncio", all, sleep));
      } catch (const std::exception& e) {
        throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
      }
    }
    return rows;
  }
};

}  // namespace

std::unique_ptr<Experiment> make_sleep_gather_experiment() {
  return std::make_unique<SleepGatherExperiment>();
}

}  // namespace concur::apps::bench
