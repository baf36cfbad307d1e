// tests/support/rabbitmq_server.hpp — a private RabbitMQ broker (Debian's rabbitmq-server) on free
// 127.0.0.1 ports, for concur::dist's AMQP tests (issue 18).
//
// RabbitMqServer::start() makes a fresh data directory (/tmp/concur-rmq-*), starts an epmd of its
// own on a reserved port (so nothing is shared with another broker on the machine), then
// /usr/lib/rabbitmq/bin/rabbitmq-server with a private node name, cookie (HOME), Mnesia and log
// directories and reserved AMQP and distribution ports (support/loopback.hpp's PortReservation:
// held while the broker is down, so a restarted broker always gets its own port back and a
// client never logs in to another test's broker), both processes in a session of their own;
// it waits (at most 60 s: the Erlang VM boots slowly on a loaded machine) until an AMQP login
// succeeds. stop() — and the destructor — kills both sessions (SIGKILL: a crash, which loses
// nothing the broker confirmed); restart() stops it so and starts it again on the same ports and
// directory, so durable queues and confirmed persistent messages survive (a broker crash);
// pause()/resume() stop and continue it (SIGSTOP/SIGCONT).
// Lifetime: a test process killed from outside cannot stop its broker; it runs on until killed
// (`pgrep -af concur-rmq-`).
// Thread-safety: one thread at a time (the test's). Header-only; loopback only.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "concur/dist/amqp.hpp"
#include "concur/errors.hpp"
#include "concur/subprocess.hpp"
#include "support/loopback.hpp"

namespace concur::testing {

class RabbitMqServer {
 public:
  static constexpr const char* kServer = "/usr/lib/rabbitmq/bin/rabbitmq-server";
  static constexpr const char* kEpmd = "/usr/bin/epmd";
  static constexpr auto kStartTimeout = std::chrono::seconds(60);

  RabbitMqServer() = default;
  RabbitMqServer(const RabbitMqServer&) = delete;
  RabbitMqServer& operator=(const RabbitMqServer&) = delete;
  ~RabbitMqServer() {
    stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // configure(conf, advanced): rabbitmq.conf lines and an advanced.config term for the next
  // start() (e.g. "consumer_timeout = 1000", "[{rabbit, [{channel_tick_interval, 100}]}]."); the
  // defaults without.
  void configure(std::string conf, std::string advanced = {}) {
    conf_ = std::move(conf);
    advanced_ = std::move(advanced);
  }

  static bool available() { return ::access(kServer, X_OK) == 0 && ::access(kEpmd, X_OK) == 0; }

  void start() {
    if (broker_) throw RuntimeError("RabbitMqServer: already started");
    if (!available()) {
      throw RuntimeError(std::string("RabbitMqServer: ") + kServer +
                         " is missing: run scripts/setup.sh to install rabbitmq-server");
    }
    if (dir_.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "concur-rmq-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) throw RuntimeError("RabbitMqServer: mkdtemp failed");
      dir_ = tmpl;
      amqp_reservation_ = std::make_unique<PortReservation>();
      dist_reservation_ = std::make_unique<PortReservation>();
      epmd_reservation_ = std::make_unique<PortReservation>();
      port_ = amqp_reservation_->port();
      dist_port_ = dist_reservation_->port();
      epmd_port_ = epmd_reservation_->port();
    }
    launch();
  }

  void stop() {
    if (broker_) {
      // SIGKILL to the whole session (script, VM, helpers), no graceful stop: what the broker
      // confirmed is on disk already (restart() relies on exactly that: a crash loses nothing
      // acknowledged), and a `rabbitmqctl stop` costs seconds per fixture.
      (void)::kill(-broker_->pid(), SIGKILL);
      (void)broker_->wait();
      broker_.reset();
    }
    if (epmd_) {
      (void)::kill(-epmd_->pid(), SIGKILL);
      (void)epmd_->wait();
      epmd_.reset();
    }
  }

  // restart(): stop, then start on the same ports and data directory.
  void restart() {
    stop();
    launch();
  }

  // pause() / resume(): SIGSTOP / SIGCONT to the broker's whole session (a stalled broker: what
  // clients publish meanwhile waits in their sockets, and no confirm comes).
  void pause() { (void)::kill(-broker_->pid(), SIGSTOP); }
  void resume() { (void)::kill(-broker_->pid(), SIGCONT); }

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string url() const {
    return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/";
  }
  [[nodiscard]] dist::Amqp client() const {
    return dist::Amqp::connect(dist::AmqpUrl::parse(url()));
  }
  // node_log(): the node's own log (log/<node>.log: boots, recoveries, listeners), for failures.
  [[nodiscard]] std::string node_log() const {
    std::ifstream in(dir_ / "log" / ("concur" + std::to_string(port_) + "@localhost.log"));
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
  [[nodiscard]] std::string log() const {
    std::ifstream in(dir_ / "out.log");
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

 private:
  void launch() {
    using namespace std::chrono_literals;
    subprocess::PopenOptions epmd_options;
    epmd_options.stdin_ = subprocess::Redirect::DevNull;
    epmd_options.stdout_ = subprocess::Redirect::DevNull;
    epmd_options.stderr_ = subprocess::Redirect::DevNull;
    epmd_options.start_new_session = true;
    epmd_ = std::make_unique<subprocess::Popen>(
        std::vector<std::string>{kEpmd, "-port", std::to_string(epmd_port_), "-address",
                                 "127.0.0.1"},
        epmd_options);

    const std::string node = "concur" + std::to_string(port_) + "@localhost";
    subprocess::Environment env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv(*e);
      const auto eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    env["HOME"] = dir_.string();  // the Erlang cookie lives there
    env["RABBITMQ_NODENAME"] = node;
    env["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1";
    env["RABBITMQ_NODE_PORT"] = std::to_string(port_);
    env["RABBITMQ_DIST_PORT"] = std::to_string(dist_port_);
    env["ERL_EPMD_PORT"] = std::to_string(epmd_port_);
    env["ERL_EPMD_ADDRESS"] = "127.0.0.1";
    env["RABBITMQ_MNESIA_BASE"] = (dir_ / "mnesia").string();
    env["RABBITMQ_LOG_BASE"] = (dir_ / "log").string();
    env["RABBITMQ_ENABLED_PLUGINS_FILE"] = (dir_ / "enabled_plugins").string();
    env["RABBITMQ_CONFIG_FILE"] = (dir_ / "rabbitmq").string();  // rabbitmq.conf (configure())
    if (!conf_.empty()) std::ofstream(dir_ / "rabbitmq.conf") << conf_ << "\n";
    if (!advanced_.empty()) {
      std::ofstream(dir_ / "advanced.config") << advanced_ << "\n";
      env["RABBITMQ_ADVANCED_CONFIG_FILE"] = (dir_ / "advanced.config").string();
    }
    env["RABBITMQ_SERVER_START_ARGS"] = "-start_epmd false";
    subprocess::PopenOptions po;
    po.stdin_ = subprocess::Redirect::DevNull;
    po.stdout_ = subprocess::Redirect::DevNull;
    po.stderr_ = subprocess::Redirect::DevNull;
    po.start_new_session = true;
    po.cwd = dir_.string();
    po.env = env;
    // The script's output (the boot banner, errors) goes to out.log through a shell.
    broker_ = std::make_unique<subprocess::Popen>(
        std::vector<std::string>{"/bin/sh", "-c",
                                 std::string("exec ") + kServer + " > out.log 2>&1"},
        po);
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    for (;;) {
      if (broker_->poll()) {
        const std::string why = log();
        stop();
        throw RuntimeError("RabbitMqServer: rabbitmq-server exited: " + why);
      }
      if (loopback_accepts(port_)) {
        try {
          (void)client();
          return;
        } catch (const std::exception&) {
          // listening, not yet serving
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        const std::string why = log();
        stop();
        throw RuntimeError("RabbitMqServer: no AMQP login within 60 s: " + why);
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  std::uint16_t dist_port_ = 0;
  std::uint16_t epmd_port_ = 0;
  std::unique_ptr<PortReservation> amqp_reservation_;
  std::unique_ptr<PortReservation> dist_reservation_;
  std::unique_ptr<PortReservation> epmd_reservation_;
  std::unique_ptr<subprocess::Popen> epmd_;
  std::unique_ptr<subprocess::Popen> broker_;
  std::string conf_;
  std::string advanced_;
};

}  // namespace concur::testing
