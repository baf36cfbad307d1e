// crawl_site_tool — the crawl benchmark's test site outside the tests (issue 14, "Benchmarks"):
// the generated blog of tests/support/crawl_site.hpp written as files, served by a private nginx,
// or served by the logging aio server with a latency. bench/compare/run_crawl_bench.sh drives it.
//
//   crawl_site_tool write DIR --posts N --origin URL
//       writes the static site (write_static_site) into DIR; the posts' absolute links start with
//       URL, so start the nginx that will serve DIR first (the `nginx` mode) and pass its origin.
//   crawl_site_tool nginx DIR --posts N --port-file FILE
//       serves DIR on 127.0.0.1 (a free port) by NginxServer with static_site_nginx_locations();
//       once it accepts connections, prints one JSON line {"port", "origin", "access_log"} on
//       stdout and writes the port to FILE; on SIGTERM / SIGINT stops nginx and exits 0.
//   crawl_site_tool serve --posts N --latency-ms M --port-file FILE
//       serves CrawlSite (every answer delayed M ms) on 127.0.0.1 (a free port), writes the port to
//       FILE; on SIGTERM / SIGINT closes the server and prints a JSON summary of its request log
//       on stdout: requests, max_in_flight, fetched_more_than_once (count and the first few),
//       robots_disallowed (requests per path under a Disallow), status counts, connections, the
//       first arrival -> last finish span in seconds, and the mean requests in flight over it;
//       --log-file FILE also writes every request (times, target, status, connection) as JSON
//       Lines.
// The port file is written to FILE.tmp and renamed, so a reader polling for FILE never sees half
// of it. Loopback only.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"
#include "support/crawl_site.hpp"
#include "support/nginx_server.hpp"

namespace {

namespace aio = concur::aio;
namespace fs = std::filesystem;
using concur::testing::CrawlSite;
using concur::testing::CrawlSiteOptions;
using concur::testing::NginxServer;
using concur::testing::RequestRecord;

// kCloseBound: after the signal, how long the open connections may take to end.
constexpr std::chrono::seconds kCloseBound{5};
// kListedDuplicates: fetched_more_than_once targets listed in the summary (the count is whole).
constexpr std::size_t kListedDuplicates = 20;

// write_port_file(file, port): FILE.tmp, then renamed to FILE.
void write_port_file(const fs::path& file, std::uint16_t port) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << '\n';
    if (!out) throw concur::RuntimeError("cannot write " + tmp.string());
  }
  fs::rename(tmp, file);
}

// summary(site): the request log as the benchmark's JSON (see the file comment).
nlohmann::ordered_json summary(const CrawlSite& site) {
  const std::vector<RequestRecord> log = site.log();
  nlohmann::ordered_json out;
  out["requests"] = log.size();
  out["max_in_flight"] = site.max_in_flight();
  const std::vector<std::string> twice = site.fetched_more_than_once();
  out["fetched_more_than_once"] = twice.size();
  out["fetched_more_than_once_first"] = std::vector<std::string>(
      twice.begin(),
      twice.begin() + static_cast<std::ptrdiff_t>(std::min(twice.size(), kListedDuplicates)));
  std::map<std::string, int> disallowed;
  std::map<std::string, int> statuses;
  for (const RequestRecord& r : log) {
    if (!CrawlSite::robots_allows(site.options(), r.path)) ++disallowed[r.path];
    ++statuses[std::to_string(r.status)];
  }
  out["robots_disallowed"] = disallowed;
  out["robots_disallowed_requests"] = [&] {
    int n = 0;
    for (const auto& [path, count] : disallowed) n += count;
    return n;
  }();
  out["status"] = statuses;
  out["connections"] = site.stats().connections;
  out["most_open_connections"] = site.stats().most_open;
  // span: the first arrival to the last finish; mean_in_flight: the requests' summed durations
  // over it (how full the crawler kept its CONCURRENT_REQUESTS, as the server saw it).
  double span = 0.0;
  double busy = 0.0;
  if (!log.empty()) {
    auto last = log.front().finish;
    for (const RequestRecord& r : log) {
      last = std::max(last, r.finish);
      busy += std::chrono::duration<double>(r.finish - r.arrival).count();
    }
    span = std::chrono::duration<double>(last - log.front().arrival).count();
  }
  out["span_seconds"] = span;
  out["mean_in_flight"] = span > 0 ? busy / span : 0.0;
  return out;
}

// write_log(file, site): every request as a line of JSON: arrival and finish in seconds since the
// first arrival, target, status, connection, and the requests in flight at its arrival.
void write_log(const fs::path& file, const CrawlSite& site) {
  const std::vector<RequestRecord> log = site.log();
  std::ofstream out(file, std::ios::trunc);
  if (log.empty()) return;
  const auto t0 = log.front().arrival;
  const auto seconds = [t0](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(t - t0).count();
  };
  for (const RequestRecord& r : log) {
    const nlohmann::ordered_json line = {{"arrival", seconds(r.arrival)},
                                         {"finish", seconds(r.finish)},
                                         {"target", r.target},
                                         {"status", r.status},
                                         {"connection", r.connection},
                                         {"in_flight", r.in_flight_at_arrival}};
    out << line.dump() << '\n';
  }
  if (!out) throw concur::RuntimeError("cannot write " + file.string());
}

aio::Task<void> serve(CrawlSiteOptions options, fs::path port_file, fs::path log_file) {
  CrawlSite site = co_await CrawlSite::start(options);
  aio::Event stop;
  aio::Loop& loop = aio::get_running_loop();
  for (const int sig : {SIGINT, SIGTERM}) loop.add_signal_handler(sig, [&stop] { stop.set(); });
  write_port_file(port_file, site.port());
  co_await stop.wait();
  site.close();
  try {
    co_await aio::wait_for(site.wait_closed(), kCloseBound);
  } catch (const concur::TimeoutError&) {
    // A connection handler still running: its record ends at the close; summarize anyway.
  }
  std::printf("%s\n", summary(site).dump().c_str());
  std::fflush(stdout);
  if (!log_file.empty()) write_log(log_file, site);
}

// serve_nginx(...): NginxServer until SIGTERM / SIGINT, which the main thread takes by sigwait
// (blocked before nginx starts; concur::subprocess gives nginx an empty mask of its own).
int serve_nginx(const fs::path& dir, const CrawlSiteOptions& options, const fs::path& port_file) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  NginxServer nginx;
  nginx.start(dir, concur::testing::static_site_nginx_locations(options));
  const nlohmann::ordered_json ready = {{"port", nginx.port()},
                                        {"origin", nginx.url("")},
                                        {"access_log", (nginx.prefix() / "access.log").string()}};
  std::printf("%s\n", ready.dump().c_str());
  std::fflush(stdout);
  write_port_file(port_file, nginx.port());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  nginx.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("crawl_site_tool: the crawl benchmark's test site (tests/support/crawl_site.hpp)");
  app.require_subcommand(1);
  CrawlSiteOptions options;
  std::string dir;
  std::string origin;
  std::string port_file;
  long latency_ms = 0;

  CLI::App* write = app.add_subcommand("write", "write the static site for nginx into DIR");
  write->add_option("dir", dir, "directory (created)")->required();
  write->add_option("--posts", options.posts, "posts")->check(CLI::Range(1, 10'000'000));
  write->add_option("--origin", origin, "origin of the posts' absolute links")->required();

  CLI::App* nginx = app.add_subcommand("nginx", "serve DIR by a private nginx until SIGTERM");
  nginx->add_option("dir", dir, "the written site")->required()->check(CLI::ExistingDirectory);
  nginx->add_option("--posts", options.posts, "posts")->check(CLI::Range(1, 10'000'000));
  nginx->add_option("--port-file", port_file, "where the port goes")->required();

  CLI::App* serve_cmd = app.add_subcommand("serve", "serve CrawlSite until SIGTERM, then a JSON");
  serve_cmd->add_option("--posts", options.posts, "posts")->check(CLI::Range(1, 10'000'000));
  serve_cmd->add_option("--latency-ms", latency_ms, "delay before every answer")
      ->check(CLI::Range(0, 60'000));
  serve_cmd->add_option("--port-file", port_file, "where the port goes")->required();
  std::string log_file;
  serve_cmd->add_option("--log-file", log_file, "every request as JSON Lines, on exit");
  CLI11_PARSE(app, argc, argv);

  try {
    if (*write) {
      concur::testing::write_static_site(dir, options, origin);
    } else if (*nginx) {
      return serve_nginx(dir, options, port_file);
    } else {
      options.latency = std::chrono::milliseconds(latency_ms);
      // SIGINT goes to the loop's handler (as SIGTERM), not to run()'s Ctrl-C logic.
      aio::run(serve(options, port_file, log_file), aio::RunOptions{.handle_sigint = false});
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crawl_site_tool: %s\n", e.what());
    return 1;
  }
  return 0;
}
