// concur: the command-line programs of concur (DESIGN.md, "Programs"), one subcommand each.
// This file only parses the command line and dispatches; each subcommand's logic lives in
// the concur_apps library (apps/concur/<subcommand>/), where the tests call it directly.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string>

#include "bench/bench_command.hpp"
#include "bench/machine.hpp"
#include "concur/version.hpp"
#include "crawl/crawl_command.hpp"
#include "dist/dist_command.hpp"
#include "serve/serve_command.hpp"

#ifdef CONCUR_CLI_MIMALLOC
#include <mimalloc.h>
#endif

int main(int argc, char** argv) {
  try {
#ifdef CONCUR_CLI_MIMALLOC
    // The binary's malloc is mimalloc (linked, so it replaces glibc's for the whole process);
    // bench reports say so. mi_version() is 209 for 2.0.9.
    const int v = mi_version();
    concur::apps::bench::set_allocator_name("mimalloc " + std::to_string(v / 100) + "." +
                                            std::to_string(v / 10 % 10) + "." +
                                            std::to_string(v % 10));
#endif
    CLI::App app{
        "concur: Python's threading, queue, concurrent.futures, multiprocessing and asyncio, "
        "rebuilt in C++20, and the programs of its notes (bench, crawl, serve, worker)."};
    app.require_subcommand(1);
    // --version: "concur 0.1.0" (CONCUR_VERSION_STRING, concur/version.hpp).
    app.set_version_flag("--version", std::string("concur ") + CONCUR_VERSION_STRING,
                         "Print the version and exit");

    concur::apps::bench::BenchOptions bench_options;
    // is_prime_redis's workers are `concur worker` processes: this very binary.
    bench_options.concur_executable = "/proc/self/exe";
    CLI::App* bench = concur::apps::bench::add_bench_command(app, bench_options);
    concur::apps::crawl::CrawlOptions crawl_options;
    CLI::App* crawl = concur::apps::crawl::add_crawl_command(app, crawl_options);
    concur::apps::serve::ServeOptions serve_options;
    CLI::App* serve = concur::apps::serve::add_serve_command(app, serve_options);
    CLI::App* worker = concur::apps::dist::add_worker_command(app);
    concur::apps::dist::StatusOptions dist_options;
    CLI::App* dist = concur::apps::dist::add_dist_command(app, dist_options);

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      // --help exits 0; a usage error exits 2, as Python's argparse does.
      return app.exit(e) == 0 ? 0 : 2;
    }
    if (bench->parsed()) return concur::apps::bench::run_bench(bench_options, std::cout, std::cerr);
    if (crawl->parsed()) return concur::apps::crawl::run_crawl(crawl_options, std::cout, std::cerr);
    if (serve->parsed()) return concur::apps::serve::run_serve(serve_options, std::cout, std::cerr);
    if (worker->parsed()) return concur::apps::dist::run_worker(*worker);
    if (dist->parsed()) return concur::apps::dist::run_dist(dist_options, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "concur: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
