// asio_timer_bench: the raw Boost.Asio twin of python_aio_bench.py's timers_10k. On one
// io_context run by one thread, N steady_timers (10,000) are created and armed for 100 ms
// together, callback style; the wall time from just before the first is created to the last
// callback, minus the delay, is the scheduling overhead in ms. Repeated (7 runs, a fresh
// io_context each); prints one JSON object with the median, min and max (and the arming time).
//
// Usage: asio_timer_bench [--timers 10000] [--delay-ms 100] [--reps 7]
#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Options {
  long timers = 10000;
  long delay_ms = 100;
  long reps = 7;
};

struct Run {
  double overhead_ms;  // first arm -> last expiry, minus the delay
  double arm_ms;       // first arm -> last arm
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "asio_timer_bench: %s\n", what.c_str());
  std::exit(1);
}

long parse_int(std::string_view flag, const char* text, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi) {
    fail(std::string(flag) + " wants an integer in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "], got '" + text + "'");
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) fail(std::string(flag) + " needs a value (or unknown option)");
    const char* value = argv[++i];
    if (flag == "--timers") {
      o.timers = parse_int(flag, value, 1, 10'000'000);
    } else if (flag == "--delay-ms") {
      o.delay_ms = parse_int(flag, value, 0, 60'000);
    } else if (flag == "--reps") {
      o.reps = parse_int(flag, value, 1, 1000);
    } else {
      fail("unknown option " + std::string(flag));
    }
  }
  return o;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

Run one_run(const Options& o) {
  asio::io_context io(1);
  std::vector<asio::steady_timer> timers;
  timers.reserve(static_cast<std::size_t>(o.timers));
  long fired = 0;
  Clock::time_point last{};
  const auto delay = std::chrono::milliseconds(o.delay_ms);

  const auto start = Clock::now();
  for (long i = 0; i < o.timers; ++i) {
    asio::steady_timer& t = timers.emplace_back(io);
    t.expires_after(delay);
    t.async_wait([&](const boost::system::error_code& ec) {
      if (ec) fail("timer wait: " + ec.message());
      if (++fired == o.timers) last = Clock::now();
    });
  }
  const auto armed = Clock::now();
  io.run();  // returns once every timer has fired: nothing else is pending
  if (fired != o.timers) fail("not every timer fired");
  return {ms(last - start) - static_cast<double>(o.delay_ms), ms(armed - start)};
}

// Prints {"median": .., "min": .., "max": .., "runs": [..]} for `values`.
void print_summary(const char* name, const std::vector<double>& values, bool last) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t m = sorted.size();
  const double median = m % 2 == 1 ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
  std::printf("  \"%s\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f, \"runs\": [", name,
              median, sorted.front(), sorted.back());
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::printf("%s%.3f", i == 0 ? "" : ", ", values[i]);
  }
  std::printf("]}%s\n", last ? "" : ",");
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  std::vector<double> overhead, arm;
  try {
    for (long r = 0; r < o.reps; ++r) {
      const Run run = one_run(o);
      overhead.push_back(run.overhead_ms);
      arm.push_back(run.arm_ms);
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  std::printf(
      "{\n  \"name\": \"asio_timers\", \"timers\": %ld, \"delay_ms\": %ld, \"reps\": %ld,\n",
      o.timers, o.delay_ms, o.reps);
  print_summary("overhead_ms", overhead, false);
  print_summary("arm_ms", arm, true);
  std::printf("}\n");
  return 0;
}
