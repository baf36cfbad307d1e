// bench/experiments/serve_notes.hpp — the notes' web service (issue 15; "线程池在web服务中实现加速"
// and "在flask服务中使用进程池加速") as two `concur bench` experiments, each beside its flask twin:
//
// - serve_fanout: the fan-out page. `concur serve`'s app (serve::add_notes_routes) is served
//   in-process by an http::Service on a free 127.0.0.1 port; rows "serial page (/serial)" (the
//   three reads one after another: 0.6 s) and "pooled page (/)" (read_file 0.1 s, read_db 0.2 s,
//   read_api 0.3 s submitted to the App's thread pool at once: 0.3 s), then "python serial page
//   (/serial)" and "python pooled page (/)" against bench/compare/flask_notes_app.py under
//   gunicorn (-k gthread --threads kServeClients, the notes' pool sized 3 x kServeClients, as
//   bench/compare/run_serve_bench.sh runs it). A row's time is the median latency of a few
//   sequential requests; its note gives the spread and the throughput of kServeClients clients
//   in a closed loop (a bounded count of requests each). --quick scales the three sleeps by 0.1
//   (SLEEP_SCALE for flask, the sleeps of serve::NotesOptions for C++).
// - serve_is_prime: `/is_prime/<10 numbers>` (the notes' five PRIMES twice, as the serve
//   benchmark; --quick: ten primes near 1e9) with kServeProcesses compute processes on each
//   side: concur's App process pool of 2 vs gunicorn --workers 2, each worker's
//   ProcessPoolExecutor of 1 (POOL_PROCESSES=1: run_serve_bench.sh's setup). Rows: one client
//   (sequential requests, the baseline) and kServeIsPrimeClients clients, per language. Every
//   body must equal json.dumps(dict(zip(numbers, results))) computed here; and concur's and
//   flask's bodies must be byte-identical, or the experiment fails (ExperimentError).
//
// The Python rows need flask and gunicorn importable by the bench's Python (Debian's
// /usr/bin/python3 has both: `concur bench --python /usr/bin/python3`); without them they are
// marked skipped, with the reason. gunicorn runs in a process group of its own, started on a free
// loopback port and stopped (SIGTERM, then SIGKILL of the group after kServeStopTimeout) before
// run() returns. Every request is bounded (kServeGetTimeout), every load too (kServeLoadDeadline:
// no request is started after it). No traffic leaves the machine.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// kServeClients: the fan-out rows' concurrent clients; the C++ pool has 3 x as many threads and
// gunicorn as many threads (its notes' pool 3 x as many), so every client's reads can sleep at
// once on both sides.
inline constexpr unsigned kServeClients = 8;
// kServeProcesses: the compute processes of serve_is_prime on each side.
inline constexpr unsigned kServeProcesses = 2;
// kServeIsPrimeClients: the concurrent clients of serve_is_prime's second rows.
inline constexpr unsigned kServeIsPrimeClients = 4;
// kServeIsPrimeNumbers: the notes' PRIMES (five of them, all prime) twice, as
// bench/compare/run_serve_bench.sh requests them.
inline constexpr std::array<std::int64_t, 10> kServeIsPrimeNumbers = {
    112272535095293, 112582705942171, 112272535095293, 115280095190773, 115797848077099,
    112272535095293, 112582705942171, 112272535095293, 115280095190773, 115797848077099};
// kServeQuickNumbers: --quick's ten primes near 1e9 (the same shape, ~300 x less work each).
inline constexpr std::array<std::int64_t, 10> kServeQuickNumbers = {
    1000000007, 998244353, 1000000009, 999999937, 2147483647,
    1000000007, 998244353, 1000000009, 999999937, 2147483647};
// kServeQuickSleepScale: --quick's factor on the fan-out's three sleeps.
inline constexpr double kServeQuickSleepScale = 0.1;
// Bounds: one GET, one load (no request starts after it), gunicorn's start and its stop.
inline constexpr std::chrono::seconds kServeGetTimeout{30};
inline constexpr std::chrono::seconds kServeLoadDeadline{30};
inline constexpr std::chrono::seconds kServeStartTimeout{20};
inline constexpr std::chrono::seconds kServeStopTimeout{10};

// make_serve_fanout_experiment() and make_serve_is_prime_experiment(): the experiments, for the
// registry.
[[nodiscard]] std::unique_ptr<Experiment> make_serve_fanout_experiment();
[[nodiscard]] std::unique_ptr<Experiment> make_serve_is_prime_experiment();

}  // namespace concur::apps::bench
