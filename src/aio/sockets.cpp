// The sock_* operations (sockets.hpp): each one is the loop Python's selector_events runs — try
// the system call; on EAGAIN claim the fd's direction in the loop's watcher registry (fd_watch.hpp)
// and suspend until it is ready; try again. EINTR retries at once; any other errno is raised as
// os_error.hpp maps it. The claim (FdClaim) is freed when the operation ends, however it ends.
// Addresses: an AF_UNIX socket's is a path; an IP socket's a numeric address, or a name resolved
// by getaddrinfo() (the C library's, on the loop's default executor) before the system call.
#include "concur/aio/sockets.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "concur/aio/loop.hpp"
#include "concur/errors.hpp"
#include "concur/thread_pool.hpp"
#include "fd_watch.hpp"
#include "os_error.hpp"
#include "sendfile.hpp"

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

// SocketKind: a socket's family, type and protocol (Python's sock.family / type / proto).
struct SocketKind {
  int family = 0;
  int type = 0;
  int proto = 0;
};

int int_option(int fd, int name, const char* what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, name, &value, &len) != 0) {
    const int e = errno;
    std::rethrow_exception(os_error(e, std::string(what) + "(): " + errno_text(e)));
  }
  return value;
}

SocketKind kind_of(int fd, const char* what) {
  return SocketKind{int_option(fd, SO_DOMAIN, what), int_option(fd, SO_TYPE, what),
                    int_option(fd, SO_PROTOCOL, what)};
}

// gai_error(rc, sys_errno): a failed getaddrinfo/getnameinfo as Python raises it.
std::exception_ptr gai_error(int rc, int sys_errno) {
  if (rc == EAI_SYSTEM) return os_error(sys_errno, errno_text(sys_errno));
  return std::make_exception_ptr(gaierror(rc, ::gai_strerror(rc)));
}

// GaiResult: what a resolver call on the executor hands back to the loop.
struct GaiResult {
  int rc = 0;
  int sys_errno = 0;
  std::vector<AddrInfo> infos;
  NameInfo name;
};

GaiResult blocking_getaddrinfo(const std::string& host, const std::string& port, int family,
                               int type, int proto, int flags) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = type;
  hints.ai_protocol = proto;
  hints.ai_flags = flags;
  addrinfo* res = nullptr;
  GaiResult out;
  out.rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                         port.empty() ? nullptr : port.c_str(), &hints, &res);
  out.sys_errno = errno;
  if (out.rc != 0) return out;
  for (const addrinfo* p = res; p != nullptr; p = p->ai_next) {
    AddrInfo info;
    info.family = p->ai_family;
    info.type = p->ai_socktype;
    info.proto = p->ai_protocol;
    if (p->ai_canonname != nullptr) info.canonname = p->ai_canonname;
    sockaddr_storage ss{};
    const std::size_t n = std::min<std::size_t>(p->ai_addrlen, sizeof ss);
    std::memcpy(&ss, p->ai_addr, n);
    info.sockaddr = sockaddr_endpoint(ss, static_cast<socklen_t>(n));
    out.infos.push_back(std::move(info));
  }
  ::freeaddrinfo(res);
  return out;
}

// numeric_endpoint(host, port): the address when host is a numeric IPv4/IPv6 address.
std::optional<tcp::endpoint> numeric_endpoint(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  const asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return tcp::endpoint(addr, port);
}

// resolve_target(kind, host, port, is_path, what): the address an operation sends to or connects
// to (sockets.hpp, "Addresses"): a path for an AF_UNIX socket; a numeric address as it is; a name
// through getaddrinfo with the socket's family, type and protocol, first result.
Task<SockAddr> resolve_target(SocketKind kind, std::string host, std::uint16_t port, bool is_path,
                              const char* what) {
  if (kind.family == AF_UNIX) {
    if (!is_path && port != 0) {
      throw ValueError(std::string(what) +
                       "(): an AF_UNIX socket's address is a path, not a host and port");
    }
    co_return unix_sockaddr(host, what);
  }
  if (is_path) {
    throw ValueError(std::string(what) + "(): a path is an AF_UNIX address; the socket is not " +
                     "AF_UNIX");
  }
  if (const std::optional<tcp::endpoint> ep = numeric_endpoint(host, port)) {
    co_return ip_sockaddr(*ep);
  }
  if (host.empty()) std::rethrow_exception(gai_error(EAI_NONAME, 0));
  const std::string service = std::to_string(port);
  const std::vector<AddrInfo> infos =
      co_await getaddrinfo(host, service, kind.family, kind.type, kind.proto, 0);
  for (const AddrInfo& info : infos) {
    if (const auto ep = numeric_endpoint(info.sockaddr.host, info.sockaddr.port)) {
      co_return ip_sockaddr(*ep);
    }
  }
  std::rethrow_exception(gai_error(EAI_NONAME, 0));
}

void shrink(std::string& s) {
  if (s.capacity() - s.size() > kShrinkSlack) s.shrink_to_fit();
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
      out.address = sockaddr_endpoint(ss, sslen);
      co_return out;
    }
    if (must_wait(errno)) co_await claim.wait();
  }
}

Task<void> connect_impl(int fd, std::string host, std::uint16_t port, bool is_path) {
  LoopCore& loop = begin(fd, "sock_connect");
  SockAddr to;
  if (const auto ep = is_path ? std::nullopt : numeric_endpoint(host, port)) {
    to = ip_sockaddr(*ep);  // no resolver, no getsockopt: the kernel checks the family
  } else {
    to = co_await resolve_target(kind_of(fd, "sock_connect"), std::move(host), port, is_path,
                                 "sock_connect");
  }
  FdClaim claim(loop, fd, FdDir::kWrite, "sock_connect");
  int r = ::connect(fd, to.get(), to.len);
  if (r == 0) co_return;
  const int e = errno;
  // EINPROGRESS: the usual; EINTR: the connection goes on in the background (Python's issue
  // #23618); EALREADY: an earlier connect (a cancelled sock_connect) is still in progress.
  if (e != EINPROGRESS && e != EINTR && e != EALREADY) {
    std::rethrow_exception(os_error(e, "Connect call failed " + to.text()));
  }
  for (;;) {
    co_await claim.wait();  // writable: the connect ended; SO_ERROR says how
    int err = 0;
    socklen_t len = sizeof err;
    r = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (r != 0) err = errno;
    if (err == 0) co_return;
    if (err != EINPROGRESS && err != EALREADY && err != EINTR) {
      std::rethrow_exception(os_error(err, "Connect call failed " + to.text()));
    }
  }
}

Task<std::size_t> sendto_impl(int fd, std::string_view data, std::string host, std::uint16_t port,
                              bool is_path) {
  LoopCore& loop = begin(fd, "sock_sendto");
  SockAddr to;
  if (const auto ep = is_path ? std::nullopt : numeric_endpoint(host, port)) {
    to = ip_sockaddr(*ep);
  } else {
    to = co_await resolve_target(kind_of(fd, "sock_sendto"), std::move(host), port, is_path,
                                 "sock_sendto");
  }
  FdClaim claim(loop, fd, FdDir::kWrite, "sock_sendto");
  for (;;) {
    const ssize_t r = ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to.get(), to.len);
    if (r >= 0) co_return static_cast<std::size_t>(r);
    if (must_wait(errno)) co_await claim.wait();
  }
}

// ---- sock_sendfile ----

// sendfile_native: sendfile(2) until count bytes or the end of the file went; the socket's write
// direction is claimed for the whole operation.
Task<std::size_t> sendfile_native(LoopCore& loop, int fd, int file_fd, std::int64_t offset,
                                  std::size_t count) {
  struct stat st {};
  if (::fstat(file_fd, &st) != 0) {
    const int e = errno;
    std::rethrow_exception(os_error(e, "sock_sendfile(): the file: " + errno_text(e)));
  }
  if (!S_ISREG(st.st_mode)) throw SendfileNotAvailableError("not a regular file");
  FilePosition pos{file_fd, offset};
  FdClaim claim(loop, fd, FdDir::kWrite, "sock_sendfile");
  auto off = static_cast<off_t>(offset);
  for (;;) {
    if (count != 0 && pos.sent >= count) co_return pos.sent;
    const std::size_t want = std::min(count != 0 ? count - pos.sent : kSendfileMax, kSendfileMax);
    const ssize_t r = sendfile_no_sigpipe(fd, file_fd, &off, want);
    if (r > 0) {
      // Then wait for writability before the next call, as Python does: a peer that keeps up
      // must not keep the loop in this coroutine for the whole file.
      pos.sent += static_cast<std::size_t>(r);
      if (count == 0 || pos.sent < count) co_await claim.wait();
      continue;
    }
    if (r == 0) co_return pos.sent;  // the end of the file
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      co_await claim.wait();
      continue;
    }
    if (pos.sent == 0 && !connection_errno(e)) {
      throw SendfileNotAvailableError("os.sendfile call failed: [Errno " + std::to_string(e) +
                                      "] " + errno_text(e));
    }
    raise_send_error(e);
  }
}

// sendfile_fallback: reads of the file on the default executor, each sent before the next read.
Task<std::size_t> sendfile_fallback(LoopCore& loop, int fd, int file_fd, std::int64_t offset,
                                    std::size_t count) {
  bool seekable = ::lseek(file_fd, static_cast<off_t>(offset), SEEK_SET) >= 0;
  if (!seekable) {
    const int e = errno;
    if (e != ESPIPE || offset != 0) {
      std::rethrow_exception(os_error(e, "sock_sendfile(): seeking the file: " + errno_text(e)));
    }
  }
  FilePosition pos{file_fd, offset, seekable};
  FdClaim claim(loop, fd, FdDir::kWrite, "sock_sendfile");
  const std::size_t block = count != 0 ? std::min(count, kFallbackBlock) : kFallbackBlock;
  // Shared with the executor's read: a cancelled operation's read may still be running.
  auto buf = std::make_shared<std::vector<char>>(block);
  for (;;) {
    std::size_t want = block;
    if (count != 0) want = std::min(count - pos.sent, block);
    if (want == 0) break;
    const std::int64_t at = offset + static_cast<std::int64_t>(pos.sent);
    concur::Future<ssize_t> reading = read_block(loop.owner(), buf, file_fd, want, at, seekable);
    const ssize_t got = co_await std::move(reading);
    if (got < 0) {
      const int e = static_cast<int>(-got);
      std::rethrow_exception(os_error(e, "sock_sendfile(): reading the file: " + errno_text(e)));
    }
    if (got == 0) break;  // the end of the file
    std::string_view rest(buf->data(), static_cast<std::size_t>(got));
    while (!rest.empty()) {
      const ssize_t w = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (w >= 0) {
        rest.remove_prefix(static_cast<std::size_t>(w));
        pos.sent += static_cast<std::size_t>(w);
        continue;
      }
      const int e = errno;
      if (e == EINTR) continue;
      if (e != EAGAIN && e != EWOULDBLOCK) raise_send_error(e);
      co_await claim.wait();
    }
  }
  co_return pos.sent;
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
  return detail::connect_impl(fd, address.host, address.port, address.is_unix);
}
Task<void> sock_connect(int fd, std::string_view host, std::uint16_t port) {
  return detail::connect_impl(fd, std::string(host), port, false);
}
Task<void> sock_connect(int fd, std::string_view path) {
  return detail::connect_impl(fd, std::string(path), 0, true);
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
        out.address = detail::sockaddr_endpoint(ss, len);
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
      out.address = detail::sockaddr_endpoint(ss, len);
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
  return detail::sendto_impl(fd, data, address.host, address.port, address.is_unix);
}
Task<std::size_t> sock_sendto(int fd, std::string_view data, std::string_view host,
                              std::uint16_t port) {
  return detail::sendto_impl(fd, data, std::string(host), port, false);
}
Task<std::size_t> sock_sendto(int fd, std::string_view data, std::string_view path) {
  return detail::sendto_impl(fd, data, std::string(path), 0, true);
}

Task<std::size_t> sock_sendfile(int fd, int file_fd, std::int64_t offset, std::size_t count,
                                bool fallback) {
  detail::LoopCore& loop = detail::begin(fd, "sock_sendfile");
  if (detail::int_option(fd, SO_TYPE, "sock_sendfile") != SOCK_STREAM) {
    throw ValueError("only SOCK_STREAM type sockets are supported");
  }
  if (offset < 0) {
    throw ValueError("offset must be a non-negative integer (got " + std::to_string(offset) + ")");
  }
  try {
    co_return co_await detail::sendfile_native(loop, fd, file_fd, offset, count);
  } catch (const SendfileNotAvailableError&) {
    if (!fallback) throw;
  }
  co_return co_await detail::sendfile_fallback(loop, fd, file_fd, offset, count);
}

Task<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port, int family, int type,
                                        int proto, int flags) {
  Loop& loop = get_running_loop();
  concur::Future<detail::GaiResult> resolving = loop.run_in_executor(
      [host = std::move(host), port = std::move(port), family, type, proto, flags] {
        return detail::blocking_getaddrinfo(host, port, family, type, proto, flags);
      });
  detail::GaiResult r = co_await std::move(resolving);
  if (r.rc != 0) std::rethrow_exception(detail::gai_error(r.rc, r.sys_errno));
  co_return std::move(r.infos);
}

Task<std::vector<AddrInfo>> getaddrinfo(std::string host, std::uint16_t port, int family, int type,
                                        int proto, int flags) {
  return getaddrinfo(std::move(host), std::to_string(port), family, type, proto, flags);
}

Task<NameInfo> getnameinfo(Endpoint address, int flags) {
  if (address.is_unix) throw ValueError("getnameinfo(): an AF_UNIX address has no name to look up");
  Loop& loop = get_running_loop();
  const std::optional<boost::asio::ip::tcp::endpoint> ep =
      detail::numeric_endpoint(address.host, address.port);
  // Python's socket.getnameinfo reads the host with AI_NUMERICHOST: a name is EAI_NONAME.
  if (!ep) std::rethrow_exception(detail::gai_error(EAI_NONAME, 0));
  const detail::SockAddr addr = detail::ip_sockaddr(*ep);
  concur::Future<detail::GaiResult> resolving = loop.run_in_executor([addr, flags] {
    char host[NI_MAXHOST] = {};
    char serv[NI_MAXSERV] = {};
    detail::GaiResult out;
    out.rc = ::getnameinfo(addr.get(), addr.len, host, sizeof host, serv, sizeof serv, flags);
    out.sys_errno = errno;
    if (out.rc == 0) out.name = NameInfo{host, serv};
    return out;
  });
  detail::GaiResult r = co_await std::move(resolving);
  if (r.rc != 0) std::rethrow_exception(detail::gai_error(r.rc, r.sys_errno));
  co_return std::move(r.name);
}

}  // namespace concur::aio
