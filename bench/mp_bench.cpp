// mp_bench — multiprocessing between a parent and a forked child, in one Google Benchmark run,
// each concur case beside the raw POSIX floor it is built on:
//
//   BM_RoundTrip/raw_pipe              two pipe(2)s, write 8 bytes / read 8 bytes each way
//   BM_RoundTrip/raw_socketpair        one AF_UNIX socketpair, write 8 / read 8 each way
//   BM_RoundTrip/concur_send_recv      Connection::send(std::int64_t) / recv<std::int64_t>()
//   BM_RoundTrip/concur_send_bytes     Connection::send_bytes(8 bytes) / recv_bytes()
//   BM_RoundTrip/concur_send_recv_sigpipe_ignored  the same with SIGPIPE ignored (SIG_IGN) while
//                                      the ends are made and used: no per-send SIGPIPE masking
//   BM_RoundTrip/concur_socket_send_recv  send / recv on Connection(fd) ends adopted from a
//                                      socketpair (the socket kind the Manager uses)
//   BM_Throughput_1MiB/raw_socketpair  1 MiB write(2)s into a socketpair, the child reads them
//   BM_Throughput_1MiB/concur_send_bytes  Connection::send_bytes(1 MiB) / recv_bytes()
//   BM_Throughput_1MiB/concur_send     Connection::send(std::string of 1 MiB) / recv<std::string>()
//
// A round trip: the parent sends 8 bytes (or one small int), the child echoes them, the parent
// receives them; the time per iteration is one round trip (wall clock). Throughput: one iteration
// sends kBatch messages of 1 MiB one way, then waits for the child's 1-byte acknowledgement that
// it has received them all; bytes_per_second counts the payload only.
// The child is forked (and reaped) outside the timed part; it runs until end of file.
//
// Run: ./build/release/bench/mp_bench [--benchmark_min_time=0.2s] [--benchmark_format=json]
// bench/compare/python_mp_bench.py is the Python twin (multiprocessing.Pipe).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "concur/mp/connection.hpp"

namespace {

using concur::mp::Connection;

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr int kBatch = 8;

// read_full / write_full move exactly n bytes; read_full returns false at end of file.
bool read_full(int fd, void* buf, std::size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR) continue;
      std::perror("read");
      std::abort();
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

void write_full(int fd, const void* buf, std::size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::perror("write");
      std::abort();
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

// fork_child(fn) runs fn() in a child that _exit()s after it.
template <class Fn>
pid_t fork_child(Fn fn) {
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    std::abort();
  }
  if (pid == 0) {
    try {
      fn();
    } catch (...) {
    }
    ::_exit(0);
  }
  return pid;
}

void reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// ---- Round trips

// raw_round_trip(state, to_child, from_child, child_in, child_out): the parent writes on
// to_child and reads from_child; the child echoes child_in to child_out.
void raw_round_trip(benchmark::State& state, int to_child, int from_child, int child_in,
                    int child_out) {
  const pid_t pid = fork_child([&] {
    ::close(to_child);
    if (from_child != to_child) ::close(from_child);
    std::array<char, 8> buf{};
    while (read_full(child_in, buf.data(), buf.size()))
      write_full(child_out, buf.data(), buf.size());
  });
  ::close(child_in);
  if (child_out != child_in) ::close(child_out);
  std::array<char, 8> buf{};
  std::int64_t v = 0;
  for (auto _ : state) {
    ++v;
    std::memcpy(buf.data(), &v, sizeof(v));
    write_full(to_child, buf.data(), buf.size());
    if (!read_full(from_child, buf.data(), buf.size())) state.SkipWithError("child gone");
  }
  ::close(to_child);
  if (from_child != to_child) ::close(from_child);
  reap(pid);
}

void BM_RoundTrip_raw_pipe(benchmark::State& state) {
  int down[2];
  int up[2];
  if (::pipe2(down, O_CLOEXEC) != 0 || ::pipe2(up, O_CLOEXEC) != 0) std::abort();
  raw_round_trip(state, down[1], up[0], down[0], up[1]);
}

void BM_RoundTrip_raw_socketpair(benchmark::State& state) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  raw_round_trip(state, sv[0], sv[0], sv[1], sv[1]);
}

// Transport: Pipe()'s ends as they are; Pipe()'s ends made and used while SIGPIPE is ignored;
// socket-kind ends (Connection(fd) on a socketpair).
enum class Transport { pipe, pipe_sigpipe_ignored, socket };

// SigpipeIgnored ignores SIGPIPE for its lifetime when `on`, then restores the disposition.
class SigpipeIgnored {
 public:
  explicit SigpipeIgnored(bool on) : on_(on) {
    if (!on_) return;
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, &old_);
  }
  SigpipeIgnored(const SigpipeIgnored&) = delete;
  SigpipeIgnored& operator=(const SigpipeIgnored&) = delete;
  ~SigpipeIgnored() {
    if (on_) ::sigaction(SIGPIPE, &old_, nullptr);
  }

 private:
  bool on_;
  struct sigaction old_ {};
};

std::pair<Connection, Connection> make_ends(Transport t) {
  if (t != Transport::socket) return concur::mp::Pipe();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  return {Connection(sv[0]), Connection(sv[1])};
}

// Connection round trips: Bytes = true uses send_bytes / recv_bytes, else send / recv<int64>.
template <bool Bytes, Transport T = Transport::pipe>
void BM_RoundTrip_concur(benchmark::State& state) {
  const SigpipeIgnored ignored(T == Transport::pipe_sigpipe_ignored);
  auto [parent, child] = make_ends(T);
  const pid_t pid = fork_child([&parent = parent, &child = child] {
    parent.close();
    try {
      for (;;) {
        if constexpr (Bytes) {
          child.send_bytes(child.recv_bytes());
        } else {
          child.send(child.recv<std::int64_t>());
        }
      }
    } catch (const concur::mp::EOFError&) {
    }
  });
  child.close();
  std::int64_t v = 0;
  std::string bytes(8, 'x');
  for (auto _ : state) {
    ++v;
    if constexpr (Bytes) {
      std::memcpy(bytes.data(), &v, sizeof(v));
      parent.send_bytes(bytes);
      benchmark::DoNotOptimize(parent.recv_bytes());
    } else {
      parent.send(v);
      if (parent.recv<std::int64_t>() != v) state.SkipWithError("echo mismatch");
    }
  }
  parent.close();
  reap(pid);
}

// ---- 1 MiB throughput

void BM_Throughput_1MiB_raw_socketpair(benchmark::State& state) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  const pid_t pid = fork_child([&] {
    ::close(sv[0]);
    std::string buf(kMiB, '\0');
    for (;;) {
      for (int i = 0; i < kBatch; ++i)
        if (!read_full(sv[1], buf.data(), buf.size())) return;
      write_full(sv[1], "k", 1);
    }
  });
  ::close(sv[1]);
  const std::string msg(kMiB, 'm');
  char ack = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) write_full(sv[0], msg.data(), msg.size());
    if (!read_full(sv[0], &ack, 1)) state.SkipWithError("child gone");
  }
  state.SetBytesProcessed(state.iterations() * kBatch * static_cast<std::int64_t>(kMiB));
  ::close(sv[0]);
  reap(pid);
}

template <bool Bytes>
void BM_Throughput_1MiB_concur(benchmark::State& state) {
  auto [parent, child] = concur::mp::Pipe();
  const pid_t pid = fork_child([&parent = parent, &child = child] {
    parent.close();
    try {
      for (;;) {
        for (int i = 0; i < kBatch; ++i) {
          if constexpr (Bytes) {
            benchmark::DoNotOptimize(child.recv_bytes());
          } else {
            benchmark::DoNotOptimize(child.recv<std::string>());
          }
        }
        child.send_bytes("k");
      }
    } catch (const concur::mp::EOFError&) {
    }
  });
  child.close();
  const std::string msg(kMiB, 'm');
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      if constexpr (Bytes) {
        parent.send_bytes(msg);
      } else {
        parent.send(msg);
      }
    }
    benchmark::DoNotOptimize(parent.recv_bytes());
  }
  state.SetBytesProcessed(state.iterations() * kBatch * static_cast<std::int64_t>(kMiB));
  parent.close();
  reap(pid);
}

BENCHMARK(BM_RoundTrip_raw_pipe)
    ->Name("BM_RoundTrip/raw_pipe")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RoundTrip_raw_socketpair)
    ->Name("BM_RoundTrip/raw_socketpair")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_RoundTrip_concur, false)
    ->Name("BM_RoundTrip/concur_send_recv")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_RoundTrip_concur, true)
    ->Name("BM_RoundTrip/concur_send_bytes")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_RoundTrip_concur, false, Transport::pipe_sigpipe_ignored)
    ->Name("BM_RoundTrip/concur_send_recv_sigpipe_ignored")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_RoundTrip_concur, false, Transport::socket)
    ->Name("BM_RoundTrip/concur_socket_send_recv")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Throughput_1MiB_raw_socketpair)
    ->Name("BM_Throughput_1MiB/raw_socketpair")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Throughput_1MiB_concur, true)
    ->Name("BM_Throughput_1MiB/concur_send_bytes")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Throughput_1MiB_concur, false)
    ->Name("BM_Throughput_1MiB/concur_send")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
