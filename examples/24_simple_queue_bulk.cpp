// Notes "生产者消费者爬虫" (blog_spider.urls = [f"https://www.cnblogs.com/#p{page}" ...]), beyond
// Python: the main thread's `for url in urls: url_queue.put(url)` becomes one put_many() into a
// `queue.SimpleQueue` (unbounded, no task_done/join), and three craw threads take batches with
// get_many(8) — one wake-up per batch instead of per URL. shutdown(), which Python's SimpleQueue
// lacks, tells the threads the list is complete.
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

constexpr int kPages = 50;
constexpr std::size_t kBatch = 8;
constexpr int kCrawThreads = 3;

// SimpleQueue has no task accounting: task_done() and join() do not exist on it.
template <class Q>
concept HasTaskDone = requires(Q& q) {
  q.task_done();
  q.join();
};
static_assert(!HasTaskDone<concur::SimpleQueue<int>> && HasTaskDone<concur::Queue<int>>);

// Crawl is shared by the threads. `crawled` is built before they start and never changes shape,
// so concurrent at() is safe; its counters are atomic.
struct Crawl {
  std::map<std::string, std::atomic<int>> crawled;
  std::atomic<int> batches{0};
  std::atomic<std::size_t> largest_batch{0};
};

// do_craw(url_queue): takes up to kBatch URLs at a time until the queue is shut down and empty.
void do_craw(concur::SimpleQueue<std::string>& url_queue, Crawl& crawl) {
  while (true) {
    std::vector<std::string> urls;
    try {
      urls = url_queue.get_many(kBatch);  // blocks for the first URL, then takes what is there
    } catch (const concur::ShutDown&) {
      return;
    }
    ++crawl.batches;
    std::size_t seen = crawl.largest_batch.load();
    while (urls.size() > seen && !crawl.largest_batch.compare_exchange_weak(seen, urls.size())) {
    }
    std::printf("%s craw %zu urls from %s, url_queue.size= %zu\n",
                concur::current_thread().name().c_str(), urls.size(), urls.front().c_str(),
                url_queue.qsize());
    for (const auto& url : urls) ++crawl.crawled.at(url);  // blog_spider.craw(url)
    std::this_thread::sleep_for(2ms);                      // the requests, scaled down
  }
}

}  // namespace

int main() {
  std::vector<std::string> urls;
  for (int page = 1; page <= kPages; ++page) {
    urls.push_back("https://www.cnblogs.com/#p" + std::to_string(page));
  }
  Crawl crawl;
  for (const auto& url : urls) crawl.crawled[url] = 0;

  concur::SimpleQueue<std::string> url_queue;
  {
    std::vector<concur::Thread> threads;
    threads.reserve(kCrawThreads);
    for (int i = 0; i < kCrawThreads; ++i) {
      threads.emplace_back(concur::Thread::Options{.name = "craw" + std::to_string(i)}, do_craw,
                           std::ref(url_queue), std::ref(crawl));
      threads.back().start();  // blocks in get_many(): nothing queued yet
    }
    // The notes' `for url in urls: url_queue.put(url)` in one call: runs of slots are claimed at
    // once, and a crawler's get_many() takes what is there. (An lvalue range is copied;
    // put_many(std::move(urls)) would move the strings.)
    url_queue.put_many(urls);
    // The list is complete: the threads still drain the 50 URLs, then get_many() on the empty
    // queue throws ShutDown.
    url_queue.shutdown();
  }  // ~Thread joins each craw thread

  int failures = 0;
  for (const auto& [url, times] : crawl.crawled) {
    if (times.load() != 1) {
      std::fprintf(stderr, "FAIL: %s was crawled %d times\n", url.c_str(), times.load());
      ++failures;
    }
  }
  // A get_many() takes at most 8, so 50 URLs need at least 7 batches. It takes what is there
  // without waiting again, and SimpleQueue's lock-free engine lets two crawlers taking at once
  // split what is left (the last 2 as 1 + 1, say): more batches are possible, never bigger ones.
  const auto min_batches =
      static_cast<int>((static_cast<std::size_t>(kPages) + kBatch - 1) / kBatch);
  std::printf("%zu URLs crawled in %d batches (largest %zu)\n", urls.size(), crawl.batches.load(),
              crawl.largest_batch.load());
  if (crawl.batches.load() < min_batches || crawl.largest_batch.load() > kBatch) {
    std::fprintf(stderr, "FAIL: %d batches (at least %d), largest %zu (at most %zu)\n",
                 crawl.batches.load(), min_batches, crawl.largest_batch.load(), kBatch);
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
