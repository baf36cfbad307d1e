// tests/support/loopback.hpp — ports on 127.0.0.1 for the servers tests start (nginx, redis).
//
// free_loopback_port(): a port the kernel hands out for 127.0.0.1 (bound, then released: another
// process may take it before the server binds it, so servers retry with a new one when the bind
// fails). loopback_accepts(port): a TCP connect to 127.0.0.1:port succeeds.
// PortReservation: a 127.0.0.1 port held for the object's lifetime, for servers that must come
// back on the same port after a restart (a broker crash). It lies below the kernel's ephemeral
// range (/proc/sys/net/ipv4/ip_local_port_range), so neither bind(0) nor an outgoing connection
// is ever handed it, and an flock on /tmp/concur-ports/<port> keeps every other reservation, in
// any process, off it — while its server is down too. A port something else listens on is
// skipped. The lock files stay (deleting one would race a process locking it).
// Header-only; loopback only.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "concur/errors.hpp"

namespace concur::testing {

// loopback_address(port): 127.0.0.1:port.
inline sockaddr_in loopback_address(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

inline std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw RuntimeError("free_loopback_port: socket() failed");
  sockaddr_in addr = loopback_address(0);
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw RuntimeError("free_loopback_port: no free port on 127.0.0.1");
  return ntohs(addr.sin_port);
}

inline bool loopback_bindable(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as servers bind
  const sockaddr_in addr = loopback_address(port);
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

class PortReservation {
 public:
  static constexpr std::uint16_t kLowest = 10000;
  static constexpr const char* kLockDir = "/tmp/concur-ports";

  PortReservation() {
    std::uint16_t top = 32768;  // the kernel's default ephemeral range starts there
    if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) {
      unsigned low = 0;
      if (range >> low && low > kLowest && low <= 65535) top = static_cast<std::uint16_t>(low);
    }
    if (top <= kLowest)
      throw RuntimeError("PortReservation: the ephemeral port range leaves no port below it");
    (void)::mkdir(kLockDir, 0777);
    (void)::chmod(kLockDir, 01777);  // shared by every user's tests, like /tmp
    const unsigned span = top - kLowest;
    std::random_device seed;
    const unsigned first = std::uniform_int_distribution<unsigned>(0, span - 1)(seed);
    for (unsigned i = 0; i < span; ++i) {
      const auto port = static_cast<std::uint16_t>(kLowest + (first + i) % span);
      char path[64];  // (a char buffer: g++ 12 -O1 warns falsely on string concatenation)
      std::snprintf(path, sizeof path, "%s/%u", kLockDir, static_cast<unsigned>(port));
      const int fd = ::open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && loopback_bindable(port)) {
        fd_ = fd;
        port_ = port;
        return;
      }
      ::close(fd);
    }
    throw RuntimeError("PortReservation: every port below the ephemeral range is taken");
  }
  PortReservation(const PortReservation&) = delete;
  PortReservation& operator=(const PortReservation&) = delete;
  ~PortReservation() { ::close(fd_); }  // closing drops the lock

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

inline bool loopback_accepts(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const sockaddr_in addr = loopback_address(port);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace concur::testing
