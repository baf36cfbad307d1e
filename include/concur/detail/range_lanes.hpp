// concur/detail/range_lanes.hpp — RangeLanes, the splitter behind map()'s range tasks: the items
// [0, n) handed out to k runners in input order, in chunks whose size each runner chooses, with
// stealing so that nobody waits at the end for a runner that is slow or descheduled.
//
// Each runner owns a lane (one 64-bit word per cache line holding [lo, hi)). next(lane, grain)
// returns the lowest item of the runner's lane (one uncontended CAS); when the lane is empty it
// claims the next `grain` items from the shared cursor (one fetch_add: items start in input order,
// as they would from a FIFO queue, up to the chunk size); when the cursor is exhausted too it
// steals the upper half of the fullest lane, as oneTBB's auto partitioner splits a range on
// demand. take(i) claims one given item if it is the cursor's next or a lane's lowest (the consumer
// cancelling the item it timed out on); take_all(f) claims everything left (cancellation). Items
// a runner is moving into its own lane (between the cursor's or a victim's RMW and its store) are
// invisible to the others for that instant: that runner runs or settles them itself.
// Memory ordering: every claim is an RMW (the cursor, or a lane word), so each item is claimed
// exactly once; the claimer's accesses to the item itself are ordered by whatever published the
// work to it.
// Thread-safety: next(lane, ...) only from the one runner owning `lane`; take(), take_all() and
// remaining() from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace concur::detail {

class RangeLanes {
 public:
  // kMaxItems: the most items a RangeLanes can hand out (lanes hold 32-bit bounds).
  static constexpr std::uint64_t kMaxItems = 0xfffffffeU;

  // RangeLanes(n, k): n items (n <= kMaxItems), k >= 1 lanes, all empty; the cursor at 0.
  RangeLanes(std::uint32_t n, std::uint32_t k) : n_(n), k_(k == 0 ? 1 : k), lanes_(new Lane[k_]) {}
  RangeLanes(const RangeLanes&) = delete;
  RangeLanes& operator=(const RangeLanes&) = delete;

  [[nodiscard]] std::uint32_t size() const noexcept { return n_; }
  [[nodiscard]] std::uint32_t lanes() const noexcept { return k_; }

  // next(lane, grain, item): the next item for the runner owning `lane`: the lowest of its lane;
  // else the cursor's next, the following grain - 1 items going into its lane; else half of the
  // fullest other lane (the rest of that half going into its lane). False when nothing is left.
  bool next(std::uint32_t lane, std::uint32_t grain, std::uint32_t& item) noexcept {
    std::atomic<std::uint64_t>& mine = lanes_[lane].word;
    std::uint64_t w = mine.load(std::memory_order_relaxed);
    while (lo_of(w) < hi_of(w)) {
      if (mine.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
        item = lo_of(w);
        return true;
      }
    }
    if (cursor_.load(std::memory_order_relaxed) < n_) {
      const std::uint64_t g = grain == 0 ? 1 : grain;
      const std::uint64_t lo = cursor_.fetch_add(g, std::memory_order_acq_rel);
      if (lo < n_) {
        const std::uint64_t hi = lo + g < n_ ? lo + g : n_;
        if (hi > lo + 1) {
          mine.store(pack(static_cast<std::uint32_t>(lo + 1), static_cast<std::uint32_t>(hi)),
                     std::memory_order_release);
        }
        item = static_cast<std::uint32_t>(lo);
        return true;
      }
    }
    return steal(lane, item);
  }

  // take(item): claims `item` if it is still the cursor's next item or the lowest of a lane; false
  // otherwise (claimed already, being moved, or behind other unclaimed items).
  bool take(std::uint32_t item) noexcept {
    std::uint64_t c = cursor_.load(std::memory_order_relaxed);
    while (c == item) {
      if (cursor_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
        return true;
      }
    }
    for (std::uint32_t r = 0; r < k_; ++r) {
      std::atomic<std::uint64_t>& lane = lanes_[r].word;
      std::uint64_t w = lane.load(std::memory_order_relaxed);
      while (lo_of(w) <= item && item < hi_of(w)) {
        if (lo_of(w) != item) return false;
        if (lane.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
          return true;
        }
      }
    }
    return false;
  }

  // take_all(f): claims every item not handed out yet, calling f(lo, hi) for each range claimed.
  template <class F>
  void take_all(F&& f) {
    const std::uint64_t c = cursor_.exchange(n_, std::memory_order_acq_rel);
    if (c < n_) f(static_cast<std::uint32_t>(c), n_);
    for (std::uint32_t r = 0; r < k_; ++r) {
      std::atomic<std::uint64_t>& lane = lanes_[r].word;
      std::uint64_t w = lane.load(std::memory_order_relaxed);
      while (lo_of(w) < hi_of(w)) {
        if (lane.compare_exchange_weak(w, pack(hi_of(w), hi_of(w)), std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
          f(lo_of(w), hi_of(w));
          break;
        }
      }
    }
  }

  // fresh(): a snapshot of the items the cursor has not handed out yet.
  [[nodiscard]] std::uint32_t fresh() const noexcept {
    const std::uint64_t c = cursor_.load(std::memory_order_relaxed);
    return c < n_ ? static_cast<std::uint32_t>(n_ - c) : 0;
  }

  // remaining(): a snapshot of the items not handed out yet.
  [[nodiscard]] std::uint64_t remaining() const noexcept {
    const std::uint64_t c = cursor_.load(std::memory_order_relaxed);
    std::uint64_t n = c < n_ ? n_ - c : 0;
    for (std::uint32_t r = 0; r < k_; ++r) {
      const std::uint64_t w = lanes_[r].word.load(std::memory_order_relaxed);
      if (lo_of(w) < hi_of(w)) n += hi_of(w) - lo_of(w);
    }
    return n;
  }

 private:
  // A lane is [lo, hi) packed as hi << 32 | lo: the owner's take is a plain increment.
  struct alignas(64) Lane {
    std::atomic<std::uint64_t> word{0};
  };
  static constexpr std::uint64_t pack(std::uint32_t lo, std::uint32_t hi) noexcept {
    return std::uint64_t{hi} << 32 | lo;
  }
  static constexpr std::uint32_t lo_of(std::uint64_t w) noexcept {
    return static_cast<std::uint32_t>(w);
  }
  static constexpr std::uint32_t hi_of(std::uint64_t w) noexcept {
    return static_cast<std::uint32_t>(w >> 32);
  }

  // steal(lane, item): split the fullest other lane [lo, hi) at mid = lo + (hi - lo) / 2, keep
  // [mid, hi) (run mid now, the rest goes into our own lane). A lost CAS means another thief or
  // the owner moved: look again.
  bool steal(std::uint32_t lane, std::uint32_t& item) noexcept {
    for (;;) {
      std::uint32_t victim = k_;
      std::uint64_t vw = 0;
      std::uint32_t most = 0;
      for (std::uint32_t i = 1; i < k_; ++i) {
        const std::uint32_t r = (lane + i) % k_;
        const std::uint64_t w = lanes_[r].word.load(std::memory_order_relaxed);
        if (lo_of(w) < hi_of(w) && hi_of(w) - lo_of(w) > most) {
          most = hi_of(w) - lo_of(w);
          victim = r;
          vw = w;
        }
      }
      if (victim == k_) return false;
      const std::uint32_t lo = lo_of(vw);
      const std::uint32_t hi = hi_of(vw);
      const std::uint32_t mid = lo + (hi - lo) / 2;
      if (lanes_[victim].word.compare_exchange_strong(vw, pack(lo, mid), std::memory_order_acq_rel,
                                                      std::memory_order_relaxed)) {
        if (hi > mid + 1) lanes_[lane].word.store(pack(mid + 1, hi), std::memory_order_release);
        item = mid;
        return true;
      }
    }
  }

  const std::uint32_t n_;
  const std::uint32_t k_;
  alignas(64) std::atomic<std::uint64_t> cursor_{0};  // the next item no lane holds yet
  const std::unique_ptr<Lane[]> lanes_;
};

}  // namespace concur::detail
