// aio_echo_server: concur::aio's echo server, the twin of bench/asio_echo_server.cpp (raw
// Boost.Asio callbacks) and bench/compare/python_aio_echo_server.py (asyncio streams). One loop
// on one thread; aio::start_server runs one task per connection (TCP_NODELAY, set by the streams)
// that loops `data = co_await reader.read(buffer)`, `writer.write(data)`, `co_await
// writer.drain()` until EOF — the asyncio program, line for line. Listens on 127.0.0.1; prints
// "ready PORT" on stdout once listening (--port 0 picks a free port); SIGINT or SIGTERM closes the
// server, aborts the live connections and exits 0 once every connection task has ended.
//
// Usage: aio_echo_server [--port 0] [--buffer 4096]; measured (one command line) with
//   bench/compare/run_echo.sh build/release/bench/echo_client --
//       build/release/bench/aio_echo_server --port 0
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"

namespace {

namespace aio = concur::aio;
using namespace std::chrono_literals;

// kStopBound: after the signal, how long the connection tasks may take to end.
constexpr auto kStopBound = 5s;

aio::Task<void> echo(aio::StreamReader reader, aio::StreamWriter writer, std::size_t buffer) {
  try {
    for (;;) {
      std::string data = co_await reader.read(static_cast<std::ptrdiff_t>(buffer));
      if (data.empty()) break;  // EOF
      writer.write(data);
      co_await writer.drain();
    }
  } catch (const concur::ConnectionError&) {
    // The client went away abruptly (a reset at the end of a run): that connection is done, as in
    // asio_echo_server, which stops a session on any error.
  }
  writer.close();
}

aio::Task<void> serve(std::uint16_t port, std::size_t buffer) {
  aio::Server server = co_await aio::start_server(
      [buffer](aio::StreamReader r, aio::StreamWriter w) { return echo(std::move(r), w, buffer); },
      "127.0.0.1", port);
  aio::Loop& loop = aio::get_running_loop();
  for (int sig : {SIGINT, SIGTERM}) loop.add_signal_handler(sig, [&server] { server.close(); });
  std::printf("ready %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  co_await server.serve_forever();  // returns once a signal closed the server
  server.abort_clients();
  co_await aio::wait_for(server.wait_closed(), kStopBound);
}

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "aio_echo_server: %s\nusage: aio_echo_server [--port 0] [--buffer 4096]\n",
               what.c_str());
  std::exit(1);
}

long parse_int(std::string_view flag, const char* text, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi) {
    usage_error(std::string(flag) + " wants an integer in [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "], got '" + text + "'");
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0;
  long buffer_bytes = 4096;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value (or unknown option)");
    const char* value = argv[++i];
    if (flag == "--port") {
      port = parse_int(flag, value, 0, 65535);
    } else if (flag == "--buffer") {
      buffer_bytes = parse_int(flag, value, 1, 1 << 24);
    } else {
      usage_error("unknown option " + std::string(flag));
    }
  }

  try {
    // SIGINT is handled by the loop's signal handler (as SIGTERM), not by run()'s Ctrl-C logic.
    aio::run(serve(static_cast<std::uint16_t>(port), static_cast<std::size_t>(buffer_bytes)),
             aio::RunOptions{.handle_sigint = false});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aio_echo_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
