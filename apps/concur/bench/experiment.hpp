// bench/experiment.hpp — what one `concur bench` experiment is: the Experiment interface, the
// Row it reports per mode (serial, threads N, python serial, ...), the BenchConfig it runs
// under, and small helpers every experiment needs (timing, scaled-down counts, work splitting).
//
// Adding an experiment: write bench/experiments/<name>.cpp (+ .hpp for what tests call) with a
// class implementing Experiment, and add its factory to the list in bench/registry.cpp.
// Experiments run one at a time on the calling thread; run() may start threads of its own but
// must join them before it returns.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace concur::apps::bench {

// Size is how much work the experiments do.
enum class Size {
  kQuick,    // a tiny count everywhere: a few seconds in all (what the tests run)
  kDefault,  // the notes' sizes in C++; Python scaled down to fit the time budget
  kFull,     // the notes' exact sizes everywhere
};

// PythonInfo is the interpreter the Python rows run on.
struct PythonInfo {
  std::string executable;  // absolute path
  std::string version;     // e.g. "3.11.2"
};

// BenchConfig is what every experiment's run() receives.
struct BenchConfig {
  Size size = Size::kDefault;
  // threads: the worker count of the "threads N" rows (>= 1).
  unsigned threads = 1;
  // python: the interpreter for the Python rows; nullopt skips them.
  std::optional<PythonInfo> python;
  // python_budget_seconds: in Size::kDefault, the wall time one Python row should stay under.
  double python_budget_seconds = 10.0;
  // concur_executable: the concur binary, whose `worker` subcommand serves is_prime_redis's
  // Redis rows ("/proc/self/exe" in the concur binary itself); empty skips those rows. Never a
  // program without a `worker` subcommand (a test binary would run its tests in every "worker").
  std::string concur_executable;
  // progress(line): called with a one-line status before each row; may be empty.
  std::function<void(std::string_view)> progress;

  void report_progress(std::string_view line) const {
    if (progress) progress(line);
  }
};

// Row is one measured mode of one experiment.
struct Row {
  std::string experiment;      // Experiment::name()
  std::string mode;            // "serial", "threads 2", "python serial", "python threading 2"
  std::string language;        // "c++" or "python": speedups compare rows of one language
  unsigned workers = 1;        // threads (later: processes, coroutines) the row used
  bool baseline = false;       // the serial row its language's speedups are relative to
  std::size_t items = 0;       // work items this row ran
  std::size_t full_items = 0;  // work items of the notes' experiment
  std::string unit;            // what an item is, plural: "numbers"
  double seconds = 0.0;        // measured wall time of the work (interpreter start-up excluded)
  std::string answer;          // what the row computed, summarized ("prime")
  std::string expected;        // the reference answer, computed once per experiment
  double speedup = 0.0;        // baseline seconds/item ÷ this row's; set by finalize_rows()
  std::string note;            // free text for the table (scaled rows get one automatically)
  // skipped: the mode cannot run here (an optional Python module is missing); the note says why.
  // A skipped row is not timed (seconds 0, no speedup) and computed nothing wrong: ok() holds.
  bool skipped = false;

  [[nodiscard]] bool ok() const { return skipped || answer == expected; }
  // scaled() is true when the row ran fewer items than the notes' experiment.
  [[nodiscard]] bool scaled() const { return items < full_items; }
  [[nodiscard]] double seconds_per_item() const;
  // estimated_full_seconds() extrapolates seconds linearly to full_items.
  [[nodiscard]] double estimated_full_seconds() const;
};

// Experiment is one experiment of the notes, run in every mode concur offers.
class Experiment {
 public:
  virtual ~Experiment() = default;
  // name() is the short, unique name used on the command line and in the report ("is_prime").
  [[nodiscard]] virtual std::string_view name() const = 0;
  // description() is one line for `concur bench --list`.
  [[nodiscard]] virtual std::string_view description() const = 0;
  // run(config) measures every mode and returns one Row per mode, the baselines included.
  // A row whose answer disagrees with the reference is returned, not thrown (ok() is false).
  // When a mode cannot run at all (e.g. the Python script failed) it throws: ExperimentError to
  // keep the rows measured so far, any other std::exception to drop them.
  [[nodiscard]] virtual std::vector<Row> run(const BenchConfig& config) const = 0;
};

// ExperimentError is an experiment's failure that still carries the rows measured before it.
class ExperimentError : public std::runtime_error {
 public:
  ExperimentError(const std::string& what, std::vector<Row> rows)
      : std::runtime_error(what), rows_(std::move(rows)) {}
  [[nodiscard]] const std::vector<Row>& rows() const noexcept { return rows_; }

 private:
  std::vector<Row> rows_;
};

// finalize_rows(rows) sets each row's speedup against the baseline row of the same experiment
// and language (0 when there is none) and the note of scaled rows.
void finalize_rows(std::vector<Row>& rows);

// scaled_count(full, seconds_per_item, budget) is the largest divisor of `full` whose run is
// predicted to take at most `budget` seconds, and at least 1: a divisor keeps the scale factor
// of the table a whole number ("10 of 100 numbers, ×10").
[[nodiscard]] std::size_t scaled_count(std::size_t full, double seconds_per_item, double budget);

// chunk(k, parts, count) is the half-open range [first, second) of the k-th of `parts`
// contiguous chunks of `count` items; the Python scripts split work the same way.
[[nodiscard]] std::pair<std::size_t, std::size_t> chunk(std::size_t k, std::size_t parts,
                                                        std::size_t count);

// format_seconds(s) prints a duration with 3 significant digits: "12.3 s", "45.6 ms", "789 µs".
[[nodiscard]] std::string format_seconds(double seconds);

// seconds_of(fn) runs fn() and returns its wall time in seconds (steady clock).
template <class F>
double seconds_of(F&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace concur::apps::bench
