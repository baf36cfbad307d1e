// Notes "回调函数" (concurrent.futures模块): `tp.submit(get_page, url).add_done_callback(callback)`
// for five URLs on `ThreadPoolExecutor(3)`; get_page prints '<线程...> get url' and returns
// {'url': url, 'text': ...}; the callback receives the future and prints `ret.result()` and
// `currentThread()`. The notes' point ("验证"): in concurrent.futures the callback runs in the
// worker thread that finished the task (in multiprocessing.Pool, in the main process).
// Also shown: a callback added to a future that is done already runs at once in the caller's
// thread, and a callback that throws goes to the excepthook without breaking the future.
// Downloads are simulated; each waits for `go` so that every callback is registered before
// its page arrives (the notes rely on the network being slower than the loop).
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kUrls = {"https://www.baidu.com", "https://www.python.org",
                                        "https://www.openstack.org", "https://help.github.com/",
                                        "http://www.sina.com.cn/"};

struct Page {
  std::string url;
  std::string text;
  std::string fetched_by;  // the thread get_page ran in
};

concur::Event go;

Page get_page(const std::string& url) {
  const std::string me = concur::current_thread().name();
  std::printf("<线程%s> get %s\n", me.c_str(), url.c_str());
  (void)go.wait(10s);
  std::this_thread::sleep_for(5ms);  // requests.get(url)
  return Page{url, "<html>" + url + "</html>", me};
}

struct CallbackLog {
  std::mutex mu;
  std::map<std::string, std::string> thread_of;  // url → the thread its callback ran in
};

}  // namespace

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "FAIL: %s\n", what);
      ++failures;
    }
  };
  const std::string main_name = concur::current_thread().name();
  std::printf("主线程 %s\n", main_name.c_str());

  CallbackLog log;
  std::vector<concur::Future<Page>> pages;
  {
    concur::ThreadPoolExecutor tp(concur::ThreadPoolExecutor::Options{
        .max_workers = 3, .thread_name_prefix = "tp", .initializer = {}});
    for (const std::string& url : kUrls) {
      concur::Future<Page> t = tp.submit(get_page, url);
      t.add_done_callback([&log](const concur::Future<Page>& ret) {  // callback(ret)
        const Page page = ret.result();
        const std::string me = concur::current_thread().name();
        std::printf("____ %s: %s, %zu bytes\n", me.c_str(), page.url.c_str(), page.text.size());
        std::scoped_lock lk(log.mu);
        log.thread_of[page.url] = me;
      });
      pages.push_back(t);
    }
    go.set();
  }  // the pool's destructor waits for the tasks, and so for their callbacks

  {
    std::scoped_lock lk(log.mu);
    check(log.thread_of.size() == kUrls.size(), "not every callback ran");
    for (const auto& f : pages) {
      const Page page = f.result();
      const auto it = log.thread_of.find(page.url);
      if (it == log.thread_of.end()) continue;
      if (it->second != page.fetched_by || it->second == main_name) {
        std::fprintf(stderr, "FAIL: the callback of %s ran in %s, the task in %s\n",
                     page.url.c_str(), it->second.c_str(), page.fetched_by.c_str());
        ++failures;
      }
    }
  }

  // A future that is done already: the callback runs now, in this thread.
  std::string ran_in;
  pages.front().add_done_callback(
      [&ran_in](const concur::Future<Page>&) { ran_in = concur::current_thread().name(); });
  std::printf("callback on a done future ran in %s\n", ran_in.c_str());
  check(ran_in == main_name, "a callback on a done future did not run at once in the caller");

  // A throwing callback: reported to the excepthook; the future and the next callback are fine.
  std::vector<std::string> hooked;
  concur::ExceptHook previous = concur::set_excepthook(
      [&hooked](const concur::ExceptHookArgs& args) { hooked.push_back(args.exc_message); });
  bool second_ran = false;
  {
    concur::Event release;
    concur::ThreadPoolExecutor tp(1);
    concur::Future<int> f = tp.submit([&release] {
      (void)release.wait(10s);
      return 42;
    });
    f.add_done_callback(
        [](const concur::Future<int>&) { throw std::runtime_error("callback failed"); });
    f.add_done_callback([&second_ran](const concur::Future<int>&) { second_ran = true; });
    release.set();
    std::printf("result after a throwing callback: %d\n", f.result());
    check(f.result() == 42, "a throwing callback changed the result");
  }
  concur::set_excepthook(std::move(previous));
  for (const std::string& m : hooked) std::printf("excepthook: %s\n", m.c_str());
  check(hooked.size() == 1 && hooked[0] == "callback failed",
        "the throwing callback did not reach the excepthook once");
  check(second_ran, "the callback after a throwing one did not run");
  return failures == 0 ? 0 : 1;
}
