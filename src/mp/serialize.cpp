// The per-thread descriptor channel of concur/mp/serialize.hpp.
#include "concur/mp/serialize.hpp"

#include <unistd.h>

#include <string>

namespace concur::mp::detail {

FdSink*& current_fd_sink() noexcept {
  thread_local FdSink* sink = nullptr;
  return sink;
}

FdSource*& current_fd_source() noexcept {
  thread_local FdSource* source = nullptr;
  return source;
}

OwnedFds& OwnedFds::operator=(OwnedFds&& other) noexcept {
  if (this != &other) {
    for (const int fd : fds_) ::close(fd);
    fds_ = std::move(other.fds_);
    other.fds_.clear();
  }
  return *this;
}

OwnedFds::~OwnedFds() {
  for (const int fd : fds_) ::close(fd);
}

FdSource::~FdSource() {
  for (const int fd : fds_)
    if (fd >= 0) ::close(fd);
}

int FdSource::take(std::uint32_t index) {
  if (index >= fds_.size())
    throw UnpicklingError("the bytes refer to descriptor #" + std::to_string(index) + " but only " +
                          std::to_string(fds_.size()) + " arrived");
  const int fd = fds_[index];
  if (fd < 0) throw UnpicklingError("descriptor #" + std::to_string(index) + " was loaded twice");
  fds_[index] = -1;
  return fd;
}

void throw_pickling(const char* what_happened) { throw PicklingError(what_happened); }
void throw_unpickling(const char* what_happened) { throw UnpicklingError(what_happened); }

}  // namespace concur::mp::detail
