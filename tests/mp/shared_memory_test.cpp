// tests/mp/shared_memory_test.cpp — SharedMemory, Value, Array (concur/mp/shared_memory.hpp),
// shared with forked children and passed through dumps() / loads() as spawn does.
//
// Cross-process tests fork() from the (single-threaded) test process: no test here starts a
// thread before forking. A child only touches inherited memory and locks, then _exit()s; the
// parent waits with a bounded waitpid loop, and TearDown kills and reaps any child left behind
// (tests/mp/fork_support.hpp). The Lock / RLock tests are in synchronize_test.cpp.
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

#include "concur/mp/serialize.hpp"
#include "mp/fork_support.hpp"
#include "support/test_support.hpp"

namespace concur::mp {
namespace {

using namespace std::chrono_literals;
using concur::testing::kGenerous;
using concur::testing::kShort;
using concur::testing::kSlack;

using testing::dup_all;
using testing::ForkTest;
using testing::kChildWait;
using testing::open_fd_count;
using testing::set_flag;
using testing::wait_for_flag;

class SharedMemoryTest : public ForkTest {};

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

// ---- Value and Array passed to another process (dumps / loads, as spawn does)

// In the child, loads() maps dup()s of the payload's descriptors into fresh objects — the way a
// spawned child gets them — so the child's Value and Array share memory and lock with the parent's.
TEST_F(SharedMemoryTest, ValueAndArrayThroughDumpsShareMemoryAndLock) {
  Value<int> total(10);
  Array<double> arr{1.5, 2.5, 3.5};
  Value<int> held(0, Options{.lock = false});
  Value<int> go(0, Options{.lock = false});
  const Payload payload = dumps(total, arr);
  ASSERT_EQ(payload.fds.size(), 4U);  // value + its lock, array + its lock
  const pid_t pid = fork_child([&] {
    Value<int> v;
    Array<double> a;
    loads(payload.bytes, dup_all(payload.fds), v, a);
    // get_obj(), not value(): the parent may already hold the lock.
    if (v.get_obj() != 10 || a.size() != 3 || a[1] != 2.5) return 3;
    // The parent holds total's lock: the child's loaded lock is the same lock.
    if (!wait_for_flag(held)) return 4;
    if (v.get_lock().try_acquire()) return 5;
    set_flag(go);
    if (!v.get_lock().acquire(kChildWait)) return 6;
    v.get_obj() += 5;
    v.get_lock().release();
    for (double& x : a) x = -x;
    return 0;
  });
  total.get_lock().acquire();
  set_flag(held);
  ASSERT_TRUE(wait_for_flag(go));
  total.get_obj() += 1;
  total.get_lock().release();
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_EQ(total.value(), 16);
  EXPECT_EQ(arr[0], -1.5);
  EXPECT_EQ(arr[2], -3.5);
}

TEST_F(SharedMemoryTest, UnlockedValueAndEmptyArrayThroughDumps) {
  Value<long> v(7, Options{.lock = false});
  Array<int> empty(0);
  const Payload payload = dumps(v, empty);
  ASSERT_EQ(payload.fds.size(), 3U);
  Value<long> w;
  Array<int> e{1, 2};
  loads(payload.bytes, dup_all(payload.fds), w, e);
  EXPECT_THROW((void)w.get_lock(), InvalidStateError);
  w.set_value(8);
  EXPECT_EQ(v.value(), 8);
  EXPECT_EQ(e.size(), 0U);
}

TEST_F(SharedMemoryTest, ValueWithoutDescriptorChannelIsPicklingError) {
  Value<int> v(1);
  std::string bytes;
  detail::StringOutBuf buf(bytes);
  std::ostream os(&buf);
  OutputArchive ar(os);
  EXPECT_THROW(ar(v), PicklingError);  // plain bytes cannot carry a shared object
}

TEST_F(SharedMemoryTest, WrongSizeRegionIsUnpicklingError) {
  Array<int> three{1, 2, 3};
  const Payload payload = dumps(three);
  Value<long long> v;  // expects one 8-byte element, gets a 12-byte region
  EXPECT_THROW(loads(payload.bytes, dup_all(payload.fds), v), UnpicklingError);
  EXPECT_EQ(v.value(), 0);  // unchanged
}

// Creating, sending and destroying Values and Arrays leaves no descriptor behind.
TEST_F(SharedMemoryTest, NoDescriptorLeaks) {
  const int before = open_fd_count();
  for (int i = 0; i < 20; ++i) {
    Value<int> v(i);
    Array<int> a(8);
    const Payload payload = dumps(v, a);
    Value<int> w;
    Array<int> b;
    loads(payload.bytes, dup_all(payload.fds), w, b);
    EXPECT_EQ(w.value(), i);
    Value<int> moved = std::move(w);
    EXPECT_EQ(moved.value(), i);
  }
  EXPECT_EQ(open_fd_count(), before);
}

}  // namespace
}  // namespace concur::mp
