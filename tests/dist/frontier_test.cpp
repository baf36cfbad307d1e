// Tests for concur/dist/frontier.hpp: RedisFrontier against a private redis-server
// (support/redis_server.hpp) — the dupefilter, priority and FIFO order, leases (ack, release,
// expiry and redelivery, renewal, a stale owner refused), cluster-wide slot holds (concurrency,
// spacing, expiry), merged stats, clear(), bad input — and two Crawlers in one process sharing
// one frontier on the test site (support/crawl_site.hpp): every page fetched once, the slot's
// concurrency held as the server saw it. The three-process crawl with a kill is in
// tests/apps/crawl_command_test.cpp. Loopback only.
#include "concur/dist/frontier.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "concur/aio/threads.hpp"
#include "concur/crawl/crawler.hpp"
#include "support/aio_support.hpp"
#include "support/crawl_site.hpp"
#include "support/redis_server.hpp"

namespace concur::testing {
namespace {

using namespace std::chrono_literals;
using crawl::SharedRequest;
using crawl::SlotHold;
using dist::FrontierOptions;
using dist::RedisFrontier;

class FrontierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!RedisServer::available()) GTEST_SKIP() << "redis-server is not installed";
    server_ = new RedisServer();
    server_->start();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (server_ == nullptr) GTEST_SKIP() << "redis-server is not installed";
  }
  // frontier(name, lease): a frontier of its own crawl for this test.
  static std::unique_ptr<RedisFrontier> frontier(const std::string& name,
                                                 std::chrono::milliseconds lease = 10s) {
    FrontierOptions o;
    o.lease_time = lease;
    o.reconnect_timeout = 2s;
    return std::make_unique<RedisFrontier>(server_->url(), name, o);
  }
  static SharedRequest request(std::string fp, std::string blob, int priority = 0,
                               bool dont_filter = false) {
    SharedRequest r;
    r.fingerprint = std::move(fp);
    r.blob = std::move(blob);
    r.priority = priority;
    r.dont_filter = dont_filter;
    return r;
  }
  static std::vector<std::string> blobs(const crawl::LeaseBatch& batch) {
    std::vector<std::string> out;
    for (const crawl::Leased& l : batch.leased) out.push_back(l.blob);
    return out;
  }
  static std::vector<std::string> ids(const crawl::LeaseBatch& batch) {
    std::vector<std::string> out;
    for (const crawl::Leased& l : batch.leased) out.push_back(l.id);
    return out;
  }

  static RedisServer* server_;
};

RedisServer* FrontierTest::server_ = nullptr;

const std::string kFp1(40, 'a');
const std::string kFp2(40, 'b');
const std::string kFp3(40, 'c');

TEST_F(FrontierTest, TheDupefilterQueuesAFingerprintOnceUnlessDontFilter) {
  auto f = frontier("dupes");
  EXPECT_EQ(f->add({request(kFp1, "one"), request(kFp1, "one again")}),
            (std::vector<bool>{true, false}));
  EXPECT_EQ(f->add({request(kFp1, "forced", 0, true)}), std::vector<bool>{false});
  // Not hex: kept as given, and never equal to a hex fingerprint's bytes.
  EXPECT_EQ(f->add({request("not-a-sha1", "other"), request("not-a-sha1", "other")}),
            (std::vector<bool>{true, false}));
  EXPECT_EQ(f->queued(), 3u);
  EXPECT_EQ(f->seen(), 2u);
  // Another crawler of the same crawl shares the dupefilter.
  auto g = frontier("dupes");
  EXPECT_EQ(g->add({request(kFp1, "x"), request(kFp2, "two")}), (std::vector<bool>{false, true}));
  // Another crawl does not.
  auto h = frontier("dupes-other");
  EXPECT_EQ(h->add({request(kFp1, "x")}), std::vector<bool>{true});
}

TEST_F(FrontierTest, LeasesComeByPriorityThenInTheOrderAdded) {
  auto f = frontier("order");
  (void)f->add({request(kFp1, "low", -1), request(kFp2, "first", 0), request(kFp3, "high", 5)});
  (void)f->add({request("d", "second", 0)});
  SharedRequest hub = request("e", "hub", 0);
  hub.subpriority = 3;  // among equal priorities, first (SCHEDULER_HUBS_FIRST's class)
  (void)f->add({hub});
  const crawl::LeaseBatch batch = f->lease(10);
  EXPECT_EQ(blobs(batch), (std::vector<std::string>{"high", "hub", "first", "second", "low"}));
  EXPECT_EQ(batch.outstanding, 5u);  // all leased now
  EXPECT_EQ(f->queued(), 0u);
  EXPECT_EQ(f->leased(), 5u);
}

TEST_F(FrontierTest, AnAckedLeaseIsGoneAndTheCrawlEndsWhenNothingIsQueuedOrLeased) {
  auto f = frontier("ack");
  (void)f->add({request(kFp1, "a"), request(kFp2, "b")});
  const crawl::LeaseBatch first = f->lease(1);
  ASSERT_EQ(first.leased.size(), 1u);
  EXPECT_EQ(first.outstanding, 2u);
  f->ack(ids(first));
  const crawl::LeaseBatch second = f->lease(5);
  ASSERT_EQ(blobs(second), std::vector<std::string>{"b"});
  EXPECT_EQ(second.outstanding, 1u);
  f->ack(ids(second));
  f->ack(ids(second));  // twice: nothing more happens
  const crawl::LeaseBatch last = f->lease(5);
  EXPECT_TRUE(last.leased.empty());
  EXPECT_EQ(last.outstanding, 0u);
}

TEST_F(FrontierTest, AReleasedLeaseIsQueuedAgainAtOnce) {
  auto f = frontier("release");
  (void)f->add({request(kFp1, "a", 3), request(kFp2, "b")});
  const crawl::LeaseBatch batch = f->lease(1);
  ASSERT_EQ(blobs(batch), std::vector<std::string>{"a"});
  f->release(ids(batch));
  EXPECT_EQ(blobs(f->lease(5)), (std::vector<std::string>{"a", "b"}));  // its priority kept
}

TEST_F(FrontierTest, AnExpiredLeaseGoesToAnotherCrawlerAndTheOldOwnerCannotSettleIt) {
  auto dead = frontier("expiry", 300ms);
  auto alive = frontier("expiry", 300ms);
  (void)dead->add({request(kFp1, "page")});
  const crawl::LeaseBatch held = dead->lease(5);
  ASSERT_EQ(held.leased.size(), 1u);
  EXPECT_TRUE(alive->lease(5).leased.empty());  // still leased
  std::this_thread::sleep_for(450ms);           // the holder "died": no renewal
  const crawl::LeaseBatch taken = alive->lease(5);
  EXPECT_EQ(taken.redelivered, 1u);
  ASSERT_EQ(blobs(taken), std::vector<std::string>{"page"});
  // The old owner wakes up: its ack and release are refused, the new lease stands.
  dead->ack(ids(held));
  dead->release(ids(held));
  EXPECT_EQ(alive->leased(), 1u);
  EXPECT_EQ(alive->queued(), 0u);
  alive->ack(ids(taken));
  EXPECT_EQ(alive->lease(5).outstanding, 0u);
}

TEST_F(FrontierTest, ARenewedLeaseOutlivesTheLeaseTime) {
  auto owner = frontier("renew", 300ms);
  auto other = frontier("renew", 300ms);
  (void)owner->add({request(kFp1, "long download")});
  const crawl::LeaseBatch held = owner->lease(1);
  ASSERT_EQ(held.leased.size(), 1u);
  for (int i = 0; i < 6; ++i) {  // 600 ms: twice the lease time, renewed every 100 ms
    std::this_thread::sleep_for(100ms);
    owner->extend(ids(held), {});
  }
  const crawl::LeaseBatch none = other->lease(5);
  EXPECT_TRUE(none.leased.empty());
  EXPECT_EQ(none.redelivered, 0u);
}

TEST_F(FrontierTest, ASlotAdmitsItsConcurrencyAcrossCrawlers) {
  auto a = frontier("slots-conc");
  auto b = frontier("slots-conc");
  EXPECT_EQ(a->acquire_slot({"site", "a1"}, 2, 0.0), 0.0);
  EXPECT_EQ(b->acquire_slot({"site", "b1"}, 2, 0.0), 0.0);
  EXPECT_GT(b->acquire_slot({"site", "b2"}, 2, 0.0), 0.0);   // full
  EXPECT_EQ(b->acquire_slot({"other", "b3"}, 2, 0.0), 0.0);  // another slot
  a->release_slot({"site", "a1"});
  EXPECT_EQ(b->acquire_slot({"site", "b2"}, 2, 0.0), 0.0);
}

TEST_F(FrontierTest, ASlotSpacesStartsByTheDelayWhicheverCrawlerStarts) {
  auto a = frontier("slots-delay");
  auto b = frontier("slots-delay");
  EXPECT_EQ(a->acquire_slot({"site", "a1"}, 8, 0.4), 0.0);
  a->release_slot({"site", "a1"});
  const double wait = b->acquire_slot({"site", "b1"}, 8, 0.4);
  EXPECT_GT(wait, 0.2);
  EXPECT_LE(wait, 0.4);
  std::this_thread::sleep_for(std::chrono::duration<double>(wait + 0.02));
  EXPECT_EQ(b->acquire_slot({"site", "b1"}, 8, 0.4), 0.0);
}

TEST_F(FrontierTest, ADeadHoldersSlotHoldExpiresAndARenewedOneDoesNot) {
  auto dead = frontier("slots-expiry", 300ms);
  auto alive = frontier("slots-expiry", 300ms);
  EXPECT_EQ(dead->acquire_slot({"site", "dead"}, 1, 0.0), 0.0);
  EXPECT_GT(alive->acquire_slot({"site", "x"}, 1, 0.0), 0.0);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(alive->acquire_slot({"site", "x"}, 1, 0.0), 0.0);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(100ms);
    alive->extend({}, {SlotHold{"site", "x"}});
  }
  EXPECT_GT(dead->acquire_slot({"site", "dead"}, 1, 0.0), 0.0);  // still held after 500 ms
}

TEST_F(FrontierTest, StatsAddCountersAndKeepMaxima) {
  auto f = frontier("stats");
  f->merge_stats({{"response_received_count", 10},
                  {"request_depth_max", 3},
                  {"memusage/max", 1000},
                  {"finish_reason", "finished"},
                  {"ratio", 0.5}});
  f->merge_stats(
      {{"response_received_count", 5}, {"request_depth_max", 2}, {"memusage/max", 4000}});
  EXPECT_EQ(f->stats(), (nlohmann::json{{"response_received_count", 15},
                                        {"request_depth_max", 3},
                                        {"memusage/max", 4000}}));
  EXPECT_THROW(f->merge_stats(nlohmann::json::array()), ValueError);
}

TEST_F(FrontierTest, ClearForgetsTheCrawlOnly) {
  auto f = frontier("clear");
  auto other = frontier("clear-not");
  (void)f->add({request(kFp1, "a")});
  (void)f->lease(1);
  (void)other->add({request(kFp1, "a")});
  f->clear();
  EXPECT_EQ(f->queued() + f->leased() + f->seen(), 0u);
  EXPECT_EQ(other->queued(), 1u);
  EXPECT_EQ(f->add({request(kFp1, "a")}), std::vector<bool>{true});
}

TEST_F(FrontierTest, BadInputIsRefused) {
  EXPECT_THROW(frontier(""), ValueError);
  EXPECT_THROW(frontier("two words"), ValueError);
  EXPECT_THROW(frontier("short-lease", 10ms), ValueError);
  EXPECT_THROW(RedisFrontier("http://nowhere", "x"), ValueError);
  auto f = frontier("bad");
  EXPECT_THROW(f->ack({"no-space"}), ValueError);
  EXPECT_THROW((void)f->acquire_slot({"s", "t"}, 0, 0.0), ValueError);
  EXPECT_THROW((void)f->acquire_slot({"s", "t"}, 1, -1.0), ValueError);
  EXPECT_THROW((void)f->acquire_slot({"s", ""}, 1, 0.0), ValueError);
}

TEST_F(FrontierTest, ABrokenConnectionFailsAfterTheReconnectTimeout) {
  RedisServer own;
  own.start();
  FrontierOptions o;
  o.reconnect_timeout = 300ms;
  RedisFrontier f(own.url(), "gone", o);
  (void)f.add({request(kFp1, "a")});
  own.stop();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((void)f.lease(1), ConnectionError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

// A transient error reply (BUSY while another client's script runs long; LOADING after a restart
// is the same path) is waited out like a lost connection, not thrown.
TEST_F(FrontierTest, ATransientErrorReplyIsRetried) {
  RedisServer own;
  own.start();
  dist::Redis admin = own.client();
  (void)admin.command({"CONFIG", "SET", "busy-reply-threshold", "100"});  // BUSY after 100 ms
  FrontierOptions o;
  o.reconnect_timeout = 20s;
  RedisFrontier f(own.url(), "busy", o);
  std::jthread slow([&own] {  // joined however the test ends
    dist::Redis r = own.client();
    r.set_timeout(30s);
    (void)r.command({"EVAL",
                     "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] "
                     "while true do local n = redis.call('TIME') "
                     "if n[1] * 1000000 + n[2] - s > 1500000 then break end end return 0",
                     "0"});
  });
  std::this_thread::sleep_for(300ms);  // the script runs (1.5 s): the server answers BUSY
  EXPECT_EQ(f.add({request(kFp1, "a")}), std::vector<bool>{true});
  EXPECT_EQ(f.queued(), 1u);
}

// ---- crawlers sharing a frontier ----

class SiteSpider : public crawl::Spider {
 public:
  explicit SiteSpider(std::string start) : crawl::Spider("shared") {
    start_urls = {std::move(start)};
    allowed_domains = {"127.0.0.1"};
  }
  void parse(const crawl::Response& response, crawl::Output& out) override {
    for (const std::string& href : response.css("a::attr(href)").getall()) {
      out.yield(response.follow(href));
    }
  }
};

// SiteOnLoop: the test site on a loop thread of its own while crawlers run on theirs; closed and
// destroyed on that loop at the end. site() is used from the test's thread for its URL and log
// (both safe from any thread).
class SiteOnLoop {
 public:
  explicit SiteOnLoop(const CrawlSiteOptions& options) {
    auto started = aio::run_coroutine_threadsafe(CrawlSite::start(options), loops_.loop(0));
    site_.emplace(std::move(started).result(kGenerous));
  }
  SiteOnLoop(const SiteOnLoop&) = delete;
  SiteOnLoop& operator=(const SiteOnLoop&) = delete;
  ~SiteOnLoop() {
    auto closing = [this]() -> aio::Task<void> {
      site_->close();
      co_await site_->wait_closed();
      site_.reset();
    };
    aio::run_coroutine_threadsafe(closing(), loops_.loop(0)).result(kGenerous);
  }
  CrawlSite* operator->() { return &*site_; }
  [[nodiscard]] std::set<std::string> fetched_paths() const {
    std::set<std::string> out;
    for (const RequestRecord& r : site_->log()) out.insert(r.path);
    return out;
  }

 private:
  aio::LoopGroup loops_{1};
  std::optional<CrawlSite> site_;
};

TEST_F(FrontierTest, TwoCrawlersShareOneCrawlOfTheSitePolitely) {
  CrawlSiteOptions site_options;
  site_options.posts = 60;
  site_options.posts_per_list = 10;
  site_options.post_bytes = 800;
  site_options.latency = 5ms;
  SiteOnLoop site(site_options);

  crawl::Settings settings;
  settings.log_level = "WARNING";
  settings.logstats_interval = 0;
  settings.concurrent_requests_per_domain = 3;
  auto run_one = [&](std::int64_t* pages) {
    SiteSpider spider(site->url("/"));
    crawl::Crawler crawler(spider, settings);
    crawler.share(frontier("two-crawlers", 2s));
    crawler.run();
    *pages = crawler.stats().get_int("response_received_count");
  };
  std::int64_t pages_a = 0;
  std::int64_t pages_b = 0;
  std::thread a(run_one, &pages_a);
  std::thread b(run_one, &pages_b);
  a.join();
  b.join();

  EXPECT_EQ(site.fetched_paths(), site->reachable_allowed_paths());
  // Each page once (robots.txt once per crawler), and the cluster's slot held to 3.
  for (const std::string& twice : site->fetched_more_than_once()) EXPECT_EQ(twice, "/robots.txt");
  EXPECT_LE(site->max_in_flight(), 3);
  EXPECT_GT(pages_a + pages_b, 60);
  auto shared = frontier("two-crawlers");
  EXPECT_EQ(shared->stats().at("response_received_count").get<std::int64_t>(), pages_a + pages_b);
  EXPECT_EQ(shared->queued() + shared->leased(), 0u);
}

// A crawler that stops early (CLOSESPIDER_PAGECOUNT) gives back the leases it had not started at
// once: the other crawler gets them without waiting for them to expire (a 30 s lease). The
// quitter runs first, alone, so that it surely reaches its 5 pages (run side by side, the other
// crawler sometimes took all the site's pages first and the quitter finished normally); the
// second crawler then starts with the quitter's unstarted leases released or not.
TEST_F(FrontierTest, ACrawlerThatStopsEarlyReleasesItsLeases) {
  CrawlSiteOptions site_options;
  site_options.posts = 60;
  site_options.posts_per_list = 30;  // wide pages: many leases at once
  site_options.post_bytes = 800;
  site_options.latency = 10ms;
  SiteOnLoop site(site_options);

  crawl::Settings settings;
  settings.log_level = "WARNING";
  settings.logstats_interval = 0;
  crawl::Settings quitter = settings;
  quitter.closespider_pagecount = 5;
  auto run_one = [&](const crawl::Settings& s, nlohmann::json* stats) {
    SiteSpider spider(site->url("/"));
    crawl::Crawler crawler(spider, s);
    crawler.share(frontier("early-stop", 30s));
    crawler.run();
    *stats = crawler.stats().get_stats();
  };
  nlohmann::json early;
  nlohmann::json stayer;
  run_one(quitter, &early);
  ASSERT_EQ(early.at("finish_reason"), "closespider_pagecount");
  EXPECT_GT(frontier("early-stop")->queued(), 0u);  // it left work behind
  EXPECT_EQ(frontier("early-stop")->leased(), 0u);  // and no lease
  run_one(settings, &stayer);

  EXPECT_EQ(stayer.at("finish_reason"), "finished");
  EXPECT_EQ(stayer.value("scheduler/redelivered", 0), 0);  // released, not expired
  EXPECT_EQ(site.fetched_paths(), site->reachable_allowed_paths());
  auto shared = frontier("early-stop");
  EXPECT_EQ(shared->queued() + shared->leased(), 0u);
}

// Redis restarts mid-crawl (with AOF, appendfsync always): the frontier's calls reconnect and
// retry, the crawl goes on and every page is fetched.
TEST_F(FrontierTest, ACrawlSurvivesARedisRestart) {
  RedisServer own;
  own.start(RedisServer::Options{.appendonly = true});
  CrawlSiteOptions site_options;
  site_options.posts = 80;
  site_options.posts_per_list = 10;
  site_options.post_bytes = 800;
  site_options.latency = 20ms;
  SiteOnLoop site(site_options);

  crawl::Settings settings;
  settings.log_level = "ERROR";
  settings.logstats_interval = 0;
  settings.concurrent_requests_per_domain = 4;
  nlohmann::json stats;
  std::thread crawler_thread([&] {
    SiteSpider spider(site->url("/"));
    crawl::Crawler crawler(spider, settings);
    crawler.share(std::make_shared<RedisFrontier>(own.url(), "restart"));
    crawler.run();
    stats = crawler.stats().get_stats();
  });
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  while (site->count_with_prefix("/post/") < 15 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_GE(site->count_with_prefix("/post/"), 15);
  own.restart();
  crawler_thread.join();

  EXPECT_EQ(stats.at("finish_reason"), "finished");
  EXPECT_EQ(stats.value("shared/errors", 0), 0);
  EXPECT_EQ(site.fetched_paths(), site->reachable_allowed_paths());
}

}  // namespace
}  // namespace concur::testing
