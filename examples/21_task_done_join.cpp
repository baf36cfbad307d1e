// Notes "requests结合队列": five `DownloadThread(threading.Thread)`s, each `t.setDaemon(True)`,
// loop on `url = self.q.get()`, download it, then `self.q.task_done()` ("下载完成发送信号"); the
// main thread puts the URLs into a `queue.Queue()` and `q.join()`s, which returns once every
// URL got its task_done(). Downloads are simulated by a short sleep.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kThreads = 5;

// The notes' three URLs, then more pages so that every worker gets several.
std::vector<std::string> make_urls() {
  std::vector<std::string> urls = {"http://www.baidu.com", "http://www.python.org",
                                   "http://www.douban.com"};
  for (int i = 0; i < 27; ++i) urls.push_back("http://www.douban.com/page/" + std::to_string(i));
  return urls;
}

// Downloads counts how often each URL was fetched. The map is built before the threads start
// and never changes shape, so concurrent at() is safe; the counters are atomic.
struct Downloads {
  std::map<std::string, std::atomic<int>> times;
  std::atomic<int> completed{0};
};

class DownloadThread : public concur::Thread {
 public:
  DownloadThread(concur::Queue<std::string>& q, Downloads& downloads)
      : q_(q), downloads_(downloads) {}

 protected:
  void run() override {
    while (true) {
      std::string url;
      try {
        url = q_.get();  // 从队列取出一个元素
      } catch (const concur::ShutDown&) {
        return;  // the main thread is done with us (see main)
      }
      std::printf("%s begin download %s\n", name().c_str(), url.c_str());
      download_file(url);
      ++downloads_.completed;
      q_.task_done();  // 下载完成发送信号: counted before join() may return
      std::printf("%s download completed\n", name().c_str());
    }
  }

 private:
  void download_file(const std::string& url) {
    std::this_thread::sleep_for(3ms);  // requests.get(url, stream=True) and writing the file
    ++downloads_.times.at(url);
  }

  concur::Queue<std::string>& q_;
  Downloads& downloads_;
};

}  // namespace

int main() {
  const std::vector<std::string> urls = make_urls();
  Downloads downloads;
  for (const auto& url : urls) downloads.times[url] = 0;

  concur::Queue<std::string> q;  // q = queue.Queue()
  std::vector<std::unique_ptr<DownloadThread>> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.push_back(std::make_unique<DownloadThread>(q, downloads));  // 启动5个线程
    threads.back()->set_daemon(true);                                   // t.setDaemon(True)
    threads.back()->start();
  }

  for (const auto& url : urls) q.put(url);

  q.join();  // blocks until every URL put has had its task_done()
  const int completed_at_join = downloads.completed.load();
  const std::size_t unfinished_at_join = q.unfinished_tasks();
  std::printf("q.join() returned: %d of %zu downloads completed\n", completed_at_join, urls.size());

  // One task_done() too many is a usage error, as in Python.
  bool extra_task_done_refused = false;
  try {
    q.task_done();
  } catch (const concur::ValueError& e) {
    std::printf("%s\n", e.what());
    extra_task_done_refused = true;
  }

  // Python's program ends here: the interpreter exits and simply stops the daemon workers
  // blocked in q.get(). C++ cannot leave them there: q is a local of main, and a thread still
  // waiting inside it when it is destroyed is undefined behaviour — and each run() uses its
  // DownloadThread object, which must be joined before it is destroyed. So shut the queue
  // down: every get() on the now empty queue throws ShutDown, run() returns, and the daemon
  // threads end cleanly and can be joined (a bounded join, so a stuck worker shows up as a
  // failure rather than a hang).
  q.shutdown();
  bool all_ended = true;
  for (auto& t : threads) all_ended = t->join(2s) && all_ended;
  if (!all_ended) {
    // Returning would destroy a DownloadThread whose run() is still going: stop right here.
    std::fprintf(stderr, "FAIL: a worker did not end after q.shutdown()\n");
    std::fflush(nullptr);
    std::_Exit(1);
  }

  int failures = 0;
  if (completed_at_join != static_cast<int>(urls.size()) || unfinished_at_join != 0) {
    std::fprintf(stderr, "FAIL: q.join() returned with %d downloads done, %zu unfinished\n",
                 completed_at_join, unfinished_at_join);
    ++failures;
  }
  for (const auto& [url, times] : downloads.times) {
    if (times.load() != 1) {
      std::fprintf(stderr, "FAIL: %s was downloaded %d times\n", url.c_str(), times.load());
      ++failures;
    }
  }
  if (!extra_task_done_refused) {
    std::fprintf(stderr, "FAIL: an extra task_done() was accepted\n");
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
