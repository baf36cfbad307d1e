// Notes 11-7 "通过executor的map获取已经完成的task的值": `for data in executor.map(get_html,
// urls): print("get {} page".format(data))` over urls = [3, 2, 4]. map() submits for us and
// hands back the results themselves, in the order of `urls` ("它的返回值按照urls的传入顺序") —
// "get page 2 success" is printed first, yet map yields 3, 2, 4; as_completed yields as each
// task finishes: 2, 3, 4 ("as_completed是处理完一个就返回一个值").
// A notes-second is 50 ms here. concur's map() is lazy (a window of 2 × max_workers tasks in
// flight), which for three URLs submits them all at once, as Python does.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kSecond = 50ms;  // one second of the notes

std::mutex finished_mu;
std::vector<int> finished_order;  // guarded by finished_mu

int get_html(int times) {
  std::this_thread::sleep_for(times * kSecond);
  std::printf("get page %d success\n", times);
  std::scoped_lock lk(finished_mu);
  finished_order.push_back(times);
  return times;
}

// take_finished() returns the load order so far and starts a new one.
std::vector<int> take_finished() {
  std::scoped_lock lk(finished_mu);
  std::vector<int> out;
  out.swap(finished_order);
  return out;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) {
    if (!s.empty()) s += ' ';
    s += std::to_string(x);
  }
  return s;
}

}  // namespace

int main() {
  const std::vector<int> urls = {3, 2, 4};
  concur::ThreadPoolExecutor executor(2);
  int failures = 0;

  std::printf("-- executor.map(get_html, urls)\n");
  std::vector<int> map_order;
  for (int data : executor.map(get_html, urls)) {
    std::printf("get %d page\n", data);
    map_order.push_back(data);
  }
  const std::vector<int> map_finished = take_finished();

  std::printf("-- as_completed([executor.submit(get_html, url) for url in urls])\n");
  std::vector<concur::Future<int>> all_task;
  for (int url : urls) all_task.push_back(executor.submit(get_html, url));
  std::vector<int> completed_order;
  for (concur::Future<int> future : concur::as_completed(all_task, 10s)) {
    const int data = future.result();
    std::printf("get %d page\n", data);
    completed_order.push_back(data);
  }
  const std::vector<int> completed_finished = take_finished();

  std::printf("map yielded %s (input order), the pages loaded as %s\n", join(map_order).c_str(),
              join(map_finished).c_str());
  std::printf("as_completed yielded %s, the pages loaded as %s\n", join(completed_order).c_str(),
              join(completed_finished).c_str());

  if (map_order != urls) {
    std::fprintf(stderr, "FAIL: map() yielded %s, not the input order %s\n",
                 join(map_order).c_str(), join(urls).c_str());
    ++failures;
  }
  if (map_finished != std::vector<int>{2, 3, 4}) {
    std::fprintf(stderr, "FAIL: under map() the pages loaded as %s, expected 2 3 4\n",
                 join(map_finished).c_str());
    ++failures;
  }
  if (completed_order != completed_finished || completed_order != std::vector<int>{2, 3, 4}) {
    std::fprintf(stderr, "FAIL: as_completed yielded %s, expected the load order 2 3 4\n",
                 join(completed_order).c_str());
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
