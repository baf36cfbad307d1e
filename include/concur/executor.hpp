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
// Lifetime: a map() range refers to its executor, which must outlive it.
// Thread-safety: submit, map and shutdown may be called from any thread, including a task
// running on the executor itself; one map() range is used by one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
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

  // map(fn, ranges..., [MapOptions]) — see the header comment.
  template <class F, class... Rest>
  auto map(F&& fn, Rest&&... rest) {
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

 private:
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
  }

 private:
  friend typename detail::ResultsRange<MapResults, R>::iterator;

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
  bool finished() const { return window_.empty() && !value_ && !error_; }
  R& current() {
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
  std::exception_ptr error_;  // a failed submit, thrown once the window is drained
};

}  // namespace concur
