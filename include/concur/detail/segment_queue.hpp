// concur/detail/segment_queue.hpp — SegmentQueue<T, kTasks>, the lock-free engine behind an
// unbounded FIFO Queue<T>() / SimpleQueue<T> whose T moves without throwing: a linked list of
// segments of kSlots slots, two positions (tail_ for puts, head_ for gets), event counts for
// blocking, shutdown and task accounting. docs/internals/queue.md narrates it step by step.
//
// Positions: position p = lap * (kSlots + 1) + offset, where lap numbers the segment and offset
// kSlots (one past the last slot) means "this segment is full, its successor is being linked".
// count(p) = p - p / (kSlots + 1) is the number of claims before p. A put claims the slot at
// tail_ with one compare-exchange (its linearization point), constructs the item there and sets
// the slot's kWritten bit; the put that claims a segment's last slot links a successor (allocated
// before the claim, so a claim never fails) and moves tail_ to it. A get claims the slot at head_
// with one compare-exchange, only while count(head) < count(tail) (or while head_ carries
// kHasNext: the tail is in a later segment, so every slot of this one is claimed), waits for
// kWritten if its put is still constructing, moves the item out, then sets kRead.
// Reclamation without hazard pointers or epochs (the block-destruction idea of crossbeam's
// SegQueue): a thread dereferences a segment only while it holds a claimed, unread slot of it
// (the claim succeeds only while the positions still name that segment, so the pointer read
// before it is the right one), so a segment with every slot read is unreachable. The get that
// reads the last slot sweeps the others: a slot already kRead is done; otherwise it sets kDestroy
// there and stops, and that slot's reader, seeing kDestroy when it sets kRead, resumes the sweep.
// Whoever finishes the sweep frees the segment (or keeps it as the one spare for the next link).
// Semantics (what queue.hpp promises): linearizable FIFO (puts ordered by their claims on tail_,
// gets by theirs on head_); each item moved once in and once out; a get that claims a slot whose
// put is mid-construction waits for it (a few ns unless that thread is preempted). Task
// accounting needs no counter on the put path: puts = count(tail_).
// Memory ordering: kWritten (release) publishes the item to the get that acquires it; kRead
// (release) publishes the get's use of the slot to the thread that frees the segment. Claims on
// tail_ and the shutdown flag are seq_cst, as EventCount's protocol requires.
// Thread-safety: every member may be called from any thread; destroying the queue with blocked
// callers is undefined (as for every queue).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/ring_queue.hpp"
#include "concur/detail/wait_queue.hpp"
#include "concur/errors.hpp"

namespace concur::detail {

// kSegmentCapable: the segment engine cannot un-claim a slot, so T's moves and destructor must
// not throw (the same requirement as RingQueue); other T keep the mutex engine.
template <class T>
inline constexpr bool kSegmentCapable = kRingCapable<T>;

// segment_slots<T>(): slots per segment — a power of two, about 32 KiB of slots, 32 to 1024.
template <class T>
constexpr std::size_t segment_slots() {
  constexpr std::size_t slot_bytes = std::max(sizeof(T), alignof(T)) + alignof(T);
  constexpr std::size_t fit = std::bit_floor(std::max<std::size_t>(1, (32 * 1024) / slot_bytes));
  return std::clamp<std::size_t>(fit, 32, 1024);
}

template <class T, bool kTasks>
class SegmentQueue {
  static_assert(kSegmentCapable<T>,
                "SegmentQueue needs a T whose moves and destructor never throw");

 public:
  static constexpr std::uint64_t kSlots = segment_slots<T>();
  static constexpr std::uint64_t kLap = kSlots + 1;

 private:
  struct Segment;

 public:
  SegmentQueue() : head_seg_(new Segment) { tail_seg_.store(head_seg_.load()); }
  SegmentQueue(const SegmentQueue&) = delete;
  SegmentQueue& operator=(const SegmentQueue&) = delete;
  ~SegmentQueue();

  // ---- put ------------------------------------------------------------------------------------
  // put(item, deadline) moves `item` in (the queue is unbounded: it never waits, so it always
  // returns true); throws ShutDown after shutdown(), std::bad_alloc when a new segment cannot be
  // allocated (both before anything is claimed: the queue and `item` are unchanged).
  bool put(T& item, const Deadline& /*deadline*/) {
    if (stopping()) throw ShutDown();
    std::unique_ptr<Segment> spare;
    const Claim c = claim_tail(1, spare);
    Slot& s = c.seg->slots[c.off];
    ::new (static_cast<void*>(s.storage)) T(std::move(item));
    s.state.fetch_or(kWritten, std::memory_order_release);
    after_put(false);
    keep_spare(spare);
    return true;
  }
  // put_many(items, count, deadline): moves items[0..count) in order, claiming the rest of a
  // segment (at most) with one compare-exchange. Returns count; throws ShutDown like put() (the
  // items moved before stay queued).
  std::size_t put_many(T* items, std::size_t count, const Deadline& /*deadline*/) {
    std::unique_ptr<Segment> spare;
    std::size_t done = 0;
    while (done < count) {
      if (stopping()) throw ShutDown();
      const Claim c = claim_tail(count - done, spare);
      for (std::uint64_t i = 0; i < c.run; ++i) {
        Slot& s = c.seg->slots[c.off + i];
        ::new (static_cast<void*>(s.storage)) T(std::move(items[done + i]));
        s.state.fetch_or(kWritten, std::memory_order_release);
      }
      done += c.run;
      after_put(c.run > 1);
    }
    keep_spare(spare);
    return done;
  }

  // ---- get ------------------------------------------------------------------------------------
  // Taken is a claimed item: the caller moves it out of *value, then release() frees the slot.
  struct Taken {
    T* value;
    Segment* seg;
    std::uint64_t off;
  };
  // take(deadline) claims the oldest item, or returns nullopt at the deadline; throws ShutDown
  // when shut down and empty.
  std::optional<Taken> take(const Deadline& deadline) {
    bool spun = false;
    for (;;) {
      if (auto t = try_take()) return t;
      if (stopping()) {
        if (auto t = try_take()) return t;  // an item that raced the shutdown is still served
        throw ShutDown();
      }
      if (deadline.expired()) return std::nullopt;
      if (!spun) {
        spun = true;
        spin_wait([this] { return has_item_hint() || stopping(); }, deadline);
        continue;
      }
      const auto ticket = not_empty_.prepare();
      if (readable_now() || stopping()) {
        not_empty_.cancel();
        continue;
      }
      not_empty_.wait(ticket, deadline);
    }
  }
  // try_take() claims the oldest item without waiting (nullopt: empty now).
  std::optional<Taken> try_take() noexcept {
    const Claim c = claim_head(1);
    if (c.run == 0) return std::nullopt;
    Slot& s = c.seg->slots[c.off];
    wait_written(s);
    return Taken{s.item(), c.seg, c.off};
  }
  // release(t) destroys the moved-from item and marks its slot read; the last reader of a
  // segment frees it.
  void release(const Taken& t) noexcept {
    t.value->~T();
    finish_read(t.seg, t.off);
  }
  // take_many(out, max, deadline): waits like take() for the first item, then claims what is
  // there up to `max`, a segment's rest at most per compare-exchange, without waiting again;
  // appends to `out`, a std::vector with room for one more item (it grows it before each claim,
  // so a move into it never allocates). Returns how many it took (0: deadline).
  template <class Out>
  std::size_t take_many(Out& out, std::size_t max, const Deadline& deadline) {
    const auto first = take(deadline);
    if (!first) return 0;
    out.push_back(std::move(*first->value));
    release(*first);
    std::size_t n = 1;
    while (n < max) {
      const std::size_t want = std::min<std::size_t>(max - n, available());
      if (want == 0) break;
      if (out.capacity() - out.size() < want) {  // grow before claiming: a claim cannot fail
        try {
          out.reserve(out.size() + want);
        } catch (...) {
          break;  // out of memory: return what was taken; the rest stays queued
        }
      }
      const Claim c = claim_head(want);
      if (c.run == 0) break;
      for (std::uint64_t i = 0; i < c.run; ++i) {
        Slot& s = c.seg->slots[c.off + i];
        wait_written(s);
        out.push_back(std::move(*s.item()));
        s.item()->~T();
        finish_read(c.seg, c.off + i);  // the segment's last slot comes last, so c.seg lives on
      }
      n += static_cast<std::size_t>(c.run);
    }
    return n;
  }

  // ---- state ----------------------------------------------------------------------------------
  [[nodiscard]] std::size_t qsize() const noexcept {
    const std::uint64_t h = count(head_.load(std::memory_order_acquire) >> 1);
    const std::uint64_t t = count(tail_.load(std::memory_order_acquire));
    return t > h ? static_cast<std::size_t>(t - h) : 0;
  }
  [[nodiscard]] bool is_shutdown() const noexcept { return stopping(); }
  // shutdown(immediate): later puts throw ShutDown; with immediate, the items are dropped (and
  // counted done), including those of puts that raced this call (such a put, finding the
  // kDropping flag after its claim, drops them itself).
  void shutdown(bool immediate) {
    flags_.fetch_or(kStopped | (immediate ? kDropping : 0u), std::memory_order_seq_cst);
    if (immediate) drop_all();
    not_empty_.notify(true);
  }

  // ---- task accounting (as RingQueue's: puts = count(tail_), done_ never passes it) ----------
  void task_done() {
    std::uint64_t puts = puts_now();
    std::uint64_t done = done_.load(std::memory_order_seq_cst);
    for (;;) {
      if (done >= puts) {
        puts = puts_now();
        if (done >= puts) throw ValueError("task_done() called too many times");
      }
      if (done_.compare_exchange_weak(done, done + 1, std::memory_order_seq_cst)) break;
    }
    if (done + 1 == puts) all_done_.notify(true);
  }
  bool join(const Deadline& deadline) {
    for (;;) {
      if (all_done()) return true;
      if (deadline.expired()) return false;
      const auto ticket = all_done_.prepare();
      if (all_done()) {
        all_done_.cancel();
        return true;
      }
      all_done_.wait(ticket, deadline);
    }
  }
  [[nodiscard]] std::size_t unfinished_tasks() const noexcept {
    const std::uint64_t done = done_.load(std::memory_order_seq_cst);
    const std::uint64_t puts = puts_now();
    return puts > done ? static_cast<std::size_t>(puts - done) : 0;
  }

 private:
  // Slot state bits.
  static constexpr std::uint32_t kWritten = 1;  // the put has constructed the item
  static constexpr std::uint32_t kRead = 2;     // the get has moved it out and destroyed it
  static constexpr std::uint32_t kDestroy =
      4;  // the sweep stopped here: this slot's get resumes it
  // head_ holds position << 1 | kHasNext.
  static constexpr std::uint64_t kHasNext = 1;
  // flags_ bits.
  static constexpr std::uint32_t kStopped = 1;
  static constexpr std::uint32_t kDropping = 2;

  struct Slot {
    std::atomic<std::uint32_t> state{0};
    alignas(T) unsigned char storage[sizeof(T)];
    T* item() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };
  struct Segment {
    std::atomic<Segment*> next{nullptr};
    Slot slots[kSlots];
  };
  // Claim: `run` consecutive slots from slots[off] of `seg` (run 0: nothing claimed).
  struct Claim {
    Segment* seg;
    std::uint64_t off;
    std::uint64_t run;
  };

  static constexpr std::uint64_t count(std::uint64_t pos) noexcept { return pos - pos / kLap; }

  [[nodiscard]] bool stopping() const noexcept {
    return (flags_.load(std::memory_order_seq_cst) & kStopped) != 0;
  }
  [[nodiscard]] std::uint64_t puts_now() const noexcept {
    return count(tail_.load(std::memory_order_seq_cst));
  }

  // back_off(busy) waits for another thread's half-done step (a link or a construction): a few
  // pauses, then yields, so a preempted partner gets the core.
  static void back_off(int& busy) noexcept {
    if (++busy < kSpinPauses) {
      cpu_relax();
    } else {
      yield_cpu();
    }
  }

  // new_segment() returns a fresh or recycled segment; may throw std::bad_alloc.
  std::unique_ptr<Segment> new_segment() {
    if (Segment* s = spare_.exchange(nullptr, std::memory_order_acquire)) {
      return std::unique_ptr<Segment>(s);
    }
    return std::make_unique<Segment>();
  }

  // keep_spare(spare): a segment allocated for a link that another put made becomes the spare.
  void keep_spare(std::unique_ptr<Segment>& spare) noexcept {
    if (!spare) return;
    Segment* expected = nullptr;
    if (spare_.compare_exchange_strong(expected, spare.get(), std::memory_order_release,
                                       std::memory_order_relaxed)) {
      (void)spare.release();
    }
  }

  // claim_tail(max, spare) claims 1..max slots at the tail, all in one segment, and links the next
  // segment when it takes the last slot of this one. `spare` holds a segment allocated before
  // the claim (kept across calls by put_many; what is left is freed by the caller's unique_ptr).
  Claim claim_tail(std::uint64_t max, std::unique_ptr<Segment>& spare) {
    std::uint64_t tail = tail_.load(std::memory_order_acquire);
    for (int busy = 0;;) {
      const std::uint64_t off = tail % kLap;
      if (off == kSlots) {  // the put that took the last slot is linking the next segment
        back_off(busy);
        tail = tail_.load(std::memory_order_acquire);
        continue;
      }
      const std::uint64_t run = std::min(max, kSlots - off);
      const bool last = off + run == kSlots;
      if (last && !spare) spare = new_segment();  // may throw: nothing is claimed yet
      // The segment read after `tail` (acquire) is tail's segment or a later one; a later one
      // means tail_ has moved, and the compare-exchange below fails.
      Segment* seg = tail_seg_.load(std::memory_order_acquire);
      if (tail_.compare_exchange_weak(tail, tail + run, std::memory_order_seq_cst,
                                      std::memory_order_acquire)) {
        if (last) {
          Segment* next = spare.release();
          seg->next.store(next, std::memory_order_release);
          tail_seg_.store(next, std::memory_order_release);
          tail_.store(tail + run + 1, std::memory_order_release);  // offset 0 of the next lap
        }
        return Claim{seg, off, run};
      }
    }
  }

  // claim_head(max) claims 0..max items at the head, all in one segment; 0 when empty.
  Claim claim_head(std::uint64_t max) noexcept {
    std::uint64_t head = head_.load(std::memory_order_acquire);
    for (int busy = 0;;) {
      const std::uint64_t pos = head >> 1;
      const std::uint64_t off = pos % kLap;
      if (off == kSlots) {  // the get that took the last slot is moving head_ to the next segment
        back_off(busy);
        head = head_.load(std::memory_order_acquire);
        continue;
      }
      std::uint64_t run = std::min(max, kSlots - off);
      std::uint64_t flag = head & kHasNext;
      if (flag == 0) {
        // seq_cst: a drain after shutdown(immediate) must see every claim ordered before its flag.
        const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
        const std::uint64_t ready = count(tail) - std::min(count(tail), count(pos));
        if (ready == 0) return Claim{nullptr, 0, 0};
        run = std::min(run, ready);
        if (tail / kLap != pos / kLap) flag = kHasNext;  // every slot of this segment is claimed
      }
      Segment* seg = head_seg_.load(std::memory_order_acquire);
      if (head_.compare_exchange_weak(head, ((pos + run) << 1) | flag, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        if (off + run == kSlots) advance_head(seg, pos + run);
        return Claim{seg, off, run};
      }
    }
  }

  // advance_head(seg, end): the caller claimed seg's last slot (head_ now at offset kSlots, `end`):
  // wait for the put that claimed that slot to link the successor, then move head_ to it.
  void advance_head(Segment* seg, std::uint64_t end) noexcept {
    Segment* next = seg->next.load(std::memory_order_acquire);
    for (int busy = 0; next == nullptr; next = seg->next.load(std::memory_order_acquire)) {
      back_off(busy);
    }
    // A successor with its own successor linked has all its slots claimed by puts.
    const std::uint64_t flag = next->next.load(std::memory_order_relaxed) != nullptr ? kHasNext : 0;
    head_seg_.store(next, std::memory_order_release);
    head_.store(((end + 1) << 1) | flag, std::memory_order_release);
  }

  static void wait_written(Slot& s) noexcept {
    for (int busy = 0; (s.state.load(std::memory_order_acquire) & kWritten) == 0;) back_off(busy);
  }

  // finish_read(seg, off): slot `off` has been read. The last slot starts the sweep; a slot whose
  // kDestroy the sweep set resumes it after itself.
  void finish_read(Segment* seg, std::uint64_t off) noexcept {
    if (off + 1 == kSlots) {
      sweep(seg, 0);
    } else if ((seg->slots[off].state.fetch_or(kRead, std::memory_order_acq_rel) & kDestroy) != 0) {
      sweep(seg, off + 1);
    }
  }
  // sweep(seg, from): free seg unless a slot in [from, kSlots - 1) is still being read.
  void sweep(Segment* seg, std::uint64_t from) noexcept {
    for (std::uint64_t i = from; i + 1 < kSlots; ++i) {
      std::atomic<std::uint32_t>& st = seg->slots[i].state;
      if ((st.load(std::memory_order_acquire) & kRead) == 0 &&
          (st.fetch_or(kDestroy, std::memory_order_acq_rel) & kRead) == 0) {
        return;  // that slot's get resumes the sweep
      }
    }
    recycle(seg);
  }
  // recycle(seg) keeps one spare segment for the next link (saving an allocation per kSlots items
  // when producers and consumers keep pace) and frees the others.
  void recycle(Segment* seg) noexcept {
    seg->next.store(nullptr, std::memory_order_relaxed);
    for (Slot& s : seg->slots) s.state.store(0, std::memory_order_relaxed);
    Segment* expected = nullptr;
    if (!spare_.compare_exchange_strong(expected, seg, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      delete seg;
    }
  }

  // after_put(many): wake a sleeping get, and drop the items if shutdown(immediate) raced the
  // claim (the claim is seq_cst, so either the drain saw it or this load sees kDropping).
  void after_put(bool many) noexcept {
    not_empty_.notify(many);
    if ((flags_.load(std::memory_order_seq_cst) & kDropping) != 0) drop_all();
  }
  void drop_all() noexcept {
    std::uint64_t dropped = 0;
    while (auto t = try_take()) {
      release(*t);
      ++dropped;
    }
    if constexpr (kTasks) {
      if (dropped != 0) {
        done_.fetch_add(dropped, std::memory_order_seq_cst);
        all_done_.notify(true);
      }
    }
  }

  // available() is how many items a claim could take now (a hint).
  [[nodiscard]] std::size_t available() const noexcept { return qsize(); }
  [[nodiscard]] bool has_item_hint() const noexcept {
    return count(tail_.load(std::memory_order_relaxed)) >
           count(head_.load(std::memory_order_relaxed) >> 1);
  }
  [[nodiscard]] bool readable_now() const noexcept {
    const std::uint64_t h = count(head_.load(std::memory_order_seq_cst) >> 1);
    return count(tail_.load(std::memory_order_seq_cst)) > h;
  }
  [[nodiscard]] bool all_done() const noexcept {
    const std::uint64_t done = done_.load(std::memory_order_seq_cst);
    return done >= puts_now();
  }

  // Each side's position and segment on its own cache line; read-mostly fields apart.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::atomic<Segment*> tail_seg_{nullptr};
  alignas(64) std::atomic<std::uint64_t> head_{0};
  std::atomic<Segment*> head_seg_;
  alignas(64) std::atomic<std::uint32_t> flags_{0};
  std::atomic<Segment*> spare_{nullptr};
  alignas(64) std::atomic<std::uint64_t> done_{0};
  alignas(64) EventCount not_empty_;
  EventCount all_done_;
};

template <class T, bool kTasks>
SegmentQueue<T, kTasks>::~SegmentQueue() {
  // Quiescent: every claimed slot is written, and every segment before head_seg_ was freed by its
  // last reader. Destroy the items left, then free the segments from the head on.
  Segment* seg = head_seg_.load(std::memory_order_relaxed);
  const std::uint64_t end = count(tail_.load(std::memory_order_relaxed));
  for (std::uint64_t c = count(head_.load(std::memory_order_relaxed) >> 1); c != end; ++c) {
    const std::uint64_t off = c % kSlots;
    seg->slots[off].item()->~T();
    if (off + 1 == kSlots) {
      Segment* next = seg->next.load(std::memory_order_relaxed);
      delete seg;
      seg = next;
    }
  }
  while (seg != nullptr) {
    Segment* next = seg->next.load(std::memory_order_relaxed);
    delete seg;
    seg = next;
  }
  delete spare_.load(std::memory_order_relaxed);
}

}  // namespace concur::detail
