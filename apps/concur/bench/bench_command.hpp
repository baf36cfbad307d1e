// bench/bench_command.hpp — the `concur bench` subcommand: its options (BenchOptions), their
// CLI11 definition (add_bench_command) and the run itself (run_bench), which prints the table to
// `out`, progress and errors to `err`, writes the JSON report and returns the exit status.
//
// Exit status: 0 when every experiment ran and every row agrees with its reference, 1 when a row
// disagrees, an experiment failed or the JSON report cannot be written, 2 for invalid options.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace concur::apps::bench {

// BenchOptions are the command-line options of `concur bench`.
struct BenchOptions {
  std::vector<std::string> experiments;  // names to run; empty runs them all
  bool list = false;                     // --list: print the experiments and exit
  bool quick = false;                    // --quick: tiny sizes (tests)
  bool full = false;                     // --full: the notes' sizes everywhere, Python included
  unsigned threads = 0;                  // --threads: 0 means std::thread::hardware_concurrency()
  std::string python = "python3";        // --python: the interpreter of the Python rows
  bool no_python = false;                // --no-python: skip the Python rows
  double python_budget = 10.0;           // --python-budget: seconds per Python row by default
  std::string json_path = "concur-bench.json";  // --json
  bool no_json = false;                         // --no-json
  // concur_executable: BenchConfig::concur_executable (no option: main.cpp sets /proc/self/exe).
  std::string concur_executable;
};

// add_bench_command(app, options) adds the `bench` subcommand to `app`, parsing into `options`
// (which must outlive the parse), and returns it.
CLI::App* add_bench_command(CLI::App& app, BenchOptions& options);

// run_bench(options, out, err) runs `concur bench` and returns its exit status.
[[nodiscard]] int run_bench(const BenchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace concur::apps::bench
