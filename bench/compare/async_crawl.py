#!/usr/bin/env python3
"""async_crawl.py: the notes' blog crawl, serially, on threads and on asyncio, for concur bench.

The notes fetch 50 blog pages of ~70 KB (https://www.cnblogs.com/sitehome/p/1 ... /50) one after
another with requests, then on a thread pool, then with asyncio + aiohttp under
asyncio.Semaphore(10). Here the blog is concur's local test site (apps/concur/site/blog_site.hpp),
which `concur bench` starts on 127.0.0.1 and passes as --port; it answers every page after a fixed
delay standing for the network's latency.
Traffic goes to 127.0.0.1 only (no proxy is consulted). Prints one JSON object on stdout.
`concur bench` embeds this file at build time and runs it with `python3 -c`.

    async_crawl.py --port P --mode serial               # urllib.request, one GET after another
    async_crawl.py --port P --mode threads --workers 10 # ThreadPoolExecutor(10) + urllib.request
    async_crawl.py --port P --mode asyncio --limit 10   # create_task per URL under Semaphore(10)

--mode asyncio uses aiohttp (one ClientSession per URL, as the notes) when `import aiohttp` works
(Debian's python3-aiohttp), else asyncio streams with a hand-written HTTP/1.1 GET; --client forces
one. Every GET is bounded by --timeout seconds, the whole script by --deadline seconds (then it
prints its threads' tracebacks on stderr and exits with status 1).

Output: {"mode", "client", "pages", "workers", "seconds", "sizes", "errors", "python"}: "sizes"
holds the length of each page's body in URL order (-1 for a GET that failed), "errors" the first
few failures as text, "seconds" the wall time of the crawl alone (imports and interpreter start-up
excluded; the pool's creation and shutdown, asyncio.run's loop, included).
"""
import argparse
import asyncio
import faulthandler
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

MAX_ERRORS = 5


def urls_of(port, pages):
    return [f"http://127.0.0.1:{port}/sitehome/p/{n}" for n in range(1, pages + 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["serial", "threads", "asyncio"], required=True)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--workers", type=int, default=10, help="pool size for --mode threads")
    parser.add_argument("--limit", type=int, default=10, help="Semaphore for --mode asyncio")
    parser.add_argument("--client", choices=["auto", "aiohttp", "streams"], default="auto",
                        help="HTTP client of --mode asyncio")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per GET")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for the script")
    args = parser.parse_args()
    if not 0 < args.port < 65536:
        parser.error("--port must be in 1..65535")
    if args.pages < 1 or args.workers < 1 or args.limit < 1:
        parser.error("--pages, --workers and --limit must be >= 1")
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
    if args.mode in ("serial", "threads"):
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
        "workers": args.workers if args.mode == "threads" else
                   args.limit if args.mode == "asyncio" else 1,
        "seconds": seconds,
        "sizes": sizes,
        "errors": errors,
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
