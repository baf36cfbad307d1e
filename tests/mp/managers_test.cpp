// tests/mp/managers_test.cpp — Manager, DictProxy, ListProxy, QueueProxy (concur/mp/managers.hpp).
// References: CPython's _test_multiprocessing.py (_TestContainers) and the notes'
// Manager().dict() filled by two processes, and Manager().Queue(10) between two Pool tasks; then
// what Python's proxies do after fork (a connection of their own), the listener's user checks on
// both ends, and a server out of descriptors.
#include "concur/mp/managers.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "concur/mp/pool.hpp"
#include "fork_support.hpp"
#include "support/test_support.hpp"

namespace concur::mp {

// The notes: def add_data(p_dict, key, value): p_dict[key] = value
void add_data(DictProxy<std::string, int> p_dict, std::string key, int value) {
  p_dict.set(key, value);
}
CONCUR_TASK(add_data);

void count_up(DictProxy<std::string, long> d, int times) {
  for (int i = 0; i < times; ++i) (void)d.increment("hits");
}
CONCUR_TASK(count_up);

void append_many(ListProxy<int> l, int base, int times) {
  for (int i = 0; i < times; ++i) l.append(base + i);
}
CONCUR_TASK(append_many);

// pop_all(l, d): pops items until the list is empty, recording each popped value in d.
void pop_all(ListProxy<int> l, DictProxy<int, int> seen) {
  for (;;) {
    try {
      (void)seen.increment(l.pop());
    } catch (const IndexError&) {
      return;
    }
  }
}
CONCUR_TASK(pop_all);

using namespace std::chrono_literals;

// The notes' producer and consumer over Manager().Queue(10).
void queue_producer(QueueProxy<std::string> queue) { queue.put("a"); }
CONCUR_TASK(queue_producer);
std::string queue_consumer(QueueProxy<std::string> queue) { return queue.get(60s); }
CONCUR_TASK(queue_consumer);

void put_range(QueueProxy<int> q, int from, int count) {
  for (int i = from; i < from + count; ++i) q.put(i);
}
CONCUR_TASK(put_range);
// take_until_none(q, got): gets until it meets -1, recording each item in got.
void take_until_none(QueueProxy<int> q, ListProxy<int> got) {
  for (;;) {
    const int v = q.get(60s);
    if (v < 0) return;
    got.append(v);
    q.task_done();
  }
}
CONCUR_TASK(take_until_none);
// wait_for_item(q, asking): says it is about to get, then blocks in get() until killed.
void wait_for_item(QueueProxy<int> q, Event& asking) {
  asking.set();
  (void)q.get();
}
CONCUR_TASK(wait_for_item);

// A pool initializer that keeps a queue proxy; put_pids(n) puts the worker's pid n times on it.
std::optional<QueueProxy<int>> g_pid_queue;
void keep_queue(QueueProxy<int> q) { g_pid_queue = q; }
CONCUR_TASK(keep_queue);
int put_pids(int n) {
  for (int i = 0; i < n; ++i) g_pid_queue->put(static_cast<int>(::getpid()));
  return static_cast<int>(::getpid());
}
CONCUR_TASK(put_pids);

namespace {

class ManagerTest : public ::testing::TestWithParam<StartMethod> {
 protected:
  void TearDown() override { EXPECT_TRUE(active_children().empty()); }

  [[nodiscard]] ProcessOptions opts() const { return ProcessOptions{.start_method = GetParam()}; }

  static void finish(std::vector<Process>& ps) {
    for (auto& p : ps) {
      if (!p.join(60s)) {
        ADD_FAILURE() << p.name() << " hung";
        p.kill();
        p.join();
      }
      EXPECT_EQ(p.exitcode(), 0) << p.name();
    }
  }
};

TEST(ManagerBasicsTest, DictOperations) {
  Manager m;
  EXPECT_GT(m.pid(), 0);
  auto d = m.dict<std::string, int>();
  EXPECT_EQ(d.size(), 0u);
  d.set("b", 2);
  d.set("a", 1);
  d.set("c", 3);
  d.set("b", 20);  // overwrite keeps the position
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.at("b"), 20);
  EXPECT_EQ(d.get("a"), 1);
  EXPECT_EQ(d.get("zz"), std::nullopt);
  EXPECT_EQ(d.get("zz", -1), -1);
  EXPECT_THROW((void)d.at("zz"), KeyError);
  EXPECT_TRUE(d.contains("c"));
  EXPECT_FALSE(d.contains("zz"));
  EXPECT_EQ(d.keys(), (std::vector<std::string>{"b", "a", "c"}));  // insertion order
  EXPECT_EQ(d.values(), (std::vector<int>{20, 1, 3}));
  EXPECT_EQ(d.items().front(), (std::pair<std::string, int>{"b", 20}));
  EXPECT_EQ(d.pop("a"), 1);
  EXPECT_THROW((void)d.pop("a"), KeyError);
  d.erase("c");
  EXPECT_THROW(d.erase("c"), KeyError);
  EXPECT_EQ(d.setdefault("n", 7), 7);
  EXPECT_EQ(d.setdefault("n", 8), 7);
  d.update({{"x", 10}, {"y", 11}});
  EXPECT_EQ(d.copy(), (std::map<std::string, int>{{"b", 20}, {"n", 7}, {"x", 10}, {"y", 11}}));
  EXPECT_EQ(d.increment("n"), 8);
  EXPECT_EQ(d.increment("new", 5), 5);
  d.clear();
  EXPECT_EQ(d.size(), 0u);
}

TEST(ManagerBasicsTest, DictOfFloatsAndStructuredValues) {
  Manager m;
  auto f = m.dict<int, double>();
  EXPECT_DOUBLE_EQ(f.increment(1, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(f.increment(1, 0.25), 0.75);
  auto v = m.dict<std::string, std::vector<std::string>>();
  v.set("k", {"a", "b"});
  EXPECT_EQ(v.at("k"), (std::vector<std::string>{"a", "b"}));
}

TEST(ManagerBasicsTest, ListOperations) {
  Manager m;
  auto l = m.list<int>();
  l.append(1);
  l.extend({2, 3, 4});
  EXPECT_EQ(l.size(), 4u);
  EXPECT_EQ(l.at(0), 1);
  EXPECT_EQ(l.at(-1), 4);
  EXPECT_THROW((void)l.at(4), IndexError);
  EXPECT_THROW((void)l.at(-5), IndexError);
  l.set(1, 20);
  EXPECT_THROW(l.set(9, 0), IndexError);
  EXPECT_EQ(l.pop(), 4);
  EXPECT_EQ(l.pop(0), 1);
  l.insert(0, 7);
  l.insert(100, 9);  // clamped to the end, as Python
  l.insert(-100, 5);
  EXPECT_EQ(l.copy(), (std::vector<int>{5, 7, 20, 3, 9}));
  EXPECT_EQ(l.index(20), 2u);
  EXPECT_THROW((void)l.index(99), ValueError);
  l.append(7);
  EXPECT_EQ(l.count(7), 2u);
  l.remove(7);
  EXPECT_EQ(l.copy(), (std::vector<int>{5, 20, 3, 9, 7}));
  EXPECT_THROW(l.remove(99), ValueError);
  l.clear();
  EXPECT_THROW((void)l.pop(), IndexError);
}

TEST(ManagerBasicsTest, ShutdownMakesProxiesThrow) {
  Manager m;
  auto d = m.dict<int, int>();
  d.set(1, 1);
  m.shutdown();
  m.shutdown();  // idempotent
  EXPECT_THROW(d.set(2, 2), InvalidStateError);
  EXPECT_THROW((void)m.list<int>(), InvalidStateError);
  EXPECT_TRUE(active_children().empty());
}

TEST(ManagerBasicsTest, EmptyProxyThrows) {
  DictProxy<int, int> d;
  EXPECT_THROW((void)d.size(), InvalidStateError);
}

TEST(ManagerBasicsTest, ProxySharedByThreads) {
  Manager m;
  auto d = m.dict<std::string, long>();
  auto l = m.list<int>();
  constexpr int kThreads = 4;
  constexpr int kEach = 200;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        (void)d.increment("hits");
        l.append(t * kEach + i);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(d.at("hits"), kThreads * kEach);
  EXPECT_EQ(l.size(), static_cast<std::size_t>(kThreads * kEach));
}

// The tests below fork with ::fork() (ForkTest): a Manager's client starts no thread.
class ManagerForkTest : public testing::ForkTest {};

// A proxy that a forked child finds in its memory gets a connection of its own at its first call:
// the parent and the child count their own keys at the same time, and every answer must be the
// caller's (on a shared connection each could read the other's answer, or both answers).
TEST_F(ManagerForkTest, AProxyInAForkedChildUsesAConnectionOfItsOwn) {
  Manager m;
  auto d = m.dict<std::string, long>();
  auto q = m.Queue<int>();
  (void)d.size();  // the connection the child inherits has been used
  constexpr long kEach = 3000;
  const pid_t child = fork_child([&] {
    for (long i = 1; i <= kEach; ++i)
      if (d.increment("child") != i) return 1;
    q.put(7);  // a queue proxy made before the fork, too
    return 0;
  });
  for (long i = 1; i <= kEach; ++i) ASSERT_EQ(d.increment("parent"), i);
  EXPECT_EQ(q.get(30s), 7);
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(d.at("child"), kEach);
  EXPECT_EQ(d.at("parent"), kEach);
}

// A forked copy of the Manager does not stop the server its parent started (its shutdown() does
// nothing), and proxies go on working in both processes.
TEST_F(ManagerForkTest, ShutdownInAForkedChildLeavesTheServerToTheParent) {
  Manager m;
  auto d = m.dict<int, int>();
  d.set(1, 1);
  const pid_t child = fork_child([&] {
    m.shutdown();
    d.set(2, 2);
    return d.size() == 2 ? 0 : 1;
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(d.size(), 2U);
  m.shutdown();
  EXPECT_THROW(d.set(3, 3), InvalidStateError);
}

// manager_address(server) is where the Manager server `server` listens, as its socket name
// ("\0concur-manager-<pid>-…"), read from /proc/net/unix; empty when it is not listed.
std::string manager_address(pid_t server) {
  std::ifstream in("/proc/net/unix");
  const std::string prefix = "@concur-manager-" + std::to_string(server) + "-";
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find(prefix);
    if (at != std::string::npos) return std::string(1, '\0') + line.substr(at + 1);
  }
  return {};
}

// unix_address(name, sa): sa set to the abstract socket `name`; returns its length.
socklen_t unix_address(const std::string& name, sockaddr_un& sa) {
  sa = sockaddr_un{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, name.data(), name.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
}

// become_nobody() switches a forked child to uid/gid 65534; false when the system refuses.
bool become_nobody() { return ::setgid(65534) == 0 && ::setuid(65534) == 0; }

// The server's name in the abstract namespace has no file permissions and is visible to all: the
// server turns away a process of another user (it sees end of file at once), and a proxy in such
// a process will not use a server of another user either.
TEST_F(ManagerForkTest, AProcessOfAnotherUserIsTurnedAway) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to become another user";
  Manager m;
  auto d = m.dict<int, int>();
  d.set(1, 1);
  const std::string address = manager_address(m.pid());
  ASSERT_FALSE(address.empty());
  const pid_t child = fork_child([&] {
    if (!become_nobody()) return 3;
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    const socklen_t len = unix_address(address, sa);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), len) != 0) return 4;
    const timeval wait{30, 0};
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char byte = 0;
    if (::read(fd, &byte, 1) != 0) return 5;  // not end of file: the server kept it
    try {
      (void)d.size();
    } catch (const InvalidStateError&) {
      return 0;
    }
    return 1;
  });
  const int code = wait_child(child);
  if (code == 3) GTEST_SKIP() << "this system does not let root become uid 65534";
  EXPECT_EQ(code, 0);
  EXPECT_EQ(d.size(), 1U);
}

// Once the server is gone, anyone may bind its name: a proxy's new connection to a listener of
// another user is refused on the client's side (the impostor here would answer 42).
TEST_F(ManagerForkTest, AProxyDoesNotTalkToAnotherUsersProcessAtItsServersAddress) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to become another user";
  Manager m;
  auto q = m.Queue<int>();
  const std::string address = manager_address(m.pid());
  ASSERT_FALSE(address.empty());
  ASSERT_EQ(::kill(m.pid(), SIGKILL), 0);
  ASSERT_TRUE(concur::testing::wait_until([&] { return manager_address(m.pid()).empty(); }));
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t child = fork_child([&] {
    ::close(ready[0]);
    if (!become_nobody()) return 3;
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    const socklen_t len = unix_address(address, sa);
    if (::bind(listener, reinterpret_cast<const sockaddr*>(&sa), len) != 0 ||
        ::listen(listener, 4) != 0)
      return 4;
    if (::write(ready[1], "x", 1) != 1) return 5;
    ::alarm(30);  // bounded, whatever the parent does
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) return 6;
    Connection conn(fd);
    (void)conn.recv<detail::ManagerRequest>();
    detail::ManagerResponse forged;
    forged.value = detail::encode_value(42);
    conn.send(forged);
    return 0;
  });
  ::close(ready[1]);
  char byte = 0;
  const bool bound = ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (!bound) {
    const int code = wait_child(child);
    if (code == 3) GTEST_SKIP() << "this system does not let root become uid 65534";
    FAIL() << "the impostor could not listen: " << code;
  }
  EXPECT_THROW((void)q.get(5s), InvalidStateError);  // a blocking get dials a new connection
  (void)wait_child(child);                           // it ends on end of file (or at its alarm)
}

// A server out of descriptors answers a new connection with an error instead of leaving it
// unaccepted (its client would wait forever), serves its other clients meanwhile, and accepts
// again once clients hang up.
TEST(ManagerBasicsTest, AServerOutOfDescriptorsRefusesANewConnectionWithAnError) {
#if defined(__SANITIZE_ADDRESS__)
  // The ASan+UBSan preset keeps UBSan's vptr check, which probes memory through a pipe()
  // (cmake/options.cmake): in a server with no descriptor left the probe fails, and UBSan reports
  // a false "invalid vptr" and stops the server. The release and TSan suites run this test.
  GTEST_SKIP() << "UBSan's vptr check needs free descriptors, which this test takes away";
#endif
  Manager m;
  auto d = m.dict<int, int>();
  d.set(1, 1);
  const rlimit low{64, 64};
  ASSERT_EQ(::prlimit(m.pid(), RLIMIT_NOFILE, &low, nullptr), 0);
  std::vector<Payload> held;  // each holds a new connection to the server
  for (int i = 0; i < 100; ++i) held.push_back(dumps(d));
  DictProxy<int, int> late;
  loads(held.back().bytes, testing::dup_all(held.back().fds), late);
  try {
    (void)late.size();
    ADD_FAILURE() << "a connection past the server's descriptor limit was served";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("no descriptor left"), std::string::npos) << e.what();
  }
  EXPECT_EQ(d.at(1), 1);
  held.clear();
  EXPECT_EQ(late.at(1), 1);  // the refused connection is not used again: the proxy dials anew
  DictProxy<int, int> again;
  const Payload p = dumps(d);
  loads(p.bytes, testing::dup_all(p.fds), again);
  EXPECT_EQ(again.at(1), 1);
}

TEST_P(ManagerTest, NotesDictFilledByTwoProcesses) {
  Manager m;
  auto progress_dict = m.dict<std::string, int>();
  std::vector<Process> ps;
  ps.emplace_back(opts(), add_data, progress_dict, "bobby1", 22);
  ps.emplace_back(opts(), add_data, progress_dict, "bobby2", 23);
  for (auto& p : ps) p.start();
  finish(ps);
  EXPECT_EQ(progress_dict.copy(), (std::map<std::string, int>{{"bobby1", 22}, {"bobby2", 23}}));
}

TEST_P(ManagerTest, IncrementIsAtomicAcrossProcesses) {
  Manager m;
  auto d = m.dict<std::string, long>();
  constexpr int kProcs = 4;
  constexpr int kTimes = 300;
  std::vector<Process> ps;
  for (int i = 0; i < kProcs; ++i) ps.emplace_back(opts(), count_up, d, kTimes);
  for (auto& p : ps) p.start();
  finish(ps);
  EXPECT_EQ(d.at("hits"), kProcs * kTimes);
}

TEST_P(ManagerTest, ListFilledAndDrainedByProcesses) {
  Manager m;
  auto l = m.list<int>();
  constexpr int kProcs = 4;
  constexpr int kTimes = 100;
  {
    std::vector<Process> ps;
    for (int i = 0; i < kProcs; ++i) ps.emplace_back(opts(), append_many, l, i * kTimes, kTimes);
    for (auto& p : ps) p.start();
    finish(ps);
  }
  ASSERT_EQ(l.size(), static_cast<std::size_t>(kProcs * kTimes));
  // Drain with 3 competing processes: pop is atomic, so every item is taken exactly once.
  auto seen = m.dict<int, int>();
  std::vector<Process> ps;
  for (int i = 0; i < 3; ++i) ps.emplace_back(opts(), pop_all, l, seen);
  for (auto& p : ps) p.start();
  finish(ps);
  EXPECT_EQ(l.size(), 0u);
  const auto counts = seen.copy();
  ASSERT_EQ(counts.size(), static_cast<std::size_t>(kProcs * kTimes));
  for (const auto& [value, n] : counts) EXPECT_EQ(n, 1) << value;
}

TEST(ManagerQueueTest, QueueOperations) {
  Manager m;
  auto q = m.Queue<std::string>(2);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put("a");
  q.put_nowait("b");
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait("c"), Full);
  EXPECT_THROW(q.put("c", 20ms), Full);
  EXPECT_EQ(q.get(), "a");  // FIFO
  EXPECT_EQ(q.get_nowait(), "b");
  EXPECT_THROW((void)q.get_nowait(), Empty);
  EXPECT_THROW((void)q.get(20ms), Empty);
  // task_done / join: two items were put.
  EXPECT_FALSE(q.join(20ms));
  q.task_done();
  EXPECT_FALSE(q.join(0ms));
  q.task_done();
  EXPECT_TRUE(q.join(0ms));
  q.join();
  EXPECT_THROW(q.task_done(), ValueError);
  auto unbounded = m.JoinableQueue<int>();
  for (int i = 0; i < 1000; ++i) unbounded.put_nowait(i);
  EXPECT_EQ(unbounded.qsize(), 1000u);
  EXPECT_FALSE(unbounded.full());
}

// A thread blocked in get() holds a connection of its own: the others that share the proxy go on.
TEST(ManagerQueueTest, ABlockedGetDoesNotHoldUpTheProxysOtherUsers) {
  Manager m;
  auto q = m.Queue<int>();
  std::atomic<int> got{-1};
  std::thread getter([&] { got = q.get(60s); });
  std::this_thread::sleep_for(50ms);  // (the getter parks: then qsize() shows it did not block)
  EXPECT_EQ(q.qsize(), 0u);           // answered while the getter waits
  q.put(7);
  getter.join();
  EXPECT_EQ(got.load(), 7);
  // A put blocked on a full queue completes when a get frees room; join() when task_done() comes.
  auto bounded = m.Queue<int>(1);
  bounded.put(1);
  std::thread putter([&] { bounded.put(2, 60s); });
  EXPECT_EQ(bounded.get(60s), 1);
  EXPECT_EQ(bounded.get(60s), 2);
  putter.join();
  std::thread joiner([&] { bounded.join(); });
  bounded.task_done();
  bounded.task_done();
  joiner.join();
}

TEST(ManagerQueueTest, ShutdownWakesWaitersAndEndsTheQueue) {
  Manager m;
  auto q = m.Queue<int>(1);
  std::atomic<bool> get_shut{false};
  std::thread getter([&] {
    try {
      (void)q.get(60s);
    } catch (const ShutDown&) {
      get_shut = true;
    }
  });
  auto full = m.Queue<int>(1);
  full.put(1);
  std::atomic<bool> put_shut{false};
  std::thread putter([&] {
    try {
      full.put(2, 60s);
    } catch (const ShutDown&) {
      put_shut = true;
    }
  });
  q.shutdown();
  full.shutdown();
  getter.join();
  putter.join();
  EXPECT_TRUE(get_shut.load());
  EXPECT_TRUE(put_shut.load());
  // Not immediate: what was queued can still be got, then ShutDown.
  EXPECT_EQ(full.get_nowait(), 1);
  EXPECT_THROW((void)full.get(), ShutDown);
  EXPECT_THROW(full.put(3), ShutDown);
  // Immediate: the items are dropped, and join() is released.
  auto dropped = m.Queue<int>();
  dropped.put(1);
  dropped.put(2);
  std::thread joiner([&] { dropped.join(); });
  dropped.shutdown(true);
  joiner.join();
  EXPECT_EQ(dropped.qsize(), 0u);
  EXPECT_THROW((void)dropped.get_nowait(), ShutDown);
}

// A get waiting in the server when the Manager shuts down ends with InvalidStateError, as every
// later call does.
TEST(ManagerQueueTest, ShuttingTheManagerDownEndsAWaitingGet) {
  Manager m;
  auto q = m.Queue<int>();
  std::atomic<bool> ended{false};
  std::thread getter([&] {
    try {
      (void)q.get(60s);
    } catch (const InvalidStateError&) {
      ended = true;
    }
  });
  std::this_thread::sleep_for(50ms);  // (the get parks; the test holds either way)
  m.shutdown();
  getter.join();
  EXPECT_TRUE(ended.load());
  EXPECT_THROW(q.put(1), InvalidStateError);
}

// Every item reaches exactly one getter, and the server's waiters complete in order as items
// come: three processes take what two put through a queue of 5.
TEST_P(ManagerTest, QueueSharedByProducerAndConsumerProcesses) {
  Manager m;
  auto q = m.Queue<int>(5);
  auto got = m.list<int>();
  std::vector<Process> ps;
  for (int i = 0; i < 3; ++i) ps.emplace_back(opts(), take_until_none, q, got);
  for (auto& p : ps) p.start();
  std::vector<Process> producers;
  producers.emplace_back(opts(), put_range, q, 0, 150);
  producers.emplace_back(opts(), put_range, q, 150, 150);
  for (auto& p : producers) p.start();
  finish(producers);
  q.join();  // every item was taken and marked done
  for (int i = 0; i < 3; ++i) q.put(-1);
  finish(ps);
  std::vector<int> all = got.copy();
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(all[static_cast<std::size_t>(i)], i);
}

// A client killed while it waits in get() is forgotten: the next item is not sent to it (lost)
// but stays for a live getter.
TEST_P(ManagerTest, AGetterThatDiesWhileWaitingTakesNoItem) {
  Manager m;
  auto q = m.Queue<int>();
  Event asking;
  Process p(opts(), wait_for_item, q, asking);
  p.start();
  // Once its get() is parked, the item below would go to it. (Not a timing assertion: the test
  // holds either way; the pause only makes sure the get is parked, so the test proves something.)
  ASSERT_TRUE(asking.wait(60s));
  std::this_thread::sleep_for(100ms);
  p.kill();
  p.join();
  q.put(5);
  EXPECT_EQ(q.get(60s), 5);
}

// Pool(initializer=keep_queue, initargs=(q,)): each worker gets a connection of its own to the
// server (a shared one would mix two workers' requests and answers).
TEST(ManagerQueueTest, AProxyAsAPoolInitializerArgumentServesEveryWorker) {
  Manager m;
  auto q = m.Queue<int>();
  Pool pool(PoolOptions{.processes = 2, .initializer = {keep_queue, q}});
  std::vector<AsyncResult<int>> runs;
  for (int i = 0; i < 4; ++i) runs.push_back(pool.apply_async(put_pids, 300));
  pool.close();
  pool.join();
  std::map<int, int> per_pid;
  for (auto& r : runs) (void)r.get();
  for (int i = 0; i < 1200; ++i) ++per_pid[q.get_nowait()];
  EXPECT_TRUE(q.empty());
  int total = 0;
  for (const auto& [pid, n] : per_pid) total += n;
  EXPECT_EQ(total, 1200);
  EXPECT_LE(per_pid.size(), 2u);
}

// The notes: queue = Manager().Queue(10); pool.apply_async(producer, (queue,)), then consumer.
TEST_P(ManagerTest, NotesQueueBetweenTwoPoolTasks) {
  Manager m;
  auto queue = m.Queue<std::string>(10);
  Pool pool(PoolOptions{
      .processes = 2,
      .start_method = GetParam() == StartMethod::fork ? StartMethod::forkserver : GetParam()});
  AsyncResult<void> produced = pool.apply_async(queue_producer, queue);
  AsyncResult<std::string> consumed = pool.apply_async(queue_consumer, queue);
  pool.close();
  pool.join();
  produced.get();
  EXPECT_EQ(consumed.get(), "a");
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ManagerTest,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         [](const auto& param_info) {
                           return std::string(to_string(param_info.param));
                         });

}  // namespace
}  // namespace concur::mp
