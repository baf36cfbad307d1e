// concur/crawl/crawler.hpp — the crawler: Scrapy's engine on concur's parts. A Spider says where
// to start and how to read a page; a Crawler runs it:
//
//   scheduler (priority queue + dupefilter on request fingerprints)
//     -> downloader on an aio loop (download slots per domain: CONCURRENT_REQUESTS_PER_DOMAIN,
//        DOWNLOAD_DELAY spacing request starts, AutoThrottle, robots.txt per origin, retries with
//        backoff and Retry-After, redirects)                               [the loop's thread]
//     -> callbacks on a thread pool (PARSE_THREADS): the Spider's parse() and named callbacks,
//        which yield Requests and Items                                    [parse threads]
//     -> item pipelines and feeds on one writer thread, behind a bounded queue of
//        CONCURRENT_ITEMS (a slow writer holds the parsers, which hold the downloader)
//
// Python / Scrapy -> concur:
//   class MySpider(scrapy.Spider)      class MySpider : public crawl::Spider
//   start_urls, allowed_domains        the same members
//   def parse(self, response): yield   void parse(const Response&, Output& out): out.yield(...)
//   response.follow(href, cb)          out.yield(response.follow(href, "cb"))
//   callback=self.parse_post           Request.callback = "parse_post" (registered by callback())
//   CrawlerProcess(settings).crawl()   Crawler(spider, settings).run() -> the stats
//   FEEDS = {"items.jsonl": {...}}     crawler.add_feed("items.jsonl")
//   raise DropItem / CloseSpider       throw crawl::DropItem / crawl::CloseSpider
// Stats carry Scrapy's key names (docs/crawl.md lists them).
//
// Thread-safety: a Spider's callbacks run on several parse threads at once (make them
// reentrant: they get their own Response and Output); pipelines run on one thread, one item at a
// time. Crawler::stop() may be called from any thread (a signal handler's thread included) and
// stats() read from any thread while the crawl runs.
// Errors: a failed download ends in the request's errback (or is counted and logged); an
// exception in a callback is counted (spider_exceptions/<type>) and logged; none stops the
// crawl but CloseSpider. Settings are validated before anything starts (ValueError).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "concur/aio/task.hpp"
#include "concur/crawl/feed.hpp"
#include "concur/crawl/http.hpp"
#include "concur/crawl/settings.hpp"
#include "concur/crawl/shared.hpp"
#include "concur/errors.hpp"

namespace concur::crawl {

// DropItem: a pipeline throws it to drop the item (item_dropped_count; the reason is logged).
class DropItem : public Error {
 public:
  explicit DropItem(const std::string& reason) : Error("DropItem: " + reason) {}
};

// CloseSpider: a callback throws it to end the crawl; `reason` becomes finish_reason.
class CloseSpider : public Error {
 public:
  explicit CloseSpider(std::string reason = "cancelled")
      : Error("CloseSpider: " + reason), reason_(std::move(reason)) {}
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

// Output: what a callback yields: requests to schedule and items to scrape.
class Output {
 public:
  // yield(request): schedule it (through the offsite, depth, URL-length and dupefilter checks).
  void yield(Request request) { requests_.push_back(std::move(request)); }
  // yield(item): hand it to the pipelines. ValueError if it is not a JSON object.
  void yield(Item item);
  [[nodiscard]] std::vector<Request>& requests() noexcept { return requests_; }
  [[nodiscard]] std::vector<Item>& items() noexcept { return items_; }

 private:
  std::vector<Request> requests_;
  std::vector<Item> items_;
};

// Failure: what an errback gets: the request that failed and why.
struct Failure {
  Request request;
  std::exception_ptr error;  // the download error, or HttpError's for a refused status
  std::string type;          // its Python-style type name ("ConnectionRefusedError", "HttpError")
  std::string message;       // its what()
  int status = 0;            // the HTTP status when a response was refused (HttpError), else 0
};

// dump_request(request) / load_request(blob): a Request as bytes (CBOR) and back — every field,
// the crawler's included — for the JOBDIR's disk queue and for requests sent elsewhere.
// load_request raises ValueError for bytes that are not a dumped Request.
[[nodiscard]] std::string dump_request(const Request& request);
[[nodiscard]] Request load_request(std::string_view blob);

// Spider: what to crawl and how to read it (scrapy.Spider).
class Spider {
 public:
  using Callback = std::function<void(const Response&, Output&)>;
  using Errback = std::function<void(const Failure&, Output&)>;

  Spider() = default;
  explicit Spider(std::string spider_name) : name(std::move(spider_name)) {}
  virtual ~Spider() = default;
  Spider(const Spider&) = delete;
  Spider& operator=(const Spider&) = delete;

  std::string name = "spider";
  std::vector<std::string> start_urls;
  // allowed_domains: requests to other hosts are dropped (offsite/filtered), unless dont_filter.
  // Empty: any host.
  std::vector<std::string> allowed_domains;

  // start_requests(): the first requests: start_urls as GETs with dont_filter (Scrapy's).
  [[nodiscard]] virtual std::vector<Request> start_requests();
  // parse(response, out): the default callback. Spider's own raises NotImplementedError-like
  // RuntimeError ("<name>.parse callback is not defined").
  virtual void parse(const Response& response, Output& out);

  // callback(name, fn) / errback(name, fn): register a named callback / errback, so requests can
  // name it (Request::callback / errback). ValueError for an empty or "parse" name.
  void callback(std::string cb_name, Callback fn);
  void errback(std::string eb_name, Errback fn);
  // find_callback(name) / find_errback(name): the registered function (empty name: parse for a
  // callback, none for an errback); ValueError for a name never registered.
  [[nodiscard]] Callback find_callback(const std::string& cb_name);
  [[nodiscard]] Errback find_errback(const std::string& eb_name) const;

 private:
  std::map<std::string, Callback> callbacks_;
  std::map<std::string, Errback> errbacks_;
};

// ItemPipeline: a stage every item passes, in the order added (Scrapy's ITEM_PIPELINES). Runs on
// the writer thread only. process_item may change the item, or throw DropItem to drop it; any
// other exception drops it too and is counted and logged.
class ItemPipeline {
 public:
  virtual ~ItemPipeline() = default;
  virtual void open_spider(Spider& /*spider*/) {}
  virtual void close_spider(Spider& /*spider*/) {}
  virtual void process_item(Item& item, Spider& spider) = 0;
};

// FeedPipeline: a feed export as the pipeline stage it is in Scrapy (FEEDS): every item that
// reaches it is written; the feed is finished when the spider closes.
class FeedPipeline : public ItemPipeline {
 public:
  explicit FeedPipeline(std::unique_ptr<FeedExporter> exporter);
  void process_item(Item& item, Spider& spider) override;
  void close_spider(Spider& spider) override;
  [[nodiscard]] FeedExporter& exporter() noexcept { return *exporter_; }

 private:
  std::unique_ptr<FeedExporter> exporter_;
};

// StatsCollector: Scrapy's stats: counters and values by key, safe from any thread.
class StatsCollector {
 public:
  void inc_value(const std::string& key, std::int64_t count = 1);
  void set_value(const std::string& key, nlohmann::json value);
  void max_value(const std::string& key, std::int64_t value);
  // get_value(key): the value, or null when never set.
  [[nodiscard]] nlohmann::json get_value(const std::string& key) const;
  // get_int(key): a counter's value, 0 when never set.
  [[nodiscard]] std::int64_t get_int(const std::string& key) const;
  // get_stats(): every key, sorted, as one JSON object.
  [[nodiscard]] nlohmann::json get_stats() const;
  // dump(): the stats as Scrapy's "Dumping Scrapy stats" block ({'key': value, ...}, sorted).
  [[nodiscard]] std::string dump() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, nlohmann::json> values_;
};

namespace detail {
class Engine;  // src/crawl/crawler.cpp
}  // namespace detail

// Progress: a crawl's state at a glance (a progress line), read from any thread.
struct Progress {
  std::int64_t pages = 0;     // responses handed to callbacks or refused (response_received_count)
  std::int64_t items = 0;     // item_scraped_count
  std::int64_t requests = 0;  // downloader/request_count
  std::int64_t errors = 0;    // download errors and callback errors
  std::size_t queued = 0;     // requests waiting in the scheduler
  std::size_t in_progress = 0;  // requests being downloaded or handled
  double elapsed = 0.0;         // seconds since the crawl started
};

// Crawler: runs one spider with one set of settings.
class Crawler {
 public:
  // Crawler(spider, settings): validates the settings (ValueError). The spider must outlive the
  // crawler.
  explicit Crawler(Spider& spider, Settings settings = {});
  ~Crawler();
  Crawler(const Crawler&) = delete;
  Crawler& operator=(const Crawler&) = delete;

  // add_pipeline(p): appended to the pipelines (before run()).
  void add_pipeline(std::shared_ptr<ItemPipeline> pipeline);
  // add_feed(path, options): a FeedPipeline writing to `path` (format by extension, feed.hpp),
  // appended to the pipelines. Throws as make_feed_exporter (ValueError, OSError).
  void add_feed(const std::string& path, const FeedOptions& options = {});
  // share(frontier): crawl together with every other crawler sharing `frontier` (shared.hpp:
  // leased requests, one dupefilter, cluster-wide politeness, merged stats). Before run().
  // ValueError for a null frontier or with a JOBDIR (the frontier is the crawl's state).
  void share(std::shared_ptr<SharedFrontier> frontier);
  // on_log(fn): where log lines go (default: stderr, filtered by LOG_LEVEL). Before run().
  void on_log(std::function<void(std::string_view level, std::string_view line)> sink);

  // run(): crawls until nothing is left to fetch, a CLOSESPIDER_* limit, CloseSpider, or stop();
  // on a loop of its own in this thread (with the parse and writer threads); returns the stats.
  // RuntimeError when called twice or inside a running aio loop (use crawl()).
  const StatsCollector& run();
  // crawl(): the same, as a task of the running loop.
  aio::Task<void> crawl();
  // stop(reason): from any thread: schedule nothing more, let what is in flight finish, close
  // with finish_reason `reason`. A second call with `now` true cancels the downloads in flight.
  void stop(std::string reason = "shutdown", bool now = false);

  [[nodiscard]] const StatsCollector& stats() const noexcept { return stats_; }
  // progress(): from any thread, during or after the crawl (zeros before it).
  [[nodiscard]] Progress progress() const;
  [[nodiscard]] const Settings& settings() const noexcept { return settings_; }

 private:
  Spider& spider_;
  Settings settings_;
  StatsCollector stats_;
  std::vector<std::shared_ptr<ItemPipeline>> pipelines_;
  std::shared_ptr<SharedFrontier> shared_;
  std::function<void(std::string_view, std::string_view)> log_;
  std::shared_ptr<detail::Engine> engine_;  // set while running (guarded by engine_mu_)
  mutable std::mutex engine_mu_;
  std::atomic<bool> started_{false};
  std::string pending_stop_;  // a stop() that came before the engine existed (engine_mu_)
  bool pending_stop_now_ = false;
  mutable Progress last_progress_;  // what progress() saw last (kept after the crawl; engine_mu_)
};

}  // namespace concur::crawl
