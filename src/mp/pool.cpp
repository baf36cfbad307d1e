// src/mp/pool.cpp — mp::Pool's lifecycle: close, join, terminate (concur/mp/pool.hpp).
#include "concur/mp/pool.hpp"

#include <mutex>

namespace concur::mp {

Pool::Pool(PoolOptions options)
    : processes_(options.processes == 0 ? static_cast<std::size_t>(cpu_count())
                                        : options.processes),
      executor_(ProcessPoolOptions{.max_workers = processes_,
                                   .start_method = options.start_method,
                                   .initializer = options.initializer,
                                   .max_tasks_per_child = options.maxtasksperchild,
                                   .break_on_worker_death = false}) {}

Pool::~Pool() {
  try {
    terminate();
  } catch (...) {
    concur::excepthook(std::current_exception());
  }
}

void Pool::check_running_locked() const {
  if (state_ != State::kRun) throw ValueError("Pool not running");
}

void Pool::close() {
  {
    std::scoped_lock lock(mu_);
    if (state_ != State::kRun) return;
    state_ = State::kClose;
  }
  executor_.shutdown(/*wait=*/false, /*cancel_futures=*/false);
}

void Pool::join() {
  {
    std::scoped_lock lock(mu_);
    if (state_ == State::kRun) throw ValueError("Pool is still running");
  }
  std::scoped_lock stop(stop_mu_);
  executor_.shutdown(/*wait=*/true);
}

// terminate(): 1. refuse new work; 2. cancel what no worker has yet; 3. SIGTERM every worker
// (through its pidfd, so never a recycled pid): a killed worker's tasks fail with
// BrokenProcessPool and no replacement starts; 4. join.
void Pool::terminate() {
  {
    std::scoped_lock lock(mu_);
    state_ = State::kTerminate;
  }
  std::scoped_lock stop(stop_mu_);
  executor_.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  executor_.terminate_workers();
  executor_.shutdown(/*wait=*/true);
}

std::size_t Pool::processes() const noexcept { return processes_; }

std::vector<pid_t> Pool::worker_pids() const { return executor_.worker_pids(); }

}  // namespace concur::mp
