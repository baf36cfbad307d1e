// tests/apps/bench_report_fixture.hpp — a fixed `concur bench` JSON report for the report tests
// (bench_report_test.cpp, bench_report_chromium_test.cpp): two experiments, C++ and Python rows,
// two scaled-down rows with notes, a skipped row, and strings that need escaping in HTML/SVG.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace concur::testing {

// kOddExperiment: an experiment name with every character escape_xml() must replace.
inline const std::string kOddExperiment = "x<&\"'>y";
// kOddNote: a note that would be markup (and a script) if it were not escaped.
inline const std::string kOddNote = "<script>alert('x')</script> & more";

// bench_report_fixture() is the report. Timed rows (bars): is_prime 4, kOddExperiment 2 (its
// third row is skipped); extrapolated (scaled) rows: is_prime's 2 Python rows.
inline nlohmann::json bench_report_fixture() {
  auto row = [](const std::string& experiment, const std::string& mode, const std::string& language,
                bool baseline, unsigned items, unsigned full_items, double seconds, double speedup,
                const std::string& note) {
    const double per_item = seconds / items;
    return nlohmann::json{{"experiment", experiment},
                          {"mode", mode},
                          {"language", language},
                          {"workers", 1},
                          {"baseline", baseline},
                          {"items", items},
                          {"full_items", full_items},
                          {"unit", "numbers"},
                          {"scaled", items < full_items},
                          {"seconds", seconds},
                          {"seconds_per_item", per_item},
                          {"estimated_full_seconds", per_item * full_items},
                          {"speedup", speedup},
                          {"answer", "prime"},
                          {"expected", "prime"},
                          {"ok", true},
                          {"skipped", false},
                          {"note", note}};
  };
  nlohmann::json rows = nlohmann::json::array();
  rows.push_back(row("is_prime", "serial", "c++", true, 100, 100, 1.0, 1.0, ""));
  rows.push_back(row("is_prime", "threads 2", "c++", false, 100, 100, 0.5, 2.0, ""));
  rows.push_back(row("is_prime", "python serial", "python", true, 25, 100, 4.0, 1.0,
                     "scaled down ×4: ≈ 16.0 s for all 100 numbers"));
  rows.push_back(row("is_prime", "python threading 2", "python", false, 25, 100, 5.0, 0.8,
                     "scaled down ×4: ≈ 20.0 s for all 100 numbers"));
  rows.push_back(row(kOddExperiment, "serial", "c++", true, 10, 10, 0.2, 1.0, ""));
  rows.push_back(row(kOddExperiment, "python serial", "python", true, 10, 10, 2.0, 1.0, kOddNote));
  nlohmann::json skipped = row(kOddExperiment, "python scrapy", "python", false, 10, 10, 0.0, 0.0,
                               "skipped: scrapy is not importable");
  skipped["skipped"] = true;
  skipped["answer"] = "skipped";
  rows.push_back(skipped);

  nlohmann::json report;
  report["tool"] = "concur bench";
  report["machine"] = {{"nproc", 2},
                       {"cpu_model", "AMD EPYC <b>7B13</b>"},
                       {"load_average", 0.5},
                       {"os", "Linux 6.1.0 x86_64"},
                       {"compiler", "GCC 12.2.0"},
                       {"build_type", "Release"},
                       {"sanitize", ""},
                       {"allocator", "mimalloc 2.0.9"},
                       {"concur_version", "9.8.7"},
                       {"date", "2026-11-24T13:16:16Z"}};
  report["config"] = {{"size", "default"},
                      {"threads", 2},
                      {"python_budget_seconds", 10.0},
                      {"python", {{"executable", "/usr/bin/python3"}, {"version", "3.11.7"}}}};
  report["rows"] = rows;
  report["errors"] = nlohmann::json::array();
  report["experiment_seconds"] = {{"is_prime", 12.5}, {kOddExperiment, 3.0}};
  report["total_seconds"] = 15.5;
  report["ok"] = true;
  return report;
}

}  // namespace concur::testing
