// asio_echo_server: a raw Boost.Asio echo server, callback style (no coroutines), the C++ peer
// for concur::aio's echo benchmark. One thread runs one io_context; each accepted connection
// (TCP_NODELAY) loops async_read_some into its buffer and async_write of exactly what was read.
// Listens on 127.0.0.1; prints "ready PORT" on stdout once listening (--port 0 picks a free
// port) and stops on SIGINT or SIGTERM (asio::signal_set).
//
// Usage: asio_echo_server [--port 0] [--buffer 4096]; measured (one command line) with
//   bench/compare/run_echo.sh build/release/bench/echo_client --
//       build/release/bench/asio_echo_server --port 0
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Session: one connection; owned by the shared_ptr its pending handler holds, so it is freed
// when the peer closes (the read fails and no new operation is started) or the io_context dies.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::size_t buffer_bytes)
      : socket_(std::move(socket)), buffer_(buffer_bytes) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // start() begins the read -> write -> read loop.
  void start() { read(); }

 private:
  void read() {
    socket_.async_read_some(
        asio::buffer(buffer_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          if (!ec) self->write(n);
        });
  }

  void write(std::size_t n) {
    asio::async_write(
        socket_, asio::buffer(buffer_.data(), n),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (!ec) self->read();
        });
  }

  tcp::socket socket_;
  std::vector<char> buffer_;
};

class Server {
 public:
  Server(asio::io_context& io, unsigned short port, std::size_t buffer_bytes)
      : acceptor_(io, tcp::endpoint(asio::ip::address_v4::loopback(), port)),
        buffer_bytes_(buffer_bytes) {}
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] unsigned short port() const { return acceptor_.local_endpoint().port(); }

  // accept() keeps one accept pending until close().
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;  // close()
      if (!ec) {
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(socket), buffer_bytes_)->start();
      }
      accept();  // a failed accept (EMFILE, a reset before accept) is not fatal
    });
  }

  void close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  tcp::acceptor acceptor_;
  std::size_t buffer_bytes_;
};

}  // namespace

int main(int argc, char** argv) {
  long port = 0;
  long buffer_bytes = 4096;
  CLI::App app("asio_echo_server");
  app.add_option("--port", port, "port on 127.0.0.1 (0: a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--buffer", buffer_bytes, "read buffer bytes")->check(CLI::Range(1, 1 << 24));
  CLI11_PARSE(app, argc, argv);

  try {
    asio::io_context io(1);  // concurrency hint: one thread runs it
    Server server(io, static_cast<unsigned short>(port), static_cast<std::size_t>(buffer_bytes));
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) {
      server.close();
      io.stop();  // sessions are destroyed with their pending handlers when io is
    });
    server.accept();
    std::printf("ready %u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);
    io.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_echo_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
