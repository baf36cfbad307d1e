// `threading.Barrier(parties, action=...)`: four spider threads fetch one page each per round
// and wait() at the barrier; the last to arrive runs the action (merge the round's pages) before
// any of them goes on, so every spider sees round r merged before it starts round r + 1. A
// barrier the other parties never reach times out and breaks: BrokenBarrierError until reset().
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::size_t kSpiders = 4;
constexpr int kRounds = 3;

// Each spider writes only its own slot, before wait(); only the action reads them, while every
// spider is inside wait(). merged is written only by the action.
std::array<int, kSpiders> fetched{};
std::vector<int> merged;
std::atomic<int> out_of_step{0};

int expected_total(int round) {
  int sum = 0;
  for (std::size_t id = 0; id < kSpiders; ++id) sum += round * 10 + static_cast<int>(id);
  return sum;
}

void spider(std::size_t id, concur::Barrier& barrier) {
  for (int round = 0; round < kRounds; ++round) {
    fetched[id] = round * 10 + static_cast<int>(id);  // "fetch" a page
    const std::size_t index = barrier.wait();         // distinct in [0, parties) per round
    const auto r = static_cast<std::size_t>(round);
    if (merged.size() != r + 1 || merged[r] != expected_total(round)) ++out_of_step;
    if (index == 0) std::printf("round %d merged: %d\n", round, merged[r]);
  }
}

}  // namespace

int main() {
  int action_runs = 0;
  auto merge = [&action_runs] {  // runs in the last thread to arrive, while the others wait
    ++action_runs;
    int sum = 0;
    for (int v : fetched) sum += v;
    merged.push_back(sum);
  };
  concur::Barrier barrier(kSpiders, {.action = merge});
  {
    std::vector<concur::Thread> spiders;
    spiders.reserve(kSpiders);
    for (std::size_t id = 0; id < kSpiders; ++id) {
      spiders.emplace_back(spider, id, std::ref(barrier));
      spiders.back().start();
    }
    for (auto& t : spiders) t.join();
  }

  // Two parties, one arrival: the wait times out and breaks the barrier.
  concur::Barrier lonely(2);
  bool timed_out = false;
  try {
    lonely.wait(20ms);
  } catch (const concur::BrokenBarrierError& e) {
    std::printf("%s\n", e.what());
    timed_out = true;
  }
  const bool broken = lonely.broken();
  lonely.reset();

  if (action_runs != kRounds || out_of_step.load() != 0) {
    std::fprintf(stderr, "FAIL: the action ran %d times, %d spiders were out of step\n",
                 action_runs, out_of_step.load());
    return 1;
  }
  if (!timed_out || !broken || lonely.broken()) {
    std::fprintf(stderr, "FAIL: a timed-out Barrier did not break, or reset() did not mend it\n");
    return 1;
  }
  return 0;
}
