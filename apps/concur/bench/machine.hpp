// bench/machine.hpp — MachineInfo, what the JSON report records about where it ran, so that
// figures from different machines and builds are never compared blindly.
#pragma once

#include <string>

namespace concur::apps::bench {

struct MachineInfo {
  unsigned nproc = 0;     // std::thread::hardware_concurrency()
  std::string cpu_model;  // "model name" of /proc/cpuinfo, or "unknown"
  // load_average: the 1-minute load average at the start (/proc/loadavg), -1 when unknown.
  // Other work on the machine is what usually explains a poor threads speedup.
  double load_average = -1;
  std::string os;          // uname: sysname, release, machine
  std::string compiler;    // e.g. "GCC 12.2.0"
  std::string build_type;  // CMAKE_BUILD_TYPE of concur_apps
  std::string sanitize;    // CONCUR_SANITIZE of the build ("" for none)
  std::string allocator;   // the process's malloc: allocator_name()
  std::string concur_version;
  std::string date;  // UTC, ISO 8601: "2024-11-24T08:30:00Z"
};

// set_allocator_name(name) / allocator_name(): the malloc the running binary uses — "glibc"
// unless main() says otherwise (the `concur` binary links mimalloc: apps/concur/CMakeLists.txt).
void set_allocator_name(std::string name);
[[nodiscard]] std::string allocator_name();

// machine_info() reads the current machine and build.
[[nodiscard]] MachineInfo machine_info();

// cpu_model_from(cpuinfo) is the first "model name" value of /proc/cpuinfo text, or "unknown".
[[nodiscard]] std::string cpu_model_from(const std::string& cpuinfo);

}  // namespace concur::apps::bench
