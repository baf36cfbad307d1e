// Tests for include/concur/aio/subprocess.hpp, after CPython's test_asyncio/test_subprocess.py:
// communicate with input, stdout/stderr apart and merged (STDOUT), reading a child's output as a
// stream line by line, wait() without blocking the loop, returncode of an exit and of a signal,
// kill(), a cancelled wait leaves the child alone, a child that does not read its stdin, shell
// commands, a missing program, and many children at once.
#include "concur/aio/subprocess.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "concur/subprocess.hpp"
#include "support/aio_support.hpp"
#include "support/hook_support.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;

class AioSubprocessTest : public HookCapturingTest {};

TEST_F(AioSubprocessTest, CommunicateSendsInputAndCollectsOutput) {
  auto main = []() -> aio::Task<void> {
    // (g++ 12: braced lists and aggregates are named before a co_await, see task.hpp)
    std::vector<std::string> args{"sort"};
    aio::SubprocessOptions pipes{.stdin_ = aio::PIPE, .stdout_ = aio::PIPE, .stderr_ = aio::PIPE};
    aio::Process p = co_await aio::create_subprocess_exec(std::move(args), pipes);
    auto [out, err] = co_await p.communicate("pear\napple\nfig\n");
    EXPECT_EQ(out, "apple\nfig\npear\n");
    EXPECT_EQ(err, "");
    EXPECT_EQ(p.returncode(), 0);
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, StderrApartAndMergedIntoStdout) {
  auto main = []() -> aio::Task<void> {
    aio::SubprocessOptions separate{.stdout_ = aio::PIPE, .stderr_ = aio::PIPE};
    aio::Process apart =
        co_await aio::create_subprocess_shell("echo out; echo err 1>&2; exit 3", separate);
    auto [out, err] = co_await apart.communicate();
    EXPECT_EQ(out, "out\n");
    EXPECT_EQ(err, "err\n");
    EXPECT_EQ(apart.returncode(), 3);
    aio::SubprocessOptions together{.stdout_ = aio::PIPE, .stderr_ = aio::STDOUT};
    aio::Process merged =
        co_await aio::create_subprocess_shell("echo out; echo err 1>&2", together);
    auto [both, none] = co_await merged.communicate();
    EXPECT_EQ(both, "out\nerr\n");
    EXPECT_EQ(none, "");
    EXPECT_FALSE(merged.stderr_.has_value());
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, ReadsTheOutputAsAStreamWhileTheChildRuns) {
  auto main = []() -> aio::Task<void> {
    aio::SubprocessOptions out{.stdout_ = aio::PIPE};
    aio::Process p = co_await aio::create_subprocess_shell(
        "for i in 1 2 3; do echo line$i; sleep 0.05; done", out);
    std::vector<std::string> lines;
    for (;;) {
      std::string line = co_await p.stdout_->readline();
      if (line.empty()) break;
      lines.push_back(line);
    }
    EXPECT_EQ((std::vector<std::string>{"line1\n", "line2\n", "line3\n"}), lines);
    EXPECT_EQ(co_await p.wait(), 0);
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, WaitDoesNotBlockTheLoop) {
  auto main = []() -> aio::Task<void> {
    int ticks = 0;
    aio::Task<void> ticker = aio::create_task([](int& n) -> aio::Task<void> {
      for (;;) {
        co_await aio::sleep(2ms);
        ++n;
      }
    }(ticks));
    std::vector<std::string> args{"sleep", "0.2"};
    aio::Process p = co_await aio::create_subprocess_exec(std::move(args));
    EXPECT_FALSE(p.returncode().has_value());
    EXPECT_EQ(co_await p.wait(), 0);
    EXPECT_GT(ticks, 10) << "the loop ran while the child slept";
    ticker.cancel();
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, KillGivesANegativeReturncode) {
  auto main = []() -> aio::Task<void> {
    std::vector<std::string> args{"sleep", "30"};
    aio::Process p = co_await aio::create_subprocess_exec(args);
    p.kill();
    EXPECT_EQ(co_await p.wait(), -SIGKILL);
    aio::Process q = co_await aio::create_subprocess_exec(args);
    q.terminate();
    EXPECT_EQ(co_await q.wait(), -SIGTERM);
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, ACancelledWaitLeavesTheChildRunning) {
  auto main = []() -> aio::Task<void> {
    std::vector<std::string> args{"sleep", "30"};
    aio::Process p = co_await aio::create_subprocess_exec(std::move(args));
    EXPECT_THROW((void)co_await aio::wait_for(p.wait(), 50ms), TimeoutError);
    EXPECT_FALSE(p.returncode().has_value());
    p.kill();
    EXPECT_EQ(co_await p.wait(), -SIGKILL);
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, AChildThatIgnoresItsStdinDoesNotBreakCommunicate) {
  auto main = []() -> aio::Task<void> {
    aio::SubprocessOptions pipes{.stdin_ = aio::PIPE, .stdout_ = aio::PIPE};
    aio::Process p = co_await aio::create_subprocess_shell("exec 0<&-; echo done", pipes);
    const std::string big(1 << 20, 'x');  // more than any socket buffer
    auto [out, err] = co_await p.communicate(big);
    EXPECT_EQ(out, "done\n");
    EXPECT_EQ(p.returncode(), 0);
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, LargeOutputBothWays) {
  auto main = []() -> aio::Task<void> {
    std::vector<std::string> args{"cat"};
    aio::SubprocessOptions pipes{.stdin_ = aio::PIPE, .stdout_ = aio::PIPE};
    aio::Process p = co_await aio::create_subprocess_exec(std::move(args), pipes);
    std::string input;
    for (int i = 0; i < 100000; ++i) input += std::to_string(i) + "\n";
    auto [out, err] = co_await p.communicate(input);
    EXPECT_EQ(out.size(), input.size());
    EXPECT_TRUE(out == input);
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, AMissingProgramIsFileNotFound) {
  auto main = []() -> aio::Task<void> {
    std::vector<std::string> missing{"/no/such/program"};
    EXPECT_THROW((void)co_await aio::create_subprocess_exec(missing),
                 subprocess::FileNotFoundError);
    std::vector<std::string> none;
    EXPECT_THROW((void)co_await aio::create_subprocess_exec(none), ValueError);
  };
  aio::run(main());
}

TEST_F(AioSubprocessTest, ManyChildrenAtOnce) {
  auto main = []() -> aio::Task<void> {
    std::vector<aio::Task<int>> runs;
    for (int i = 0; i < 20; ++i) {
      runs.push_back([](int n) -> aio::Task<int> {
        aio::Process p = co_await aio::create_subprocess_shell("exit " + std::to_string(n % 7));
        co_return co_await p.wait();
      }(i));
    }
    const std::vector<int> codes = co_await aio::gather(std::move(runs));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(codes[static_cast<std::size_t>(i)], i % 7);
  };
  aio::run(main());
}

}  // namespace
}  // namespace concur::testing
