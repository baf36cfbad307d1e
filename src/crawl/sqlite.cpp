// The SQLite wrappers of src/crawl/sqlite.hpp.
#include "sqlite.hpp"

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <utility>

#include "concur/errors.hpp"

namespace concur::crawl::detail {

namespace {

// quoted_path(path): 'path', as Python's OSError prints a file name.
std::string quoted_path(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

}  // namespace

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

void Statement::bind_int64(int index, std::int64_t value) {
  if (int rc = sqlite3_bind_int64(stmt_, index, value); rc != SQLITE_OK) db_->fail(rc, "bind");
}

void Statement::bind_double(int index, double value) {
  if (int rc = sqlite3_bind_double(stmt_, index, value); rc != SQLITE_OK) db_->fail(rc, "bind");
}

void Statement::bind_text(int index, std::string_view value) {
  // A null pointer would bind NULL: an empty string binds "" through a non-null one.
  const char* data = value.empty() ? "" : value.data();
  int rc = sqlite3_bind_text64(stmt_, index, data, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
}

void Statement::bind_blob(int index, std::string_view value) {
  int rc = value.empty()
               ? sqlite3_bind_zeroblob(stmt_, index, 0)
               : sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
}

void Statement::bind_null(int index) {
  if (int rc = sqlite3_bind_null(stmt_, index); rc != SQLITE_OK) db_->fail(rc, "bind");
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // The statement's own error is also the connection's: read it before reset() keeps it either way.
  sqlite3_reset(stmt_);
  db_->fail(rc, "step");
}

void Statement::reset() noexcept {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::int64_t Statement::column_int64(int index) const noexcept {
  return sqlite3_column_int64(stmt_, index);
}

std::string_view Statement::column_bytes(int index) const noexcept {
  // sqlite3_column_blob before sqlite3_column_bytes, as SQLite's documentation orders them.
  const void* data = sqlite3_column_blob(stmt_, index);
  int n = sqlite3_column_bytes(stmt_, index);
  if (data == nullptr || n <= 0) return {};
  return {static_cast<const char*>(data), static_cast<std::size_t>(n)};
}

// ---- Database ----

Database::Database(std::filesystem::path path, std::string what)
    : path_(std::move(path)), what_(std::move(what)) {
  require_parent_directory(path_);
  int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    // db_ may be a handle holding the error message (or null when out of memory).
    if (db_ == nullptr) throw std::bad_alloc();
    try {
      fail(rc, "open");
    } catch (...) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
  }
  sqlite3_extended_result_codes(db_, 1);
}

Database::~Database() {
  // sqlite3_close_v2 defers the close until the last statement is finalized, so it cannot fail
  // with SQLITE_BUSY here; an open transaction is rolled back.
  sqlite3_close_v2(db_);
}

void Database::exec(const char* sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  sqlite3_free(message);  // the same text stays readable through sqlite3_errmsg
  if (rc != SQLITE_OK) fail(rc, "exec");
}

Statement Database::prepare(std::string_view sql) const {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) fail(rc, "prepare");
  return Statement(*this, stmt);
}

std::string Database::pragma_text(const char* sql) {
  Statement s = prepare(sql);
  if (!s.step()) return {};
  return std::string(s.column_bytes(0));
}

std::int64_t Database::last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }

int Database::changes() const noexcept { return sqlite3_changes(db_); }

void Database::fail(int rc, std::string_view action) const {
  const int primary = rc & 0xFF;
  const char* message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  std::string text = what_ + ": " + std::string(action) + " failed: " + message + " (sqlite " +
                     std::to_string(rc) + "): " + quoted_path(path_);
  switch (primary) {
    case SQLITE_NOMEM:
      throw std::bad_alloc();
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw RuntimeError(what_ + ": " + quoted_path(path_) +
                         " is in use by another connection or process (sqlite: " + message + ")");
    case SQLITE_MISUSE:
      throw RuntimeError(text);
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      throw ValueError(text);
    default: {
      // The errno of the failed system call, for I/O errors and files that cannot be opened.
      int err = (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_FULL ||
                 primary == SQLITE_READONLY || primary == SQLITE_PERM) &&
                        db_ != nullptr
                    ? sqlite3_system_errno(db_)
                    : 0;
      throw OSError(err, text);
    }
  }
}

// ---- Transaction ----

Transaction::Transaction(Database& db, std::size_t ops_per_commit,
                         std::function<void()> before_commit)
    : ops_per_commit_(ops_per_commit == 0 ? 1 : ops_per_commit),
      before_commit_(std::move(before_commit)),
      begin_(db.prepare("BEGIN IMMEDIATE")),
      commit_(db.prepare("COMMIT")) {}

void Transaction::begin() {
  begin_.step();
  begin_.reset();
  open_ = true;
  ops_ = 0;
}

void Transaction::commit() {
  if (!open_) return;
  if (before_commit_) before_commit_();
  commit_.step();
  commit_.reset();
  open_ = false;
  ops_ = 0;
}

// ---- helpers ----

std::string quote_identifier(std::string_view name) {
  if (name.find('\0') != std::string_view::npos) {
    throw ValueError("SQL identifier contains a NUL byte");
  }
  std::string out;
  out.reserve(name.size() + 2);
  out += '"';
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

void require_parent_directory(const std::filesystem::path& path) {
  std::filesystem::path parent = path.parent_path();
  if (parent.empty()) return;  // the current directory
  std::error_code ec;
  auto status = std::filesystem::status(parent, ec);
  if (!std::filesystem::exists(status)) {
    throw OSError(ENOENT, "No such file or directory: " + quoted_path(parent) + " (the parent of " +
                              quoted_path(path) + ")");
  }
  if (!std::filesystem::is_directory(status)) {
    throw OSError(ENOTDIR, "Not a directory: " + quoted_path(parent) + " (the parent of " +
                               quoted_path(path) + ")");
  }
}

}  // namespace concur::crawl::detail
