// concur/detail/range_lanes.hpp — RangeLanes, the adaptive splitter behind map()'s range tasks:
// the items [0, n) dealt out as k contiguous lanes, one per runner. A runner takes the items of
// its own lane from the bottom, one at a time (one uncontended CAS on a cache line of its own);
// a runner whose lane is empty steals the top half of the fullest lane, as oneTBB's auto
// partitioner splits a range when a thief asks for it. A runner that is descheduled or gets slow
// items thus loses its work to the others, and no item is handed out twice.
// take(i) claims one given item if it is still the next of its lane (the consumer cancelling the
// item it timed out on); take_all(f) claims everything still in a lane (cancellation). Items a
// thief is moving into its own lane (between its CAS on the victim and the store into its lane)
// are invisible to both for that instant: the thief runs or settles them itself.
// Memory ordering: claims are RMWs on one word per lane, so each item is claimed exactly once;
// the claimer's other accesses to the item are ordered by whatever published the work to it.
// Thread-safety: next(lane) only from the one runner owning `lane`; take(), take_all() and
// remaining() from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace concur::detail {

class RangeLanes {
 public:
  // kMaxItems: the most items a RangeLanes can deal out (lanes hold 32-bit bounds).
  static constexpr std::uint64_t kMaxItems = 0xfffffffeU;

  // RangeLanes(n, k): n items (n <= kMaxItems) over k >= 1 lanes, lane r starting with
  // [r·n/k, (r+1)·n/k).
  RangeLanes(std::uint32_t n, std::uint32_t k) : k_(k == 0 ? 1 : k), lanes_(new Lane[k_]) {
    for (std::uint32_t r = 0; r < k_; ++r) {
      const auto lo = static_cast<std::uint32_t>(std::uint64_t{n} * r / k_);
      const auto hi = static_cast<std::uint32_t>(std::uint64_t{n} * (r + 1) / k_);
      lanes_[r].word.store(pack(lo, hi), std::memory_order_relaxed);
    }
  }
  RangeLanes(const RangeLanes&) = delete;
  RangeLanes& operator=(const RangeLanes&) = delete;

  [[nodiscard]] std::uint32_t lanes() const noexcept { return k_; }

  // next(lane, item): the next item for the runner owning `lane`: its lane's lowest, else half of
  // the fullest other lane (the runner's lane then holds the rest of that half). False when every
  // lane is empty.
  bool next(std::uint32_t lane, std::uint32_t& item) noexcept {
    std::atomic<std::uint64_t>& mine = lanes_[lane].word;
    std::uint64_t w = mine.load(std::memory_order_relaxed);
    while (lo_of(w) < hi_of(w)) {
      if (mine.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
        item = lo_of(w);
        return true;
      }
    }
    return steal(lane, item);
  }

  // take(item): claims `item` if it is still the next item of its lane; false otherwise (done,
  // running, being moved by a thief, or behind other unclaimed items of its lane).
  bool take(std::uint32_t item) noexcept {
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

  // take_all(f): claims every item still in a lane, calling f(lo, hi) for each range claimed.
  template <class F>
  void take_all(F&& f) {
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

  // remaining(): a snapshot of the items not claimed yet.
  [[nodiscard]] std::uint64_t remaining() const noexcept {
    std::uint64_t n = 0;
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
        lanes_[lane].word.store(pack(mid + 1, hi), std::memory_order_release);
        item = mid;
        return true;
      }
    }
  }

  const std::uint32_t k_;
  const std::unique_ptr<Lane[]> lanes_;
};

}  // namespace concur::detail
