// Notes "在异步IO中使用信号量控制爬虫并发度" — the same crawler with its concurrency capped:
//
//   semaphore = asyncio.Semaphore(10)
//   async def async_craw(url):
//       async with semaphore:
//           async with aiohttp.ClientSession() as session:
//               async with session.get(url) as resp:
//                   result = await resp.text()
//                   await asyncio.sleep(5)
//                   print(f"craw url: {url}, {len(result)}")
//
// (the notes sleep 5 s inside the semaphore so the batches of ten can be seen; 0.2 s here).
// Checked from both sides: no more than 10 crawls inside the semaphore at once, the local test
// site (apps/concur/site/blog_site.hpp) never saw more than 10 requests in flight, and it saw 10 —
// the ceiling holds and is used; all 50 pages arrived; the batches make it take at least 5 × 0.2 s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "site/blog_site.hpp"

namespace aio = concur::aio;
using namespace std::chrono_literals;

namespace {

constexpr int kLimit = 10;

struct Counters {
  int inside = 0;
  int most_inside = 0;
};

aio::Task<std::size_t> async_craw(aio::Semaphore& semaphore, Counters& c, std::uint16_t port,
                                  std::string url) {
  auto permit = co_await semaphore.scoped();  // async with semaphore:
  c.most_inside = std::max(c.most_inside, ++c.inside);
  const std::string result = co_await blog::http_get(port, url);
  co_await aio::sleep(200ms);
  std::printf("craw url: %s, %zu\n", url.c_str(), result.size());
  --c.inside;
  co_return result.size();
}

aio::Task<bool> main_task() {
  blog::Site site = co_await blog::Site::start({.pages = 50, .delay = 20ms});
  aio::Semaphore semaphore(kLimit);
  Counters counters;
  std::vector<aio::Task<std::size_t>> tasks;
  for (const std::string& url : site.urls()) {
    tasks.push_back(aio::create_task(async_craw(semaphore, counters, site.port(), url)));
  }
  const auto start = aio::Clock::now();
  auto [done, pending] = co_await aio::wait(tasks);
  const std::chrono::duration<double> took = aio::Clock::now() - start;
  std::size_t whole = 0;
  for (auto& t : done) whole += (t.exception() == nullptr && t.result() > 60'000) ? 1 : 0;
  std::printf(
      "use time seconds: %.3f; most crawls inside the semaphore: %d; most requests in "
      "flight at the site: %d\n",
      took.count(), counters.most_inside, site.stats().most_in_flight);
  site.close();
  co_await site.wait_closed();
  co_return whole == 50 && pending.empty() &&
      counters.most_inside ==
          kLimit&& site.stats().most_in_flight <= kLimit&& site.stats().most_in_flight ==
          kLimit&& took >= 5 * 200ms;
}

}  // namespace

int main() {
  const bool ok = aio::run(main_task());
  std::printf("%s\n", ok ? "ok: Semaphore(10) held the ceiling" : "FAILED");
  return ok ? 0 : 1;
}
