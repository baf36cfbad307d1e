// Tests for `concur bench` (apps/concur/bench/), calling the concur_apps library directly
// (STYLE.md rule 11): the notes' is_prime and fib, the helpers every experiment uses, the
// registry, quick runs of every experiment with and without Python (the coroutine experiments
// against their own local HTTP site; is_prime_redis against its own redis-server and `concur
// worker` processes of the concur binary, CONCUR_CLI_PATH), the JSON report and option errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_command.hpp"
#include "bench/experiment.hpp"
#include "bench/experiments/async_crawl.hpp"
#include "bench/experiments/fib_pool.hpp"
#include "bench/experiments/is_prime.hpp"
#include "bench/experiments/is_prime_redis.hpp"
#include "bench/experiments/serve_notes.hpp"
#include "bench/experiments/sleep_gather.hpp"
#include "bench/experiments/sleep_pool.hpp"
#include "bench/machine.hpp"
#include "bench/python.hpp"
#include "bench/registry.hpp"
#include "bench/report.hpp"
#include "site/blog_site.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur::apps::bench;
using concur::testing::kThreadCounts;
using concur::testing::QuiescentTest;
using ::testing::HasSubstr;

class BenchTest : public QuiescentTest {};

// naive_is_prime(n) is an independent definition: no divisor in [2, n).
bool naive_is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t d = 2; d < n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

TEST(IsPrimeTest, KnownPrimesAndComposites) {
  EXPECT_FALSE(is_prime(0));
  EXPECT_FALSE(is_prime(1));
  EXPECT_TRUE(is_prime(2));
  EXPECT_TRUE(is_prime(3));
  EXPECT_FALSE(is_prime(4));
  EXPECT_FALSE(is_prime(9));
  EXPECT_FALSE(is_prime(25));
  EXPECT_TRUE(is_prime(97));
  EXPECT_TRUE(is_prime(1'000'000'007));
  // A square of a prime: the loop must reach floor(sqrt(n)) inclusive.
  EXPECT_FALSE(is_prime(1'000'003ULL * 1'000'003ULL));
  EXPECT_FALSE(is_prime(999'983ULL * 1'000'003ULL));
}

TEST(IsPrimeTest, TheNotesNumberIsPrime) {
  // Computed with the notes' Python is_prime (bench/compare/is_prime.py): True.
  EXPECT_EQ(kIsPrimeNumber, 112272535095293ULL);
  EXPECT_EQ(kIsPrimeCount, 100U);
  EXPECT_TRUE(is_prime(kIsPrimeNumber));
}

TEST(IsPrimeTest, AgreesWithNaiveDefinitionBelow3000) {
  for (std::uint64_t n = 0; n < 3000; ++n) EXPECT_EQ(is_prime(n), naive_is_prime(n)) << n;
}

// is_prime divides in double precision below 2^53 (vector blocks of odd divisors) and with `%`
// above; these compare it with the plain `%` loop where a block's edges and lanes, the 2^53
// boundary and the largest divisors can go wrong.
TEST(IsPrimeTest, AgreesWithTheRemainderLoopBelow300000) {
  for (std::uint64_t n = 0; n < 300'000; ++n) {
    ASSERT_EQ(is_prime(n), is_prime_by_remainder(n)) << n;
  }
}

// primes_from(first, count): the first `count` primes >= first, by the `%` loop.
std::vector<std::uint64_t> primes_from(std::uint64_t first, std::size_t count) {
  std::vector<std::uint64_t> primes;
  for (std::uint64_t n = first; primes.size() < count; ++n) {
    if (is_prime_by_remainder(n)) primes.push_back(n);
  }
  return primes;
}

TEST(IsPrimeTest, FindsASmallestFactorInEveryLaneOfABlock) {
  // n = p * q with p the smallest factor: 40 consecutive primes p put it in every lane of the
  // blocks (8 divisors with SSE2, 16 with AVX2) at every position of the loop.
  const std::uint64_t q = primes_from(1'000'000'000, 1)[0];
  for (const std::uint64_t p : primes_from(1'000'000, 40)) {
    EXPECT_FALSE(is_prime(p * q)) << p << " * " << q;
  }
  for (const std::uint64_t p : primes_from(3, 40)) EXPECT_FALSE(is_prime(p * q)) << p;
}

TEST(IsPrimeTest, SquaresAndCloseFactorsJustBelow2To53) {
  // The largest divisor tried is floor(sqrt(n)): a square of a prime is caught only there, and
  // n = p * q with p, q close is caught near the end of the loop (in the last block or after it).
  const std::vector<std::uint64_t> near_root =
      primes_from(94'906'200, 4);  // sqrt(2^53) ~ 94906265.6
  for (const std::uint64_t p : near_root) {
    for (const std::uint64_t q : near_root) {
      const std::uint64_t n = p * q;
      EXPECT_FALSE(is_prime(n)) << p << " * " << q
                                << (n < (std::uint64_t{1} << 53) ? "" : " (above 2^53)");
    }
  }
}

TEST(IsPrimeTest, AroundTwoTo53) {
  // Below 2^53 the double path decides, from 2^53 on the `%` loop; both must agree with it.
  constexpr std::uint64_t kTwo53 = std::uint64_t{1} << 53;
  EXPECT_TRUE(is_prime(kTwo53 - 111));  // the largest prime below 2^53
  for (const std::uint64_t n : {kTwo53 - 1, kTwo53 - 3, kTwo53 + 1, kTwo53 + 3, kTwo53 + 5}) {
    EXPECT_EQ(is_prime(n), is_prime_by_remainder(n)) << n;
  }
}

TEST(IsPrimeTest, IsqrtIsExactAtTheEdges) {
  EXPECT_EQ(isqrt(0), 0U);
  EXPECT_EQ(isqrt(1), 1U);
  EXPECT_EQ(isqrt(3), 1U);
  EXPECT_EQ(isqrt(4), 2U);
  EXPECT_EQ(isqrt(kIsPrimeNumber), 10595873U);  // 10595873^2 <= n < 10595874^2
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(isqrt(max), 4294967295U);
  const std::uint64_t big = 4294967295ULL * 4294967295ULL;
  EXPECT_EQ(isqrt(big), 4294967295U);
  EXPECT_EQ(isqrt(big - 1), 4294967294U);
  // Around 2^53, where a double can no longer hold every integer.
  const std::uint64_t r = 94906267;  // r^2 > 2^53
  EXPECT_EQ(isqrt(r * r), r);
  EXPECT_EQ(isqrt(r * r - 1), r - 1);
  EXPECT_EQ(isqrt(r * r + 2 * r), r);
}

TEST(FibTest, TheNotesFunction) {
  EXPECT_EQ(fib(1), 1);
  EXPECT_EQ(fib(2), 1);
  EXPECT_EQ(fib(3), 2);
  EXPECT_EQ(fib(10), 55);
  // The notes' printed results: fib(25) = 75025 ... fib(39) = 63245986.
  EXPECT_EQ(fib(kFibFirst), 75025);
  EXPECT_EQ(fib(30), 832040);
}

TEST(FibTest, CallsCountEveryInvocation) {
  // calls(n) = 1 + calls(n - 1) + calls(n - 2), calls(1) = calls(2) = 1: 2·fib(n) − 1.
  EXPECT_EQ(fib_calls(1, 2), 1U);
  EXPECT_EQ(fib_calls(2, 3), 1U);
  EXPECT_EQ(fib_calls(3, 4), 3U);
  EXPECT_EQ(fib_calls(5, 6), 9U);
  EXPECT_EQ(fib_calls(1, 6), 1U + 1U + 3U + 5U + 9U);
  EXPECT_EQ(fib_calls(kFibFirst, kFibFirst), 0U);
  // range(25, 40): 2·(fib(41) − fib(26)) − 15.
  EXPECT_EQ(fib_calls(kFibFirst, kFibLast), 2U * (165580141U - 121393U) - 15U);
  EXPECT_EQ(kFibWorkers, 3U);
}

TEST(ExperimentHelpersTest, ScaledCountIsTheLargestDivisorInBudget) {
  EXPECT_EQ(scaled_count(100, 0.2, 10.0), 50U);
  EXPECT_EQ(scaled_count(100, 0.6, 10.0), 10U);  // 16 fit; the largest divisor <= 16 is 10
  EXPECT_EQ(scaled_count(100, 0.001, 10.0), 100U);
  EXPECT_EQ(scaled_count(100, 60.0, 10.0), 1U);  // never below 1
}

TEST(ExperimentHelpersTest, ChunksCoverEveryItemOnce) {
  for (std::size_t parts : {1U, 2U, 3U, 7U, 8U, 150U}) {
    std::size_t next = 0;
    for (std::size_t k = 0; k < parts; ++k) {
      const auto [lo, hi] = chunk(k, parts, 100);
      EXPECT_EQ(lo, next);
      EXPECT_LE(lo, hi);
      next = hi;
    }
    EXPECT_EQ(next, 100U) << parts;
  }
}

TEST(ExperimentHelpersTest, FinalizeSetsSpeedupsPerLanguageAndScaledNotes) {
  auto row = [](std::string mode, std::string lang, bool baseline, std::size_t items,
                double seconds) {
    Row r;
    r.experiment = "x";
    r.mode = std::move(mode);
    r.language = std::move(lang);
    r.baseline = baseline;
    r.items = items;
    r.full_items = 100;
    r.unit = "numbers";
    r.seconds = seconds;
    return r;
  };
  std::vector<Row> rows = {row("serial", "c++", true, 100, 2.0),
                           row("threads 2", "c++", false, 100, 1.0),
                           row("python serial", "python", true, 10, 4.0),
                           row("python threading 2", "python", false, 10, 5.0)};
  finalize_rows(rows);
  EXPECT_DOUBLE_EQ(rows[0].speedup, 1.0);
  EXPECT_DOUBLE_EQ(rows[1].speedup, 2.0);
  EXPECT_DOUBLE_EQ(rows[2].speedup, 1.0);
  EXPECT_DOUBLE_EQ(rows[3].speedup, 0.8);
  EXPECT_EQ(rows[0].note, "");
  EXPECT_FALSE(rows[1].scaled());
  EXPECT_TRUE(rows[2].scaled());
  EXPECT_DOUBLE_EQ(rows[2].estimated_full_seconds(), 40.0);
  EXPECT_THAT(rows[2].note, HasSubstr("×10"));
  EXPECT_THAT(rows[2].note, HasSubstr("40.0 s for all 100 numbers"));
}

TEST(ExperimentHelpersTest, FormatSeconds) {
  EXPECT_EQ(format_seconds(12.345), "12.3 s");
  EXPECT_EQ(format_seconds(1.0), "1.00 s");
  EXPECT_EQ(format_seconds(0.0456), "45.6 ms");
  EXPECT_EQ(format_seconds(0.000789), "789 µs");
}

TEST(MachineTest, CpuModelFromProcCpuinfo) {
  EXPECT_EQ(cpu_model_from("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n"),
            "AMD EPYC 7B13");
  EXPECT_EQ(cpu_model_from("processor : 0\n"), "unknown");
  const MachineInfo m = machine_info();
  EXPECT_GE(m.nproc, 1U);
  EXPECT_FALSE(m.compiler.empty());
  EXPECT_THAT(m.date, ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T.*Z"));
}

TEST(RegistryTest, ListsTheExperimentsInTheNotesOrder) {
  const std::vector<std::string> names = {"is_prime",    "is_prime_pool", "is_prime_redis",
                                          "fib_pool",    "sleep_pool",    "sleep_gather",
                                          "async_crawl", "serve_fanout",  "serve_is_prime"};
  ASSERT_EQ(experiments().size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(experiments()[i]->name(), names[i]);
    const Experiment* e = find_experiment(names[i]);
    ASSERT_NE(e, nullptr) << names[i];
    EXPECT_EQ(e, experiments()[i].get());
    EXPECT_FALSE(e->description().empty());
  }
  EXPECT_EQ(find_experiment("no_such_experiment"), nullptr);
  // Names are unique.
  for (const auto& a : experiments()) {
    int same = 0;
    for (const auto& b : experiments()) same += a->name() == b->name() ? 1 : 0;
    EXPECT_EQ(same, 1) << a->name();
  }
}

TEST_F(BenchTest, QuickRunWithoutPythonAtSeveralThreadCounts) {
  for (std::size_t n : kThreadCounts) {
    BenchConfig config;
    config.size = Size::kQuick;
    config.threads = static_cast<unsigned>(n);
    const BenchResult result = run_experiments({find_experiment("is_prime")}, config);
    EXPECT_TRUE(result.errors.empty());
    ASSERT_EQ(result.rows.size(), 2U) << n;
    const Row& serial = result.rows[0];
    const Row& threads = result.rows[1];
    EXPECT_EQ(serial.mode, "serial");
    EXPECT_TRUE(serial.baseline);
    EXPECT_EQ(threads.mode, "threads " + std::to_string(n));
    EXPECT_EQ(threads.workers, n);
    for (const Row& r : result.rows) {
      EXPECT_EQ(r.answer, "prime");
      EXPECT_TRUE(r.ok());
      EXPECT_EQ(r.items, 4U);
      EXPECT_EQ(r.full_items, 100U);
      EXPECT_GT(r.seconds, 0.0);
      EXPECT_GT(r.speedup, 0.0);
    }
    EXPECT_TRUE(result.ok());
  }
}

TEST_F(BenchTest, QuickRunWithPythonAgrees) {
  const auto python = find_python();
  if (!python) GTEST_SKIP() << "python3 not on PATH";
  BenchConfig config;
  config.size = Size::kQuick;
  config.threads = 2;
  config.python = python;
  const BenchResult result = run_experiments({find_experiment("is_prime")}, config);
  ASSERT_TRUE(result.errors.empty()) << result.errors.front();
  ASSERT_EQ(result.rows.size(), 4U);
  EXPECT_EQ(result.rows[2].mode, "python serial");
  EXPECT_EQ(result.rows[3].mode, "python threading 2");
  for (const Row& r : result.rows) {
    EXPECT_EQ(r.answer, result.rows[0].answer) << r.mode;
    EXPECT_TRUE(r.ok()) << r.mode;
  }
  EXPECT_EQ(result.rows[2].items, 1U);
  EXPECT_TRUE(result.rows[2].baseline);
  EXPECT_THAT(result.rows[2].note, HasSubstr("×100"));
  EXPECT_TRUE(result.ok());
}

// modes(rows) lists the rows' modes, in order.
std::vector<std::string> modes(const std::vector<Row>& rows) {
  std::vector<std::string> out;
  for (const Row& r : rows) out.push_back(r.mode);
  return out;
}

// quick_run(name, threads, python) runs one experiment in Size::kQuick.
BenchResult quick_run(const std::string& name, unsigned threads,
                      const std::optional<PythonInfo>& python = std::nullopt) {
  BenchConfig config;
  config.size = Size::kQuick;
  config.threads = threads;
  config.python = python;
  return run_experiments({find_experiment(name)}, config);
}

TEST_F(BenchTest, IsPrimePoolQuickRunAtSeveralThreadCounts) {
  for (std::size_t n : kThreadCounts) {
    const BenchResult result = quick_run("is_prime_pool", static_cast<unsigned>(n));
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    EXPECT_EQ(modes(result.rows), (std::vector<std::string>{"serial", "pool " + std::to_string(n),
                                                            "processes " + std::to_string(n)}));
    for (const Row& r : result.rows) {
      EXPECT_EQ(r.experiment, "is_prime_pool");
      EXPECT_EQ(r.language, "c++");
      EXPECT_EQ(r.answer, "prime") << r.mode;
      EXPECT_EQ(r.items, 4U);
      EXPECT_EQ(r.full_items, 100U);
      EXPECT_GT(r.speedup, 0.0);
    }
    EXPECT_TRUE(result.rows[0].baseline);
    EXPECT_EQ(result.rows[1].workers, n);
    EXPECT_EQ(result.rows[2].workers, n);
    EXPECT_TRUE(result.ok());
  }
}

// child_pids(): the processes whose parent is this one (zombies included), sorted.
std::vector<int> child_pids() {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(),
                                     [](unsigned char c) { return std::isdigit(c) != 0; }))
      continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t close = stat.rfind(')');  // after "pid (comm)": state, then ppid
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) out.push_back(std::stoi(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool redis_server_installed() { return ::access(kRedisServer, X_OK) == 0; }

TEST(IsPrimeRedisTest, ChunksizeIsAboutTenChunksPerWorker) {
  EXPECT_EQ(redis_chunksize(100, 1), 10U);
  EXPECT_EQ(redis_chunksize(100, 2), 5U);
  EXPECT_EQ(redis_chunksize(100, 3), 3U);
  EXPECT_EQ(redis_chunksize(kIsPrimeQuickCount, 2), 1U);  // never below 1
  EXPECT_EQ(redis_chunksize(100, 0), 10U);                // 0 workers counts as 1
}

TEST_F(BenchTest, IsPrimeRedisQuickRunMapsOverConcurWorkers) {
  if (!redis_server_installed()) GTEST_SKIP() << kRedisServer << " is not installed";
  const std::vector<int> children_before = child_pids();
  for (const unsigned n : {1U, 2U, 3U}) {
    BenchConfig config;
    config.size = Size::kQuick;
    config.threads = n;
    config.concur_executable = CONCUR_CLI_PATH;
    const BenchResult result = run_experiments({find_experiment("is_prime_redis")}, config);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    std::vector<std::string> expected = {"serial", "redis workers 1"};
    if (n != 1) expected.push_back("redis workers " + std::to_string(n));
    EXPECT_EQ(modes(result.rows), expected);
    for (const Row& r : result.rows) {
      EXPECT_EQ(r.experiment, "is_prime_redis");
      EXPECT_EQ(r.language, "c++");
      EXPECT_FALSE(r.skipped) << r.mode << ": " << r.note;
      EXPECT_EQ(r.answer, "prime") << r.mode;  // every result was checked
      EXPECT_TRUE(r.ok()) << r.mode;
      EXPECT_EQ(r.items, kIsPrimeQuickCount);  // is_prime_pool's --quick scaling
      EXPECT_EQ(r.full_items, 100U);
      EXPECT_GT(r.seconds, 0.0);
      EXPECT_GT(r.speedup, 0.0);
    }
    EXPECT_TRUE(result.rows[0].baseline);
    for (std::size_t i = 1; i < result.rows.size(); ++i) {
      EXPECT_FALSE(result.rows[i].baseline);
      EXPECT_EQ(result.rows[i].workers, i == 1 ? 1U : n);
      EXPECT_THAT(result.rows[i].note, HasSubstr("chunksize 1"));
    }
    EXPECT_THAT(result.rows.back().note,
                HasSubstr("no Python row: Celery/RQ are measured in bench/compare/dist"));
    EXPECT_TRUE(result.ok());
  }
  EXPECT_EQ(child_pids(), children_before);  // redis-server and every worker stopped and reaped
}

TEST_F(BenchTest, IsPrimeRedisSkipsItsRowsWithoutAConcurBinary) {
  BenchConfig config;
  config.size = Size::kQuick;
  config.threads = 2;  // concur_executable empty: not the concur binary
  const BenchResult result = run_experiments({find_experiment("is_prime_redis")}, config);
  ASSERT_TRUE(result.errors.empty()) << result.errors.front();
  EXPECT_EQ(modes(result.rows),
            (std::vector<std::string>{"serial", "redis workers 1", "redis workers 2"}));
  EXPECT_FALSE(result.rows[0].skipped);
  EXPECT_EQ(result.rows[0].answer, "prime");
  for (std::size_t i = 1; i < result.rows.size(); ++i) {
    const Row& r = result.rows[i];
    EXPECT_TRUE(r.skipped) << r.mode;
    EXPECT_EQ(r.answer, "skipped");
    EXPECT_THAT(r.note, HasSubstr(redis_server_installed() ? "skipped: no concur binary"
                                                           : "redis-server is missing"));
  }
  EXPECT_TRUE(result.ok());
}

TEST_F(BenchTest, IsPrimeRedisWorkerThatCannotStartIsAnErrorAndLeavesNothingRunning) {
  if (!redis_server_installed()) GTEST_SKIP() << kRedisServer << " is not installed";
  const std::vector<int> children_before = child_pids();
  BenchConfig config;
  config.size = Size::kQuick;
  config.threads = 2;
  config.concur_executable = "/bin/false";  // exits 1 at once: never registers
  const BenchResult result = run_experiments({find_experiment("is_prime_redis")}, config);
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_THAT(result.errors[0], HasSubstr("exited with status 1 before it registered"));
  ASSERT_EQ(result.rows.size(), 1U);  // the serial row is kept
  EXPECT_EQ(result.rows[0].mode, "serial");
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(child_pids(), children_before);  // redis-server stopped and reaped
}

TEST_F(BenchTest, FibPoolQuickRunAddsAPoolOfThreadsWhenNotThree) {
  for (std::size_t n : kThreadCounts) {
    const BenchResult result = quick_run("fib_pool", static_cast<unsigned>(n));
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    std::vector<std::string> expected = {"serial", "pool 3"};
    if (n != 3) expected.push_back("pool " + std::to_string(n));
    expected.push_back("processes 3");  // always the notes' ProcessPoolExecutor(3)
    EXPECT_EQ(modes(result.rows), expected);
    for (const Row& r : result.rows) {
      EXPECT_EQ(r.answer, "fib(25..29) correct") << r.mode;
      EXPECT_TRUE(r.ok());
      EXPECT_EQ(r.items, fib_calls(25, 30));
      EXPECT_EQ(r.full_items, fib_calls(25, 40));
      EXPECT_EQ(r.unit, "calls");
      EXPECT_THAT(r.note, HasSubstr("fib(25..29) only"));
      EXPECT_THAT(r.note, HasSubstr("fib(25..39)"));
    }
    EXPECT_EQ(result.rows[1].workers, 3U);
    EXPECT_EQ(result.rows.back().workers, 3U);
    EXPECT_TRUE(result.ok());
  }
}

TEST_F(BenchTest, SleepPoolQuickRunUsesTheNotesWorkerCounts) {
  const BenchResult result = quick_run("sleep_pool", 2);
  ASSERT_TRUE(result.errors.empty()) << result.errors.front();
  EXPECT_EQ(modes(result.rows), (std::vector<std::string>{"serial", "pool 3", "pool 30"}));
  for (const Row& r : result.rows) {
    EXPECT_EQ(r.answer, "30 × 2") << r.mode;
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.items, static_cast<std::size_t>(kSleepTasks));
    EXPECT_FALSE(r.scaled());
    EXPECT_THAT(r.note, HasSubstr("sleep(2) scaled to 10.0 ms"));
  }
  // Lower bounds only (STYLE.md rule 15): 30 sleeps of 10 ms, ten rounds, one round.
  EXPECT_GE(result.rows[0].seconds, 0.3);
  EXPECT_GE(result.rows[1].seconds, 0.1);
  EXPECT_GE(result.rows[2].seconds, 0.01);
  EXPECT_EQ(result.rows[2].workers, 30U);
  EXPECT_TRUE(result.ok());
}

TEST_F(BenchTest, SleepGatherQuickRunCountsEveryTask) {
  const BenchResult result = quick_run("sleep_gather", 2);
  ASSERT_TRUE(result.errors.empty()) << result.errors.front();
  EXPECT_EQ(modes(result.rows), (std::vector<std::string>{"serial", "coroutines 30"}));
  const Row& serial = result.rows[0];
  const Row& gathered = result.rows[1];
  // --quick: 50 ms sleeps; serial runs the 3 of 30 tasks that fit 0.2 s, gather all 30.
  EXPECT_TRUE(serial.baseline);
  EXPECT_EQ(serial.items, 3U);
  EXPECT_EQ(serial.answer, "3 tasks done");
  EXPECT_EQ(gathered.items, static_cast<std::size_t>(kGatherTasks));
  EXPECT_EQ(gathered.answer, "30 tasks done");
  EXPECT_EQ(gathered.workers, 30U);
  for (const Row& r : result.rows) {
    EXPECT_TRUE(r.ok()) << r.mode << ": " << r.answer;
    EXPECT_EQ(r.full_items, 30U);
    EXPECT_EQ(r.language, "c++");
    EXPECT_GT(r.speedup, 0.0);
    EXPECT_THAT(r.note, HasSubstr("sleep(1) scaled to 50.0 ms"));
  }
  // Lower bounds only (STYLE.md rule 15): three sleeps in turn; the 30 overlapping ones take one.
  EXPECT_GE(serial.seconds, 3 * 0.05);
  EXPECT_GE(gathered.seconds, 0.05);
  EXPECT_TRUE(result.ok());
}

// most_in_flight(note): the "≤ N in flight" an async_crawl row's note reports from the site.
int most_in_flight(const std::string& note) {
  std::smatch m;
  if (!std::regex_search(note, m, std::regex("≤ ([0-9]+) in flight"))) return -1;
  return std::stoi(m[1].str());
}

// paragraphs_counted(note): the "<N> <p> counted" of a producer/consumer row's note.
long paragraphs_counted(const std::string& note) {
  std::smatch m;
  if (!std::regex_search(note, m, std::regex("([0-9]+) <p> counted"))) return -1;
  return std::stol(m[1].str());
}

// expected_paragraphs(): the <p> of the 50 pages of the site, counted independently.
long expected_paragraphs() {
  long n = 0;
  for (int page = 1; page <= kCrawlPages; ++page) {
    const std::string html = blog::page(page, kCrawlPageBytes);
    for (std::size_t at = html.find("<p>"); at != std::string::npos;
         at = html.find("<p>", at + 1)) {
      ++n;
    }
  }
  return n;
}

TEST_F(BenchTest, AsyncCrawlQuickRunFetchesEveryPageWholeUnderTheCeiling) {
  const BenchResult result = quick_run("async_crawl", 2);
  ASSERT_TRUE(result.errors.empty()) << result.errors.front();
  ASSERT_EQ(modes(result.rows),
            (std::vector<std::string>{"serial", "threads 10", "producer/consumer",
                                      "coroutines (Semaphore 10)",
                                      "concur crawl (CONCURRENT_REQUESTS 10)"}));
  for (const Row& r : result.rows) {
    EXPECT_EQ(r.answer, "50 pages whole") << r.mode << ": " << r.note;
    EXPECT_TRUE(r.ok());
    EXPECT_FALSE(r.skipped);
    EXPECT_EQ(r.items, static_cast<std::size_t>(kCrawlPages));
    EXPECT_FALSE(r.scaled());
    EXPECT_EQ(r.unit, "pages");
    EXPECT_GT(r.speedup, 0.0);
    EXPECT_THAT(r.note, HasSubstr("site: 5.00 ms per page"));
    EXPECT_THAT(r.note, ::testing::Not(HasSubstr("failure")));
  }
  EXPECT_TRUE(result.rows[0].baseline);
  // Seen from the site's side: one request at a time serially, never more than the ceiling.
  EXPECT_EQ(most_in_flight(result.rows[0].note), 1);
  for (std::size_t i : {1U, 2U, 3U, 4U}) {
    EXPECT_GE(most_in_flight(result.rows[i].note), 1) << result.rows[i].note;
    EXPECT_LE(most_in_flight(result.rows[i].note), kCrawlLimit) << result.rows[i].note;
    // Lower bounds only: 50 delays of 5 ms in turn; at least five rounds of ten.
    EXPECT_GE(result.rows[i].seconds, 5 * 0.005) << result.rows[i].mode;
  }
  EXPECT_GE(result.rows[0].seconds, 50 * 0.005);
  EXPECT_EQ(result.rows[1].workers, 10U);
  EXPECT_EQ(result.rows[2].workers, 12U);  // 10 craw threads and 2 parse threads
  EXPECT_EQ(result.rows[3].workers, 10U);
  EXPECT_EQ(result.rows[4].workers, 10U);
  // The parse threads parsed every page (and each once); the crawler made the 50 requests and
  // no more (no robots.txt: ROBOTSTXT_OBEY is off).
  EXPECT_EQ(paragraphs_counted(result.rows[2].note), expected_paragraphs()) << result.rows[2].note;
  EXPECT_THAT(result.rows[4].note, HasSubstr("; 50 requests"));
  EXPECT_THAT(result.rows[4].note, HasSubstr("crawl::Crawler on libcurl/"));
  EXPECT_TRUE(result.ok());
}

// check_async_crawl_with_python(result): a quick async_crawl with Python rows: every row that ran
// fetched every page whole under the ceiling; only the scrapy row may be skipped, and then says
// why.
void check_async_crawl_with_python(const BenchResult& result) {
  ASSERT_EQ(modes(result.rows),
            (std::vector<std::string>{
                "serial", "threads 10", "producer/consumer", "coroutines (Semaphore 10)",
                "concur crawl (CONCURRENT_REQUESTS 10)", "python serial", "python threads 10",
                "python producer/consumer", "python asyncio (Semaphore 10)",
                "python scrapy (CONCURRENT_REQUESTS 10)"}));
  for (const Row& r : result.rows) {
    EXPECT_TRUE(r.ok()) << r.mode << ": " << r.answer;
    if (r.skipped) continue;
    EXPECT_EQ(r.answer, "50 pages whole") << r.mode << ": " << r.note;
    EXPECT_GE(most_in_flight(r.note), 1) << r.mode << ": " << r.note;
    EXPECT_LE(most_in_flight(r.note), kCrawlLimit) << r.mode;
  }
  for (std::size_t i = 0; i + 1 < result.rows.size(); ++i) {
    EXPECT_FALSE(result.rows[i].skipped) << result.rows[i].mode;
  }
  EXPECT_TRUE(result.rows[5].baseline);
  EXPECT_EQ(most_in_flight(result.rows[5].note), 1);
  EXPECT_THAT(result.rows[5].note, HasSubstr("urllib"));
  EXPECT_EQ(result.rows[7].workers, 12U);
  EXPECT_EQ(paragraphs_counted(result.rows[7].note), expected_paragraphs()) << result.rows[7].note;
  // The asyncio row says which client it used: aiohttp when importable, else asyncio streams.
  EXPECT_THAT(result.rows[8].note, ::testing::ContainsRegex("aiohttp|asyncio streams"));
  const Row& scrapy = result.rows[9];
  if (scrapy.skipped) {
    EXPECT_EQ(scrapy.answer, "skipped");
    EXPECT_THAT(scrapy.note, HasSubstr("skipped: scrapy is not importable"));
    EXPECT_EQ(scrapy.speedup, 0.0);
  } else {
    EXPECT_THAT(scrapy.note, HasSubstr("scrapy "));
    EXPECT_GT(scrapy.speedup, 0.0);
  }
  EXPECT_TRUE(result.ok());
}

TEST_F(BenchTest, CoroutineExperimentsQuickRunWithPythonAgree) {
  const auto python = find_python();
  if (!python) GTEST_SKIP() << "python3 not on PATH";
  {
    const BenchResult result = quick_run("sleep_gather", 2, python);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    EXPECT_EQ(modes(result.rows), (std::vector<std::string>{"serial", "coroutines 30",
                                                            "python serial", "python asyncio 30"}));
    EXPECT_TRUE(result.rows[2].baseline);
    EXPECT_EQ(result.rows[2].answer, "3 tasks done");
    EXPECT_EQ(result.rows[3].answer, "30 tasks done");
    EXPECT_GT(result.rows[3].speedup, 0.0);
    EXPECT_TRUE(result.ok());
  }
  {
    const BenchResult result = quick_run("async_crawl", 2, python);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    check_async_crawl_with_python(result);
  }
}

TEST_F(BenchTest, AsyncCrawlScrapyRowRunsWhereScrapyIsInstalled) {
  // The python3 on PATH may lack scrapy (its row is then skipped); Debian's has python3-scrapy.
  const auto python = find_python("/usr/bin/python3");
  if (!python) GTEST_SKIP() << "no /usr/bin/python3";
  if (run_capture({python->executable, "-I", "-c", "import scrapy"}).exit_code != 0) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import scrapy";
  }
  const BenchResult result = quick_run("async_crawl", 2, python);
  ASSERT_TRUE(result.errors.empty()) << result.errors.front();
  check_async_crawl_with_python(result);
  const Row& scrapy = result.rows.back();
  EXPECT_FALSE(scrapy.skipped) << scrapy.note;
  EXPECT_THAT(scrapy.note, HasSubstr("scrapy 2."));
}

TEST_F(BenchTest, PoolExperimentsQuickRunWithPythonAgree) {
  const auto python = find_python();
  if (!python) GTEST_SKIP() << "python3 not on PATH";
  struct Case {
    std::string name;
    std::vector<std::string> python_modes;
  };
  const std::vector<Case> cases = {
      {"is_prime_pool", {"python serial", "python pool 2", "python processes 2"}},
      {"fib_pool", {"python serial", "python pool 3", "python processes 3"}},
      {"sleep_pool", {"python serial", "python pool 3", "python pool 30"}},
  };
  for (const Case& c : cases) {
    const BenchResult result = quick_run(c.name, 2, python);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    std::vector<std::string> python_modes;
    for (const Row& r : result.rows) {
      EXPECT_TRUE(r.ok()) << c.name << " / " << r.mode << ": " << r.answer;
      if (r.language == "python") python_modes.push_back(r.mode);
    }
    EXPECT_EQ(python_modes, c.python_modes) << c.name;
    const Row& python_serial = result.rows[result.rows.size() - c.python_modes.size()];
    EXPECT_EQ(python_serial.mode, "python serial");
    EXPECT_TRUE(python_serial.baseline);
    EXPECT_EQ(python_serial.answer, result.rows[0].answer) << c.name;
    EXPECT_TRUE(result.ok()) << c.name;
  }
}

// kServeSleepSlack: how much shorter than its sleeps a fan-out page may seem (clock granularity);
// the sleeps are lower bounds of the page's time, so the checks below need no upper bound.
constexpr double kServeSleepSlack = 0.005;

// check_fanout(rows, first, prefix): rows[first] and rows[first + 1] are the serial and pooled
// pages of one server (modes prefixed by `prefix`), answered right, the serial page slower: at
// least the three quick sleeps one after another (60 ms), the pooled one at least the longest
// (30 ms) and shorter than the serial one — the notes' 0.6 s vs 0.3 s, scaled by 0.1.
void check_fanout(const std::vector<Row>& rows, std::size_t first, const std::string& prefix) {
  const Row& serial = rows.at(first);
  const Row& pooled = rows.at(first + 1);
  EXPECT_EQ(serial.mode, prefix + "serial page (/serial)");
  EXPECT_EQ(pooled.mode, prefix + "pooled page (/)");
  EXPECT_TRUE(serial.baseline);
  for (const Row& r : {serial, pooled}) {
    EXPECT_FALSE(r.skipped) << r.mode << ": " << r.note;
    EXPECT_TRUE(r.ok()) << r.mode << ": " << r.answer << "; " << r.note;
    // 3 sequential requests and 8 clients x 2: 19 responses, each the notes' JSON.
    EXPECT_EQ(r.answer, "19 × the notes' JSON") << r.mode << ": " << r.note;
    EXPECT_THAT(r.note, HasSubstr("median of 3 sequential requests"));
    EXPECT_THAT(r.note, HasSubstr("req/s"));
    EXPECT_THAT(r.note, HasSubstr("sleeps x0.1"));
  }
  EXPECT_GE(serial.seconds, 0.060 - kServeSleepSlack) << serial.note;
  EXPECT_GE(pooled.seconds, 0.030 - kServeSleepSlack) << pooled.note;
  EXPECT_GT(serial.seconds, pooled.seconds) << serial.note << " / " << pooled.note;
  EXPECT_GT(pooled.speedup, 1.0);
}

// check_is_prime(rows, first, prefix): the one-client and four-client rows of one server.
void check_is_prime(const std::vector<Row>& rows, std::size_t first, const std::string& prefix) {
  const Row& one = rows.at(first);
  const Row& many = rows.at(first + 1);
  EXPECT_EQ(one.mode, prefix + ", 1 client");
  EXPECT_EQ(many.mode, prefix + ", 4 clients");
  EXPECT_TRUE(one.baseline);
  EXPECT_EQ(one.answer, "3 × the expected JSON") << one.note;
  EXPECT_EQ(many.answer, "8 × the expected JSON") << many.note;
  for (const Row& r : {one, many}) {
    EXPECT_TRUE(r.ok()) << r.mode << ": " << r.note;
    EXPECT_EQ(r.workers, kServeProcesses);
    EXPECT_GT(r.seconds, 0.0);
    EXPECT_THAT(r.note, HasSubstr("10 primes near 1e9"));
  }
}

TEST_F(BenchTest, ServeExperimentsQuickRunWithoutPython) {
  {
    const BenchResult result = quick_run("serve_fanout", 2);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    ASSERT_EQ(result.rows.size(), 2U);
    check_fanout(result.rows, 0, "");
    EXPECT_TRUE(result.ok());
  }
  {
    const BenchResult result = quick_run("serve_is_prime", 2);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    ASSERT_EQ(result.rows.size(), 2U);
    check_is_prime(result.rows, 0, "process pool 2");
    EXPECT_TRUE(result.ok());
  }
}

TEST_F(BenchTest, ServeExperimentsQuickRunBesideFlaskAgree) {
  // Debian's python3 has flask and gunicorn (scripts/setup.sh); the pyenv one on PATH may not.
  const auto python = find_python("/usr/bin/python3");
  if (!python) GTEST_SKIP() << "no /usr/bin/python3";
  if (run_capture({python->executable, "-I", "-c", "import flask, gunicorn"}).exit_code != 0) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import flask and gunicorn";
  }
  {
    const BenchResult result = quick_run("serve_fanout", 2, python);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    ASSERT_EQ(result.rows.size(), 4U);
    check_fanout(result.rows, 0, "");
    check_fanout(result.rows, 2, "python ");
    EXPECT_THAT(result.rows[2].note, HasSubstr("gunicorn gthread 8 threads"));
    EXPECT_TRUE(result.ok());
  }
  {
    // The C++ and flask bodies are compared byte for byte by the experiment (an error if not).
    const BenchResult result = quick_run("serve_is_prime", 2, python);
    ASSERT_TRUE(result.errors.empty()) << result.errors.front();
    ASSERT_EQ(result.rows.size(), 4U);
    check_is_prime(result.rows, 0, "process pool 2");
    check_is_prime(result.rows, 2, "python gunicorn 2 workers");
    EXPECT_THAT(result.rows[2].note, HasSubstr("body byte-identical to concur's"));
    EXPECT_THAT(result.rows[3].note, HasSubstr("body byte-identical to concur's"));
    EXPECT_TRUE(result.ok());
  }
}

TEST_F(BenchTest, ServeExperimentsSkipTheFlaskRowsWithoutFlask) {
  // The pyenv python3 on PATH has no flask; when it has, there is nothing to skip here.
  const auto python = find_python();
  if (!python) GTEST_SKIP() << "python3 not on PATH";
  if (run_capture({python->executable, "-I", "-c", "import flask, gunicorn"}).exit_code == 0) {
    GTEST_SKIP() << python->executable << " can import flask and gunicorn";
  }
  const BenchResult result = quick_run("serve_fanout", 2, python);
  ASSERT_TRUE(result.errors.empty()) << result.errors.front();
  ASSERT_EQ(result.rows.size(), 4U);
  for (std::size_t i = 2; i < 4; ++i) {
    EXPECT_TRUE(result.rows[i].skipped) << result.rows[i].mode;
    EXPECT_THAT(result.rows[i].note,
                HasSubstr("skipped: " + python->executable + " cannot import"));
  }
  EXPECT_TRUE(result.ok());
}

TEST_F(BenchTest, PoolExperimentsWriteTheirRowsToJson) {
  const std::string path = ::testing::TempDir() + "concur_bench_pool_test.json";
  const std::vector<std::string> fields = {
      "experiment", "mode",   "language", "workers", "baseline",         "items",
      "full_items", "unit",   "scaled",   "seconds", "seconds_per_item", "estimated_full_seconds",
      "speedup",    "answer", "expected", "ok",      "skipped",          "note"};
  for (const std::string name :
       {"is_prime_pool", "fib_pool", "sleep_pool", "sleep_gather", "async_crawl"}) {
    std::remove(path.c_str());
    BenchOptions options;
    options.experiments = {name};
    options.quick = true;
    options.no_python = true;
    options.threads = 2;
    options.json_path = path;
    std::ostringstream out, err;
    ASSERT_EQ(run_bench(options, out, err), 0) << err.str();
    EXPECT_THAT(out.str(), HasSubstr(name));

    std::ifstream file(path);
    ASSERT_TRUE(file.good()) << name;
    const nlohmann::json j = nlohmann::json::parse(file);
    ASSERT_GE(j.at("rows").size(), 2U) << name;
    for (const auto& row : j.at("rows")) {
      for (const std::string& f : fields) EXPECT_TRUE(row.contains(f)) << name << ": " << f;
      EXPECT_EQ(row.at("experiment"), name);
      EXPECT_EQ(row.at("language"), "c++");
      EXPECT_TRUE(row.at("ok").get<bool>()) << row.dump();
      EXPECT_FALSE(row.at("skipped").get<bool>()) << row.dump();
      EXPECT_GT(row.at("seconds").get<double>(), 0.0);
      EXPECT_GT(row.at("speedup").get<double>(), 0.0);
    }
    EXPECT_EQ(j.at("rows")[0].at("mode"), "serial");
    EXPECT_TRUE(j.at("rows")[0].at("baseline").get<bool>());
    EXPECT_TRUE(j.at("ok").get<bool>());
  }
  std::remove(path.c_str());
}

TEST_F(BenchTest, FailingPythonKeepsTheCppRowsAndIsAnError) {
  BenchConfig config;
  config.size = Size::kQuick;
  config.threads = 2;
  config.python = PythonInfo{"/bin/false", "none"};  // exits 1: the Python rows cannot run
  const BenchResult result = run_experiments({find_experiment("is_prime")}, config);
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_THAT(result.errors[0], HasSubstr("is_prime: /bin/false exited with status 1"));
  ASSERT_EQ(result.rows.size(), 2U);
  EXPECT_EQ(result.rows[1].mode, "threads 2");
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(render_table(result), HasSubstr("error: is_prime"));
}

TEST_F(BenchTest, WrongAnswerFailsTheRun) {
  BenchResult result;
  Row row;
  row.experiment = "x";
  row.mode = "serial";
  row.answer = "not prime";
  row.expected = "prime";
  result.rows.push_back(row);
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(render_table(result), HasSubstr("not prime (WRONG: expected prime)"));
}

TEST_F(BenchTest, SkippedRowIsOkAndUntimed) {
  BenchResult result;
  Row base;
  base.experiment = "x";
  base.mode = "python serial";
  base.language = "python";
  base.baseline = true;
  base.items = 10;
  base.full_items = 10;
  base.unit = "items";
  base.seconds = 1.0;
  base.answer = base.expected = "10 done";
  Row skipped = base;
  skipped.mode = "python scrapy";
  skipped.baseline = false;
  skipped.seconds = 0.0;
  skipped.skipped = true;
  skipped.answer = "skipped";
  skipped.note = "skipped: scrapy is not importable";
  result.rows = {base, skipped};
  finalize_rows(result.rows);
  EXPECT_TRUE(result.rows[1].ok());
  EXPECT_EQ(result.rows[1].speedup, 0.0);
  EXPECT_TRUE(result.ok());
  const std::string table = render_table(result);
  EXPECT_THAT(table, ::testing::ContainsRegex("python scrapy +10 items +- +- +- +skipped"));
  EXPECT_THAT(table, ::testing::Not(HasSubstr("WRONG")));
  EXPECT_TRUE(to_json(result).at("rows")[1].at("skipped").get<bool>());
}

TEST_F(BenchTest, RunBenchQuickWritesTableAndValidJson) {
  const std::string path = ::testing::TempDir() + "concur_bench_test.json";
  std::remove(path.c_str());
  BenchOptions options;
  options.quick = true;
  options.no_python = true;
  options.threads = 2;
  options.json_path = path;
  options.concur_executable = CONCUR_CLI_PATH;  // is_prime_redis's workers
  std::ostringstream out, err;
  ASSERT_EQ(run_bench(options, out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("is_prime"));
  EXPECT_THAT(out.str(), HasSubstr("threads 2"));
  EXPECT_THAT(out.str(), HasSubstr("4 of 100 numbers"));
  EXPECT_THAT(out.str(), HasSubstr("answers: every row agrees"));

  std::ifstream file(path);
  ASSERT_TRUE(file.good());
  const nlohmann::json j = nlohmann::json::parse(file);  // throws on invalid JSON
  EXPECT_EQ(j.at("tool"), "concur bench");
  EXPECT_GE(j.at("machine").at("nproc").get<unsigned>(), 1U);
  EXPECT_TRUE(j.at("machine").contains("cpu_model"));
  EXPECT_TRUE(j.at("machine").contains("compiler"));
  EXPECT_TRUE(j.at("machine").contains("date"));
  EXPECT_EQ(j.at("config").at("size"), "quick");
  EXPECT_TRUE(j.at("config").at("python").is_null());
  // Every experiment ran: is_prime 2 rows, is_prime_pool 3, is_prime_redis 3 (serial, redis
  // workers 1 and 2; skipped without redis-server), fib_pool 4 (pool 3, pool 2 and processes 3),
  // sleep_pool 3, sleep_gather 2, async_crawl 5, serve_fanout 2, serve_is_prime 2.
  ASSERT_EQ(j.at("rows").size(), 26U);
  EXPECT_EQ(j.at("rows")[0].at("mode"), "serial");
  EXPECT_EQ(j.at("rows")[1].at("mode"), "threads 2");
  EXPECT_EQ(j.at("rows")[0].at("answer"), j.at("rows")[1].at("answer"));
  std::vector<std::string> seen;
  for (const auto& row : j.at("rows")) {
    const auto name = row.at("experiment").get<std::string>();
    if (seen.empty() || seen.back() != name) seen.push_back(name);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"is_prime", "is_prime_pool", "is_prime_redis",
                                            "fib_pool", "sleep_pool", "sleep_gather", "async_crawl",
                                            "serve_fanout", "serve_is_prime"}));
  EXPECT_TRUE(j.at("ok").get<bool>());
  std::remove(path.c_str());
}

TEST_F(BenchTest, RunBenchListsExperiments) {
  BenchOptions options;
  options.list = true;
  std::ostringstream out, err;
  EXPECT_EQ(run_bench(options, out, err), 0);
  for (const auto& e : experiments()) EXPECT_THAT(out.str(), HasSubstr(std::string(e->name())));
}

TEST_F(BenchTest, RunBenchRejectsUnknownExperiment) {
  BenchOptions options;
  options.experiments = {"nope"};
  options.no_json = true;
  std::ostringstream out, err;
  EXPECT_EQ(run_bench(options, out, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("unknown experiment 'nope'"));
}

TEST_F(BenchTest, RunBenchReportsUnwritableJson) {
  BenchOptions options;
  options.quick = true;
  options.no_python = true;
  options.threads = 1;
  options.json_path = "/nonexistent-dir/concur-bench.json";
  std::ostringstream out, err;
  EXPECT_EQ(run_bench(options, out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("cannot write the JSON report"));
}

// parse(args) parses a `concur bench ...` command line the way main.cpp does.
void parse(const std::vector<std::string>& args, BenchOptions& options) {
  CLI::App app;
  add_bench_command(app, options);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  app.parse(reversed);
}

TEST(BenchOptionsTest, ParsesAndValidates) {
  BenchOptions o;
  parse({"bench", "--quick", "--threads", "3", "--no-json", "is_prime"}, o);
  EXPECT_TRUE(o.quick);
  EXPECT_EQ(o.threads, 3U);
  EXPECT_TRUE(o.no_json);
  EXPECT_EQ(o.experiments, std::vector<std::string>{"is_prime"});

  BenchOptions bad;
  EXPECT_THROW(parse({"bench", "--threads", "0"}, bad), CLI::ValidationError);
  EXPECT_THROW(parse({"bench", "--threads", "-2"}, bad), CLI::ParseError);
  EXPECT_THROW(parse({"bench", "--python-budget", "0"}, bad), CLI::ValidationError);
  EXPECT_THROW(parse({"bench", "--quick", "--full"}, bad), CLI::ExcludesError);
  EXPECT_THROW(parse({"bench", "--json", "x.json", "--no-json"}, bad), CLI::ExcludesError);
}

TEST(PythonTest, RunCaptureCollectsStdoutAndStatus) {
  const CaptureResult r = run_capture({"sh", "-c", "echo hello; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_THROW((void)run_capture({"/nonexistent/program"}), std::exception);
}

TEST(PythonTest, MissingInterpreterIsNullopt) {
  EXPECT_FALSE(find_python("/nonexistent/python3").has_value());
  EXPECT_FALSE(find_python("concur-no-such-python").has_value());
}

TEST(PythonTest, RunPythonParsesJsonAndReportsFailures) {
  const auto python = find_python();
  if (!python) GTEST_SKIP() << "python3 not on PATH";
  const nlohmann::json j = run_python(
      *python, "import json, sys; print(json.dumps({'args': sys.argv[1:]}))", {"a", "b"});
  EXPECT_EQ(j.at("args"), (nlohmann::json{"a", "b"}));
  EXPECT_THROW((void)run_python(*python, "import sys; sys.exit(4)", {}), std::runtime_error);
  EXPECT_THROW((void)run_python(*python, "print('not json')", {}), std::runtime_error);
}

}  // namespace
