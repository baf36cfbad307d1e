// Local<T>'s engine. A process-wide table maps slot index -> (generation, live, values by
// thread); each thread keeps a vector of (generation, value) indexed by slot. The fast path reads
// only the calling thread's vector. A value is destroyed exactly once, under the table mutex's
// bookkeeping: by its thread's exit, or by ~LocalSlot — whichever removes it from the table
// first. A stale entry (its slot destroyed, the index reused) never matches: generations are
// unique.
#include "concur/local.hpp"

#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace concur::detail {
namespace {

struct ThreadValues;

struct SlotInfo {
  std::uint64_t generation = 0;
  bool live = false;
  LocalSlot::Destroy destroy = nullptr;
  std::unordered_map<ThreadValues*, void*> values;
};

struct Table {
  std::mutex mu;
  std::vector<SlotInfo> slots;
  std::vector<std::size_t> free_indices;
  std::uint64_t next_generation = 1;
};

Table& table() {
  static Table* t = new Table;  // immortal: threads exit after static destruction
  return *t;
}

struct Entry {
  std::uint64_t generation = 0;
  void* value = nullptr;
};

struct ThreadValues {
  std::vector<Entry> entries;
  ThreadValues() = default;
  ThreadValues(const ThreadValues&) = delete;
  ThreadValues& operator=(const ThreadValues&) = delete;
  ~ThreadValues() {
    std::vector<std::pair<LocalSlot::Destroy, void*>> doomed;
    {
      Table& t = table();
      std::lock_guard lk(t.mu);
      for (std::size_t i = 0; i < entries.size(); ++i) {
        const Entry& e = entries[i];
        if (e.value == nullptr || i >= t.slots.size()) continue;
        SlotInfo& s = t.slots[i];
        if (!s.live || s.generation != e.generation) continue;
        if (s.values.erase(this) != 0) doomed.emplace_back(s.destroy, e.value);
      }
    }
    for (auto& [destroy, value] : doomed) destroy(value);  // outside the mutex: may use Locals
  }
};

thread_local ThreadValues tls_values;

}  // namespace

LocalSlot::LocalSlot(Destroy destroy) : destroy_(destroy) {
  Table& t = table();
  std::lock_guard lk(t.mu);
  if (!t.free_indices.empty()) {
    index_ = t.free_indices.back();
    t.free_indices.pop_back();
  } else {
    index_ = t.slots.size();
    t.slots.emplace_back();
  }
  generation_ = t.next_generation++;
  SlotInfo& s = t.slots[index_];
  s.generation = generation_;
  s.live = true;
  s.destroy = destroy;
}

LocalSlot::~LocalSlot() {
  std::unordered_map<ThreadValues*, void*> doomed;
  {
    Table& t = table();
    std::lock_guard lk(t.mu);
    SlotInfo& s = t.slots[index_];
    doomed.swap(s.values);
    s.live = false;
    s.destroy = nullptr;
    t.free_indices.push_back(index_);
  }
  for (auto& [owner, value] : doomed) destroy_(value);
}

void* LocalSlot::find() const noexcept {
  const auto& entries = tls_values.entries;
  if (index_ < entries.size() && entries[index_].generation == generation_) {
    return entries[index_].value;
  }
  return nullptr;
}

void LocalSlot::attach(void* value) {
  auto& entries = tls_values.entries;
  if (entries.size() <= index_) entries.resize(index_ + 1);
  Table& t = table();
  std::lock_guard lk(t.mu);
  t.slots[index_].values[&tls_values] = value;
  entries[index_] = {generation_, value};
}

}  // namespace concur::detail
