// Tests for concur/crawl/robots.hpp: the examples of RFC 9309 (§2.2.1 group merging, §2.2.2
// percent-encoding table, §5.1 simple example, §5.2 longest match), the path-matching and
// precedence tables of Google's robots.txt documentation ("How Google interprets the robots.txt
// specification"), parser robustness (BOM, CR/CRLF/LF, comments, typos, garbage, binary, the
// 500 KiB cap) and the fetch-status policy.
#include "concur/crawl/robots.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "concur/errors.hpp"

namespace {

using namespace concur::crawl;

// allowed(rules, path): can_fetch of `path` for "FooBot" under "User-agent: *" + rules.
bool allowed(const std::string& rules, const std::string& path) {
  return RobotsTxt::parse("User-agent: *\n" + rules).can_fetch(path, "FooBot");
}

struct PathCase {
  const char* path;
  bool match;
};

// Google's path-matching table: each pattern as a lone Disallow, so "matches" = "disallowed".
void expect_matches(const char* pattern, std::initializer_list<PathCase> cases) {
  std::string rules = std::string("Disallow: ") + pattern + "\n";
  for (const auto& c : cases) {
    EXPECT_EQ(!allowed(rules, c.path), c.match) << "pattern " << pattern << " path " << c.path;
  }
}

TEST(RobotsMatching, GooglePathTable) {
  expect_matches("/", {{"/", true}, {"/anything", true}, {"/a/b?c=d", true}});
  expect_matches("/*", {{"/", true}, {"/anything", true}});
  expect_matches("/$", {{"/", true}, {"/page.htm", false}, {"/?x=1", false}});
  expect_matches("/fish", {{"/fish", true},
                           {"/fish.html", true},
                           {"/fish/salmon.html", true},
                           {"/fishheads", true},
                           {"/fishheads/yummy.html", true},
                           {"/fish.php?id=anything", true},
                           {"/Fish.asp", false},
                           {"/catfish", false},
                           {"/?id=fish", false},
                           {"/desert/fish", false}});
  expect_matches("/fish*", {{"/fish", true},
                            {"/fish.html", true},
                            {"/fishheads/yummy.html", true},
                            {"/Fish.asp", false},
                            {"/catfish", false}});
  expect_matches("/fish/", {{"/fish/", true},
                            {"/fish/?id=anything", true},
                            {"/fish/salmon.htm", true},
                            {"/fish", false},
                            {"/fish.html", false},
                            {"/animals/fish/", false},
                            {"/Fish/Salmon.asp", false}});
  expect_matches("/*.php", {{"/index.php", true},
                            {"/filename.php", true},
                            {"/folder/filename.php", true},
                            {"/folder/filename.php?parameters", true},
                            {"/folder/any.php.file.html", true},
                            {"/filename.php/", true},
                            {"/", false},
                            {"/windows.PHP", false}});
  expect_matches("/*.php$", {{"/filename.php", true},
                             {"/folder/filename.php", true},
                             {"/filename.php?parameters", false},
                             {"/filename.php/", false},
                             {"/filename.php5", false},
                             {"/windows.PHP", false}});
  expect_matches(
      "/fish*.php",
      {{"/fish.php", true}, {"/fishheads/catfish.php?parameters", true}, {"/Fish.PHP", false}});
}

TEST(RobotsMatching, GooglePrecedenceTable) {
  EXPECT_TRUE(allowed("Allow: /p\nDisallow: /\n", "/page"));
  EXPECT_TRUE(allowed("Allow: /folder\nDisallow: /folder\n", "/folder/page"));  // tie: allow
  EXPECT_FALSE(allowed("Allow: /page\nDisallow: /*.htm\n", "/page.htm"));       // longer wins
  EXPECT_TRUE(allowed("Allow: /page\nDisallow: /*.ph\n", "/page.php5"));        // tie: allow
  EXPECT_TRUE(allowed("Allow: /$\nDisallow: /\n", "/"));
  EXPECT_FALSE(allowed("Allow: /$\nDisallow: /\n", "/page.htm"));
  // Order in the file does not matter.
  EXPECT_TRUE(allowed("Disallow: /\nAllow: /p\n", "/page"));
  EXPECT_TRUE(allowed("Disallow: /folder\nAllow: /folder\n", "/folder/page"));
}

TEST(RobotsMatching, Rfc9309SimpleExample) {
  // RFC 9309 §5.1.
  const char* body =
      "User-Agent: *\n"
      "Disallow: *.gif$\n"
      "Disallow: /example/\n"
      "Allow: /publications/\n"
      "\n"
      "User-Agent: foobot\n"
      "Disallow:/\n"
      "Allow:/example/page.html\n"
      "Allow:/example/allowed.gif\n"
      "\n"
      "User-Agent: barbot\n"
      "User-Agent: bazbot\n"
      "Disallow: /example/page.html\n"
      "\n"
      "User-Agent: quxbot\n"
      "\n"
      "EOF\n";
  RobotsTxt r = RobotsTxt::parse(body);
  ASSERT_EQ(r.groups().size(), 4U);
  // Any other crawler: the "*" group.
  EXPECT_FALSE(r.can_fetch("https://example.com/image.gif", "OtherBot"));
  EXPECT_TRUE(r.can_fetch("https://example.com/image.gif?x", "OtherBot"));
  EXPECT_FALSE(r.can_fetch("https://example.com/example/page.html", "OtherBot"));
  EXPECT_TRUE(r.can_fetch("https://example.com/publications/", "OtherBot"));
  EXPECT_TRUE(r.can_fetch("https://example.com/", "OtherBot"));
  // foobot: everything but two pages.
  EXPECT_FALSE(r.can_fetch("https://example.com/", "foobot"));
  EXPECT_FALSE(r.can_fetch("https://example.com/publications/", "FooBot/2.1"));
  EXPECT_TRUE(r.can_fetch("https://example.com/example/page.html", "foobot"));
  EXPECT_TRUE(r.can_fetch("https://example.com/example/allowed.gif", "FOOBOT"));
  // barbot and bazbot share a group.
  EXPECT_FALSE(r.can_fetch("https://example.com/example/page.html", "barbot"));
  EXPECT_FALSE(r.can_fetch("https://example.com/example/page.html", "bazbot"));
  EXPECT_TRUE(r.can_fetch("https://example.com/example/other.gif", "bazbot"));
  // quxbot: an empty group, everything allowed (not the "*" group).
  EXPECT_TRUE(r.can_fetch("https://example.com/example/page.html", "quxbot"));
  EXPECT_TRUE(r.can_fetch("https://example.com/image.gif", "quxbot"));
}

TEST(RobotsMatching, Rfc9309LongestMatch) {
  // RFC 9309 §5.2.
  RobotsTxt r = RobotsTxt::parse(
      "User-Agent: foobot\n"
      "Allow: /example/page/\n"
      "Disallow: /example/page/disallowed.gif\n");
  EXPECT_TRUE(r.can_fetch("/example/page/", "foobot"));
  EXPECT_TRUE(r.can_fetch("/example/page/allowed.gif", "foobot"));
  EXPECT_FALSE(r.can_fetch("/example/page/disallowed.gif", "foobot"));
}

TEST(RobotsMatching, Rfc9309GroupsOfOneAgentAreMerged) {
  // RFC 9309 §2.2.1.
  RobotsTxt r = RobotsTxt::parse(
      "user-agent: ExampleBot\n"
      "disallow: /foo\n"
      "disallow: /bar\n"
      "\n"
      "user-agent: *\n"
      "allow: /\n"
      "\n"
      "user-agent: examplebot\n"
      "disallow: /baz\n");
  for (const char* p : {"/foo", "/bar", "/baz"}) EXPECT_FALSE(r.can_fetch(p, "ExampleBot")) << p;
  EXPECT_TRUE(r.can_fetch("/qux", "ExampleBot"));
  for (const char* p : {"/foo", "/bar", "/baz"}) EXPECT_TRUE(r.can_fetch(p, "OtherBot")) << p;
}

TEST(RobotsMatching, Rfc9309PercentEncodingTable) {
  // RFC 9309 §2.2.2: rule path, URI path, whether they match.
  struct Row {
    const char* rule;
    const char* path;
  };
  const Row rows[] = {
      {"/foo/bar?baz=quz", "/foo/bar?baz=quz"},     {"/foo/bar/\xE3\x83\x84", "/foo/bar/%E3%83%84"},
      {"/foo/bar/%E3%83%84", "/foo/bar/%E3%83%84"}, {"/foo/bar/%62%61%7A", "/foo/bar/baz"},
      {"/foo/bar/baz", "/foo/bar/%62%61%7A"},       {"/foo/bar/%e3%83%84", "/foo/bar/\xE3\x83\x84"},
  };
  for (const auto& row : rows) {
    EXPECT_FALSE(allowed(std::string("Disallow: ") + row.rule + "\n", row.path))
        << row.rule << " vs " << row.path;
  }
  // A reserved character's escape is not its character.
  EXPECT_TRUE(allowed("Disallow: /a%2Fb\n", "/a/b"));
  EXPECT_FALSE(allowed("Disallow: /a%2fb\n", "/a%2Fb"));
  // Full URLs are matched on their path and query.
  EXPECT_FALSE(RobotsTxt::parse("User-agent: *\nDisallow: /r\xC3\xA9sum\xC3\xA9\n")
                   .can_fetch("https://example.com/r%C3%A9sum%C3%A9?x=1#frag", "bot"));
}

TEST(RobotsMatching, ProductTokensAndFallbacks) {
  RobotsTxt r = RobotsTxt::parse(
      "User-agent: Googlebot-News\nDisallow: /news\n\n"
      "User-agent: googlebot/2.1 (extra words)\nDisallow: /g\n\n"
      "User-agent: *\nDisallow: /star\n");
  EXPECT_FALSE(r.can_fetch("/news/1", "Googlebot-News"));
  EXPECT_TRUE(r.can_fetch("/g", "Googlebot-News"));
  EXPECT_FALSE(r.can_fetch("/g", "Googlebot/2.1 (+http://www.google.com/bot.html)"));
  EXPECT_TRUE(r.can_fetch("/star", "googlebot"));  // a named group replaces "*" entirely
  EXPECT_FALSE(r.can_fetch("/star", "Google"));    // no prefix matching of tokens
  EXPECT_FALSE(r.can_fetch("/star", ""));
  // No "*" group and no match: no rules apply.
  EXPECT_TRUE(RobotsTxt::parse("User-agent: a\nDisallow: /\n").can_fetch("/x", "b"));
  // An empty Disallow forbids nothing.
  EXPECT_TRUE(RobotsTxt::parse("User-agent: *\nDisallow:\n").can_fetch("/x", "b"));
  // Rules before any user-agent belong to nobody.
  EXPECT_TRUE(RobotsTxt::parse("Disallow: /\nUser-agent: *\nAllow: /x\n").can_fetch("/y", "b"));
  // /robots.txt itself is always allowed.
  EXPECT_TRUE(RobotsTxt::parse("User-agent: *\nDisallow: /\n").can_fetch("/robots.txt", "b"));
  EXPECT_TRUE(RobotsTxt::disallow_all().can_fetch("http://h/robots.txt", "b"));
  EXPECT_FALSE(RobotsTxt::disallow_all().can_fetch("http://h/robots.txt.bak", "b"));
  // Patterns without a leading '/' get one; '*'-led patterns are kept.
  EXPECT_FALSE(allowed("Disallow: private\n", "/private/x"));
  EXPECT_FALSE(allowed("Disallow: *private\n", "/a/private"));
  EXPECT_THROW((void)r.can_fetch("not a url", "bot"), concur::ValueError);
}

TEST(RobotsParse, DirectivesSitemapsCrawlDelay) {
  RobotsTxt r = RobotsTxt::parse(
      "\xEF\xBB\xBF# comment line\r\n"
      "Sitemap: https://example.com/sitemap.xml\r\n"
      "USER-AGENT: slowbot # trailing comment\r\n"
      "crawl-delay: 2.5\r\n"
      "DISALLOW: /private # no\r\n"
      "\r\n"
      "user-agent: *\r"
      "Crawl-delay: soon\r"
      "dissallow: /typo\r"
      "Sitemap: https://example.com/news.xml\n"
      "Host: example.com\n"
      "nonsense without colon\n"
      ": no key\n");
  EXPECT_EQ(r.sitemaps(), (std::vector<std::string>{"https://example.com/sitemap.xml",
                                                    "https://example.com/news.xml"}));
  EXPECT_EQ(r.crawl_delay("SlowBot/1.0"), 2.5);
  EXPECT_FALSE(r.crawl_delay("other").has_value());
  EXPECT_FALSE(r.can_fetch("/private/x", "slowbot"));
  EXPECT_FALSE(r.can_fetch("/typo", "other"));
  EXPECT_TRUE(r.can_fetch("/private/x", "other"));
  ASSERT_EQ(r.groups().size(), 2U);
  EXPECT_EQ(r.groups()[0].user_agents, std::vector<std::string>{"slowbot"});
  EXPECT_FALSE(r.truncated());
}

TEST(RobotsParse, GarbageBinaryAndHugeFilesNeverFail) {
  std::mt19937 rng(14);
  std::string garbage;
  for (int i = 0; i < 200000; ++i) garbage += static_cast<char>(rng() & 0xFF);
  RobotsTxt g = RobotsTxt::parse(garbage);
  (void)g.can_fetch("/x", "bot");
  EXPECT_TRUE(RobotsTxt::parse("").can_fetch("/", "bot"));
  EXPECT_TRUE(RobotsTxt::parse("<html><body>Not Found</body></html>").can_fetch("/", "bot"));

  // A huge file: rules beyond 500 KiB are ignored, and the line cut by the limit is dropped.
  std::string huge = "User-agent: *\n";
  while (huge.size() < RobotsTxt::kMaxBytes - 20) huge += "Disallow: /filler\n";
  huge.resize(RobotsTxt::kMaxBytes - 5, '#');
  huge += "\nDisallow: /late\n";  // the line crossing the limit
  huge.append(std::size_t{1} << 20, '\n');
  huge += "Disallow: /later\n";
  RobotsTxt h = RobotsTxt::parse(huge);
  EXPECT_TRUE(h.truncated());
  EXPECT_FALSE(h.can_fetch("/filler", "bot"));
  EXPECT_TRUE(h.can_fetch("/late", "bot"));
  EXPECT_TRUE(h.can_fetch("/later", "bot"));

  // A pathological pattern against a long path finishes.
  std::string stars = "User-agent: *\nDisallow: /";
  for (int i = 0; i < 200; ++i) stars += "*a";
  stars += "$\n";
  EXPECT_TRUE(RobotsTxt::parse(stars).can_fetch("/" + std::string(5000, 'a') + "b", "bot"));
}

TEST(RobotsPolicyForStatus, Rfc9309Section2_3_1) {
  EXPECT_EQ(robots_policy_for_status(200), RobotsPolicy::kParse);
  EXPECT_EQ(robots_policy_for_status(204), RobotsPolicy::kParse);
  EXPECT_EQ(robots_policy_for_status(301), RobotsPolicy::kAllowAll);
  EXPECT_EQ(robots_policy_for_status(401), RobotsPolicy::kAllowAll);
  EXPECT_EQ(robots_policy_for_status(403), RobotsPolicy::kAllowAll);
  EXPECT_EQ(robots_policy_for_status(404), RobotsPolicy::kAllowAll);
  EXPECT_EQ(robots_policy_for_status(410), RobotsPolicy::kAllowAll);
  EXPECT_EQ(robots_policy_for_status(429), RobotsPolicy::kDisallowAll);
  EXPECT_EQ(robots_policy_for_status(500), RobotsPolicy::kDisallowAll);
  EXPECT_EQ(robots_policy_for_status(503), RobotsPolicy::kDisallowAll);
  EXPECT_EQ(robots_policy_for_status(0), RobotsPolicy::kDisallowAll);
  EXPECT_EQ(robots_policy_for_status(-1), RobotsPolicy::kDisallowAll);
  EXPECT_EQ(robots_policy_for_status(100), RobotsPolicy::kDisallowAll);

  const char* body = "User-agent: *\nDisallow: /x\n";
  EXPECT_FALSE(RobotsTxt::from_response(200, body).can_fetch("/x", "bot"));
  EXPECT_TRUE(RobotsTxt::from_response(200, body).can_fetch("/y", "bot"));
  EXPECT_TRUE(RobotsTxt::from_response(404, body).can_fetch("/x", "bot"));
  EXPECT_FALSE(RobotsTxt::from_response(503, body).can_fetch("/y", "bot"));
  EXPECT_FALSE(RobotsTxt::from_response(429, body).can_fetch("/y", "bot"));
  EXPECT_TRUE(RobotsTxt().can_fetch("/anything", "bot"));
}

}  // namespace
