// bench/experiments/sleep_pool.cpp — the sleep_pool experiment: rows "serial", "pool 3",
// "pool 30", "python serial", "python pool 3", "python pool 30". Each row runs the 30 sleeping
// tasks and must get the notes' n = 2 back from every one. The pool rows submit them all and
// collect through as_completed, the time including the pool's creation and shutdown (the notes'
// `with` block).
#include "bench/experiments/sleep_pool.hpp"

#include <fmt/format.h>

#include <algorithm>
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
#include "concur/future.hpp"
#include "concur/thread_pool.hpp"
#include "embedded/kSleepPoolPy.hpp"

namespace concur::apps::bench {
namespace {

using Seconds = std::chrono::duration<double>;

constexpr std::string_view kName = "sleep_pool";
constexpr std::string_view kUnit = "tasks";
constexpr int kNotesN = 2;  // random_sleep(2)
constexpr std::chrono::milliseconds kQuickSleep{10};
constexpr std::chrono::milliseconds kDefaultSleep{50};
// The two pools of the notes' comparison.
constexpr unsigned kFewWorkers = 3;
constexpr unsigned kManyWorkers = 30;

// answer_of(results) is "30 × 2" when every task returned 2, else what went wrong.
std::string answer_of(const std::vector<int>& results) {
  const auto tasks = static_cast<std::size_t>(kSleepTasks);
  if (results.size() != tasks) return fmt::format("{} results for {} tasks", results.size(), tasks);
  const auto right = static_cast<std::size_t>(std::count(results.begin(), results.end(), kNotesN));
  if (right == tasks) return fmt::format("{} × {}", kSleepTasks, kNotesN);
  return fmt::format("{} of {} tasks did not return {}", tasks - right, tasks, kNotesN);
}

Row make_row(std::string mode, std::string language, unsigned workers, Seconds sleep,
             double seconds, const std::vector<int>& results) {
  Row row;
  row.experiment = std::string(kName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = workers;
  row.baseline = workers == 1 && row.mode.find("serial") != std::string::npos;
  row.items = static_cast<std::size_t>(kSleepTasks);
  row.full_items = static_cast<std::size_t>(kSleepTasks);
  row.unit = std::string(kUnit);
  row.seconds = seconds;
  row.answer = answer_of(results);
  row.expected = fmt::format("{} × {}", kSleepTasks, kNotesN);
  if (sleep < kSleepNotes) {
    const double scale = Seconds(kSleepNotes) / sleep;
    row.note = fmt::format("sleep(2) scaled to {}: ≈ {} with the notes' 2 s",
                           format_seconds(sleep.count()), format_seconds(seconds * scale));
  }
  return row;
}

// random_sleep(n, sleep): the notes' function, its n seconds scaled so that n = 2 sleeps `sleep`.
int random_sleep(int n, Seconds sleep) {
  std::this_thread::sleep_for(sleep * n / kNotesN);
  return n;
}

Row run_serial(Seconds sleep) {
  std::vector<int> results;
  const double seconds = seconds_of([&] {
    for (int i = 0; i < kSleepTasks; ++i) results.push_back(random_sleep(kNotesN, sleep));
  });
  return make_row("serial", "c++", 1, sleep, seconds, results);
}

// run_pool: `with ThreadPoolExecutor(n) as executor:` submit the 30 tasks, then take them
// through as_completed.
Row run_pool(unsigned n, Seconds sleep) {
  std::vector<int> results;
  const double seconds = seconds_of([&] {
    ThreadPoolExecutor executor(n);
    std::vector<Future<int>> all_task;
    for (int i = 0; i < kSleepTasks; ++i) {
      all_task.push_back(executor.submit(random_sleep, kNotesN, sleep));
    }
    for (const Future<int>& future : as_completed(all_task)) (void)future.result();
    for (const Future<int>& f : all_task) results.push_back(f.result());
  });
  return make_row(fmt::format("pool {}", n), "c++", n, sleep, seconds, results);
}

// run_python_mode runs bench/compare/sleep_pool.py and turns its JSON into a row.
Row run_python_mode(const PythonInfo& python, std::string_view mode, unsigned workers,
                    Seconds sleep) {
  std::vector<std::string> args = {"--mode",  std::string(mode),
                                   "--tasks", std::to_string(kSleepTasks),
                                   "--sleep", fmt::format("{}", sleep.count())};
  const bool pool = mode == "pool";
  if (pool) args.insert(args.end(), {"--workers", std::to_string(workers)});
  const nlohmann::json j = run_python(python, embedded::kSleepPoolPy, args);
  try {
    const auto results = j.at("results").get<std::vector<int>>();
    const double seconds = j.at("seconds").get<double>();
    return make_row(pool ? fmt::format("python pool {}", workers) : std::string("python serial"),
                    "python", pool ? workers : 1, sleep, seconds, results);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("sleep_pool.py printed unexpected JSON: {}", e.what()));
  }
}

// sleep_of(config): 10 ms (quick), the notes' 2 s (full), else 50 ms, shortened so that the
// serial rows (30 sleeps) fit the Python budget.
Seconds sleep_of(const BenchConfig& config) {
  switch (config.size) {
    case Size::kQuick:
      return kQuickSleep;
    case Size::kFull:
      return kSleepNotes;
    case Size::kDefault:
      break;
  }
  return std::min<Seconds>(kDefaultSleep, Seconds(config.python_budget_seconds / kSleepTasks));
}

class SleepPoolExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kName; }
  [[nodiscard]] std::string_view description() const override {
    return "30 x sleep(2) on ThreadPoolExecutor(3) and (30) (seed 000, scaled): I/O-bound";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    const Seconds sleep = sleep_of(config);
    const std::string what =
        fmt::format("{} × sleep {}", kSleepTasks, format_seconds(sleep.count()));
    std::vector<Row> rows;
    config.report_progress("sleep_pool: serial, " + what);
    rows.push_back(run_serial(sleep));
    for (unsigned n : {kFewWorkers, kManyWorkers}) {
      config.report_progress(fmt::format("sleep_pool: pool {}, {}", n, what));
      rows.push_back(run_pool(n, sleep));
    }

    if (config.python) {
      try {
        config.report_progress("sleep_pool: python serial, " + what);
        rows.push_back(run_python_mode(*config.python, "serial", 1, sleep));
        for (unsigned n : {kFewWorkers, kManyWorkers}) {
          config.report_progress(fmt::format("sleep_pool: python pool {}, {}", n, what));
          rows.push_back(run_python_mode(*config.python, "pool", n, sleep));
        }
      } catch (const std::exception& e) {
        throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
      }
    }
    return rows;
  }
};

}  // namespace

std::unique_ptr<Experiment> make_sleep_pool_experiment() {
  return std::make_unique<SleepPoolExperiment>();
}

}  // namespace concur::apps::bench
