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

// Every query on a document shares one XPath context: what one query leaves in it (its node, a
// position inside a predicate, an error) must not reach the next.
TEST(Selector, QueriesOnOneDocumentDoNotLeakIntoEachOther) {
  Selector s = page();
  const SelectorList ps = s.css("#main p");
  ASSERT_EQ(ps.size(), 3U);
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(s.xpath("(//a)[last()]/@href").get(), "/a3") << round;
    EXPECT_EQ(s.xpath("(//a)[position() = 2]/text()").get(), "A2") << round;
    EXPECT_EQ(ps[2].xpath("./a/text()").get(), "A2") << round;  // relative to its own node
    EXPECT_EQ(s.xpath("count(//a)").get(), "3.0") << round;
    EXPECT_THROW((void)s.xpath("//a[@"), ValueError) << round;
    EXPECT_THAT(ps[1].xpath("string(.)").get().value_or(""), HasSubstr("A1")) << round;
    EXPECT_EQ(s.xpath("body").size(), 1U) << round;  // relative to <html> again
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

// ---- scan_links: the same links as the tree, without one ---------------------------------------

// Printable(links): url | text | nofollow per link, for readable mismatch reports.
std::vector<std::string> printable(const std::vector<Link>& links) {
  std::vector<std::string> out;
  for (const Link& l : links) {
    std::string line = l.url;
    line.append(" | ").append(l.text);
    if (l.nofollow) line.append(" | nf");
    out.push_back(std::move(line));
  }
  return out;
}

std::vector<LinkExtractorOptions> scan_option_sets() {
  LinkExtractorOptions every;  // every value of more tags and attributes, no filtering
  every.unique = false;
  every.deny_extensions.clear();
  every.tags = {"a", "area", "link", "img", "base", "script"};
  every.attrs = {"href", "src", "rel"};
  LinkExtractorOptions canonical;
  canonical.canonicalize = true;
  return {LinkExtractorOptions{}, every, canonical};
}

void expect_scan_matches_tree(std::string_view html, const Selector::Options& page) {
  for (const LinkExtractorOptions& options : scan_option_sets()) {
    std::vector<std::string> tree = printable(extract_links(Selector(html, page), options));
    std::vector<std::string> scanned = printable(scan_links(html, page, options));
    EXPECT_EQ(scanned, tree) << "page: " << testing::PrintToString(std::string(html))
                             << " tags: " << options.tags.size();
  }
}

TEST(ScanLinks, SameLinksTextsAndOrderAsTheTreeOnEdgeCases) {
  const std::vector<std::string> pages = {
      "",
      "   \n ",
      "<a href='/a'>A</a>",
      "<A HREF='/upper' REL='NOFOLLOW'>Upper</A>",
      "<a href='/x'>x<br> <span>y</span></a><a href='/y'><img src=i.png> <b>y</b> </a>",
      "<a href='/w'><div>x</div> <div>y</div></a><a "
      "href='/v'>a<p>b</p>\n<table><td>c</td></table></a>",
      "<a href='/outer'>outer <a href='/inner'>inner</a> tail</a>",
      "<a href='/before'>before base</a><base href='http://other.example/dir/'><a href='rel'>r</a>",
      "<head><base target=_blank><base href='/b2/'></head><a href='x'>x</a>",
      "<base href='http://[broken'><a href='y'>y</a>",
      "<a href>self</a><a href=''>empty</a><a href='  /spaced  '>sp</a>",
      "<a href='/s'>a<script>var s = '<a href=/in-script>';</script>b<style>p{}</style>c</a>",
      "<a href='/c'>a<!-- comment <a href=/in-comment> -->b</a>",
      "<a href='/e?a=1&amp;b=2&#38;c=3'>&lt;tag&gt; &amp; &#x263A; &nbsp;</a>",
      "<a href='/dup' href='/dup2'>dup</a>",
      "<a href='/unclosed'>never closed <b>bold",
      "<title><a href='/in-title'>t</a></title><head><a href='/in-head'>h</a></head>",
      "<table><tr><a href='/in-table'>t</a><td><a href='/in-td'>d</a></td></tr></table>",
      "<map><area href='/area' alt=x></map><link href='/link' rel=stylesheet>",
      "<a href='/r1' rel='external nofollow'>1</a><a href='/r2' rel='nofollowed'>2</a>"
      "<a href='/r3' rel=' NoFollow '>3</a>",
      "<a href='mailto:x@y'>m</a><a href='javascript:1'>j</a><a href='//cdn.example/x#frag'>c</a>",
      "<a href='/p.pdf'>pdf</a><a href='/q.JPG?x'>jpg</a><a href='/dir.v2/page'>dot dir</a>",
      "<html><body><a href='/1'>1</a></body></html><a href='/after-html'>after</a>",
      "<p><a href='/nul'>a\0b</a></p>",
      "<a href='/latin'>caf\xE9 \xFF\xFE</a>",  // invalid UTF-8
      "\xEF\xBB\xBF<a href='/bom'>bom</a>",
      "<meta charset='windows-1252'><a href='/w\xE9'>caf\xE9</a>",
      "<svg><a href='/svg'>s</a></svg><math><a xlink:href='/math'>m</a></math>",
      "<a href='/&#0;&#xD800;'>bad refs &#0; &#xD800; &#99999999;</a>",
      "<<a href='/lt'>>x</a><a href=\"/q'uote\">q</a><a href=/bare>b</a>",
      "<textarea><a href='/in-textarea'>t</a></textarea><xmp><a href='/xmp'>x</a></xmp>",
      "<a href='/nested'><span>one<span>two</span></span> three</a>",
  };
  const std::vector<Selector::Options> origins = {
      Selector::Options{"http://example.com/dir/page.html", "", ""},
      Selector::Options{"https://example.com/", "text/html; charset=ISO-8859-1", ""},
      Selector::Options{"http://example.com/", "", "UTF-8"},
      Selector::Options{"", "", ""},
  };
  for (const std::string& html : pages) {
    for (const Selector::Options& page : origins) expect_scan_matches_tree(html, page);
  }
  // The scan reads the page in place when it is valid UTF-8 and decodes it otherwise; both give
  // what the tree gives (checked above); spot-check the values themselves.
  Selector::Options page{"http://example.com/d/", "", ""};
  std::vector<Link> links = scan_links(
      "<a href='/x'>x<br> <span>y</span></a><base href='/b/'><a href='z#f' rel=nofollow>z</a>",
      page);
  ASSERT_EQ(links.size(), 2U);
  EXPECT_EQ(links[0].url, "http://example.com/x");
  EXPECT_EQ(links[1].url, "http://example.com/b/z");
  EXPECT_TRUE(links[1].nofollow);
  std::vector<Link> latin =
      scan_links("<a href='/caf\xE9'>caf\xE9</a>",
                 Selector::Options{"http://e.x/", "text/html; charset=latin1", ""});
  ASSERT_EQ(latin.size(), 1U);
  EXPECT_EQ(latin[0].url, "http://e.x/caf%C3%A9");
  EXPECT_EQ(latin[0].text, "caf\xC3\xA9");
}

// random_markup(rng): tag soup from a small alphabet — links, nesting, void and raw-text elements,
// base elements, comments, entities, whitespace runs and invalid bytes.
std::string random_markup(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {"<a href='/p{}'>",
                                                  "<a href=\"q{}#f\" rel='nofollow'>",
                                                  "</a>",
                                                  "<a>",
                                                  "<area href='/ar{}'>",
                                                  "<div>",
                                                  "</div>",
                                                  "<p>",
                                                  "</p>",
                                                  "<b>",
                                                  "</b>",
                                                  "<span>",
                                                  "</span>",
                                                  "<br>",
                                                  "<img src=x>",
                                                  "<table>",
                                                  "<td>",
                                                  "</table>",
                                                  "<ul><li>",
                                                  "</li>",
                                                  "<base href='/base{}/'>",
                                                  "<base>",
                                                  "<script>if (a<b) x='<a href=/s>';</script>",
                                                  "<style>a{}</style>",
                                                  "<!-- c <a href=/c> -->",
                                                  "<title>",
                                                  "</title>",
                                                  "<head>",
                                                  "<body>",
                                                  "</body>",
                                                  "<html>",
                                                  "</html>",
                                                  "&amp;",
                                                  "&#x41;",
                                                  "&bogus;",
                                                  " ",
                                                  "  \n\t ",
                                                  "text",
                                                  "w{}",
                                                  "\xC3\xA9",
                                                  "\xE9",
                                                  "\xFF",
                                                  std::string("\0", 1),
                                                  "<",
                                                  ">",
                                                  "<a href='http://other{}.example/x'>",
                                                  "<link href='/l{}'>",
                                                  "<select><option>",
                                                  "<textarea>t</textarea>",
                                                  "<form>",
                                                  "</form>",
                                                  "<h1>",
                                                  "</h1>",
                                                  "<pre>",
                                                  "</pre>"};
  std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<int> count(1, 60);
  std::uniform_int_distribution<int> number(0, 9);
  std::string html;
  for (int i = count(rng); i > 0; --i) {
    std::string piece = pieces[pick(rng)];
    if (std::size_t at = piece.find("{}"); at != std::string::npos) {
      piece.replace(at, 2, std::to_string(number(rng)));
    }
    html += piece;
  }
  return html;
}

TEST(ScanLinks, SameLinksAsTheTreeOnRandomTagSoup) {
  std::mt19937 rng(20261205);  // 160,000 pages of other seeds matched too
  const Selector::Options page{"http://example.com/dir/page", "", ""};
  for (int i = 0; i < 3000; ++i) {
    std::string html = random_markup(rng);
    expect_scan_matches_tree(html, page);
    if (HasFailure()) break;  // one page's report is enough
  }
}

TEST(ScanLinks, RestrictOptionsParseATreeAndBadInputIsReported) {
  const std::string html = "<div id=nav><a href='/n1'>1</a></div><a href='/out'>o</a>";
  LinkExtractorOptions nav;
  nav.restrict_css = "#nav";
  const Selector::Options page{"http://example.com/", "", ""};
  EXPECT_THAT(printable(scan_links(html, page, nav)), ElementsAre("http://example.com/n1 | 1"));
  nav.restrict_css = "a[";
  EXPECT_THROW((void)scan_links(html, page, nav), ValueError);
  // Binary garbage scans without crashing, as it parses.
  std::mt19937 rng(7);
  std::string garbage(20000, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  expect_scan_matches_tree(garbage, page);
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
