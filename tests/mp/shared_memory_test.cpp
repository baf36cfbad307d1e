// tests/mp/shared_memory_test.cpp — SharedMemory, Value, Array (concur/mp/shared_memory.hpp) and
// the process-shared robust Lock / RLock (concur/mp/synchronize.hpp).
//
// Cross-process tests fork() from the (single-threaded) test process: no test here starts a
// thread before forking. A child only touches inherited memory and locks, then _exit()s; the
// parent waits with a bounded waitpid loop, and TearDown kills and reaps any child left behind.
#include "concur/mp/shared_memory.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concur/mp/synchronize.hpp"
#include "support/test_support.hpp"

namespace concur::mp {
namespace {

using namespace std::chrono_literals;
using concur::testing::kGenerous;
using concur::testing::kShort;
using concur::testing::kSlack;

constexpr auto kChildTimeout = 60s;

class SharedMemoryTest : public ::testing::Test {
 protected:
  // fork_child(fn) runs fn in a forked child that then _exit()s with fn's return value (2 if fn
  // throws). Returns the child's pid.
  template <class Fn>
  pid_t fork_child(Fn fn) {
    const pid_t pid = ::fork();  // NOLINT(concurrency-mt-unsafe): tests fork single-threaded
    if (pid < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
    if (pid == 0) {
      int code = 2;
      try {
        code = fn();
      } catch (...) {
      }
      ::_exit(code);
    }
    children_.push_back(pid);
    return pid;
  }

  // wait_child(pid) waits (bounded) for the child and returns its exit code, or -signal when a
  // signal killed it, or -1000 when it did not finish in kChildTimeout (it is then killed).
  int wait_child(pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + kChildTimeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        std::erase(children_, pid);
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return -WTERMSIG(status);
        return -999;
      }
      if (r < 0 && errno != EINTR) return -998;
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        std::erase(children_, pid);
        return -1000;
      }
      std::this_thread::sleep_for(1ms);
    }
  }

  void TearDown() override {
    const bool leftover = !children_.empty();
    for (const pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    children_.clear();
    EXPECT_FALSE(leftover) << "a child process outlived its test";
  }

  std::vector<pid_t> children_;
};

// wait_for_flag(flag) polls a shared flag for up to kGenerous.
bool wait_for_flag(const Value<int>& flag) {
  return concur::testing::wait_until(
      [&] { return __atomic_load_n(&flag.get_obj(), __ATOMIC_ACQUIRE) != 0; });
}
void set_flag(Value<int>& flag) { __atomic_store_n(&flag.get_obj(), 1, __ATOMIC_RELEASE); }

std::string unique_name(const char* stem) {
  static int n = 0;
  return std::string("concur_test_") + stem + "_" + std::to_string(::getpid()) + "_" +
         std::to_string(n++);
}

// ---- SharedMemory in one process

TEST_F(SharedMemoryTest, CreateAutoNameAndAttach) {
  auto shm = SharedMemory::create(100);
  EXPECT_EQ(shm.name().rfind("/concur_", 0), 0U) << shm.name();
  EXPECT_EQ(shm.size(), 100U);
  ASSERT_NE(shm.data(), nullptr);
  EXPECT_EQ(shm.buf().size(), 100U);
  for (std::byte b : shm.buf()) EXPECT_EQ(b, std::byte{0});

  auto other = SharedMemory::attach(shm.name());
  EXPECT_EQ(other.name(), shm.name());
  EXPECT_EQ(other.size(), 100U);
  EXPECT_NE(other.data(), shm.data());  // two views of one block
  shm.buf()[7] = std::byte{42};
  EXPECT_EQ(other.buf()[7], std::byte{42});
  shm.unlink();
}

TEST_F(SharedMemoryTest, AutoNamesDiffer) {
  auto a = SharedMemory::create(1);
  auto b = SharedMemory::create(1);
  EXPECT_NE(a.name(), b.name());
  a.unlink();
  b.unlink();
}

TEST_F(SharedMemoryTest, NameGetsLeadingSlash) {
  const std::string name = unique_name("slash");
  auto shm = SharedMemory::create(8, name);
  EXPECT_EQ(shm.name(), "/" + name);
  auto again = SharedMemory::attach(name);  // with or without the slash
  EXPECT_EQ(again.size(), 8U);
  shm.unlink();
}

TEST_F(SharedMemoryTest, DoubleCreateThrowsFileExistsError) {
  const std::string name = "/" + unique_name("dup");
  auto shm = SharedMemory::create(16, name);
  try {
    (void)SharedMemory::create(16, name);
    FAIL() << "expected FileExistsError";
  } catch (const FileExistsError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("FileExistsError: [Errno 17]", 0), 0U) << e.what();
    EXPECT_EQ(e.errno_code(), EEXIST);
    EXPECT_EQ(e.filename(), name);
  }
  EXPECT_THROW((void)SharedMemory::create(16, name), OSError);
  EXPECT_THROW((void)SharedMemory::create(16, name), Error);
  shm.unlink();
}

TEST_F(SharedMemoryTest, AttachAfterUnlinkThrowsFileNotFoundError) {
  auto shm = SharedMemory::create(32);
  const std::string name = shm.name();
  shm.unlink();
  try {
    (void)SharedMemory::attach(name);
    FAIL() << "expected FileNotFoundError";
  } catch (const FileNotFoundError& e) {
    EXPECT_EQ(std::string(e.what()),
              "FileNotFoundError: [Errno 2] No such file or directory: '" + name + "'");
  }
  EXPECT_THROW(shm.unlink(), FileNotFoundError);  // already gone
  // The creator's mapping stays valid after unlink.
  shm.buf()[31] = std::byte{1};
  EXPECT_EQ(shm.buf()[31], std::byte{1});
}

TEST_F(SharedMemoryTest, AttachMissingThrows) {
  EXPECT_THROW((void)SharedMemory::attach(unique_name("missing")), FileNotFoundError);
}

TEST_F(SharedMemoryTest, InvalidNameIsOSError) {
  try {
    (void)SharedMemory::create(8, "/a/b");
    FAIL() << "expected OSError";
  } catch (const OSError& e) {
    EXPECT_EQ(e.errno_code(), EINVAL);
    EXPECT_EQ(std::string(e.what()).rfind("OSError: [Errno 22]", 0), 0U) << e.what();
  }
}

TEST_F(SharedMemoryTest, ZeroSizeIsValueError) {
  EXPECT_THROW((void)SharedMemory::create(0), ValueError);
}

TEST_F(SharedMemoryTest, CloseIsIdempotentAndMovesTransfer) {
  auto shm = SharedMemory::create(64);
  const std::string name = shm.name();
  SharedMemory moved = std::move(shm);
  EXPECT_EQ(moved.size(), 64U);
  EXPECT_EQ(shm.data(), nullptr);  // NOLINT: the moved-from state is documented
  EXPECT_EQ(shm.size(), 0U);       // NOLINT: the moved-from state is documented
  moved.close();
  moved.close();
  EXPECT_EQ(moved.data(), nullptr);
  EXPECT_TRUE(moved.buf().empty());
  EXPECT_EQ(moved.name(), name);
  moved.unlink();  // the name survives close()
  EXPECT_THROW((void)SharedMemory::attach(name), FileNotFoundError);
}

// ---- SharedMemory across processes

TEST_F(SharedMemoryTest, ForkedChildWritesParentReads) {
  auto shm = SharedMemory::create(4096);
  std::byte* data = shm.data();
  const pid_t pid = fork_child([data] {
    for (int i = 0; i < 4096; ++i) data[i] = static_cast<std::byte>(i % 251);
    return 0;
  });
  ASSERT_EQ(wait_child(pid), 0);
  auto view = SharedMemory::attach(shm.name());  // a second view sees the child's bytes too
  for (std::size_t i = 0; i < 4096; ++i) {
    ASSERT_EQ(shm.buf()[i], static_cast<std::byte>(i % 251)) << i;
    ASSERT_EQ(view.buf()[i], static_cast<std::byte>(i % 251)) << i;
  }
  shm.unlink();
}

// ---- Value and Array

TEST_F(SharedMemoryTest, ValueAndArrayBasics) {
  Value<double> v(3.5);
  EXPECT_EQ(v.value(), 3.5);
  v.set_value(-1.25);
  EXPECT_EQ(v.value(), -1.25);
  EXPECT_EQ(v.get_obj(), -1.25);
  {
    std::scoped_lock guard(v.get_lock());
    v.set_value(v.value() + 1);  // value()/set_value() re-enter the RLock
  }
  EXPECT_EQ(v.value(), -0.25);

  Array<int> zeros(5);
  EXPECT_EQ(zeros.size(), 5U);
  for (int x : zeros) EXPECT_EQ(x, 0);
  Array<int> a{1, 2, 3};
  EXPECT_EQ(a.size(), 3U);
  EXPECT_EQ(a[2], 3);
  a[2] = 7;
  EXPECT_EQ(a.data()[2], 7);
  EXPECT_TRUE(a.get_lock().try_acquire());
  a.get_lock().release();

  Array<int> empty(0);
  EXPECT_EQ(empty.size(), 0U);
  EXPECT_EQ(empty.begin(), empty.end());
}

TEST_F(SharedMemoryTest, LockFalseHasNoLock) {
  Value<int> v(5, Options{.lock = false});
  EXPECT_EQ(v.value(), 5);
  v.set_value(6);
  EXPECT_EQ(v.get_obj(), 6);
  try {
    (void)v.get_lock();
    FAIL() << "expected InvalidStateError";
  } catch (const InvalidStateError& e) {
    EXPECT_EQ(std::string(e.what()), "InvalidStateError: Value was created with lock = false");
  }
  Array<int> a(3, Options{.lock = false});
  EXPECT_THROW((void)a.get_lock(), InvalidStateError);
}

TEST_F(SharedMemoryTest, ValueAndArrayMove) {
  Value<int> v(9);
  Value<int> w = std::move(v);
  EXPECT_EQ(w.value(), 9);
  Array<int> a{4, 5};
  Array<int> b(1);
  b = std::move(a);
  EXPECT_EQ(b.size(), 2U);
  EXPECT_EQ(b[1], 5);
}

// The notes' scenario: Value('d', 3.1415927) and Array('i', range(10)) negated by a child.
TEST_F(SharedMemoryTest, ValueAndArrayNegatedByForkedChild) {
  Value<double> num(3.1415927);
  Array<int> arr{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const pid_t pid = fork_child([&] {
    num.set_value(-num.value());
    for (int& x : arr) x = -x;
    return 0;
  });
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_EQ(num.value(), -3.1415927);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(arr[static_cast<std::size_t>(i)], -i);
}

// A locked Value's value() / set_value() are atomic across processes: the parent never reads a
// half-written struct while a child rewrites it.
TEST_F(SharedMemoryTest, LockedValueReadsAreNeverTorn) {
  struct Pair {
    long long a;
    long long b;
  };
  constexpr long long kWrites = 20'000;
  Value<Pair> pair(Pair{0, 0});
  Value<int> done(0, Options{.lock = false});
  const pid_t pid = fork_child([&] {
    for (long long i = 1; i <= kWrites; ++i) pair.set_value(Pair{i, -i});
    set_flag(done);
    return 0;
  });
  long long reads = 0;
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  while (__atomic_load_n(&done.get_obj(), __ATOMIC_ACQUIRE) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    const Pair p = pair.value();
    ASSERT_EQ(p.a, -p.b) << "torn read after " << reads << " reads";
    ++reads;
  }
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(pair.value().a, kWrites);
}

// Two processes add 1 and 3 to a shared Value 10,000 times each, holding its lock: exact total.
TEST_F(SharedMemoryTest, TwoChildrenAddUnderTheLockExactly) {
  constexpr int kRounds = 10'000;
  Value<int> total(0);
  auto adder = [&](int step) {
    return [&total, step] {
      for (int i = 0; i < kRounds; ++i) {
        std::scoped_lock guard(total.get_lock());
        total.get_obj() += step;
      }
      return 0;
    };
  };
  const pid_t a = fork_child(adder(1));
  const pid_t b = fork_child(adder(3));
  EXPECT_EQ(wait_child(a), 0);
  EXPECT_EQ(wait_child(b), 0);
  EXPECT_EQ(total.value(), 4 * kRounds);
}

// Without the lock updates may be lost (never asserted: a race need not happen), never invented.
TEST_F(SharedMemoryTest, TwoChildrenAddWithoutTheLockNeverExceed) {
  constexpr int kRounds = 10'000;
  Value<int> total(0, Options{.lock = false});
  auto adder = [&](int step) {
    return [&total, step] {
      volatile int* p = &total.get_obj();
      for (int i = 0; i < kRounds; ++i) *p = *p + step;
      return 0;
    };
  };
  const pid_t a = fork_child(adder(1));
  const pid_t b = fork_child(adder(3));
  EXPECT_EQ(wait_child(a), 0);
  EXPECT_EQ(wait_child(b), 0);
  EXPECT_LE(total.value(), 4 * kRounds);
  EXPECT_GT(total.value(), 0);
}

// ---- mp::Lock / mp::RLock

TEST_F(SharedMemoryTest, LockBasicsInOneProcess) {
  Lock lock;
  lock.acquire();
  EXPECT_FALSE(lock.try_acquire());
  EXPECT_THROW(lock.acquire(), DeadlockError);
  EXPECT_THROW((void)lock.acquire(kShort), DeadlockError);
  lock.release();
  EXPECT_THROW(lock.release(), RuntimeError);
  { std::scoped_lock guard(lock); }
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
  EXPECT_TRUE(lock.acquire_until(std::chrono::steady_clock::now() + kShort));
  lock.release();
}

// Threads of one process are excluded too, and the lock works with the std lock adaptors. (No
// fork in this test: the threads are joined before it returns.)
TEST_F(SharedMemoryTest, LockExcludesThreads) {
  for (const std::size_t n : concur::testing::kThreadCounts) {
    Lock lock;
    long counter = 0;
    constexpr int kRounds = 2'000;
    concur::testing::run_threads(n, [&](std::size_t i) {
      for (int r = 0; r < kRounds; ++r) {
        if (i % 2 == 0) {
          std::scoped_lock guard(lock);
          ++counter;
        } else {
          std::unique_lock guard(lock, std::defer_lock);
          ASSERT_TRUE(guard.try_lock_for(kGenerous));
          ++counter;
        }
      }
    });
    EXPECT_EQ(counter, static_cast<long>(n) * kRounds) << n << " threads";
  }
}

TEST_F(SharedMemoryTest, RLockIsRecursive) {
  RLock lock;
  lock.acquire();
  EXPECT_TRUE(lock.try_acquire());
  EXPECT_TRUE(lock.acquire(kShort));
  lock.release();
  lock.release();
  lock.release();
  try {
    lock.release();
    FAIL() << "expected RuntimeError";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(std::string(e.what()), "RuntimeError: cannot release un-acquired lock");
  }
}

TEST_F(SharedMemoryTest, LockExcludesAcrossProcessesAndTimesOut) {
  Lock lock;
  Value<int> held(0, Options{.lock = false});
  Value<int> go(0, Options{.lock = false});
  const pid_t pid = fork_child([&] {
    lock.acquire();
    set_flag(held);
    // Hold until the parent says so (bounded, so a failing parent cannot strand the child).
    for (int i = 0; i < 30'000 && __atomic_load_n(&go.get_obj(), __ATOMIC_ACQUIRE) == 0; ++i) {
      ::usleep(1000);
    }
    lock.release();
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(held));
  EXPECT_FALSE(lock.try_acquire());
  const auto waited = concur::testing::elapsed([&] { EXPECT_FALSE(lock.acquire(kShort)); });
  EXPECT_GE(waited, kShort - kSlack);
  set_flag(go);
  EXPECT_TRUE(lock.acquire(kGenerous));
  lock.release();
  EXPECT_EQ(wait_child(pid), 0);
}

// A holder that exits without releasing: the next acquire reports it and does not hang.
TEST_F(SharedMemoryTest, OwnerExitedHoldingLockIsReported) {
  Lock lock;
  const pid_t pid = fork_child([&] {
    lock.acquire();
    return 0;  // _exit with the lock held
  });
  ASSERT_EQ(wait_child(pid), 0);
  try {
    lock.acquire();
    lock.release();
    FAIL() << "expected OwnerDiedError";
  } catch (const OwnerDiedError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("OwnerDiedError: ", 0), 0U) << e.what();
  }
  // Recovered and released: usable again, by every form.
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
  lock.acquire();
  lock.release();
}

TEST_F(SharedMemoryTest, OwnerDeathSeenByTimedAndTryForms) {
  Lock timed;
  RLock tried;
  const pid_t pid = fork_child([&] {
    timed.acquire();
    tried.acquire();
    tried.acquire();
    return 0;
  });
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_THROW((void)timed.acquire(kGenerous), OwnerDiedError);
  EXPECT_TRUE(timed.acquire(kGenerous));
  timed.release();
  EXPECT_FALSE(tried.try_acquire());  // repaired and released, reported as "not taken"
  EXPECT_TRUE(tried.try_acquire());
  tried.release();
}

// kill -9 of the holder while another process is blocked in acquire(): the waiter wakes with
// OwnerDiedError, and the lock works afterwards.
TEST_F(SharedMemoryTest, HolderKilledWhileAnotherProcessWaits) {
  constexpr int kGotOwnerDied = 7;
  Lock lock;
  Value<int> held(0, Options{.lock = false});
  Value<int> waiting(0, Options{.lock = false});
  const pid_t holder = fork_child([&] {
    lock.acquire();
    set_flag(held);
    for (int i = 0; i < 60'000; ++i) ::usleep(1000);  // killed long before this ends
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(held));
  const pid_t waiter = fork_child([&] {
    set_flag(waiting);
    try {
      if (!lock.acquire(std::chrono::seconds(30))) return 3;
    } catch (const OwnerDiedError&) {
      return kGotOwnerDied;
    }
    lock.release();
    return 4;
  });
  ASSERT_TRUE(wait_for_flag(waiting));
  std::this_thread::sleep_for(100ms);  // let the waiter block in the kernel (not required)
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  EXPECT_EQ(wait_child(holder), -SIGKILL);
  EXPECT_EQ(wait_child(waiter), kGotOwnerDied);
  EXPECT_TRUE(lock.acquire(kGenerous));
  lock.release();
}

// A killed holder with nobody waiting: the parent's later acquire() does not hang either.
TEST_F(SharedMemoryTest, HolderKilledThenParentAcquires) {
  RLock lock;
  Value<int> held(0, Options{.lock = false});
  const pid_t holder = fork_child([&] {
    lock.acquire();
    set_flag(held);
    for (int i = 0; i < 60'000; ++i) ::usleep(1000);
    return 0;
  });
  ASSERT_TRUE(wait_for_flag(held));
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  EXPECT_EQ(wait_child(holder), -SIGKILL);
  EXPECT_THROW(lock.acquire(), OwnerDiedError);
  lock.acquire();
  lock.release();
}

}  // namespace
}  // namespace concur::mp
