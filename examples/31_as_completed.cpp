// Notes 11-7 "通过as_completed得到完成的任务对象": with `ThreadPoolExecutor(max_workers=2)`,
// `all_task = [executor.submit(get_html, url) for url in [3, 2, 4]]`, then
// `for future in as_completed(all_task): print("get {} page".format(future.result()))`.
// as_completed yields each future as it finishes, not in submission order: get_html(2) ends
// first (2 s), get_html(3) next (3 s), get_html(4) last (it starts when the 2 s task frees a
// worker, so it ends at 6 s). A notes-second is 50 ms here, so the gaps are 50 ms or more.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kSecond = 50ms;  // one second of the notes

std::mutex finished_mu;
std::vector<int> finished_order;  // guarded by finished_mu: the order the pages loaded in

int get_html(int times) {
  std::this_thread::sleep_for(times * kSecond);
  std::printf("get page %d success\n", times);
  std::scoped_lock lk(finished_mu);
  finished_order.push_back(times);
  return times;
}

}  // namespace

int main() {
  const std::vector<int> urls = {3, 2, 4};
  std::vector<int> yielded;
  {
    concur::ThreadPoolExecutor executor(2);
    std::vector<concur::Future<int>> all_task;
    for (int url : urls) all_task.push_back(executor.submit(get_html, url));

    // A bounded wait: a future that never finished would end the loop with TimeoutError.
    for (concur::Future<int> future : concur::as_completed(all_task, 10s)) {
      const int data = future.result();  // done already: never blocks
      std::printf("get %d page\n", data);
      yielded.push_back(data);
    }
  }

  int failures = 0;
  const std::vector<int> expected = {2, 3, 4};
  if (yielded != expected) {
    std::fprintf(stderr, "FAIL: as_completed yielded");
    for (int v : yielded) std::fprintf(stderr, " %d", v);
    std::fprintf(stderr, ", expected 2 3 4 (completion order)\n");
    ++failures;
  }
  std::scoped_lock lk(finished_mu);
  if (finished_order != yielded) {
    std::fprintf(stderr, "FAIL: as_completed order differs from the order the pages loaded\n");
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
