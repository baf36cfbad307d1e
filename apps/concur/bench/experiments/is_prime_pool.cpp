// bench/experiments/is_prime_pool.cpp — the is_prime_pool experiment: rows "serial", "pool N",
// "processes N", "python serial", "python pool N", "python processes N". The pool rows map
// is_prime over the numbers through a ThreadPoolExecutor of N workers (N = --threads), the
// processes rows through a ProcessPoolExecutor of N worker processes, the time including the
// pool's creation and shutdown, like the notes' `with` block. Every row must agree with the
// reference computed once.
#include "bench/experiments/is_prime_pool.hpp"

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
#include "bench/experiments/is_prime.hpp"
#include "bench/python.hpp"
#include "concur/process_pool.hpp"
#include "concur/thread_pool.hpp"
#include "embedded/kIsPrimePoolPy.hpp"

namespace concur::apps::bench {

// is_prime_task is is_prime registered for the process pool rows (a task must be a function
// registered by name so that the worker processes can run it).
bool is_prime_task(std::uint64_t n) { return is_prime(n); }
CONCUR_TASK(is_prime_task);

namespace {

constexpr std::string_view kName = "is_prime_pool";
constexpr std::string_view kUnit = "numbers";
// kPythonBudgetShare: by default each Python row gets this share of --python-budget. The is_prime
// experiment already measures Python's is_prime at the full budget; here a rougher figure shows
// the GIL just as well, and the default `concur bench` run stays around half a minute.
constexpr double kPythonBudgetShare = 0.5;

// count_text(n) is "1 number" or "n numbers", for progress lines.
std::string count_text(std::size_t n) { return fmt::format("{} number{}", n, n == 1 ? "" : "s"); }

std::string answer_name(bool prime) { return prime ? "prime" : "not prime"; }

// summarize(results, expected) is the row's answer: the common answer of all its numbers, or
// how many disagree with the reference.
std::string summarize(const std::vector<bool>& results, bool expected) {
  std::size_t wrong = 0;
  for (bool r : results) wrong += r != expected ? 1 : 0;
  if (wrong == 0) return answer_name(expected);
  if (wrong == results.size()) return answer_name(!expected);
  return fmt::format("{} of {} numbers say {}", wrong, results.size(), answer_name(!expected));
}

Row make_row(std::string mode, std::string language, unsigned workers, std::size_t items,
             double seconds, std::string answer, bool expected) {
  Row row;
  row.experiment = std::string(kName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = workers;
  row.baseline = workers == 1 && row.mode.find("serial") != std::string::npos;
  row.items = items;
  row.full_items = kIsPrimeCount;
  row.unit = std::string(kUnit);
  row.seconds = seconds;
  row.answer = std::move(answer);
  row.expected = answer_name(expected);
  return row;
}

Row run_serial(const std::vector<std::uint64_t>& numbers, bool expected) {
  std::vector<bool> results(numbers.size());
  const double seconds = seconds_of([&] {
    for (std::size_t i = 0; i < numbers.size(); ++i) results[i] = is_prime(numbers[i]);
  });
  return make_row("serial", "c++", 1, numbers.size(), seconds, summarize(results, expected),
                  expected);
}

// run_pool: `with ThreadPoolExecutor(n) as pool: results = list(pool.map(is_prime, numbers))`.
Row run_pool(const std::vector<std::uint64_t>& numbers, unsigned n, bool expected) {
  std::vector<bool> results;
  results.reserve(numbers.size());
  const double seconds = seconds_of([&] {
    ThreadPoolExecutor pool(n);
    for (bool r : pool.map(is_prime, numbers)) results.push_back(r);
  });
  return make_row(fmt::format("pool {}", n), "c++", n, numbers.size(), seconds,
                  summarize(results, expected), expected);
}

// run_processes: `with ProcessPoolExecutor(n) as pool: results = list(pool.map(is_prime,
// numbers))` — the notes' process pool (seed 000's 11-13), worker start-up included.
Row run_processes(const std::vector<std::uint64_t>& numbers, unsigned n, bool expected) {
  std::vector<bool> results;
  results.reserve(numbers.size());
  const double seconds = seconds_of([&] {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = n});
    for (bool r : pool.map(is_prime_task, numbers)) results.push_back(r);
  });
  return make_row(fmt::format("processes {}", n), "c++", n, numbers.size(), seconds,
                  summarize(results, expected), expected);
}

// run_python_mode runs bench/compare/is_prime_pool.py and turns its JSON into a row.
Row run_python_mode(const PythonInfo& python, std::string_view mode, std::size_t count,
                    unsigned workers, bool expected) {
  std::vector<std::string> args = {"--mode",   std::string(mode),
                                   "--count",  std::to_string(count),
                                   "--number", std::to_string(kIsPrimeNumber)};
  if (mode != "serial") args.insert(args.end(), {"--workers", std::to_string(workers)});
  const nlohmann::json j = run_python(python, embedded::kIsPrimePoolPy, args);
  try {
    const auto results = j.at("results").get<std::vector<bool>>();
    if (results.size() != count) {
      throw std::runtime_error(fmt::format("{} results for {} numbers", results.size(), count));
    }
    const double seconds = j.at("seconds").get<double>();
    const bool serial = mode == "serial";
    const std::string name = serial           ? std::string("python serial")
                             : mode == "pool" ? fmt::format("python pool {}", workers)
                                              : fmt::format("python processes {}", workers);
    return make_row(name, "python", serial ? 1 : workers, count, seconds,
                    summarize(results, expected), expected);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("is_prime_pool.py printed unexpected JSON: {}", e.what()));
  }
}

// run_python_rows appends the rows "python serial", "python pool N" and "python processes N".
void run_python_rows(const PythonInfo& py, const BenchConfig& config, bool expected,
                     std::vector<Row>& rows) {
  std::size_t py_count = 1;
  switch (config.size) {
    case Size::kQuick:
      py_count = 1;
      break;
    case Size::kFull:
      py_count = kIsPrimeCount;
      break;
    case Size::kDefault: {
      // Calibrate: one number in Python, then the largest divisor of 100 that fits the share.
      config.report_progress("is_prime_pool: python calibration, 1 number");
      const Row probe = run_python_mode(py, "serial", 1, 1, expected);
      if (!probe.ok()) {
        throw std::runtime_error("python calibration run answered " + probe.answer);
      }
      py_count = scaled_count(kIsPrimeCount, probe.seconds,
                              kPythonBudgetShare * config.python_budget_seconds);
      break;
    }
  }
  config.report_progress("is_prime_pool: python serial, " + count_text(py_count));
  rows.push_back(run_python_mode(py, "serial", py_count, 1, expected));
  config.report_progress(
      fmt::format("is_prime_pool: python pool {}, {}", config.threads, count_text(py_count)));
  rows.push_back(run_python_mode(py, "pool", py_count, config.threads, expected));
  config.report_progress(
      fmt::format("is_prime_pool: python processes {}, {}", config.threads, count_text(py_count)));
  rows.push_back(run_python_mode(py, "process", py_count, config.threads, expected));
}

class IsPrimePoolExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kName; }
  [[nodiscard]] std::string_view description() const override {
    return "is_prime x 100 through ThreadPoolExecutor.map and ProcessPoolExecutor.map (seeds 000, "
           "004): concur's pools vs Python's";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    // The reference answer, computed once; every row must agree with it.
    const bool expected = is_prime(kIsPrimeNumber);

    const std::size_t cpp_count = config.size == Size::kQuick ? kIsPrimeQuickCount : kIsPrimeCount;
    const std::vector<std::uint64_t> numbers(cpp_count, kIsPrimeNumber);
    std::vector<Row> rows;
    config.report_progress("is_prime_pool: serial, " + count_text(cpp_count));
    rows.push_back(run_serial(numbers, expected));
    config.report_progress(
        fmt::format("is_prime_pool: pool {}, {}", config.threads, count_text(cpp_count)));
    rows.push_back(run_pool(numbers, config.threads, expected));
    config.report_progress(
        fmt::format("is_prime_pool: processes {}, {}", config.threads, count_text(cpp_count)));
    rows.push_back(run_processes(numbers, config.threads, expected));

    if (config.python) {
      try {
        run_python_rows(*config.python, config, expected, rows);
      } catch (const std::exception& e) {
        throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
      }
    }
    return rows;
  }
};

}  // namespace

std::unique_ptr<Experiment> make_is_prime_pool_experiment() {
  return std::make_unique<IsPrimePoolExperiment>();
}

}  // namespace concur::apps::bench
