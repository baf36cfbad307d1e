// bench/progress.cpp — the live line and the plain lines of `concur bench`'s progress.
#include "bench/progress.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace concur::apps::bench {
namespace {

// terminal_columns() is stderr's width, 80 when unknown: a live line longer than the terminal
// would wrap, and "\r\033[K" only wipes the last of its rows.
std::size_t terminal_columns() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) return ws.ws_col;
  return 80;
}

// fit(text, columns) cuts `text` to at most columns - 1 code points.
std::string fit(std::string text, std::size_t columns) {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (++seen == columns) {
      text.resize(i);
      break;
    }
  }
  return text;
}

}  // namespace

std::optional<double> seconds_left(const std::vector<double>& expected,
                                   const std::vector<double>& finished, double elapsed_in_current) {
  std::optional<double> mean;
  if (!finished.empty()) {
    double sum = 0.0;
    for (const double s : finished) sum += s;
    mean = sum / static_cast<double>(finished.size());
  }
  double left = 0.0;
  for (std::size_t i = finished.size(); i < expected.size(); ++i) {
    std::optional<double> each = mean;
    if (expected[i] >= 0.0) each = expected[i];
    if (!each) return std::nullopt;
    // The running experiment: what remains of it, never negative when it runs over.
    left += i == finished.size() ? std::max(0.0, *each - elapsed_in_current) : *each;
  }
  return left;
}

std::string format_clock(double seconds) {
  const long long s = std::llround(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

BenchProgress::BenchProgress(std::ostream& err, bool live, std::vector<std::string> names,
                             std::vector<double> expected)
    : err_(err), live_(live), names_(std::move(names)), expected_(std::move(expected)) {
  expected_.resize(names_.size(), -1.0);
  if (live_) drawer_ = std::thread([this] { draw_until_done(); });
}

BenchProgress::~BenchProgress() {
  {
    std::scoped_lock lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (drawer_.joinable()) drawer_.join();
}

void BenchProgress::experiment_started(std::size_t index) {
  std::scoped_lock lock(mu_);
  current_ = index;
  running_ = true;
  current_start_ = Clock::now();
  row_.clear();
  if (!live_) err_ << "concur bench: " << status_locked() << std::endl;
}

void BenchProgress::row_started(std::string_view line) {
  std::scoped_lock lock(mu_);
  row_ = std::string(line);
  if (!live_) err_ << "running " << line << std::endl;
}

void BenchProgress::experiment_finished(std::size_t index, double seconds) {
  std::scoped_lock lock(mu_);
  // Experiments finish in order; finished_[i] is experiment i's wall time.
  if (index == finished_.size()) finished_.push_back(seconds);
  running_ = false;
  row_.clear();
}

std::string BenchProgress::status_locked() const {
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double in_current =
      running_ ? std::chrono::duration<double>(now - current_start_).count() : 0.0;
  const std::size_t n = names_.size();
  std::string what = current_ < n ? names_[current_] : std::string("?");
  // A row line starts with its experiment's name and says the mode: it replaces the name.
  if (!row_.empty()) what = row_;
  const std::optional<double> left = seconds_left(expected_, finished_, in_current);
  // The times first: a live line cut to the terminal's width loses the end of the row's text.
  return fmt::format(
      "[{}/{}] {} elapsed · {} · {}", std::min(current_ + 1, n), n, format_clock(elapsed),
      left ? "about " + format_clock(*left) + " left" : std::string("estimating"), what);
}

void BenchProgress::draw_until_done() {
  std::unique_lock lock(mu_);
  const std::size_t columns = terminal_columns();
  while (!cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return done_; })) {
    err_ << "\r\033[K" << fit(status_locked(), columns) << std::flush;
  }
  err_ << "\r\033[K" << std::flush;
}

}  // namespace concur::apps::bench
