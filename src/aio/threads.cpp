// LoopGroup (loops on their own threads, one Executor over them) and run_threads().
#include "concur/aio/threads.hpp"

#include <string>

#include "concur/thread.hpp"

namespace concur::aio {

struct LoopGroup::Member {
  std::unique_ptr<Loop> loop;
  std::unique_ptr<concur::Thread> thread;
};

LoopGroup::LoopGroup(std::size_t loops, LoopOptions options) {
  if (loops == 0) throw ValueError("LoopGroup(loops): loops must be at least 1");
  loops_.reserve(loops);
  for (std::size_t i = 0; i < loops; ++i) {
    auto m = std::make_unique<Member>();
    m->loop = std::make_unique<Loop>(options);
    Loop* l = m->loop.get();
    m->thread = std::make_unique<concur::Thread>(
        concur::Thread::Options{.name = "aio-loop-" + std::to_string(i)},
        [l] { l->run_forever(); });
    m->thread->start();
    loops_.push_back(std::move(m));
  }
}

LoopGroup::~LoopGroup() {
  try {
    shutdown(true);
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
  for (auto& m : loops_) m->loop->stop();
  for (auto& m : loops_) m->thread->join();
  for (auto& m : loops_) {
    try {
      m->loop->close();
    } catch (...) {
      concur::detail::report_exception(std::current_exception());
    }
  }
}

Loop& LoopGroup::loop(std::size_t i) {
  if (i >= loops_.size()) throw ValueError("LoopGroup::loop(i): no loop " + std::to_string(i));
  return *loops_[i]->loop;
}

void LoopGroup::shutdown(bool wait, bool cancel_futures) {
  for (auto& m : loops_) m->loop->shutdown(false, cancel_futures);
  if (wait) {
    for (auto& m : loops_) m->loop->shutdown(true, cancel_futures);
  }
}

void LoopGroup::execute(concur::detail::RunnablePtr task) {
  const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed) % loops_.size();
  loops_[i]->loop->execute(std::move(task));
}

namespace detail {

void run_in_threads(std::size_t n, const std::function<void(std::size_t)>& body) {
  std::mutex mu;
  std::vector<std::exception_ptr> errors;
  std::vector<std::unique_ptr<concur::Thread>> threads;
  threads.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    threads.push_back(std::make_unique<concur::Thread>(
        concur::Thread::Options{.name = "aio-run-" + std::to_string(i)}, [&, i] {
          try {
            body(i);
          } catch (...) {
            std::scoped_lock lock(mu);
            errors.push_back(std::current_exception());
          }
        }));
    threads.back()->start();
  }
  for (auto& t : threads) t->join();
  if (errors.size() == 1) std::rethrow_exception(errors.front());
  if (!errors.empty()) throw ExceptionGroup("errors in run_threads", std::move(errors));
}

}  // namespace detail
}  // namespace concur::aio
