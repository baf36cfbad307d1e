// tests/support/nginx_server.hpp — a private nginx (Debian's /usr/sbin/nginx) serving a directory
// on 127.0.0.1, for the crawler's tests and benchmarks: the fast static copy of the test site
// (tests/support/crawl_site.hpp, write_static_site()).
//
// NginxServer::start(root) writes a config into a fresh temporary prefix (pid, logs and temp paths
// all inside it; no `user` directive, so it runs as whoever runs the test), picks a free port,
// spawns `nginx -p PREFIX -c CONF` (daemon off, one worker) through concur::subprocess, and waits
// (at most 10 s) until it accepts connections. stop() — and the destructor — terminate and reap it.
// Access log lines: `$msec "$request" $status $body_bytes_sent $request_time $connection
// "$http_user_agent"`, written as each request ends ($msec is the end; arrival is $msec minus
// $request_time).
// Root: when the test runs as root, nginx's worker runs as `nobody`, which must be able to reach
// the files: start() refuses a root directory whose path is not searchable by others (PublicTempDir
// makes one that is).
// Lifetime: a test process killed from outside (ctest's timeout) cannot stop its nginx, which then
// runs on until killed (its prefix is /tmp/concur-nginx-*).
// Thread-safety: one thread at a time (the test's). Header-only; loopback only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/subprocess.hpp"
#include "support/loopback.hpp"
#include "support/temp_dir.hpp"

namespace concur::testing {

// PublicTempDir: a fresh directory under the temporary directory, mode 0755 (nginx's worker may
// run as another user), removed with its contents when it goes.
class PublicTempDir : public TempDir {
 public:
  explicit PublicTempDir(std::string_view prefix = "concur-site-") : TempDir(prefix) {
    ::chmod(path().c_str(), 0755);
  }
};

class NginxServer {
 public:
  // kBinary: where Debian's nginx package puts it (scripts/setup.sh installs it).
  static constexpr const char* kBinary = "/usr/sbin/nginx";
  // kDefaultLocations: the server block's directives when start() is given none.
  static constexpr const char* kDefaultLocations =
      "location / { try_files $uri $uri.html $uri/index.html =404; }\n";
  // kStartTimeout: how long start() waits for nginx to accept connections.
  static constexpr std::chrono::seconds kStartTimeout{10};

  NginxServer() = default;
  // ~NginxServer(): stop(), then removes the temporary prefix (config and logs).
  ~NginxServer() {
    stop();
    if (!prefix_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(prefix_, ec);
    }
  }
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  // use_tls(cert, key, http2): before start(): serve HTTPS with this certificate (PEM files the
  // worker can read), and HTTP/2 by ALPN when http2 (nginx's `listen ... ssl http2`).
  void use_tls(std::filesystem::path cert, std::filesystem::path key, bool http2 = true) {
    tls_cert_ = std::move(cert);
    tls_key_ = std::move(key);
    http2_ = http2;
  }

  // available(): whether nginx is installed.
  [[nodiscard]] static bool available() { return ::access(kBinary, X_OK) == 0; }

  // start(root, locations): serves root at http://127.0.0.1:<port()>/ with `locations` inside the
  // server block (for the test site: static_site_nginx_locations()); root may still be empty
  // (files are read per request). Returns once nginx accepts connections. RuntimeError when nginx
  // is missing ("run scripts/setup.sh"), exits (its error log in the message), or is not
  // accepting within kStartTimeout; ValueError for a root that nginx's worker cannot reach; a
  // port taken between its choice and nginx's bind is retried (up to 5 ports). RuntimeError when
  // already started.
  void start(const std::filesystem::path& root, std::string locations = kDefaultLocations);
  // stop(): SIGTERM (nginx's fast shutdown), reaped within 5 s, else SIGKILL to its process
  // group (master and worker). Idempotent; the logs stay readable.
  void stop();
  [[nodiscard]] bool running() const { return process_ != nullptr; }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // url(target): "http://127.0.0.1:<port>" + target ("https://..." after use_tls).
  [[nodiscard]] std::string url(std::string_view target) const {
    return std::string(tls_cert_.empty() ? "http" : "https") +
           "://127.0.0.1:" + std::to_string(port_) + std::string(target);
  }
  // prefix(): the temporary directory holding nginx.conf, nginx.pid, error.log, access.log.
  [[nodiscard]] const std::filesystem::path& prefix() const noexcept { return prefix_; }
  // access_log_lines(): the access log so far, one request a line (format above).
  [[nodiscard]] std::vector<std::string> access_log_lines() const;
  // access_log_lines(at_least, timeout): the access log once it has `at_least` lines, or as it is
  // at `timeout`. nginx writes a request's line in its log phase, after the response went out: a
  // client holding its answer may read the log a moment before the line is there.
  [[nodiscard]] std::vector<std::string> access_log_lines(std::size_t at_least,
                                                          std::chrono::milliseconds timeout) const;
  // error_log(): nginx's error log so far.
  [[nodiscard]] std::string error_log() const { return read_file(prefix_ / "error.log"); }

 private:
  static std::string read_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
  // check_reachable(root): ValueError when root is not searchable by others while running as
  // root (nginx's worker then runs as nobody).
  static void check_reachable(const std::filesystem::path& root);
  std::string config(const std::filesystem::path& root, const std::string& locations) const;

  std::filesystem::path prefix_;
  std::uint16_t port_ = 0;
  std::unique_ptr<subprocess::Popen> process_;
  std::filesystem::path tls_cert_;  // empty: plain HTTP
  std::filesystem::path tls_key_;
  bool http2_ = false;
};

// ---- implementation ------------------------------------------------------------------------

inline void NginxServer::check_reachable(const std::filesystem::path& root) {
  if (::geteuid() != 0) return;  // the worker runs as us
  const std::filesystem::path abs = std::filesystem::absolute(root);
  for (std::filesystem::path dir = abs;; dir = dir.parent_path()) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
      throw ValueError("NginxServer: " + dir.string() +
                       " is not searchable by others, and nginx's worker runs as nobody when "
                       "the test runs as root: serve a directory made by PublicTempDir (0755)");
    }
    if (dir == dir.parent_path()) break;
  }
}

inline std::string NginxServer::config(const std::filesystem::path& root,
                                       const std::string& locations) const {
  const std::string p = prefix_.string();
  return "daemon off;\n"
         "master_process on;\n"
         "worker_processes 1;\n"
         "pid " +
         p +
         "/nginx.pid;\n"
         "error_log " +
         p +
         "/error.log warn;\n"
         "events { worker_connections 1024; }\n"
         "http {\n"
         "  log_format concur '$msec \"$request\" $status $body_bytes_sent $request_time "
         "$connection \"$http_user_agent\"';\n"
         "  access_log " +
         p +
         "/access.log concur;\n"
         "  client_body_temp_path " +
         p +
         "/temp/body;\n"
         "  proxy_temp_path " +
         p +
         "/temp/proxy;\n"
         "  fastcgi_temp_path " +
         p +
         "/temp/fastcgi;\n"
         "  uwsgi_temp_path " +
         p +
         "/temp/uwsgi;\n"
         "  scgi_temp_path " +
         p +
         "/temp/scgi;\n"
         "  types { text/html html; text/plain txt; image/png png; }\n"
         "  default_type text/html;\n"
         "  charset utf-8;\n"
         "  sendfile on;\n"
         "  server_tokens off;\n"
         "  keepalive_requests 100000;\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(port_) +
         (tls_cert_.empty() ? ""
          : http2_          ? " ssl http2"
                            : " ssl") +
         ";\n" +
         (tls_cert_.empty() ? std::string()
                            : "    ssl_certificate \"" + tls_cert_.string() +
                                  "\";\n    ssl_certificate_key \"" + tls_key_.string() + "\";\n") +
         "    http2_max_concurrent_streams 128;\n"
         "    root \"" +
         std::filesystem::absolute(root).string() + "\";\n" + locations +
         "  }\n"
         "}\n";
}

inline void NginxServer::start(const std::filesystem::path& root, std::string locations) {
  using namespace std::chrono_literals;
  if (process_) throw RuntimeError("NginxServer: already started");
  if (!available()) {
    throw RuntimeError(std::string("NginxServer: ") + kBinary +
                       " is missing: run scripts/setup.sh (as root or with sudo) to install nginx");
  }
  check_reachable(root);
  if (prefix_.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "concur-nginx-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw RuntimeError("NginxServer: mkdtemp failed");
    prefix_ = tmpl;
    ::chmod(prefix_.c_str(), 0755);
    std::filesystem::create_directories(prefix_ / "temp");
  }
  for (int attempt = 1;; ++attempt) {
    port_ = free_loopback_port();
    const std::filesystem::path conf = prefix_ / "nginx.conf";
    std::filesystem::remove(prefix_ / "nginx.pid");
    std::filesystem::remove(prefix_ / "error.log");  // this attempt's errors only
    {
      std::ofstream out(conf, std::ios::trunc);
      out << config(root, locations);
    }
    subprocess::PopenOptions options;
    options.stdin_ = subprocess::Redirect::DevNull;
    options.stdout_ = subprocess::Redirect::DevNull;
    options.stderr_ = subprocess::Redirect::DevNull;  // -e: startup errors go to error.log too
    options.process_group = 0;                        // stop() can signal master and worker
    const std::vector<std::string> args = {
        kBinary, "-e",         (prefix_ / "error.log").string(), "-p", prefix_.string() + "/",
        "-c",    conf.string()};
    process_ = std::make_unique<subprocess::Popen>(args, options);
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    // Up once it wrote its pid file (after binding) and accepts a connection.
    while (!(std::filesystem::exists(prefix_ / "nginx.pid") && loopback_accepts(port_))) {
      if (const std::optional<int> code = process_->poll()) {
        process_.reset();
        const std::string log = error_log();
        if (log.find("Address already in use") != std::string::npos && attempt < 5) break;
        throw RuntimeError("NginxServer: nginx exited with status " + std::to_string(*code) + ": " +
                           log);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        stop();
        throw RuntimeError("NginxServer: nginx did not accept connections within 10 s: " +
                           error_log());
      }
      std::this_thread::sleep_for(10ms);
    }
    if (process_) return;  // else: the port was taken meanwhile; another one
  }
}

inline void NginxServer::stop() {
  if (!process_) return;
  process_->terminate();
  try {
    process_->wait(std::chrono::seconds(5));
  } catch (const subprocess::TimeoutExpired&) {
    process_->killpg(SIGKILL);
    process_->wait();
  }
  process_.reset();
}

inline std::vector<std::string> NginxServer::access_log_lines(
    std::size_t at_least, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<std::string> lines = access_log_lines();
    if (lines.size() >= at_least || std::chrono::steady_clock::now() >= deadline) return lines;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

inline std::vector<std::string> NginxServer::access_log_lines() const {
  std::vector<std::string> lines;
  std::istringstream in(read_file(prefix_ / "access.log"));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

}  // namespace concur::testing
