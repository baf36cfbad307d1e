// tests/support/redis_server.hpp — a private redis-server (Debian's /usr/bin/redis-server) on a
// free 127.0.0.1 port, for concur::dist's tests and benchmarks.
//
// RedisServer::start(options) writes nothing but a data directory (a fresh temporary one), reserves
// a port (support/loopback.hpp's PortReservation, held while the server is down), spawns
// `redis-server --port P --bind 127.0.0.1 --dir D ...` through concur::subprocess (persistence off
// unless Options::appendonly) and waits (at most 10 s) until it answers PING. stop() — and the
// destructor — terminate and reap it; restart() stops it and starts it again on the same port and
// directory (with appendonly, the data survives: a broker restart). pause()/resume() send
// SIGSTOP/SIGCONT (a stalled server).
// Lifetime: a test process killed from outside (ctest's timeout) cannot stop its server; redis
// then runs on until killed (its directory is /tmp/concur-redis-*).
// Thread-safety: one thread at a time (the test's). Header-only; loopback only, or a network
// namespace the test made (Options::netns).
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "concur/dist/redis.hpp"
#include "concur/errors.hpp"
#include "concur/subprocess.hpp"
#include "support/loopback.hpp"
#include "support/netns.hpp"

namespace concur::testing {

class RedisServer {
 public:
  static constexpr const char* kBinary = "/usr/bin/redis-server";
  static constexpr auto kStartTimeout = std::chrono::seconds(10);

  struct Options {
    bool appendonly;  // AOF with appendfsync always: nothing acknowledged is lost
    // netns: run in this network namespace (`ip netns exec`, support/netns.hpp), listening on all
    // of its addresses on port 6379; `host` is the address clients use (url()).
    std::string netns{};
    std::string host = "127.0.0.1";
  };

  RedisServer() = default;
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() {
    stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  static bool available() { return ::access(kBinary, X_OK) == 0; }

  void start() { start(Options{.appendonly = false}); }
  void start(Options options) {
    if (process_) throw RuntimeError("RedisServer: already started");
    if (!available())
      throw RuntimeError(std::string("RedisServer: ") + kBinary +
                         " is missing: run scripts/setup.sh to install redis-server");
    options_ = options;
    if (dir_.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "concur-redis-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) throw RuntimeError("RedisServer: mkdtemp failed");
      dir_ = tmpl;
    }
    if (!options_.netns.empty()) {  // a namespace of the test's own: its ports are all free
      port_ = 6379;
      if (!launch()) throw RuntimeError("RedisServer: port 6379 taken in " + options_.netns);
      return;
    }
    for (int attempt = 1;; ++attempt) {
      if (port_ == 0 || attempt > 1) {
        reservation_ = std::make_unique<PortReservation>();
        port_ = reservation_->port();
      }
      if (launch()) return;
      if (attempt >= 5) throw RuntimeError("RedisServer: no port could be bound: " + log());
    }
  }

  void stop() {
    if (!process_) return;
    (void)::kill(process_->pid(), SIGCONT);  // a paused server cannot exit
    process_->terminate();
    try {
      process_->wait(std::chrono::seconds(10));
    } catch (const subprocess::TimeoutExpired&) {
      process_->kill();
      process_->wait();
    }
    process_.reset();
  }

  // restart(): stop, then start on the same port and directory.
  void restart() {
    stop();
    if (!launch())
      throw RuntimeError("RedisServer: could not restart on port " + std::to_string(port_) + ": " +
                         log());
  }

  void pause() { (void)::kill(process_->pid(), SIGSTOP); }
  void resume() { (void)::kill(process_->pid(), SIGCONT); }

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string url() const {
    return "redis://" + options_.host + ":" + std::to_string(port_);
  }
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }
  [[nodiscard]] pid_t pid() const { return process_ ? process_->pid() : -1; }

  // client(): a connection to this server.
  [[nodiscard]] dist::Redis client() const {
    return dist::Redis::connect(dist::RedisUrl::parse(url()));
  }

  std::string log() const {
    std::ifstream in(dir_ / "redis.log");
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

 private:
  // launch(): true once the server answers PING; false when the port was taken.
  bool launch() {
    using namespace std::chrono_literals;
    const bool in_ns = !options_.netns.empty();
    std::vector<std::string> args = {kBinary,
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     in_ns ? "0.0.0.0" : "127.0.0.1",
                                     "--dir",
                                     dir_.string(),
                                     "--logfile",
                                     (dir_ / "redis.log").string(),
                                     "--save",
                                     "",
                                     "--daemonize",
                                     "no",
                                     "--protected-mode",
                                     in_ns ? "no" : "yes"};  // (only the test's hosts see it)
    if (in_ns)
      args.insert(args.begin(), {NetworkLab::ip_binary(), "netns", "exec", options_.netns});
    if (options_.appendonly) {
      args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "always"});
    } else {
      args.insert(args.end(), {"--appendonly", "no"});
    }
    subprocess::PopenOptions po;
    po.stdin_ = subprocess::Redirect::DevNull;
    po.stdout_ = subprocess::Redirect::DevNull;
    po.stderr_ = subprocess::Redirect::DevNull;
    process_ = std::make_unique<subprocess::Popen>(args, po);
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    for (;;) {
      if (process_->poll()) {
        process_.reset();
        if (log().find("Address already in use") != std::string::npos) return false;
        throw RuntimeError("RedisServer: redis-server exited: " + log());
      }
      if (in_ns || loopback_accepts(port_)) {
        try {
          dist::Redis r = client();
          if (r.command({"PING"}).str == "PONG") return true;
        } catch (const std::exception&) {
          // loading (AOF) or not listening yet
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        stop();
        throw RuntimeError("RedisServer: redis-server did not answer within 10 s: " + log());
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  Options options_{.appendonly = false};
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<PortReservation> reservation_;  // held while stopped: restart() gets it back
  std::unique_ptr<subprocess::Popen> process_;
};

}  // namespace concur::testing
