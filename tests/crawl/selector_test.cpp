// Tests for concur/crawl/selector.hpp: CSS -> XPath (the translation strings of cssselect's
// scheme, and each supported form's match set on one small page, the sets also checked against
// parsel 1.7 by hand), XPath results of every kind, get/getall/attrib/re as parsel, malformed
// HTML and binary input, encodings (Content-Type, <meta charset>, http-equiv, BOMs, latin-1,
// Shift_JIS, broken UTF-8), link extraction with Scrapy's LinkExtractor defaults, and four threads
// parsing different pages at once (run under TSan too).
#include "concur/crawl/selector.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"

namespace {

using concur::ValueError;
using namespace concur::crawl;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kPage = R"(<!DOCTYPE html>
<html><head><title>Test page</title></head><body>
<div id="main" class="content main-area">
  <h1 lang="en-US">Title</h1>
  <p class="intro first">One</p>
  <p class="intro">Two <a href="/a1" data-x="foo bar">A1</a></p>
  <p>Three <a href="http://other.example/a2" title="x-y">A2</a> <span>S</span></p>
  <ul><li>L1</li><li class="odd">L2</li><li>L3</li><li>L4</li><li>L5</li></ul>
</div>
<div id="side"><a href="/a3" rel="nofollow">A3</a><img src="i.png"><p>Side</p></div>
</body></html>)";

Selector page() {
  Selector::Options o;
  o.base_url = "http://example.com/dir/index.html";
  return Selector(kPage, o);
}

// labels(list): each result as "name:text" for an element, else its get().
std::vector<std::string> labels(const SelectorList& list) {
  std::vector<std::string> out;
  for (const Selector& s : list) {
    if (s.kind() == Selector::Kind::kElement) {
      std::string t = s.text_content();
      std::string collapsed;
      for (char c : t) {
        if (c == '\n') continue;
        collapsed += c;
      }
      out.push_back(s.name() + ":" + collapsed);
    } else {
      out.push_back(s.get());
    }
  }
  return out;
}

std::vector<std::string> css(const char* selector) { return labels(page().css(selector)); }

// ---- CSS translation ---------------------------------------------------------------------------

TEST(CssToXpath, TranslationStrings) {
  EXPECT_EQ(css_to_xpath("a"), "descendant-or-self::a");
  EXPECT_EQ(css_to_xpath("*"), "descendant-or-self::*");
  EXPECT_EQ(css_to_xpath("DIV"), "descendant-or-self::div");
  EXPECT_EQ(css_to_xpath("#main"), "descendant-or-self::*[@id = 'main']");
  EXPECT_EQ(css_to_xpath(".c"),
            "descendant-or-self::*[@class and contains(concat(' ', normalize-space(@class), ' '), "
            "' c ')]");
  EXPECT_EQ(css_to_xpath("a[href]"), "descendant-or-self::a[@href]");
  EXPECT_EQ(css_to_xpath("a[href='x']"), "descendant-or-self::a[@href = 'x']");
  EXPECT_EQ(css_to_xpath("a[HREF^=x]"), "descendant-or-self::a[@href and starts-with(@href, 'x')]");
  EXPECT_EQ(css_to_xpath("a[x$=\"ab\"]"),
            "descendant-or-self::a[@x and substring(@x, string-length(@x) - 1) = 'ab']");
  EXPECT_EQ(css_to_xpath("a[x*=b]"), "descendant-or-self::a[@x and contains(@x, 'b')]");
  EXPECT_EQ(css_to_xpath("a b"), "descendant-or-self::a/descendant-or-self::*/b");
  EXPECT_EQ(css_to_xpath("a > b"), "descendant-or-self::a/b");
  EXPECT_EQ(css_to_xpath("a + b"), "descendant-or-self::a/following-sibling::*[1]/self::b");
  EXPECT_EQ(css_to_xpath("a ~ b"), "descendant-or-self::a/following-sibling::b");
  EXPECT_EQ(css_to_xpath("a, b"), "descendant-or-self::a | descendant-or-self::b");
  EXPECT_EQ(css_to_xpath("p::text"), "descendant-or-self::p/text()");
  EXPECT_EQ(css_to_xpath("::text"), "descendant-or-self::text()");
  EXPECT_EQ(css_to_xpath("p ::text"), "descendant-or-self::p/descendant-or-self::*/text()");
  EXPECT_EQ(css_to_xpath("a::attr(href)"), "descendant-or-self::a/@href");
  EXPECT_EQ(css_to_xpath("li:first-child"),
            "descendant-or-self::li[count(preceding-sibling::*) = 0]");
  EXPECT_EQ(css_to_xpath("li", ""), "li");
  // A value holding both quote characters.
  EXPECT_EQ(css_to_xpath(R"([t="a'b\"c"])"),
            R"(descendant-or-self::*[@t = concat('a', "'", 'b"c')])");
}

TEST(CssToXpath, MatchSetsOnAPage) {
  EXPECT_THAT(css("h1"), ElementsAre("h1:Title"));
  EXPECT_EQ(css("*").size(), 22U);
  EXPECT_THAT(css("#side > a"), ElementsAre("a:A3"));
  EXPECT_THAT(css(".intro"), ElementsAre("p:One", "p:Two A1"));
  EXPECT_THAT(css("p.intro.first"), ElementsAre("p:One"));
  EXPECT_THAT(css("div.main-area h1"), ElementsAre("h1:Title"));
  EXPECT_THAT(css("[title]"), ElementsAre("a:A2"));
  EXPECT_THAT(css("a[href='/a1']"), ElementsAre("a:A1"));
  EXPECT_THAT(css("a[data-x~=bar]"), ElementsAre("a:A1"));
  EXPECT_THAT(css("a[data-x~=ba]"), ElementsAre());
  EXPECT_THAT(css("a[href^='http']"), ElementsAre("a:A2"));
  EXPECT_THAT(css("a[href$='3']"), ElementsAre("a:A3"));
  EXPECT_THAT(css("a[href*=a]"), ElementsAre("a:A1", "a:A2", "a:A3"));
  EXPECT_THAT(css("[lang|=en]"), ElementsAre("h1:Title"));
  EXPECT_THAT(css("[title|=x]"), ElementsAre("a:A2"));
  EXPECT_THAT(css("[lang|=US]"), ElementsAre());
  EXPECT_THAT(css("div p"), ElementsAre("p:One", "p:Two A1", "p:Three A2 S", "p:Side"));
  EXPECT_THAT(css("body > p"), ElementsAre());
  EXPECT_THAT(css("h1 + p"), ElementsAre("p:One"));
  EXPECT_THAT(css("h1 ~ p"), ElementsAre("p:One", "p:Two A1", "p:Three A2 S"));
  EXPECT_THAT(css("a + img"), ElementsAre("img:"));
  EXPECT_THAT(css("h1, #side a"), ElementsAre("h1:Title", "a:A3"));  // document order
  EXPECT_THAT(css("li:first-child"), ElementsAre("li:L1"));
  EXPECT_THAT(css("li:last-child"), ElementsAre("li:L5"));
  EXPECT_THAT(css("li:nth-child(2)"), ElementsAre("li:L2"));
  EXPECT_THAT(css("li:nth-child(odd)"), ElementsAre("li:L1", "li:L3", "li:L5"));
  EXPECT_THAT(css("li:nth-child(even)"), ElementsAre("li:L2", "li:L4"));
  EXPECT_THAT(css("li:nth-child(2n+1)"), ElementsAre("li:L1", "li:L3", "li:L5"));
  EXPECT_THAT(css("li:nth-child(3n)"), ElementsAre("li:L3"));
  EXPECT_THAT(css("li:nth-child(n+4)"), ElementsAre("li:L4", "li:L5"));
  EXPECT_THAT(css("li:nth-child(-n+2)"), ElementsAre("li:L1", "li:L2"));
  EXPECT_THAT(css("li:nth-last-child(1)"), ElementsAre("li:L5"));
  EXPECT_THAT(css("li:not(.odd):nth-child(-n + 3)"), ElementsAre("li:L1", "li:L3"));
  EXPECT_THAT(css("div > p:first-of-type"), ElementsAre("p:One", "p:Side"));
  EXPECT_THAT(css("#side :only-child"), ElementsAre());
  EXPECT_THAT(css("p.intro::text"), ElementsAre("One", "Two "));
  EXPECT_THAT(css("#main > p:nth-child(4) ::text"), ElementsAre("Three ", "A2", " ", "S"));
  EXPECT_THAT(css("a::attr(href)"), ElementsAre("/a1", "http://other.example/a2", "/a3"));
  EXPECT_THAT(css("title::text"), ElementsAre("Test page"));
}

TEST(CssToXpath, InvalidOrUnsupportedSelectorsThrowValueError) {
  for (const char* bad :
       {"", "a[", "a[x=", "a[x=1", "a]", ":hover", "a::before", "a::text b", "li:nth-child(x)",
        "a >", ",a", "a,,b", "*:first-of-type", "a[x!=y]", "'str'", "a[x='unclosed]"}) {
    EXPECT_THROW((void)css_to_xpath(bad), ValueError) << bad;
  }
  try {
    (void)page().css("a::before");
    FAIL() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("a::before"));
  }
}

// ---- XPath and the parsel API ------------------------------------------------------------------

TEST(Selector, XpathResultsOfEveryKind) {
  Selector s = page();
  EXPECT_EQ(s.kind(), Selector::Kind::kElement);
  EXPECT_EQ(s.name(), "html");
  EXPECT_EQ(s.xpath("//title/text()").get(), "Test page");
  EXPECT_EQ(s.xpath("count(//a)").get(), "3.0");
  EXPECT_EQ(s.xpath("count(//a) div 2").get(), "1.5");
  EXPECT_EQ(s.xpath("boolean(//img)").get(), "1");
  EXPECT_EQ(s.xpath("boolean(//table)").get(), "0");
  EXPECT_EQ(s.xpath("string(//h1/@lang)").get(), "en-US");
  EXPECT_EQ(s.xpath("//a/@href").getall(),
            (std::vector<std::string>{"/a1", "http://other.example/a2", "/a3"}));
  EXPECT_FALSE(s.xpath("//table").get().has_value());
  EXPECT_EQ(s.xpath("//table").get("none"), "none");
  EXPECT_EQ(s.xpath("body").size(), 1U);  // relative to <html>, as parsel
  EXPECT_EQ(s.xpath("//comment()").size(), 0U);
  // Chained queries are relative to each result.
  SelectorList ps = s.css("#main p");
  EXPECT_EQ(ps.xpath("./a/text()").getall(), (std::vector<std::string>{"A1", "A2"}));
  EXPECT_EQ(ps.css("a::text").getall(), (std::vector<std::string>{"A1", "A2"}));
  EXPECT_EQ(ps[1].xpath("..").attrib().at("id"), "main");
  // A value has no nodes under it.
  EXPECT_TRUE(s.xpath("count(//a)")[0].xpath("//a").empty());
  EXPECT_THROW((void)s.xpath("//a[@"), ValueError);
  try {
    (void)s.xpath("//a[");
    FAIL() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("XPath error"));
    EXPECT_THAT(e.what(), HasSubstr("//a["));
  }
}

TEST(Selector, GetSerializesAsLxml) {
  Selector s = page();
  EXPECT_EQ(s.css("#side a").get(), "<a href=\"/a3\" rel=\"nofollow\">A3</a>");
  EXPECT_EQ(s.css("#side img").get(), "<img src=\"i.png\">");
  EXPECT_EQ(s.css("h1").attrib(), (std::map<std::string, std::string>{{"lang", "en-US"}}));
  EXPECT_EQ(s.css("#main").attrib().at("class"), "content main-area");
  EXPECT_TRUE(s.css("h1::text").attrib().empty());
  EXPECT_TRUE(s.css("table").attrib().empty());
  Selector u("<p>caf\xC3\xA9 &amp; <!-- note --> &lt;tag&gt;</p>");
  EXPECT_EQ(u.css("p").get(), "<p>caf\xC3\xA9 &amp; <!-- note --> &lt;tag&gt;</p>");
  EXPECT_EQ(u.css("p::text").get(), "caf\xC3\xA9 & ");
  EXPECT_EQ(u.xpath("//comment()").get(), "<!-- note -->");
  EXPECT_EQ(u.xpath("//comment()")[0].kind(), Selector::Kind::kComment);
}

TEST(Selector, ReAsParsel) {
  Selector s("<ul><li>Price: 10 EUR</li><li>Price: 25 EUR</li><li>Name: x</li></ul>");
  SelectorList li = s.css("li::text");
  EXPECT_EQ(li.re(R"(\d+)"), (std::vector<std::string>{"10", "25"}));
  EXPECT_EQ(li.re(R"((\w+): (\w+))"),
            (std::vector<std::string>{"Price", "10", "Price", "25", "Name", "x"}));
  EXPECT_EQ(li.re_first(R"(Price: (\d+))"), "10");
  EXPECT_FALSE(li.re_first("nothing").has_value());
  EXPECT_EQ(s.css("li").re(R"(<li>(Name)[^<]*</li>)"), std::vector<std::string>{"Name"});
  Selector ent("<p>a &amp;quot; b</p>");
  EXPECT_EQ(ent.css("p").re("a [^<]*"), std::vector<std::string>{"a &amp;quot; b"});
  EXPECT_EQ(Selector("<p>x &#65;&#x42;</p>").css("p").re("x[^<]*").at(0), "x AB");
  EXPECT_THROW((void)li.re("("), ValueError);
}

TEST(Selector, BaseUrlAndUrljoin) {
  Selector::Options o;
  o.base_url = "http://example.com/dir/page.html";
  EXPECT_EQ(Selector("<a href=x>", o).urljoin("x"), "http://example.com/dir/x");
  EXPECT_EQ(Selector("<head><base href='/other/'></head><a href=x>", o).urljoin("x"),
            "http://example.com/other/x");
  EXPECT_EQ(Selector("<base href='https://cdn.example.net/b/'>", o).base_url(),
            "https://cdn.example.net/b/");
  EXPECT_EQ(Selector("<base href='http://[bad'>", o).base_url(), o.base_url);
}

// ---- robustness and encodings ------------------------------------------------------------------

TEST(Selector, MalformedHtmlIsRecovered) {
  Selector s("<div><p>one<p>two<div>three</span></b><li>four<table><td>cell</div>");
  EXPECT_EQ(s.css("p").size(), 2U);
  EXPECT_EQ(s.css("td::text").get(), "cell");
  EXPECT_EQ(Selector("").css("*").size(), 1U);  // "<html/>"
  EXPECT_EQ(Selector("   \n ").get(), "<html></html>");
  EXPECT_EQ(Selector("just text").css("p::text").get(), "just text");
  EXPECT_EQ(Selector("<a href='x'>unclosed").css("a::attr(href)").get(), "x");
  EXPECT_EQ(Selector("<p a=1 a=2 b='unterminated>x</p>").css("p").size(), 1U);
  // Deep nesting: no recursion in concur's own walks, libxml2 caps its depth.
  std::string deep;
  for (int i = 0; i < 20000; ++i) deep += "<div>";
  deep += "<a href='/deep'>d</a>";
  Selector d(deep);
  (void)d.css("a").size();
  (void)extract_links(d);
}

TEST(Selector, BinaryGarbageNeverFails) {
  std::mt19937 rng(14);
  for (int round = 0; round < 20; ++round) {
    std::string junk;
    std::size_t n = 1 + rng() % 20000;
    for (std::size_t i = 0; i < n; ++i) junk += static_cast<char>(rng() & 0xFF);
    if (round % 2 == 0) junk = "<html><body><a href='/x'>" + junk + "<p>tail";
    Selector s(junk);
    (void)s.css("*").getall();
    (void)s.xpath("//text()").getall();
    (void)extract_links(s);
  }
  std::string nuls("<p>a\0b</p>", 10);
  EXPECT_EQ(Selector(nuls).css("p::text").get(),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(Encoding, DetectionOrder) {
  EXPECT_EQ(http_content_type_encoding("text/html; charset=ISO-8859-1"), "WINDOWS-1252");
  EXPECT_EQ(http_content_type_encoding("text/html;charset=\"utf-8\""), "UTF-8");
  EXPECT_EQ(http_content_type_encoding("text/html; charset=shift_jis"), "CP932");
  EXPECT_EQ(http_content_type_encoding("text/html; charset=koi8-r"), "KOI8-R");
  EXPECT_EQ(http_content_type_encoding("text/html; charset=no-such-thing"), "");
  EXPECT_EQ(http_content_type_encoding("text/html"), "");
  EXPECT_EQ(html_body_declared_encoding("<html><head><meta charset=\"latin-1\">"), "WINDOWS-1252");
  EXPECT_EQ(html_body_declared_encoding(
                "<meta http-equiv='Content-Type' content='text/html; charset=EUC-JP'>"),
            "EUC-JP");
  EXPECT_EQ(html_body_declared_encoding("<?xml version='1.0' encoding='windows-1251'?><html>"),
            "WINDOWS-1251");
  EXPECT_EQ(html_body_declared_encoding("<!-- <meta charset=koi8-r> --><meta charset=gbk>"), "GBK");
  EXPECT_EQ(html_body_declared_encoding("<meta charset=utf-16>"), "UTF-8");
  EXPECT_EQ(html_body_declared_encoding(std::string(5000, ' ') + "<meta charset=gbk>"), "");
  // BOM, then Content-Type, then <meta>, then UTF-8.
  EXPECT_EQ(html_to_unicode("text/html; charset=latin1", "\xEF\xBB\xBF<p>\xC3\xA9").encoding,
            "UTF-8");
  EXPECT_EQ(html_to_unicode("text/html; charset=latin1", "<meta charset=utf-8><p>\xE9").text,
            "<meta charset=utf-8><p>\xC3\xA9");
  EXPECT_EQ(html_to_unicode("", "<meta charset=latin-1><p>\xE9").text,
            "<meta charset=latin-1><p>\xC3\xA9");
  EXPECT_EQ(html_to_unicode("", "<p>\xE9t\xC3\xA9").text, "<p>\xEF\xBF\xBDt\xC3\xA9");
  DecodedHtml le = html_to_unicode("", std::string("\xFF\xFE<\0p\0>\0\xE9\0", 10));
  EXPECT_EQ(le.encoding, "UTF-16LE");
  EXPECT_EQ(le.text, "<p>\xC3\xA9");
}

TEST(Encoding, PagesInOtherEncodingsParseToUtf8) {
  // Latin-1 declared by <meta>; the 0x80-0x9F bytes read as windows-1252 (WHATWG).
  Selector latin("<html><head><meta charset=\"iso-8859-1\"></head><body><p>caf\xE9 \x80</p>");
  EXPECT_EQ(latin.css("p::text").get(), "caf\xC3\xA9 \xE2\x82\xAC");
  EXPECT_EQ(latin.encoding(), "WINDOWS-1252");
  // The same bytes with a Content-Type charset.
  Selector::Options o;
  o.content_type = "text/html; charset=latin1";
  EXPECT_EQ(Selector("<p>caf\xE9</p>", o).css("p::text").get(), "caf\xC3\xA9");
  // UTF-8 with a BOM.
  EXPECT_EQ(Selector("\xEF\xBB\xBF<p>\xE2\x9C\x93</p>").css("p::text").get(), "\xE2\x9C\x93");
  // Shift_JIS: "日本語" is 93 FA 96 7B 8C EA.
  Selector sjis(
      "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\">"
      "<p>\x93\xFA\x96\x7B\x8C\xEA</p>");
  EXPECT_EQ(sjis.css("p::text").get(), "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");
  // A broken Shift_JIS byte pair does not stop the page.
  Selector broken("<meta charset=shift_jis><p>\x93\xFA\x81</p><p>after</p>");
  EXPECT_EQ(broken.css("p::text").getall().back(), "after");
  // A forced encoding wins over the page's.
  Selector::Options forced;
  forced.encoding = "cp1251";
  EXPECT_EQ(Selector("<meta charset=utf-8><p>\xC4\xE0</p>", forced).css("p::text").get(),
            "\xD0\x94\xD0\xB0");
  // Broken UTF-8 is replaced byte by byte, never re-read as latin-1.
  EXPECT_EQ(Selector("<p>\xC3\xA9\xFF\xC3\xA9</p>").css("p::text").get(),
            "\xC3\xA9\xEF\xBF\xBD\xC3\xA9");
  // The page's own <meta> is not re-applied by libxml2 to text already decoded.
  EXPECT_EQ(Selector("<meta charset=iso-8859-1><p>\xC3\xA9</p>", Selector::Options{"", "", "utf-8"})
                .css("p::text")
                .get(),
            "\xC3\xA9");
}

// ---- links -------------------------------------------------------------------------------------

TEST(ExtractLinks, ScrapyDefaults) {
  const char* html = R"html(<html><head><base href="/base/"></head><body>
    <a href="page1.html#section">Page   one</a>
    <a href=" page1.html ">dup</a>
    <a href="/abs?b=2&a=1">abs</a>
    <a href="/abs?a=1&b=2">same canonical</a>
    <a href="mailto:me@example.com">mail</a>
    <a href="javascript:void(0)">js</a>
    <a href="tel:123">tel</a>
    <a href="//cdn.example.net/x">scheme-relative</a>
    <a href="photo.JPG">image</a>
    <a href="report.pdf?x=1">pdf</a>
    <a href="archive.tar.gz">tgz</a>
    <a href="http://[bad">bad</a>
    <a>no href</a>
    <a href="https://other.example/p" rel="external NoFollow">ext <b>bold</b></a>
    <map><area href="/area" alt="area"></map>
    <link href="/style">
    <div id="nav"><a href="/nav1">n1</a><a href="/nav2">n2</a></div>
  </body></html>)html";
  std::vector<Link> links = extract_links(html, "http://example.com/dir/index.html");
  std::vector<std::string> urls;
  for (const auto& l : links) urls.push_back(l.url);
  EXPECT_THAT(urls, ElementsAre("http://example.com/base/page1.html",
                                "http://example.com/abs?b=2&a=1", "http://cdn.example.net/x",
                                "https://other.example/p", "http://example.com/area",
                                "http://example.com/nav1", "http://example.com/nav2"));
  EXPECT_EQ(links[0].text, "Page one");
  EXPECT_FALSE(links[0].nofollow);
  EXPECT_EQ(links[3].text, "ext bold");
  EXPECT_TRUE(links[3].nofollow);

  LinkExtractorOptions only_nav;
  only_nav.restrict_css = "#nav";
  Selector s(html, Selector::Options{"http://example.com/", "", ""});
  EXPECT_EQ(extract_links(s, only_nav).size(), 2U);
  LinkExtractorOptions xp;
  xp.restrict_xpath = "//a[@rel]";
  ASSERT_EQ(extract_links(s, xp).size(), 1U);
  EXPECT_EQ(extract_links(s, xp)[0].url, "https://other.example/p");

  LinkExtractorOptions all;
  all.unique = false;
  all.deny_extensions.clear();
  all.tags = {"a"};
  all.canonicalize = true;
  std::vector<Link> every = extract_links(s, all);
  EXPECT_EQ(every.size(), 11U);
  EXPECT_EQ(every[2].url, "http://example.com/abs?a=1&b=2");

  LinkExtractorOptions bad;
  bad.restrict_css = "a[";
  EXPECT_THROW((void)extract_links(s, bad), ValueError);
  EXPECT_TRUE(extract_links("<a href='/rel'>x</a>", "").empty());  // nothing to resolve against
  EXPECT_EQ(extract_links("<a href='http://abs.example/'>x</a>", "").size(), 1U);
}

// ---- threads -----------------------------------------------------------------------------------

TEST(SelectorThreads, FourThreadsParseDifferentPagesAtOnce) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 30;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &failures] {
      for (int r = 0; r < kRounds; ++r) {
        std::string html = "<html><head><meta charset=latin-1><title>T" + std::to_string(t) +
                           "</title></head><body>";
        for (int i = 0; i < 50; ++i) {
          html += "<p class=item><a href='/t" + std::to_string(t) + "/" + std::to_string(i) +
                  "'>\xE9" + std::to_string(i) + "</a></p>";
        }
        html += "<p>bad xpath next</p></body></html>";
        Selector s(html, Selector::Options{"http://example.com/", "", ""});
        bool ok = s.css("title::text").get() == "T" + std::to_string(t) &&
                  s.css("p.item a").size() == 50 && extract_links(s).size() == 50 &&
                  s.css("p.item a::text").get() ==
                      "\xC3\xA9"
                      "0";
        try {
          (void)s.xpath("//p[");
          ok = false;
        } catch (const ValueError&) {
        }
        if (!ok) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
