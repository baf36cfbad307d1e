// bench/bench_command.cpp — `concur bench`: options, validation, the run with its progress, the
// JSON file and the HTML/SVG drawn from it, or (--from) only the drawing.
#include "bench/bench_command.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/html_report.hpp"
#include "bench/progress.hpp"
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

constexpr std::string_view kExamples = R"(Examples:
  concur bench                        every experiment at the default sizes, C++ and Python;
                                      the table on stdout, the report in concur-bench.json
  concur bench --list                 the experiments, one line each
  concur bench --only is_prime,fib_pool --quick --no-python
  concur bench --full --python /usr/bin/python3 --html report.html
  concur bench --html report.html --from concur-bench.json
                                      redraw a saved run as a page of charts, running nothing
  concur bench --svg charts --from concur-bench.json --only is_prime
                                      charts/is_prime.svg: one chart per experiment)";

// write_text(path, text) writes a whole file; false when it cannot.
bool write_text(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary);
  file << text;
  file.close();
  return static_cast<bool>(file);
}

// write_charts(report, options, source, err) writes the --html page and the --svg charts of a
// checked JSON report; returns kExitFailed when one cannot be written, else 0.
int write_charts(const nlohmann::json& report, const BenchOptions& options, std::string_view source,
                 std::ostream& err) {
  int status = 0;
  if (!options.html_path.empty()) {
    if (write_text(options.html_path, render_html(report, source))) {
      err << fmt::format("concur bench: HTML report written to {}\n", options.html_path);
    } else {
      err << fmt::format("concur bench: cannot write the HTML report to '{}'\n", options.html_path);
      status = kExitFailed;
    }
  }
  if (!options.svg_dir.empty()) {
    const std::filesystem::path dir(options.svg_dir);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec || !std::filesystem::is_directory(dir)) {
      err << fmt::format("concur bench: cannot create the SVG directory '{}'{}\n", options.svg_dir,
                         ec ? ": " + ec.message() : std::string());
      return kExitFailed;
    }
    const std::vector<std::string> names = report_experiments(report);
    const std::vector<std::string> files = svg_file_names(names);
    std::size_t written = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string path = (dir / files[i]).string();
      if (write_text(path, render_svg(report, names[i]))) {
        ++written;
      } else {
        err << fmt::format("concur bench: cannot write the SVG chart '{}'\n", path);
        status = kExitFailed;
      }
    }
    err << fmt::format("concur bench: {} SVG chart{} written to {}\n", written,
                       written == 1 ? "" : "s", options.svg_dir);
  }
  return status;
}

// redraw(options, names, err) is `concur bench --from JSON`: the charts of a saved report.
int redraw(const BenchOptions& options, const std::vector<std::string>& names, std::ostream& err) {
  if (options.html_path.empty() && options.svg_dir.empty()) {
    err << "concur bench: --from draws a saved report: give --html FILE and/or --svg DIR\n";
    return kExitUsage;
  }
  nlohmann::json report;
  try {
    report = read_report(options.from_path);
  } catch (const ReportError& e) {
    err << "concur bench: --from " << e.what() << "\n";
    return kExitUsage;
  }
  if (!names.empty()) {
    const std::vector<std::string> known = report_experiments(report);
    for (const std::string& name : names) {
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (const std::string& k : known) list += " " + k;
        err << fmt::format("concur bench: '{}' has no experiment '{}' (it has:{})\n",
                           options.from_path, name, list.empty() ? " none" : list);
        return kExitUsage;
      }
    }
    report = only_experiments(report, names);
  }
  return write_charts(report, options, options.from_path, err);
}

// expected_seconds(path, config, names) is, per name, the wall time that experiment took in the
// JSON report at `path` (the previous run's, about to be replaced) when that run was comparable
// (same size and thread count, Python rows in both or in neither), else -1. Only the progress
// display's time-left estimate uses it: a missing or foreign file just means no expectations.
std::vector<double> expected_seconds(const std::string& path, const BenchConfig& config,
                                     const std::vector<std::string>& names) {
  std::vector<double> expected(names.size(), -1.0);
  try {
    std::ifstream file(path);
    if (!file) return expected;
    const nlohmann::json previous = nlohmann::json::parse(file);
    const nlohmann::json& c = previous.at("config");
    if (previous.at("tool") != "concur bench" || c.at("size") != size_name(config.size) ||
        c.at("threads") != config.threads ||
        c.at("python").is_null() == config.python.has_value()) {
      return expected;
    }
    const nlohmann::json& walls = previous.at("experiment_seconds");
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (walls.contains(names[i]) && walls.at(names[i]).is_number()) {
        expected[i] = walls.at(names[i]).get<double>();
      }
    }
  } catch (const std::exception&) {
    return std::vector<double>(names.size(), -1.0);  // an older or damaged report: no estimate
  }
  return expected;
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Run the notes' speed experiments serially, with threads, processes and coroutines and in "
      "Python, and print one table (plus a JSON report, and on request an HTML page of charts).");
  cmd->add_option("experiments", options.experiments,
                  "Experiments to run (default: all; see --list)");
  cmd->add_option("--only", options.only,
                  "Run (or with --from, draw) only these experiments, comma-separated")
      ->delimiter(',')
      ->type_name("EXPERIMENT[,...]");
  CLI::Option* list = cmd->add_flag("--list", options.list, "List the experiments and exit");
  CLI::Option* quick =
      cmd->add_flag("--quick", options.quick, "Tiny sizes: a few seconds in all (for tests)");
  CLI::Option* full = cmd->add_flag("--full", options.full,
                                    "The notes' exact sizes everywhere, Python included (slow)");
  quick->excludes(full);
  CLI::Option* threads =
      cmd->add_option("--threads,-t", options.threads,
                      "Threads of the 'threads N' rows (default: the number of CPUs)")
          ->check(CLI::Range(1U, 4096U));
  CLI::Option* python =
      cmd->add_option("--python", options.python, "Python interpreter of the Python rows")
          ->capture_default_str();
  CLI::Option* no_python = cmd->add_flag("--no-python", options.no_python, "Skip the Python rows");
  python->excludes(no_python);
  CLI::Option* budget =
      cmd->add_option("--python-budget", options.python_budget,
                      "Seconds one Python row may take by default: Python runs the largest share "
                      "of the notes' count that fits, and the table scales it up")
          ->capture_default_str()
          ->check(positive_seconds());
  CLI::Option* json = cmd->add_option("--json", options.json_path, "Where to write the JSON report")
                          ->capture_default_str();
  CLI::Option* no_json = cmd->add_flag("--no-json", options.no_json, "Write no JSON report");
  json->excludes(no_json);
  cmd->add_option("--html", options.html_path,
                  "Also write a self-contained HTML report (inline SVG charts, no script, opens "
                  "offline), drawn from the JSON report")
      ->type_name("FILE");
  cmd->add_option("--svg", options.svg_dir,
                  "Also write one standalone <experiment>.svg chart per experiment into DIR "
                  "(created if missing)")
      ->type_name("DIR");
  CLI::Option* from = cmd->add_option("--from", options.from_path,
                                      "Run nothing: draw --html/--svg from this saved JSON report")
                          ->type_name("JSON");
  // --from runs nothing: the options of a run would be silently ignored.
  for (CLI::Option* o : {list, quick, full, threads, python, no_python, budget, json, no_json}) {
    from->excludes(o);
  }
  cmd->footer(std::string(kExamples));
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

  // The positional names, then --only's; each once, in the order given.
  std::vector<std::string> names;
  for (const auto* list : {&options.experiments, &options.only}) {
    for (const std::string& name : *list) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  if (!options.from_path.empty()) return redraw(options, names, err);

  std::vector<const Experiment*> selected;
  if (names.empty()) {
    for (const auto& e : experiments()) selected.push_back(e.get());
  }
  for (const std::string& name : names) {
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
  BenchResult result;
  {
    std::vector<std::string> selected_names;
    for (const Experiment* e : selected) selected_names.emplace_back(e->name());
    // The live line only on a terminal, and only on the process's own stderr (not a test's
    // stream); plain lines elsewhere.
    const bool live = &err == &std::cerr && ::isatty(STDERR_FILENO) == 1;
    BenchProgress progress(err, live, selected_names,
                           expected_seconds(options.json_path, config, selected_names));
    config.progress = [&progress](std::string_view line) { progress.row_started(line); };
    RunHooks hooks;
    hooks.experiment_started = [&progress](std::size_t i, std::string_view) {
      progress.experiment_started(i);
    };
    hooks.experiment_finished = [&progress](std::size_t i, std::string_view, double seconds) {
      progress.experiment_finished(i, seconds);
    };
    result = run_experiments(selected, config, hooks);
  }  // the live line is wiped here, before the table
  out << render_table(result) << std::flush;

  int status = result.ok() ? 0 : kExitFailed;
  for (const std::string& e : result.errors) err << "concur bench: " << e << "\n";
  for (const Row& r : result.rows) {
    if (!r.ok()) {
      err << fmt::format("concur bench: {} / {} answered '{}', expected '{}'\n", r.experiment,
                         r.mode, r.answer, r.expected);
    }
  }
  // The HTML and SVG are drawn from the JSON, written or not, so that --from redraws the same.
  const nlohmann::json report = to_json(result);
  std::string source;
  if (!options.no_json) {
    if (!write_text(options.json_path, report.dump(2) + "\n")) {
      err << fmt::format("concur bench: cannot write the JSON report to '{}'\n", options.json_path);
      status = kExitFailed;
    } else {
      err << fmt::format("concur bench: JSON report written to {}\n", options.json_path);
      source = options.json_path;
    }
  }
  if (write_charts(report, options, source, err) != 0) status = kExitFailed;
  return status;
}

}  // namespace concur::apps::bench
