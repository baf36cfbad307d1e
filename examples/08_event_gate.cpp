// Notes "事件" (`threading.Event`): conn_mysql threads try to connect with `event.wait(timeout)`
// while check_mysql checks the server, raising TimeoutError('链接超时') after three attempts.
// Round 1: the check set()s the event and both connect. Round 2, after clear(): the server is
// down, nobody sets it, and both give up after their bounded attempts.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kAttempts = 3;
constexpr auto kAttemptTimeout = 100ms;  // event.wait(1.5)

concur::Event event;

void conn_mysql() {
  const std::string me = concur::current_thread().name();  // current_thread().getName()
  int count = 1;
  while (!event.is_set()) {  // is_set(), isSet() in old Python
    if (count > kAttempts) throw concur::TimeoutError("链接超时");
    std::printf("<%s>第%d次尝试链接\n", me.c_str(), count);
    event.wait(kAttemptTimeout);  // True as soon as the flag is set
    count += 1;
  }
  std::printf("<%s>链接成功\n", me.c_str());
}

void check_mysql(std::chrono::milliseconds check_time) {
  std::printf("[%s]正在检查mysql\n", concur::current_thread().name().c_str());
  std::this_thread::sleep_for(check_time);  // time.sleep(random.randint(1, 4))
  event.set();
}

// One round: two connecting threads (and, if the server is up, a checking thread). Returns how
// many of the two connected; a TimeoutError is caught and printed here.
int round_trip(bool server_up, std::chrono::milliseconds check_time) {
  std::atomic<int> connected{0};
  auto conn = [&connected] {
    try {
      conn_mysql();
      ++connected;
    } catch (const concur::TimeoutError& e) {
      std::printf("<%s>%s\n", concur::current_thread().name().c_str(), e.what());
    }
  };
  concur::Thread conn1(conn);
  concur::Thread conn2(conn);
  concur::Thread check(check_mysql, check_time);
  conn1.start();
  conn2.start();
  if (server_up) check.start();
  conn1.join();
  conn2.join();
  if (server_up) check.join();
  return connected.load();
}

}  // namespace

int main() {
  std::mt19937 rng(2024);  // fixed seed: the same "random" check time on every run
  const auto check_time = std::chrono::milliseconds(std::uniform_int_distribution(10, 40)(rng));

  const int up = round_trip(true, check_time);
  std::printf("server up: %d of 2 connected\n\n", up);

  event.clear();  // red again: the flag is false until the next set()
  const int down = round_trip(false, check_time);
  std::printf("server down: %d of 2 connected\n", down);

  if (up != 2) {
    std::fprintf(stderr, "FAIL: only %d threads connected although the check passed\n", up);
    return 1;
  }
  if (down != 0) {
    std::fprintf(stderr, "FAIL: %d threads connected to a server that is down\n", down);
    return 1;
  }
  return 0;
}
