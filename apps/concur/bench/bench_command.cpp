// bench/bench_command.cpp — `concur bench`: options, validation, the run and the JSON file.
#include "bench/bench_command.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/python.hpp"
#include "bench/registry.hpp"
#include "bench/report.hpp"

namespace concur::apps::bench {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// positive_seconds() accepts a finite number of seconds > 0 (CLI::PositiveNumber's message
// prints DBL_MAX in full).
CLI::Validator positive_seconds() {
  CLI::Validator validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(v) || !(v > 0.0)) {
          return "expected a positive number of seconds, got '" + text + "'";
        }
        return {};
      },
      "SECONDS>0");
  return validator;
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Run the notes' speed experiments serially, with threads and in Python, and print one "
      "table (plus a JSON report).");
  cmd->add_option("experiments", options.experiments,
                  "Experiments to run (default: all; see --list)");
  cmd->add_flag("--list", options.list, "List the experiments and exit");
  CLI::Option* quick =
      cmd->add_flag("--quick", options.quick, "Tiny sizes: a few seconds in all (for tests)");
  CLI::Option* full = cmd->add_flag("--full", options.full,
                                    "The notes' exact sizes everywhere, Python included (slow)");
  quick->excludes(full);
  cmd->add_option("--threads,-t", options.threads,
                  "Threads of the 'threads N' rows (default: the number of CPUs)")
      ->check(CLI::Range(1U, 4096U));
  CLI::Option* python =
      cmd->add_option("--python", options.python, "Python interpreter of the Python rows")
          ->capture_default_str();
  CLI::Option* no_python = cmd->add_flag("--no-python", options.no_python, "Skip the Python rows");
  python->excludes(no_python);
  cmd->add_option("--python-budget", options.python_budget,
                  "Seconds one Python row may take by default: Python runs the largest share of "
                  "the notes' count that fits, and the table scales it up")
      ->capture_default_str()
      ->check(positive_seconds());
  CLI::Option* json = cmd->add_option("--json", options.json_path, "Where to write the JSON report")
                          ->capture_default_str();
  CLI::Option* no_json = cmd->add_flag("--no-json", options.no_json, "Write no JSON report");
  json->excludes(no_json);
  return cmd;
}

int run_bench(const BenchOptions& options, std::ostream& out, std::ostream& err) {
  if (options.list) {
    std::size_t width = 0;
    for (const auto& e : experiments()) width = std::max(width, e->name().size());
    for (const auto& e : experiments()) {
      out << fmt::format("{:<{}}  {}\n", e->name(), width, e->description());
    }
    return 0;
  }
  if (options.quick && options.full) {
    err << "concur bench: --quick and --full exclude each other\n";
    return kExitUsage;
  }
  if (!(options.python_budget > 0.0)) {
    err << "concur bench: --python-budget must be a positive number of seconds\n";
    return kExitUsage;
  }

  std::vector<const Experiment*> selected;
  if (options.experiments.empty()) {
    for (const auto& e : experiments()) selected.push_back(e.get());
  }
  for (const std::string& name : options.experiments) {
    const Experiment* e = find_experiment(name);
    if (e == nullptr) {
      std::string known;
      for (const auto& k : experiments()) known += fmt::format(" {}", k->name());
      err << fmt::format("concur bench: unknown experiment '{}' (known:{})\n", name, known);
      return kExitUsage;
    }
    selected.push_back(e);
  }

  BenchConfig config;
  config.size = options.quick ? Size::kQuick : options.full ? Size::kFull : Size::kDefault;
  config.threads = options.threads;
  if (config.threads == 0) config.threads = std::max(1U, std::thread::hardware_concurrency());
  config.python_budget_seconds = options.python_budget;
  config.concur_executable = options.concur_executable;
  if (!options.no_python) {
    config.python = find_python(options.python);
    if (!config.python) {
      err << fmt::format("concur bench: '{}' not found or not runnable: no Python rows\n",
                         options.python);
    }
  }
  config.progress = [&err](std::string_view line) { err << "running " << line << std::endl; };

  const BenchResult result = run_experiments(selected, config);
  out << render_table(result) << std::flush;

  int status = result.ok() ? 0 : kExitFailed;
  for (const std::string& e : result.errors) err << "concur bench: " << e << "\n";
  for (const Row& r : result.rows) {
    if (!r.ok()) {
      err << fmt::format("concur bench: {} / {} answered '{}', expected '{}'\n", r.experiment,
                         r.mode, r.answer, r.expected);
    }
  }
  if (!options.no_json) {
    std::ofstream file(options.json_path);
    file << to_json(result).dump(2) << "\n";
    file.close();
    if (!file) {
      err << fmt::format("concur bench: cannot write the JSON report to '{}'\n", options.json_path);
      status = kExitFailed;
    } else {
      err << fmt::format("concur bench: JSON report written to {}\n", options.json_path);
    }
  }
  return status;
}

}  // namespace concur::apps::bench
