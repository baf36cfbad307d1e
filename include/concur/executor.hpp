// concur/executor.hpp — Executor, concurrent.futures.Executor: the one interface the thread pool,
// the process pool, the coroutine loop and the Redis executor implement.
//
// submit(fn, args...) → Future<R> schedules fn(args...) (decayed copies, as std::thread; pass
// std::ref for references; a fn taking a leading std::stop_token gets one that Future::cancel()
// triggers). map(fn, ranges..., MapOptions) → an input range of fn's results in input order.
// shutdown(wait = true, cancel_futures = false) stops accepting work (submit then throws
// RuntimeError), optionally cancels what has not started, and with wait = true returns once
// every started task finished. An implementation's destructor is shutdown(true).
//
// map() is lazy: it keeps at most MapOptions::window tasks in flight (default 2 × max_workers()),
// submitting the next input as each result is taken, so an endless input range is fine; with
// eager = true it submits every input at once, as Python does (sized ranges only). The inputs
// are zipped: the shortest range ends the map. MapOptions::timeout counts from the map() call,
// as Python's: taking a result after it passed throws TimeoutError (and cancels that task, as
// Python does). A task's exception is rethrown when its result is taken. Destroying the range
// (or leaving the loop early) cancels the tasks not yet started. If the executor shuts down while
// a lazy map still has inputs to submit, the results in flight are yielded first, then the
// submit's RuntimeError is thrown.
// Range tasks: an eager map (or one whose window holds every input) on an executor whose tasks
// run in this process (ThreadPoolExecutor; Executor::bulk_gate()) does not make one task and one
// future per input: the inputs are copied into one array of slots in the calling thread, and
// min(inputs, max_workers()) tasks run them, claiming them in input order (one at a time while an
// input takes more than ~200 µs, so they start in input order as from Python's queue; in chunks
// sized to ~200 µs for smaller ones) and stealing half of another task's chunk at the end (as
// oneTBB's auto partitioner splits ranges), each result going straight into its slot. The
// contract above holds item by item (order, exceptions, timeout, cancellation, cancel_futures, a
// broken pool); fn runs only on the executor's threads, at most max_workers() items at once; the
// executor's stats() count the range tasks. A fn taking a std::stop_token keeps one task per
// input. An input waiting for the task that iterates its own map raises DeadlockError on a
// ThreadPoolExecutor, as with one task per input (the range's wait names the range task running
// the item it waits for).
// Lifetime: a map() range refers to its executor, which must outlive it.
// Thread-safety: submit, map and shutdown may be called from any thread, including a task
// running on the executor itself; one map() range is used by one thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
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
#include <tuple>
#include <type_traits>
#include <utility>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/range_lanes.hpp"
#include "concur/errors.hpp"
#include "concur/future.hpp"

namespace concur {

// MapOptions: Executor::map's optional last argument.
struct MapOptions {
  // timeout: from the map() call until every result is taken (Python's `timeout`); none: forever.
  std::optional<std::chrono::nanoseconds> timeout{};
  // window: tasks in flight at most (0: 2 × max_workers(); ProcessPoolExecutor: 64 chunks per
  // worker); ignored when eager.
  std::size_t window = 0;
  // eager: submit every input at once, like Python (needs sized ranges).
  bool eager = false;
  // chunksize: inputs per task (Python's chunksize), used by ProcessPoolExecutor::map, where a
  // chunk is one round trip to a worker; ignored by executors that run tasks in this process.
  std::size_t chunksize = 1;
};

template <class R, class Fn, class... Ranges>
class MapResults;

namespace detail {

// ZippedInputs<Ranges...> walks map()'s input views in step: the shortest one ends them.
template <class... Ranges>
class ZippedInputs {
 public:
  explicit ZippedInputs(Ranges... ranges)
      : ranges_(std::move(ranges)...),
        its_(std::apply([](auto&... r) { return std::tuple(std::ranges::begin(r)...); }, ranges_)) {
  }
  ZippedInputs(const ZippedInputs&) = delete;
  ZippedInputs& operator=(const ZippedInputs&) = delete;
  [[nodiscard]] bool exhausted() const {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return ((std::get<I>(its_) == std::ranges::end(std::get<I>(ranges_))) || ...);
    }
    (std::index_sequence_for<Ranges...>());
  }
  // take(f): f(current elements...), then a step forward (if f throws, nothing is consumed).
  template <class F>
  void take(F&& f) {
    std::apply([&](auto&... it) { f(*it...); }, its_);
    std::apply([](auto&... it) { (++it, ...); }, its_);
  }
  // size(): how many steps the inputs have (the shortest range), before any take().
  [[nodiscard]] std::size_t size() requires(std::ranges::sized_range<Ranges>&&...) {
    return std::apply(
        [](auto&... r) { return std::min({static_cast<std::size_t>(std::ranges::size(r))...}); },
        ranges_);
  }

 private:
  std::tuple<Ranges...> ranges_;
  std::tuple<std::ranges::iterator_t<Ranges>...> its_;
};

// map_window(options, default_window): the most tasks a map keeps in flight: every input when
// eager (ValueError unless every range is sized), else MapOptions::window or the default.
template <class... Ranges>
std::size_t map_window(const MapOptions& options, std::size_t default_window) {
  if (!options.eager) return options.window != 0 ? options.window : default_window;
  if constexpr (!(std::ranges::sized_range<Ranges> && ...)) {
    throw ValueError("map(..., MapOptions{.eager = true}) needs sized ranges");
  }
  return static_cast<std::size_t>(-1);
}

// ResultsRange<D, R> is the single-pass input-range surface of map()'s results (MapResults, and
// ProcessPoolExecutor's chunked map): D provides finished(), current() → R& and advance(), and
// befriends ResultsRange<D, R>::iterator.
template <class D, class R>
class ResultsRange {
 public:
  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(D* m) : m_(m) {}
    R& operator*() const { return m_->current(); }
    iterator& operator++() {
      m_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

   private:
    [[nodiscard]] bool at_end() const { return m_->finished(); }
    D* m_ = nullptr;
  };
  iterator begin() { return iterator(static_cast<D*>(this)); }
  std::default_sentinel_t end() { return {}; }

 protected:
  ResultsRange() = default;
};

// ---- map()'s range tasks (the fast path of an eager map on an in-process executor) ------------
//
// An eager map whose executor runs tasks on threads of this process (Executor::bulk_gate() is
// not null) does not make one task and one future per input. Its inputs are copied into one
// array of slots in the calling thread, as the one-task-per-input path copies them into its
// tasks, and k = min(n, max_workers()) range tasks (MapRunner) run the items: each claims chunks
// of items in input order from RangeLanes (one item per chunk while items take longer than
// kChunkTime, bigger chunks for tiny ones), steals half of the fullest chunk once none is left,
// and writes each outcome into the item's slot (the value, or the exception) with one store of
// its state. The range waits on the slot it yields next, on a MapGate the runner that finishes
// that very item opens. Python's contract is kept item by item: results in input order, an
// exception at its position (the later items still run), the timeout cancelling the item it fired
// on, the range's destruction cancelling what has not started, shutdown(cancel_futures = true) and
// a broken executor settling every unstarted item (the runners ask the executor's BulkGate before
// each item; a runner the executor drops settles the rest once it is the last one).

// BulkGate: what an executor whose tasks run in this process tells map()'s range tasks before
// each item they start. The executor returns it from Executor::bulk_gate(), shared, so that it
// outlives the executor object as long as its tasks may run.
class BulkGate {
 public:
  virtual ~BulkGate() = default;
  // refuses(why): true once the executor runs no more work that has not started: `why` is then
  // nullptr (shutdown(cancel_futures = true): the work is cancelled) or the error the work gets
  // (e.g. BrokenThreadPool). False: the item may run.
  virtual bool refuses(std::exception_ptr& why) const noexcept = 0;
  // pool_id(): the FutureStateBase::pool_id() the executor's tasks carry (kNoPool: none), so that
  // the range's MapGate counts as the pool's own future (its workers help in a wait on it).
  [[nodiscard]] virtual std::uint32_t pool_id() const noexcept { return FutureStateBase::kNoPool; }

 protected:
  BulkGate() = default;
  BulkGate(const BulkGate&) = default;
  BulkGate& operator=(const BulkGate&) = default;
};

// MapLaneNow: what the runner of one lane is doing, for the deadlock check: its task's state and
// the item it runs (kNone between items). Written by that runner only; one per cache line.
struct alignas(64) MapLaneNow {
  static constexpr std::uint32_t kNone = 0xffffffffU;
  std::atomic<const FutureStateBase*> runner{nullptr};
  std::atomic<std::uint32_t> item{kNone};
};

// MapGate: the state a range blocks on while its next item runs — a FutureStateBase carrying the
// executor's pool_id(), so that a blocking wait in a worker of that pool helps (runs queued
// tasks, the range tasks among them) meanwhile.
// reset() re-arms it (the range only, while nobody can open it for the current wait); open() may
// come late, from a wait already over: the range then sees a spurious wake-up and waits again.
// finisher() names the range task running the item the range waits for, so that a pool's
// deadlock check follows the wait through it (an item waiting for the task that iterates its own
// map raises DeadlockError, as with one task per input).
class MapGate final : public FutureStateBase {
 public:
  MapGate() noexcept : FutureStateBase(kRef) {}
  ~MapGate() override = default;
  // watch(waiting, now, lanes): where finisher() reads the item waited for and the lanes' runners.
  void watch(const std::atomic<std::uint32_t>* waiting, const MapLaneNow* now,
             std::uint32_t lanes) noexcept {
    waiting_ = waiting;
    now_ = now;
    lanes_ = lanes;
  }
  [[nodiscard]] const FutureStateBase* finisher() const noexcept override {
    if (now_ == nullptr) return nullptr;
    const std::uint32_t j = waiting_->load(std::memory_order_acquire);
    if (j == MapLaneNow::kNone) return nullptr;
    for (std::uint32_t l = 0; l < lanes_; ++l) {
      if (now_[l].item.load(std::memory_order_acquire) == j) {
        return now_[l].runner.load(std::memory_order_acquire);
      }
    }
    return nullptr;  // not started: whoever takes it is not blocked yet
  }
  void reset() noexcept { word_.store(kPending, std::memory_order_relaxed); }
  void open() noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    while (!is_done(w)) {
      if (word_.compare_exchange_weak(w, (w & ~kStateMask) | kFinished, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        if ((w & kSleeper) != 0) futex_wake_all(word_);
        return;
      }
    }
  }

 private:
  const std::atomic<std::uint32_t>* waiting_ = nullptr;
  const MapLaneNow* now_ = nullptr;
  std::uint32_t lanes_ = 0;
};

// MapSlot<Args, R>: one input of a range-task map: its arguments until it runs, then its outcome.
// `state` is written once by the item's runner (or whoever settles it: one seq_cst store, see
// MapBlock::publish), then once more by the range when it takes the outcome (kTaken).
template <class Args, class R>
struct MapSlot {
  static constexpr std::uint8_t kPending = 0;    // args alive: not run yet
  static constexpr std::uint8_t kValue = 1;      // value alive
  static constexpr std::uint8_t kError = 2;      // error alive: fn threw (reported if never taken)
  static constexpr std::uint8_t kCancelled = 3;  // never ran: cancelled
  static constexpr std::uint8_t kRefused = 4;    // error alive: the executor refused it
  static constexpr std::uint8_t kTaken = 5;      // the range took the outcome

  MapSlot() noexcept {}  // NOLINT(modernize-use-equals-default): the unions stay unconstructed
  ~MapSlot() {}          // NOLINT(modernize-use-equals-default): MapBlock destroys the members
  MapSlot(const MapSlot&) = delete;
  MapSlot& operator=(const MapSlot&) = delete;

  std::atomic<std::uint8_t> state{kPending};
  union {
    Args args;
  };
  union {
    R value;
    std::exception_ptr error;
  };
};

// MapBlock<R, Fn, Args>: what a range-task map's range and its runners share (std::shared_ptr:
// the last of them destroys it). The range fills the arguments, starts the lanes, then only
// waits for, takes and cancels items; runners run lanes.
template <class R, class Fn, class Args>
class MapBlock {
 public:
  using Slot = MapSlot<Args, R>;
  static constexpr std::uint32_t kNone = 0xffffffffU;

  MapBlock(Fn fn, std::size_t capacity, std::shared_ptr<const BulkGate> gate)
      : fn_(std::move(fn)), slots_(new Slot[capacity]), gate_(std::move(gate)) {
    wake_.set_pool_id(gate_->pool_id());
  }
  MapBlock(const MapBlock&) = delete;
  MapBlock& operator=(const MapBlock&) = delete;
  ~MapBlock() {
    for (std::uint32_t i = 0; i < n_; ++i) {
      Slot& s = slots_[i];
      switch (s.state.load(std::memory_order_relaxed)) {
        case Slot::kPending:
          std::destroy_at(std::addressof(s.args));
          break;
        case Slot::kValue:
          std::destroy_at(std::addressof(s.value));
          break;
        case Slot::kError:  // an exception nobody took: the excepthook, as for a dropped future
          report_exception(s.error);
          std::destroy_at(std::addressof(s.error));
          break;
        case Slot::kRefused:
          std::destroy_at(std::addressof(s.error));
          break;
        default:
          break;
      }
    }
  }

  // ---- the range, before the runners start ----
  // push(xs...): the next item's arguments (decayed copies, as submit() makes them).
  template <class... X>
  void push(X&... xs) {
    ::new (static_cast<void*>(std::addressof(slots_[n_].args))) Args(xs...);
    ++n_;
  }
  [[nodiscard]] std::uint32_t size() const noexcept { return n_; }
  // start(k): the RangeLanes of the items for k runners; add_runner() before each runner is
  // handed over.
  void start(std::uint32_t k) {
    lanes_.emplace(n_, k);
    now_.reset(new MapLaneNow[k]);
    wake_.watch(&waiting_, now_.get(), k);
  }
  void add_runner() noexcept { live_.fetch_add(1, std::memory_order_relaxed); }

  // ---- runners ----
  // kChunkTime: how long a runner's chunk of fresh items should take. A runner starts with one
  // item per chunk (inputs that take longer start in input order, as from a FIFO queue) and
  // resizes its chunks from the time its items took, so that claiming costs little next to
  // running even for tiny items; never more than its share of what is left (the end balances).
  // 200 µs, not less: runners working on neighbouring short chunks of an array that streams
  // from memory ran ~8 % slower (20 µs chunks; docs/benchmarks.md, issue 13).
  static constexpr std::chrono::nanoseconds kChunkTime{200'000};

  // run_lane(lane, self): run items until none is left, the range is gone, or the executor
  // refuses; `self` is the runner's task state (what the deadlock check looks for on the stacks).
  void run_lane(std::uint32_t lane, const FutureStateBase* self) noexcept {
    MapLaneNow& doing = now_[lane];
    doing.runner.store(self, std::memory_order_release);
    struct Idle {
      MapLaneNow& doing;
      ~Idle() { doing.item.store(MapLaneNow::kNone, std::memory_order_release); }
    } idle{doing};
    std::uint32_t grain = 1;
    std::uint32_t ran = 0;  // items since the last resize
    Clock::time_point since = Clock::now();
    std::uint32_t i = 0;
    for (;;) {
      if (stop_.load(std::memory_order_relaxed)) return;
      std::exception_ptr why;
      if (gate_->refuses(why)) {
        settle_all(why);
        return;
      }
      if (!lanes_->next(lane, grain, i)) return;
      doing.item.store(i, std::memory_order_release);
      run_item(i);
      if (++ran >= grain) {
        const Clock::time_point now = Clock::now();
        grain = next_grain(ran, now - since);
        ran = 0;
        since = now;
      }
    }
  }
  // runner_gone(why): a runner left, having run (why unused) or been dropped by the executor
  // (why: nullptr for cancelled, or the executor's error). The last one out settles whatever no
  // runner can take any more (only left when every runner was dropped), unless the range is gone
  // (the destructor then drops the unstarted arguments). Also called once by the range when it
  // has handed every runner over (its own count keeps the total above zero).
  void runner_gone(std::exception_ptr why) noexcept {
    if (why) {
      std::scoped_lock lk(why_mu_);
      if (!why_) why_ = std::move(why);
    }
    if (live_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        !stop_.load(std::memory_order_relaxed)) {
      std::exception_ptr reason;
      {
        std::scoped_lock lk(why_mu_);
        reason = why_;
      }
      settle_all(reason);
    }
  }

  // ---- the range ----
  // wait(j, d): until item j has an outcome (true) or the deadline passed (false).
  bool wait(std::uint32_t j, const Deadline& d) {
    const Slot& s = slots_[j];
    while (s.state.load(std::memory_order_acquire) == Slot::kPending) {
      wake_.reset();
      waiting_.store(j, std::memory_order_seq_cst);
      if (s.state.load(std::memory_order_seq_cst) == Slot::kPending && !wake_.wait(d) &&
          s.state.load(std::memory_order_acquire) == Slot::kPending) {
        waiting_.store(kNone, std::memory_order_relaxed);
        return false;
      }
      waiting_.store(kNone, std::memory_order_relaxed);
    }
    return true;
  }
  // cancel(j): item j never runs if no runner has taken it yet.
  void cancel(std::uint32_t j) noexcept {
    if (lanes_->take(j)) settle(j, nullptr);
  }
  // take(j, out): item j's outcome (it has one): its value into `out`, or its exception thrown.
  void take(std::uint32_t j, std::optional<R>& out) {
    Slot& s = slots_[j];
    switch (s.state.load(std::memory_order_acquire)) {
      case Slot::kValue:
        out.emplace(std::move(s.value));
        std::destroy_at(std::addressof(s.value));
        s.state.store(Slot::kTaken, std::memory_order_relaxed);
        return;
      case Slot::kCancelled:
        s.state.store(Slot::kTaken, std::memory_order_relaxed);
        throw_cancelled();
      case Slot::kError:
      case Slot::kRefused: {
        std::exception_ptr e = std::move(s.error);
        std::destroy_at(std::addressof(s.error));
        s.state.store(Slot::kTaken, std::memory_order_relaxed);
        std::rethrow_exception(std::move(e));
      }
      default:
        throw InvalidStateError("map(): no result to take");
    }
  }
  // stop(): the range is gone: the runners leave the items they have not started.
  void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }

 private:
  // next_grain(ran, took): the chunk that would take kChunkTime at the pace of the last `ran`
  // items, at most the runner's share of half the fresh items left.
  std::uint32_t next_grain(std::uint32_t ran, Clock::duration took) const noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took).count();
    const std::uint64_t want = ns <= 0 ? std::uint64_t{ran} * 2
                                       : static_cast<std::uint64_t>(kChunkTime.count()) * ran /
                                             static_cast<std::uint64_t>(ns);
    const std::uint64_t share = lanes_->fresh() / (2 * std::uint64_t{lanes_->lanes()});
    return static_cast<std::uint32_t>(std::max<std::uint64_t>(1, std::min(want, share)));
  }

  void run_item(std::uint32_t i) noexcept {
    Slot& s = slots_[i];
    std::uint8_t outcome = Slot::kValue;
    try {
      Fn f(fn_);  // a fresh copy per item, called as an rvalue, as submit()'s task calls its own
      ::new (static_cast<void*>(std::addressof(s.value))) R(std::apply(
          [&f](auto&... a) -> R { return std::invoke(std::move(f), std::move(a)...); }, s.args));
    } catch (...) {
      ::new (static_cast<void*>(std::addressof(s.error)))
          std::exception_ptr(std::current_exception());
      outcome = Slot::kError;
    }
    std::destroy_at(std::addressof(s.args));
    publish(i, outcome);
  }
  // settle(i, why): item i, claimed by the caller, never runs: cancelled, or failed with why.
  void settle(std::uint32_t i, const std::exception_ptr& why) noexcept {
    Slot& s = slots_[i];
    std::destroy_at(std::addressof(s.args));
    if (why) ::new (static_cast<void*>(std::addressof(s.error))) std::exception_ptr(why);
    publish(i, why ? Slot::kRefused : Slot::kCancelled);
  }
  void settle_all(const std::exception_ptr& why) noexcept {
    lanes_->take_all([&](std::uint32_t lo, std::uint32_t hi) {
      for (std::uint32_t i = lo; i < hi; ++i) settle(i, why);
    });
  }
  // publish(i, outcome): the one store that hands item i's outcome to the range, then the
  // wake-up if the range sleeps on exactly this item. seq_cst on both sides (the range stores
  // waiting_, then re-reads the state): either it sees the outcome or this sees it waiting.
  void publish(std::uint32_t i, std::uint8_t outcome) noexcept {
    slots_[i].state.store(outcome, std::memory_order_seq_cst);
    if (waiting_.load(std::memory_order_seq_cst) == i) {
      std::uint32_t expected = i;
      if (waiting_.compare_exchange_strong(expected, kNone, std::memory_order_seq_cst)) {
        wake_.open();
      }
    }
  }

  const Fn fn_;
  const std::unique_ptr<Slot[]> slots_;
  std::uint32_t n_ = 0;  // written by the range before any runner starts
  std::optional<RangeLanes> lanes_;
  std::unique_ptr<MapLaneNow[]> now_;  // per lane, for MapGate::finisher()
  const std::shared_ptr<const BulkGate> gate_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint32_t> live_{1};  // runners that may still run, + 1 until all are handed over
  FutexMutex why_mu_;
  std::exception_ptr why_ CONCUR_GUARDED_BY(why_mu_);      // the first error a dropped runner got
  alignas(64) std::atomic<std::uint32_t> waiting_{kNone};  // the item the range sleeps on
  MapGate wake_;
};

// MapRunner<Block>: one range task (a Runnable of its own, with a state the pool's deadlock
// check can see while it runs; nobody waits on that state).
template <class Block>
class MapRunner final : public FutureStateBase, public Runnable {
 public:
  MapRunner(std::shared_ptr<Block> block, std::uint32_t lane) noexcept
      : FutureStateBase(kRef), block_(std::move(block)), lane_(lane) {}

  void run() noexcept override {
    consumed_ = true;
    block_->run_lane(lane_, this);
    block_->runner_gone(nullptr);
    block_.reset();
  }
  FutureStateBase& future_state() noexcept override { return *this; }
  void dispose() noexcept override {
    if (!consumed_) do_abandon(broken_task_error());
    release_ref();
  }

 protected:
  void do_abandon(std::exception_ptr why) noexcept override {
    consumed_ = true;
    block_->runner_gone(std::move(why));
    block_.reset();
  }

 private:
  std::shared_ptr<Block> block_;
  const std::uint32_t lane_;
  bool consumed_ = false;
};

}  // namespace detail

class CONCUR_EXPORT Executor {
 public:
  virtual ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // submit(fn, args...) → Future<R>. Throws RuntimeError after shutdown() (and an implementation's
  // own error when it is broken, e.g. BrokenThreadPool).
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args) {
    auto [task, future] = detail::make_task(std::forward<F>(fn), std::forward<Args>(args)...);
    execute(std::move(task));
    return std::move(future);
  }

  // map(fn, ranges..., [MapOptions]) — see the header comment. [[nodiscard]]: a discarded
  // result range cancels the calls that have not started (Python's map runs them all when its
  // iterator is never started), so a map() called for its effects alone is a mistake.
  template <class F, class... Rest>
  [[nodiscard(
      "map() returns its results as a range; dropping it cancels the calls not started "
      "(submit() each call to run it for its effect)")]] auto
  map(F&& fn, Rest&&... rest) {
    if constexpr (sizeof...(Rest) > 0 &&
                  std::is_same_v<std::remove_cvref_t<decltype((std::get<sizeof...(Rest) - 1>(
                                     std::forward_as_tuple(rest...))))>,
                                 MapOptions>) {
      auto all = std::forward_as_tuple(std::forward<Rest>(rest)...);
      return map_impl(std::forward<F>(fn), std::get<sizeof...(Rest) - 1>(all), all,
                      std::make_index_sequence<sizeof...(Rest) - 1>());
    } else {
      return map_impl(std::forward<F>(fn), MapOptions{},
                      std::forward_as_tuple(std::forward<Rest>(rest)...),
                      std::make_index_sequence<sizeof...(Rest)>());
    }
  }

  // shutdown(wait, cancel_futures): idempotent; callable from any thread, including a task of
  // this executor (which then never waits for itself).
  virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;
  // max_workers(): how many tasks may run at once.
  [[nodiscard]] virtual std::size_t max_workers() const noexcept = 0;

 protected:
  Executor() = default;
  // execute(task) queues `task` or throws (after abandoning it, so its future is cancelled).
  virtual void execute(detail::RunnablePtr task) = 0;
  // bulk_gate(): an executor whose tasks run on threads of this process (and may share its memory)
  // returns its BulkGate; map() then runs a map whose inputs are all pulled at once as a few range
  // tasks (see MapResults). nullptr, the default: one task per input, through execute().
  [[nodiscard]] virtual std::shared_ptr<const detail::BulkGate> bulk_gate() const {
    return nullptr;
  }

 private:
  template <class R, class Fn, class... Ranges>
  friend class MapResults;

  template <class F, class Tuple, std::size_t... I>
  auto map_impl(F&& fn, const MapOptions& options, Tuple&& ranges, std::index_sequence<I...>) {
    static_assert(sizeof...(I) > 0, "map(fn, ranges...) needs at least one range");
    using R = std::decay_t<std::invoke_result_t<
        std::decay_t<F>,
        std::ranges::range_reference_t<std::tuple_element_t<I, std::decay_t<Tuple>>>...>>;
    static_assert(!std::is_void_v<R>,
                  "map(fn, ...): fn returns void; use submit() for functions without a result");
    return MapResults<R, std::decay_t<F>,
                      std::views::all_t<std::tuple_element_t<I, std::decay_t<Tuple>>>...>(
        *this, std::forward<F>(fn), options,
        std::views::all(
            std::forward<std::tuple_element_t<I, std::decay_t<Tuple>>>(std::get<I>(ranges)))...);
  }
};

// MapResults is what map() returns: a single-pass input range of R.
template <class R, class Fn, class... Ranges>
class MapResults : public detail::ResultsRange<MapResults<R, Fn, Ranges...>, R> {
 public:
  MapResults(Executor& ex, Fn fn, const MapOptions& options, Ranges... ranges)
      : ex_(ex),
        fn_(std::move(fn)),
        inputs_(std::move(ranges)...),
        deadline_(options.timeout ? detail::Deadline::after(*options.timeout)
                                  : detail::Deadline::infinite()),
        limit_(detail::map_window<Ranges...>(options,
                                             2 * std::max<std::size_t>(1, ex.max_workers()))) {
    if constexpr (kLanesPossible) {
      if (start_lanes()) return;
    }
    fill();
    // Nothing could be submitted (the executor is shut down): fail now, as Python's map does.
    if (error_ && window_.empty()) std::rethrow_exception(error_);
  }
  MapResults(const MapResults&) = delete;
  MapResults& operator=(const MapResults&) = delete;
  MapResults(MapResults&&) = delete;
  MapResults& operator=(MapResults&&) = delete;
  ~MapResults() {
    for (auto& f : window_) (void)f.cancel();
    if (block_) block_->stop();
  }

 private:
  friend typename detail::ResultsRange<MapResults, R>::iterator;

  // The range-task path (see "map()'s range tasks" above) is possible when every input can be
  // pulled at once (sized ranges), fn takes no std::stop_token (cancel() of a running item would
  // have nobody to ask) and R can be moved out of its slot.
  static constexpr bool kLanesPossible =
      (std::ranges::sized_range<Ranges> && ...) &&
      !detail::kTakesStopToken<Fn, std::ranges::range_reference_t<Ranges>...> &&
      std::move_constructible<R>;
  using Args = std::tuple<std::decay_t<std::ranges::range_reference_t<Ranges>>...>;
  using Block = detail::MapBlock<R, Fn, Args>;

  // start_lanes(): the range-task path, when the executor offers it and the window takes every
  // input at once (eager, or a window at least as long as the inputs): pull every input here (as
  // the per-input path does), then hand the runners over. False: use one task per input.
  bool start_lanes() {
    const std::size_t n = inputs_.size();
    if (n == 0 || n > detail::RangeLanes::kMaxItems || n > limit_) return false;
    std::shared_ptr<const detail::BulkGate> gate = ex_.bulk_gate();
    if (!gate) return false;
    auto block = std::make_shared<Block>(std::move(fn_), n, std::move(gate));
    try {
      while (block->size() < n) inputs_.take([&](auto&&... x) { block->push(x...); });
    } catch (...) {
      error_ = std::current_exception();  // thrown after the results of the inputs pulled
      if (block->size() == 0) std::rethrow_exception(error_);
    }
    const std::uint32_t k = static_cast<std::uint32_t>(
        std::min<std::size_t>(block->size(), std::max<std::size_t>(1, ex_.max_workers())));
    block->start(k);
    std::exception_ptr rejected;
    std::uint32_t accepted = 0;
    for (std::uint32_t lane = 0; lane < k && !rejected; ++lane) {
      try {
        detail::RunnablePtr runner(new detail::MapRunner<Block>(block, lane));
        block->add_runner();
        ex_.execute(std::move(runner));  // a refused runner is abandoned: runner_gone()
        ++accepted;
      } catch (...) {
        rejected = std::current_exception();
      }
    }
    // Every runner is handed over; one accepted runner is enough (the others' lanes get stolen).
    block->runner_gone(nullptr);
    if (accepted == 0) {
      block->stop();
      std::rethrow_exception(rejected);
    }
    block_ = std::move(block);
    return true;
  }
  // take_lane_result(): the next item's outcome into value_ (or its exception thrown). The item
  // is consumed either way; on timeout it is cancelled if it has not started, as Python does.
  void take_lane_result() {
    if (taken_ == block_->size()) {
      if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      throw InvalidStateError("map(): no more results");
    }
    const std::uint32_t j = taken_++;
    if (!block_->wait(j, deadline_)) {
      block_->cancel(j);
      detail::throw_timeout();
    }
    block_->take(j, value_);
  }

  // fill() tops the window up. A submit that throws (the executor was shut down meanwhile) stops
  // the filling: the results already in flight are still yielded, then the error is thrown.
  void fill() {
    while (!error_ && window_.size() < limit_ && !inputs_.exhausted()) {
      try {
        inputs_.take([&](auto&&... x) { window_.push_back(ex_.submit(fn_, x...)); });
      } catch (...) {
        error_ = std::current_exception();
        return;
      }
    }
  }
  bool finished() const {
    if constexpr (kLanesPossible) {
      if (block_) return taken_ == block_->size() && !value_ && !error_;
    }
    return window_.empty() && !value_ && !error_;
  }
  R& current() {
    if constexpr (kLanesPossible) {
      if (!value_ && block_) take_lane_result();
    }
    if (!value_) {
      if (window_.empty()) {
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
        throw InvalidStateError("map(): no more results");
      }
      Future<R> front = std::move(window_.front());
      window_.pop_front();
      try {
        if (deadline_.is_infinite()) {
          value_.emplace(std::move(front).result());
        } else {
          value_.emplace(std::move(front).result_until(deadline_.when()));
        }
      } catch (...) {
        (void)front.cancel();
        throw;
      }
      fill();
    }
    return *value_;
  }
  void advance() {
    if (!value_) (void)current();
    value_.reset();
  }

  Executor& ex_;
  Fn fn_;
  detail::ZippedInputs<Ranges...> inputs_;
  detail::Deadline deadline_;
  std::size_t limit_;
  std::deque<Future<R>> window_;
  std::optional<R> value_;
  std::exception_ptr error_;  // a failed submit (or input), thrown once the results are taken
  // The range-task path: the shared block, and how many of its items were taken.
  std::shared_ptr<Block> block_;
  std::uint32_t taken_ = 0;
};

}  // namespace concur
