// Notes "使用subprocess播放歌曲解压文件" (`subprocess`): start another program from Python and use
// its result. The notes open a song and unpack an archive with subprocess; here (only /bin/sh and
// coreutils) run() captures a command's output, a failing command is caught with check=True, a
// Popen pipes text through `sort` with communicate(), and a too-slow child is killed by run()'s
// timeout.
#include <chrono>
#include <cstdio>
#include <string>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace sp = concur::subprocess;

int main() {
  // subprocess.run(['echo', 'hello from a child'], capture_output=True)
  const sp::CompletedProcess hello =
      sp::run({"echo", "hello from a child"}, {.capture_output = true});
  std::printf("returncode=%d stdout=%s", hello.returncode, hello.stdout_.c_str());

  // check=True turns a non-zero exit status into CalledProcessError.
  bool caught = false;
  try {
    sp::run({"sh", "-c", "exit 3"}, {.check = true});
  } catch (const sp::CalledProcessError& e) {
    std::printf("%s\n", e.what());
    caught = e.returncode() == 3;
  }

  // Popen + communicate: feed stdin, read stdout, never deadlock on full pipes.
  sp::Popen sorter({"sort"}, {.stdin_ = sp::Redirect::Pipe, .stdout_ = sp::Redirect::Pipe});
  const sp::CommunicateResult sorted = sorter.communicate("pear\napple\nfig\n", 10s);
  std::printf("sorted:\n%s", sorted.stdout_.c_str());

  // run(timeout=...) kills the child when time runs out.
  bool timed_out = false;
  const auto start = std::chrono::steady_clock::now();
  try {
    sp::run({"sleep", "5"}, {.timeout = 100ms});
  } catch (const sp::TimeoutExpired& e) {
    std::printf("%s\n", e.what());
    timed_out = true;
  }
  const auto took = std::chrono::steady_clock::now() - start;

  if (hello.returncode != 0 || hello.stdout_ != "hello from a child\n") {
    std::fprintf(stderr, "FAIL: run() did not capture the child's output\n");
    return 1;
  }
  if (!caught) {
    std::fprintf(stderr, "FAIL: check=true did not raise CalledProcessError(3)\n");
    return 1;
  }
  if (sorted.stdout_ != "apple\nfig\npear\n" || sorter.returncode() != 0) {
    std::fprintf(stderr, "FAIL: communicate() did not return sort's output\n");
    return 1;
  }
  if (!timed_out || took >= 4s) {
    std::fprintf(stderr, "FAIL: the timeout did not kill the sleeping child\n");
    return 1;
  }
  return 0;
}
