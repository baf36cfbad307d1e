#!/usr/bin/env python3
"""crawl_perf_breakdown.py PERF_DATA: where concur's crawl spends its CPU, from a `perf record
--call-graph dwarf` of bench/crawl_driver (run_crawl_bench.sh --perf makes one).

Reads `perf script` (call chains, leaf first) and prints, as shares of every sample:
  threads     samples per thread: the loop thread (the main one: downloads, scheduling) against
              the parse threads (callbacks) and the writer
  subsystems  inclusive shares of the crawl's parts (a sample counts for each part on its stack)
  allocator   samples whose leaf is in malloc / free, by the nearest part on their stack
  loop        the loop thread's samples by the first part found walking up from the leaf
Standard library only; needs `perf` on PATH.
"""

import collections
import re
import subprocess
import sys

# The crawl's parts, as substrings of symbol names (first match wins where one is needed).
PARTS = [
    "htmlParseDocument", "xmlFreeDoc", "html_to_unicode", "Selector::css", "xmlXPathNewContext",
    "Selector::urljoin", "Response::follow", "SiteSpider::parse", "Engine::schedule",
    "request_fingerprint", "canonicalize_url", "Engine::handle", "Engine::download",
    "curl_multi_socket_action", "Loop::add_reader", "Loop::remove_reader", "Engine::writer",
    "RobotsTxt::can_fetch",
]
ALLOCATOR = re.compile(r"^(malloc|_int_malloc|_int_free|malloc_consolidate|cfree|free|"
                       r"__libc_free|__GI___libc_free|__GI___libc_malloc|__libc_malloc|"
                       r"unlink_chunk|sysmalloc|realloc|_int_realloc|calloc|__libc_calloc|"
                       r"operator new|operator delete)")


def samples(perf_data):
    """(thread id, [symbols, leaf first]) per sample."""
    text = subprocess.run(["perf", "script", "-i", perf_data, "-F", "comm,tid,ip,sym"],
                          capture_output=True, text=True, errors="replace", timeout=600).stdout
    out, tid, frames = [], None, []
    for line in text.splitlines():
        if not line.strip():
            if tid is not None:
                out.append((tid, frames))
            tid, frames = None, []
        elif not line[0].isspace():
            tid, frames = line.split()[1], []
        else:
            parts = line.strip().split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else "")
    if tid is not None:
        out.append((tid, frames))
    return out


def share(count, total):
    return f"{100 * count / total:5.1f}%"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = samples(sys.argv[1])
    total = len(data)
    if not total:
        sys.exit("no samples")
    threads = collections.Counter(tid for tid, _ in data)
    main_tid = min(threads, key=int)  # the process's first thread runs the loop (Crawler::run)
    print(f"samples: {total}")
    print("threads (the lowest id is the loop thread):")
    for tid, n in threads.most_common():
        print(f"  {share(n, total)}  {tid}{'  loop' if tid == main_tid else ''}")

    inclusive = collections.Counter()
    for _, frames in data:
        for part in PARTS:
            if any(part in f for f in frames):
                inclusive[part] += 1
    print("subsystems (inclusive):")
    for part, n in inclusive.most_common():
        print(f"  {share(n, total)}  {part}")

    alloc = collections.Counter()
    for _, frames in data:
        if frames and ALLOCATOR.match(frames[0]):
            where = next((p for f in frames for p in PARTS if p in f), "other")
            alloc[where] += 1
    print(f"allocator (leaf in malloc/free): {share(sum(alloc.values()), total)} in all")
    for part, n in alloc.most_common():
        print(f"  {share(n, total)}  under {part}")

    loop = collections.Counter()
    for tid, frames in data:
        if tid == main_tid:
            loop[next((p for f in frames for p in PARTS if p in f), "other")] += 1
    print(f"loop thread: {share(threads[main_tid], total)} of all samples, by part:")
    for part, n in loop.most_common():
        print(f"  {share(n, total)}  {part}")


if __name__ == "__main__":
    main()
