// bench/bench_command.hpp — the `concur bench` subcommand: its options (BenchOptions), their
// CLI11 definition (add_bench_command) and the run itself (run_bench), which prints the table to
// `out`, progress (bench/progress.hpp) and errors to `err`, writes the JSON report and, when
// asked, the HTML report and SVG charts drawn from it (bench/html_report.hpp). With --from it
// runs nothing: it redraws the HTML/SVG of a saved JSON report.
//
// Exit status: 0 when every experiment ran and every row agrees with its reference, 1 when a row
// disagrees, an experiment failed or a report (JSON, HTML, SVG) cannot be written, 2 for invalid
// options or input (an unknown experiment; a --from file that is unreadable, not JSON or not a
// concur bench report).
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace concur::apps::bench {

// BenchOptions are the command-line options of `concur bench`.
struct BenchOptions {
  std::vector<std::string> experiments;  // names to run (positional); empty runs them all
  std::vector<std::string> only;         // --only a,b: more names, added to `experiments`
  bool list = false;                     // --list: print the experiments and exit
  bool quick = false;                    // --quick: tiny sizes (tests)
  bool full = false;                     // --full: the notes' sizes everywhere, Python included
  unsigned threads = 0;                  // --threads: 0 means std::thread::hardware_concurrency()
  std::string python = "python3";        // --python: the interpreter of the Python rows
  bool no_python = false;                // --no-python: skip the Python rows
  double python_budget = 10.0;           // --python-budget: seconds per Python row by default
  std::string json_path = "concur-bench.json";  // --json
  bool no_json = false;                         // --no-json
  std::string html_path;                        // --html: write the HTML report here ("" for none)
  std::string svg_dir;    // --svg: write one <experiment>.svg per experiment here ("" for none)
  std::string from_path;  // --from: draw --html/--svg from this JSON report, run nothing
  // concur_executable: BenchConfig::concur_executable (no option: main.cpp sets /proc/self/exe).
  std::string concur_executable;
};

// add_bench_command(app, options) adds the `bench` subcommand to `app`, parsing into `options`
// (which must outlive the parse), and returns it.
CLI::App* add_bench_command(CLI::App& app, BenchOptions& options);

// run_bench(options, out, err) runs `concur bench` and returns its exit status.
[[nodiscard]] int run_bench(const BenchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace concur::apps::bench
