// concur/http/app.hpp — App: a web application's routes (Flask's app.route) and where their
// handlers run: on the event loop (a coroutine), on a ThreadPoolExecutor (a blocking function,
// as Flask's threaded server runs views), or on a ProcessPoolExecutor (a registered task).
//
//   http::App app;
//   app.get("/users/<int:id>", [](const http::Request& r) { return http::Response::json(...); });
//   app.get("/feed", [](const http::Request& r) -> aio::Task<http::Response> { ... });
//   app.get("/fib/<int:n>", http::in_process(fib));          // fib: a CONCUR_TASK
//
// Patterns are Flask's: "/static/seg" and "<name>" / "<conv:name>" variables, each filling one
// segment, with the converters string (default: no '/'), int (digits, fits int64), float (digits
// '.' digits) and path (the rest of the path, '/' included; last only). A pattern ending in '/'
// also answers its slash-less form with a 308 redirect. Literal segments beat variables, int and
// float beat string, path comes last; ties go to the first registered. A path that matches a
// route but not its methods is a 405 with Allow; HEAD is served by GET (body dropped); OPTIONS
// answers 204 with Allow.
// Backpressure: blocking handlers and in_process routes count as pending in their pool from
// submission to completion; past AppOptions' limits the server answers 503 at once (Retry-After)
// instead of queueing. run_in_thread / run_in_process give a coroutine handler the same bounded
// access to the pools (HTTPError 503 when full).
// Thread-safety: register routes before serving; once serving, the App is read by every loop
// of its servers at once (const use only) and its pools and Metrics are thread-safe.
// Lifetime: the App owns the pools it starts (joined when it is destroyed) and must outlive its
// servers.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "concur/aio/task.hpp"
#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/future.hpp"
#include "concur/http/message.hpp"
#include "concur/http/metrics.hpp"
#include "concur/process_pool.hpp"
#include "concur/thread_pool.hpp"

namespace concur::http {

// AppOptions: where handlers run and how much may wait there.
struct AppOptions {
  // thread_pool: runs blocking handlers; null: the App starts its own on first use, of
  // thread_workers threads (0: 32).
  ThreadPoolExecutor* thread_pool = nullptr;
  std::size_t thread_workers = 0;
  // process_pool: runs in_process routes and run_in_process; null: the App starts its own on
  // first use, of process_workers workers (0: one per CPU).
  ProcessPoolExecutor* process_pool = nullptr;
  std::size_t process_workers = 0;
  // max_thread_pending / max_process_pending: tasks submitted to the pool and not finished
  // beyond which requests get 503 (0: no limit).
  std::size_t max_thread_pending = 1024;
  std::size_t max_process_pending = 1024;
  // metrics_path / health_path: the built-in routes ("" disables one). /healthz answers
  // {"status": "ok"} (503 {"status": "draining"} while a server drains).
  std::string metrics_path = "/metrics";
  std::string health_path = "/healthz";
};

// ProcessTask: a route's handler that is a registered task, run in the process pool with the
// route's path parameters as its arguments (in order, converted to the task's parameter types);
// its result becomes a JSON response. Made by in_process(fn).
template <class R, class... P>
struct ProcessTask {
  R (*fn)(P...);
};
// in_process(fn): fn (a CONCUR_TASK-registered function) as a route handler (see ProcessTask).
template <class R, class... P>
ProcessTask<R, P...> in_process(R (*fn)(P...)) {
  return ProcessTask<R, P...>{fn};
}

namespace detail {

// Converter: what a pattern variable matches.
enum class Converter : std::uint8_t { kString, kInt, kFloat, kPath };

// Handler: one (route, method)'s handler, type-erased by kind.
struct Handler {
  enum class Kind : std::uint8_t { kLoop, kThread, kProcess };
  Kind kind = Kind::kLoop;
  std::function<aio::Task<Response>(const Request&)> loop;  // kLoop
  std::function<Response(const Request&)> blocking;         // kThread
  // kProcess: submits to the pool and converts the result.
  std::function<concur::Future<Response>(ProcessPoolExecutor&, const Request&)> process;
};

struct Segment {
  std::string text;  // the literal, or the variable's name
  bool variable = false;
  Converter converter = Converter::kString;
};

struct Route {
  std::string pattern;
  std::vector<Segment> segments;
  bool trailing_slash = false;                           // the pattern ends in '/'
  std::vector<std::pair<std::string, Handler>> methods;  // in registration order
  std::vector<int> rank;                                 // sort key (see app.hpp's header comment)
  std::size_t order = 0;                                 // registration order
  bool builtin = false;  // /metrics or /healthz: an application route replaces it
  [[nodiscard]] const Handler* find(std::string_view method) const noexcept;
  [[nodiscard]] std::string allow() const;  // "GET, HEAD, OPTIONS"
};

// error_response(e): what the client learns of a handler's exception: HTTPError its status and
// message, TimeoutError 504, BrokenExecutor / RemoteError 500 with their text, anything else 500
// "Internal Server Error" (the exception goes to concur's excepthook).
CONCUR_EXPORT Response error_response(const std::exception_ptr& e);

// parse_pattern(pattern): the segments; ValueError for a bad pattern.
CONCUR_EXPORT Route parse_pattern(std::string_view pattern);

// ArgKind: what an in_process task's parameter takes from its path variable: text (any
// converter), an integer (<int:..> only) or a number (<int:..> or <float:..>).
enum class ArgKind : std::uint8_t { kText, kInteger, kNumber };
template <class T>
constexpr ArgKind arg_kind() {
  using U = std::remove_cvref_t<T>;
  static_assert(std::is_same_v<U, std::string> || std::is_arithmetic_v<U>,
                "in_process(task): the task's parameters are integers, floating or std::string, "
                "taken from the route's path variables");
  static_assert(!std::is_same_v<U, bool>, "in_process(task): no bool parameter (use a string)");
  if constexpr (std::is_integral_v<U>) {
    return ArgKind::kInteger;
  } else if constexpr (std::is_floating_point_v<U>) {
    return ArgKind::kNumber;
  } else {
    return ArgKind::kText;
  }
}

template <class T>
struct IsProcessTask : std::false_type {};
template <class R, class... P>
struct IsProcessTask<ProcessTask<R, P...>> : std::true_type {};

template <class T>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<aio::Task<T>> : std::true_type {
  using value_type = T;
};

template <class R>
concept ResponseLike = std::same_as<R, Response> || std::convertible_to<R, nlohmann::json> ||
    std::convertible_to<R, std::string>;

template <class R>
Response as_response(R&& r) {
  using U = std::remove_cvref_t<R>;
  if constexpr (std::is_same_v<U, Response>) {
    return std::forward<R>(r);
  } else if constexpr (std::is_convertible_v<U, std::string> &&
                       !std::is_same_v<U, nlohmann::json>) {
    return to_response(std::string(std::forward<R>(r)));  // one rule: message.hpp's to_response
  } else {
    return to_response(nlohmann::json(std::forward<R>(r)));
  }
}

}  // namespace detail

// Match: what App::match found for a method and path.
struct Match {
  enum class Kind : std::uint8_t { kFound, kNotFound, kMethodNotAllowed, kRedirect, kOptions };
  Kind kind = Kind::kNotFound;
  const detail::Route* route = nullptr;
  const detail::Handler* handler = nullptr;  // kFound
  bool head = false;                         // kFound: a HEAD served by the GET handler
  std::vector<std::pair<std::string, std::string>> params;
  std::string allow;     // kMethodNotAllowed / kOptions
  std::string location;  // kRedirect: the path with its trailing '/'
};

class CONCUR_EXPORT App {
 public:
  App();
  explicit App(AppOptions options);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // route(pattern, methods, handler): registers handler for each method (upper case, e.g.
  // {"GET", "POST"}) of pattern. handler is one of:
  //  - a callable (const Request&) -> aio::Task<R>: runs on the loop that serves the request;
  //  - a callable (const Request&) -> R: runs on the thread pool (blocking work is fine there);
  //  - in_process(fn): runs in the process pool (see ProcessTask);
  // where R is Response, nlohmann::json (or anything it converts from) or std::string (HTML).
  // A callable taking no argument is accepted too. ValueError for a bad pattern, a method
  // registered twice for the same pattern, or an in_process task whose parameters do not match
  // the pattern's variables (their number, or an int/float parameter for a non-numeric
  // variable). Not thread-safe: register before serving.
  template <class F>
  App& route(std::string_view pattern, std::initializer_list<std::string_view> methods, F handler);
  // get / post / put / patch / del: route() for one method.
  template <class F>
  App& get(std::string_view pattern, F handler) {
    return route(pattern, {"GET"}, std::move(handler));
  }
  template <class F>
  App& post(std::string_view pattern, F handler) {
    return route(pattern, {"POST"}, std::move(handler));
  }
  template <class F>
  App& put(std::string_view pattern, F handler) {
    return route(pattern, {"PUT"}, std::move(handler));
  }
  template <class F>
  App& patch(std::string_view pattern, F handler) {
    return route(pattern, {"PATCH"}, std::move(handler));
  }
  template <class F>
  App& del(std::string_view pattern, F handler) {
    return route(pattern, {"DELETE"}, std::move(handler));
  }

  // match(method, path): the route for a decoded path (what the server does first).
  [[nodiscard]] Match match(std::string_view method, std::string_view path) const;

  // thread_pool() / process_pool(): the pools (started on first use when the App owns them).
  ThreadPoolExecutor& thread_pool();
  ProcessPoolExecutor& process_pool();

  // run_in_thread(fn, args...): fn(args...) on the thread pool → Future, counted against
  // max_thread_pending: HTTPError 503 ("thread pool full") when the limit is reached.
  template <class F, class... A>
  auto run_in_thread(F&& fn, A&&... args);
  // run_in_process(fn, args...): the registered task fn(args...) on the process pool → Future,
  // counted against max_process_pending (HTTPError 503 "process pool full").
  template <class R, class... P, class... A>
  concur::Future<R> run_in_process(R (*fn)(P...), A&&... args);
  // run_batch_in_process(fn, calls): ProcessPoolExecutor::submit_batch (one round trip, one
  // worker, the results in order), counted as one pending task.
  template <class R, class... P, class... A>
  concur::Future<std::vector<R>> run_batch_in_process(R (*fn)(P...),
                                                      const std::vector<std::tuple<A...>>& calls);

  // metrics(): the App's counters (every server of the App updates them).
  [[nodiscard]] Metrics& metrics() noexcept { return metrics_; }
  [[nodiscard]] const AppOptions& options() const noexcept { return options_; }
  // draining(): a server of this App is draining (/healthz answers 503 then).
  std::atomic<int> draining{0};

  // ---- for the server (src/http) ----
  // try_reserve(kind): takes one pending slot of the pool that runs kind (false when full; the
  // rejection is counted); release(kind) gives it back.
  bool try_reserve(detail::Handler::Kind kind) noexcept;
  void release(detail::Handler::Kind kind) noexcept;

 private:
  void add(std::string_view pattern, std::initializer_list<std::string_view> methods,
           detail::Handler handler, const std::vector<detail::ArgKind>* process_args);
  void add_builtin_routes();

  AppOptions options_;
  Metrics metrics_;
  std::vector<std::unique_ptr<detail::Route>> routes_;      // dynamic, in match order
  std::unordered_map<std::string, detail::Route*> static_;  // fully literal patterns
  std::vector<std::unique_ptr<detail::Route>> static_routes_;
  std::size_t next_order_ = 0;
  std::mutex pools_mu_;
  std::unique_ptr<ThreadPoolExecutor> own_threads_;
  std::unique_ptr<ProcessPoolExecutor> own_processes_;
  std::atomic<ThreadPoolExecutor*> threads_{nullptr};
  std::atomic<ProcessPoolExecutor*> processes_{nullptr};
};

// ---- implementation ---------------------------------------------------------------------------

template <class F>
App& App::route(std::string_view pattern, std::initializer_list<std::string_view> methods,
                F handler) {
  detail::Handler h;
  if constexpr (detail::IsProcessTask<F>::value) {
    return [&]<class R, class... P>(ProcessTask<R, P...> task) -> App& {
      const std::vector<detail::ArgKind> kinds = {detail::arg_kind<P>()...};
      h.kind = detail::Handler::Kind::kProcess;
      h.process = [fn = task.fn](ProcessPoolExecutor& pool, const Request& req) {
        std::size_t i = 0;
        auto next = [&]<class T>(std::type_identity<T>) {
          return req.template param<std::remove_cvref_t<T>>(req.params.at(i++).first);
        };
        // (Braced: the arguments are evaluated left to right.)
        std::tuple<std::remove_cvref_t<P>...> args{next(std::type_identity<P>{})...};
        concur::Future<R> f =
            std::apply([&](auto&... a) { return pool.submit(fn, std::move(a)...); }, args);
        // The task's error becomes the answer here, in the thread that settled it: its exception
        // object stays with the pool's future. Shared with a second future that another thread
        // reads, its destruction (by the pool, last) would be ordered only by libstdc++'s
        // uninstrumented reference count, which ThreadSanitizer reports as a race.
        return f.then([](const concur::Future<R>& done) {
          try {
            if constexpr (std::is_void_v<R>) {
              done.result();
              return Response::json(nullptr);
            } else {
              return detail::as_response(done.result());
            }
          } catch (...) {
            return detail::error_response(std::current_exception());
          }
        });
      };
      add(pattern, methods, std::move(h), &kinds);
      return *this;
    }(handler);
  } else if constexpr (std::is_invocable_v<F&, const Request&> || std::is_invocable_v<F&>) {
    auto call = [f = std::move(handler)](const Request& req) mutable -> decltype(auto) {
      if constexpr (std::is_invocable_v<F&, const Request&>) {
        return f(req);
      } else {
        return f();
      }
    };
    using Result = std::remove_cvref_t<decltype(call(std::declval<const Request&>()))>;
    if constexpr (detail::IsTask<Result>::value) {
      using R = typename detail::IsTask<Result>::value_type;
      static_assert(detail::ResponseLike<R>,
                    "App::route: a coroutine handler returns aio::Task<Response>, "
                    "aio::Task<nlohmann::json> or aio::Task<std::string>");
      h.kind = detail::Handler::Kind::kLoop;
      if constexpr (std::is_same_v<R, Response>) {
        h.loop = std::move(call);
      } else {
        h.loop = [call = std::move(call)](const Request& req) mutable -> aio::Task<Response> {
          aio::Task<R> inner = call(req);
          co_return detail::as_response(co_await std::move(inner));
        };
      }
    } else {
      static_assert(detail::ResponseLike<Result>,
                    "App::route: a handler returns Response, nlohmann::json or std::string (or "
                    "aio::Task of one)");
      h.kind = detail::Handler::Kind::kThread;
      h.blocking = [call = std::move(call)](const Request& req) mutable {
        return detail::as_response(call(req));
      };
    }
    add(pattern, methods, std::move(h), nullptr);
    return *this;
  } else {
    static_assert(std::is_invocable_v<F&, const Request&>,
                  "App::route: a handler is callable as handler(const http::Request&) (or with "
                  "no argument), or in_process(task)");
    return *this;
  }
}

template <class F, class... A>
auto App::run_in_thread(F&& fn, A&&... args) {
  if (!try_reserve(detail::Handler::Kind::kThread)) throw HTTPError(503, "thread pool full");
  try {
    auto f = thread_pool().submit(std::forward<F>(fn), std::forward<A>(args)...);
    f.add_done_callback([this](const auto& /*done*/) { release(detail::Handler::Kind::kThread); });
    return f;
  } catch (...) {
    release(detail::Handler::Kind::kThread);
    throw;
  }
}

template <class R, class... P, class... A>
concur::Future<R> App::run_in_process(R (*fn)(P...), A&&... args) {
  if (!try_reserve(detail::Handler::Kind::kProcess)) throw HTTPError(503, "process pool full");
  try {
    concur::Future<R> f = process_pool().submit(fn, std::forward<A>(args)...);
    f.add_done_callback(
        [this](const concur::Future<R>& /*done*/) { release(detail::Handler::Kind::kProcess); });
    return f;
  } catch (...) {
    release(detail::Handler::Kind::kProcess);
    throw;
  }
}

template <class R, class... P, class... A>
concur::Future<std::vector<R>> App::run_batch_in_process(
    R (*fn)(P...), const std::vector<std::tuple<A...>>& calls) {
  if (!try_reserve(detail::Handler::Kind::kProcess)) throw HTTPError(503, "process pool full");
  try {
    concur::Future<std::vector<R>> f = process_pool().submit_batch(fn, calls);
    f.add_done_callback([this](const concur::Future<std::vector<R>>& /*done*/) {
      release(detail::Handler::Kind::kProcess);
    });
    return f;
  } catch (...) {
    release(detail::Handler::Kind::kProcess);
    throw;
  }
}

}  // namespace concur::http
