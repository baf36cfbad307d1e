// src/mp/mailbox.hpp — a process pool worker's mailbox: two single-producer single-consumer byte
// rings in one shared memfd mapping, requests (pool → worker) and replies (worker → pool), with
// futex wake-ups, so that a round trip between two awake processes makes no system call at all.
//
// A record is a u32 length and a u32 kind (kBytes: the message itself; kSide: the message went
// through the worker's Connection instead — it carries descriptors or is too large for the ring —
// and the reader takes it from there, in ring order), the bytes, padding to 8. A writer copies the
// record in and publishes it with one store of `tail`; a reader copies it out and frees its room
// with one store of `head`. Each ring has one writer and one reader at a time (the pool side
// serializes its threads with its own lock), so neither side takes a lock, and a process killed in
// the middle of a record leaves the ring as it was before that record.
//
// Waiting. A reader spins briefly (concur::detail::spin_wait), then announces itself in
// `reader_wait` and sleeps on that word (shared futex: the kernel keys it by the memfd's page, so
// the two processes meet on it); the pool's dispatcher thread instead announces kEpoll and sleeps
// in epoll, and a writer that sees kEpoll writes the ring's eventfd. A writer that finds too little
// room does the same with `writer_wait`. Announcements and publications are seq_cst on both sides
// (store, then load the other's word: Dekker), so a writer either sees the sleeper's announcement
// and wakes it, or the sleeper sees the record before it sleeps — no lost wake-up. A waker makes a
// system call only when the word says someone sleeps.
// Thread-safety: a Ring is used by one writer and one reader at a time (callers exclude others).
// Memory ordering: the bytes of a record written before its publication (tail) are visible to the
// reader that sees that tail; the reader's copy-out happens before the writer reuses the room.
#pragma once

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/errors.hpp"
#include "concur/mp/serialize.hpp"
#include "shared_futex.hpp"

namespace concur::mp::detail {

// RingControl is one ring's shared header: the writer's line and the reader's line apart, so
// that the two processes do not bounce one cache line on every record.
struct RingControl {
  alignas(64) std::atomic<std::uint64_t> tail{0};  // bytes published (the writer's)
  std::atomic<std::uint32_t> writer_wait{0};       // 1: the writer sleeps for room
  alignas(64) std::atomic<std::uint64_t> head{0};  // bytes consumed (the reader's)
  std::atomic<std::uint32_t> reader_wait{0};       // kAwake, kFutex or kEpoll
};
static_assert(sizeof(RingControl) == 128);

class Ring {
 public:
  enum Kind : std::uint32_t { kBytes = 1, kSide = 2 };
  // reader_wait values: the reader is awake (or spinning), sleeps on the futex, or sleeps in
  // epoll (wake it through the eventfd).
  static constexpr std::uint32_t kAwake = 0;
  static constexpr std::uint32_t kFutex = 1;
  static constexpr std::uint32_t kEpoll = 2;

  Ring() = default;
  Ring(RingControl* control, char* data, std::size_t capacity, int notify_fd) noexcept
      : c_(control), data_(data), cap_(capacity), notify_fd_(notify_fd) {}

  // max_message() is the largest message the ring carries itself; larger ones go on the side.
  [[nodiscard]] std::size_t max_message() const noexcept { return cap_ / 2 - kHeader; }

  // has_room(n) is true when a message of n bytes fits now (for the ring's writer). The reader's
  // head is loaded with `order`: seq_cst right after the writer announces it sleeps (the second
  // half of the Dekker pair with try_read's head store).
  [[nodiscard]] bool has_room(std::size_t n,
                              std::memory_order order = std::memory_order_acquire) const noexcept {
    return cap_ - (c_->tail.load(std::memory_order_relaxed) - c_->head.load(order)) >=
           record_size(n);
  }

  // empty(): no record to read. The writer's tail is loaded with `order`: seq_cst right after the
  // reader announces it sleeps (the second half of the Dekker pair with the writer's publication).
  [[nodiscard]] bool empty(std::memory_order order = std::memory_order_acquire) const noexcept {
    return c_->head.load(std::memory_order_relaxed) == c_->tail.load(order);
  }

  // try_write(kind, bytes) copies one record in and publishes it, then wakes a sleeping reader
  // (unless `defer_epoll`: a reader sleeping in epoll is left for notify_reader()). False, with
  // nothing written, when the ring has too little room now.
  bool try_write(Kind kind, std::string_view bytes, bool defer_epoll = false) noexcept {
    const std::uint64_t need = record_size(bytes.size());
    const std::uint64_t tail = c_->tail.load(std::memory_order_relaxed);
    if (cap_ - (tail - c_->head.load(std::memory_order_acquire)) < need) return false;
    const std::uint32_t header[2] = {static_cast<std::uint32_t>(bytes.size()), kind};
    copy_in(tail, header, kHeader);  // never split: the ring and every record are 8-aligned
    copy_in(tail + kHeader, bytes.data(), bytes.size());
    c_->tail.store(tail + need, std::memory_order_seq_cst);
    const std::uint32_t w = c_->reader_wait.load(std::memory_order_seq_cst);
    if (w == kFutex || (w == kEpoll && !defer_epoll)) notify_reader();
    return true;
  }

  // write(kind, bytes, defer_epoll) is try_write that waits for room (spinning, then on the
  // futex). For the worker's side only: the pool side never waits on a worker.
  void write(Kind kind, std::string_view bytes, bool defer_epoll = false) {
    while (!try_write(kind, bytes, defer_epoll)) {
      auto room = [&] { return has_room(bytes.size()); };
      if (concur::detail::spin_wait(room, concur::detail::Deadline::infinite())) continue;
      c_->writer_wait.store(1, std::memory_order_seq_cst);
      if (!has_room(bytes.size(), std::memory_order_seq_cst))
        (void)shared_futex_wait(c_->writer_wait, 1, concur::detail::Deadline::infinite());
      c_->writer_wait.store(0, std::memory_order_relaxed);
    }
  }

  // try_read(out, kind) copies the oldest record's bytes into `out` and frees its room (waking a
  // writer that sleeps for room). False when the ring is empty.
  bool try_read(std::string& out, Kind& kind) {
    const std::uint64_t head = c_->head.load(std::memory_order_relaxed);
    if (head == c_->tail.load(std::memory_order_acquire)) return false;
    std::uint32_t header[2];
    copy_out(head, header, kHeader);
    if (header[0] > max_message() || (header[1] != kBytes && header[1] != kSide))
      throw OSError(EPROTO, "process pool mailbox: a garbled record");
    out.resize(header[0]);
    copy_out(head + kHeader, out.data(), header[0]);
    kind = static_cast<Kind>(header[1]);
    c_->head.store(head + record_size(header[0]), std::memory_order_seq_cst);
    if (c_->writer_wait.load(std::memory_order_seq_cst) != 0 &&
        c_->writer_wait.exchange(0, std::memory_order_seq_cst) == 1)
      shared_futex_wake(c_->writer_wait, 1);
    return true;
  }

  // wait_readable(stop, deadline) waits until a record is there, stop() is true or the deadline
  // passes: spinning first, then asleep on the futex. True when a record is there. stop()'s
  // setter must call wake_reader() after setting it.
  template <class Stop>
  bool wait_readable(Stop stop, const concur::detail::Deadline& deadline) {
    if (concur::detail::spin_wait([&] { return !empty() || stop(); }, deadline)) return !empty();
    for (;;) {
      c_->reader_wait.store(kFutex, std::memory_order_seq_cst);
      if (!empty(std::memory_order_seq_cst) || stop()) break;
      if (!shared_futex_wait(c_->reader_wait, kFutex, deadline)) break;
    }
    c_->reader_wait.store(kAwake, std::memory_order_relaxed);
    return !empty();
  }

  // claim() makes the caller the reader that needs no eventfd: a reader sleeping in epoll (the
  // dispatcher) stops being notified until arm_epoll().
  void claim() noexcept { c_->reader_wait.store(kAwake, std::memory_order_seq_cst); }

  // arm_epoll(): the reader is about to sleep in epoll on the eventfd; returns true when a record
  // is there already (then it must not sleep).
  bool arm_epoll() noexcept {
    c_->reader_wait.store(kEpoll, std::memory_order_seq_cst);
    return !empty(std::memory_order_seq_cst);
  }
  [[nodiscard]] bool epoll_armed() const noexcept {
    return c_->reader_wait.load(std::memory_order_seq_cst) == kEpoll;
  }

  // notify_reader() wakes whoever announced itself in reader_wait: a futex sleeper, or the epoll
  // sleeper through the eventfd.
  void notify_reader() noexcept {
    const std::uint32_t prev = c_->reader_wait.exchange(kAwake, std::memory_order_seq_cst);
    if (prev == kFutex) {
      shared_futex_wake(c_->reader_wait, INT_MAX);
    } else if (prev == kEpoll && notify_fd_ >= 0) {
      const std::uint64_t one = 1;
      (void)!::write(notify_fd_, &one, sizeof one);
    }
  }

  // wake_reader() wakes a reader sleeping on the futex (its stop() became true).
  void wake_reader() noexcept {
    if (c_->reader_wait.load(std::memory_order_seq_cst) == kFutex &&
        c_->reader_wait.exchange(kAwake, std::memory_order_seq_cst) == kFutex)
      shared_futex_wake(c_->reader_wait, INT_MAX);
  }

  // consumed(mark) is true once the reader has read everything published up to `mark` (a tail).
  [[nodiscard]] bool consumed(std::uint64_t mark) const noexcept {
    return c_->head.load(std::memory_order_acquire) >= mark;
  }
  [[nodiscard]] std::uint64_t published() const noexcept {
    return c_->tail.load(std::memory_order_relaxed);
  }

 private:
  static constexpr std::size_t kHeader = 8;
  static std::uint64_t record_size(std::size_t n) noexcept { return kHeader + ((n + 7) & ~7ull); }

  // (n may be 0 with a null src or dst — an empty record's payload — which memcpy must not get.)
  void copy_in(std::uint64_t pos, const void* src, std::size_t n) noexcept {
    if (n == 0) return;
    const std::size_t at = static_cast<std::size_t>(pos % cap_);
    const std::size_t first = std::min(n, cap_ - at);
    std::memcpy(data_ + at, src, first);
    if (first < n) std::memcpy(data_, static_cast<const char*>(src) + first, n - first);
  }
  void copy_out(std::uint64_t pos, void* dst, std::size_t n) const noexcept {
    if (n == 0) return;
    const std::size_t at = static_cast<std::size_t>(pos % cap_);
    const std::size_t first = std::min(n, cap_ - at);
    std::memcpy(dst, data_ + at, first);
    if (first < n) std::memcpy(static_cast<char*>(dst) + first, data_, n - first);
  }

  RingControl* c_ = nullptr;
  char* data_ = nullptr;
  std::size_t cap_ = 0;
  int notify_fd_ = -1;  // the eventfd of an epoll reader (the reply ring), else -1
};

// MailboxHandle carries a mailbox to the worker as a task argument: the memfd and the reply
// ring's eventfd, by descriptor. Owns them; move-only.
struct MailboxHandle {
  int memfd = -1;
  int notify = -1;
  MailboxHandle() = default;
  MailboxHandle(int m, int n) noexcept : memfd(m), notify(n) {}
  MailboxHandle(MailboxHandle&& o) noexcept
      : memfd(std::exchange(o.memfd, -1)), notify(std::exchange(o.notify, -1)) {}
  MailboxHandle& operator=(MailboxHandle&& o) noexcept {
    std::swap(memfd, o.memfd);
    std::swap(notify, o.notify);
    return *this;
  }
  MailboxHandle(const MailboxHandle&) = delete;
  MailboxHandle& operator=(const MailboxHandle&) = delete;
  ~MailboxHandle() {
    if (memfd >= 0) ::close(memfd);
    if (notify >= 0) ::close(notify);
  }
  template <class Archive>
  void save(Archive& ar) const {
    save_fd(ar, memfd);
    save_fd(ar, notify);
  }
  template <class Archive>
  void load(Archive& ar) {
    memfd = load_fd(ar);
    notify = load_fd(ar);
  }
};

// Mailbox is one mapping of the two rings, on either side. The pool creates it (create()), the
// worker maps the handle it was given (attach()).
class Mailbox {
 public:
  // kRingBytes: each ring's data. Requests stay within the pool's wire budget (48 KiB) and most
  // replies are small; a message above max_message() (64 KiB - 8) goes on the side.
  static constexpr std::size_t kRingBytes = 128 * 1024;
  static constexpr std::size_t kBytes = 2 * sizeof(RingControl) + 2 * kRingBytes;

  Mailbox() = default;
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;
  Mailbox(Mailbox&& o) noexcept { *this = std::move(o); }
  Mailbox& operator=(Mailbox&& o) noexcept {
    std::swap(base_, o.base_);
    std::swap(notify_, o.notify_);
    std::swap(memfd_for_handle_, o.memfd_for_handle_);
    std::swap(requests_, o.requests_);
    std::swap(replies_, o.replies_);
    return *this;
  }
  ~Mailbox() {
    if (base_ != nullptr) ::munmap(base_, kBytes);
    if (notify_ >= 0) ::close(notify_);
    if (memfd_for_handle_ >= 0) ::close(memfd_for_handle_);
  }

  // create() makes a new mailbox (zeroed rings) and its eventfd; handle() dups them for a worker.
  static Mailbox create() {
    Mailbox m;
    const int fd = ::memfd_create("concur-pool-mailbox", MFD_CLOEXEC);
    if (fd < 0) throw OSError(errno, "memfd_create");
    if (::ftruncate(fd, static_cast<off_t>(kBytes)) != 0) {
      const int e = errno;
      ::close(fd);
      throw OSError(e, "ftruncate");
    }
    m.memfd_for_handle_ = fd;
    m.map(fd);
    m.notify_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m.notify_ < 0) throw OSError(errno, "eventfd");
    m.bind();
    return m;
  }

  // handle() is what the worker gets (duplicates; the pool keeps its own). Once only: the pool
  // side lets go of the memfd itself (the mapping stays).
  MailboxHandle handle() {
    const int m = std::exchange(memfd_for_handle_, -1);
    const int n = ::fcntl(notify_, F_DUPFD_CLOEXEC, 0);
    if (m < 0 || n < 0) {
      if (m >= 0) ::close(m);
      throw OSError(errno, "fcntl(F_DUPFD_CLOEXEC)");
    }
    return MailboxHandle(m, n);
  }

  static Mailbox attach(MailboxHandle h) {
    Mailbox m;
    m.map(h.memfd);
    m.notify_ = std::exchange(h.notify, -1);
    m.bind();
    return m;
  }

  Ring& requests() noexcept { return requests_; }
  Ring& replies() noexcept { return replies_; }
  [[nodiscard]] int notify_fd() const noexcept { return notify_; }

 private:
  void map(int fd) {
    void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw OSError(errno, "mmap");
    base_ = static_cast<char*>(p);
  }
  void bind() noexcept {
    auto* controls = reinterpret_cast<RingControl*>(base_);  // zero-filled: a valid empty ring
    char* data = base_ + 2 * sizeof(RingControl);
    requests_ = Ring(&controls[0], data, kRingBytes, -1);
    replies_ = Ring(&controls[1], data + kRingBytes, kRingBytes, notify_);
  }

  char* base_ = nullptr;
  int notify_ = -1;
  int memfd_for_handle_ = -1;
  Ring requests_;
  Ring replies_;
};

}  // namespace concur::mp::detail
