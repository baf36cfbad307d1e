// src/aio/os_error.hpp (internal) — errno values as concur's OSError family, the one mapping that
// the streams (streams.cpp) and the sock_* operations (sockets.cpp) share.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <exception>
#include <string>

namespace concur::aio::detail {

// errno_text(e): strerror's description of errno e ("Connection reset by peer").
std::string errno_text(int e);

// os_error(e, msg): the exception Python raises for errno e: ConnectionRefusedError,
// ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError (ETIMEDOUT), else
// OSError; what() is "ConnectionResetError: [Errno 104] <msg>".
std::exception_ptr os_error(int e, const std::string& msg);

// py_address(ep): Python's address tuple, "('127.0.0.1', 80)" or "('::1', 80, 0, 0)".
std::string py_address(const boost::asio::ip::tcp::endpoint& ep);

}  // namespace concur::aio::detail
