// Tests for include/concur/crawl/feed.hpp: every format read back (JSON Lines and JSON parsed by
// nlohmann, CSV by the small RFC 4180 reader below, SQLite through its C API): field order,
// value types, unicode and invalid UTF-8, CSV quoting edge cases, missing and extra fields, zero
// items, appending, hostile table and column names, items that are not objects, finish()
// idempotence and export after it, bad paths and formats, and 100,000 items into each format.
#include "concur/crawl/feed.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "support/sanitizers.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using concur::testing::TempDir;
using namespace concur::crawl;
using Rows = std::vector<std::vector<std::string>>;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// read_jsonl(path): each line parsed.
std::vector<Item> read_jsonl(const fs::path& path) {
  std::vector<Item> items;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) items.push_back(Item::parse(line));
  return items;
}

// parse_csv(text): RFC 4180 records (CRLF or LF line ends, quoted fields with doubled quotes).
Rows parse_csv(const std::string& text) {
  Rows rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  bool in_row = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    in_row = true;
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      in_row = false;
    } else {
      field += c;
    }
  }
  if (in_row) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

// Db: a read connection to an exported SQLite file.
class Db {
 public:
  explicit Db(const fs::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path;
    }
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // query(sql): every row, each column as text ("NULL" for NULL).
  Rows query(const std::string& sql) {
    Rows rows;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return rows;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const auto* text = sqlite3_column_text(st, i);
        row.emplace_back(sqlite3_column_type(st, i) == SQLITE_NULL
                             ? "NULL"
                             : std::string(reinterpret_cast<const char*>(text),
                                           static_cast<std::size_t>(sqlite3_column_bytes(st, i))));
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    return rows;
  }
  std::string one(const std::string& sql) {
    Rows r = query(sql);
    return r.empty() || r[0].empty() ? "<none>" : r[0][0];
  }

 private:
  sqlite3* db_ = nullptr;
};

Item sample_item(int i) {
  Item item;
  item["url"] = "https://example.com/p/" + std::to_string(i);
  item["title"] = "Product \"" + std::to_string(i) + "\", the best";
  item["price"] = i + 0.5;
  item["stock"] = i;
  item["tags"] = {"a", "b"};
  item["available"] = i % 2 == 0;
  return item;
}

// ---- JSON Lines ----

TEST(JsonLinesExporter, RoundTripKeepsFieldsTypesAndOrder) {
  TempDir dir;
  std::vector<Item> items;
  items.push_back(sample_item(1));
  items.push_back(Item::parse(R"({"z": 1, "a": null, "m": {"y": [1, 2.5, "x"], "b": false}})"));
  items.push_back(Item::object());
  items.push_back(Item{{"big", std::numeric_limits<std::uint64_t>::max()}, {"neg", -7}});
  {
    JsonLinesExporter out(dir / "items.jsonl");
    for (const auto& item : items) out.export_item(item);
    EXPECT_EQ(out.count(), items.size());
    out.finish();
  }
  std::vector<Item> back = read_jsonl(dir / "items.jsonl");
  ASSERT_EQ(back.size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(back[i], items[i]);
    EXPECT_EQ(back[i].dump(), items[i].dump());  // same key order
  }
  // Compact: one line per item, no spaces.
  EXPECT_EQ(read_file(dir / "items.jsonl").substr(0, 7), "{\"url\":");
}

TEST(JsonLinesExporter, UnicodeAndInvalidUtf8) {
  TempDir dir;
  {
    JsonLinesExporter out(dir / "u.jsonl");
    out.export_item(Item{{"text", "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80"}});
    out.export_item(Item{{"bad", std::string("a\xFF"
                                             "b\xC3",
                                             4)},
                         {"k\xFE", 1}});
    out.export_item(Item{{"nul", std::string("a\0b", 3)}});
  }
  const std::string raw = read_file(dir / "u.jsonl");
  EXPECT_NE(raw.find("h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80"), std::string::npos)
      << "UTF-8 written as is, not escaped";
  std::vector<Item> back = read_jsonl(dir / "u.jsonl");
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0]["text"], "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80");
  EXPECT_EQ(back[1]["bad"],
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_TRUE(back[1].contains("k\xEF\xBF\xBD"));
  EXPECT_EQ(back[2]["nul"], std::string("a\0b", 3));
}

TEST(JsonLinesExporter, OverwritesOrAppends) {
  TempDir dir;
  const fs::path file = dir / "a.jl";
  write_file(file, "old line\n");
  {
    JsonLinesExporter out(file);
    out.export_item(Item{{"n", 1}});
  }
  EXPECT_EQ(read_file(file), "{\"n\":1}\n");
  {
    auto out = make_feed_exporter(file.string(), FeedOptions{.append = true});
    out->export_item(Item{{"n", 2}});
  }
  EXPECT_EQ(read_file(file), "{\"n\":1}\n{\"n\":2}\n");
}

// ---- JSON ----

TEST(JsonExporter, ZeroItemsIsAnEmptyArray) {
  TempDir dir;
  { JsonExporter out(dir / "e.json"); }
  EXPECT_EQ(read_file(dir / "e.json"), "[\n]\n");
  EXPECT_EQ(Item::parse(read_file(dir / "e.json")), Item::array());
}

TEST(JsonExporter, ArrayRoundTripWrittenIncrementally) {
  TempDir dir;
  const fs::path file = dir / "items.json";
  JsonExporter out(file);
  for (int i = 0; i < 2000; ++i) out.export_item(sample_item(i));
  // ~250 KB of items: most of them are in the file before finish().
  EXPECT_GT(fs::file_size(file), 128u * 1024u);
  out.finish();
  Item back = Item::parse(read_file(file));
  ASSERT_TRUE(back.is_array());
  ASSERT_EQ(back.size(), 2000u);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(back[static_cast<std::size_t>(i)].dump(), sample_item(i).dump());
  }
  const std::string text = read_file(file);
  EXPECT_EQ(text.substr(0, 2), "[\n");
  EXPECT_EQ(text.substr(text.size() - 4), "}\n]\n");
}

TEST(JsonExporter, CannotAppend) {
  TempDir dir;
  try {
    (void)make_feed_exporter((dir / "x.json").string(), FeedOptions{.append = true});
    FAIL() << "appended to a JSON array";
  } catch (const concur::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("x.json"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "x.json"));
}

// ---- CSV ----

TEST(CsvExporter, HeaderFromFirstItemMissingEmptyExtraIgnored) {
  TempDir dir;
  {
    CsvExporter out(dir / "o.csv");
    out.export_item(Item{{"b", "B1"}, {"a", "A1"}});
    out.export_item(Item{{"a", "A2"}, {"extra", "dropped"}});  // no b
    out.export_item(Item{{"b", "B3"}});
  }
  EXPECT_EQ(read_file(dir / "o.csv"), "b,a\r\nB1,A1\r\n,A2\r\nB3,\r\n");
}

TEST(CsvExporter, ExplicitFieldsOrderAndZeroItems) {
  TempDir dir;
  {
    CsvExporter out(dir / "o.csv", {"price", "url", "nothing"});
    out.export_item(Item{{"url", "u"}, {"price", 3}, {"other", 1}});
  }
  EXPECT_EQ(read_file(dir / "o.csv"), "price,url,nothing\r\n3,u,\r\n");
  { CsvExporter out(dir / "header-only.csv", {"a", "b"}); }
  EXPECT_EQ(read_file(dir / "header-only.csv"), "a,b\r\n");
  { CsvExporter out(dir / "empty.csv"); }
  EXPECT_EQ(read_file(dir / "empty.csv"), "");
}

TEST(CsvExporter, ValueRendering) {
  TempDir dir;
  {
    CsvExporter out(dir / "v.csv");
    out.export_item(Item{{"s", "text"},
                         {"i", -3},
                         {"u", std::numeric_limits<std::uint64_t>::max()},
                         {"f", 2.5},
                         {"t", true},
                         {"n", nullptr},
                         {"arr", {1, "x"}},
                         {"obj", Item{{"k", "v"}}}});
  }
  Rows rows = parse_csv(read_file(dir / "v.csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"text", "-3", "18446744073709551615", "2.5", "true",
                                               "", "[1,\"x\"]", "{\"k\":\"v\"}"}));
}

TEST(CsvExporter, QuotingEdgeCases) {
  TempDir dir;
  const std::vector<std::string> values = {
      "plain",     "a,b",       "say \"hi\"", "\"", "line1\nline2", "cr\rhere",
      "crlf\r\nx", " spaced ",  "",           ",",  "\"\"",         "caf\xC3\xA9 \xE2\x9C\x93",
      "tab\there", "semi;colon"};
  {
    CsvExporter out(dir / "q.csv", {"v"});
    for (const auto& v : values) out.export_item(Item{{"v", v}});
  }
  const std::string raw = read_file(dir / "q.csv");
  // Exact bytes for the interesting ones.
  EXPECT_NE(raw.find("\r\n\"a,b\"\r\n"), std::string::npos);
  EXPECT_NE(raw.find("\r\n\"say \"\"hi\"\"\"\r\n"), std::string::npos);
  EXPECT_NE(raw.find("\r\n\"line1\nline2\"\r\n"), std::string::npos);
  EXPECT_NE(raw.find("\r\n spaced \r\n"), std::string::npos);  // spaces are not quoted
  EXPECT_NE(raw.find("\r\n\"\"\r\n"), std::string::npos);      // a lone empty field
  Rows rows = parse_csv(raw);
  ASSERT_EQ(rows.size(), values.size() + 1);
  EXPECT_EQ(rows[0], std::vector<std::string>{"v"});
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(rows[i + 1], std::vector<std::string>{values[i]}) << i;
  }
}

TEST(CsvExporter, HostileHeaderNamesAndInvalidUtf8) {
  TempDir dir;
  {
    CsvExporter out(dir / "h.csv");
    out.export_item(Item{{"na,me", 1}, {"qu\"ote", 2}, {"new\nline", 3}, {"bad\xFF", "v\xFE"}});
  }
  Rows rows = parse_csv(read_file(dir / "h.csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0],
            (std::vector<std::string>{"na,me", "qu\"ote", "new\nline", "bad\xEF\xBF\xBD"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"1", "2", "3", "v\xEF\xBF\xBD"}));
}

TEST(CsvExporter, AppendWritesNoSecondHeaderAndFollowsTheFilesColumns) {
  TempDir dir;
  const fs::path file = dir / "a.csv";
  {
    CsvExporter out(file);
    out.export_item(Item{{"b", "B1"}, {"a,x", "A1"}});
  }
  {
    auto out = make_feed_exporter(file.string(), FeedOptions{.append = true});
    out->export_item(Item{{"a,x", "A2"}, {"b", "B2"}, {"c", "dropped"}});
  }
  EXPECT_EQ(read_file(file), "b,\"a,x\"\r\nB1,A1\r\nB2,A2\r\n");
  // Appending to an empty file writes the header.
  write_file(dir / "empty.csv", "");
  {
    CsvExporter out(dir / "empty.csv", {}, /*append=*/true);
    out.export_item(Item{{"k", 1}});
  }
  EXPECT_EQ(read_file(dir / "empty.csv"), "k\r\n1\r\n");
}

// ---- SQLite ----

TEST(SqliteExporter, RoundTripWithTypes) {
  TempDir dir;
  const fs::path file = dir / "items.sqlite";
  {
    SqliteExporter out(file);
    out.export_item(sample_item(1));
    out.export_item(Item{{"url", "u2"}, {"stock", std::numeric_limits<std::int64_t>::min()}});
    out.export_item(
        Item{{"url", "u3"}, {"big", std::numeric_limits<std::uint64_t>::max()}, {"n", nullptr}});
    EXPECT_EQ(out.count(), 3u);
  }
  Db db(file);
  EXPECT_EQ(db.one("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(db.query("SELECT name, type FROM pragma_table_info('items')"),
            (Rows{{"url", "TEXT"},
                  {"title", "TEXT"},
                  {"price", "REAL"},
                  {"stock", "INTEGER"},
                  {"tags", "TEXT"},
                  {"available", "INTEGER"},
                  {"big", "INTEGER"},
                  {"n", ""}}));
  EXPECT_EQ(db.query("SELECT url, title, price, stock, tags, available, typeof(price), "
                     "typeof(stock), typeof(available) FROM items WHERE rowid = 1"),
            (Rows{{"https://example.com/p/1", "Product \"1\", the best", "1.5", "1",
                   "[\"a\",\"b\"]", "0", "real", "integer", "integer"}}));
  EXPECT_EQ(db.query("SELECT url, title, stock, big, n FROM items WHERE rowid > 1"),
            (Rows{{"u2", "NULL", "-9223372036854775808", "NULL", "NULL"},
                  // Above INT64_MAX: bound as text, which an INTEGER column stores as REAL.
                  {"u3", "NULL", "NULL", "1.84467440737096e+19", "NULL"}}));
}

TEST(SqliteExporter, HostileTableAndColumnNames) {
  TempDir dir;
  const fs::path file = dir / "h.db";
  const std::string evil = "x\"; DROP TABLE items; --";
  {
    SqliteExporter out(file, "my \"table\"; --");
    out.export_item(Item{{evil, "v1"}, {"", "empty name"}, {"select", 1}, {"'q'", 2}});
    out.export_item(Item{{evil, "v2"}, {"[br]", 3}});
  }
  Db db(file);
  EXPECT_EQ(db.query("SELECT name FROM pragma_table_info('my \"table\"; --')"),
            (Rows{{evil}, {""}, {"select"}, {"'q'"}, {"[br]"}}));
  EXPECT_EQ(db.query("SELECT \"x\"\"; DROP TABLE items; --\", \"select\", \"[br]\" "
                     "FROM \"my \"\"table\"\"; --\""),
            (Rows{{"v1", "1", "NULL"}, {"v2", "NULL", "3"}}));
}

TEST(SqliteExporter, ColumnsAddedMissingAreNullCaseFolded) {
  TempDir dir;
  const fs::path file = dir / "c.sqlite";
  {
    SqliteExporter out(file);
    out.export_item(Item{{"Name", "a"}});
    out.export_item(Item{{"name", "b"}, {"extra", 1}});  // "name" is the column "Name"
    out.export_item(Item::object());                     // a row of NULLs
    EXPECT_THROW(out.export_item(Item{{"dup", 1}, {"DUP", 2}}), concur::ValueError);
    EXPECT_THROW(out.export_item(Item{{std::string("nu\0l", 4), 1}}), concur::ValueError);
    out.export_item(Item{{"extra", 2}});
    EXPECT_EQ(out.count(), 4u);
  }
  Db db(file);
  EXPECT_EQ(db.query("SELECT name FROM pragma_table_info('items')"),
            (Rows{{"Name"}, {"extra"}}));  // the bad items added no column
  EXPECT_EQ(db.query("SELECT Name, extra FROM items ORDER BY rowid"),
            (Rows{{"a", "NULL"}, {"b", "1"}, {"NULL", "NULL"}, {"NULL", "2"}}));
}

// Empty items before any column exists wait for the table, then become rows of NULLs.
TEST(SqliteExporter, EmptyItemsBeforeTheTableExists) {
  TempDir dir;
  const fs::path file = dir / "e.sqlite";
  {
    SqliteExporter out(file);
    out.export_item(Item::object());
    out.export_item(Item::object());
    out.export_item(Item{{"k", "v"}});
  }
  Db db(file);
  EXPECT_EQ(db.query("SELECT k FROM items ORDER BY rowid"), (Rows{{"NULL"}, {"NULL"}, {"v"}}));
}

TEST(SqliteExporter, AppendsToAnExistingDatabaseAndTable) {
  TempDir dir;
  const fs::path file = dir / "a.sqlite3";
  for (int run = 0; run < 3; ++run) {
    auto out = make_feed_exporter(file.string());  // SQLite appends whatever `append` says
    out->export_item(Item{{"run", run}});
    if (run == 2) out->export_item(Item{{"run", run}, {"late", true}});
    out->finish();
  }
  {
    auto out = make_feed_exporter(file.string(), FeedOptions{.table = "other"});
    out->export_item(Item{{"x", 1}});
  }
  Db db(file);
  EXPECT_EQ(db.query("SELECT run, late FROM items ORDER BY rowid"),
            (Rows{{"0", "NULL"}, {"1", "NULL"}, {"2", "NULL"}, {"2", "1"}}));
  EXPECT_EQ(db.one("SELECT count(*) FROM other"), "1");
}

TEST(SqliteExporter, UnicodeAndInvalidUtf8) {
  TempDir dir;
  const fs::path file = dir / "u.sqlite";
  {
    SqliteExporter out(file);
    out.export_item(Item{{"t\xC3\xA9", "\xE2\x9C\x93 ok"}});
    out.export_item(Item{{"t\xC3\xA9", std::string("a\xFF\0b", 4)}});
  }
  Db db(file);
  EXPECT_EQ(db.query("SELECT \"t\xC3\xA9\" FROM items ORDER BY rowid"),
            (Rows{{"\xE2\x9C\x93 ok"}, {std::string("a\xEF\xBF\xBD\0b", 6)}}));
}

TEST(SqliteExporter, BadTableName) {
  TempDir dir;
  EXPECT_THROW(SqliteExporter(dir / "t.sqlite", ""), concur::ValueError);
  EXPECT_THROW(SqliteExporter(dir / "t.sqlite", std::string("a\0b", 3)), concur::ValueError);
}

// ---- Every format ----

const char* const kExtensions[] = {"jsonl", "jl", "json", "csv", "sqlite", "sqlite3", "db"};

TEST(FeedExporter, NonObjectItemsAreValueErrors) {
  TempDir dir;
  for (const char* ext : kExtensions) {
    const fs::path file = dir.path() / (std::string("n.") + ext);
    auto out = make_feed_exporter(file.string());
    for (const Item& bad : {Item::array(), Item("text"), Item(nullptr), Item(3)}) {
      EXPECT_THROW(out->export_item(bad), concur::ValueError) << ext << " " << bad.dump();
    }
    out->export_item(Item{{"ok", 1}});
    EXPECT_EQ(out->count(), 1u) << ext;
  }
}

TEST(FeedExporter, FinishIsIdempotentAndExportAfterItIsRuntimeError) {
  TempDir dir;
  for (const char* ext : kExtensions) {
    const fs::path file = dir.path() / (std::string("f.") + ext);
    auto out = make_feed_exporter(file.string());
    out->export_item(Item{{"k", "v"}});
    out->finish();
    const std::string after_first = read_file(file);
    out->finish();
    EXPECT_EQ(read_file(file), after_first) << ext;
    EXPECT_THROW(out->export_item(Item{{"k", "w"}}), concur::RuntimeError) << ext;
    EXPECT_EQ(out->count(), 1u);
  }
}

TEST(FeedExporter, DestructorFinishes) {
  TempDir dir;
  { auto out = make_feed_exporter((dir / "d.json").string()); }
  EXPECT_EQ(read_file(dir / "d.json"), "[\n]\n");
  {
    auto out = make_feed_exporter((dir / "d.sqlite").string());
    out->export_item(Item{{"k", 1}});
  }
  EXPECT_FALSE(fs::exists(dir / "d.sqlite-wal"));  // closed: the log was checkpointed away
  Db db(dir / "d.sqlite");
  EXPECT_EQ(db.one("SELECT k FROM items"), "1");
}

TEST(FeedExporter, MissingParentDirectoryIsOSError) {
  TempDir dir;
  for (const char* ext : kExtensions) {
    const fs::path file = dir.path() / "missing" / (std::string("o.") + ext);
    try {
      (void)make_feed_exporter(file.string());
      FAIL() << ext;
    } catch (const concur::OSError& e) {
      EXPECT_EQ(e.errno_code(), ENOENT) << ext;
      EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
    }
  }
  // A directory where the file should be.
  fs::create_directory(dir / "dir.jsonl");
  EXPECT_THROW((void)make_feed_exporter((dir / "dir.jsonl").string()), concur::OSError);
  fs::create_directory(dir / "dir.sqlite");
  EXPECT_THROW((void)make_feed_exporter((dir / "dir.sqlite").string()), concur::OSError);
}

TEST(FeedExporter, FormatFromExtensionOrName) {
  TempDir dir;
  try {
    (void)make_feed_exporter((dir / "out.xml").string());
    FAIL() << "xml accepted";
  } catch (const concur::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'xml'"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)make_feed_exporter((dir / "noext").string()), concur::ValueError);
  EXPECT_THROW((void)make_feed_exporter((dir / "o.json").string(), "parquet"), concur::ValueError);
  EXPECT_FALSE(fs::exists(dir / "out.xml"));
  // An explicit format wins over the extension; extensions are case-insensitive.
  {
    auto out = make_feed_exporter((dir / "out.txt").string(), "jsonlines");
    out->export_item(Item{{"a", 1}});
  }
  EXPECT_EQ(read_file(dir / "out.txt"), "{\"a\":1}\n");
  {
    auto out = make_feed_exporter((dir / "OUT.CSV").string(), "", {"b", "a"});
    out->export_item(Item{{"a", 1}, {"b", 2}});
  }
  EXPECT_EQ(read_file(dir / "OUT.CSV"), "b,a\r\n2,1\r\n");
}

// 100,000 items into each format, read back (10,000 under sanitizers). Bounded by the test's
// timeout, not asserted.
TEST(FeedExporter, HundredThousandItemsEachFormat) {
  TempDir dir;
  constexpr int kN = concur::testing::kSanitized ? 10000 : 100000;
  for (const char* ext : {"jsonl", "json", "csv", "sqlite"}) {
    const fs::path file = dir.path() / (std::string("big.") + ext);
    auto out = make_feed_exporter(file.string());
    for (int i = 0; i < kN; ++i) out->export_item(sample_item(i));
    out->finish();
    ASSERT_EQ(out->count(), static_cast<std::uint64_t>(kN));
    const std::string e = ext;
    if (e == "jsonl") {
      std::vector<Item> back = read_jsonl(file);
      ASSERT_EQ(back.size(), static_cast<std::size_t>(kN));
      EXPECT_EQ(back[kN - 1].dump(), sample_item(kN - 1).dump());
    } else if (e == "json") {
      Item back = Item::parse(read_file(file));
      ASSERT_EQ(back.size(), static_cast<std::size_t>(kN));
      EXPECT_EQ(back[kN - 1].dump(), sample_item(kN - 1).dump());
    } else if (e == "csv") {
      Rows rows = parse_csv(read_file(file));
      ASSERT_EQ(rows.size(), static_cast<std::size_t>(kN) + 1);
      EXPECT_EQ(rows[kN][1], "Product \"" + std::to_string(kN - 1) + "\", the best");
    } else {
      Db db(file);
      EXPECT_EQ(db.one("SELECT count(*) FROM items"), std::to_string(kN));
      EXPECT_EQ(db.one("SELECT title FROM items WHERE stock = " + std::to_string(kN - 1)),
                "Product \"" + std::to_string(kN - 1) + "\", the best");
    }
  }
}

}  // namespace
