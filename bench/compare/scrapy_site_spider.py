"""Scrapy's row of the crawl benchmark (bench/compare/run_crawl_bench.sh): the spider that does
the work of bench/crawl_driver.cpp's SiteSpider and of `concur crawl URL --extract
title=h1.title::text --extract author=span.author::text`: fetch every page reachable from the
start URL within its host, obey robots.txt, follow every <a href>, and make one item {url, title,
author} of each page where h1.title::text or span.author::text matched.

Run with Debian's Scrapy (python3-scrapy 2.8; not PyPI):
    /usr/bin/python3 -m scrapy runspider bench/compare/scrapy_site_spider.py \
        -a start_url=http://127.0.0.1:PORT/ -a stats_json=stats.json -O items.jsonl \
        [-s CONCURRENT_REQUESTS=16 -s CONCURRENT_REQUESTS_PER_DOMAIN=16 ...]
stats_json (optional) receives Scrapy's final stats as one JSON object, so the benchmark reads the
crawler's own counts (response_received_count, item_scraped_count, ...) as it does concur's.
"""

import json
from urllib.parse import urlsplit

import scrapy


class SiteSpider(scrapy.Spider):
    name = "site"
    # The benchmark's settings; `-s NAME=VALUE` on the command line overrides them.
    custom_settings = {
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        "ROBOTSTXT_OBEY": True,
        "LOG_LEVEL": "INFO",
        "TELNETCONSOLE_ENABLED": False,  # no listening port of its own
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",  # 2.8's deprecation warning otherwise
    }

    def __init__(self, start_url, stats_json=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_urls = [start_url]
        self.allowed_domains = [urlsplit(start_url).hostname]
        self.stats_json = stats_json

    def parse(self, response):
        title = response.css("h1.title::text").get()
        author = response.css("span.author::text").get()
        if title is not None or author is not None:
            item = {"url": response.url}
            if title is not None:
                item["title"] = title
            if author is not None:
                item["author"] = author
            yield item
        yield from response.follow_all(css="a")

    def closed(self, reason):
        if self.stats_json:
            # Scrapy's StatsCollector holds datetimes (start_time, finish_time): str() them.
            # finish_reason is set after closed() runs, so add it here.
            stats = dict(self.crawler.stats.get_stats())
            stats.setdefault("finish_reason", reason)
            with open(self.stats_json, "w", encoding="utf-8") as out:
                json.dump(stats, out, default=str, indent=2, sort_keys=True)
