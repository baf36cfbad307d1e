// src/mp/shared_memory.cpp — SharedMemory on shm_open/ftruncate/mmap, the OSError family, and the
// memfd-backed SharedRegion behind Value, Array and the mp synchronization primitives.
#include "concur/mp/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <utility>

namespace concur::mp {

namespace {

// os_error_text is Python's OSError text; strerrordesc_np is the thread-safe strerror.
std::string os_error_text(const char* type_name, int errno_code, const std::string& filename) {
  const char* desc = ::strerrordesc_np(errno_code);
  std::string text = std::string(type_name) + ": [Errno " + std::to_string(errno_code) + "] " +
                     (desc != nullptr ? desc : "Unknown error");
  if (!filename.empty()) text += ": '" + filename + "'";
  return text;
}

[[noreturn]] void throw_os_error(int errno_code, const std::string& filename) {
  if (errno_code == EEXIST) throw FileExistsError(filename);
  if (errno_code == ENOENT) throw FileNotFoundError(filename);
  throw OSError(errno_code, filename);
}

std::string with_slash(std::string name) {
  if (name.empty() || name.front() != '/') name.insert(name.begin(), '/');
  return name;
}

// auto_name() is "/concur_<pid>_<counter>_<random>": unique within the process by the counter,
// across processes by the pid, and across pid reuse (a stale block from a crashed run) by the
// random part; create() still retries on EEXIST.
std::string auto_name() {
  static std::atomic<unsigned> counter{0};
  thread_local std::mt19937 rng{std::random_device{}()};
  const unsigned n = counter.fetch_add(1, std::memory_order_relaxed);
  return "/concur_" + std::to_string(::getpid()) + "_" + std::to_string(n) + "_" +
         std::to_string(rng() & 0xffffffU);
}

// map_fd(fd, size, name) maps the whole object read-write and closes fd (the mapping keeps the
// object alive); throws OSError.
std::byte* map_fd(int fd, std::size_t size, const std::string& name) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw_os_error(err, name);
  return static_cast<std::byte*>(p);
}

}  // namespace

OSError::OSError(int errno_code, const std::string& filename)
    : OSError("OSError", errno_code, filename) {}
OSError::OSError(const char* type_name, int errno_code, const std::string& filename)
    : Error(os_error_text(type_name, errno_code, filename)),
      errno_(errno_code),
      filename_(filename) {}
FileExistsError::FileExistsError(const std::string& filename)
    : OSError("FileExistsError", EEXIST, filename) {}
FileNotFoundError::FileNotFoundError(const std::string& filename)
    : OSError("FileNotFoundError", ENOENT, filename) {}

SharedMemory SharedMemory::create(std::size_t size, std::string name) {
  if (size == 0) throw ValueError("'size' must be a positive number different from zero");
  const bool automatic = name.empty();
  int fd = -1;
  for (int attempt = 0;; ++attempt) {
    name = automatic ? auto_name() : with_slash(std::move(name));
    fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) break;
    const int err = errno;
    if (err == EINTR || (automatic && err == EEXIST && attempt < 100)) continue;
    throw_os_error(err, name);
  }
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int err = errno;
    ::close(fd);
    ::shm_unlink(name.c_str());
    throw_os_error(err, name);
  }
  std::byte* data = nullptr;
  try {
    data = map_fd(fd, size, name);
  } catch (...) {
    ::shm_unlink(name.c_str());
    throw;
  }
  return {std::move(name), data, size};
}

SharedMemory SharedMemory::attach(std::string name) {
  name = with_slash(std::move(name));
  int fd = -1;
  do {
    fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_os_error(errno, name);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_os_error(err, name);
  }
  if (st.st_size <= 0) {
    ::close(fd);
    throw ValueError("cannot attach to the empty shared memory block '" + name + "'");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  std::byte* data = map_fd(fd, size, name);
  return {std::move(name), data, size};
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : name_(std::move(other.name_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    close();
    name_ = std::move(other.name_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedMemory::~SharedMemory() { close(); }

void SharedMemory::close() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

void SharedMemory::unlink() {
  if (::shm_unlink(name_.c_str()) != 0) throw_os_error(errno, name_);
}

namespace detail {

SharedRegion::SharedRegion(std::size_t bytes) {
  const int fd = ::memfd_create("concur_mp", MFD_CLOEXEC);
  if (fd < 0) throw_os_error(errno, "");
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    ::close(fd);
    throw_os_error(err, "");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    throw_os_error(err, "");
  }
  data_ = p;
  size_ = bytes;
  fd_ = fd;
}

SharedRegion SharedRegion::adopt(int fd, std::size_t bytes) {
  SharedRegion region;
  region.fd_ = fd;  // owned from here on: closed by region's destructor on any failure below
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_os_error(errno, "");
  if (bytes == 0 || st.st_size < 0 || static_cast<std::size_t>(st.st_size) != bytes) {
    throw UnpicklingError("a shared region of " + std::to_string(bytes) +
                          " bytes arrived as a descriptor of " + std::to_string(st.st_size) +
                          " bytes");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_os_error(errno, "");
  region.data_ = p;
  region.size_ = bytes;
  return region;
}

SharedRegion::SharedRegion(SharedRegion&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      fd_(std::exchange(other.fd_, -1)) {}

SharedRegion& SharedRegion::operator=(SharedRegion&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

SharedRegion::~SharedRegion() { reset(); }

void SharedRegion::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

}  // namespace detail

}  // namespace concur::mp
