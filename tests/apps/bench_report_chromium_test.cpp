// The HTML report of `concur bench` (apps/concur/bench/html_report.hpp) in a real browser:
// headless Chromium renders the page of a fixed JSON report (bench_report_fixture.hpp) to a PNG.
// A page that Chromium cannot lay out, or that draws nothing, fails here: the PNG must exist, be
// a PNG of the window's size, and be far larger than the PNG of an empty page of that size.
// Skipped when `chromium` is not on PATH (scripts/setup.sh does not install it). Each Chromium
// run is bounded by timeout(1); the test by its ctest TIMEOUT (tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bench_report_fixture.hpp"
#include "bench/html_report.hpp"
#include "bench/python.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace concur::apps::bench;
using concur::testing::bench_report_fixture;
using concur::testing::TempDir;

// kChromiumSeconds bounds one headless Chromium run (it takes 2-5 s on this 2-core machine).
constexpr const char* kChromiumSeconds = "60";

// on_path(name) is the first executable called `name` in PATH.
std::optional<std::string> on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (std::filesystem::path(dir.empty() ? "." : dir) / name).string();
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::string slurp(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// screenshot(chromium, html, png, profile) renders `html` at 1200×2000 into `png`; returns
// Chromium's exit status (124 when timeout(1) stopped it).
int screenshot(const std::string& chromium, const std::filesystem::path& html,
               const std::filesystem::path& png, const std::filesystem::path& profile) {
  const CaptureResult r = run_capture(
      {"timeout", kChromiumSeconds, chromium, "--headless", "--disable-gpu", "--no-sandbox",
       "--hide-scrollbars", "--user-data-dir=" + profile.string(), "--screenshot=" + png.string(),
       "--window-size=1200,2000", "file://" + html.string()});
  return r.exit_code;
}

// be32(bytes, at): the big-endian 32-bit number at `at` (PNG's IHDR width and height).
std::uint32_t be32(const std::string& bytes, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

TEST(BenchReportChromiumTest, RendersTheReportToAPng) {
  const std::optional<std::string> chromium = on_path("chromium");
  if (!chromium) GTEST_SKIP() << "chromium is not on PATH";
  TempDir dir;
  {
    std::ofstream page(dir / "report.html", std::ios::binary);
    page << render_html(bench_report_fixture(), "fixture.json");
    std::ofstream empty(dir / "empty.html", std::ios::binary);
    empty << "<!DOCTYPE html><html><body></body></html>\n";
  }
  ASSERT_EQ(screenshot(*chromium, dir / "report.html", dir / "report.png", dir / "profile"), 0);
  ASSERT_EQ(screenshot(*chromium, dir / "empty.html", dir / "empty.png", dir / "profile"), 0);

  const std::string png = slurp(dir / "report.png");
  ASSERT_GE(png.size(), 24U) << "no PNG written";
  constexpr std::array<unsigned char, 8> kSignature = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  for (std::size_t i = 0; i < kSignature.size(); ++i) {
    EXPECT_EQ(static_cast<unsigned char>(png[i]), kSignature[i]) << "byte " << i;
  }
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(png, 16), 1200U);  // width
  EXPECT_EQ(be32(png, 20), 2000U);  // height
  // An empty 1200×2000 page compresses to about 11 KB; the two charts, their tables and the text
  // to well over 100 KB. Three times the empty page's size leaves room for other fonts.
  const auto empty_size = std::filesystem::file_size(dir / "empty.png");
  EXPECT_GT(png.size(), 3 * empty_size) << "the page looks empty: " << png.size() << " bytes";
}

}  // namespace
