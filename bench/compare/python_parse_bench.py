#!/usr/bin/env python3
"""Python twin of bench/crawl_parse_bench.cpp: parsel 1.7 / lxml on the same ~50 KB page.

Run with Debian's interpreter, which has python3-parsel (scripts/setup.sh installs it):
    /usr/bin/python3 bench/compare/python_parse_bench.py
(`--write-page FILE` writes the page and exits.) Prints pages/s of CPU time for each case
(median of 5 one-second runs), one line per case.
`--site-dir DIR` adds the crawl benchmark's cases (crawl_parse_bench's BM_SitePost*, one thread):
the post pages of a site written by `crawl_site_tool write DIR --posts 2000 --origin
http://127.0.0.1:8080` (DIR/post/1..200.html), parsed alone, and read as the benchmark's spiders
read them (h1.title::text, span.author::text, every a::attr(href) joined to the page's URL).
Link extraction here is what Scrapy's LinkExtractor does by default, written with parsel and
w3lib (Scrapy itself is not a Debian package): a/area href, urljoin against the base, fragment
dropped, http(s) only, IGNORED_EXTENSIONS skipped, unique by canonicalize_url.
"""
import statistics
import sys
import time
from urllib.parse import urljoin, urldefrag, urlparse

from parsel import Selector
from w3lib.url import canonicalize_url

IGNORED_EXTENSIONS = {
    "7z", "7zip", "bz2", "rar", "tar", "tar.gz", "xz", "zip", "mng", "pct", "bmp", "gif",
    "jpg", "jpeg", "png", "pst", "psp", "tif", "tiff", "ai", "drw", "dxf", "eps", "ps", "svg",
    "cdr", "ico", "webp", "mp3", "wma", "ogg", "wav", "ra", "aac", "mid", "au", "aiff", "3gp",
    "asf", "asx", "avi", "mov", "mp4", "mpg", "qt", "rm", "swf", "wmv", "m4a", "m4v", "flv",
    "webm", "xls", "xlsx", "ppt", "pptx", "pps", "doc", "docx", "odt", "ods", "odg", "odp",
    "css", "pdf", "exe", "bin", "rss", "dmg", "iso", "apk",
}
BASE = "https://shop.example.com/products/?page=3"


def make_page():
    """The same bytes as make_page() in bench/crawl_parse_bench.cpp."""
    h = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
         '<title>Products - page 3</title><link rel="stylesheet" href="/static/site.css">'
         '<script>var x = 1;</script></head><body>\n<header><nav><ul>\n')
    for i in range(30):
        h += f'<li><a href="/category/{i}/">Category {i}</a></li>\n'
    h += '</ul></nav></header>\n<main id="content"><h1>All products</h1>\n'
    for i in range(40):
        h += (f'<div class="product card" data-id="{i}">\n  <h2 class="title"><a href="/p/{i}'
              f'?ref=list#reviews">Product number {i}</a></h2>\n  <span class="price">${i}.99'
              '</span>\n  <p class="desc">')
        for w in range(20):
            h += f"Lorem ipsum dolor sit amet, consectetur {(i * 7 + w) % 13}. "
        h += (f'</p>\n  <a class="tag" href="/tag/t{i % 7}">tag</a> <a class="tag" '
              f'href="https://cdn.example.net/img/{i}.jpg">image</a>\n</div>\n')
    h += '<div class="pagination">'
    for i in range(1, 11):
        h += f'<a href="?page={i}">{i}</a> '
    h += ('</div></main>\n<footer><a href="mailto:shop@example.com">mail</a> '
          '<a href="javascript:void(0)">top</a> <a href="/about">About</a></footer>\n'
          '</body></html>\n')
    return h


def parse(page):
    return Selector(text=page, base_url=BASE)


def extract_links(page):
    sel = parse(page)
    seen, links = set(), []
    for href in sel.xpath("//a/@href | //area/@href").getall():
        url = urldefrag(urljoin(BASE, href.strip()))[0]
        parts = urlparse(url)
        if parts.scheme not in ("http", "https"):
            continue
        last = parts.path.rsplit("/", 1)[-1].lower()
        if "." in last and any(last.endswith("." + e) for e in IGNORED_EXTENSIONS):
            continue
        key = canonicalize_url(url)
        if key in seen:
            continue
        seen.add(key)
        links.append(url)
    return links


def items_xpath(page):
    sel = parse(page)
    out = []
    for p in sel.xpath("//div[contains(@class, 'product')]"):
        out.append((p.xpath("./h2/a/text()").get(), p.xpath("./h2/a/@href").get(),
                    p.xpath("./span[@class='price']/text()").get()))
    return out


def items_css(page):
    sel = parse(page)
    out = []
    for p in sel.css("div.product"):
        out.append((p.css("h2 a::text").get(), p.css("h2 a::attr(href)").get(),
                    p.css(".price::text").get()))
    return out


def canonicalize(_page):
    return canonicalize_url(
        "https://Shop.Example.com:443/p/17/../18?utm_source=x&ref=list&q=caf%C3%A9#reviews")


SITE_ORIGIN = "http://127.0.0.1:8080"
SITE_PAGES = 200


def load_site_pages(site_dir):
    pages = []
    for n in range(1, SITE_PAGES + 1):
        with open(f"{site_dir}/post/{n}.html", encoding="utf-8") as f:
            pages.append((f"{SITE_ORIGIN}/post/{n}", f.read()))
    return pages


def site_parse(pages):
    for url, html in pages:
        Selector(text=html, base_url=url)


def site_spider(pages):
    for url, html in pages:
        sel = Selector(text=html, base_url=url)
        sel.css("h1.title::text").get()
        sel.css("span.author::text").get()
        for href in sel.css("a::attr(href)").getall():
            urljoin(url, href)


def rate(fn, page, seconds=1.0):
    """Calls per second of CPU time (process_time), as Google Benchmark's items_per_second."""
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        fn(page)
        n += 1
    return n / (time.process_time() - start)


def main():
    page = make_page()
    if len(sys.argv) == 3 and sys.argv[1] == "--write-page":
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            f.write(page)
        return
    print(f"page: {len(page.encode())} bytes, links: {len(extract_links(page))}")
    for name, fn in [("parse", parse), ("parse+extract_links", extract_links),
                     ("parse+items_xpath", items_xpath), ("parse+items_css", items_css),
                     ("canonicalize_url", canonicalize)]:
        runs = [rate(fn, page) for _ in range(5)]
        print(f"{name:22s} {statistics.median(runs):12.1f} /s  (runs: "
              + ", ".join(f"{r:.0f}" for r in runs) + ")")
    if len(sys.argv) == 3 and sys.argv[1] == "--site-dir":
        site = load_site_pages(sys.argv[2])
        for name, fn in [("site_post_parse", site_parse), ("site_post_spider", site_spider)]:
            runs = [SITE_PAGES * rate(fn, site) for _ in range(5)]
            print(f"{name:22s} {statistics.median(runs):12.1f} /s  (runs: "
                  + ", ".join(f"{r:.0f}" for r in runs) + ")")


if __name__ == "__main__":
    main()
