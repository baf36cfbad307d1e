// Notes "multiprocessing.Process": the two ways to start a process — a target with args
// (Process(target=f, args=('john',))) and a subclass overriding run() (class NewProcess(Process))
// — then start()/join(), pid before and after start (None, then a number: get_html(2)), the
// child's own pid and its parent's (os.getpid()/os.getppid() of the os.fork notes), and
// cpu_count(). The notes' sleeps of 1-2 s are 20 ms here. Every child is started with the default
// start method (forkserver), so f, get_html and NewProcess are registered once by name.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

// def f(name): print(f'hello {name}')
void f(std::string name) {
  std::printf("hello %s (pid %d, parent %d)\n", name.c_str(), ::getpid(),
              mp::parent_process() ? mp::parent_process()->pid : 0);
  std::fflush(stdout);
  if (name != "john") throw mp::SystemExit(2);  // the example's check: the argument arrived
}
CONCUR_TASK(f);

// def get_html(n): time.sleep(n); print("sub_progress success"); return n
int get_html(int n) {
  std::this_thread::sleep_for(std::chrono::milliseconds(10 * n));
  std::printf("sub_progress success\n");
  std::fflush(stdout);
  return n;
}
CONCUR_TASK(get_html);

// class NewProcess(Process): def run(self): print(f'我是进程 {self.num} ...'). The notes' run()
// loops forever; this one says hello three times. serialize() lists what the child needs.
class NewProcess : public mp::Process {
 public:
  NewProcess() = default;
  explicit NewProcess(int num) : num_(num) {}
  template <class Archive>
  void serialize(Archive& ar) {
    ar(num_);
  }

 protected:
  void run() override {
    for (int i = 0; i < 3; ++i) {
      std::printf("I am process %d, my pid is %d\n", num_, ::getpid());
      std::fflush(stdout);
      std::this_thread::sleep_for(20ms);
    }
  }

 private:
  int num_ = 0;
};
CONCUR_PROCESS(NewProcess);

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines in the order they happen
  std::printf("CPU cores: %d\n", mp::cpu_count());

  mp::Process p(f, "john");
  p.start();
  p.join();

  mp::Process progress(get_html, 2);
  std::printf("pid before start: %d\n", progress.pid());  // Python prints None
  progress.start();
  std::printf("pid after start: %d\n", progress.pid());
  progress.join();
  std::printf("main progress end\n");

  NewProcess a(0);
  NewProcess b(1);
  a.start();
  b.start();
  a.join();
  b.join();

  const bool ok = p.exitcode() == 0 && progress.exitcode() == 0 && a.exitcode() == 0 &&
                  b.exitcode() == 0 && progress.pid() > 0 && a.pid() != b.pid();
  std::printf("%s\n", ok ? "all children exited with 0" : "a child failed");
  return ok ? 0 : 1;
}
