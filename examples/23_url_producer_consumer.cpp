// Notes 11-3 "使用Queue实现线程之间的通信": a get_detail_url thread puts
// "http://projectsedu.com/{id}" into `detail_url_queue = Queue(maxsize=...)`, blocking while it
// is full, and get_detail_html threads `queue.get()` and fetch each page.
// The notes loop forever; here the producer makes three list pages of 20 URLs, a small maxsize
// makes it block, and `detail_url_queue.shutdown()` (Python 3.13) ends the consumers.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kListPages = 3;  // the notes' `while True`, three rounds
constexpr int kUrlsPerPage = 20;
constexpr std::size_t kMaxSize = 4;  // the notes use 1000; small so the producer really blocks
constexpr int kHtmlThreads = 3;

std::string detail_url(int id) { return "http://projectsedu.com/" + std::to_string(id); }

// Crawl is what the threads share besides the queue. `fetched` is built before any thread
// starts and never changes shape, so concurrent at() is safe; its counters are atomic.
struct Crawl {
  std::map<std::string, std::atomic<int>> fetched;
  std::atomic<std::size_t> max_qsize{0};
  std::atomic<int> found_full{0};  // times the producer found the queue full before a put

  void saw(std::size_t qsize) {
    std::size_t seen = max_qsize.load();
    while (qsize > seen && !max_qsize.compare_exchange_weak(seen, qsize)) {
    }
  }
};

// get_detail_url(queue): 爬取文章列表页
void get_detail_url(concur::Queue<std::string>& queue, Crawl& crawl) {
  for (int page = 0; page < kListPages; ++page) {
    std::printf("get detail url started\n");
    std::this_thread::sleep_for(2ms);  // time.sleep(1): fetching the list page
    for (int i = 0; i < kUrlsPerPage; ++i) {
      if (queue.full()) ++crawl.found_full;
      queue.put(detail_url(page * kUrlsPerPage + i));  // blocks while kMaxSize URLs wait
      crawl.saw(queue.qsize());
    }
    std::printf("get detail url end\n");
  }
}

// get_detail_html(queue): 爬取文章详情页, until the queue is shut down and drained.
void get_detail_html(concur::Queue<std::string>& queue, Crawl& crawl) {
  while (true) {
    std::string url;
    try {
      url = queue.get();  // blocks while the queue is empty
    } catch (const concur::ShutDown&) {
      return;
    }
    crawl.saw(queue.qsize());
    std::printf("get detail html started %s\n", url.c_str());
    std::this_thread::sleep_for(2ms);  // time.sleep(1): fetching the page
    ++crawl.fetched.at(url);
    std::printf("get detail html end\n");
  }
}

}  // namespace

int main() {
  Crawl crawl;
  for (int id = 0; id < kListPages * kUrlsPerPage; ++id) crawl.fetched[detail_url(id)] = 0;

  concur::Queue<std::string> detail_url_queue(kMaxSize);  // Queue(maxsize=...)
  {
    std::vector<concur::Thread> html_threads;
    html_threads.reserve(kHtmlThreads);
    for (int i = 0; i < kHtmlThreads; ++i) {
      html_threads.emplace_back(get_detail_html, std::ref(detail_url_queue), std::ref(crawl));
      html_threads.back().start();
    }
    const auto start_time = std::chrono::steady_clock::now();
    concur::Thread thread_detail_url(get_detail_url, std::ref(detail_url_queue), std::ref(crawl));
    thread_detail_url.start();

    thread_detail_url.join();
    // Every URL is queued: shutdown() lets the html threads finish what is left, then makes their
    // next get() throw ShutDown so they return. (The notes' program never ends: its threads loop
    // forever and the commented-out task_done()/join() would not stop them either.)
    detail_url_queue.shutdown();
    for (auto& t : html_threads) t.join();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start_time;
    std::printf("last time: %.3f\n", took.count());
  }

  int failures = 0;
  for (const auto& [url, times] : crawl.fetched) {
    if (times.load() != 1) {
      std::fprintf(stderr, "FAIL: %s was fetched %d times\n", url.c_str(), times.load());
      ++failures;
    }
  }
  std::printf("%zu URLs, qsize never above %zu (maxsize %zu), producer found it full %d times\n",
              crawl.fetched.size(), crawl.max_qsize.load(), kMaxSize, crawl.found_full.load());
  if (crawl.max_qsize.load() > kMaxSize) {
    std::fprintf(stderr, "FAIL: qsize reached %zu, maxsize is %zu\n", crawl.max_qsize.load(),
                 kMaxSize);
    ++failures;
  }
  // 60 URLs at 2 ms each for 3 threads: the producer outruns them at once and must block.
  if (crawl.found_full.load() == 0) {
    std::fprintf(stderr, "FAIL: the producer never found the queue full\n");
    ++failures;
  }
  // After shutdown, a put raises ShutDown (queue.ShutDown).
  try {
    detail_url_queue.put(detail_url(-1));
    std::fprintf(stderr, "FAIL: put() after shutdown() was accepted\n");
    ++failures;
  } catch (const concur::ShutDown& e) {
    std::printf("%s\n", e.what());
  }
  return failures == 0 ? 0 : 1;
}
