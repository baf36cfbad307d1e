// bench/experiments/is_prime.cpp — the is_prime experiment: rows "serial", "threads N",
// "python serial", "python threading N". Every row computes is_prime of each of its numbers
// and must agree with the reference computed once up front.
#include "bench/experiments/is_prime.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/python.hpp"
#include "concur/thread.hpp"
#include "embedded/kIsPrimePy.hpp"

namespace concur::apps::bench {

std::uint64_t isqrt(std::uint64_t n) {
  auto r = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
  // The double may be off by one either way near 2^53 and above; compare by division so that
  // nothing overflows.
  while (r > 0 && r > n / r) --r;
  while (r + 1 <= n / (r + 1)) ++r;
  return r;
}

bool is_prime_by_remainder(std::uint64_t n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  const std::uint64_t sqrt_n = isqrt(n);
  for (std::uint64_t i = 3; i <= sqrt_n; i += 2) {
    if (n % i == 0) return false;
  }
  return true;
}

namespace {

// The divisor blocks of is_prime, in double precision: the same divisions as the `%` loop, which
// the CPU does 3-5x faster on doubles, several per instruction. A block is two vectors of odd
// divisors i, i + 2, …; each lane divides n by its divisor and asks whether the quotient q is
// whole: q == (q + 2^52) - 2^52, exact for any q in [0, 2^52) (adding 2^52 rounds a fraction
// away), and here q < 2^52 (n < 2^53, divisors >= 3).
// - No divisor is missed: when d divides n, n and n / d are integers below 2^53, so the correctly
//   rounded quotient is n / d exactly (IEEE 754; nothing here is built with -ffast-math).
// - No whole quotient is false: n / d lies at least 1 / d from a whole number when d does not
//   divide n, and the rounding error is at most 2^-53 of n / d, less than 1 / d. is_prime does
//   not rely on this side: it tries the block's divisors again with `%` and decides there.
using Double2 = double __attribute__((vector_size(16)));
using Mask2 = long long __attribute__((vector_size(16)));
using Double4 = double __attribute__((vector_size(32)));
using Mask4 = long long __attribute__((vector_size(32)));
constexpr double kTwo52 = 4503599627370496.0;

// skip_blocks(n, i, last) steps the odd divisor i over whole blocks (every divisor <= last) and
// stops at the first block with a whole quotient (i = that block's first divisor) or after the
// last whole block (i = the first divisor not tried).
template <class Doubles, class Mask>
[[gnu::always_inline]] inline void skip_blocks(double n, std::uint64_t& i, std::uint64_t last) {
  constexpr std::uint64_t kLanes = sizeof(Doubles) / sizeof(double);
  Doubles low{};
  for (std::uint64_t k = 0; k < kLanes; ++k) low[k] = static_cast<double>(i + 2 * k);
  Doubles high = low + 2.0 * kLanes;
  const Doubles step = Doubles{} + 4.0 * kLanes;
  for (; i + 2 * (2 * kLanes - 1) <= last; i += 4 * kLanes) {
    const Doubles q_low = n / low;
    const Doubles q_high = n / high;
    const Mask whole =
        (((q_low + kTwo52) - kTwo52) == q_low) | (((q_high + kTwo52) - kTwo52) == q_high);
    long long any = 0;
    for (std::uint64_t k = 0; k < kLanes; ++k) any |= whole[k];
    if (any != 0) return;
    low += step;
    high += step;
  }
}

#if defined(__x86_64__) || defined(__i386__)
// Four lanes per vector where the CPU has AVX2 (chosen at run time; the binary stays baseline
// x86-64), two (SSE2) elsewhere.
[[gnu::target("avx2")]] void skip_blocks_avx2(double n, std::uint64_t& i, std::uint64_t last) {
  skip_blocks<Double4, Mask4>(n, i, last);
}
const bool kHasAvx2 = [] {
  __builtin_cpu_init();  // (GCC asks for it where this may run during static initialization)
  return __builtin_cpu_supports("avx2") != 0;
}();
#endif

void skip_divisor_free_blocks(double n, std::uint64_t& i, std::uint64_t last) {
#if defined(__x86_64__) || defined(__i386__)
  if (kHasAvx2) {
    skip_blocks_avx2(n, i, last);
    return;
  }
#endif
  skip_blocks<Double2, Mask2>(n, i, last);
}

}  // namespace

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  const std::uint64_t sqrt_n = isqrt(n);
  std::uint64_t i = 3;
  if (n < (std::uint64_t{1} << 53)) {
    // Skip the blocks without a divisor; the `%` loop below takes over at the first block that
    // may hold one (and decides), or for the last few divisors.
    skip_divisor_free_blocks(static_cast<double>(n), i, sqrt_n);
  }
  for (; i <= sqrt_n; i += 2) {
    if (n % i == 0) return false;
  }
  return true;
}

namespace {

constexpr std::string_view kName = "is_prime";
constexpr std::string_view kUnit = "numbers";

// count_text(n) is "1 number" or "n numbers", for progress lines.
std::string count_text(std::size_t n) { return fmt::format("{} number{}", n, n == 1 ? "" : "s"); }

std::string answer_name(bool prime) { return prime ? "prime" : "not prime"; }

// summarize(results, expected) is the row's answer: the common answer of all its numbers, or
// how many disagree with the reference.
std::string summarize(const std::vector<bool>& results, bool expected) {
  std::size_t wrong = 0;
  for (bool r : results) wrong += r != expected ? 1 : 0;
  if (wrong == 0) return answer_name(expected);
  if (wrong == results.size()) return answer_name(!expected);
  return fmt::format("{} of {} numbers say {}", wrong, results.size(), answer_name(!expected));
}

Row make_row(std::string mode, std::string language, unsigned workers, std::size_t items,
             double seconds, std::string answer, bool expected) {
  Row row;
  row.experiment = std::string(kName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = workers;
  row.baseline = workers == 1 && row.mode.find("serial") != std::string::npos;
  row.items = items;
  row.full_items = kIsPrimeCount;
  row.unit = std::string(kUnit);
  row.seconds = seconds;
  row.answer = std::move(answer);
  row.expected = answer_name(expected);
  return row;
}

Row run_serial(const std::vector<std::uint64_t>& numbers, bool expected) {
  std::vector<char> results(numbers.size());
  const double seconds = seconds_of([&] {
    for (std::size_t i = 0; i < numbers.size(); ++i) results[i] = is_prime(numbers[i]) ? 1 : 0;
  });
  return make_row("serial", "c++", 1, numbers.size(), seconds,
                  summarize({results.begin(), results.end()}, expected), expected);
}

// run_threads: `n` concur::Threads, thread k taking chunk k of the numbers (as the Python
// script does). The time includes creating, starting and joining the threads, like the notes'
// `with ThreadPoolExecutor()` block.
Row run_threads(const std::vector<std::uint64_t>& numbers, unsigned n, bool expected) {
  // One byte per number, each written by exactly one thread and read after join().
  std::vector<char> results(numbers.size());
  const double seconds = seconds_of([&] {
    std::vector<Thread> threads;
    threads.reserve(n);
    for (unsigned k = 0; k < n; ++k) {
      const auto [lo, hi] = chunk(k, n, numbers.size());
      Thread::Options options;
      options.name = fmt::format("is_prime-{}", k);
      threads.emplace_back(
          std::move(options),
          [&numbers, &results](std::size_t first, std::size_t last) {
            for (std::size_t i = first; i < last; ++i) results[i] = is_prime(numbers[i]) ? 1 : 0;
          },
          lo, hi);
    }
    for (Thread& t : threads) t.start();
    for (Thread& t : threads) t.join();
  });
  return make_row(fmt::format("threads {}", n), "c++", n, numbers.size(), seconds,
                  summarize({results.begin(), results.end()}, expected), expected);
}

// run_python_mode runs bench/compare/is_prime.py and turns its JSON into a row.
Row run_python_mode(const PythonInfo& python, std::string_view mode, std::size_t count,
                    unsigned threads, bool expected) {
  std::vector<std::string> args = {"--mode",   std::string(mode),
                                   "--count",  std::to_string(count),
                                   "--number", std::to_string(kIsPrimeNumber)};
  if (mode == "threading") {
    args.insert(args.end(), {"--threads", std::to_string(threads)});
  }
  const nlohmann::json j = run_python(python, embedded::kIsPrimePy, args);
  std::vector<bool> results;
  try {
    results = j.at("results").get<std::vector<bool>>();
    if (results.size() != count) {
      throw std::runtime_error(fmt::format("{} results for {} numbers", results.size(), count));
    }
    const double seconds = j.at("seconds").get<double>();
    const unsigned workers = mode == "threading" ? threads : 1;
    std::string row_mode = mode == "threading" ? fmt::format("python threading {}", threads)
                                               : std::string("python serial");
    return make_row(std::move(row_mode), "python", workers, count, seconds,
                    summarize(results, expected), expected);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("is_prime.py printed unexpected JSON: {}", e.what()));
  }
}

// run_python_rows appends the rows "python serial" and "python threading N".
void run_python_rows(const PythonInfo& py, const BenchConfig& config, bool expected,
                     std::vector<Row>& rows) {
  std::size_t py_count = 1;
  switch (config.size) {
    case Size::kQuick:
      py_count = 1;
      break;
    case Size::kFull:
      py_count = kIsPrimeCount;
      break;
    case Size::kDefault: {
      // Calibrate: one number in Python, then the largest divisor of 100 that fits the budget.
      config.report_progress("is_prime: python calibration, 1 number");
      const Row probe = run_python_mode(py, "serial", 1, 1, expected);
      if (!probe.ok()) {
        throw std::runtime_error("python calibration run answered " + probe.answer);
      }
      py_count = scaled_count(kIsPrimeCount, probe.seconds, config.python_budget_seconds);
      break;
    }
  }
  config.report_progress("is_prime: python serial, " + count_text(py_count));
  rows.push_back(run_python_mode(py, "serial", py_count, 1, expected));
  config.report_progress(
      fmt::format("is_prime: python threading {}, {}", config.threads, count_text(py_count)));
  rows.push_back(run_python_mode(py, "threading", py_count, config.threads, expected));
}

class IsPrimeExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kName; }
  [[nodiscard]] std::string_view description() const override {
    return "is_prime(112272535095293) x 100, trial division (seed 004): CPU-bound work";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    // The reference answer, computed once; every row must agree with it.
    const bool expected = is_prime(kIsPrimeNumber);

    const std::size_t cpp_count = config.size == Size::kQuick ? kIsPrimeQuickCount : kIsPrimeCount;
    const std::vector<std::uint64_t> numbers(cpp_count, kIsPrimeNumber);
    std::vector<Row> rows;
    config.report_progress("is_prime: serial, " + count_text(cpp_count));
    rows.push_back(run_serial(numbers, expected));
    config.report_progress(
        fmt::format("is_prime: threads {}, {}", config.threads, count_text(cpp_count)));
    rows.push_back(run_threads(numbers, config.threads, expected));

    if (config.python) {
      try {
        run_python_rows(*config.python, config, expected, rows);
      } catch (const std::exception& e) {
        throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
      }
    }
    return rows;
  }
};

}  // namespace

std::unique_ptr<Experiment> make_is_prime_experiment() {
  return std::make_unique<IsPrimeExperiment>();
}

}  // namespace concur::apps::bench
