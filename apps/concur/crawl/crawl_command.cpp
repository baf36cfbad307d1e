// crawl/crawl_command.cpp — `concur crawl`: options, the command-line spider, signals, the
// progress line and the final stats.
#include "crawl/crawl_command.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "concur/crawl/crawler.hpp"
#include "concur/crawl/feed.hpp"
#include "concur/crawl/url.hpp"
#include "concur/dist/frontier.hpp"
#include "concur/errors.hpp"

namespace concur::apps::crawl {
namespace {

namespace cc = concur::crawl;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

bool is_xpath(std::string_view selector) {
  return !selector.empty() &&
         (selector.front() == '/' || selector.front() == '(' || selector.rfind("./", 0) == 0);
}

cc::SelectorList select(const cc::Response& response, const std::string& selector) {
  return is_xpath(selector) ? response.xpath(selector) : response.css(selector);
}

// Field: one --extract: an item field and where it comes from.
struct Field {
  std::string name;
  std::string selector;
  bool all = false;  // FIELD[]=: every match, as an array
};

std::vector<Field> parse_fields(const std::vector<std::string>& specs) {
  std::vector<Field> out;
  std::set<std::string> names;
  for (const std::string& spec : specs) {
    const std::size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      throw ValueError("--extract '" + spec + "' is not FIELD=SELECTOR");
    }
    Field f;
    f.name = spec.substr(0, eq);
    f.selector = spec.substr(eq + 1);
    if (f.name.size() > 2 && f.name.compare(f.name.size() - 2, 2, "[]") == 0) {
      f.all = true;
      f.name.resize(f.name.size() - 2);
    }
    if (f.name == "url") throw ValueError("--extract: the field name 'url' is taken (the page's)");
    if (!names.insert(f.name).second) throw ValueError("--extract: field '" + f.name + "' twice");
    out.push_back(std::move(f));
  }
  return out;
}

// CommandLineSpider: what the options describe. Callbacks run on several parse threads at once;
// the spider only reads its own members there.
class CommandLineSpider : public cc::Spider {
 public:
  CommandLineSpider(const CrawlOptions& options, std::vector<Field> fields)
      : cc::Spider("concur-crawl"), fields_(std::move(fields)), follow_(options.follow) {
    start_urls = options.urls;
    no_follow_ = options.no_follow;
    std::set<std::string> hosts;
    for (const std::string& url : options.urls) {
      try {
        hosts.insert(cc::url_host(url));
      } catch (const ValueError&) {
        // an unusable start URL is reported by the crawler (scheduler/invalid_url)
      }
    }
    allowed_domains.assign(hosts.begin(), hosts.end());
  }

  void parse(const cc::Response& response, cc::Output& out) override {
    if (!fields_.empty()) extract(response, out);
    if (!no_follow_) follow(response, out);
  }

 private:
  void extract(const cc::Response& response, cc::Output& out) const {
    cc::Item item;
    item["url"] = response.url;
    bool found = false;
    for (const Field& f : fields_) {
      const cc::SelectorList matches = select(response, f.selector);
      if (matches.empty()) continue;
      found = true;
      if (f.all) {
        item[f.name] = matches.getall();
      } else {
        item[f.name] = matches.front().get();
      }
    }
    if (found) out.yield(std::move(item));
  }

  void follow(const cc::Response& response, cc::Output& out) const {
    if (follow_.empty()) {
      // links() resolves them already (the page's <base href> included): no follow() needed.
      for (cc::Link& link : response.links()) out.yield(cc::Request(std::move(link.url)));
      return;
    }
    std::vector<std::string> urls;
    for (const std::string& selector : follow_) {
      for (const cc::Selector& s : select(response, selector)) {
        if (s.kind() == cc::Selector::Kind::kElement) {
          // An element: the links inside it (itself included), as LinkExtractor's restrict_*.
          cc::LinkExtractorOptions region;
          (is_xpath(selector) ? region.restrict_xpath : region.restrict_css) = selector;
          for (cc::Link& link : cc::extract_links(response.selector(), region)) {
            urls.push_back(std::move(link.url));
          }
          break;  // the extractor already walked every region of this selector
        }
        urls.push_back(s.get());  // an ::attr(...) or text value
      }
    }
    for (const std::string& url : urls) {
      try {
        out.yield(response.follow(url));
      } catch (const ValueError&) {
        // not a URL: skipped, as Scrapy's LinkExtractor does
      }
    }
  }

  std::vector<Field> fields_;
  std::vector<std::string> follow_;
  bool no_follow_ = false;
};

// StdoutWriter: "-o -": JSON Lines on the command's `out` stream.
class StdoutWriter : public cc::ItemPipeline {
 public:
  explicit StdoutWriter(std::ostream& out) : out_(out) {}
  void process_item(cc::Item& item, cc::Spider& /*spider*/) override {
    out_ << item.dump(-1, ' ', false, cc::Item::error_handler_t::replace) << '\n';
  }
  void close_spider(cc::Spider& /*spider*/) override { out_.flush(); }

 private:
  std::ostream& out_;
};

// SignalWatcher: SIGINT / SIGTERM as stop requests, on a thread of its own that waits for them
// (they are blocked in every thread the crawl starts, which inherit this thread's mask).
class SignalWatcher {
 public:
  explicit SignalWatcher(cc::Crawler& crawler) : crawler_(crawler) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this] { watch(); });
  }
  ~SignalWatcher() {
    done_.store(true);
    // Wake the watcher now rather than at its next tick: a signal of the set, sent to that thread
    // only, which sees done_ and leaves without acting on it.
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
    // A signal that came after the crawl stays pending: take it before unblocking.
    timespec zero{};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  // signal(): the first signal that came (SIGINT or SIGTERM), 0 for none.
  [[nodiscard]] int signal() const { return first_.load(); }

 private:
  void watch() {
    const timespec tick{0, 200'000'000};
    while (!done_.load()) {
      const int sig = sigtimedwait(&set_, nullptr, &tick);
      if (sig <= 0 || done_.load()) continue;
      int expected = 0;
      first_.compare_exchange_strong(expected, sig);
      // First press: finish what is in flight; second: stop now; a third: the default action
      // (a crawl stuck in user code can still be ended from the keyboard).
      const int press = ++presses_;
      if (press >= 3) {
        std::signal(sig, SIG_DFL);
        pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
        raise(sig);
      }
      crawler_.stop("shutdown", press > 1);
    }
  }

  cc::Crawler& crawler_;
  sigset_t set_{};
  sigset_t old_{};
  std::atomic<bool> done_{false};
  std::atomic<int> presses_{0};
  std::atomic<int> first_{0};
  std::thread thread_;
};

// ProgressLine: "pages 120 (45.3/s) | items 80 | queued 400 | in progress 16 | errors 2",
// redrawn twice a second on a terminal.
class ProgressLine {
 public:
  ProgressLine(const cc::Crawler& crawler, std::ostream& err) : crawler_(crawler), err_(err) {
    thread_ = std::thread([this] { draw_until_done(); });
  }
  ~ProgressLine() {
    {
      std::scoped_lock lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  // clear(): wipes the line (before a log line; under the log's lock).
  void clear() { err_ << "\r\033[K"; }

 private:
  void draw_until_done() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return done_; })) {
      const cc::Progress p = crawler_.progress();
      const double rate = p.elapsed > 0 ? static_cast<double>(p.pages) / p.elapsed : 0.0;
      err_ << fmt::format(
                  "\r\033[Kpages {} ({:.1f}/s) | items {} | queued {} | in progress {} | "
                  "errors {}",
                  p.pages, rate, p.items, p.queued, p.in_progress, p.errors)
           << std::flush;
    }
    err_ << "\r\033[K" << std::flush;
  }

  const cc::Crawler& crawler_;
  std::ostream& err_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

CLI::App* add_crawl_command(CLI::App& app, CrawlOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "crawl",
      "Crawl from the given URLs within their hosts, Scrapy-style (robots.txt, per-domain "
      "concurrency, delays, retries), extract fields and write items.");
  cmd->add_option("urls", options.urls, "Start URLs (http:// or https://)")->required();
  // One value per occurrence (allow_extra_args(false)): `--follow a.next URL` leaves URL to the
  // positionals.
  cmd->add_option("-s,--set", options.settings,
                  "A Scrapy setting, NAME=VALUE (e.g. -s DOWNLOAD_DELAY=0.5); repeatable")
      ->allow_extra_args(false);
  CLI::Option* follow = cmd->add_option("--follow", options.follow,
                                        "Follow only the links inside what this CSS/XPath selector "
                                        "selects (repeatable; default: "
                                        "every link)")
                            ->allow_extra_args(false);
  CLI::Option* no_follow =
      cmd->add_flag("--no-follow", options.no_follow, "Fetch the start URLs only");
  follow->excludes(no_follow);
  cmd->add_option("--extract,-e", options.extract,
                  "FIELD=SELECTOR (first match) or FIELD[]=SELECTOR (every match); repeatable")
      ->allow_extra_args(false);
  CLI::Option* append = cmd->add_option(
      "-o,--output", options.output,
      "Append items to FILE: .jsonl/.jl, .csv, .sqlite/.db (or a new .json); '-' for JSON Lines "
      "on stdout");
  CLI::Option* overwrite = cmd->add_option("-O,--overwrite-output", options.overwrite_output,
                                           "Write items to FILE, replacing it");
  append->excludes(overwrite);
  cmd->add_option("--stats-json", options.stats_json, "Write the final stats to FILE as JSON");
  cmd->add_flag("--no-progress", options.no_progress, "No live progress line on a terminal");
  CLI::Option* jobdir =
      cmd->add_option("--jobdir", options.jobdir, "Keep the crawl's state in DIR (JOBDIR)");
  CLI::Option* redis = cmd->add_option(
      "--redis", options.redis,
      "Crawl together with every crawler sharing this Redis (redis://host:port/db): one "
      "frontier, leased requests, one dupefilter, cluster-wide politeness");
  redis->excludes(jobdir);
  cmd->add_option("--redis-name", options.redis_name,
                  "The shared crawl's name (default: the first start URL's origin)")
      ->needs(redis);
  cmd->add_option("--lease-time", options.lease_time,
                  "Seconds a dead crawler's requests and slot holds wait before others take "
                  "them (default 10)")
      ->needs(redis)
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_flag("--redis-clear", options.redis_clear,
                "Delete the shared crawl's state first (start over; give it to one crawler only)")
      ->needs(redis);
  return cmd;
}

int run_crawl(const CrawlOptions& options, std::ostream& out, std::ostream& err,
              bool handle_signals) {
  cc::Settings settings;
  std::vector<Field> fields;
  std::shared_ptr<cc::ItemPipeline> writer;
  try {
    for (const std::string& assignment : options.settings) settings.set(assignment);
    if (!options.jobdir.empty()) settings.jobdir = options.jobdir;
    settings.validate();
    fields = parse_fields(options.extract);
    if (!options.output.empty() && !options.overwrite_output.empty()) {
      throw ValueError("-o and -O exclude each other");
    }
    if (options.output == "-") {
      writer = std::make_shared<StdoutWriter>(out);
    } else if (!options.overwrite_output.empty()) {
      writer = std::make_shared<cc::FeedPipeline>(cc::make_feed_exporter(options.overwrite_output));
    } else if (!options.output.empty()) {
      // Scrapy's -o: append, so a resumed crawl (--jobdir) adds to what the paused one wrote.
      // A JSON array cannot grow: a new (or empty) .json file is written, an existing one refused.
      cc::FeedOptions feed;
      std::error_code ec;
      const bool json = options.output.size() >= 5 &&
                        options.output.compare(options.output.size() - 5, 5, ".json") == 0;
      const bool exists = std::filesystem::file_size(options.output, ec) > 0 && !ec;
      if (json && exists) {
        throw ValueError(options.output +
                         " exists and a JSON array cannot be appended to: -O replaces it, or "
                         "write JSON Lines (.jsonl)");
      }
      feed.append = !json;
      writer = std::make_shared<cc::FeedPipeline>(cc::make_feed_exporter(options.output, feed));
    }
  } catch (const ValueError& e) {
    err << "concur crawl: " << e.what() << "\n";
    return kExitUsage;
  } catch (const OSError& e) {
    err << "concur crawl: " << e.what() << "\n";
    return kExitFailed;
  }

  std::shared_ptr<concur::dist::RedisFrontier> frontier;
  if (!options.redis.empty()) {
    try {
      concur::dist::FrontierOptions frontier_options;
      frontier_options.lease_time =
          std::chrono::milliseconds(static_cast<std::int64_t>(options.lease_time * 1000));
      const std::string name =
          options.redis_name.empty() ? cc::url_origin(options.urls.at(0)) : options.redis_name;
      frontier =
          std::make_shared<concur::dist::RedisFrontier>(options.redis, name, frontier_options);
      if (options.redis_clear) frontier->clear();
    } catch (const ValueError& e) {
      err << "concur crawl: " << e.what() << "\n";
      return kExitUsage;
    } catch (const std::exception& e) {
      err << "concur crawl: " << e.what() << "\n";
      return kExitFailed;
    }
  }

  CommandLineSpider spider(options, std::move(fields));
  cc::Crawler crawler(spider, settings);
  if (writer) crawler.add_pipeline(writer);
  if (frontier) crawler.share(frontier);
  std::mutex log_mu;
  ProgressLine* progress = nullptr;
  crawler.on_log([&](std::string_view level, std::string_view line) {
    std::scoped_lock lock(log_mu);
    if (progress != nullptr) progress->clear();
    err << "[concur.crawl] " << level << ": " << line << "\n";
  });

  std::exception_ptr failure;
  int signal_number = 0;
  {
    std::optional<SignalWatcher> signals;
    if (handle_signals) signals.emplace(crawler);
    std::optional<ProgressLine> line;
    if (!options.no_progress && &err == &std::cerr && isatty(STDERR_FILENO) == 1) {
      line.emplace(crawler, err);
      std::scoped_lock lock(log_mu);
      progress = &*line;
    }
    try {
      crawler.run();
    } catch (...) {
      failure = std::current_exception();
    }
    {
      std::scoped_lock lock(log_mu);
      progress = nullptr;
    }
    if (signals) signal_number = signals->signal();
  }

  if (!options.stats_json.empty()) {
    std::ofstream file(options.stats_json);
    file << crawler.stats().get_stats().dump(2) << "\n";
    if (!file) {
      err << "concur crawl: cannot write " << options.stats_json << "\n";
      return kExitFailed;
    }
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      err << "concur crawl: " << e.what() << "\n";
    }
    return kExitFailed;
  }
  // Interrupted: 128 + the signal, as a shell reports it (130 for SIGINT, 143 for SIGTERM).
  return signal_number != 0 ? 128 + signal_number : 0;
}

}  // namespace concur::apps::crawl
