// The executor contract suite (tests/contract/executor_contract.hpp) for ThreadPoolExecutor:
// CPython's ExecutorTest, ExecutorShutdownTest and the Executor-level cases of
// test_thread_pool.py, run against concur's work-stealing pool. What is specific to the pool
// (lazy workers, names, initializer, helping, DeadlockError, stats) is in
// tests/thread_pool_test.cpp.
#include <cstddef>
#include <memory>

#include "concur/executor.hpp"
#include "concur/thread_pool.hpp"
#include "contract/executor_contract.hpp"

namespace {

// ThreadPoolFactory: a pool of exactly `workers` threads.
struct ThreadPoolFactory {
  static std::unique_ptr<concur::Executor> make(std::size_t workers) {
    return std::make_unique<concur::ThreadPoolExecutor>(workers);
  }
};

}  // namespace

namespace concur::testing::contract {
INSTANTIATE_TYPED_TEST_SUITE_P(ThreadPool, ExecutorContract, ThreadPoolFactory);
}  // namespace concur::testing::contract
