// concur/detail/ring_queue.hpp — RingQueue<T, kTasks>, the lock-free engine behind a bounded
// FIFO Queue<T>(maxsize) whose T moves without throwing: a fixed array of maxsize slots, each
// with a sequence number (after D. Vyukov's bounded MPMC queue), plus event counts for
// blocking, shutdown and task accounting.
//
// Positions: enq_ counts the puts that claimed a slot, deq_ the gets that claimed an item; item
// number p lives in slot p % capacity. A slot's sequence is 2p while it is free for put number p,
// 2p + 1 once that put has stored its item, and 2(p + capacity) once get number p has moved the
// item out — free for the put one lap later. (Doubling keeps "holds item p" and "free for put
// p + 1" apart when the capacity is 1.) A put claims position p with one compare-exchange on
// enq_, constructs the item, and publishes it with a store to the slot's sequence; a get claims
// with a compare-exchange on deq_, moves the item out and releases the slot with a store. A put
// and a get touch the same cache lines only when they meet on one slot, so producers and
// consumers no longer take turns at one lock.
//
// Semantics (what queue.hpp promises): every put and get is linearizable at its claim. A put
// that finds the next slot still held by an item some get has already claimed (mid-move), or a
// get that finds its slot claimed by a put still constructing, waits for that operation to
// finish (a few ns; it only runs long if the other thread is preempted) instead of reporting
// Full / Empty. Each item is moved exactly once in and once out (T's moves are noexcept here).
// Task accounting needs no counter on the put path: the number of puts is enq_, task_done()
// counts in done_, and unfinished tasks = enq_ - done_.
// Memory ordering: a slot's sequence store (release) publishes the item or the free slot to the
// thread whose acquire load sees it. Claims on enq_ / deq_ are seq_cst read-modify-writes, and a
// waiter's re-check reads the two positions (seq_cst), not the slot: either the re-check sees the
// other side's claim, or that side's notify() (after its claim) sees the waiter — EventCount's
// rule, without a full fence on the slot store of every put and get.
// A put that finds the ring full spins until an eighth of it is free (refill_), not one slot, so
// a producer and a consumer on two cores do not work in lock-step on the same slots; the spin is
// bounded, and the put takes a single free slot before it sleeps (docs/internals/queue.md).
// Thread-safety: every member may be called from any thread; destroying the queue with blocked
// callers is undefined (as for every queue).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/wait_queue.hpp"
#include "concur/errors.hpp"

namespace concur::detail {

// kMaxRingSlots bounds the memory a queue allocates up front: a bounded FIFO queue larger than
// this keeps the mutex-and-deque engine, which grows with its content.
inline constexpr std::size_t kMaxRingSlots = std::size_t{1} << 16;

template <class T>
inline constexpr bool kRingCapable =
    std::is_nothrow_move_constructible_v<T>&& std::is_nothrow_destructible_v<T>;

template <class T, bool kTasks>
class RingQueue {
  static_assert(kRingCapable<T>, "RingQueue needs a T whose moves and destructor never throw");

 public:
  explicit RingQueue(std::size_t capacity)
      : capacity_(capacity),
        mask_((capacity & (capacity - 1)) == 0 ? capacity - 1 : 0),
        slots_(std::make_unique<Slot[]>(capacity)) {
    for (std::size_t i = 0; i < capacity; ++i) {
      slots_[i].seq.store(2 * i, std::memory_order_relaxed);
    }
  }
  RingQueue(const RingQueue&) = delete;
  RingQueue& operator=(const RingQueue&) = delete;
  ~RingQueue() {
    for (std::uint64_t p = deq_.load(std::memory_order_relaxed),
                       e = enq_.load(std::memory_order_relaxed);
         p != e; ++p) {
      slot(p).item()->~T();
    }
  }

  // ---- put ------------------------------------------------------------------------------------
  // put(item, deadline) moves from `item` only when it returns true (false: still full at the
  // deadline); throws ShutDown after shutdown().
  bool put(T& item, const Deadline& deadline) {
    bool spun = false;
    for (;;) {
      if (stopping_.load(std::memory_order_acquire)) throw ShutDown();
      if (try_push(item)) return true;
      if (deadline.expired()) return false;
      if (!spun) {
        spun = true;
        spin_wait(
            [this] { return room_hint() >= refill_ || stopping_.load(std::memory_order_relaxed); },
            deadline);
        continue;
      }
      const auto ticket = not_full_.prepare();
      if (writable_now() || stopping_.load(std::memory_order_seq_cst)) {
        not_full_.cancel();
        continue;
      }
      not_full_.wait(ticket, deadline);
    }
  }

  // ---- get ------------------------------------------------------------------------------------
  // Taken is a claimed item: the caller moves it out with item(), then release() frees the slot.
  struct Taken {
    T* value;
    std::uint64_t pos;
  };
  // take(deadline) claims the next item, or returns nullopt at the deadline; throws ShutDown when
  // shut down and empty.
  std::optional<Taken> take(const Deadline& deadline) {
    bool spun = false;
    for (;;) {
      if (auto t = try_take()) return t;
      if (stopping_.load(std::memory_order_acquire)) {
        if (auto t = try_take()) return t;  // an item that raced the shutdown is still served
        throw ShutDown();
      }
      if (deadline.expired()) return std::nullopt;
      if (!spun) {
        spun = true;
        spin_wait([this] { return has_item_hint() || stopping_.load(std::memory_order_relaxed); },
                  deadline);
        continue;
      }
      const auto ticket = not_empty_.prepare();
      if (readable_now() || stopping_.load(std::memory_order_seq_cst)) {
        not_empty_.cancel();
        continue;
      }
      not_empty_.wait(ticket, deadline);
    }
  }
  // release(t) destroys the moved-from item and frees its slot for the producers.
  void release(const Taken& t) noexcept {
    free_slot(t);
    not_full_.notify();
  }

  // ---- batches: one compare-exchange claims a run of consecutive slots -------------------------
  // take_many(out, max, deadline): waits like take() for the first item, then claims every
  // further published item up to `max` in runs; appends them to `out`, a std::vector with room
  // for at least one more item (it grows it before each claim, so a move into it never
  // allocates). Returns how many it took (0: deadline).
  template <class Out>
  std::size_t take_many(Out& out, std::size_t max, const Deadline& deadline) {
    const auto first = take(deadline);
    if (!first) return 0;
    out.push_back(std::move(*first->value));
    free_slot(*first);
    std::size_t n = 1;
    while (n < max) {
      std::uint64_t pos = deq_.load(std::memory_order_relaxed);
      std::size_t run = 0;
      while (n + run < max &&
             slot(pos + run).seq.load(std::memory_order_acquire) == 2 * (pos + run) + 1) {
        ++run;
      }
      if (run == 0) break;
      if (out.capacity() - out.size() < run) {  // grow before claiming: a claim cannot fail
        try {
          out.reserve(out.size() + run);
        } catch (...) {
          break;  // out of memory: return what was taken; the rest stays queued
        }
      }
      if (!deq_.compare_exchange_weak(pos, pos + run, std::memory_order_seq_cst)) continue;
      for (std::size_t i = 0; i < run; ++i) {
        const Taken t{slot(pos + i).item(), pos + i};
        out.push_back(std::move(*t.value));
        free_slot(t);
      }
      n += run;
    }
    not_full_.notify(n > 1);
    return n;
  }
  // put_many(items, count, deadline): moves items[0..count) in order, claiming runs of free slots
  // with one compare-exchange each and waiting like put() when the queue is full. Returns how many
  // went in (fewer only at the deadline); throws ShutDown like put() (the items before stay).
  std::size_t put_many(T* items, std::size_t count, const Deadline& deadline) {
    std::size_t done = 0;
    while (done < count) {
      if (stopping_.load(std::memory_order_acquire)) throw ShutDown();
      std::uint64_t pos = enq_.load(std::memory_order_relaxed);
      std::size_t run = 0;
      while (done + run < count &&
             slot(pos + run).seq.load(std::memory_order_acquire) == 2 * (pos + run)) {
        ++run;
      }
      if (run == 0) {  // full (or racing): one blocking put, then batch again
        if (!put(items[done], deadline)) return done;
        ++done;
        continue;
      }
      if (!enq_.compare_exchange_weak(pos, pos + run, std::memory_order_seq_cst)) continue;
      for (std::size_t i = 0; i < run; ++i) {
        Slot& sl = slot(pos + i);
        ::new (static_cast<void*>(sl.storage)) T(std::move(items[done + i]));
        sl.seq.store(2 * (pos + i) + 1, std::memory_order_release);
      }
      done += run;
      not_empty_.notify(run > 1);
    }
    return done;
  }
  // try_take() claims an item without waiting (nullopt: empty now).
  std::optional<Taken> try_take() noexcept {
    std::uint64_t pos = deq_.load(std::memory_order_relaxed);
    for (int busy = 0;;) {
      Slot& s = slot(pos);
      const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
      if (seq == 2 * pos + 1) {
        if (deq_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst)) {
          return Taken{s.item(), pos};
        }
        continue;  // another consumer took pos; `pos` now holds the fresh value
      }
      if (seq <= 2 * pos) {  // not published for this lap: empty, or its put is still constructing
        if (enq_.load(std::memory_order_acquire) <= pos) return std::nullopt;
        back_off(busy);
      }
      pos = deq_.load(std::memory_order_relaxed);
    }
  }

  // ---- state ----------------------------------------------------------------------------------
  [[nodiscard]] std::size_t qsize() const noexcept {
    const std::uint64_t d = deq_.load(std::memory_order_acquire);
    const std::uint64_t e = enq_.load(std::memory_order_acquire);
    return e > d ? static_cast<std::size_t>(std::min<std::uint64_t>(e - d, capacity_)) : 0;
  }
  [[nodiscard]] bool is_shutdown() const noexcept {
    return stopping_.load(std::memory_order_acquire);
  }
  void shutdown(bool immediate) {
    stopping_.store(true, std::memory_order_seq_cst);
    if (immediate) {
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
    not_empty_.notify(true);
    not_full_.notify(true);
  }

  // ---- task accounting ------------------------------------------------------------------------
  // task_done(): the done count may never pass the put count. Reading the put count first and
  // then compare-exchanging the done count makes "done < puts" hold at the exchange (puts only
  // grow), and the over-call error is reported only when a fresh read confirms it.
  void task_done() {
    std::uint64_t puts = enq_.load(std::memory_order_seq_cst);
    std::uint64_t done = done_.load(std::memory_order_seq_cst);
    for (;;) {
      if (done >= puts) {
        puts = enq_.load(std::memory_order_seq_cst);
        if (done >= puts) throw ValueError("task_done() called too many times");
      }
      if (done_.compare_exchange_weak(done, done + 1, std::memory_order_seq_cst)) break;
    }
    if (done + 1 == puts) all_done_.notify(true);
  }
  // join(deadline): the done count read first and the put count second can only show
  // done >= puts if the two were equal when the put count was read.
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
    const std::uint64_t puts = enq_.load(std::memory_order_seq_cst);
    return puts > done ? static_cast<std::size_t>(puts - done) : 0;
  }

 private:
  struct Slot {
    std::atomic<std::uint64_t> seq{0};
    alignas(T) unsigned char storage[sizeof(T)];
    T* item() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  void free_slot(const Taken& t) noexcept {
    t.value->~T();
    slot(t.pos).seq.store(2 * (t.pos + capacity_), std::memory_order_release);
  }

  Slot& slot(std::uint64_t pos) const noexcept {
    return slots_[mask_ != 0 ? (pos & mask_) : (pos % capacity_)];
  }

  // back_off(busy) waits for another thread's half-done operation on one slot: a few pauses,
  // then yields, so a preempted partner gets the core.
  static void back_off(int& busy) noexcept {
    if (++busy < kSpinPauses) {
      cpu_relax();
    } else {
      yield_cpu();
    }
  }

  bool try_push(T& item) noexcept {
    std::uint64_t pos = enq_.load(std::memory_order_relaxed);
    for (int busy = 0;;) {
      Slot& s = slot(pos);
      const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
      if (seq == 2 * pos) {
        if (enq_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst)) {
          ::new (static_cast<void*>(s.storage)) T(std::move(item));
          s.seq.store(2 * pos + 1, std::memory_order_release);
          not_empty_.notify();
          return true;
        }
        continue;
      }
      if (seq < 2 * pos) {  // still holds item pos - capacity: full, or its get is mid-move
        if (deq_.load(std::memory_order_acquire) + capacity_ <= pos) return false;
        back_off(busy);
      }
      pos = enq_.load(std::memory_order_relaxed);
    }
  }

  // Hints for spinning (any order will do), and the seq_cst re-checks of the waiters.
  [[nodiscard]] bool has_item_hint() const noexcept {
    return enq_.load(std::memory_order_relaxed) != deq_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t room_hint() const noexcept {
    const std::uint64_t end = deq_.load(std::memory_order_relaxed) + capacity_;
    const std::uint64_t pos = enq_.load(std::memory_order_relaxed);
    return end > pos ? end - pos : 0;
  }
  [[nodiscard]] bool readable_now() const noexcept {
    return deq_.load(std::memory_order_seq_cst) < enq_.load(std::memory_order_seq_cst);
  }
  [[nodiscard]] bool writable_now() const noexcept {
    return enq_.load(std::memory_order_seq_cst) < deq_.load(std::memory_order_seq_cst) + capacity_;
  }
  [[nodiscard]] bool all_done() const noexcept {
    const std::uint64_t done = done_.load(std::memory_order_seq_cst);
    return done >= enq_.load(std::memory_order_seq_cst);
  }

  // Read-mostly fields first; each counter that one side writes on its own cache line.
  const std::size_t capacity_;
  const std::uint64_t refill_ = capacity_ / 8 > 0 ? capacity_ / 8 : 1;  // free slots a full put
                                                                        // spins for
  const std::uint64_t mask_;  // capacity - 1 when capacity is a power of two, else 0
  const std::unique_ptr<Slot[]> slots_;
  std::atomic<bool> stopping_{false};
  alignas(64) std::atomic<std::uint64_t> enq_{0};
  alignas(64) std::atomic<std::uint64_t> deq_{0};
  alignas(64) std::atomic<std::uint64_t> done_{0};
  alignas(64) EventCount not_empty_;
  alignas(64) EventCount not_full_;
  EventCount all_done_;
};

}  // namespace concur::detail
