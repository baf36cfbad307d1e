// tests/support/http_client.hpp — a blocking HTTP/1.1 client over a plain socket, for the web
// server's tests: it sends exactly the bytes a test writes (malformed, pipelined, slow) and
// parses responses with Boost.Beast. Every read is bounded (kClientBound); loopback only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace concur::test {

inline constexpr auto kClientBound = std::chrono::seconds(20);

struct RawResponse {
  int status = 0;
  unsigned version = 11;
  std::multimap<std::string, std::string> headers;  // names in lower case
  std::string body;
  bool keep_alive = true;
  [[nodiscard]] std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// RawConnection: one TCP connection to 127.0.0.1:port.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const int e = errno;
      ::close(fd_);
      fd_ = -1;
      throw std::runtime_error("connect failed: errno " + std::to_string(e));
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // send(bytes): all of them (throws when the peer is gone).
  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("send failed: errno " + std::to_string(errno));
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // shutdown_write(): half-close (the server reads EOF).
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // read_some(wait): appends what arrives within `wait` to the buffer; false on EOF or error
  // (eof() tells), true when bytes came or the wait ran out (timed_out()).
  bool read_some(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (r == 0) {
      timed_out_ = true;
      return true;
    }
    timed_out_ = false;
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      reset_ = n < 0 && errno == ECONNRESET;
      return false;
    }
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  // read_response(head): the next response (head: the request was a HEAD, no body follows).
  // Throws when the connection ends first or nothing arrives within kClientBound.
  RawResponse read_response(bool head = false) {
    namespace bhttp = boost::beast::http;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    parser.skip(head);
    parser.eager(true);
    const auto deadline = std::chrono::steady_clock::now() + kClientBound;
    while (true) {
      if (!buf_.empty()) {
        boost::system::error_code ec;
        const std::size_t n = parser.put(boost::asio::buffer(buf_.data(), buf_.size()), ec);
        buf_.erase(0, n);
        if (ec && ec != bhttp::error::need_more) {
          throw std::runtime_error("bad response: " + ec.message());
        }
        if (parser.is_done()) break;
        if (n > 0 && !buf_.empty()) continue;
      }
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("no response");
      if (!read_some(std::chrono::milliseconds(200))) {
        if (parser.is_header_done() && !parser.is_done()) {
          boost::system::error_code ec;
          parser.put_eof(ec);  // a body delimited by the close
          if (!ec && parser.is_done()) break;
        }
        throw std::runtime_error("connection closed before a whole response");
      }
    }
    auto msg = parser.release();
    RawResponse r;
    r.status = static_cast<int>(msg.result_int());
    r.version = msg.version();
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers.emplace(std::move(name), std::string(f.value()));
    }
    r.keep_alive = msg.keep_alive();
    r.body = std::move(msg.body());
    return r;
  }

  // closed_within(wait): the server closes the connection (EOF or reset) within `wait`;
  // whatever arrives meanwhile is kept in the buffer.
  bool closed_within(std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (!read_some(std::max(left, std::chrono::milliseconds(1)))) return true;
    }
    return false;
  }
  [[nodiscard]] bool eof() const noexcept { return eof_; }
  [[nodiscard]] bool reset() const noexcept { return reset_; }
  [[nodiscard]] const std::string& buffered() const noexcept { return buf_; }

  // request(method, target, extra): sends a request with Host (and `extra` header lines, each
  // ending in \r\n) and reads its response.
  RawResponse request(std::string_view method, std::string_view target, std::string_view extra = {},
                      std::string_view body = {}) {
    std::string req = std::string(method) + " " + std::string(target) +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra);
    if (!body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    req += body;
    send(req);
    return read_response(method == "HEAD");
  }

 private:
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
  bool reset_ = false;
  bool timed_out_ = false;
};

// http_get(port, target): one GET on a fresh connection.
inline RawResponse http_get(std::uint16_t port, std::string_view target) {
  RawConnection c(port);
  return c.request("GET", target);
}

}  // namespace concur::test
