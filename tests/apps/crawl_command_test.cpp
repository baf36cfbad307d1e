// Tests for `concur crawl` (apps/concur/crawl/): run_crawl() called directly against the test site
// (support/crawl_site.hpp) — items to a feed and to stdout, --follow, --no-follow, option errors,
// the stats file — and the real binary interrupted by SIGINT (one press: a graceful stop, exit
// status 130); three binaries sharing one crawl through a private redis-server (--redis): the
// cluster's download delay as the server saw it, and one of them killed mid-crawl with nothing
// lost. Loopback only.
#include "crawl/crawl_command.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "concur/aio/threads.hpp"
#include "concur/subprocess.hpp"
#include "support/aio_support.hpp"
#include "support/crawl_site.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
using concur::apps::crawl::CrawlOptions;
using concur::apps::crawl::run_crawl;
namespace fs = std::filesystem;
namespace sp = concur::subprocess;

CrawlSiteOptions small_site() {
  CrawlSiteOptions o;
  o.posts = 30;
  o.posts_per_list = 10;
  o.post_bytes = 1000;
  return o;
}

// Result: what a run_crawl() call returned and printed.
struct Result {
  int status = -1;
  std::string out;
  std::string err;
};

// crawl(options): run_crawl on a thread of the loop's executor, so the site (on the loop) keeps
// serving while the command runs its own loop.
aio::Task<Result> crawl(CrawlOptions options) {
  auto run = [options = std::move(options)] {
    Result r;
    std::ostringstream out;
    std::ostringstream err;
    r.status = run_crawl(options, out, err, /*handle_signals=*/false);
    r.out = out.str();
    r.err = err.str();
    return r;
  };
  Result r = co_await aio::to_thread(std::move(run));
  co_return r;
}

std::vector<nlohmann::ordered_json> read_lines(const std::string& text) {
  std::vector<nlohmann::ordered_json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::ordered_json::parse(line));  // fields in file order
  }
  return out;
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::set<std::string> fetched_paths(const CrawlSite& site) {
  std::set<std::string> out;
  for (const RequestRecord& r : site.log()) out.insert(r.path);
  return out;
}

TEST(CrawlCommandTest, CrawlsTheSiteAndWritesItemsAndStats) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site());
    TempDir dir;
    CrawlOptions options;
    options.urls = {site.url("/")};
    options.extract = {"title=h1.title::text", "author=span.author::text"};
    options.output = (dir.path() / "items.jsonl").string();
    options.stats_json = (dir.path() / "stats.json").string();
    options.settings = {"LOG_LEVEL=WARNING", "LOGSTATS_INTERVAL=0"};
    const Result r = co_await crawl(options);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(fetched_paths(site), site.reachable_allowed_paths());
    const auto items = read_lines(slurp(dir.path() / "items.jsonl"));
    std::set<std::string> titles;
    for (const auto& item : items) {
      EXPECT_EQ(item.begin().key(), "url");  // fields in order: url first
      titles.insert(item.at("title").get<std::string>());
      EXPECT_EQ(item.at("author").get<std::string>().rfind("author-", 0), 0u);
    }
    EXPECT_EQ(titles.size(), 30u);
    const auto stats = nlohmann::json::parse(slurp(dir.path() / "stats.json"));
    EXPECT_EQ(stats.at("finish_reason"), "finished");
    EXPECT_EQ(stats.at("item_scraped_count").get<std::size_t>(), items.size());
    site.close();
    co_await site.wait_closed();
  }());
}

TEST(CrawlCommandTest, FollowSelectorsAndStdoutItems) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site());
    CrawlOptions options;
    options.urls = {site.url("/list/1")};
    options.follow = {"a.next"};  // the list pages only
    options.extract = {"posts[]=a.post-item-title::attr(href)"};
    options.output = "-";
    options.settings = {"LOG_LEVEL=ERROR", "LOGSTATS_INTERVAL=0"};
    const Result r = co_await crawl(options);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(fetched_paths(site),
              (std::set<std::string>{"/robots.txt", "/list/1", "/list/2", "/list/3"}));
    const auto items = read_lines(r.out);
    CO_ASSERT_EQ(items.size(), 3u);
    for (const auto& item : items) EXPECT_EQ(item.at("posts").size(), 10u);
    site.close();
    co_await site.wait_closed();
  }());
}

TEST(CrawlCommandTest, NoFollowFetchesTheStartUrlsOnly) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site());
    CrawlOptions options;
    options.urls = {site.url("/post/1"), site.url("/post/2")};
    options.no_follow = true;
    options.settings = {"LOG_LEVEL=ERROR", "ROBOTSTXT_OBEY=False"};
    const Result r = co_await crawl(options);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(fetched_paths(site), (std::set<std::string>{"/post/1", "/post/2"}));
    site.close();
    co_await site.wait_closed();
  }());
}

TEST(CrawlCommandTest, AResumedCrawlAppendsToItsFeed) {
  run_bounded([]() -> aio::Task<void> {
    CrawlSite site = co_await CrawlSite::start(small_site());
    TempDir dir;
    CrawlOptions options;
    options.urls = {site.url("/")};
    options.extract = {"title=h1.title::text"};
    options.output = (dir.path() / "items.jsonl").string();
    options.jobdir = (dir.path() / "job").string();
    // The first run closes after 10 pages and leaves the rest in the JOBDIR.
    options.settings = {"LOG_LEVEL=ERROR", "LOGSTATS_INTERVAL=0", "CLOSESPIDER_PAGECOUNT=10"};
    const Result first = co_await crawl(options);
    EXPECT_EQ(first.status, 0) << first.err;
    const std::size_t after_first = read_lines(slurp(dir.path() / "items.jsonl")).size();
    options.settings = {"LOG_LEVEL=ERROR", "LOGSTATS_INTERVAL=0"};
    const Result second = co_await crawl(options);
    EXPECT_EQ(second.status, 0) << second.err;
    std::set<std::string> titles;
    const auto items = read_lines(slurp(dir.path() / "items.jsonl"));
    for (const auto& item : items) titles.insert(item.at("title").get<std::string>());
    EXPECT_LT(after_first, items.size());
    EXPECT_EQ(titles.size(), 30u);  // the first run's items kept, the rest added
    // -o on an existing .json is refused (an array cannot grow); -O replaces.
    std::ofstream(dir.path() / "items.json") << "[]";
    CrawlOptions json = options;
    json.output = (dir.path() / "items.json").string();
    const Result refused = co_await crawl(json);
    EXPECT_EQ(refused.status, 2);
    EXPECT_NE(refused.err.find("-O"), std::string::npos) << refused.err;
    site.close();
    co_await site.wait_closed();
  }());
}

TEST(CrawlCommandTest, BadOptionsExitTwoWithAMessage) {
  auto usage = [](CrawlOptions options) {
    options.urls = {"http://127.0.0.1:1/"};
    std::ostringstream out;
    std::ostringstream err;
    const int status = run_crawl(options, out, err, false);
    EXPECT_EQ(status, 2) << err.str();
    return err.str();
  };
  CrawlOptions bad_setting;
  bad_setting.settings = {"CONCURENT_REQUESTS=4"};
  EXPECT_NE(usage(bad_setting).find("CONCURENT_REQUESTS"), std::string::npos);
  CrawlOptions bad_value;
  bad_value.settings = {"DOWNLOAD_DELAY=-1"};
  EXPECT_NE(usage(bad_value).find("DOWNLOAD_DELAY"), std::string::npos);
  CrawlOptions bad_extract;
  bad_extract.extract = {"title"};
  EXPECT_NE(usage(bad_extract).find("FIELD=SELECTOR"), std::string::npos);
  CrawlOptions url_field;
  url_field.extract = {"url=h1::text"};
  EXPECT_NE(usage(url_field).find("'url'"), std::string::npos);
  CrawlOptions bad_output;
  bad_output.output = "items.xyz";
  EXPECT_NE(usage(bad_output).find("xyz"), std::string::npos);
}

TEST(CrawlCommandTest, EachOptionTakesOneValueSoUrlsStayPositional) {
  CLI::App app;
  CrawlOptions options;
  concur::apps::crawl::add_crawl_command(app, options);
  app.parse(
      "crawl https://a.example/ -s DOWNLOAD_DELAY=1 --follow a.next -e t=h1::text "
      "https://b.example/");
  EXPECT_EQ(options.urls, (std::vector<std::string>{"https://a.example/", "https://b.example/"}));
  EXPECT_EQ(options.follow, std::vector<std::string>{"a.next"});
  EXPECT_EQ(options.extract, std::vector<std::string>{"t=h1::text"});
  EXPECT_EQ(options.settings, std::vector<std::string>{"DOWNLOAD_DELAY=1"});
}

// The real binary, interrupted: the site runs on a loop thread of its own while the test waits
// for the crawl to be under way, then sends one SIGINT.
TEST(CrawlCommandTest, OneSigintStopsTheBinaryGracefully) {
  aio::LoopGroup loops(1);
  CrawlSiteOptions options = small_site();
  options.posts = 400;
  options.latency = 20ms;
  auto started = aio::run_coroutine_threadsafe(CrawlSite::start(options), loops.loop(0));
  // The site is used on its loop's thread only (its log may be read anywhere): it is closed and
  // destroyed there at the end.
  std::optional<CrawlSite> site(std::move(started).result(kGenerous));
  TempDir dir;
  const std::string stats = (dir.path() / "stats.json").string();
  sp::PopenOptions popen_options;
  popen_options.stdout_ = sp::Redirect::DevNull;
  popen_options.stderr_ = sp::Redirect::Pipe;
  sp::Popen child({CONCUR_CLI_PATH, "crawl", site->url("/"), "--stats-json", stats, "-s",
                   "LOG_LEVEL=WARNING", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2"},
                  popen_options);
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  while (site->count_with_prefix("/post/") < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GE(site->count_with_prefix("/post/"), 5);
  child.send_signal(SIGINT);
  const sp::CommunicateResult output = child.communicate({}, kGenerous);
  EXPECT_EQ(child.returncode(), 130) << output.stderr_;
  const auto result = nlohmann::json::parse(slurp(stats));
  EXPECT_EQ(result.at("finish_reason"), "shutdown");
  EXPECT_LT(result.at("response_received_count").get<int>(), 300);
  auto closing = [&site]() -> aio::Task<void> {
    site->close();
    co_await site->wait_closed();
    site.reset();
  };
  aio::run_coroutine_threadsafe(closing(), loops.loop(0)).result(kGenerous);
}

// ---- --redis: crawlers in three processes sharing one crawl ----

// kCrawlBound: how long a crawler process may take to end (a bound against hangs, not a
// timing assertion: these crawls take a few seconds).
constexpr auto kCrawlBound = 60s;

// SharedCrawl: a site on a loop thread of its own, a private redis-server, and `concur crawl
// --redis` processes against them (stderr inherited: only errors are logged).
class SharedCrawl {
 public:
  explicit SharedCrawl(const CrawlSiteOptions& options) {
    redis_.start();
    auto started = aio::run_coroutine_threadsafe(CrawlSite::start(options), loops_.loop(0));
    site_.emplace(std::move(started).result(kGenerous));
  }
  SharedCrawl(const SharedCrawl&) = delete;
  SharedCrawl& operator=(const SharedCrawl&) = delete;
  ~SharedCrawl() {
    for (auto& c : crawlers_) {
      if (c->poll() == std::nullopt) {
        c->kill();
        (void)c->wait();
      }
    }
    auto closing = [this]() -> aio::Task<void> {
      site_->close();
      co_await site_->wait_closed();
      site_.reset();
    };
    aio::run_coroutine_threadsafe(closing(), loops_.loop(0)).result(kGenerous);
  }

  // start(i, settings): crawler i (User-Agent "crawler-<i>", stats in stats(i)).
  sp::Popen& start(int i, const std::vector<std::string>& settings) {
    std::vector<std::string> args = {CONCUR_CLI_PATH,
                                     "crawl",
                                     site_->url("/"),
                                     "--redis",
                                     redis_.url(),
                                     "--redis-name",
                                     "shared",
                                     "--lease-time",
                                     "1",
                                     "--stats-json",
                                     stats_path(i),
                                     "-s",
                                     "LOG_LEVEL=ERROR",
                                     "-s",
                                     "LOGSTATS_INTERVAL=0",
                                     "-s",
                                     "USER_AGENT=crawler-" + std::to_string(i)};
    for (const std::string& s : settings) {
      args.push_back("-s");
      args.push_back(s);
    }
    sp::PopenOptions options;
    options.stdout_ = sp::Redirect::DevNull;
    crawlers_.push_back(std::make_unique<sp::Popen>(args, options));
    return *crawlers_.back();
  }
  [[nodiscard]] std::string stats_path(int i) const {
    return (dir_.path() / ("stats-" + std::to_string(i) + ".json")).string();
  }
  [[nodiscard]] nlohmann::json stats(int i) const {
    return nlohmann::json::parse(slurp(stats_path(i)));
  }
  [[nodiscard]] CrawlSite& site() { return *site_; }

 private:
  RedisServer redis_;
  aio::LoopGroup loops_{1};
  std::optional<CrawlSite> site_;  // used on its loop's thread; its log is read anywhere
  TempDir dir_;
  std::vector<std::unique_ptr<sp::Popen>> crawlers_;
};

TEST(CrawlCommandTest, ThreeProcessesSharingACrawlKeepOneDownloadDelay) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server is not installed";
  CrawlSiteOptions options = small_site();
  options.posts = 6;
  options.posts_per_list = 6;
  SharedCrawl crawl(options);
  std::vector<sp::Popen*> crawlers;
  for (int i = 0; i < 3; ++i) {
    crawlers.push_back(&crawl.start(i, {"DOWNLOAD_DELAY=0.2", "RANDOMIZE_DOWNLOAD_DELAY=False",
                                        "CONCURRENT_REQUESTS_PER_DOMAIN=4"}));
  }
  // Every crawler exits 0 once nothing is queued or leased anywhere.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(crawlers[static_cast<std::size_t>(i)]->wait(kCrawlBound), 0) << "crawler " << i;
    EXPECT_EQ(crawl.stats(i).at("finish_reason"), "finished");
  }
  CrawlSite& site = crawl.site();
  EXPECT_EQ(fetched_paths(site), site.reachable_allowed_paths());
  // One delay for the cluster: starts 200 ms apart whichever process made them (a server
  // arrival lags its start by tens of ms on a loaded machine, not 50).
  EXPECT_GE(site.min_start_gap("/"), 150ms);
  for (const std::string& twice : site.fetched_more_than_once()) EXPECT_EQ(twice, "/robots.txt");
}

// The test: three crawlers, one killed (SIGKILL) while it has a download in flight —
// its leases expire to the others after --lease-time and every page is still fetched; the
// cluster's per-slot concurrency holds throughout, as the server counted it.
TEST(CrawlCommandTest, ACrawlerKilledMidCrawlLosesNothing) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server is not installed";
  CrawlSiteOptions options = small_site();
  options.posts = 150;
  options.posts_per_list = 10;
  options.latency = 20ms;
  SharedCrawl crawl(options);
  const std::vector<std::string> settings = {"CONCURRENT_REQUESTS_PER_DOMAIN=2"};
  std::vector<sp::Popen*> crawlers;
  for (int i = 0; i < 3; ++i) crawlers.push_back(&crawl.start(i, settings));
  CrawlSite& site = crawl.site();
  // Kill crawler 0 while the server is answering one of its /post/ requests (so it holds that
  // request's lease, unacknowledged).
  const auto in_flight_post_of_0 = [&site] {
    for (const RequestRecord& r : site.log()) {
      if (r.user_agent == "crawler-0" && r.path.rfind("/post/", 0) == 0 &&
          r.finish == std::chrono::steady_clock::time_point{}) {
        return true;
      }
    }
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  while (!in_flight_post_of_0() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(in_flight_post_of_0()) << "crawler 0 never had a post in flight";
  crawlers[0]->kill();
  EXPECT_EQ(crawlers[0]->wait(kCrawlBound), -SIGKILL);
  std::int64_t redelivered = 0;
  for (int i = 1; i < 3; ++i) {
    EXPECT_EQ(crawlers[static_cast<std::size_t>(i)]->wait(kCrawlBound), 0) << "crawler " << i;
    const nlohmann::json stats = crawl.stats(i);
    EXPECT_EQ(stats.at("finish_reason"), "finished");
    redelivered += stats.value("scheduler/redelivered", std::int64_t{0});
  }
  EXPECT_EQ(fetched_paths(site), site.reachable_allowed_paths());
  EXPECT_GE(redelivered, 1);
  EXPECT_LE(site.max_in_flight(), 2);
}

}  // namespace
}  // namespace concur::testing
