// crawl_parse_bench: the parsing side of `concur crawl`, in pages per second — a
// deterministic ~50 KB product-listing page (make_page below; bench/compare/python_parse_bench.py
// builds the same bytes) parsed alone, parsed + extract_links (Scrapy's LinkExtractor defaults),
// the same links by scan_links (no tree),
// parsed + an item extraction by XPath and by CSS (40 items x name, URL, price), and
// canonicalize_url on a typical URL. Python's twin: parsel 1.7 / lxml on the same page.
//
// BM_SitePost* are the crawl benchmark's parsing (bench/compare/run_crawl_bench.sh) on 1 and 2
// threads, on the test site's post pages (tests/support/crawl_site.hpp, ~5 KB, 6–10 links each):
// BM_SitePostParse parses alone; BM_SitePostSpider reads each page as the benchmark's spider does —
// h1.title::text and span.author::text, then every a::attr(href) resolved against the page (what
// bench/crawl_driver.cpp and Scrapy's response.follow_all do); BM_SitePostLinks takes the links by
// extract_links() instead (Scrapy's LinkExtractor: resolution, fragments, schemes, extensions,
// uniqueness); BM_SitePostScanLinks by scan_links, without a tree (no item fields: `concur crawl`
// with no selector). Threads share nothing but the read-only pages; items_per_second is pages/s
// across the threads (real time).
#include <benchmark/benchmark.h>

#include <optional>
#include <string>
#include <vector>

#include "concur/crawl/selector.hpp"
#include "concur/crawl/url.hpp"
#include "support/crawl_site.hpp"

namespace {

using namespace concur::crawl;

// make_page(): ~50 KB of HTML shaped like a shop's listing page: head, 30 navigation links, 40
// products (each a title link, a price, a description, two tag links), pagination, a footer.
std::string make_page() {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>Products - page 3</title><link rel=\"stylesheet\" href=\"/static/site.css\">"
      "<script>var x = 1;</script></head><body>\n<header><nav><ul>\n";
  for (int i = 0; i < 30; ++i) {
    h += "<li><a href=\"/category/" + std::to_string(i) + "/\">Category " + std::to_string(i) +
         "</a></li>\n";
  }
  h += "</ul></nav></header>\n<main id=\"content\"><h1>All products</h1>\n";
  for (int i = 0; i < 40; ++i) {
    std::string n = std::to_string(i);
    h += "<div class=\"product card\" data-id=\"" + n + "\">\n  <h2 class=\"title\"><a href=\"/p/" +
         n + "?ref=list#reviews\">Product number " + n + "</a></h2>\n  <span class=\"price\">$" +
         n + ".99</span>\n  <p class=\"desc\">";
    for (int w = 0; w < 20; ++w) {
      h += "Lorem ipsum dolor sit amet, consectetur " + std::to_string((i * 7 + w) % 13) + ". ";
    }
    h += "</p>\n  <a class=\"tag\" href=\"/tag/t" + std::to_string(i % 7) +
         "\">tag</a> <a class=\"tag\" href=\"https://cdn.example.net/img/" + n +
         ".jpg\">image</a>\n</div>\n";
  }
  h += "<div class=\"pagination\">";
  for (int i = 1; i <= 10; ++i) {
    h += "<a href=\"?page=" + std::to_string(i) + "\">" + std::to_string(i) + "</a> ";
  }
  h += "</div></main>\n<footer><a href=\"mailto:shop@example.com\">mail</a> "
       "<a href=\"javascript:void(0)\">top</a> <a href=\"/about\">About</a></footer>\n"
       "</body></html>\n";
  return h;
}

const std::string& page() {
  static const std::string p = make_page();
  return p;
}

constexpr const char* kBase = "https://shop.example.com/products/?page=3";

Selector::Options options() {
  Selector::Options o;
  o.base_url = kBase;
  return o;
}

void BM_Parse(benchmark::State& state) {
  for (auto _ : state) {
    Selector s(page(), options());
    benchmark::DoNotOptimize(s.node());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(page().size()));
  state.counters["page_bytes"] = static_cast<double>(page().size());
}
BENCHMARK(BM_Parse);

// BM_ParseExtractLinks: the tree parsed, then walked for links.
void BM_ParseExtractLinks(benchmark::State& state) {
  std::size_t n = 0;
  for (auto _ : state) {
    std::vector<Link> links = extract_links(Selector(page(), options()), {});
    n = links.size();
    benchmark::DoNotOptimize(links.data());
  }
  state.counters["links"] = static_cast<double>(n);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseExtractLinks);

// BM_ScanLinks: the same links by scan_links, with no tree.
void BM_ScanLinks(benchmark::State& state) {
  std::size_t n = 0;
  for (auto _ : state) {
    std::vector<Link> links = scan_links(page(), options());
    n = links.size();
    benchmark::DoNotOptimize(links.data());
  }
  state.counters["links"] = static_cast<double>(n);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ScanLinks);

void BM_ParseItemsXPath(benchmark::State& state) {
  for (auto _ : state) {
    Selector s(page(), options());
    std::size_t items = 0;
    for (const Selector& product : s.xpath("//div[contains(@class, 'product')]")) {
      auto name = product.xpath("./h2/a/text()").get();
      auto url = product.xpath("./h2/a/@href").get();
      auto price = product.xpath("./span[@class='price']/text()").get();
      benchmark::DoNotOptimize(name);
      benchmark::DoNotOptimize(url);
      benchmark::DoNotOptimize(price);
      ++items;
    }
    benchmark::DoNotOptimize(items);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseItemsXPath);

void BM_ParseItemsCss(benchmark::State& state) {
  for (auto _ : state) {
    Selector s(page(), options());
    for (const Selector& product : s.css("div.product")) {
      auto name = product.css("h2 a::text").get();
      auto url = product.css("h2 a::attr(href)").get();
      auto price = product.css(".price::text").get();
      benchmark::DoNotOptimize(name);
      benchmark::DoNotOptimize(url);
      benchmark::DoNotOptimize(price);
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseItemsCss);

void BM_CanonicalizeUrl(benchmark::State& state) {
  for (auto _ : state) {
    std::string c = canonicalize_url(
        "https://Shop.Example.com:443/p/17/../18?utm_source=x&ref=list&q=caf%C3%A9#reviews");
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CanonicalizeUrl);

// ---- the crawl benchmark's pages

constexpr const char* kSiteOrigin = "http://127.0.0.1:8080";
// kSitePages: distinct post pages cycled through (their links differ by a hash of N).
constexpr int kSitePages = 200;

struct SitePage {
  std::string url;
  std::string html;
};

const std::vector<SitePage>& site_pages() {
  static const std::vector<SitePage> pages = [] {
    concur::testing::CrawlSiteOptions options;  // the benchmark's site: 2000 posts, ~5 KB each
    std::vector<SitePage> out;
    for (int n = 1; n <= kSitePages; ++n) {
      out.push_back({std::string(kSiteOrigin) + "/post/" + std::to_string(n),
                     concur::testing::CrawlSite::post_page(n, options, kSiteOrigin)});
    }
    return out;
  }();
  return pages;
}

// site_post(state, follow): parses pages round-robin (each thread from its own offset), takes the
// two item fields and the page's links by `follow`; counts pages and links.
template <class Follow>
void site_post(benchmark::State& state, Follow follow) {
  const std::vector<SitePage>& pages = site_pages();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 37;
  std::size_t links = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    const SitePage& p = pages[i++ % pages.size()];
    Selector::Options o;
    o.base_url = p.url;
    Selector page(p.html, o);
    std::optional<std::string> title = page.css("h1.title::text").get();
    std::optional<std::string> author = page.css("span.author::text").get();
    benchmark::DoNotOptimize(title);
    benchmark::DoNotOptimize(author);
    links += follow(page);
    bytes += p.html.size();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["links_per_page"] =
      benchmark::Counter(static_cast<double>(links) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
}

// BM_SitePostParse: the parse alone (what the reads below add to it).
void BM_SitePostParse(benchmark::State& state) {
  const std::vector<SitePage>& pages = site_pages();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 37;
  for (auto _ : state) {
    const SitePage& p = pages[i++ % pages.size()];
    Selector::Options o;
    o.base_url = p.url;
    Selector page(p.html, o);
    benchmark::DoNotOptimize(page.node());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SitePostParse)->Threads(1)->Threads(2)->UseRealTime();

void BM_SitePostSpider(benchmark::State& state) {
  site_post(state, [](const Selector& page) {
    std::size_t n = 0;
    for (const std::string& href : page.css("a::attr(href)").getall()) {
      std::string url = page.urljoin(href);
      benchmark::DoNotOptimize(url.data());
      ++n;
    }
    return n;
  });
}
BENCHMARK(BM_SitePostSpider)->Threads(1)->Threads(2)->UseRealTime();

void BM_SitePostLinks(benchmark::State& state) {
  site_post(state, [](const Selector& page) { return extract_links(page).size(); });
}
BENCHMARK(BM_SitePostLinks)->Threads(1)->Threads(2)->UseRealTime();

// BM_SitePostScanLinks: what `concur crawl` does with no --extract or --follow selector — the
// links by scan_links, no tree, no item fields.
void BM_SitePostScanLinks(benchmark::State& state) {
  const std::vector<SitePage>& pages = site_pages();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 37;
  std::size_t links = 0;
  for (auto _ : state) {
    const SitePage& p = pages[i++ % pages.size()];
    Selector::Options o;
    o.base_url = p.url;
    links += scan_links(p.html, o).size();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["links_per_page"] =
      benchmark::Counter(static_cast<double>(links) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_SitePostScanLinks)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
