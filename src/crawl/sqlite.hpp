// Private RAII wrappers over SQLite's C API for src/crawl/ (the SQLite feed exporter, the disk
// frontier): Database owns a connection, Statement a prepared statement, Transaction batches
// writes into one open transaction committed every N operations.
//
// Errors become concur exceptions (errors.hpp), each naming the SQLite message and the file:
// SQLITE_BUSY / SQLITE_LOCKED (another connection or process holds the file) and SQLITE_MISUSE ->
// RuntimeError; SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE -> ValueError;
// SQLITE_NOMEM -> std::bad_alloc; everything else (I/O, full disk, not a database, corruption)
// -> OSError, with the errno SQLite saw when there is one.
// Thread-safety: none; one thread at a time per Database and its statements (the connections are
// opened with SQLITE_OPEN_NOMUTEX).
// Lifetime: a Statement must be destroyed (or reset to empty) before its Database.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace concur::crawl::detail {

class Database;

// Statement: one prepared statement of a Database; empty when default-constructed or moved from.
class Statement {
 public:
  Statement() = default;
  Statement(const Database& db, sqlite3_stmt* stmt) noexcept : db_(&db), stmt_(stmt) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // bind_*(index, value): binds parameter `index` (1-based). Text and blobs are copied
  // (SQLITE_TRANSIENT); an empty blob binds a zero-length blob, not NULL.
  void bind_int64(int index, std::int64_t value);
  void bind_double(int index, double value);
  void bind_text(int index, std::string_view value);
  void bind_blob(int index, std::string_view value);
  void bind_null(int index);

  // step(): runs one step; true if a row is ready (read it with column_*), false when done.
  // Throws the mapped exception on error, after resetting the statement.
  bool step();
  // reset(): rewinds the statement for another run and clears its bindings (all NULL).
  void reset() noexcept;

  // column_*(index): the current row's column `index` (0-based). column_bytes' view is valid until
  // the next step() or reset().
  [[nodiscard]] std::int64_t column_int64(int index) const noexcept;
  [[nodiscard]] std::string_view column_bytes(int index) const noexcept;

  [[nodiscard]] explicit operator bool() const noexcept { return stmt_ != nullptr; }

 private:
  const Database* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// Database: one connection to a SQLite file. Not movable (statements point at it).
class Database {
 public:
  // Database(path, what): opens (creating it if missing) `path` read-write. `what` names the
  // owner in error messages ("DiskQueue"). Throws OSError if the parent directory is missing or
  // the file cannot be opened.
  Database(std::filesystem::path path, std::string what);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // exec(sql): runs one or more statements that return no rows of interest.
  void exec(const char* sql);
  // prepare(sql): a prepared statement for `sql` (one statement).
  [[nodiscard]] Statement prepare(std::string_view sql) const;
  // pragma_text(sql): runs a PRAGMA and returns the first column of its first row as text ("" if
  // none) — e.g. "PRAGMA journal_mode=WAL" returns the mode actually set.
  [[nodiscard]] std::string pragma_text(const char* sql);

  [[nodiscard]] std::int64_t last_insert_rowid() const noexcept;
  [[nodiscard]] int changes() const noexcept;

  // fail(rc, action): throws the exception mapped from SQLite result code `rc` (see the file's
  // comment), its text naming what failed, SQLite's message and the file.
  [[noreturn]] void fail(int rc, std::string_view action) const;

  [[nodiscard]] sqlite3* handle() const noexcept { return db_; }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] const std::string& what() const noexcept { return what_; }

 private:
  std::filesystem::path path_;
  std::string what_;
  sqlite3* db_ = nullptr;
};

// Transaction: writes batched into one open transaction. before_write() opens it (BEGIN
// IMMEDIATE) if none is open; after_write() counts an operation and commits when `ops_per_commit`
// have been done; commit() commits now (a no-op without an open transaction), first running
// `before_commit` (which writes what must be committed with the batch, such as counters). The
// destructor leaves an open transaction to the connection's close, which rolls it back.
class Transaction {
 public:
  Transaction(Database& db, std::size_t ops_per_commit,
              std::function<void()> before_commit = nullptr);

  void before_write() {
    if (!open_) begin();
  }
  void after_write() {
    if (++ops_ >= ops_per_commit_) commit();
  }
  void commit();
  [[nodiscard]] bool open() const noexcept { return open_; }

 private:
  void begin();

  std::size_t ops_per_commit_;
  std::function<void()> before_commit_;
  std::size_t ops_ = 0;
  bool open_ = false;
  Statement begin_;
  Statement commit_;
};

// quote_identifier(name): `name` as an SQL identifier in double quotes, inner quotes doubled, so
// any name (`x"; DROP TABLE t; --`) is one identifier. Throws ValueError if it holds a NUL byte.
[[nodiscard]] std::string quote_identifier(std::string_view name);

// require_parent_directory(path): throws OSError (ENOENT / ENOTDIR) naming `path` if its parent
// directory does not exist or is no directory.
void require_parent_directory(const std::filesystem::path& path);

}  // namespace concur::crawl::detail
