// Notes 11-5 "condition 使用": 小爱 (XiaoAi) and 天猫精灵 (TianMao), two `threading.Thread`s on one
// `threading.Condition`, recite a poem, each wait()ing for the other's notify(). The notes need
// XiaoAi started first ("启动顺序很重要"); a shared `turn` checked by wait_for() makes the hand-off
// work in any start order, and every wait is bounded.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "concur/concur.hpp"

using namespace std::chrono_literals;

namespace {

// The dialogue in order; even lines are TianMao's, odd lines XiaoAi's.
const std::vector<std::string> kPoem = {
    "小爱同学",   "在",         "我们来对古诗吧", "好啊",
    "我住长江头", "君住长江尾", "日日思君不见君", "共饮长江水",
    "此水几时休", "此恨何时已", "只愿君心似我心", "定不负相思意",
};

// What both speakers share: the condition, whose turn it is, and what was said.
struct Stage {
  concur::Condition cond;         // threading.Condition(): its own RLock
  std::size_t turn = 0;           // index of the next line; guarded by cond
  std::vector<std::string> said;  // guarded by cond
  bool stuck = false;             // a wait timed out; guarded by cond
};

// Speaker says the lines whose parity is `first_line` (0: TianMao, 1: XiaoAi).
class Speaker : public concur::Thread {
 public:
  Speaker(std::string name, Stage& stage, std::size_t first_line)
      : Thread(Options{.name = std::move(name)}), stage_(stage), first_line_(first_line) {}

 protected:
  void run() override {
    std::lock_guard with_cond(stage_.cond);  // with self.cond:
    for (std::size_t line = first_line_; line < kPoem.size(); line += 2) {
      // self.cond.wait() — until it is this line's turn; the predicate makes an early notify()
      // harmless, the timeout makes a lost one visible instead of a hang.
      if (!stage_.cond.wait_for([&] { return stage_.turn == line; }, 2s)) {
        stage_.stuck = true;
        stage_.cond.notify();
        return;
      }
      const std::string text = name() + " : " + kPoem[line];
      std::printf("%s\n", text.c_str());
      stage_.said.push_back(text);
      ++stage_.turn;
      stage_.cond.notify();  // self.cond.notify(): wake the other speaker
    }
  }

 private:
  Stage& stage_;
  const std::size_t first_line_;
};

class XiaoAi : public Speaker {
 public:
  explicit XiaoAi(Stage& stage) : Speaker("小爱", stage, 1) {}
};

class TianMao : public Speaker {
 public:
  explicit TianMao(Stage& stage) : Speaker("天猫精灵", stage, 0) {}
};

}  // namespace

int main() {
  Stage stage;
  {
    XiaoAi xiaoai(stage);
    TianMao tianmao(stage);
    // The notes must start XiaoAi first; with the turn variable either order works.
    xiaoai.start();
    tianmao.start();
    xiaoai.join();
    tianmao.join();
  }
  // A second performance, started in the "wrong" order.
  Stage again;
  {
    XiaoAi xiaoai(again);
    TianMao tianmao(again);
    tianmao.start();
    xiaoai.start();
    tianmao.join();
    xiaoai.join();
  }

  for (const Stage* s : {&stage, &again}) {
    if (s->stuck || s->said.size() != kPoem.size()) {
      std::fprintf(stderr, "FAIL: the dialogue stopped after %zu lines\n", s->said.size());
      return 1;
    }
    for (std::size_t i = 0; i < kPoem.size(); ++i) {
      const std::string speaker = i % 2 == 0 ? "天猫精灵" : "小爱";
      if (s->said[i] != speaker + " : " + kPoem[i]) {
        std::fprintf(stderr, "FAIL: line %zu was \"%s\"\n", i, s->said[i].c_str());
        return 1;
      }
    }
  }
  return 0;
}
