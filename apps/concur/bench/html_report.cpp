// bench/html_report.cpp — validating a JSON report into a small model, then drawing it: one SVG
// chart per experiment (two panels sharing the row labels: wall time, speedup) and the page that
// holds them with the machine, the versions and a table of every row with its note.
//
// Layout rule: each panel's scale is the largest that keeps every bar *and its value label*
// inside the panel, so labels never overlap the next panel whatever the values; text widths are
// estimated from the code-point count (no font metrics offline), on the generous side.
#include "bench/html_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"

namespace concur::apps::bench {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// The model: what the charts need from the JSON, with to_json()'s defaults for missing fields.

struct ChartRow {
  std::string mode;
  std::string language;
  std::string unit;
  std::string note;
  std::string answer;
  std::string expected;
  bool baseline = false;
  bool scaled = false;
  bool skipped = false;
  bool ok = true;
  std::uint64_t items = 0;
  std::uint64_t full_items = 0;
  double seconds = 0.0;
  double seconds_per_item = 0.0;
  double estimated_full_seconds = 0.0;
  double speedup = 0.0;
};

struct ChartExperiment {
  std::string name;
  std::vector<ChartRow> rows;
  double wall_seconds = -1.0;  // the whole experiment's wall time ("experiment_seconds"), or -1
};

struct ReportModel {
  std::string cpu_model;
  std::string os;
  std::string compiler;
  std::string build_type;
  std::string sanitize;
  std::string allocator;
  std::string concur_version;
  std::string date;
  std::uint64_t nproc = 0;
  double load_average = -1.0;
  std::string size;
  std::uint64_t threads = 0;
  double python_budget_seconds = 0.0;
  std::string python_version;  // empty: no Python rows
  std::string python_executable;
  double total_seconds = -1.0;
  bool ok = true;
  std::vector<std::string> errors;
  std::vector<ChartExperiment> experiments;
};

// The readers of optional fields: absent (or null, which is how JSON writes a NaN) gives the
// fallback; present with another type is a ReportError naming the field.
std::string string_field(const json& obj, const char* key, const std::string& where,
                         std::string fallback = {}) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_string()) throw ReportError(fmt::format("{}.{}: expected a string", where, key));
  return it->get<std::string>();
}

double number_field(const json& obj, const char* key, const std::string& where, double fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw ReportError(fmt::format("{}.{}: expected a number", where, key));
  const double v = it->get<double>();
  if (!std::isfinite(v)) throw ReportError(fmt::format("{}.{}: not a finite number", where, key));
  return v;
}

std::uint64_t count_field(const json& obj, const char* key, const std::string& where,
                          std::uint64_t fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  // A count parsed from text is unsigned; one built in code from an int is a signed integer.
  if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(it->get<std::int64_t>());
  }
  throw ReportError(fmt::format("{}.{}: expected a non-negative integer", where, key));
}

bool bool_field(const json& obj, const char* key, const std::string& where, bool fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    throw ReportError(fmt::format("{}.{}: expected true or false", where, key));
  return it->get<bool>();
}

const json& object_field(const json& obj, const char* key, const std::string& where) {
  static const json kEmpty = json::object();
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return kEmpty;
  if (!it->is_object()) throw ReportError(fmt::format("{}.{}: expected an object", where, key));
  return *it;
}

ChartRow parse_row(const json& row, const std::string& where) {
  if (!row.is_object()) throw ReportError(where + ": expected an object");
  for (const char* key : {"experiment", "mode"}) {
    if (!row.contains(key) || !row.at(key).is_string()) {
      throw ReportError(fmt::format("{}.{}: missing, or not a string", where, key));
    }
  }
  if (!row.contains("seconds") || !row.at("seconds").is_number()) {
    throw ReportError(where + ".seconds: missing, or not a number");
  }
  ChartRow r;
  r.mode = row.at("mode").get<std::string>();
  r.language = string_field(row, "language", where, "c++");
  r.unit = string_field(row, "unit", where, "items");
  r.note = string_field(row, "note", where);
  r.answer = string_field(row, "answer", where);
  r.expected = string_field(row, "expected", where, r.answer);
  r.items = count_field(row, "items", where, 0);
  r.full_items = count_field(row, "full_items", where, r.items);
  r.baseline = bool_field(row, "baseline", where, false);
  r.scaled = bool_field(row, "scaled", where, r.items < r.full_items);
  r.skipped = bool_field(row, "skipped", where, false);
  r.ok = bool_field(row, "ok", where, r.skipped || r.answer == r.expected);
  r.seconds = std::max(0.0, number_field(row, "seconds", where, 0.0));
  const double per_item = r.items == 0 ? 0.0 : r.seconds / static_cast<double>(r.items);
  r.seconds_per_item = std::max(0.0, number_field(row, "seconds_per_item", where, per_item));
  r.estimated_full_seconds =
      std::max(0.0, number_field(row, "estimated_full_seconds", where,
                                 r.seconds_per_item * static_cast<double>(r.full_items)));
  r.speedup = std::max(0.0, number_field(row, "speedup", where, 0.0));
  return r;
}

ReportModel parse_model(const json& report) {
  if (!report.is_object()) throw ReportError("not a concur bench report: expected a JSON object");
  if (!report.contains("tool") || report.at("tool") != "concur bench") {
    throw ReportError("not a concur bench report: \"tool\" is not \"concur bench\"");
  }
  if (!report.contains("rows") || !report.at("rows").is_array()) {
    throw ReportError("not a concur bench report: \"rows\" is missing or not an array");
  }
  ReportModel m;
  const json& machine = object_field(report, "machine", "report");
  m.cpu_model = string_field(machine, "cpu_model", "machine", "unknown CPU");
  m.os = string_field(machine, "os", "machine", "unknown OS");
  m.compiler = string_field(machine, "compiler", "machine");
  m.build_type = string_field(machine, "build_type", "machine");
  m.sanitize = string_field(machine, "sanitize", "machine");
  m.allocator = string_field(machine, "allocator", "machine");
  m.concur_version = string_field(machine, "concur_version", "machine", "unknown");
  m.date = string_field(machine, "date", "machine", "unknown date");
  m.nproc = count_field(machine, "nproc", "machine", 0);
  m.load_average = number_field(machine, "load_average", "machine", -1.0);

  const json& config = object_field(report, "config", "report");
  m.size = string_field(config, "size", "config");
  m.threads = count_field(config, "threads", "config", 0);
  m.python_budget_seconds = number_field(config, "python_budget_seconds", "config", 0.0);
  const json& python = object_field(config, "python", "config");
  m.python_version = string_field(python, "version", "config.python");
  m.python_executable = string_field(python, "executable", "config.python");

  m.total_seconds = number_field(report, "total_seconds", "report", -1.0);
  m.ok = bool_field(report, "ok", "report", true);
  if (const auto it = report.find("errors"); it != report.end() && !it->is_null()) {
    if (!it->is_array()) throw ReportError("report.errors: expected an array of strings");
    for (const json& e : *it) {
      if (!e.is_string()) throw ReportError("report.errors: expected an array of strings");
      m.errors.push_back(e.get<std::string>());
    }
  }

  const json& rows = report.at("rows");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string where = fmt::format("rows[{}]", i);
    ChartRow row = parse_row(rows[i], where);
    const std::string name = rows[i].at("experiment").get<std::string>();
    auto it = std::find_if(m.experiments.begin(), m.experiments.end(),
                           [&](const ChartExperiment& e) { return e.name == name; });
    if (it == m.experiments.end()) {
      m.experiments.push_back(ChartExperiment{name, {}, -1.0});
      it = std::prev(m.experiments.end());
    }
    it->rows.push_back(std::move(row));
  }
  const json& walls = object_field(report, "experiment_seconds", "report");
  for (ChartExperiment& e : m.experiments) {
    e.wall_seconds = number_field(walls, e.name.c_str(), "experiment_seconds", -1.0);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Text helpers.

std::size_t code_points(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// kCharEm: the estimated advance of one character in ems, generous for sans-serif fonts (DejaVu
// Sans averages about 0.55 em over digits and lowercase letters).
constexpr double kCharEm = 0.6;

double text_width(std::string_view s, double font_px) {
  return static_cast<double>(code_points(s)) * font_px * kCharEm;
}

// truncate(s, max) keeps the first max - 1 code points of a longer `s` and adds an ellipsis.
std::string truncate(std::string_view s, std::size_t max) {
  if (code_points(s) <= max || max == 0) return std::string(s);
  std::size_t kept = 0;
  std::size_t i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (kept == max - 1) break;
      ++kept;
    }
  }
  return std::string(s.substr(0, i)) + "…";
}

std::string sig3(double v) {
  if (v >= 100) return fmt::format("{:.0f}", v);
  if (v >= 10) return fmt::format("{:.1f}", v);
  return fmt::format("{:.2f}", v);
}

// compact_count(n): "25", "9999", "12.3 k", "77.9 M" — item counts inside chart labels.
std::string compact_count(std::uint64_t n) {
  const auto v = static_cast<double>(n);
  if (n < 10'000) return fmt::format("{}", n);
  if (v < 1e6) return sig3(v / 1e3) + " k";
  if (v < 1e9) return sig3(v / 1e6) + " M";
  return sig3(v / 1e9) + " G";
}

std::string format_speedup(double s) { return sig3(s) + "×"; }

std::string language_label(std::string_view language) {
  if (language == "c++") return "C++";
  if (language == "python") return "Python";
  return std::string(language);
}

// Okabe–Ito blue and orange: distinguishable with the common colour-vision deficiencies.
constexpr std::string_view kCppColour = "#0072B2";
constexpr std::string_view kPythonColour = "#E69F00";
constexpr std::string_view kOtherColour = "#7F7F7F";
constexpr std::string_view kWrongColour = "#C0392B";
// kHalo: a white outline painted under a value label, so that a gridline or the 1× line under
// it does not cross the digits.
constexpr std::string_view kHalo =
    R"( stroke="#fff" stroke-width="3" stroke-linejoin="round" paint-order="stroke")";
constexpr std::string_view kFontFamily =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif";

std::string_view colour_of(std::string_view language) {
  if (language == "c++") return kCppColour;
  if (language == "python") return kPythonColour;
  return kOtherColour;
}

std::string px(double v) { return fmt::format("{:.1f}", v); }

// nice_step(max, target) is a 1-2-5 step giving about `target` ticks up to `max`.
double nice_step(double max, int target) {
  const double raw = max / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0}) {
    if (m * magnitude >= raw) return m * magnitude;
  }
  return 10.0 * magnitude;
}

// decimals_for(step) is how many decimals print every multiple of `step` exactly.
int decimals_for(double step) {
  return step >= 1.0 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
}

// tick_seconds(v, step, max): "0", "500 ms", "1.5 s" — one unit per axis, chosen by its largest
// tick `max`, so that an axis reads "0, 0.5 s, 1 s, 1.5 s" rather than "1000 ms".
std::string tick_seconds(double v, double step, double max) {
  if (v == 0.0) return "0";
  double unit = 1.0;
  std::string_view name = "s";
  if (max < 1e-3) {
    unit = 1e-6;
    name = "µs";
  } else if (max < 1.0) {
    unit = 1e-3;
    name = "ms";
  }
  return fmt::format("{:.{}f} {}", v / unit, decimals_for(step / unit), name);
}

std::string tick_speedup(double v, double step) {
  if (v == 0.0) return "0×";
  return fmt::format("{:.{}f}×", v, decimals_for(step));
}

// work_text(row): "100 numbers", "25 of 100 numbers".
std::string work_text(const ChartRow& r) {
  return r.scaled ? fmt::format("{} of {} {}", r.items, r.full_items, r.unit)
                  : fmt::format("{} {}", r.items, r.unit);
}

bool extrapolated(const ChartRow& r) {
  return r.scaled && !r.skipped && r.estimated_full_seconds > r.seconds;
}

// wall_label(row): the text after a wall-time bar.
std::string wall_label(const ChartRow& r) {
  if (r.skipped) return "skipped";
  std::string text = format_seconds(r.seconds);
  if (extrapolated(r)) {
    text += fmt::format(" ({} of {}) → ≈ {}", compact_count(r.items), compact_count(r.full_items),
                        format_seconds(r.estimated_full_seconds));
  }
  if (!r.ok) text += " WRONG answer";
  return text;
}

std::string speedup_label(const ChartRow& r) {
  if (r.skipped || r.speedup <= 0.0) return "–";
  return format_speedup(r.speedup) + (r.baseline ? " (baseline)" : "");
}

// baseline_comparison(e): "per item, baseline rows: serial 10.2 ms (C++), python serial 189 ms
// (Python): C++ 18.5× faster", or "" without both baselines.
std::string baseline_comparison(const ChartExperiment& e) {
  const ChartRow* cpp = nullptr;
  const ChartRow* py = nullptr;
  for (const ChartRow& r : e.rows) {
    if (!r.baseline || r.skipped || r.seconds_per_item <= 0.0) continue;
    if (r.language == "c++" && cpp == nullptr) cpp = &r;
    if (r.language == "python" && py == nullptr) py = &r;
  }
  if (cpp == nullptr || py == nullptr) return {};
  const double ratio = py->seconds_per_item / cpp->seconds_per_item;
  // Within 5% is noise on a shared machine (sleep_pool's rows mostly sleep in both languages).
  const std::string verdict = ratio >= 0.95 && ratio <= 1.05 ? std::string("about the same")
                              : ratio >= 1.0
                                  ? fmt::format("C++ {} faster", format_speedup(ratio))
                                  : fmt::format("Python {} faster", format_speedup(1.0 / ratio));
  return fmt::format("per item, baseline rows: {} {} (C++) vs {} {} (Python): {}", cpp->mode,
                     format_seconds(cpp->seconds_per_item), py->mode,
                     format_seconds(py->seconds_per_item), verdict);
}

// ---------------------------------------------------------------------------------------------
// The chart.

constexpr double kWidth = 1120;
constexpr double kMargin = 10;
constexpr double kRowHeight = 26;
constexpr double kBarHeight = 16;
constexpr double kGroupGap = 10;  // between the C++ rows and the Python rows
constexpr double kPanelGap = 40;
constexpr double kFont = 12;
constexpr double kValueFont = 11;
constexpr double kLabelMin = 150;
constexpr double kLabelMax = 300;

// Panel: one bar panel's position and scale (pixels per unit of its value).
struct Panel {
  double x = 0;
  double width = 0;
  double scale = 0;
};

// fit_panel(x, width, values, labels, floor) is the largest scale at which every bar plus a
// 6 px gap plus its label fits in `width`, and the value `floor` (1× for speedups) too.
Panel fit_panel(double x, double width, const std::vector<double>& values,
                const std::vector<std::string>& labels, double floor) {
  Panel p{x, width, 0.0};
  double scale = floor > 0.0 ? (width - 40.0) / floor : -1.0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] <= 0.0) continue;
    // A label wider than 70% of the panel would squash the bars: it may overflow instead.
    const double room = width - 6.0 - std::min(text_width(labels[i], kValueFont), width * 0.7);
    const double s = room / values[i];
    scale = scale < 0.0 ? s : std::min(scale, s);
  }
  p.scale = std::max(scale, 0.0);
  return p;
}

// append_ticks(svg, p, top, bottom, seconds, right_limit) draws the panel's gridlines and their
// labels below the rows; a label that would cross `right_limit` (the next panel, the edge) is
// left out.
void append_ticks(std::string& svg, const Panel& p, double top, double bottom, bool seconds,
                  double right_limit) {
  if (p.scale <= 0.0) return;
  const double max = p.width / p.scale;
  const double step = nice_step(max, 5);
  const double last_tick = std::floor(max / step) * step;
  for (int k = 0;; ++k) {
    const double v = step * k;
    const double x = p.x + v * p.scale;
    if (x > p.x + p.width + 0.5) break;
    svg += fmt::format(R"(<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="{3}" />)", px(x),
                       px(top), px(bottom), k == 0 ? "#888" : "#e3e3e3");
    const std::string label = seconds ? tick_seconds(v, step, last_tick) : tick_speedup(v, step);
    if (x + text_width(label, 10) / 2 > right_limit) continue;
    svg += fmt::format(
        R"(<text x="{}" y="{}" font-size="10" fill="#666" text-anchor="middle">{}</text>)", px(x),
        px(bottom + 13), escape_xml(label));
  }
}

// chart_svg(model, e, standalone) draws one experiment. The standalone form is an SVG document;
// the inline form (inside the HTML page) needs no xmlns, which keeps the page free of URLs.
std::string chart_svg(const ReportModel& m, const ChartExperiment& e, bool standalone) {
  const std::vector<ChartRow>& rows = e.rows;
  double label_width = kLabelMin;
  for (const ChartRow& r : rows)
    label_width = std::max(label_width, text_width(r.mode, kFont) + 16);
  label_width = std::min(label_width, kLabelMax);
  const auto max_label_chars = static_cast<std::size_t>((label_width - 16) / (kFont * kCharEm));

  const double wall_x = kMargin + label_width;
  const double avail = kWidth - kMargin - wall_x - kPanelGap;
  const double wall_w = std::round(avail * 0.6);
  const double speed_x = wall_x + wall_w + kPanelGap;
  const double speed_w = kWidth - 2 * kMargin - speed_x;  // room right of the longest label

  std::vector<double> wall_values;
  std::vector<std::string> wall_labels;
  std::vector<double> speed_values;
  std::vector<std::string> speed_labels;
  bool any_extrapolated = false;
  for (const ChartRow& r : rows) {
    any_extrapolated = any_extrapolated || extrapolated(r);
    wall_values.push_back(
        r.skipped ? 0.0 : std::max(r.seconds, extrapolated(r) ? r.estimated_full_seconds : 0.0));
    wall_labels.push_back(wall_label(r));
    speed_values.push_back(r.skipped ? 0.0 : r.speedup);
    speed_labels.push_back(speedup_label(r));
  }
  const Panel wall = fit_panel(wall_x, wall_w, wall_values, wall_labels, 0.0);
  const Panel speed = fit_panel(speed_x, speed_w, speed_values, speed_labels, 1.0);

  // Vertical layout: title (standalone only: the page has its own heading), optional subtitle,
  // legend, panel headings, rows, tick labels.
  double y = standalone ? 24 : 0;
  const double title_y = y;
  std::string subtitle = baseline_comparison(e);
  if (e.wall_seconds >= 0.0) {
    subtitle += fmt::format("{}experiment wall time {}", subtitle.empty() ? "" : " · ",
                            format_seconds(e.wall_seconds));
  }
  const double subtitle_y = subtitle.empty() ? y : y + (standalone ? 20 : 14);
  y = subtitle_y + 24;
  const double legend_y = y;
  y += 26;
  const double heading_y = y;
  y += 10;
  const double rows_top = y;
  std::vector<double> centre(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0 && rows[i].language != rows[i - 1].language) y += kGroupGap;
    centre[i] = y + kRowHeight / 2;
    y += kRowHeight;
  }
  const double rows_bottom = y;
  const double height = rows_bottom + 26;

  std::string svg;
  if (standalone) svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += fmt::format(
      R"(<svg {}width="{}" height="{}" viewBox="0 0 {} {}" role="img" font-family="{}" )"
      R"(class="chart" data-experiment="{}">)",
      standalone ? "xmlns=\"http://www.w3.org/2000/svg\" " : "", px(kWidth), px(height), px(kWidth),
      px(height), kFontFamily, escape_xml(e.name));
  svg += "\n";
  svg += fmt::format("<title>{}: wall time and speedup per mode</title>\n", escape_xml(e.name));
  svg += fmt::format(R"(<rect width="{}" height="{}" fill="#fff" />)", px(kWidth), px(height));
  svg += "\n";
  if (standalone) {
    svg += fmt::format(
        R"(<text x="{}" y="{}" font-size="16" font-weight="bold" fill="#111">{}</text>)",
        px(kMargin), px(title_y), escape_xml(e.name));
    svg += "\n";
  }
  if (!subtitle.empty()) {
    svg += fmt::format(R"(<text x="{}" y="{}" font-size="12" fill="#444">{}</text>)", px(kMargin),
                       px(subtitle_y), escape_xml(subtitle));
    svg += "\n";
  }

  // Legend: one entry per language present (C++ first), then the extrapolation style.
  std::vector<std::string> languages;
  for (const char* l : {"c++", "python"}) {
    if (std::any_of(rows.begin(), rows.end(), [&](const ChartRow& r) { return r.language == l; })) {
      languages.emplace_back(l);
    }
  }
  for (const ChartRow& r : rows) {
    if (std::find(languages.begin(), languages.end(), r.language) == languages.end()) {
      languages.push_back(r.language);
    }
  }
  double lx = kMargin;
  auto legend_entry = [&](const std::string& swatch, const std::string& text) {
    svg += fmt::format(R"(<g class="legend-entry">{}<text x="{}" y="{}" font-size="12" )"
                       R"(fill="#222">{}</text></g>)",
                       swatch, px(lx + 18), px(legend_y + 1), escape_xml(text));
    svg += "\n";
    lx += 18 + text_width(text, kFont) + 22;
  };
  for (const std::string& l : languages) {
    std::string text = language_label(l);
    if (l == "c++" && !m.concur_version.empty()) text += " (concur " + m.concur_version + ")";
    if (l == "python" && !m.python_version.empty()) text += " " + m.python_version;
    legend_entry(fmt::format(R"(<rect x="{}" y="{}" width="12" height="12" fill="{}" />)", px(lx),
                             px(legend_y - 10), colour_of(l)),
                 text);
  }
  if (any_extrapolated) {
    legend_entry(fmt::format(R"(<rect x="{}" y="{}" width="12" height="12" fill="#888" )"
                             R"(fill-opacity="0.25" stroke="#888" stroke-dasharray="3 2" />)",
                             px(lx), px(legend_y - 10)),
                 "scaled-down row, extrapolated to the full count");
  }

  svg +=
      fmt::format(R"(<text x="{}" y="{}" font-size="12" font-weight="bold" fill="#333">wall time )"
                  R"(<tspan font-weight="normal" fill="#666">(lower is better)</tspan></text>)",
                  px(wall_x), px(heading_y));
  svg += fmt::format(
      R"(<text x="{}" y="{}" font-size="12" font-weight="bold" fill="#333">speedup )"
      R"(<tspan font-weight="normal" fill="#666">vs the serial row of its language</tspan></text>)",
      px(speed_x), px(heading_y));
  svg += "\n";

  // Stripes and group separators first, so that ticks and bars draw over them.
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i % 2 == 0) {
      svg += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="#f5f6f8" />)",
                         px(kMargin), px(centre[i] - kRowHeight / 2), px(kWidth - 2 * kMargin),
                         px(kRowHeight));
    }
    if (i > 0 && rows[i].language != rows[i - 1].language) {
      const double sy = centre[i] - kRowHeight / 2 - kGroupGap / 2;
      svg += fmt::format(R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" />)", px(kMargin),
                         px(sy), px(kWidth - kMargin), px(sy));
    }
  }
  svg += "\n";
  append_ticks(svg, wall, rows_top, rows_bottom, true, speed_x - kPanelGap / 3);
  append_ticks(svg, speed, rows_top, rows_bottom, false, kWidth - 2);
  // 1× is the baseline of every speedup: a dashed line where bars longer than it improve on it.
  if (speed.scale > 0.0) {
    const double x1 = speed.x + speed.scale;
    svg += fmt::format(
        R"(<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#555" stroke-dasharray="4 3" />)",
        px(x1), px(rows_top), px(rows_bottom));
  }
  svg += "\n";

  for (std::size_t i = 0; i < rows.size(); ++i) {
    const ChartRow& r = rows[i];
    const double cy = centre[i];
    const std::string_view colour = colour_of(r.language);
    const std::string tooltip =
        fmt::format("{} ({}): {}, {}{}{}", r.mode, language_label(r.language), work_text(r),
                    r.skipped ? "skipped" : format_seconds(r.seconds),
                    r.speedup > 0.0 ? ", speedup " + format_speedup(r.speedup) : "",
                    r.note.empty() ? "" : "; " + r.note);
    svg += fmt::format(R"(<g class="row" data-language="{}">)", escape_xml(r.language));
    svg += fmt::format(
        R"(<text x="{}" y="{}" font-size="12" fill="{}" text-anchor="end">{}<title>{}</title>)"
        R"(</text>)",
        px(wall_x - 10), px(cy + 4), r.skipped ? "#888" : "#222",
        escape_xml(truncate(r.mode, max_label_chars)), escape_xml(tooltip));

    double end = wall.x;
    if (!r.skipped && r.seconds > 0.0 && wall.scale > 0.0) {
      const double w = std::max(1.0, r.seconds * wall.scale);
      svg += fmt::format(R"(<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}" )"
                         R"(stroke="{}" stroke-width="{}"><title>{}</title></rect>)",
                         px(wall.x), px(cy - kBarHeight / 2), px(w), px(kBarHeight), colour,
                         r.ok ? colour : kWrongColour, r.ok ? "0" : "2", escape_xml(tooltip));
      end = wall.x + w;
      if (extrapolated(r)) {
        const double ew = (r.estimated_full_seconds - r.seconds) * wall.scale;
        svg += fmt::format(
            R"(<rect class="bar-extrapolated" x="{}" y="{}" width="{}" height="{}" fill="{}" )"
            R"(fill-opacity="0.25" stroke="{}" stroke-dasharray="3 2"><title>{}</title></rect>)",
            px(end), px(cy - kBarHeight / 2 + 0.5), px(ew), px(kBarHeight - 1), colour, colour,
            escape_xml(r.note.empty() ? tooltip : r.note));
        end += ew;
      }
    }
    svg +=
        fmt::format(R"(<text x="{}" y="{}" font-size="11" fill="{}"{}{}>{}</text>)", px(end + 6),
                    px(cy + 4), r.ok ? (r.skipped ? "#888" : "#222") : kWrongColour,
                    r.skipped ? R"( font-style="italic")" : "", kHalo, escape_xml(wall_labels[i]));

    double send = speed.x;
    if (!r.skipped && r.speedup > 0.0 && speed.scale > 0.0) {
      const double w = std::max(1.0, r.speedup * speed.scale);
      svg += fmt::format(
          R"(<rect class="speedup-bar" x="{}" y="{}" width="{}" height="{}" fill="{}">)"
          R"(<title>{}</title></rect>)",
          px(speed.x), px(cy - kBarHeight / 2), px(w), px(kBarHeight), colour, escape_xml(tooltip));
      send += w;
    }
    svg += fmt::format(R"(<text x="{}" y="{}" font-size="11" fill="#222"{}>{}</text>)",
                       px(send + 6), px(cy + 4), kHalo, escape_xml(speed_labels[i]));
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  return svg;
}

// ---------------------------------------------------------------------------------------------
// The page.

std::string file_stem(std::string_view name) {
  std::string stem;
  for (const char c : name) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    stem += safe ? c : '_';
  }
  // "", "." and ".." would name the directory itself or its parent.
  if (stem.empty() || stem.find_first_not_of('.') == std::string::npos) stem = "_" + stem;
  return stem;
}

// unique_stems(names): file_stem() of each, "-2", "-3"... added where one repeats.
std::vector<std::string> unique_stems(const std::vector<std::string>& names) {
  std::vector<std::string> stems;
  std::set<std::string> used;
  for (const std::string& n : names) {
    const std::string base = file_stem(n);
    std::string stem = base;
    for (int k = 2; used.count(stem) != 0; ++k) stem = fmt::format("{}-{}", base, k);
    used.insert(stem);
    stems.push_back(stem);
  }
  return stems;
}

// readable_date("2026-11-24T13:16:16Z") is "2026-11-24 13:16:16 UTC"; anything else unchanged.
std::string readable_date(const std::string& iso) {
  if (iso.size() == 20 && iso[10] == 'T' && iso[19] == 'Z') {
    return iso.substr(0, 10) + " " + iso.substr(11, 8) + " UTC";
  }
  return iso;
}

constexpr std::string_view kCss = R"(
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif;
       color: #1d1d1f; background: #fff; margin: 16px auto; max-width: 1140px; padding: 0 10px; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 28px 0 6px; border-top: 1px solid #ddd; padding-top: 14px; }
p { margin: 6px 0; font-size: 14px; line-height: 1.4; }
table { border-collapse: collapse; font-size: 13px; }
table.meta th { text-align: left; padding: 2px 14px 2px 0; color: #555; font-weight: 600;
                vertical-align: top; }
table.meta td { padding: 2px 0; }
table.rows { margin-top: 6px; width: 100%; }
table.rows th, table.rows td { border-bottom: 1px solid #e5e5e5; padding: 3px 8px 3px 0;
                               text-align: left; vertical-align: top; }
table.rows td.num { text-align: right; white-space: nowrap; }
table.rows tr.scaled td { background: #fbf6ea; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; }
.ok { color: #1e7b34; }
.bad { color: #c0392b; font-weight: 600; }
nav a { margin-right: 12px; }
svg.chart { display: block; max-width: 100%; height: auto; }
footer { margin-top: 28px; font-size: 12px; color: #666; }
code { font-size: 12px; }
)";

std::string rows_table(const ChartExperiment& e) {
  std::string t =
      "<table class=\"rows\"><thead><tr><th>mode</th><th>language</th><th>work</th>"
      "<th>wall time</th><th>per item</th><th>speedup</th><th>answer</th><th>note</th></tr>"
      "</thead><tbody>\n";
  for (const ChartRow& r : e.rows) {
    const std::string answer =
        r.ok ? escape_xml(r.answer)
             : fmt::format("<span class=\"bad\">{} (WRONG: expected {})</span>",
                           escape_xml(r.answer), escape_xml(r.expected));
    t += fmt::format(
        "<tr{}><td>{}</td><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>\n",
        r.scaled ? " class=\"scaled\"" : "", escape_xml(r.mode), colour_of(r.language),
        escape_xml(language_label(r.language)), escape_xml(work_text(r)),
        r.skipped ? "–" : escape_xml(format_seconds(r.seconds)),
        r.skipped ? "–" : escape_xml(format_seconds(r.seconds_per_item)),
        r.speedup > 0.0 ? escape_xml(format_speedup(r.speedup)) : "–", answer, escape_xml(r.note));
  }
  t += "</tbody></table>\n";
  return t;
}

}  // namespace

std::string escape_xml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += "\xEF\xBF\xBD";  // U+FFFD
        } else {
          out += c;
        }
    }
  }
  return out;
}

nlohmann::json read_report(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ReportError(fmt::format("cannot read '{}': it is a directory", path));
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ReportError(fmt::format("cannot read '{}'", path));
  json report;
  try {
    report = json::parse(file);
  } catch (const json::exception& e) {
    throw ReportError(fmt::format("'{}' is not valid JSON: {}", path, e.what()));
  } catch (const std::exception& e) {  // a read error of the stream
    throw ReportError(fmt::format("cannot read '{}': {}", path, e.what()));
  }
  try {
    check_report(report);
  } catch (const ReportError& e) {
    throw ReportError(fmt::format("'{}': {}", path, e.what()));
  }
  return report;
}

void check_report(const nlohmann::json& report) { (void)parse_model(report); }

std::vector<std::string> report_experiments(const nlohmann::json& report) {
  std::vector<std::string> names;
  for (const ChartExperiment& e : parse_model(report).experiments) names.push_back(e.name);
  return names;
}

nlohmann::json only_experiments(const nlohmann::json& report,
                                const std::vector<std::string>& names) {
  auto wanted = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  json out = report;
  json rows = json::array();
  for (const json& r : report.at("rows")) {
    if (wanted(r.at("experiment").get<std::string>())) rows.push_back(r);
  }
  out["rows"] = std::move(rows);
  if (report.contains("errors") && report.at("errors").is_array()) {
    // An error reads "<experiment>: <what>" (run_experiments()).
    json errors = json::array();
    for (const json& e : report.at("errors")) {
      const std::string text = e.get<std::string>();
      const std::string name = text.substr(0, text.find(':'));
      if (wanted(name)) errors.push_back(e);
    }
    out["errors"] = std::move(errors);
  }
  if (report.contains("experiment_seconds") && report.at("experiment_seconds").is_object()) {
    json walls = json::object();
    for (const auto& [name, seconds] : report.at("experiment_seconds").items()) {
      if (wanted(name)) walls[name] = seconds;
    }
    out["experiment_seconds"] = std::move(walls);
  }
  return out;
}

std::string render_svg(const nlohmann::json& report, std::string_view experiment) {
  const ReportModel m = parse_model(report);
  for (const ChartExperiment& e : m.experiments) {
    if (e.name == experiment) return chart_svg(m, e, true);
  }
  throw ReportError(fmt::format("the report has no rows of experiment '{}'", experiment));
}

std::vector<std::string> svg_file_names(const std::vector<std::string>& experiments) {
  std::vector<std::string> names = unique_stems(experiments);
  for (std::string& n : names) n += ".svg";
  return names;
}

std::string render_html(const nlohmann::json& report, std::string_view source) {
  const ReportModel m = parse_model(report);
  std::vector<std::string> names;
  for (const ChartExperiment& e : m.experiments) names.push_back(e.name);
  const std::vector<std::string> anchors = unique_stems(names);

  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += fmt::format("<title>concur bench report, {}</title>\n", escape_xml(readable_date(m.date)));
  h += fmt::format("<style>{}</style>\n</head>\n<body>\n", kCss);
  h += "<header>\n<h1>concur bench report</h1>\n<table class=\"meta\">\n";

  std::string machine = fmt::format("{} · {} cores · {}", m.cpu_model,
                                    m.nproc == 0 ? "?" : std::to_string(m.nproc), m.os);
  if (m.load_average >= 0.0) machine += fmt::format(" · load {:.2f} at the start", m.load_average);
  h += fmt::format("<tr><th>machine</th><td>{}</td></tr>\n", escape_xml(machine));
  h += fmt::format("<tr><th>date</th><td>{}</td></tr>\n", escape_xml(readable_date(m.date)));

  std::string build;
  for (const std::string& part :
       {m.compiler, m.build_type, m.sanitize.empty() ? std::string() : "sanitizer " + m.sanitize,
        m.allocator.empty() ? std::string() : "malloc " + m.allocator}) {
    if (part.empty()) continue;
    build += (build.empty() ? "" : ", ") + part;
  }
  std::string versions = "concur " + m.concur_version;
  if (!build.empty()) versions += " (" + build + ")";
  versions +=
      m.python_version.empty()
          ? std::string(" · no Python rows")
          : fmt::format(" · Python {}{}", m.python_version,
                        m.python_executable.empty() ? "" : " (" + m.python_executable + ")");
  h += fmt::format("<tr><th>versions</th><td>{}</td></tr>\n", escape_xml(versions));

  std::string run;
  if (!m.size.empty()) run += m.size + " size";
  if (m.threads != 0) run += fmt::format("{}threads {}", run.empty() ? "" : " · ", m.threads);
  if (m.python_budget_seconds > 0.0 && !m.python_version.empty()) {
    run += fmt::format(" · Python budget {} per row", format_seconds(m.python_budget_seconds));
  }
  if (m.total_seconds >= 0.0) run += fmt::format(" · {} in all", format_seconds(m.total_seconds));
  if (!run.empty()) h += fmt::format("<tr><th>run</th><td>{}</td></tr>\n", escape_xml(run));

  const bool answers_ok =
      std::all_of(m.experiments.begin(), m.experiments.end(), [](const ChartExperiment& e) {
        return std::all_of(e.rows.begin(), e.rows.end(), [](const ChartRow& r) { return r.ok; });
      });
  h += fmt::format(
      "<tr><th>result</th><td>{}</td></tr>\n",
      answers_ok ? "<span class=\"ok\">every row agrees with its reference answer</span>"
                 : "<span class=\"bad\">some rows disagree with their reference answer (WRONG "
                   "below)</span>");
  h += "</table>\n";
  for (const std::string& e : m.errors) {
    h += fmt::format("<p class=\"bad\">error: {}</p>\n", escape_xml(e));
  }
  h += "<p>Wall time is measured (interpreter start-up excluded). Speedup is the time per item of "
       "the serial row of the same language divided by this row's. Scaled-down rows ran fewer "
       "items than the notes; their lighter bar extends the measured time linearly to the full "
       "count (<code>--full</code> runs everything in full).</p>\n";
  if (!m.experiments.empty()) {
    h += "<nav>";
    for (std::size_t i = 0; i < m.experiments.size(); ++i) {
      h += fmt::format("<a href=\"#exp-{}\">{}</a>", escape_xml(anchors[i]),
                       escape_xml(m.experiments[i].name));
    }
    h += "</nav>\n";
  } else {
    h += "<p>The report has no rows.</p>\n";
  }
  h += "</header>\n";

  for (std::size_t i = 0; i < m.experiments.size(); ++i) {
    const ChartExperiment& e = m.experiments[i];
    h += fmt::format("<section id=\"exp-{}\">\n<h2>{}</h2>\n", escape_xml(anchors[i]),
                     escape_xml(e.name));
    h += chart_svg(m, e, false);
    h += rows_table(e);
    h += "</section>\n";
  }
  h += fmt::format(
      "<footer>Drawn by <code>concur bench --html</code> from the JSON report{}, which stays the "
      "source of truth; <code>concur bench --html FILE --from JSON</code> redraws it.</footer>\n",
      source.empty() ? std::string() : fmt::format(" <code>{}</code>", escape_xml(source)));
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace concur::apps::bench
