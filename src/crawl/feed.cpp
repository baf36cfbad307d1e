// Feed exports (include/concur/crawl/feed.hpp): the text formats write through OutputFile, a
// file descriptor behind a 64 KiB buffer; SqliteExporter writes through src/crawl/sqlite.hpp.
#include "concur/crawl/feed.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "concur/errors.hpp"
#include "internal.hpp"
#include "sqlite.hpp"

namespace concur::crawl {

namespace {

namespace fs = std::filesystem;
using detail::Database;
using detail::Statement;
using detail::Transaction;

// kBlockBytes: the text exporters' buffer; a full buffer is one write(2).
constexpr std::size_t kBlockBytes = 64 * 1024;
// kSqliteItemsPerCommit: SqliteExporter's inserts per transaction.
constexpr std::size_t kSqliteItemsPerCommit = 1000;
// kMaxCsvHeaderBytes: how much of an existing CSV file appending reads to find its header row.
constexpr std::size_t kMaxCsvHeaderBytes = 1 << 20;

constexpr auto kReplaceInvalid = Item::error_handler_t::replace;

std::string quoted_path(const fs::path& path) { return "'" + path.string() + "'"; }

[[noreturn]] void throw_errno(int err, const fs::path& path) {
  throw OSError(err, std::string(std::strerror(err)) + ": " + quoted_path(path));
}

// check_item(item): ValueError unless `item` is a JSON object.
void check_item(const Item& item) {
  if (!item.is_object()) {
    throw ValueError(std::string("feed item must be a JSON object, not ") + item.type_name());
  }
}

// check_open(finished, kind): RuntimeError once the exporter has finished.
void check_open(bool finished, const char* kind) {
  if (finished) throw RuntimeError(std::string(kind) + ": export_item() after finish()");
}

// append_json(out, value): `value` as compact JSON, invalid UTF-8 replaced by U+FFFD.
void append_json(std::string& out, const Item& value) {
  out += value.dump(-1, ' ', /*ensure_ascii=*/false, kReplaceInvalid);
}

// OutputFile: a file written through a buffer of about kBlockBytes. Errors are OSError naming the
// file; after one, the buffered bytes are dropped (they could not be written).
class OutputFile {
 public:
  OutputFile(const fs::path& path, bool append) : path_(path) {
    detail::require_parent_directory(path);
    fd_ =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0666);
    if (fd_ < 0) throw_errno(errno, path);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      int err = errno;
      ::close(fd_);
      throw_errno(err, path);
    }
    was_empty_ = st.st_size == 0;
    buffer_.reserve(kBlockBytes + kBlockBytes / 4);
  }
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // buffer(): where the exporter appends its bytes; then it calls wrote().
  std::string& buffer() noexcept { return buffer_; }
  void wrote() {
    if (buffer_.size() >= kBlockBytes) flush();
  }

  // flush(): write(2)s the whole buffer.
  void flush() {
    std::size_t done = 0;
    while (done < buffer_.size()) {
      ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        buffer_.clear();
        throw_errno(err, path_);
      }
      done += static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

  // close(): flushes and closes the file (close(2)'s error reported too: NFS reports late).
  void close() {
    if (fd_ < 0) return;
    try {
      flush();
    } catch (...) {
      ::close(std::exchange(fd_, -1));
      throw;
    }
    if (::close(std::exchange(fd_, -1)) != 0 && errno != EINTR) throw_errno(errno, path_);
  }

  // was_empty(): the file had no bytes when opened.
  [[nodiscard]] bool was_empty() const noexcept { return was_empty_; }

 private:
  fs::path path_;
  int fd_ = -1;
  bool was_empty_ = true;
  std::string buffer_;
};

// ---- CSV ----

// needs_quotes(s): RFC 4180 — a field holding a comma, a double quote, CR or LF is quoted.
bool needs_quotes(std::string_view s) {
  return s.find_first_of(",\"\r\n") != std::string_view::npos;
}

// append_csv_field(out, text): `text` as one CSV field.
void append_csv_field(std::string& out, std::string_view text) {
  if (!needs_quotes(text)) {
    out += text;
    return;
  }
  out += '"';
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

// csv_text(value, scratch): an item value's CSV text (see CsvExporter): a view of the string
// itself when it is valid UTF-8, else of `scratch`.
std::string_view csv_text(const Item& value, std::string& scratch) {
  scratch.clear();
  switch (value.type()) {
    case Item::value_t::null:
    case Item::value_t::discarded:
      return {};
    case Item::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      detail::append_valid_utf8(scratch, s);
      return scratch;
    }
    default:
      append_json(scratch, value);
      return scratch;
  }
}

// read_csv_header(path): the first record of a CSV file (RFC 4180 quoting), read from at most
// kMaxCsvHeaderBytes; empty if the file cannot be read.
std::vector<std::string> read_csv_header(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> fields;
  if (!in) return fields;
  std::string field;
  bool quoted_field = false;  // inside a quoted field
  bool any = false;           // the record has begun
  std::size_t read = 0;
  char c = 0;
  while (read < kMaxCsvHeaderBytes && in.get(c)) {
    ++read;
    any = true;
    if (quoted_field) {
      if (c != '"') {
        field += c;
      } else if (in.peek() == '"') {
        in.get(c);
        ++read;
        field += '"';
      } else {
        quoted_field = false;
      }
    } else if (c == '"' && field.empty()) {
      quoted_field = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else if (c == '\r' || c == '\n') {
      break;
    } else {
      field += c;
    }
  }
  if (any) fields.push_back(std::move(field));
  return fields;
}

// ---- SQLite ----

// StringHash: lets the column maps be searched by string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using ColumnMap = std::unordered_map<std::string, std::size_t, StringHash, std::equal_to<>>;

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = detail::ascii_lower(c);
  return out;
}

// sql_type(value): the declared type of a column first seen with `value`.
const char* sql_type(const Item& value) {
  switch (value.type()) {
    case Item::value_t::string:
    case Item::value_t::array:
    case Item::value_t::object:
      return " TEXT";
    case Item::value_t::boolean:
    case Item::value_t::number_integer:
    case Item::value_t::number_unsigned:
      return " INTEGER";
    case Item::value_t::number_float:
      return " REAL";
    case Item::value_t::binary:
      return " BLOB";
    default:
      return "";  // null: no declared type, values kept as they come
  }
}

}  // namespace

// ---- JsonLinesExporter ----

struct JsonLinesExporter::Impl {
  Impl(const fs::path& path, bool append) : out(path, append) {}
  OutputFile out;
  bool finished = false;
};

JsonLinesExporter::JsonLinesExporter(const std::filesystem::path& path, bool append)
    : impl_(std::make_unique<Impl>(path, append)) {}

JsonLinesExporter::~JsonLinesExporter() {
  try {
    finish();
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented; finish() reports errors
  }
}

void JsonLinesExporter::export_item(const Item& item) {
  check_item(item);
  check_open(impl_->finished, "JsonLinesExporter");
  std::string& buf = impl_->out.buffer();
  append_json(buf, item);
  buf += '\n';
  ++count_;
  impl_->out.wrote();
}

void JsonLinesExporter::finish() {
  if (impl_->finished) return;
  impl_->finished = true;
  impl_->out.close();
}

// ---- JsonExporter ----

struct JsonExporter::Impl {
  explicit Impl(const fs::path& path) : out(path, /*append=*/false) {}
  OutputFile out;
  bool finished = false;
};

JsonExporter::JsonExporter(const std::filesystem::path& path)
    : impl_(std::make_unique<Impl>(path)) {
  impl_->out.buffer() += '[';
}

JsonExporter::~JsonExporter() {
  try {
    finish();
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented; finish() reports errors
  }
}

void JsonExporter::export_item(const Item& item) {
  check_item(item);
  check_open(impl_->finished, "JsonExporter");
  std::string& buf = impl_->out.buffer();
  buf += count_ == 0 ? "\n" : ",\n";
  append_json(buf, item);
  ++count_;
  impl_->out.wrote();
}

void JsonExporter::finish() {
  if (impl_->finished) return;
  impl_->finished = true;
  impl_->out.buffer() += "\n]\n";
  impl_->out.close();
}

// ---- CsvExporter ----

struct CsvExporter::Impl {
  Impl(const fs::path& path, bool append, std::vector<std::string> columns)
      : out(path, append), fields(std::move(columns)) {}
  OutputFile out;
  std::vector<std::string> fields;
  bool header_written = false;  // or not needed: appending to a non-empty file
  bool finished = false;
  std::string scratch;  // csv_text's buffer

  void write_header() {
    std::string& buf = out.buffer();
    write_row(buf, fields.size(), [&](std::size_t i) -> std::string_view {
      scratch.clear();
      detail::append_valid_utf8(scratch, fields[i]);
      return scratch;
    });
    header_written = true;
    out.wrote();
  }

  // write_row(buf, n, text): a record of n fields, field i being text(i). A lone empty field is
  // written "" so that the line is not read as a blank one (Python's csv module does the same).
  template <class Text>
  static void write_row(std::string& buf, std::size_t n, Text&& text) {
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) buf += ',';
      std::string_view t = text(i);
      if (n == 1 && t.empty()) {
        buf += "\"\"";
      } else {
        append_csv_field(buf, t);
      }
    }
    buf += "\r\n";
  }
};

CsvExporter::CsvExporter(const std::filesystem::path& path, std::vector<std::string> fields,
                         bool append)
    : impl_(std::make_unique<Impl>(path, append, std::move(fields))) {
  if (append && !impl_->out.was_empty()) {
    impl_->header_written = true;
    if (impl_->fields.empty()) impl_->fields = read_csv_header(path);
  } else if (!impl_->fields.empty()) {
    impl_->write_header();
  }
}

CsvExporter::~CsvExporter() {
  try {
    finish();
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented; finish() reports errors
  }
}

void CsvExporter::export_item(const Item& item) {
  check_item(item);
  check_open(impl_->finished, "CsvExporter");
  Impl& s = *impl_;
  if (s.fields.empty()) {  // columns from the first item
    for (const auto& [key, value] : item.items()) s.fields.push_back(key);
  }
  if (!s.header_written) s.write_header();
  Impl::write_row(s.out.buffer(), s.fields.size(), [&](std::size_t i) -> std::string_view {
    auto it = item.find(s.fields[i]);
    if (it == item.end()) return {};
    return csv_text(*it, s.scratch);
  });
  ++count_;
  s.out.wrote();
}

void CsvExporter::finish() {
  if (impl_->finished) return;
  impl_->finished = true;
  impl_->out.close();
}

// ---- SqliteExporter ----

// SqliteExporter::Impl: the open database, or nothing once finished.
struct SqliteExporter::Impl {
  // State: the connection and what depends on it; destroying it closes the file.
  struct State {
    Database db;
    Transaction txn;
    Statement insert;  // INSERT of every column, in columns' order
    explicit State(const fs::path& path)
        : db(path, "SqliteExporter"), txn(configure(db), kSqliteItemsPerCommit) {}

    static Database& configure(Database& db) {
      sqlite3_busy_timeout(db.handle(), 5000);  // another writer's transaction: wait, then fail
      db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
      return db;
    }
  };

  std::unique_ptr<State> state;
  std::string table;         // as given
  std::string quoted_table;  // quoted for SQL
  std::vector<std::string> columns;
  ColumnMap by_name;   // exact names (the columns' and their case variants seen) -> index
  ColumnMap by_lower;  // ASCII-lowered names -> index: SQLite's identifier matching
  bool table_exists = false;
  std::uint64_t rows_without_table = 0;  // empty items seen before any column existed
  std::vector<std::size_t> slots;        // export_item: each key's column
  std::vector<std::uint64_t> used;       // export_item: the item generation that bound a column
  std::uint64_t generation = 0;
  std::string scratch;  // text of the value being bound

  Impl(const fs::path& path, std::string table_name)
      : table(std::move(table_name)), quoted_table(detail::quote_identifier(table)) {
    if (table.empty()) throw ValueError("SqliteExporter: empty table name");
    state = std::make_unique<State>(path);
    Statement info = state->db.prepare("SELECT name FROM pragma_table_info(?1)");
    info.bind_text(1, table);
    while (info.step()) add_known_column(std::string(info.column_bytes(0)));
    table_exists = !columns.empty();
  }

  void add_known_column(std::string name) {
    const std::size_t index = columns.size();
    by_lower.emplace(ascii_lower(name), index);
    by_name.emplace(name, index);
    columns.push_back(std::move(name));
  }

  // column_of(key): the index of the column `key` names, or npos.
  std::size_t column_of(const std::string& key) {
    if (auto it = by_name.find(key); it != by_name.end()) return it->second;
    auto it = by_lower.find(ascii_lower(key));
    if (it == by_lower.end()) return std::string::npos;
    by_name.emplace(key, it->second);  // remember the variant: no lowering next time
    return it->second;
  }

  void prepare_insert() {
    std::string sql = "INSERT INTO " + quoted_table + " (";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (i > 0) sql += ", ";
      sql += detail::quote_identifier(columns[i]);
    }
    sql += ") VALUES (";
    for (std::size_t i = 0; i < columns.size(); ++i) sql += i > 0 ? ", ?" : "?";
    sql += ")";
    state->insert = Statement();  // finalized before the schema's next change
    state->insert = state->db.prepare(sql);
  }

  // add_columns(item, fresh): creates the table or adds the columns for the keys of `item` listed
  // in `fresh` (indices into the item), typed by their values.
  void add_columns(const Item& item, const std::vector<std::size_t>& fresh) {
    state->insert = Statement();
    std::vector<std::pair<std::string, const Item*>> keys;
    std::size_t k = 0;
    for (const auto& [key, value] : item.items()) {
      if (std::find(fresh.begin(), fresh.end(), k) != fresh.end()) keys.emplace_back(key, &value);
      ++k;
    }
    if (!table_exists) {
      std::string sql = "CREATE TABLE IF NOT EXISTS " + quoted_table + " (";
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (i > 0) sql += ", ";
        sql += detail::quote_identifier(keys[i].first) + sql_type(*keys[i].second);
      }
      sql += ")";
      state->db.exec(sql.c_str());
    } else {
      for (const auto& [key, value] : keys) {
        std::string sql = "ALTER TABLE " + quoted_table + " ADD COLUMN " +
                          detail::quote_identifier(key) + sql_type(*value);
        state->db.exec(sql.c_str());
      }
    }
    for (auto& [key, value] : keys) add_known_column(key);
    table_exists = true;
  }

  void bind(std::size_t column, const Item& value) {
    Statement& st = state->insert;
    const int index = static_cast<int>(column) + 1;
    switch (value.type()) {
      case Item::value_t::string:
        scratch.clear();
        detail::append_valid_utf8(scratch, value.get_ref<const std::string&>());
        st.bind_text(index, scratch);
        break;
      case Item::value_t::boolean:
        st.bind_int64(index, value.get<bool>() ? 1 : 0);
        break;
      case Item::value_t::number_integer:
        st.bind_int64(index, value.get<std::int64_t>());
        break;
      case Item::value_t::number_unsigned: {
        auto u = value.get<std::uint64_t>();
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          st.bind_int64(index, static_cast<std::int64_t>(u));
        } else {
          st.bind_text(index, std::to_string(u));
        }
        break;
      }
      case Item::value_t::number_float:
        st.bind_double(index, value.get<double>());
        break;
      case Item::value_t::array:
      case Item::value_t::object:
        scratch.clear();
        append_json(scratch, value);
        st.bind_text(index, scratch);
        break;
      case Item::value_t::binary: {
        const auto& b = value.get_binary();
        st.bind_blob(index, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
        break;
      }
      default:
        break;  // null: the binding stays NULL
    }
  }

  void insert_row() {
    state->insert.step();
    state->insert.reset();
  }

  void export_item(const Item& item) {
    // 1. Map every key to a column (existing or to be added) before changing anything, so that a
    // bad item (a NUL in a key, two keys one column) leaves the file as it was.
    slots.clear();
    std::vector<std::size_t> fresh;      // indices (in the item) of keys without a column
    std::vector<std::string> fresh_low;  // their lowered names
    ++generation;
    for (const auto& [key, value] : item.items()) {
      if (key.find('\0') != std::string::npos) {
        throw ValueError("SqliteExporter: field name contains a NUL byte");
      }
      std::size_t col = column_of(key);
      if (col == std::string::npos) {
        std::string low = ascii_lower(key);
        auto at = std::find(fresh_low.begin(), fresh_low.end(), low);
        col = columns.size() + static_cast<std::size_t>(at - fresh_low.begin());
        if (at == fresh_low.end()) {
          fresh.push_back(slots.size());
          fresh_low.push_back(std::move(low));
        }
      }
      if (used.size() <= col) used.resize(col + 1, 0);
      if (used[col] == generation) {
        throw ValueError("SqliteExporter: fields '" + key + "' and another name one column (" +
                         "SQLite column names ignore ASCII case)");
      }
      used[col] = generation;
      slots.push_back(col);
    }
    state->txn.before_write();
    // 2. The schema: new columns (or the table), then the INSERT for every column.
    if (!fresh.empty()) add_columns(item, fresh);
    if (!table_exists) {  // an empty item and still no column: its row waits for the table
      ++rows_without_table;
      state->txn.after_write();
      return;
    }
    if (!state->insert) prepare_insert();
    for (; rows_without_table > 0; --rows_without_table) insert_row();  // all NULL
    // 3. The row (reset first: a bind that threw for an earlier item may have left values).
    state->insert.reset();
    std::size_t k = 0;
    for (const auto& [key, value] : item.items()) bind(slots[k++], value);
    insert_row();
    state->txn.after_write();
  }

  void finish() {
    if (!state) return;
    std::unique_ptr<State> s = std::move(state);  // closed whatever happens
    s->insert = Statement();
    s->txn.commit();
  }
};

SqliteExporter::SqliteExporter(const std::filesystem::path& path, std::string table)
    : impl_(std::make_unique<Impl>(path, std::move(table))) {}

SqliteExporter::~SqliteExporter() {
  try {
    finish();
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented; finish() reports errors
  }
}

void SqliteExporter::export_item(const Item& item) {
  check_item(item);
  check_open(!impl_->state, "SqliteExporter");
  impl_->export_item(item);
  ++count_;
}

void SqliteExporter::finish() { impl_->finish(); }

// ---- make_feed_exporter ----

std::unique_ptr<FeedExporter> make_feed_exporter(const std::string& path, std::string format,
                                                 std::vector<std::string> fields) {
  FeedOptions options;
  options.format = std::move(format);
  options.fields = std::move(fields);
  return make_feed_exporter(path, options);
}

std::unique_ptr<FeedExporter> make_feed_exporter(const std::string& path,
                                                 const FeedOptions& options) {
  std::string format = options.format;
  if (format.empty()) {
    std::string ext = fs::path(path).extension().string();
    if (ext.empty()) {
      throw ValueError("cannot tell the feed format of " + quoted_path(path) +
                       ": no extension (use .jsonl, .json, .csv or .sqlite, or name the format)");
    }
    format = ext.substr(1);
  }
  format = ascii_lower(format);
  if (format == "jsonlines" || format == "jsonl" || format == "jl") {
    return std::make_unique<JsonLinesExporter>(path, options.append);
  }
  if (format == "json") {
    if (options.append) {
      throw ValueError("cannot append to the JSON feed " + quoted_path(path) +
                       " (a JSON array); use JSON Lines");
    }
    return std::make_unique<JsonExporter>(path);
  }
  if (format == "csv") return std::make_unique<CsvExporter>(path, options.fields, options.append);
  if (format == "sqlite" || format == "sqlite3" || format == "db") {
    return std::make_unique<SqliteExporter>(path, options.table);
  }
  throw ValueError("unknown feed format '" + format + "' for " + quoted_path(path) +
                   " (known: jsonlines/jsonl/jl, json, csv, sqlite/sqlite3/db)");
}

}  // namespace concur::crawl
