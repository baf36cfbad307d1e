// The shared ring of mp::Queue (see include/concur/mp/queues.hpp).
//
// Layout of the memfd region: a Header, then `capacity` ring bytes. A record is an 8-byte head
// (u32 length, u32 kind) and the item's bytes, padded to 8; records wrap around the ring's end
// byte by byte. head/tail are monotonic byte counters; the ring holds tail - head bytes. Every
// operation runs under the header's robust mutex and publishes its effect with its last stores
// (tail after the bytes, head after the copy), so a process killed in the middle leaves the ring
// as it was before that operation; the next locker sees EOWNERDEAD, marks the mutex consistent
// and carries on. Sleepers wait on three futex sequence words (shared futexes: the waker may be
// another process), counted so that a wake-up costs a system call only when someone sleeps.
#include "concur/mp/queues.hpp"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

#include "concur/detail/futex.hpp"  // spin_wait
#include "shared_futex.hpp"

namespace concur::mp::detail {

namespace {

constexpr std::uint32_t kMagic = 0x51554555;  // "QUEU"
constexpr std::uint32_t kInline = 0;
constexpr std::uint32_t kMarker = 1;
constexpr std::size_t kRecordHead = 8;
constexpr std::size_t kMinRing = 4096;

struct Header {
  pthread_mutex_t mu;
  std::uint32_t magic;
  std::uint32_t joinable;
  std::uint64_t capacity;
  std::uint64_t maxsize;
  std::uint64_t head;                    // byte counter of the oldest record
  std::uint64_t tail;                    // byte counter past the newest record
  std::uint64_t count;                   // records in the ring, including reserved marker slots
  std::uint64_t unfinished;              // JoinableQueue: put and not yet task_done()
  std::atomic<std::uint32_t> not_empty;  // futex sequences
  std::atomic<std::uint32_t> not_full;
  std::atomic<std::uint32_t> all_done;
  std::uint32_t getters_asleep;
  std::uint32_t putters_asleep;
  std::uint32_t joiners_asleep;
};

std::size_t padded(std::size_t n) noexcept { return (n + 7) & ~std::size_t{7}; }

Header* header(const SharedRegion& r) noexcept { return r.as<Header>(); }
unsigned char* ring(const SharedRegion& r) noexcept {
  return static_cast<unsigned char*>(r.data()) + padded(sizeof(Header));
}

void ring_write(const SharedRegion& r, std::uint64_t pos, const void* src, std::size_t n) noexcept {
  const std::uint64_t cap = header(r)->capacity;
  const std::size_t at = static_cast<std::size_t>(pos % cap);
  const std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap) - at);
  std::memcpy(ring(r) + at, src, first);
  std::memcpy(ring(r), static_cast<const unsigned char*>(src) + first, n - first);
}

void ring_read(const SharedRegion& r, std::uint64_t pos, void* dst, std::size_t n) noexcept {
  const std::uint64_t cap = header(r)->capacity;
  const std::size_t at = static_cast<std::size_t>(pos % cap);
  const std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap) - at);
  std::memcpy(dst, ring(r) + at, first);
  std::memcpy(static_cast<unsigned char*>(dst) + first, ring(r), n - first);
}

// lock_header(h) takes the header mutex: a short spin on trylock (the holder is usually running
// on the other core for a few hundred nanoseconds), then a blocking lock. A dead holder's mutex is
// made consistent: every operation commits with its last store, so the ring is as before it.
void lock_header(Header* h) {
  int err = ::pthread_mutex_trylock(&h->mu);
  if (err == EBUSY) {
    (void)concur::detail::spin_wait(
        [&] {
          err = ::pthread_mutex_trylock(&h->mu);
          return err != EBUSY;
        },
        concur::detail::Deadline::infinite());
    while (err == EBUSY || err == EINTR || err == EAGAIN) err = ::pthread_mutex_lock(&h->mu);
  }
  if (err == EOWNERDEAD) {
    ::pthread_mutex_consistent(&h->mu);
    err = 0;
  }
  if (err != 0) throw OSError(err, "queue lock");
}

// RingLock holds the header mutex for a scope.
class RingLock {
 public:
  explicit RingLock(Header* h) : h_(h) { lock_header(h_); }
  RingLock(const RingLock&) = delete;
  RingLock& operator=(const RingLock&) = delete;
  ~RingLock() { ::pthread_mutex_unlock(&h_->mu); }

  // sleep(word, asleep, deadline) releases the mutex, sleeps on `word` unless it moved (or until
  // the deadline), and relocks. Callers re-check their condition and the deadline.
  void sleep(std::atomic<std::uint32_t>& word, std::uint32_t& asleep,
             const concur::detail::Deadline& deadline) {
    const std::uint32_t seen = word.load(std::memory_order_acquire);
    ++asleep;
    ::pthread_mutex_unlock(&h_->mu);
    (void)shared_futex_wait(word, seen, deadline);
    lock_header(h_);
    --asleep;
  }

 private:
  Header* h_;
};

void wake(std::atomic<std::uint32_t>& word, std::uint32_t asleep, int n) noexcept {
  word.fetch_add(1, std::memory_order_release);
  if (asleep != 0) shared_futex_wake(word, n);
}

}  // namespace

ByteQueue::ByteQueue(QueueOptions options, bool joinable) {
  if (options.buffer_bytes < kMinRing)
    throw ValueError("a process queue's buffer must be at least 4096 bytes");
  region_ = SharedRegion(padded(sizeof(Header)) + options.buffer_bytes);
  auto* h = new (region_.data()) Header{};
  pthread_mutexattr_t attr;
  ::pthread_mutexattr_init(&attr);
  ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  const int err = ::pthread_mutex_init(&h->mu, &attr);
  ::pthread_mutexattr_destroy(&attr);
  if (err != 0) throw OSError(err, "pthread_mutex_init");
  h->magic = kMagic;
  h->joinable = joinable ? 1 : 0;
  h->capacity = options.buffer_bytes;
  h->maxsize = options.maxsize;
  auto [r, w] = Pipe(false);
  reader_ = std::move(r);
  writer_ = std::move(w);
  reader_.set_exact_reads(true);  // several processes read this end in turn
}

void ByteQueue::check_loaded() {
  reader_.set_exact_reads(true);
  if (region_.size() < padded(sizeof(Header)) + kMinRing || header(region_)->magic != kMagic ||
      region_.size() != padded(sizeof(Header)) + header(region_)->capacity)
    throw UnpicklingError("the bytes do not describe a concur process queue");
}

bool ByteQueue::fits(const Payload& payload) const noexcept {
  return payload.fds.empty() &&
         kRecordHead + padded(payload.bytes.size()) <= header(region_)->capacity / 2 &&
         payload.bytes.size() <= UINT32_MAX;
}

bool ByteQueue::put_ring(std::string_view bytes, const concur::detail::Deadline& deadline) {
  Header* h = header(region_);
  const std::size_t need = kRecordHead + padded(bytes.size());
  RingLock lock(h);
  while ((h->maxsize != 0 && h->count >= h->maxsize) || h->capacity - (h->tail - h->head) < need) {
    if (deadline.expired()) return false;
    lock.sleep(h->not_full, h->putters_asleep, deadline);
  }
  const std::uint32_t head_words[2] = {static_cast<std::uint32_t>(bytes.size()), kInline};
  ring_write(region_, h->tail, head_words, sizeof head_words);
  ring_write(region_, h->tail + kRecordHead, bytes.data(), bytes.size());
  ++h->count;
  if (h->joinable != 0) ++h->unfinished;
  h->tail += need;  // the commit
  wake(h->not_empty, h->getters_asleep, 1);
  return true;
}

bool ByteQueue::reserve(const concur::detail::Deadline& deadline) {
  Header* h = header(region_);
  RingLock lock(h);
  while ((h->maxsize != 0 && h->count >= h->maxsize) ||
         h->capacity - (h->tail - h->head) < kRecordHead) {
    if (deadline.expired()) return false;
    lock.sleep(h->not_full, h->putters_asleep, deadline);
  }
  // Claim the item slot now; the marker bytes are written at commit (only side writers, which
  // hold wlock_, add markers, and getters never consume past tail).
  ++h->count;
  return true;
}

void ByteQueue::unreserve() noexcept {
  Header* h = header(region_);
  try {
    RingLock lock(h);
    --h->count;
    wake(h->not_full, h->putters_asleep, 1);
  } catch (...) {
  }
}

void ByteQueue::commit_marker() {
  Header* h = header(region_);
  RingLock lock(h);
  // Room for the marker head: ring-path puts may have filled the ring since reserve(); wait for
  // a getter to free some (getters never need wlock_, so this cannot deadlock).
  while (h->capacity - (h->tail - h->head) < kRecordHead)
    lock.sleep(h->not_full, h->putters_asleep, concur::detail::Deadline::infinite());
  const std::uint32_t head_words[2] = {0, kMarker};
  ring_write(region_, h->tail, head_words, sizeof head_words);
  if (h->joinable != 0) ++h->unfinished;
  h->tail += kRecordHead;
  wake(h->not_empty, h->getters_asleep, 1);
}

int ByteQueue::get(std::string& out, const concur::detail::Deadline& deadline) {
  Header* h = header(region_);
  RingLock lock(h);
  while (h->tail == h->head) {
    if (deadline.expired()) return 0;
    lock.sleep(h->not_empty, h->getters_asleep, deadline);
  }
  std::uint32_t head_words[2];
  ring_read(region_, h->head, head_words, sizeof head_words);
  if (head_words[1] == kMarker) {
    // Take the side lock before giving up the ring, so side items are read in marker order.
    rlock_.acquire();
    h->head += kRecordHead;
    --h->count;
    wake(h->not_full, h->putters_asleep, 1);
    return 2;
  }
  out.resize(head_words[0]);
  ring_read(region_, h->head + kRecordHead, out.data(), out.size());
  h->head += kRecordHead + padded(out.size());  // the commit
  --h->count;
  wake(h->not_full, h->putters_asleep, 1);
  return 1;
}

std::size_t ByteQueue::qsize() const noexcept {
  const Header* h = header(region_);
  return static_cast<std::size_t>(__atomic_load_n(&h->count, __ATOMIC_RELAXED));
}

std::size_t ByteQueue::maxsize() const noexcept {
  return static_cast<std::size_t>(header(region_)->maxsize);
}

std::size_t ByteQueue::unfinished_tasks() const noexcept {
  const Header* h = header(region_);
  return static_cast<std::size_t>(__atomic_load_n(&h->unfinished, __ATOMIC_RELAXED));
}

void ByteQueue::task_done() {
  Header* h = header(region_);
  RingLock lock(h);
  if (h->unfinished == 0) throw ValueError("task_done() called too many times");
  if (--h->unfinished == 0) wake(h->all_done, h->joiners_asleep, INT_MAX);
}

bool ByteQueue::join_until(const concur::detail::Deadline& deadline) {
  Header* h = header(region_);
  RingLock lock(h);
  while (h->unfinished != 0) {
    if (deadline.expired()) return false;
    lock.sleep(h->all_done, h->joiners_asleep, deadline);
  }
  return true;
}

}  // namespace concur::mp::detail
