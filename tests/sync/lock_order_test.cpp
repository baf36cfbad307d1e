// Tests for concur/sync/lock_order.hpp: the dining philosophers' inversion is reported the first
// time the inverted order is seen (on a run that does not deadlock), naming locks and threads;
// consistent orders, re-entry and try-acquisitions are never reported; custom handlers; the
// environment switch.
#include "concur/sync/lock_order.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/condition.hpp"
#include "concur/sync/lock.hpp"
#include "concur/sync/rlock.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

extern char** environ;

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;

class LockOrderTest : public QuiescentTest {
 protected:
  void SetUp() override {
    QuiescentTest::SetUp();
    lock_order::reset();
    lock_order::enable();
  }
  void TearDown() override {
    lock_order::enable(false);
    lock_order::set_handler({});
    lock_order::reset();
    QuiescentTest::TearDown();
  }
};

// run_named(name, fn) runs fn in a thread called `name` and rethrows what fn threw.
void run_named(const std::string& name, const std::function<void()>& fn) {
  std::exception_ptr error;
  Thread t(Thread::Options{name, {}}, [&] {
    try {
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.start();
  t.join();
  if (error) std::rethrow_exception(error);
}

TEST_F(LockOrderTest, DiningPhilosophersInversionIsReportedWithoutDeadlocking) {
  Lock fork_lock("fork_lock");
  Lock noodle_lock("noodle_lock");
  run_named("aaa", [&] {  // eat1: fork, then noodle
    std::scoped_lock a(fork_lock);
    std::scoped_lock b(noodle_lock);
  });
  std::string message;
  bool fork_taken_after_throw = true;
  run_named("111", [&] {  // eat2: noodle, then fork — inverted; this run would not deadlock
    std::scoped_lock b(noodle_lock);
    try {
      fork_lock.acquire();
    } catch (const DeadlockError& e) {
      message = e.what();
      fork_taken_after_throw = fork_lock.locked();
    }
  });
  EXPECT_FALSE(fork_taken_after_throw);  // the inverted acquisition did not happen
  EXPECT_THAT(message, HasSubstr("DeadlockError: lock-order inversion"));
  EXPECT_THAT(message, HasSubstr("thread '111' acquires 'fork_lock' while holding 'noodle_lock'"));
  EXPECT_THAT(message, HasSubstr("'fork_lock' -> 'noodle_lock' (thread 'aaa')"));
  EXPECT_FALSE(fork_lock.locked());
  EXPECT_FALSE(noodle_lock.locked());
}

TEST_F(LockOrderTest, ThrowingHandlerReportsEveryTime) {
  Lock a("a"), b("b");
  run_named("first", [&] {
    std::scoped_lock la(a);
    std::scoped_lock lb(b);
  });
  for (int i = 0; i < 3; ++i) {
    std::scoped_lock lb(b);
    EXPECT_THROW(a.acquire(), DeadlockError) << "attempt " << i;
  }
}

TEST_F(LockOrderTest, ConsistentOrderIsNeverReported) {
  Lock a("a"), b("b"), c("c");
  for (std::size_t n : kThreadCounts) {
    run_threads(n, [&](std::size_t) {
      for (int i = 0; i < 20; ++i) {
        std::scoped_lock la(a);
        std::scoped_lock lb(b);
        std::scoped_lock lc(c);
      }
      std::scoped_lock la(a);  // skipping a level keeps the order
      std::scoped_lock lc(c);
    });
  }
}

TEST_F(LockOrderTest, SelfDeadlockOnALockIsReported) {
  Lock lock("only");
  lock.acquire();
  try {
    lock.acquire();
    ADD_FAILURE() << "second acquire returned";
  } catch (const DeadlockError& e) {
    EXPECT_THAT(e.what(), HasSubstr("which it already holds"));
  }
  lock.release();
}

TEST_F(LockOrderTest, RLockReentryIsFineButInversionsAreNot) {
  RLock r("r");
  Lock l("l");
  {
    std::scoped_lock a(r);
    std::scoped_lock b(r);  // re-entry: no edge
    std::scoped_lock c(l);
  }
  std::scoped_lock c(l);
  EXPECT_THROW(r.acquire(), DeadlockError);
  EXPECT_FALSE(r.locked());
}

TEST_F(LockOrderTest, TryAcquireIsNeverChecked) {
  Lock a("a"), b("b");
  {
    std::scoped_lock la(a);
    std::scoped_lock lb(b);
  }
  std::scoped_lock lb(b);
  ASSERT_TRUE(a.try_acquire());  // cannot block, cannot deadlock
  a.release();
}

TEST_F(LockOrderTest, ThreeLockCycleNamesEveryEdge) {
  Lock a("A"), b("B"), c("C");
  run_named("t1", [&] {
    std::scoped_lock x(a);
    std::scoped_lock y(b);
  });
  run_named("t2", [&] {
    std::scoped_lock x(b);
    std::scoped_lock y(c);
  });
  std::vector<lock_order::Violation> seen;
  lock_order::set_handler([&seen](const lock_order::Violation& v) { seen.push_back(v); });
  run_named("t3", [&] {
    std::scoped_lock x(c);
    std::scoped_lock y(a);  // closes A -> B -> C -> A; the handler returns, so this proceeds
  });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].thread, "t3");
  EXPECT_EQ(seen[0].acquiring, "A");
  EXPECT_EQ(seen[0].held, "C");
  ASSERT_EQ(seen[0].cycle.size(), 2u);
  EXPECT_EQ(seen[0].cycle[0].from, "A");
  EXPECT_EQ(seen[0].cycle[0].to, "B");
  EXPECT_EQ(seen[0].cycle[0].thread, "t1");
  EXPECT_EQ(seen[0].cycle[1].from, "B");
  EXPECT_EQ(seen[0].cycle[1].to, "C");
  EXPECT_EQ(seen[0].cycle[1].thread, "t2");
  run_named("t4", [&] {  // a returning handler hears of each inversion once
    std::scoped_lock x(c);
    std::scoped_lock y(a);
  });
  EXPECT_EQ(seen.size(), 1u);
}

TEST_F(LockOrderTest, DestroyedLocksAreForgotten) {
  Lock outer("outer");
  std::optional<Lock> inner;  // same address every time
  inner.emplace("inner");
  {
    std::scoped_lock a(outer);
    std::scoped_lock b(*inner);
  }
  inner.reset();
  inner.emplace("inner-2");
  std::scoped_lock b(*inner);
  EXPECT_NO_THROW(outer.acquire());  // no stale edge from the destroyed lock
  outer.release();
}

TEST_F(LockOrderTest, ConditionWaitIsNotAnInversion) {
  Lock outer("outer");
  Lock cond_lock("cond_lock");
  Condition cond(cond_lock);
  bool ready = false;
  Thread notifier([&] {
    std::scoped_lock a(outer);
    std::scoped_lock b(cond);
    ready = true;
    cond.notify();
  });
  {
    std::scoped_lock a(outer);
    std::unique_lock b(cond);
    notifier.start();
    // The wait releases cond_lock and re-takes it; outer stays held, so the notifier blocks on
    // outer until we are done — the wait must time out without a false report.
    EXPECT_FALSE(cond.wait(kShort));
  }
  notifier.join();
  EXPECT_TRUE(ready);
}

TEST_F(LockOrderTest, DisabledCheckerSeesNothing) {
  lock_order::enable(false);
  Lock a("a"), b("b");
  {
    std::scoped_lock la(a);
    std::scoped_lock lb(b);
  }
  std::scoped_lock lb(b);
  EXPECT_NO_THROW(a.acquire());
  a.release();
}

// The environment switch is read at start-up, so it is checked in a child process: this same
// test binary, re-run with CONCUR_LOCK_ORDER=1 and a filter selecting ChildSeesEnvSwitch.
TEST(LockOrderEnv, EnvironmentVariableEnablesTheChecker) {
  const std::string self = "/proc/self/exe";
  std::string filter = "--gtest_filter=LockOrderEnv.ChildSeesEnvSwitch";
  std::vector<std::string> env_strings = {"CONCUR_LOCK_ORDER=1", "CONCUR_TEST_CHILD=1"};
  std::vector<char*> argv = {const_cast<char*>(self.c_str()), filter.data(), nullptr};
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(LockOrderEnv, ChildSeesEnvSwitch) {
  if (std::getenv("CONCUR_TEST_CHILD") == nullptr) GTEST_SKIP() << "runs only as a child";
  ASSERT_TRUE(lock_order::enabled());
  Lock a("a"), b("b");
  {
    std::scoped_lock la(a);
    std::scoped_lock lb(b);
  }
  std::scoped_lock lb(b);
  EXPECT_THROW(a.acquire(), DeadlockError);
}

}  // namespace
