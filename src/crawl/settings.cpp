// crawl/settings.cpp — Settings::set / get by Scrapy's names: one table maps each name to its
// field and its kind; parsing is strict (the whole value must parse) so a typo is an error, not a
// silent default.
#include "concur/crawl/settings.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <variant>

#include "concur/errors.hpp"

namespace concur::crawl {
namespace {

using Field =
    std::variant<int Settings::*, double Settings::*, bool Settings::*, std::size_t Settings::*,
                 std::string Settings::*, std::vector<int> Settings::*,
                 std::map<std::string, SlotSettings> Settings::*>;

struct Entry {
  std::string_view name;
  Field field;
};

// The table, sorted by name (names() returns it in this order).
const Entry kEntries[] = {
    {"AUTOTHROTTLE_DEBUG", &Settings::autothrottle_debug},
    {"AUTOTHROTTLE_ENABLED", &Settings::autothrottle_enabled},
    {"AUTOTHROTTLE_MAX_DELAY", &Settings::autothrottle_max_delay},
    {"AUTOTHROTTLE_START_DELAY", &Settings::autothrottle_start_delay},
    {"AUTOTHROTTLE_TARGET_CONCURRENCY", &Settings::autothrottle_target_concurrency},
    {"CLOSESPIDER_ERRORCOUNT", &Settings::closespider_errorcount},
    {"CLOSESPIDER_ITEMCOUNT", &Settings::closespider_itemcount},
    {"CLOSESPIDER_PAGECOUNT", &Settings::closespider_pagecount},
    {"CLOSESPIDER_TIMEOUT", &Settings::closespider_timeout},
    {"CONCURRENT_ITEMS", &Settings::concurrent_items},
    {"CONCURRENT_REQUESTS", &Settings::concurrent_requests},
    {"CONCURRENT_REQUESTS_PER_DOMAIN", &Settings::concurrent_requests_per_domain},
    {"DEPTH_LIMIT", &Settings::depth_limit},
    {"DEPTH_PRIORITY", &Settings::depth_priority},
    {"DEPTH_STATS_VERBOSE", &Settings::depth_stats_verbose},
    {"DOWNLOAD_DELAY", &Settings::download_delay},
    {"DOWNLOAD_FAIL_ON_DATALOSS", &Settings::download_fail_on_dataloss},
    {"DOWNLOAD_MAXSIZE", &Settings::download_maxsize},
    {"DOWNLOAD_SLOTS", &Settings::download_slots},
    {"DOWNLOAD_TIMEOUT", &Settings::download_timeout},
    {"DOWNLOAD_WARNSIZE", &Settings::download_warnsize},
    {"HTTPERROR_ALLOWED_CODES", &Settings::httperror_allowed_codes},
    {"HTTPERROR_ALLOW_ALL", &Settings::httperror_allow_all},
    {"JOBDIR", &Settings::jobdir},
    {"LOGSTATS_INTERVAL", &Settings::logstats_interval},
    {"LOG_LEVEL", &Settings::log_level},
    {"PARSE_THREADS", &Settings::parse_threads},
    {"RANDOMIZE_DOWNLOAD_DELAY", &Settings::randomize_download_delay},
    {"REDIRECT_ENABLED", &Settings::redirect_enabled},
    {"REDIRECT_MAX_TIMES", &Settings::redirect_max_times},
    {"REDIRECT_PRIORITY_ADJUST", &Settings::redirect_priority_adjust},
    {"RETRY_AFTER_MAX", &Settings::retry_after_max},
    {"RETRY_BACKOFF_BASE", &Settings::retry_backoff_base},
    {"RETRY_BACKOFF_MAX", &Settings::retry_backoff_max},
    {"RETRY_ENABLED", &Settings::retry_enabled},
    {"RETRY_HTTP_CODES", &Settings::retry_http_codes},
    {"RETRY_PRIORITY_ADJUST", &Settings::retry_priority_adjust},
    {"RETRY_TIMES", &Settings::retry_times},
    {"ROBOTSTXT_CRAWL_DELAY", &Settings::robotstxt_crawl_delay},
    {"ROBOTSTXT_OBEY", &Settings::robotstxt_obey},
    {"ROBOTSTXT_USER_AGENT", &Settings::robotstxt_user_agent},
    {"SCHEDULER_HUBS_FIRST", &Settings::scheduler_hubs_first},
    {"SCHEDULER_ORDER", &Settings::scheduler_order},
    {"URLLENGTH_LIMIT", &Settings::urllength_limit},
    {"USER_AGENT", &Settings::user_agent},
};

const Entry& find(std::string_view name) {
  for (const Entry& e : kEntries) {
    if (e.name == name) return e;
  }
  throw ValueError("unknown setting '" + std::string(name) + "' (Settings::names() lists them)");
}

[[noreturn]] void bad(std::string_view name, std::string_view value, std::string_view want) {
  throw ValueError("setting " + std::string(name) + ": '" + std::string(value) + "' is not " +
                   std::string(want));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

template <class T>
T parse_integer(std::string_view name, std::string_view value) {
  const std::string_view v = trim(value);
  T out{};
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) bad(name, value, "an integer");
  return out;
}

double parse_double(std::string_view name, std::string_view value) {
  const std::string v(trim(value));
  char* end = nullptr;
  errno = 0;
  const double out = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || !std::isfinite(out)) {
    bad(name, value, "a number");
  }
  return out;
}

bool parse_bool(std::string_view name, std::string_view value) {
  const std::string_view v = trim(value);
  if (v == "1" || v == "True" || v == "true" || v == "TRUE") return true;
  if (v == "0" || v == "False" || v == "false" || v == "FALSE") return false;
  bad(name, value, "a boolean (True/False/1/0)");
}

std::vector<int> parse_int_list(std::string_view name, std::string_view value) {
  std::vector<int> out;
  std::string_view rest = trim(value);
  if (!rest.empty() && rest.front() == '[' && rest.back() == ']') {
    rest = trim(rest.substr(1, rest.size() - 2));  // the JSON / Python list form
  }
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    out.push_back(parse_integer<int>(name, rest.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

std::map<std::string, SlotSettings> parse_slots(std::string_view name, std::string_view value) {
  const auto doc = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) bad(name, value, "a JSON object of slot -> {concurrency, delay, ...}");
  std::map<std::string, SlotSettings> out;
  for (const auto& [slot, spec] : doc.items()) {
    if (!spec.is_object()) bad(name, value, "a JSON object of objects");
    SlotSettings s;
    for (const auto& [key, v] : spec.items()) {
      if (key == "concurrency" && v.is_number_integer()) {
        s.concurrency = v.get<int>();
      } else if (key == "delay" && v.is_number()) {
        s.delay = v.get<double>();
      } else if (key == "randomize_delay" && v.is_boolean()) {
        s.randomize_delay = v.get<bool>();
      } else {
        bad(name, value, "valid: slot keys are concurrency (int), delay (number), randomize_delay");
      }
    }
    out.emplace(slot, s);
  }
  return out;
}

std::string format_double(double d) {
  std::ostringstream out;
  out << d;
  return out.str();
}

}  // namespace

void Settings::set(std::string_view name, std::string_view value) {
  const Entry& e = find(name);
  std::visit(
      [&](auto member) {
        using M = decltype(member);
        if constexpr (std::is_same_v<M, int Settings::*>) {
          this->*member = parse_integer<int>(name, value);
        } else if constexpr (std::is_same_v<M, double Settings::*>) {
          this->*member = parse_double(name, value);
        } else if constexpr (std::is_same_v<M, bool Settings::*>) {
          this->*member = parse_bool(name, value);
        } else if constexpr (std::is_same_v<M, std::size_t Settings::*>) {
          this->*member = parse_integer<std::size_t>(name, value);
        } else if constexpr (std::is_same_v<M, std::string Settings::*>) {
          this->*member = std::string(trim(value));
        } else if constexpr (std::is_same_v<M, std::vector<int> Settings::*>) {
          this->*member = parse_int_list(name, value);
        } else {
          this->*member = parse_slots(name, value);
        }
      },
      e.field);
}

void Settings::set(std::string_view assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    throw ValueError("setting '" + std::string(assignment) + "' is not NAME=VALUE");
  }
  set(trim(assignment.substr(0, eq)), assignment.substr(eq + 1));
}

std::string Settings::get(std::string_view name) const {
  const Entry& e = find(name);
  return std::visit(
      [&](auto member) -> std::string {
        using M = decltype(member);
        const auto& v = this->*member;
        if constexpr (std::is_same_v<M, bool Settings::*>) {
          return v ? "True" : "False";
        } else if constexpr (std::is_same_v<M, double Settings::*>) {
          return format_double(v);
        } else if constexpr (std::is_same_v<M, std::string Settings::*>) {
          return v;
        } else if constexpr (std::is_same_v<M, std::vector<int> Settings::*>) {
          std::string out;
          for (int code : v) {
            if (!out.empty()) out += ',';
            out += std::to_string(code);
          }
          return out;
        } else if constexpr (std::is_same_v<M, std::map<std::string, SlotSettings> Settings::*>) {
          nlohmann::json doc = nlohmann::json::object();
          for (const auto& [slot, s] : v) {
            nlohmann::json spec = nlohmann::json::object();
            if (s.concurrency) spec["concurrency"] = *s.concurrency;
            if (s.delay) spec["delay"] = *s.delay;
            if (s.randomize_delay) spec["randomize_delay"] = *s.randomize_delay;
            doc[slot] = spec;
          }
          return doc.dump();
        } else {
          return std::to_string(v);
        }
      },
      e.field);
}

std::vector<std::string> Settings::names() {
  std::vector<std::string> out;
  for (const Entry& e : kEntries) out.emplace_back(e.name);
  return out;
}

void Settings::validate() const {
  auto require = [](bool ok, std::string_view name, const std::string& what) {
    if (!ok) throw ValueError("setting " + std::string(name) + " " + what);
  };
  // Upper bounds keep every delay representable as a clock duration and every count in range
  // (a year of seconds, a million of anything).
  constexpr double kMaxSeconds = 365.0 * 24 * 3600;
  constexpr int kMaxCount = 1'000'000;
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"DOWNLOAD_DELAY", download_delay},
        {"AUTOTHROTTLE_START_DELAY", autothrottle_start_delay},
        {"AUTOTHROTTLE_MAX_DELAY", autothrottle_max_delay},
        {"RETRY_BACKOFF_BASE", retry_backoff_base},
        {"RETRY_BACKOFF_MAX", retry_backoff_max},
        {"RETRY_AFTER_MAX", retry_after_max},
        {"DOWNLOAD_TIMEOUT", download_timeout},
        {"CLOSESPIDER_TIMEOUT", closespider_timeout},
        {"LOGSTATS_INTERVAL", logstats_interval}}) {
    require(value <= kMaxSeconds, name, "must be at most a year of seconds");
  }
  for (const auto& [name, value] :
       {std::pair<const char*, int>{"CONCURRENT_REQUESTS", concurrent_requests},
        {"CONCURRENT_REQUESTS_PER_DOMAIN", concurrent_requests_per_domain},
        {"RETRY_TIMES", retry_times},
        {"REDIRECT_MAX_TIMES", redirect_max_times},
        {"PARSE_THREADS", parse_threads},
        {"CONCURRENT_ITEMS", concurrent_items}}) {
    require(value <= kMaxCount, name, "must be at most 1000000");
  }
  require(concurrent_requests >= 1, "CONCURRENT_REQUESTS", "must be at least 1");
  require(concurrent_requests_per_domain >= 1, "CONCURRENT_REQUESTS_PER_DOMAIN",
          "must be at least 1");
  require(download_delay >= 0, "DOWNLOAD_DELAY", "must not be negative");
  require(autothrottle_start_delay >= 0, "AUTOTHROTTLE_START_DELAY", "must not be negative");
  require(autothrottle_max_delay >= 0, "AUTOTHROTTLE_MAX_DELAY", "must not be negative");
  require(autothrottle_target_concurrency > 0, "AUTOTHROTTLE_TARGET_CONCURRENCY",
          "must be greater than 0");
  require(retry_times >= 0, "RETRY_TIMES", "must not be negative");
  require(retry_backoff_base >= 0, "RETRY_BACKOFF_BASE", "must not be negative");
  require(retry_backoff_max >= 0, "RETRY_BACKOFF_MAX", "must not be negative");
  require(retry_after_max >= 0, "RETRY_AFTER_MAX", "must not be negative");
  require(redirect_max_times >= 0, "REDIRECT_MAX_TIMES", "must not be negative");
  require(download_timeout >= 0, "DOWNLOAD_TIMEOUT", "must not be negative");
  require(depth_limit >= 0, "DEPTH_LIMIT", "must not be negative");
  require(urllength_limit >= 0, "URLLENGTH_LIMIT", "must not be negative");
  require(closespider_pagecount >= 0, "CLOSESPIDER_PAGECOUNT", "must not be negative");
  require(closespider_itemcount >= 0, "CLOSESPIDER_ITEMCOUNT", "must not be negative");
  require(closespider_timeout >= 0, "CLOSESPIDER_TIMEOUT", "must not be negative");
  require(closespider_errorcount >= 0, "CLOSESPIDER_ERRORCOUNT", "must not be negative");
  require(parse_threads >= 0, "PARSE_THREADS", "must not be negative");
  require(concurrent_items >= 1, "CONCURRENT_ITEMS", "must be at least 1");
  require(logstats_interval >= 0, "LOGSTATS_INTERVAL", "must not be negative");
  require(scheduler_order == "lifo" || scheduler_order == "fifo", "SCHEDULER_ORDER",
          "must be lifo or fifo, not '" + scheduler_order + "'");
  require(log_level == "DEBUG" || log_level == "INFO" || log_level == "WARNING" ||
              log_level == "ERROR" || log_level == "NONE",
          "LOG_LEVEL", "must be DEBUG, INFO, WARNING, ERROR or NONE, not '" + log_level + "'");
  for (const auto& [slot, s] : download_slots) {
    require(!s.concurrency || *s.concurrency >= 1, "DOWNLOAD_SLOTS",
            "slot '" + slot + "': concurrency must be at least 1");
    require(!s.delay || *s.delay >= 0, "DOWNLOAD_SLOTS",
            "slot '" + slot + "': delay must not be negative");
  }
  for (int code : retry_http_codes) {
    require(code >= 100 && code <= 999, "RETRY_HTTP_CODES",
            "holds " + std::to_string(code) + ", not an HTTP status");
  }
}

}  // namespace concur::crawl
