// concur/mp/pool.hpp — mp::Pool, Python's multiprocessing.Pool, built on a ProcessPoolExecutor.
//
//   mp::Pool pool(mp::PoolOptions{.processes = 4});
//   mp::AsyncResult<int> r = pool.apply_async(square, 10);      // square: a CONCUR_TASK
//   int v = r.get(1s);                                           // TimeoutError when not ready
//   std::vector<int> all = pool.map(square, inputs);             // chunked, in input order
//   for (int x : pool.imap(square, inputs)) use(x);              // lazy, in input order
//
// Operations: apply / apply_async, map / map_async, starmap / starmap_async (chunked; one round
// trip per chunk), imap / imap_unordered (iterators with next(timeout)), close, join, terminate.
// Tasks are registered functions (concur/mp/task.hpp). A task's exception reaches get() as
// RemoteError; a worker that dies fails exactly the task (or chunk) it was running with
// BrokenProcessPool and is replaced — no AsyncResult ever stays pending because of it (cpython
// gh-66587). Callbacks (AsyncOptions) run in the pool's result thread (the executor's dispatcher)
// before the result becomes ready, as Python's; one that throws goes to concur::excepthook and
// the pool carries on. A callback may wait for another result of its pool (apply(), get(),
// wait(), imap's next()): one whose task a worker has is read there and then; one whose task is
// still queued raises DeadlockError — only the result thread, which the callback holds, would send
// it (Python's Pool hangs on both).
// Thread-safety: every Pool member may be called from any thread, except terminate()/join()/the
// destructor from inside a callback. AsyncResult may be shared between threads; an imap iterator
// is used by one thread at a time.
// Lifetime: the destructor is terminate() (Python's `with Pool() as p:`): call close() and join()
// first, or get() every result, when the work must finish. AsyncResults and iterators stay valid
// after the Pool is gone (their work was cancelled or failed by terminate()).
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
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
#include <variant>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"
#include "concur/future.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/task.hpp"
#include "concur/process_pool.hpp"
#include "concur/thread.hpp"

namespace concur::mp {

// PoolOptions: Pool's constructor arguments (designated initializers work).
struct PoolOptions {
  // processes: the number of workers; 0 means cpu_count().
  std::size_t processes = 0;
  // initializer: a registered task and its arguments (Python's initializer and initargs:
  // `.initializer = {fn, args...}`, see concur::Initializer), run by each worker before its first
  // task. If it throws, the pool is broken: every pending and later task fails with
  // BrokenProcessPool (Python's Pool would respawn failing workers forever).
  Initializer initializer{};
  // maxtasksperchild: a worker is replaced after this many tasks (0: never). A map chunk counts
  // as one task, as in Python.
  std::size_t maxtasksperchild = 0;
  // start_method: the workers' (default get_start_method(), forkserver); fork is refused
  // (ValueError) because the pool's result thread makes this process multithreaded.
  std::optional<StartMethod> start_method{};
};

namespace detail {

// CallbackOf<R> is the success callback's type: void(const R&), or void() for a void task.
template <class R>
struct CallbackOf {
  using type = std::function<void(const R&)>;
};
template <>
struct CallbackOf<void> {
  using type = std::function<void()>;
};

// Outcome<R> is a settled result: the value or the error. AsyncResult's future holds it (never
// an exception), so an error nobody asks for is not reported to the excepthook — as in Python.
template <class R>
struct Outcome {
  std::conditional_t<std::is_void_v<R>, std::monostate, std::optional<R>> value{};
  std::exception_ptr error;
};

// guarded(fn): runs a user callback; whatever it throws goes to the excepthook.
template <class F>
void guarded(F&& fn) noexcept {
  try {
    std::forward<F>(fn)();
  } catch (...) {
    concur::excepthook(std::current_exception());
  }
}

}  // namespace detail

// AsyncOptions<R>: apply_async/map_async/starmap_async callbacks (Python's callback= and
// error_callback=). Both run in the pool's result thread before the result becomes ready — or
// in the submitting thread, inside apply_async, when the task finished before apply_async could
// register them (Python would still use its result thread). They must not block for long: the
// result thread also feeds the workers. An exception escaping one goes to concur::excepthook.
template <class R>
struct AsyncOptions {
  // callback(value) is called with the result when the task succeeds.
  typename detail::CallbackOf<R>::type callback{};
  // error_callback(e) is called with the error (RemoteError, BrokenProcessPool, CancelledError
  // after terminate()) when it fails.
  std::function<void(std::exception_ptr)> error_callback{};
};

namespace detail {

// AsyncSlot<R> settles one AsyncResult: callbacks first, then the result becomes ready.
template <class R>
class AsyncSlot {
 public:
  explicit AsyncSlot(AsyncOptions<R> options) : options_(std::move(options)) {}
  [[nodiscard]] Future<std::shared_ptr<const Outcome<R>>> future() const {
    return promise_.get_future();
  }
  void settle(Outcome<R> outcome) noexcept {
    if (outcome.error) {
      if (options_.error_callback) guarded([&] { options_.error_callback(outcome.error); });
    } else if (options_.callback) {
      if constexpr (std::is_void_v<R>)
        guarded([&] { options_.callback(); });
      else
        guarded([&] { options_.callback(*outcome.value); });
    }
    try {
      promise_.set_result(std::make_shared<const Outcome<R>>(std::move(outcome)));
    } catch (...) {
      concur::excepthook(std::current_exception());  // cannot happen: settled once
    }
  }

 private:
  AsyncOptions<R> options_;
  Promise<std::shared_ptr<const Outcome<R>>> promise_;
};

// wait_through(f, d): f's own wait until the deadline; true when done.
inline bool wait_through(const AnyFuture& f, const concur::detail::Deadline& d) {
  if (!d.is_infinite()) return f.wait_until(d.when());
  f.wait();
  return true;
}

// help_in_result_thread(sources, d): in a process pool's result thread, wait for the tasks'
// futures first (until the deadline): that wait reads a worker's reply in this thread, or throws
// DeadlockError for a task still queued. Elsewhere nothing: the result thread settles them.
inline void help_in_result_thread(const std::vector<AnyFuture>* sources,
                                  const concur::detail::Deadline& d) {
  if (sources == nullptr || !concur::detail::on_pool_dispatcher_thread()) return;
  for (const AnyFuture& s : *sources)
    if (!s.done() && !wait_through(s, d)) return;  // the deadline: the caller's wait times out
}

}  // namespace detail

// AsyncResult<R> is what apply_async/map_async/starmap_async return (Python's AsyncResult).
// Copies share the result. Memory ordering: everything the callbacks did is visible once get()
// or wait() returns.
template <class R>
class AsyncResult {
 public:
  // AsyncResult() has no result: every member throws InvalidStateError.
  AsyncResult() = default;

  // get() blocks until the result is ready and returns it, or rethrows the task's error
  // (RemoteError, BrokenProcessPool, CancelledError when terminate() cancelled it). In a callback
  // of the same pool it throws DeadlockError when the task is still queued (see Pool).
  R get() const {
    detail::help_in_result_thread(sources_.get(), concur::detail::Deadline::infinite());
    return unpack(future_.result());
  }
  // get(timeout) / get_until(tp): the same, throwing TimeoutError when not ready in time
  // (Python's multiprocessing.TimeoutError); the work goes on.
  template <class Rep, class Period>
  R get(std::chrono::duration<Rep, Period> timeout) const {
    return get_until(concur::detail::Deadline::after(timeout).when());
  }
  template <class C, class D>
  R get_until(std::chrono::time_point<C, D> tp) const {
    detail::help_in_result_thread(sources_.get(), concur::detail::Deadline::at(tp));
    return unpack(future_.result_until(tp));
  }
  // wait() blocks until the result is ready (DeadlockError as get()).
  void wait() const {
    detail::help_in_result_thread(sources_.get(), concur::detail::Deadline::infinite());
    future_.wait();
  }
  // wait(timeout) / wait_until(tp) block until ready or the time is up; true when ready.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return wait_until(concur::detail::Deadline::after(timeout).when());
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) const {
    detail::help_in_result_thread(sources_.get(), concur::detail::Deadline::at(tp));
    return future_.wait_until(tp);
  }
  // ready() is true once the result (or error) is there and the callbacks have run.
  [[nodiscard]] bool ready() const { return future_.done(); }
  // successful() is true when the task returned normally; ValueError when not ready yet.
  [[nodiscard]] bool successful() const {
    if (!ready()) throw ValueError("the AsyncResult is not ready");
    return !future_.result()->error;
  }

 private:
  friend class Pool;
  // AsyncResult(f, sources): f becomes ready once the callbacks ran; sources are the tasks'
  // own futures (one, or one per chunk), waited on in the pool's result thread.
  AsyncResult(Future<std::shared_ptr<const detail::Outcome<R>>> f,
              std::shared_ptr<const std::vector<AnyFuture>> sources)
      : future_(std::move(f)), sources_(std::move(sources)) {}
  static R unpack(const std::shared_ptr<const detail::Outcome<R>>& o) {
    if (o->error) std::rethrow_exception(o->error);
    if constexpr (!std::is_void_v<R>) return *o->value;
  }

  Future<std::shared_ptr<const detail::Outcome<R>>> future_;
  std::shared_ptr<const std::vector<AnyFuture>> sources_;  // null: nothing to wait through
};

// IMapIterator<R> is what imap (input order) and imap_unordered (completion order) return:
// next() / next(timeout) and range-for. Every task was submitted when imap returned (Python's
// task-handler thread does the same); the iterator only collects. A failed task (or chunk) makes
// next() throw its error once at its place; the following next() goes on with the rest.
// Dropping the iterator does not cancel the work. Used by one thread at a time.
template <class R>
class IMapIterator {
 public:
  // next() blocks until the next result and returns it; std::nullopt when every result has been
  // returned (Python's StopIteration). Rethrows a failed task's error.
  std::optional<R> next() { return state_->next(concur::detail::Deadline::infinite()); }
  // next(timeout): the same, throwing TimeoutError when the next result is not there in time
  // (the iterator stays where it was: call next() again).
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    return state_->next(concur::detail::Deadline::after(timeout));
  }

  // iterator: a range-for over the remaining results (each step is next()).
  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(IMapIterator* it) : it_(it), current_(it->next()) {}
    R& operator*() const { return *current_; }
    iterator& operator++() {
      current_ = it_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& i, std::default_sentinel_t) {
      return !i.current_.has_value();
    }

   private:
    IMapIterator* it_ = nullptr;
    mutable std::optional<R> current_;
  };
  // begin() takes the first result (blocking); end() is the sentinel after the last.
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  friend class Pool;
  // State collects chunk results in completion order (unordered) or input order.
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool ordered = true;
    // ordered: the chunks by index; unordered: in completion order
    std::vector<std::optional<detail::Outcome<std::vector<R>>>> chunks CONCUR_GUARDED_BY(mu);
    std::deque<std::size_t> completed CONCUR_GUARDED_BY(mu);
    std::size_t next_chunk CONCUR_GUARDED_BY(mu) = 0;  // ordered: the chunk being read
    std::vector<R> buffer;                             // the chunk being read (consumer only)
    std::size_t at = 0;
    std::vector<AnyFuture> sources;  // the chunks' futures (set before the iterator exists)

    void arrive(std::size_t i, detail::Outcome<std::vector<R>> o) {
      {
        std::scoped_lock lock(mu);
        chunks[i] = std::move(o);
        completed.push_back(i);
      }
      cv.notify_all();
    }
    std::optional<R> next(const concur::detail::Deadline& d) {
      for (;;) {
        if (at < buffer.size()) return std::move(buffer[at++]);
        help(d);
        std::unique_lock lock(mu);
        std::size_t taken = 0;
        if (ordered) {
          if (next_chunk == chunks.size()) return std::nullopt;
          auto ready = [&] { return chunks[next_chunk].has_value(); };
          if (!wait(lock, d, ready)) throw TimeoutError("imap: the next result is not ready");
          taken = next_chunk++;
        } else {
          if (next_chunk == chunks.size()) return std::nullopt;
          auto ready = [&] { return !completed.empty(); };
          if (!wait(lock, d, ready)) throw TimeoutError("imap: the next result is not ready");
          taken = completed.front();
          completed.pop_front();
          ++next_chunk;  // counts the chunks taken
        }
        detail::Outcome<std::vector<R>> o = std::move(*chunks[taken]);
        chunks[taken].emplace();  // keeps has_value() for the ordered wait; the data is gone
        lock.unlock();
        buffer.clear();
        at = 0;
        if (o.error) std::rethrow_exception(o.error);
        buffer = std::move(*o.value);
      }
    }
    // help(d): in the pool's result thread, wait through the future of the chunk next() needs
    // (ordered) or of one not done yet (unordered), as AsyncResult does.
    void help(const concur::detail::Deadline& d) {
      if (!concur::detail::on_pool_dispatcher_thread()) return;
      const AnyFuture* source = nullptr;
      {
        std::scoped_lock lock(mu);
        if (ordered) {
          if (next_chunk < sources.size()) source = &sources[next_chunk];
        } else if (completed.empty()) {
          for (const AnyFuture& s : sources) {
            if (!s.done()) {
              source = &s;
              break;
            }
          }
        }
      }
      // `sources` never changes once the iterator exists: the element outlives the lock.
      if (source != nullptr) (void)detail::wait_through(*source, d);
    }
    template <class Pred>
    bool wait(std::unique_lock<std::mutex>& lock, const concur::detail::Deadline& d, Pred ready) {
      if (d.is_infinite()) {
        cv.wait(lock, ready);
        return true;
      }
      return cv.wait_until(lock, d.when(), ready);
    }
  };
  explicit IMapIterator(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

// Pool is Python's multiprocessing.Pool: `processes` workers running registered tasks.
// Shutdown: close() refuses new work and lets the queued work finish; join() waits for the
// workers to exit (after close() or terminate() only); terminate() stops now — queued work is
// cancelled (get() throws CancelledError), running work is killed with its worker (SIGTERM;
// get() throws BrokenProcessPool), then the workers are joined.
class CONCUR_EXPORT Pool {
 public:
  // Pool(options) prepares the pool; workers start with the first task. Throws UsageError when
  // the initializer is not a registered task, ValueError for the fork start method.
  explicit Pool(PoolOptions options = {});
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // ~Pool() is terminate() (Python's context manager exit): unfinished work is cancelled or
  // killed. Call close(); join() first to let it finish.
  ~Pool();

  // apply(fn, args...) runs fn(args...) in a worker and blocks for its result; rethrows its
  // error (RemoteError, BrokenProcessPool). ValueError("Pool not running") after close() or
  // terminate(); PicklingError when an argument cannot be serialized.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) R apply(R (*fn)(P...), A&&... args) {
    return apply_async(fn, std::forward<A>(args)...).get();
  }

  // apply_async(fn, args...) submits fn(args...) → AsyncResult<R>. Errors as apply().
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) AsyncResult<R> apply_async(R (*fn)(P...), A&&... args) {
    return apply_async(AsyncOptions<R>{}, fn, std::forward<A>(args)...);
  }
  // apply_async(options, fn, args...): the same with callback / error_callback.
  template <class R, class... P, class... A>
  requires(sizeof...(P) ==
           sizeof...(A)) AsyncResult<R> apply_async(std::type_identity_t<AsyncOptions<R>> options,
                                                    R (*fn)(P...), A&&... args) {
    auto slot = std::make_shared<detail::AsyncSlot<R>>(std::move(options));
    Future<R> f;
    {
      std::scoped_lock lock(mu_);
      check_running_locked();
      f = executor_.submit(fn, std::forward<A>(args)...);
    }
    AsyncResult<R> result(slot->future(),
                          std::make_shared<const std::vector<AnyFuture>>(1, AnyFuture(f)));
    // Outside mu_: a callback runs here at once when the task is already done.
    f.add_done_callback([slot](const Future<R>& done) {
      detail::Outcome<R> o;
      try {
        if constexpr (std::is_void_v<R>)
          done.result();
        else
          o.value.emplace(done.result());
      } catch (...) {
        o.error = std::current_exception();
      }
      slot->settle(std::move(o));
    });
    return result;
  }

  // map(fn, iterable, chunksize) is [fn(x) for x in iterable] computed in the workers, in
  // chunks of `chunksize` calls (0: Python's default, ceil(len / (4 * processes))); blocks until
  // every chunk is done, then throws the first error to arrive, if any. Empty input → empty.
  template <class R, class P, std::ranges::input_range Range>
  std::vector<R> map(R (*fn)(P), Range&& iterable, std::size_t chunksize = 0) {
    return map_async(fn, std::forward<Range>(iterable), chunksize).get();
  }
  // map() of a function that returns nothing is refused at compile time: Python's list of None
  // has no C++ twin. Return a value from fn (e.g. its argument), or apply_async() each call.
  template <class P, std::ranges::input_range Range>
  void map(void (*)(P), Range&&, std::size_t = 0) {
    static_assert(sizeof(P) == 0,
                  "Pool::map(fn, ...): fn returns void; return a value (e.g. its argument) or "
                  "apply_async() each call");
  }
  // map_async(fn, iterable, chunksize) → AsyncResult<std::vector<R>>. As Python's MapResult, it
  // becomes ready when every chunk is done; if any failed, get() throws the first error to
  // arrive (and error_callback gets it).
  template <class R, class P, std::ranges::input_range Range>
  AsyncResult<std::vector<R>> map_async(R (*fn)(P), Range&& iterable, std::size_t chunksize = 0) {
    return map_async(AsyncOptions<std::vector<R>>{}, fn, std::forward<Range>(iterable), chunksize);
  }
  // map_async(options, fn, iterable, chunksize): with callbacks. As in Python, an empty input is
  // ready at once without calling the callback.
  template <class R, class P, std::ranges::input_range Range>
  AsyncResult<std::vector<R>> map_async(std::type_identity_t<AsyncOptions<std::vector<R>>> options,
                                        R (*fn)(P), Range&& iterable, std::size_t chunksize = 0) {
    return starmap_async(std::move(options), fn, as_calls(std::forward<Range>(iterable)),
                         chunksize);
  }

  // starmap(fn, calls, chunksize): map where each element is fn's argument tuple.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) std::vector<R> starmap(
      R (*fn)(P...), const std::vector<std::tuple<A...>>& calls, std::size_t chunksize = 0) {
    return starmap_async(fn, calls, chunksize).get();
  }
  // starmap_async(fn, calls, chunksize) → AsyncResult<std::vector<R>>, as map_async.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) AsyncResult<std::vector<R>> starmap_async(
      R (*fn)(P...), const std::vector<std::tuple<A...>>& calls, std::size_t chunksize = 0) {
    return starmap_async(AsyncOptions<std::vector<R>>{}, fn, calls, chunksize);
  }
  // starmap_async(options, fn, calls, chunksize): with callbacks.
  template <class R, class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) AsyncResult<std::vector<R>> starmap_async(
      std::type_identity_t<AsyncOptions<std::vector<R>>> options, R (*fn)(P...),
      const std::vector<std::tuple<A...>>& calls, std::size_t chunksize = 0) {
    std::vector<Future<std::vector<R>>> chunks;
    {
      std::scoped_lock lock(mu_);
      check_running_locked();
      if (!calls.empty()) {
        chunks = submit_chunks(fn, calls, chunksize, false);
      }
    }
    if (calls.empty()) {
      // Python: an empty map is ready at once and calls no callback.
      auto empty =
          std::make_shared<detail::AsyncSlot<std::vector<R>>>(AsyncOptions<std::vector<R>>{});
      detail::Outcome<std::vector<R>> o;
      o.value.emplace();
      empty->settle(std::move(o));
      return AsyncResult<std::vector<R>>(empty->future(), nullptr);
    }
    auto slot = std::make_shared<detail::AsyncSlot<std::vector<R>>>(std::move(options));
    AsyncResult<std::vector<R>> result(
        slot->future(),
        std::make_shared<const std::vector<AnyFuture>>(chunks.begin(), chunks.end()));
    auto combiner = std::make_shared<MapCombiner<R>>(slot, chunks.size());
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      chunks[i].add_done_callback(
          [combiner, i](const Future<std::vector<R>>& done) { combiner->arrive(i, done); });
    }
    return result;
  }

  // imap(fn, iterable, chunksize) submits every call now (in chunks of `chunksize`, >= 1, else
  // ValueError) and returns an iterator over the results in input order.
  template <class R, class P, std::ranges::input_range Range>
  IMapIterator<R> imap(R (*fn)(P), Range&& iterable, std::size_t chunksize = 1) {
    return imap_impl(fn, as_calls(std::forward<Range>(iterable)), chunksize, true);
  }
  // imap_unordered(fn, iterable, chunksize): the same, results in completion order (a chunk's
  // results stay together, in order).
  template <class R, class P, std::ranges::input_range Range>
  IMapIterator<R> imap_unordered(R (*fn)(P), Range&& iterable, std::size_t chunksize = 1) {
    return imap_impl(fn, as_calls(std::forward<Range>(iterable)), chunksize, false);
  }

  // close() stops accepting work (later submits throw ValueError("Pool not running")); queued
  // and running work finishes, then the workers exit. Does not block.
  void close();
  // join() blocks until the workers have exited; ValueError("Pool is still running") before
  // close() or terminate(). Work queued before close() is finished first.
  void join();
  // terminate() stops the pool now: queued work is cancelled (CancelledError), each running task
  // is killed with its worker (SIGTERM; BrokenProcessPool), and the workers are joined before it
  // returns. Idempotent. Must not be called from a callback (it would wait up to 30 s for itself).
  void terminate();

  // processes() is the number of workers.
  [[nodiscard]] std::size_t processes() const noexcept;
  // worker_pids() lists the live workers' process ids (for tests and monitoring).
  [[nodiscard]] std::vector<pid_t> worker_pids() const;

 private:
  enum class State { kRun, kClose, kTerminate };

  // MapCombiner gathers the chunks of one map_async. As Python's MapResult, it is ready once
  // every chunk is done; a failure keeps the first error to arrive.
  template <class R>
  struct MapCombiner {
    MapCombiner(std::shared_ptr<detail::AsyncSlot<std::vector<R>>> s, std::size_t n)
        : slot(std::move(s)), parts(n), left(n) {}
    void arrive(std::size_t i, const Future<std::vector<R>>& done) {
      std::vector<R> part;
      std::exception_ptr error;
      try {
        part = done.result();
      } catch (...) {
        error = std::current_exception();
      }
      detail::Outcome<std::vector<R>> o;
      {
        std::scoped_lock lock(mu);
        if (error && !first_error) first_error = error;
        if (!first_error) parts[i] = std::move(part);
        if (--left != 0) return;
        if (first_error) {
          o.error = first_error;
        } else {
          std::vector<R> all;
          for (auto& p : parts) std::ranges::move(p, std::back_inserter(all));
          o.value.emplace(std::move(all));
        }
      }
      slot->settle(std::move(o));
    }
    std::mutex mu;
    std::shared_ptr<detail::AsyncSlot<std::vector<R>>> slot;
    std::vector<std::vector<R>> parts CONCUR_GUARDED_BY(mu);
    std::size_t left CONCUR_GUARDED_BY(mu);
    std::exception_ptr first_error CONCUR_GUARDED_BY(mu);
  };

  template <std::ranges::input_range Range>
  static auto as_calls(Range&& iterable) {
    std::vector<std::tuple<std::ranges::range_value_t<Range>>> calls;
    for (auto&& x : iterable) calls.emplace_back(std::forward<decltype(x)>(x));
    return calls;
  }

  // submit_chunks(...) sends the calls in chunks (one submit_batch each); caller holds mu_.
  template <class R, class... P, class... A>
  std::vector<Future<std::vector<R>>> submit_chunks(R (*fn)(P...),
                                                    const std::vector<std::tuple<A...>>& calls,
                                                    std::size_t chunksize, bool explicit_size) {
    if (chunksize == 0) {
      if (explicit_size) throw ValueError("Chunksize must be 1+, not 0");
      const std::size_t per = 4 * processes_;
      chunksize = std::max<std::size_t>(1, (calls.size() + per - 1) / per);
    }
    std::vector<Future<std::vector<R>>> out;
    out.reserve((calls.size() + chunksize - 1) / chunksize);
    for (std::size_t first = 0; first < calls.size(); first += chunksize) {
      const std::size_t last = std::min(calls.size(), first + chunksize);
      std::vector<std::tuple<A...>> chunk(calls.begin() + static_cast<std::ptrdiff_t>(first),
                                          calls.begin() + static_cast<std::ptrdiff_t>(last));
      out.push_back(executor_.submit_batch(fn, chunk));
    }
    return out;
  }

  template <class R, class P, class A>
  IMapIterator<R> imap_impl(R (*fn)(P), const std::vector<std::tuple<A>>& calls,
                            std::size_t chunksize, bool ordered) {
    if (chunksize == 0) throw ValueError("Chunksize must be 1+, not 0");
    auto state = std::make_shared<typename IMapIterator<R>::State>();
    state->ordered = ordered;
    std::vector<Future<std::vector<R>>> chunks;
    {
      std::scoped_lock lock(mu_);
      check_running_locked();
      chunks = submit_chunks(fn, calls, chunksize, true);
    }
    {
      std::scoped_lock slock(state->mu);
      state->chunks.resize(chunks.size());
      state->sources.assign(chunks.begin(), chunks.end());
    }
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      chunks[i].add_done_callback([state, i](const Future<std::vector<R>>& done) {
        detail::Outcome<std::vector<R>> o;
        try {
          o.value.emplace(done.result());
        } catch (...) {
          o.error = std::current_exception();
        }
        state->arrive(i, std::move(o));
      });
    }
    return IMapIterator<R>(std::move(state));
  }

  void check_running_locked() const;

  std::size_t processes_;
  ProcessPoolExecutor executor_;
  mutable std::mutex mu_;
  State state_ CONCUR_GUARDED_BY(mu_) = State::kRun;
  std::mutex stop_mu_;  // serializes terminate() and join()
};

}  // namespace concur::mp
