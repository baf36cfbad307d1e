// concur/aio/sockets.hpp — asyncio's low-level socket operations ("Working with socket objects
// directly"): sock_recv, sock_recv_into, sock_sendall, sock_connect, sock_accept, sock_recvfrom,
// sock_recvfrom_into, sock_sendto, sock_sendfile, as coroutines on non-blocking socket fds the
// caller creates, configures and closes (Python's socket objects), for IPv4, IPv6 and AF_UNIX
// sockets; and the loop's resolver, getaddrinfo / getnameinfo. Each operation tries its system
// call at once and waits on the loop's fd watchers (Loop::add_reader/add_writer) only when the
// call would block; the resolver runs on the loop's default executor.
// Thread-safety: an operation runs on the loop of the task that awaits it; one fd, one loop.
// Lifetime: buffers and data views must stay valid until the operation's task is done; accepted
// sockets are the caller's to close. The rules every operation shares follow the includes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "concur/aio/streams.hpp"
#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"

namespace concur::aio {

// Every operation:
// - checks first that fd is a non-blocking descriptor: ValueError "the socket must be
//   non-blocking" otherwise (on every call: Python checks only in debug mode, but a blocking call
//   would stall the whole loop), OSError EBADF for a closed fd;
// - raises the errors.hpp OSError that the system call's errno maps to, as the streams do
//   (ConnectionResetError, BrokenPipeError, ConnectionRefusedError...; no SIGPIPE is raised);
// - cancelled, withdraws its readiness wait: a cancelled sock_recv, recv_into, recvfrom or accept
//   consumed nothing (the next call gets the bytes or the connection); a cancelled sock_sendall
//   may have sent a prefix of its data (as Python documents); a cancelled sock_connect stops
//   waiting while the kernel's connect goes on (close the socket; a new sock_connect on it waits
//   for a connect still in progress, EALREADY, and raises OSError EISCONN for a finished one);
// - is the only waiter of its fd and direction: while a task waits to read (write) fd, another
//   sock_* call reading (writing) fd, and an add_reader (add_writer) callback on fd, raise
//   RuntimeError — Python lets the second silently replace the first, whose await then never
//   ends;
// - refuses, once it must wait, an fd that a stream, server or subprocess of the same loop uses
//   (RuntimeError "File descriptor N is used by transport", Python's _ensure_fd_no_transport).
// Addresses: an AF_INET / AF_INET6 socket takes a host and port (an Endpoint, or the two): a
// numeric address is used as it is; a name is resolved first with getaddrinfo(host, port, the
// socket's family, type and protocol) and the first result is used (Python's _ensure_resolved),
// its gaierror raised. An AF_UNIX socket takes a path (the std::string_view overloads, or an
// Endpoint whose host is the path, as sock_recvfrom / sock_accept report it: is_unix, port 0); a
// path starting with '\0' is a name in Linux's abstract namespace — write it with its length
// ("\0name"sv): a plain "\0name" literal is an empty string_view. A path for an IP socket, or a
// host name and nonzero port for an AF_UNIX one, is a ValueError (a numeric address is handed to
// the kernel without looking at the socket, which refuses a wrong family: OSError EINVAL /
// EAFNOSUPPORT).
// g++ 12: write `co_await aio::sock_connect(fd, "127.0.0.1", port)` or name an Endpoint first; a
// braced `Endpoint{...}` inside a co_await expression is destroyed twice by that compiler.

// AddrInfo: one getaddrinfo() result (Python's 5-tuple (family, type, proto, canonname,
// sockaddr)): AF_INET / AF_INET6, SOCK_STREAM / SOCK_DGRAM / SOCK_RAW, IPPROTO_*, the canonical
// name (in the first result, with AI_CANONNAME; else "") and the address.
struct AddrInfo {
  int family = 0;
  int type = 0;
  int proto = 0;
  std::string canonname;
  Endpoint sockaddr;
};

// NameInfo: what getnameinfo() returns (Python's (host, port) pair of strings).
struct NameInfo {
  std::string host;
  std::string port;
};

// Accepted: what sock_accept() returns (Python's `(conn, address)`): a connected socket
// (non-blocking and close-on-exec; the caller closes it) and the peer's address.
struct Accepted {
  int fd = -1;
  Endpoint address;
};

// Datagram: what sock_recvfrom() returns (Python's `(data, address)`).
struct Datagram {
  std::string data;
  Endpoint address;
};

// DatagramInto: what sock_recvfrom_into() returns (Python's `(nbytes, address)`).
struct DatagramInto {
  std::size_t nbytes = 0;
  Endpoint address;
};

// sock_recv(fd, n): up to n bytes from the socket (Python's loop.sock_recv); "" at EOF (and for
// n == 0, at once). Waits until data or EOF arrives. The error the socket reports
// (ConnectionResetError...).
CONCUR_EXPORT Task<std::string> sock_recv(int fd, std::size_t n);

// sock_recv_into(fd, buf): receives into buf (up to buf.size() bytes); returns how many, 0 at EOF
// (and for an empty buf). buf must stay valid until the task is done.
CONCUR_EXPORT Task<std::size_t> sock_recv_into(int fd, std::span<std::byte> buf);
CONCUR_EXPORT Task<std::size_t> sock_recv_into(int fd, std::span<char> buf);

// sock_sendall(fd, data): sends all of data, waiting for the socket to be writable as often as
// needed; returns once the kernel took the last byte. BrokenPipeError / ConnectionResetError when
// the peer is gone (no SIGPIPE is raised). Cancelled, a prefix of data may have been sent. data
// must stay valid until the task is done.
CONCUR_EXPORT Task<void> sock_sendall(int fd, std::string_view data);

// sock_connect(fd, address) / sock_connect(fd, host, port) / sock_connect(fd, path): connects a
// TCP (or UDP) socket to a host and port — a numeric IPv4 or IPv6 address ("127.0.0.1", "::1",
// "fe80::1%eth0") or a name ("localhost"), resolved first (see Addresses above) — or an AF_UNIX
// socket to a path. Returns once connected. ConnectionRefusedError ("[Errno 111] Connect call
// failed ('127.0.0.1', 1)"; "... failed /tmp/x.sock" for a path), the connect's other OSError
// (ENOENT for a path with no socket file), gaierror for a name that does not resolve. Cancelled
// while resolving, it stops waiting for the resolver (whose lookup finishes on its thread).
CONCUR_EXPORT Task<void> sock_connect(int fd, const Endpoint& address);
CONCUR_EXPORT Task<void> sock_connect(int fd, std::string_view host, std::uint16_t port);
CONCUR_EXPORT Task<void> sock_connect(int fd, std::string_view path);

// sock_accept(fd): the next connection of a listening socket (Python's loop.sock_accept): its new
// socket, non-blocking and close-on-exec, and the peer's address (for an AF_UNIX listener: is_unix,
// host "" for a peer without a name, the path for a named one).
CONCUR_EXPORT Task<Accepted> sock_accept(int fd);

// sock_recvfrom(fd, n): one datagram (at most n bytes of it; the rest of a longer one is lost, as
// recvfrom) and its sender (Python 3.11).
CONCUR_EXPORT Task<Datagram> sock_recvfrom(int fd, std::size_t n);

// sock_recvfrom_into(fd, buf): one datagram into buf; how many bytes and the sender (Python 3.11).
CONCUR_EXPORT Task<DatagramInto> sock_recvfrom_into(int fd, std::span<std::byte> buf);
CONCUR_EXPORT Task<DatagramInto> sock_recvfrom_into(int fd, std::span<char> buf);

// sock_sendto(fd, data, address) / sock_sendto(fd, data, host, port) / sock_sendto(fd, data,
// path): sends one datagram to an address, a name (resolved first, see Addresses above: Python's
// sock_sendto leaves that to socket.sendto, which resolves on the loop's thread) or, for an
// AF_UNIX socket, a path; returns the number of bytes sent (Python 3.11). data must stay valid
// until the task is done.
CONCUR_EXPORT Task<std::size_t> sock_sendto(int fd, std::string_view data, const Endpoint& address);
CONCUR_EXPORT Task<std::size_t> sock_sendto(int fd, std::string_view data, std::string_view host,
                                            std::uint16_t port);
CONCUR_EXPORT Task<std::size_t> sock_sendto(int fd, std::string_view data, std::string_view path);

// sock_sendfile(fd, file_fd, offset, count, fallback): sends count bytes (0: up to the end of the
// file) of the file file_fd, from offset, over the connected stream socket fd (Python's
// loop.sock_sendfile); returns how many bytes were sent. With a regular file it uses the kernel's
// sendfile(2), waiting for writability before each further call (as Python: a fast peer does not
// hold the loop for the whole file). When sendfile is not
// possible — file_fd is not a regular file (a pipe), or sendfile refuses it (EINVAL...) before
// sending a byte — it falls back to reading the file (on the loop's default executor, 256 KiB at a
// time; pread for a seekable file, read from its current position for a pipe, where offset must be
// 0: OSError ESPIPE otherwise) and sending what it read; with fallback false it raises
// SendfileNotAvailableError instead. The file position (lseek) is left at offset + the bytes sent
// whenever any were sent — also when it fails or is cancelled — so a caller learns how far it got
// (as Python); sendfile itself does not move it. An empty regular file with count 0 sends nothing
// and returns 0. Errors: ValueError for a negative offset ("offset must be a non-negative integer
// (got -1)") or a socket that is not SOCK_STREAM ("only SOCK_STREAM type sockets are supported");
// OSError for a bad file_fd (EBADF) or a failed read; the connection's errors (BrokenPipeError,
// ConnectionResetError, ConnectionError ENOTCONN "socket is not connected") as sock_sendall.
// Cancelled, it stops at a readiness wait (nothing is half-sent: the file position says what went)
// or while a fallback read runs (that read's bytes are dropped; from a pipe they are lost).
// Differences from Python: count 0 means to the end (Python's None; Python refuses 0); a connection
// error before the first byte is raised as such, not as SendfileNotAvailableError; a fallback
// starts at offset for a seekable file also when offset is 0 (Python's reads from the current
// position then).
CONCUR_EXPORT Task<std::size_t> sock_sendfile(int fd, int file_fd, std::int64_t offset = 0,
                                              std::size_t count = 0, bool fallback = true);

// getaddrinfo(host, port, family, type, proto, flags): resolves a host name and port or service
// (Python's loop.getaddrinfo / socket.getaddrinfo) with the C library's getaddrinfo, run on the
// loop's default executor: every result, in the resolver's order. host "" is Python's None (with
// AI_PASSIVE the wildcard address, else the loopback one); port "" is None, else a number ("80")
// or a service name ("http", from /etc/services). family AF_UNSPEC/AF_INET/AF_INET6, type 0 /
// SOCK_STREAM / SOCK_DGRAM, proto, flags AI_* (AI_NUMERICHOST refuses names without a lookup,
// AI_CANONNAME fills canonname, AI_PASSIVE). Raises gaierror (errno_code() the EAI_* code:
// "gaierror: [Errno -2] Name or service not known"), OSError for EAI_SYSTEM. Cancelled, it returns
// at once (CancelledError); the lookup itself ends on its thread and is discarded. Whether it
// leaves the machine is the system's resolver's choice (/etc/nsswitch.conf: /etc/hosts, then DNS).
CONCUR_EXPORT Task<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port,
                                                      int family = 0, int type = 0, int proto = 0,
                                                      int flags = 0);
CONCUR_EXPORT Task<std::vector<AddrInfo>> getaddrinfo(std::string host, std::uint16_t port,
                                                      int family = 0, int type = 0, int proto = 0,
                                                      int flags = 0);

// getnameinfo(address, flags): the host name and service of a numeric IPv4/IPv6 address (Python's
// loop.getnameinfo; NI_* flags: NI_NUMERICHOST, NI_NUMERICSERV, NI_NAMEREQD, NI_DGRAM...), on the
// loop's default executor. gaierror for a host that is not a numeric address (EAI_NONAME, as
// Python), or when the C library's getnameinfo fails; ValueError for an AF_UNIX Endpoint.
// Cancelled as getaddrinfo.
CONCUR_EXPORT Task<NameInfo> getnameinfo(Endpoint address, int flags = 0);

}  // namespace concur::aio
