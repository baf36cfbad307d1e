// `threading.excepthook`: an exception that escapes a thread's target — here conn_mysql's
// `raise TimeoutError('链接超时')` from the Event notes — is not lost. The default hook prints
// "Exception in thread NAME:" and the error to stderr; set_excepthook() installs a custom hook
// (Python: `threading.excepthook = hook`), which receives the exception and the thread.
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace {

void conn_mysql() { throw concur::TimeoutError("链接超时"); }

struct Seen {
  std::string thread;
  std::string type;
  std::string message;
  bool is_timeout = false;
};

}  // namespace

int main() {
  // 1. The default hook: prints to stderr, the program goes on.
  std::fflush(stdout);
  {
    concur::Thread conn(concur::Thread::Options{.name = "conn1"}, conn_mysql);
    conn.start();
    conn.join();
  }
  std::printf("main goes on after the default hook\n");

  // 2. A custom hook: keep what it received (hooks may run in several threads at once).
  std::mutex seen_mu;
  std::vector<Seen> seen;
  concur::ExceptHook previous = concur::set_excepthook([&](const concur::ExceptHookArgs& args) {
    Seen s{args.thread.name(), args.exc_type, args.exc_message, false};
    try {
      std::rethrow_exception(args.exc_value);  // the exception itself, to inspect its type
    } catch (const concur::TimeoutError&) {
      s.is_timeout = true;
    } catch (...) {
    }
    std::printf("hook: %s raised %s: %s\n", s.thread.c_str(), s.type.c_str(), s.message.c_str());
    std::lock_guard guard(seen_mu);
    seen.push_back(std::move(s));
  });
  {
    concur::Thread conn(concur::Thread::Options{.name = "conn2"}, conn_mysql);
    conn.start();
    conn.join();
  }
  concur::set_excepthook(std::move(previous));  // back to the default

  if (seen.size() != 1 || seen[0].thread != "conn2" || !seen[0].is_timeout ||
      seen[0].message != "TimeoutError: 链接超时") {
    std::fprintf(stderr, "FAIL: the custom hook did not receive conn2's TimeoutError\n");
    return 1;
  }
  return 0;
}
