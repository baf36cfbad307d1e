// crawl_http_bench — the downloader (crawl::HttpClient: libcurl's multi interface on the aio loop)
// beside raw Boost.Beast client coroutines on an Asio io_context, and Python's aiohttp
// (bench/compare/python_http_fetch_bench.py), all fetching from one loopback HTTP/1.1 server
// (tests/support/http_test_server.hpp, keep-alive) that runs in a child process, so the client's
// CPU is measured alone. One iteration = N (--n=2000) GETs of a small page (/page?size=1000,
// --size=B) by C (--concurrency=16) workers, each fetching in a loop until N were started (so C
// connections, kept alive). Every client is one thread.
//
//   BM_Fetch/concur_curl   C tasks awaiting client.fetch(url) on one aio::Loop (one HttpClient)
//   BM_Fetch/beast_asio    C co_spawned coroutines, each with its own beast::tcp_stream:
//                          http::async_write + http::async_read, keep-alive (the floor: no pool,
//                          no decoding, no redirects, no timeouts)
//
// Counters: pages_per_s (items/s), cpu_us_per_req = the process's user+system CPU (getrusage) per
// request. Each iteration makes a new client (its C connections included, as the Python twin's
// session). --python runs the Python twin against the same server afterwards and prints its JSON.
// Run: ./build/release/bench/crawl_http_bench --benchmark_repetitions=7
//      --benchmark_enable_random_interleaving=true [--python] [--n=N] [--concurrency=C]
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "concur/aio/combinators.hpp"
#include "concur/aio/task.hpp"
#include "concur/crawl/http.hpp"
#include "support/http_test_server.hpp"

namespace {

namespace aio = concur::aio;
namespace crawl = concur::crawl;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

int g_n = 2000;
int g_concurrency = 16;
int g_size = 1000;
int g_port = 0;
bool g_python = false;
pid_t g_server = -1;

const aio::RunOptions kRun{.debug = false, .handle_sigint = false};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string target() { return "/page?size=" + std::to_string(g_size); }

void report(benchmark::State& state, double cpu, int ok) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * g_n);
  state.counters["cpu_us_per_req"] = benchmark::Counter(
      cpu * 1e6 / (static_cast<double>(state.iterations()) * g_n), benchmark::Counter::kDefaults);
  if (ok != static_cast<int>(state.iterations()) * g_n) state.SkipWithError("a fetch failed");
}

// ---- concur: HttpClient ---------------------------------------------------------------------

aio::Task<void> concur_worker(crawl::HttpClient& client, const std::string& url, int& started,
                              int& ok) {
  while (started < g_n) {
    ++started;
    crawl::Response r = co_await client.fetch(url);
    if (r.status == 200 && !r.body.empty()) ++ok;
  }
}

aio::Task<void> concur_round(int& ok) {
  crawl::HttpClient client;
  const std::string url = "http://127.0.0.1:" + std::to_string(g_port) + target();
  int started = 0;
  std::vector<aio::Task<void>> workers;
  for (int i = 0; i < g_concurrency; ++i)
    workers.push_back(concur_worker(client, url, started, ok));
  co_await aio::gather(std::move(workers));
}

void BM_Fetch_concur(benchmark::State& state) {
  int ok = 0;
  double cpu = 0;
  for (auto _ : state) {
    const double c0 = cpu_seconds();
    aio::run(concur_round(ok), kRun);
    cpu += cpu_seconds() - c0;
  }
  report(state, cpu, ok);
}

// ---- raw Boost.Beast + Asio coroutines ------------------------------------------------------

asio::awaitable<void> beast_worker(int& started, int& ok) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  co_await stream.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                                        static_cast<unsigned short>(g_port)),
                                asio::use_awaitable);
  stream.socket().set_option(asio::ip::tcp::no_delay(true));
  http::request<http::empty_body> req{http::verb::get, target(), 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(g_port));
  req.set(http::field::user_agent, "beast");
  req.set(http::field::accept, "*/*");
  beast::flat_buffer buffer;
  while (started < g_n) {
    ++started;
    co_await http::async_write(stream, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    if (res.result_int() == 200 && !res.body().empty()) ++ok;
  }
  beast::error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
}

void BM_Fetch_beast(benchmark::State& state) {
  int ok = 0;
  double cpu = 0;
  for (auto _ : state) {
    const double c0 = cpu_seconds();
    asio::io_context io(1);
    int started = 0;
    for (int i = 0; i < g_concurrency; ++i) {
      asio::co_spawn(io, beast_worker(started, ok), [](const std::exception_ptr& e) {
        if (e) std::rethrow_exception(e);
      });
    }
    io.run();
    cpu += cpu_seconds() - c0;
  }
  report(state, cpu, ok);
}

BENCHMARK(BM_Fetch_concur)
    ->Name("BM_Fetch/concur_curl")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Fetch_beast)
    ->Name("BM_Fetch/beast_asio")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- the server (a child process) -----------------------------------------------------------

aio::Task<void> serve(int ready_fd) {
  concur::testing::HttpTestServer server = co_await concur::testing::HttpTestServer::start();
  const std::string port = std::to_string(server.port()) + "\n";
  if (::write(ready_fd, port.data(), port.size()) < 0) std::_Exit(1);
  ::close(ready_fd);
  co_await server.wait_closed();  // until killed
}

// start_server(): forks the server (before any thread exists); returns its port.
int start_server() {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  g_server = ::fork();
  if (g_server == 0) {
    ::close(fds[0]);
    aio::run(serve(fds[1]), kRun);
    std::_Exit(0);
  }
  ::close(fds[1]);
  char buf[16] = {};
  const ssize_t got = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  if (got <= 0) {
    std::fprintf(stderr, "crawl_http_bench: the server did not start\n");
    std::exit(1);
  }
  return std::atoi(buf);
}

void stop_server() {
  if (g_server > 0) {
    ::kill(g_server, SIGTERM);
    int status = 0;
    ::waitpid(g_server, &status, 0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--n=", 0) == 0) {
      g_n = std::atoi(a.c_str() + 4);
    } else if (a.rfind("--concurrency=", 0) == 0) {
      g_concurrency = std::atoi(a.c_str() + 14);
    } else if (a.rfind("--size=", 0) == 0) {
      g_size = std::atoi(a.c_str() + 7);
    } else if (a == "--python") {
      g_python = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  g_port = start_server();
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::AddCustomContext("server", "tests/support/http_test_server.hpp, child process, port " +
                                            std::to_string(g_port));
  benchmark::AddCustomContext("fetches", std::to_string(g_n) + " x " + target() + ", " +
                                             std::to_string(g_concurrency) + " concurrent");
  benchmark::AddCustomContext("libcurl", crawl::curl_version_text());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  int rc = 0;
  if (g_python) {
    const std::string cmd =
        "/usr/bin/python3 " CONCUR_SOURCE_DIR "/bench/compare/python_http_fetch_bench.py --port " +
        std::to_string(g_port) + " --n " + std::to_string(g_n) + " --concurrency " +
        std::to_string(g_concurrency) + " --size " + std::to_string(g_size);
    std::fflush(stdout);
    rc = std::system(cmd.c_str());
  }
  stop_server();
  return rc == 0 ? 0 : 1;
}
