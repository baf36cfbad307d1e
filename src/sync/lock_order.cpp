// The lock-order checker: one global graph of "held -> acquired" edges, kept only while enabled.
//
// lock_order_before_acquire(lock):
//   1. Under the graph mutex, look at the locks the calling thread holds.
//   2. Holding `lock` itself (a non-recursive Lock taken twice) is a one-lock cycle.
//   3. For each held lock h without an h -> lock edge: search for a path lock -> ... -> h. None:
//      record the edge with the thread's name. Found: that acquisition closes a cycle.
//   4. Report outside the graph mutex. The default handler throws DeadlockError: the
//      acquisition does not happen, and the same inversion throws again next time. A handler
//      that returns lets the acquisition proceed; that inversion is then never reported again.
#include "concur/sync/lock_order.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "concur/detail/futex.hpp"
#include "concur/errors.hpp"

namespace concur {
namespace detail {

constinit std::atomic<bool> g_lock_order_enabled{false};

namespace {

struct Node {
  std::string name;
  std::unordered_map<const void*, std::string> out;  // successor -> thread that recorded it
};

struct Graph {
  std::mutex mu;
  std::unordered_map<const void*, Node> nodes;
  std::unordered_map<std::uint64_t, std::vector<const void*>> held;  // thread token -> locks
  std::unordered_map<const void*, std::uint64_t> holder;             // lock -> thread token
  std::set<std::pair<const void*, const void*>> reported;
  lock_order::Handler handler;
};

Graph& graph() {
  static Graph* g = new Graph;  // never destroyed: locks may be released during static teardown
  return *g;
}

std::atomic<ThreadNameProvider> g_name_provider{nullptr};

std::string default_thread_name() {
  const auto tid = static_cast<long>(::syscall(SYS_gettid));
  if (tid == static_cast<long>(::getpid())) return "MainThread";
  return "thread " + std::to_string(tid);
}

// find_path returns the edges of a path from `from` to `to`, or nullopt.
std::optional<std::vector<lock_order::Edge>> find_path(Graph& g, const void* from, const void* to) {
  std::unordered_map<const void*, const void*> parent;
  std::vector<const void*> stack{from};
  parent[from] = nullptr;
  while (!stack.empty()) {
    const void* cur = stack.back();
    stack.pop_back();
    if (cur == to) {
      std::vector<lock_order::Edge> path;
      for (const void* v = to; parent[v] != nullptr; v = parent[v]) {
        const void* p = parent[v];
        path.push_back({g.nodes[p].name, g.nodes[v].name, g.nodes[p].out[v]});
      }
      std::reverse(path.begin(), path.end());
      return path;
    }
    auto it = g.nodes.find(cur);
    if (it == g.nodes.end()) continue;
    for (const auto& [next, thread] : it->second.out) {
      if (parent.emplace(next, cur).second) stack.push_back(next);
    }
  }
  return std::nullopt;
}

std::string describe(const lock_order::Violation& v) {
  std::string msg = "lock-order inversion (potential deadlock): thread '" + v.thread +
                    "' acquires '" + v.acquiring + "' while holding '" + v.held + "'";
  if (v.cycle.empty()) return msg + ", which it already holds (a Lock is not re-entrant)";
  msg += ", but the recorded order is ";
  for (std::size_t i = 0; i < v.cycle.size(); ++i) {
    const auto& e = v.cycle[i];
    if (i > 0) msg += ", then ";
    msg += "'" + e.from + "' -> '" + e.to + "' (thread '" + e.thread + "')";
  }
  return msg;
}

}  // namespace

void set_thread_name_provider(ThreadNameProvider provider) noexcept {
  g_name_provider.store(provider, std::memory_order_release);
}

std::string current_thread_name() {
  const ThreadNameProvider p = g_name_provider.load(std::memory_order_acquire);
  return p != nullptr ? p() : default_thread_name();
}

void lock_order_before_acquire(const void* lock, const std::string& name) {
  const std::string thread = current_thread_name();
  const std::uint64_t me = this_thread_token();
  std::vector<lock_order::Violation> found;
  std::vector<const void*> closing;  // the held lock of each violation
  lock_order::Handler handler;
  {
    Graph& g = graph();
    std::lock_guard lk(g.mu);  // 1.
    g.nodes[lock].name = name;
    const std::vector<const void*> held = g.held[me];
    for (const void* h : held) {
      if (g.reported.count({h, lock}) != 0) continue;
      if (h == lock) {  // 2.
        found.push_back({thread, name, name, {}, {}});
        closing.push_back(h);
        continue;
      }
      Node& hn = g.nodes[h];
      if (hn.out.count(lock) != 0) continue;
      auto path = find_path(g, lock, h);  // 3.
      if (!path) {
        hn.out.emplace(lock, thread);
        continue;
      }
      found.push_back({thread, name, hn.name, std::move(*path), {}});
      closing.push_back(h);
    }
    handler = g.handler;
  }
  if (found.empty()) return;
  for (auto& v : found) {  // 4.
    v.message = describe(v);
    if (!handler) throw DeadlockError(v.message);  // not marked reported: it fails every time
    handler(v);
  }
  // The handler let the acquisition go ahead: report each inversion only once, and record its
  // edges so the graph stays complete.
  Graph& g = graph();
  std::lock_guard lk(g.mu);
  for (const void* h : closing) {
    g.reported.insert({h, lock});
    if (h != lock) g.nodes[h].out.emplace(lock, thread);
  }
}

void lock_order_acquired(const void* lock) noexcept {
  try {
    Graph& g = graph();
    std::lock_guard lk(g.mu);
    const std::uint64_t me = this_thread_token();
    g.held[me].push_back(lock);
    g.holder[lock] = me;
  } catch (...) {  // out of memory: the checker loses this lock, the program goes on
  }
}

void lock_order_released(const void* lock) noexcept {
  Graph& g = graph();
  std::lock_guard lk(g.mu);
  auto it = g.holder.find(lock);
  if (it == g.holder.end()) return;
  auto& list = g.held[it->second];
  // Remove the most recent entry: locks are usually released in reverse order.
  for (auto r = list.rbegin(); r != list.rend(); ++r) {
    if (*r == lock) {
      list.erase(std::next(r).base());
      break;
    }
  }
  g.holder.erase(it);
}

void lock_order_forget(const void* lock) noexcept {
  Graph& g = graph();
  std::lock_guard lk(g.mu);
  g.nodes.erase(lock);
  for (auto& [p, node] : g.nodes) node.out.erase(lock);
  if (auto it = g.holder.find(lock); it != g.holder.end()) {
    auto& list = g.held[it->second];
    list.erase(std::remove(list.begin(), list.end(), lock), list.end());
    g.holder.erase(it);
  }
  for (auto r = g.reported.begin(); r != g.reported.end();) {
    r = (r->first == lock || r->second == lock) ? g.reported.erase(r) : std::next(r);
  }
}

namespace {
// CONCUR_LOCK_ORDER=1 (or "true", "on") turns the checker on at start-up.
const bool g_env_checked = [] {
  const char* v = std::getenv("CONCUR_LOCK_ORDER");
  if (v != nullptr &&
      (std::strcmp(v, "1") == 0 || std::strcmp(v, "true") == 0 || std::strcmp(v, "on") == 0)) {
    g_lock_order_enabled.store(true, std::memory_order_relaxed);
  }
  return true;
}();
}  // namespace

}  // namespace detail

namespace lock_order {

void enable(bool on) noexcept { detail::g_lock_order_enabled.store(on, std::memory_order_relaxed); }

bool enabled() noexcept { return detail::lock_order_on(); }

Handler set_handler(Handler handler) {
  auto& g = detail::graph();
  std::lock_guard lk(g.mu);
  std::swap(g.handler, handler);
  return handler;
}

void reset() {
  auto& g = detail::graph();
  std::lock_guard lk(g.mu);
  g.nodes.clear();
  g.held.clear();
  g.holder.clear();
  g.reported.clear();
}

}  // namespace lock_order
}  // namespace concur
