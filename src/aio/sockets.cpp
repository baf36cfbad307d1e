// The sock_* operations (sockets.hpp): each one is the loop Python's selector_events runs — try
// the system call; on EAGAIN claim the fd's direction in the loop's watcher registry (fd_watch.hpp)
// and suspend until it is ready; try again. EINTR retries at once; any other errno is raised as
// os_error.hpp maps it. The claim (FdClaim) is freed when the operation ends, however it ends.
#include "concur/aio/sockets.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "concur/errors.hpp"
#include "fd_watch.hpp"
#include "os_error.hpp"

namespace concur::aio {
namespace detail {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// kShrinkSlack: a received string that uses this much less than it reserved gives the rest back
// (sock_recv(fd, 1 MiB) returning 10 bytes keeps 10 bytes, as Python's bytes do).
constexpr std::size_t kShrinkSlack = 4096;

// begin(fd, what): the running loop, after the checks every operation makes first: a bad fd is an
// OSError (EBADF), a blocking socket a ValueError (Python's text).
LoopCore& begin(int fd, const char* what) {
  LoopCore& loop = running_core();
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) {
    const int e = errno;
    std::rethrow_exception(os_error(e, std::string(what) + "(): " + errno_text(e)));
  }
  if ((flags & O_NONBLOCK) == 0) throw ValueError("the socket must be non-blocking");
  return loop;
}

// must_wait(e): after a failed call: true to wait for readiness (EAGAIN), false to retry at once
// (EINTR); any other errno is raised.
bool must_wait(int e) {
  if (e == EINTR) return false;
  if (e == EAGAIN || e == EWOULDBLOCK) return true;
  std::rethrow_exception(os_error(e, errno_text(e)));
}

// native_endpoint(host, port, what): a numeric IPv4/IPv6 address (no name resolution).
tcp::endpoint native_endpoint(const std::string& host, std::uint16_t port, const char* what) {
  boost::system::error_code ec;
  const asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) {
    throw ValueError(std::string(what) + "(): '" + host +
                     "' is not a numeric IPv4 or IPv6 address (names are not resolved)");
  }
  return {addr, port};
}

// endpoint_of(ss, len): a socket address as an Endpoint (IPv4, IPv6, AF_UNIX's path; else empty).
Endpoint endpoint_of(const sockaddr_storage& ss, socklen_t len) {
  const auto size = static_cast<std::size_t>(len);
  if (size < sizeof(sa_family_t)) return {};
  if ((ss.ss_family == AF_INET && size >= sizeof(sockaddr_in)) ||
      (ss.ss_family == AF_INET6 && size >= sizeof(sockaddr_in6))) {
    tcp::endpoint ep;
    const std::size_t n = ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memcpy(ep.data(), &ss, n);
    ep.resize(n);
    return Endpoint{ep.address().to_string(), ep.port(), ep.address().is_v6()};
  }
  if (ss.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    const std::size_t offset = offsetof(sockaddr_un, sun_path);
    if (size <= offset) return {};
    std::string path(un->sun_path, size - offset);
    if (!path.empty() && path[0] != '\0') path.resize(std::strlen(path.c_str()));
    return Endpoint{std::move(path), 0, false};
  }
  return {};
}

void shrink(std::string& s) {
  if (s.capacity() - s.size() > kShrinkSlack) s.shrink_to_fit();
}

[[noreturn]] void throw_connect(int e, const tcp::endpoint& ep) {
  std::rethrow_exception(os_error(e, "Connect call failed " + py_address(ep)));
}

Task<std::size_t> recv_into_impl(int fd, char* buf, std::size_t len) {
  LoopCore& loop = begin(fd, "sock_recv_into");
  if (len == 0) co_return 0;  // see sock_recv
  FdClaim claim(loop, fd, FdDir::kRead, "sock_recv_into");
  for (;;) {
    const ssize_t r = ::recv(fd, buf, len, 0);
    if (r >= 0) co_return static_cast<std::size_t>(r);
    if (must_wait(errno)) co_await claim.wait();
  }
}

Task<DatagramInto> recvfrom_into_impl(int fd, char* buf, std::size_t len) {
  LoopCore& loop = begin(fd, "sock_recvfrom_into");
  FdClaim claim(loop, fd, FdDir::kRead, "sock_recvfrom_into");
  for (;;) {
    sockaddr_storage ss{};
    socklen_t sslen = sizeof ss;
    const ssize_t r = ::recvfrom(fd, buf, len, 0, reinterpret_cast<sockaddr*>(&ss), &sslen);
    if (r >= 0) {
      DatagramInto out;
      out.nbytes = static_cast<std::size_t>(r);
      out.address = endpoint_of(ss, sslen);
      co_return out;
    }
    if (must_wait(errno)) co_await claim.wait();
  }
}

Task<void> connect_impl(int fd, std::string host, std::uint16_t port) {
  LoopCore& loop = begin(fd, "sock_connect");
  const tcp::endpoint ep = native_endpoint(host, port, "sock_connect");
  FdClaim claim(loop, fd, FdDir::kWrite, "sock_connect");
  int r = ::connect(fd, ep.data(), static_cast<socklen_t>(ep.size()));
  if (r == 0) co_return;
  const int e = errno;
  // EINPROGRESS: the usual; EINTR: the connection goes on in the background (Python's issue
  // #23618); EALREADY: an earlier connect (a cancelled sock_connect) is still in progress.
  if (e != EINPROGRESS && e != EINTR && e != EALREADY) throw_connect(e, ep);
  for (;;) {
    co_await claim.wait();  // writable: the connect ended; SO_ERROR says how
    int err = 0;
    socklen_t len = sizeof err;
    r = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (r != 0) err = errno;
    if (err == 0) co_return;
    if (err != EINPROGRESS && err != EALREADY && err != EINTR) throw_connect(err, ep);
  }
}

Task<std::size_t> sendto_impl(int fd, std::string_view data, std::string host, std::uint16_t port) {
  LoopCore& loop = begin(fd, "sock_sendto");
  const tcp::endpoint ep = native_endpoint(host, port, "sock_sendto");
  FdClaim claim(loop, fd, FdDir::kWrite, "sock_sendto");
  for (;;) {
    const ssize_t r = ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, ep.data(),
                               static_cast<socklen_t>(ep.size()));
    if (r >= 0) co_return static_cast<std::size_t>(r);
    if (must_wait(errno)) co_await claim.wait();
  }
}

}  // namespace
}  // namespace detail

Task<std::string> sock_recv(int fd, std::size_t n) {
  detail::LoopCore& loop = detail::begin(fd, "sock_recv");
  // n == 0: "" at once, without recv(): Linux's AF_UNIX recv(0) would wait for data it then leaves
  // unread (TCP's returns 0 at once); the streams' read(0) is the same.
  if (n == 0) co_return std::string();
  detail::FdClaim claim(loop, fd, detail::FdDir::kRead, "sock_recv");
  std::string out;
  out.resize(n);
  for (;;) {
    const ssize_t r = ::recv(fd, out.data(), n, 0);
    if (r >= 0) {
      out.resize(static_cast<std::size_t>(r));
      detail::shrink(out);
      co_return out;
    }
    if (detail::must_wait(errno)) co_await claim.wait();
  }
}

Task<std::size_t> sock_recv_into(int fd, std::span<std::byte> buf) {
  return detail::recv_into_impl(fd, reinterpret_cast<char*>(buf.data()), buf.size());
}
Task<std::size_t> sock_recv_into(int fd, std::span<char> buf) {
  return detail::recv_into_impl(fd, buf.data(), buf.size());
}

Task<void> sock_sendall(int fd, std::string_view data) {
  detail::LoopCore& loop = detail::begin(fd, "sock_sendall");
  detail::FdClaim claim(loop, fd, detail::FdDir::kWrite, "sock_sendall");
  while (!data.empty()) {
    const ssize_t r = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (r >= 0) {
      data.remove_prefix(static_cast<std::size_t>(r));
    } else if (detail::must_wait(errno)) {
      co_await claim.wait();
    }
  }
}

Task<void> sock_connect(int fd, const Endpoint& address) {
  return detail::connect_impl(fd, address.host, address.port);
}
Task<void> sock_connect(int fd, std::string_view host, std::uint16_t port) {
  return detail::connect_impl(fd, std::string(host), port);
}

Task<Accepted> sock_accept(int fd) {
  detail::LoopCore& loop = detail::begin(fd, "sock_accept");
  detail::FdClaim claim(loop, fd, detail::FdDir::kRead, "sock_accept");
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int conn =
        ::accept4(fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn >= 0) {
      Accepted out;
      out.fd = conn;
      try {
        out.address = detail::endpoint_of(ss, len);
      } catch (...) {
        ::close(conn);
        throw;
      }
      co_return out;
    }
    if (detail::must_wait(errno)) co_await claim.wait();
  }
}

Task<Datagram> sock_recvfrom(int fd, std::size_t n) {
  detail::LoopCore& loop = detail::begin(fd, "sock_recvfrom");
  detail::FdClaim claim(loop, fd, detail::FdDir::kRead, "sock_recvfrom");
  std::string data;
  data.resize(n);
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const ssize_t r = ::recvfrom(fd, data.data(), n, 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r >= 0) {
      data.resize(static_cast<std::size_t>(r));
      detail::shrink(data);
      Datagram out;
      out.data = std::move(data);
      out.address = detail::endpoint_of(ss, len);
      co_return out;
    }
    if (detail::must_wait(errno)) co_await claim.wait();
  }
}

Task<DatagramInto> sock_recvfrom_into(int fd, std::span<std::byte> buf) {
  return detail::recvfrom_into_impl(fd, reinterpret_cast<char*>(buf.data()), buf.size());
}
Task<DatagramInto> sock_recvfrom_into(int fd, std::span<char> buf) {
  return detail::recvfrom_into_impl(fd, buf.data(), buf.size());
}

Task<std::size_t> sock_sendto(int fd, std::string_view data, const Endpoint& address) {
  return detail::sendto_impl(fd, data, address.host, address.port);
}
Task<std::size_t> sock_sendto(int fd, std::string_view data, std::string_view host,
                              std::uint16_t port) {
  return detail::sendto_impl(fd, data, std::string(host), port);
}

}  // namespace concur::aio
