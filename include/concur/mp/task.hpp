// concur/mp/task.hpp — registered tasks: what another process can be asked to run.
//
// A C++ function has no name a fresh process could look up, so everything that runs in another
// process (a Process target, a pool task) is a function registered once, at namespace scope:
//
//   bool is_prime(std::uint64_t n);
//   CONCUR_TASK(is_prime);
//
// CONCUR_TASK(fn) records fn under the name "fn" with an invoker that loads its arguments
// (serialize.hpp), calls it and serializes the result. Every process running the same binary has
// the same registry, so the parent sends the name and the arguments, the child finds the invoker.
// Parameters must satisfy TaskArgument (Serializable and default constructible) — checked when
// the task is registered, with a readable compile error. Overloaded functions: name one with
// CONCUR_TASK_NAMED("name", static_cast<R (*)(P...)>(&fn)).
// Thread-safety: registration happens during static initialization; lookups from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/mp/serialize.hpp"

namespace concur::mp {

// Soft time limits (ProcessPoolOptions::soft_time_limit, dist::TaskOptions::soft_time_limit;
// Celery's soft_time_limit). A task past its soft limit is told, not stopped: C++ cannot raise an
// exception inside running code from outside it (Celery does it from a signal handler), so a task
// that wants to stop cleanly asks, at points where stopping is safe —
//   for (const auto& page : pages) { mp::check_soft_time_limit(); crawl(page); }
// (a hard time_limit then stops a task that never asks). Each applies to the task running on the
// calling thread; on a thread running no task (or a task without a soft limit) they report no
// limit.
// soft_time_limit_exceeded(): the task has a soft limit and is past it.
CONCUR_EXPORT bool soft_time_limit_exceeded() noexcept;
// check_soft_time_limit(): throws SoftTimeLimitExceeded when soft_time_limit_exceeded().
CONCUR_EXPORT void check_soft_time_limit();
// soft_time_left(): how long until the soft limit (zero once past it); nullopt without one.
CONCUR_EXPORT std::optional<std::chrono::milliseconds> soft_time_left() noexcept;

namespace detail {

// SoftLimitScope sets the soft limit of the task this thread runs now (zero: none), counted from
// the scope's start, and restores the previous one at its end (the process pool's worker and
// dist::Worker wrap each run in one).
class CONCUR_EXPORT SoftLimitScope {
 public:
  explicit SoftLimitScope(std::chrono::milliseconds limit) noexcept;
  SoftLimitScope(const SoftLimitScope&) = delete;
  SoftLimitScope& operator=(const SoftLimitScope&) = delete;
  ~SoftLimitScope();

 private:
  std::chrono::steady_clock::time_point previous_deadline_;
  std::chrono::milliseconds previous_limit_;
};

// AnyFn is how a task's address is kept (any function pointer converts to it and back).
using AnyFn = void (*)();

// TaskEntry is one registered task.
struct TaskEntry {
  const char* name = nullptr;
  AnyFn address = nullptr;
  // invoke(bytes, fds) loads the arguments from `bytes` (owning `fds`), calls the function and
  // returns its result serialized (empty for void, or for a result type that is not
  // Serializable). Whatever the function throws propagates.
  Payload (*invoke)(std::string_view bytes, std::vector<int> fds) = nullptr;
  bool result_serializable = false;
  // invoke_batch(in, out, count) loads `count` argument lists written back to back into one
  // archive from `in` (no descriptors), calls the function for each in order, and writes the
  // results back to back into one archive on `out` (nothing for void). A process pool's request:
  // count 1 is one submit() (the bytes of dumps(args...), the result as dumps(result) writes
  // it), n a map chunk (one archive per chunk instead of one per call). Streams, so that a large
  // request or result is read from or written to a file without a copy in memory. Throws
  // UnpicklingError when the arguments do not load, PicklingError when a result cannot be
  // written; whatever the function throws propagates.
  void (*invoke_batch)(std::istream& in, std::ostream& out, std::size_t count) = nullptr;
};

// register_task(entry) adds the entry. The same function registered twice (a CONCUR_TASK in a
// header) is one entry; two different functions under one name make that name ambiguous: looking
// it up fails with a message naming both registrations' problem.
CONCUR_EXPORT bool register_task(const TaskEntry& entry) noexcept;
// find_task(address) is the entry of a registered function, or nullptr.
CONCUR_EXPORT const TaskEntry* find_task(AnyFn address) noexcept;
// find_task(name) is the entry registered under `name`, or nullptr (also when ambiguous).
CONCUR_EXPORT const TaskEntry* find_task(std::string_view name) noexcept;
// task_name_ambiguous(name) is true when two different functions were registered as `name`.
CONCUR_EXPORT bool task_name_ambiguous(std::string_view name) noexcept;

// as_param<P>(arg) is `arg` as the task parameter type P is saved: the argument itself when it
// already has P's type (no copy: handles are not copyable), else a P converted from it.
template <class P, class A>
decltype(auto) as_param(A&& arg) {
  using V = std::remove_cvref_t<P>;
  if constexpr (std::is_same_v<std::remove_cvref_t<A>, V>)
    return static_cast<const V&>(arg);
  else
    return V(std::forward<A>(arg));
}

// demangle(name) is the readable form of a type_info name ("concur::ValueError").
CONCUR_EXPORT std::string demangle(const char* mangled);

template <class F>
struct FnTraits;
template <class R, class... P>
struct FnTraits<R (*)(P...)> {
  using Result = R;
  using Params = std::tuple<P...>;
  using Values = std::tuple<std::remove_cvref_t<P>...>;
};
template <class R, class... P>
struct FnTraits<R (*)(P...) noexcept> : FnTraits<R (*)(P...)> {};

// pass<P>(value) hands a loaded argument to a parameter of type P: lvalue-reference parameters
// get the value itself, every other parameter gets it moved.
template <class P, class V>
decltype(auto) pass(V& value) noexcept {
  if constexpr (std::is_lvalue_reference_v<P>)
    return (value);
  else
    return std::move(value);
}

template <auto Fn, std::size_t... I>
decltype(auto) call_with(typename FnTraits<decltype(Fn)>::Values& values,
                         std::index_sequence<I...>) {
  using Params = typename FnTraits<decltype(Fn)>::Params;
  return Fn(pass<std::tuple_element_t<I, Params>>(std::get<I>(values))...);
}

template <auto Fn>
Payload invoke_task(std::string_view bytes, std::vector<int> fds) {
  using Traits = FnTraits<decltype(Fn)>;
  using R = typename Traits::Result;
  typename Traits::Values values;
  if constexpr (std::tuple_size_v < typename Traits::Values >> 0)
    std::apply([&](auto&... v) { loads(bytes, std::move(fds), v...); }, values);
  else
    FdSource unused(std::move(fds));  // closes stray descriptors; no archive to build
  (void)bytes;
  constexpr auto seq = std::make_index_sequence<std::tuple_size_v<typename Traits::Values>>{};
  if constexpr (std::is_void_v<R>) {
    call_with<Fn>(values, seq);
    return {};
  } else if constexpr (Serializable<R> && std::default_initializable<std::remove_cvref_t<R>>) {
    const std::remove_cvref_t<R> result = call_with<Fn>(values, seq);
    return dumps(result);
  } else {
    (void)call_with<Fn>(values, seq);
    return {};
  }
}

template <auto Fn>
void invoke_batch(std::istream& in, std::ostream& out, std::size_t count) {
  using Traits = FnTraits<decltype(Fn)>;
  using R = typename Traits::Result;
  constexpr auto seq = std::make_index_sequence<std::tuple_size_v<typename Traits::Values>>{};
  bool saving = false;  // which side a cereal::Exception comes from
  try {
    InputArchive iar(in);
    OutputArchive oar(out);
    for (std::size_t i = 0; i < count; ++i) {
      typename Traits::Values values;
      saving = false;
      std::apply(
          [&](auto&... v) {
            if constexpr (sizeof...(v) > 0) iar(v...);
          },
          values);
      if constexpr (std::is_void_v<R>) {
        call_with<Fn>(values, seq);
      } else if constexpr (Serializable<R> && std::default_initializable<std::remove_cvref_t<R>>) {
        const std::remove_cvref_t<R> result = call_with<Fn>(values, seq);
        saving = true;
        oar(result);  // a handle in it: save_fd throws PicklingError (no hand-off under way)
      } else {
        (void)call_with<Fn>(values, seq);
      }
    }
  } catch (const cereal::Exception& e) {
    if (saving) throw_pickling(e.what());
    throw_unpickling(e.what());
  }
}

template <class... P>
consteval bool check_task_params(std::tuple<P...>*) {
  (require_task_argument<std::remove_cvref_t<P>>(), ...);
  return true;
}

template <auto Fn>
TaskEntry make_task_entry(const char* name) noexcept {
  static_assert(
      std::is_pointer_v<decltype(Fn)> && std::is_function_v<std::remove_pointer_t<decltype(Fn)>>,
      "CONCUR_TASK(fn): fn must name a function (not a lambda, a functor or a member "
      "function); for an overload use CONCUR_TASK_NAMED(\"name\", static_cast<R "
      "(*)(P...)>(&fn))");
  using Traits = FnTraits<decltype(Fn)>;
  static_assert(check_task_params(static_cast<typename Traits::Params*>(nullptr)));
  using R = std::remove_cvref_t<typename Traits::Result>;
  return TaskEntry{name, reinterpret_cast<AnyFn>(Fn), &invoke_task<Fn>,
                   std::is_void_v<R> || (Serializable<R> && std::default_initializable<R>),
                   &invoke_batch<Fn>};
}

// TaskRegistrar registers a task when constructed: CONCUR_TASK defines one at namespace scope
// with a GCC init_priority, so every registration of the binary runs before any ordinary static
// initializer — in particular before the child side of spawn/forkserver looks tasks up, wherever
// the registering object sits in the link order.
struct TaskRegistrar {
  explicit TaskRegistrar(const TaskEntry& entry) noexcept { register_task(entry); }
};

}  // namespace detail

}  // namespace concur::mp

// Registrations run at this GCC init_priority (101..65535; lower runs earlier), before every
// ordinary static initializer.
#define CONCUR_MP_INIT_PRIORITY 200
#define CONCUR_MP_CAT_(a, b) a##b
#define CONCUR_MP_CAT(a, b) CONCUR_MP_CAT_(a, b)

// CONCUR_TASK(fn) registers the function fn (at namespace scope, once per binary) under the name
// "fn", so other processes can run it. Arguments and parameters: see TaskArgument.
#define CONCUR_TASK(fn)                                                                       \
  [[maybe_unused]] static const ::concur::mp::detail::TaskRegistrar CONCUR_MP_CAT(            \
      concur_mp_task_, __COUNTER__) __attribute__((init_priority(CONCUR_MP_INIT_PRIORITY))) { \
    ::concur::mp::detail::make_task_entry<&fn>(#fn)                                           \
  }

// CONCUR_TASK_NAMED(name, fnptr) registers the function pointer constant `fnptr` under `name`.
#define CONCUR_TASK_NAMED(name, fnptr)                                                        \
  [[maybe_unused]] static const ::concur::mp::detail::TaskRegistrar CONCUR_MP_CAT(            \
      concur_mp_task_, __COUNTER__) __attribute__((init_priority(CONCUR_MP_INIT_PRIORITY))) { \
    ::concur::mp::detail::make_task_entry<fnptr>(name)                                        \
  }
