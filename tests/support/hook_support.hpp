// tests/support/hook_support.hpp — helpers shared by the futures and executor tests:
// HookCapturingTest (a QuiescentTest that captures concur's excepthook and checks how many reports
// a test caused), Gate (an Event a task waits behind, bounded by kGenerous) and OpenAtExit (opens
// a gate when it goes out of scope, so a failed assertion never leaves an executor's destructor
// waiting on a closed gate).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "concur/errors.hpp"
#include "concur/sync/event.hpp"
#include "concur/thread.hpp"
#include "support/test_support.hpp"

namespace concur::testing {

// Report is one excepthook call as HookCapturingTest saw it.
struct Report {
  std::string type;
  std::string message;
  std::string thread;
};

// HookCapturingTest: a test that causes excepthook reports says how many (expect_reports) or
// opts out (ignore_reports); any other report fails it.
class HookCapturingTest : public QuiescentTest {
 protected:
  void SetUp() override {
    QuiescentTest::SetUp();
    previous_ = set_excepthook([this](const ExceptHookArgs& a) {
      std::lock_guard lk(mu_);
      reports_.push_back({a.exc_type, a.exc_message, a.thread.valid() ? a.thread.name() : ""});
    });
  }
  void TearDown() override {
    set_excepthook(previous_);
    if (!ignore_) {
      const auto got = reports();
      EXPECT_EQ(got.size(), expected_)
          << "unexpected excepthook reports, first: " << (got.empty() ? "" : got.front().message);
    }
    QuiescentTest::TearDown();
  }
  std::vector<Report> reports() {
    std::lock_guard lk(mu_);
    return reports_;
  }
  void expect_reports(std::size_t n) { expected_ = n; }
  void ignore_reports() { ignore_ = true; }

 private:
  ExceptHook previous_;
  std::mutex mu_;
  std::vector<Report> reports_;
  std::size_t expected_ = 0;
  bool ignore_ = false;
};

// Gate: tasks pass() once the test open()s it; a gate never opened fails the task within
// kGenerous instead of hanging it.
class Gate {
 public:
  void open() noexcept { event_.set(); }
  void pass() {
    if (!event_.wait(kGenerous)) throw TimeoutError("the test never opened the gate");
  }

 private:
  Event event_;
};

// OpenAtExit opens a gate when it goes out of scope. Declared after the executor, it is destroyed
// first: a failed assertion does not leave the executor's destructor waiting on a closed gate.
class OpenAtExit {
 public:
  explicit OpenAtExit(Gate& g) noexcept : gate_(g) {}
  OpenAtExit(const OpenAtExit&) = delete;
  OpenAtExit& operator=(const OpenAtExit&) = delete;
  ~OpenAtExit() { gate_.open(); }

 private:
  Gate& gate_;
};

}  // namespace concur::testing
