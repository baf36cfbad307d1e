// `concur worker` and `concur dist status` (dist_command.hpp).
#include "dist/dist_command.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "concur/dist/redis.hpp"
#include "concur/dist/worker.hpp"
#include "concur/errors.hpp"
#include "concur/mp/task.hpp"

namespace concur::apps::dist {

std::int64_t noop(std::int64_t x) { return x; }
CONCUR_TASK(noop);

CLI::App* add_worker_command(CLI::App& app) {
  CLI::App* worker = app.add_subcommand(
      "worker",
      "serve concur's built-in tasks (is_prime, fib, noop) from Redis for RedisExecutor "
      "clients: --redis URL --queues a,b --concurrency N --lease SECONDS (worker --help)");
  worker->prefix_command();  // its options are dist::worker_main's
  return worker;
}

int run_worker(const CLI::App& worker) {
  std::vector<std::string> args = {"concur worker"};
  for (const std::string& a : worker.remaining()) args.push_back(a);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return concur::dist::worker_main(static_cast<int>(args.size()), argv.data());
}

CLI::App* add_dist_command(CLI::App& app, StatusOptions& options) {
  CLI::App* dist = app.add_subcommand("dist", "inspect a concur::dist cluster (Redis)");
  dist->require_subcommand(1);
  CLI::App* status =
      dist->add_subcommand("status",
                           "queues (waiting, leased, retries, dead letters, done) and "
                           "workers (last heartbeat, tasks held)");
  status->add_option("--redis", options.redis, "Redis URL")->capture_default_str();
  status->add_option("--prefix", options.prefix, "key prefix of the executors and workers")
      ->capture_default_str();
  status->add_flag("--json", options.json, "one JSON object instead of the table");
  return dist;
}

std::string format_status(const concur::dist::ClusterStatus& s) {
  std::string out;
  out += fmt::format("{:<20} {:>10} {:>8} {:>8} {:>8} {:>12} {:>8}\n", "queue", "waiting", "leased",
                     "retries", "dead", "succeeded", "failed");
  for (const auto& q : s.queues)
    out += fmt::format("{:<20} {:>10} {:>8} {:>8} {:>8} {:>12} {:>8}\n", q.name, q.waiting,
                       q.leased, q.delayed, q.dead, q.succeeded, q.failed);
  if (s.queues.empty()) out += "(no queues)\n";
  out += fmt::format("\n{:<40} {:>14} {:>8}\n", "worker", "last heartbeat", "tasks");
  for (const auto& w : s.workers)
    out += fmt::format("{:<40} {:>12.1f} s {:>8}\n", w.name,
                       static_cast<double>(w.last_seen.count()) / 1000.0, w.leased);
  if (s.workers.empty()) out += "(no workers)\n";
  if (!s.crawls.empty()) {  // only when `concur crawl --redis` used this Redis
    out += fmt::format("\n{:<40} {:>10} {:>8} {:>10} {:>10}\n", "shared crawl", "queued", "leased",
                       "seen", "pages");
    for (const auto& c : s.crawls)
      out += fmt::format("{:<40} {:>10} {:>8} {:>10} {:>10}\n", c.name, c.queued, c.leased, c.seen,
                         c.pages);
  }
  return out;
}

int run_dist(const StatusOptions& options, std::ostream& out, std::ostream& err) {
  try {
    concur::dist::Redis redis =
        concur::dist::Redis::connect(concur::dist::RedisUrl::parse(options.redis));
    const concur::dist::ClusterStatus s = concur::dist::read_status(redis, options.prefix);
    if (!options.json) {
      out << format_status(s);
      return 0;
    }
    nlohmann::json j;
    j["queues"] = nlohmann::json::array();
    for (const auto& q : s.queues)
      j["queues"].push_back({{"name", q.name},
                             {"waiting", q.waiting},
                             {"leased", q.leased},
                             {"delayed", q.delayed},
                             {"dead", q.dead},
                             {"succeeded", q.succeeded},
                             {"failed", q.failed}});
    j["workers"] = nlohmann::json::array();
    for (const auto& w : s.workers)
      j["workers"].push_back(
          {{"name", w.name}, {"last_seen_ms", w.last_seen.count()}, {"leased", w.leased}});
    j["crawls"] = nlohmann::json::array();
    for (const auto& c : s.crawls)
      j["crawls"].push_back({{"name", c.name},
                             {"queued", c.queued},
                             {"leased", c.leased},
                             {"seen", c.seen},
                             {"pages", c.pages}});
    out << j.dump() << "\n";
    return 0;
  } catch (const ValueError& e) {
    err << "concur dist: " << e.what() << "\n";
    return 2;
  } catch (const Error& e) {
    err << "concur dist: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace concur::apps::dist
