// Notes 11-11 "Queue不能使用在multiprocessing的Pool线程池中的": a producer and a consumer run as
// two tasks of Pool(2) (apply_async, then close() and join()) and talk through a queue — in Python
// it must be Manager().Queue(10), since a multiprocessing.Queue cannot be passed to a pool task —
// and then through the two ends of a Pipe(), which a pool task may take. The producer puts "a"
// and sleeps; the consumer sleeps, gets and prints it. In concur every handle reaches a pool task:
// an mp::Queue works too (third run), where Python's pool refuses it. Sleeps of 2 s are 20 ms.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

// def producer(queue): queue.put("a"); time.sleep(2)
void producer(mp::QueueProxy<std::string> queue) {
  queue.put("a");
  std::this_thread::sleep_for(20ms);
}
CONCUR_TASK(producer);

// def consumer(queue): time.sleep(2); data = queue.get(); print(data)
std::string consumer(mp::QueueProxy<std::string> queue) {
  std::this_thread::sleep_for(20ms);
  std::string data = queue.get(10s);  // (a timeout below ctest's: a bug fails, never hangs)
  std::printf("Manager().Queue: %s\n", data.c_str());
  std::fflush(stdout);
  return data;
}
CONCUR_TASK(consumer);

// The Pipe version: def producer(pipe): pipe.send("a") / def consumer(pipe): print(pipe.recv())
void pipe_producer(mp::Connection pipe) {
  pipe.send(std::string("a"));
  std::this_thread::sleep_for(20ms);
}
CONCUR_TASK(pipe_producer);

std::string pipe_consumer(mp::Connection pipe) {
  std::this_thread::sleep_for(20ms);
  if (!pipe.poll(10s)) return "(nothing came)";
  std::string data = pipe.recv<std::string>();
  std::printf("Pipe: %s\n", data.c_str());
  std::fflush(stdout);
  return data;
}
CONCUR_TASK(pipe_consumer);

// Beyond Python: the process Queue itself.
void queue_producer(mp::Queue<std::string>& queue) { queue.put("a"); }
CONCUR_TASK(queue_producer);

std::string queue_consumer(mp::Queue<std::string>& queue) {
  std::string data = queue.get(10s);
  std::printf("mp::Queue: %s\n", data.c_str());
  std::fflush(stdout);
  return data;
}
CONCUR_TASK(queue_consumer);

}  // namespace

int main() {
  bool ok = true;
  {
    // queue = Manager().Queue(10); pool = Pool(2)
    mp::Manager manager;
    auto queue = manager.Queue<std::string>(10);
    mp::Pool pool(mp::PoolOptions{.processes = 2});
    (void)pool.apply_async(producer, queue);
    mp::AsyncResult<std::string> got = pool.apply_async(consumer, queue);
    pool.close();
    pool.join();
    ok = ok && got.get() == "a";
  }
  {
    // receive_pipe, send_pipe = Pipe()
    auto [receive_pipe, send_pipe] = mp::Pipe();
    mp::Pool pool(mp::PoolOptions{.processes = 2});
    (void)pool.apply_async(pipe_producer, send_pipe);
    mp::AsyncResult<std::string> got = pool.apply_async(pipe_consumer, receive_pipe);
    pool.close();
    pool.join();
    ok = ok && got.get() == "a";
  }
  {
    mp::Queue<std::string> queue(10);
    mp::Pool pool(mp::PoolOptions{.processes = 2});
    (void)pool.apply_async(queue_producer, queue);
    mp::AsyncResult<std::string> got = pool.apply_async(queue_consumer, queue);
    pool.close();
    pool.join();
    ok = ok && got.get() == "a";
  }
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
