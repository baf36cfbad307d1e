// concur/detail/chunked_map.hpp — map() of the executors whose tasks run elsewhere
// (ProcessPoolExecutor, dist::RedisExecutor): registered tasks sent in chunks.
//
// chunked_map(ex, fn, ranges..., [MapOptions]) is Python's ProcessPoolExecutor.map, lazy and
// bounded: the inputs go in chunks of MapOptions::chunksize calls (one batch task, one round trip
// each), at most MapOptions::window chunks in flight (0: kChunksPerWorker per worker), the next
// chunk submitted as results are taken, so an endless input range is fine; eager = true submits
// every chunk at once (sized ranges only). Results come back in input order; the inputs are zipped
// (the shortest range ends the map); an rvalue container is moved into the range.
// MapOptions::timeout counts from the call (TimeoutError when taking a result after it, and that
// chunk is cancelled). Destroying the range cancels the chunks not started.
// The executor Ex provides: max_workers(), and submit_inputs(fn, fill) → Future<std::vector<R>>,
// which calls fill(add) once and sends every add(args...) as one batch (ChunkedMapResults is its
// friend when that member is private).
#pragma once

#include <cstddef>
#include <deque>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"

namespace concur::detail {

template <class Ex, class R, class Fn, class... Ranges>
class ChunkedMapResults : public ResultsRange<ChunkedMapResults<Ex, R, Fn, Ranges...>, R> {
 public:
  ChunkedMapResults(Ex& ex, Fn fn, const MapOptions& options, Ranges... ranges)
      : ex_(ex),
        fn_(fn),
        inputs_(std::move(ranges)...),
        chunksize_(options.chunksize),
        deadline_(options.timeout ? Deadline::after(*options.timeout) : Deadline::infinite()),
        limit_(map_window<Ranges...>(
            options, kChunksPerWorker * std::max<std::size_t>(1, ex.max_workers()))) {
    fill();
    if (error_ && window_.empty()) std::rethrow_exception(error_);
  }
  ChunkedMapResults(const ChunkedMapResults&) = delete;
  ChunkedMapResults& operator=(const ChunkedMapResults&) = delete;
  ChunkedMapResults(ChunkedMapResults&&) = delete;
  ChunkedMapResults& operator=(ChunkedMapResults&&) = delete;
  ~ChunkedMapResults() {
    for (auto& f : window_) (void)f.cancel();
  }

  // kChunksPerWorker: the default window, per worker — enough to keep every worker busy (see the
  // process pool's pipelining) while the inputs behind it stay unread.
  static constexpr std::size_t kChunksPerWorker = 64;

 private:
  friend typename ResultsRange<ChunkedMapResults, R>::iterator;

  // fill() tops the window up with chunks; a submit that throws (shutdown, PicklingError) stops
  // it: the chunks in flight are yielded first, then the error is thrown.
  void fill() {
    while (!error_ && window_.size() < limit_ && !inputs_.exhausted()) {
      try {
        window_.push_back(submit_chunk(fn_));
      } catch (...) {
        error_ = std::current_exception();
        return;
      }
    }
  }
  template <class... P>
  Future<std::vector<R>> submit_chunk(R (*fn)(P...)) {
    return ex_.submit_inputs(fn, [&](auto&& add) {
      for (std::size_t n = 0; n < chunksize_ && !inputs_.exhausted(); ++n)
        inputs_.take([&](auto&&... x) { add(x...); });
    });
  }
  // loaded() makes chunk_.front() the next result if there is one (waiting for its chunk).
  bool loaded() {
    while (chunk_.empty() && !window_.empty()) load_next();
    return !chunk_.empty();
  }
  bool finished() { return !loaded() && !error_; }
  void load_next() {
    Future<std::vector<R>> front = std::move(window_.front());
    window_.pop_front();
    try {
      std::vector<R> values = deadline_.is_infinite()
                                  ? std::move(front).result()
                                  : std::move(front).result_until(deadline_.when());
      for (std::size_t i = 0; i < values.size(); ++i) chunk_.push_back(std::move(values[i]));
    } catch (...) {
      (void)front.cancel();
      throw;
    }
    fill();
  }
  R& current() {
    if (!loaded()) {
      if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      throw InvalidStateError("map(): no more results");
    }
    return chunk_.front();
  }
  // advance() destroys the result taken (no reference kept: CPython's test_free_reference).
  void advance() {
    if (loaded()) chunk_.pop_front();
  }

  Ex& ex_;
  Fn fn_;
  ZippedInputs<Ranges...> inputs_;
  std::size_t chunksize_;
  Deadline deadline_;
  std::size_t limit_;
  std::deque<Future<std::vector<R>>> window_;
  std::deque<R> chunk_;       // the current chunk's results not taken yet (a deque: real references
                              // even for bool)
  std::exception_ptr error_;  // a failed submit, thrown once the window is drained
};

// chunked_map(ex, fn, rest...): ex.map(fn, ranges..., [MapOptions]) for Ex (see the top).
template <class Ex, class R, class... P, class... Rest>
auto chunked_map(Ex& ex, R (*fn)(P...), Rest&&... rest) {
  auto all = std::forward_as_tuple(std::forward<Rest>(rest)...);
  constexpr bool kHasOptions =
      sizeof...(Rest) > 0 &&
      std::is_same_v<std::remove_cvref_t<std::tuple_element_t<sizeof...(Rest) - 1, decltype(all)>>,
                     MapOptions>;
  MapOptions options{};
  if constexpr (kHasOptions) options = std::get<sizeof...(Rest) - 1>(all);
  if (options.chunksize == 0) throw ValueError("chunksize must be >= 1");
  auto call = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ChunkedMapResults<Ex, R, R (*)(P...),
                             std::views::all_t<std::tuple_element_t<I, decltype(all)>>...>(
        ex, fn, options,
        std::views::all(std::forward<std::tuple_element_t<I, decltype(all)>>(std::get<I>(all)))...);
  };
  if constexpr (kHasOptions)
    return call(std::make_index_sequence<sizeof...(Rest) - 1>());
  else
    return call(std::make_index_sequence<sizeof...(Rest)>());
}

}  // namespace concur::detail
