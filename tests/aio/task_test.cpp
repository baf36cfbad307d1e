// Tests for include/concur/aio/task.hpp and loop.hpp: running coroutines (run, Loop), tasks
// (create_task, result, exception, names, done-callbacks, current_task, all_tasks), cancellation
// (CPython test_asyncio/test_tasks.py: cancel at a suspension point, before the first step, of an
// awaited task, cancelling()/uncancel(), a task that catches the cancellation), lost-exception and
// unawaited-coroutine reports, sleep, call_soon/call_later/call_at, the cross-thread entry points
// and awaiting concur::Future.
#include "concur/aio/task.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/streams.hpp"
#include "concur/errors.hpp"
#include "concur/thread_pool.hpp"
#include "support/aio_support.hpp"
#include "support/hook_support.hpp"
#include "support/process_support.hpp"
#include "support/test_support.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

class AioTaskTest : public HookCapturingTest {};

aio::Task<int> answer() { co_return 42; }
aio::Task<int> add(int a, int b) {
  co_await aio::sleep(0ms);
  co_return a + b;
}
aio::Task<void> fail(std::string what) {
  co_await aio::sleep(1ms);
  throw std::runtime_error(what);
}

TEST_F(AioTaskTest, RunReturnsTheMainCoroutinesValue) {
  EXPECT_EQ(aio::run(answer()), 42);
  EXPECT_EQ(aio::run(add(2, 3)), 5);
}

TEST_F(AioTaskTest, RunRethrowsTheMainCoroutinesException) {
  EXPECT_THROW(aio::run(fail("boom")), std::runtime_error);
}

TEST_F(AioTaskTest, AwaitingACoroutineRunsItInline) {
  auto main = []() -> aio::Task<int> {
    const aio::TaskRef me = aio::current_task();
    auto inner = [&]() -> aio::Task<int> {
      EXPECT_TRUE(aio::current_task() == me) << "an awaited coroutine runs in the awaiting task";
      co_await aio::sleep(1ms);
      co_return 7;
    };
    const int a = co_await inner();
    const int b = co_await add(a, 1);
    co_return a * 10 + b;
  };
  EXPECT_EQ(aio::run(main()), 78);
}

TEST_F(AioTaskTest, CreateTaskRunsConcurrentlyAndAwaitReturnsItsResult) {
  auto main = []() -> aio::Task<int> {
    std::vector<int> order;
    auto worker = [&](int id, std::chrono::milliseconds d) -> aio::Task<int> {
      co_await aio::sleep(d);
      order.push_back(id);
      co_return id;
    };
    aio::Task<int> a = aio::create_task(worker(1, 30ms));
    aio::Task<int> b = aio::create_task(worker(2, 10ms));
    EXPECT_FALSE(a.done());
    const int rb = co_await b;
    const int ra = co_await a;
    EXPECT_EQ((std::vector<int>{2, 1}), order);
    EXPECT_TRUE(a.done());
    EXPECT_EQ(a.result(), 1);
    co_return ra * 10 + rb;
  };
  EXPECT_EQ(aio::run(main()), 12);
}

TEST_F(AioTaskTest, ThirtySleepingTasksTakeTheTimeOfOne) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<void>> tasks;
    int finished = 0;
    auto sleeper = [&]() -> aio::Task<void> {
      co_await aio::sleep(200ms);
      ++finished;
    };
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 30; ++i) tasks.push_back(aio::create_task(sleeper()));
    for (auto& t : tasks) co_await t;
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(finished, 30);
    EXPECT_GE(took, 200ms - kSlack);
    EXPECT_LT(took, 200ms * 30 / 2) << "the sleeps overlapped";
  };
  aio::run(main());
}

TEST_F(AioTaskTest, SleepZeroYieldsToTheOtherReadyTasks) {
  auto main = []() -> aio::Task<std::string> {
    std::string trace;
    auto ping = [&](char c) -> aio::Task<void> {
      for (int i = 0; i < 3; ++i) {
        trace += c;
        co_await aio::sleep(0s);
      }
    };
    aio::Task<void> a = aio::create_task(ping('a'));
    aio::Task<void> b = aio::create_task(ping('b'));
    co_await a;
    co_await b;
    co_return trace;
  };
  EXPECT_EQ(aio::run(main()), "ababab");
}

TEST_F(AioTaskTest, CancelDeliversCancelledErrorAtTheSuspensionPoint) {
  auto main = []() -> aio::Task<void> {
    bool reached_after = false;
    bool saw_cancel = false;
    auto victim = [&]() -> aio::Task<void> {
      try {
        co_await aio::sleep(10s);
        reached_after = true;
      } catch (const CancelledError& e) {
        saw_cancel = true;
        EXPECT_NE(std::string(e.what()).find("stop now"), std::string::npos) << e.what();
        throw;
      }
    };
    aio::Task<void> t = aio::create_task(victim());
    co_await aio::sleep(1ms);
    EXPECT_TRUE(t.cancel("stop now"));
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(saw_cancel);
    EXPECT_FALSE(reached_after);
    EXPECT_FALSE(t.cancel()) << "a done task cannot be cancelled";
    EXPECT_THROW((void)t.exception(), CancelledError);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, CancelBeforeTheFirstStepNeverRunsTheBody) {
  auto main = []() -> aio::Task<void> {
    bool ran = false;
    auto body = [&]() -> aio::Task<void> {
      ran = true;
      co_return;
    };
    aio::Task<void> t = aio::create_task(body());
    EXPECT_TRUE(t.cancel());
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(ran);
    EXPECT_TRUE(t.cancelled());
  };
  aio::run(main());
}

TEST_F(AioTaskTest, CancellingTheAwaiterCancelsTheAwaitedTask) {
  auto main = []() -> aio::Task<void> {
    aio::Task<void> inner =
        aio::create_task([]() -> aio::Task<void> { co_await aio::sleep(10s); }());
    aio::Task<void> outer =
        aio::create_task([](aio::Task<void> i) -> aio::Task<void> { co_await i; }(inner));
    co_await aio::sleep(1ms);
    outer.cancel();
    EXPECT_THROW(co_await outer, CancelledError);
    EXPECT_TRUE(inner.cancelled()) << "Python: the awaited task is cancelled with its awaiter";
  };
  aio::run(main());
}

TEST_F(AioTaskTest, ATaskThatCatchesTheCancellationFinishesNormally) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> t = aio::create_task([]() -> aio::Task<int> {
      try {
        co_await aio::sleep(10s);
      } catch (const CancelledError&) {
        aio::current_task().uncancel();
        co_return 5;
      }
      co_return 0;
    }());
    co_await aio::sleep(1ms);
    t.cancel();
    EXPECT_EQ(co_await t, 5);
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 0);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, SelfCancelIsDeliveredAtTheNextSuspension) {
  auto main = []() -> aio::Task<void> {
    aio::Task<std::string> t = aio::create_task([]() -> aio::Task<std::string> {
      std::string trace = "a";
      aio::current_task().cancel();
      trace += "b";  // no suspension yet: still running
      try {
        co_await aio::sleep(0s);
      } catch (const CancelledError&) {
        trace += "c";
      }
      co_return trace;
    }());
    EXPECT_EQ(co_await t, "abc");
  };
  aio::run(main());
}

TEST_F(AioTaskTest, UncancelToZeroWithdrawsAnUndeliveredCancellation) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> t = aio::create_task([]() -> aio::Task<int> {
      aio::current_task().cancel();
      EXPECT_EQ(aio::current_task().uncancel(), 0);
      co_await aio::sleep(1ms);  // not cancelled any more
      co_return 1;
    }());
    EXPECT_EQ(co_await t, 1);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, UncancelDoesNotRevokeACancelledSleep) {
  // Python: cancel() cancelled the sleep's future; uncancel() only changes the count.
  auto main = []() -> aio::Task<void> {
    aio::Task<void> t = aio::create_task([]() -> aio::Task<void> { co_await aio::sleep(10s); }());
    co_await aio::sleep(1ms);
    const auto start = aio::Clock::now();
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.uncancel(), 0);
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_LT(aio::Clock::now() - start, 5s);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, UncancelDoesNotRevokeACancelledFutureWait) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  OpenAtExit open(gate);
  auto main = [](ThreadPoolExecutor& p, Gate& g) -> aio::Task<void> {
    Future<void> running = p.submit([&g] { g.pass(); });
    aio::Task<void> t = aio::create_task([](Future<void> f) -> aio::Task<void> {
      co_await f;  // must not end up blocking the loop in result()
    }(running));
    co_await aio::sleep(1ms);
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.uncancel(), 0);
    EXPECT_THROW(co_await t, CancelledError);
    g.open();
    co_await running;
  };
  aio::run(main(pool, gate));
}

TEST_F(AioTaskTest, ResultAndExceptionBeforeDoneAreInvalidState) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> t = aio::create_task(add(1, 2));
    EXPECT_THROW((void)t.result(), InvalidStateError);
    EXPECT_THROW((void)t.exception(), InvalidStateError);
    co_await t;
    EXPECT_EQ(t.result(), 3);
    EXPECT_EQ(t.exception(), nullptr);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, AnExceptionReachesTheAwaiterWithItsType) {
  auto main = []() -> aio::Task<void> {
    aio::Task<void> t = aio::create_task(fail("lost?"));
    EXPECT_THROW(co_await t, std::runtime_error);
    EXPECT_NE(t.exception(), nullptr);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, AnUnretrievedTaskExceptionIsReported) {
  expect_reports(1);
  auto main = []() -> aio::Task<void> {
    (void)aio::create_task(fail("nobody looks"));
    co_await aio::sleep(20ms);
  };
  aio::run(main());
  const auto got = reports();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_NE(got[0].message.find("Task exception was never retrieved"), std::string::npos);
  EXPECT_NE(got[0].message.find("nobody looks"), std::string::npos);
}

TEST_F(AioTaskTest, ADroppedCoroutineIsReportedAsNeverAwaited) {
  expect_reports(1);
  { (void)answer(); }
  const auto got = reports();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_NE(got[0].message.find("never awaited"), std::string::npos);
}

TEST_F(AioTaskTest, ACoroutineCannotBeAwaitedTwice) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> c = answer();
    EXPECT_EQ(co_await c, 42);
    EXPECT_THROW(co_await c, RuntimeError);
    EXPECT_THROW((void)aio::create_task(c), RuntimeError);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, ATaskCannotAwaitItself) {
  auto main = []() -> aio::Task<void> {
    aio::Task<void> self;
    auto body = [&]() -> aio::Task<void> {
      co_await aio::sleep(0s);
      co_await self;
    };
    self = aio::create_task(body());
    EXPECT_THROW(co_await self, RuntimeError);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, NamesAreTaskNUnlessGiven) {
  auto main = []() -> aio::Task<void> {
    aio::Task<int> a = aio::create_task(answer(), "the-answer");
    aio::Task<int> b = aio::create_task(answer());
    EXPECT_EQ(a.name(), "the-answer");
    EXPECT_EQ(b.name().rfind("Task-", 0), 0U) << b.name();
    b.set_name("renamed");
    EXPECT_EQ(b.name(), "renamed");
    co_await a;
    co_await b;
  };
  aio::run(main());
}

TEST_F(AioTaskTest, AllTasksListsThePendingOnes) {
  auto main = []() -> aio::Task<void> {
    aio::Task<void> s = aio::create_task([]() -> aio::Task<void> { co_await aio::sleep(10s); }());
    co_await aio::sleep(0s);
    const auto all = aio::all_tasks();
    EXPECT_EQ(all.size(), 2U) << "main and the sleeper";
    s.cancel();
    EXPECT_THROW(co_await s, CancelledError);
    EXPECT_EQ(aio::all_tasks().size(), 1U);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, DoneCallbacksRunOnTheLoopInOrder) {
  auto main = []() -> aio::Task<void> {
    std::vector<int> seen;
    aio::Task<int> t = aio::create_task(add(20, 1));
    t.add_done_callback([&](const aio::Task<int>& d) { seen.push_back(d.result()); });
    t.add_done_callback([&](const aio::Task<int>&) { seen.push_back(-1); });
    co_await t;
    co_await aio::sleep(0s);
    EXPECT_EQ((std::vector<int>{21, -1}), seen);
    t.add_done_callback([&](const aio::Task<int>&) { seen.push_back(99); });
    EXPECT_EQ(seen.size(), 2U) << "a callback on a done task runs soon, not now";
    co_await aio::sleep(0s);
    EXPECT_EQ(seen.back(), 99);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, RunCancelsLeftoverTasks) {
  auto cancelled = std::make_shared<bool>(false);
  auto main = [](std::shared_ptr<bool> flag) -> aio::Task<void> {
    (void)aio::create_task([](std::shared_ptr<bool> f) -> aio::Task<void> {
      try {
        co_await aio::sleep(10s);
      } catch (const CancelledError&) {
        *f = true;
        throw;
      }
    }(flag));
    co_await aio::sleep(1ms);
  };
  aio::run(main(cancelled));
  EXPECT_TRUE(*cancelled);
}

TEST_F(AioTaskTest, CallSoonCallLaterAndCallAtRunInOrder) {
  aio::Loop loop;
  std::vector<int> order;
  loop.call_later(20ms, [&] { order.push_back(3); });
  loop.call_at(loop.time() + 10ms, [&] { order.push_back(2); });
  loop.call_soon([&] { order.push_back(1); });
  aio::Handle never = loop.call_soon([&] { order.push_back(-1); });
  aio::Handle never_timer = loop.call_later(5ms, [&] { order.push_back(-2); });
  never.cancel();
  never_timer.cancel();
  EXPECT_TRUE(never.cancelled());
  loop.call_later(40ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ((std::vector<int>{1, 2, 3}), order);
}

// The loop keeps timers in a deadline-ordered FIFO (those due no earlier than the last one in
// it) and a heap (the rest); whatever the mix and whatever is cancelled, they fire by deadline,
// then in the order they were scheduled.
TEST_F(AioTaskTest, TimersFireByDeadlineThenScheduleOrderWhateverIsCancelled) {
  aio::Loop loop;
  std::mt19937 rng(12345);
  const aio::Clock::time_point base = loop.time() - 1h;  // every deadline is already due
  struct Planned {
    std::int64_t offset_us;
    int id;
  };
  std::vector<Planned> live;
  std::vector<int> fired;
  std::vector<aio::Handle> handles;
  int next_id = 0;
  auto schedule = [&](std::int64_t offset_us) {
    const int id = next_id++;
    handles.push_back(loop.call_at(base + std::chrono::microseconds(offset_us),
                                   [&fired, id] { fired.push_back(id); }));
    live.push_back({offset_us, id});
  };
  // Runs in order (the FIFO), equal deadlines, and out-of-order ones (the heap), interleaved.
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 100; ++i) schedule(round * 1000 + i * 10);
    for (int i = 0; i < 30; ++i) schedule(static_cast<std::int64_t>(rng() % 30'000));
    for (int i = 0; i < 5; ++i) schedule(round * 1000 + 500);
  }
  // Cancel well over half of them (the FIFO compacts its holes), the first-due one included.
  std::vector<bool> cancelled(handles.size(), false);
  for (std::size_t i = 0; i < handles.size(); ++i) {
    if (i == 0 || rng() % 3 != 0) {
      handles[i].cancel();
      cancelled[i] = true;
    }
  }
  std::erase_if(live, [&](const Planned& p) { return cancelled[static_cast<std::size_t>(p.id)]; });
  loop.call_at(base + 31ms, [&] { loop.stop(); });  // due after all of them, still in the past
  loop.run_forever();

  std::stable_sort(live.begin(), live.end(),
                   [](const Planned& a, const Planned& b) { return a.offset_us < b.offset_us; });
  std::vector<int> expected;
  for (const Planned& p : live) expected.push_back(p.id);
  EXPECT_EQ(expected, fired);
}

// One iteration runs the callbacks that were ready, then the timers due when it began, by
// deadline, then — in the next iteration — what they scheduled (asyncio's _run_once). A timer
// queued during the iteration waits for the next one even when it is already due, though it is
// earlier than the timers firing.
TEST_F(AioTaskTest, ATimerQueuedWhileTimersFireWaitsForTheNextIterationEvenIfDue) {
  aio::Loop loop;
  const aio::Clock::time_point base = loop.time() - 1h;  // every deadline is already due
  std::vector<std::string> order;
  auto note = [&order](const char* what) { return [&order, what] { order.emplace_back(what); }; };
  loop.call_soon([&] {
    order.emplace_back("A");
    loop.call_at(base - 1h, note("t3"));  // due, earlier than t1, queued by the ready batch
    loop.call_soon(note("C"));
  });
  aio::Handle t6;
  loop.call_at(base, [&] {
    order.emplace_back("t1");
    loop.call_at(base - 2h, note("t4"));       // due, queued by a firing timer
    t6 = loop.call_at(base - 3h, note("t6"));  // the same, then cancelled while set aside
    loop.call_soon(note("D"));
  });
  loop.call_at(base + 1us, [&] {
    order.emplace_back("t2");
    t6.cancel();
  });
  loop.call_at(base + 2us, [&] {
    order.emplace_back("t5");
    loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
  });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<std::string>{"A", "t1", "t2", "t5", "C", "D", "t4", "t3"}));
  EXPECT_TRUE(t6.cancelled());
}

// A callback that was ready before the timers cancels a sleep that came due in the same
// iteration: the sleeper gets CancelledError at its sleep (as in asyncio, where the cancelled
// handle is skipped) instead of waking normally first.
TEST_F(AioTaskTest, AReadyCallbackCancellingASleepDueInTheSameIterationCancelsIt) {
  auto main = []() -> aio::Task<void> {
    bool woke = false;
    auto sleeper = [&woke]() -> aio::Task<void> {
      co_await aio::sleep(10ms);
      woke = true;
    };
    aio::Task<void> t = aio::create_task(sleeper());
    co_await aio::sleep(0ms);  // the sleeper's timer is queued
    aio::Loop& loop = aio::get_running_loop();
    // This callback keeps the loop busy past the sleeper's deadline, then queues the cancel: the
    // next iteration's batch runs the cancel before the (by then due) timer fires.
    loop.call_soon([&loop, &t] {
      std::this_thread::sleep_for(30ms);
      loop.call_soon([&t] { EXPECT_TRUE(t.cancel()); });
    });
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(woke);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, CallSoonThreadsafeWakesABlockedLoop) {
  aio::Loop loop;
  std::atomic<bool> ran{false};
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    loop.call_soon_threadsafe([&] {
      ran = true;
      loop.stop();
    });
  });
  loop.call_later(30s, [] {});  // would keep the loop blocked without the wake-up
  loop.run_forever();
  other.join();
  EXPECT_TRUE(ran.load());
}

TEST_F(AioTaskTest, StopFromAnotherThread) {
  aio::Loop loop;
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    loop.stop();
  });
  loop.run_forever();
  other.join();
  loop.close();
  EXPECT_TRUE(loop.is_closed());
  EXPECT_THROW(loop.run_forever(), RuntimeError);
  EXPECT_THROW(loop.call_soon_threadsafe([] {}), RuntimeError);
}

TEST_F(AioTaskTest, GetRunningLoopOutsideALoopThrows) {
  EXPECT_THROW((void)aio::get_running_loop(), RuntimeError);
  expect_reports(1);  // the coroutine below is dropped without running
  EXPECT_THROW((void)aio::create_task(answer()), RuntimeError);
}

TEST_F(AioTaskTest, RunInsideARunningLoopIsRefused) {
  auto main = []() -> aio::Task<void> {
    EXPECT_THROW(aio::run(answer()), RuntimeError);
    co_return;
  };
  expect_reports(1);  // answer() never ran
  aio::run(main());
}

TEST_F(AioTaskTest, AwaitingAThreadPoolFutureDoesNotBlockTheLoop) {
  ThreadPoolExecutor pool(2);
  auto main = [](ThreadPoolExecutor& p) -> aio::Task<int> {
    int ticks = 0;
    aio::Task<void> ticker = aio::create_task([](int& n) -> aio::Task<void> {
      for (;;) {
        co_await aio::sleep(1ms);
        ++n;
      }
    }(ticks));
    const int v = co_await p.submit([] {
      std::this_thread::sleep_for(50ms);
      return 6;
    });
    EXPECT_GT(ticks, 3) << "the loop kept running while the thread worked";
    ticker.cancel();
    co_return v;
  };
  EXPECT_EQ(aio::run(main(pool)), 6);
}

TEST_F(AioTaskTest, CancellingATaskAwaitingAFutureCancelsTheFuture) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  OpenAtExit open(gate);
  auto main = [](ThreadPoolExecutor& p, Gate& g) -> aio::Task<void> {
    Future<void> blocker = p.submit([&g] { g.pass(); });
    Future<int> queued = p.submit([] { return 1; });
    aio::Task<int> t =
        aio::create_task([](Future<int> f) -> aio::Task<int> { co_return co_await f; }(queued));
    co_await aio::sleep(1ms);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(queued.cancelled()) << "asyncio.wrap_future's rule: the future is cancelled too";
    g.open();
    co_await blocker;
  };
  aio::run(main(pool, gate));
}

TEST_F(AioTaskTest, AFutureExceptionReachesTheCoroutine) {
  ThreadPoolExecutor pool(1);
  auto main = [](ThreadPoolExecutor& p) -> aio::Task<void> {
    Future<int> f = p.submit([]() -> int { throw ValueError("from a thread"); });
    EXPECT_THROW(co_await f, ValueError);
  };
  aio::run(main(pool));
}

TEST_F(AioTaskTest, RunInExecutorUsesTheDefaultPool) {
  auto main = []() -> aio::Task<bool> {
    const auto loop_thread = std::this_thread::get_id();
    const auto worker_thread =
        co_await aio::get_running_loop().run_in_executor([] { return std::this_thread::get_id(); });
    co_return worker_thread != loop_thread;
  };
  EXPECT_TRUE(aio::run(main()));
}

TEST_F(AioTaskTest, TheLoopIsAnExecutorForOtherThreads) {
  aio::Loop loop;
  std::thread runner([&] { loop.run_forever(); });
  std::vector<Future<std::thread::id>> fs;
  for (int i = 0; i < 100; ++i)
    fs.push_back(loop.submit([] { return std::this_thread::get_id(); }));
  const auto loop_thread = runner.get_id();
  for (auto& f : fs) EXPECT_EQ(f.result(kGenerous), loop_thread);
  loop.shutdown(true);
  EXPECT_THROW((void)loop.submit([] {}), RuntimeError);
  loop.stop();
  runner.join();
}

TEST_F(AioTaskTest, CloseCancelsPendingTasksAndRunsThemToTheirEnd) {
  bool cleaned = false;
  {
    aio::Loop loop;
    auto body = [](bool& flag) -> aio::Task<void> {
      try {
        co_await aio::sleep(10s);
      } catch (const CancelledError&) {
        flag = true;
        throw;
      }
    };
    aio::Task<void> t = loop.create_task(body(cleaned));
    loop.call_later(5ms, [&] { loop.stop(); });
    loop.run_forever();
    EXPECT_FALSE(t.done());
    loop.close();
    EXPECT_TRUE(t.cancelled());
  }
  EXPECT_TRUE(cleaned);
}

TEST_F(AioTaskTest, RunUntilCompleteOnAManualLoop) {
  aio::Loop loop;
  EXPECT_EQ(loop.run_until_complete(add(40, 2)), 42);
  EXPECT_EQ(loop.run_until_complete(add(1, 1)), 2);
  EXPECT_FALSE(loop.is_running());
}

TEST_F(AioTaskTest, ManyTasksCancelledAtRandomPointsLeaveNothingBehind) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> tasks;
    int finished = 0;
    for (int i = 0; i < 2000; ++i) {
      tasks.push_back(aio::create_task([](int n, int& done) -> aio::Task<int> {
        for (int k = 0; k < n % 5; ++k) co_await aio::sleep(std::chrono::microseconds(n % 7));
        ++done;
        co_return n;
      }(i, finished)));
    }
    for (int i = 0; i < 2000; i += 3) tasks[static_cast<std::size_t>(i)].cancel();
    int ok = 0;
    int cancelled = 0;
    for (auto& t : tasks) {
      try {
        (void)co_await t;
        ++ok;
      } catch (const CancelledError&) {
        ++cancelled;
      }
    }
    EXPECT_EQ(ok + cancelled, 2000);
    EXPECT_EQ(ok, finished);
    EXPECT_EQ(aio::all_tasks().size(), 1U);
  };
  aio::run(main());
}

TEST_F(AioTaskTest, CtrlCCancelsTheMainTaskAndRunRaisesKeyboardInterrupt) {
  auto main = []() -> aio::Task<void> {
    co_await aio::sleep(1ms);
    std::raise(SIGINT);  // as if the terminal sent it: the main task is cancelled
    co_await aio::sleep(10s);
  };
  EXPECT_THROW(aio::run(main()), KeyboardInterrupt);
  struct sigaction after {};
  ASSERT_EQ(sigaction(SIGINT, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, SIG_DFL) << "run() restores SIGINT's default action";
}

TEST_F(AioTaskTest, TheSecondCtrlCEndsTheProcessAtOnce) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto main = []() -> aio::Task<void> {
      co_await aio::sleep(1ms);
      std::raise(SIGINT);
      bool cancelled = false;
      try {
        co_await aio::sleep(10s);
      } catch (const CancelledError&) {
        cancelled = true;
      }
      if (cancelled) {
        std::raise(SIGINT);  // a cleanup that hangs: the second Ctrl-C ends the process
        co_await aio::sleep(10s);
      }
    };
    try {
      aio::run(main());
    } catch (...) {
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST_F(AioTaskTest, DebugModeReportsASlowStepWithTheTaskName) {
  auto main = []() -> aio::Task<void> {
    aio::Task<void> slow = aio::create_task(
        []() -> aio::Task<void> {
          std::this_thread::sleep_for(150ms);  // blocks the loop: what debug mode is for
          co_return;
        }(),
        "the-slow-one");
    co_await slow;
  };
  ::testing::internal::CaptureStderr();
  aio::run(main(), aio::RunOptions{.debug = true});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("the-slow-one"), std::string::npos) << err;
  EXPECT_NE(err.find("took"), std::string::npos) << err;
}

TEST_F(AioTaskTest, SignalHandlersRunOnTheLoop) {
  auto main = []() -> aio::Task<int> {
    aio::Loop& loop = aio::get_running_loop();
    int hits = 0;
    loop.add_signal_handler(SIGUSR1, [&] { ++hits; });
    std::raise(SIGUSR1);
    for (int i = 0; i < 1000 && hits == 0; ++i) co_await aio::sleep(1ms);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_THROW(loop.add_signal_handler(SIGKILL, [] {}), ValueError);
    co_return hits;
  };
  EXPECT_EQ(aio::run(main()), 1);
}

// ==== after fork() ==============================================================================
// Each child _exit()s with a code that says what it saw.

// echo_round_trips(port, n): n lines through one connection to an echo server; how many came
// back (each read bounded by 5 s: TimeoutError).
aio::Task<int> echo_round_trips(std::uint16_t port, int n) {
  auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
  int back = 0;
  for (int i = 0; i < n; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    writer.write(line);
    co_await writer.drain();
    if (co_await aio::wait_for(reader.readline(), 5s) == line) ++back;
  }
  writer.close();
  co_await writer.wait_closed();
  co_return back;
}

// A coroutine that forks: the child runs a loop of its own inside its copy of the parent's, with
// timers and sockets of its own (before: aio::run threw "cannot be called from a running event
// loop"; Python 3.12's child forgets its running loop likewise), and the parent's loop goes on.
TEST_F(AioTaskTest, AChildForkedInACoroutineRunsALoopOfItsOwn) {
  const int code = aio::run([]() -> aio::Task<int> {
    aio::Server server = co_await aio::start_server(echo_lines, "127.0.0.1", 0);
    EXPECT_EQ(co_await echo_round_trips(server.port(), 5), 5);
    const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the point of the test
    if (child == 0) {
      int c = 0;
      try {
        c = aio::run([]() -> aio::Task<int> {
          aio::Server own = co_await aio::start_server(echo_lines, "127.0.0.1", 0);
          co_await aio::sleep(5ms);
          const int n = co_await echo_round_trips(own.port(), 20);
          own.close();
          co_await own.wait_closed();
          co_return n == 20 ? 0 : 10;
        }());
      } catch (...) {
        c = 11;
      }
      ::_exit(c);
    }
    EXPECT_EQ(co_await echo_round_trips(server.port(), 20), 20);
    server.close();
    co_await server.wait_closed();
    co_return wait_forked(child, std::chrono::seconds(60));
  }());
  EXPECT_EQ(code, 0);
}

// EchoThread: a plain thread echoing what one loopback client sends until EOF (outside every
// loop: a child of fork() has no copy of it that runs).
class EchoThread {
 public:
  EchoThread() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(listener_, 1) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("echo listener");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      const timeval bound{60, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0 || ::write(fd, buf, static_cast<std::size_t>(n)) != n) break;
      }
      ::close(fd);
    });
  }
  ~EchoThread() {
    ::shutdown(listener_, SHUT_RDWR);  // (ends an accept() still waiting)
    thread_.join();
    ::close(listener_);
  }
  EchoThread(const EchoThread&) = delete;
  EchoThread& operator=(const EchoThread&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// A child that goes on with its parent's loop (the forking coroutine carries on there) gets a
// reactor of its own before its first new socket and its next iteration: its waits take none of
// the parent's I/O events, re-arm none of its timers, and its sockets are none of the parent's
// reactor's business. Before, both processes waited on one epoll instance and one timerfd: the
// parent's connection, registered after the fork, had its readiness taken by the child's waits
// (the parent's reads timed out), and the child woke for a descriptor it does not have. Both
// echo servers are threads of the parent (the child connects to the second before its loop runs
// an iteration).
TEST_F(AioTaskTest, AChildGoingOnWithItsParentsLoopLeavesTheParentsEventsAlone) {
  EchoThread parents;
  EchoThread childs;
  const int code = aio::run([](std::uint16_t mine, std::uint16_t other) -> aio::Task<int> {
    co_await aio::sleep(1ms);
    const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the point of the test
    if (child == 0) {
      int c = 0;
      try {
        c = co_await echo_round_trips(other, 300) == 300 ? 0 : 10;
      } catch (...) {
        c = 11;
      }
      ::_exit(c);
    }
    int back = -1;
    try {
      back = co_await echo_round_trips(mine, 300);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
    EXPECT_EQ(back, 300);
    co_return wait_forked(child, std::chrono::seconds(60));
  }(parents.port(), childs.port()));
  EXPECT_EQ(code, 0);
}

// A signal sent to a child that goes on with its parent's loop runs the child's handler, never
// the parent's: the child's copy gets a signal pipe of its own (before, Asio's self-pipe was
// shared, and whichever process read it first ran its handler).
TEST_F(AioTaskTest, ASignalToAForkedChildRunsTheChildsHandler) {
  const int code = aio::run([]() -> aio::Task<int> {
    int seen = 0;
    aio::get_running_loop().add_signal_handler(SIGUSR1, [&seen] { ++seen; });
    co_await aio::sleep(1ms);
    const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the point of the test
    if (child == 0) {
      // The child waits in its loop until its handler ran 10 times (signals sent close together
      // may arrive as one), or 20 s passed.
      for (int i = 0; i < 20'000 && seen < 10; ++i) co_await aio::sleep(1ms);
      ::_exit(seen >= 10 ? 0 : 10);
    }
    // One signal per 5 ms until the child has ended (at most 2,000).
    int status = 0;
    pid_t ended = 0;
    for (int i = 0; i < 2'000 && ended == 0; ++i) {
      ::kill(child, SIGUSR1);
      co_await aio::sleep(5ms);
      ended = ::waitpid(child, &status, WNOHANG);
    }
    EXPECT_EQ(seen, 0) << "the parent ran its handler for the child's signals";
    aio::get_running_loop().remove_signal_handler(SIGUSR1);
    if (ended != child) co_return wait_forked(child, std::chrono::seconds(5));
    co_return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }());
  EXPECT_EQ(code, 0);
}

}  // namespace
}  // namespace concur::testing
