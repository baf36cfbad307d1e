// src/aio/sendfile.hpp (internal) — what aio::sock_sendfile (sockets.cpp) and
// StreamWriter::sendfile (streams.cpp) share: sendfile(2) without SIGPIPE, the file-position
// promise, which errnos are the connection's, the chunk sizes.
#pragma once

#include <pthread.h>
#include <sys/sendfile.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <vector>

#include "concur/aio/loop.hpp"
#include "concur/errors.hpp"
#include "concur/future.hpp"
#include "os_error.hpp"

namespace concur::aio::detail {

// kSendfileMax: the most one sendfile(2) call sends on Linux.
constexpr std::size_t kSendfileMax = 0x7ffff000;
// kFallbackBlock: sock_sendfile's fallback reads the file this much at a time (asyncio's
// SENDFILE_FALLBACK_READBUFFER_SIZE).
constexpr std::size_t kFallbackBlock = 256 * 1024;

// FilePosition: sock_sendfile's (and StreamWriter::sendfile's) promise about the file position:
// once bytes were sent, it is left at offset + sent however the operation ends (returned, raised,
// cancelled).
struct FilePosition {
  FilePosition(int fd, std::int64_t start, bool can_seek = true) noexcept
      : file_fd(fd), offset(start), seekable(can_seek) {}
  int file_fd;
  std::int64_t offset;
  bool seekable;
  std::size_t sent = 0;
  FilePosition(const FilePosition&) = delete;
  FilePosition& operator=(const FilePosition&) = delete;
  ~FilePosition() {
    if (sent > 0 && seekable) {
      (void)::lseek(file_fd, static_cast<off_t>(offset + static_cast<std::int64_t>(sent)),
                    SEEK_SET);
    }
  }
};

// read_block(loop, buf, file_fd, want, at, seekable): the fallback's next read, on the loop's
// default executor: up to `want` bytes of the file at `at` (pread; for a pipe, read from its
// position) into *buf, which the read keeps alive (a cancelled caller may leave it running).
// The future's value is the count, or -errno.
inline concur::Future<ssize_t> read_block(Loop& loop, std::shared_ptr<std::vector<char>> buf,
                                          int file_fd, std::size_t want, std::int64_t at,
                                          bool seekable) {
  return loop.run_in_executor([buf = std::move(buf), file_fd, want, at, seekable]() -> ssize_t {
    ssize_t r = 0;
    do {
      r = seekable ? ::pread(file_fd, buf->data(), want, static_cast<off_t>(at))
                   : ::read(file_fd, buf->data(), want);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
  });
}

// connection_errno(e): a sendfile failure that is the connection's, not sendfile's.
inline bool connection_errno(int e) {
  return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ESHUTDOWN || e == ECONNABORTED;
}

[[noreturn]] inline void raise_send_error(int e) {
  if (e == ENOTCONN) throw ConnectionError(ENOTCONN, "socket is not connected");
  std::rethrow_exception(os_error(e, errno_text(e)));
}

// sendfile_no_sigpipe(fd, file_fd, off, n): sendfile(2), which has no MSG_NOSIGNAL: SIGPIPE is
// blocked in this thread for the call, and one the call raised (EPIPE) is consumed before
// unblocking (unless one was pending already), so a closed peer is a BrokenPipeError, never a
// signal.
inline ssize_t sendfile_no_sigpipe(int fd, int file_fd, off_t* off, std::size_t n) {
  sigset_t pipe_set;
  sigset_t old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  const ssize_t r = ::sendfile(fd, file_fd, off, n);
  const int err = errno;
  if (r < 0 && err == EPIPE && !was_pending) {
    const timespec zero{};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return r;
}

}  // namespace concur::aio::detail
