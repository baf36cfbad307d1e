// Notes p18_pvt.py ("process vs thread"): job(q) sums i + i**2 + i**3 for i in range(1000000) and
// puts the sum on a multiprocessing Queue; normal() does the work twice in a row, multithread()
// in two threads and multicore() in two processes — both through the same mp.Queue ("thread可放入
// process同样的queue中") — and each prints the total and its time. In Python the threads were
// no faster than normal() (1.41 s, 1.47 s, 0.75 s for processes: the GIL); in C++ the two threads
// run on two cores as the processes do. The times are printed, not checked (they depend on the
// machine); the totals are checked against the closed form. C++ does the notes' million steps in a
// few milliseconds, where starting a thread or a process weighs as much as the work: pass a bigger
// count (`example_55_process_vs_thread_job 100000000`) to see the two cores halve the time.
//
// Python's ints do not overflow: the total is about 5e23, past 64 bits, so the sum is kept in
// unsigned __int128 and travels through the queue as its decimal string.
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include "concur/concur.hpp"

using namespace std::chrono_literals;
namespace mp = concur::mp;

namespace {

__extension__ typedef unsigned __int128 u128;  // (a GNU extension: Python's ints do not overflow)
long long g_n = 1'000'000;  // range(1000000), or the count given on the command line

std::string decimal(u128 v) {
  if (v == 0) return "0";
  std::string s;
  for (; v != 0; v /= 10) s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
  return s;
}

u128 one_job(long long n) {
  u128 res = 0;
  for (long long i = 0; i < n; ++i) {
    const u128 x = static_cast<u128>(i);
    res += x + x * x + x * x * x;
  }
  return res;
}

// def job(q): ... q.put(res) — the count travels with the call (a child process has its own g_n).
void job(mp::Queue<std::string>& q, long long n) { q.put(decimal(one_job(n))); }
CONCUR_TASK(job);

// The sum over i < n of i + i^2 + i^3, by formula.
u128 expected_one(long long count) {
  const u128 n = static_cast<u128>(count);
  return n * (n - 1) / 2 + (n - 1) * n * (2 * n - 1) / 6 + (n * (n - 1) / 2) * (n * (n - 1) / 2);
}

// Adds two decimal strings (the two jobs' sums) as the notes' res1 + res2.
std::string add(const std::string& a, const std::string& b) {
  u128 x = 0;
  u128 y = 0;
  for (char c : a) x = x * 10 + static_cast<u128>(c - '0');
  for (char c : b) y = y * 10 + static_cast<u128>(c - '0');
  return decimal(x + y);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    try {
      g_n = std::stoll(argv[1]);
    } catch (const std::exception&) {
      g_n = 0;  // not a number: the usage below
    }
  }
  if (g_n < 1 || g_n > 4'000'000'000LL) {  // (the total stays within 128 bits)
    std::fprintf(stderr, "usage: %s [count, 1..4e9]\n", argv[0]);
    return 2;
  }
  const std::string want = decimal(2 * expected_one(g_n));
  bool ok = true;
  const auto check = [&](const std::string& got, const char* who) {
    if (got != want) {
      std::fprintf(stderr, "FAIL: %s: %s, want %s\n", who, got.c_str(), want.c_str());
      ok = false;
    }
  };

  // def normal(): the job twice in a row
  auto st = std::chrono::steady_clock::now();
  u128 res = 0;
  for (int k = 0; k < 2; ++k) res += one_job(g_n);
  std::printf("normal: %s\n", decimal(res).c_str());
  std::printf("normal time: %.3f s\n", seconds_since(st));
  check(decimal(res), "normal");

  // def multithread(): two threads, one mp.Queue
  st = std::chrono::steady_clock::now();
  {
    mp::Queue<std::string> q;
    const long long n = g_n;
    concur::Thread t1([&q, n] { job(q, n); });
    concur::Thread t2([&q, n] { job(q, n); });
    t1.start();
    t2.start();
    t1.join();
    t2.join();
    const std::string res1 = q.get(20s);  // (a job that failed: Empty, not a hang)
    const std::string res2 = q.get(20s);
    std::printf("multithread: %s\n", add(res1, res2).c_str());
    check(add(res1, res2), "multithread");
  }
  std::printf("multithread time: %.3f s\n", seconds_since(st));

  // def multicore(): two processes, one mp.Queue
  st = std::chrono::steady_clock::now();
  {
    mp::Queue<std::string> q;
    mp::Process p1(job, q, g_n);
    mp::Process p2(job, q, g_n);
    p1.start();
    p2.start();
    p1.join();
    p2.join();
    const std::string res1 = q.get(20s);  // (a job that failed: Empty, not a hang)
    const std::string res2 = q.get(20s);
    std::printf("multicore: %s\n", add(res1, res2).c_str());
    check(add(res1, res2), "multicore");
    if (p1.exitcode() != 0 || p2.exitcode() != 0) {
      std::fprintf(stderr, "FAIL: a process failed\n");
      ok = false;
    }
  }
  std::printf("multicore time: %.3f s\n", seconds_since(st));
  return ok ? 0 : 1;
}
