// concur/queue.hpp — Python's queue module: Queue<T> (FIFO), LifoQueue<T>, PriorityQueue<T,
// Compare> and SimpleQueue<T>, with Python 3.13's shutdown().
//
// put() blocks while a bounded queue is full, get() while the queue is empty; each has a
// duration form (throws Full / Empty on timeout, as Python), a time-point form, a non-blocking
// form (put_nowait / get_nowait), and non-throwing twins (try_put → bool, try_get →
// std::optional) that leave a rejected item untouched — they report "full" / "empty" by value
// but still throw ShutDown after shutdown(), so a retry loop cannot spin on a dead queue. put_many
// / get_many move batches in one wake-up (under one lock acquisition on the mutex engine; item by
// item, without waiting between items, on the lock-free engines). task_done() / join() count
// unfinished tasks (task_done() more often than put() → ValueError). shutdown(immediate) makes
// every later put — and every get on an empty queue — throw ShutDown, wakes every blocked caller,
// and with immediate=true drops the items and settles their unfinished-task count so join()
// returns. Engines, for a T whose move constructor and destructor are noexcept: an unbounded
// Queue<T>() or SimpleQueue<T> runs lock-free on detail::SegmentQueue (linked segments of slots
// claimed by compare-exchange), a bounded Queue<T>(maxsize) with maxsize <= detail::kMaxRingSlots
// on detail::RingQueue; every other queue (LIFO, priority, a larger bound, or a T whose move may
// throw — a lock-free engine cannot un-claim a slot, so only the mutex can leave such an item
// queued) on one mutex and a container. All keep every guarantee below. Guarantees: every operation
// is linearizable (at the mutex, or at an engine's claim of a slot) — if one put() returns before
// another starts, its item is got first, whichever threads made them; FIFO order for Queue, LIFO
// for LifoQueue, smallest-first for PriorityQueue with FIFO among equal priorities (no (priority,
// count, item) wrapper needed). Blocked producers and consumers are not served in arrival order (a
// woken waiter races new arrivals), as in Python. An item is moved exactly once out of the queue
// (put(T) takes its argument by value: one move into the parameter, one into the queue); if T's
// move throws inside get() / try_get(), the item stays queued; inside put(), the queue is
// unchanged; get_many / put_many keep what was moved before the throw (see each). qsize() / empty()
// / full() are snapshots. Waiting: a blocked caller spins for up to detail::kSpinBudget, then
// sleeps on a futex. Memory ordering: everything a producer did before put() is visible to the
// consumer once its get() returns that item. Thread-safety: every member may be called from any
// thread. Destroying a queue with blocked callers is undefined: shutdown() and join the threads
// first.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/ring_queue.hpp"
#include "concur/detail/segment_queue.hpp"
#include "concur/detail/wait_queue.hpp"
#include "concur/errors.hpp"

namespace concur {

namespace detail {

// Containers: the ordering policy of each queue type (push, pop, front, size).
template <class T>
class FifoContainer {
 public:
  void push(T&& v) { items_.push_back(std::move(v)); }
  T& top() { return items_.front(); }
  void pop() { items_.pop_front(); }
  void clear() { items_.clear(); }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }

 private:
  std::deque<T> items_;
};

template <class T>
class LifoContainer {
 public:
  void push(T&& v) { items_.push_back(std::move(v)); }
  T& top() { return items_.back(); }
  void pop() { items_.pop_back(); }
  void clear() { items_.clear(); }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }

 private:
  std::vector<T> items_;
};

// A binary min-heap (by Compare) of (item, arrival number): equal items leave in FIFO order.
template <class T, class Compare>
class PriorityContainer {
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>,
                "PriorityQueue<T> needs a nothrow-movable T: a throwing move in the middle of a "
                "heap sift could not be undone");

 public:
  void push(T&& v) {
    restore();
    items_.push_back(Entry{std::move(v), next_++});
    std::push_heap(items_.begin(), items_.end(), Later{compare_});
  }
  // top() first moves the next item to the back (pop_heap), so that moving it out never touches
  // an element the heap still orders; pop() then drops the back.
  T& top() {
    if (!staged_) {
      std::pop_heap(items_.begin(), items_.end(), Later{compare_});
      staged_ = true;
    }
    return items_.back().value;
  }
  void pop() {
    top();
    items_.pop_back();
    staged_ = false;
  }
  void clear() {
    items_.clear();
    staged_ = false;
  }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }

 private:
  struct Entry {
    T value;
    std::uint64_t order;
  };
  // Later(a, b): a leaves after b (std heaps put the "largest" first).
  struct Later {
    Compare& compare;
    bool operator()(const Entry& a, const Entry& b) const {
      if (compare(a.value, b.value)) return false;
      if (compare(b.value, a.value)) return true;
      return a.order > b.order;
    }
  };
  // restore() puts a staged item back into the heap (only if a top() was not followed by pop()).
  void restore() {
    if (!staged_) return;
    std::push_heap(items_.begin(), items_.end(), Later{compare_});
    staged_ = false;
  }
  std::vector<Entry> items_;
  std::uint64_t next_ = 0;
  bool staged_ = false;  // items_.back() is the next item, outside the heap
  Compare compare_{};
};

// BasicQueue is the one implementation behind every queue type; `kTasks` turns task accounting
// (task_done / join) on.
template <class T, class Container, bool kTasks>
class BasicQueue {
  // kLockFree: a FIFO queue of nothrow-movable items runs on a lock-free engine instead of the
  // mutex and the container — the RingQueue (detail/ring_queue.hpp) when bounded by at most
  // kMaxRingSlots, the SegmentQueue (detail/segment_queue.hpp) when unbounded; every public
  // operation below forwards to the engine that is set (ring_ or segs_).
  static constexpr bool kLockFree =
      std::is_same_v<Container, FifoContainer<T>> && kRingCapable<T> && kSegmentCapable<T>;
  static constexpr std::size_t kStageBatch = 256;  // put_many stages this many items at a time
  struct NoEngine {};
  using Ring = std::conditional_t<kLockFree, RingQueue<T, kTasks>, NoEngine>;
  using Segments = std::conditional_t<kLockFree, SegmentQueue<T, kTasks>, NoEngine>;

 public:
  static_assert(std::is_move_constructible_v<T>, "queue items must be movable");

  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {
    if constexpr (kLockFree) {
      if (maxsize == 0) {
        segs_ = std::make_unique<Segments>();
      } else if (maxsize <= kMaxRingSlots) {
        ring_ = std::make_unique<Ring>(maxsize);
      }
    }
  }
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  // ---- put ------------------------------------------------------------------------------------
  // put(item) blocks while the queue is full; throws ShutDown after shutdown().
  void put(T item) { put_or_throw(item, Deadline::infinite()); }
  // put(item, timeout) throws Full when no slot freed within `timeout`.
  template <class Rep, class Period>
  void put(T item, std::chrono::duration<Rep, Period> timeout) {
    put_or_throw(item, Deadline::after(timeout));
  }
  template <class C, class D>
  void put_until(T item, std::chrono::time_point<C, D> tp) {
    put_or_throw(item, Deadline::at(tp));
  }
  // put_nowait(item) throws Full when the queue is full now.
  void put_nowait(T item) { put_or_throw(item, Deadline::after(std::chrono::seconds(0))); }
  // try_put(item[, timeout]) returns false (item untouched) when the queue stayed full.
  bool try_put(T&& item) { return put_impl(item, Deadline::after(std::chrono::seconds(0))); }
  bool try_put(const T& item) { return try_put(T(item)); }
  template <class Rep, class Period>
  bool try_put(T&& item, std::chrono::duration<Rep, Period> timeout) {
    return put_impl(item, Deadline::after(timeout));
  }
  template <class C, class D>
  bool try_put_until(T&& item, std::chrono::time_point<C, D> tp) {
    return put_impl(item, Deadline::at(tp));
  }
  // put_many(items) puts every element in order (moving from an rvalue range), blocking for
  // room as needed; consecutive elements go in under one lock acquisition while room lasts (on
  // a lock-free engine: runs of slots claimed at once, and the items of concurrent put_many
  // calls may interleave). If constructing an element throws, the elements before it stay queued
  // (counted and signalled) and the exception propagates.
  template <std::ranges::input_range R>
  requires std::constructible_from<
      T, std::conditional_t<std::is_lvalue_reference_v<R>, std::ranges::range_reference_t<R>,
                            std::ranges::range_rvalue_reference_t<R>>>
  void put_many(R&& items) {
    auto it = std::ranges::begin(items);
    const auto end = std::ranges::end(items);
    if constexpr (kLockFree) {
      if (ring_ || segs_) {  // lock-free: stage up to kStageBatch items, then claim slots at once
        std::vector<T> staged;
        staged.reserve(kStageBatch);
        while (it != end) {
          staged.clear();
          for (; it != end && staged.size() < kStageBatch; ++it) {
            if constexpr (std::is_lvalue_reference_v<R>) {
              staged.emplace_back(*it);
            } else {
              staged.emplace_back(std::ranges::iter_move(it));
            }
          }
          if (ring_) {
            ring_->put_many(staged.data(), staged.size(), Deadline::infinite());
          } else {
            segs_->put_many(staged.data(), staged.size(), Deadline::infinite());
          }
        }
        return;
      }
    }
    while (it != end) {
      std::unique_lock lk(mu_);
      wait_for_room(lk, Deadline::infinite());
      std::size_t added = 0;
      // Whatever happens inside the batch, account for and announce what went in.
      auto commit = [&] {
        if constexpr (kTasks) unfinished_ += added;
        size_.store(container_.size(), std::memory_order_relaxed);
        const auto w = not_empty_.signal(added > 1);
        lk.unlock();
        not_empty_.wake(w);
      };
      try {
        do {
          if constexpr (std::is_lvalue_reference_v<R>) {
            container_.push(T(*it));
          } else {
            container_.push(T(std::ranges::iter_move(it)));
          }
          ++it;
          ++added;
        } while (it != end && has_room());
      } catch (...) {
        commit();
        throw;
      }
      commit();
    }
  }

  // ---- get ------------------------------------------------------------------------------------
  // get() blocks until an item is available; throws ShutDown when shut down and empty.
  T get() { return get_or_throw(Deadline::infinite()); }
  // get(timeout) throws Empty when nothing arrived within `timeout`.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_or_throw(Deadline::after(timeout));
  }
  template <class C, class D>
  T get_until(std::chrono::time_point<C, D> tp) {
    return get_or_throw(Deadline::at(tp));
  }
  // get_nowait() throws Empty when the queue is empty now.
  T get_nowait() { return get_or_throw(Deadline::after(std::chrono::seconds(0))); }
  // try_get([timeout]) returns std::nullopt when nothing arrived in time.
  std::optional<T> try_get() { return get_impl(Deadline::after(std::chrono::seconds(0))); }
  template <class Rep, class Period>
  std::optional<T> try_get(std::chrono::duration<Rep, Period> timeout) {
    return get_impl(Deadline::after(timeout));
  }
  template <class C, class D>
  std::optional<T> try_get_until(std::chrono::time_point<C, D> tp) {
    return get_impl(Deadline::at(tp));
  }
  // get_many(max) blocks until at least one item is available, then takes up to `max` in one
  // lock acquisition (on a lock-free engine: what is there, without waiting again; the items may
  // interleave with a concurrent get's). get_many(max, timeout) returns an empty vector when
  // nothing arrived in time. Both throw ShutDown when shut down and empty, and ValueError for max
  // == 0. If moving an item throws after others were taken, those are returned and the failing item
  // stays queued (the next get meets it again); with none taken, the exception propagates.
  std::vector<T> get_many(std::size_t max) { return get_many_impl(max, Deadline::infinite()); }
  template <class Rep, class Period>
  std::vector<T> get_many(std::size_t max, std::chrono::duration<Rep, Period> timeout) {
    return get_many_impl(max, Deadline::after(timeout));
  }

  // ---- state ----------------------------------------------------------------------------------
  // qsize() / empty() / full() are snapshots, read without the lock.
  [[nodiscard]] std::size_t qsize() const noexcept {
    if constexpr (kLockFree) {
      if (ring_) return ring_->qsize();
      if (segs_) return segs_->qsize();
    }
    return size_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] bool empty() const noexcept { return qsize() == 0; }
  [[nodiscard]] bool full() const noexcept { return maxsize_ > 0 && qsize() >= maxsize_; }
  // maxsize() is the bound given at construction (0: unbounded).
  [[nodiscard]] std::size_t maxsize() const noexcept { return maxsize_; }
  [[nodiscard]] bool is_shutdown() const {
    if constexpr (kLockFree) {
      if (ring_) return ring_->is_shutdown();
      if (segs_) return segs_->is_shutdown();
    }
    std::scoped_lock lk(mu_);
    return shutdown_;
  }

  // shutdown(immediate) — see the header comment. Idempotent; immediate=true after a plain
  // shutdown still drains.
  void shutdown(bool immediate = false) {
    if constexpr (kLockFree) {
      if (ring_) return ring_->shutdown(immediate);
      if (segs_) return segs_->shutdown(immediate);
    }
    std::unique_lock lk(mu_);
    shutdown_ = true;
    stopping_.store(true, std::memory_order_relaxed);
    auto w_done = WaitQueue::Wake::kNone;
    if (immediate) {
      const std::size_t dropped = container_.size();
      container_.clear();
      size_.store(0, std::memory_order_relaxed);
      if constexpr (kTasks) {
        unfinished_ -= std::min(unfinished_, dropped);
        if (unfinished_ == 0) w_done = all_done_.signal(true);
      }
    }
    const auto w_get = not_empty_.signal(true);
    const auto w_put = not_full_.signal(true);
    lk.unlock();
    not_empty_.wake(w_get);
    not_full_.wake(w_put);
    all_done_.wake(w_done);
  }

 protected:
  using Deadline = detail::Deadline;

  // ---- task accounting (exposed by Queue / LifoQueue / PriorityQueue) -------------------------
  void task_done_impl() {
    if constexpr (kLockFree) {
      if (ring_) return ring_->task_done();
      if (segs_) return segs_->task_done();
    }
    std::unique_lock lk(mu_);
    if (unfinished_ == 0) throw ValueError("task_done() called too many times");
    if (--unfinished_ != 0) return;
    const auto w = all_done_.signal(true);
    lk.unlock();
    all_done_.wake(w);
  }
  bool join_impl(const Deadline& deadline) {
    if constexpr (kLockFree) {
      if (ring_) return ring_->join(deadline);
      if (segs_) return segs_->join(deadline);
    }
    std::unique_lock lk(mu_);
    while (unfinished_ != 0) {
      if (deadline.expired()) return false;
      const auto ticket = all_done_.prepare();
      lk.unlock();
      all_done_.wait(ticket, deadline);
      lk.lock();
      all_done_.done();
    }
    return true;
  }
  [[nodiscard]] std::size_t unfinished_tasks_impl() const {
    if constexpr (kLockFree) {
      if (ring_) return ring_->unfinished_tasks();
      if (segs_) return segs_->unfinished_tasks();
    }
    std::scoped_lock lk(mu_);
    return unfinished_;
  }

 private:
  [[nodiscard]] bool has_room() const noexcept {
    return maxsize_ == 0 || container_.size() < maxsize_;
  }

  // wait_for_room: returns with the lock held and room available; false on timeout.
  // 1. Check under the lock. 2. Spin (bounded) without the lock and without registering, on the
  // lock-free size mirror, so a producer and a consumer that keep pace never touch the wait
  // queue. 3. Only then register, sleep in the kernel, and check again.
  bool wait_for_room(std::unique_lock<FutexMutex>& lk, const Deadline& deadline) {
    bool spun = false;
    for (;;) {
      if (shutdown_) throw ShutDown();  // 1.
      if (has_room()) return true;
      if (deadline.expired()) return false;
      if (!spun) {  // 2.
        spun = true;
        lk.unlock();
        spin_wait(
            [this] {
              return size_.load(std::memory_order_relaxed) < maxsize_ ||
                     stopping_.load(std::memory_order_relaxed);
            },
            deadline);
        lk.lock();
        continue;
      }
      const auto ticket = not_full_.prepare();  // 3.
      lk.unlock();
      not_full_.wait(ticket, deadline, false);
      lk.lock();
      not_full_.done();
    }
  }
  // wait_for_item: returns with the lock held and an item available; false on timeout. Same
  // three steps as wait_for_room.
  bool wait_for_item(std::unique_lock<FutexMutex>& lk, const Deadline& deadline) {
    bool spun = false;
    for (;;) {
      if (container_.size() != 0) return true;
      if (shutdown_) throw ShutDown();
      if (deadline.expired()) return false;
      if (!spun) {
        spun = true;
        lk.unlock();
        spin_wait(
            [this] {
              return size_.load(std::memory_order_relaxed) != 0 ||
                     stopping_.load(std::memory_order_relaxed);
            },
            deadline);
        lk.lock();
        continue;
      }
      const auto ticket = not_empty_.prepare();
      lk.unlock();
      not_empty_.wait(ticket, deadline, false);
      lk.lock();
      not_empty_.done();
    }
  }

  // put_impl moves from `item` only when it returns true.
  bool put_impl(T& item, const Deadline& deadline) {
    if constexpr (kLockFree) {
      if (ring_) return ring_->put(item, deadline);
      if (segs_) return segs_->put(item, deadline);
    }
    std::unique_lock lk(mu_);
    if (!wait_for_room(lk, deadline)) return false;
    container_.push(std::move(item));
    if constexpr (kTasks) ++unfinished_;
    size_.store(container_.size(), std::memory_order_relaxed);
    const auto w = not_empty_.signal();
    lk.unlock();
    not_empty_.wake(w);
    return true;
  }
  void put_or_throw(T& item, const Deadline& deadline) {
    if (!put_impl(item, deadline)) throw Full();
  }

  // PopOnReturn pops the top item once the caller's return value has been move-constructed from
  // it (its destructor runs after the return object is initialized): if that single move throws,
  // nothing is popped and the item stays queued. Then it signals a producer and unlocks.
  class PopOnReturn {
   public:
    PopOnReturn(BasicQueue& q, std::unique_lock<FutexMutex>& lk) noexcept
        : q_(q), lk_(lk), exceptions_(std::uncaught_exceptions()) {}
    PopOnReturn(const PopOnReturn&) = delete;
    PopOnReturn& operator=(const PopOnReturn&) = delete;
    ~PopOnReturn() {
      if (std::uncaught_exceptions() != exceptions_) return;  // the move threw: keep the item
      q_.container_.pop();
      q_.size_.store(q_.container_.size(), std::memory_order_relaxed);
      const auto w = q_.not_full_.signal();
      lk_.unlock();
      q_.not_full_.wake(w);
    }

   private:
    BasicQueue& q_;
    std::unique_lock<FutexMutex>& lk_;
    int exceptions_;
  };

  // ReleaseOnReturn frees a lock-free engine's slot once the caller's return value has been moved
  // out of it (T's move cannot throw on that path).
  template <class Engine>
  class ReleaseOnReturn {
   public:
    ReleaseOnReturn(Engine& engine, const typename Engine::Taken& taken) noexcept
        : engine_(engine), taken_(taken) {}
    ReleaseOnReturn(const ReleaseOnReturn&) = delete;
    ReleaseOnReturn& operator=(const ReleaseOnReturn&) = delete;
    ~ReleaseOnReturn() { engine_.release(taken_); }

   private:
    Engine& engine_;
    const typename Engine::Taken& taken_;
  };
  template <class Engine>
  static std::optional<T> take_from(Engine& engine, const Deadline& deadline) {
    const auto taken = engine.take(deadline);
    if (!taken) return std::nullopt;
    ReleaseOnReturn<Engine> release(engine, *taken);
    return std::optional<T>(std::in_place, std::move(*taken->value));
  }
  template <class Engine>
  static T take_or_throw(Engine& engine, const Deadline& deadline) {
    const auto taken = engine.take(deadline);
    if (!taken) throw Empty();
    ReleaseOnReturn<Engine> release(engine, *taken);
    return std::move(*taken->value);
  }

  // get_impl moves the item exactly once, straight into the returned optional.
  std::optional<T> get_impl(const Deadline& deadline) {
    if constexpr (kLockFree) {
      if (ring_) return take_from(*ring_, deadline);
      if (segs_) return take_from(*segs_, deadline);
    }
    std::unique_lock lk(mu_);
    if (!wait_for_item(lk, deadline)) return std::nullopt;
    PopOnReturn pop(*this, lk);
    return std::optional<T>(std::in_place, std::move(container_.top()));
  }
  // get_or_throw moves the item exactly once, straight into the caller's T.
  T get_or_throw(const Deadline& deadline) {
    if constexpr (kLockFree) {
      if (ring_) return take_or_throw(*ring_, deadline);
      if (segs_) return take_or_throw(*segs_, deadline);
    }
    std::unique_lock lk(mu_);
    if (!wait_for_item(lk, deadline)) throw Empty();
    PopOnReturn pop(*this, lk);
    return std::move(container_.top());
  }

  // get_many_impl: if moving an item throws, the items already taken are returned and the
  // exception is dropped (the failing item stays queued, so the next get meets it again); with
  // nothing taken yet, the exception propagates.
  std::vector<T> get_many_impl(std::size_t max, const Deadline& deadline) {
    if (max == 0) throw ValueError("get_many() needs max >= 1");
    std::vector<T> out;
    if constexpr (kLockFree) {
      if (ring_) {  // wait for one item, then claim what is there in runs, without waiting
        out.reserve(std::min(max, ring_->qsize() + 1));
        ring_->take_many(out, max, deadline);
        return out;
      }
      if (segs_) {
        out.reserve(std::min(max, segs_->qsize() + 1));
        segs_->take_many(out, max, deadline);
        return out;
      }
    }
    std::unique_lock lk(mu_);
    if (!wait_for_item(lk, deadline)) return out;
    const std::size_t n = std::min(max, container_.size());
    out.reserve(n);
    std::exception_ptr error;
    for (std::size_t i = 0; i < n; ++i) {
      try {
        out.push_back(std::move(container_.top()));
      } catch (...) {
        error = std::current_exception();
        break;
      }
      container_.pop();
    }
    size_.store(container_.size(), std::memory_order_relaxed);
    const auto w = not_full_.signal(out.size() > 1);
    lk.unlock();
    not_full_.wake(w);
    if (error && out.empty()) std::rethrow_exception(error);
    return out;
  }

  const std::size_t maxsize_;
  mutable FutexMutex mu_;
  Container container_ CONCUR_GUARDED_BY(mu_);
  std::size_t unfinished_ CONCUR_GUARDED_BY(mu_) = 0;
  bool shutdown_ CONCUR_GUARDED_BY(mu_) = false;
  std::atomic<std::size_t> size_{0};   // mirror of container_.size() for lock-free qsize()
  std::atomic<bool> stopping_{false};  // mirror of shutdown_ for lock-free spinning
  WaitQueue not_empty_;
  WaitQueue not_full_;
  WaitQueue all_done_;
  std::unique_ptr<Ring> ring_;      // set: the bounded lock-free engine serves every operation
  std::unique_ptr<Segments> segs_;  // set: the unbounded lock-free engine serves every operation
};

// TaskQueue adds Python's task accounting to a BasicQueue.
template <class T, class Container>
class TaskQueue : public BasicQueue<T, Container, true> {
  using Base = BasicQueue<T, Container, true>;

 public:
  using Base::Base;
  // task_done() marks one get() item as processed; throws ValueError when called more often than
  // items were put.
  void task_done() { this->task_done_impl(); }
  // join() blocks until every item put has been marked task_done() (or dropped by
  // shutdown(immediate=true)).
  void join() { this->join_impl(Deadline::infinite()); }
  // join(timeout) returns false when tasks were still unfinished after `timeout`.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->join_impl(Deadline::after(timeout));
  }
  template <class C, class D>
  bool join_until(std::chrono::time_point<C, D> tp) {
    return this->join_impl(Deadline::at(tp));
  }
  // unfinished_tasks() is the number of items put and not yet marked done.
  [[nodiscard]] std::size_t unfinished_tasks() const { return this->unfinished_tasks_impl(); }

 private:
  using Deadline = detail::Deadline;
};

}  // namespace detail

// Queue<T>: FIFO (queue.Queue). Queue<T> q(maxsize) — maxsize 0 is unbounded.
template <class T>
class Queue : public detail::TaskQueue<T, detail::FifoContainer<T>> {
 public:
  using detail::TaskQueue<T, detail::FifoContainer<T>>::TaskQueue;
};

// LifoQueue<T>: last in, first out (queue.LifoQueue).
template <class T>
class LifoQueue : public detail::TaskQueue<T, detail::LifoContainer<T>> {
 public:
  using detail::TaskQueue<T, detail::LifoContainer<T>>::TaskQueue;
};

// PriorityQueue<T, Compare>: the smallest item by Compare first, equal items in arrival order
// (queue.PriorityQueue). With Compare ordering only a priority field, items of equal priority
// come out FIFO — no (priority, count, item) tuple needed. Compare must be default-constructible
// (a struct, or decltype of a captureless lambda).
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::TaskQueue<T, detail::PriorityContainer<T, Compare>> {
 public:
  using detail::TaskQueue<T, detail::PriorityContainer<T, Compare>>::TaskQueue;
};

// SimpleQueue<T>: unbounded FIFO without task accounting (queue.SimpleQueue), the fastest path.
// Beyond Python: it also has shutdown(), so consumers blocked in get() can be released.
template <class T>
class SimpleQueue : public detail::BasicQueue<T, detail::FifoContainer<T>, false> {
 public:
  SimpleQueue() noexcept : detail::BasicQueue<T, detail::FifoContainer<T>, false>(0) {}
};

}  // namespace concur
