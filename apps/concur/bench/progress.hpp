// bench/progress.hpp — BenchProgress, what `concur bench` shows on stderr while experiments run:
// on a terminal one live line, redrawn twice a second and wiped at the end,
//   [2/9] 1:05 elapsed · about 3:20 left · is_prime_pool: python pool 2, 20 numbers
// and elsewhere (a pipe, a log file, a test's stream) plain lines, one per experiment start
// ("concur bench: [2/9] 1:05 elapsed · about 3:20 left · is_prime_pool") and one per row start
// ("running is_prime_pool: serial, 100 numbers").
//
// The time left (seconds_left()) charges every unfinished experiment its expected duration
// (what it took in the previous comparable run, from that run's JSON report) or, when unknown,
// the mean of the experiments finished so far; the running one is charged what remains of it.
// Before any estimate exists the line says "estimating".
//
// Thread-safety: the events are called by the run (one thread); the drawing thread of the live
// line reads the state under a mutex. The destructor stops and joins that thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace concur::apps::bench {

// seconds_left(expected, finished, elapsed_in_current) estimates the run's remaining wall time.
// `expected[i]` is experiment i's expected seconds (< 0: unknown); `finished` holds the measured
// seconds of experiments 0..finished.size()-1; the next one, if any, is running for
// `elapsed_in_current` seconds. nullopt when an unfinished experiment has no expectation and
// none has finished yet.
[[nodiscard]] std::optional<double> seconds_left(const std::vector<double>& expected,
                                                 const std::vector<double>& finished,
                                                 double elapsed_in_current);

// format_clock(seconds): "0:07", "3:20", "1:02:03" (rounded to whole seconds; negative is 0).
[[nodiscard]] std::string format_clock(double seconds);

class BenchProgress {
 public:
  // BenchProgress(err, live, names, expected) reports on `err` the run of the experiments
  // `names` (in order); `expected` is one expected duration per name in seconds, < 0 when
  // unknown (shorter vectors mean unknown for the rest). `live`: draw the redrawn line (only when
  // `err` is a terminal) instead of plain lines.
  BenchProgress(std::ostream& err, bool live, std::vector<std::string> names,
                std::vector<double> expected);
  // ~BenchProgress() stops the live line and wipes it, so that what follows starts clean.
  ~BenchProgress();
  BenchProgress(const BenchProgress&) = delete;
  BenchProgress& operator=(const BenchProgress&) = delete;

  // experiment_started(index): experiment `index` of the names begins.
  void experiment_started(std::size_t index);
  // row_started(line): the running experiment starts a row ("is_prime: serial, 100 numbers").
  void row_started(std::string_view line);
  // experiment_finished(index, seconds): it ended after `seconds` of wall time.
  void experiment_finished(std::size_t index, double seconds);

 private:
  // status_locked() is the live line's text, and a plain experiment line's (mu_ held).
  std::string status_locked() const;
  void draw_until_done();

  using Clock = std::chrono::steady_clock;
  std::ostream& err_;
  const bool live_;
  const std::vector<std::string> names_;
  std::vector<double> expected_;
  const Clock::time_point start_ = Clock::now();

  mutable std::mutex mu_;
  std::size_t current_ = 0;  // guarded by mu_: the running experiment's index
  bool running_ = false;     // guarded by mu_: an experiment is between started and finished
  Clock::time_point current_start_;  // guarded by mu_
  std::string row_;                  // guarded by mu_: the running row's line
  std::vector<double> finished_;     // guarded by mu_
  bool done_ = false;                // guarded by mu_
  std::condition_variable cv_;
  std::thread drawer_;  // the live line's drawing thread (live_ only)
};

}  // namespace concur::apps::bench
