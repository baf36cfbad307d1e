// crawl/crawler.cpp — the engine behind Crawler: scheduler, download slots, robots.txt, retries,
// redirects, callbacks on a thread pool, pipelines on a writer thread, stats, closing.
// docs/crawl.md narrates the design; this file keeps to one rule per state: everything below the
// Engine's "loop state" line is touched on the loop's thread only; stats (locked), the item queue
// (a concur::Queue) and the pipelines (writer thread) are what other threads touch.
#include "concur/crawl/crawler.hpp"

#include <cxxabi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <list>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "concur/aio/sync.hpp"
#include "concur/crawl/frontier.hpp"
#include "concur/crawl/robots.hpp"
#include "concur/crawl/shared.hpp"
#include "concur/crawl/throttle.hpp"
#include "concur/crawl/url.hpp"
#include "concur/queue.hpp"
#include "concur/thread_pool.hpp"
#include "internal.hpp"

namespace concur::crawl {
namespace detail {
namespace {

using Clock = aio::Clock;

std::chrono::duration<double> seconds(double s) { return std::chrono::duration<double>(s); }

// type_name(e): an exception's Python-style type name — the "Name: " prefix every concur error's
// what() starts with, else the demangled C++ type.
std::string type_name(const std::exception& e) {
  const std::string_view what = e.what();
  const std::size_t colon = what.find(": ");
  if (dynamic_cast<const Error*>(&e) != nullptr && colon != std::string_view::npos && colon < 64) {
    return std::string(what.substr(0, colon));
  }
  int status = 0;
  char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : typeid(e).name();
  std::free(name);  // NOLINT(cppcoreguidelines-no-malloc): __cxa_demangle allocates with malloc
  return out;
}

std::string iso_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// peak_rss_bytes(): VmHWM of this process (Scrapy's memusage/max), 0 if unreadable.
std::int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return 0;
}

// retryable(e): the download errors a retry may cure (Scrapy's EXCEPTIONS_TO_RETRY: timeouts,
// DNS, refused / reset / lost connections, cut responses); not an oversized response, a TLS
// failure or a refused URL.
bool retryable(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const TimeoutError&) {
    return true;
  } catch (const DNSLookupError&) {
    return true;
  } catch (const TruncatedResponse&) {
    return true;
  } catch (const SSLError&) {
    return false;
  } catch (const OSError&) {
    return true;  // the ConnectionError family and other socket failures
  } catch (...) {
    return false;
  }
}

// Paused: download() refuses to start a fetch once the crawl is closing; the request goes back
// to the scheduler (the JOBDIR keeps it for the next run). Not a std::exception: no handler
// of download errors may take it for one.
struct Paused {};

// what_of(e): an exception's what(), whatever it is.
std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "a non-standard exception";
  }
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

int level_rank(std::string_view level) {
  if (level == "DEBUG") return 0;
  if (level == "INFO") return 1;
  if (level == "WARNING") return 2;
  if (level == "ERROR") return 3;
  return 4;  // NONE
}

}  // namespace

// Engine: one crawl. Shared so cross-thread notifications (stop(), the writer's item count) can
// hold it weakly.
class Engine : public std::enable_shared_from_this<Engine> {
 public:
  using LogSink = std::function<void(std::string_view, std::string_view)>;

  Engine(Spider& spider, const Settings& settings, StatsCollector& stats,
         std::vector<std::shared_ptr<ItemPipeline>> pipelines, LogSink log,
         std::shared_ptr<SharedFrontier> shared)
      : spider_(spider),
        settings_(settings),
        stats_(stats),
        pipelines_(std::move(pipelines)),
        log_(std::move(log)),
        log_rank_(level_rank(settings.log_level)),
        global_(settings.concurrent_requests),
        shared_(std::move(shared)),
        items_(static_cast<std::size_t>(settings.concurrent_items)) {
    robots_agent_ =
        settings.robotstxt_user_agent.empty() ? settings.user_agent : settings.robotstxt_user_agent;
    fifo_ = settings.scheduler_order == "fifo";
    hubs_first_ = settings.scheduler_hubs_first;
    throttle_.min_delay = settings.download_delay;
    throttle_.max_delay = settings.autothrottle_max_delay;
    throttle_.target_concurrency = settings.autothrottle_target_concurrency;
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    parse_threads_ = settings.parse_threads > 0 ? static_cast<std::size_t>(settings.parse_threads)
                                                : static_cast<std::size_t>(cores);
    max_alive_ = static_cast<std::size_t>(settings.concurrent_requests) * 2 + parse_threads_;
  }

  aio::Task<void> run();
  // stop(reason, now): from any thread.
  void stop(std::string reason, bool now);
  // progress(): from any thread.
  [[nodiscard]] Progress progress() const;

 private:
  struct Slot {
    Slot(std::string slot_key, int slot_concurrency)
        : key(std::move(slot_key)), concurrency(slot_concurrency), sem(slot_concurrency) {}
    std::string key;
    int concurrency;
    aio::Semaphore sem;
    double delay = 0.0;
    bool randomize = true;
    Clock::time_point next_start{};  // no request of the slot starts before this
    int failures = 0;                // failed attempts in a row (the backoff's exponent)
    // Shared: downloads waiting for the cluster's slot (shared_slot), woken one by one as this
    // crawler gives holds back, or by their own timers for the other crawlers' releases.
    std::list<aio::Event*> hold_waiters;
  };
  struct RobotsEntry {
    bool ready = false;
    RobotsTxt rules;
    aio::Event done;
  };
  // RobotsDone: fetch_robots's end, however it ends: the waiters and the pump are woken.
  struct RobotsDone {
    RobotsEntry* entry;
    aio::Event& wake;
    RobotsDone(RobotsEntry* e, aio::Event& w) : entry(e), wake(w) {}
    RobotsDone(const RobotsDone&) = delete;
    RobotsDone& operator=(const RobotsDone&) = delete;
    ~RobotsDone() {
      entry->done.set();
      wake.set();
    }
  };
  // Spawned: what the pump knows of a task it started.
  struct Spawned {
    aio::TaskRef task;
    bool process = false;           // a process() task (counted in alive_)
    std::optional<Request> keep;    // its request, kept with a JOBDIR to requeue on cancellation
    RobotsEntry* robots = nullptr;  // a fetch_robots() task's entry
    std::string lease;              // a process() task's lease in the shared frontier
    bool shared_op = false;  // a shared_op() task: never cancelled (that would drop its call)
  };
  struct Queued {
    int priority;
    int hub;  // hub_class() of its kind of page at push (SCHEDULER_HUBS_FIRST), else 0
    std::uint64_t seq;
    Request request;
  };
  // Fanout: what the pages of one kind (page_kind()) yielded so far (SCHEDULER_HUBS_FIRST).
  struct Fanout {
    std::uint64_t pages = 0;
    std::uint64_t fresh = 0;  // requests they yielded that were new (past the filters)
  };
  // page_kind(url): host and path with each run of digits as '#' ("h/list/#"); the query and
  // fragment left out. A grouping key only, not a URL parse.
  static std::string page_kind(std::string_view url);
  // hub_class(url): 0-4, higher for kinds whose pages yielded more new requests each (4 while a
  // kind has no page yet).
  [[nodiscard]] int hub_class(std::string_view url) const;
  static constexpr int kTopHubClass = 4;
  // learn(url, fresh): one more page of url's kind, which yielded `fresh` new requests.
  void learn(std::string_view url, std::uint64_t fresh);
  // Checked: what schedule() learns from a request's URL alone. A callback's requests are checked
  // on its parse thread, so the loop thread only applies the answers (URL parsing,
  // canonicalization and the SHA-1 were a sixth of its time in a links-only crawl).
  struct Checked {
    std::string error;        // not empty: the URL is unusable, and why
    std::string host;         // the lowercased host (offsite)
    std::string fingerprint;  // request_fingerprint(method, canonical URL, body)
  };
  static Checked check(const Request& request);

  struct ParseResult {
    std::vector<Request> requests;
    std::vector<Checked> checked;  // check() of each request
    std::string error_type;        // set when the callback threw
    std::string error_message;
    std::optional<std::string> close_reason;  // CloseSpider
  };

  void log(std::string_view level, const std::string& line);
  // Scheduling (spider output, start requests, redirects): the filters, then the queue.
  // `checked` is check(request) when the caller has it. True when the request was new (queued,
  // and not a dont_filter request seen before).
  bool schedule(Request request, const Request* parent, bool redirected,
                std::optional<Checked> checked = std::nullopt);
  // The scheduler's storage: the in-memory heap, or the JOBDIR's DiskQueue. push() takes a
  // request past the filters; pop() the next one; queued() counts them.
  // (Shared: `fingerprint` when known; `filter` for schedule()'s requests, whose fingerprint the
  // frontier's dupefilter checks.)
  void push(Request request, std::string fingerprint = {}, bool filter = false);
  std::optional<Request> pop();
  [[nodiscard]] std::size_t queued() const;
  // seen(fingerprint): records it; true if it was seen before (memory or the JOBDIR's SeenSet).
  bool seen(const std::string& fingerprint);
  // open_jobdir() / close_jobdir(): the JOBDIR's files (run()'s start and end).
  void open_jobdir();
  void close_jobdir();
  [[nodiscard]] bool queue_less(const Queued& a, const Queued& b) const;
  Slot& slot_for(const Request& request);
  void close(const std::string& reason, bool now);

  aio::Task<void> process(Request request);
  aio::Task<void> fetch_and_handle(Request request);
  // requeue(request): back to the scheduler unfiltered (a request the closing crawl did not
  // start; the JOBDIR keeps it).
  void requeue(Request request);
  aio::Task<Response> download(Request request);
  // robots_allow(request): whether robots.txt allows it; nullopt when the crawl closed before the
  // origin's robots.txt could be read.
  aio::Task<std::optional<bool>> robots_allow(const Request& request);
  aio::Task<void> fetch_robots(std::string origin, RobotsEntry* entry);
  aio::Task<void> handle(Response response);
  aio::Task<void> handle_failure(std::shared_ptr<Failure> failure);
  static std::shared_ptr<Failure> make_failure(Request request, std::exception_ptr error,
                                               std::string type, std::string message, int status);
  aio::Task<void> run_callback(std::shared_ptr<Response> response, Spider::Callback cb,
                               Spider::Errback eb, std::shared_ptr<Failure> failure);
  bool maybe_retry(const Request& request, const std::string& reason);
  // spawn(task, spawned, on_done): schedules a task the pump keeps track of (it is never awaited:
  // each handles its own errors); its end runs on_done (when given) and rings wake_ (a
  // done-callback, so even a task cancelled before its first step does).
  void spawn(aio::Task<void> task, Spawned spawned, std::function<void(Engine&)> on_done = {});
  // reap(): forgets the tasks that ended: a process task gives back its share of alive_, one
  // cancelled gives its request back to the JOBDIR, a robots task wakes its waiters.
  void reap();
  // schedule_all(requests, parent, checked): schedule() each (with checked[i] when given), an
  // error in one logged and counted.
  void schedule_all(std::vector<Request> requests, const Request* parent,
                    std::vector<Checked> checked = {});
  [[nodiscard]] bool meta_true(const Request& request, const std::string& key) const;
  void writer();
  void log_stats();

  // ---- the shared frontier (Crawler::share): its calls run on shared_io_, one at a time and in
  // the order made, so a page's requests are added before its lease is acknowledged ----
  // shared_sync(): sends what the pump gathered — the outbox (add), then the acks and releases —
  // and asks for more leases when the crawler has room (at most one lease() in flight).
  void shared_sync();
  // shared_op(call, what): awaits a call on shared_io_; a failure is logged and closes the crawl
  // (finish_reason "shared_frontier_error"): the other crawlers go on, our leases expire to them.
  aio::Task<void> shared_op(concur::Future<void> call, std::string what);
  // shared_heartbeat(): renews every lease and slot hold this crawler has (a timer's call).
  void shared_heartbeat();
  // take_leases(batch): a lease() call's answer, on the loop: its requests join leased_; an empty
  // one ends the crawl (nothing outstanding anywhere) or slows the polling.
  void take_leases(LeaseBatch& batch);
  // shared_slot(slot, gap): takes the slot's hold in the frontier (waiting while the cluster's
  // slot is full or spaced); the hold's token. Throws Paused when closing.
  aio::Task<std::string> shared_slot(Slot& slot, double gap);
  // shared_release_slot(slot, token): gives the hold back (fire and forget: a hold that could
  // not be given back expires) and wakes the slot's first waiter of this crawler, whose next ask
  // comes after the release on the frontier's thread.
  void shared_release_slot(Slot& slot, const std::string& token);

  Spider& spider_;
  const Settings& settings_;
  StatsCollector& stats_;
  std::vector<std::shared_ptr<ItemPipeline>> pipelines_;
  LogSink log_;
  std::mutex log_mu_;
  int log_rank_;
  std::string robots_agent_;
  AutoThrottle throttle_;
  bool fifo_ = false;       // SCHEDULER_ORDER == "fifo" (read by every heap comparison)
  bool hubs_first_ = true;  // SCHEDULER_HUBS_FIRST
  std::size_t parse_threads_ = 1;
  std::size_t max_alive_ = 1;
  aio::Loop* loop_ = nullptr;  // set by run(); read by stop() from other threads after that
  // stop() before run() reached its loop is kept and applied then; after the end it is a no-op.
  std::mutex stop_mu_;
  bool running_ = false;                                      // stop_mu_
  bool ended_ = false;                                        // stop_mu_
  std::optional<std::pair<std::string, bool>> pending_stop_;  // stop_mu_

  // ---- loop state (the loop's thread only) ----
  aio::Semaphore global_;      // CONCURRENT_REQUESTS
  aio::Event wake_;            // the pump's doorbell: a task ended, requests arrived, closing
  std::vector<Queued> queue_;  // a binary heap by queue_less (no JOBDIR)
  std::unordered_map<std::string, Fanout> fanout_;  // by page_kind (SCHEDULER_HUBS_FIRST)
  std::uint64_t seq_ = 0;
  std::unordered_set<std::string> seen_;  // (no JOBDIR)
  std::optional<DiskQueue> disk_queue_;   // JOBDIR/requests.sqlite
  std::optional<SeenSet> disk_seen_;      // JOBDIR/seen.sqlite
  bool resumed_ = false;                  // the JOBDIR held a crawl already
  std::unordered_set<std::string> offsite_domains_;
  // shared frontier state (loop thread)
  std::shared_ptr<SharedFrontier> shared_;
  std::optional<ThreadPoolExecutor> shared_io_;         // the frontier's one thread
  std::vector<SharedRequest> outbox_;                   // scheduled, not yet add()ed
  std::deque<std::pair<Request, std::string>> leased_;  // leased, not yet started (request, id)
  std::vector<std::string> to_ack_;
  std::vector<std::string> to_release_;
  std::unordered_map<std::string, std::string> holds_;  // slot holds: token -> slot key
  std::uint64_t next_hold_ = 0;
  std::string crawler_id_;                      // host:pid:random, the prefix of our hold tokens
  bool lease_pending_ = false;                  // a lease() call is on its way
  bool shared_done_ = false;                    // lease() saw nothing queued or leased anywhere
  bool heartbeat_pending_ = false;              // an extend() call is on its way
  std::atomic<bool> shared_add_failed_{false};  // an add() failed (set on the frontier's thread)
  Clock::time_point next_lease_{};     // after an empty lease, poll again no sooner than this
  std::chrono::milliseconds poll_{0};  // the current poll interval (grows while idle)
  aio::Handle poll_timer_;
  std::unordered_map<std::string, std::unique_ptr<Slot>> slots_;
  std::unordered_map<std::string, std::unique_ptr<RobotsEntry>> robots_;
  std::unordered_map<std::uint64_t, Spawned> tasks_;  // alive process / robots tasks
  std::uint64_t next_task_id_ = 0;
  std::size_t alive_ = 0;  // process tasks alive (dequeued, not yet fully handled)
  bool closing_ = false;
  std::string finish_reason_ = "finished";
  std::optional<HttpClient> client_;
  std::optional<ThreadPoolExecutor> pool_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  std::int64_t responses_ = 0;  // response_received_count, for CLOSESPIDER_PAGECOUNT
  std::int64_t callback_errors_ = 0;
  std::uint64_t unflushed_ = 0;  // scheduler operations since the JOBDIR's last flush

  // ---- gauges for progress() (written on the loop's thread, read anywhere) ----
  std::atomic<std::size_t> queued_gauge_{0};
  std::atomic<std::size_t> alive_gauge_{0};
  std::atomic<std::int64_t> started_ns_{0};

  // ---- shared with the parse threads and the writer ----
  Queue<Item> items_;  // bounded: CONCURRENT_ITEMS
  std::atomic<std::int64_t> items_scraped_{0};
};

void Engine::log(std::string_view level, const std::string& line) {
  const int rank = level_rank(level);
  if (rank < log_rank_) return;  // Scrapy counts the records it emits
  stats_.inc_value("log_count/" + std::string(level));
  if (!log_) return;
  std::scoped_lock lock(log_mu_);
  log_(level, line);
}

bool Engine::queue_less(const Queued& a, const Queued& b) const {
  // std::push_heap keeps the greatest on top: the highest priority, then the newest (LIFO, Scrapy's
  // default queues) or the oldest (FIFO).
  if (a.priority != b.priority) return a.priority < b.priority;
  if (a.hub != b.hub) return a.hub < b.hub;
  return fifo_ ? a.seq > b.seq : a.seq < b.seq;
}

std::string Engine::page_kind(std::string_view url) {
  std::size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  const std::size_t end = url.find_first_of("?#", start);
  const std::string_view rest =
      url.substr(start, end == std::string_view::npos ? url.npos : end - start);
  std::string kind;
  kind.reserve(rest.size());
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] >= '0' && rest[i] <= '9') {
      if (kind.empty() || kind.back() != '#') kind += '#';
    } else {
      kind += rest[i];
    }
  }
  return kind;
}

int Engine::hub_class(std::string_view url) const {
  // A kind not seen yet ranks first: one fetch tells what it yields (a chain's second page is
  // usually queued before its first was parsed).
  const auto it = fanout_.find(page_kind(url));
  if (it == fanout_.end() || it->second.pages == 0) return kTopHubClass;
  const double per_page =
      static_cast<double>(it->second.fresh) / static_cast<double>(it->second.pages);
  if (per_page < 0.5) return 0;
  if (per_page < 2) return 1;
  if (per_page < 8) return 2;
  if (per_page < 32) return 3;
  return kTopHubClass;
}

void Engine::push(Request request, std::string fingerprint, bool filter) {
  if (shared_) {
    // To the outbox, which shared_sync() adds to the frontier. `filter`: the frontier's
    // dupefilter decides (schedule()); else queued whatever it says (a retry, a requeue).
    if (fingerprint.empty()) fingerprint = check(request).fingerprint;
    SharedRequest out;
    out.fingerprint = std::move(fingerprint);
    out.priority = request.priority;
    out.subpriority = hubs_first_ ? hub_class(request.url) : 0;
    out.dont_filter = !filter || request.dont_filter;
    out.blob = dump_request(request);
    outbox_.push_back(std::move(out));
    wake_.set();
    return;
  }
  if (disk_queue_) {
    disk_queue_->push(dump_request(request), request.priority);
    stats_.inc_value("scheduler/enqueued");
    stats_.inc_value("scheduler/enqueued/disk");
    // The queue and the seen-set commit on their own; flushing the queue before the seen-set
    // every kFlushEvery operations bounds what a crash (kill -9) can lose to that many requests
    // whose fingerprints were kept but whose queue rows were not.
    constexpr std::uint64_t kFlushEvery = 1000;
    if (++unflushed_ >= kFlushEvery) {
      unflushed_ = 0;
      disk_queue_->flush();
      disk_seen_->flush();
    }
  } else {
    const int priority = request.priority;
    const int hub = hubs_first_ ? hub_class(request.url) : 0;
    queue_.push_back(Queued{priority, hub, seq_++, std::move(request)});
    std::push_heap(queue_.begin(), queue_.end(),
                   [this](const Queued& a, const Queued& b) { return queue_less(a, b); });
    stats_.inc_value("scheduler/enqueued");
    stats_.inc_value("scheduler/enqueued/memory");
  }
  queued_gauge_.store(queued(), std::memory_order_relaxed);
  wake_.set();
}

std::optional<Request> Engine::pop() {
  std::optional<Request> out;
  if (disk_queue_) {
    for (;;) {
      std::optional<std::string> blob = disk_queue_->pop();
      if (!blob) return out;
      try {
        out = load_request(*blob);
        break;
      } catch (const ValueError& e) {
        stats_.inc_value("scheduler/unreadable");
        log("ERROR", std::string("Skipping an unreadable request in the JOBDIR: ") + e.what());
      }
    }
    stats_.inc_value("scheduler/dequeued/disk");
  } else {
    if (queue_.empty()) return out;
    std::pop_heap(queue_.begin(), queue_.end(),
                  [this](const Queued& a, const Queued& b) { return queue_less(a, b); });
    out = std::move(queue_.back().request);
    queue_.pop_back();
    stats_.inc_value("scheduler/dequeued/memory");
  }
  stats_.inc_value("scheduler/dequeued");
  queued_gauge_.store(queued(), std::memory_order_relaxed);
  return out;
}

std::size_t Engine::queued() const {
  if (shared_) return leased_.size();
  return disk_queue_ ? disk_queue_->size() : queue_.size();
}

bool Engine::seen(const std::string& fingerprint) {
  return disk_seen_ ? !disk_seen_->insert(fingerprint) : !seen_.insert(fingerprint).second;
}

void Engine::open_jobdir() {
  if (settings_.jobdir.empty()) return;
  const std::filesystem::path dir(settings_.jobdir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw OSError(ec.value(), "JOBDIR " + dir.string() + ": " + ec.message());
  disk_queue_.emplace(dir / kRequestsFile);
  disk_seen_.emplace(dir / kSeenFile);
  resumed_ = disk_queue_->size() > 0 || disk_seen_->size() > 0;
  if (resumed_) {
    log("INFO", "Resuming crawl from " + dir.string() + " (" + std::to_string(disk_queue_->size()) +
                    " requests scheduled, " + std::to_string(disk_seen_->size()) + " seen)");
  }
}

void Engine::close_jobdir() {
  std::exception_ptr error;
  if (disk_queue_) {
    try {
      const std::size_t left = disk_queue_->size();
      disk_queue_->close();  // the queue first: a request kept is never lost for a fingerprint
      if (left > 0) {
        log("INFO", "Paused: " + std::to_string(left) + " requests kept in " + settings_.jobdir);
      }
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (disk_seen_) {
    try {
      disk_seen_->close();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

Engine::Checked Engine::check(const Request& request) {
  Checked c;
  try {
    crawl::detail::HttpUrl url = crawl::detail::check_http_url(request.url);
    c.host = std::move(url.host);
    c.fingerprint = request_fingerprint(request.method, url.canonical, request.body);
  } catch (const ValueError& e) {
    c.error = e.what();
  }
  return c;
}

bool Engine::schedule(Request request, const Request* parent, bool redirected,
                      std::optional<Checked> checked) {
  if (parent != nullptr && !redirected) {
    // DepthMiddleware: one level below the page it was found on.
    request.depth = parent->depth + 1;
    request.priority -= request.depth * settings_.depth_priority;
    if (settings_.depth_limit > 0 && request.depth > settings_.depth_limit) {
      log("DEBUG",
          "Ignoring link (depth > " + std::to_string(settings_.depth_limit) + "): " + request.url);
      return false;
    }
    stats_.max_value("request_depth_max", request.depth);
    if (settings_.depth_stats_verbose) {
      stats_.inc_value("request_depth_count/" + std::to_string(request.depth));
    }
  }
  if (settings_.urllength_limit > 0 &&
      request.url.size() > static_cast<std::size_t>(settings_.urllength_limit)) {
    stats_.inc_value("urllength/request_ignored_count");
    log("DEBUG", "Ignoring link (url length > " + std::to_string(settings_.urllength_limit) +
                     "): " + request.url.substr(0, 200));
    return false;
  }
  if (!checked) checked = check(request);
  if (!checked->error.empty()) {
    stats_.inc_value("scheduler/invalid_url");
    log("WARNING", "Ignoring request <" + request.url.substr(0, 200) + ">: " + checked->error);
    return false;
  }
  if (!request.dont_filter && !spider_.allowed_domains.empty() &&
      !host_is_from_any_domain(checked->host, spider_.allowed_domains)) {
    stats_.inc_value("offsite/filtered");
    if (offsite_domains_.insert(checked->host).second) {
      stats_.inc_value("offsite/domains");
      log("DEBUG", "Filtered offsite request to '" + checked->host + "': <" + request.url + ">");
    }
    return false;
  }
  if (shared_) {  // the frontier's dupefilter decides, in shared_sync()
    push(std::move(request), std::move(checked->fingerprint), /*filter=*/true);
    return true;
  }
  // A dont_filter request is scheduled even when seen, but is remembered too (Scrapy does not
  // record it, so a link back to a start URL fetches the start page a second time).
  const bool fresh = !seen(checked->fingerprint);
  if (!fresh && !request.dont_filter) {
    stats_.inc_value("dupefilter/filtered");
    return false;
  }
  push(std::move(request));
  return fresh;
}

Engine::Slot& Engine::slot_for(const Request& request) {
  const std::string key =
      request.download_slot.empty() ? url_host(request.url) : request.download_slot;
  auto it = slots_.find(key);
  if (it != slots_.end()) return *it->second;
  int concurrency = settings_.concurrent_requests_per_domain;
  double delay = settings_.download_delay;
  bool randomize = settings_.randomize_download_delay;
  if (const auto o = settings_.download_slots.find(key); o != settings_.download_slots.end()) {
    concurrency = o->second.concurrency.value_or(concurrency);
    delay = o->second.delay.value_or(delay);
    randomize = o->second.randomize_delay.value_or(randomize);
  }
  auto slot = std::make_unique<Slot>(key, concurrency);
  slot->delay = settings_.autothrottle_enabled
                    ? std::max(delay, throttle_.start_delay(settings_.autothrottle_start_delay))
                    : delay;
  slot->randomize = randomize;
  return *slots_.emplace(key, std::move(slot)).first->second;
}

void Engine::close(const std::string& reason, bool now) {
  if (!closing_) {
    closing_ = true;
    finish_reason_ = reason;
    log("INFO", "Closing spider (" + reason + ")");
  }
  if (now) {
    for (auto& [id, spawned] : tasks_) {
      if (!spawned.shared_op) (void)spawned.task.cancel("crawl stopped");
    }
  }
  wake_.set();
}

void Engine::stop(std::string reason, bool now) {
  {
    std::scoped_lock lock(stop_mu_);
    if (ended_) return;
    if (!running_) {  // run() applies it once its loop state exists
      const bool was_now = pending_stop_ && pending_stop_->second;
      pending_stop_.emplace(std::move(reason), now || was_now);
      return;
    }
  }
  try {
    loop_->call_soon_threadsafe([weak = weak_from_this(), reason = std::move(reason), now] {
      if (auto self = weak.lock()) self->close(reason, now);
    });
  } catch (const RuntimeError&) {
    // the loop closed: the crawl is over
  }
}

Progress Engine::progress() const {
  Progress p;
  p.pages = stats_.get_int("response_received_count");
  p.items = stats_.get_int("item_scraped_count");
  p.requests = stats_.get_int("downloader/request_count");
  std::int64_t errors = stats_.get_int("downloader/exception_count");
  const nlohmann::json all = stats_.get_stats();  // named: items() would outlive a temporary
  for (const auto& [key, value] : all.items()) {
    if (key.rfind("spider_exceptions/", 0) == 0 && value.is_number_integer()) {
      errors += value.get<std::int64_t>();
    }
  }
  p.errors = errors;
  p.queued = queued_gauge_.load(std::memory_order_relaxed);
  p.in_progress = alive_gauge_.load(std::memory_order_relaxed);
  const std::int64_t started = started_ns_.load();
  if (started != 0) {
    p.elapsed =
        std::chrono::duration<double>(Clock::now().time_since_epoch() - Clock::duration(started))
            .count();
  }
  return p;
}

void Engine::spawn(aio::Task<void> task, Spawned spawned, std::function<void(Engine&)> on_done) {
  aio::ScheduledTask<void> scheduled = loop_->create_task(std::move(task));
  std::weak_ptr<Engine> weak = weak_from_this();
  scheduled.add_done_callback(
      [weak, on_done = std::move(on_done)](const aio::Task<void>& /*done*/) {
        if (auto self = weak.lock()) {
          if (on_done) on_done(*self);
          self->wake_.set();
        }
      });
  spawned.task = std::move(scheduled);
  tasks_.emplace(next_task_id_++, std::move(spawned));
}

void Engine::reap() {
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    Spawned& t = it->second;
    if (!t.task.done()) {
      ++it;
      continue;
    }
    if (t.process) --alive_;
    if (t.keep && t.task.cancelled()) requeue(std::move(*t.keep));
    if (!t.lease.empty()) {  // handled (its requests are in the outbox): ack; cancelled: release
      (t.task.cancelled() ? to_release_ : to_ack_).push_back(std::move(t.lease));
    }
    if (t.robots != nullptr) t.robots->done.set();  // cancelled before it could say so
    it = tasks_.erase(it);
  }
  alive_gauge_.store(alive_, std::memory_order_relaxed);
}

void Engine::schedule_all(std::vector<Request> requests, const Request* parent,
                          std::vector<Checked> checked) {
  std::uint64_t fresh = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    try {
      std::optional<Checked> c;
      if (i < checked.size()) c = std::move(checked[i]);
      if (schedule(std::move(requests[i]), parent, false, std::move(c))) ++fresh;
    } catch (const std::exception& e) {
      stats_.inc_value("scheduler/errors");
      log("ERROR", std::string("Cannot schedule a request: ") + e.what());
    }
  }
  // The parent's kind learns what it yielded (its children were queued by what the kind's
  // earlier pages yielded).
  if (parent != nullptr) learn(parent->url, fresh);
}

// learn: SCHEDULER_HUBS_FIRST's table. Every fetch that ends teaches its kind: a callback's or
// errback's output (schedule_all), a redirect (its target), a failure no errback handles (none).
// A bounded table: kinds past kMaxKinds are not learned (they stay "unknown").
void Engine::learn(std::string_view url, std::uint64_t fresh) {
  constexpr std::size_t kMaxKinds = 10'000;
  if (!hubs_first_) return;
  std::string kind = page_kind(url);
  auto it = fanout_.find(kind);
  if (it == fanout_.end()) {
    if (fanout_.size() >= kMaxKinds) return;
    it = fanout_.emplace(std::move(kind), Fanout{}).first;
  }
  ++it->second.pages;
  it->second.fresh += fresh;
}

bool Engine::meta_true(const Request& request, const std::string& key) const {
  const auto it = request.meta.find(key);
  if (it == request.meta.end()) return false;
  const std::string& v = it->second;
  return !(v.empty() || v == "0" || v == "false" || v == "False");
}

// download(request): one fetch through the request's slot: the slot's concurrency, then a global
// permit, then the slot's spacing (DOWNLOAD_DELAY, randomized; AutoThrottle's delay; a backoff
// rest), so two starts in a slot are never closer than its delay. Counts the downloader/* stats
// and adjusts the slot after the answer. Throws the fetch's error.
aio::Task<Response> Engine::download(Request request) {
  // Closing: what has not started stays unstarted (a stop finishes the fetches in flight only).
  // The spacing sleeps in steps of kClosingCheck, so a stop is not held up by a long delay or a
  // Retry-After rest.
  constexpr auto kClosingCheck = std::chrono::milliseconds(250);
  if (closing_) throw Paused{};
  Slot& slot = slot_for(request);
  auto slot_permit = co_await slot.sem.scoped();
  auto global_permit = co_await global_.scoped();
  for (;;) {
    if (closing_) throw Paused{};
    const Clock::time_point now = Clock::now();
    if (now >= slot.next_start) break;
    co_await aio::sleep_until(std::min(slot.next_start, now + kClosingCheck));
  }
  // DOWNLOAD_FAIL_ON_DATALOSS: off, a cut body is a response (Response::dataloss) not an error.
  request.fail_on_dataloss = request.fail_on_dataloss && settings_.download_fail_on_dataloss;
  const double gap =
      slot.randomize && slot.delay > 0 ? randomized_delay(slot.delay, uniform_(rng_)) : slot.delay;
  // Shared: the cluster's slot too (its concurrency and spacing count every crawler's starts).
  std::string hold;
  if (shared_) hold = co_await shared_slot(slot, gap);
  struct HoldRelease {
    Engine* engine;
    Slot& slot;
    const std::string& token;
    ~HoldRelease() {
      if (!token.empty()) engine->shared_release_slot(slot, token);
    }
  } hold_release{this, slot, hold};
  slot.next_start = Clock::now() + std::chrono::duration_cast<Clock::duration>(seconds(gap));

  stats_.inc_value("downloader/request_count");
  stats_.inc_value("downloader/request_method_count/" + request.method);
  Response response;
  try {
    response = co_await client_->fetch(request);
  } catch (const CancelledError&) {
    throw;
  } catch (const std::exception& e) {
    stats_.inc_value("downloader/exception_count");
    stats_.inc_value("downloader/exception_type_count/" + type_name(e));
    // Only what a retry may cure says the host struggles (one oversized file does not).
    if (retryable(std::current_exception())) {
      ++slot.failures;
      const double rest = backoff_delay(slot.failures, settings_.retry_backoff_base,
                                        settings_.retry_backoff_max, uniform_(rng_));
      slot.next_start =
          std::max(slot.next_start,
                   Clock::now() + std::chrono::duration_cast<Clock::duration>(seconds(rest)));
    }
    throw;
  }
  if (response.size_warning) {
    stats_.inc_value("downloader/response_size_warning_count");
    log("WARNING",
        "Received " + std::to_string(response.body.size()) + " bytes (DOWNLOAD_WARNSIZE is " +
            std::to_string(settings_.download_warnsize) + ") from <" + request.url + ">");
  }
  if (response.dataloss) {
    stats_.inc_value("downloader/response_dataloss_count");
    log("WARNING", "Got data loss in <" + request.url + ">: the body was cut short");
  }
  stats_.inc_value("downloader/response_count");
  stats_.inc_value("downloader/response_status_count/" + std::to_string(response.status));
  stats_.inc_value("downloader/response_bytes",
                   static_cast<std::int64_t>(response.bytes_downloaded + response.header_bytes));

  const bool failed =
      std::find(settings_.retry_http_codes.begin(), settings_.retry_http_codes.end(),
                response.status) != settings_.retry_http_codes.end();
  if (failed) {
    ++slot.failures;
    double rest = backoff_delay(slot.failures, settings_.retry_backoff_base,
                                settings_.retry_backoff_max, uniform_(rng_));
    if (response.status == 429 || response.status == 503) {
      if (const auto value = response.headers.get("Retry-After")) {
        if (const auto asked = parse_retry_after(*value, std::chrono::system_clock::now())) {
          rest = std::min(*asked, settings_.retry_after_max);
          stats_.inc_value("retry/retry_after_count");
        }
      }
    }
    slot.next_start = std::max(
        slot.next_start, Clock::now() + std::chrono::duration_cast<Clock::duration>(seconds(rest)));
  } else {
    slot.failures = 0;
  }
  if (settings_.autothrottle_enabled) {
    const double latency = std::chrono::duration<double>(response.timing.latency).count();
    const double before = slot.delay;
    slot.delay = throttle_.adjust(slot.delay, latency, response.status);
    if (settings_.autothrottle_debug) {
      char line[200];
      std::snprintf(line, sizeof line,
                    "slot: %s | delay:%5d ms (%+d) | latency:%5d ms | size:%6zu bytes",
                    url_host(request.url).c_str(), static_cast<int>(slot.delay * 1000),
                    static_cast<int>((slot.delay - before) * 1000),
                    static_cast<int>(latency * 1000), response.body.size());
      log("INFO", line);
    }
  }
  co_return response;
}

aio::Task<void> Engine::fetch_robots(std::string origin, RobotsEntry* entry) {
  const RobotsDone done(entry, wake_);
  // RFC 9309 §2.3.1: a 4xx allows everything; a 5xx (or no answer) disallows everything — after
  // the retries, which the slot's backoff spaces, so pages of the origin wait rather than fail.
  Request request(robots_txt_url(origin));
  request.follow_redirects = true;
  request.max_redirects = 5;  // RFC 9309 §2.3.1.2: at least five
  RobotsTxt rules = RobotsTxt::disallow_all();
  bool unreachable = true;
  for (int attempt = 0; attempt <= settings_.retry_times; ++attempt) {
    stats_.inc_value("robotstxt/request_count");
    bool give_up = false;
    try {
      Response response = co_await download(request);
      stats_.inc_value("robotstxt/response_count");
      stats_.inc_value("robotstxt/response_status_count/" + std::to_string(response.status));
      const RobotsPolicy policy = robots_policy_for_status(response.status);
      unreachable = policy == RobotsPolicy::kDisallowAll;
      if (!unreachable || attempt == settings_.retry_times) {
        rules = RobotsTxt::from_response(response.status, response.body);
        break;
      }
    } catch (const CancelledError&) {
      throw;
    } catch (const Paused&) {
      // Closing before robots.txt was read: the entry stays unready, the waiting pages go back
      // to the scheduler (robots_allow gives them nullopt), the next run asks again.
      co_return;
    } catch (const std::exception& e) {
      stats_.inc_value("robotstxt/exception_count/" + type_name(e));
      give_up = !retryable(std::current_exception());  // a TLS failure will not pass on retry
      log(attempt == settings_.retry_times || give_up ? "ERROR" : "DEBUG",
          "Error downloading <" + request.url + ">: " + e.what());
    }
    if (give_up) break;
  }
  if (settings_.robotstxt_crawl_delay) {
    if (const auto delay = rules.crawl_delay(robots_agent_)) {
      Slot& slot = slot_for(request);
      slot.delay = std::max(slot.delay, *delay);
    }
  }
  if (unreachable) {
    log("WARNING", "robots.txt of " + origin +
                       " could not be read: nothing there is crawled (RFC 9309: unreachable)");
  }
  entry->rules = std::move(rules);
  entry->ready = true;
}

aio::Task<std::optional<bool>> Engine::robots_allow(const Request& request) {
  const std::string origin = url_origin(request.url);
  std::unique_ptr<RobotsEntry>& slot = robots_[origin];
  if (!slot) {
    slot = std::make_unique<RobotsEntry>();
    Spawned spawned;
    spawned.robots = slot.get();
    spawn(fetch_robots(origin, slot.get()), std::move(spawned));
  }
  RobotsEntry* entry = slot.get();
  if (!entry->ready) co_await entry->done.wait();
  if (!entry->ready) co_return std::nullopt;  // the fetch gave up: the crawl is closing
  co_return entry->rules.can_fetch(request.url, robots_agent_);
}

bool Engine::maybe_retry(const Request& request, const std::string& reason) {
  if (!settings_.retry_enabled || meta_true(request, "dont_retry")) return false;
  if (request.retry_times >= settings_.retry_times) {
    stats_.inc_value("retry/max_reached");
    log("ERROR", "Gave up retrying <" + request.method + " " + request.url + "> (failed " +
                     std::to_string(request.retry_times + 1) + " times): " + reason);
    return false;
  }
  Request again = request;
  ++again.retry_times;
  again.priority += settings_.retry_priority_adjust;
  again.dont_filter = true;
  stats_.inc_value("retry/count");
  stats_.inc_value("retry/reason_count/" + reason);
  log("DEBUG", "Retrying <" + request.method + " " + request.url + "> (failed " +
                   std::to_string(again.retry_times) + " times): " + reason);
  push(std::move(again));
  return true;
}

// process(request): one dequeued request to its end. The pump counted it in alive_ and reap()
// gives that back; with a JOBDIR, reap() also requeues it when it was cancelled (the spawn kept a
// copy), so a stop(reason, true) loses nothing (a page whose download had completed may be
// fetched again by the next run). No error leaves the task: nobody awaits it.
aio::Task<void> Engine::process(Request request) {
  const std::string url = request.url;
  std::string error;
  try {
    co_await fetch_and_handle(std::move(request));
  } catch (const CancelledError&) {
    throw;
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "a non-standard exception";
  }
  if (!error.empty()) {
    stats_.inc_value("engine/errors");
    log("ERROR", "Error processing <" + url + ">: " + error);
  }
}

void Engine::requeue(Request request) {
  try {
    stats_.inc_value("scheduler/requeued");
    push(std::move(request));
  } catch (const std::exception& e) {
    log("ERROR", std::string("Cannot keep <") + request.url + "> for the next run: " + e.what());
  }
}

aio::Task<void> Engine::fetch_and_handle(Request request) {
  std::optional<bool> allowed = true;
  if (settings_.robotstxt_obey) allowed = co_await robots_allow(request);
  if (!allowed) {  // closing before robots.txt was read
    requeue(std::move(request));
    co_return;
  }
  if (!*allowed && closing_) {  // nothing can be decided while closing: keep it for later
    requeue(std::move(request));
    co_return;
  }
  if (!*allowed) {
    stats_.inc_value("robotstxt/forbidden");
    log("DEBUG", "Forbidden by robots.txt: <" + request.method + " " + request.url + ">");
    auto error = std::make_exception_ptr(Error("IgnoreRequest: forbidden by robots.txt"));
    auto failure =
        make_failure(std::move(request), error, "IgnoreRequest", "Forbidden by robots.txt", 0);
    co_await handle_failure(std::move(failure));
    co_return;
  }
  Response response;
  std::shared_ptr<Failure> failure;
  bool paused = false;
  try {
    response = co_await download(request);
  } catch (const CancelledError&) {
    throw;
  } catch (const Paused&) {
    paused = true;
  } catch (const std::exception& e) {
    const std::exception_ptr error = std::current_exception();
    std::string type = type_name(e);
    if (retryable(error) && maybe_retry(request, type)) co_return;
    log("ERROR", "Error downloading <" + request.method + " " + request.url + ">: " + e.what());
    failure = make_failure(std::move(request), error, std::move(type), e.what(), 0);
  }
  if (paused) {
    requeue(std::move(request));
    co_return;
  }
  if (failure) {  // (no co_await inside a catch block)
    co_await handle_failure(std::move(failure));
    co_return;
  }
  response.request = std::move(request);
  co_await handle(std::move(response));
}

// handle(response): retries, redirects, HTTP errors, then the callback.
aio::Task<void> Engine::handle(Response response) {
  const Request& request = response.request;
  const int status = response.status;
  const bool retry_code =
      std::find(settings_.retry_http_codes.begin(), settings_.retry_http_codes.end(), status) !=
      settings_.retry_http_codes.end();
  if (retry_code) {
    std::string reason = std::to_string(status);
    if (!response.reason.empty()) reason += " " + response.reason;
    if (maybe_retry(request, reason)) co_return;
  }
  if (settings_.redirect_enabled && is_redirect(status) && !response.redirect_url.empty() &&
      !meta_true(request, "dont_redirect") && !meta_true(request, "handle_httpstatus_all")) {
    if (request.redirect_times >= settings_.redirect_max_times) {
      stats_.inc_value("redirect/max_reached");
      log("DEBUG", "Discarding <" + request.url + ">: max redirections reached");
      auto error = std::make_exception_ptr(
          TooManyRedirects(0, "max redirections (" + std::to_string(request.redirect_times) +
                                  ") reached at " + request.url));
      auto failure =
          make_failure(request, error, "TooManyRedirects", "max redirections reached", status);
      co_await handle_failure(std::move(failure));
      co_return;
    }
    Request next = request;
    next.url = response.redirect_url;
    ++next.redirect_times;
    next.priority += settings_.redirect_priority_adjust;
    if (((status == 302 || status == 303) && next.method != "HEAD") ||
        (status == 301 && next.method == "POST")) {
      next.method = "GET";
      next.body.clear();
      for (const char* h : {"Content-Type", "Content-Length", "Content-Encoding"}) {
        (void)next.headers.remove(h);
      }
    }
    // Credentials stay with the origin they were meant for (Scrapy drops them the same way).
    try {
      if (url_origin(next.url) != url_origin(request.url)) {
        for (const char* h : {"Authorization", "Cookie", "Proxy-Authorization"}) {
          (void)next.headers.remove(h);
        }
      }
    } catch (const ValueError&) {
      // schedule() refuses the URL and counts it
    }
    stats_.inc_value("redirect/count");
    log("DEBUG", "Redirecting (" + std::to_string(status) + ") to <" + next.url + "> from <" +
                     request.url + ">");
    const std::string from = request.url;
    learn(from, schedule(std::move(next), &request, /*redirected=*/true) ? 1 : 0);
    co_return;
  }
  ++responses_;
  stats_.inc_value("response_received_count");
  if (settings_.closespider_pagecount > 0 && responses_ >= settings_.closespider_pagecount) {
    close("closespider_pagecount", false);
  }
  const bool ok = status >= 200 && status < 300;
  const bool allowed =
      ok || settings_.httperror_allow_all || meta_true(request, "handle_httpstatus_all") ||
      std::find(settings_.httperror_allowed_codes.begin(), settings_.httperror_allowed_codes.end(),
                status) != settings_.httperror_allowed_codes.end();
  if (!allowed) {
    stats_.inc_value("httperror/response_ignored_count");
    stats_.inc_value("httperror/response_ignored_status_count/" + std::to_string(status));
    log("INFO", "Ignoring response <" + std::to_string(status) + " " + response.url +
                    ">: HTTP status code is not handled or not allowed");
    auto error = std::make_exception_ptr(Error("HttpError: HTTP status " + std::to_string(status)));
    auto failure = make_failure(request, error, "HttpError", "Ignoring non-200 response", status);
    co_await handle_failure(std::move(failure));
    co_return;
  }
  Spider::Callback cb;
  try {
    cb = spider_.find_callback(request.callback);
  } catch (const ValueError& e) {
    stats_.inc_value("spider_exceptions/ValueError");
    ++callback_errors_;
    log("ERROR", std::string("Spider error processing <") + response.url + ">: " + e.what());
    co_return;
  }
  auto shared = std::make_shared<Response>(std::move(response));
  Spider::Errback none;
  co_await run_callback(std::move(shared), std::move(cb), std::move(none), nullptr);
}

std::shared_ptr<Failure> Engine::make_failure(Request request, std::exception_ptr error,
                                              std::string type, std::string message, int status) {
  auto failure = std::make_shared<Failure>();
  failure->request = std::move(request);
  failure->error = std::move(error);
  failure->type = std::move(type);
  failure->message = std::move(message);
  failure->status = status;
  return failure;
}

aio::Task<void> Engine::handle_failure(std::shared_ptr<Failure> failure) {
  Spider::Errback eb;
  try {
    eb = spider_.find_errback(failure->request.errback);
  } catch (const ValueError& e) {
    stats_.inc_value("spider_exceptions/ValueError");
    log("ERROR", e.what());
    co_return;
  }
  if (!eb) {
    learn(failure->request.url, 0);
    co_return;
  }
  Spider::Callback none;
  co_await run_callback(nullptr, std::move(none), std::move(eb), std::move(failure));
}

// run_callback: the spider's code on a parse thread (a callback with its response, or an errback
// with its failure); its items go to the writer from that thread (blocking while CONCURRENT_ITEMS
// wait: back-pressure), its requests come back here to be scheduled.
aio::Task<void> Engine::run_callback(std::shared_ptr<Response> response, Spider::Callback cb,
                                     Spider::Errback eb, std::shared_ptr<Failure> failure) {
  auto job = [this, response, cb = std::move(cb), eb = std::move(eb), failure]() {
    ParseResult result;
    Output out;
    try {
      if (response) {
        cb(*response, out);
      } else {
        eb(*failure, out);
      }
    } catch (const CloseSpider& e) {
      result.close_reason = e.reason();
    } catch (const std::exception& e) {
      result.error_type = type_name(e);
      result.error_message = e.what();
    } catch (...) {
      result.error_type = "unknown";
      result.error_message = "a non-standard exception";
    }
    // The parsed page goes here, on the parse thread (freeing a DOM is ~8% of the loop thread's
    // time otherwise); the loop only reads the response's request afterwards.
    if (response) response->parsed.reset();
    // What was yielded before an exception still counts (a generator's earlier yields do).
    for (Item& item : out.items()) {
      try {
        items_.put(std::move(item));
      } catch (const ShutDown&) {
        break;  // stopped now: the writer is gone
      }
    }
    result.requests = std::move(out.requests());
    result.checked.reserve(result.requests.size());
    for (const Request& request : result.requests) result.checked.push_back(check(request));
    return result;
  };
  concur::Future<ParseResult> future = pool_->submit(std::move(job));
  ParseResult result = co_await std::move(future);
  const Request* parent = response ? &response->request : &failure->request;
  if (!result.error_type.empty()) {
    ++callback_errors_;
    stats_.inc_value("spider_exceptions/" + result.error_type);
    log("ERROR", "Spider error processing <" + parent->url + ">: " + result.error_message);
    if (settings_.closespider_errorcount > 0 &&
        callback_errors_ >= settings_.closespider_errorcount) {
      close("closespider_errorcount", false);
    }
  }
  if (result.close_reason) close(*result.close_reason, false);
  schedule_all(std::move(result.requests), parent, std::move(result.checked));
}

// writer(): the pipelines' thread. A pipeline that fails to open ends the crawl (finish_reason
// "error", the exception out of run()) and releases the parse threads at once (the item queue
// shuts down immediately, so a put() waiting for room throws ShutDown); every pipeline that
// opened is closed, even after another's close_spider threw (the first error is rethrown).
void Engine::writer() {
  std::exception_ptr error;
  std::size_t opened = 0;
  try {
    for (auto& p : pipelines_) {
      p->open_spider(spider_);
      ++opened;
    }
  } catch (...) {
    error = std::current_exception();
    log("ERROR", "A pipeline failed to open: " + what_of(error));
    items_.shutdown(true);
    stop("error", false);
  }
  while (!error) {
    Item item;
    try {
      item = items_.get();
    } catch (const ShutDown&) {
      break;
    }
    bool dropped = false;
    for (auto& p : pipelines_) {
      try {
        p->process_item(item, spider_);
      } catch (const DropItem& e) {
        stats_.inc_value("item_dropped_count");
        stats_.inc_value("item_dropped_reasons_count/DropItem");
        log("WARNING", std::string("Dropped: ") + e.what());
        dropped = true;
      } catch (const std::exception& e) {
        stats_.inc_value("item_dropped_count");
        stats_.inc_value("item_dropped_reasons_count/" + type_name(e));
        log("ERROR", std::string("Error processing item: ") + e.what());
        dropped = true;
      } catch (...) {
        stats_.inc_value("item_dropped_count");
        log("ERROR", "Error processing item: a non-standard exception");
        dropped = true;
      }
      if (dropped) break;
    }
    if (dropped) continue;
    stats_.inc_value("item_scraped_count");
    const std::int64_t n = items_scraped_.fetch_add(1) + 1;
    if (settings_.closespider_itemcount > 0 && n == settings_.closespider_itemcount) {
      stop("closespider_itemcount", false);
    }
  }
  for (std::size_t i = 0; i < opened; ++i) {
    try {
      pipelines_[i]->close_spider(spider_);
    } catch (...) {
      log("ERROR", "A pipeline failed to close: " + what_of(std::current_exception()));
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// ---- the shared frontier ----

aio::Task<void> Engine::shared_op(concur::Future<void> call, std::string what) {
  std::string error;
  try {
    co_await std::move(call);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    stats_.inc_value("shared/errors");
    log("ERROR", "Shared frontier: " + what + " failed: " + error);
    close("shared_frontier_error", false);
  }
}

void Engine::shared_sync() {
  if (!shared_) return;
  // One call per batch, in this order: a page's requests reach the frontier before its ack.
  if (!outbox_.empty()) {
    auto batch = std::make_shared<std::vector<SharedRequest>>(std::move(outbox_));
    outbox_.clear();
    StatsCollector* stats = &stats_;
    SharedFrontier* frontier = shared_.get();
    std::atomic<bool>* failed = &shared_add_failed_;
    concur::Future<void> call = shared_io_->submit([frontier, stats, batch, failed] {
      std::vector<bool> fresh;
      try {
        fresh = frontier->add(*batch);
      } catch (...) {
        failed->store(true);
        throw;
      }
      for (std::size_t i = 0; i < batch->size() && i < fresh.size(); ++i) {
        if (fresh[i] || (*batch)[i].dont_filter) {
          stats->inc_value("scheduler/enqueued");
          stats->inc_value("scheduler/enqueued/shared");
        } else {
          stats->inc_value("dupefilter/filtered");
        }
      }
    });
    Spawned spawned;
    spawned.shared_op = true;
    spawn(shared_op(std::move(call), "add"), std::move(spawned));
    // Our own requests are there to lease now (the next lease() runs after this add).
    poll_ = std::chrono::milliseconds(0);
    next_lease_ = {};
  }
  if (!to_ack_.empty() || !to_release_.empty()) {
    SharedFrontier* frontier = shared_.get();
    std::atomic<bool>* add_failed = &shared_add_failed_;
    concur::Future<void> call = shared_io_->submit(
        [frontier, add_failed, acks = std::move(to_ack_), releases = std::move(to_release_)] {
          // After a failed add, no ack: the requests a page yielded may be lost, so its lease
          // must expire to another crawler, which fetches the page again.
          if (add_failed->load()) return;
          if (!acks.empty()) frontier->ack(acks);
          if (!releases.empty()) frontier->release(releases);
        });
    to_ack_.clear();
    to_release_.clear();
    Spawned spawned;
    spawned.shared_op = true;
    spawn(shared_op(std::move(call), "ack"), std::move(spawned));
    // Ours were perhaps the last leases anywhere: ask (the next lease() says whether it is over).
    poll_ = std::chrono::milliseconds(0);
    next_lease_ = {};
  }
  const std::size_t held = alive_ + leased_.size();
  if (closing_ || shared_done_ || lease_pending_ || held >= max_alive_) return;
  const Clock::time_point now = Clock::now();
  if (now < next_lease_) return;  // poll_timer_ rings wake_ then
  lease_pending_ = true;
  SharedFrontier* frontier = shared_.get();
  const std::size_t want = max_alive_ - held;
  auto batch = std::make_shared<LeaseBatch>();
  concur::Future<void> call =
      shared_io_->submit([frontier, want, batch] { *batch = frontier->lease(want); });
  // What the batch brings is applied on the loop when the call's task ends (shared_op only awaits
  // and reports): take_leases().
  Spawned spawned;
  spawned.shared_op = true;
  spawn(shared_op(std::move(call), "lease"), std::move(spawned), [batch](Engine& self) {
    self.lease_pending_ = false;
    self.take_leases(*batch);
  });
}

void Engine::take_leases(LeaseBatch& batch) {
  if (batch.redelivered > 0) {
    stats_.inc_value("scheduler/redelivered", static_cast<std::int64_t>(batch.redelivered));
  }
  for (Leased& l : batch.leased) {
    try {
      leased_.emplace_back(load_request(l.blob), std::move(l.id));
      stats_.inc_value("scheduler/dequeued");
      stats_.inc_value("scheduler/dequeued/shared");
    } catch (const ValueError& e) {
      stats_.inc_value("scheduler/unreadable");
      log("ERROR", std::string("Skipping an unreadable shared request: ") + e.what());
      to_ack_.push_back(std::move(l.id));
    }
  }
  if (!batch.leased.empty()) {
    poll_ = std::chrono::milliseconds(0);
    next_lease_ = {};
    return;
  }
  if (batch.outstanding == 0) {
    shared_done_ = true;  // nothing queued or leased anywhere: nothing can come
    return;
  }
  // Others hold leases (they may yet add requests, or die and leave them to us): poll again,
  // from 50 ms up to a fifth of the lease time.
  const auto ceiling = std::max(std::chrono::milliseconds(50), shared_->lease_time() / 5);
  poll_ = std::min(ceiling, std::max(std::chrono::milliseconds(50), poll_ * 2));
  next_lease_ = Clock::now() + poll_;
  poll_timer_.cancel();
  poll_timer_ = loop_->call_later(poll_, [weak = weak_from_this()] {
    if (auto engine = weak.lock()) engine->wake_.set();
  });
}

void Engine::shared_heartbeat() {
  if (!shared_ || heartbeat_pending_) return;
  std::vector<std::string> ids;
  for (const auto& [request, id] : leased_) ids.push_back(id);
  for (const auto& [task_id, spawned] : tasks_) {
    if (!spawned.lease.empty()) ids.push_back(spawned.lease);
  }
  std::vector<SlotHold> holds;
  for (const auto& [token, slot] : holds_) holds.push_back(SlotHold{slot, token});
  if (ids.empty() && holds.empty()) return;
  heartbeat_pending_ = true;
  SharedFrontier* frontier = shared_.get();
  concur::Future<void> call = shared_io_->submit(
      [frontier, ids = std::move(ids), holds = std::move(holds)] { frontier->extend(ids, holds); });
  Spawned spawned;
  spawned.shared_op = true;
  spawn(shared_op(std::move(call), "heartbeat"), std::move(spawned),
        [](Engine& self) { self.heartbeat_pending_ = false; });
}

aio::Task<std::string> Engine::shared_slot(Slot& slot, double gap) {
  constexpr auto kClosingCheck = std::chrono::milliseconds(250);
  SlotHold hold{slot.key, crawler_id_ + ":" + std::to_string(next_hold_++)};
  for (;;) {
    if (closing_) throw Paused{};
    SharedFrontier* frontier = shared_.get();
    const int concurrency = slot.concurrency;
    concur::Future<double> call = shared_io_->submit([frontier, hold, concurrency, gap] {
      return frontier->acquire_slot(hold, concurrency, gap);
    });
    const double wait = co_await std::move(call);
    if (wait <= 0) break;
    // Wait for the time the frontier named, or for one of our own holds to come back first.
    const auto rest = std::chrono::duration_cast<Clock::duration>(seconds(wait));
    aio::Event woken;
    struct Waiting {
      Slot& slot;
      aio::Event* event;
      aio::Handle timer;
      ~Waiting() {
        timer.cancel();
        slot.hold_waiters.remove(event);
      }
    } waiting{slot, &woken, {}};
    slot.hold_waiters.push_back(&woken);
    waiting.timer = loop_->call_later(std::min<Clock::duration>(rest, kClosingCheck),
                                      [&woken] { woken.set(); });
    co_await woken.wait();
  }
  holds_.emplace(hold.token, slot.key);
  co_return hold.token;
}

void Engine::shared_release_slot(Slot& slot, const std::string& token) {
  holds_.erase(token);
  if (!slot.hold_waiters.empty()) {
    slot.hold_waiters.front()->set();
    slot.hold_waiters.pop_front();
  }
  try {
    SharedFrontier* frontier = shared_.get();
    // Fire and forget: nobody waits for a release, and one that fails leaves a hold that
    // expires after the lease time.
    (void)shared_io_->submit([this, frontier, hold = SlotHold{slot.key, token}] {
      try {
        frontier->release_slot(hold);
      } catch (const std::exception& e) {
        stats_.inc_value("shared/errors");
        log("WARNING", std::string("Shared frontier: a slot hold could not be given back (it "
                                   "expires): ") +
                           e.what());
      }
    });
  } catch (const std::exception&) {
    // the frontier's thread is shut down: the hold expires
  }
}

void Engine::log_stats() {
  log("INFO", "Crawled " + std::to_string(stats_.get_int("response_received_count")) +
                  " pages, scraped " + std::to_string(stats_.get_int("item_scraped_count")) +
                  " items; " + std::to_string(queued()) + " queued, " + std::to_string(alive_) +
                  " in progress");
}

aio::Task<void> Engine::run() {
  loop_ = &aio::get_running_loop();
  const auto started = Clock::now();
  started_ns_.store(started.time_since_epoch().count());
  stats_.set_value("start_time", iso_now());
  log("INFO", "Spider opened: " + spider_.name);

  ClientOptions options;
  options.user_agent = settings_.user_agent;
  options.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(settings_.download_timeout * 1000));
  options.max_size = settings_.download_maxsize;
  options.warn_size = settings_.download_warnsize;
  // Keep-alive connections for the whole crawl: libcurl's default cache follows the transfers in
  // flight and closed connections whenever few were (430–700 new connections per 4000-page crawl
  // where Scrapy opens 16; docs/benchmarks.md).
  options.max_idle_connections = 4L * settings_.concurrent_requests;
  client_.emplace(*loop_, options);
  pool_.emplace(parse_threads_);
  // The writer: one thread of its own running the pipelines (a pool of one, so its end is a Future
  // the loop can await without blocking).
  std::optional<ThreadPoolExecutor> writer_pool(std::in_place, std::size_t{1});
  concur::Future<void> written = writer_pool->submit([this] { writer(); });
  std::optional<std::pair<std::string, bool>> early_stop;
  {
    std::scoped_lock lock(stop_mu_);
    running_ = true;
    early_stop = std::move(pending_stop_);
  }
  if (early_stop) close(early_stop->first, early_stop->second);

  aio::Handle timeout;
  if (settings_.closespider_timeout > 0) {
    timeout = loop_->call_later(seconds(settings_.closespider_timeout),
                                [this] { close("closespider_timeout", false); });
  }
  aio::Handle beat_timer;
  std::function<void()> beat;
  if (shared_) {
    shared_io_.emplace(std::size_t{1});
    char host[256] = {};
    (void)gethostname(host, sizeof host - 1);
    crawler_id_ = std::string(host) + ":" + std::to_string(getpid()) + ":" +
                  std::to_string(rng_() % 1'000'000'000);
    // Renew leases and holds three times per lease time, so one late beat loses nothing.
    const auto every = std::max(std::chrono::milliseconds(1), shared_->lease_time() / 3);
    beat = [this, &beat_timer, &beat, every] {
      shared_heartbeat();
      beat_timer = loop_->call_later(every, beat);
    };
    beat_timer = loop_->call_later(every, beat);
  }
  aio::Handle periodic;
  std::function<void()> tick;
  if (settings_.logstats_interval > 0) {
    tick = [this, &periodic, &tick] {
      log_stats();
      periodic = loop_->call_later(seconds(settings_.logstats_interval), tick);
    };
    periodic = loop_->call_later(seconds(settings_.logstats_interval), tick);
  }

  std::exception_ptr failure;
  try {
    open_jobdir();
    std::vector<Request> starts;
    try {
      starts = spider_.start_requests();
    } catch (const std::exception& e) {  // Scrapy logs it and crawls what it has
      stats_.inc_value("spider_exceptions/" + type_name(e));
      log("ERROR", std::string("Error while obtaining start requests: ") + e.what());
    }
    // Resuming: a start request already seen was fetched (or is queued) by an earlier run.
    // Shared: by another crawler (or an earlier run) — only the first to schedule it queues it.
    if (resumed_ || shared_) {
      for (Request& request : starts) request.dont_filter = false;
    }
    schedule_all(std::move(starts), nullptr);
    for (;;) {
      reap();
      shared_sync();
      while (!closing_ && alive_ < max_alive_) {
        Spawned spawned;
        spawned.process = true;
        std::optional<Request> request;
        if (shared_) {
          if (leased_.empty()) break;
          request = std::move(leased_.front().first);
          spawned.lease = std::move(leased_.front().second);
          leased_.pop_front();
          queued_gauge_.store(leased_.size(), std::memory_order_relaxed);
        } else {
          request = pop();
          if (!request) break;
        }
        ++alive_;
        if (disk_queue_) spawned.keep = *request;
        spawn(process(std::move(*request)), std::move(spawned));
      }
      alive_gauge_.store(alive_, std::memory_order_relaxed);
      if (shared_) {
        // Over when nothing of ours is running or on its way and the frontier is empty
        // everywhere (or we are closing: the leases not started go back in the end phase).
        // (A lease or heartbeat call's task may be reaped before its done-callback ran: the
        // flags say when that callback, which brings the leases, has run.)
        if (tasks_.empty() && !lease_pending_ && !heartbeat_pending_ && outbox_.empty() &&
            to_ack_.empty() && to_release_.empty() &&
            (closing_ || (shared_done_ && leased_.empty()))) {
          break;
        }
      } else if (tasks_.empty() && (closing_ || queued() == 0)) {
        break;
      }
      wake_.clear();
      co_await wake_.wait();
    }
  } catch (...) {
    failure = std::current_exception();  // a storage error, or this task's cancellation
  }
  timeout.cancel();
  periodic.cancel();
  // Nothing the tasks touch may go before they are over: cancel what is left and wait for the
  // last one (a cancelled request goes back to the JOBDIR in reap(), before it closes; a shared
  // one's lease is released). The frontier's calls are not cancelled: they finish, in order.
  for (auto& [id, spawned] : tasks_) {
    if (!spawned.shared_op) (void)spawned.task.cancel("crawl ended");
  }
  for (;;) {
    reap();
    if (shared_) {
      for (auto& [request, id] : leased_) to_release_.push_back(std::move(id));
      leased_.clear();
      closing_ = true;  // no more leases
      shared_sync();
    }
    if (tasks_.empty() && !lease_pending_ && !heartbeat_pending_) break;
    wake_.clear();
    try {
      co_await wake_.wait();
    } catch (const CancelledError&) {
      if (!failure) failure = std::current_exception();  // a second cancellation: keep waiting
    }
  }
  beat_timer.cancel();
  poll_timer_.cancel();
  {
    std::scoped_lock lock(stop_mu_);
    running_ = false;
    ended_ = true;
  }
  client_.reset();
  try {
    close_jobdir();
  } catch (const std::exception& e) {
    log("ERROR", std::string("Cannot save the JOBDIR: ") + e.what());
    if (!failure) failure = std::current_exception();
  }
  pool_->shutdown(true);
  items_.shutdown();  // the writer drains what is queued, then ends
  try {
    co_await std::move(written);
  } catch (const CancelledError&) {
    if (!failure) failure = std::current_exception();
  } catch (...) {
    if (!failure) failure = std::current_exception();  // a pipeline's open or close failed
  }
  writer_pool->shutdown(true);

  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  stats_.set_value("finish_time", iso_now());
  stats_.set_value("elapsed_time_seconds", elapsed);
  stats_.set_value("finish_reason", failure ? std::string("error") : finish_reason_);
  stats_.set_value("memusage/max", peak_rss_bytes());
  if (shared_) {
    // This crawler's counters join the cluster's; the frontier's thread ends here.
    SharedFrontier* frontier = shared_.get();
    concur::Future<nlohmann::json> merged =
        shared_io_->submit([frontier, mine = stats_.get_stats()] {
          frontier->merge_stats(mine);
          return frontier->stats();
        });
    std::string error;
    try {
      const nlohmann::json all = co_await std::move(merged);
      log("INFO", "Shared stats (every crawler of this frontier so far): " + all.dump());
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      stats_.inc_value("shared/errors");
      log("ERROR", "Shared frontier: merging the stats failed: " + error);
    }
    shared_io_->shutdown(true);
  }
  log("INFO", "Dumping stats:\n" + stats_.dump());
  log("INFO", "Spider closed (" + (failure ? std::string("error") : finish_reason_) + ")");
  if (failure) std::rethrow_exception(failure);
}

}  // namespace detail

// ---- Crawler ----

Crawler::Crawler(Spider& spider, Settings settings)
    : spider_(spider), settings_(std::move(settings)) {
  settings_.validate();
  log_ = [](std::string_view level, std::string_view line) {
    char stamp[32];
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    std::fprintf(stderr, "%s [concur.crawl] %.*s: %.*s\n", stamp, static_cast<int>(level.size()),
                 level.data(), static_cast<int>(line.size()), line.data());
  };
}

Crawler::~Crawler() {
  // The engine refers to this crawler's spider, settings and stats: a crawl still running (a
  // crawl() task that outlives its Crawler) would go on with freed memory. Fail loudly instead.
  std::scoped_lock lock(engine_mu_);
  if (engine_) {
    std::fputs("concur::crawl::Crawler destroyed while its crawl runs (await crawl() first)\n",
               stderr);
    std::abort();
  }
}

void Crawler::add_pipeline(std::shared_ptr<ItemPipeline> pipeline) {
  if (!pipeline) throw ValueError("add_pipeline: null pipeline");
  if (started_.load()) throw RuntimeError("add_pipeline after the crawl started");
  pipelines_.push_back(std::move(pipeline));
}

void Crawler::add_feed(const std::string& path, const FeedOptions& options) {
  add_pipeline(std::make_shared<FeedPipeline>(make_feed_exporter(path, options)));
}

void Crawler::share(std::shared_ptr<SharedFrontier> frontier) {
  if (!frontier) throw ValueError("share: null frontier");
  if (started_.load()) throw RuntimeError("share after the crawl started");
  if (!settings_.jobdir.empty()) {
    throw ValueError(
        "share: a shared crawl keeps its state in the frontier; JOBDIR is for one crawler");
  }
  shared_ = std::move(frontier);
}

void Crawler::on_log(std::function<void(std::string_view, std::string_view)> sink) {
  if (started_.load()) throw RuntimeError("on_log after the crawl started");
  log_ = std::move(sink);
}

aio::Task<void> Crawler::crawl() {
  if (started_.exchange(true)) throw RuntimeError("a Crawler runs once");
  auto engine =
      std::make_shared<detail::Engine>(spider_, settings_, stats_, pipelines_, log_, shared_);
  {
    std::scoped_lock lock(engine_mu_);
    engine_ = engine;
    // A stop() that came before: the engine keeps it until its loop state exists.
    if (!pending_stop_.empty()) engine->stop(pending_stop_, pending_stop_now_);
  }
  aio::Task<void> body = engine->run();
  std::exception_ptr failure;
  try {
    co_await std::move(body);
  } catch (...) {
    failure = std::current_exception();
  }
  {
    std::scoped_lock lock(engine_mu_);
    last_progress_ = engine->progress();  // what progress() shows from now on
    engine_.reset();
  }
  if (failure) std::rethrow_exception(failure);
}

const StatsCollector& Crawler::run() {
  aio::RunOptions options;
  options.handle_sigint = false;
  aio::run(crawl(), options);
  return stats_;
}

Progress Crawler::progress() const {
  std::scoped_lock lock(engine_mu_);
  if (engine_) {
    last_progress_ = engine_->progress();
  }
  return last_progress_;
}

void Crawler::stop(std::string reason, bool now) {
  std::scoped_lock lock(engine_mu_);
  if (engine_) {
    engine_->stop(std::move(reason), now);
  } else {
    // Before the crawl (or between crawl()'s start and its engine): kept for it. After the end
    // nothing reads it.
    pending_stop_ = std::move(reason);
    pending_stop_now_ = pending_stop_now_ || now;
  }
}

}  // namespace concur::crawl
