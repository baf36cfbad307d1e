// concur/crawl/frontier.hpp — the crawler's disk-backed frontier (Scrapy's JOBDIR): DiskQueue, a
// persistent priority queue of byte strings (the engine's serialized requests), and SeenSet, a
// persistent set of request fingerprints (the dupefilter). Each lives in its own SQLite file, so
// a crawl can pause and resume and ten million queued URLs cost disk, not memory. A job
// directory holds them as kRequestsFile and kSeenFile.
//
// Durability: operations are batched in an open transaction, committed every 32,768
// operations and by flush() / close(). What was flushed survives the process (a crash, kill -9);
// with synchronous=NORMAL in WAL mode a power loss may roll back the last commits. Unflushed
// operations may or may not survive a crash: a pop()ped request may come back (at least once).
// Exclusivity: one object (and one process) per file. Opening a file that another live DiskQueue
// or SeenSet, in this process or another, holds throws RuntimeError (SQLite's exclusive locking
// mode: the lock is held from open to close).
// Thread-safety: none inside an object; use each from one thread at a time.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "concur/detail/config.hpp"

namespace concur::crawl {

// kRequestsFile / kSeenFile: the file names of a job directory's DiskQueue and SeenSet.
inline constexpr const char* kRequestsFile = "requests.sqlite";
inline constexpr const char* kSeenFile = "seen.sqlite";

// DiskQueue: a persistent priority queue of byte strings. pop() returns the highest priority
// first and, among equal priorities, the earliest pushed (FIFO). Memory does not grow with the
// queue's length: the queue lives in the file, plus a read-ahead of a few hundred entries (at most
// about 1 MiB of blobs) and SQLite's page cache (16 MiB).
// Errors: a missing parent directory, an unreadable or corrupt file -> OSError; a file in use ->
// RuntimeError; any call but close() after close() (or on a moved-from queue) -> RuntimeError.
class CONCUR_EXPORT DiskQueue {
 public:
  // DiskQueue(file) opens the queue in `file`, creating the file if missing; a reopened queue
  // holds what was flushed before, in the same order.
  explicit DiskQueue(std::filesystem::path file);
  // ~DiskQueue() closes the queue (flushing it); errors are swallowed — call close() to see them.
  ~DiskQueue();
  DiskQueue(DiskQueue&& other) noexcept;
  DiskQueue& operator=(DiskQueue&& other) noexcept;
  DiskQueue(const DiskQueue&) = delete;
  DiskQueue& operator=(const DiskQueue&) = delete;

  // push(blob, priority) adds a copy of `blob` (any bytes, empty included; over SQLite's 1 GB
  // limit: ValueError). Higher priorities pop first; negative priorities are allowed (Scrapy's
  // DEPTH_PRIORITY pushes them).
  void push(std::string_view blob, int priority = 0);
  // pop() removes and returns the highest-priority, earliest-pushed blob; nullopt when empty.
  [[nodiscard]] std::optional<std::string> pop();
  // size() is the number of blobs queued; empty() is size() == 0.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] bool empty() const;
  // flush() commits every push and pop so far to the file.
  void flush();
  // close() flushes and closes the file, releasing it to other openers. Idempotent.
  void close();
  // path() is the file's path.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  class Impl;
  std::filesystem::path path_;
  std::unique_ptr<Impl> impl_;
};

// SeenSet: a persistent set of request fingerprints — Scrapy's RFPDupeFilter on disk. A
// fingerprint is any byte string; a 40-digit lowercase hex one (a SHA-1 hexdigest, as
// request_fingerprint() returns) is stored as its 20 bytes, other strings as given (uppercase hex
// included), and the two forms never collide. No in-memory copy: each call is a B-tree lookup in
// the file (SQLite's 16 MiB page cache in front of it).
// Errors: as DiskQueue's.
class CONCUR_EXPORT SeenSet {
 public:
  // SeenSet(file) opens the set in `file`, creating the file if missing.
  explicit SeenSet(std::filesystem::path file);
  // ~SeenSet() closes the set (flushing it); errors are swallowed — call close() to see them.
  ~SeenSet();
  SeenSet(SeenSet&& other) noexcept;
  SeenSet& operator=(SeenSet&& other) noexcept;
  SeenSet(const SeenSet&) = delete;
  SeenSet& operator=(const SeenSet&) = delete;

  // insert(fingerprint) adds `fingerprint`; true if it was new, false if already present.
  bool insert(std::string_view fingerprint);
  // contains(fingerprint): whether `fingerprint` was inserted (in this run or a flushed earlier
  // one).
  [[nodiscard]] bool contains(std::string_view fingerprint) const;
  // size() is the number of fingerprints in the set.
  [[nodiscard]] std::size_t size() const;
  // flush() commits every insert so far to the file.
  void flush();
  // close() flushes and closes the file, releasing it to other openers. Idempotent.
  void close();
  // path() is the file's path.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  class Impl;
  std::filesystem::path path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace concur::crawl
