// Notes 11-7 "wait()阻塞，等待某些任务完成": with `ThreadPoolExecutor(max_workers=2)`, task6 =
// get_html(6) and then get_html(3), (2), (4); `wait([task6])` blocks the main thread until
// task6 is done (return_when defaults to ALL_COMPLETED), so "main" is printed after "get page 6
// success" but before "get page 4 success". The notes list the other return_when values and
// leave `wait(all_task, return_when=FIRST_COMPLETED)` commented out: here it runs too —
// it returns as soon as any one future is done, split into {done, not_done}.
// A notes-second is 50 ms here. Timeline (two workers): 6 and 3 start at 0; 3 ends at 3 and 2
// starts; 2 ends at 5 and 4 starts; 6 ends at 6; 4 ends at 9.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kSecond = 50ms;  // one second of the notes

int get_html(int times) {
  std::this_thread::sleep_for(times * kSecond);
  std::printf("get page %d success\n", times);
  return times;
}

// values(fs) lists the results of done futures ("?" for one that is not done).
std::string values(const std::vector<concur::Future<int>>& fs) {
  std::string s = "[";
  for (const auto& f : fs) {
    if (s.size() > 1) s += ", ";
    s += f.done() ? std::to_string(f.result()) : "?";
  }
  return s + "]";
}

}  // namespace

int main() {
  const std::vector<int> urls = {3, 2, 4};
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "FAIL: %s\n", what);
      ++failures;
    }
  };

  {
    std::printf("-- wait([task6])\n");
    concur::ThreadPoolExecutor executor(2);
    const std::vector<concur::Future<int>> task6 = {executor.submit(get_html, 6)};
    std::vector<concur::Future<int>> all_task;
    for (int url : urls) all_task.push_back(executor.submit(get_html, url));

    const auto r = concur::wait(task6);  // ALL_COMPLETED: until task6 is done
    std::printf("main\n");
    check(r.done.size() == 1 && r.not_done.empty(), "wait([task6]) returned before task6 was done");
    check(!all_task[2].done(), "get_html(4) was done when wait([task6]) returned (ends at 9 s)");
    (void)concur::wait(all_task);  // the pool's destructor would wait for them anyway
  }

  {
    std::printf("-- wait(all_task, return_when=FIRST_COMPLETED)\n");
    concur::ThreadPoolExecutor executor(2);
    std::vector<concur::Future<int>> all_task;
    for (int url : urls) all_task.push_back(executor.submit(get_html, url));

    const auto first = concur::wait(all_task, concur::FIRST_COMPLETED);
    std::printf("FIRST_COMPLETED: done %s, not_done %zu\n", values(first.done).c_str(),
                first.not_done.size());
    // get_html(2) ends at 2 s, get_html(3) at 3 s and get_html(4) at 6 s.
    check(!first.done.empty() && first.done[0] == all_task[1], "get_html(2) was not done first");
    check(!all_task[2].done(), "FIRST_COMPLETED waited for get_html(4)");
    check(first.done.size() + first.not_done.size() == all_task.size(), "futures went missing");

    // A timeout never throws: not_done says what did not make it.
    const auto early = concur::wait(all_task, 1ms);
    std::printf("wait(timeout=1 ms): done %zu, not_done %zu\n", early.done.size(),
                early.not_done.size());
    check(!early.not_done.empty(), "get_html(4) was done after 2 s");

    const auto all = concur::wait(all_task, concur::ALL_COMPLETED);
    std::printf("ALL_COMPLETED: done %s, not_done %zu\n", values(all.done).c_str(),
                all.not_done.size());
    check(all.done.size() == 3 && all.not_done.empty(), "ALL_COMPLETED left futures pending");
  }
  return failures == 0 ? 0 : 1;
}
