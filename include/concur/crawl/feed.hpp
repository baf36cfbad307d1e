// concur/crawl/feed.hpp — scraped items and Scrapy's feed exports (FEEDS): Item, a JSON object
// whose fields keep their insertion order; FeedExporter, written one item at a time by
// export_item() and closed by finish(); its four formats — JsonLinesExporter (.jsonl / .jl),
// JsonExporter (.json), CsvExporter (.csv) and SqliteExporter (.sqlite / .sqlite3 / .db) — and
// make_feed_exporter(path), which picks one by the file's extension.
//
// Output is UTF-8; invalid UTF-8 in an item's strings is replaced by U+FFFD, never an error.
// Every exporter streams: memory does not grow with the number of items (text formats are
// buffered and written in 64 KiB blocks; SQLite inserts are committed every 1000 items).
// Errors (errors.hpp): an Item that is not an object -> ValueError; a missing parent directory or
// a failed write -> OSError (naming the file); export_item() after finish() -> RuntimeError.
// Thread-safety: none; use an exporter from one thread at a time.
// Lifetime: the destructor calls finish() and swallows its errors; call finish() to see them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "concur/detail/config.hpp"

namespace concur::crawl {

// Item: one scraped item — a JSON object, fields in insertion order (Scrapy's dict items).
using Item = nlohmann::ordered_json;

// FeedExporter: the interface every feed format implements.
class CONCUR_EXPORT FeedExporter {
 public:
  virtual ~FeedExporter() = default;
  FeedExporter(const FeedExporter&) = delete;
  FeedExporter& operator=(const FeedExporter&) = delete;

  // export_item(item) writes `item` (buffered). Throws ValueError if it is not a JSON object
  // (nothing is written), RuntimeError after finish(), OSError if writing fails.
  virtual void export_item(const Item& item) = 0;
  // finish() writes what is buffered and closes the file. Idempotent: later calls do nothing.
  virtual void finish() = 0;
  // count() is the number of items exported so far.
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

 protected:
  FeedExporter() = default;
  std::uint64_t count_ = 0;  // incremented by export_item() for every item written
};

// FeedOptions: how make_feed_exporter() opens a feed. Every member has a default (`{}` included,
// so designated initializers such as FeedOptions{.append = true} compile without warnings).
struct FeedOptions {
  // append: add to an existing file instead of replacing it (Scrapy's `overwrite` negated).
  // JSON Lines and CSV append (CSV writes no header into a non-empty file); JSON cannot append
  // (ValueError); SQLite always appends rows, whatever this says.
  bool append = false;
  // fields: the CSV columns, in order (Scrapy's FEED_EXPORT_FIELDS); empty = the first item's keys
  // (or, when appending to a non-empty CSV file, its header row). Other formats ignore it.
  std::vector<std::string> fields{};
  // table: the SQLite table the items go into.
  std::string table = "items";
  // format: "jsonlines" (or "jsonl", "jl"), "json", "csv", "sqlite" (or "sqlite3", "db"); empty
  // = from the path's extension (case-insensitive).
  std::string format{};
};

// JsonLinesExporter: one compact JSON object per line ('\n'), fields in the item's order.
class CONCUR_EXPORT JsonLinesExporter final : public FeedExporter {
 public:
  // JsonLinesExporter(path, append) creates or truncates `path` (or appends to it).
  explicit JsonLinesExporter(const std::filesystem::path& path, bool append = false);
  ~JsonLinesExporter() override;

  void export_item(const Item& item) override;
  void finish() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// JsonExporter: one JSON array of the items, one item per line ("[\n{...},\n{...}\n]\n"), written
// as the items come; zero items give "[\n]\n". The file is valid JSON only once finish() ran.
class CONCUR_EXPORT JsonExporter final : public FeedExporter {
 public:
  // JsonExporter(path) creates or truncates `path`.
  explicit JsonExporter(const std::filesystem::path& path);
  ~JsonExporter() override;

  void export_item(const Item& item) override;
  void finish() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// CsvExporter: RFC 4180 CSV — a header row, then one row per item, CRLF line ends; a field that
// holds a comma, a double quote, CR or LF is quoted, its quotes doubled. Columns are `fields`,
// or the first item's keys when `fields` is empty: keys an item lacks are empty, keys the
// columns lack are dropped (Scrapy's CsvItemExporter). Values: strings as they are, numbers and
// booleans as JSON text (1, 2.5, true), null empty, arrays and objects as compact JSON.
// With explicit `fields` the header is written at once (so zero items give a header line);
// otherwise with the first item (zero items give an empty file).
class CONCUR_EXPORT CsvExporter final : public FeedExporter {
 public:
  // CsvExporter(path, fields, append) creates or truncates `path` (or appends to it: a non-empty
  // file gets no second header, and with `fields` empty its header row names the columns).
  explicit CsvExporter(const std::filesystem::path& path, std::vector<std::string> fields = {},
                       bool append = false);
  ~CsvExporter() override;

  void export_item(const Item& item) override;
  void finish() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// SqliteExporter: items as rows of `table` in an SQLite file (WAL mode), appended to what is
// there. The table is created with the first item that has a field, one column per field typed
// by the value it first comes with (string TEXT, integer and boolean INTEGER, number REAL, array
// and object TEXT holding compact JSON, null no declared type); a field first seen later adds a
// column (ALTER TABLE ADD COLUMN), and a field an item lacks is NULL. Values are bound with their
// types (true = 1; an unsigned integer above INT64_MAX as its decimal text). Column and table names
// may be any text: they are quoted. As in SQLite, names that differ only in ASCII case are one
// column (an item holding two such keys is a ValueError). Inserts are committed every 1000 items
// and by finish().
class CONCUR_EXPORT SqliteExporter final : public FeedExporter {
 public:
  // SqliteExporter(path, table) opens or creates the database `path`. Throws ValueError for an
  // empty table name or one with a NUL byte, RuntimeError if another writer holds the file.
  explicit SqliteExporter(const std::filesystem::path& path, std::string table = "items");
  ~SqliteExporter() override;

  void export_item(const Item& item) override;
  void finish() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// make_feed_exporter(path, format, fields): the exporter for `path`, its format named by `format`
// or, when empty, by the path's extension (".jsonl"/".jl", ".json", ".csv",
// ".sqlite"/".sqlite3"/".db"); `fields` are the CSV columns. An existing file is replaced (but an
// SQLite one is appended to). Throws ValueError for an unknown format or extension (naming it),
// OSError if the parent directory does not exist.
[[nodiscard]] CONCUR_EXPORT std::unique_ptr<FeedExporter> make_feed_exporter(
    const std::string& path, std::string format = "", std::vector<std::string> fields = {});

// make_feed_exporter(path, options): the same with every option (append, table, ...); appending
// to a .json feed is a ValueError.
[[nodiscard]] CONCUR_EXPORT std::unique_ptr<FeedExporter> make_feed_exporter(
    const std::string& path, const FeedOptions& options);

}  // namespace concur::crawl
