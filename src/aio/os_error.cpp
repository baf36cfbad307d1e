// errno → concur's OSError family, and the socket addresses streams and sockets share (see
// os_error.hpp).
#include "os_error.hpp"

#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "concur/errors.hpp"

namespace concur::aio::detail {

std::string errno_text(int e) {
  const char* d = strerrordesc_np(e);
  return d != nullptr ? d : "Unknown error " + std::to_string(e);
}

std::string py_address(const boost::asio::ip::tcp::endpoint& ep) {
  const std::string host = ep.address().to_string();
  if (ep.address().is_v6()) return "('" + host + "', " + std::to_string(ep.port()) + ", 0, 0)";
  return "('" + host + "', " + std::to_string(ep.port()) + ")";
}

std::exception_ptr os_error(int e, const std::string& msg) {
  switch (e) {
    case ECONNREFUSED:
      return std::make_exception_ptr(ConnectionRefusedError(e, msg));
    case ECONNRESET:
      return std::make_exception_ptr(ConnectionResetError(e, msg));
    case EPIPE:
    case ESHUTDOWN:
      return std::make_exception_ptr(BrokenPipeError(e, msg));
    case ECONNABORTED:
      return std::make_exception_ptr(ConnectionAbortedError(e, msg));
    case ETIMEDOUT:
      return std::make_exception_ptr(TimeoutError("[Errno " + std::to_string(e) + "] " + msg));
    default:
      return std::make_exception_ptr(OSError(e, msg));
  }
}

Endpoint sockaddr_endpoint(const sockaddr_storage& ss, socklen_t len) {
  const auto size = static_cast<std::size_t>(len);
  if (size < sizeof(sa_family_t)) return {};
  if ((ss.ss_family == AF_INET && size >= sizeof(sockaddr_in)) ||
      (ss.ss_family == AF_INET6 && size >= sizeof(sockaddr_in6))) {
    boost::asio::ip::tcp::endpoint ep;
    const std::size_t n = ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memcpy(ep.data(), &ss, n);
    ep.resize(n);
    return Endpoint{ep.address().to_string(), ep.port(), ep.address().is_v6(), false};
  }
  if (ss.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    const std::size_t offset = offsetof(sockaddr_un, sun_path);
    std::string path;
    if (size > offset) path.assign(un->sun_path, size - offset);
    if (!path.empty() && path[0] != '\0') path.resize(std::strlen(path.c_str()));
    return Endpoint{std::move(path), 0, false, true};
  }
  return {};
}

std::string printable_path(std::string_view path) {
  std::string out(path);
  if (!out.empty() && out[0] == '\0') out[0] = '@';
  return out;
}

SockAddr unix_sockaddr(std::string_view path, const char* what) {
  if (path.empty()) throw ValueError(std::string(what) + "(): the AF_UNIX path is empty");
  SockAddr out;
  auto* un = reinterpret_cast<sockaddr_un*>(&out.ss);
  const bool abstract = path[0] == '\0';
  // A file path keeps room for its terminating NUL; an abstract name is counted by its length.
  if (path.size() + (abstract ? 0 : 1) > sizeof(un->sun_path)) {
    throw OSError(0, "AF_UNIX path too long");
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  out.len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return out;
}

SockAddr ip_sockaddr(const boost::asio::ip::tcp::endpoint& ep) {
  SockAddr out;
  std::memcpy(&out.ss, ep.data(), ep.size());
  out.len = static_cast<socklen_t>(ep.size());
  return out;
}

std::string SockAddr::text() const {
  const Endpoint ep = sockaddr_endpoint(ss, len);
  if (ep.is_unix) return printable_path(ep.host);
  boost::asio::ip::tcp::endpoint native;
  std::memcpy(native.data(), &ss, len);
  native.resize(len);
  return py_address(native);
}

}  // namespace concur::aio::detail
