// Notes "python创建多线程的方法" — blog_spider.py and multi_thread_craw.py, for real:
//
//   urls = [f"https://www.cnblogs.com/sitehome/p/{page}" for page in range(1, 50+1)]
//   def craw(url): return requests.get(url).text
//   def parse(html):
//       soup = BeautifulSoup(html, "html.parser")
//       links = soup.find_all("a", class_="post-item-title")
//       return [(link["href"], link.get_text()) for link in links]
//   def single_thread():
//       for url in blog_spider.urls: blog_spider.craw(url)
//   def multi_thread():
//       threads = [threading.Thread(target=blog_spider.craw, args=(url,)) for url in urls]
//       for thread in threads: thread.start()
//       for thread in threads: thread.join()
//   print("single thread cost:", end - start, "seconds") ... print("multi thread cost:", ...)
//
// The blog is the project's local site on 127.0.0.1 (apps/concur/site/blog_site.hpp: 50 list
// pages of ~70 KB, 20 `a.post-item-title` links each, every answer after 60 ms), served from a
// loop of its own thread (blog::SiteThread). craw() is site/blog_spider.hpp's Downloader (one
// crawl::HttpClient on its own loop; the calling thread blocks, as under requests.get), parse()
// is crawl::Selector's `a.post-item-title`. Each run crawls and parses all 50 pages.
// Checked: both runs parsed exactly the links each page carries (href and title, in page order);
// the site saw one request at a time in the serial run and several at once with the threads; the
// threads took less than half the serial time (serial ≥ 50 × 60 ms = 3 s by construction, the
// threads ≈ one delay: a margin of ~20×, so the check holds on a loaded machine).
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "site/blog_spider.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kPages = 50;
constexpr auto kDelay = 60ms;

using Clock = std::chrono::steady_clock;

// craw_and_parse(downloader, url, out): the notes' craw(url), printing `url len(html)`, then
// parse(html) into *out.
void craw_and_parse(blog::Downloader& downloader, const std::string& url,
                    std::vector<blog::Post>* out) {
  const std::string html = downloader.craw(url);
  std::printf("%s %zu\n", url.c_str(), html.size());
  *out = blog::parse(html);
}

// single_thread(): one page after the other on the calling thread; per page, what parse() found.
std::vector<std::vector<blog::Post>> single_thread(blog::Downloader& downloader,
                                                   const std::vector<std::string>& urls) {
  std::printf("single_thread begin!\n");
  std::vector<std::vector<blog::Post>> found(urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i) craw_and_parse(downloader, urls[i], &found[i]);
  std::printf("single_thread end\n");
  return found;
}

// multi_thread(): one concur::Thread per URL, all started, then all joined. Each thread writes
// its own slot of `found`; join() makes it visible here.
std::vector<std::vector<blog::Post>> multi_thread(blog::Downloader& downloader,
                                                  const std::vector<std::string>& urls) {
  std::printf("multi_thread begin!\n");
  std::vector<std::vector<blog::Post>> found(urls.size());
  std::vector<concur::Thread> threads;
  threads.reserve(urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i) {
    threads.emplace_back(craw_and_parse, std::ref(downloader), urls[i], &found[i]);
  }
  for (auto& thread : threads) thread.start();
  for (auto& thread : threads) thread.join();
  std::printf("multi_thread end!\n");
  return found;
}

// wrong_pages(site, found): how many pages' parse() differs from the links the site put there.
int wrong_pages(blog::SiteThread& site, const std::vector<std::vector<blog::Post>>& found) {
  int wrong = 0;
  for (int n = 1; n <= kPages; ++n) {
    const auto& got = found[static_cast<std::size_t>(n - 1)];
    const std::vector<blog::Post> want = site.posts(n);
    if (got != want) {
      ++wrong;
      std::fprintf(stderr, "FAIL: page %d: %zu links parsed, %zu on the page%s\n", n, got.size(),
                   want.size(), got.size() == want.size() ? " (different ones)" : "");
    }
  }
  return wrong;
}

}  // namespace

int main() {
  blog::SiteThread site({.pages = kPages, .delay = kDelay});
  blog::Downloader downloader;
  const std::vector<std::string> urls = site.urls();
  int failures = 0;

  auto start = Clock::now();
  const auto serial = single_thread(downloader, urls);
  const std::chrono::duration<double> single_cost = Clock::now() - start;
  std::printf("single thread cost: %.3f seconds\n", single_cost.count());
  const int serial_in_flight = site.stats().most_in_flight;

  start = Clock::now();
  const auto threaded = multi_thread(downloader, urls);
  const std::chrono::duration<double> multi_cost = Clock::now() - start;
  std::printf("multi thread cost: %.3f seconds\n", multi_cost.count());

  site.stop();
  const blog::Stats stats = site.stats();
  std::size_t links = 0;
  for (const auto& page : threaded) links += page.size();
  for (const auto& [href, title] : threaded[2]) {  // for result in parse(craw(urls[2])): print
    std::printf("('%s', '%s')\n", href.c_str(), title.c_str());
  }
  std::printf(
      "%zu links parsed per run; the site served %d pages, at most %d at once serially, %d with "
      "threads\n",
      links, stats.served, serial_in_flight, stats.most_in_flight);

  failures += wrong_pages(site, serial);
  failures += wrong_pages(site, threaded);
  if (stats.served != 2 * kPages) {
    std::fprintf(stderr, "FAIL: the site served %d pages, want %d\n", stats.served, 2 * kPages);
    ++failures;
  }
  if (serial_in_flight != 1) {
    std::fprintf(stderr, "FAIL: the serial run had %d requests in flight at once\n",
                 serial_in_flight);
    ++failures;
  }
  if (stats.most_in_flight < 2) {
    std::fprintf(stderr, "FAIL: the threads never had two requests in flight at once\n");
    ++failures;
  }
  if (!(multi_cost < single_cost / 2)) {
    std::fprintf(stderr, "FAIL: threads took %.3f s, not less than half of serial's %.3f s\n",
                 multi_cost.count(), single_cost.count());
    ++failures;
  }
  std::printf("%s\n",
              failures == 0 ? "ok: every page's links, threads faster than one thread" : "FAILED");
  return failures == 0 ? 0 : 1;
}
