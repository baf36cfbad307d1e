// The registries of concur/mp/task.hpp (tasks) and concur/mp/process.hpp (Process subclasses).
// Both are filled during static initialization and read afterwards; a mutex keeps late
// registrations (a dlopen'ed library) safe.
#include "concur/mp/task.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "concur/errors.hpp"
#include "concur/mp/process.hpp"
#include "exception_info.hpp"

namespace concur::mp::detail {

namespace {

struct TaskRegistry {
  std::mutex mu;
  std::deque<TaskEntry> entries;  // deque: pointers handed out stay valid
  std::vector<std::string_view> ambiguous;
};

TaskRegistry& tasks() {
  // Constructed on first use (safe from any static initializer), never destroyed (safe from any
  // static destructor).
  static auto* registry = new TaskRegistry;
  return *registry;
}

struct ClassRegistry {
  std::mutex mu;
  std::deque<ProcessClassEntry> entries;
  std::vector<std::string_view> ambiguous;
};

ClassRegistry& classes() {
  static auto* registry = new ClassRegistry;
  return *registry;
}

bool contains(const std::vector<std::string_view>& names, std::string_view name) {
  for (const std::string_view n : names)
    if (n == name) return true;
  return false;
}

}  // namespace

ExceptionInfo describe_current_exception() {
  ExceptionInfo info;
  try {
    throw;
  } catch (const Error& e) {
    const std::string what = e.what();
    const auto colon = what.find(": ");
    if (colon != std::string::npos && colon < 40 && what.find(' ') >= colon) {
      info.type_name = what.substr(0, colon);
      info.message = what.substr(colon + 2);
    } else {
      info.type_name = demangle(typeid(e).name());
      info.message = what;
    }
  } catch (const SystemExit& e) {
    info.type_name = "SystemExit";
    info.message = std::to_string(e.code());
  } catch (const std::exception& e) {
    info.type_name = demangle(typeid(e).name());
    info.message = e.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    info.type_name = t != nullptr ? demangle(t->name()) : "unknown exception";
  }
  return info;
}

std::string demangle(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && out != nullptr ? out : mangled;
  std::free(out);
  return name;
}

bool register_task(const TaskEntry& entry) noexcept {
  TaskRegistry& r = tasks();
  std::scoped_lock lock(r.mu);
  for (const TaskEntry& e : r.entries) {
    if (std::strcmp(e.name, entry.name) != 0) continue;
    if (e.address == entry.address) return true;  // the same function registered again
    if (!contains(r.ambiguous, entry.name)) r.ambiguous.emplace_back(entry.name);
  }
  r.entries.push_back(entry);
  return true;
}

const TaskEntry* find_task(AnyFn address) noexcept {
  TaskRegistry& r = tasks();
  std::scoped_lock lock(r.mu);
  for (const TaskEntry& e : r.entries)
    if (e.address == address) return &e;
  return nullptr;
}

const TaskEntry* find_task(std::string_view name) noexcept {
  TaskRegistry& r = tasks();
  std::scoped_lock lock(r.mu);
  if (contains(r.ambiguous, name)) return nullptr;
  for (const TaskEntry& e : r.entries)
    if (e.name == name) return &e;
  return nullptr;
}

bool task_name_ambiguous(std::string_view name) noexcept {
  TaskRegistry& r = tasks();
  std::scoped_lock lock(r.mu);
  return contains(r.ambiguous, name);
}

bool register_process_class(const ProcessClassEntry& entry) noexcept {
  ClassRegistry& r = classes();
  std::scoped_lock lock(r.mu);
  for (const ProcessClassEntry& e : r.entries) {
    if (std::strcmp(e.name, entry.name) != 0) continue;
    if (*e.type == *entry.type) return true;
    if (!contains(r.ambiguous, entry.name)) r.ambiguous.emplace_back(entry.name);
  }
  r.entries.push_back(entry);
  return true;
}

const ProcessClassEntry* find_process_class(const std::type_info& type) noexcept {
  ClassRegistry& r = classes();
  std::scoped_lock lock(r.mu);
  for (const ProcessClassEntry& e : r.entries)
    if (*e.type == type) return contains(r.ambiguous, e.name) ? nullptr : &e;
  return nullptr;
}

const ProcessClassEntry* find_process_class(std::string_view name) noexcept {
  ClassRegistry& r = classes();
  std::scoped_lock lock(r.mu);
  if (contains(r.ambiguous, name)) return nullptr;
  for (const ProcessClassEntry& e : r.entries)
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace concur::mp::detail

// ---- Soft time limits: the deadline of the task this thread runs (max(): none).

namespace concur::mp {

namespace {

thread_local std::chrono::steady_clock::time_point tls_soft_deadline =
    std::chrono::steady_clock::time_point::max();
thread_local std::chrono::milliseconds tls_soft_limit{0};

}  // namespace

bool soft_time_limit_exceeded() noexcept {
  return tls_soft_deadline != std::chrono::steady_clock::time_point::max() &&
         std::chrono::steady_clock::now() >= tls_soft_deadline;
}

void check_soft_time_limit() {
  if (soft_time_limit_exceeded())
    throw SoftTimeLimitExceeded("the task passed its soft time limit of " +
                                std::to_string(tls_soft_limit.count()) + " ms");
}

std::optional<std::chrono::milliseconds> soft_time_left() noexcept {
  if (tls_soft_deadline == std::chrono::steady_clock::time_point::max()) return std::nullopt;
  const auto left = tls_soft_deadline - std::chrono::steady_clock::now();
  return std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(left));
}

namespace detail {

SoftLimitScope::SoftLimitScope(std::chrono::milliseconds limit) noexcept
    : previous_deadline_(tls_soft_deadline), previous_limit_(tls_soft_limit) {
  if (limit.count() > 0) {
    tls_soft_deadline = std::chrono::steady_clock::now() + limit;
    tls_soft_limit = limit;
  } else {
    tls_soft_deadline = std::chrono::steady_clock::time_point::max();
    tls_soft_limit = std::chrono::milliseconds(0);
  }
}

SoftLimitScope::~SoftLimitScope() {
  tls_soft_deadline = previous_deadline_;
  tls_soft_limit = previous_limit_;
}

}  // namespace detail

}  // namespace concur::mp
