// bench/report.hpp — the results of one `concur bench` run (BenchResult) and its two renderings:
// the text table printed to the terminal and the JSON report written for later charts.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/machine.hpp"

namespace concur::apps::bench {

// BenchResult is everything one run measured.
struct BenchResult {
  MachineInfo machine;
  BenchConfig config;
  std::vector<Row> rows;            // finalized: speedups and notes set
  std::vector<std::string> errors;  // "<experiment>: <what>" for experiments that threw
  double total_seconds = 0.0;       // wall time of the whole run
  // experiment_seconds: each experiment's wall time, in run order (set-up, calibration and
  // interpreter start-ups included, unlike the rows' seconds): what the next run's progress
  // display expects each experiment to take.
  std::vector<std::pair<std::string, double>> experiment_seconds;

  // ok() is true when no experiment threw and every row's answer matches its reference.
  [[nodiscard]] bool ok() const;
};

// RunHooks: what run_experiments() tells its caller as it goes (the progress display); each is
// called on the calling thread and may be empty. `index` counts the selected experiments from 0.
struct RunHooks {
  // experiment_started(index, name): before the experiment's run().
  std::function<void(std::size_t index, std::string_view name)> experiment_started;
  // experiment_finished(index, name, seconds): after it returned or threw.
  std::function<void(std::size_t index, std::string_view name, double seconds)> experiment_finished;
};

// run_experiments(selected, config, hooks) runs each experiment in turn, collects its rows and
// finalizes them. An experiment that throws is recorded in `errors` and the run goes on.
[[nodiscard]] BenchResult run_experiments(const std::vector<const Experiment*>& selected,
                                          const BenchConfig& config, const RunHooks& hooks = {});

// size_name(size) is the size as the JSON report and the table name it: "quick", "default", "full".
[[nodiscard]] std::string_view size_name(Size size);

// render_table(result) is the human-readable report: a header line about the machine, one line
// per row, then the answer checks and the legend.
[[nodiscard]] std::string render_table(const BenchResult& result);

// to_json(result) is the machine-readable report: machine, config, rows, errors and each
// experiment's wall time ("experiment_seconds": name → seconds). html_report.hpp draws it.
[[nodiscard]] nlohmann::json to_json(const BenchResult& result);

}  // namespace concur::apps::bench
