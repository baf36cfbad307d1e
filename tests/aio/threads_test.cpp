// Tests for include/concur/aio/threads.hpp: to_thread, run_coroutine_threadsafe (result,
// exception, cancellation from the calling thread, a closed loop), LoopGroup (round-robin,
// loops on their own threads, destruction with pending tasks), run_threads, Runner.
#include "concur/aio/threads.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "concur/sync/event.hpp"
#include "support/hook_support.hpp"
#include "support/test_support.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

class AioThreadsTest : public HookCapturingTest {};

aio::Task<int> value_after(int v, std::chrono::milliseconds d) {
  co_await aio::sleep(d);
  co_return v;
}

TEST_F(AioThreadsTest, ToThreadRunsOffTheLoopAndTheLoopKeepsRunning) {
  auto main = []() -> aio::Task<void> {
    int ticks = 0;
    aio::Task<void> ticker = aio::create_task([](int& n) -> aio::Task<void> {
      for (;;) {
        co_await aio::sleep(1ms);
        ++n;
      }
    }(ticks));
    const auto loop_thread = std::this_thread::get_id();
    const auto other = co_await aio::to_thread([] {
      std::this_thread::sleep_for(30ms);  // blocking, like the notes' time.sleep
      return std::this_thread::get_id();
    });
    EXPECT_NE(other, loop_thread);
    EXPECT_GT(ticks, 2);
    ticker.cancel();
  };
  aio::run(main());
}

TEST_F(AioThreadsTest, RunCoroutineThreadsafeReturnsAFuture) {
  aio::LoopGroup group(1);
  Future<int> f = aio::run_coroutine_threadsafe(value_after(11, 5ms), group.loop());
  EXPECT_EQ(f.result(kGenerous), 11);
  Future<int> g = aio::run_coroutine_threadsafe(
      []() -> aio::Task<int> {
        co_await aio::sleep(1ms);
        throw ValueError("inside the loop");
      }(),
      group.loop());
  EXPECT_THROW(g.result(kGenerous), ValueError);
}

TEST_F(AioThreadsTest, CancellingTheFutureCancelsTheTask) {
  aio::LoopGroup group(1);
  std::atomic<bool> cancelled{false};
  Future<int> f = aio::run_coroutine_threadsafe(
      [](std::atomic<bool>& flag) -> aio::Task<int> {
        try {
          co_await aio::sleep(10s);
        } catch (const CancelledError&) {
          flag = true;
          throw;
        }
        co_return 0;
      }(cancelled),
      group.loop());
  std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(wait_until([&] { return cancelled.load(); })) << "the task saw the cancellation";
}

TEST_F(AioThreadsTest, RunCoroutineThreadsafeOnAClosedLoopThrows) {
  aio::Loop loop;
  loop.close();
  expect_reports(1);  // the coroutine never ran
  EXPECT_THROW((void)aio::run_coroutine_threadsafe(value_after(1, 1ms), loop), RuntimeError);
}

TEST_F(AioThreadsTest, LoopGroupSpreadsSubmissionsOverItsThreads) {
  aio::LoopGroup group(3);
  EXPECT_EQ(group.max_workers(), 3U);
  std::vector<Future<std::thread::id>> fs;
  for (int i = 0; i < 30; ++i)
    fs.push_back(group.submit([] { return std::this_thread::get_id(); }));
  std::set<std::thread::id> seen;
  for (auto& f : fs) seen.insert(f.result(kGenerous));
  EXPECT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen.count(std::this_thread::get_id()), 0U);
}

// shutdown(cancel_futures = true) while the loop runs one of several submissions that reached it
// together (one drain): the others are cancelled and never run, as queued tasks of a pool.
TEST_F(AioThreadsTest, ShutdownCancelFuturesCancelsSubmissionsQueuedBehindTheRunningOne) {
  aio::LoopGroup group(1);
  Event holding;
  Event hold;
  // Hold the loop so that every submission below reaches it in one drain.
  group.loop().call_soon_threadsafe([&] {
    holding.set();
    (void)hold.wait(kGenerous);
  });
  ASSERT_TRUE(holding.wait(kGenerous));
  Event started;
  Event gate;
  std::atomic<int> ran{0};
  Future<int> first = group.submit([&] {
    started.set();
    (void)gate.wait(kGenerous);
    return -1;
  });
  std::vector<Future<int>> rest;
  for (int i = 0; i < 9; ++i) {
    rest.push_back(group.submit([&ran, i] {
      ran.fetch_add(1);
      return i;
    }));
  }
  hold.set();
  ASSERT_TRUE(started.wait(kGenerous));
  group.shutdown(false, true);
  gate.set();
  EXPECT_EQ(first.result(kGenerous), -1);
  for (auto& f : rest) EXPECT_THROW((void)f.result(kGenerous), CancelledError);
  group.shutdown(true);
  EXPECT_EQ(ran.load(), 0);
}

TEST_F(AioThreadsTest, DestroyingALoopGroupCancelsItsTasks) {
  std::atomic<bool> cleaned{false};
  Future<int> f;
  {
    aio::LoopGroup group(2);
    f = aio::run_coroutine_threadsafe(
        [](std::atomic<bool>& flag) -> aio::Task<int> {
          try {
            co_await aio::sleep(10s);
          } catch (const CancelledError&) {
            flag = true;
            throw;
          }
          co_return 0;
        }(cleaned),
        group.loop(1));
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(cleaned.load());
  EXPECT_TRUE(f.done());
  EXPECT_TRUE(f.cancelled());
}

TEST_F(AioThreadsTest, RunThreadsRunsOneLoopPerThread) {
  std::mutex mu;
  std::set<std::thread::id> threads;
  aio::run_threads(3, [&](std::size_t i) -> aio::Task<void> {
    co_await aio::sleep(std::chrono::milliseconds(5 * i));
    std::scoped_lock lock(mu);
    threads.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(threads.size(), 3U);
}

TEST_F(AioThreadsTest, RunThreadsReportsFailures) {
  EXPECT_THROW(aio::run_threads(2,
                                [](std::size_t i) -> aio::Task<void> {
                                  co_await aio::sleep(1ms);
                                  if (i == 1) throw ValueError("loop 1");
                                }),
               ValueError);
  EXPECT_THROW(aio::run_threads(2,
                                [](std::size_t) -> aio::Task<void> {
                                  co_await aio::sleep(1ms);
                                  throw ValueError("every loop");
                                }),
               ExceptionGroup);
}

TEST_F(AioThreadsTest, RunnerKeepsOneLoopForSeveralRuns) {
  aio::Runner runner;
  aio::Loop* first = nullptr;
  EXPECT_EQ(runner.run(value_after(1, 1ms)), 1);
  first = &runner.get_loop();
  EXPECT_EQ(runner.run(value_after(2, 1ms)), 2);
  EXPECT_EQ(&runner.get_loop(), first);
  runner.close();
  EXPECT_THROW((void)runner.get_loop(), RuntimeError);
}

}  // namespace
}  // namespace concur::testing
