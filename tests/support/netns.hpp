// tests/support/netns.hpp — several "hosts" on one machine for concur::dist's tests: Linux network
// namespaces the test makes itself (iproute2's `ip netns`, veth pairs), and removes.
//
//   std::string why;
//   auto lab = NetworkLab::create(2, why);      // a server host and 2 worker hosts
//   if (!lab) GTEST_SKIP() << why;              // no CAP_NET_ADMIN here: said, not failed
//   lab->server_ns();                           // where redis-server runs (RedisServer::Options)
//   lab->join(1);                               // in a child process: become worker host 1
//   lab->cut(1); lab->heal(1);                  // a network partition of host 1, and its end
//
// Topology: the server host has one veth link to the test's own namespace (the executor's side)
// and one to each worker host — point-to-point /24 subnets of 10.<o>.0.0/16, `o` picked from the
// test's pid among second octets no address of this machine uses (so concurrent tests do not
// collide). The server host listens on all its addresses; nothing is routed: every host reaches
// the server on its own link, and no traffic leaves the namespaces the lab made (plus the test's
// end of link 0). The destructor deletes the namespaces, which deletes their links.
// Thread-safety: one thread (the test's); join() in a child process before it starts threads.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/subprocess.hpp"

namespace concur::testing {

class NetworkLab {
 public:
  NetworkLab(const NetworkLab&) = delete;
  NetworkLab& operator=(const NetworkLab&) = delete;
  ~NetworkLab() {
    // Link 0's end in the test's namespace first (deleting a veth end deletes the pair at once;
    // a deleted namespace's links go later, asynchronously).
    if (octet_ >= 0) (void)ip({"link", "del", link_name(0, 'a')});
    for (const std::string& ns : made_) (void)ip({"netns", "del", ns});
  }

  // create(workers, why): the lab with `workers` worker hosts; nullptr and `why` when this machine
  // does not allow network namespaces (no CAP_NET_ADMIN, no iproute2).
  static std::unique_ptr<NetworkLab> create(int workers, std::string& why) {
    std::unique_ptr<NetworkLab> lab(new NetworkLab(workers));
    why = lab->build();
    if (!why.empty()) return nullptr;
    return lab;
  }

  // server_ns(): the server host's namespace name; worker_ns(i): worker host i's (1-based).
  [[nodiscard]] const std::string& server_ns() const { return names_[0]; }
  [[nodiscard]] const std::string& worker_ns(int i) const { return names_[static_cast<size_t>(i)]; }
  // server_address(): the server host's address as the test's namespace reaches it (link 0);
  // server_address_from(i): as worker host i reaches it.
  [[nodiscard]] std::string server_address() const { return address(0, 2); }
  [[nodiscard]] std::string server_address_from(int i) const { return address(i, 1); }

  // join(i) moves the calling thread — in a worker host's child process, before it starts any
  // thread: new threads inherit it — into worker host i's namespace. Throws OSError.
  void join(int i) const { enter(worker_ns(i)); }
  static void enter(const std::string& ns) {
    const std::string path = "/run/netns/" + ns;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw OSError(errno, "open " + path);
    const int rc = ::setns(fd, CLONE_NEWNET);
    const int err = errno;
    ::close(fd);
    if (rc != 0) throw OSError(err, "setns " + path);
  }

  // cut(i) takes worker host i's link down (a partition: its packets go nowhere); heal(i) brings
  // it back up. Throws RuntimeError when ip fails.
  void cut(int i) {
    must(ip({"-n", worker_ns(i), "link", "set", "dev", link_name(i, 'b'), "down"}));
  }
  void heal(int i) {
    must(ip({"-n", worker_ns(i), "link", "set", "dev", link_name(i, 'b'), "up"}));
  }

 private:
  // The tag names the lab's namespaces and links: "cc<pid><n>", n counting the labs this process
  // made (the kernel may still hold a previous lab's links; a link name has at most 15 bytes).
  explicit NetworkLab(int workers) : workers_(workers), tag_(next_tag()) {
    names_.push_back(tag_ + "-srv");
    for (int i = 1; i <= workers; ++i) names_.push_back(tag_ + "-w" + std::to_string(i));
  }

  static std::string next_tag() {
    static int made = 0;  // (one thread: the test's)
    return "cc" + std::to_string(::getpid()) + static_cast<char>('a' + made++ % 26);
  }

  // ip_binary(): iproute2's ip (/usr/sbin, /sbin, /usr/bin or /bin); "" when missing.
 public:
  static const std::string& ip_binary() {
    static const std::string binary = [] {
      for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
        if (::access(p, X_OK) == 0) return std::string(p);
      return std::string();
    }();
    return binary;
  }

 private:
  // ip(args): runs ip_binary() with args; its stderr, empty on success.
  static std::string ip(std::vector<std::string> args) {
    const std::string& binary = ip_binary();
    if (binary.empty()) return "iproute2's ip is not installed";
    args.insert(args.begin(), binary);
    subprocess::RunOptions ro;
    ro.capture_output = true;
    ro.timeout = std::chrono::seconds(20);
    try {
      const auto r = subprocess::run(args, ro);
      if (r.returncode == 0) return {};
      std::string err = r.stderr_;
      return err.empty() ? "ip exited with " + std::to_string(r.returncode) : err;
    } catch (const std::exception& e) {
      return e.what();
    }
  }
  static void must(const std::string& err) {
    if (!err.empty()) throw RuntimeError("NetworkLab: " + err);
  }

  // link_name(k, side): link k's end 'a' (the server host's; for k = 0, the test's) or 'b'.
  [[nodiscard]] std::string link_name(int k, char side) const {
    return tag_ + "-" + std::to_string(k) + side;
  }
  [[nodiscard]] std::string address(int k, int host) const {
    return "10." + std::to_string(octet_) + "." + std::to_string(k) + "." + std::to_string(host);
  }

  // build(): makes the namespaces and links; the error of the first step that failed, else "".
  std::string build() {
    octet_ = pick_octet();
    if (octet_ < 0) return "no free 10.x.0.0/16 for the lab's links";
    for (const std::string& ns : names_) {
      if (std::string err = ip({"netns", "add", ns}); !err.empty())
        return "network namespaces are not available here (ip netns add: " + trim(err) + ")";
      made_.push_back(ns);
      if (std::string err = ip({"-n", ns, "link", "set", "lo", "up"}); !err.empty()) return err;
    }
    // Link 0: the test's namespace (end a) and the server host (end b).
    if (std::string err = link(0, "", names_[0]); !err.empty()) return err;
    for (int i = 1; i <= workers_; ++i)
      if (std::string err = link(i, names_[0], names_[static_cast<size_t>(i)]); !err.empty())
        return err;
    return {};
  }

  // link(k, a_ns, b_ns): a veth pair between a_ns ("" = the test's namespace) and b_ns, with
  // link k's subnet: end a gets .1 (.1 on link 0 is the test's), end b .2. On links k >= 1 the
  // server host is end a.
  std::string link(int k, const std::string& a_ns, const std::string& b_ns) {
    const std::string a = link_name(k, 'a');
    const std::string b = link_name(k, 'b');
    if (std::string err = ip({"link", "add", a, "type", "veth", "peer", "name", b}); !err.empty())
      return err;
    if (std::string err = ip({"link", "set", b, "netns", b_ns}); !err.empty()) {
      (void)ip({"link", "del", a});
      return err;
    }
    if (!a_ns.empty()) {
      if (std::string err = ip({"link", "set", a, "netns", a_ns}); !err.empty()) {
        (void)ip({"link", "del", a});
        return err;
      }
    }
    const auto in = [&](const std::string& ns, std::vector<std::string> args) {
      if (!ns.empty()) args.insert(args.begin(), {"-n", ns});
      return ip(std::move(args));
    };
    // (On link 0 end a stays in the test's namespace; it goes when the server host's end does.)
    if (std::string err = in(a_ns, {"addr", "add", address(k, 1) + "/24", "dev", a}); !err.empty())
      return err;
    if (std::string err = in(b_ns, {"addr", "add", address(k, 2) + "/24", "dev", b}); !err.empty())
      return err;
    if (std::string err = in(a_ns, {"link", "set", a, "up"}); !err.empty()) return err;
    if (std::string err = in(b_ns, {"link", "set", b, "up"}); !err.empty()) return err;
    return {};
  }

  // pick_octet(): a second octet o (16..250) such that no address of this namespace is in
  // 10.o.0.0/16, starting from the pid (concurrent tests start apart); -1 when none.
  static int pick_octet() {
    std::set<int> used;
    subprocess::RunOptions ro;
    ro.capture_output = true;
    ro.timeout = std::chrono::seconds(20);
    try {
      const auto r = subprocess::run({"/bin/sh", "-c", "ip -4 -o addr show 2>/dev/null"}, ro);
      const std::string& out = r.stdout_;
      for (std::size_t at = out.find(" 10."); at != std::string::npos;
           at = out.find(" 10.", at + 1)) {
        used.insert(std::atoi(out.c_str() + at + 4));
      }
    } catch (const std::exception&) {
      return -1;
    }
    const int start = static_cast<int>(::getpid() % 235);
    for (int n = 0; n < 235; ++n) {
      const int o = 16 + (start + n) % 235;
      if (used.count(o) == 0) return o;
    }
    return -1;
  }

  static std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  int workers_;
  std::string tag_;
  std::vector<std::string> names_;  // [0] the server host, [i] worker host i
  std::vector<std::string> made_;   // the namespaces created (deleted by the destructor)
  int octet_ = -1;
};

}  // namespace concur::testing
