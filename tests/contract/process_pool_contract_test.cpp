// The process-executor contract suite (tests/contract/process_executor_contract.hpp) for
// ProcessPoolExecutor: CPython's ExecutorTest, ExecutorShutdownTest, WaitTest, AsCompletedTest
// and the Executor-level cases of test_process_pool.py, with registered tasks and file-system
// gates. What is specific to the pool (worker deaths, BrokenProcessPool, initializer,
// max_tasks_per_child, exit) is in tests/process_pool_test.cpp.
#include <cstddef>
#include <memory>

#include "concur/process_pool.hpp"
#include "contract/process_executor_contract.hpp"

namespace {

// ProcessPoolFactory: a pool of exactly `workers` worker processes (default start method).
struct ProcessPoolFactory {
  using executor_type = concur::ProcessPoolExecutor;
  static std::unique_ptr<executor_type> make(std::size_t workers) {
    return std::make_unique<executor_type>(concur::ProcessPoolOptions{.max_workers = workers});
  }
};

}  // namespace

namespace concur::testing::process_contract {
INSTANTIATE_TYPED_TEST_SUITE_P(ProcessPool, ProcessExecutorContract, ProcessPoolFactory);
}  // namespace concur::testing::process_contract
