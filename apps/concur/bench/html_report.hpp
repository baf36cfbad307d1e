// bench/html_report.hpp — the charts of a `concur bench` report, drawn from its JSON (to_json() in
// report.hpp, the source of truth): render_html() is one self-contained page (inline CSS and SVG,
// no script, nothing loaded from elsewhere, so it opens offline) and render_svg() one standalone
// SVG per experiment. Each experiment's chart has a wall-time bar and a speedup bar per mode, C++
// and Python rows in two colours with a legend; a scaled-down row's bar is extended, lighter, to
// its extrapolated full-count time. read_report() / check_report() load and validate a saved JSON.
//
// Every string taken from the JSON (names, notes, machine strings) is escaped (escape_xml).
// Pure functions of their input except read_report(), which reads a file; thread-compatible.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace concur::apps::bench {

// ReportError: a JSON that is not a readable concur bench report; what() says what is wrong.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// read_report(path) parses the file at `path` and checks it with check_report(). Throws
// ReportError when the file cannot be read, is not JSON, or is not a concur bench report.
[[nodiscard]] nlohmann::json read_report(const std::string& path);

// check_report(report) throws ReportError unless `report` is a concur bench report: an object
// whose "tool" is "concur bench" and whose "rows" are objects with a string "experiment" and
// "mode" and a number "seconds"; the optional fields, when present, must have to_json()'s types.
// Fields a newer or older concur adds or lacks ("skipped", "allocator", ...) are tolerated.
void check_report(const nlohmann::json& report);

// report_experiments(report) is the experiment names of a checked report, in the order of their
// first row.
[[nodiscard]] std::vector<std::string> report_experiments(const nlohmann::json& report);

// only_experiments(report, names) is a copy of a checked report keeping only the rows and errors
// of the experiments in `names`.
[[nodiscard]] nlohmann::json only_experiments(const nlohmann::json& report,
                                              const std::vector<std::string>& names);

// render_html(report, source) is the whole page for a checked report: machine, date, versions,
// then per experiment its chart and a table of its rows with their notes. `source` says where
// the JSON came from (a path, shown in the footer); may be empty.
[[nodiscard]] std::string render_html(const nlohmann::json& report, std::string_view source = {});

// render_svg(report, experiment) is the chart of one experiment of a checked report as a
// standalone SVG document (XML declaration, xmlns), the same drawing as in render_html().
// Throws ReportError when the report has no row of `experiment`.
[[nodiscard]] std::string render_svg(const nlohmann::json& report, std::string_view experiment);

// svg_file_names(experiments) is one file name per experiment, in order: the name with every
// character outside [A-Za-z0-9._-] replaced by '_' (so no name leaves the directory), then
// ".svg"; a name that would repeat an earlier one gets "-2", "-3", ... before the extension.
[[nodiscard]] std::vector<std::string> svg_file_names(const std::vector<std::string>& experiments);

// escape_xml(text) is `text` safe inside XML/HTML text and quoted attributes: & < > " ' become
// entities, and control characters XML 1.0 forbids (all below U+0020 but tab, LF, CR) become
// U+FFFD.
[[nodiscard]] std::string escape_xml(std::string_view text);

}  // namespace concur::apps::bench
