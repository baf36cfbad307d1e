// Notes 11-11 "进程间通信 - Queue、Pipe": a producer process puts "a" into a multiprocessing
// Queue(10) and a consumer process gets and prints it; f(q) puts [42, None, 'hello'] and the parent
// prints q.get(); a Pipe() gives two Connections — a producer sends "bobby", a consumer receives
// it; f(conn) sends [42, None, 'hello'] and closes, the parent receives. Pipe is the leaner channel
// between exactly two processes (no locks), Queue the general one. Also the notes' counter-example:
// an int passed to a producer that adds 100 is a copy — the consumer still sees 1. Sleeps of 2 s
// are 20 ms here.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <tuple>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

// [42, None, 'hello'] as a C++ value: a tuple with an empty optional for None.
using Triple = std::tuple<int, std::optional<int>, std::string>;

void print_triple(const Triple& t) {
  std::printf("[%d, %s, '%s']\n", std::get<0>(t), std::get<1>(t) ? "?" : "None",
              std::get<2>(t).c_str());
}

void producer(mp::Queue<std::string>& queue) {
  queue.put("a");
  std::this_thread::sleep_for(20ms);
}
CONCUR_TASK(producer);

void consumer(mp::Queue<std::string>& queue) {
  std::this_thread::sleep_for(20ms);
  const std::string data = queue.get(10s);
  std::printf("%s\n", data.c_str());
  std::fflush(stdout);
  if (data != "a") throw mp::SystemExit(2);
}
CONCUR_TASK(consumer);

void f_queue(mp::Queue<Triple>& q) { q.put(Triple{42, std::nullopt, "hello"}); }
CONCUR_TASK(f_queue);

void pipe_producer(mp::Connection pipe) { pipe.send(std::string("bobby")); }
CONCUR_TASK(pipe_producer);

void pipe_consumer(mp::Connection pipe) {
  const auto got = pipe.recv<std::string>();
  std::printf("%s\n", got.c_str());
  std::fflush(stdout);
  if (got != "bobby") throw mp::SystemExit(2);
}
CONCUR_TASK(pipe_consumer);

void f_conn(mp::Connection conn) {
  conn.send(Triple{42, std::nullopt, "hello"});
  conn.close();
}
CONCUR_TASK(f_conn);

// def producer(a): a += 100 — `a` is the child's copy.
void add_hundred(int a) { a += 100; }
CONCUR_TASK(add_hundred);

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines in the order they happen
  bool ok = true;
  {
    mp::Queue<std::string> queue(10);
    mp::Process my_producer(producer, queue);
    mp::Process my_consumer(consumer, queue);
    my_producer.start();
    my_consumer.start();
    my_producer.join();
    my_consumer.join();
    ok = ok && my_producer.exitcode() == 0 && my_consumer.exitcode() == 0;
  }
  {
    mp::Queue<Triple> q;
    mp::Process p(f_queue, q);
    p.start();
    const Triple got = q.get(10s);
    print_triple(got);  // [42, None, 'hello']
    p.join();
    ok = ok && got == Triple{42, std::nullopt, "hello"} && p.exitcode() == 0;
  }
  {
    auto [receive_pipe, send_pipe] = mp::Pipe();
    mp::Process my_producer(pipe_producer, send_pipe);
    mp::Process my_consumer(pipe_consumer, receive_pipe);
    my_producer.start();
    my_consumer.start();
    my_producer.join();
    my_consumer.join();
    ok = ok && my_producer.exitcode() == 0 && my_consumer.exitcode() == 0;
  }
  {
    auto [parent_conn, child_conn] = mp::Pipe();
    mp::Process p(f_conn, child_conn);
    p.start();
    child_conn.close();  // the parent's copy: only the child writes
    const auto got = parent_conn.recv<Triple>();
    print_triple(got);
    p.join();
    ok = ok && got == Triple{42, std::nullopt, "hello"} && p.exitcode() == 0;
  }
  {
    int a = 1;
    mp::Process p(add_hundred, a);
    p.start();
    p.join();
    std::printf("a in the parent: %d\n", a);
    ok = ok && a == 1;
  }
  return ok ? 0 : 1;
}
