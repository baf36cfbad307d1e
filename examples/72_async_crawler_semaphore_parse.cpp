// Notes "在异步IO中使用信号量控制爬虫并发度", with concur's crawler parts and the notes' parse():
//
//   semaphore = asyncio.Semaphore(10)
//   async def async_craw(url):
//       async with semaphore:
//           print("craw url:", url)
//           async with aiohttp.ClientSession() as session:
//               async with session.get(url) as resp:
//                   result = await resp.text()
//                   print(f"craw url: {url}, {len(result)}")
//       return blog_spider.parse(result)       # not in the notes: the links of the page
//   tasks = [loop.create_task(async_craw(url)) for url in blog_spider.urls]
//   loop.run_until_complete(asyncio.wait(tasks))
//
// Example 67 is the notes' crawler on a hand-made GET; here the GET is crawl::HttpClient (one
// client for every task, as one aiohttp session would be; the site answers "Connection: close",
// so each fetch opens its connection, as the notes' session per URL) and each page is parsed by
// crawl::Selector (`a.post-item-title` → href, text) after its permit is released. The blog is the
// local site (apps/concur/site/blog_site.hpp: 50 list pages, 20 links each, every answer after
// 50 ms), served on the same loop.
// Checked: 10 crawls inside the semaphore at once and never more; the site never saw more than 10
// requests in flight (and more than one); every page's links were parsed exactly (href and title,
// in page order); the five batches of ten took at least 5 × 50 ms (a lower bound only).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "site/blog_spider.hpp"

namespace aio = concur::aio;
namespace crawl = concur::crawl;
using namespace std::chrono_literals;

namespace {

constexpr int kPages = 50;
constexpr int kLimit = 10;
constexpr auto kDelay = 50ms;

struct Counters {
  int inside = 0;
  int most_inside = 0;
};

aio::Task<std::vector<blog::Post>> async_craw(aio::Semaphore& semaphore, Counters& c,
                                              crawl::HttpClient& client, std::string url) {
  std::string result;
  {
    auto permit = co_await semaphore.scoped();  // async with semaphore:
    c.most_inside = std::max(c.most_inside, ++c.inside);
    std::printf("craw url: %s\n", url.c_str());
    result = co_await blog::async_craw(client, url);
    std::printf("craw url: %s, %zu\n", url.c_str(), result.size());
    --c.inside;
  }
  co_return blog::parse(result);
}

aio::Task<bool> main_task() {
  const blog::SiteOptions options{.pages = kPages, .delay = kDelay};  // named: g++ 12 (task.hpp)
  blog::Site site = co_await blog::Site::start(options);
  crawl::HttpClient client;
  aio::Semaphore semaphore(kLimit);
  Counters counters;
  const std::vector<std::string> targets = site.urls();
  std::vector<aio::Task<std::vector<blog::Post>>> tasks;
  for (const std::string& target : targets) {
    tasks.push_back(
        aio::create_task(async_craw(semaphore, counters, client, site.origin() + target)));
  }
  const auto start = aio::Clock::now();
  auto [done, pending] = co_await aio::wait(tasks);  // loop.run_until_complete(asyncio.wait(tasks))
  const std::chrono::duration<double> took = aio::Clock::now() - start;
  std::printf("use time seconds: %.3f\n", took.count());

  int failures = 0;
  std::size_t links = 0;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const int n = static_cast<int>(i) + 1;
    if (tasks[i].exception() != nullptr) {
      std::fprintf(stderr, "FAIL: page %d: the crawl raised\n", n);
      ++failures;
      continue;
    }
    const std::vector<blog::Post> found = tasks[i].result();
    links += found.size();
    if (found != site.posts(n)) {
      std::fprintf(stderr, "FAIL: page %d: %zu links parsed, not the page's %zu\n", n, found.size(),
                   site.posts(n).size());
      ++failures;
    }
  }
  const blog::Stats stats = site.stats();
  std::printf(
      "%zu links parsed; most crawls inside the semaphore: %d; most requests in flight at the "
      "site: %d; %llu fetches completed\n",
      links, counters.most_inside, stats.most_in_flight,
      static_cast<unsigned long long>(client.stats().completed));
  client.close();
  site.close();
  co_await site.wait_closed();

  if (!pending.empty() || done.size() != static_cast<std::size_t>(kPages)) {
    std::fprintf(stderr, "FAIL: %zu tasks done, %zu pending\n", done.size(), pending.size());
    ++failures;
  }
  if (counters.most_inside != kLimit) {
    std::fprintf(stderr, "FAIL: %d crawls inside Semaphore(%d) at most\n", counters.most_inside,
                 kLimit);
    ++failures;
  }
  if (stats.most_in_flight > kLimit || stats.most_in_flight < 2) {
    std::fprintf(stderr, "FAIL: the site saw %d requests in flight at once (limit %d)\n",
                 stats.most_in_flight, kLimit);
    ++failures;
  }
  if (took < (kPages / kLimit) * kDelay) {
    std::fprintf(stderr, "FAIL: %.3f s for %d batches of %lld ms\n", took.count(), kPages / kLimit,
                 static_cast<long long>(kDelay.count()));
    ++failures;
  }
  co_return failures == 0;
}

}  // namespace

int main() {
  const bool ok = aio::run(main_task());
  std::printf("%s\n", ok ? "ok: Semaphore(10) held the ceiling, every page parsed" : "FAILED");
  return ok ? 0 : 1;
}
