// crawl/crawl_command.hpp — the `concur crawl` subcommand: a useful crawl with no code (the notes'
// producer/consumer crawler made real). Follows links within the start URLs' hosts, extracts
// fields with CSS or XPath selectors, writes items as JSON Lines, JSON, CSV or SQLite, with
// Scrapy's settings by name (-s NAME=VALUE) and its stats at the end.
//
//   concur crawl https://example.com/ --extract title=h1::text -o items.jsonl
//
// Selectors: one starting with '/', '(' or "./" is XPath, anything else CSS (parsel's ::text and
// ::attr(name) included). --follow SEL (repeatable) follows only the links inside what SEL selects
// (or, for a ::attr / text selector, the values themselves); by default every link (Scrapy's
// LinkExtractor defaults). --extract FIELD=SEL takes the first match, FIELD[]=SEL every match (a
// JSON array); a page yields an item when at least one field matched ({"url": ..., fields...}).
// Ctrl-C (or SIGTERM) once: stop scheduling and let what is in flight finish; twice: stop now;
// three times: the signal's default action (the process ends at once).
// --redis URL: crawl together with every other `concur crawl --redis URL` of the same name, on
// any host (concur/dist/frontier.hpp): requests leased from one frontier (a crawler killed
// mid-crawl loses nothing: its leases expire to the others after --lease-time), one dupefilter,
// per-slot concurrency and delays held across all of them; each adds its stats to the shared
// ones as it ends. Every crawler exits when nothing is queued or leased anywhere.
// Exit status: 0 when the crawl ended (finished or a CLOSESPIDER_* limit), 1 on an error, 2 for
// invalid options, 128 + the signal when interrupted (130 for Ctrl-C, 143 for SIGTERM).
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace concur::apps::crawl {

// CrawlOptions are the command-line options of `concur crawl`.
struct CrawlOptions {
  std::vector<std::string> urls;      // start URLs
  std::vector<std::string> settings;  // -s NAME=VALUE
  std::vector<std::string> follow;    // --follow SELECTOR
  bool no_follow = false;             // --no-follow: the start URLs only
  std::vector<std::string> extract;   // --extract FIELD=SELECTOR / FIELD[]=SELECTOR
  std::string output;                 // -o FILE: append (format by extension; "-": stdout)
  std::string overwrite_output;       // -O FILE: replace the file (Scrapy's -O)
  std::string stats_json;             // --stats-json FILE: the final stats as JSON
  bool no_progress = false;           // --no-progress: no live line on a terminal
  std::string jobdir;                 // --jobdir DIR (JOBDIR)
  std::string redis;                  // --redis URL: a crawl shared through Redis
  std::string redis_name;             // --redis-name NAME (default: the first URL's origin)
  double lease_time = 10.0;           // --lease-time SECONDS
  bool redis_clear = false;           // --redis-clear: start the shared crawl over
};

// add_crawl_command(app, options) adds the `crawl` subcommand, parsing into `options` (which must
// outlive the parse), and returns it.
CLI::App* add_crawl_command(CLI::App& app, CrawlOptions& options);

// run_crawl(options, out, err): runs the crawl; items for "-o -" go to `out`, the progress line,
// log and stats to `err`. Returns the exit status. With `handle_signals`, SIGINT and SIGTERM stop
// the crawl (the process's signal mask is restored afterwards).
[[nodiscard]] int run_crawl(const CrawlOptions& options, std::ostream& out, std::ostream& err,
                            bool handle_signals = true);

}  // namespace concur::apps::crawl
