// crawl_driver — the crawl benchmark's library-level row (issue 14, "Benchmarks"): crawl::Crawler
// run directly on one Spider, with the command line of `concur crawl` that the benchmark uses, so
// bench/compare/run_crawl_bench.sh drives both the same way:
//
//   crawl_driver URL... [-s NAME=VALUE]... [-o FILE.jsonl] [--stats-json FILE] [--fanout N]
//
// The spider is the tests' SiteSpider (tests/crawl/crawler_test.cpp) and the CLI's default work:
// it follows every a::attr(href) within the start URLs' hosts (allowed_domains), and makes one
// item {url, title, author} of each page where h1.title::text or span.author::text matched. Items
// go to FILE.jsonl (JSON Lines, written on the crawler's writer thread); the Scrapy-named stats to
// --stats-json as one JSON object. --fanout N: each page also yields N requests of its own that no
// page links to (/frontier/<page>/<i> on the page's origin, priority -1, 404s if fetched) — with
// CLOSESPIDER_PAGECOUNT, a frontier of pages x N queued requests, for its peak RSS in memory and
// with a JOBDIR (docs/benchmarks.md, "crawl"). Exit 0 when the crawl finished (whatever it met), 1
// on a setup error (a bad setting, an unwritable file).
#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <exception>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "concur/crawl/crawler.hpp"
#include "concur/crawl/url.hpp"

namespace {

namespace crawl = concur::crawl;

// SiteSpider: follow every link, scrape title + author where they are.
class SiteSpider : public crawl::Spider {
 public:
  SiteSpider(std::vector<std::string> urls, int fanout) : crawl::Spider("site"), fanout_(fanout) {
    for (const std::string& url : urls) allowed_domains.push_back(crawl::url_host(url));
    start_urls = std::move(urls);
  }
  void parse(const crawl::Response& response, crawl::Output& out) override {
    std::optional<std::string> title = response.css("h1.title::text").get();
    std::optional<std::string> author = response.css("span.author::text").get();
    if (title || author) {
      crawl::Item item;
      item["url"] = response.url;
      if (title) item["title"] = std::move(*title);
      if (author) item["author"] = std::move(*author);
      out.yield(std::move(item));
    }
    for (const std::string& href : response.css("a::attr(href)").getall()) {
      out.yield(response.follow(href));
    }
    if (fanout_ > 0) {
      // Parse threads call parse() at once: each page takes its own number.
      const std::string base = crawl::url_origin(response.url) + "/frontier/" +
                               std::to_string(pages_.fetch_add(1) + 1) + "/";
      for (int i = 0; i < fanout_; ++i) {
        crawl::Request extra(base + std::to_string(i));
        extra.priority = -1;  // behind the site's pages: they pile up while the site is crawled
        out.yield(std::move(extra));
      }
    }
  }

 private:
  int fanout_;
  std::atomic<long> pages_{0};
};

// JsonLinesWriter: each item as one line of JSON (the writer thread is its only caller).
class JsonLinesWriter : public crawl::ItemPipeline {
 public:
  explicit JsonLinesWriter(const std::string& path) : out_(path, std::ios::trunc) {
    if (!out_) throw concur::RuntimeError("cannot write " + path);
  }
  void process_item(crawl::Item& item, crawl::Spider& /*spider*/) override {
    out_ << item.dump() << '\n';
  }
  void close_spider(crawl::Spider& /*spider*/) override { out_.flush(); }

 private:
  std::ofstream out_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("crawl_driver: crawl::Crawler on the benchmark's spider");
  std::vector<std::string> urls;
  std::vector<std::string> assignments;
  std::string items_path;
  std::string stats_path;
  app.add_option("url", urls, "start URLs")->required();
  app.add_option("-s", assignments, "a setting, NAME=VALUE (Scrapy's names)");
  app.add_option("-o", items_path, "items as JSON Lines");
  app.add_option("--stats-json", stats_path, "the final stats as JSON");
  int fanout = 0;
  app.add_option("--fanout", fanout, "requests of its own each page yields (a frontier to fill)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    crawl::Settings settings;
    for (const std::string& a : assignments) settings.set(a);
    SiteSpider spider(urls, fanout);
    crawl::Crawler crawler(spider, settings);
    if (!items_path.empty()) crawler.add_pipeline(std::make_shared<JsonLinesWriter>(items_path));
    const crawl::StatsCollector& stats = crawler.run();
    if (!stats_path.empty()) {
      std::ofstream out(stats_path, std::ios::trunc);
      out << stats.get_stats().dump(2) << '\n';
      if (!out) throw concur::RuntimeError("cannot write " + stats_path);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crawl_driver: %s\n", e.what());
    return 1;
  }
  return 0;
}
