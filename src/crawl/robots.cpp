// robots.txt by RFC 9309 (include/concur/crawl/robots.hpp).
#include "concur/crawl/robots.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "concur/crawl/url.hpp"
#include "internal.hpp"

namespace concur::crawl {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

using detail::ascii_lower;
using detail::hex_value;
using detail::is_hex;

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// product_token(s): the leading run of letters, '_' and '-' (RFC 9309 §2.2.1).
std::string_view product_token(std::string_view s) noexcept {
  s = trim(s);
  std::size_t n = 0;
  while (n < s.size() && ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
                          s[n] == '_' || s[n] == '-')) {
    ++n;
  }
  return s.substr(0, n);
}

// normalize(s): RFC 9309 §2.2.2 — an escape of an unreserved character decoded, other escapes'
// hex uppercased, bytes outside printable ASCII escaped; everything else (the pattern's '*' and
// '$' among it) as written.
std::string normalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
      auto b = static_cast<unsigned char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      if (is_unreserved(b)) {
        out += static_cast<char>(b);
      } else {
        out += '%';
        out += kHex[b >> 4];
        out += kHex[b & 0xF];
      }
      i += 2;
    } else if (c <= 0x20 || c >= 0x7F) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// matches(pattern, path): '*' matches any run of bytes, a final '$' anchors at the end of the
// path; otherwise the pattern need only match a prefix. Backtracks to the last '*' only, which
// suffices for patterns whose only wildcard is '*'.
bool matches(std::string_view pattern, std::string_view path) noexcept {
  bool anchored = !pattern.empty() && pattern.back() == '$';
  if (anchored) pattern.remove_suffix(1);
  std::size_t p = 0;
  std::size_t s = 0;
  std::size_t star_p = std::string_view::npos;
  std::size_t star_s = 0;
  while (true) {
    if (p == pattern.size()) {
      if (!anchored || s == path.size()) return true;
    } else if (pattern[p] == '*') {
      star_p = p++;
      star_s = s;
      continue;
    } else if (s < path.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
      continue;
    }
    // Mismatch (or an anchored pattern ended early): let the last '*' take one more byte.
    if (star_p == std::string_view::npos || star_s >= path.size()) return false;
    p = star_p + 1;
    s = ++star_s;
  }
}

enum class Key { kUserAgent, kAllow, kDisallow, kCrawlDelay, kSitemap, kOther };

// key_of(k): the directive, with the misspellings Google's parser accepts.
Key key_of(std::string_view k) noexcept {
  if (iequals(k, "user-agent") || iequals(k, "useragent") || iequals(k, "user agent")) {
    return Key::kUserAgent;
  }
  if (iequals(k, "allow")) return Key::kAllow;
  if (iequals(k, "disallow") || iequals(k, "dissallow") || iequals(k, "dissalow") ||
      iequals(k, "disalow") || iequals(k, "diasllow") || iequals(k, "disallaw")) {
    return Key::kDisallow;
  }
  if (iequals(k, "crawl-delay") || iequals(k, "crawl delay") || iequals(k, "crawldelay")) {
    return Key::kCrawlDelay;
  }
  if (iequals(k, "sitemap") || iequals(k, "site-map")) return Key::kSitemap;
  return Key::kOther;
}

}  // namespace

RobotsPolicy robots_policy_for_status(int http_status) noexcept {
  if (http_status >= 200 && http_status <= 299) return RobotsPolicy::kParse;
  if (http_status >= 300 && http_status <= 499 && http_status != 429)
    return RobotsPolicy::kAllowAll;
  return RobotsPolicy::kDisallowAll;
}

RobotsTxt RobotsTxt::allow_all() { return RobotsTxt(); }

RobotsTxt RobotsTxt::disallow_all() {
  RobotsTxt r;
  r.disallow_all_ = true;
  return r;
}

RobotsTxt RobotsTxt::from_response(int http_status, std::string_view body) {
  switch (robots_policy_for_status(http_status)) {
    case RobotsPolicy::kParse:
      return parse(body);
    case RobotsPolicy::kAllowAll:
      return allow_all();
    case RobotsPolicy::kDisallowAll:
      break;
  }
  return disallow_all();
}

RobotsTxt RobotsTxt::parse(std::string_view body) {
  RobotsTxt r;
  if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
  if (body.size() > kMaxBytes) {
    r.truncated_ = true;
    body = body.substr(0, kMaxBytes);
    std::size_t last_eol = body.find_last_of("\r\n");
    body = body.substr(0, last_eol == std::string_view::npos ? 0 : last_eol);
  }
  Group* group = nullptr;  // the group lines are added to
  bool in_rules = false;   // a rule line was seen since the group's last user-agent line
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t eol = body.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string_view line = body.substr(pos, eol - pos);
    pos = eol + 1;
    if (eol < body.size() && body[eol] == '\r' && pos < body.size() && body[pos] == '\n') {
      ++pos;  // CRLF
    }
    std::size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // not a directive
    Key key = key_of(trim(line.substr(0, colon)));
    std::string_view value = trim(line.substr(colon + 1));
    switch (key) {
      case Key::kUserAgent: {
        if (group == nullptr || in_rules) {
          r.groups_.emplace_back();
          group = &r.groups_.back();
          in_rules = false;
        }
        std::string_view token = value.starts_with('*') ? value.substr(0, 1) : product_token(value);
        if (!token.empty()) group->user_agents.emplace_back(token);
        break;
      }
      case Key::kAllow:
      case Key::kDisallow: {
        if (group == nullptr) break;  // rules before any user-agent line belong to no group
        in_rules = true;
        if (value.empty()) break;  // "Disallow:" (nothing) forbids nothing
        std::string pattern = normalize(value);
        if (pattern.front() != '/' && pattern.front() != '*') pattern.insert(0, 1, '/');
        group->rules.push_back(Rule{key == Key::kAllow, std::move(pattern)});
        break;
      }
      case Key::kCrawlDelay: {
        if (group == nullptr) break;
        in_rules = true;
        double seconds = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
        if (ec == std::errc() && end == value.data() + value.size() && std::isfinite(seconds) &&
            seconds >= 0 && !group->crawl_delay) {
          group->crawl_delay = seconds;
        }
        break;
      }
      case Key::kSitemap:
        if (!value.empty()) r.sitemaps_.emplace_back(value);
        break;
      case Key::kOther:
        break;
    }
  }
  return r;
}

std::vector<const RobotsTxt::Group*> RobotsTxt::applicable(std::string_view user_agent) const {
  std::string_view token = product_token(user_agent);
  std::vector<const Group*> named;
  std::vector<const Group*> star;
  for (const Group& g : groups_) {
    for (const std::string& ua : g.user_agents) {
      if (ua == "*") {
        star.push_back(&g);
        break;
      }
      if (!token.empty() && iequals(ua, token)) {
        named.push_back(&g);
        break;
      }
    }
  }
  return named.empty() ? star : named;
}

bool RobotsTxt::can_fetch(std::string_view url, std::string_view user_agent) const {
  std::string target = url.starts_with('/') ? std::string(url) : url_path_query(url);
  if (target.starts_with("/robots.txt") && (target.size() == 11 || target[11] == '?')) return true;
  if (disallow_all_) return false;
  std::string path = normalize(target);
  std::size_t best_len = 0;
  bool best_allow = true;
  bool any = false;
  for (const Group* g : applicable(user_agent)) {
    for (const Rule& rule : g->rules) {
      if (rule.pattern.size() < best_len) continue;
      if (rule.pattern.size() == best_len && any && best_allow) continue;  // allow already wins
      if (!matches(rule.pattern, path)) continue;
      if (!any || rule.pattern.size() > best_len) {
        best_allow = rule.allow;
      } else {
        best_allow = best_allow || rule.allow;
      }
      best_len = rule.pattern.size();
      any = true;
    }
  }
  return !any || best_allow;
}

std::optional<double> RobotsTxt::crawl_delay(std::string_view user_agent) const {
  for (const Group* g : applicable(user_agent)) {
    if (g->crawl_delay) return g->crawl_delay;
  }
  return std::nullopt;
}

}  // namespace concur::crawl
