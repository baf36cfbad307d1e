// Compile-time check (tests/CMakeLists.txt): a task whose parameter type cereal cannot serialize
// is rejected when it is registered, and a Process given such an argument is rejected, each with
// concur's readable message. Built with -DCONCUR_EXPECT_OK it is the positive control: the same
// file with a serializable type compiles.
#include <concur/mp/process.hpp>
#include <thread>

struct Plain {  // no serialize(): cereal cannot write it
  int x = 0;
};

#ifdef CONCUR_EXPECT_OK
struct Arg {
  int x = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
};
#else
using Arg = Plain;
#endif

void task(Arg) {}
CONCUR_TASK(task);

int main() {
  concur::mp::Process p(task, Arg{});
  (void)p;
}
