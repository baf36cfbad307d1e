// src/aio/os_error.hpp (internal) — errno values as concur's OSError family, the one mapping that
// the streams (streams.cpp) and the sock_* operations (sockets.cpp) share, and the socket
// addresses they share (an Endpoint from a sockaddr, an AF_UNIX path as a sockaddr).
#pragma once

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <exception>
#include <string>
#include <string_view>

#include "concur/aio/streams.hpp"

namespace concur::aio::detail {

// errno_text(e): strerror's description of errno e ("Connection reset by peer").
std::string errno_text(int e);

// os_error(e, msg): the exception Python raises for errno e: ConnectionRefusedError,
// ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError (ETIMEDOUT), else
// OSError; what() is "ConnectionResetError: [Errno 104] <msg>".
std::exception_ptr os_error(int e, const std::string& msg);

// py_address(ep): Python's address tuple, "('127.0.0.1', 80)" or "('::1', 80, 0, 0)".
std::string py_address(const boost::asio::ip::tcp::endpoint& ep);

// sockaddr_endpoint(ss, len): a socket address as an Endpoint: IPv4, IPv6, or AF_UNIX (is_unix;
// host = the path, an abstract name with its leading '\0', "" for an unnamed socket); else empty.
Endpoint sockaddr_endpoint(const sockaddr_storage& ss, socklen_t len);

// SockAddr: a socket address to hand to connect()/sendto()/bind().
struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  [[nodiscard]] const sockaddr* get() const noexcept {
    return reinterpret_cast<const sockaddr*>(&ss);
  }
  // text(): for messages: "('127.0.0.1', 80)", or the path ('\0' shown as '@').
  [[nodiscard]] std::string text() const;
};

// unix_sockaddr(path, what): an AF_UNIX address. A path starting with '\0' is a name in Linux's
// abstract namespace (no file; its length is the name's). ValueError for an empty path; OSError
// "AF_UNIX path too long" (Python's text) beyond sun_path.
SockAddr unix_sockaddr(std::string_view path, const char* what);

// ip_sockaddr(ep): an IPv4/IPv6 endpoint as a SockAddr.
SockAddr ip_sockaddr(const boost::asio::ip::tcp::endpoint& ep);

// printable_path(path): an AF_UNIX path for messages: an abstract name's leading '\0' as '@'.
std::string printable_path(std::string_view path);

}  // namespace concur::aio::detail
