// Beyond the notes: a small JSON CRUD API over SQLite on concur::http, the kind of service the
// notes' flask apps grow into.
//
//   GET    /items             the items ([{"id": 1, "name": "pen", "qty": 3}, ...]; ?min_qty=N)
//   POST   /items             {"name": "pen", "qty": 3} -> 201 and the item with its id
//   GET    /items/<int:id>    the item, or 404
//   PUT    /items/<int:id>    replaces name and qty -> the item, or 404
//   DELETE /items/<int:id>    204, or 404
//
// The handlers are blocking functions (SQLite's calls block), so they run on the App's thread
// pool, as Flask's threaded server runs views; one connection to an in-memory database, behind a
// mutex. Bad input is a 400 with a message (HTTPError), never a crash. The "client" is concur's
// HTTP client (crawl::HttpClient) on an event loop: it walks the API, then makes 20 items at once.
// Checked: every status and body; the 20 concurrent POSTs got 20 distinct ids.
#include <sqlite3.h>

#include <charconv>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "concur/crawl/http.hpp"
#include "concur/http/server.hpp"

namespace aio = concur::aio;
namespace http = concur::http;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Store: the items table on one SQLite connection, one caller at a time.
class Store {
 public:
  Store() {
    if (sqlite3_open(":memory:", &db_) != SQLITE_OK) throw concur::RuntimeError("sqlite3_open");
    exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL)");
  }
  ~Store() { sqlite3_close(db_); }
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  json list(std::int64_t min_qty) {
    std::scoped_lock lock(mu_);
    Statement st(db_, "SELECT id, name, qty FROM items WHERE qty >= ? ORDER BY id");
    sqlite3_bind_int64(st.s, 1, min_qty);
    json out = json::array();
    while (sqlite3_step(st.s) == SQLITE_ROW) out.push_back(row(st.s));
    return out;
  }
  json create(const std::string& name, std::int64_t qty) {
    std::scoped_lock lock(mu_);
    Statement st(db_, "INSERT INTO items (name, qty) VALUES (?, ?)");
    sqlite3_bind_text(st.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.s, 2, qty);
    if (sqlite3_step(st.s) != SQLITE_DONE) throw concur::RuntimeError(sqlite3_errmsg(db_));
    return {{"id", sqlite3_last_insert_rowid(db_)}, {"name", name}, {"qty", qty}};
  }
  json get(std::int64_t id) {
    std::scoped_lock lock(mu_);
    Statement st(db_, "SELECT id, name, qty FROM items WHERE id = ?");
    sqlite3_bind_int64(st.s, 1, id);
    if (sqlite3_step(st.s) != SQLITE_ROW)
      throw http::HTTPError(404, "no item " + std::to_string(id));
    return row(st.s);
  }
  json update(std::int64_t id, const std::string& name, std::int64_t qty) {
    std::scoped_lock lock(mu_);
    Statement st(db_, "UPDATE items SET name = ?, qty = ? WHERE id = ?");
    sqlite3_bind_text(st.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.s, 2, qty);
    sqlite3_bind_int64(st.s, 3, id);
    sqlite3_step(st.s);
    if (sqlite3_changes(db_) == 0) throw http::HTTPError(404, "no item " + std::to_string(id));
    return {{"id", id}, {"name", name}, {"qty", qty}};
  }
  void remove(std::int64_t id) {
    std::scoped_lock lock(mu_);
    Statement st(db_, "DELETE FROM items WHERE id = ?");
    sqlite3_bind_int64(st.s, 1, id);
    sqlite3_step(st.s);
    if (sqlite3_changes(db_) == 0) throw http::HTTPError(404, "no item " + std::to_string(id));
  }

 private:
  struct Statement {
    Statement(sqlite3* db, const char* sql) {
      if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
        throw concur::RuntimeError(sqlite3_errmsg(db));
      }
    }
    ~Statement() { sqlite3_finalize(s); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    sqlite3_stmt* s = nullptr;
  };
  static json row(sqlite3_stmt* s) {
    return {{"id", sqlite3_column_int64(s, 0)},
            {"name", reinterpret_cast<const char*>(sqlite3_column_text(s, 1))},
            {"qty", sqlite3_column_int64(s, 2)}};
  }
  void exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw concur::RuntimeError(sqlite3_errmsg(db_));
    }
  }
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

// fields(req): the body's name (a non-empty string) and qty (an integer >= 0), or a 400.
std::pair<std::string, std::int64_t> fields(const http::Request& req) {
  const json body = req.json();  // 400 when not JSON
  if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
      body["name"].get<std::string>().empty()) {
    throw http::HTTPError(400, "'name' must be a non-empty string");
  }
  if (!body.contains("qty") || !body["qty"].is_number_integer() ||
      body["qty"].get<std::int64_t>() < 0) {
    throw http::HTTPError(400, "'qty' must be an integer >= 0");
  }
  return {body["name"].get<std::string>(), body["qty"].get<std::int64_t>()};
}

void add_routes(http::App& app, Store& store) {
  app.get("/items", [&store](const http::Request& req) {
    std::int64_t min_qty = 0;
    if (const auto q = req.arg("min_qty")) {
      const auto [end, ec] = std::from_chars(q->data(), q->data() + q->size(), min_qty);
      if (q->empty() || ec != std::errc{} || end != q->data() + q->size()) {
        throw http::HTTPError(400, "min_qty must be an integer");
      }
    }
    return store.list(min_qty);
  });
  app.post("/items", [&store](const http::Request& req) {
    auto [name, qty] = fields(req);
    return http::Response::json(store.create(name, qty), 201);
  });
  app.get("/items/<int:id>",
          [&store](const http::Request& req) { return store.get(req.param<std::int64_t>("id")); });
  app.put("/items/<int:id>", [&store](const http::Request& req) {
    auto [name, qty] = fields(req);
    return store.update(req.param<std::int64_t>("id"), name, qty);
  });
  app.del("/items/<int:id>", [&store](const http::Request& req) {
    store.remove(req.param<std::int64_t>("id"));
    return http::Response(204, "", "text/plain");
  });
}

// Call: one request of the walk and what it must answer.
struct Call {
  std::string method, path, body;
  int status;
  std::string expected;  // the body ("" for none)
};

aio::Task<concur::crawl::Response> send(concur::crawl::HttpClient& client, std::string url,
                                        std::string method, std::string body) {
  concur::crawl::Request r(std::move(url), std::move(method));
  r.body = std::move(body);
  r.headers.set("Content-Type", "application/json");
  co_return co_await client.fetch(std::move(r));
}

}  // namespace

int main() {
  Store store;
  http::App app;
  add_routes(app, store);
  http::Service service(app, {});  // 127.0.0.1, a free port
  service.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(service.port());

  const std::vector<Call> walk = {
      {"POST", "/items", R"({"name": "pen", "qty": 3})", 201, R"({"id":1,"name":"pen","qty":3})"},
      {"POST", "/items", R"({"name": "ink", "qty": 0})", 201, R"({"id":2,"name":"ink","qty":0})"},
      {"GET", "/items", "", 200,
       R"([{"id":1,"name":"pen","qty":3},{"id":2,"name":"ink","qty":0}])"},
      {"GET", "/items?min_qty=1", "", 200, R"([{"id":1,"name":"pen","qty":3}])"},
      {"PUT", "/items/2", R"({"name": "ink", "qty": 7})", 200, R"({"id":2,"name":"ink","qty":7})"},
      {"GET", "/items/2", "", 200, R"({"id":2,"name":"ink","qty":7})"},
      {"DELETE", "/items/1", "", 204, ""},
      {"GET", "/items/1", "", 404,
       R"({"error":{"status":404,"reason":"Not Found","message":"no item 1"}})"},
      {"POST", "/items", R"({"name": "", "qty": 1})", 400,
       R"({"error":{"status":400,"reason":"Bad Request","message":"'name' must be a non-empty string"}})"},
      {"GET", "/items/x", "", 404, ""},  // <int:id> does not match: no route
  };
  int failures = 0;
  aio::run([&]() -> aio::Task<void> {
    concur::crawl::HttpClient client;
    for (const Call& c : walk) {
      concur::crawl::Response r = co_await send(client, base + c.path, c.method, c.body);
      const bool body_ok =
          c.expected.empty() ? (c.status != 204 || r.body.empty()) : r.text() == c.expected;
      std::printf("%-6s %-18s -> %d %s\n", c.method.c_str(), c.path.c_str(), r.status,
                  r.text().c_str());
      if (r.status != c.status || !body_ok) {
        std::fprintf(stderr, "FAIL: expected %d %s\n", c.status, c.expected.c_str());
        ++failures;
      }
    }
    // 20 items at once: 20 distinct ids.
    std::vector<aio::Task<concur::crawl::Response>> posts;
    for (int i = 0; i < 20; ++i) {
      std::string body = R"({"name": "n)";
      body.append(std::to_string(i)).append(R"(", "qty": 1})");
      posts.push_back(aio::create_task(send(client, base + "/items", "POST", std::move(body))));
    }
    std::set<std::int64_t> ids;
    for (auto& p : posts) {
      concur::crawl::Response r = co_await std::move(p);
      if (r.status == 201) ids.insert(json::parse(r.text())["id"].get<std::int64_t>());
    }
    std::printf("20 concurrent POSTs: %zu distinct ids\n", ids.size());
    if (ids.size() != 20) ++failures;
  }());
  service.shutdown(1s);
  service.wait();
  return failures == 0 ? 0 : 1;
}
