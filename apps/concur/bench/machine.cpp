// bench/machine.cpp — reading /proc/cpuinfo, uname and the build's own flags.
#include "bench/machine.hpp"

#include <fmt/format.h>
#include <sys/utsname.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#ifndef CONCUR_APPS_BUILD_TYPE
#define CONCUR_APPS_BUILD_TYPE ""
#endif
#ifndef CONCUR_APPS_SANITIZE
#define CONCUR_APPS_SANITIZE ""
#endif
#ifndef CONCUR_APPS_VERSION
#define CONCUR_APPS_VERSION ""
#endif

namespace concur::apps::bench {
namespace {

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

std::string compiler_name() {
#if defined(__clang__)
  return fmt::format("Clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
  return fmt::format("GCC {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

std::string utc_now_iso8601() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::array<char, 32> buf{};
  const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return {buf.data(), n};
}

}  // namespace

std::string cpu_model_from(const std::string& cpuinfo) {
  std::istringstream in(cpuinfo);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(line.substr(0, colon)) == "model name") {
      std::string model = trim(line.substr(colon + 1));
      if (!model.empty()) return model;
    }
  }
  return "unknown";
}

namespace {
std::string& allocator_slot() {
  static std::string name = "glibc";
  return name;
}
}  // namespace

void set_allocator_name(std::string name) { allocator_slot() = std::move(name); }

std::string allocator_name() { return allocator_slot(); }

MachineInfo machine_info() {
  MachineInfo m;
  m.nproc = std::thread::hardware_concurrency();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::stringstream text;
  text << cpuinfo.rdbuf();
  m.cpu_model = cpu_model_from(text.str());
  std::ifstream loadavg("/proc/loadavg");
  if (double load = 0; loadavg >> load) m.load_average = load;
  struct utsname u {};
  if (::uname(&u) == 0) m.os = fmt::format("{} {} {}", u.sysname, u.release, u.machine);
  m.compiler = compiler_name();
  m.build_type = CONCUR_APPS_BUILD_TYPE;
  m.sanitize = CONCUR_APPS_SANITIZE;
  m.allocator = allocator_name();
  m.concur_version = CONCUR_APPS_VERSION;
  m.date = utc_now_iso8601();
  return m;
}

}  // namespace concur::apps::bench
