// README.md's complete program, kept compiling and passing here.
#include <concur/concur.hpp>
#include <cstdio>
#include <mutex>

int main() {
  concur::Lock lock;
  concur::Condition done(lock);
  long balance = 0;
  int finished = 0;

  auto change_it = [&](long n) {
    for (int i = 0; i < 150000; ++i) {
      std::scoped_lock guard(lock);  // Python: with lock:
      balance = balance + n;
      balance = balance - n;
    }
    std::scoped_lock guard(done);
    ++finished;
    done.notify_all();
  };

  concur::Thread t1(change_it, 5), t2(change_it, 8);
  t1.start();
  t2.start();
  {
    std::unique_lock guard(done);
    done.wait_for([&] { return finished == 2; });
  }
  t1.join();
  t2.join();
  std::printf("balance = %ld\n", balance);  // always 0
  return balance == 0 ? 0 : 1;
}
