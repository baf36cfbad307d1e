// src/aio/fd_pin.hpp (internal) — pinned fd watchers, for callers outside src/aio that watch one
// socket many times over with Loop::add_reader / add_writer (crawl::HttpClient's libcurl sockets:
// docs/internals/crawl-http.md, "Sockets"). A pinned fd stays registered with the loop's reactor
// while it has no watcher, so the next add_reader / add_writer costs no fstat, epoll_ctl ADD or
// ioctl and the last remove no epoll_ctl DEL. The caller unpins it before closing the fd: a pinned
// entry must never outlive its fd (the number may be reused). Loop::close() releases pinned fds
// too. Loop thread only; declared here so that fd_watch.hpp (Asio) stays out of other layers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "concur/aio/loop.hpp"

namespace concur::aio::detail {

// pin_fd(loop, fd): fd's watcher entry (made now if missing: add_reader's checks and errors)
// stays registered until unpin_fd(). RuntimeError when the loop is closed or on another thread.
void pin_fd(LoopCore& loop, int fd);
// unpin_fd(loop, fd): undoes pin_fd(); fd leaves the reactor now if it has no watcher, else when
// its last watcher is removed. Nothing when the loop is closed or fd has no entry. RuntimeError
// only on another thread than the loop's while it runs.
void unpin_fd(LoopCore& loop, int fd);
// FdWatchCounts / fd_watch_counts(loop): the loop's fd watcher registry seen from outside, for
// tests and measurements: registrations, how many times an fd was registered with the reactor (a
// new entry: fstat, epoll_ctl ADD) since the loop was made; entries, the fds registered now;
// pinned, how many of them are pinned.
struct FdWatchCounts {
  std::uint64_t registrations = 0;
  std::size_t entries = 0;
  std::size_t pinned = 0;
};
[[nodiscard]] FdWatchCounts fd_watch_counts(LoopCore& loop);

}  // namespace concur::aio::detail
