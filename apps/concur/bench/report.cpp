// bench/report.cpp — running the selected experiments and rendering their rows.
#include "bench/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace concur::apps::bench {
namespace {

// display_width(s) counts code points, which is the terminal width of the text we print.
std::size_t display_width(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string pad(std::string_view s, std::size_t width, bool right) {
  const std::size_t w = display_width(s);
  const std::string fill(width > w ? width - w : 0, ' ');
  return right ? fill + std::string(s) : std::string(s) + fill;
}

}  // namespace

std::string_view size_name(Size size) {
  switch (size) {
    case Size::kQuick:
      return "quick";
    case Size::kDefault:
      return "default";
    case Size::kFull:
      return "full";
  }
  return "?";
}

bool BenchResult::ok() const {
  return errors.empty() &&
         std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.ok(); });
}

BenchResult run_experiments(const std::vector<const Experiment*>& selected,
                            const BenchConfig& config, const RunHooks& hooks) {
  BenchResult result;
  result.machine = machine_info();
  result.config = config;
  result.config.progress = nullptr;  // the result outlives the caller's callback
  result.total_seconds = seconds_of([&] {
    for (std::size_t i = 0; i < selected.size(); ++i) {
      const Experiment* e = selected[i];
      if (hooks.experiment_started) hooks.experiment_started(i, e->name());
      const double seconds = seconds_of([&] {
        try {
          std::vector<Row> rows = e->run(config);
          result.rows.insert(result.rows.end(), rows.begin(), rows.end());
        } catch (const ExperimentError& ex) {
          result.rows.insert(result.rows.end(), ex.rows().begin(), ex.rows().end());
          result.errors.push_back(fmt::format("{}: {}", e->name(), ex.what()));
        } catch (const std::exception& ex) {
          result.errors.push_back(fmt::format("{}: {}", e->name(), ex.what()));
        }
      });
      result.experiment_seconds.emplace_back(e->name(), seconds);
      if (hooks.experiment_finished) hooks.experiment_finished(i, e->name(), seconds);
    }
  });
  finalize_rows(result.rows);
  return result;
}

std::string render_table(const BenchResult& result) {
  const MachineInfo& m = result.machine;
  const BenchConfig& c = result.config;
  std::string out =
      fmt::format("concur bench ({} size): {} CPUs ({}), load {:.2f}, {} {}{}, malloc {}; ",
                  size_name(c.size), m.nproc, m.cpu_model, m.load_average, m.compiler, m.build_type,
                  m.sanitize.empty() ? "" : ", sanitizer " + m.sanitize, m.allocator);
  out += c.python ? fmt::format("Python {}", c.python->version) : std::string("no Python rows");
  out += "\n\n";

  const std::vector<std::string> header = {"experiment", "mode",    "work",   "wall time",
                                           "per item",   "speedup", "answer", "note"};
  // Right-aligned: the numeric columns.
  const std::vector<bool> right = {false, false, true, true, true, true, false, false};
  std::vector<std::vector<std::string>> cells;
  bool any_scaled = false;
  for (const Row& r : result.rows) {
    any_scaled = any_scaled || r.scaled();
    cells.push_back({
        r.experiment,
        r.mode,
        r.scaled() ? fmt::format("{} of {} {}", r.items, r.full_items, r.unit)
                   : fmt::format("{} {}", r.items, r.unit),
        r.skipped ? std::string("-") : format_seconds(r.seconds),
        r.skipped ? std::string("-") : format_seconds(r.seconds_per_item()),
        r.speedup > 0 ? fmt::format("{:.2f}×", r.speedup) : std::string("-"),
        r.ok() ? r.answer : fmt::format("{} (WRONG: expected {})", r.answer, r.expected),
        r.note,
    });
  }
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) {
    width[i] = display_width(header[i]);
    for (const auto& row : cells) width[i] = std::max(width[i], display_width(row[i]));
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (std::size_t i = 0; i < row.size(); ++i) {
      const bool last = i + 1 == row.size();
      text += last ? row[i] : pad(row[i], width[i], right[i]);
      if (!last) text += "  ";
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text + "\n";
  };
  out += line(header);
  std::vector<std::string> rule;
  rule.reserve(width.size());
  for (std::size_t w : width) rule.emplace_back(w, '-');
  out += line(rule);
  for (const auto& row : cells) out += line(row);

  out += "\n";
  out += "speedup: the serial row's time per item ÷ this row's, within one language.\n";
  if (any_scaled) {
    out +=
        "scaled rows ran fewer items than the notes (\"10 of 100\"): their wall time is measured, "
        "the note extrapolates it linearly to the full count (--full runs everything in full).\n";
  }
  const bool answers_ok =
      std::all_of(result.rows.begin(), result.rows.end(), [](const Row& r) { return r.ok(); });
  out += answers_ok ? "answers: every row agrees with its reference.\n"
                    : "answers: SOME ROWS DISAGREE WITH THEIR REFERENCE (marked WRONG above).\n";
  for (const std::string& e : result.errors) out += fmt::format("error: {}\n", e);
  out += fmt::format("total: {}\n", format_seconds(result.total_seconds));
  return out;
}

nlohmann::json to_json(const BenchResult& result) {
  const MachineInfo& m = result.machine;
  const BenchConfig& c = result.config;
  nlohmann::json j;
  j["tool"] = "concur bench";
  j["machine"] = {{"nproc", m.nproc},
                  {"cpu_model", m.cpu_model},
                  {"load_average", m.load_average},
                  {"os", m.os},
                  {"compiler", m.compiler},
                  {"build_type", m.build_type},
                  {"sanitize", m.sanitize},
                  {"allocator", m.allocator},
                  {"concur_version", m.concur_version},
                  {"date", m.date}};
  j["config"] = {{"size", size_name(c.size)},
                 {"threads", c.threads},
                 {"python_budget_seconds", c.python_budget_seconds}};
  j["config"]["python"] = c.python ? nlohmann::json{{"executable", c.python->executable},
                                                    {"version", c.python->version}}
                                   : nlohmann::json(nullptr);
  nlohmann::json rows = nlohmann::json::array();
  for (const Row& r : result.rows) {
    rows.push_back({{"experiment", r.experiment},
                    {"mode", r.mode},
                    {"language", r.language},
                    {"workers", r.workers},
                    {"baseline", r.baseline},
                    {"items", r.items},
                    {"full_items", r.full_items},
                    {"unit", r.unit},
                    {"scaled", r.scaled()},
                    {"seconds", r.seconds},
                    {"seconds_per_item", r.seconds_per_item()},
                    {"estimated_full_seconds", r.estimated_full_seconds()},
                    {"speedup", r.speedup},
                    {"answer", r.answer},
                    {"expected", r.expected},
                    {"ok", r.ok()},
                    {"skipped", r.skipped},
                    {"note", r.note}});
  }
  j["rows"] = std::move(rows);
  j["errors"] = result.errors;
  j["experiment_seconds"] = nlohmann::json::object();
  for (const auto& [name, seconds] : result.experiment_seconds) {
    j["experiment_seconds"][name] = seconds;
  }
  j["total_seconds"] = result.total_seconds;
  j["ok"] = result.ok();
  return j;
}

}  // namespace concur::apps::bench
