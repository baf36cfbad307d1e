// The notes' producer/consumer crawler (queue.Queue between threads) with coroutines: producers
// put page URLs into an asyncio.Queue, consumers take them, "fetch" them (a sleep standing for the
// network) and mark each one done; join() waits until every URL was handled. Python:
//
//   async def producer(q, urls):
//       for url in urls:
//           await q.put(url)          # waits while the bounded queue is full
//   async def consumer(q, seen):
//       while True:
//           url = await q.get()
//           await asyncio.sleep(0.01)
//           seen.append(url)
//           q.task_done()
//   q = asyncio.Queue(maxsize=10)
//   ...; await q.join(); q.shutdown()   # 3.13: the consumers' get() raises QueueShutDown
//
// Checked: every URL was consumed exactly once, the queue never held more than maxsize, the
// consumers ended through ShutDown, and 4 consumers took about a quarter of the serial time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace aio = concur::aio;
using namespace std::chrono_literals;

namespace {

constexpr int kProducers = 2;
constexpr int kConsumers = 4;
constexpr int kUrlsPerProducer = 50;
constexpr std::size_t kMaxSize = 10;
constexpr auto kFetch = 10ms;

aio::Task<void> producer(aio::Queue<std::string>& q, int id) {
  for (int i = 1; i <= kUrlsPerProducer; ++i) {
    co_await q.put("https://www.cnblogs.com/sitehome/p/" + std::to_string(id * 1000 + i));
  }
}

aio::Task<int> consumer(aio::Queue<std::string>& q, std::vector<std::string>& seen,
                        std::size_t& most_queued) {
  int handled = 0;
  for (;;) {
    most_queued = std::max(most_queued, q.qsize());
    std::string url;
    try {
      url = co_await q.get();
    } catch (const concur::ShutDown&) {
      co_return handled;  // the queue was shut down after join(): no more work
    }
    co_await aio::sleep(kFetch);  // the page's download
    seen.push_back(std::move(url));
    ++handled;
    q.task_done();
  }
}

aio::Task<bool> main_task() {
  aio::Queue<std::string> q(kMaxSize);
  std::vector<std::string> seen;
  std::size_t most_queued = 0;
  const auto start = aio::Clock::now();
  std::vector<aio::Task<void>> producers;
  std::vector<aio::Task<int>> consumers;
  for (int i = 0; i < kProducers; ++i) producers.push_back(aio::create_task(producer(q, i)));
  for (int i = 0; i < kConsumers; ++i) {
    consumers.push_back(aio::create_task(consumer(q, seen, most_queued)));
  }
  (void)co_await aio::gather(std::move(producers));
  co_await q.join();  // every URL put was task_done()
  q.shutdown();       // wakes the consumers waiting in get() with ShutDown
  const std::vector<int> handled = co_await aio::gather(std::move(consumers));
  const std::chrono::duration<double> took = aio::Clock::now() - start;
  const std::set<std::string> unique(seen.begin(), seen.end());
  std::printf("%zu URLs consumed (%zu distinct) by %d consumers in %.3f s; per consumer:",
              seen.size(), unique.size(), kConsumers, took.count());
  for (int h : handled) std::printf(" %d", h);
  std::printf("; queue held at most %zu of %zu\n", most_queued, kMaxSize);
  const std::size_t total = static_cast<std::size_t>(kProducers * kUrlsPerProducer);
  const auto serial = kFetch * static_cast<int>(total);
  co_return seen.size() == total&& unique.size() ==
      total&& most_queued <= kMaxSize&& took < serial / 2;
}

}  // namespace

int main() {
  const bool ok = aio::run(main_task());
  std::printf("%s\n", ok ? "ok: every URL once, bounded queue, consumers in parallel" : "FAILED");
  return ok ? 0 : 1;
}
