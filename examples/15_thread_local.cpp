// `threading.local` (concur::Local<T>): one object, a separate value in every thread. The
// classic local_school example: process_thread(name) stores the student in the thread-local
// object and process_student() reads it back without passing it down — each thread sees only
// its own student, and the main thread's value is untouched.
#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace {

struct School {
  std::string student;
  int lessons = 0;
};

std::atomic<int> inits{0};
// local_school = threading.local(); the init function runs once in each thread that uses it
// (Python: a threading.local subclass with __init__).
concur::Local<School> local_school([] {
  ++inits;
  return School{};
});

std::atomic<int> mixups{0};

void process_student() {
  const School& school = local_school.get();  // this thread's School, nobody else's
  std::printf("Hello, %s (in %s), lesson %d\n", school.student.c_str(),
              concur::current_thread().name().c_str(), school.lessons);
}

void process_thread(const std::string& name) {
  for (int lesson = 1; lesson <= 3; ++lesson) {
    local_school->student = name;  // local_school.student = name
    local_school->lessons = lesson;
    process_student();
    if (local_school->student != name) ++mixups;  // another thread's write would show here
  }
}

}  // namespace

int main() {
  local_school->student = "Teacher";  // the main thread's own value
  {
    std::vector<concur::Thread> threads;
    threads.reserve(3);
    for (const char* name : {"Alice", "Bob", "Carol"}) {
      threads.emplace_back(concur::Thread::Options{.name = std::string("Thread-") + name},
                           process_thread, std::string(name));
    }
    for (auto& t : threads) t.start();
    for (auto& t : threads) t.join();
  }
  std::printf("main still sees %s; %d School objects were created\n", local_school->student.c_str(),
              inits.load());

  if (mixups.load() != 0 || local_school->student != "Teacher" || local_school->lessons != 0) {
    std::fprintf(stderr, "FAIL: threads saw each other's values\n");
    return 1;
  }
  if (inits.load() != 4) {  // main + three threads
    std::fprintf(stderr, "FAIL: %d School objects, expected one per thread (4)\n", inits.load());
    return 1;
  }
  return 0;
}
