// errno → concur's OSError family (see os_error.hpp).
#include "os_error.hpp"

#include <cerrno>
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

}  // namespace concur::aio::detail
