// serve/serve_command.cpp — `concur serve` (serve_command.hpp).
#include "serve/serve_command.hpp"

#include <algorithm>
#include <charconv>
#include <thread>
#include <tuple>
#include <utility>

#include "bench/experiments/is_prime.hpp"
#include "concur/http/server.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "concur/thread_pool.hpp"

namespace concur::apps::serve {

namespace {

// The notes' three slow calls (tm.sleep(0.1) / (0.2) / (0.3)).
std::string read_file(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  return "file result";
}
std::string read_db(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  return "db result";
}
std::string read_api(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  return "api result";
}

// notes_json(file, db, api): json.dumps({"result_file": ..., "result_db": ..., "result_api": ...}).
std::string notes_json(const std::string& file, const std::string& db, const std::string& api) {
  std::string out = "{\"result_file\": ";
  out.append(nlohmann::json(file).dump())
      .append(", \"result_db\": ")
      .append(nlohmann::json(db).dump())
      .append(", \"result_api\": ")
      .append(nlohmann::json(api).dump())
      .append("}");
  return out;
}

// serve_is_prime(n): the notes' is_prime (`concur bench`'s trial division) of a signed number;
// below 2 is not prime.
bool serve_is_prime(std::int64_t n) {
  return n >= 2 && bench::is_prime(static_cast<std::uint64_t>(n));
}
CONCUR_TASK(serve_is_prime);

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// parse_int(piece): Python's int(piece) for what fits int64: surrounding whitespace, one sign,
// digits with single '_' between them.
std::int64_t parse_int(std::string_view piece) {
  auto bad = [&] {
    return ValueError("invalid literal for int() with base 10: '" + std::string(piece) + "'");
  };
  std::string_view t = piece;
  while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
  while (!t.empty() && is_space(t.back())) t.remove_suffix(1);
  bool negative = false;
  if (!t.empty() && (t.front() == '+' || t.front() == '-')) {
    negative = t.front() == '-';
    t.remove_prefix(1);
  }
  std::string digits = negative ? "-" : "";
  bool last_digit = false;
  for (const char c : t) {
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
      last_digit = true;
    } else if (c == '_' && last_digit) {
      last_digit = false;
    } else {
      throw bad();
    }
  }
  if (!last_digit) throw bad();  // empty, a sign alone, or a trailing '_'
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec == std::errc::result_out_of_range) {
    throw ValueError("int() out of int64 range: '" + std::string(piece) + "'");
  }
  if (ec != std::errc{} || end != digits.data() + digits.size()) throw bad();
  return v;
}

}  // namespace

std::vector<std::int64_t> parse_numbers(std::string_view text) {
  std::vector<std::int64_t> out;
  std::size_t from = 0;
  while (true) {  // str.split(','): "" gives [""], "1,,2" gives ["1", "", "2"]
    const std::size_t comma = text.find(',', from);
    out.push_back(
        parse_int(text.substr(from, comma == std::string_view::npos ? comma : comma - from)));
    if (comma == std::string_view::npos) break;
    from = comma + 1;
  }
  return out;
}

std::string is_prime_json(const std::vector<std::int64_t>& numbers,
                          const std::vector<bool>& results) {
  // dict(zip(numbers, results)): first-seen key order, a later duplicate overwrites.
  std::vector<std::pair<std::int64_t, bool>> dict;
  for (std::size_t i = 0; i < numbers.size() && i < results.size(); ++i) {
    const auto it = std::find_if(dict.begin(), dict.end(),
                                 [&](const auto& kv) { return kv.first == numbers[i]; });
    if (it == dict.end()) {
      dict.emplace_back(numbers[i], results[i]);
    } else {
      it->second = results[i];
    }
  }
  std::string json = "{";
  for (const auto& [n, prime] : dict) {
    if (json.size() > 1) json.append(", ");
    json.append("\"").append(std::to_string(n)).append("\": ").append(prime ? "true" : "false");
  }
  json.append("}");
  return json;
}

void add_notes_routes(http::App& app, const NotesOptions& options) {
  const NotesOptions o = options;
  // `/`: the notes' index(): the three reads submitted to the pool at once, then their results.
  app.get("/", [&app, o]() -> aio::Task<http::Response> {
    concur::Future<std::string> file = app.run_in_thread(read_file, o.file);
    concur::Future<std::string> db = app.run_in_thread(read_db, o.db);
    concur::Future<std::string> api = app.run_in_thread(read_api, o.api);
    std::string f = co_await std::move(file);
    std::string d = co_await std::move(db);
    std::string a = co_await std::move(api);
    co_return http::Response::json_text(notes_json(f, d, a));
  });
  // `/hello`: a fixed JSON body from a coroutine on the loop: no pool, no parsing — the route the
  // benchmarks measure the server itself with (bench/compare/run_serve_bench.sh, beside a raw
  // Boost.Beast server and the flask app's own /hello).
  app.get("/hello", []() -> aio::Task<http::Response> {
    co_return http::Response::json_text(std::string(kHelloJson));
  });
  // `/serial`: the view before the pool: one read after another, on a pool thread.
  app.get("/serial", [o] {
    return http::Response::json_text(notes_json(read_file(o.file), read_db(o.db), read_api(o.api)));
  });
  // `/is_prime/<numbers>`: process_pool.map(is_prime, number_list), in at most one batch per
  // worker (contiguous slices, so the results come back in order).
  app.get("/is_prime/<numbers>", [&app, o](const http::Request& req) -> aio::Task<http::Response> {
    std::vector<std::int64_t> numbers;
    std::string bad;
    try {
      numbers = parse_numbers(req.param("numbers"));
    } catch (const ValueError& e) {
      bad = e.what();
    }
    if (!bad.empty()) throw http::HTTPError(400, bad);
    if (numbers.size() > o.max_numbers) {
      throw http::HTTPError(400, "at most " + std::to_string(o.max_numbers) +
                                     " numbers per request, not " + std::to_string(numbers.size()));
    }
    const std::size_t workers = std::max<std::size_t>(1, app.process_pool().max_workers());
    const std::size_t slices = std::min(numbers.size(), workers);
    std::vector<concur::Future<std::vector<bool>>> parts;
    for (std::size_t k = 0; k < slices; ++k) {
      std::vector<std::tuple<std::int64_t>> calls;
      for (std::size_t i = k * numbers.size() / slices; i < (k + 1) * numbers.size() / slices;
           ++i) {
        calls.emplace_back(numbers[i]);
      }
      parts.push_back(app.run_batch_in_process(serve_is_prime, calls));
    }
    std::vector<bool> results;
    for (concur::Future<std::vector<bool>>& part : parts) {
      std::vector<bool> got = co_await std::move(part);
      results.insert(results.end(), got.begin(), got.end());
    }
    co_return http::Response::json_text(is_prime_json(numbers, results));
  });
}

CLI::App* add_serve_command(CLI::App& app, ServeOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve the notes' flask apps: / (thread-pool fan-out), /serial, /is_prime/<numbers> "
      "(process pool), /hello (a fixed JSON body), /metrics, /healthz. SIGTERM or Ctrl-C drains.");
  cmd->add_option("--host", options.host, "Address to bind (default 127.0.0.1)");
  cmd->add_option("--port", options.port, "Port (0: any free one; default 8000)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--threads", options.threads, "Event loops, each on its own thread (default 1)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option(
         "--pool-threads", options.pool_threads,
         "Threads of the pool behind /, all started with the server (default 64, at most 4096)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--processes", options.processes,
                  "Worker processes behind /is_prime (0: one per CPU)");
  cmd->add_option("--max-in-flight", options.max_in_flight,
                  "Requests handled at once before 503 (default 1024)")
      ->check(CLI::Range(1, 10000000));
  cmd->add_option("--max-pool-pending", options.max_pool_pending,
                  "Tasks pending in a pool before 503 (default: 2 x --pool-threads for the thread "
                  "pool, 8 x --processes for the process pool, so that a request waits about one "
                  "task's time at most; 0: no limit)")
      ->check(CLI::Range(0LL, 100000000LL));
  cmd->add_option("--handler-timeout", options.handler_timeout, "Seconds before 504 (default 30)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--drain-timeout", options.drain_timeout,
                  "Seconds a drain waits for requests in flight (default 30)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--access-log", options.access_log, "none, common or json (to stdout)")
      ->check(CLI::IsMember({"none", "common", "json"}));
  cmd->add_option("--file-ms", options.file_ms, "read_file's sleep in ms (default 100)")
      ->check(CLI::Range(0, 600000));
  cmd->add_option("--db-ms", options.db_ms, "read_db's sleep in ms (default 200)")
      ->check(CLI::Range(0, 600000));
  cmd->add_option("--api-ms", options.api_ms, "read_api's sleep in ms (default 300)")
      ->check(CLI::Range(0, 600000));
  return cmd;
}

int run_serve(ServeOptions& options, std::ostream& out, std::ostream& /*err*/) {
  options.notes.file = std::chrono::milliseconds(options.file_ms);
  options.notes.db = std::chrono::milliseconds(options.db_ms);
  options.notes.api = std::chrono::milliseconds(options.api_ms);
  // The pools' pending limits follow their sizes unless given: past them a request would wait in
  // the pool's queue longer than about one task takes, and answering 503 at once is better.
  const std::size_t processes = options.processes != 0 ? options.processes : mp::cpu_count();
  const auto given = static_cast<std::size_t>(std::max(0LL, options.max_pool_pending));
  const bool automatic = options.max_pool_pending < 0;
  // The fan-out's pool is started whole: started on demand (Python's rule), a burst of requests
  // would start its threads on the event loop, the thread that submits (docs/benchmarks.md, the
  // first wave at 1,000 connections).
  ThreadPoolExecutor pool(ThreadPoolOptions{.max_workers = options.pool_threads,
                                            .thread_name_prefix = "serve-pool",
                                            .min_workers = options.pool_threads});
  http::App app(http::AppOptions{.thread_pool = &pool,
                                 .process_workers = processes,
                                 .max_thread_pending = automatic ? 2 * options.pool_threads : given,
                                 .max_process_pending = automatic ? 8 * processes : given});
  add_notes_routes(app, options.notes);
  http::ServiceOptions so;
  so.host = options.host;
  so.port = static_cast<std::uint16_t>(options.port);
  so.threads = options.threads;
  so.server.max_in_flight = options.max_in_flight;
  so.server.handler_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.handler_timeout * 1000));
  so.server.access_log = options.access_log == "common" ? http::AccessLog::kCommon
                         : options.access_log == "json" ? http::AccessLog::kJson
                                                        : http::AccessLog::kNone;
  so.handle_signals = true;
  so.drain_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.drain_timeout * 1000));
  http::Service service(app, so);
  service.start();
  const bool v6 = options.host.find(':') != std::string::npos;
  const std::string base = "http://" + (v6 ? "[" + options.host + "]" : options.host) + ":" +
                           std::to_string(service.port());
  out << "concur serve: listening on " << base << "/ (" << options.threads << " event loop"
      << (options.threads == 1 ? "" : "s") << "; Ctrl-C or SIGTERM drains)\n"
      << "  try: curl " << base << "/is_prime/112272535095293,7,9" << std::endl;
  service.wait();
  out << "concur serve: drained, exiting" << std::endl;
  return 0;
}

}  // namespace concur::apps::serve
