// site/blog_spider.hpp — the notes' blog_spider.py for the local site (blog_site.hpp), on concur's
// crawler parts (library concur_crawl): parse(html) is the notes' BeautifulSoup parse on
// crawl::Selector, async_craw(client, url) a GET with crawl::HttpClient (a coroutine), and
// Downloader — one HttpClient on an event loop of its own thread — whose craw(url) is the notes'
// blocking requests.get(url).text for their thread-based crawlers.
// Thread-safety: parse() is safe on any thread (each call parses its own document); a Downloader's
// craw() may be called from many threads at once (each call becomes a fetch on the Downloader's
// loop; the client never leaves that thread). Header-only, as blog_site.hpp.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/crawl/http.hpp"
#include "concur/crawl/selector.hpp"
#include "site/blog_site.hpp"

namespace blog {

namespace crawl = concur::crawl;

// kCrawTimeout bounds one GET (Request::timeout: TimeoutError beyond).
inline constexpr std::chrono::seconds kCrawTimeout{10};

// parse(html): the notes' parse() —
//   soup.find_all("a", class_="post-item-title") → [(link["href"], link.get_text()) ...]
// — as `a.post-item-title` elements, each one's href attribute and its text, in page order.
inline std::vector<Post> parse(std::string_view html) {
  const crawl::Selector soup(html);
  std::vector<Post> out;
  for (const crawl::Selector& link : soup.css("a.post-item-title")) {
    out.push_back({link.css("::attr(href)").get(""), link.css("::text").get("")});
  }
  return out;
}

// async_craw(client, url): GET url with the client (which must outlive the task); the body of a
// 200 answer. Errors: what HttpClient::fetch raises, concur::RuntimeError for another status.
inline aio::Task<std::string> async_craw(crawl::HttpClient& client, std::string url) {
  crawl::Request request(std::move(url));
  request.timeout = kCrawTimeout;
  crawl::Response response = co_await client.fetch(std::move(request));
  if (response.status != 200) {
    throw concur::RuntimeError("GET " + response.url + ": HTTP " + std::to_string(response.status));
  }
  co_return std::move(response.body);
}

// Downloader: requests.get for threads. One crawl::HttpClient lives on an event loop run by a
// thread of its own (aio::LoopGroup(1)); craw(url), from any thread, runs async_craw there
// (run_coroutine_threadsafe) and blocks the caller until the body arrives — so fifty threads
// blocked in craw() are fifty fetches in flight on one loop. The client is made and closed on the
// loop's thread (HttpClient's rule).
class Downloader {
 public:
  explicit Downloader(crawl::ClientOptions options = {}) {
    group_.loop()
        .submit([this, options] { client_.emplace(group_.loop(), options); })
        .result(kCrawTimeout);
  }
  // ~Downloader(): closes the client on its loop (fetches in flight end with CancelledError),
  // then stops the loop.
  ~Downloader() {
    try {
      group_.loop().submit([this] { client_.reset(); }).result(kCrawTimeout);
    } catch (const std::exception&) {
      // The loop is gone or stuck: the client, destroyed after it, closes then.
    }
  }
  Downloader(const Downloader&) = delete;
  Downloader& operator=(const Downloader&) = delete;

  // craw(url): the notes' `requests.get(url).text`: blocks until the body of a 200 answer
  // arrives. Throws what async_craw throws; TimeoutError after kCrawTimeout (the request's own
  // bound; the wait gives up at twice it).
  // The wait is on an Event, not on the future itself: a ThreadPoolExecutor worker waiting on a
  // future helps (runs queued tasks meanwhile), which would start the next craw() inside this one,
  // past max_workers. A worker in craw() is a thread blocked on the network, as under
  // requests.get, so a pool of N workers has at most N GETs in flight.
  std::string craw(const std::string& url) {
    concur::Future<std::string> body =
        aio::run_coroutine_threadsafe(async_craw(*client_, url), group_.loop());
    auto arrived = std::make_shared<concur::Event>();  // shared: the callback may outlive a timeout
    body.add_done_callback([arrived](const concur::Future<std::string>& /*f*/) { arrived->set(); });
    if (!arrived->wait(2 * kCrawTimeout)) {
      (void)body.cancel();  // withdraws the fetch
      throw concur::TimeoutError("craw(" + url + "): no answer");
    }
    return std::move(body).result();  // done: no wait
  }
  // stats(): what the client did so far (read on its loop).
  [[nodiscard]] crawl::ClientStats stats() {
    return group_.loop().submit([this] { return client_->stats(); }).result(kCrawTimeout);
  }

 private:
  std::optional<crawl::HttpClient> client_;  // on the loop's thread only; outlives a stuck loop
  aio::LoopGroup group_{1};
};

}  // namespace blog
