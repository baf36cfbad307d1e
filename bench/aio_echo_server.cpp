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
#include <CLI/CLI.hpp>
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

}  // namespace

int main(int argc, char** argv) {
  long port = 0;
  long buffer_bytes = 4096;
  CLI::App app("aio_echo_server");
  app.add_option("--port", port, "port on 127.0.0.1 (0: a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--buffer", buffer_bytes, "read buffer bytes")->check(CLI::Range(1, 1 << 24));
  CLI11_PARSE(app, argc, argv);

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
