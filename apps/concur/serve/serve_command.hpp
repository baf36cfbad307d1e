// serve/serve_command.hpp — the `concur serve` subcommand: the notes' flask services on
// concur::http, ready to run.
//
//   concur serve --port 8000        # then: curl http://127.0.0.1:8000/is_prime/112272535095293,7
//
// Routes (add_notes_routes): `/` — the notes' "线程池加速web服务" view: read_file (0.1 s), read_db
// (0.2 s) and read_api (0.3 s) submitted at once to the thread pool, answered with
// json.dumps({...}) byte for byte once all three are back (0.3 s); `/serial` — the same three one
// after another (0.6 s, the notes' "before"); `/is_prime/<numbers>` —
// "在flask服务中使用进程池加速": the comma-separated integers mapped over the process pool,
// answered with json.dumps(dict(zip(numbers, results))) byte for byte; bad input is a 400 with
// Python's message; `/hello` — {"hello": "world"} from a coroutine on the loop (no pool: the
// benchmarks' measure of the server itself); plus /metrics and /healthz. SIGTERM or Ctrl-C
// drains (a second one stops at once). Exit status: 0 after a drain, 1 on an error (the port
// taken...), 2 for invalid options.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "concur/http/app.hpp"

namespace concur::apps::serve {

// NotesOptions: the notes' app's knobs.
struct NotesOptions {
  std::chrono::milliseconds file{100};  // read_file's sleep (tm.sleep(0.1))
  std::chrono::milliseconds db{200};    // read_db's
  std::chrono::milliseconds api{300};   // read_api's
  std::size_t max_numbers = 1000;       // /is_prime: numbers per request beyond which 400
};

// kHelloJson: `/hello`'s body, json.dumps({"hello": "world"}).
inline constexpr std::string_view kHelloJson = R"({"hello": "world"})";

// add_notes_routes(app, options): `/`, `/serial`, `/is_prime/<numbers>` and `/hello` on app.
void add_notes_routes(http::App& app, const NotesOptions& options);

// is_prime_json(numbers, results): json.dumps(dict(zip(numbers, results))) as Python writes it.
std::string is_prime_json(const std::vector<std::int64_t>& numbers,
                          const std::vector<bool>& results);
// parse_numbers(text): Python's [int(x) for x in text.split(',')] for what fits int64;
// concur::ValueError with Python's message otherwise.
std::vector<std::int64_t> parse_numbers(std::string_view text);

// ServeOptions are the command-line options of `concur serve`.
struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::size_t threads = 1;        // event loops
  std::size_t pool_threads = 64;  // the thread pool behind `/`
  std::size_t processes = 0;      // the process pool behind /is_prime (0: one per CPU)
  std::size_t max_in_flight = 1024;
  long long max_pool_pending = -1;  // -1: 2 x pool_threads / 8 x processes; 0: no limit
  double handler_timeout = 30;      // seconds
  double drain_timeout = 30;        // seconds
  std::string access_log = "none";  // none | common | json
  NotesOptions notes;
  int file_ms = 100, db_ms = 200, api_ms = 300;
};

// add_serve_command(app, options) adds the `serve` subcommand, parsing into options.
CLI::App* add_serve_command(CLI::App& app, ServeOptions& options);
// run_serve(options, out, err): serves until SIGTERM/SIGINT; the exit status.
int run_serve(ServeOptions& options, std::ostream& out, std::ostream& err);

}  // namespace concur::apps::serve
