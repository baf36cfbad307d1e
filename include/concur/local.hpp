// concur/local.hpp — Local<T>, Python's threading.local: one object whose value is separate in
// every thread.
//
// Unlike the `thread_local` keyword, a Local<T> can be an ordinary member or a local variable:
// each Local instance gives every thread that touches it its own T, created on first use by
// the init function (default: T{}). A thread's value is destroyed when that thread exits or
// when the Local is destroyed, whichever comes first. get() after first use is a lock-free
// thread-local lookup.
// Thread-safety: get() may be called from any thread; each value is only touched by its thread
// (until the Local's destructor destroys the remaining values). Lifetime: no thread may use a
// Local while it is being destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "concur/detail/config.hpp"

namespace concur {

namespace detail {
// LocalSlots is the type-erased engine behind Local<T>: a process-wide table of slot indices
// and, per thread, a vector of (generation, value) entries indexed by slot.
class CONCUR_EXPORT LocalSlot {
 public:
  using Destroy = void (*)(void*);
  explicit LocalSlot(Destroy destroy);
  LocalSlot(const LocalSlot&) = delete;
  LocalSlot& operator=(const LocalSlot&) = delete;
  ~LocalSlot();
  // find() is the calling thread's value or nullptr.
  [[nodiscard]] void* find() const noexcept;
  // attach(value) records `value` (owned from now on) as the calling thread's value.
  void attach(void* value);

 private:
  std::size_t index_;
  std::uint64_t generation_;
  Destroy destroy_;
};
}  // namespace detail

template <class T>
class Local {
 public:
  // Local() gives each thread a value-initialized T.
  Local() : Local([] { return T{}; }) {}
  // Local(init) gives each thread the T returned by init(), called in that thread on first use
  // (Python: a threading.local subclass with __init__).
  explicit Local(std::function<T()> init)
      : init_(std::move(init)), slot_([](void* p) { delete static_cast<T*>(p); }) {}
  Local(const Local&) = delete;
  Local& operator=(const Local&) = delete;

  // get() is the calling thread's value, created on first use.
  T& get() {
    if (void* p = slot_.find()) [[likely]]
      return *static_cast<T*>(p);
    auto value = std::make_unique<T>(init_());
    T* raw = value.get();
    slot_.attach(raw);
    value.release();
    return *raw;
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }
  // has_value() is true once the calling thread has created its value.
  [[nodiscard]] bool has_value() const noexcept { return slot_.find() != nullptr; }

 private:
  std::function<T()> init_;
  detail::LocalSlot slot_;
};

}  // namespace concur
