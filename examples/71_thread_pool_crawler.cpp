// Notes "使用线程池改造爬虫程序" (04_thread_pool.py), for real:
//
//   with ThreadPoolExecutor() as pool:                       # craw
//       htmls = pool.map(blog_spider.craw, blog_spider.urls)
//       htmls = list(zip(blog_spider.urls, htmls))
//       for url, html in htmls: print(url, len(html))
//   with ThreadPoolExecutor() as pool:                       # parse
//       futures = {}
//       for url, html in htmls:
//           future = pool.submit(blog_spider.parse, html)
//           futures[future] = url
//       for future in as_completed(futures):                 # the notes' second way
//           url = futures[future]
//           print(url, future.result())
//
// The blog is the local site (apps/concur/site/blog_site.hpp: 50 list pages, 20
// `a.post-item-title` links each, every answer after 20 ms) on a loop of its own thread; craw()
// is site/blog_spider.hpp's Downloader (crawl::HttpClient), parse() crawl::Selector. The pools are
// concur::ThreadPoolExecutor with Python's default size, min(32, cores + 4).
// Checked: map() yielded the 50 pages in the order of urls
// ("map映射的结果是和参数urls的顺序对应的": the i-th html parses to the i-th page's links), with
// several fetches in flight at once and never more than the pool's workers; as_completed() yielded
// each parse future exactly once, and each future's result is exactly the links of the page its url
// names.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "site/blog_spider.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kPages = 50;

}  // namespace

int main() {
  blog::SiteThread site({.pages = kPages, .delay = 20ms});
  blog::Downloader downloader;
  const std::vector<std::string> urls = site.urls();
  // craw(url): the notes' blog_spider.craw, a plain function of the url for pool.map.
  auto craw = [&downloader](const std::string& url) { return downloader.craw(url); };
  int failures = 0;

  // craw: pool.map, results in input order.
  std::vector<std::pair<std::string, std::string>> htmls;  // list(zip(urls, htmls))
  std::size_t craw_workers = 0;
  {
    concur::ThreadPoolExecutor pool;
    craw_workers = pool.max_workers();
    std::size_t i = 0;
    for (std::string html : pool.map(craw, urls, concur::MapOptions{.timeout = 20s})) {
      htmls.emplace_back(urls.at(i++), std::move(html));
    }
  }
  for (const auto& [url, html] : htmls) std::printf("%s %zu\n", url.c_str(), html.size());
  const blog::Stats craw_stats = site.stats();

  // parse: submit per page; the futures "dict" maps each future to its url.
  std::vector<std::pair<concur::Future<std::vector<blog::Post>>, std::string>> futures;
  std::vector<int> yielded(kPages + 1, 0);  // how often as_completed yielded page n's future
  {
    concur::ThreadPoolExecutor pool;
    std::vector<concur::Future<std::vector<blog::Post>>> all;
    for (const auto& [url, html] : htmls) {
      concur::Future<std::vector<blog::Post>> future = pool.submit(blog::parse, html);
      futures.emplace_back(future, url);
      all.push_back(future);
    }
    for (const concur::Future<std::vector<blog::Post>>& future : concur::as_completed(all, 20s)) {
      const auto entry =
          std::ranges::find_if(futures, [&](const auto& f) { return f.first == future; });
      if (entry == futures.end()) {
        std::fprintf(stderr, "FAIL: as_completed yielded a future not submitted\n");
        ++failures;
        continue;
      }
      const std::string& url = entry->second;  // url = futures[future]
      const std::vector<blog::Post> result = future.result();
      std::printf("%s %zu links, first ('%s', '%s')\n", url.c_str(), result.size(),
                  result.empty() ? "" : result.front().href.c_str(),
                  result.empty() ? "" : result.front().title.c_str());
      const int n = blog::page_number(url);
      if (n < 1 || n > kPages) {
        std::fprintf(stderr, "FAIL: %s is not a page of the site\n", url.c_str());
        ++failures;
        continue;
      }
      ++yielded[static_cast<std::size_t>(n)];
      if (result != site.posts(n)) {
        std::fprintf(stderr, "FAIL: the parse of %s is not that page's %zu links\n", url.c_str(),
                     site.posts(n).size());
        ++failures;
      }
    }
  }
  site.stop();

  // map's order: the i-th html is page i+1 (each page's links are its own).
  int out_of_order = 0;
  for (std::size_t i = 0; i < htmls.size(); ++i) {
    if (blog::parse(htmls[i].second) != site.posts(static_cast<int>(i) + 1)) ++out_of_order;
  }
  const auto once = std::ranges::count(yielded.begin() + 1, yielded.end(), 1);
  std::printf(
      "map: %zu pages, %d not in urls' order, at most %d fetches in flight (%zu workers); "
      "as_completed: %td of %d futures yielded once\n",
      htmls.size(), out_of_order, craw_stats.most_in_flight, craw_workers, once, kPages);
  if (htmls.size() != static_cast<std::size_t>(kPages) || out_of_order != 0) {
    std::fprintf(stderr, "FAIL: map() yielded %zu pages, %d out of order\n", htmls.size(),
                 out_of_order);
    ++failures;
  }
  if (craw_stats.served != kPages || craw_stats.most_in_flight < 2 ||
      craw_stats.most_in_flight > static_cast<int>(craw_workers)) {
    std::fprintf(stderr, "FAIL: the site served %d pages, at most %d at once (%zu workers)\n",
                 craw_stats.served, craw_stats.most_in_flight, craw_workers);
    ++failures;
  }
  if (once != kPages) {
    std::fprintf(stderr, "FAIL: as_completed yielded %td of %d futures exactly once\n", once,
                 kPages);
    ++failures;
  }
  std::printf("%s\n", failures == 0 ? "ok: map in order, every page parsed by the pool" : "FAILED");
  return failures == 0 ? 0 : 1;
}
