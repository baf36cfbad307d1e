// Tests for tests/support/crawl_site.hpp and tests/support/nginx_server.hpp — the crawler's test
// site, fetched with crawl::HttpClient on loopback: list and post pages and their links (read by
// crawl::Selector, as a crawler reads them), robots.txt with its status, the misbehaving endpoints
// (/flaky, /status with Retry-After, redirects, truncated, huge, binary, bad encodings, non-text,
// reset, closed), the latency option (a lower bound only), the server's log (arrival order, user
// agent, in-flight counts, connection reuse, start gaps), the generator's BFS on a tiny site
// against a hand-written expectation and against a small real crawl, and the static copy served
// by nginx byte for byte. Every test's coroutine runs under aio::wait_for(kAioBound).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/task.hpp"
#include "concur/crawl/http.hpp"
#include "concur/crawl/robots.hpp"
#include "concur/crawl/selector.hpp"
#include "concur/crawl/url.hpp"
#include "concur/errors.hpp"
#include "support/aio_support.hpp"
#include "support/crawl_site.hpp"
#include "support/hook_support.hpp"
#include "support/nginx_server.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
namespace aio = concur::aio;
namespace crawl = concur::crawl;

class CrawlSiteTest : public HookCapturingTest {};

// kTimerSlack: how much earlier than asked a timed wait may end and still pass (clock rounding).
constexpr auto kTimerSlack = 2ms;

// hrefs(html, css): the attribute values a crawler's parser reads.
std::vector<std::string> hrefs(const std::string& html, std::string_view css) {
  return crawl::Selector(html).css(css).getall();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    text.replace(at, from.size(), to);
    at += to.size();
  }
  return text;
}

CrawlSiteOptions small_site(int posts, int per_list) {
  CrawlSiteOptions options;
  options.posts = posts;
  options.posts_per_list = per_list;
  return options;
}

TEST_F(CrawlSiteTest, ListPagesLinkTheirPostsAndTheNextPage) {
  run_bounded([]() -> aio::Task<void> {
    const CrawlSiteOptions options = small_site(100, 40);
    CrawlSite site = co_await CrawlSite::start(options);
    EXPECT_EQ(site.list_pages(), 3);
    crawl::HttpClient client;
    crawl::Response home = co_await client.fetch(site.url("/"));
    EXPECT_EQ(home.status, 200);
    EXPECT_EQ(hrefs(home.body, "a::attr(href)"), std::vector<std::string>{"/list/1"});

    crawl::Response first = co_await client.fetch(site.url("/list/1"));
    CO_ASSERT_EQ(first.status, 200);
    EXPECT_EQ(first.headers.get("Content-Type").value_or(""), "text/html; charset=utf-8");
    EXPECT_EQ(first.body, CrawlSite::list_page(1, options));
    std::vector<std::string> posts;
    for (int n = 1; n <= 40; ++n) posts.push_back("/post/" + std::to_string(n));
    EXPECT_EQ(hrefs(first.body, "a.post-item-title::attr(href)"), posts);
    EXPECT_EQ(crawl::Selector(first.body).css("a.post-item-title::text").getall().at(6), "Title 7");
    EXPECT_EQ(hrefs(first.body, "a.next::attr(href)"), std::vector<std::string>{"/list/2"});
    EXPECT_EQ(hrefs(first.body, "a::attr(href)"), CrawlSite::list_links(1, options));

    crawl::Response last = co_await client.fetch(site.url("/list/3"));
    CO_ASSERT_EQ(last.status, 200);
    posts.clear();
    for (int n = 81; n <= 100; ++n) posts.push_back("/post/" + std::to_string(n));
    EXPECT_EQ(hrefs(last.body, "a.post-item-title::attr(href)"), posts);
    EXPECT_TRUE(hrefs(last.body, "a.next::attr(href)").empty());
    EXPECT_EQ(hrefs(last.body, "a.prev::attr(href)"), std::vector<std::string>{"/list/2"});

    const std::vector<std::string> missing = {"/list/4",   "/list/0", "/list/01",
                                              "/post/101", "/post/x", "/nothing"};
    for (const std::string& target : missing) {
      crawl::Response r = co_await client.fetch(site.url(target));
      EXPECT_EQ(r.status, 404) << target;
      EXPECT_EQ(r.body, CrawlSite::not_found_page()) << target;
    }
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, TheDefaultSiteIsTheBenchmarksSite) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start();
    EXPECT_EQ(site.options().posts, 2000);
    EXPECT_EQ(site.list_pages(), 50);
    crawl::HttpClient client;
    crawl::Response last = co_await client.fetch(site.url("/list/50"));
    EXPECT_EQ(hrefs(last.body, "a.post-item-title::attr(href)").size(), 40u);
    EXPECT_TRUE(hrefs(last.body, "a.next::attr(href)").empty());
    crawl::Response post = co_await client.fetch(site.url("/post/2000"));
    EXPECT_EQ(post.status, 200);
    EXPECT_GE(post.body.size(), 4800u);
    EXPECT_LE(post.body.size(), 5000u);
    // Every list and post, robots.txt and /, some 404s and redirects; nothing private.
    const std::set<std::string> paths = site.reachable_allowed_paths();
    EXPECT_TRUE(paths.count("/list/50") == 1 && paths.count("/post/1") == 1 &&
                paths.count("/post/2000") == 1 && paths.count("/robots.txt") == 1);
    int lists = 0;
    int posts = 0;
    int others = 0;
    for (const std::string& p : paths) {
      EXPECT_NE(p.rfind("/private/", 0), 0u) << p;
      lists += p.rfind("/list/", 0) == 0 ? 1 : 0;
      posts += p.rfind("/post/", 0) == 0 ? 1 : 0;
      others += p.rfind("/missing/", 0) == 0 || p.rfind("/r/", 0) == 0 ? 1 : 0;
    }
    EXPECT_EQ(lists, 50);
    EXPECT_EQ(posts, 2000);
    EXPECT_EQ(paths.size(), static_cast<std::size_t>(lists + posts + others + 2));
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, PostPagesCarryPostLinks) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSiteOptions options = small_site(50, 10);
    options.post_bytes = 8000;
    CrawlSite site = co_await CrawlSite::start(options);
    crawl::HttpClient client;
    for (int n = 1; n <= options.posts; n += 7) {
      crawl::Response r = co_await client.fetch(site.url("/post/" + std::to_string(n)));
      CO_ASSERT_EQ(r.status, 200);
      EXPECT_EQ(r.body, CrawlSite::post_page(n, options, site.origin()));
      const crawl::Selector page(r.body);
      EXPECT_EQ(page.css("h1.title::text").get(), "Post " + std::to_string(n));
      EXPECT_EQ(page.css("span.author::text").get(), "author-" + std::to_string(n % 7));
      EXPECT_EQ(hrefs(r.body, "a::attr(href)"), CrawlSite::post_links(n, options, site.origin()))
          << n;
      // Padded to about post_bytes.
      EXPECT_LE(r.body.size(), options.post_bytes);
      EXPECT_GE(r.body.size(), options.post_bytes - 200);
    }
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, PostLinksFollowTheFixedHash) {
  const CrawlSiteOptions options = small_site(10, 4);
  // Worked out by hand from the generator's rules for post 5 of 10: next 6, hash-picked 4 and 4,
  // and (by the hash) a redirect link.
  const std::vector<std::string> five = {"/",
                                         "/post/6",
                                         "6#comments",
                                         "http://h:1/post/4",
                                         "../post/4?utm=x&a=1",
                                         "/post/4?a=1&utm=x#top",
                                         "/r/4"};
  EXPECT_EQ(CrawlSite::post_links(5, options, "http://h:1"), five);
  // Over a big site every kind of extra link shows up, each on a fair share of posts.
  const CrawlSiteOptions big;
  int priv = 0;
  int offsite = 0;
  int missing = 0;
  int redirect = 0;
  for (int n = 1; n <= big.posts; ++n) {
    for (const std::string& link : CrawlSite::post_links(n, big, "http://h:1")) {
      priv += link.rfind("/private/", 0) == 0 ? 1 : 0;
      offsite += link.rfind("http://offsite.invalid/", 0) == 0 ? 1 : 0;
      missing += link.rfind("/missing/", 0) == 0 ? 1 : 0;
      redirect += link.rfind("/r/", 0) == 0 ? 1 : 0;
    }
  }
  EXPECT_GT(priv, big.posts / 8);
  EXPECT_GT(offsite, big.posts / 10);
  EXPECT_GT(missing, big.posts / 12);
  EXPECT_GT(redirect, big.posts / 12);
  // Deterministic: the same options, the same bytes.
  EXPECT_EQ(CrawlSite::post_page(77, big, "http://h:1"),
            CrawlSite::post_page(77, big, "http://h:1"));
}

TEST_F(CrawlSiteTest, ReachableAllowedPathsOnATinySite) {
  CrawlSiteOptions options = small_site(10, 4);
  // From the links of posts 1..10 (PostLinksFollowTheFixedHash's rules): /missing/1 and /6,
  // /r/4, /private/3, /6 and /9 (disallowed), and three offsite links (never fetched).
  std::set<std::string> expected = {"/robots.txt", "/",          "/list/1", "/list/2", "/list/3",
                                    "/post/1",     "/post/2",    "/post/3", "/post/4", "/post/5",
                                    "/post/6",     "/post/7",    "/post/8", "/post/9", "/post/10",
                                    "/missing/1",  "/missing/6", "/r/4"};
  EXPECT_EQ(CrawlSite::reachable_allowed_paths(options), expected);
  // robots.txt missing (404): everything is allowed.
  options.robots_status = 404;
  expected.insert({"/private/3", "/private/6", "/private/9"});
  EXPECT_EQ(CrawlSite::reachable_allowed_paths(options), expected);
  // robots.txt unreachable (500): nothing but robots.txt.
  options.robots_status = 500;
  EXPECT_EQ(CrawlSite::reachable_allowed_paths(options), std::set<std::string>{"/robots.txt"});
  // Rules: longest match wins, Allow wins a tie, '*' and '$'; other agents' groups ignored.
  options.robots_status = 200;
  options.robots =
      "User-agent: other\nDisallow: /\n\nUser-agent: *\nDisallow: /post/\nAllow: /post/1\n"
      "Disallow: /list/*$\nAllow: /list/1$\n";
  EXPECT_TRUE(CrawlSite::robots_allows(options, "/post/1"));
  EXPECT_TRUE(CrawlSite::robots_allows(options, "/post/10"));
  EXPECT_FALSE(CrawlSite::robots_allows(options, "/post/2"));
  EXPECT_TRUE(CrawlSite::robots_allows(options, "/list/1"));
  EXPECT_FALSE(CrawlSite::robots_allows(options, "/list/2"));
  EXPECT_TRUE(CrawlSite::robots_allows(options, "/"));
  EXPECT_TRUE(CrawlSite::robots_allows(options, "/robots.txt"));
  // From /list/1 only /post/1 is allowed; its links to posts 2, 5 and 7 are not; /missing/1 is.
  const std::set<std::string> only = {"/robots.txt", "/", "/list/1", "/post/1", "/missing/1"};
  EXPECT_EQ(CrawlSite::reachable_allowed_paths(options), only);
}

// A small sequential crawler (crawl::Selector links, urljoin, canonicalize_url dedupe,
// crawl::RobotsTxt, redirects followed by hand): what it fetches, as the server logged it, is
// reachable_allowed_paths(), each canonical URL once.
TEST_F(CrawlSiteTest, ARealCrawlFetchesExactlyTheReachableAllowedPaths) {
  run_bounded([]() -> aio::Task<void> {
    const CrawlSiteOptions options = small_site(40, 8);
    CrawlSite site = co_await CrawlSite::start(options);
    crawl::HttpClient client;
    crawl::Response robots_answer = co_await client.fetch(site.url("/robots.txt"));
    const crawl::RobotsTxt robots =
        crawl::RobotsTxt::from_response(robots_answer.status, robots_answer.body);
    std::set<std::string> seen;
    std::deque<std::string> frontier;
    const std::string origin = site.origin() + "/";
    const auto schedule = [&](const std::string& url) {
      if (url.rfind(origin, 0) != 0) return;  // off-domain
      if (!robots.can_fetch(url, "concur-crawl")) return;
      if (seen.insert(crawl::canonicalize_url(url)).second) frontier.push_back(url);
    };
    schedule(site.url("/"));
    while (!frontier.empty()) {
      const std::string url = frontier.front();
      frontier.pop_front();
      crawl::Response r = co_await client.fetch(url);
      if (!r.redirect_url.empty()) schedule(r.redirect_url);
      if (r.status != 200) continue;
      for (const std::string& href : hrefs(r.body, "a::attr(href)")) {
        schedule(crawl::urljoin(url, href));
      }
    }
    std::set<std::string> fetched;
    for (const RequestRecord& rec : site.log()) fetched.insert(rec.path);
    EXPECT_EQ(fetched, site.reachable_allowed_paths());
    EXPECT_EQ(site.count_with_prefix("/private/"), 0);
    EXPECT_EQ(site.count("/"), 1);
    EXPECT_TRUE(site.fetched_more_than_once().empty());
    // Each post links one other post with its query in two orders: one page, fetched once.
    std::map<std::string, int> expected_queries;
    for (int n = 1; n <= options.posts; ++n) {
      for (const std::string& link : CrawlSite::post_links(n, options, site.origin())) {
        if (link.find('?') == std::string::npos) continue;
        expected_queries[CrawlSite::canonical_target(link.substr(link.find("/post/")))] = 1;
      }
    }
    std::map<std::string, int> queries;
    for (const RequestRecord& rec : site.log()) {
      if (rec.target.find('?') != std::string::npos)
        ++queries[CrawlSite::canonical_target(rec.target)];
    }
    EXPECT_EQ(queries, expected_queries);
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, RobotsTxtIsServedWithItsStatus) {
  run_bounded([]() -> aio::Task<void> {
    crawl::HttpClient client;
    const std::vector<int> statuses = {200, 404, 500};
    for (const int status : statuses) {
      CrawlSiteOptions options = small_site(10, 4);
      options.robots = "User-agent: *\nDisallow: /post/3\n";
      options.robots_status = status;
      CrawlSite site = co_await CrawlSite::start(options);
      crawl::Response r = co_await client.fetch(site.url("/robots.txt"));
      EXPECT_EQ(r.status, status);
      if (status == 200) {
        EXPECT_EQ(r.body, options.robots);
        EXPECT_EQ(r.headers.get("Content-Type").value_or(""), "text/plain; charset=utf-8");
      } else {
        EXPECT_EQ(r.body.find("Disallow"), std::string::npos);
      }
      site.close();
      co_await site.wait_closed();
    }
  }());
}

TEST_F(CrawlSiteTest, FlakyFailsFTimesPerKeyThenRecovers) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site(10, 4));
    crawl::HttpClient client;
    const std::string flaky = site.url("/flaky?key=a&fail=2&code=503&retry_after=7");
    for (int i = 0; i < 2; ++i) {
      crawl::Response r = co_await client.fetch(flaky);
      EXPECT_EQ(r.status, 503) << i;
      EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "7");
    }
    // Another key has its own counter; the default code is 503, fail 1.
    crawl::Response other = co_await client.fetch(site.url("/flaky?key=b"));
    EXPECT_EQ(other.status, 503);
    EXPECT_FALSE(other.headers.contains("Retry-After"));
    for (int i = 0; i < 2; ++i) {
      crawl::Response r = co_await client.fetch(flaky);
      EXPECT_EQ(r.status, 200) << i;
      EXPECT_NE(r.body.find("recovered: a"), std::string::npos);
    }
    crawl::Response other_again = co_await client.fetch(site.url("/flaky?key=b"));
    EXPECT_EQ(other_again.status, 200);
    crawl::Response code500 = co_await client.fetch(site.url("/flaky?key=c&fail=1&code=500"));
    EXPECT_EQ(code500.status, 500);
    EXPECT_EQ(site.count("/flaky"), 7);
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, StatusPassesRetryAfterThrough) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site(10, 4));
    crawl::HttpClient client;
    crawl::Response seconds = co_await client.fetch(site.url("/status?code=429&retry_after=120"));
    EXPECT_EQ(seconds.status, 429);
    EXPECT_EQ(seconds.headers.get("Retry-After").value_or(""), "120");
    crawl::Response date = co_await client.fetch(
        site.url("/status?code=503&retry_after=Wed,%2021%20Oct%202015%2007:28:00%20GMT"));
    EXPECT_EQ(date.status, 503);
    EXPECT_EQ(date.headers.get("Retry-After").value_or(""), "Wed, 21 Oct 2015 07:28:00 GMT");
    crawl::Response plain = co_await client.fetch(site.url("/status?code=500"));
    EXPECT_EQ(plain.status, 500);
    EXPECT_FALSE(plain.headers.contains("Retry-After"));
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, RedirectsChainAndLoop) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site(10, 4));
    crawl::HttpClient client;
    crawl::Response r = co_await client.fetch(site.url("/r/4"));
    EXPECT_EQ(r.status, 302);
    EXPECT_EQ(r.headers.get("Location").value_or(""), "/post/4");
    EXPECT_EQ(r.redirect_url, site.url("/post/4"));
    crawl::Request chain(site.url("/redirect-chain?n=3"));
    chain.follow_redirects = true;
    crawl::Response end = co_await client.fetch(std::move(chain));
    EXPECT_EQ(end.status, 200);
    EXPECT_EQ(end.redirect_count, 3);
    EXPECT_EQ(site.count("/redirect-chain"), 4);
    crawl::Response loop = co_await client.fetch(site.url("/redirect-loop"));
    EXPECT_EQ(loop.status, 302);
    EXPECT_EQ(loop.redirect_url, site.url("/redirect-loop"));
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, MisbehavingBodies) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site(10, 4));
    crawl::HttpClient client;
    bool truncated = false;
    try {
      (void)co_await client.fetch(site.url("/truncated"));
    } catch (const crawl::TruncatedResponse&) {
      truncated = true;
    }
    EXPECT_TRUE(truncated);

    crawl::Response huge = co_await client.fetch(site.url("/huge?size=3000000"));
    EXPECT_EQ(huge.status, 200);
    EXPECT_EQ(huge.body.size(), 3000000u);
    crawl::Request capped(site.url("/huge?size=100000000"));
    capped.max_size = 1 << 20;
    bool too_large = false;
    try {
      (void)co_await client.fetch(std::move(capped));
    } catch (const crawl::ResponseTooLarge&) {
      too_large = true;
    }
    EXPECT_TRUE(too_large);

    crawl::Response binary = co_await client.fetch(site.url("/binary?size=5000"));
    EXPECT_EQ(binary.headers.get("Content-Type").value_or(""), "text/html; charset=utf-8");
    EXPECT_EQ(binary.body, CrawlSite::binary_body(5000));

    crawl::Response badenc = co_await client.fetch(site.url("/badenc"));
    EXPECT_EQ(badenc.headers.get("Content-Type").value_or(""), "text/html; charset=utf-8");
    EXPECT_EQ(badenc.body, CrawlSite::badenc_page());
    EXPECT_NE(badenc.body.find("caf\xe9"), std::string::npos);
    EXPECT_EQ(hrefs(badenc.body, "a::attr(href)"),
              std::vector<std::string>{std::string(CrawlSite::kBadencLink)});

    crawl::Response png = co_await client.fetch(site.url("/notext"));
    EXPECT_EQ(png.headers.get("Content-Type").value_or(""), "image/png");
    EXPECT_EQ(png.body.substr(0, 8), "\x89PNG\r\n\x1a\n");

    bool reset = false;
    try {
      (void)co_await client.fetch(site.url("/reset"));
    } catch (const ConnectionResetError&) {
      reset = true;
    }
    EXPECT_TRUE(reset);
    bool closed = false;
    try {
      (void)co_await client.fetch(site.url("/close-early"));
    } catch (const ConnectionResetError&) {
      closed = true;
    }
    EXPECT_TRUE(closed);
    // The log saw them all, /close-early with no status.
    const std::vector<RequestRecord> log = site.log();
    CO_ASSERT_TRUE(!log.empty());
    EXPECT_EQ(log.back().path, "/close-early");
    EXPECT_EQ(log.back().status, 0);
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, LatencyDelaysEveryAnswer) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSiteOptions options = small_site(10, 4);
    options.latency = 100ms;
    CrawlSite site = co_await CrawlSite::start(options);
    crawl::HttpClient client;
    const std::vector<std::string> targets = {"/", "/post/1", "/nothing"};
    for (const std::string& target : targets) {
      const auto t0 = std::chrono::steady_clock::now();
      crawl::Response r = co_await client.fetch(site.url(target));
      EXPECT_GE(std::chrono::steady_clock::now() - t0, options.latency - kTimerSlack) << target;
      EXPECT_GE(r.timing.first_byte, options.latency - kTimerSlack) << target;
    }
    for (const RequestRecord& rec : site.log()) {
      EXPECT_GE(rec.finish - rec.arrival, options.latency - kTimerSlack) << rec.target;
    }
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, LogRecordsArrivalOrderAgentsAndConnectionReuse) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site(10, 4));
    crawl::ClientOptions client_options;
    client_options.user_agent = "site-test/1.0";
    crawl::HttpClient client(client_options);
    const std::vector<std::string> targets = {"/", "/list/1", "/post/3?utm=x&a=1", "/missing/9",
                                              "/post/3?a=1&utm=x"};
    for (const std::string& target : targets) (void)co_await client.fetch(site.url(target));
    crawl::Request head(site.url("/post/2"), "HEAD");
    crawl::Response h = co_await client.fetch(std::move(head));
    EXPECT_EQ(h.status, 200);
    EXPECT_TRUE(h.body.empty());

    const std::vector<RequestRecord> log = site.log();
    CO_ASSERT_EQ(log.size(), targets.size() + 1);
    for (std::size_t i = 0; i < targets.size(); ++i) {
      EXPECT_EQ(log[i].target, targets[i]);
      EXPECT_EQ(log[i].method, "GET");
      EXPECT_EQ(log[i].user_agent, "site-test/1.0");
      EXPECT_GE(log[i].finish, log[i].arrival);
      EXPECT_EQ(log[i].in_flight_at_arrival, 1);
      if (i > 0) {
        EXPECT_GE(log[i].arrival, log[i - 1].finish);  // one after the other
      }
    }
    EXPECT_EQ(log[2].path, "/post/3");
    EXPECT_EQ(log[3].status, 404);
    EXPECT_EQ(log[1].status, 200);
    EXPECT_EQ(log.back().method, "HEAD");
    // Keep-alive: every request on one connection.
    for (const RequestRecord& rec : log) EXPECT_EQ(rec.connection, log[0].connection);
    EXPECT_EQ(site.stats().connections, 1);
    EXPECT_EQ(site.stats().requests, static_cast<int>(log.size()));
    EXPECT_EQ(site.count("/post/3"), 2);
    EXPECT_EQ(site.count("/post/3?utm=x&a=1"), 1);
    // The two spellings of /post/3's query are one page fetched twice.
    EXPECT_EQ(site.fetched_more_than_once(), std::vector<std::string>{"/post/3?a=1&utm=x"});
    EXPECT_EQ(CrawlSite::canonical_target("/p?b=2&a=1#x"), "/p?a=1&b=2");
    EXPECT_EQ(site.max_in_flight(), 1);
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, ConcurrentSlowFetchesAreCountedInFlight) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site(10, 4));
    // HTTP/1.1 only: with http2 on (the default) libcurl's PIPEWAIT holds one of five plain-HTTP
    // fetches started at once back for a connection to reuse (4 in flight, seen here).
    crawl::ClientOptions client_options;
    client_options.http2 = false;
    crawl::HttpClient client(client_options);
    std::vector<aio::Task<crawl::Response>> fetches;
    for (int i = 0; i < 5; ++i) {
      fetches.push_back(client.fetch(site.url("/slow?ms=1500&i=" + std::to_string(i))));
    }
    const std::vector<crawl::Response> answers = co_await aio::gather(std::move(fetches));
    for (const crawl::Response& r : answers) EXPECT_EQ(r.status, 200);
    (void)co_await client.fetch(site.url("/post/1"));
    EXPECT_EQ(site.max_in_flight(), 5);
    EXPECT_EQ(site.max_in_flight_for("/slow"), 5);
    EXPECT_EQ(site.max_in_flight_for("/post/"), 1);
    const std::vector<RequestRecord> log = site.log();
    std::set<int> connections;
    int fifth = 0;
    for (const RequestRecord& rec : log) {
      if (rec.path == "/slow") connections.insert(rec.connection);
      fifth += rec.in_flight_at_arrival == 5 ? 1 : 0;
    }
    EXPECT_EQ(connections.size(), 5u);  // HTTP/1.1: one connection per request in flight
    EXPECT_EQ(fifth, 1);
    EXPECT_EQ(site.stats().most_open, 5);
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, MinStartGapSeesADownloadDelay) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site(10, 4));
    crawl::HttpClient client;
    EXPECT_EQ(site.min_start_gap("/post/"), std::chrono::steady_clock::duration::max());
    for (int n = 1; n <= 4; ++n) {
      (void)co_await client.fetch(site.url("/post/" + std::to_string(n)));
      (void)co_await client.fetch(site.url("/list/1"));  // other paths do not count
      co_await aio::sleep(60ms);
    }
    EXPECT_GE(site.min_start_gap("/post/"), 60ms - kTimerSlack);
    EXPECT_LT(site.min_start_gap("/"), site.min_start_gap("/post/"));
    site.close();
    co_await site.wait_closed();
  }());
}

TEST_F(CrawlSiteTest, WithoutKeepAliveEveryRequestHasItsConnection) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSiteOptions options = small_site(10, 4);
    options.keep_alive = false;
    CrawlSite site = co_await CrawlSite::start(options);
    crawl::HttpClient client;
    for (int n = 1; n <= 3; ++n) {
      crawl::Response r = co_await client.fetch(site.url("/post/" + std::to_string(n)));
      EXPECT_EQ(r.headers.get("Connection").value_or(""), "close");
      EXPECT_EQ(r.new_connections, 1);
    }
    std::set<int> connections;
    for (const RequestRecord& rec : site.log()) connections.insert(rec.connection);
    EXPECT_EQ(connections.size(), 3u);
    EXPECT_EQ(site.stats().connections, 3);
    site.close();
    co_await site.wait_closed();
  }());
}

// nginx serves write_static_site()'s copy with the same bytes as CrawlSite (the absolute links
// name each server's own origin). nginx missing is a failure, not a skip: scripts/setup.sh
// installs it.
TEST_F(CrawlSiteTest, NginxServesTheSameSite) {
  ASSERT_TRUE(NginxServer::available())
      << NginxServer::kBinary << " is missing: run scripts/setup.sh (as root or with sudo)";
  CrawlSiteOptions options = small_site(30, 8);
  PublicTempDir root;
  NginxServer nginx;
  nginx.start(root.path(), static_site_nginx_locations(options));
  write_static_site(root.path(), options, nginx.url(""));
  run_bounded([&]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(options);
    crawl::ClientOptions client_options;
    client_options.user_agent = "site-test/1.0";
    crawl::HttpClient client(client_options);
    const std::vector<std::string> targets = {
        "/",        "/list/1",      "/list/4",    "/post/1", "/post/17?utm=x&a=1",
        "/post/30", "/robots.txt",  "/private/2", "/r/4",    "/post/31",
        "/nope",    "/post/1.html", "/list/"};
    for (const std::string& target : targets) {
      crawl::Response ours = co_await client.fetch(site.url(target));
      crawl::Response theirs = co_await client.fetch(nginx.url(target));
      EXPECT_EQ(theirs.status, ours.status) << target;
      if (ours.status == 302) {
        EXPECT_EQ(theirs.headers.get("Location").value_or(""),
                  ours.headers.get("Location").value_or(""))
            << target;
      } else {
        EXPECT_EQ(theirs.headers.get("Content-Type").value_or(""),
                  ours.headers.get("Content-Type").value_or(""))
            << target;
        EXPECT_EQ(theirs.body, replace_all(ours.body, site.origin(), nginx.url(""))) << target;
      }
    }
    site.close();
    co_await site.wait_closed();
  }());
  // Its access log: one line per request, in the documented format (each written just after its
  // answer: waited for).
  const std::vector<std::string> lines = nginx.access_log_lines(13, kGenerous);
  EXPECT_EQ(lines.size(), 13u);
  const bool logged = std::any_of(lines.begin(), lines.end(), [](const std::string& line) {
    return line.find("\"GET /post/1 HTTP/1.1\" 200 ") != std::string::npos &&
           line.find("\"site-test/1.0\"") != std::string::npos;
  });
  EXPECT_TRUE(logged) << (lines.empty() ? "" : lines.front());
  nginx.stop();
  EXPECT_FALSE(nginx.running());
}

// robots.txt's status survives the copy: 500 answered by nginx's config, 404 by a missing file.
TEST_F(CrawlSiteTest, NginxServesRobotsStatuses) {
  ASSERT_TRUE(NginxServer::available())
      << NginxServer::kBinary << " is missing: run scripts/setup.sh (as root or with sudo)";
  const std::vector<int> statuses = {404, 500};
  for (const int status : statuses) {
    CrawlSiteOptions options = small_site(4, 2);
    options.robots_status = status;
    PublicTempDir root;
    NginxServer nginx;
    nginx.start(root.path(), static_site_nginx_locations(options));
    write_static_site(root.path(), options, nginx.url(""));
    run_bounded([&]() -> aio::Task<void> {
      crawl::HttpClient client;
      crawl::Response r = co_await client.fetch(nginx.url("/robots.txt"));
      EXPECT_EQ(r.status, status);
      crawl::Response post = co_await client.fetch(nginx.url("/post/2"));
      EXPECT_EQ(post.status, 200);
    }());
  }
}

}  // namespace
}  // namespace concur::testing
