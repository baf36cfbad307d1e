// Notes 11-3 "线程间通信" / "以生产者消费者为例": `threading.Thread` subclasses P1, P2 (producers)
// and C1, C2 (consumers) share a `threading.Condition()`; a producer waits at 10 queued items
// ("最多只有十个url"), a consumer while there are none ("当url_list为空的时候，消费者就暂停").
// Part 1 hand-rolls that on a shared list; part 2 is the same program on `queue.Queue(10)`
// ("队列其实是线程安全的，可以把锁去掉"). Both move the same items, checked by count and checksum.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace {

constexpr int kItemsPerProducer = 500;
constexpr std::size_t kMaxQueued = 10;

// value(producer, i) is the producer's i-th value, a fixed stand-in for random.randint(0, 10).
int value(int producer, int i) { return (producer * 7 + i * 13) % 11; }

// Tally is what one run moved: how many items, their checksum, the fullest the buffer got.
struct Tally {
  std::atomic<int> items{0};
  std::atomic<std::int64_t> checksum{0};
  std::atomic<std::size_t> max_queued{0};
  std::atomic<int> producer_waits{0};  // times a producer found the buffer full

  void consumed(int producer, int v) {
    ++items;
    checksum += static_cast<std::int64_t>(producer + 1) * 1000 + v;
  }
  void saw(std::size_t queued) {
    std::size_t seen = max_queued.load();
    while (queued > seen && !max_queued.compare_exchange_weak(seen, queued)) {
    }
  }
};

// thread_name('P', 0) is "P1". (Appended, not `"P" + std::to_string(...)`: with a one-letter
// literal g++ 12 reports a false -Wrestrict at -O3.)
std::string thread_name(char kind, int id) {
  std::string name(1, kind);
  name += std::to_string(id + 1);
  return name;
}

// An item is the notes' f'{self.name} : {value}', kept as fields so the checksum is exact.
struct Item {
  int producer;
  int value;
};

std::int64_t expected_checksum(int producers) {
  std::int64_t sum = 0;
  for (int p = 0; p < producers; ++p) {
    for (int i = 0; i < kItemsPerProducer; ++i) sum += (p + 1) * 1000 + value(p, i);
  }
  return sum;
}

// ---- Part 1: a shared list guarded by one Condition ---------------------------------------------

struct SharedList {
  concur::Condition con;      // con = threading.Condition()
  std::deque<Item> list;      // detail_url_list; guarded by con
  int producers_running = 0;  // guarded by con
};

class ListProducer : public concur::Thread {
 public:
  ListProducer(SharedList& s, Tally& t, int id)
      : Thread(Options{.name = thread_name('P', id)}), s_(s), t_(t), id_(id) {}

 protected:
  void run() override {
    for (int i = 0; i < kItemsPerProducer; ++i) {
      std::lock_guard with_con(s_.con);                       // self.con.acquire()
      if (s_.list.size() >= kMaxQueued) ++t_.producer_waits;  // 'Queue is full , producer wait'
      s_.con.wait_for([&] { return s_.list.size() < kMaxQueued; });
      s_.list.push_back(Item{id_, value(id_, i)});
      t_.saw(s_.list.size());
      // The notes call notify(): with producers and consumers on one Condition it can wake a
      // thread of the wrong kind, which goes back to sleep and the wake-up is lost. notify_all()
      // is the safe one-Condition form; queue.Queue uses two (not_full, not_empty) on one lock.
      s_.con.notify_all();
    }
    std::lock_guard with_con(s_.con);
    --s_.producers_running;
    s_.con.notify_all();  // consumers may now see "empty and no producer left"
  }

 private:
  SharedList& s_;
  Tally& t_;
  const int id_;
};

class ListConsumer : public concur::Thread {
 public:
  ListConsumer(SharedList& s, Tally& t, int id)
      : Thread(Options{.name = thread_name('C', id)}), s_(s), t_(t) {}

 protected:
  void run() override {
    while (true) {
      Item item{};
      {
        std::lock_guard with_con(s_.con);
        // 'Queue is empty , consumer wait' — until an item or the end of production.
        s_.con.wait_for([&] { return !s_.list.empty() || s_.producers_running == 0; });
        if (s_.list.empty()) return;
        item = s_.list.front();  // the notes' list.pop(); front keeps it FIFO like the Queue
        s_.list.pop_front();
        s_.con.notify_all();  // 通知生产者
      }
      t_.consumed(item.producer, item.value);  // work outside the lock
    }
  }

 private:
  SharedList& s_;
  Tally& t_;
};

// ---- Part 2: the same program on a bounded Queue, no Condition at all ---------------------------

class QueueProducer : public concur::Thread {
 public:
  QueueProducer(concur::Queue<Item>& q, Tally& t, int id)
      : Thread(Options{.name = thread_name('P', id)}), q_(q), t_(t), id_(id) {}

 protected:
  void run() override {
    for (int i = 0; i < kItemsPerProducer; ++i) {
      if (q_.full()) ++t_.producer_waits;  // a snapshot: put() below does the real waiting
      q_.put(Item{id_, value(id_, i)});    // blocks while 10 items are queued
      t_.saw(q_.qsize());
    }
  }

 private:
  concur::Queue<Item>& q_;
  Tally& t_;
  const int id_;
};

class QueueConsumer : public concur::Thread {
 public:
  QueueConsumer(concur::Queue<Item>& q, Tally& t, int id)
      : Thread(Options{.name = thread_name('C', id)}), q_(q), t_(t) {}

 protected:
  void run() override {
    while (true) {
      Item item{};
      try {
        item = q_.get();  // blocks while the queue is empty
      } catch (const concur::ShutDown&) {
        return;  // shut down and drained: production is over
      }
      t_.consumed(item.producer, item.value);
    }
  }

 private:
  concur::Queue<Item>& q_;
  Tally& t_;
};

// run_all starts every thread, then joins them in order.
void run_all(std::vector<std::unique_ptr<concur::Thread>>& threads) {
  for (auto& t : threads) t->start();
  for (auto& t : threads) t->join();
}

bool report(const char* title, const Tally& t, int producers) {
  const int want_items = producers * kItemsPerProducer;
  const std::int64_t want_sum = expected_checksum(producers);
  std::printf(
      "%s: %d items, checksum %lld (want %d, %lld), at most %zu queued, producers found "
      "it full %d times\n",
      title, t.items.load(), static_cast<long long>(t.checksum.load()), want_items,
      static_cast<long long>(want_sum), t.max_queued.load(), t.producer_waits.load());
  bool ok = true;
  if (t.items.load() != want_items || t.checksum.load() != want_sum) {
    std::fprintf(stderr, "FAIL: %s lost or duplicated items\n", title);
    ok = false;
  }
  if (t.max_queued.load() > kMaxQueued) {
    std::fprintf(stderr, "FAIL: %s held %zu items, the bound is %zu\n", title, t.max_queued.load(),
                 kMaxQueued);
    ok = false;
  }
  return ok;
}

}  // namespace

int main() {
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;

  Tally by_list;
  {
    SharedList shared;
    shared.producers_running = kProducers;
    std::vector<std::unique_ptr<concur::Thread>> threads;
    for (int i = 0; i < kProducers; ++i) {
      threads.push_back(std::make_unique<ListProducer>(shared, by_list, i));
    }
    for (int i = 0; i < kConsumers; ++i) {
      threads.push_back(std::make_unique<ListConsumer>(shared, by_list, i));
    }
    run_all(threads);
  }

  Tally by_queue;
  {
    concur::Queue<Item> q(kMaxQueued);  // q = queue.Queue(10)
    std::vector<std::unique_ptr<concur::Thread>> producers;
    std::vector<std::unique_ptr<concur::Thread>> consumers;
    for (int i = 0; i < kProducers; ++i) {
      producers.push_back(std::make_unique<QueueProducer>(q, by_queue, i));
    }
    for (int i = 0; i < kConsumers; ++i) {
      consumers.push_back(std::make_unique<QueueConsumer>(q, by_queue, i));
    }
    for (auto& t : consumers) t->start();
    run_all(producers);
    // The producers are done: shutdown() lets the consumers drain what is left, then their
    // get() on the empty queue throws ShutDown — the Queue's spelling of producers_running == 0.
    q.shutdown();
    for (auto& t : consumers) t->join();
  }

  const bool list_ok = report("list + Condition", by_list, kProducers);
  const bool queue_ok = report("Queue(10)       ", by_queue, kProducers);
  return list_ok && queue_ok ? 0 : 1;
}
