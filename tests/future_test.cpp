// Tests for concur/future.hpp, after CPython's Lib/test/test_concurrent_futures/test_future.py
// (callbacks with result / exception / cancel, already-done callbacks, raising callbacks, cancel /
// cancelled / done / running tables, result and exception with timeouts, double set_result /
// set_exception), test_as_completed.py (no timeout, timeout, duplicates, freed references, the
// timeout message) and test_wait.py (issue 20369, FIRST_COMPLETED, FIRST_EXCEPTION,
// ALL_COMPLETED, timeouts, the pending-calls race) — plus concur's extras: the task path
// (one allocation, stop tokens, abandon, unrun tasks), then() inline and on an executor,
// move-only results, destroyed promises, unobserved exceptions reported once and only when
// unobserved, a million futures through as_completed with flat memory, and the WaitHelper hook.
// Every test installs a capturing excepthook and fails on reports it did not expect.
#include "concur/future.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/event.hpp"
#include "concur/thread.hpp"
#include "support/hook_support.hpp"
#include "support/test_support.hpp"

// ---- allocation counting (this binary only): counts operator new on threads that ask for it ---

namespace {
thread_local bool tls_count_allocations = false;
thread_local std::size_t tls_allocations = 0;
}  // namespace

// Out of line, so that g++ does not inline free() into callers of the replaced operator new and
// then flag the (legitimate) pairing with -Wmismatched-new-delete.
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (tls_count_allocations) ++tls_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t /*n*/) noexcept { std::free(p); }

namespace {

using namespace concur;
using namespace concur::testing;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kScale = 10;  // sanitizers slow every operation ~10x
#else
constexpr std::size_t kScale = 1;
#endif

// AllocationCounter counts the calling thread's allocations while it lives.
class AllocationCounter {
 public:
  AllocationCounter() {
    tls_allocations = 0;
    tls_count_allocations = true;
  }
  ~AllocationCounter() { tls_count_allocations = false; }
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  [[nodiscard]] std::size_t count() const { return tls_allocations; }
};

// OSError stands in for the exceptions CPython's tests raise.
struct OSError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Tracked counts its live instances: a future's value lives in its state, so the count of live
// Tracked values held by futures is the count of live shared states.
struct Tracked {
  static inline std::atomic<long> live{0};
  explicit Tracked(int x) : v(x) { live.fetch_add(1); }
  Tracked(const Tracked& o) : v(o.v) { live.fetch_add(1); }
  Tracked& operator=(const Tracked&) = default;
  ~Tracked() { live.fetch_sub(1); }
  int v;
};

// CPython's util.create_future(state=...): a future in each state, with its promise kept alive
// (a destroyed promise would finish a pending future with BrokenExecutor).
template <class T = int>
struct Made {
  Promise<T> p;
  Future<T> f = p.get_future();
};

Made<> pending_future() { return {}; }
Made<> running_future() {
  Made<> m;
  EXPECT_TRUE(m.p.set_running_or_notify_cancel());
  return m;
}
Made<> cancelled_future() {
  Made<> m;
  EXPECT_TRUE(m.f.cancel());
  return m;
}
Made<> cancelled_and_notified_future() {
  Made<> m = cancelled_future();
  EXPECT_FALSE(m.p.set_running_or_notify_cancel());
  return m;
}
Made<> exception_future() {
  Made<> m;
  m.p.set_exception(std::make_exception_ptr(OSError("os error")));
  return m;
}
Made<> successful_future(int v = 42) {
  Made<> m;
  m.p.set_result(v);
  return m;
}

// what_of(fn) runs fn and returns the what() of the concur::Error it throws ("" if none).
template <class F>
std::string what_of(F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::vector<Future<int>>& v, const Future<int>& f) {
  return std::find(v.begin(), v.end(), f) != v.end();
}

// FutureTest: a HookCapturingTest (tests/support/hook_support.hpp).
class FutureTest : public HookCapturingTest {};

// ==== test_future.py: callbacks ================================================================

TEST_F(FutureTest, DoneCallbackWithResult) {
  Made<> m;
  int seen = 0;
  m.f.add_done_callback([&](const Future<int>& f) { seen = f.result(); });
  EXPECT_EQ(seen, 0);
  m.p.set_result(5);
  EXPECT_EQ(seen, 5);
}

TEST_F(FutureTest, DoneCallbackWithException) {
  Made<> m;
  std::string seen;
  m.f.add_done_callback([&](const Future<int>& f) {
    try {
      std::rethrow_exception(f.exception());
    } catch (const OSError& e) {
      seen = e.what();
    }
  });
  m.p.set_exception(std::make_exception_ptr(OSError("test")));
  EXPECT_EQ(seen, "test");
}

TEST_F(FutureTest, DoneCallbackWithCancel) {
  Made<> m;
  bool was_cancelled = false;
  m.f.add_done_callback([&](const Future<int>& f) { was_cancelled = f.cancelled(); });
  EXPECT_TRUE(m.f.cancel());
  EXPECT_TRUE(was_cancelled);
}

// test_done_callback_raises: the raising callback goes to the excepthook, the next one still runs
// and the future keeps its result.
TEST_F(FutureTest, DoneCallbackRaisesGoesToTheHook) {
  expect_reports(1);
  Made<> m;
  bool raising_was_called = false;
  bool fn_was_called = false;
  m.f.add_done_callback([&](const Future<int>&) {
    raising_was_called = true;
    throw OSError("doh!");
  });
  m.f.add_done_callback([&](const Future<int>&) { fn_was_called = true; });
  m.p.set_result(5);
  EXPECT_TRUE(raising_was_called);
  EXPECT_TRUE(fn_was_called);
  EXPECT_EQ(m.f.result(), 5);
  const auto got = reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message, "doh!");
  EXPECT_NE(got[0].type.find("OSError"), std::string::npos) << got[0].type;
  EXPECT_EQ(got[0].thread, current_thread().name());
}

TEST_F(FutureTest, DoneCallbackAlreadySuccessfulRunsAtOnce) {
  auto m = successful_future(5);
  int seen = 0;
  m.f.add_done_callback([&](const Future<int>& f) { seen = f.result(); });
  EXPECT_EQ(seen, 5);
}

TEST_F(FutureTest, DoneCallbackAlreadyFailedRunsAtOnce) {
  auto m = exception_future();
  bool got_exception = false;
  m.f.add_done_callback([&](const Future<int>& f) { got_exception = f.exception() != nullptr; });
  EXPECT_TRUE(got_exception);
}

TEST_F(FutureTest, DoneCallbackAlreadyCancelledRunsAtOnce) {
  auto m = cancelled_future();
  bool was_cancelled = false;
  m.f.add_done_callback([&](const Future<int>& f) { was_cancelled = f.cancelled(); });
  EXPECT_TRUE(was_cancelled);
}

TEST_F(FutureTest, DoneCallbackRaisesAlreadySucceededGoesToTheHook) {
  expect_reports(1);
  auto m = successful_future(5);
  m.f.add_done_callback([](const Future<int>&) { throw OSError("doh!"); });
  const auto got = reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message, "doh!");
}

TEST_F(FutureTest, CallbacksRunInRegistrationOrderInTheCompletingThread) {
  Made<> m;
  std::vector<int> order;
  std::vector<std::uint64_t> idents;
  for (int i = 0; i < 20; ++i) {
    m.f.add_done_callback([&, i](const Future<int>&) {
      order.push_back(i);
      idents.push_back(get_ident());
    });
  }
  const std::uint64_t completer = in_thread([&] {
    m.p.set_result(1);
    return get_ident();
  });
  ASSERT_EQ(order.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  for (const auto id : idents) EXPECT_EQ(id, completer);
  EXPECT_NE(completer, get_ident());
}

TEST_F(FutureTest, CallbackMayAddCallbacksAndDropHandles) {
  auto m = std::make_unique<Made<>>();
  std::vector<int> order;
  Future<int> f = m->f;
  f.add_done_callback([&](const Future<int>& g) {
    order.push_back(1);
    g.add_done_callback([&](const Future<int>&) { order.push_back(3); });  // done: runs now
    m.reset();  // drops the promise and a handle while its set_result() is on the stack
  });
  f.add_done_callback([&](const Future<int>&) { order.push_back(2); });
  Promise<int>* p = &m->p;
  p->set_result(9);
  EXPECT_EQ(order, (std::vector<int>{1, 3, 2}));
  EXPECT_EQ(f.result(), 9);
}

TEST_F(FutureTest, CallbackOnPendingFutureAllocatesOnceAndNotWhenDone) {
  Made<> m;
  {
    AllocationCounter c;
    m.f.add_done_callback([](const Future<int>&) {});
    EXPECT_EQ(c.count(), 1u);
  }
  m.p.set_result(1);
  AllocationCounter c;
  m.f.add_done_callback([](const Future<int>&) {});
  EXPECT_EQ(c.count(), 0u);
}

// ==== test_future.py: states ===================================================================

TEST_F(FutureTest, Cancel) {
  auto f1 = pending_future();
  auto f2 = running_future();
  auto f3 = cancelled_future();
  auto f4 = cancelled_and_notified_future();
  auto f5 = exception_future();
  auto f6 = successful_future();

  EXPECT_TRUE(f1.f.cancel());
  EXPECT_TRUE(f1.f.cancelled());
  EXPECT_FALSE(f2.f.cancel());
  EXPECT_TRUE(f2.f.running());
  EXPECT_TRUE(f3.f.cancel());
  EXPECT_TRUE(f3.f.cancelled());
  EXPECT_TRUE(f4.f.cancel());
  EXPECT_TRUE(f4.f.cancelled());
  // f4 stays CANCELLED_AND_NOTIFIED: a second acknowledgement is an error.
  EXPECT_THROW(f4.p.set_running_or_notify_cancel(), InvalidStateError);
  EXPECT_FALSE(f5.f.cancel());
  EXPECT_FALSE(f5.f.cancelled());
  EXPECT_NE(f5.f.exception(), nullptr);
  EXPECT_FALSE(f6.f.cancel());
  EXPECT_EQ(f6.f.result(), 42);
}

TEST_F(FutureTest, CancelledDoneRunning) {
  ignore_reports();  // the exception future is never retrieved here
  auto pending = pending_future();
  auto running = running_future();
  auto cancelled = cancelled_future();
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  auto ok = successful_future();
  EXPECT_FALSE(pending.f.cancelled());
  EXPECT_FALSE(running.f.cancelled());
  EXPECT_TRUE(cancelled.f.cancelled());
  EXPECT_TRUE(notified.f.cancelled());
  EXPECT_FALSE(failed.f.cancelled());
  EXPECT_FALSE(ok.f.cancelled());

  EXPECT_FALSE(pending.f.done());
  EXPECT_FALSE(running.f.done());
  EXPECT_TRUE(cancelled.f.done());
  EXPECT_TRUE(notified.f.done());
  EXPECT_TRUE(failed.f.done());
  EXPECT_TRUE(ok.f.done());

  EXPECT_FALSE(pending.f.running());
  EXPECT_TRUE(running.f.running());
  EXPECT_FALSE(cancelled.f.running());
  EXPECT_FALSE(notified.f.running());
  EXPECT_FALSE(failed.f.running());
  EXPECT_FALSE(ok.f.running());
}

TEST_F(FutureTest, ResultWithTimeout) {
  auto pending = pending_future();
  auto running = running_future();
  auto cancelled = cancelled_future();
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  auto ok = successful_future();
  EXPECT_THROW((void)pending.f.result(0s), TimeoutError);
  EXPECT_THROW((void)running.f.result(0s), TimeoutError);
  EXPECT_THROW((void)cancelled.f.result(0s), CancelledError);
  EXPECT_THROW((void)notified.f.result(0s), CancelledError);
  EXPECT_THROW((void)failed.f.result(0s), OSError);
  EXPECT_EQ(ok.f.result(0s), 42);
  EXPECT_EQ(ok.f.result_until(Clock::now() - 1s), 42);
  EXPECT_THROW((void)pending.f.result_until(std::chrono::system_clock::now()), TimeoutError);
}

TEST_F(FutureTest, ResultTimeoutWaitsAtLeastTheTimeout) {
  auto pending = pending_future();
  auto took = elapsed([&] { EXPECT_THROW((void)pending.f.result(kShort), TimeoutError); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_LT(took, kGenerous);
  took = elapsed([&] { EXPECT_THROW((void)pending.f.exception(kShort), TimeoutError); });
  EXPECT_GE(took, kShort - kSlack);
  took = elapsed([&] {
    EXPECT_THROW((void)pending.f.result_until(std::chrono::system_clock::now() + kShort),
                 TimeoutError);
  });
  EXPECT_GE(took, kShort - kSlack);
  took = elapsed([&] { EXPECT_FALSE(pending.f.wait(kShort)); });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_FALSE(pending.f.done());
}

TEST_F(FutureTest, ResultWithSuccess) {
  auto m = pending_future();
  Bunch notifier(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);  // let the main thread block in result()
    m.p.set_result(42);
  });
  EXPECT_EQ(m.f.result(kGenerous), 42);
}

TEST_F(FutureTest, ResultWithCancel) {
  auto m = pending_future();
  Bunch notifier(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    EXPECT_TRUE(m.f.cancel());
  });
  EXPECT_THROW((void)m.f.result(kGenerous), CancelledError);
}

TEST_F(FutureTest, ExceptionWithTimeout) {
  auto pending = pending_future();
  auto running = running_future();
  auto cancelled = cancelled_future();
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  auto ok = successful_future();
  EXPECT_THROW((void)pending.f.exception(0s), TimeoutError);
  EXPECT_THROW((void)running.f.exception(0s), TimeoutError);
  EXPECT_THROW((void)cancelled.f.exception(0s), CancelledError);
  EXPECT_THROW((void)notified.f.exception(0s), CancelledError);
  const auto e = failed.f.exception(0s);
  ASSERT_NE(e, nullptr);
  EXPECT_THROW(std::rethrow_exception(e), OSError);
  EXPECT_EQ(ok.f.exception(0s), nullptr);
  EXPECT_EQ(ok.f.exception_until(Clock::now()), nullptr);
}

TEST_F(FutureTest, ExceptionWithSuccess) {
  auto m = pending_future();
  Bunch notifier(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    m.p.set_exception(std::make_exception_ptr(OSError("late")));
  });
  const auto e = m.f.exception(kGenerous);
  ASSERT_NE(e, nullptr);
  EXPECT_THROW(std::rethrow_exception(e), OSError);
}

TEST_F(FutureTest, MultipleSetResult) {
  auto m = pending_future();
  m.p.set_result(1);
  EXPECT_EQ(what_of([&] { m.p.set_result(2); }).rfind("InvalidStateError: FINISHED: ", 0), 0u);
  EXPECT_TRUE(m.f.done());
  EXPECT_EQ(m.f.result(), 1);
}

TEST_F(FutureTest, MultipleSetException) {
  auto m = pending_future();
  m.p.set_exception(std::make_exception_ptr(OSError("first")));
  EXPECT_EQ(what_of([&] {
              m.p.set_exception(std::make_exception_ptr(OSError("second")));
            }).rfind("InvalidStateError: FINISHED: ", 0),
            0u);
  EXPECT_THROW(m.p.set_result(3), InvalidStateError);
  EXPECT_EQ(what_of([&] { (void)m.f.result(); }), "first");
}

TEST_F(FutureTest, SetAfterCancelIsInvalid) {
  auto m = cancelled_future();
  EXPECT_EQ(what_of([&] { m.p.set_result(1); }).rfind("InvalidStateError: CANCELLED: ", 0), 0u);
  EXPECT_THROW(m.p.set_exception(std::make_exception_ptr(OSError("x"))), InvalidStateError);
  EXPECT_TRUE(m.f.cancelled());
}

TEST_F(FutureTest, SetRunningOrNotifyCancel) {
  auto m = pending_future();
  EXPECT_TRUE(m.p.set_running_or_notify_cancel());
  EXPECT_TRUE(m.f.running());
  EXPECT_EQ(
      what_of([&] { m.p.set_running_or_notify_cancel(); }).rfind("InvalidStateError: RUNNING: ", 0),
      0u);
  m.p.set_result(3);  // running → finished is allowed
  EXPECT_EQ(m.f.result(), 3);
  EXPECT_THROW(m.p.set_running_or_notify_cancel(), InvalidStateError);

  auto c = cancelled_future();
  EXPECT_FALSE(c.p.set_running_or_notify_cancel());
  EXPECT_TRUE(c.f.cancelled());
  EXPECT_THROW(c.p.set_running_or_notify_cancel(), InvalidStateError);
}

TEST_F(FutureTest, SetExceptionNeedsAnException) {
  auto m = pending_future();
  EXPECT_THROW(m.p.set_exception(nullptr), ValueError);
  EXPECT_FALSE(m.f.done());
}

// A value whose construction throws leaves the future pending (the promise may try again).
TEST_F(FutureTest, ThrowingValueConstructionLeavesTheFuturePending) {
  struct Picky {
    explicit Picky(int x) : v(x) {
      if (x < 0) throw ValueError("negative");
    }
    int v;
  };
  Made<Picky> m;
  EXPECT_THROW(m.p.set_result(-1), ValueError);
  EXPECT_FALSE(m.f.done());
  EXPECT_TRUE(m.f.cancel());  // still pending, so cancellable
  EXPECT_THROW(m.p.set_result(1), InvalidStateError);
}

TEST_F(FutureTest, InvalidHandlesThrowInvalidStateError) {
  Future<int> f;
  EXPECT_FALSE(f.valid());
  EXPECT_THROW((void)f.done(), InvalidStateError);
  EXPECT_THROW((void)f.running(), InvalidStateError);
  EXPECT_THROW((void)f.cancelled(), InvalidStateError);
  EXPECT_THROW(f.cancel(), InvalidStateError);
  EXPECT_THROW((void)f.result(), InvalidStateError);
  EXPECT_THROW((void)f.exception(), InvalidStateError);
  EXPECT_THROW(f.wait(), InvalidStateError);
  EXPECT_THROW(f.add_done_callback([](const Future<int>&) {}), InvalidStateError);
  EXPECT_THROW((void)f.then([](const Future<int>&) { return 1; }), InvalidStateError);
  EXPECT_EQ(what_of([&] { f.wait(); }), "InvalidStateError: the future has no shared state");

  Promise<int> p;
  Promise<int> q = std::move(p);
  EXPECT_FALSE(p.valid());  // NOLINT(bugprone-use-after-move): testing the moved-from state
  EXPECT_THROW((void)p.get_future(), InvalidStateError);
  EXPECT_THROW(p.set_result(1), InvalidStateError);
  EXPECT_TRUE(q.valid());

  Future<int> g = q.get_future();
  Future<int> h = std::move(g);
  EXPECT_FALSE(g.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(h.valid());
}

TEST_F(FutureTest, HandlesShareOneStateAndCompareEqual) {
  Promise<std::string> p;
  Future<std::string> a = p.get_future();
  Future<std::string> b = p.get_future();
  Future<std::string> c = a;
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(a == c);
  Promise<std::string> other;
  EXPECT_FALSE(a == other.get_future());
  p.set_result("shared");
  EXPECT_EQ(a.result(), "shared");
  EXPECT_EQ(b.result(), "shared");  // result() copies: every handle sees the value
  EXPECT_EQ(c.result(), "shared");
  AnyFuture any = a;
  EXPECT_TRUE(any == a);
  EXPECT_TRUE(any.done());
  other.set_result("x");
}

TEST_F(FutureTest, VoidFuture) {
  Promise<void> p;
  Future<void> f = p.get_future();
  EXPECT_FALSE(f.wait(0s));
  p.set_result();
  f.result();
  EXPECT_TRUE(f.wait(0s));
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_THROW(p.set_result(), InvalidStateError);
}

TEST_F(FutureTest, MoveOnlyResultMovesOutOnce) {
  Promise<std::unique_ptr<int>> p;
  Future<std::unique_ptr<int>> f = p.get_future();
  Future<std::unique_ptr<int>> g = f;
  p.set_result(std::make_unique<int>(7));
  std::unique_ptr<int> v = std::move(f).result();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 7);
  EXPECT_EQ(what_of([&] { (void)std::move(g).result(); }),
            "InvalidStateError: the result was already moved out");
  EXPECT_EQ(g.exception(), nullptr);  // still done, no exception
  EXPECT_TRUE(g.done());
}

// A copyable result: std::move(f).result() moves it out when f is the only handle and no callback
// was added (a large string is not copied), copies it otherwise; a moved-out value is never handed
// out again.
TEST_F(FutureTest, CopyableResultMovesOutOfTheOnlyHandle) {
  const std::string big(4096, 'x');
  {
    Promise<std::string> p;
    Future<std::string> f = p.get_future();
    p.set_result(big);
    {
      Future<std::string> peek = f;  // a second handle: the value is copied
      EXPECT_EQ(std::move(peek).result(), big);
    }
    EXPECT_EQ(f.result(), big);  // an lvalue always copies
    std::string moved = std::move(f).result();
    EXPECT_EQ(moved, big);
    EXPECT_EQ(what_of([&] { (void)f.result(); }),
              "InvalidStateError: the result was already moved out");
    Future<std::string> copy = f;
    EXPECT_EQ(what_of([&] { (void)std::move(copy).result(); }),
              "InvalidStateError: the result was already moved out");
  }
  {
    // A done-callback was added: it may still read the value, so the value is copied.
    Promise<std::string> p;
    Future<std::string> f = p.get_future();
    std::string seen;
    f.add_done_callback([&seen](const Future<std::string>& g) { seen = g.result(); });
    p.set_result(big);
    EXPECT_EQ(std::move(f).result(), big);
    EXPECT_EQ(f.result(), big);
    EXPECT_EQ(seen, big);
  }
  {
    // The same through a timeout form, and an exception is rethrown as always.
    Promise<std::string> p;
    Future<std::string> f = p.get_future();
    p.set_exception(std::make_exception_ptr(ValueError("no")));
    EXPECT_EQ(what_of([&] { (void)std::move(f).result(1s); }), "ValueError: no");
  }
}

// A Promise destroyed while its future is pending or running finishes it with BrokenExecutor and
// wakes a waiter already blocked on it; the exception is not reported as unobserved.
TEST_F(FutureTest, DestroyedPromiseBreaksTheFuture) {
  Future<int> pending;
  Future<int> running;
  {
    Promise<int> p;
    pending = p.get_future();
  }
  EXPECT_EQ(what_of([&] { (void)pending.result(0s); }),
            "BrokenExecutor: the promise was destroyed before it set a result");
  EXPECT_THROW((void)pending.result(), BrokenExecutor);

  auto p = std::make_unique<Promise<int>>();
  running = p->get_future();
  EXPECT_TRUE(p->set_running_or_notify_cancel());
  Bunch destroyer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    p.reset();
  });
  EXPECT_THROW((void)running.result(kGenerous), BrokenExecutor);

  // Unretrieved BrokenExecutor is not reported, and a dropped, never-fetched promise is quiet.
  {
    Promise<int> q;
    Future<int> dropped = q.get_future();
  }
  { Promise<int> never_fetched; }
}

TEST_F(FutureTest, DestroyedPromiseKeepsACancelledFutureCancelled) {
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
    EXPECT_TRUE(f.cancel());
  }
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW((void)f.result(), CancelledError);
}

TEST_F(FutureTest, PromiseMoveAssignmentBreaksTheOverwrittenFuture) {
  Promise<int> a;
  Future<int> fa = a.get_future();
  Promise<int> b;
  Future<int> fb = b.get_future();
  a = std::move(b);
  EXPECT_THROW((void)fa.result(0s), BrokenExecutor);
  a.set_result(2);
  EXPECT_EQ(fb.result(), 2);
}

// ==== concurrency: wake-ups and happens-before ==================================================

TEST_F(FutureTest, OneCompletionWakesEveryWaiter) {
  for (const std::size_t n : kThreadCounts) {
    Promise<int> p;
    Future<int> f = p.get_future();
    std::atomic<std::size_t> ok{0};
    Bunch waiters(n, [&](std::size_t i) {
      switch (i % 4) {
        case 0:
          if (f.result() == 7) ok.fetch_add(1);
          break;
        case 1:
          if (f.result(kGenerous) == 7) ok.fetch_add(1);
          break;
        case 2:
          if (f.exception(kGenerous) == nullptr) ok.fetch_add(1);
          break;
        default:
          f.wait();
          if (f.done()) ok.fetch_add(1);
      }
    });
    ASSERT_TRUE(waiters.wait_started());
    std::this_thread::sleep_for(kShort);  // most of them asleep in the kernel by now
    p.set_result(7);
    waiters.join();
    EXPECT_EQ(ok.load(), n) << n << " waiters";
  }
}

TEST_F(FutureTest, EverythingBeforeCompletionIsVisibleToWaiters) {
  for (int round = 0; round < 200; ++round) {
    Promise<int> p;
    Future<int> f = p.get_future();
    std::vector<int> data;  // written by the producer, read by the consumers, no lock
    Bunch consumers(2, [&](std::size_t) {
      EXPECT_EQ(f.result(kGenerous), 3);
      EXPECT_EQ(data.size(), 3u);
    });
    Bunch producer(1, [&](std::size_t) {
      data = {1, 2, 3};
      p.set_result(3);
    });
    producer.join();
    consumers.join();
  }
}

// ==== the task path ==============================================================================

TEST_F(FutureTest, MakeTaskRunsTheCallableInOneAllocation) {
  AllocationCounter c;
  auto [task, future] = detail::make_task([](int a, int b) { return a * b; }, 6, 7);
  EXPECT_EQ(c.count(), 1u) << "state + callable + arguments must share one allocation";
  EXPECT_FALSE(future.done());
  EXPECT_FALSE(future.running());
  task->run();
  EXPECT_EQ(c.count(), 1u) << "running and completing must not allocate";
  EXPECT_EQ(future.result(), 42);
  task.reset();
  EXPECT_EQ(future.result(), 42);
  EXPECT_EQ(c.count(), 1u);
}

TEST_F(FutureTest, PromiseThenAndStopTokenAllocationCounts) {
  AllocationCounter c;
  Promise<int> p;
  EXPECT_EQ(c.count(), 1u);
  Future<int> f = p.get_future();
  auto g = f.then([](const Future<int>& x) { return x.result() + 1; });
  EXPECT_EQ(c.count(), 2u) << "then() is one allocation";
  p.set_result(1);
  EXPECT_EQ(g.result(), 2);
  EXPECT_EQ(c.count(), 2u);
  auto [task, future] = detail::make_task([](std::stop_token) { return 1; });
  EXPECT_EQ(c.count(), 4u) << "a stop-token task adds only its std::stop_source";
  task->run();
  EXPECT_EQ(future.result(), 1);
}

TEST_F(FutureTest, TaskExceptionAlwaysReachesTheFuture) {
  auto [task, future] = detail::make_task([]() -> int { throw OSError("in task"); });
  task->run();
  EXPECT_TRUE(future.done());
  EXPECT_EQ(what_of([&] { (void)future.result(); }), "in task");
  auto [t2, f2] = detail::make_task([] { throw 42; });  // not a std::exception
  t2->run();
  try {
    f2.result();
    ADD_FAILURE() << "no exception";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
}

TEST_F(FutureTest, TaskArgumentsAreDecayedCopiesPassedAsRvalues) {
  int counter = 0;
  auto p = std::make_unique<int>(5);
  auto [task, future] = detail::make_task(
      [](std::unique_ptr<int> v, int& c, const std::string& s) {
        ++c;
        return *v + static_cast<int>(s.size());
      },
      std::move(p), std::ref(counter), "abc");
  task->run();
  EXPECT_EQ(future.result(), 8);
  EXPECT_EQ(counter, 1);
}

// The callable and its arguments are destroyed before the future becomes done, so a waiter that
// sees the result also sees them gone (and a callable holding its own future breaks the cycle).
TEST_F(FutureTest, TaskDestroysTheCallableBeforeCompleting) {
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> watch = token;
  auto [task, future] = detail::make_task([t = std::move(token)] { return *t; });
  Bunch runner(1, [&](std::size_t) { task->run(); });
  EXPECT_EQ(future.result(kGenerous), 1);
  EXPECT_TRUE(watch.expired());
}

TEST_F(FutureTest, TaskCancelledBeforeItRunsNeverRuns) {
  bool ran = false;
  auto [task, future] = detail::make_task([&ran] { ran = true; });
  EXPECT_TRUE(future.cancel());
  task->run();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(future.cancelled());
  EXPECT_THROW(future.result(), CancelledError);
}

TEST_F(FutureTest, AbandonCancelsOrFinishesWithTheReason) {
  auto [t1, f1] = detail::make_task([] { return 1; });
  t1->abandon();
  EXPECT_TRUE(f1.cancelled());

  auto [t2, f2] = detail::make_task([] { return 2; });
  t2->abandon(std::make_exception_ptr(BrokenThreadPool("initializer failed")));
  EXPECT_EQ(what_of([&] { (void)f2.result(); }), "BrokenThreadPool: initializer failed");

  auto [t3, f3] = detail::make_task([] { return 3; });
  EXPECT_TRUE(f3.cancel());
  t3->abandon(std::make_exception_ptr(BrokenThreadPool()));
  EXPECT_TRUE(f3.cancelled());

  // An abandoned task whose future was dropped is not reported (the executor broke, not the task).
  auto [t4, f4] = detail::make_task([] { return 4; });
  f4 = Future<int>();
  t4->abandon(std::make_exception_ptr(BrokenThreadPool()));
}

TEST_F(FutureTest, UnrunTaskDestroyedBreaksItsFuture) {
  Future<int> f;
  {
    auto made = detail::make_task([] { return 1; });
    f = made.future;
  }
  EXPECT_EQ(what_of([&] { (void)f.result(0s); }),
            "BrokenExecutor: the task was destroyed before it ran");
}

TEST_F(FutureTest, RunnablePtrReleaseAdoptAndIntrusiveLink) {
  auto [t1, f1] = detail::make_task([] { return 1; });
  auto [t2, f2] = detail::make_task([] { return 2; });
  // An intrusive queue: raw pointers linked through `next`.
  detail::Runnable* head = t1.release();
  head->next = t2.release();
  EXPECT_FALSE(t1);
  std::vector<const detail::FutureStateBase*> order;
  while (head != nullptr) {
    detail::RunnablePtr owned(head);  // adopt it back
    head = head->next;
    order.push_back(&owned->future_state());
    owned->run();
  }
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], detail::FutureAccess::state(f1));
  EXPECT_EQ(order[1], detail::FutureAccess::state(f2));
  EXPECT_EQ(f1.result(), 1);
  EXPECT_EQ(f2.result(), 2);
}

TEST_F(FutureTest, MoveOnlyTaskResult) {
  auto [task, future] = detail::make_task([] { return std::make_unique<std::string>("owned"); });
  task->run();
  EXPECT_EQ(*std::move(future).result(), "owned");
}

// A stop-token task gets a token wired to cancel(): cancel() on the running task returns false
// (it is running, as in Python) but asks it to stop.
TEST_F(FutureTest, CancelRequestsStopOnARunningStopTokenTask) {
  Event started;
  auto [task, future] = detail::make_task(
      [&started](std::stop_token st, int x) {
        started.set();
        while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
        return x;
      },
      7);
  Bunch runner(1, [&](std::size_t) { task->run(); });
  ASSERT_TRUE(started.wait(kGenerous));
  EXPECT_TRUE(future.running());
  EXPECT_FALSE(future.cancel());
  EXPECT_EQ(future.result(kGenerous), 7);
  EXPECT_FALSE(future.cancelled());
}

TEST_F(FutureTest, CancelBeforeRunDoesNotStartAStopTokenTask) {
  bool ran = false;
  auto [task, future] = detail::make_task([&ran](std::stop_token) { ran = true; });
  EXPECT_TRUE(future.cancel());
  task->run();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(future.cancelled());
}

// ==== then() =====================================================================================

TEST_F(FutureTest, ThenRunsInTheCompletingThread) {
  Made<> m;
  std::uint64_t ran_in = 0;
  Future<std::string> g = m.f.then([&](const Future<int>& f) {
    ran_in = get_ident();
    return std::to_string(f.result());
  });
  EXPECT_FALSE(g.done());
  const std::uint64_t completer = in_thread([&] {
    m.p.set_result(12);
    return get_ident();
  });
  EXPECT_EQ(g.result(), "12");
  EXPECT_EQ(ran_in, completer);
}

TEST_F(FutureTest, ThenOnADoneFutureRunsNow) {
  auto m = successful_future(2);
  bool ran = false;
  auto g = m.f.then([&](const Future<int>& f) {
    ran = true;
    return f.result() * 10;
  });
  EXPECT_TRUE(ran);
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.result(), 20);
}

TEST_F(FutureTest, ThenChainsAndPropagatesExceptions) {
  Made<> m;
  auto last = m.f.then([](const Future<int>& f) { return f.result() + 1; })
                  .then([](const Future<int>& f) -> int {
                    if (f.result() > 0) throw OSError("too big");
                    return 0;
                  })
                  .then([](const Future<int>& f) { return f.result() * 2; });  // rethrows
  m.p.set_result(1);
  EXPECT_EQ(what_of([&] { (void)last.result(); }), "too big");
}

TEST_F(FutureTest, ThenVoidAndCancelledSource) {
  Made<> m;
  int calls = 0;
  Future<void> g = m.f.then([&](const Future<int>& f) {
    ++calls;
    EXPECT_TRUE(f.cancelled());
  });
  EXPECT_TRUE(m.f.cancel());
  g.result();
  EXPECT_EQ(calls, 1);
}

TEST_F(FutureTest, CancellingTheContinuationSkipsFn) {
  Made<> m;
  bool ran = false;
  auto g = m.f.then([&](const Future<int>&) {
    ran = true;
    return 1;
  });
  EXPECT_TRUE(g.cancel());
  m.p.set_result(1);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(g.cancelled());
  EXPECT_EQ(m.f.result(), 1);
}

// ThreadExecutor: a duck-typed executor (submit(callable) → Future) running each task in a thread.
class ThreadExecutor {
 public:
  ThreadExecutor() = default;
  ThreadExecutor(const ThreadExecutor&) = delete;
  ThreadExecutor& operator=(const ThreadExecutor&) = delete;
  ~ThreadExecutor() {
    std::lock_guard lk(mu_);
    for (auto& t : threads_) t->join();
  }
  template <class F>
  auto submit(F&& f) {
    if (fail) throw RuntimeError("cannot schedule new futures after shutdown");
    auto [task, future] = detail::make_task(std::forward<F>(f));
    detail::Runnable* raw = task.release();
    std::lock_guard lk(mu_);
    threads_.push_back(std::make_unique<Thread>([raw] {
      detail::RunnablePtr owned(raw);
      owned->run();
    }));
    threads_.back()->start();
    submitted.fetch_add(1);
    return std::move(future);
  }
  std::atomic<int> submitted{0};
  std::atomic<bool> fail{false};

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Thread>> threads_;
};

TEST_F(FutureTest, ThenOnAnExecutor) {
  ThreadExecutor ex;
  Made<> m;
  const std::uint64_t here = get_ident();
  std::atomic<std::uint64_t> ran_in{0};
  auto g = m.f.then(ex, [&](const Future<int>& f) {
    ran_in = get_ident();
    return f.result() * 3;
  });
  auto h =
      m.f.then(ex, [](const Future<int>& f) -> int { throw OSError(std::to_string(f.result())); });
  auto v = m.f.then(ex, [](const Future<int>&) {});
  EXPECT_EQ(ex.submitted.load(), 0);
  m.p.set_result(5);
  EXPECT_EQ(g.result(kGenerous), 15);
  EXPECT_EQ(what_of([&] { (void)h.result(kGenerous); }), "5");
  v.result(kGenerous);
  EXPECT_EQ(ex.submitted.load(), 3);
  EXPECT_NE(ran_in.load(), here);
  EXPECT_NE(ran_in.load(), 0u);
}

TEST_F(FutureTest, ThenOnAnExecutorThatRefuses) {
  ThreadExecutor ex;
  ex.fail = true;
  auto m = successful_future(1);
  auto g = m.f.then(ex, [](const Future<int>& f) { return f.result(); });
  EXPECT_EQ(what_of([&] { (void)g.result(0s); }),
            "RuntimeError: cannot schedule new futures after shutdown");
}

TEST_F(FutureTest, ThenOnAnExecutorCancelledBeforeTheSourceCompletes) {
  ThreadExecutor ex;
  Made<> m;
  auto g = m.f.then(ex, [](const Future<int>& f) { return f.result(); });
  EXPECT_TRUE(g.cancel());
  m.p.set_result(1);
  EXPECT_EQ(ex.submitted.load(), 0);
  EXPECT_TRUE(g.cancelled());
}

TEST_F(FutureTest, ThenOnAnExecutorMoveOnlyResult) {
  ThreadExecutor ex;
  auto m = successful_future(4);
  auto g = m.f.then(ex, [](const Future<int>& f) { return std::make_unique<int>(f.result()); });
  EXPECT_EQ(*std::move(g).result(kGenerous), 4);
}

// ==== unobserved exceptions =====================================================================

TEST_F(FutureTest, UnobservedExceptionIsReportedOnceByTheLastHandle) {
  expect_reports(1);
  Promise<int> p;
  Future<int> a = p.get_future();
  Future<int> b = a;
  AnyFuture c = a;
  p.set_exception(std::make_exception_ptr(OSError("lost")));
  a = Future<int>();
  b = Future<int>();
  EXPECT_TRUE(reports().empty()) << "reported while a handle (c) was alive";
  c = AnyFuture();
  auto got = reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message, "lost");
  EXPECT_EQ(got[0].thread, current_thread().name());
  // A later handle from the promise does not report it again.
  { Future<int> again = p.get_future(); }
  EXPECT_EQ(reports().size(), 1u);
}

TEST_F(FutureTest, RetrievedExceptionsAreNotReported) {
  {
    auto m = exception_future();
    EXPECT_THROW((void)m.f.result(), OSError);
  }
  {
    auto m = exception_future();
    Future<int> other = m.f;
    EXPECT_NE(other.exception(), nullptr);  // retrieved through another handle
  }
  {
    auto m = exception_future();
    AnyFuture any = m.f;
    EXPECT_NE(any.exception(0s), nullptr);
  }
  {
    Made<> m;  // a callback that looks counts as an observer
    m.f.add_done_callback([](const Future<int>& f) { (void)f.exception(); });
    m.f = Future<int>();
    m.p.set_exception(std::make_exception_ptr(OSError("seen by the callback")));
  }
  EXPECT_TRUE(reports().empty());
}

TEST_F(FutureTest, WaitAndDoneDoNotCountAsRetrieval) {
  expect_reports(1);
  {
    auto m = exception_future();
    m.f.wait();
    EXPECT_TRUE(m.f.done());
  }
  EXPECT_EQ(reports().size(), 1u);
}

// A task whose future was dropped before it finished reports its exception in the thread that
// ran it — the exception is never silently lost.
TEST_F(FutureTest, ExceptionOfATaskWithoutFutureIsReportedByTheRunner) {
  expect_reports(1);
  auto [task, future] = detail::make_task([]() -> int { throw OSError("nobody listens"); });
  future = Future<int>();
  Thread runner(Thread::Options{.name = "runner"}, [t = &task] { (*t)->run(); });
  runner.start();
  runner.join();
  auto got = reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message, "nobody listens");
  EXPECT_EQ(got[0].thread, "runner");
}

TEST_F(FutureTest, CancelledAndBrokenAreNotReported) {
  { auto m = cancelled_future(); }
  {
    Promise<int> p;
    Future<int> f = p.get_future();
  }  // BrokenExecutor, unretrieved
  {
    auto [task, future] = detail::make_task([] { return 1; });
    future.cancel();
    task->run();
  }
  EXPECT_TRUE(reports().empty());
}

TEST_F(FutureTest, ThenContinuationThatIgnoresTheErrorLeavesItUnobserved) {
  expect_reports(1);
  Made<> m;
  auto g = m.f.then([](const Future<int>&) { return 1; });  // never looks at the source
  m.f = Future<int>();
  m.p.set_exception(std::make_exception_ptr(OSError("ignored")));
  EXPECT_EQ(g.result(), 1);
  auto got = reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message, "ignored");
}

TEST_F(FutureTest, ConcurrentHandleDropsReportExactlyOnce) {
  const std::size_t rounds = 100 / kScale;
  expect_reports(rounds);
  for (std::size_t r = 0; r < rounds; ++r) {
    auto [task, future] = detail::make_task([]() -> int { throw OSError("race"); });
    std::vector<Future<int>> copies(3, future);
    future = Future<int>();
    Bunch droppers(3, [&](std::size_t i) {
      if (i == 0) task->run();
      copies[i] = Future<int>();
    });
    droppers.join();
  }
  EXPECT_EQ(reports().size(), rounds);
}

// ==== test_as_completed.py ======================================================================

TEST_F(FutureTest, AsCompletedNoTimeout) {
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  auto ok = successful_future();
  Made<> f1;
  Made<> f2;
  Bunch completers(2, [&](std::size_t i) {
    std::this_thread::sleep_for(kShort);
    (i == 0 ? f1 : f2).p.set_result(42);
  });
  std::vector<Future<int>> all{notified.f, failed.f, ok.f, f1.f, f2.f};
  std::vector<Future<int>> seen;
  for (auto f : as_completed(all)) seen.push_back(f);
  ASSERT_EQ(seen.size(), 5u);
  for (const auto& f : all) EXPECT_TRUE(contains(seen, f));
  EXPECT_NE(failed.f.exception(), nullptr);
}

TEST_F(FutureTest, AsCompletedYieldsDoneOnesFirstThenInCompletionOrder) {
  auto a = successful_future(1);
  Made<> b;
  auto c = exception_future();
  Made<> d;
  auto e = successful_future(5);
  auto range = as_completed(std::vector<Future<int>>{a.f, b.f, c.f, d.f, e.f});
  EXPECT_EQ(range.size(), 5u);
  auto it = range.begin();
  EXPECT_TRUE(*it == a.f);
  ++it;
  EXPECT_TRUE(*it == c.f);
  ++it;
  EXPECT_TRUE(*it == e.f);
  ++it;
  EXPECT_FALSE(it == range.end());
  d.p.set_result(4);
  EXPECT_TRUE(*it == d.f);
  ++it;
  b.p.set_result(2);
  EXPECT_TRUE(*it == b.f);
  ++it;
  EXPECT_TRUE(it == range.end());
  EXPECT_EQ(range.remaining(), 0u);
  EXPECT_NE(c.f.exception(), nullptr);
}

TEST_F(FutureTest, AsCompletedTimesOut) {
  for (const auto timeout : {0ms, std::chrono::milliseconds(kShort)}) {
    auto notified = cancelled_and_notified_future();
    auto failed = exception_future();
    auto ok = successful_future();
    Made<> never;
    std::vector<Future<int>> completed;
    std::string error;
    const auto took = elapsed([&] {
      try {
        for (auto f :
             as_completed(std::vector<Future<int>>{notified.f, failed.f, ok.f, never.f}, timeout)) {
          completed.push_back(f);
        }
      } catch (const TimeoutError& e) {
        error = e.what();
      }
    });
    EXPECT_EQ(error, "TimeoutError: 1 (of 4) futures unfinished");
    EXPECT_EQ(completed.size(), 3u);
    EXPECT_FALSE(contains(completed, never.f));
    EXPECT_GE(took, timeout - kSlack);
    EXPECT_NE(failed.f.exception(), nullptr);
  }
}

TEST_F(FutureTest, AsCompletedTimeoutMessage) {  // test_correct_timeout_exception_msg
  auto notified = cancelled_and_notified_future();
  auto pending = pending_future();
  auto running = running_future();
  auto ok = successful_future();
  auto range = as_completed(std::vector<Future<int>>{notified.f, pending.f, running.f, ok.f}, 0s);
  std::string error;
  try {
    for (auto f : range) (void)f;
  } catch (const TimeoutError& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "TimeoutError: 2 (of 4) futures unfinished");
  // The range stays usable: what finished since is yielded, then it times out again.
  pending.p.set_result(1);
  auto it = range.begin();
  EXPECT_TRUE(*it == pending.f);
  ++it;
  EXPECT_THROW((void)*it, TimeoutError);
}

TEST_F(FutureTest, AsCompletedTimeoutIsMeasuredFromTheCall) {
  Made<> never;
  auto range = as_completed(std::vector<Future<int>>{never.f}, kShort);
  std::this_thread::sleep_for(kShort);
  const auto took = elapsed([&] { EXPECT_THROW((void)*range.begin(), TimeoutError); });
  EXPECT_LT(took, kShort);  // the time already passed before the first dereference
}

TEST_F(FutureTest, AsCompletedDuplicatesAreYieldedOnce) {
  Made<> m;
  Bunch completer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    m.p.set_result(1);
  });
  std::size_t n = 0;
  for (auto f : as_completed(std::vector<Future<int>>{m.f, m.f, m.f})) {
    EXPECT_TRUE(f == m.f);
    ++n;
  }
  EXPECT_EQ(n, 1u);
  auto ok = successful_future();
  auto range = as_completed(std::vector<Future<int>>{ok.f, m.f, ok.f});
  EXPECT_EQ(range.size(), 2u);
}

// test_free_reference_yielded_future: the range keeps no reference to a future it has yielded.
TEST_F(FutureTest, AsCompletedFreesYieldedFutures) {
  const long before = Tracked::live.load();
  std::vector<Promise<Tracked>> promises(8);
  std::vector<Future<Tracked>> fs;
  for (auto& p : promises) fs.push_back(p.get_future());
  promises[0].set_result(0);
  promises[0] = Promise<Tracked>();  // only the future holds that state now
  {
    Promise<Tracked> done;
    fs.push_back(done.get_future());
    done.set_result(100);
  }
  auto range = as_completed(std::move(fs), 0s);
  std::size_t yielded = 0;
  try {
    for (auto f : range) {
      EXPECT_EQ(Tracked::live.load(), before + 2 - static_cast<long>(yielded));
      f = Future<Tracked>();  // our handle was the last one: the state and its value are gone
      ++yielded;
      EXPECT_EQ(Tracked::live.load(), before + 2 - static_cast<long>(yielded));
    }
    ADD_FAILURE() << "no TimeoutError";
  } catch (const TimeoutError&) {
  }
  EXPECT_EQ(yielded, 2u);
  EXPECT_EQ(Tracked::live.load(), before);
}

// A million futures (fewer under sanitizers) through as_completed: every state is freed as soon as
// the caller drops the yielded handle, so the live count only goes down.
TEST_F(FutureTest, AsCompletedMillionFuturesMemoryStaysFlat) {
  const std::size_t n = 1'000'000 / kScale;
  const long before = Tracked::live.load();
  std::vector<Future<Tracked>> fs;
  fs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Promise<Tracked> p;
    fs.push_back(p.get_future());
    p.set_result(static_cast<int>(i));
  }
  ASSERT_EQ(Tracked::live.load() - before, static_cast<long>(n));
  std::size_t k = 0;
  long worst = 0;
  for (auto f : as_completed(std::move(fs))) {
    ++k;
    // Alive: the not-yet-yielded ones plus `f`.
    worst = std::max(worst, Tracked::live.load() - before - static_cast<long>(n - k + 1));
  }
  EXPECT_EQ(k, n);
  EXPECT_EQ(worst, 0) << "yielded futures were kept alive";
  EXPECT_EQ(Tracked::live.load(), before);
}

// The same with futures finished by another thread while the range waits on them (the
// registered-waiter path), in batches so that the range also blocks.
TEST_F(FutureTest, AsCompletedManyPendingFuturesMemoryStaysFlat) {
  const std::size_t n = 100'000 / kScale;
  const long before = Tracked::live.load();
  std::vector<Promise<Tracked>> promises(n);
  std::vector<Future<Tracked>> fs;
  fs.reserve(n);
  for (auto& p : promises) fs.push_back(p.get_future());
  auto range = as_completed(std::move(fs));
  Bunch producer(1, [&](std::size_t) {
    for (std::size_t i = 0; i < n; ++i) {
      promises[n - 1 - i].set_result(static_cast<int>(i));
      promises[n - 1 - i] = Promise<Tracked>();  // drop the producer's reference too
    }
  });
  std::size_t k = 0;
  for (auto f : range) {
    ++k;
    EXPECT_EQ(f.result().v, static_cast<int>(k - 1));  // completion order
    if (k % 1000 == 0) {
      EXPECT_LE(Tracked::live.load() - before, static_cast<long>(n - k + 2));
    }
  }
  producer.join();
  EXPECT_EQ(k, n);
  EXPECT_EQ(Tracked::live.load(), before);
}

// An abandoned range leaves nothing registered in the states: finishing them afterwards touches
// no freed memory (the ASan build checks) and their own callbacks still run.
TEST_F(FutureTest, AbandonedAsCompletedUnregisters) {
  std::vector<Made<>> made(10);
  std::vector<Future<int>> fs;
  for (auto& m : made) fs.push_back(m.f);
  made[3].p.set_result(3);
  {
    auto range = as_completed(fs);
    auto it = range.begin();
    EXPECT_TRUE(*it == made[3].f);
    ++it;
    made[5].p.set_result(5);
    EXPECT_TRUE(*it == made[5].f);
    // leave with 8 unfinished futures
  }
  { auto unused = as_completed(fs); }
  int callbacks = 0;
  for (auto& m : made) m.f.add_done_callback([&](const Future<int>&) { ++callbacks; });
  for (std::size_t i = 0; i < made.size(); ++i) {
    if (i != 3 && i != 5) made[i].p.set_result(static_cast<int>(i));
  }
  EXPECT_EQ(callbacks, 10);
}

TEST_F(FutureTest, AsCompletedMixedTypesThroughAnyFuture) {
  Promise<std::string> ps;
  Promise<void> pv;
  auto ok = successful_future(1);
  std::vector<AnyFuture> fs{ps.get_future(), pv.get_future(), ok.f};
  Bunch completer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    pv.set_result();
    ps.set_result("s");
  });
  std::vector<AnyFuture> order;
  for (auto f : as_completed(fs, kGenerous)) order.push_back(f);
  ASSERT_EQ(order.size(), 3u);
  EXPECT_TRUE(order[0] == ok.f);
  EXPECT_TRUE(order[1] == fs[1]);
  EXPECT_TRUE(order[2] == fs[0]);
}

TEST_F(FutureTest, AsCompletedRejectsInvalidFutures) {
  EXPECT_THROW((void)as_completed(std::vector<Future<int>>{Future<int>()}), InvalidStateError);
  EXPECT_THROW((void)wait(std::vector<Future<int>>{Future<int>()}), InvalidStateError);
  std::size_t n = 0;
  for (auto f : as_completed(std::vector<Future<int>>{})) {
    (void)f;
    ++n;
  }
  EXPECT_EQ(n, 0u);
}

// ==== test_wait.py ===============================================================================

TEST_F(FutureTest, WaitDuplicates) {  // test_20369
  auto m = successful_future(2);
  auto [done, not_done] = wait(std::vector<Future<int>>{m.f, m.f}, ALL_COMPLETED);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0] == m.f);
  EXPECT_TRUE(not_done.empty());
}

TEST_F(FutureTest, WaitFirstCompleted) {
  Made<> f1;
  Made<> f2;
  Bunch completer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    f1.p.set_result(42);
  });
  auto r = wait(std::vector<Future<int>>{f1.f, f2.f}, FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == f1.f);
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_TRUE(r.not_done[0] == f2.f);
}

// Deviation from test_first_completed: concur counts a cancelled future as done at once (CPython
// leaves CANCELLED, not yet acknowledged by an executor, in not_done).
TEST_F(FutureTest, WaitCountsACancelledFutureAsDone) {
  auto cancelled = cancelled_future();
  Made<> pending;
  auto r = wait(std::vector<Future<int>>{cancelled.f, pending.f}, FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == cancelled.f);
  Made<> later;
  Bunch canceller(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    EXPECT_TRUE(later.f.cancel());
  });
  r = wait(std::vector<Future<int>>{later.f, pending.f}, kGenerous, FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == later.f);
}

TEST_F(FutureTest, WaitFirstCompletedSomeAlreadyCompleted) {
  auto notified = cancelled_and_notified_future();
  auto ok = successful_future();
  Made<> f1;
  auto r = wait(std::vector<Future<int>>{notified.f, ok.f, f1.f}, FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 2u);
  EXPECT_TRUE(contains(r.done, notified.f));
  EXPECT_TRUE(contains(r.done, ok.f));
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_TRUE(r.not_done[0] == f1.f);
}

TEST_F(FutureTest, WaitFirstException) {
  Made<> f1;
  Made<> f2;
  Made<> f3;
  Bunch completer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    f1.p.set_result(42);  // a plain completion does not end a FIRST_EXCEPTION wait
    std::this_thread::sleep_for(kShort);
    f2.p.set_exception(std::make_exception_ptr(OSError("this is an exception")));
  });
  auto r = wait(std::vector<Future<int>>{f1.f, f2.f, f3.f}, FIRST_EXCEPTION);
  ASSERT_EQ(r.done.size(), 2u);
  EXPECT_TRUE(contains(r.done, f1.f));
  EXPECT_TRUE(contains(r.done, f2.f));
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_TRUE(r.not_done[0] == f3.f);
  EXPECT_NE(f2.f.exception(), nullptr);
}

TEST_F(FutureTest, WaitFirstExceptionSomeAlreadyComplete) {
  auto ok = successful_future();
  auto cancelled = cancelled_future();
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  Made<> f2;
  auto r = wait(std::vector<Future<int>>{ok.f, cancelled.f, notified.f, failed.f, f2.f},
                FIRST_EXCEPTION);
  EXPECT_EQ(r.done.size(), 4u);  // CPython: 3 (its CANCELLED_FUTURE stays in not_done)
  EXPECT_TRUE(contains(r.done, failed.f));
  EXPECT_TRUE(contains(r.done, cancelled.f));
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_TRUE(r.not_done[0] == f2.f);
  EXPECT_NE(failed.f.exception(), nullptr);
}

TEST_F(FutureTest, WaitFirstExceptionOneAlreadyFailed) {
  auto failed = exception_future();
  Made<> f1;
  auto r = wait(std::vector<Future<int>>{failed.f, f1.f}, FIRST_EXCEPTION);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == failed.f);
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_NE(failed.f.exception(), nullptr);
}

TEST_F(FutureTest, WaitFirstExceptionIgnoresCancellation) {
  Made<> a;
  Made<> b;
  Bunch completer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    EXPECT_TRUE(a.f.cancel());
    std::this_thread::sleep_for(kShort);
    b.p.set_result(1);
  });
  auto r = wait(std::vector<Future<int>>{a.f, b.f}, kGenerous, FIRST_EXCEPTION);
  EXPECT_EQ(r.done.size(), 2u);  // no exception: it waited for all
  EXPECT_TRUE(r.not_done.empty());
}

TEST_F(FutureTest, WaitAllCompleted) {
  auto ok = successful_future();
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  Made<> f1;
  Made<> f2;
  Bunch completers(2, [&](std::size_t i) {
    std::this_thread::sleep_for(kShort);
    if (i == 0) {
      f1.p.set_exception(std::make_exception_ptr(OSError("division by zero")));
    } else {
      f2.p.set_result(42);
    }
  });
  auto r = wait(std::vector<Future<int>>{ok.f, notified.f, failed.f, f1.f, f2.f}, ALL_COMPLETED);
  EXPECT_EQ(r.done.size(), 5u);
  EXPECT_TRUE(r.not_done.empty());
  EXPECT_NE(failed.f.exception(), nullptr);
  EXPECT_NE(f1.f.exception(), nullptr);
}

TEST_F(FutureTest, WaitTimeout) {
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  auto ok = successful_future();
  Made<> never;
  DoneAndNotDone<int> r;
  const auto took = elapsed([&] {
    r = wait(std::vector<Future<int>>{notified.f, failed.f, ok.f, never.f}, kShort, ALL_COMPLETED);
  });
  EXPECT_GE(took, kShort - kSlack);
  EXPECT_EQ(r.done.size(), 3u);
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_TRUE(r.not_done[0] == never.f);
  r = wait_until(std::vector<Future<int>>{never.f}, Clock::now() + kShort);
  EXPECT_EQ(r.not_done.size(), 1u);
  EXPECT_NE(failed.f.exception(), nullptr);
}

TEST_F(FutureTest, WaitPendingCallsRace) {  // test_pending_calls_race
  std::vector<Promise<int>> promises(100);
  std::vector<Future<int>> fs;
  for (auto& p : promises) fs.push_back(p.get_future());
  Event go;
  Bunch completers(4, [&](std::size_t t) {
    go.wait();
    for (std::size_t i = t; i < promises.size(); i += 4) promises[i].set_result(1);
  });
  go.set();
  auto r = wait(fs, kGenerous, ALL_COMPLETED);
  EXPECT_EQ(r.done.size(), 100u);
  EXPECT_TRUE(r.not_done.empty());
}

TEST_F(FutureTest, WaitMixedTypesThroughAnyFuture) {
  Promise<void> pv;
  auto ok = successful_future();
  Bunch completer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    pv.set_result();
  });
  auto r = wait(std::vector<AnyFuture>{pv.get_future(), ok.f}, kGenerous);
  EXPECT_EQ(r.done.size(), 2u);
  auto r2 = wait(std::vector<AnyFuture>{ok.f}, FIRST_COMPLETED);
  EXPECT_EQ(r2.done.size(), 1u);
}

// ==== the WaitHelper hook =======================================================================

// RecordingHelper stands in for a pool worker: it counts calls, may "run the task" (on_help), and
// then waits plainly, or declines.
class RecordingHelper final : public detail::WaitHelper {
 public:
  bool help_until(detail::FutureStateBase& s, const detail::Deadline& d) override {
    ++calls;
    if (on_help) on_help();
    if (throw_deadlock) throw DeadlockError("waiting on a task only this worker could run");
    if (decline) return false;
    return s.wait_plain(d);
  }
  int calls = 0;
  bool decline = false;
  bool throw_deadlock = false;
  std::function<void()> on_help;
};

TEST_F(FutureTest, BlockingWaitsAskTheThreadsWaitHelperFirst) {
  RecordingHelper helper;
  detail::ScopedWaitHelper scope(&helper);
  EXPECT_EQ(detail::wait_helper(), &helper);

  Made<> m;
  helper.on_help = [&] { m.p.set_result(5); };  // "helping" runs the awaited task
  EXPECT_EQ(m.f.result(), 5);
  EXPECT_EQ(helper.calls, 1);
  EXPECT_EQ(m.f.result(), 5);  // done: no wait, no helper
  EXPECT_EQ(helper.calls, 1);

  Made<> w;
  helper.on_help = [&] { w.p.set_result(1); };
  w.f.wait();
  EXPECT_EQ(helper.calls, 2);

  Made<> e;
  helper.on_help = [&] { e.p.set_result(1); };
  EXPECT_EQ(e.f.exception(kGenerous), nullptr);
  EXPECT_EQ(helper.calls, 3);

  Made<> a;
  Made<> b;
  helper.on_help = [&] {
    if (!a.f.done()) a.p.set_result(1);
  };
  std::size_t n = 0;
  for (auto f : as_completed(std::vector<Future<int>>{a.f})) n += f.done() ? 1 : 0;
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(helper.calls, 4);
  helper.on_help = [&] { b.p.set_result(2); };
  auto r = wait(std::vector<Future<int>>{a.f, b.f});
  EXPECT_EQ(r.done.size(), 2u);
  EXPECT_EQ(helper.calls, 5);
}

TEST_F(FutureTest, ADecliningHelperFallsBackToThePlainWait) {
  RecordingHelper helper;
  helper.decline = true;
  detail::ScopedWaitHelper scope(&helper);
  Made<> m;
  Bunch completer(1, [&](std::size_t) {
    std::this_thread::sleep_for(kShort);
    m.p.set_result(3);
  });
  EXPECT_EQ(m.f.result(kGenerous), 3);
  EXPECT_EQ(helper.calls, 1);
  Made<> never;
  EXPECT_THROW((void)never.f.result(kShort), TimeoutError);
}

TEST_F(FutureTest, HelperExceptionsPropagateOutOfTheWait) {
  RecordingHelper helper;
  helper.throw_deadlock = true;
  Made<> m;
  {
    detail::ScopedWaitHelper scope(&helper);
    EXPECT_THROW((void)m.f.result(), DeadlockError);
    EXPECT_THROW((void)as_completed(std::vector<Future<int>>{m.f}).begin().operator*(),
                 DeadlockError);
  }
  EXPECT_EQ(detail::wait_helper(), nullptr);
  EXPECT_THROW((void)m.f.result(0s), TimeoutError);  // without the helper: a plain poll
  EXPECT_EQ(in_thread([] { return detail::wait_helper(); }), nullptr);  // per thread
}

}  // namespace
