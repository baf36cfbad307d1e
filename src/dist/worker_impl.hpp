// src/dist/worker_impl.hpp (internal) — Worker::Impl: what a Worker is over one broker. The URL's
// scheme picks it: redis:// and unix:// (worker.cpp), amqp:// (amqp_worker.cpp).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <memory>
#include <string_view>

#include "concur/dist/worker.hpp"

namespace concur::dist {

class Worker::Impl {
 public:
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  virtual ~Impl() = default;
  virtual void run() = 0;
  virtual void stop() noexcept = 0;
  [[nodiscard]] virtual WorkerStats stats() const = 0;
  [[nodiscard]] virtual const WorkerOptions& options() const noexcept = 0;

  const pid_t creator = ::getpid();  // the process that made the worker (and its connections)
};

namespace detail {

// check_worker_options(o): ValueError for bad options; fills in the defaults (concurrency: one
// per CPU; name: "<hostname>:<pid>").
void check_worker_options(WorkerOptions& o);
// is_amqp_url(url): an amqp:// URL (a RabbitMQ worker).
inline bool is_amqp_url(std::string_view url) { return url.starts_with("amqp://"); }
// make_amqp_worker(o): the AMQP worker (connects: ConnectionError).
std::unique_ptr<Worker::Impl> make_amqp_worker(WorkerOptions o);

}  // namespace detail

}  // namespace concur::dist
