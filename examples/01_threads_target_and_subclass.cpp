// Notes 11-2 "多线程编程 - threading": the two ways to start a `threading.Thread` — a target
// function with args, and a subclass overriding run() — then start()/join(), `name`,
// `ident`, `is_alive()`, `threading.current_thread()`, `main_thread()`, `active_count()` and
// `enumerate()`. The sleeps (2 s / 4 s in the notes) are 20 ms / 40 ms here.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

// 1. A target function: threading.Thread(target=get_detail_html, args=(url,)).
void get_detail_html(const std::string& url) {
  std::printf("get detail html started: %s\n", url.c_str());
  std::this_thread::sleep_for(20ms);
  std::printf("get detail html end\n");
}

void get_detail_url(const std::string& url) {
  std::printf("get detail url started: %s\n", url.c_str());
  std::this_thread::sleep_for(40ms);
  std::printf("get detail url end\n");
}

// 2. A subclass: class GetDetailHtml(threading.Thread) with super().__init__(name=name).
class GetDetailHtml : public concur::Thread {
 public:
  explicit GetDetailHtml(std::string name) : Thread(Options{.name = std::move(name)}) {}

 protected:
  void run() override {
    std::printf("[%s] get detail html started\n", concur::current_thread().name().c_str());
    std::this_thread::sleep_for(20ms);
    std::printf("[%s] get detail html end\n", concur::current_thread().name().c_str());
  }
};

class GetDetailUrl : public concur::Thread {
 public:
  explicit GetDetailUrl(std::string name) : Thread(Options{.name = std::move(name)}) {}

 protected:
  void run() override {
    std::printf("[%s] get detail url started\n", concur::current_thread().name().c_str());
    std::this_thread::sleep_for(40ms);
    std::printf("[%s] get detail url end\n", concur::current_thread().name().c_str());
  }
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  std::printf("main: %s (ident %llu)\n", concur::current_thread().name().c_str(),
              static_cast<unsigned long long>(concur::get_ident()));

  // --- target= ---------------------------------------------------------------------------------
  concur::Thread thread1(get_detail_html, std::string("http://projectsedu.com/1"));
  concur::Thread thread2(get_detail_url, std::string("http://projectsedu.com/"));
  if (thread1.is_alive() || thread1.ident() != 0) {
    std::fprintf(stderr, "FAIL: a thread that was never started looks alive\n");
    return 1;
  }
  auto start_time = std::chrono::steady_clock::now();
  thread1.start();
  thread2.start();
  // print(t.ident, t.name, t.is_alive()) — the default names are "Thread-N".
  std::printf("%llu %s %s\n", static_cast<unsigned long long>(thread1.ident()),
              thread1.name().c_str(), thread1.is_alive() ? "True" : "False");
  std::printf("active_count() = %zu:", concur::active_count());
  for (const concur::ThreadRef& t : concur::enumerate()) std::printf(" %s", t.name().c_str());
  std::printf("\n");
  thread1.join();
  thread2.join();
  // Both ran at once, so the total is about max(20, 40) ms, not the sum.
  const double target_time = seconds_since(start_time);
  std::printf("last time: %.3f\n", target_time);

  // --- subclass ----------------------------------------------------------------------------------
  GetDetailHtml html("get_detail_html");
  GetDetailUrl url("get_detail_url");
  start_time = std::chrono::steady_clock::now();
  html.start();
  url.start();
  // A subclass's run() uses the subclass, so join it before it is destroyed.
  html.join();
  url.join();
  const double subclass_time = seconds_since(start_time);
  std::printf("last time: %.3f\n", subclass_time);

  if (thread1.is_alive() || thread2.is_alive() || html.is_alive() || url.is_alive()) {
    std::fprintf(stderr, "FAIL: a joined thread is still alive\n");
    return 1;
  }
  if (html.name() != "get_detail_html" || url.name() != "get_detail_url") {
    std::fprintf(stderr, "FAIL: the name passed to the constructor was lost\n");
    return 1;
  }
  // join() waited for the slower thread: never less than its 40 ms.
  if (target_time < 0.040 || subclass_time < 0.040) {
    std::fprintf(stderr, "FAIL: join() returned before the 40 ms thread finished\n");
    return 1;
  }
  if (concur::current_thread() != concur::main_thread()) {
    std::fprintf(stderr, "FAIL: current_thread() in main is not main_thread()\n");
    return 1;
  }
  return 0;
}
