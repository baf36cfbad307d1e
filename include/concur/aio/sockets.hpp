// concur/aio/sockets.hpp — asyncio's low-level socket operations ("Working with socket objects
// directly"): sock_recv, sock_recv_into, sock_sendall, sock_connect, sock_accept, sock_recvfrom,
// sock_recvfrom_into, sock_sendto, as coroutines on non-blocking socket fds the caller creates,
// configures and closes (Python's socket objects). Each tries its system call at once and waits
// on the loop's fd watchers (Loop::add_reader/add_writer) only when the call would block.
// Thread-safety: an operation runs on the loop of the task that awaits it; one fd, one loop.
// Lifetime: buffers and data views must stay valid until the operation's task is done; accepted
// sockets are the caller's to close. The rules every operation shares follow the includes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

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
// g++ 12: write `co_await aio::sock_connect(fd, "127.0.0.1", port)` or name an Endpoint first; a
// braced `Endpoint{...}` inside a co_await expression is destroyed twice by that compiler.

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

// sock_connect(fd, address) / sock_connect(fd, host, port): connects a TCP (or UDP) socket to a
// numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "fe80::1%eth0"; no name resolution: a name is
// a ValueError). Returns once connected. ConnectionRefusedError
// ("[Errno 111] Connect call failed ('127.0.0.1', 1)") or the connect's other OSError.
CONCUR_EXPORT Task<void> sock_connect(int fd, const Endpoint& address);
CONCUR_EXPORT Task<void> sock_connect(int fd, std::string_view host, std::uint16_t port);

// sock_accept(fd): the next connection of a listening socket (Python's loop.sock_accept): its new
// socket, non-blocking and close-on-exec, and the peer's address (Endpoint{} for an AF_UNIX peer
// without a name; host = the path for a named one).
CONCUR_EXPORT Task<Accepted> sock_accept(int fd);

// sock_recvfrom(fd, n): one datagram (at most n bytes of it; the rest of a longer one is lost, as
// recvfrom) and its sender (Python 3.11).
CONCUR_EXPORT Task<Datagram> sock_recvfrom(int fd, std::size_t n);

// sock_recvfrom_into(fd, buf): one datagram into buf; how many bytes and the sender (Python 3.11).
CONCUR_EXPORT Task<DatagramInto> sock_recvfrom_into(int fd, std::span<std::byte> buf);
CONCUR_EXPORT Task<DatagramInto> sock_recvfrom_into(int fd, std::span<char> buf);

// sock_sendto(fd, data, address) / sock_sendto(fd, data, host, port): sends one datagram to a
// numeric address; returns the number of bytes sent (Python 3.11). data must stay valid until the
// task is done.
CONCUR_EXPORT Task<std::size_t> sock_sendto(int fd, std::string_view data, const Endpoint& address);
CONCUR_EXPORT Task<std::size_t> sock_sendto(int fd, std::string_view data, std::string_view host,
                                            std::uint16_t port);

}  // namespace concur::aio
