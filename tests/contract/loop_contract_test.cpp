// The executor contract suite (tests/contract/executor_contract.hpp) for the coroutine loops:
// aio::LoopGroup(n) — n event loops, each on its own thread, one Executor over them (a single loop
// is max_workers() == 1; the suite's worker counts become loop counts). What is specific to
// coroutines is in tests/aio/.
#include <cstddef>
#include <memory>

#include "concur/aio/threads.hpp"
#include "concur/executor.hpp"
#include "contract/executor_contract.hpp"

namespace {

struct LoopGroupFactory {
  static std::unique_ptr<concur::Executor> make(std::size_t workers) {
    return std::make_unique<concur::aio::LoopGroup>(workers);
  }
};

}  // namespace

namespace concur::testing::contract {
INSTANTIATE_TYPED_TEST_SUITE_P(LoopGroup, ExecutorContract, LoopGroupFactory);
}  // namespace concur::testing::contract
