// bench/registry.cpp — the one list of `concur bench` experiments.
//
// Why a list and not self-registration (a static registrar object in each experiment file):
// concur_apps is a static library, and the linker drops archive members nothing refers to, so a
// self-registering experiment would silently vanish from any binary that does not force the whole
// archive in (the tests link the library too). An explicit list also fixes the order of the table
// (the notes' order) and is where a reader finds every experiment. The cost is one line here per
// experiment; its .cpp is picked up by the glob in apps/concur/CMakeLists.txt.
#include "bench/registry.hpp"

#include <memory>
#include <string_view>
#include <vector>

#include "bench/experiments/async_crawl.hpp"
#include "bench/experiments/fib_pool.hpp"
#include "bench/experiments/is_prime.hpp"
#include "bench/experiments/is_prime_pool.hpp"
#include "bench/experiments/is_prime_redis.hpp"
#include "bench/experiments/serve_notes.hpp"
#include "bench/experiments/sleep_gather.hpp"
#include "bench/experiments/sleep_pool.hpp"

namespace concur::apps::bench {

const std::vector<std::unique_ptr<Experiment>>& experiments() {
  static const std::vector<std::unique_ptr<Experiment>> list = [] {
    std::vector<std::unique_ptr<Experiment>> v;
    // Add new experiments here, in the order of the notes.
    v.push_back(make_is_prime_experiment());
    v.push_back(make_is_prime_pool_experiment());
    v.push_back(make_is_prime_redis_experiment());  // the notes' "分布式", beside the pools
    v.push_back(make_fib_pool_experiment());
    v.push_back(make_sleep_pool_experiment());
    v.push_back(make_sleep_gather_experiment());
    v.push_back(make_async_crawl_experiment());
    v.push_back(make_serve_fanout_experiment());
    v.push_back(make_serve_is_prime_experiment());
    return v;
  }();
  return list;
}

const Experiment* find_experiment(std::string_view name) {
  for (const auto& e : experiments()) {
    if (e->name() == name) return e.get();
  }
  return nullptr;
}

}  // namespace concur::apps::bench
