// Notes "事件" (`threading.Event`, "红灯 / 绿灯"): ten threads print their number and wait() on
// the event — red (clear) blocks them, green (set) lets every one through at once. The notes
// ask input() for "1"; here the main thread turns the light green itself once all ten wait.
// wait(timeout) shows the light's state without blocking for good.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kThreads = 10;

std::atomic<int> arrived{0};
std::atomic<int> passed{0};

void func(concur::Event& e, int i) {
  std::printf("%d\n", i);
  ++arrived;
  e.wait();  // red: block; green: go on
  std::printf("%d\n", i + 100);
  ++passed;
}

}  // namespace

int main() {
  concur::Event event;
  std::vector<concur::Thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(func, std::ref(event), i);
    threads.back().start();
  }

  event.clear();  // 主动将状态设置为红灯 (an Event starts red anyway)
  for (int i = 0; i < 200 && arrived.load() < kThreads; ++i) std::this_thread::sleep_for(10ms);
  const bool red_times_out = !event.wait(20ms);  // wait(timeout) is False while red
  const int passed_on_red = passed.load();
  std::printf(">>> 1  (%d threads at the red light, %d passed)\n", arrived.load(), passed_on_red);

  event.set();  // 主动将状态设置为绿灯
  for (auto& t : threads) t.join();

  if (!red_times_out || passed_on_red != 0) {
    std::fprintf(stderr, "FAIL: %d threads passed a red light\n", passed_on_red);
    return 1;
  }
  if (passed.load() != kThreads || !event.is_set()) {
    std::fprintf(stderr, "FAIL: only %d threads passed the green light\n", passed.load());
    return 1;
  }
  return 0;
}
