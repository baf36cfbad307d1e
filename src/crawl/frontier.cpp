// DiskQueue and SeenSet (include/concur/crawl/frontier.hpp): each one SQLite file, opened in
// exclusive locking mode with a write-ahead log, written through a transaction kept open across
// operations (committed every kOpsPerCommit operations and by flush() / close()).
//
// requests.sqlite  queue(id INTEGER PRIMARY KEY, data BLOB): the row id packs the pop order,
//                  id = (~priority << 32) | seq — higher priorities have smaller ids, and seq (a
//                  32-bit push counter) orders equal priorities — so the table's own B-tree is the
//                  (priority DESC, seq ASC) index: a push is one B-tree insert, a pop reads and
//                  deletes the first rows. The view queue_entries shows (priority, seq, data).
// seen.sqlite      seen(fp BLOB PRIMARY KEY) WITHOUT ROWID: the key is the whole row.
// Both             meta(name, value): the row count ("size") and the queue's next seq
//                  ("next_seq"), written in every commit, so opening a file does not count rows.
// Each file's PRAGMA application_id says which of the two it is, so a DiskQueue never opens a
// seen-set (or an exported feed) by mistake.
#include "concur/crawl/frontier.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "concur/errors.hpp"
#include "internal.hpp"
#include "sqlite.hpp"

namespace concur::crawl {

namespace {

using detail::Database;
using detail::Statement;
using detail::Transaction;

// kOpsPerCommit: operations per transaction. A commit in WAL mode with synchronous=NORMAL writes
// the dirty pages to the log without an fsync; large batches matter for the seen-set, whose
// random keys dirty about one page per insert until a batch covers the tree (measured on 1M
// fingerprints: 4,096 per commit ran at ~50k inserts/s, 32,768 at ~150-200k/s). A crash loses
// at most this many unflushed operations.
constexpr std::size_t kOpsPerCommit = 32768;
// kCacheKiB: SQLite's page cache per file; what a DiskQueue or SeenSet holds in memory besides
// the read-ahead.
constexpr int kCacheKiB = 16 * 1024;
// kJournalSizeLimit: the write-ahead log is truncated back to this after a checkpoint.
constexpr std::int64_t kJournalSizeLimit = 64 << 20;
// kReadAheadRows / kReadAheadBytes: how many queue entries pop() reads from the file at once, and
// the blob bytes that may hold in memory (at least one entry is always read).
constexpr std::int64_t kReadAheadRows = 256;
constexpr std::size_t kReadAheadBytes = 1 << 20;
// kSeqLimit: seq is the low 32 bits of a queue row id; reaching the limit renumbers the queue.
constexpr std::uint64_t kSeqLimit = std::uint64_t{1} << 32;
// kApplicationIdQueue / kApplicationIdSeen: PRAGMA application_id of each kind of file
// ("cQue", "cSee").
constexpr std::int64_t kApplicationIdQueue = 0x63517565;
constexpr std::int64_t kApplicationIdSeen = 0x63536565;

constexpr const char* kMetaSchema =
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);";
constexpr const char* kQueueView =
    "CREATE VIEW queue_entries AS SELECT ~(id >> 32) AS priority, id & 4294967295 AS seq, data "
    "FROM queue;";

// open_job_file(db, application_id, kind, schema): configures a frontier file and takes its
// lock. Exclusive locking mode makes the connection hold the file's lock from its first access to
// its close, so a second opener (another object here, another process) fails at once with
// SQLITE_BUSY -> RuntimeError (the busy timeout stays 0). With WAL in exclusive mode the log index
// lives in this process's heap, not in a shared-memory file. A fresh file gets `schema` and the
// meta table; a file of another kind is a ValueError. Returns db.
Database& open_job_file(Database& db, std::int64_t application_id, const char* kind,
                        const std::string& schema) {
  db.exec("PRAGMA locking_mode=EXCLUSIVE");
  std::string mode = db.pragma_text("PRAGMA journal_mode=WAL");
  if (mode != "wal") {
    throw OSError(0, std::string(kind) + ": cannot use a write-ahead log (journal_mode is '" +
                         mode + "'): '" + db.path().string() + "'");
  }
  db.exec(("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-" + std::to_string(kCacheKiB) +
           "; PRAGMA journal_size_limit=" + std::to_string(kJournalSizeLimit))
              .c_str());
  db.exec("BEGIN IMMEDIATE");
  Statement app = db.prepare("PRAGMA application_id");
  app.step();
  const std::int64_t id = app.column_int64(0);
  app = Statement();
  if (id == 0) {
    Statement tables = db.prepare("SELECT count(*) FROM sqlite_schema");
    tables.step();
    const bool fresh = tables.column_int64(0) == 0;
    tables = Statement();
    if (!fresh) {
      throw ValueError(std::string(kind) + ": '" + db.path().string() +
                       "' is an SQLite database of something else");
    }
    db.exec((schema + kMetaSchema).c_str());
    db.exec(("PRAGMA application_id=" + std::to_string(application_id)).c_str());
  } else if (id != application_id) {
    throw ValueError(std::string(kind) + ": '" + db.path().string() + "' is not a " + kind +
                     " file (application_id " + std::to_string(id) + ")");
  }
  db.exec("COMMIT");
  return db;
}

// Meta: the meta table's counters.
class Meta {
 public:
  explicit Meta(const Database& db)
      : get_(db.prepare("SELECT value FROM meta WHERE name = ?1")),
        set_(db.prepare("INSERT OR REPLACE INTO meta(name, value) VALUES(?1, ?2)")) {}

  // get(name): the counter's value, 0 if it was never set.
  std::int64_t get(std::string_view name) {
    get_.bind_text(1, name);
    const std::int64_t value = get_.step() ? get_.column_int64(0) : 0;
    get_.reset();
    return value;
  }
  void set(std::string_view name, std::int64_t value) {
    set_.bind_text(1, name);
    set_.bind_int64(2, value);
    set_.step();
    set_.reset();
  }

 private:
  Statement get_;
  Statement set_;
};

[[noreturn]] void throw_closed(const char* kind) {
  throw RuntimeError(std::string(kind) + " is closed");
}

// queue_id(priority, seq): the row id of a queue entry (see the file's comment).
std::int64_t queue_id(int priority, std::uint64_t seq) {
  const std::int64_t high = -1 - static_cast<std::int64_t>(priority);  // ~priority, in int32 range
  return high * (std::int64_t{1} << 32) + static_cast<std::int64_t>(seq);
}

}  // namespace

// ---- DiskQueue ----

// DiskQueue::Impl: the open file. ahead_ is a read-ahead of the queue's head: always the first
// ahead_.size() entries in pop (= id) order, each still in the file until pop() deletes it. A
// push that sorts inside that prefix is inserted into it; one that sorts after it is not (the
// next refill reads it from the file).
class DiskQueue::Impl {
 public:
  explicit Impl(std::filesystem::path file)
      : db_(std::move(file), "DiskQueue"),
        meta_(open_job_file(db_, kApplicationIdQueue, "DiskQueue",
                            std::string("CREATE TABLE queue(id INTEGER PRIMARY KEY, data BLOB "
                                        "NOT NULL);") +
                                kQueueView)),
        txn_(db_, kOpsPerCommit, [this] { save_meta(); }),
        insert_(db_.prepare("INSERT INTO queue(id, data) VALUES(?1, ?2)")),
        select_(db_.prepare("SELECT id, data FROM queue ORDER BY id LIMIT ?1")),
        delete_(db_.prepare("DELETE FROM queue WHERE id = ?1")),
        size_(static_cast<std::size_t>(meta_.get("size"))),
        next_seq_(static_cast<std::uint64_t>(meta_.get("next_seq"))) {}

  void push(std::string_view blob, int priority) {
    txn_.before_write();
    if (size_ == 0) {
      next_seq_ = 0;  // nothing queued: the counter starts over
    } else if (next_seq_ >= kSeqLimit) {
      renumber();
    }
    const std::int64_t id = queue_id(priority, next_seq_);
    insert_.bind_int64(1, id);
    insert_.bind_blob(2, blob);
    insert_.step();
    insert_.reset();
    ++next_seq_;
    ++size_;
    if (!ahead_.empty() && id < ahead_.back().id) {  // it sorts inside the read-ahead
      auto at = std::upper_bound(ahead_.begin(), ahead_.end(), id,
                                 [](std::int64_t v, const Entry& e) { return v < e.id; });
      ahead_bytes_ += blob.size();
      ahead_.insert(at, Entry{id, std::string(blob)});
      // Dropping entries from the back keeps ahead_ a prefix; they stay in the file.
      while (ahead_.size() > 1 && (ahead_.size() > static_cast<std::size_t>(kReadAheadRows) ||
                                   ahead_bytes_ > kReadAheadBytes)) {
        ahead_bytes_ -= ahead_.back().data.size();
        ahead_.pop_back();
      }
    }
    txn_.after_write();
  }

  std::optional<std::string> pop() {
    if (size_ == 0) return std::nullopt;
    txn_.before_write();
    if (ahead_.empty()) refill();
    if (ahead_.empty()) {  // the stored count was wrong (cannot happen): trust the rows
      size_ = 0;
      return std::nullopt;
    }
    delete_.bind_int64(1, ahead_.front().id);
    delete_.step();
    delete_.reset();
    std::string data = std::move(ahead_.front().data);
    ahead_bytes_ -= data.size();
    ahead_.pop_front();
    --size_;
    txn_.after_write();
    return data;
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void flush() { txn_.commit(); }

 private:
  struct Entry {
    std::int64_t id;
    std::string data;
  };

  void save_meta() {
    meta_.set("size", static_cast<std::int64_t>(size_));
    meta_.set("next_seq", static_cast<std::int64_t>(next_seq_));
  }

  // refill(): reads the next entries in pop order into the empty ahead_.
  void refill() {
    select_.bind_int64(1, kReadAheadRows);
    while (ahead_bytes_ < kReadAheadBytes && select_.step()) {
      std::string_view data = select_.column_bytes(1);
      ahead_.push_back(Entry{select_.column_int64(0), std::string(data)});
      ahead_bytes_ += data.size();
    }
    select_.reset();
  }

  // renumber(): 2^32 pushes since the queue was last empty: gives each priority's entries the
  // seqs 0, 1, 2... in their order (one copy of the table, once per four billion pushes).
  void renumber() {
    ahead_.clear();
    ahead_bytes_ = 0;
    db_.exec((std::string("DROP VIEW queue_entries;"
                          "CREATE TABLE queue_renumbered(id INTEGER PRIMARY KEY, data BLOB NOT "
                          "NULL);"
                          "INSERT INTO queue_renumbered(id, data) SELECT ((id >> 32) << 32) + "
                          "row_number() OVER (PARTITION BY id >> 32 ORDER BY id) - 1, data "
                          "FROM queue;"
                          "DROP TABLE queue;"
                          "ALTER TABLE queue_renumbered RENAME TO queue;") +
              kQueueView)
                 .c_str());
    Statement top = db_.prepare("SELECT max(id & 4294967295) FROM queue");
    top.step();
    next_seq_ = static_cast<std::uint64_t>(top.column_int64(0)) + 1;
  }

  Database db_;  // first: destroyed after the statements
  Meta meta_;
  Transaction txn_;
  Statement insert_;
  Statement select_;
  Statement delete_;
  std::deque<Entry> ahead_;
  std::size_t ahead_bytes_ = 0;
  std::size_t size_;
  std::uint64_t next_seq_;
};

DiskQueue::DiskQueue(std::filesystem::path file)
    : path_(file), impl_(std::make_unique<Impl>(std::move(file))) {}

DiskQueue::~DiskQueue() {
  try {
    close();
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented; close() reports errors
  }
}

DiskQueue::DiskQueue(DiskQueue&& other) noexcept = default;

DiskQueue& DiskQueue::operator=(DiskQueue&& other) noexcept {
  if (this != &other) {
    try {
      close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): as the destructor
    }
    path_ = std::move(other.path_);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

void DiskQueue::push(std::string_view blob, int priority) {
  if (!impl_) throw_closed("DiskQueue");
  impl_->push(blob, priority);
}

std::optional<std::string> DiskQueue::pop() {
  if (!impl_) throw_closed("DiskQueue");
  return impl_->pop();
}

std::size_t DiskQueue::size() const {
  if (!impl_) throw_closed("DiskQueue");
  return impl_->size();
}

bool DiskQueue::empty() const { return size() == 0; }

void DiskQueue::flush() {
  if (!impl_) throw_closed("DiskQueue");
  impl_->flush();
}

void DiskQueue::close() {
  if (!impl_) return;
  // Closed whatever happens: if the last commit fails, destroying impl closes the file and
  // rolls back what was not committed.
  std::unique_ptr<Impl> impl = std::move(impl_);
  impl->flush();
}

// ---- SeenSet ----

namespace {

// is_lower_hex40(s): a 40-digit lowercase hex string (a SHA-1 hexdigest).
bool is_lower_hex40(std::string_view s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// encode_fingerprint(fp, key): the stored key of `fp` — tag byte 1 and the 20 bytes of a
// lowercase 40-hex fingerprint, else tag byte 0 and the bytes as given. The tag keeps the forms
// apart (a 19-byte string can never equal a compacted hash).
void encode_fingerprint(std::string_view fp, std::string& key) {
  key.clear();
  if (is_lower_hex40(fp)) {
    key += '\x01';
    for (std::size_t i = 0; i < fp.size(); i += 2) {
      key += static_cast<char>(detail::hex_value(fp[i]) * 16 + detail::hex_value(fp[i + 1]));
    }
  } else {
    key += '\x00';
    key.append(fp);
  }
}

}  // namespace

class SeenSet::Impl {
 public:
  explicit Impl(std::filesystem::path file)
      : db_(std::move(file), "SeenSet"),
        meta_(open_job_file(db_, kApplicationIdSeen, "SeenSet",
                            "CREATE TABLE seen(fp BLOB PRIMARY KEY) WITHOUT ROWID;")),
        txn_(db_, kOpsPerCommit, [this] { meta_.set("size", static_cast<std::int64_t>(size_)); }),
        insert_(db_.prepare("INSERT OR IGNORE INTO seen(fp) VALUES(?1)")),
        select_(db_.prepare("SELECT 1 FROM seen WHERE fp = ?1")),
        size_(static_cast<std::size_t>(meta_.get("size"))) {}

  bool insert(std::string_view fingerprint) {
    encode_fingerprint(fingerprint, key_);
    txn_.before_write();
    insert_.bind_blob(1, key_);
    insert_.step();
    insert_.reset();
    const bool added = db_.changes() == 1;
    if (added) ++size_;
    txn_.after_write();
    return added;
  }

  bool contains(std::string_view fingerprint) {
    encode_fingerprint(fingerprint, key_);
    select_.bind_blob(1, key_);
    const bool found = select_.step();
    select_.reset();
    return found;
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void flush() { txn_.commit(); }

 private:
  Database db_;  // first: destroyed after the statements
  Meta meta_;
  Transaction txn_;
  Statement insert_;
  Statement select_;
  std::size_t size_;
  std::string key_;  // encode_fingerprint's output, reused
};

SeenSet::SeenSet(std::filesystem::path file)
    : path_(file), impl_(std::make_unique<Impl>(std::move(file))) {}

SeenSet::~SeenSet() {
  try {
    close();
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented; close() reports errors
  }
}

SeenSet::SeenSet(SeenSet&& other) noexcept = default;

SeenSet& SeenSet::operator=(SeenSet&& other) noexcept {
  if (this != &other) {
    try {
      close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): as the destructor
    }
    path_ = std::move(other.path_);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

bool SeenSet::insert(std::string_view fingerprint) {
  if (!impl_) throw_closed("SeenSet");
  return impl_->insert(fingerprint);
}

bool SeenSet::contains(std::string_view fingerprint) const {
  if (!impl_) throw_closed("SeenSet");
  return impl_->contains(fingerprint);
}

std::size_t SeenSet::size() const {
  if (!impl_) throw_closed("SeenSet");
  return impl_->size();
}

void SeenSet::flush() {
  if (!impl_) throw_closed("SeenSet");
  impl_->flush();
}

void SeenSet::close() {
  if (!impl_) return;
  std::unique_ptr<Impl> impl = std::move(impl_);
  impl->flush();
}

}  // namespace concur::crawl
