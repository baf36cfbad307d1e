// Tests for include/concur/crawl/frontier.hpp: DiskQueue ordering (priorities, FIFO ties,
// negative priorities), interleaved pushes and pops against an in-memory model (small and large
// blobs, so the read-ahead is both full and cut by its byte cap), persistence across reopening
// and across a crash (a child process killed with unflushed work), a million pushes and pops in
// bounded memory; SeenSet dedupe, its compact and plain key forms, persistence; the one-opener
// lock (in this process and from another); bad paths and files of the wrong kind.
#include "concur/crawl/frontier.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "support/sanitizers.hpp"
#include "support/temp_dir.hpp"

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer's options for this binary (see kRssGrowthLimitKib); ASAN_OPTIONS still wins.
// Exported: the sanitizer runtime (a shared library) looks the function up by name.
extern "C" __attribute__((visibility("default"), used)) const char* __asan_default_options() {
  return "quarantine_size_mb=16";
}
#endif

namespace {

namespace fs = std::filesystem;
using concur::crawl::DiskQueue;
using concur::crawl::SeenSet;
using concur::testing::TempDir;

// vm_rss_kib(): this process's resident set (VmRSS of /proc/self/status), in KiB.
long vm_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

// kRssGrowthLimitKib: how much a million queued 100-byte blobs may grow the resident set — far
// below the 100 MB they are, far above SQLite's 16 MiB page cache and the read-ahead. Under
// AddressSanitizer every allocation carries redzones and freed blocks wait in a quarantine before
// reuse, so churn alone grows the resident set there: this binary shrinks the quarantine (256 MiB
// by default) to 16 MiB below, and the bound gets another 64 MiB for the allocator's overhead —
// still well under what a million blobs held in memory would cost.
// Under ThreadSanitizer the resident set measures TSan itself — its allocator keeps freed memory
// and its shadow grows with every page touched (+110 MB for the million blobs on a fresh clone) —
// so the bound is checked by the release and ASan passes only (kRssIsTheQueues).
#if defined(__SANITIZE_ADDRESS__)
constexpr long kRssGrowthLimitKib = (64 + 64) * 1024;
#else
constexpr long kRssGrowthLimitKib = 64 * 1024;
#endif
#if defined(__SANITIZE_THREAD__)
constexpr bool kRssIsTheQueues = false;
#else
constexpr bool kRssIsTheQueues = true;
#endif

// blob(i, size): a recognizable blob of `size` bytes for number i, NULs and all bytes included.
std::string blob(std::uint64_t i, std::size_t size = 100) {
  std::string s(size, '\0');
  std::uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t k = 0; k < size; ++k) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    s[k] = static_cast<char>(x >> 56);
  }
  if (size >= 8) std::memcpy(s.data(), &i, sizeof i);  // unique prefix
  return s;
}

// numbered(prefix, i): prefix followed by i ("item7"); appends, since g++ 12 warns (-Wrestrict,
// a false positive) on `"literal" + std::to_string(i)` at -O3.
std::string numbered(const char* prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

std::vector<std::string> pop_all(DiskQueue& q) {
  std::vector<std::string> out;
  while (auto b = q.pop()) out.push_back(std::move(*b));
  return out;
}

// in_child(fn): runs fn() in a forked child and returns its exit status (fn's return value; 99
// if it threw). The parent must hold no SQLite connection across the fork.
template <class F>
int in_child(F&& fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = fn();
    } catch (...) {  // NOLINT(bugprone-empty-catch): reported as exit status 99
    }
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- DiskQueue: ordering ----

TEST(DiskQueue, EmptyQueue) {
  TempDir dir;
  DiskQueue q(dir / "requests.sqlite");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.pop(), std::nullopt);
  EXPECT_EQ(q.path(), dir / "requests.sqlite");
}

TEST(DiskQueue, FifoAmongEqualPriorities) {
  TempDir dir;
  DiskQueue q(dir / "q.sqlite");
  for (int i = 0; i < 1000; ++i) q.push(numbered("item", i));
  EXPECT_EQ(q.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(q.pop(), numbered("item", i));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.pop(), std::nullopt);
}

TEST(DiskQueue, HighestPriorityFirstIncludingNegative) {
  TempDir dir;
  DiskQueue q(dir / "q.sqlite");
  q.push("a0", 0);
  q.push("b-1", -1);
  q.push("c5", 5);
  q.push("d0", 0);
  q.push("e-1", -1);
  q.push("f5", 5);
  q.push("g-100", -100);
  q.push("h100", 100);
  q.push("imin", std::numeric_limits<int>::min());
  q.push("jmax", std::numeric_limits<int>::max());
  EXPECT_EQ(pop_all(q), (std::vector<std::string>{"jmax", "h100", "c5", "f5", "a0", "d0", "b-1",
                                                  "e-1", "g-100", "imin"}));
}

TEST(DiskQueue, BlobsAreBytes) {
  TempDir dir;
  DiskQueue q(dir / "q.sqlite");
  const std::string binary("\0\xff\x01\0zz\x80", 7);
  const std::string big(3 << 20, 'x');  // larger than the read-ahead's byte cap
  q.push("");
  q.push(binary);
  q.push(big);
  q.push("after");
  EXPECT_EQ(q.pop(), "");
  EXPECT_EQ(q.pop(), binary);
  EXPECT_EQ(q.pop(), big);
  EXPECT_EQ(q.pop(), "after");
}

// A push of higher priority than what the read-ahead holds pops before it; one of lower or
// equal priority after it.
TEST(DiskQueue, PushWhileReadAheadHoldsEntries) {
  TempDir dir;
  DiskQueue q(dir / "q.sqlite");
  for (int i = 0; i < 10; ++i) q.push(numbered("low", i), 1);
  EXPECT_EQ(q.pop(), "low0");  // the read-ahead now holds low1..low9
  q.push("high", 2);
  q.push("same", 1);
  q.push("lower", 0);
  EXPECT_EQ(q.pop(), "high");
  for (int i = 1; i < 10; ++i) EXPECT_EQ(q.pop(), numbered("low", i));
  EXPECT_EQ(q.pop(), "same");
  EXPECT_EQ(q.pop(), "lower");
  EXPECT_TRUE(q.empty());
}

// Model: a std::map keyed by (-priority, sequence) pops what DiskQueue must pop.
void interleaved_against_model(std::size_t blob_size, int ops, unsigned seed) {
  TempDir dir;
  DiskQueue q(dir / "q.sqlite");
  std::map<std::pair<int, std::uint64_t>, std::string> model;
  std::mt19937 rng(seed);
  std::uint64_t seq = 0;
  for (int op = 0; op < ops; ++op) {
    // Phases that grow and drain the queue, so the read-ahead refills from the file often.
    const bool grow = (op / 2000) % 2 == 0;
    if (rng() % 10 < (grow ? 7u : 3u)) {
      const int priority = static_cast<int>(rng() % 9) - 4;
      std::string b = blob(seq, blob_size);
      q.push(b, priority);
      model.emplace(std::make_pair(-priority, seq++), std::move(b));
    } else {
      auto got = q.pop();
      if (model.empty()) {
        ASSERT_EQ(got, std::nullopt) << "op " << op;
      } else {
        ASSERT_TRUE(got.has_value()) << "op " << op;
        ASSERT_EQ(*got, model.begin()->second) << "op " << op;
        model.erase(model.begin());
      }
    }
    ASSERT_EQ(q.size(), model.size());
    if (op % 3001 == 0) q.flush();  // commits in the middle change nothing
  }
  for (auto& [key, b] : model) ASSERT_EQ(q.pop(), b);
  EXPECT_TRUE(q.empty());
}

TEST(DiskQueue, InterleavedPushPopMatchesModelSmallBlobs) {
  interleaved_against_model(24, 20000, 1);
}

// 40 KB blobs: the read-ahead is cut by its 1 MiB cap, not by its row count.
TEST(DiskQueue, InterleavedPushPopMatchesModelLargeBlobs) {
  interleaved_against_model(40000, 3000, 2);
}

// ---- DiskQueue: persistence ----

TEST(DiskQueue, FlushedItemsSurviveReopenInOrder) {
  TempDir dir;
  const fs::path file = dir / "q.sqlite";
  {
    DiskQueue q(file);
    for (int i = 0; i < 10; ++i) q.push(numbered("p", i), i % 3);
    EXPECT_EQ(q.pop(), "p2");  // priority 2, first
    q.flush();
    q.close();
    q.close();  // idempotent
  }
  {
    DiskQueue q(file);
    EXPECT_EQ(q.size(), 9u);
    q.push("new2", 2);  // after the reopened p5, p8 of the same priority
    EXPECT_EQ(pop_all(q), (std::vector<std::string>{"p5", "p8", "new2", "p1", "p4", "p7", "p0",
                                                    "p3", "p6", "p9"}));
  }  // the destructor flushes the pops
  DiskQueue q(file);
  EXPECT_TRUE(q.empty());
}

TEST(DiskQueue, LargeQueueSurvivesReopen) {
  TempDir dir;
  const fs::path file = dir / "q.sqlite";
  constexpr int kN = 50000;  // several commits' worth
  {
    DiskQueue q(file);
    for (int i = 0; i < kN; ++i) q.push(blob(static_cast<std::uint64_t>(i)), -(i % 2));
  }
  DiskQueue q(file);
  ASSERT_EQ(q.size(), static_cast<std::size_t>(kN));
  for (int parity = 0; parity < 2; ++parity) {
    for (int i = parity; i < kN; i += 2) ASSERT_EQ(q.pop(), blob(static_cast<std::uint64_t>(i)));
  }
  EXPECT_TRUE(q.empty());
}

// A process that dies without closing keeps what it flushed and loses what it did not (pushes
// and pops alike: an unflushed pop's item is still queued).
TEST(DiskQueue, CrashKeepsExactlyWhatWasFlushed) {
  TempDir dir;
  const fs::path file = dir / "q.sqlite";
  int rc = in_child([&] {
    DiskQueue q(file);
    for (int i = 0; i < 10; ++i) q.push(numbered("kept", i));
    q.flush();
    (void)q.pop();  // unflushed: kept0 comes back
    for (int i = 0; i < 5; ++i) q.push(numbered("lost", i));
    ::_exit(7);  // no close, no destructor: a crash
    return 0;
  });
  ASSERT_EQ(rc, 7);
  DiskQueue q(file);
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(numbered("kept", i));
  EXPECT_EQ(pop_all(q), expected);
}

// sql(file, statement): runs `statement` on `file` through SQLite's C API (no DiskQueue holds
// it) and returns the first column of each row as text.
std::vector<std::string> sql(const fs::path& file, const std::string& statement) {
  std::vector<std::string> out;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, statement.c_str(), -1, &st, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  int rc = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const auto* text = sqlite3_column_text(st, 0);
    out.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "NULL");
  }
  EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// The file's view shows each entry's priority and seq; seq starts over once the queue is empty.
TEST(DiskQueue, FileLayoutAndSeqRestart) {
  TempDir dir;
  const fs::path file = dir / "q.sqlite";
  {
    DiskQueue q(file);
    q.push("a", 3);
    q.push("b", -2);
    q.push("c", 3);
    (void)q.pop();  // a
  }
  EXPECT_EQ(sql(file, "SELECT priority || ':' || seq || ':' || data FROM queue_entries"),
            (std::vector<std::string>{"3:2:c", "-2:1:b"}));
  {
    DiskQueue q(file);
    (void)q.pop();
    (void)q.pop();
    q.push("d", 0);
  }
  EXPECT_EQ(sql(file, "SELECT priority || ':' || seq || ':' || data FROM queue_entries"),
            (std::vector<std::string>{"0:0:d"}));
}

// seq is 32 bits: at the limit the queue renumbers each priority's entries, order unchanged.
TEST(DiskQueue, SeqOverflowRenumbersKeepingOrder) {
  TempDir dir;
  const fs::path file = dir / "q.sqlite";
  std::vector<std::pair<int, std::string>> pushed;  // (priority, blob), in push order
  auto push = [&](DiskQueue& q, int priority) {
    std::string b = numbered("e", static_cast<int>(pushed.size()));
    q.push(b, priority);
    pushed.emplace_back(priority, b);
  };
  {
    DiskQueue q(file);
    for (int i = 0; i < 6; ++i) push(q, i % 3 - 1);
  }
  sql(file, "UPDATE meta SET value = 4294967293 WHERE name = 'next_seq'");
  {
    DiskQueue q(file);
    for (int i = 0; i < 12; ++i) push(q, i % 4 - 1);  // crosses 2^32 after three pushes
  }
  EXPECT_EQ(sql(file, "SELECT max(seq) < 100 FROM queue_entries"), std::vector<std::string>{"1"});
  std::stable_sort(pushed.begin(), pushed.end(),
                   [](const auto& x, const auto& y) { return x.first > y.first; });
  std::vector<std::string> expected;
  for (const auto& [priority, b] : pushed) expected.push_back(b);
  DiskQueue q(file);
  EXPECT_EQ(pop_all(q), expected);
}

// ---- DiskQueue: a million blobs ----

// 1,000,000 pushes of 100-byte blobs, then 1,000,000 pops (100,000 under sanitizers): order kept,
// and the resident set does not grow with the queue (sampled every 50,000 operations).
TEST(DiskQueue, MillionBlobsInBoundedMemory) {
  TempDir dir;
  constexpr std::uint64_t kN = concur::testing::kSanitized ? 100'000 : 1'000'000;
  DiskQueue q(dir / "q.sqlite");
  q.push("warm-up");
  (void)q.pop();
  const long before = vm_rss_kib();
  long peak = before;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < kN; ++i) {
    q.push(blob(i));
    if (i % 50000 == 0) peak = std::max(peak, vm_rss_kib());
  }
  q.flush();
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ(q.size(), kN);
  for (std::uint64_t i = 0; i < kN; ++i) {
    auto b = q.pop();
    ASSERT_TRUE(b.has_value());
    ASSERT_EQ(*b, blob(i)) << i;
    if (i % 50000 == 0) peak = std::max(peak, vm_rss_kib());
  }
  q.flush();
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_TRUE(q.empty());
  const auto ms = [](auto d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::printf("%llu x 100 B: push %lld ms, pop %lld ms, RSS %ld KiB -> peak %ld KiB (+%ld KiB)\n",
              static_cast<unsigned long long>(kN), static_cast<long long>(ms(t1 - t0)),
              static_cast<long long>(ms(t2 - t1)), before, peak, peak - before);
  if (kRssIsTheQueues) {
    EXPECT_LT(peak - before, kRssGrowthLimitKib);
  }
}

// ---- DiskQueue: misuse, locks, bad files ----

TEST(DiskQueue, UseAfterCloseIsRuntimeError) {
  TempDir dir;
  DiskQueue q(dir / "q.sqlite");
  q.push("x");
  q.close();
  EXPECT_THROW(q.push("y"), concur::RuntimeError);
  EXPECT_THROW((void)q.pop(), concur::RuntimeError);
  EXPECT_THROW((void)q.size(), concur::RuntimeError);
  EXPECT_THROW(q.flush(), concur::RuntimeError);
  q.close();
  DiskQueue moved_to(dir / "q.sqlite");
  DiskQueue other = std::move(moved_to);
  EXPECT_EQ(other.pop(), "x");
  EXPECT_THROW(moved_to.push("z"), concur::RuntimeError);  // NOLINT(bugprone-use-after-move)
}

TEST(DiskQueue, SecondOpenerInThisProcessIsRuntimeError) {
  TempDir dir;
  const fs::path file = dir / "q.sqlite";
  DiskQueue first(file);
  first.push("x");
  try {
    DiskQueue second(file);
    FAIL() << "opened a file another DiskQueue holds";
  } catch (const concur::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  first.close();
  DiskQueue second(file);  // released by close()
  EXPECT_EQ(second.pop(), "x");
}

// Another process holds the file: opening it here fails; once that process is gone it works.
TEST(DiskQueue, FileHeldByAnotherProcessIsRuntimeError) {
  TempDir dir;
  const fs::path file = dir / "q.sqlite";
  int to_child[2];
  int to_parent[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(to_parent), 0);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 1;
    try {
      DiskQueue q(file);
      q.push("from child");
      q.flush();
      char c = 'r';
      if (::write(to_parent[1], &c, 1) == 1 && ::read(to_child[0], &c, 1) == 1) rc = 0;
    } catch (...) {  // NOLINT(bugprone-empty-catch): exit status 1
    }
    ::_exit(rc);
  }
  char c = 0;
  ASSERT_EQ(::read(to_parent[0], &c, 1), 1);  // the child holds the queue
  EXPECT_THROW(DiskQueue{file}, concur::RuntimeError);
  EXPECT_THROW(SeenSet{dir / "q.sqlite"}, concur::RuntimeError);
  ASSERT_EQ(::write(to_child[1], &c, 1), 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);
  DiskQueue q(file);
  EXPECT_EQ(q.pop(), "from child");
}

TEST(DiskQueue, MissingParentDirectoryIsOSError) {
  TempDir dir;
  try {
    DiskQueue q(dir / "no-such-dir" / "q.sqlite");
    FAIL() << "opened a queue in a missing directory";
  } catch (const concur::OSError& e) {
    EXPECT_EQ(e.errno_code(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("no-such-dir"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DiskQueue(dir.path()), concur::OSError);  // a directory, not a file
}

TEST(DiskQueue, FileOfAnotherKindIsRejected) {
  TempDir dir;
  { SeenSet s(dir / "seen.sqlite"); }
  EXPECT_THROW(DiskQueue(dir / "seen.sqlite"), concur::ValueError);
  {
    std::ofstream garbage(dir / "garbage.sqlite", std::ios::binary);
    garbage << std::string(8192, 'g');
  }
  EXPECT_THROW(DiskQueue(dir / "garbage.sqlite"), concur::OSError);
}

// ---- SeenSet ----

TEST(SeenSet, InsertReportsNewAndContains) {
  TempDir dir;
  SeenSet s(dir / "seen.sqlite");
  EXPECT_EQ(s.size(), 0u);
  EXPECT_FALSE(s.contains("a"));
  EXPECT_TRUE(s.insert("a"));
  EXPECT_FALSE(s.insert("a"));
  EXPECT_TRUE(s.contains("a"));
  EXPECT_TRUE(s.insert(""));
  EXPECT_FALSE(s.insert(""));
  EXPECT_TRUE(s.insert(std::string("\0x\xff", 3)));
  EXPECT_FALSE(s.contains(std::string("\0x", 2)));
  EXPECT_EQ(s.size(), 3u);
}

// Lowercase 40-hex fingerprints are stored as 20 bytes; nothing else may collide with them.
TEST(SeenSet, CompactAndPlainFormsNeverCollide) {
  TempDir dir;
  SeenSet s(dir / "seen.sqlite");
  const std::string hex = "0123456789abcdef0123456789abcdef01234567";
  std::string raw;  // the 20 bytes the hex stands for
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    raw += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(s.insert(hex));
  EXPECT_FALSE(s.insert(hex));
  EXPECT_TRUE(s.insert(raw));    // the same bytes, given as bytes
  EXPECT_TRUE(s.insert(upper));  // uppercase hex is another string
  // Plain strings shaped like a stored compact key: 19 bytes, and the compact tag + 20 bytes.
  EXPECT_TRUE(s.insert(raw.substr(0, 19)));
  EXPECT_TRUE(s.insert(std::string(1, '\x01') + raw));
  EXPECT_TRUE(s.insert(hex.substr(0, 39)));
  EXPECT_TRUE(s.insert(hex + "0"));
  EXPECT_EQ(s.size(), 7u);
  EXPECT_TRUE(s.contains(hex));
  EXPECT_TRUE(s.contains(raw));
  EXPECT_TRUE(s.contains(upper));
}

TEST(SeenSet, DedupeSurvivesReopen) {
  TempDir dir;
  const fs::path file = dir / "seen.sqlite";
  auto fp = [](int i) {  // a 40-hex fingerprint
    char buf[41];
    std::snprintf(buf, sizeof buf, "%040x", static_cast<unsigned>(i) * 2654435761u);
    return std::string(buf);
  };
  {
    SeenSet s(file);
    for (int i = 0; i < 20000; ++i) ASSERT_TRUE(s.insert(fp(i)));
    s.insert("plain");
    s.flush();
  }  // closed by the destructor
  SeenSet s(file);
  EXPECT_EQ(s.size(), 20001u);
  for (int i = 0; i < 20000; ++i) ASSERT_FALSE(s.insert(fp(i)));
  EXPECT_TRUE(s.contains("plain"));
  EXPECT_TRUE(s.insert(fp(20000)));
  EXPECT_EQ(s.size(), 20002u);
}

TEST(SeenSet, CrashKeepsExactlyWhatWasFlushed) {
  TempDir dir;
  const fs::path file = dir / "seen.sqlite";
  int rc = in_child([&] {
    SeenSet s(file);
    s.insert("flushed");
    s.flush();
    s.insert("unflushed");
    ::_exit(7);
    return 0;
  });
  ASSERT_EQ(rc, 7);
  SeenSet s(file);
  EXPECT_TRUE(s.contains("flushed"));
  EXPECT_FALSE(s.contains("unflushed"));
  EXPECT_EQ(s.size(), 1u);
}

// 300,000 SHA-1-like fingerprints (random keys: the B-tree's worst case; 60,000 under
// sanitizers), each inserted twice.
TEST(SeenSet, ManyRandomFingerprints) {
  TempDir dir;
  SeenSet s(dir / "seen.sqlite");
  std::mt19937_64 rng(3);
  std::vector<std::uint64_t> seeds;
  auto fp = [](std::uint64_t a) {
    char buf[41];
    std::snprintf(buf, sizeof buf, "%016llx%016llx%08llx", static_cast<unsigned long long>(a),
                  static_cast<unsigned long long>(a * 31 + 7),
                  static_cast<unsigned long long>(a >> 32));
    return std::string(buf);
  };
  const long before = vm_rss_kib();
  for (int i = 0; i < (concur::testing::kSanitized ? 60000 : 300000); ++i) {
    seeds.push_back(rng());
    ASSERT_TRUE(s.insert(fp(seeds.back())));
  }
  for (std::uint64_t a : seeds) ASSERT_FALSE(s.insert(fp(a)));
  EXPECT_EQ(s.size(), seeds.size());
  if (kRssIsTheQueues) {
    EXPECT_LT(vm_rss_kib() - before, kRssGrowthLimitKib);
  }
}

TEST(SeenSet, LockAndMisuse) {
  TempDir dir;
  const fs::path file = dir / "seen.sqlite";
  SeenSet first(file);
  EXPECT_THROW(SeenSet{file}, concur::RuntimeError);
  EXPECT_THROW(DiskQueue{file}, concur::RuntimeError);
  first.close();
  EXPECT_THROW(first.insert("x"), concur::RuntimeError);
  EXPECT_THROW((void)first.contains("x"), concur::RuntimeError);
  EXPECT_THROW(SeenSet(dir / "missing" / "seen.sqlite"), concur::OSError);
  { DiskQueue q(dir / "requests.sqlite"); }
  EXPECT_THROW(SeenSet(dir / "requests.sqlite"), concur::ValueError);
}

}  // namespace
