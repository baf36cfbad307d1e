// Notes "python实现生产者消费者爬虫" (02_producer_consumer_spider.py), for real:
//
//   def do_craw(url_queue, html_queue):          # 生产者线程
//       while True:
//           url = url_queue.get()
//           html = blog_spider.craw(url)
//           html_queue.put(html)
//           print(threading.current_thread().name, f"craw {url}", "url_queue.size=", ...)
//   def do_parse(html_queue, fout):              # 消费者线程
//       while True:
//           html = html_queue.get()
//           results = blog_spider.parse(html)
//           for result in results: fout.write(str(result) + "\n")
//   for url in blog_spider.urls: url_queue.put(url)
//   3 × threading.Thread(target=do_craw, name=f"craw{idx}"); fout = open("02_data.txt", "w")
//   2 × threading.Thread(target=do_parse, name=f"parse{idx}")
//
// The blog is the local site (apps/concur/site/blog_site.hpp: 50 list pages, 20
// `a.post-item-title` links each, every answer after 20 ms) on a loop of its own thread; craw()
// is site/blog_spider.hpp's Downloader (crawl::HttpClient), parse() crawl::Selector. The queues
// are concur::Queue. html_queue carries (url, html), so each written line can say its page:
// `url,href,title`, into a temporary file removed at the end. The notes' threads loop forever;
// here shutdown() cascades down the pipeline (as example 25): url_queue once the URLs are in,
// html_queue once every crawler returned. (The notes sleep 1–2 s per item; 1 ms here.)
// Checked: the file holds exactly the expected line for every link of every page, each once;
// every page was fetched once; the site never saw more than the 3 crawlers' requests at once;
// both queues were drained.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "site/blog_spider.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kPages = 50;
constexpr int kCrawThreads = 3;
constexpr int kParseThreads = 2;

// Page: what do_craw hands to do_parse.
struct Page {
  std::string url;
  std::string html;
};

// Output is fout: two parse threads write to it, so it takes a lock around each page's lines (a
// Python file object takes one internally).
struct Output {
  concur::Lock lock;
  std::ofstream file;  // guarded by lock
  int pages = 0;       // guarded by lock
};

// TempFile: a path in the temporary directory, removed when it goes.
struct TempFile {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("concur_example_70_" + std::to_string(::getpid()) + ".txt");
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
};

// line(url, post): what do_parse writes for one link.
std::string line(const std::string& url, const blog::Post& post) {
  return url + "," + post.href + "," + post.title;
}

// do_craw(url_queue, html_queue): 生产者线程, until url_queue is shut down and drained.
void do_craw(blog::Downloader& downloader, concur::Queue<std::string>& url_queue,
             concur::Queue<Page>& html_queue) {
  while (true) {
    std::string url;
    try {
      url = url_queue.get();
    } catch (const concur::ShutDown&) {
      return;
    }
    std::string html = downloader.craw(url);
    html_queue.put(Page{url, std::move(html)});
    std::printf("%s craw %s url_queue.size= %zu\n", concur::current_thread().name().c_str(),
                url.c_str(), url_queue.qsize());
    std::this_thread::sleep_for(1ms);  // tm.sleep(random.randint(1,2))
  }
}

// do_parse(html_queue, fout): 消费者线程, until html_queue is shut down and drained.
void do_parse(concur::Queue<Page>& html_queue, Output& fout) {
  while (true) {
    Page page;
    try {
      page = html_queue.get();
    } catch (const concur::ShutDown&) {
      return;
    }
    const std::vector<blog::Post> results = blog::parse(page.html);
    {
      std::lock_guard with_lock(fout.lock);
      for (const blog::Post& result : results) fout.file << line(page.url, result) << '\n';
      ++fout.pages;
    }
    std::printf("%s results.size %zu html_queue.size= %zu\n",
                concur::current_thread().name().c_str(), results.size(), html_queue.qsize());
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace

int main() {
  blog::SiteThread site({.pages = kPages, .delay = 20ms});
  blog::Downloader downloader;
  const TempFile data;

  concur::Queue<std::string> url_queue;  // Queue模块：先进先出FIFO
  concur::Queue<Page> html_queue;
  for (const std::string& url : site.urls()) url_queue.put(url);  // 主线程将数据放进队列
  url_queue.shutdown();  // no more URLs: the crawlers drain it, then get() throws ShutDown

  Output fout;
  fout.file.open(data.path);  // fout = open('02_data.txt', 'w', encoding='utf8')
  std::vector<concur::Thread> crawlers;
  crawlers.reserve(kCrawThreads);
  for (int i = 0; i < kCrawThreads; ++i) {
    crawlers.emplace_back(concur::Thread::Options{.name = "craw" + std::to_string(i)}, do_craw,
                          std::ref(downloader), std::ref(url_queue), std::ref(html_queue));
    crawlers.back().start();
  }
  std::vector<concur::Thread> parsers;
  parsers.reserve(kParseThreads);
  for (int i = 0; i < kParseThreads; ++i) {
    parsers.emplace_back(concur::Thread::Options{.name = "parse" + std::to_string(i)}, do_parse,
                         std::ref(html_queue), std::ref(fout));
    parsers.back().start();
  }

  for (auto& t : crawlers) t.join();  // every page is in html_queue now
  html_queue.shutdown();              // the parsers drain it, then get() throws ShutDown
  for (auto& t : parsers) t.join();
  fout.file.close();
  site.stop();
  const blog::Stats stats = site.stats();

  std::vector<std::string> want;
  for (int n = 1; n <= kPages; ++n) {
    for (const blog::Post& post : site.posts(n)) want.push_back(line(site.url(n), post));
  }
  std::vector<std::string> got;
  std::ifstream written(data.path);
  for (std::string text; std::getline(written, text);) got.push_back(text);
  std::ranges::sort(want);
  std::ranges::sort(got);
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;  // a line not on the site, or written twice
  std::ranges::set_difference(want, got, std::back_inserter(missing));
  std::ranges::set_difference(got, want, std::back_inserter(unexpected));

  std::printf(
      "%d pages parsed, %zu lines written to %s (want %zu); the site served %d pages, at most %d "
      "at once\n",
      fout.pages, got.size(), data.path.filename().c_str(), want.size(), stats.served,
      stats.most_in_flight);
  int failures = 0;
  if (!missing.empty() || !unexpected.empty()) {
    std::fprintf(stderr,
                 "FAIL: %zu expected lines missing (first: %s), %zu unexpected (first: %s)\n",
                 missing.size(), missing.empty() ? "-" : missing.front().c_str(), unexpected.size(),
                 unexpected.empty() ? "-" : unexpected.front().c_str());
    ++failures;
  }
  if (fout.pages != kPages || stats.served != kPages) {
    std::fprintf(stderr, "FAIL: %d pages parsed, %d served, want %d\n", fout.pages, stats.served,
                 kPages);
    ++failures;
  }
  if (stats.most_in_flight > kCrawThreads) {
    std::fprintf(stderr, "FAIL: %d requests in flight at once with %d crawler threads\n",
                 stats.most_in_flight, kCrawThreads);
    ++failures;
  }
  if (!url_queue.empty() || !html_queue.empty()) {
    std::fprintf(stderr, "FAIL: the queues were not drained\n");
    ++failures;
  }
  std::printf("%s\n",
              failures == 0 ? "ok: every link written once through the pipeline" : "FAILED");
  return failures == 0 ? 0 : 1;
}
