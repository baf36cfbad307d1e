// concur/crawl/settings.hpp — the crawler's settings, by Scrapy's names and with the defaults of a
// Scrapy project (its `startproject` template where it differs from the library: ROBOTSTXT_OBEY
// true), plus a few of concur's own, marked below.
//
// In code the fields are set directly (`settings.download_delay = 0.5;`); from a command line,
// Settings::set("DOWNLOAD_DELAY", "0.5") takes Scrapy's NAME=VALUE form (booleans as
// True/False/1/0/true/false, lists comma-separated, DOWNLOAD_SLOTS as JSON). Unknown names and
// values that do not parse or are out of range raise ValueError naming the setting; validate()
// checks the whole set (the Crawler calls it).
// Thread-safety: a value type; the Crawler copies it.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace concur::crawl {

// SlotSettings: one DOWNLOAD_SLOTS entry: a download slot's own limits (unset: the global ones).
struct SlotSettings {
  std::optional<int> concurrency;       // requests in flight at once in the slot
  std::optional<double> delay;          // seconds between request starts
  std::optional<bool> randomize_delay;  // RANDOMIZE_DOWNLOAD_DELAY for the slot
};

struct Settings {
  // ---- concurrency and politeness ----
  int concurrent_requests = 16;            // CONCURRENT_REQUESTS: in flight, all slots together
  int concurrent_requests_per_domain = 8;  // CONCURRENT_REQUESTS_PER_DOMAIN: per slot
  double download_delay = 0.0;             // DOWNLOAD_DELAY: seconds between starts in a slot
  bool randomize_download_delay = true;    // RANDOMIZE_DOWNLOAD_DELAY: 0.5–1.5 x the delay
  std::map<std::string, SlotSettings> download_slots;  // DOWNLOAD_SLOTS: per-slot overrides
  bool autothrottle_enabled = false;                   // AUTOTHROTTLE_ENABLED
  double autothrottle_start_delay = 5.0;               // AUTOTHROTTLE_START_DELAY
  double autothrottle_max_delay = 60.0;                // AUTOTHROTTLE_MAX_DELAY
  double autothrottle_target_concurrency = 1.0;        // AUTOTHROTTLE_TARGET_CONCURRENCY
  bool autothrottle_debug = false;                     // AUTOTHROTTLE_DEBUG: log every adjustment
  // ---- retries (Scrapy's RetryMiddleware, plus concur's backoff) ----
  bool retry_enabled = true;  // RETRY_ENABLED
  int retry_times = 2;        // RETRY_TIMES: retries after the first attempt
  std::vector<int> retry_http_codes{500, 502, 503, 504, 522, 524, 408, 429};  // RETRY_HTTP_CODES
  int retry_priority_adjust = -1;  // RETRY_PRIORITY_ADJUST
  // concur: after a failure the request's slot rests backoff_delay(failures in a row, BASE, MAX)
  // seconds before its next start (equal jitter); a Retry-After on 429/503 replaces that rest,
  // capped at RETRY_AFTER_MAX (a longer ask is capped, not obeyed). BASE 0 turns backoff off.
  double retry_backoff_base = 0.5;  // RETRY_BACKOFF_BASE
  double retry_backoff_max = 60.0;  // RETRY_BACKOFF_MAX
  double retry_after_max = 300.0;   // RETRY_AFTER_MAX
  // ---- robots.txt ----
  bool robotstxt_obey = true;          // ROBOTSTXT_OBEY
  std::string robotstxt_user_agent;    // ROBOTSTXT_USER_AGENT (empty: USER_AGENT's token)
  bool robotstxt_crawl_delay = false;  // concur: ROBOTSTXT_CRAWL_DELAY: honour Crawl-delay
  // ---- redirects, limits ----
  bool redirect_enabled = true;      // REDIRECT_ENABLED
  int redirect_max_times = 20;       // REDIRECT_MAX_TIMES
  int redirect_priority_adjust = 2;  // REDIRECT_PRIORITY_ADJUST
  double download_timeout = 180.0;   // DOWNLOAD_TIMEOUT (seconds; 0: none)
  std::size_t download_maxsize = std::size_t{1024} * 1024 * 1024;  // DOWNLOAD_MAXSIZE (0: none)
  std::size_t download_warnsize = std::size_t{32} * 1024 * 1024;   // DOWNLOAD_WARNSIZE (0: none)
  bool download_fail_on_dataloss = true;                           // DOWNLOAD_FAIL_ON_DATALOSS
  int depth_limit = 0;                                             // DEPTH_LIMIT (0: none)
  int depth_priority = 0;                // DEPTH_PRIORITY: priority -= depth * DEPTH_PRIORITY
  bool depth_stats_verbose = false;      // DEPTH_STATS_VERBOSE: request_depth_count/<n>
  std::string scheduler_order = "lifo";  // concur: SCHEDULER_ORDER, "lifo" (Scrapy's default
                                         // queues: depth-first) or "fifo" (breadth-first)
  // concur: SCHEDULER_HUBS_FIRST. Among requests of equal priority, those whose kind of page
  // (URL path with its numbers as '#', per host: /list/#, /post/#) has so far yielded more new
  // requests per page go first — list and pagination pages before the leaves they list — so
  // chains of such pages keep moving and a latency-bound crawl keeps its requests in flight.
  // Order only: priorities, politeness and the set of pages fetched are unchanged. False: Scrapy's
  // order exactly. No effect with a JOBDIR (its disk queue orders by priority only).
  bool scheduler_hubs_first = true;
  int urllength_limit = 2083;  // URLLENGTH_LIMIT (0: none)
  std::string user_agent = "concur-crawl/0.1 (+https://github.com/concur)";  // USER_AGENT
  std::vector<int> httperror_allowed_codes;  // HTTPERROR_ALLOWED_CODES: non-2xx to callbacks
  bool httperror_allow_all = false;          // HTTPERROR_ALLOW_ALL
  // ---- closing ----
  int closespider_pagecount = 0;     // CLOSESPIDER_PAGECOUNT: responses (0: no limit)
  int closespider_itemcount = 0;     // CLOSESPIDER_ITEMCOUNT: items scraped (0: no limit)
  double closespider_timeout = 0.0;  // CLOSESPIDER_TIMEOUT: seconds (0: no limit)
  int closespider_errorcount = 0;    // CLOSESPIDER_ERRORCOUNT: callback errors (0: no limit)
  // ---- parsing and items ----
  int parse_threads = 0;       // concur: PARSE_THREADS: threads running callbacks (0: cores)
  int concurrent_items = 100;  // CONCURRENT_ITEMS: items queued for the pipelines at most
  // ---- state, output ----
  std::string jobdir;  // JOBDIR: the queue and seen-set on disk (pause and resume; docs/crawl.md)
  std::string log_level = "INFO";   // LOG_LEVEL: DEBUG, INFO, WARNING, ERROR, or NONE
  double logstats_interval = 60.0;  // LOGSTATS_INTERVAL: seconds between progress lines (0: off)

  // set(name, value): Scrapy's `-s NAME=VALUE`. ValueError for an unknown name or a bad value.
  void set(std::string_view name, std::string_view value);
  // set(assignment): "NAME=VALUE".
  void set(std::string_view assignment);
  // get(name): the value as set() would take it ("0.5", "True", "500,502"). ValueError if unknown.
  [[nodiscard]] std::string get(std::string_view name) const;
  // names(): every setting set() knows, sorted.
  [[nodiscard]] static std::vector<std::string> names();
  // validate(): ValueError naming the first setting out of range (negative counts or delays,
  // CONCURRENT_REQUESTS < 1, a target concurrency <= 0, an unknown SCHEDULER_ORDER or LOG_LEVEL).
  void validate() const;
};

}  // namespace concur::crawl
