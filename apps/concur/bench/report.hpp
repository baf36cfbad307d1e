// bench/report.hpp — the results of one `concur bench` run (BenchResult) and its two renderings:
// the text table printed to the terminal and the JSON report written for later charts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
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

  // ok() is true when no experiment threw and every row's answer matches its reference.
  [[nodiscard]] bool ok() const;
};

// run_experiments(selected, config) runs each experiment in turn, collects its rows and
// finalizes them. An experiment that throws is recorded in `errors` and the run goes on.
[[nodiscard]] BenchResult run_experiments(const std::vector<const Experiment*>& selected,
                                          const BenchConfig& config);

// render_table(result) is the human-readable report: a header line about the machine, one line
// per row, then the answer checks and the legend.
[[nodiscard]] std::string render_table(const BenchResult& result);

// to_json(result) is the machine-readable report: machine, config, rows and errors.
[[nodiscard]] nlohmann::json to_json(const BenchResult& result);

}  // namespace concur::apps::bench
