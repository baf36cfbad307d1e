// Tests for concur/thread.hpp, after CPython's Lib/test/test_threading.py: start/join rules,
// names, idents, daemon inheritance, the module functions, foreign ("dummy") threads, the
// excepthook, and the RAII rules of ~Thread.
#include "concur/thread.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/event.hpp"
#include "support/process_support.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class ThreadTest : public QuiescentTest {};

// ExceptHookGuard installs a hook for one test and restores the previous one.
class ExceptHookGuard {
 public:
  explicit ExceptHookGuard(ExceptHook hook) : previous_(set_excepthook(std::move(hook))) {}
  ~ExceptHookGuard() { set_excepthook(previous_); }
  ExceptHookGuard(const ExceptHookGuard&) = delete;
  ExceptHookGuard& operator=(const ExceptHookGuard&) = delete;

 private:
  ExceptHook previous_;
};

TEST_F(ThreadTest, TargetRunsWithCopiedArguments) {
  std::string seen;
  int counter = 0;
  std::string arg = "hello";
  Thread t([&seen](const std::string& s, int& c) { seen = s, ++c; }, arg, std::ref(counter));
  arg = "changed after construction";
  t.start();
  t.join();
  EXPECT_EQ(seen, "hello");
  EXPECT_EQ(counter, 1);
}

TEST_F(ThreadTest, SubclassOverridesRun) {
  class GetDetailHtml : public Thread {
   public:
    explicit GetDetailHtml(std::string name) : Thread(Options{std::move(name), {}}) {}
    ~GetDetailHtml() override {
      if (is_alive()) join();
    }
    std::atomic<bool> ran{false};
    std::string name_inside;

   protected:
    void run() override {
      name_inside = current_thread().name();
      ran = true;
    }
  };
  GetDetailHtml t("get_detail_html");
  t.start();
  t.join();
  EXPECT_TRUE(t.ran);
  EXPECT_EQ(t.name_inside, "get_detail_html");
}

// ---- run(): the body start() runs (Python: Thread.run, which calls the target)

TEST_F(ThreadTest, SubclassOverrideWinsOverATarget) {
  // Python: class T(Thread) overriding run(), constructed with target=f: start() calls the
  // override; f runs only if the override calls Thread.run().
  class Override : public Thread {
   public:
    explicit Override(std::function<void()> target) : Thread(Options{}, std::move(target)) {}
    ~Override() override {
      if (is_alive()) join();
    }
    std::atomic<bool> override_ran{false};

   protected:
    void run() override { override_ran = true; }
  };
  std::atomic<bool> target_ran{false};
  auto captured = std::make_shared<int>(1);
  Override t([&target_ran, captured] { target_ran = true; });
  t.start();
  t.join();
  EXPECT_TRUE(t.override_ran);
  EXPECT_FALSE(target_ran);
  EXPECT_EQ(captured.use_count(), 1);  // the unused target is dropped once the thread is done
}

TEST_F(ThreadTest, OverrideCallingThreadRunRunsTheTarget) {
  class Wrapper : public Thread {
   public:
    explicit Wrapper(std::function<void()> target) : Thread(Options{}, std::move(target)) {}
    ~Wrapper() override {
      if (is_alive()) join();
    }
    std::vector<std::string> log;

   protected:
    void run() override {
      log.emplace_back("before");
      Thread::run();  // Python: super().run()
      log.emplace_back("after");
    }
  };
  std::vector<std::string>* log = nullptr;
  Wrapper t([&log] { log->emplace_back("target"); });
  log = &t.log;
  t.start();
  t.join();
  EXPECT_EQ(t.log, (std::vector<std::string>{"before", "target", "after"}));
}

TEST_F(ThreadTest, SubclassWithoutOverrideRunsItsTarget) {
  class Named : public Thread {
   public:
    Named(std::string name, std::function<void()> target)
        : Thread(Options{std::move(name), {}}, std::move(target)) {}
    ~Named() override {
      if (is_alive()) join();
    }
  };
  std::string seen;
  Named t("named", [&seen] { seen = current_thread().name(); });
  t.start();
  t.join();
  EXPECT_EQ(seen, "named");
}

TEST_F(ThreadTest, RunCalledDirectlyRunsInTheCallingThreadOnce) {
  // Python allows t.run(): the body runs in the caller, no thread is started.
  std::atomic<int> calls{0};
  std::uint64_t where = 0;
  auto captured = std::make_shared<int>(1);
  Thread t(
      [&calls, &where, captured](int add) {
        calls += add;
        where = get_native_id();
      },
      1);
  t.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(where, get_native_id());
  EXPECT_FALSE(t.is_alive());
  EXPECT_EQ(t.ident(), 0u);            // never started
  EXPECT_EQ(captured.use_count(), 1);  // the target and its arguments are dropped after the run
  t.run();                             // nothing left to run (Python: AttributeError)
  EXPECT_EQ(calls, 1);
  t.start();  // still startable once; its body has nothing left to run
  t.join();
  EXPECT_EQ(calls, 1);
}

TEST_F(ThreadTest, RunOfASubclassCalledDirectly) {
  class Counter : public Thread {
   public:
    int runs = 0;
    void run() override { ++runs; }
  };
  Counter t;
  t.run();
  t.run();
  EXPECT_EQ(t.runs, 2);  // an override runs each time it is called, like any method
  EXPECT_FALSE(t.is_alive());
}

TEST_F(ThreadTest, TargetExceptionThroughRunGoesToTheHook) {
  std::string message;
  ExceptHookGuard guard([&](const ExceptHookArgs& a) { message = a.exc_message; });
  class Plain : public Thread {
   public:
    explicit Plain(std::function<void()> target) : Thread(Options{}, std::move(target)) {}
    ~Plain() override {
      if (is_alive()) join();
    }
  };
  Plain t([] { throw ValueError("from the target"); });
  t.start();
  t.join();
  EXPECT_EQ(message, "ValueError: from the target");
}

TEST_F(ThreadTest, DefaultNamesCountUpAndCanBeChanged) {
  Thread a([] {});
  Thread b([] {});
  EXPECT_THAT(a.name(), MatchesRegex("Thread-[0-9]+"));
  const auto n = [](const std::string& s) { return std::stoul(s.substr(7)); };
  EXPECT_EQ(n(b.name()), n(a.name()) + 1);
  Thread named(Thread::Options{"worker", {}}, [] {});
  EXPECT_EQ(named.name(), "worker");
  named.set_name("renamed");
  EXPECT_EQ(named.name(), "renamed");
}

TEST_F(ThreadTest, StartTwiceThrows) {
  Thread t([] {});
  t.start();
  EXPECT_THROW(t.start(), RuntimeError);
  t.join();
  EXPECT_THROW(t.start(), RuntimeError);
}

TEST_F(ThreadTest, JoinBeforeStartThrows) {
  Thread t([] {});
  EXPECT_THROW(t.join(), RuntimeError);
  EXPECT_THROW((void)t.join(kShort), RuntimeError);
}

TEST_F(ThreadTest, JoinCurrentThreadThrows) {
  std::atomic<bool> threw{false};
  Thread t([&threw] {
    try {
      current_thread().join();
    } catch (const RuntimeError& e) {
      threw = std::string(e.what()).find("cannot join current thread") != std::string::npos;
    }
  });
  t.start();
  t.join();
  EXPECT_TRUE(threw);
}

TEST_F(ThreadTest, JoinMainOrDummyThreadThrows) {
  EXPECT_THROW(main_thread().join(), RuntimeError);
  EXPECT_THROW(ThreadRef().join(), RuntimeError);
}

TEST_F(ThreadTest, JoinWithTimeoutOnLiveThread) {
  Event release;
  Thread t([&release] { release.wait(); });
  t.start();
  bool joined = true;
  const auto took = elapsed([&] { joined = t.join(kShort); });
  EXPECT_FALSE(joined);
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_TRUE(t.is_alive());
  EXPECT_FALSE(t.join_until(std::chrono::steady_clock::now() + 5ms));
  EXPECT_FALSE(t.join(-1s));  // negative: poll once
  release.set();
  EXPECT_TRUE(t.join(kGenerous));
  EXPECT_FALSE(t.is_alive());
  EXPECT_TRUE(t.join(0ms));  // joining a finished thread again is fine
  t.join();
}

TEST_F(ThreadTest, IsAliveFollowsTheLifecycle) {
  Event release;
  Thread t([&release] { release.wait(); });
  EXPECT_FALSE(t.is_alive());
  t.start();
  EXPECT_TRUE(t.is_alive());  // start() returns once the thread runs
  release.set();
  t.join();
  EXPECT_FALSE(t.is_alive());
}

TEST_F(ThreadTest, IdentsAreKnownAfterStartAndMatchInside) {
  std::uint64_t ident_inside = 0;
  std::uint64_t native_inside = 0;
  Event release;
  Thread t([&] {
    ident_inside = get_ident();
    native_inside = get_native_id();
    release.wait();
  });
  EXPECT_EQ(t.ident(), 0u);
  EXPECT_EQ(t.native_id(), 0u);
  t.start();
  EXPECT_NE(t.ident(), 0u);
  EXPECT_NE(t.native_id(), 0u);
  release.set();
  t.join();
  EXPECT_EQ(t.ident(), ident_inside);
  EXPECT_EQ(t.native_id(), native_inside);
  EXPECT_NE(t.native_id(), get_native_id());
}

TEST_F(ThreadTest, CurrentThreadInsideIsTheThread) {
  ThreadRef inside;
  Thread t([&inside] { inside = current_thread(); });
  t.start();
  t.join();
  EXPECT_TRUE(inside == t.ref());
  EXPECT_EQ(inside.name(), t.name());
}

TEST_F(ThreadTest, MainThread) {
  // GoogleTest runs tests on the process's initial thread.
  EXPECT_TRUE(current_thread() == main_thread());
  EXPECT_EQ(main_thread().name(), "MainThread");
  EXPECT_TRUE(main_thread().is_alive());
  EXPECT_FALSE(main_thread().daemon());
  EXPECT_EQ(main_thread().native_id(), static_cast<std::uint64_t>(::getpid()));
  ThreadRef seen;
  Thread t([&seen] { seen = main_thread(); });
  t.start();
  t.join();
  EXPECT_TRUE(seen == main_thread());
}

TEST_F(ThreadTest, EnumerateAndActiveCountSeeLiveThreadsOnly) {
  for (std::size_t n : kThreadCounts) {
    const std::size_t before = active_count();
    Event release;
    std::vector<std::unique_ptr<Thread>> threads;
    for (std::size_t i = 0; i < n; ++i) {
      threads.push_back(std::make_unique<Thread>([&release] { release.wait(); }));
      threads.back()->start();
    }
    EXPECT_EQ(active_count(), before + n);
    auto all = enumerate();
    EXPECT_EQ(all.size(), before + n);
    for (auto& t : threads) {
      EXPECT_NE(std::find(all.begin(), all.end(), t->ref()), all.end());
    }
    EXPECT_NE(std::find(all.begin(), all.end(), main_thread()), all.end());
    release.set();
    for (auto& t : threads) t->join();
    EXPECT_EQ(active_count(), before);
    all = enumerate();
    for (auto& t : threads) {
      EXPECT_EQ(std::find(all.begin(), all.end(), t->ref()), all.end());
    }
  }
}

TEST_F(ThreadTest, DaemonIsInheritedAndFrozenAtStart) {
  Thread plain([] {});
  EXPECT_FALSE(plain.daemon());  // created by the (non-daemon) main thread
  bool child_daemon = false;
  Thread d(Thread::Options{"d", true}, [&child_daemon] {
    Thread child([] {});
    child_daemon = child.daemon();
  });
  EXPECT_TRUE(d.daemon());
  d.start();
  d.join();
  EXPECT_TRUE(child_daemon);
  Thread t([] {});
  t.set_daemon(true);
  EXPECT_TRUE(t.daemon());
  t.start();
  EXPECT_THROW(t.set_daemon(false), RuntimeError);
  t.join();
}

TEST_F(ThreadTest, ForeignThreadsAreDummies) {
  std::string name;
  bool daemon = false;
  bool listed = false;
  ThreadRef ref;
  std::thread foreign([&] {
    ref = current_thread();
    name = ref.name();
    daemon = ref.daemon();
    const auto all = enumerate();
    listed = std::find(all.begin(), all.end(), ref) != all.end();
    EXPECT_TRUE(current_thread() == ref);  // stable for the thread's lifetime
    EXPECT_EQ(ref.native_id(), get_native_id());
  });
  foreign.join();
  EXPECT_THAT(name, MatchesRegex("Dummy-[0-9]+"));
  EXPECT_TRUE(daemon);
  EXPECT_TRUE(listed);
  EXPECT_FALSE(ref.is_alive());  // retired when the foreign thread exited
  EXPECT_THROW(ref.join(), RuntimeError);
}

TEST_F(ThreadTest, ExceptionGoesToTheHook) {
  std::vector<ExceptHookArgs> calls;
  std::mutex mu;
  ExceptHookGuard guard([&](const ExceptHookArgs& a) {
    std::lock_guard lk(mu);
    calls.push_back(a);
  });
  Thread t(Thread::Options{"boom", {}}, [] { throw std::invalid_argument("bad input"); });
  t.start();
  t.join();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].exc_type, "std::invalid_argument");
  EXPECT_EQ(calls[0].exc_message, "bad input");
  EXPECT_EQ(calls[0].thread.name(), "boom");
  EXPECT_THROW(std::rethrow_exception(calls[0].exc_value), std::invalid_argument);
  EXPECT_FALSE(t.is_alive());
}

TEST_F(ThreadTest, NonStdExceptionsAreReportedToo) {
  std::string type;
  std::string message = "unset";
  ExceptHookGuard guard([&](const ExceptHookArgs& a) {
    type = a.exc_type;
    message = a.exc_message;
  });
  Thread t([] { throw 42; });
  t.start();
  t.join();
  EXPECT_EQ(type, "int");
  EXPECT_EQ(message, "");
}

TEST_F(ThreadTest, DefaultHookPrintsThreadNameAndMessage) {
  ::testing::internal::CaptureStderr();
  Thread t(Thread::Options{"printer", {}}, [] { throw std::runtime_error("it broke"); });
  t.start();
  t.join();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("Exception in thread printer:"));
  EXPECT_THAT(err, HasSubstr("std::runtime_error: it broke"));
}

TEST_F(ThreadTest, DefaultHookNamesAConcurErrorOnce) {
  ::testing::internal::CaptureStderr();
  Thread t(Thread::Options{.name = "conn"}, [] { throw TimeoutError("no connection"); });
  t.start();
  t.join();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("Exception in thread conn:\nconcur::TimeoutError: no connection\n"));
}

TEST_F(ThreadTest, ThrowingHookFallsBackToDefaultOutput) {
  ExceptHookGuard guard([](const ExceptHookArgs&) { throw std::logic_error("hook failed"); });
  ::testing::internal::CaptureStderr();
  Thread t(Thread::Options{"double", {}}, [] { throw std::runtime_error("first"); });
  t.start();
  t.join();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("Exception in threading.excepthook:"));
  EXPECT_THAT(err, HasSubstr("hook failed"));
  EXPECT_THAT(err, HasSubstr("Exception in thread double:"));
}

TEST_F(ThreadTest, SubclassExceptionGoesToTheHookToo) {
  class Thrower : public Thread {
   public:
    ~Thrower() override {
      if (is_alive()) join();
    }

   protected:
    void run() override { throw ValueError("from run"); }
  };
  std::string message;
  ExceptHookGuard guard([&](const ExceptHookArgs& a) { message = a.exc_message; });
  Thrower t;
  t.start();
  t.join();
  EXPECT_EQ(message, "ValueError: from run");
}

TEST_F(ThreadTest, DestructorJoinsNonDaemonThread) {
  std::atomic<bool> finished{false};
  {
    Thread t([&finished] {
      std::this_thread::sleep_for(20ms);
      finished = true;
    });
    t.start();
  }  // ~Thread joins, like std::jthread
  EXPECT_TRUE(finished);
}

TEST_F(ThreadTest, DestroyedDaemonThreadKeepsRunning) {
  auto release = std::make_shared<Event>();
  auto done = std::make_shared<Event>();
  ThreadRef ref;
  {
    Thread t(Thread::Options{"daemon", true}, [release, done] {
      release->wait();
      done->set();
    });
    t.start();
    ref = t.ref();
  }  // ~Thread of a daemon leaves it running
  EXPECT_TRUE(ref.is_alive());
  release->set();
  EXPECT_TRUE(done->wait(kGenerous));
  EXPECT_TRUE(ref.join(kGenerous));  // a handle can still wait for it
  EXPECT_FALSE(ref.is_alive());
}

TEST_F(ThreadTest, MovedThreadKeepsItsIdentity) {
  std::vector<Thread> threads;
  std::atomic<int> sum{0};
  for (int i = 1; i <= 4; ++i) threads.emplace_back([&sum](int v) { sum += v; }, i);
  for (auto& t : threads) t.start();
  Thread moved(std::move(threads[0]));
  moved.join();
  for (std::size_t i = 1; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(sum, 10);
}

TEST_F(ThreadTest, ManyThreadsAtSeveralCounts) {
  for (std::size_t n : kThreadCounts) {
    std::atomic<std::size_t> ran{0};
    run_threads(n, [&ran](std::size_t) { ran.fetch_add(1); });
    EXPECT_EQ(ran.load(), n);
  }
}

TEST_F(ThreadTest, TargetArgumentsAreDestroyedInTheThread) {
  struct Probe {
    std::shared_ptr<std::atomic<std::uint64_t>> where;
    Probe() = default;
    Probe(const Probe&) = default;
    Probe(Probe&&) = default;
    ~Probe() {
      if (where && *where == 0) *where = get_native_id();
    }
  };
  auto where = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::uint64_t thread_native = 0;
  {
    Probe p;
    p.where = where;
    Thread t([&thread_native](const Probe&) { thread_native = get_native_id(); }, p);
    p.where = nullptr;  // only the copy the thread owns reports where it dies
    t.start();
    t.join();
    EXPECT_NE(thread_native, 0u);
    EXPECT_EQ(where->load(), thread_native);  // died in the thread, before join() returned
  }
}

// ==== after fork() (Python's threading._after_fork) ==============================================
// Each child _exit()s; its exit code says what it saw.

// In a child of fork(), only the forking thread is alive: a thread of the parent's is not
// (is_alive() false, join() at once), enumerate() lists the main thread alone (before: the
// parent's thread was listed alive in the child, and joining it would have waited forever).
TEST_F(ThreadTest, AForkedChildHasOnlyTheForkingThread) {
  Event release;
  Thread t([&release] { release.wait(); });
  t.start();
  ASSERT_EQ(active_count(), 2U);
  const pid_t child = ::fork();  // NOLINT(concurrency-mt-unsafe): the point of the test
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      if (active_count() != 1) code = 10;
      const std::vector<ThreadRef> all = enumerate();
      if (all.size() != 1 || !(all[0] == main_thread())) code = 11;
      if (!(current_thread() == main_thread()) || !main_thread().is_alive()) code = 12;
      if (main_thread().native_id() != static_cast<std::uint64_t>(::getpid())) code = 13;
      if (t.is_alive()) code = 14;
      if (!t.join(std::chrono::seconds(5))) code = 15;
#if !defined(__SANITIZE_THREAD__)  // (ThreadSanitizer cannot follow threads started here)
      Thread fresh([] {});         // and threads still start and join here
      fresh.start();
      if (!fresh.join(std::chrono::seconds(20))) code = 16;
#endif
    } catch (...) {
      code = 17;
    }
    ::_exit(code);
  }
  EXPECT_EQ(wait_forked(child, std::chrono::seconds(60)), 0);
  EXPECT_TRUE(t.is_alive()) << "the parent's thread is untouched";
  release.set();
  t.join();
}

// A thread other than the main one that forks becomes the child's main thread, as in Python.
TEST_F(ThreadTest, AThreadThatForksIsTheChildsMainThread) {
  pid_t child = -1;
  Thread t(ThreadOptions{.name = "forker"}, [&child] {
    child = ::fork();  // NOLINT(concurrency-mt-unsafe): the point of the test
    if (child != 0) return;
    int code = 0;
    if (!(main_thread() == current_thread())) code = 20;
    if (main_thread().name() != "forker") code = 21;
    if (active_count() != 1) code = 22;
    if (current_thread().native_id() != static_cast<std::uint64_t>(::getpid())) code = 23;
    ::_exit(code);
  });
  t.start();
  t.join();
  ASSERT_GT(child, 0);
  EXPECT_EQ(wait_forked(child, std::chrono::seconds(60)), 0);
  EXPECT_EQ(main_thread().name(), "MainThread");
}

}  // namespace
