// bench/experiments/fib_pool.cpp — the fib_pool experiment: rows "serial", "pool 3" (the
// notes), "pool N" (N = --threads, when it is not 3), "processes 3" (the notes'
// "多进程执行fib运算"), "python serial", "python pool 3", "python processes 3". Each row computes
// fib(n) for n in range(25, last) — the notes' last = 40 unless scaled down — and must agree with
// fib computed iteratively. The pool rows submit one task per number to a ThreadPoolExecutor, the
// processes rows to a ProcessPoolExecutor(3), and collect through as_completed, the time including
// the pool's creation and shutdown (the notes' `with`; for processes, the workers' start-up too).
#include "bench/experiments/fib_pool.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/python.hpp"
#include "concur/future.hpp"
#include "concur/process_pool.hpp"
#include "concur/thread_pool.hpp"
#include "embedded/kFibPoolPy.hpp"

namespace concur::apps::bench {

std::int64_t fib(int n) {
  if (n <= 2) return 1;
  return fib(n - 1) + fib(n - 2);
}

// fib_task is fib registered for the processes rows (a task must be a function registered by
// name so that the worker processes can run it).
std::int64_t fib_task(int n) { return fib(n); }
CONCUR_TASK(fib_task);

namespace {

// fib_iterative(n): the reference values.
std::int64_t fib_iterative(int n) {
  std::int64_t a = 1;  // fib(1)
  std::int64_t b = 1;  // fib(2)
  for (int i = 3; i <= n; ++i) {
    const std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return b;
}

}  // namespace

std::uint64_t fib_calls(int first, int last) {
  std::uint64_t calls = 0;
  for (int n = first; n < last; ++n) calls += 2 * static_cast<std::uint64_t>(fib_iterative(n)) - 1;
  return calls;
}

namespace {

constexpr std::string_view kName = "fib_pool";
constexpr std::string_view kUnit = "calls";
// kQuickLast: --quick computes range(25, 30) in both languages.
constexpr int kQuickLast = 30;
// kPythonBudgetShare: by default each Python row gets this share of --python-budget (the notes'
// full range takes ~12 s per row in Python here), so that the default `concur bench` run stays
// around half a minute.
constexpr double kPythonBudgetShare = 0.5;

std::string range_text(int last) { return fmt::format("fib({}..{})", kFibFirst, last - 1); }

// answer_of(results, last) is "fib(25..39) correct", or how many values are wrong.
std::string answer_of(const std::vector<std::int64_t>& results, int last) {
  std::size_t wrong = 0;
  for (int n = kFibFirst; n < last; ++n) {
    const auto i = static_cast<std::size_t>(n - kFibFirst);
    wrong += i >= results.size() || results[i] != fib_iterative(n) ? 1 : 0;
  }
  if (wrong == 0 && results.size() == static_cast<std::size_t>(last - kFibFirst)) {
    return range_text(last) + " correct";
  }
  return fmt::format("{}: {} of {} values wrong", range_text(last), wrong, last - kFibFirst);
}

Row make_row(std::string mode, std::string language, unsigned workers, int last, double seconds,
             const std::vector<std::int64_t>& results) {
  Row row;
  row.experiment = std::string(kName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = workers;
  row.baseline = workers == 1 && row.mode.find("serial") != std::string::npos;
  row.items = fib_calls(kFibFirst, last);
  row.full_items = fib_calls(kFibFirst, kFibLast);
  row.unit = std::string(kUnit);
  row.seconds = seconds;
  row.answer = answer_of(results, last);
  row.expected = range_text(last) + " correct";
  if (row.scaled()) {
    // The generic note would name a count of calls; the range says more.
    row.note = fmt::format("{} only: ≈ {} for the notes' {}", range_text(last),
                           format_seconds(row.estimated_full_seconds()), range_text(kFibLast));
  }
  return row;
}

Row run_serial(int last) {
  std::vector<std::int64_t> results;
  const double seconds = seconds_of([&] {
    for (int n = kFibFirst; n < last; ++n) results.push_back(fib(n));
  });
  return make_row("serial", "c++", 1, last, seconds, results);
}

// run_pool: `with ThreadPoolExecutor(n) as executor:` submit fib(num) for each num, then take
// the results through as_completed.
Row run_pool(int last, unsigned n) {
  std::vector<std::int64_t> results(static_cast<std::size_t>(last - kFibFirst));
  const double seconds = seconds_of([&] {
    ThreadPoolExecutor executor(n);
    std::vector<Future<std::int64_t>> all_task;
    for (int num = kFibFirst; num < last; ++num) all_task.push_back(executor.submit(fib, num));
    for (const Future<std::int64_t>& future : as_completed(all_task)) (void)future.result();
    for (std::size_t i = 0; i < all_task.size(); ++i) results[i] = all_task[i].result();
  });
  return make_row(fmt::format("pool {}", n), "c++", n, last, seconds, results);
}

// run_processes: `with ProcessPoolExecutor(n) as executor:` submit fib(num) for each num, then
// take the results through as_completed — the notes' "多进程执行fib运算", worker start-up included.
Row run_processes(int last, unsigned n) {
  std::vector<std::int64_t> results(static_cast<std::size_t>(last - kFibFirst));
  const double seconds = seconds_of([&] {
    ProcessPoolExecutor executor(ProcessPoolOptions{.max_workers = n});
    std::vector<Future<std::int64_t>> all_task;
    for (int num = kFibFirst; num < last; ++num) all_task.push_back(executor.submit(fib_task, num));
    for (const Future<std::int64_t>& future : as_completed(all_task)) (void)future.result();
    for (std::size_t i = 0; i < all_task.size(); ++i) results[i] = all_task[i].result();
  });
  return make_row(fmt::format("processes {}", n), "c++", n, last, seconds, results);
}

// run_python_mode runs bench/compare/fib_pool.py and turns its JSON into a row.
Row run_python_mode(const PythonInfo& python, std::string_view mode, int last) {
  std::vector<std::string> args = {"--mode",  std::string(mode),
                                   "--first", std::to_string(kFibFirst),
                                   "--last",  std::to_string(last)};
  const bool serial = mode == "serial";
  if (!serial) args.insert(args.end(), {"--workers", std::to_string(kFibWorkers)});
  const nlohmann::json j = run_python(python, embedded::kFibPoolPy, args);
  try {
    const auto results = j.at("results").get<std::vector<std::int64_t>>();
    const double seconds = j.at("seconds").get<double>();
    const std::string name = serial           ? std::string("python serial")
                             : mode == "pool" ? fmt::format("python pool {}", kFibWorkers)
                                              : fmt::format("python processes {}", kFibWorkers);
    return make_row(name, "python", serial ? 1 : kFibWorkers, last, seconds, results);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("fib_pool.py printed unexpected JSON: {}", e.what()));
  }
}

// python_last(seconds_per_call, budget) is the largest last <= 40 whose range(25, last) is
// predicted to fit the budget, and at least 26.
int python_last(double seconds_per_call, double budget) {
  int last = kFibFirst + 1;
  for (int l = kFibFirst + 1; l <= kFibLast; ++l) {
    if (static_cast<double>(fib_calls(kFibFirst, l)) * seconds_per_call <= budget) last = l;
  }
  return last;
}

// run_python_rows appends the rows "python serial", "python pool 3" and "python processes 3".
void run_python_rows(const PythonInfo& py, const BenchConfig& config, std::vector<Row>& rows) {
  int last = kFibLast;
  switch (config.size) {
    case Size::kQuick:
      last = kQuickLast;
      break;
    case Size::kFull:
      last = kFibLast;
      break;
    case Size::kDefault: {
      // Calibrate on the quick range, then the longest range that fits the share of the budget.
      config.report_progress("fib_pool: python calibration, " + range_text(kQuickLast));
      const Row probe = run_python_mode(py, "serial", kQuickLast);
      if (!probe.ok()) {
        throw std::runtime_error("python calibration run answered " + probe.answer);
      }
      last =
          python_last(probe.seconds_per_item(), kPythonBudgetShare * config.python_budget_seconds);
      break;
    }
  }
  config.report_progress("fib_pool: python serial, " + range_text(last));
  rows.push_back(run_python_mode(py, "serial", last));
  config.report_progress(
      fmt::format("fib_pool: python pool {}, {}", kFibWorkers, range_text(last)));
  rows.push_back(run_python_mode(py, "pool", last));
  config.report_progress(
      fmt::format("fib_pool: python processes {}, {}", kFibWorkers, range_text(last)));
  rows.push_back(run_python_mode(py, "process", last));
}

class FibPoolExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kName; }
  [[nodiscard]] std::string_view description() const override {
    return "naive fib(25..39) on ThreadPoolExecutor(3) and ProcessPoolExecutor(3) via "
           "as_completed (seed 000): CPU-bound";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    const int last = config.size == Size::kQuick ? kQuickLast : kFibLast;
    std::vector<Row> rows;
    config.report_progress("fib_pool: serial, " + range_text(last));
    rows.push_back(run_serial(last));
    config.report_progress(fmt::format("fib_pool: pool {}, {}", kFibWorkers, range_text(last)));
    rows.push_back(run_pool(last, kFibWorkers));
    if (config.threads != kFibWorkers) {
      config.report_progress(
          fmt::format("fib_pool: pool {}, {}", config.threads, range_text(last)));
      rows.push_back(run_pool(last, config.threads));
    }
    config.report_progress(
        fmt::format("fib_pool: processes {}, {}", kFibWorkers, range_text(last)));
    rows.push_back(run_processes(last, kFibWorkers));

    if (config.python) {
      try {
        run_python_rows(*config.python, config, rows);
      } catch (const std::exception& e) {
        throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
      }
    }
    return rows;
  }
};

}  // namespace

std::unique_ptr<Experiment> make_fib_pool_experiment() {
  return std::make_unique<FibPoolExperiment>();
}

}  // namespace concur::apps::bench
