// Tests for concur/local.hpp (threading.local): per-thread values, init per thread, destruction
// at thread exit or with the Local, slot reuse never leaking an old value.
#include "concur/local.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "concur/sync/event.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

namespace {

using namespace concur;
using namespace concur::testing;

class LocalTest : public QuiescentTest {};

// Counted tracks constructions and destructions of per-thread values.
struct Counted {
  static inline std::atomic<int> alive{0};
  int value = 0;
  Counted() { ++alive; }
  explicit Counted(int v) : value(v) { ++alive; }
  Counted(const Counted& o) : value(o.value) { ++alive; }
  Counted(Counted&& o) noexcept : value(o.value) { ++alive; }
  Counted& operator=(const Counted&) = default;
  ~Counted() { --alive; }
};

TEST_F(LocalTest, EachThreadSeesItsOwnValue) {
  for (std::size_t n : kThreadCounts) {
    Local<int> mydata;
    *mydata = -1;
    std::atomic<int> mismatches{0};
    run_threads(n, [&](std::size_t i) {
      if (mydata.get() != 0) ++mismatches;  // fresh, value-initialized
      mydata.get() = static_cast<int>(i);
      std::this_thread::yield();
      if (*mydata != static_cast<int>(i)) ++mismatches;
    });
    EXPECT_EQ(mismatches.load(), 0);
    EXPECT_EQ(*mydata, -1);  // the main thread's value is untouched
  }
}

TEST_F(LocalTest, InitRunsOncePerThreadInThatThread) {
  std::atomic<int> calls{0};
  Local<std::string> name([&calls] {
    ++calls;
    return current_thread().name();
  });
  Thread t(Thread::Options{"worker-7", {}}, [&name] {
    EXPECT_EQ(name.get(), "worker-7");
    EXPECT_EQ(name->size(), 8u);
  });
  t.start();
  t.join();
  EXPECT_EQ(name.get(), "MainThread");
  EXPECT_EQ(name.get(), "MainThread");
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(LocalTest, ValuesDieWhenTheirThreadExits) {
  const int before = Counted::alive;
  Local<Counted> local;
  Thread t([&local] {
    local->value = 5;
    EXPECT_TRUE(local.has_value());
  });
  t.start();
  t.join();
  EXPECT_EQ(Counted::alive.load(), before);
  EXPECT_FALSE(local.has_value());  // the main thread never touched it
}

TEST_F(LocalTest, ValuesDieWithTheLocalWhileThreadsLive) {
  const int before = Counted::alive;
  auto local = std::make_unique<Local<Counted>>();
  Event touched, release;
  Thread t([&] {
    local->get().value = 1;
    touched.set();
    release.wait();  // the thread outlives the Local: its exit must not destroy twice
  });
  t.start();
  ASSERT_TRUE(touched.wait(kGenerous));
  local->get();
  EXPECT_EQ(Counted::alive.load(), before + 2);
  local.reset();
  EXPECT_EQ(Counted::alive.load(), before);
  release.set();
  t.join();
  EXPECT_EQ(Counted::alive.load(), before);
}

TEST_F(LocalTest, ReusedSlotStartsEmpty) {
  std::optional<Local<int>> a;
  a.emplace();
  *a.value() = 42;
  a.reset();
  Local<int> b;  // likely takes a's slot index
  EXPECT_FALSE(b.has_value());
  EXPECT_EQ(b.get(), 0);
}

TEST_F(LocalTest, WorksAsAMember) {
  struct Connection {
    Local<std::vector<int>> scratch;
  };
  Connection c;
  c.scratch->push_back(1);
  Thread t([&c] { EXPECT_TRUE(c.scratch->empty()); });
  t.start();
  t.join();
  EXPECT_EQ(c.scratch->size(), 1u);
}

TEST_F(LocalTest, ManyLocalsManyThreads) {
  std::vector<std::unique_ptr<Local<Counted>>> locals;
  for (int i = 0; i < 20; ++i) locals.push_back(std::make_unique<Local<Counted>>());
  const int before = Counted::alive;
  run_threads(8, [&](std::size_t id) {
    for (auto& l : locals) l->get().value = static_cast<int>(id);
    for (auto& l : locals) EXPECT_EQ(l->get().value, static_cast<int>(id));
  });
  EXPECT_EQ(Counted::alive.load(), before);
}

}  // namespace
