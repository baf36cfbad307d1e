// dist/dist_command.hpp — `concur worker` and `concur dist status`: concur::dist from the command
// line.
//
//   concur worker --redis redis://10.0.0.5:6379 --concurrency 8   # serve the built-in tasks
//   concur dist status --redis redis://10.0.0.5:6379              # queues, leases, workers
//
// The built-in tasks a `concur worker` serves: the notes' is_prime (is_prime_task, and
// serve_is_prime of `concur serve`), fib (fib_task), and noop(x) → x (the benchmarks' trivial
// task). A program of your own serves its own tasks with dist::worker_main (worker.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <ostream>
#include <string>

#include "concur/dist/status.hpp"

namespace concur::apps::dist {

// noop(x) is x: the trivial task of the dist benchmarks (bench/compare/dist/).
std::int64_t noop(std::int64_t x);

// add_worker_command(app): `concur worker ...`; everything after it goes to dist::worker_main.
CLI::App* add_worker_command(CLI::App& app);
// run_worker(worker): dist::worker_main with the subcommand's arguments.
int run_worker(const CLI::App& worker);

struct StatusOptions {
  std::string redis = "redis://127.0.0.1:6379";
  std::string prefix = "concur";
  bool json = false;
};
// add_dist_command(app, options): `concur dist status [--redis URL] [--prefix P] [--json]`.
CLI::App* add_dist_command(CLI::App& app, StatusOptions& options);
// run_dist(options, out, err): prints the status (a table, or one JSON object); 1 when Redis
// cannot be reached.
int run_dist(const StatusOptions& options, std::ostream& out, std::ostream& err);
// format_status(s): the table run_dist prints.
std::string format_status(const concur::dist::ClusterStatus& s);

}  // namespace concur::apps::dist
