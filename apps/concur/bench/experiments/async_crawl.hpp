// bench/experiments/async_crawl.hpp — the notes' blog crawl (seed 004, "python 异步IO实现并发爬虫"
// and "在异步IO中使用信号量控制爬虫并发度"; examples 66, 67; issues 12, 14): 50 pages of ~70 KB
// fetched one after another, on a thread pool, by the notes' producer/consumer pipeline (10 craw
// threads -> html_queue -> 2 parse threads), as coroutines under a Semaphore(10), and by the crawl
// engine (crawl::Crawler, CONCURRENT_REQUESTS 10), in C++ and in Python
// (bench/compare/async_crawl.py: urllib, queue.Queue threads, asyncio, Scrapy — a row whose module
// is missing is marked skipped).
//
// The blog is concur's local test site (apps/concur/site/blog_site.hpp) on 127.0.0.1, which the
// experiment serves from an event loop on a thread of its own (aio::LoopGroup(1)) for as long as
// it runs, the Python rows included; a fresh site per row, so each row's note can say how many
// requests the site had in flight at most. Each page is answered after a fixed delay that stands
// for the network's latency (the notes crawl the real cnblogs.com): 50 ms by default (capped so
// that the 50 serial GETs fit --python-budget), 5 ms with --quick, 100 ms with --full. No traffic
// leaves the machine. Every GET is bounded (kCrawlGetTimeout), every Python row too.
// A row's answer counts the pages that arrived whole (a body of at least 90 % of kCrawlPageBytes).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// kCrawlPages pages of about kCrawlPageBytes each: the notes' 50 blog pages of ~70 KB.
inline constexpr int kCrawlPages = 50;
inline constexpr std::size_t kCrawlPageBytes = 70'000;
// kCrawlLimit: the notes' asyncio.Semaphore(10); the thread rows use as many workers (the
// producer/consumer row as many craw threads), the crawl rows CONCURRENT_REQUESTS = kCrawlLimit,
// so every concurrent row is compared at the same number of requests in flight.
inline constexpr int kCrawlLimit = 10;
// kCrawlGetTimeout bounds one GET (beyond it the page counts as not fetched).
inline constexpr std::chrono::seconds kCrawlGetTimeout{10};

// make_async_crawl_experiment() is the experiment, for the registry.
[[nodiscard]] std::unique_ptr<Experiment> make_async_crawl_experiment();

}  // namespace concur::apps::bench
