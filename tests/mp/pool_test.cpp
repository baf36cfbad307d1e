// tests/mp/pool_test.cpp — mp::Pool (concur/mp/pool.hpp). Reference: CPython's
// Lib/test/_test_multiprocessing.py _TestPool (apply, async + timeout, map with chunksizes,
// map_async callbacks, starmap, imap with next(timeout), imap_unordered, close/join/terminate,
// worker lifetime) and gh-66587 (a dead worker must never hang the pool). Every wait is bounded.
#include "concur/mp/pool.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "support/hook_support.hpp"

namespace concur {

// ---- Tasks

int square(int x) { return x * x; }
CONCUR_TASK(square);

int mul(int a, int b) { return a * b; }
CONCUR_TASK(mul);

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}
CONCUR_TASK(repeat);

int g_touched = 0;
void touch() { g_touched = 1; }
CONCUR_TASK(touch);

int sleep_then(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
CONCUR_TASK(sleep_then);

int fail_at_5(int x) {
  if (x == 5) throw ValueError("five");
  return x;
}
CONCUR_TASK(fail_at_5);

// sleep_or_fail(ms): fails at once for a negative ms, else sleeps ms and returns it.
int sleep_or_fail(int ms) {
  if (ms < 0) throw ValueError("negative");
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
CONCUR_TASK(sleep_or_fail);

// die(how): 0 SIGKILL (kill -9), 1 abort.
int die(int how) {
  if (how == 0) ::raise(SIGKILL);
  std::abort();
}
CONCUR_TASK(die);

int my_pid(int) { return static_cast<int>(::getpid()); }
CONCUR_TASK(my_pid);

int g_initialized = 0;
void init_worker() { g_initialized = 42; }
CONCUR_TASK(init_worker);
void init_with(int base, std::string suffix) {
  g_initialized = base + static_cast<int>(suffix.size());
}
CONCUR_TASK(init_with);
int read_initialized(int) { return g_initialized; }
CONCUR_TASK(read_initialized);

namespace {

using namespace std::chrono_literals;
using concur::testing::kGenerous;
using concur::testing::kShort;
using concur::testing::kSlack;
using mp::Pool;
using mp::PoolOptions;
constexpr auto kWait = 60s;

std::vector<int> iota_vec(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}
std::vector<int> squares(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i * i);
  return v;
}

class PoolTest : public concur::testing::HookCapturingTest {
 protected:
  void TearDown() override {
    EXPECT_TRUE(mp::active_children().empty());
    HookCapturingTest::TearDown();
  }
};

TEST_F(PoolTest, Apply) {
  Pool pool(PoolOptions{.processes = 2});
  EXPECT_EQ(pool.processes(), 2u);
  EXPECT_EQ(pool.apply(square, 5), 25);
  EXPECT_EQ(pool.apply(mul, 6, 7), 42);
  EXPECT_EQ(pool.apply(repeat, "ab", 3), "ababab");
  pool.apply(touch);
  pool.close();
  pool.join();
}

TEST_F(PoolTest, DefaultProcessesIsCpuCount) {
  Pool pool;
  EXPECT_EQ(pool.processes(), static_cast<std::size_t>(mp::cpu_count()));
}

TEST_F(PoolTest, ApplyAsyncGetTimeout) {
  Pool pool(PoolOptions{.processes = 2});
  mp::AsyncResult<int> fast = pool.apply_async(square, 10);
  EXPECT_EQ(fast.get(kWait), 100);
  mp::AsyncResult<int> slow = pool.apply_async(sleep_then, 500);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((void)slow.get(kShort), TimeoutError);
  EXPECT_GE(std::chrono::steady_clock::now() - start, kShort - kSlack);
  EXPECT_FALSE(slow.ready());
  EXPECT_THROW((void)slow.successful(), ValueError);
  EXPECT_FALSE(slow.wait(1ms));
  EXPECT_TRUE(slow.wait(kWait));
  EXPECT_TRUE(slow.ready());
  EXPECT_TRUE(slow.successful());
  EXPECT_EQ(slow.get(), 500);
  mp::AsyncResult<void> v = pool.apply_async(touch);
  v.get(kWait);
  EXPECT_TRUE(v.successful());
}

TEST_F(PoolTest, MapWithChunksizes) {
  for (std::size_t processes : {1u, 2u, 3u, 8u}) {
    Pool pool(PoolOptions{.processes = processes});
    EXPECT_EQ(pool.map(square, iota_vec(50)), squares(50)) << processes;
    for (std::size_t chunksize : {0u, 1u, 3u, 7u, 100u})
      EXPECT_EQ(pool.map(square, iota_vec(23), chunksize), squares(23)) << chunksize;
    EXPECT_TRUE(pool.map(square, std::vector<int>{}).empty());
    EXPECT_EQ(pool.map(square, std::views::iota(0, 10)), squares(10));
    pool.close();
    pool.join();
  }
}

TEST_F(PoolTest, MapAsyncCallback) {
  Pool pool(PoolOptions{.processes = 2});
  std::mutex mu;
  std::vector<std::vector<int>> calls;
  std::vector<std::exception_ptr> errors;
  mp::AsyncOptions<std::vector<int>> options{.callback =
                                                 [&](const std::vector<int>& v) {
                                                   std::scoped_lock lock(mu);
                                                   calls.push_back(v);
                                                 },
                                             .error_callback =
                                                 [&](std::exception_ptr e) {
                                                   std::scoped_lock lock(mu);
                                                   errors.push_back(e);
                                                 }};
  auto r = pool.map_async(options, square, iota_vec(10), 3);
  ASSERT_TRUE(r.wait(kWait));
  {  // Python: the callback has run once the result is ready.
    std::scoped_lock lock(mu);
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0], squares(10));
    EXPECT_TRUE(errors.empty());
  }
  EXPECT_EQ(r.get(), squares(10));

  auto failed = pool.map_async(options, fail_at_5, iota_vec(10), 2);
  ASSERT_TRUE(failed.wait(kWait));
  EXPECT_FALSE(failed.successful());
  EXPECT_THROW((void)failed.get(), RemoteError);
  {
    std::scoped_lock lock(mu);
    EXPECT_EQ(calls.size(), 1u);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_THROW(std::rethrow_exception(errors[0]), RemoteError);
  }

  // Python: an empty map_async is ready at once and calls no callback.
  auto empty = pool.map_async(options, square, std::vector<int>{});
  EXPECT_TRUE(empty.ready());
  EXPECT_TRUE(empty.get().empty());
  std::scoped_lock lock(mu);
  EXPECT_EQ(calls.size(), 1u);
}

// Python's MapResult: a failed chunk is reported once every chunk is done (first error kept).
TEST_F(PoolTest, MapAsyncFailureWaitsForEveryChunk) {
  Pool pool(PoolOptions{.processes = 2});
  std::atomic<int> errors{0};
  auto r = pool.map_async({.error_callback = [&](std::exception_ptr) { ++errors; }}, sleep_or_fail,
                          std::vector<int>{-1, 400}, 1);
  EXPECT_FALSE(r.wait(100ms));  // the 400 ms chunk is still running
  EXPECT_EQ(errors.load(), 0);
  EXPECT_THROW((void)r.get(kWait), RemoteError);
  EXPECT_EQ(errors.load(), 1);
}

TEST_F(PoolTest, Starmap) {
  Pool pool(PoolOptions{.processes = 2});
  std::vector<std::tuple<int, int>> pairs;
  std::vector<int> expected;
  for (int i = 0; i < 10; ++i) {
    pairs.emplace_back(i, i + 1);
    expected.push_back(i * (i + 1));
  }
  EXPECT_EQ(pool.starmap(mul, pairs), expected);
  EXPECT_EQ(pool.starmap(mul, pairs, 3), expected);
  std::vector<int> seen;
  auto r =
      pool.starmap_async({.callback = [&](const std::vector<int>& v) { seen = v; }}, mul, pairs, 4);
  EXPECT_EQ(r.get(kWait), expected);
  EXPECT_EQ(seen, expected);  // the callback ran before the result was ready
  EXPECT_TRUE(pool.starmap(mul, std::vector<std::tuple<int, int>>{}).empty());
}

TEST_F(PoolTest, ImapInOrderWithNextTimeout) {
  Pool pool(PoolOptions{.processes = 2});
  auto it = pool.imap(sleep_then, std::vector<int>{400, 1});
  EXPECT_THROW((void)it.next(kShort), TimeoutError);
  EXPECT_EQ(it.next(kWait), 400);
  EXPECT_EQ(it.next(kWait), 1);
  EXPECT_EQ(it.next(kWait), std::nullopt);
  EXPECT_EQ(it.next(), std::nullopt);

  for (std::size_t chunksize : {1u, 3u, 100u}) {
    std::vector<int> got;
    for (int v : pool.imap(square, iota_vec(20), chunksize)) got.push_back(v);
    EXPECT_EQ(got, squares(20)) << chunksize;
  }
  EXPECT_THROW((void)pool.imap(square, iota_vec(3), 0), ValueError);
  auto none = pool.imap(square, std::vector<int>{});
  EXPECT_EQ(none.next(kWait), std::nullopt);
}

TEST_F(PoolTest, ImapErrorAtItsPlaceThenGoesOn) {
  Pool pool(PoolOptions{.processes = 2});
  auto it = pool.imap(fail_at_5, iota_vec(10));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(it.next(kWait), i);
  EXPECT_THROW((void)it.next(kWait), RemoteError);
  for (int i = 6; i < 10; ++i) EXPECT_EQ(it.next(kWait), i);
  EXPECT_EQ(it.next(kWait), std::nullopt);
}

TEST_F(PoolTest, ImapUnordered) {
  Pool pool(PoolOptions{.processes = 2});
  for (std::size_t chunksize : {1u, 3u}) {
    std::multiset<int> got;
    for (int v : pool.imap_unordered(square, iota_vec(20), chunksize)) got.insert(v);
    const auto want = squares(20);
    EXPECT_EQ(got, std::multiset<int>(want.begin(), want.end()));
  }
  // Completion order: the short task finishes first.
  auto it = pool.imap_unordered(sleep_then, std::vector<int>{600, 1});
  EXPECT_EQ(it.next(kWait), 1);
  EXPECT_EQ(it.next(kWait), 600);
  EXPECT_EQ(it.next(kWait), std::nullopt);
}

TEST_F(PoolTest, CloseThenJoinFinishesQueuedWork) {
  Pool pool(PoolOptions{.processes = 2});
  EXPECT_THROW(pool.join(), ValueError);  // Python: join() of a running pool
  std::vector<mp::AsyncResult<int>> results;
  for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(sleep_then, 20 + i));
  pool.close();
  EXPECT_THROW((void)pool.apply_async(square, 1), ValueError);
  EXPECT_THROW((void)pool.apply(square, 1), ValueError);
  EXPECT_THROW((void)pool.map(square, iota_vec(3)), ValueError);
  EXPECT_THROW((void)pool.imap(square, iota_vec(3)), ValueError);
  EXPECT_THROW((void)pool.starmap_async(mul, std::vector<std::tuple<int, int>>{{1, 2}}),
               ValueError);
  pool.join();
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(results[static_cast<std::size_t>(i)].ready());
    EXPECT_EQ(results[static_cast<std::size_t>(i)].get(), 20 + i);
  }
  pool.close();  // idempotent
  pool.join();
}

TEST_F(PoolTest, TerminateStopsRunningAndQueuedWork) {
  Pool pool(PoolOptions{.processes = 2});
  EXPECT_EQ(pool.apply(square, 2), 4);  // workers are up
  std::vector<mp::AsyncResult<int>> results;
  for (int i = 0; i < 20; ++i) results.push_back(pool.apply_async(sleep_then, 30000));
  std::this_thread::sleep_for(200ms);  // the first two are running
  const auto start = std::chrono::steady_clock::now();
  pool.terminate();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3 * kGenerous);
  int broken = 0;
  int cancelled = 0;
  for (auto& r : results) {
    ASSERT_TRUE(r.ready());
    try {
      (void)r.get();
      ADD_FAILURE() << "a 30 s task finished";
    } catch (const BrokenProcessPool&) {
      ++broken;
    } catch (const CancelledError&) {
      ++cancelled;
    }
  }
  EXPECT_GE(broken, 1);
  EXPECT_EQ(broken + cancelled, 20);
  EXPECT_TRUE(pool.worker_pids().empty());
  EXPECT_THROW((void)pool.apply_async(square, 1), ValueError);
  pool.join();       // allowed after terminate
  pool.terminate();  // idempotent
}

TEST_F(PoolTest, DestructorTerminates) {
  mp::AsyncResult<int> running;
  mp::AsyncResult<int> queued;
  const auto start = std::chrono::steady_clock::now();
  {
    Pool pool(PoolOptions{.processes = 1});
    EXPECT_EQ(pool.apply(square, 3), 9);
    running = pool.apply_async(sleep_then, 30000);
    queued = pool.apply_async(sleep_then, 30000);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3 * kGenerous);
  EXPECT_THROW((void)running.get(kWait), BrokenProcessPool);
  EXPECT_TRUE(queued.ready());
  EXPECT_THROW((void)queued.get(), Error);  // cancelled, or killed if it had reached the worker
}

TEST_F(PoolTest, TaskExceptionIsRemoteError) {
  Pool pool(PoolOptions{.processes = 2});
  try {
    (void)pool.apply(fail_at_5, 5);
    ADD_FAILURE() << "no exception";
  } catch (const RemoteError& e) {
    EXPECT_NE(e.type_name().find("ValueError"), std::string::npos);
    EXPECT_EQ(e.message(), "five");
  }
  std::exception_ptr seen;
  auto r =
      pool.apply_async({.error_callback = [&](std::exception_ptr e) { seen = e; }}, fail_at_5, 5);
  ASSERT_TRUE(r.wait(kWait));
  EXPECT_FALSE(r.successful());
  EXPECT_THROW((void)r.get(), RemoteError);
  ASSERT_TRUE(seen);
  EXPECT_THROW(std::rethrow_exception(seen), RemoteError);
  EXPECT_THROW((void)pool.map(fail_at_5, iota_vec(10)), RemoteError);
  EXPECT_EQ(pool.apply(square, 4), 16);  // the pool carries on
}

// gh-66587: a worker killed (kill -9) or aborting while 100 tasks are queued never hangs the
// pool; exactly its task fails with BrokenProcessPool.
TEST_F(PoolTest, WorkerDeathFailsOnlyItsTask) {
  for (int how : {0, 1}) {
    Pool pool(PoolOptions{.processes = 2});
    std::vector<mp::AsyncResult<int>> results;
    for (int i = 0; i < 100; ++i)
      results.push_back(i == 30 ? pool.apply_async(die, how) : pool.apply_async(square, i));
    for (int i = 0; i < 100; ++i) {
      auto& r = results[static_cast<std::size_t>(i)];
      ASSERT_TRUE(r.wait(kWait)) << "task " << i << " never settled";
      if (i == 30)
        EXPECT_THROW((void)r.get(), BrokenProcessPool);
      else
        EXPECT_EQ(r.get(), i * i);
    }
    EXPECT_EQ(pool.map(square, iota_vec(10)), squares(10));  // the pool carries on
    pool.close();
    pool.join();
  }
}

TEST_F(PoolTest, WorkerDeathInMapFailsTheMap) {
  Pool pool(PoolOptions{.processes = 2});
  std::exception_ptr seen;
  auto r = pool.map_async({.error_callback = [&](std::exception_ptr e) { seen = e; }}, die,
                          std::vector<int>{0});
  EXPECT_THROW((void)r.get(kWait), BrokenProcessPool);
  EXPECT_TRUE(seen);
  auto it = pool.imap(die, std::vector<int>{0});
  EXPECT_THROW((void)it.next(kWait), BrokenProcessPool);
  EXPECT_EQ(it.next(kWait), std::nullopt);
}

TEST_F(PoolTest, MaxTasksPerChildUsesFreshWorkers) {
  Pool pool(PoolOptions{.processes = 2, .maxtasksperchild = 1});
  std::vector<mp::AsyncResult<int>> results;
  for (int i = 0; i < 6; ++i) results.push_back(pool.apply_async(my_pid, i));
  std::set<int> pids;
  for (auto& r : results) pids.insert(r.get(kWait));
  EXPECT_EQ(pids.size(), 6u);
  pool.close();
  pool.join();
}

TEST_F(PoolTest, Initializer) {
  Pool pool(PoolOptions{.processes = 2, .initializer = init_worker});
  EXPECT_EQ(pool.map(read_initialized, iota_vec(4)), (std::vector<int>{42, 42, 42, 42}));
}

TEST_F(PoolTest, InitializerWithInitargs) {
  // Pool(2, initializer=init_with, initargs=(40, "ab"))
  Pool pool(PoolOptions{.processes = 2, .initializer = {init_with, 40, "ab"}});
  EXPECT_EQ(pool.map(read_initialized, iota_vec(4)), (std::vector<int>{42, 42, 42, 42}));
}

TEST_F(PoolTest, CallbacksRunInTheResultThread) {
  Pool pool(PoolOptions{.processes = 1});
  std::thread::id where;
  auto r = pool.apply_async({.callback = [&](const int&) { where = std::this_thread::get_id(); }},
                            sleep_then, 200);
  EXPECT_EQ(r.get(kWait), 200);
  EXPECT_NE(where, std::thread::id());
  EXPECT_NE(where, std::this_thread::get_id());
}

// ---- A callback waiting for its own pool (Python's Pool hangs in both cases)

// Bounds the waits inside callbacks: a regression (the callback waiting on a result only its own
// thread could deliver) then fails with TimeoutError instead of hanging the test.
constexpr auto kInCallback = 20s;

TEST_F(PoolTest, ACallbackMayWaitForResultsAFreeWorkerComputes) {
  Pool pool(PoolOptions{.processes = 1});
  std::mutex mu;
  std::vector<int> seen;
  std::string error;
  auto r = pool.apply_async(
      {.callback =
           [&](const int&) {
             try {
               // The worker is free: each task is sent at once, and read here.
               const int applied = pool.apply_async(square, 7).get(kInCallback);
               const std::vector<int> mapped = pool.map_async(square, iota_vec(5)).get(kInCallback);
               auto it = pool.imap(square, iota_vec(3));
               std::vector<int> imapped;
               while (auto v = it.next(kInCallback)) imapped.push_back(*v);
               std::scoped_lock lock(mu);
               seen.push_back(applied);
               seen.insert(seen.end(), mapped.begin(), mapped.end());
               seen.insert(seen.end(), imapped.begin(), imapped.end());
             } catch (const std::exception& e) {
               std::scoped_lock lock(mu);
               error = e.what();
             }
           }},
      sleep_then, 100);
  EXPECT_EQ(r.get(kWait), 100);  // ready once the callback returned
  std::scoped_lock lock(mu);
  EXPECT_EQ(error, "");
  EXPECT_EQ(seen, (std::vector<int>{49, 0, 1, 4, 9, 16, 0, 1, 4}));
  EXPECT_EQ(pool.apply(square, 2), 4);
}

TEST_F(PoolTest, ACallbackWaitingForAQueuedTaskIsADeadlockError) {
  Pool pool(PoolOptions{.processes = 1});
  std::atomic<int> deadlocks{0};
  std::string error;
  auto first =
      pool.apply_async({.callback =
                            [&](const int&) {
                              // The worker holds `second`, `third` waits in the queue, and so does
                              // anything new: only this thread would send it.
                              try {
                                (void)pool.apply_async(square, 4).get(kInCallback);
                              } catch (const DeadlockError&) {
                                ++deadlocks;
                              } catch (const std::exception& e) {
                                error = e.what();
                              }
                              try {
                                (void)pool.apply_async(square, 5).wait(kInCallback);
                              } catch (const DeadlockError&) {
                                ++deadlocks;
                              }
                              try {
                                (void)pool.map_async(square, iota_vec(3)).wait(kInCallback);
                              } catch (const DeadlockError&) {
                                ++deadlocks;
                              }
                            }},
                       sleep_then, 100);
  auto second = pool.apply_async(sleep_then, 100);
  auto third = pool.apply_async(square, 3);
  EXPECT_EQ(first.get(kWait), 100);
  EXPECT_EQ(deadlocks.load(), 3) << error;
  EXPECT_EQ(second.get(kWait), 100);  // the pool carries on
  EXPECT_EQ(third.get(kWait), 9);
  EXPECT_EQ(pool.apply(square, 6), 36);
}

TEST_F(PoolTest, CallbackExceptionsGoToExcepthook) {
  expect_reports(3);
  Pool pool(PoolOptions{.processes = 2});
  auto a =
      pool.apply_async({.callback = [](const int&) { throw RuntimeError("callback"); }}, square, 3);
  EXPECT_EQ(a.get(kWait), 9);  // the value is still delivered
  auto b = pool.apply_async(
      {.error_callback = [](std::exception_ptr) { throw RuntimeError("error_callback"); }},
      fail_at_5, 5);
  EXPECT_THROW((void)b.get(kWait), RemoteError);
  auto c = pool.map_async(
      {.callback = [](const std::vector<int>&) { throw RuntimeError("map callback"); }}, square,
      iota_vec(5));
  EXPECT_EQ(c.get(kWait), squares(5));
  EXPECT_EQ(pool.apply(square, 7), 49);  // the pool carries on
  const auto got = reports();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_NE(got[0].message.find("callback"), std::string::npos);
}

TEST_F(PoolTest, ConcurrentSubmittersAndClose) {
  Pool pool(PoolOptions{.processes = 2});
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        try {
          auto r = pool.apply_async(square, t * 100 + i);
          if (r.get(kWait) == (t * 100 + i) * (t * 100 + i)) ++ok;
        } catch (const ValueError&) {
          ++refused;  // submitted after close()
        }
      }
    });
  std::this_thread::sleep_for(20ms);
  pool.close();
  for (auto& th : threads) th.join();
  pool.join();
  EXPECT_EQ(ok.load() + refused.load(), 100);
}

TEST_F(PoolTest, UnregisteredTaskIsRejected) {
  Pool pool(PoolOptions{.processes = 1});
  EXPECT_THROW((void)pool.apply_async(
                   +[](int x) { return x; }, 1),
               UsageError);
  EXPECT_EQ(pool.apply(square, 2), 4);
}

}  // namespace
}  // namespace concur
