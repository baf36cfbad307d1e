// concur/detail/work_deque.hpp — WorkDeque<T*>, the per-worker work-stealing deque of the thread
// pool: the owning worker pushes and pops at the bottom (newest first), other workers steal from
// the top (oldest first). After Chase and Lev, "Dynamic Circular Work-Stealing Deque" (SPAA
// 2005), in the C11 formulation of Lê, Pop, Cohen and Zappa Nardelli (PPoPP 2013), with the
// seq_cst fences replaced by seq_cst accesses to top and bottom (ThreadSanitizer does not model
// fences).
//
// push() never fails: a full array is replaced by one twice the size; old arrays stay alive until
// the deque is destroyed (a thief may still be reading one), so the memory is at most twice the
// largest array. pop() and steal() return nullptr when the deque is empty; steal() also returns
// nullptr when it lost a race for the last items (the caller tries elsewhere).
// Memory ordering: the bottom store in push() is seq_cst, so a pushed pointer — and everything the
// owner did before push() — is visible to the thread that pops or steals it; the pool's parking
// protocol (EventCount) relies on that store being seq_cst too.
// Thread-safety: push() and pop() only from the owning thread; steal(), size_hint() from any.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace concur::detail {

template <class T>
class WorkDeque {
 public:
  explicit WorkDeque(std::size_t initial_capacity = 256)
      : array_(new Array(round_up(initial_capacity))) {
    arrays_.emplace_back(array_.load(std::memory_order_relaxed));
  }
  WorkDeque(const WorkDeque&) = delete;
  WorkDeque& operator=(const WorkDeque&) = delete;
  ~WorkDeque() = default;

  // push(x): owner only.
  void push(T* x) {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    const std::int64_t t = top_.load(std::memory_order_acquire);
    Array* a = array_.load(std::memory_order_relaxed);
    if (b - t > a->capacity() - 1) a = grow(a, t, b);
    a->put(b, x);
    bottom_.store(b + 1, std::memory_order_seq_cst);
  }

  // pop(): owner only; the newest item, or nullptr.
  T* pop() noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Array* a = array_.load(std::memory_order_relaxed);
    bottom_.store(b, std::memory_order_seq_cst);
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    if (t > b) {  // empty
      bottom_.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    T* x = a->get(b);
    if (t == b) {  // the last item: race the thieves for it
      if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
        x = nullptr;
      }
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return x;
  }

  // steal(): any thread; the oldest item, or nullptr (empty, or another thread won it).
  T* steal() noexcept {
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    const std::int64_t b = bottom_.load(std::memory_order_seq_cst);
    if (t >= b) return nullptr;
    Array* a = array_.load(std::memory_order_acquire);
    T* x = a->get(t);
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
      return nullptr;
    }
    return x;
  }

  // size_hint(): a snapshot (seq_cst loads: usable as the re-check of a parking worker).
  [[nodiscard]] std::size_t size_hint() const noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_seq_cst);
    const std::int64_t t = top_.load(std::memory_order_seq_cst);
    return b > t ? static_cast<std::size_t>(b - t) : 0;
  }

 private:
  class Array {
   public:
    explicit Array(std::int64_t capacity)
        : capacity_(capacity), slots_(new std::atomic<T*>[static_cast<std::size_t>(capacity)]) {}
    [[nodiscard]] std::int64_t capacity() const noexcept { return capacity_; }
    void put(std::int64_t i, T* x) noexcept {
      slots_[static_cast<std::size_t>(i & (capacity_ - 1))].store(x, std::memory_order_relaxed);
    }
    T* get(std::int64_t i) const noexcept {
      return slots_[static_cast<std::size_t>(i & (capacity_ - 1))].load(std::memory_order_relaxed);
    }

   private:
    const std::int64_t capacity_;  // a power of two
    const std::unique_ptr<std::atomic<T*>[]> slots_;
  };

  static std::int64_t round_up(std::size_t n) {
    std::int64_t c = 16;
    while (c < static_cast<std::int64_t>(n)) c *= 2;
    return c;
  }

  Array* grow(Array* a, std::int64_t t, std::int64_t b) {
    auto bigger = std::make_unique<Array>(a->capacity() * 2);
    for (std::int64_t i = t; i < b; ++i) bigger->put(i, a->get(i));
    Array* raw = bigger.get();
    arrays_.push_back(std::move(bigger));
    array_.store(raw, std::memory_order_release);
    return raw;
  }

  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  std::atomic<Array*> array_;
  std::vector<std::unique_ptr<Array>> arrays_;  // owner only: every array ever used
};

}  // namespace concur::detail
