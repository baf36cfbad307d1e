// Notes 11-6 "Semaphore 使用": a UrlProducer thread starts one HtmlSpider thread per URL, but
// first takes a unit of `threading.Semaphore(3)`; each spider release()s it when done. So at
// most three spiders crawl at once ("控制爬虫的数量") — checked here with a running count.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kUrls = 20;
constexpr int kMaxSpiders = 3;

std::atomic<int> crawling{0};      // spiders inside run() right now
std::atomic<int> max_crawling{0};  // the most ever seen at once
std::atomic<int> pages{0};

class HtmlSpider : public concur::Thread {
 public:
  HtmlSpider(std::string url, concur::Semaphore& sem) : url_(std::move(url)), sem_(sem) {}

 protected:
  void run() override {
    const int now = ++crawling;
    int seen = max_crawling.load();
    while (now > seen && !max_crawling.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(20ms);  // time.sleep(2): fetching the page
    std::printf("got html text success: %s (%d crawling)\n", url_.c_str(), now);
    ++pages;
    --crawling;      // leave before handing the unit back,
    sem_.release();  // self.sem.release(): let the producer start the next spider
  }

 private:
  std::string url_;
  concur::Semaphore& sem_;
};

class UrlProducer : public concur::Thread {
 public:
  explicit UrlProducer(concur::Semaphore& sem) : sem_(sem) {}

 protected:
  void run() override {
    for (int i = 0; i < kUrls; ++i) {
      sem_.acquire();  // blocks while three spiders are out
      spiders_.push_back(
          std::make_unique<HtmlSpider>("https://baidu.com/" + std::to_string(i), sem_));
      spiders_.back()->start();
    }
    // Python leaves the spiders running; C++ joins them before they are destroyed.
    for (auto& spider : spiders_) spider->join();
  }

 private:
  concur::Semaphore& sem_;
  std::vector<std::unique_ptr<HtmlSpider>> spiders_;
};

}  // namespace

int main() {
  concur::Semaphore sem(kMaxSpiders);
  UrlProducer url_producer(sem);
  url_producer.start();
  url_producer.join();

  std::printf("%d pages, at most %d spiders at once\n", pages.load(), max_crawling.load());
  if (max_crawling.load() > kMaxSpiders) {
    std::fprintf(stderr, "FAIL: %d spiders ran at once, the semaphore allows %d\n",
                 max_crawling.load(), kMaxSpiders);
    return 1;
  }
  if (pages.load() != kUrls || sem.value() != kMaxSpiders) {
    std::fprintf(stderr, "FAIL: %d pages, semaphore value %u\n", pages.load(), sem.value());
    return 1;
  }
  return 0;
}
