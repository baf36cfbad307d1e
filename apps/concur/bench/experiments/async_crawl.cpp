// bench/experiments/async_crawl.cpp — the async_crawl experiment: rows "serial", "threads 10",
// "producer/consumer", "coroutines (Semaphore 10)", "concur crawl (CONCURRENT_REQUESTS 10)", and
// their Python twins "python serial", "python threads 10", "python producer/consumer", "python
// asyncio (Semaphore 10)", "python scrapy (CONCURRENT_REQUESTS 10)", each fetching the 50 pages of
// a fresh local test site served by SiteThread.
//
// The C++ rows share one HTTP client, blog::http_get (aio streams + Boost.Beast's parser, one
// connection per page as the notes' one aiohttp session per URL), so that they differ only in how
// the waits overlap:
// - serial: one aio::run whose task awaits the 50 GETs one after another;
// - threads 10: a ThreadPoolExecutor(10) whose tasks each make one blocking GET. The simplest
//   honest blocking GET here is aio::run(http_get(...)) on the worker: the worker thread sits in a
//   private one-task event loop until its page has arrived, as a thread sits in a blocking
//   recv() (urllib's socket in the Python twin). Creating that loop costs microseconds against a
//   delay of milliseconds;
// - producer/consumer: the notes' pipeline (seed 004, "生产者消费者爬虫"; example 25): the main
//   thread fills a Queue<std::string> url_queue; 10 craw threads each take a URL, make the same
//   blocking GET as the threads row and put the HTML in html_queue; 2 parse threads take the HTML
//   and count its <p> (a real, cheap parse). shutdown() cascades down the pipeline (Python 3.13):
//   url_queue once the URLs are in, html_queue once every craw thread has returned;
// - coroutines (Semaphore 10): one aio::run, a task per URL created at once, each holding a permit
//   of aio::Semaphore(10) around its GET (`async with semaphore:`), all awaited with aio::wait.
// The engine row uses the crawler's own downloader instead (libcurl on its aio loop):
// - concur crawl (CONCURRENT_REQUESTS 10): a crawl::Spider whose start_urls are the 50 pages,
//   CONCURRENT_REQUESTS = CONCURRENT_REQUESTS_PER_DOMAIN = 10, ROBOTSTXT_OBEY off (the site would
//   answer /robots.txt with a 404 after its delay: one request more), run by Crawler::run() on a
//   loop of its own with 2 parse threads; parse() records each body's length.
// Each row is timed around its work only: the pool's creation and shutdown, aio::run's loop, the
// threads' start and join, the crawler's construction and run, are included; the site's start and
// stop are not.
#include "bench/experiments/async_crawl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/experiment.hpp"
#include "bench/python.hpp"
#include "concur/aio.hpp"
#include "concur/crawl/crawler.hpp"
#include "concur/errors.hpp"
#include "concur/future.hpp"
#include "concur/queue.hpp"
#include "concur/thread.hpp"
#include "concur/thread_pool.hpp"
#include "embedded/kAsyncCrawlPy.hpp"
#include "site/blog_site.hpp"

namespace concur::apps::bench {
namespace {

namespace crawl = ::concur::crawl;  // not concur::apps::crawl, the `concur crawl` command
using std::chrono::milliseconds;

constexpr std::string_view kName = "async_crawl";
constexpr std::string_view kUnit = "pages";
constexpr milliseconds kQuickDelay{5};
constexpr milliseconds kDefaultDelay{50};
constexpr milliseconds kFullDelay{100};  // the site's own default, the examples' delay
// kWholeShare: a page arrived whole when its body has at least this share of kCrawlPageBytes.
constexpr double kWholeShare = 0.9;
// kParseThreads: the notes' two parse threads (producer/consumer), the crawler's PARSE_THREADS.
constexpr int kParseThreads = 2;
// kSiteTimeout bounds starting the site, and waiting for its connections to close.
constexpr std::chrono::seconds kSiteTimeout{10};
// aio::run without its Ctrl-C handling: a Ctrl-C during `concur bench` ends it as before.
constexpr aio::RunOptions kRunOptions{.handle_sigint = false};

// what_of(e): the message of an exception_ptr.
std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

// Crawl: what one row fetched: each page's body length in URL order (-1: the GET failed), the
// first failure, and what fetched it (for the note).
// skipped: why the row could not run (an optional Python module missing), else empty.
struct Crawl {
  std::vector<std::int64_t> sizes =
      std::vector<std::int64_t>(static_cast<std::size_t>(kCrawlPages), -1);
  std::string first_error;
  std::string client;
  std::string skipped;
  double seconds = 0.0;

  void fail(std::string_view url, std::string_view what) {
    if (first_error.empty()) first_error = fmt::format("{}: {}", url, what);
  }
};

// SharedFailures: Crawl::fail for rows whose threads fail concurrently.
class SharedFailures {
 public:
  explicit SharedFailures(Crawl* crawl) : crawl_(crawl) {}
  void fail(std::string_view url, std::string_view what) {
    std::lock_guard lock(mu_);
    crawl_->fail(url, what);
  }

 private:
  std::mutex mu_;
  Crawl* crawl_;  // its first_error is guarded by mu_ while the row runs
};

// ---- the site, on a loop of its own thread ----------------------------------------------------

// SiteSlot: the site being served; touched on the site's loop thread only.
struct SiteSlot {
  std::optional<blog::Site> site;
};

aio::Task<std::uint16_t> open_site(SiteSlot* slot, blog::SiteOptions options) {
  slot->site.emplace(co_await blog::Site::start(options));
  co_return slot->site->port();
}

aio::Task<blog::Stats> close_site(SiteSlot* slot) {
  if (!slot->site) co_return blog::Stats{};
  blog::Site site = std::move(*slot->site);
  slot->site.reset();
  const blog::Stats stats = site.stats();
  site.close();
  try {
    co_await aio::timeout(kSiteTimeout, site.wait_closed());
  } catch (const TimeoutError&) {
    // A connection is still open (a client gave up mid-page): the loop's close ends it.
  }
  co_return stats;
}

// SiteThread: blog::Site served by an event loop on a thread of its own (aio::LoopGroup(1)), so
// that every row — a loop on the calling thread, pool workers, a Python process — reaches it
// while it serves. serve(options) starts a fresh site (stopping the previous one: its Stats start
// from zero) and returns its port; stop() closes it and returns what it saw. Both block the
// caller, bounded by kSiteTimeout (TimeoutError beyond). The destructor stops the site and the
// loop.
class SiteThread {
 public:
  SiteThread() = default;
  ~SiteThread() {
    try {
      (void)stop();
    } catch (const std::exception&) {
      // The group's destructor cancels whatever still runs on the loop.
    }
  }
  SiteThread(const SiteThread&) = delete;
  SiteThread& operator=(const SiteThread&) = delete;

  std::uint16_t serve(blog::SiteOptions options) {
    (void)stop();
    return aio::run_coroutine_threadsafe(open_site(&slot_, options), group_.loop())
        .result(kSiteTimeout);
  }
  blog::Stats stop() {
    return aio::run_coroutine_threadsafe(close_site(&slot_), group_.loop())
        .result(2 * kSiteTimeout);
  }

 private:
  SiteSlot slot_;  // declared before group_: destroyed after the loop was stopped and closed
  aio::LoopGroup group_{1};
};

// ---- the C++ rows -----------------------------------------------------------------------------

std::vector<std::string> targets() {
  std::vector<std::string> out;
  for (int n = 1; n <= kCrawlPages; ++n) out.push_back(fmt::format("/sitehome/p/{}", n));
  return out;
}

// page_index(url): the index in targets() of a URL or target ending in /sitehome/p/<n>, or
// nullopt for any other.
std::optional<std::size_t> page_index(std::string_view url) {
  constexpr std::string_view kPrefix = "/sitehome/p/";
  const std::size_t at = url.rfind(kPrefix);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view digits = url.substr(at + kPrefix.size());
  if (digits.empty() || digits.size() > 4 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int n = std::stoi(std::string(digits));
  if (n < 1 || n > kCrawlPages) return std::nullopt;
  return static_cast<std::size_t>(n - 1);
}

// get_html(port, target): blog::http_get bounded by kCrawlGetTimeout; the body.
aio::Task<std::string> get_html(std::uint16_t port, std::string target) {
  co_return co_await aio::timeout(kCrawlGetTimeout, blog::http_get(port, std::move(target)));
}

// get_page(port, target): get_html's body length.
aio::Task<std::size_t> get_page(std::uint16_t port, std::string target) {
  const std::string body = co_await get_html(port, std::move(target));
  co_return body.size();
}

aio::Task<void> crawl_serial(std::uint16_t port, Crawl* out) {
  const std::vector<std::string> urls = targets();
  for (std::size_t i = 0; i < urls.size(); ++i) {
    try {
      out->sizes[i] = static_cast<std::int64_t>(co_await get_page(port, urls[i]));
    } catch (const CancelledError&) {
      throw;
    } catch (const std::exception& e) {
      out->fail(urls[i], e.what());
    }
  }
}

Crawl run_serial(std::uint16_t port) {
  Crawl crawl;
  crawl.seconds = seconds_of([&] { aio::run(crawl_serial(port, &crawl), kRunOptions); });
  return crawl;
}

// blocking_get(port, target): one GET that blocks the calling thread (see the file comment).
std::size_t blocking_get(std::uint16_t port, const std::string& target) {
  return aio::run(get_page(port, target), kRunOptions);
}

// run_threads: `with ThreadPoolExecutor(n) as pool:` one blocking GET per URL.
Crawl run_threads(std::uint16_t port, unsigned n) {
  Crawl crawl;
  crawl.client = "each GET blocks its worker (aio::run)";
  const std::vector<std::string> urls = targets();
  crawl.seconds = seconds_of([&] {
    ThreadPoolExecutor pool(n);
    std::vector<Future<std::size_t>> futures;
    futures.reserve(urls.size());
    for (const std::string& url : urls) futures.push_back(pool.submit(blocking_get, port, url));
    for (std::size_t i = 0; i < futures.size(); ++i) {
      try {
        crawl.sizes[i] = static_cast<std::int64_t>(futures[i].result());
      } catch (const std::exception& e) {
        crawl.fail(urls[i], e.what());
      }
    }
  });
  return crawl;
}

// PageHtml: what a craw thread puts in html_queue: the page's URL and its HTML.
struct PageHtml {
  std::string url;
  std::string html;
};

// count_paragraphs(html): the parse of the producer/consumer row: how many <p> the page has.
std::int64_t count_paragraphs(std::string_view html) {
  std::int64_t n = 0;
  for (std::size_t at = html.find("<p>"); at != std::string_view::npos;
       at = html.find("<p>", at + 3)) {
    ++n;
  }
  return n;
}

// run_producer_consumer: the notes' url_queue -> craw threads -> html_queue -> parse threads.
Crawl run_producer_consumer(std::uint16_t port) {
  Crawl crawl;
  SharedFailures failures(&crawl);
  std::atomic<std::int64_t> paragraphs{0};
  const std::vector<std::string> urls = targets();
  // do_craw: 生产者线程. A failed GET is recorded, the thread goes on with the next URL.
  auto do_craw = [&](Queue<std::string>& url_queue, Queue<PageHtml>& html_queue) {
    while (true) {
      std::string url;
      try {
        url = url_queue.get();
      } catch (const ShutDown&) {
        return;  // url_queue shut down and drained
      }
      std::string html;
      try {
        html = aio::run(get_html(port, url), kRunOptions);  // blocks, as the threads row
      } catch (const std::exception& e) {
        failures.fail(url, e.what());
        continue;
      }
      html_queue.put(PageHtml{std::move(url), std::move(html)});
    }
  };
  // do_parse: 消费者线程. Each page's slot in sizes is written by the one thread that got it.
  auto do_parse = [&](Queue<PageHtml>& html_queue) {
    while (true) {
      PageHtml page;
      try {
        page = html_queue.get();
      } catch (const ShutDown&) {
        return;  // html_queue shut down and drained
      }
      paragraphs.fetch_add(count_paragraphs(page.html), std::memory_order_relaxed);
      if (const auto i = page_index(page.url)) {
        crawl.sizes[*i] = static_cast<std::int64_t>(page.html.size());
      } else {
        failures.fail(page.url, "not a page of the site");
      }
    }
  };
  crawl.seconds = seconds_of([&] {
    Queue<std::string> url_queue;
    Queue<PageHtml> html_queue;
    // Declared after the queues: on an exception the threads are joined (their destructors)
    // before the queues, which the catch below has shut down so that every thread returns.
    std::vector<Thread> parsers;
    std::vector<Thread> crawlers;
    try {
      for (const std::string& url : urls) url_queue.put(url);  // 主线程将数据放进队列
      url_queue.shutdown();  // the craw threads drain it, then get() throws ShutDown
      parsers.reserve(static_cast<std::size_t>(kParseThreads));
      for (int i = 0; i < kParseThreads; ++i) {
        parsers.emplace_back(Thread::Options{.name = fmt::format("parse{}", i)}, do_parse,
                             std::ref(html_queue));
        parsers.back().start();
      }
      crawlers.reserve(static_cast<std::size_t>(kCrawlLimit));
      for (int i = 0; i < kCrawlLimit; ++i) {
        crawlers.emplace_back(Thread::Options{.name = fmt::format("craw{}", i)}, do_craw,
                              std::ref(url_queue), std::ref(html_queue));
        crawlers.back().start();
      }
      for (Thread& t : crawlers) t.join();  // every page is in html_queue now
      html_queue.shutdown();                // the parse threads drain it, then return
      for (Thread& t : parsers) t.join();
    } catch (...) {
      url_queue.shutdown(/*immediate=*/true);
      html_queue.shutdown(/*immediate=*/true);
      throw;
    }
  });
  crawl.client = fmt::format(
      "{} craw threads (blocking GET) -> html_queue -> {} parse threads, "
      "{} <p> counted",
      kCrawlLimit, kParseThreads, paragraphs.load());
  return crawl;
}

// craw_limited: the notes' `async def async_craw(url): async with semaphore: ...`.
aio::Task<std::size_t> craw_limited(aio::Semaphore* semaphore, std::uint16_t port,
                                    std::string target) {
  auto permit = co_await semaphore->scoped();
  co_return co_await get_page(port, std::move(target));
}

aio::Task<void> crawl_semaphore(std::uint16_t port, Crawl* out) {
  const std::vector<std::string> urls = targets();
  aio::Semaphore semaphore(kCrawlLimit);
  std::vector<aio::Task<std::size_t>> tasks;
  tasks.reserve(urls.size());
  for (const std::string& url : urls) {
    tasks.push_back(aio::create_task(craw_limited(&semaphore, port, url)));
  }
  (void)co_await aio::wait(tasks);  // loop.run_until_complete(asyncio.wait(tasks))
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (const std::exception_ptr e = tasks[i].exception()) {
      out->fail(urls[i], what_of(e));
    } else {
      out->sizes[i] = static_cast<std::int64_t>(tasks[i].result());
    }
  }
}

Crawl run_coroutines(std::uint16_t port) {
  Crawl crawl;
  crawl.seconds = seconds_of([&] { aio::run(crawl_semaphore(port, &crawl), kRunOptions); });
  return crawl;
}

// BlogSpider: the 50 pages as start_urls; parse() records each body's length (parse threads run
// it concurrently: each page's slot is written once, a failure goes through SharedFailures).
class BlogSpider final : public crawl::Spider {
 public:
  BlogSpider(std::uint16_t port, Crawl* out, SharedFailures* failures)
      : crawl::Spider("blog"), out_(out), failures_(failures) {
    for (const std::string& target : targets()) {
      start_urls.push_back(fmt::format("http://127.0.0.1:{}{}", port, target));
    }
    errback("failed", [this](const crawl::Failure& failure, crawl::Output& /*out*/) {
      failures_->fail(failure.request.url, failure.message);
    });
  }
  [[nodiscard]] std::vector<crawl::Request> start_requests() override {
    std::vector<crawl::Request> requests = crawl::Spider::start_requests();
    for (crawl::Request& r : requests) r.errback = "failed";
    return requests;
  }
  void parse(const crawl::Response& response, crawl::Output& /*out*/) override {
    if (const auto i = page_index(response.url)) {
      out_->sizes[*i] = static_cast<std::int64_t>(response.body.size());
    } else {
      failures_->fail(response.url, "not a page of the site");
    }
  }

 private:
  Crawl* out_;
  SharedFailures* failures_;
};

// run_crawler: the crawler engine on the 50 pages, Scrapy's settings for ten in flight.
Crawl run_crawler(std::uint16_t port) {
  Crawl crawl;
  SharedFailures failures(&crawl);
  BlogSpider spider(port, &crawl, &failures);
  crawl::Settings settings;
  settings.concurrent_requests = kCrawlLimit;
  settings.concurrent_requests_per_domain = kCrawlLimit;
  settings.robotstxt_obey = false;
  settings.download_timeout = static_cast<double>(kCrawlGetTimeout.count());
  settings.parse_threads = kParseThreads;
  settings.log_level = "NONE";
  settings.logstats_interval = 0;
  std::int64_t requests = 0;
  crawl.seconds = seconds_of([&] {
    crawl::Crawler crawler(spider, settings);
    requests = crawler.run().get_int("downloader/request_count");
  });
  const std::string curl = crawl::curl_version_text();
  crawl.client = fmt::format("crawl::Crawler on {}, {} parse threads; {} requests",
                             curl.substr(0, curl.find(' ')), kParseThreads, requests);
  return crawl;
}

// ---- the Python rows --------------------------------------------------------------------------

// run_python_mode runs bench/compare/async_crawl.py against the site on `port`.
Crawl run_python_mode(const PythonInfo& python, std::string_view mode, std::uint16_t port,
                      milliseconds delay) {
  // The whole script's bound: four times the serial crawl's delays, plus start-up slack.
  const double deadline = 20.0 + 4.0 * kCrawlPages * std::chrono::duration<double>(delay).count();
  const nlohmann::json j = run_python(
      python, embedded::kAsyncCrawlPy,
      {"--port", std::to_string(port), "--mode", std::string(mode), "--pages",
       std::to_string(kCrawlPages), "--workers", std::to_string(kCrawlLimit), "--parsers",
       std::to_string(kParseThreads), "--limit", std::to_string(kCrawlLimit), "--timeout",
       std::to_string(kCrawlGetTimeout.count()), "--deadline", fmt::format("{:.0f}", deadline)});
  try {
    Crawl crawl;
    if (j.contains("skipped")) {  // an optional module (scrapy) is not importable
      crawl.skipped = j.at("skipped").get<std::string>();
      return crawl;
    }
    const auto sizes = j.at("sizes").get<std::vector<std::int64_t>>();
    if (sizes.size() != crawl.sizes.size()) {
      throw std::runtime_error(
          fmt::format("async_crawl.py: {} sizes for {} pages", sizes.size(), kCrawlPages));
    }
    crawl.sizes = sizes;
    const auto errors = j.at("errors").get<std::vector<std::string>>();
    if (!errors.empty()) crawl.first_error = errors.front();
    crawl.client = j.at("client").get<std::string>();
    crawl.seconds = j.at("seconds").get<double>();
    return crawl;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("async_crawl.py printed unexpected JSON: {}", e.what()));
  }
}

// ---- rows -------------------------------------------------------------------------------------

std::string answer_text(std::size_t whole) { return fmt::format("{} pages whole", whole); }

Row make_row(std::string mode, std::string language, unsigned workers, const Crawl& crawl,
             const blog::Stats& stats, milliseconds delay) {
  Row row;
  row.experiment = std::string(kName);
  row.mode = std::move(mode);
  row.language = std::move(language);
  row.workers = workers;
  row.baseline = row.mode.find("serial") != std::string::npos;
  row.items = static_cast<std::size_t>(kCrawlPages);
  row.full_items = row.items;
  row.unit = std::string(kUnit);
  row.seconds = crawl.seconds;
  if (!crawl.skipped.empty()) {
    row.skipped = true;
    row.answer = "skipped";
    row.expected = answer_text(row.items);
    row.note = "skipped: " + crawl.skipped;
    return row;
  }
  const auto min_bytes =
      static_cast<std::int64_t>(kWholeShare * static_cast<double>(kCrawlPageBytes));
  const auto whole = static_cast<std::size_t>(std::count_if(
      crawl.sizes.begin(), crawl.sizes.end(), [&](std::int64_t n) { return n >= min_bytes; }));
  row.answer = answer_text(whole);
  row.expected = answer_text(row.items);
  row.note = fmt::format("{}site: {} per page, ≤ {} in flight",
                         crawl.client.empty() ? std::string() : crawl.client + "; ",
                         format_seconds(std::chrono::duration<double>(delay).count()),
                         stats.most_in_flight);
  if (!crawl.first_error.empty()) row.note += "; first failure: " + crawl.first_error;
  return row;
}

// delay_of(config): the site's answer delay, the stand-in for the network's latency.
milliseconds delay_of(const BenchConfig& config) {
  switch (config.size) {
    case Size::kQuick:
      return kQuickDelay;
    case Size::kFull:
      return kFullDelay;
    case Size::kDefault:
      break;
  }
  // The 50 serial GETs of a Python row should fit its budget.
  const auto fit = std::chrono::duration_cast<milliseconds>(
      std::chrono::duration<double>(config.python_budget_seconds / kCrawlPages));
  return std::clamp(fit, milliseconds(1), kDefaultDelay);
}

// Mode: one row to measure against the site on `port`.
struct Mode {
  std::string name;
  std::string language;
  unsigned workers = 1;
  std::function<Crawl(std::uint16_t port)> crawl;
};

class AsyncCrawlExperiment final : public Experiment {
 public:
  [[nodiscard]] std::string_view name() const override { return kName; }
  [[nodiscard]] std::string_view description() const override {
    return "the blog crawl, 50 x ~70 KB from a local test site: serial, ThreadPoolExecutor(10), "
           "producer/consumer (10 craw + 2 parse threads, two Queues), coroutines under "
           "Semaphore(10), the concur crawl engine (CONCURRENT_REQUESTS 10); urllib, queue.Queue, "
           "asyncio/aiohttp and Scrapy (seed 004, issues 12, 14)";
  }

  [[nodiscard]] std::vector<Row> run(const BenchConfig& config) const override {
    const milliseconds delay = delay_of(config);
    const blog::SiteOptions site_options{
        .pages = kCrawlPages, .page_bytes = kCrawlPageBytes, .delay = delay};
    const auto limit = static_cast<unsigned>(kCrawlLimit);
    const std::string semaphore = fmt::format("(Semaphore {})", kCrawlLimit);
    const std::string engine = fmt::format("(CONCURRENT_REQUESTS {})", kCrawlLimit);
    const auto pipeline_threads = static_cast<unsigned>(kCrawlLimit + kParseThreads);

    std::vector<Mode> cpp_modes = {
        {"serial", "c++", 1, run_serial},
        {fmt::format("threads {}", limit), "c++", limit,
         [](std::uint16_t port) { return run_threads(port, static_cast<unsigned>(kCrawlLimit)); }},
        {"producer/consumer", "c++", pipeline_threads, run_producer_consumer},
        {"coroutines " + semaphore, "c++", limit, run_coroutines},
        {"concur crawl " + engine, "c++", limit, run_crawler},
    };
    std::vector<Mode> python_modes;
    if (config.python) {
      const PythonInfo py = *config.python;
      auto python_mode = [py, delay](const std::string& mode) {
        return [py, delay, mode](std::uint16_t port) {
          return run_python_mode(py, mode, port, delay);
        };
      };
      python_modes = {
          {"python serial", "python", 1, python_mode("serial")},
          {fmt::format("python threads {}", limit), "python", limit, python_mode("threads")},
          {"python producer/consumer", "python", pipeline_threads,
           python_mode("producer_consumer")},
          {"python asyncio " + semaphore, "python", limit, python_mode("asyncio")},
          {"python scrapy " + engine, "python", limit, python_mode("scrapy")},
      };
    }

    SiteThread site;
    std::vector<Row> rows;
    auto measure = [&](const Mode& m) {
      config.report_progress(
          fmt::format("async_crawl: {}, {} pages, {} delay each", m.name, kCrawlPages,
                      format_seconds(std::chrono::duration<double>(delay).count())));
      const std::uint16_t port = site.serve(site_options);
      const Crawl crawl = m.crawl(port);
      const blog::Stats stats = site.stop();
      rows.push_back(make_row(m.name, m.language, m.workers, crawl, stats, delay));
    };
    for (const Mode& m : cpp_modes) measure(m);
    try {
      for (const Mode& m : python_modes) measure(m);
    } catch (const std::exception& e) {
      throw ExperimentError(e.what(), std::move(rows));  // keep the C++ rows
    }
    return rows;
  }
};

}  // namespace

std::unique_ptr<Experiment> make_async_crawl_experiment() {
  return std::make_unique<AsyncCrawlExperiment>();
}

}  // namespace concur::apps::bench
