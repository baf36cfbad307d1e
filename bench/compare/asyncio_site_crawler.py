#!/usr/bin/env python3
"""Plain asyncio's row of the crawl benchmark (bench/compare/run_crawl_bench.sh): the notes'
coroutine crawler (aiohttp + asyncio.Semaphore) grown up to do the work of the other rows —
fetch every page reachable from the start URL within its host, obey robots.txt
(urllib.robotparser), dedupe on w3lib's canonicalize_url (Scrapy's fingerprint key: query order
and fragments do not make a page new), follow redirects through that dedupe (as Scrapy's
RedirectMiddleware does), parse 200 answers only, follow every <a href> (parsel), and write one
item {url, title, author} of each page where h1.title::text or span.author::text matched, as JSON
Lines.

One task per URL; at most CONCURRENCY of them download at once (the semaphore, and a connector of
as many kept-alive connections); parsing happens outside the semaphore, as in Scrapy, where a
download slot is freed before the callback runs. Bounded: at most --max-requests downloads.

Run with Debian's interpreter (python3-aiohttp, python3-parsel; not PyPI):
    /usr/bin/python3 bench/compare/asyncio_site_crawler.py http://127.0.0.1:PORT/ \
        -o items.jsonl --stats-json stats.json [--concurrency 16]
The stats carry Scrapy's names where one fits (response_received_count, item_scraped_count,
downloader/request_count, elapsed_time_seconds, robotstxt/forbidden, dupefilter/filtered,
offsite/filtered).
"""

import argparse
import asyncio
import collections
import json
import sys
import time
from urllib import robotparser
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
from parsel import Selector
from w3lib.url import canonicalize_url

USER_AGENT = "asyncio-site-crawler/1.0"


async def fetch_robots(session, start_url, stats):
    """The start URL's origin's robots.txt as a RobotFileParser (RFC 9309: 4xx allows all, 5xx
    or an unreachable server disallows all)."""
    parts = urlsplit(start_url)
    url = f"{parts.scheme}://{parts.netloc}/robots.txt"
    rp = robotparser.RobotFileParser(url)
    stats["downloader/request_count"] += 1
    stats["robotstxt/request_count"] += 1
    try:
        async with session.get(url) as resp:
            text = await resp.text(errors="replace")
            status = resp.status
        stats["response_received_count"] += 1
    except aiohttp.ClientError:
        rp.disallow_all = True
        return rp
    if status >= 500:
        rp.disallow_all = True
    elif status >= 400:
        rp.allow_all = True
    else:
        rp.parse(text.splitlines())
    return rp


async def crawl(args):
    start = args.url
    host = urlsplit(start).hostname
    stats = collections.Counter()
    seen = set()
    tasks = set()
    sem = asyncio.Semaphore(args.concurrency)
    items_out = open(args.output, "w", encoding="utf-8") if args.output else None
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    began = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"User-Agent": USER_AGENT}) as session:
        robots = await fetch_robots(session, start, stats)

        def schedule(url):
            url = urldefrag(url)[0]
            if urlsplit(url).hostname != host:
                stats["offsite/filtered"] += 1
                return
            key = canonicalize_url(url)
            if key in seen:
                stats["dupefilter/filtered"] += 1
                return
            seen.add(key)
            if not robots.can_fetch(USER_AGENT, url):
                stats["robotstxt/forbidden"] += 1
                return
            if stats["scheduled"] >= args.max_requests:
                stats["max_requests_dropped"] += 1
                return
            stats["scheduled"] += 1
            task = asyncio.create_task(visit(url))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def visit(url):
            async with sem:
                stats["downloader/request_count"] += 1
                try:
                    async with session.get(url, allow_redirects=False) as resp:
                        body = await resp.read()
                        status = resp.status
                        charset = resp.charset or "utf-8"
                        location = resp.headers.get("Location")
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    stats[f"downloader/exception_type_count/{type(e).__name__}"] += 1
                    return
            stats["response_received_count"] += 1
            stats[f"downloader/response_status_count/{status}"] += 1
            if 300 <= status < 400 and location:
                stats["redirect/count"] += 1
                schedule(urljoin(url, location))
                return
            if status != 200:
                return
            page = Selector(text=body.decode(charset, errors="replace"))
            title = page.css("h1.title::text").get()
            author = page.css("span.author::text").get()
            if title is not None or author is not None:
                item = {"url": url}
                if title is not None:
                    item["title"] = title
                if author is not None:
                    item["author"] = author
                if items_out:
                    items_out.write(json.dumps(item) + "\n")
                stats["item_scraped_count"] += 1
            for href in page.css("a::attr(href)").getall():
                schedule(urljoin(url, href.strip()))

        schedule(start)
        # Every task schedules its followers before it ends, so an empty set means done; the
        # number of rounds is bounded by --max-requests.
        while tasks:
            await asyncio.wait(set(tasks))
    if items_out:
        items_out.close()
    stats["elapsed_time_seconds"] = time.monotonic() - began
    stats["finish_reason"] = "finished"
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("-o", "--output", help="items as JSON Lines")
    parser.add_argument("--stats-json", help="the final stats as JSON")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per request")
    args = parser.parse_args()
    stats = asyncio.run(crawl(args))
    if args.stats_json:
        with open(args.stats_json, "w", encoding="utf-8") as out:
            json.dump(dict(stats), out, indent=2, sort_keys=True)
    print(f"asyncio_site_crawler: {stats['response_received_count']} responses, "
          f"{stats['item_scraped_count']} items in {stats['elapsed_time_seconds']:.2f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
