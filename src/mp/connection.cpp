// src/mp/connection.cpp — Connection's framing (SCM_RIGHTS for descriptors, a memfd for large
// payloads) over pipes plus a side socket (Pipe()) or over one AF_UNIX stream socket
// (Connection(fd)), Pipe(), wait(), and the connection errors.
//
// A frame is a 16-byte FrameHeader then, for a small message, its payload. The receiver reads
// greedily into a per-connection buffer (one read usually brings a whole small frame, sometimes
// several); a parsed header takes its count of descriptors from the front of rfds_.
// - Socket kind: the header's first byte carries the frame's descriptors (one sendmsg with
//   SCM_RIGHTS), so they always arrive no later than the header is read; fill() keeps every
//   received descriptor in arrival order.
// - Pipes kind: frames are written to a pipe (writev: the cheapest round trip Linux offers, about
//   half a unix socket's). A frame with descriptors is preceded, under the same send_mu_, by a
//   1-byte sendmsg with SCM_RIGHTS on the side socket; the receiver, on parsing a header that
//   counts descriptors, recvmsg()s that one side message (already queued: it was sent before the
//   frame's first byte). A unix stream socket never merges a descriptor-carrying message with the
//   next one in one recvmsg, so each side message yields exactly its frame's descriptors.
// Frames of one sender never interleave (send_mu_), so arrival order is frame order.
#include "concur/mp/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace concur::mp {

namespace {

// FrameHeader: the payload's length, the number of descriptors the frame carries (a large
// message's memfd is the last of them), and flags, whose high half is kMagic so that a
// desynchronized stream is detected rather than misread.
struct FrameHeader {
  std::uint64_t length;
  std::uint32_t fds;
  std::uint32_t flags;
};
static_assert(sizeof(FrameHeader) == 16);
constexpr std::size_t kHeaderSize = sizeof(FrameHeader);
constexpr std::uint32_t kMagic = 0x434e0000U;  // "CN"
constexpr std::uint32_t kMagicMask = 0xffff0000U;
constexpr std::uint32_t kFlagMemfd = 1U;
// kRecvCapacity: the receive buffer holds any small frame whole.
constexpr std::size_t kRecvCapacity = kHeaderSize + kLargeMessageThreshold;
// kControlSize: room for the most descriptors one message may carry.
constexpr std::size_t kControlSize = CMSG_SPACE(sizeof(int) * kMaxDescriptors);

// UniqueFd closes its descriptor on scope exit.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void throw_closed() { throw detail::PlainOSError(EBADF, "handle is closed"); }

// throw_io_error(err) is the Python exception for a failed send/recv.
[[noreturn]] void throw_io_error(int err) {
  if (err == EPIPE) throw BrokenPipeError();
  if (err == ECONNRESET) throw ConnectionResetError();
  throw OSError(err, "");
}

// write_memfd(bytes) returns a new close-on-exec memfd holding `bytes`.
int write_memfd(std::string_view bytes) {
  const int fd = ::memfd_create("concur-connection", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw OSError(errno, "memfd_create");
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      ::close(fd);
      throw OSError(err, "memfd");
    }
    done += static_cast<std::size_t>(n);
  }
  // Sealed, the receiver can map it without fearing a later truncation (SIGBUS) or change.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    const int err = errno;
    ::close(fd);
    throw OSError(err, "memfd");
  }
  return fd;
}

// read_memfd(fd, length, out) reads the first `length` bytes of memfd `fd` into `out` (pread:
// the file offset, shared with the sender's description, is never used).
// check_memfd_size(fd, length) throws unless memfd `fd` holds at least `length` bytes.
void check_memfd_size(int fd, std::size_t length) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw OSError(errno, "memfd");
  if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) < length)
    throw detail::PlainOSError(EPROTO, "a large message's memfd is shorter than its header says");
}

void read_memfd(int fd, std::size_t length, char* out) {
  check_memfd_size(fd, length);
  std::size_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, out + done, length - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw OSError(errno, "memfd");
    }
    if (n == 0) throw detail::PlainOSError(EPROTO, "a large message's memfd ended early");
    done += static_cast<std::size_t>(n);
  }
}

// sigpipe_ignored() is whether SIGPIPE's disposition is SIG_IGN now.
bool sigpipe_ignored() noexcept {
  struct sigaction sa {};
  if (::sigaction(SIGPIPE, nullptr, &sa) != 0) return false;
  return (sa.sa_flags & SA_SIGINFO) == 0 && sa.sa_handler == SIG_IGN;
}

// SigpipeBlock keeps a pipe write from raising SIGPIPE in the process: unless SIGPIPE is known to
// be ignored, it blocks SIGPIPE in the calling thread for its lifetime (two rt_sigprocmask calls;
// none when the thread had it blocked already). After a write failed with EPIPE,
// consume_raised() takes the SIGPIPE that write left pending, unless one was pending before
// (signals do not queue: that one stands for both and is left alone).
class SigpipeBlock {
 public:
  explicit SigpipeBlock(bool ignored) noexcept : active_(!ignored) {
    if (!active_) return;
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t old;
    ::pthread_sigmask(SIG_BLOCK, &set_, &old);
    was_blocked_ = sigismember(&old, SIGPIPE) == 1;
    // A SIGPIPE can be pending for this thread only if it was blocked already.
    if (was_blocked_) {
      sigset_t pending;
      sigpending(&pending);
      was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;
  ~SigpipeBlock() {
    if (active_ && !was_blocked_) ::pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  }
  void consume_raised() noexcept {
    if (!active_ || was_pending_) return;
    const timespec zero{};
    while (::sigtimedwait(&set_, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }

 private:
  bool active_;
  bool was_blocked_ = false;
  bool was_pending_ = false;
  sigset_t set_{};
};

// advance(iov, count, first, n) accounts for n bytes written from iov[first..count): moves
// `first` past the iovecs done and trims the one partly written.
void advance(iovec* iov, std::size_t count, std::size_t& first, std::size_t n) noexcept {
  while (first < count && n >= iov[first].iov_len) {
    n -= iov[first].iov_len;
    ++first;
  }
  if (first < count) {
    iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + n;
    iov[first].iov_len -= n;
  }
}

// sendmsg_all(fd, iov, count, control, control_len) sends iov[0..count) on socket fd, the
// control data (descriptors) with the first byte; throws the Python error on failure.
void sendmsg_all(int fd, iovec* iov, std::size_t count, char* control, std::size_t control_len) {
  std::size_t first = 0;  // first iovec with bytes left
  while (first < count) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = count - first;
    if (control_len > 0) {
      msg.msg_control = control;
      msg.msg_controllen = control_len;
    }
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw_io_error(err);
    }
    control_len = 0;  // the descriptors went with the first byte
    advance(iov, count, first, static_cast<std::size_t>(n));
  }
}

// writev_all(fd, iov, count, sigpipe_ignored) writes iov[0..count) to pipe fd without letting
// SIGPIPE reach the process; throws the Python error on failure (BrokenPipeError for EPIPE).
void writev_all(int fd, iovec* iov, std::size_t count, bool sigpipe_ignored) {
  SigpipeBlock block(sigpipe_ignored);
  std::size_t first = 0;
  while (first < count) {
    const ssize_t n = ::writev(fd, iov + first, static_cast<int>(count - first));
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EPIPE) block.consume_raised();
      throw_io_error(err);
    }
    advance(iov, count, first, static_cast<std::size_t>(n));
  }
}

// relative_timespec(deadline) is the time left as a relative timespec for ppoll.
timespec relative_timespec(concur::detail::Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.remaining());
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
  return ts;
}

// ppoll_until(fds, deadline) polls until an event or the deadline; returns ppoll's count.
int ppoll_until(std::span<pollfd> fds, concur::detail::Deadline deadline) {
  for (;;) {
    int r = 0;
    if (deadline.is_infinite()) {
      r = ::ppoll(fds.data(), fds.size(), nullptr, nullptr);
    } else {
      const timespec ts = relative_timespec(deadline);
      r = ::ppoll(fds.data(), fds.size(), &ts, nullptr);
    }
    if (r >= 0) return r;
    if (errno != EINTR) throw OSError(errno, "");
  }
}

}  // namespace

// ---- Errors

BrokenPipeError::BrokenPipeError() : ConnectionError("BrokenPipeError", EPIPE) {}
ConnectionResetError::ConnectionResetError()
    : ConnectionError("ConnectionResetError", ECONNRESET) {}
BufferTooShort::BufferTooShort(std::string message)
    : Error("BufferTooShort: the message (" + std::to_string(message.size()) +
            " bytes) is longer than the buffer"),
      message_(std::move(message)) {}

detail::PlainOSError::PlainOSError(int errno_code, const std::string& text)
    : OSError(errno_code, ""), text_("OSError: " + text) {}

// ---- Connection: life cycle

Connection::LoadedFds::~LoadedFds() {
  for (const int fd : {read, write, channel})
    if (fd >= 0) ::close(fd);
}

Connection::Connection(int fd, bool readable, bool writable) {
  if (fd < 0) throw ValueError("invalid handle");
  if (!readable && !writable)
    throw ValueError("at least one of `readable` and `writable` must be True");
  LoadedFds fds;
  fds.channel = fd;
  adopt(Kind::socket, fds, readable, writable);
}

Connection::Connection(Connection&& other) noexcept
    : read_fd_(std::exchange(other.read_fd_, -1)),
      write_fd_(std::exchange(other.write_fd_, -1)),
      fd_channel_(std::exchange(other.fd_channel_, -1)),
      kind_(other.kind_),
      sigpipe_ignored_(other.sigpipe_ignored_),
      inline_limit_(other.inline_limit_),
      exact_reads_(other.exact_reads_),
      readable_(other.readable_.exchange(false)),
      writable_(other.writable_.exchange(false)),
      rbuf_(std::move(other.rbuf_)),
      rpos_(std::exchange(other.rpos_, 0)),
      rend_(std::exchange(other.rend_, 0)),
      rfds_(std::move(other.rfds_)),
      buffered_(other.buffered_.exchange(0)) {
  other.rfds_.clear();
}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    close();
    read_fd_ = std::exchange(other.read_fd_, -1);
    write_fd_ = std::exchange(other.write_fd_, -1);
    fd_channel_ = std::exchange(other.fd_channel_, -1);
    kind_ = other.kind_;
    sigpipe_ignored_ = other.sigpipe_ignored_;
    inline_limit_ = other.inline_limit_;
    exact_reads_ = other.exact_reads_;
    readable_.store(other.readable_.exchange(false));
    writable_.store(other.writable_.exchange(false));
    rbuf_ = std::move(other.rbuf_);
    rpos_ = std::exchange(other.rpos_, 0);
    rend_ = std::exchange(other.rend_, 0);
    rfds_ = std::move(other.rfds_);
    other.rfds_.clear();
    buffered_.store(other.buffered_.exchange(0));
  }
  return *this;
}

Connection::~Connection() { close(); }

void Connection::adopt(Kind kind, LoadedFds& fds, bool readable, bool writable) noexcept {
  kind_ = kind;
  inline_limit_ = kLargeMessageThreshold;
  fd_channel_ = std::exchange(fds.channel, -1);
  if (kind == Kind::socket) {
    read_fd_ = write_fd_ = fd_channel_;
    sigpipe_ignored_ = true;  // sendmsg(MSG_NOSIGNAL) never raises SIGPIPE
  } else {
    read_fd_ = std::exchange(fds.read, -1);
    write_fd_ = std::exchange(fds.write, -1);
    sigpipe_ignored_ = sigpipe_ignored();
    if (write_fd_ >= 0) {
      const int capacity = ::fcntl(write_fd_, F_GETPIPE_SZ);
      if (capacity > 0)
        inline_limit_ = std::min(kLargeMessageThreshold, static_cast<std::size_t>(capacity) / 4);
    }
  }
  readable_.store(readable && read_fd_ >= 0);
  writable_.store(writable && write_fd_ >= 0);
}

void Connection::close() noexcept {
  if (kind_ == Kind::pipes) {
    if (read_fd_ >= 0) ::close(read_fd_);
    if (write_fd_ >= 0) ::close(write_fd_);
  }
  if (fd_channel_ >= 0) ::close(fd_channel_);
  read_fd_ = write_fd_ = fd_channel_ = -1;
  for (const int fd : rfds_) ::close(fd);
  rfds_.clear();
  rbuf_.reset();
  rpos_ = rend_ = 0;
  buffered_.store(0);
}

int Connection::fileno() const {
  if (closed()) throw_closed();
  return read_fd_ >= 0 ? read_fd_ : write_fd_;
}

void Connection::check_writable() const {
  if (closed()) throw_closed();
  if (!writable()) throw detail::PlainOSError(EBADF, "connection is read-only");
}

void Connection::check_readable() const {
  if (closed()) throw_closed();
  if (!readable()) throw detail::PlainOSError(EBADF, "connection is write-only");
}

void Connection::save_check() const {
  if (has_buffered())
    throw PicklingError(
        "a Connection holding received data not yet consumed cannot be passed to another "
        "process (the data would be lost)");
}

// ---- Sending

void Connection::send_bytes(std::string_view buf, std::size_t offset,
                            std::optional<std::size_t> size) {
  check_writable();
  if (buf.size() < offset) throw ValueError("buffer length < offset");
  if (size.has_value() && *size > buf.size() - offset)
    throw ValueError("buffer length < offset + size");
  send_frame(buf.substr(offset, size.value_or(buf.size() - offset)), {});
}

void Connection::send_frame(std::string_view bytes, std::span<const int> fds) {
  const bool large = bytes.size() > inline_limit_;
  const std::size_t nfds = fds.size() + (large ? 1 : 0);
  if (nfds > kMaxDescriptors)
    throw PicklingError("a message can carry at most " + std::to_string(kMaxDescriptors) +
                        " descriptors (SCM_MAX_FD); this one has " + std::to_string(nfds));
  // The memfd is written before taking the lock: concurrent senders copy in parallel.
  const UniqueFd memfd(large ? write_memfd(bytes) : -1);

  FrameHeader header{bytes.size(), static_cast<std::uint32_t>(nfds),
                     kMagic | (large ? kFlagMemfd : 0U)};
  iovec iov[2] = {{&header, kHeaderSize},
                  {const_cast<char*>(bytes.data()), large ? 0 : bytes.size()}};
  alignas(cmsghdr) char control[kControlSize];
  std::size_t control_len = 0;
  if (nfds > 0) {
    control_len = CMSG_SPACE(sizeof(int) * nfds);
    std::memset(control, 0, control_len);
    msghdr probe{};
    probe.msg_control = control;
    probe.msg_controllen = control_len;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&probe);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    auto* out = reinterpret_cast<unsigned char*>(CMSG_DATA(cmsg));
    if (!fds.empty()) std::memcpy(out, fds.data(), sizeof(int) * fds.size());
    if (large) {
      const int m = memfd.get();
      std::memcpy(out + sizeof(int) * fds.size(), &m, sizeof(int));
    }
  }

  std::scoped_lock lock(send_mu_);
  if (kind_ == Kind::socket) {
    sendmsg_all(write_fd_, iov, 2, control, control_len);
    return;
  }
  if (control_len > 0) {
    // The descriptors go first, on the side socket, so that they are queued there before the
    // receiver can see the frame that counts them.
    char tag = 'D';
    iovec side{&tag, 1};
    sendmsg_all(fd_channel_, &side, 1, control, control_len);
  }
  writev_all(write_fd_, iov, 2, sigpipe_ignored_);
}

// ---- Receiving

void Connection::fill(std::size_t need) {
  if (!rbuf_) rbuf_ = std::make_unique_for_overwrite<char[]>(kRecvCapacity);
  while (rend_ - rpos_ < need) {
    if (rpos_ + need > kRecvCapacity) {
      std::memmove(rbuf_.get(), rbuf_.get() + rpos_, rend_ - rpos_);
      rend_ -= rpos_;
      rpos_ = 0;
    }
    // With exact reads, never take bytes beyond this message: they may be another process's.
    const std::size_t want = exact_reads_ ? need - (rend_ - rpos_) : kRecvCapacity - rend_;
    const std::ptrdiff_t n = kind_ == Kind::pipes
                                 ? ::read(read_fd_, rbuf_.get() + rend_, want)
                                 : recvmsg_rights(read_fd_, rbuf_.get() + rend_, want);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw_io_error(err);
    }
    if (n == 0) {
      if (rend_ == rpos_) throw EOFError();
      throw detail::PlainOSError(EPROTO, "got end of file during message");
    }
    rend_ += static_cast<std::size_t>(n);
    buffered_.store(rend_ - rpos_, std::memory_order_release);
  }
}

std::ptrdiff_t Connection::recvmsg_rights(int fd, char* buf, std::size_t len) {
  iovec iov{buf, len};
  alignas(cmsghdr) char control[kControlSize];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const auto* data = reinterpret_cast<const unsigned char*>(CMSG_DATA(c));
    for (std::size_t i = 0; i < count; ++i) {
      int received = -1;
      std::memcpy(&received, data + i * sizeof(int), sizeof(int));
      rfds_.push_back(received);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    // Descriptors were dropped (the process is out of descriptors): the frames can no longer
    // be matched with theirs.
    readable_.store(false);
    throw detail::PlainOSError(
        EMFILE, "descriptors sent with a message were lost (MSG_CTRUNC: too many open files?)");
  }
  return n;
}

void Connection::receive_descriptors() {
  for (;;) {
    char tag = 0;
    const std::ptrdiff_t n = recvmsg_rights(fd_channel_, &tag, 1);
    if (n > 0) return;
    if (n < 0 && errno == EINTR) continue;
    const int err = n < 0 ? errno : 0;
    readable_.store(false);
    if (err != 0) throw_io_error(err);
    throw detail::PlainOSError(EPROTO, "the descriptors of a message did not arrive");
  }
}

void Connection::bad_message_length() {
  // As Python: a duplex end stops reading (the rest of the message is still in the stream); a
  // read-only end is closed.
  if (writable())
    readable_.store(false);
  else
    close();
  throw detail::PlainOSError(EMSGSIZE, "bad message length");
}

Connection::Message Connection::recv_message(std::optional<std::size_t> maxlength) {
  std::scoped_lock lock(recv_mu_);
  if (closed()) throw_closed();
  fill(kHeaderSize);
  FrameHeader header{};
  std::memcpy(&header, rbuf_.get() + rpos_, kHeaderSize);
  const bool large = (header.flags & kFlagMemfd) != 0;
  if ((header.flags & kMagicMask) != kMagic || header.fds > kMaxDescriptors ||
      (large ? header.fds == 0 : header.length > kLargeMessageThreshold) ||
      (kind_ == Kind::socket && header.fds > rfds_.size())) {
    readable_.store(false);
    throw detail::PlainOSError(EPROTO, "malformed message header (the stream is out of step)");
  }
  if (maxlength.has_value() && header.length > *maxlength) bad_message_length();
  const auto length = static_cast<std::size_t>(header.length);

  Message m;
  if (!large) fill(kHeaderSize + length);
  if (kind_ == Kind::pipes && header.fds > 0) {
    receive_descriptors();
    if (rfds_.size() != header.fds) {
      readable_.store(false);
      throw detail::PlainOSError(EPROTO, "a message's descriptors are out of step");
    }
  }
  // From here on nothing can fail before the frame is consumed.
  m.fds.assign(rfds_.begin(), rfds_.begin() + header.fds);
  rfds_.erase(rfds_.begin(), rfds_.begin() + header.fds);
  if (large) {
    m.memfd = m.fds.back();
    m.fds.pop_back();
    m.length = length;
  } else {
    m.bytes.assign(rbuf_.get() + rpos_ + kHeaderSize, length);
  }
  rpos_ += kHeaderSize + (large ? 0 : length);
  if (rpos_ == rend_) rpos_ = rend_ = 0;
  buffered_.store(rend_ - rpos_, std::memory_order_release);
  return m;
}

Connection::Message::~Message() {
  for (const int fd : fds) ::close(fd);
  if (memfd >= 0) ::close(memfd);
}

Connection::MappedPayload::MappedPayload(int memfd, std::size_t length) : length_(length) {
  check_memfd_size(memfd, length);
  void* p = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_POPULATE, memfd, 0);
  if (p == MAP_FAILED) throw OSError(errno, "memfd");
  data_ = static_cast<const char*>(p);
}

Connection::MappedPayload::~MappedPayload() { ::munmap(const_cast<char*>(data_), length_); }

std::string Connection::recv_bytes(std::optional<std::size_t> maxlength) {
  check_readable();
  Message m = recv_message(maxlength);
  if (m.memfd < 0) return std::move(m.bytes);
  std::string out(m.length, '\0');
  read_memfd(m.memfd, m.length, out.data());
  return out;
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buf, std::size_t offset) {
  check_readable();
  if (offset > buf.size()) throw ValueError("offset too large");
  Message m = recv_message(std::nullopt);
  const std::size_t size = m.size();
  if (size > buf.size() - offset) {
    if (m.memfd < 0) throw BufferTooShort(std::move(m.bytes));
    std::string whole(m.length, '\0');
    read_memfd(m.memfd, m.length, whole.data());
    throw BufferTooShort(std::move(whole));
  }
  char* out = reinterpret_cast<char*>(buf.data() + offset);
  if (m.memfd >= 0)
    read_memfd(m.memfd, m.length, out);  // straight into the caller's buffer
  else if (size > 0)
    std::memcpy(out, m.bytes.data(), size);
  return size;
}

// ---- Waiting

bool Connection::poll() {
  return poll_until(concur::detail::Deadline::after(std::chrono::nanoseconds(0)));
}

bool Connection::poll_until(concur::detail::Deadline deadline) {
  check_readable();
  if (has_buffered()) return true;
  pollfd pfd{read_fd_, POLLIN, 0};
  return ppoll_until({&pfd, 1}, deadline) > 0;
}

namespace detail {

std::vector<Connection*> wait_until(std::span<Connection* const> conns,
                                    concur::detail::Deadline deadline) {
  if (conns.empty()) {
    if (deadline.is_infinite()) throw ValueError("wait() on no connections would block forever");
    std::this_thread::sleep_until(deadline.when());
    return {};
  }
  std::vector<pollfd> pfds;
  pfds.reserve(conns.size());
  bool buffered = false;
  for (Connection* c : conns) {
    c->check_readable();
    buffered = buffered || c->has_buffered();
    pfds.push_back({c->read_fd_, POLLIN, 0});
  }
  ppoll_until(pfds,
              buffered ? concur::detail::Deadline::after(std::chrono::nanoseconds(0)) : deadline);
  std::vector<Connection*> ready;
  for (std::size_t i = 0; i < conns.size(); ++i)
    if (pfds[i].revents != 0 || conns[i]->has_buffered()) ready.push_back(conns[i]);
  return ready;
}

}  // namespace detail

// ---- Pipe

namespace detail {

std::pair<Connection, Connection> pipe_ends(bool duplex) {
  // Every descriptor is owned by a LoadedFds from the start, so a failure leaks none.
  Connection::LoadedFds first;
  Connection::LoadedFds second;
  int sv[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw OSError(errno, "");
  first.channel = sv[0];
  second.channel = sv[1];
  int down[2] = {-1, -1};  // first -> second (the only pipe of Pipe(false): second -> first)
  if (::pipe2(down, O_CLOEXEC) != 0) throw OSError(errno, "");
  if (!duplex) {
    // The first end only receives, the second only sends.
    first.read = down[0];
    second.write = down[1];
  } else {
    second.read = down[0];
    first.write = down[1];
    int up[2] = {-1, -1};  // second -> first
    if (::pipe2(up, O_CLOEXEC) != 0) throw OSError(errno, "");
    first.read = up[0];
    second.write = up[1];
  }
  std::pair<Connection, Connection> ends;
  ends.first.adopt(Connection::Kind::pipes, first, true, duplex);
  ends.second.adopt(Connection::Kind::pipes, second, duplex, true);
  return ends;
}

}  // namespace detail

std::pair<Connection, Connection> Pipe(bool duplex) { return detail::pipe_ends(duplex); }

}  // namespace concur::mp
