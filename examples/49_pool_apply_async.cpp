// Notes "multiprocessing.Pool": Pool(4) runs f over 10 inputs with apply_async, then close() and
// join() — join() without close() first is a ValueError ("Pool is still running"). A callback
// (apply_async(callback=...)) receives each result in the main process (the pool's result
// thread), not in the worker. apply_async(f, (10,)).get(timeout=1) prints 100, and
// apply_async(time.sleep, (10,)).get(timeout=1) raises multiprocessing.TimeoutError. The 10 s
// sleep is 2 s here and the timeout 100 ms; leaving the `with` block (the destructor) terminates
// the still-sleeping worker.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

int f(int x) { return x * x; }
CONCUR_TASK(f);

int worker_pid(int) { return static_cast<int>(::getpid()); }
CONCUR_TASK(worker_pid);

void nap(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
CONCUR_TASK(nap);

}  // namespace

int main() {
  bool ok = true;
  const int parent = static_cast<int>(::getpid());
  {
    // pool = Pool(4); results = [pool.apply_async(f, (i,)) for i in range(10)]
    mp::Pool pool(mp::PoolOptions{.processes = 4});
    std::vector<mp::AsyncResult<int>> results;
    for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(f, i));
    try {
      pool.join();  // before close(): ValueError, as Python
      ok = false;
    } catch (const concur::ValueError& e) {
      std::printf("join() before close(): %s\n", e.what());
    }
    pool.close();
    pool.join();
    std::printf("results:");
    for (int i = 0; i < 10; ++i) {
      const int v = results[static_cast<std::size_t>(i)].get();
      std::printf(" %d", v);
      ok = ok && v == i * i;
    }
    std::printf("\n");
  }
  {
    // apply_async(worker_pid, (i,), callback=collect): the callback runs in this process.
    mp::Pool pool(mp::PoolOptions{.processes = 4});
    std::mutex mu;
    std::set<int> worker_pids;
    std::set<int> callback_pids;
    std::vector<mp::AsyncResult<int>> results;
    for (int i = 0; i < 10; ++i)
      results.push_back(pool.apply_async({.callback =
                                              [&](const int& pid) {
                                                std::scoped_lock lock(mu);
                                                worker_pids.insert(pid);
                                                callback_pids.insert(static_cast<int>(::getpid()));
                                              }},
                                         worker_pid, i));
    pool.close();
    pool.join();
    std::scoped_lock lock(mu);
    std::printf("callbacks ran in pid %d (parent %d); tasks ran in %zu worker(s)\n",
                callback_pids.empty() ? -1 : *callback_pids.begin(), parent, worker_pids.size());
    ok = ok && callback_pids == std::set<int>{parent} && !worker_pids.contains(parent) &&
         worker_pids.size() <= 4;
  }
  {
    // with Pool(processes=4) as pool: print(pool.apply_async(f, (10,)).get(timeout=1)) ...
    mp::Pool pool(mp::PoolOptions{.processes = 4});
    const int hundred = pool.apply_async(f, 10).get(1s);
    std::printf("apply_async(f, 10).get(timeout=1) = %d\n", hundred);
    ok = ok && hundred == 100;
    auto sleeping = pool.apply_async(nap, 2000);
    try {
      sleeping.get(100ms);
      ok = false;
    } catch (const concur::TimeoutError& e) {
      std::printf("apply_async(sleep, 2 s).get(timeout=100 ms): %s\n", e.what());
    }
  }  // the destructor is terminate(): the sleeping worker is stopped now
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
