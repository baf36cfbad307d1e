// tests/support/dist_worker.hpp — InProcessWorker: a concur::dist::Worker (Redis or RabbitMQ: the
// URL picks) running on a thread of the test; stop() is warm, and the destructor stops and joins.
// Thread-safety: join() from the test's thread.
#pragma once

#include <thread>
#include <utility>

#include "concur/dist/worker.hpp"

namespace concur::testing {

class InProcessWorker {
 public:
  explicit InProcessWorker(dist::WorkerOptions o) : worker_(std::move(o)) {
    thread_ = std::thread([this] { worker_.run(); });
  }
  InProcessWorker(const InProcessWorker&) = delete;
  InProcessWorker& operator=(const InProcessWorker&) = delete;
  ~InProcessWorker() { join(); }
  // join(): a warm stop; returns once run() did (the tasks taken finished and reported).
  void join() {
    worker_.stop();
    if (thread_.joinable()) thread_.join();
  }
  dist::Worker& worker() { return worker_; }

 private:
  dist::Worker worker_;
  std::thread thread_;
};

}  // namespace concur::testing
