// beast_hello_server: a raw Boost.Beast 1.81 asynchronous HTTP/1.1 server answering GET /hello
// with `concur serve`'s /hello body ({"hello": "world"}, application/json) — the floor of
// concur::http's stack (Asio sockets, Beast's parser and serializer, nothing else) for issue 15's
// "hello" benchmark (bench/compare/run_serve_bench.sh). Callback style, no coroutines. Each of
// --threads threads runs its own io_context with its own acceptor on the same port
// (SO_REUSEPORT: the kernel spreads connections), as `concur serve --threads N` runs N loops.
// A connection loops async_read (flat_buffer, string_body) -> async_write, keep-alive as the
// request asks; any other target is a 404 with an empty JSON error; a malformed request closes.
// Listens on 127.0.0.1; prints "ready PORT" once every thread listens (--port 0: the first
// acceptor picks a free port, the others join it) and stops on SIGINT or SIGTERM.
//
// Usage: beast_hello_server [--port 0] [--threads 1]
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

constexpr std::string_view kHelloJson = R"({"hello": "world"})";

// Session: one connection; owned by the shared_ptr its pending handler holds.
class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // start() begins the read -> write -> read loop.
  void start() { read(); }

 private:
  void read() {
    request_ = {};
    bhttp::async_read(socket_, buffer_, request_,
                      [self = shared_from_this()](const beast::error_code& ec, std::size_t) {
                        if (!ec) self->answer();
                      });
  }

  void answer() {
    const bool hello = request_.method() == bhttp::verb::get && request_.target() == "/hello";
    response_ = {};
    response_.version(request_.version());
    response_.result(hello ? bhttp::status::ok : bhttp::status::not_found);
    response_.set(bhttp::field::server, "beast");
    response_.set(bhttp::field::content_type, "application/json");
    response_.body() = hello ? std::string(kHelloJson) : std::string("{}");
    response_.keep_alive(request_.keep_alive());
    response_.prepare_payload();
    bhttp::async_write(socket_, response_,
                       [self = shared_from_this()](const beast::error_code& ec, std::size_t) {
                         if (ec) return;
                         if (self->response_.keep_alive()) {
                           self->read();
                         } else {
                           beast::error_code ignored;
                           self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                         }
                       });
  }

  tcp::socket socket_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> request_;
  bhttp::response<bhttp::string_body> response_;
};

// Listener: one acceptor (SO_REUSEPORT) on one io_context.
class Listener {
 public:
  Listener(asio::io_context& io, unsigned short port) : acceptor_(io) {
    const tcp::endpoint endpoint(asio::ip::address_v4::loopback(), port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    const int one = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      throw std::runtime_error("SO_REUSEPORT failed");
    }
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  [[nodiscard]] unsigned short port() const { return acceptor_.local_endpoint().port(); }

  // accept() keeps one accept pending until the io_context stops.
  void accept() {
    acceptor_.async_accept([this](const beast::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(socket))->start();
      }
      accept();  // EMFILE or a reset before accept is not fatal
    });
  }

 private:
  tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
  long port = 0;
  long threads = 1;
  CLI::App app("beast_hello_server");
  app.add_option("--port", port, "port on 127.0.0.1 (0: a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--threads", threads, "threads, each its own io_context and acceptor")
      ->check(CLI::Range(1, 256));
  CLI11_PARSE(app, argc, argv);

  try {
    const auto n = static_cast<std::size_t>(threads);
    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<std::unique_ptr<Listener>> listeners;
    auto first_port = static_cast<unsigned short>(port);
    for (std::size_t i = 0; i < n; ++i) {
      ios.push_back(std::make_unique<asio::io_context>(1));
      listeners.push_back(std::make_unique<Listener>(*ios.back(), first_port));
      first_port = listeners.front()->port();
      listeners.back()->accept();
    }
    // Signals on the first io_context; stop() is thread-safe, so it stops every one (sessions
    // die with their pending handlers when the io_contexts are destroyed).
    asio::signal_set signals(*ios.front(), SIGINT, SIGTERM);
    signals.async_wait([&](const beast::error_code&, int) {
      for (auto& io : ios) io->stop();
    });
    std::printf("ready %u\n", static_cast<unsigned>(first_port));
    std::fflush(stdout);
    std::vector<std::thread> workers;
    for (std::size_t i = 1; i < n; ++i) workers.emplace_back([&io = *ios[i]] { io.run(); });
    ios.front()->run();
    for (auto& w : workers) w.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "beast_hello_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
