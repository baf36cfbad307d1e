// The per-thread descriptor channel of concur/mp/serialize.hpp, and SpilledBytes: serialized
// bytes that move into a sealed memfd past a threshold (the process pool's large arguments and
// results).
#include "concur/mp/serialize.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "concur/mp/shared_memory.hpp"  // mp::OSError

namespace concur::mp::detail {

FdSink*& current_fd_sink() noexcept {
  thread_local FdSink* sink = nullptr;
  return sink;
}

FdSource*& current_fd_source() noexcept {
  thread_local FdSource* source = nullptr;
  return source;
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

Descriptors& Descriptors::operator=(Descriptors&& other) noexcept {
  if (this != &other) {
    clear();
    fds_ = std::exchange(other.fds_, {});
  }
  return *this;
}

Descriptors Descriptors::copy_of(const std::vector<int>& fds) {
  Descriptors out;
  out.fds_.reserve(fds.size());
  for (const int fd : fds) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw OSError(errno, "dup of a handle's descriptor");  // `out` closes the rest
    out.fds_.push_back(copy);
  }
  return out;
}

void Descriptors::clear() noexcept {
  for (const int fd : fds_) ::close(fd);
  fds_.clear();
}

void throw_pickling(const char* what_happened) { throw PicklingError(what_happened); }
void throw_unpickling(const char* what_happened) { throw UnpicklingError(what_happened); }

// ---- SpilledBytes

namespace {

// kFileBuffer: SpillOutBuf's write buffer and SpillInBuf's read buffer, once in a file; a write
// or read at least this long goes straight to or from the file.
constexpr std::size_t kFileBuffer = 64 * 1024;

// The files SpillOutBuf made that are still open in this process, and how many it may make: a
// quarter of the soft RLIMIT_NOFILE (read once), between 16 and 1024. Past it, bytes stay in
// memory: a long backlog of large tasks must not take the descriptors the program needs.
std::atomic<long> g_spill_files{0};

long spill_file_budget() noexcept {
  static const long budget = [] {
    rlimit r{};
    long soft = 1024;
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
      soft = static_cast<long>(std::min<rlim_t>(r.rlim_cur, 1L << 20));
    return std::clamp(soft / 4, 16L, 1024L);
  }();
  return budget;
}

}  // namespace

SpilledBytes::SpilledBytes(SpilledBytes&& other) noexcept
    : bytes_(std::move(other.bytes_)),
      fd_(std::exchange(other.fd_, -1)),
      file_size_(std::exchange(other.file_size_, 0)),
      budgeted_(std::exchange(other.budgeted_, false)) {
  other.bytes_.clear();
}

SpilledBytes& SpilledBytes::operator=(SpilledBytes&& other) noexcept {
  if (this != &other) {
    clear();
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
    fd_ = std::exchange(other.fd_, -1);
    file_size_ = std::exchange(other.file_size_, 0);
    budgeted_ = std::exchange(other.budgeted_, false);
  }
  return *this;
}

SpilledBytes::~SpilledBytes() { clear(); }

void SpilledBytes::clear() noexcept {
  bytes_.clear();
  if (fd_ >= 0) ::close(fd_);
  if (budgeted_) g_spill_files.fetch_sub(1, std::memory_order_relaxed);
  fd_ = -1;
  file_size_ = 0;
  budgeted_ = false;
}

void SpilledBytes::adopt_file(int fd, std::uint64_t size) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) < size) {
    ::close(fd);
    throw UnpicklingError("a file of serialized bytes is shorter than its sender said");
  }
  clear();
  fd_ = fd;
  file_size_ = static_cast<std::size_t>(size);
}

// ---- SpillOutBuf

bool SpillOutBuf::spill() {
  if (memory_only_) return false;
  if (g_spill_files.fetch_add(1, std::memory_order_relaxed) >= spill_file_budget()) {
    g_spill_files.fetch_sub(1, std::memory_order_relaxed);
    memory_only_ = true;
    return false;
  }
  const int fd = ::memfd_create(name_, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {  // EMFILE, ENFILE, ENOMEM, no memfd: the bytes stay in memory
    g_spill_files.fetch_sub(1, std::memory_order_relaxed);
    memory_only_ = true;
    return false;
  }
  std::string so_far = std::move(out_.bytes_);
  out_.bytes_.clear();
  out_.fd_ = fd;
  out_.file_size_ = 0;
  out_.budgeted_ = true;
  staged_.reserve(kFileBuffer);
  write_file(so_far.data(), so_far.size());
  return true;
}

void SpillOutBuf::write_file(const char* s, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(out_.fd_, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw OSError(errno, "memfd");
    }
    s += w;
    n -= static_cast<std::size_t>(w);
    out_.file_size_ += static_cast<std::size_t>(w);
  }
}

void SpillOutBuf::flush_staged() {
  write_file(staged_.data(), staged_.size());
  staged_.clear();
}

SpillOutBuf::int_type SpillOutBuf::overflow(int_type ch) {
  if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
  const char c = traits_type::to_char_type(ch);
  (void)xsputn(&c, 1);
  return ch;
}

std::streamsize SpillOutBuf::xsputn(const char* s, std::streamsize count) {
  const auto n = static_cast<std::size_t>(count);
  if (!out_.in_file()) {
    if (out_.bytes_.size() + n <= threshold_ || !spill()) {
      out_.bytes_.append(s, n);
      return count;
    }
  }
  if (staged_.size() + n <= kFileBuffer) {
    staged_.append(s, n);
    return count;
  }
  flush_staged();
  if (n >= kFileBuffer)
    write_file(s, n);  // straight to the file: no copy
  else
    staged_.append(s, n);
  return count;
}

void SpillOutBuf::close() {
  if (!out_.in_file()) return;
  flush_staged();
  staged_ = std::string();
  // Sealed, the file can be sent again and again (a task re-dispatched after its worker died):
  // no reader can change or truncate it.
  if (::fcntl(out_.fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
    throw OSError(errno, "memfd");
}

// ---- SpillInBuf

SpillInBuf::SpillInBuf(const SpilledBytes& in) {
  if (!in.in_file()) {
    char* p = const_cast<char*>(in.bytes().data());  // never written: a get area only
    setg(p, p, p + in.bytes().size());
    return;
  }
  fd_ = in.fd();
  size_ = in.size();
}

SpillInBuf::SpillInBuf(SpilledBytes& in, bool release_when_read)
    : SpillInBuf(static_cast<const SpilledBytes&>(in)) {
  if (release_when_read && in.in_file()) release_ = &in;
}

std::size_t SpillInBuf::read_file(char* out, std::size_t n) {
  n = std::min(n, size_ - pos_);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd_, out + done, n - done, static_cast<off_t>(pos_ + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // an error or a short file: the input ends here
    done += static_cast<std::size_t>(r);
  }
  pos_ += done;
  if (pos_ == size_ && release_ != nullptr) {
    release_->clear();  // every byte is here: the file may go (n is 0 from now on)
    release_ = nullptr;
  }
  return done;
}

SpillInBuf::int_type SpillInBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (fd_ < 0) return traits_type::eof();
  if (!buf_) buf_ = std::make_unique_for_overwrite<char[]>(kFileBuffer);
  const std::size_t got = read_file(buf_.get(), kFileBuffer);
  if (got == 0) return traits_type::eof();
  setg(buf_.get(), buf_.get(), buf_.get() + got);
  return traits_type::to_int_type(*gptr());
}

std::streamsize SpillInBuf::xsgetn(char* s, std::streamsize count) {
  if (fd_ < 0) return std::streambuf::xsgetn(s, count);  // in memory: the get area is everything
  auto n = static_cast<std::size_t>(count);
  std::size_t done = 0;
  const auto buffered = static_cast<std::size_t>(egptr() - gptr());
  if (buffered > 0) {
    const std::size_t take = std::min(buffered, n);
    std::memcpy(s, gptr(), take);
    gbump(static_cast<int>(take));
    done = take;
  }
  while (done < n) {
    if (n - done >= kFileBuffer) {  // straight into the destination: no copy
      const std::size_t got = read_file(s + done, n - done);
      done += got;
      break;
    }
    if (traits_type::eq_int_type(underflow(), traits_type::eof())) break;
    const std::size_t take = std::min(static_cast<std::size_t>(egptr() - gptr()), n - done);
    std::memcpy(s + done, gptr(), take);
    gbump(static_cast<int>(take));
    done += take;
  }
  return static_cast<std::streamsize>(done);
}

}  // namespace concur::mp::detail
