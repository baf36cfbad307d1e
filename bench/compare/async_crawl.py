#!/usr/bin/env python3
"""async_crawl.py: the notes' blog crawl, serially, on threads, as a producer/consumer pipeline, on
asyncio and with Scrapy, for concur bench.

The notes fetch 50 blog pages of ~70 KB (https://www.cnblogs.com/sitehome/p/1 ... /50) one after
another with requests, then on a thread pool, then with craw threads feeding parse threads through
two queue.Queue, then with asyncio + aiohttp under asyncio.Semaphore(10); Scrapy is the crawler
framework they end with. Here the blog is concur's local test site (apps/concur/site/blog_site.hpp),
which `concur bench` starts on 127.0.0.1 and passes as --port; it answers every page after a fixed
delay standing for the network's latency.
Traffic goes to 127.0.0.1 only (no proxy is consulted). Prints one JSON object on stdout.
`concur bench` embeds this file at build time and runs it with `python3 -c`.

    async_crawl.py --port P --mode serial               # urllib.request, one GET after another
    async_crawl.py --port P --mode threads --workers 10 # ThreadPoolExecutor(10) + urllib.request
    async_crawl.py --port P --mode producer_consumer --workers 10 --parsers 2
        # url_queue -> 10 craw threads (urllib) -> html_queue -> 2 parse threads (count <p>)
    async_crawl.py --port P --mode asyncio --limit 10   # create_task per URL under Semaphore(10)
    async_crawl.py --port P --mode scrapy --limit 10    # a Spider, CONCURRENT_REQUESTS 10

--mode producer_consumer ends its threads with Queue.shutdown() where Python has it (3.13), else
with one None per consumer. --mode scrapy runs the spider in-process with CrawlerProcess
(CONCURRENT_REQUESTS and CONCURRENT_REQUESTS_PER_DOMAIN = --limit, no robots.txt, no logging, no
telnet console, no proxy); when `import scrapy` fails it prints {"mode", "skipped", "python"}
instead of a crawl.

--mode asyncio uses aiohttp (one ClientSession per URL, as the notes) when `import aiohttp` works
(Debian's python3-aiohttp), else asyncio streams with a hand-written HTTP/1.1 GET; --client forces
one. Every GET is bounded by --timeout seconds, the whole script by --deadline seconds (then it
prints its threads' tracebacks on stderr and exits with status 1).

Output: {"mode", "client", "pages", "workers", "seconds", "sizes", "errors", "python"}: "sizes"
holds the length of each page's body in URL order (-1 for a GET that failed), "errors" the first
few failures as text, "seconds" the wall time of the crawl alone (imports and interpreter start-up
excluded; the pool's creation and shutdown, the threads' start and join, asyncio.run's loop,
Scrapy's CrawlerProcess and its reactor's run, included).
"""
import argparse
import asyncio
import faulthandler
import json
import queue
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

MAX_ERRORS = 5


def urls_of(port, pages):
    return [f"http://127.0.0.1:{port}/sitehome/p/{n}" for n in range(1, pages + 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", required=True,
                        choices=["serial", "threads", "producer_consumer", "asyncio", "scrapy"])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--workers", type=int, default=10,
                        help="pool size for --mode threads, craw threads for producer_consumer")
    parser.add_argument("--parsers", type=int, default=2,
                        help="parse threads for --mode producer_consumer")
    parser.add_argument("--limit", type=int, default=10,
                        help="Semaphore for --mode asyncio, CONCURRENT_REQUESTS for scrapy")
    parser.add_argument("--client", choices=["auto", "aiohttp", "streams"], default="auto",
                        help="HTTP client of --mode asyncio")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per GET")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for the script")
    args = parser.parse_args()
    if not 0 < args.port < 65536:
        parser.error("--port must be in 1..65535")
    if args.pages < 1 or args.workers < 1 or args.parsers < 1 or args.limit < 1:
        parser.error("--pages, --workers, --parsers and --limit must be >= 1")
    if not (args.timeout > 0 and args.deadline > 0):
        parser.error("--timeout and --deadline must be > 0")
    faulthandler.dump_traceback_later(args.deadline, exit=True)

    urls = urls_of(args.port, args.pages)
    sizes = [-1] * len(urls)
    errors = []

    def failed(url, e):
        if len(errors) < MAX_ERRORS:
            errors.append(f"{url}: {type(e).__name__}: {e}")

    client = "urllib"
    workers = {"serial": 1, "threads": args.workers,
               "producer_consumer": args.workers + args.parsers}.get(args.mode, args.limit)
    if args.mode == "scrapy":
        try:
            import scrapy
            import twisted
            from scrapy.crawler import CrawlerProcess
        except ImportError as e:
            faulthandler.cancel_dump_traceback_later()
            json.dump({"mode": args.mode, "skipped": f"scrapy is not importable ({e})",
                       "python": sys.version.split()[0]}, sys.stdout)
            sys.stdout.write("\n")
            return
        client = f"scrapy {scrapy.__version__}, Twisted {twisted.__version__}"

        class BlogSpider(scrapy.Spider):
            name = "blog"

            def start_requests(self):
                for i, url in enumerate(urls):
                    yield scrapy.Request(url, callback=self.parse, errback=self.on_error,
                                         dont_filter=True, cb_kwargs={"i": i})

            def parse(self, response, i):
                sizes[i] = len(response.text)

            def on_error(self, failure):
                failed(failure.request.url, failure.value)

        settings = {
            "CONCURRENT_REQUESTS": args.limit,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.limit,
            "ROBOTSTXT_OBEY": False,
            "LOG_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "HTTPPROXY_ENABLED": False,  # the site is on 127.0.0.1: no http_proxy reroutes it
            "DOWNLOAD_TIMEOUT": args.timeout,
            "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",  # no deprecation warning on stderr
        }
        start = time.perf_counter()
        process = CrawlerProcess(settings)
        process.crawl(BlogSpider)
        process.start()  # runs the reactor until the crawl is over
        seconds = time.perf_counter() - start
    elif args.mode == "producer_consumer":
        # No proxy: the site is on 127.0.0.1 and an http_proxy variable must not reroute it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        has_shutdown = hasattr(queue.Queue, "shutdown")  # Python 3.13
        shut_down = (queue.ShutDown,) if has_shutdown else ()
        url_queue = queue.Queue()
        html_queue = queue.Queue()
        paragraphs = [0] * args.parsers  # one slot per parse thread: no lock needed

        def close(q, consumers):
            if has_shutdown:
                q.shutdown()
            else:
                for _ in range(consumers):
                    q.put(None)

        def take(q):
            try:
                return q.get()
            except shut_down:
                return None

        def do_craw():
            while (url := take(url_queue)) is not None:
                try:
                    with opener.open(url, timeout=args.timeout) as resp:
                        html = resp.read().decode("utf-8")
                except Exception as e:  # a failed page is counted, not fatal
                    failed(url, e)
                    continue
                html_queue.put((url, html))

        def do_parse(k):
            while (got := take(html_queue)) is not None:
                url, html = got
                paragraphs[k] += html.count("<p>")
                sizes[urls.index(url)] = len(html)

        start = time.perf_counter()
        for url in urls:
            url_queue.put(url)
        close(url_queue, args.workers)
        parsers = [threading.Thread(target=do_parse, args=(k,), name=f"parse{k}")
                   for k in range(args.parsers)]
        crawlers = [threading.Thread(target=do_craw, name=f"craw{k}")
                    for k in range(args.workers)]
        for t in parsers + crawlers:
            t.start()
        for t in crawlers:
            t.join()
        close(html_queue, args.parsers)
        for t in parsers:
            t.join()
        seconds = time.perf_counter() - start
        client = (f"urllib; {args.workers} craw threads -> queue.Queue -> {args.parsers} parse "
                  f"threads ({'shutdown()' if has_shutdown else 'None sentinels'}), "
                  f"{sum(paragraphs)} <p> counted")
    elif args.mode in ("serial", "threads"):
        # No proxy: the site is on 127.0.0.1 and an http_proxy variable must not reroute it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def craw(url):
            with opener.open(url, timeout=args.timeout) as resp:
                return len(resp.read().decode("utf-8"))

        def craw_into(i):
            try:
                sizes[i] = craw(urls[i])
            except Exception as e:  # a failed page is counted, not fatal
                failed(urls[i], e)

        start = time.perf_counter()
        if args.mode == "serial":
            for i in range(len(urls)):
                craw_into(i)
        else:
            with ThreadPoolExecutor(args.workers) as pool:
                list(pool.map(craw_into, range(len(urls))))
        seconds = time.perf_counter() - start
    else:
        aiohttp = None
        if args.client in ("auto", "aiohttp"):
            try:
                import aiohttp
            except ImportError:
                if args.client == "aiohttp":
                    raise
        if aiohttp is not None:
            client = f"aiohttp {aiohttp.__version__}"

            async def get(url):
                # The notes: one ClientSession per URL. trust_env=False (the default): no proxy.
                timeout = aiohttp.ClientTimeout(total=args.timeout)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.get(url) as resp:
                        resp.raise_for_status()
                        result = await resp.text()
                        return len(result)
        else:
            client = "asyncio streams (hand-written GET)"

            async def stream_get(url):
                path = url.split(str(args.port), 1)[1]
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                try:
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
                                 "Connection: close\r\n\r\n".encode("ascii"))
                    await writer.drain()
                    raw = await reader.read()  # until the site closes the connection
                finally:
                    writer.close()
                head, sep, body = raw.partition(b"\r\n\r\n")
                status = head.split(b"\r\n", 1)[0].split()
                if not sep or len(status) < 2 or status[1] != b"200":
                    raise RuntimeError(f"bad answer: {head[:80]!r}")
                return len(body.decode("utf-8"))

            async def get(url):
                return await asyncio.wait_for(stream_get(url), args.timeout)

        async def crawl():
            semaphore = asyncio.Semaphore(args.limit)

            async def async_craw(url):
                async with semaphore:
                    return await get(url)

            tasks = [asyncio.create_task(async_craw(url)) for url in urls]
            await asyncio.wait(tasks)
            for i, task in enumerate(tasks):
                if task.exception() is None:
                    sizes[i] = task.result()
                else:
                    failed(urls[i], task.exception())

        start = time.perf_counter()
        asyncio.run(crawl())
        seconds = time.perf_counter() - start

    faulthandler.cancel_dump_traceback_later()
    json.dump({
        "mode": args.mode,
        "client": client,
        "pages": len(urls),
        "workers": workers,
        "seconds": seconds,
        "sizes": sizes,
        "errors": errors,
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
