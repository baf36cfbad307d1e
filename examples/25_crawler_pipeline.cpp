// Notes "生产者消费者爬虫" (02_producer_consumer_spider.py): the main thread puts blog_spider.urls
// into `url_queue = queue.Queue()`; three do_craw threads (craw0..2) get a URL, craw() it and put
// the html into `html_queue`; two do_parse threads (parse0..1) get html, parse() its links and
// write them to `fout`. The notes' threads loop forever; here shutdown() cascades down the
// pipeline: url_queue once the URLs are in, html_queue once every crawler has returned.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kPages = 50;
constexpr int kCrawThreads = 3;
constexpr int kParseThreads = 2;

// links_on(page) is how many posts the fake list page #p{page} shows.
int links_on(int page) { return page % 4 + 1; }

// blog_spider.craw(url): a fake page with links_on(page) `<a class="post-item-title">` links.
std::string craw(const std::string& url) {
  const int page = std::stoi(url.substr(url.rfind('p') + 1));
  std::string html = "<html>\n";
  for (int k = 0; k < links_on(page); ++k) {
    const std::string post = std::to_string(page) + "-" + std::to_string(k);
    html += "<a class=\"post-item-title\" href=\"https://www.cnblogs.com/post/" + post +
            "\">post " + post + "</a>\n";
  }
  return html + "</html>\n";
}

// blog_spider.parse(html): the (href, text) of every post-item-title link.
std::vector<std::pair<std::string, std::string>> parse(const std::string& html) {
  std::vector<std::pair<std::string, std::string>> links;
  const std::string href = "href=\"";
  for (std::size_t at = html.find(href); at != std::string::npos; at = html.find(href, at)) {
    const std::size_t url_begin = at + href.size();
    const std::size_t url_end = html.find('"', url_begin);
    const std::size_t text_begin = url_end + 2;  // past `">`
    const std::size_t text_end = html.find("</a>", text_begin);
    links.emplace_back(html.substr(url_begin, url_end - url_begin),
                       html.substr(text_begin, text_end - text_begin));
    at = text_end;
  }
  return links;
}

// Output stands in for fout: two parse threads write to it, so it needs a lock (a Python file
// object takes one internally).
struct Output {
  concur::Lock lock;
  std::vector<std::string> lines;  // guarded by lock
  int pages = 0;                   // guarded by lock
};

// do_craw(url_queue, html_queue): 生产者线程
void do_craw(concur::Queue<std::string>& url_queue, concur::Queue<std::string>& html_queue) {
  while (true) {
    std::string url;
    try {
      url = url_queue.get();
    } catch (const concur::ShutDown&) {
      return;  // url_queue shut down and drained
    }
    html_queue.put(craw(url));
    std::printf("%s craw %s url_queue.size= %zu\n", concur::current_thread().name().c_str(),
                url.c_str(), url_queue.qsize());
    std::this_thread::sleep_for(1ms);  // tm.sleep(random.randint(1,2))
  }
}

// do_parse(html_queue, fout): 消费者线程
void do_parse(concur::Queue<std::string>& html_queue, Output& fout) {
  while (true) {
    std::string html;
    try {
      html = html_queue.get();
    } catch (const concur::ShutDown&) {
      return;  // html_queue shut down and drained
    }
    const auto results = parse(html);
    {
      std::lock_guard with_lock(fout.lock);
      for (const auto& [link, text] : results) {
        fout.lines.push_back("('" + link + "', '" + text + "')");  // fout.write(str(result))
      }
      ++fout.pages;
    }
    std::printf("%s results.size %zu html_queue.size= %zu\n",
                concur::current_thread().name().c_str(), results.size(), html_queue.qsize());
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace

int main() {
  concur::Queue<std::string> url_queue;  // Queue模块：先进先出FIFO
  concur::Queue<std::string> html_queue;
  Output fout;

  int want_links = 0;
  for (int page = 1; page <= kPages; ++page) {
    url_queue.put("https://www.cnblogs.com/#p" + std::to_string(page));  // 主线程将数据放进队列
    want_links += links_on(page);
  }
  url_queue.shutdown();  // no more URLs: the crawlers drain the queue, then get() throws ShutDown

  std::vector<concur::Thread> parsers;
  parsers.reserve(kParseThreads);
  for (int i = 0; i < kParseThreads; ++i) {
    parsers.emplace_back(concur::Thread::Options{.name = "parse" + std::to_string(i)}, do_parse,
                         std::ref(html_queue), std::ref(fout));
    parsers.back().start();
  }
  std::vector<concur::Thread> crawlers;
  crawlers.reserve(kCrawThreads);
  for (int i = 0; i < kCrawThreads; ++i) {
    crawlers.emplace_back(concur::Thread::Options{.name = "craw" + std::to_string(i)}, do_craw,
                          std::ref(url_queue), std::ref(html_queue));
    crawlers.back().start();
  }

  for (auto& t : crawlers) t.join();  // every page is in html_queue now
  html_queue.shutdown();              // the parsers drain it, then get() throws ShutDown
  for (auto& t : parsers) t.join();

  std::lock_guard with_lock(fout.lock);
  std::printf("%d pages parsed, %zu links written (want %d, %d)\n", fout.pages, fout.lines.size(),
              kPages, want_links);
  std::vector<std::string> sorted = fout.lines;
  std::ranges::sort(sorted);
  const bool unique = std::ranges::adjacent_find(sorted) == sorted.end();
  if (fout.pages != kPages || static_cast<int>(fout.lines.size()) != want_links || !unique) {
    std::fprintf(stderr, "FAIL: %d pages, %zu links (%s), want %d pages, %d links\n", fout.pages,
                 fout.lines.size(), unique ? "no duplicates" : "duplicates", kPages, want_links);
    return 1;
  }
  if (!url_queue.empty() || !html_queue.empty()) {
    std::fprintf(stderr, "FAIL: the queues were not drained\n");
    return 1;
  }
  return 0;
}
