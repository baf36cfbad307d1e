// Tests for `concur bench`'s reports drawn from the JSON (apps/concur/bench/html_report.hpp), its
// --html / --svg / --from / --only options and its progress display (bench/progress.hpp), calling
// the concur_apps library directly (STYLE.md rule 11). The charts are checked on a fixed JSON
// report (bench_report_fixture.hpp): one chart per experiment, one bar per timed row, legend
// entries, escaped strings, well-formed markup, nothing loaded from elsewhere.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "apps/bench_report_fixture.hpp"
#include "bench/bench_command.hpp"
#include "bench/html_report.hpp"
#include "bench/progress.hpp"
#include "support/temp_dir.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur::apps::bench;
using concur::testing::bench_report_fixture;
using concur::testing::kOddExperiment;
using concur::testing::kOddNote;
using concur::testing::QuiescentTest;
using concur::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

class BenchReportTest : public QuiescentTest {};

std::size_t count(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string slurp(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary);
  file << text;
}

// between(text, open, close): every substring from `open` through the next `close`.
std::vector<std::string> between(const std::string& text, std::string_view open,
                                 std::string_view close) {
  std::vector<std::string> parts;
  for (auto at = text.find(open); at != std::string::npos; at = text.find(open, at + 1)) {
    const auto end = text.find(close, at + open.size());
    if (end == std::string::npos) break;
    parts.push_back(text.substr(at, end + close.size() - at));
  }
  return parts;
}

// markup_problem(text) is "" when `text` is well-formed enough to trust its structure: every
// tag closed in order (declarations and self-closing tags aside), no bare '>' in text, and every
// '&' the start of an entity; otherwise what is wrong. Enough XML for our own output, whose
// attribute values are escaped (a '>' inside one would end the tag here).
std::string markup_problem(std::string_view text) {
  static const std::regex bare_ampersand("&(?![a-zA-Z]+;|#[0-9]+;)");
  const std::string whole(text);
  if (std::smatch m; std::regex_search(whole, m, bare_ampersand)) {
    return "a bare & at " + std::to_string(m.position(0));
  }
  std::vector<std::string> open;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '>') return "a bare > at " + std::to_string(i);
    if (text[i] != '<') {
      ++i;
      continue;
    }
    const auto end = text.find('>', i);
    if (end == std::string_view::npos) return "an unterminated tag at " + std::to_string(i);
    const std::string_view tag = text.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty()) return "an empty tag";
    if (tag.front() == '?' || tag.front() == '!') continue;
    if (tag.front() == '/') {
      const std::string name(tag.substr(1));
      if (open.empty() || open.back() != name) {
        return "</" + name + "> closes <" + (open.empty() ? "" : open.back()) + ">";
      }
      open.pop_back();
      continue;
    }
    if (tag.back() == '/') continue;
    open.emplace_back(tag.substr(0, tag.find_first_of(" \t\n")));
  }
  return open.empty() ? "" : "<" + open.back() + "> is never closed";
}

TEST(BenchReportMarkupTest, TheCheckerCatchesBrokenMarkup) {
  EXPECT_EQ(markup_problem("<a x=\"1\"><b/>t &amp; &#39;</a>"), "");
  EXPECT_NE(markup_problem("<a><b></a></b>"), "");
  EXPECT_NE(markup_problem("<a>"), "");
  EXPECT_NE(markup_problem("<a>x & y</a>"), "");
  EXPECT_NE(markup_problem("<a>x > y</a>"), "");
}

TEST(HtmlReportTest, EscapeXmlReplacesMarkupAndForbiddenControlCharacters) {
  EXPECT_EQ(escape_xml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(escape_xml("tab\tnew\nline×"), "tab\tnew\nline×");
  EXPECT_EQ(escape_xml(std::string("bell\x07.", 6)), "bell\xEF\xBF\xBD.");
}

TEST(HtmlReportTest, PageHasOneChartPerExperimentAndOneBarPerTimedRow) {
  const std::string html = render_html(bench_report_fixture(), "fixture.json");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0U);
  EXPECT_EQ(count(html, "<svg"), 2U);
  EXPECT_EQ(count(html, "</svg>"), 2U);
  EXPECT_EQ(count(html, "<section"), 2U);
  EXPECT_EQ(count(html, "<table class=\"rows\">"), 2U);

  const std::vector<std::string> charts = between(html, "<svg", "</svg>");
  ASSERT_EQ(charts.size(), 2U);
  EXPECT_THAT(charts[0], HasSubstr("data-experiment=\"is_prime\""));
  // is_prime: 4 timed rows, 2 of them scaled (extrapolated); legend C++, Python, extrapolated.
  EXPECT_EQ(count(charts[0], "class=\"bar\""), 4U);
  EXPECT_EQ(count(charts[0], "class=\"bar-extrapolated\""), 2U);
  EXPECT_EQ(count(charts[0], "class=\"speedup-bar\""), 4U);
  EXPECT_EQ(count(charts[0], "class=\"legend-entry\""), 3U);
  EXPECT_EQ(count(charts[0], "data-language=\"c++\""), 2U);
  EXPECT_EQ(count(charts[0], "data-language=\"python\""), 2U);
  // The other: 2 timed rows and a skipped one (a row, but no bar); no scaled row, no
  // extrapolation legend.
  EXPECT_EQ(count(charts[1], "class=\"row\""), 3U);
  EXPECT_EQ(count(charts[1], "class=\"bar\""), 2U);
  EXPECT_EQ(count(charts[1], "class=\"bar-extrapolated\""), 0U);
  EXPECT_EQ(count(charts[1], "class=\"legend-entry\""), 2U);
  EXPECT_THAT(charts[1], HasSubstr(">skipped<"));
  // In the page the section's <h2> names the experiment; the chart does not repeat it.
  EXPECT_THAT(charts[0], Not(HasSubstr(">is_prime</text>")));
  for (const std::string& chart : charts) {
    EXPECT_EQ(markup_problem(chart), "") << chart;
    EXPECT_THAT(chart, HasSubstr("C++ (concur 9.8.7)"));
    EXPECT_THAT(chart, HasSubstr("Python 3.11.7"));
    EXPECT_THAT(chart, HasSubstr("#0072B2"));  // C++ blue
    EXPECT_THAT(chart, HasSubstr("#E69F00"));  // Python orange
  }
  // The body is well-formed as a whole: sections, tables, the charts inside them.
  const std::vector<std::string> body = between(html, "<body>", "</body>");
  ASSERT_EQ(body.size(), 1U);
  EXPECT_EQ(markup_problem(body[0]), "");
}

TEST(HtmlReportTest, PageShowsMachineDateVersionsAndNotes) {
  const std::string html = render_html(bench_report_fixture(), "fixture.json");
  EXPECT_THAT(html, HasSubstr("AMD EPYC &lt;b&gt;7B13&lt;/b&gt; · 2 cores · Linux 6.1.0 x86_64"));
  EXPECT_THAT(html, HasSubstr("2026-11-24 13:16:16 UTC"));
  EXPECT_THAT(html, HasSubstr("concur 9.8.7 (GCC 12.2.0, Release, malloc mimalloc 2.0.9)"));
  EXPECT_THAT(html, HasSubstr("Python 3.11.7 (/usr/bin/python3)"));
  EXPECT_THAT(html, HasSubstr("default size · threads 2"));
  EXPECT_THAT(html, HasSubstr("every row agrees"));
  // The scaled rows' notes, in the table and on the extrapolated bars (tooltips).
  EXPECT_EQ(count(html, "<td>scaled down ×4: ≈ 16.0 s for all 100 numbers</td>"), 1U);
  EXPECT_EQ(count(html, "<title>scaled down ×4: ≈ 20.0 s for all 100 numbers</title>"), 1U);
  EXPECT_THAT(html, HasSubstr("25 of 100 numbers"));
  // The chart labels a scaled row with its measured and extrapolated times.
  EXPECT_THAT(html, HasSubstr("4.00 s (25 of 100) → ≈ 16.0 s"));
  EXPECT_THAT(html, HasSubstr("2.00×"));
  // Per item, C++ serial 10 ms against Python serial 160 ms.
  EXPECT_THAT(html, HasSubstr("C++ 16.0× faster"));
  EXPECT_THAT(html, HasSubstr("experiment wall time 12.5 s"));
  EXPECT_THAT(html, HasSubstr("<code>fixture.json</code>"));
}

TEST(HtmlReportTest, EveryStringFromTheJsonIsEscaped) {
  const std::string html = render_html(bench_report_fixture(), "a<b>.json");
  EXPECT_THAT(html, HasSubstr("x&lt;&amp;&quot;&#39;&gt;y"));
  EXPECT_THAT(html, Not(HasSubstr(kOddExperiment)));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
  EXPECT_THAT(html, Not(HasSubstr(kOddNote)));
  EXPECT_THAT(html, Not(HasSubstr("<b>")));
  EXPECT_THAT(html, HasSubstr("a&lt;b&gt;.json"));
}

TEST(HtmlReportTest, NothingIsLoadedFromElsewhere) {
  const std::string html = render_html(bench_report_fixture(), "fixture.json");
  std::string lower = html;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* banned : {"<script", "http://", "https://", "src=", "@import", "url(", "<link",
                             "@font-face", "<iframe", "<object", "<img"}) {
    EXPECT_THAT(lower, Not(HasSubstr(banned))) << banned;
  }
  // The only links are to the page's own sections.
  for (const std::string& href : between(html, "href=\"", "\"")) {
    EXPECT_EQ(href.rfind("href=\"#exp-", 0), 0U) << href;
  }
}

TEST(HtmlReportTest, StandaloneSvgIsAnXmlDocumentOfOneChart) {
  const nlohmann::json report = bench_report_fixture();
  const std::string svg = render_svg(report, "is_prime");
  EXPECT_EQ(
      svg.rfind(
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"",
          0),
      0U);
  EXPECT_EQ(count(svg, "<svg"), 1U);
  EXPECT_EQ(count(svg, "http"), 1U);  // the namespace, nothing else
  EXPECT_EQ(count(svg, "class=\"bar\""), 4U);
  EXPECT_EQ(markup_problem(svg), "");
  EXPECT_THAT(svg, HasSubstr(">is_prime</text>"));  // the title the page gives as a heading

  const std::string odd = render_svg(report, kOddExperiment);
  EXPECT_EQ(markup_problem(odd), "");
  EXPECT_THAT(odd, HasSubstr("x&lt;&amp;&quot;&#39;&gt;y"));
  EXPECT_THROW((void)render_svg(report, "nope"), ReportError);
}

TEST(HtmlReportTest, CheckReportRejectsWhatIsNotAConcurBenchReport) {
  EXPECT_NO_THROW(check_report(bench_report_fixture()));
  auto broken = [](auto edit) {
    nlohmann::json j = bench_report_fixture();
    edit(j);
    return j;
  };
  EXPECT_THROW(check_report(nlohmann::json::array()), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["tool"] = "pytest"; })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j.erase("tool"); })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["rows"] = "none"; })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["rows"][1].erase("mode"); })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["rows"][1]["seconds"] = "1 s"; })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["rows"][1]["items"] = -3; })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["rows"][1]["note"] = 7; })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["machine"] = "AMD"; })), ReportError);
  EXPECT_THROW(check_report(broken([](auto& j) { j["errors"] = {1}; })), ReportError);
  try {
    check_report(broken([](auto& j) { j["rows"][2]["speedup"] = "fast"; }));
    FAIL() << "no ReportError";
  } catch (const ReportError& e) {
    EXPECT_THAT(e.what(), HasSubstr("rows[2].speedup"));
  }
}

TEST(HtmlReportTest, OlderReportsWithoutNewerFieldsStillDraw) {
  // The reports of bench/results/ predate "skipped", "allocator" and "experiment_seconds".
  nlohmann::json j = bench_report_fixture();
  j.erase("experiment_seconds");
  j["machine"].erase("allocator");
  for (auto& row : j["rows"]) {
    row.erase("skipped");
    row.erase("estimated_full_seconds");
  }
  j["rows"][6]["seconds"] = 0.001;  // no longer marked skipped: a timed row
  const std::string html = render_html(j);
  EXPECT_EQ(count(html, "class=\"bar\""), 7U);
  // The extrapolation is recomputed from seconds per item and the full count.
  EXPECT_THAT(html, HasSubstr("4.00 s (25 of 100) → ≈ 16.0 s"));
  EXPECT_THAT(html, Not(HasSubstr("experiment wall time")));
}

TEST(HtmlReportTest, ReportExperimentsAndOnlyExperiments) {
  const nlohmann::json report = bench_report_fixture();
  EXPECT_EQ(report_experiments(report), (std::vector<std::string>{"is_prime", kOddExperiment}));
  const nlohmann::json only = only_experiments(report, {kOddExperiment});
  EXPECT_EQ(only.at("rows").size(), 3U);
  EXPECT_EQ(report_experiments(only), std::vector<std::string>{kOddExperiment});
  EXPECT_FALSE(only.at("experiment_seconds").contains("is_prime"));
  EXPECT_EQ(count(render_html(only), "<svg"), 1U);
}

TEST(HtmlReportTest, SvgFileNamesStayInTheirDirectoryAndDoNotRepeat) {
  EXPECT_EQ(svg_file_names({"is_prime", "a/b", "a_b", "..", "", "../../etc/x", kOddExperiment}),
            (std::vector<std::string>{"is_prime.svg", "a_b.svg", "a_b-2.svg", "_...svg", "_.svg",
                                      ".._.._etc_x.svg", "x_____y.svg"}));
}

TEST(HtmlReportTest, AnEmptyReportIsAPageWithoutCharts) {
  nlohmann::json j = bench_report_fixture();
  j["rows"] = nlohmann::json::array();
  const std::string html = render_html(j);
  EXPECT_EQ(count(html, "<svg"), 0U);
  EXPECT_THAT(html, HasSubstr("no rows"));
}

// ---------------------------------------------------------------------------------------------
// run_bench: --from, --html, --svg, --only.

struct Outcome {
  int status = -1;
  std::string out;
  std::string err;
};

Outcome bench(const BenchOptions& options) {
  std::ostringstream out, err;
  const int status = run_bench(options, out, err);
  return {status, out.str(), err.str()};
}

TEST_F(BenchReportTest, FromRedrawsTheHtmlWithoutRunningAnything) {
  TempDir dir;
  write_file(dir / "report.json", bench_report_fixture().dump(2));
  BenchOptions options;
  options.from_path = (dir / "report.json").string();
  options.html_path = (dir / "report.html").string();
  const Outcome r = bench(options);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");                           // no table: nothing ran
  EXPECT_THAT(r.err, Not(HasSubstr("running")));  // no progress
  EXPECT_THAT(r.err, HasSubstr("HTML report written to"));
  EXPECT_EQ(slurp(dir / "report.html"), render_html(bench_report_fixture(), options.from_path));
}

TEST_F(BenchReportTest, SvgWritesOneFilePerExperimentIntoANewDirectory) {
  TempDir dir;
  write_file(dir / "report.json", bench_report_fixture().dump());
  BenchOptions options;
  options.from_path = (dir / "report.json").string();
  options.svg_dir = (dir / "charts" / "nested").string();
  const Outcome r = bench(options);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("2 SVG charts written to"));
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(options.svg_dir)) {
    files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"is_prime.svg", "x_____y.svg"}));
  const std::string svg = slurp(std::filesystem::path(options.svg_dir) / "is_prime.svg");
  EXPECT_EQ(svg, render_svg(bench_report_fixture(), "is_prime"));
  EXPECT_EQ(markup_problem(svg), "");
}

TEST_F(BenchReportTest, OnlyKeepsTheNamedExperimentsOfASavedReport) {
  TempDir dir;
  write_file(dir / "report.json", bench_report_fixture().dump());
  BenchOptions options;
  options.from_path = (dir / "report.json").string();
  options.html_path = (dir / "report.html").string();
  options.only = {"is_prime"};
  ASSERT_EQ(bench(options).status, 0);
  const std::string html = slurp(dir / "report.html");
  EXPECT_EQ(count(html, "<svg"), 1U);
  EXPECT_THAT(html, Not(HasSubstr("x&lt;&amp;")));

  options.only = {"is_prime", "fib_pool"};  // fib_pool is not in the report
  const Outcome r = bench(options);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("has no experiment 'fib_pool'"));
}

TEST_F(BenchReportTest, FromBadInputIsAUsageErrorWithAClearMessage) {
  TempDir dir;
  write_file(dir / "not.json", "{\"tool\": \"concur bench\", \"rows\": [");
  write_file(dir / "other.json", R"({"tool": "pytest-benchmark", "rows": []})");
  write_file(dir / "row.json", R"({"tool": "concur bench", "rows": [{"experiment": "x"}]})");
  write_file(dir / "good.json", bench_report_fixture().dump());
  const struct {
    std::string from;
    std::string message;
  } cases[] = {
      {(dir / "missing.json").string(), "cannot read"},
      {(dir / "not.json").string(), "is not valid JSON"},
      {(dir / "other.json").string(), "not a concur bench report"},
      {(dir / "row.json").string(), "rows[0].mode"},
      {dir.path().string(), "cannot read"},  // a directory
  };
  for (const auto& c : cases) {
    BenchOptions options;
    options.from_path = c.from;
    options.html_path = (dir / "out.html").string();
    const Outcome r = bench(options);
    EXPECT_EQ(r.status, 2) << c.from;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.from;
    EXPECT_FALSE(std::filesystem::exists(dir / "out.html")) << c.from;
  }
  BenchOptions nothing_to_draw;
  nothing_to_draw.from_path = (dir / "good.json").string();
  const Outcome r = bench(nothing_to_draw);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("give --html FILE and/or --svg DIR"));
}

TEST_F(BenchReportTest, UnwritableOutputsFailWithStatusOne) {
  TempDir dir;
  write_file(dir / "good.json", bench_report_fixture().dump());
  write_file(dir / "a-file", "");
  BenchOptions html;
  html.from_path = (dir / "good.json").string();
  html.html_path = "/nonexistent-dir/report.html";
  Outcome r = bench(html);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot write the HTML report to '/nonexistent-dir/report.html'"));

  BenchOptions svg;
  svg.from_path = (dir / "good.json").string();
  svg.svg_dir = (dir / "a-file").string();  // a file where the directory should be
  r = bench(svg);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot create the SVG directory"));
}

TEST_F(BenchReportTest, ARunDrawsItsHtmlFromTheJsonItWrites) {
  TempDir dir;
  BenchOptions options;
  options.only = {"is_prime"};
  options.quick = true;
  options.no_python = true;
  options.threads = 2;
  options.json_path = (dir / "run.json").string();
  options.html_path = (dir / "run.html").string();
  options.svg_dir = (dir / "svg").string();
  const Outcome r = bench(options);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("is_prime"));

  const nlohmann::json report = read_report(options.json_path);
  ASSERT_TRUE(report.at("experiment_seconds").contains("is_prime"));
  EXPECT_GT(report.at("experiment_seconds").at("is_prime").get<double>(), 0.0);
  // The page of the run is the page --from draws from its JSON: the JSON holds everything.
  EXPECT_EQ(slurp(options.html_path), render_html(report, options.json_path));
  EXPECT_EQ(count(slurp(options.html_path), "class=\"bar\""), 2U);  // serial, threads 2
  EXPECT_TRUE(std::filesystem::exists(dir / "svg" / "is_prime.svg"));

  // Not a terminal: plain progress lines, one per experiment and one per row.
  EXPECT_THAT(r.err, HasSubstr("concur bench: [1/1] "));
  EXPECT_THAT(r.err, HasSubstr("running is_prime: serial, 4 numbers"));
  EXPECT_THAT(r.err, HasSubstr("running is_prime: threads 2, 4 numbers"));
  EXPECT_THAT(r.err, Not(HasSubstr("\033[K")));
}

TEST_F(BenchReportTest, ProgressExpectsWhatThePreviousComparableRunTook) {
  TempDir dir;
  // A previous quick run without Python at 2 threads, in which is_prime took 10 minutes.
  nlohmann::json previous = bench_report_fixture();
  previous["config"]["size"] = "quick";
  previous["config"]["python"] = nullptr;
  previous["experiment_seconds"] = {{"is_prime", 600.0}};
  write_file(dir / "run.json", previous.dump());
  BenchOptions options;
  options.experiments = {"is_prime"};
  options.quick = true;
  options.no_python = true;
  options.threads = 2;
  options.json_path = (dir / "run.json").string();
  Outcome r = bench(options);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, ::testing::ContainsRegex(
                         R"(\[1/1\] 0:0[0-9] elapsed · about (9:5[0-9]|10:00) left · is_prime)"));

  // Now run.json is this run's own report: a quick is_prime takes far less than 9 minutes.
  r = bench(options);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, ::testing::ContainsRegex(R"(about 0:0[0-9] left · is_prime)"));

  // At another thread count the previous run is not comparable: nothing finished yet, no guess.
  options.threads = 1;
  r = bench(options);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("[1/1] 0:00 elapsed · estimating · is_prime"));
}

// ---------------------------------------------------------------------------------------------
// The progress display.

TEST(BenchProgressTest, SecondsLeftUsesExpectationsThenTheMeanOfFinishedExperiments) {
  // All expected: the running one's remainder plus the rest.
  EXPECT_DOUBLE_EQ(*seconds_left({10, 20, 30}, {}, 4.0), 6.0 + 20.0 + 30.0);
  EXPECT_DOUBLE_EQ(*seconds_left({10, 20, 30}, {12.0}, 5.0), 15.0 + 30.0);
  // Running over its expectation: nothing more is charged for it.
  EXPECT_DOUBLE_EQ(*seconds_left({10, 20}, {}, 50.0), 20.0);
  // Unknown, nothing finished: no estimate.
  EXPECT_FALSE(seconds_left({-1, -1}, {}, 1.0).has_value());
  EXPECT_FALSE(seconds_left({10, -1}, {}, 1.0).has_value());
  // Unknown ones take the mean of the finished (here 8 and 12: 10).
  EXPECT_DOUBLE_EQ(*seconds_left({-1, -1, -1, -1}, {8.0, 12.0}, 3.0), 7.0 + 10.0);
  EXPECT_DOUBLE_EQ(*seconds_left({-1, -1, 40}, {8.0}, 0.0), 8.0 + 40.0);
  // All finished.
  EXPECT_DOUBLE_EQ(*seconds_left({5, 5}, {5.0, 6.0}, 0.0), 0.0);
}

TEST(BenchProgressTest, FormatClock) {
  EXPECT_EQ(format_clock(0), "0:00");
  EXPECT_EQ(format_clock(7.4), "0:07");
  EXPECT_EQ(format_clock(7.6), "0:08");
  EXPECT_EQ(format_clock(59.7), "1:00");
  EXPECT_EQ(format_clock(200), "3:20");
  EXPECT_EQ(format_clock(3723), "1:02:03");
  EXPECT_EQ(format_clock(-5), "0:00");
}

TEST(BenchProgressTest, PlainLinesNameTheExperimentAndEachRow) {
  std::ostringstream err;
  {
    BenchProgress progress(err, false, {"is_prime", "fib_pool"}, {});
    progress.experiment_started(0);
    progress.row_started("is_prime: serial, 100 numbers");
    progress.experiment_finished(0, 30.0);
    progress.experiment_started(1);
    progress.row_started("fib_pool: pool 3, fib(25..39)");
    progress.experiment_finished(1, 10.0);
  }
  const std::string text = err.str();
  EXPECT_THAT(text, HasSubstr("concur bench: [1/2] 0:00 elapsed · estimating · is_prime\n"));
  EXPECT_THAT(text, HasSubstr("running is_prime: serial, 100 numbers\n"));
  // fib_pool is charged the mean of the finished ones: is_prime's 30 s.
  EXPECT_THAT(text, HasSubstr("concur bench: [2/2] 0:00 elapsed · about 0:30 left · fib_pool\n"));
  EXPECT_THAT(text, HasSubstr("running fib_pool: pool 3, fib(25..39)\n"));
  EXPECT_EQ(count(text, "\n"), 4U);
}

// ---------------------------------------------------------------------------------------------
// Options.

// parse(args) parses a `concur bench ...` command line the way main.cpp does.
CLI::App* parse(const std::vector<std::string>& args, BenchOptions& options, CLI::App& app) {
  CLI::App* cmd = add_bench_command(app, options);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  app.parse(reversed);
  return cmd;
}

TEST(BenchReportOptionsTest, ParsesOnlyHtmlSvgAndFrom) {
  BenchOptions o;
  CLI::App app;
  parse({"bench", "--only", "is_prime,fib_pool", "--only", "sleep_pool", "--html", "r.html",
         "--svg", "charts", "--from", "r.json"},
        o, app);
  EXPECT_EQ(o.only, (std::vector<std::string>{"is_prime", "fib_pool", "sleep_pool"}));
  EXPECT_EQ(o.html_path, "r.html");
  EXPECT_EQ(o.svg_dir, "charts");
  EXPECT_EQ(o.from_path, "r.json");

  // --from runs nothing: the options of a run are refused beside it.
  for (const std::vector<std::string>& run_option : {std::vector<std::string>{"--quick"},
                                                     {"--full"},
                                                     {"--threads", "2"},
                                                     {"--no-python"},
                                                     {"--python", "python3"},
                                                     {"--python-budget", "5"},
                                                     {"--json", "x.json"},
                                                     {"--no-json"},
                                                     {"--list"}}) {
    BenchOptions bad;
    CLI::App bad_app;
    std::vector<std::string> args = {"bench", "--from", "r.json", "--html", "r.html"};
    args.insert(args.end(), run_option.begin(), run_option.end());
    EXPECT_THROW(parse(args, bad, bad_app), CLI::ExcludesError) << run_option[0];
  }
}

TEST(BenchReportOptionsTest, HelpDocumentsTheOptionsWithExamples) {
  BenchOptions o;
  CLI::App app;
  CLI::App* cmd = add_bench_command(app, o);
  const std::string help = cmd->help();
  for (const char* option :
       {"--list", "--only", "--full", "--python", "--html", "--svg", "--from"}) {
    EXPECT_THAT(help, HasSubstr(option)) << option;
  }
  EXPECT_THAT(help, HasSubstr("Examples:"));
  EXPECT_THAT(help, HasSubstr("concur bench --html report.html --from concur-bench.json"));
}

}  // namespace
