// concur/crawl/robots.hpp — robots.txt by RFC 9309, after Scrapy's default parser (Protego) and
// urllib.robotparser: RobotsTxt::parse(body), can_fetch(url, user_agent), crawl_delay(user_agent),
// sitemaps(); and the fetch-status policy as a function (robots_policy_for_status) with
// RobotsTxt::from_response(status, body) applying it.
//
// Matching (docs/internals/crawl-parse.md): the groups whose user-agent names the crawler's product
// token (case-insensitive) are merged, else the "*" groups, else nothing applies; among their rules
// the longest matching pattern wins and allow wins a tie; '*' matches any run of characters and a
// final '$' anchors the end; paths and patterns are compared after percent-encoding normalization
// (unreserved escapes decoded, non-ASCII bytes escaped, hex uppercased); "/robots.txt" is always
// allowed. Parsing never fails: garbage lines are skipped, a UTF-8 BOM is ignored, and only the
// first kMaxBytes (500 KiB, RFC 9309 §2.5) are read.
// Thread-safety: a parsed RobotsTxt is immutable; const members may be called from many threads.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace concur::crawl {

// RobotsPolicy: what a crawler does with a robots.txt fetch's outcome (RFC 9309 §2.3.1).
enum class RobotsPolicy {
  kParse,        // 2xx: parse the body and obey it
  kAllowAll,     // "unavailable" (4xx other than 429, an unresolved 3xx): no restrictions
  kDisallowAll,  // "unreachable" (5xx, 429, no response): crawl nothing there; retry later
};

// robots_policy_for_status(http_status): 200-299 -> kParse; 400-499 except 429 -> kAllowAll;
// 300-399 (the redirects were not followed to the end; RFC 9309 lets a crawler then treat the file
// as unavailable) -> kAllowAll; 429, 500-599 and anything else (pass 0 when the fetch failed
// without a response) -> kDisallowAll.
[[nodiscard]] RobotsPolicy robots_policy_for_status(int http_status) noexcept;

// RobotsTxt: one site's parsed robots.txt. A default-constructed one allows everything.
class RobotsTxt {
 public:
  // kMaxBytes: the most of a body parse() reads (RFC 9309: at least 500 KiB); a line cut by the
  // limit is dropped.
  static constexpr std::size_t kMaxBytes = 500 * 1024;

  // Rule: one allow / disallow line; `pattern` is normalized (percent-encoding, a leading '/').
  struct Rule {
    bool allow = false;
    std::string pattern;
  };
  // Group: consecutive user-agent lines and the rules after them.
  struct Group {
    std::vector<std::string> user_agents;  // product tokens as written, "*" for the default group
    std::vector<Rule> rules;
    std::optional<double> crawl_delay;  // seconds
  };

  RobotsTxt() = default;

  // parse(body) reads a robots.txt body (any bytes). Never throws but for std::bad_alloc.
  [[nodiscard]] static RobotsTxt parse(std::string_view body);
  // allow_all() / disallow_all(): the files RFC 9309 §2.3.1 tells a crawler to assume.
  [[nodiscard]] static RobotsTxt allow_all();
  [[nodiscard]] static RobotsTxt disallow_all();
  // from_response(http_status, body): robots_policy_for_status(http_status) applied — the parsed
  // body, allow_all() or disallow_all().
  [[nodiscard]] static RobotsTxt from_response(int http_status, std::string_view body);

  // can_fetch(url, user_agent) is true if `user_agent` may fetch `url`: an absolute URL (its path
  // and query are matched; throws ValueError if it is no URL) or a path starting with '/'.
  // `user_agent` is a product token ("MyBot") or a full User-Agent value ("MyBot/1.0
  // (+https://…)"), whose leading run of letters, '_' and '-' is the token.
  [[nodiscard]] bool can_fetch(std::string_view url, std::string_view user_agent) const;

  // crawl_delay(user_agent): the Crawl-delay of the groups that apply to `user_agent` (the first
  // one given), if any. Not part of RFC 9309; Scrapy's ROBOTSTXT_OBEY ignores it, Protego reads it.
  [[nodiscard]] std::optional<double> crawl_delay(std::string_view user_agent) const;

  // sitemaps(): the Sitemap URLs, in file order (they belong to no group).
  [[nodiscard]] const std::vector<std::string>& sitemaps() const noexcept { return sitemaps_; }

  // groups(): the parsed groups, in file order.
  [[nodiscard]] const std::vector<Group>& groups() const noexcept { return groups_; }

  // truncated(): parse() stopped at kMaxBytes.
  [[nodiscard]] bool truncated() const noexcept { return truncated_; }

 private:
  // applicable(token): the groups that apply to a product token.
  [[nodiscard]] std::vector<const Group*> applicable(std::string_view user_agent) const;

  std::vector<Group> groups_;
  std::vector<std::string> sitemaps_;
  bool truncated_ = false;
  bool disallow_all_ = false;
};

}  // namespace concur::crawl
