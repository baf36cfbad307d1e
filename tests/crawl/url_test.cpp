// Tests for concur/crawl/url.hpp. Expected values: RFC 3986 §5.4 (every normal and abnormal
// example, which urllib.parse.urljoin also gives), w3lib's canonicalize_url documentation and the
// outputs of w3lib 2.1 for the same inputs (checked by hand against Debian's python3-w3lib; where
// concur deliberately differs the test says so), and Scrapy's fingerprint recipe (SHA-1 of the
// sorted-keys JSON document, values computed with Python's hashlib/json).
#include "concur/crawl/url.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"

namespace {

using concur::ValueError;
using namespace concur::crawl;
using ::testing::HasSubstr;

struct Case {
  const char* in;
  const char* out;
};

// ---- urljoin: RFC 3986 §5.4 -------------------------------------------------------------------

constexpr const char* kRfcBase = "http://a/b/c/d;p?q";

TEST(Urljoin, Rfc3986NormalExamples) {
  const Case cases[] = {
      {"g:h", "g:h"},
      {"g", "http://a/b/c/g"},
      {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},
      {"//g", "http://g"},
      {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},
      {"#s", "http://a/b/c/d;p?q#s"},
      {"g#s", "http://a/b/c/g#s"},
      {"g?y#s", "http://a/b/c/g?y#s"},
      {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y#s"},
      {"", "http://a/b/c/d;p?q"},
      {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},
      {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},
      {"../..", "http://a/"},
      {"../../", "http://a/"},
      {"../../g", "http://a/g"},
  };
  for (const auto& c : cases) EXPECT_EQ(urljoin(kRfcBase, c.in), c.out) << "ref " << c.in;
}

TEST(Urljoin, Rfc3986AbnormalExamples) {
  const Case cases[] = {
      {"../../../g", "http://a/g"},
      {"../../../../g", "http://a/g"},
      {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},
      {"g.", "http://a/b/c/g."},
      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},
      {"..g", "http://a/b/c/..g"},
      {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},
      {"g/./h", "http://a/b/c/g/h"},
      {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
      {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},
      {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g#s/./x"},
      {"g#s/../x", "http://a/b/c/g#s/../x"},
      // The backward-compatible reading, as urllib.parse.urljoin (RFC 3986 §5.4.2).
      {"http:g", "http://a/b/c/g"},
  };
  for (const auto& c : cases) EXPECT_EQ(urljoin(kRfcBase, c.in), c.out) << "ref " << c.in;
}

TEST(Urljoin, HrefsAsFoundInPages) {
  EXPECT_EQ(urljoin("https://example.com/blog/", "post-1.html"),
            "https://example.com/blog/post-1.html");
  EXPECT_EQ(urljoin("https://example.com/blog/index.html", "//cdn.example.com/x.js"),
            "https://cdn.example.com/x.js");
  EXPECT_EQ(urljoin("https://example.com", "a"), "https://example.com/a");  // empty base path
  EXPECT_EQ(urljoin("https://example.com/a/b", "  ../c d \n"), "https://example.com/c%20d");
  EXPECT_EQ(urljoin("https://example.com/", "/r\xC3\xA9sum\xC3\xA9"),
            "https://example.com/r%C3%A9sum%C3%A9");
  EXPECT_EQ(urljoin("https://example.com/a#top", ""), "https://example.com/a");  // RFC: no fragment
  EXPECT_EQ(urljoin("https://example.com/a", "mailto:me@example.com"), "mailto:me@example.com");
  EXPECT_EQ(urljoin("https://example.com/a", "HTTPS://Other.example/"), "https://Other.example/");
  EXPECT_EQ(urljoin("http://a/b", "https:g"), "https:g");  // another scheme: absolute as is
  EXPECT_EQ(urljoin("http://[::1]:8080/a/b", "c"), "http://[::1]:8080/a/c");
}

TEST(Urljoin, BadInputThrowsValueErrorNamingTheUrl) {
  EXPECT_THROW((void)urljoin("/relative/base", "g"), ValueError);
  try {
    (void)urljoin("no scheme here", "g");
    FAIL() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no scheme here"));
  }
  EXPECT_THROW((void)urljoin("http://a/", "http://[bad"), ValueError);
}

TEST(Urljoin, AlternatingBasesAndABadBaseAfterAGoodOne) {
  // urljoin keeps the last base it parsed on each thread; a different base, or a bad one, must
  // not be answered from it.
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(urljoin("http://a.example/x/y?q", "z"), "http://a.example/x/z");
    EXPECT_EQ(urljoin("http://a.example/x/y?q", "?r"), "http://a.example/x/y?r");
    EXPECT_EQ(urljoin("https://b.example:8443/p/", "../q"), "https://b.example:8443/q");
    EXPECT_THROW((void)urljoin("no scheme", "z"), ValueError);
    EXPECT_EQ(urljoin("http://a.example/x/y?q", ""), "http://a.example/x/y?q");
  }
  std::string other;
  std::thread t([&] { other = urljoin("http://t.example/dir/", "f"); });
  t.join();
  EXPECT_EQ(other, "http://t.example/dir/f");
  EXPECT_EQ(urljoin("http://a.example/x/y", "f"), "http://a.example/x/f");
}

// ---- canonicalize_url -------------------------------------------------------------------------

TEST(CanonicalizeUrl, W3libDocumentedExamples) {
  EXPECT_EQ(canonicalize_url("http://www.example.com/do?c=3&b=5&b=2&a=50"),
            "http://www.example.com/do?a=50&b=2&b=5&c=3");
  EXPECT_EQ(canonicalize_url("http://www.example.com/r\xC3\xA9sum\xC3\xA9"),
            "http://www.example.com/r%C3%A9sum%C3%A9");
}

TEST(CanonicalizeUrl, SameAsW3lib) {
  const Case cases[] = {
      {"HTTP://WWW.EXAMPLE.COM/Path", "http://www.example.com/Path"},
      {"http://www.example.com/do?a=1&a=2&b=", "http://www.example.com/do?a=1&a=2&b="},
      {"http://www.example.com/do?b&a", "http://www.example.com/do?a=&b="},
      {"http://www.example.com/do?q=a+b&q=a%20b", "http://www.example.com/do?q=a+b&q=a+b"},
      {"http://www.example.com/do?q=a%2fb", "http://www.example.com/do?q=a%2Fb"},
      {"http://www.example.com/a%7Eb%2fc%3f%41", "http://www.example.com/a~b%2Fc%3FA"},
      {"http://www.example.com/do?q=%e9", "http://www.example.com/do?q=%E9"},
      {"http://www.example.com/do?", "http://www.example.com/do"},
      {"http://www.example.com", "http://www.example.com/"},
      {"http://www.example.com/do#frag", "http://www.example.com/do"},
      {"http://www.example.com/a b?c d=e f", "http://www.example.com/a%20b?c+d=e+f"},
      {"http://www.example.com/do?a=1&&b=2;c=3", "http://www.example.com/do?a=1&b=2&c=3"},
      {"http://www.example.com/a|b", "http://www.example.com/a|b"},
      {"http://www.example.com/a%7Cb", "http://www.example.com/a|b"},
      {"http://www.example.com/a%2Ab%3Dc", "http://www.example.com/a*b=c"},
      {"http://www.example.com/do?k=\xC3\xA9", "http://www.example.com/do?k=%C3%A9"},
      {"http://www.example.com/do?c=1&B=2&a=3&A=4", "http://www.example.com/do?A=4&B=2&a=3&c=1"},
      {"http://www.example.com/path/to/%E2%82%ac", "http://www.example.com/path/to/%E2%82%AC"},
      {"http://www.example.com/a\"b<c>", "http://www.example.com/a%22b%3Cc%3E"},
      {"http://www.example.com/do?x=1/2&y=a:b", "http://www.example.com/do?x=1%2F2&y=a%3Ab"},
      {"http://www.example.com/do?a=%5B1%5D", "http://www.example.com/do?a=%5B1%5D"},
      {"http://Example.COM:8080/x", "http://example.com:8080/x"},
  };
  for (const auto& c : cases) EXPECT_EQ(canonicalize_url(c.in), c.out) << "url " << c.in;
}

TEST(CanonicalizeUrl, RepeatedCallsAndFragmentsAgree) {
  // Each thread remembers its last canonical forms: a second call, and a call keeping fragments
  // after one dropping them, must answer as the first computation did.
  const std::vector<std::string> urls = {
      "http://www.Example.com:80/a/./b/../c?b=2&a=1#frag", "https://example.com/%7Euser?x",
      "http://example.com/path with space?q=a b", "http://[::1]:8080/x?"};
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(canonicalize_url(urls[0]), "http://www.example.com/a/c?a=1&b=2");
    EXPECT_EQ(canonicalize_url(urls[0], /*keep_fragments=*/true),
              "http://www.example.com/a/c?a=1&b=2#frag");
    EXPECT_EQ(canonicalize_url(urls[1]), "https://example.com/~user?x=");
    EXPECT_EQ(canonicalize_url(urls[2]), canonicalize_url(canonicalize_url(urls[2])));
    EXPECT_EQ(canonicalize_url(urls[3]), "http://[::1]:8080/x");
    EXPECT_THROW((void)canonicalize_url("http:///no-host"), ValueError);
  }
}

TEST(CanonicalizeUrl, DeliberateDifferencesFromW3lib) {
  // The default port is dropped (w3lib keeps ":80").
  EXPECT_EQ(canonicalize_url("http://example.com:80/a"), "http://example.com/a");
  EXPECT_EQ(canonicalize_url("https://example.com:443/a"), "https://example.com/a");
  EXPECT_EQ(canonicalize_url("https://example.com:80/a"), "https://example.com:80/a");
  EXPECT_EQ(canonicalize_url("http://example.com:/a"), "http://example.com/a");
  EXPECT_EQ(canonicalize_url("http://example.com:0080/a"), "http://example.com/a");
  // %25 stays escaped (w3lib turns "/a%25b" into "/a%b", a different URL).
  EXPECT_EQ(canonicalize_url("http://example.com/a%25b"), "http://example.com/a%25b");
  // Dot segments are removed (w3lib keeps them).
  EXPECT_EQ(canonicalize_url("http://example.com/a/./b/../c"), "http://example.com/a/c");
  EXPECT_EQ(canonicalize_url("http://example.com/a/%2E%2E/c"), "http://example.com/c");
  // Userinfo keeps its case (w3lib lowercases the whole netloc).
  EXPECT_EQ(canonicalize_url("http://user:Pass@Example.COM/x"), "http://user:Pass@example.com/x");
}

TEST(CanonicalizeUrl, FragmentsKeptOnRequest) {
  EXPECT_EQ(canonicalize_url("http://www.example.com/do#frag", true),
            "http://www.example.com/do#frag");
  EXPECT_EQ(canonicalize_url("http://www.example.com/do#", true), "http://www.example.com/do");
}

TEST(CanonicalizeUrl, EquivalentUrlsMeetAndTheResultIsAFixedPoint) {
  const std::vector<std::string> same = {
      "http://Example.com:80/a%7eb?y=2&x=1#top",
      "http://example.com/a~b?x=1&y=2",
      "HTTP://EXAMPLE.COM/a%7Eb?x=1;y=2",
      "http://example.com/./a~b?y=2&x=1&",
  };
  for (const auto& u : same) EXPECT_EQ(canonicalize_url(u), "http://example.com/a~b?x=1&y=2") << u;
  const char* tricky[] = {
      "http://example.com/a%25b%2F%3F?q=%26%3D&r=a+b%2B",
      "http://example.com/\xE2\x82\xAC/[x]|y?z=\xFF\xFE",
      "http://[2001:DB8::1]:8443/a/../b",
      "http://example.com/%zz%4",
      "http://example.com/a#b#c",
  };
  for (const char* u : tricky) {
    std::string once = canonicalize_url(u);
    EXPECT_EQ(canonicalize_url(once), once) << u;
  }
  EXPECT_EQ(canonicalize_url("http://[2001:DB8::1]:8443/a/../b"), "http://[2001:db8::1]:8443/b");
  EXPECT_EQ(canonicalize_url("http://example.com/%zz%4"), "http://example.com/%25zz%254");
}

TEST(CanonicalizeUrl, ErrorsAreValueErrors) {
  EXPECT_THROW((void)canonicalize_url("www.example.com/no-scheme"), ValueError);
  EXPECT_THROW((void)canonicalize_url("http:///no-host"), ValueError);
  EXPECT_THROW((void)canonicalize_url("http:no-authority"), ValueError);
  EXPECT_THROW((void)canonicalize_url("http://example.com:99999/"), ValueError);
  EXPECT_THROW((void)canonicalize_url("http://example.com:123456789012345678901/"), ValueError);
  EXPECT_THROW((void)canonicalize_url(""), ValueError);
  EXPECT_THROW((void)canonicalize_url("http://[::1/"), ValueError);
  try {
    (void)canonicalize_url("://" + std::string(10000, 'x'));
    FAIL() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_LT(std::string(e.what()).size(), 400U) << "the message quotes a cut URL";
  }
}

TEST(CanonicalizeUrl, AbsurdInputNeverCrashes) {
  std::string longest =
      "http://example.com/" + std::string(4 << 20, 'a') + "?" + std::string(1 << 20, '&') + "z=1";
  std::string c = canonicalize_url(longest);
  EXPECT_EQ(c.size(), 19 + (4U << 20) + 4);
  // Every byte value in path, query and fragment.
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string url = "http://example.com/" + all + "?" + all + "#" + all;
  std::string once = canonicalize_url(url, true);
  EXPECT_EQ(canonicalize_url(once, true), once);
  for (char ch : once) EXPECT_TRUE(ch > 0x20 && ch < 0x7F) << static_cast<int>(ch);
  // Deep dot segments.
  std::string dots = "http://example.com";
  for (int i = 0; i < 100000; ++i) dots += "/..";
  EXPECT_EQ(canonicalize_url(dots), "http://example.com/");
}

// ---- safe_url_string, urlsplit and the host helpers -------------------------------------------

TEST(SafeUrlString, EscapesOnlyWhatIsUnsafe) {
  EXPECT_EQ(safe_url_string("http://www.example.com/a b"), "http://www.example.com/a%20b");
  EXPECT_EQ(safe_url_string("http://www.example.com/\xC3\xA9?q=\xC3\xA9#\xC3\xA9"),
            "http://www.example.com/%C3%A9?q=%C3%A9#%C3%A9");
  EXPECT_EQ(safe_url_string("  http://example.com/\n a\t "), "http://example.com/%20a");
  EXPECT_EQ(safe_url_string("http://example.com/a%zz"), "http://example.com/a%25zz");  // w3lib: %zz
  EXPECT_EQ(safe_url_string("http://example.com/%7e%41"), "http://example.com/%7e%41");
  EXPECT_EQ(safe_url_string("http://[::1]/[x]"), "http://[::1]/%5Bx%5D");
  EXPECT_EQ(safe_url_string("http://h/a#b#c"), "http://h/a#b%23c");
  EXPECT_EQ(safe_url_string(""), "");
}

TEST(Urlsplit, Parts) {
  SplitResult r = urlsplit("HTTPS://User@WWW.Example.com:8443/p/a?q=1#f");
  EXPECT_EQ(r.scheme, "https");
  EXPECT_EQ(r.netloc, "User@WWW.Example.com:8443");
  EXPECT_EQ(r.hostname, "www.example.com");
  EXPECT_EQ(r.port, 8443);
  EXPECT_EQ(r.path, "/p/a");
  EXPECT_EQ(r.query, "q=1");
  EXPECT_EQ(r.fragment, "f");
  EXPECT_TRUE(r.has_netloc && r.has_query && r.has_fragment);
  SplitResult v6 = urlsplit("http://[2001:DB8::1]/");
  EXPECT_EQ(v6.hostname, "2001:db8::1");
  EXPECT_FALSE(v6.port.has_value());
  SplitResult empty_query = urlsplit("http://h/?");
  EXPECT_TRUE(empty_query.has_query);
  EXPECT_EQ(empty_query.query, "");
  EXPECT_THROW((void)urlsplit("//no-scheme/x"), ValueError);
}

TEST(UrlHelpers, HostPortOriginRobots) {
  EXPECT_EQ(url_host("http://WWW.Example.COM:8080/x"), "www.example.com");
  EXPECT_EQ(url_port("http://example.com/x"), 80);
  EXPECT_EQ(url_port("https://example.com/x"), 443);
  EXPECT_EQ(url_port("https://example.com:8443/x"), 8443);
  EXPECT_EQ(url_port("gopher://example.com/"), 0);
  EXPECT_EQ(url_origin("HTTPS://Example.com:443/a/b?c"), "https://example.com");
  EXPECT_EQ(url_origin("http://example.com:8080/a"), "http://example.com:8080");
  EXPECT_EQ(robots_txt_url("https://example.com/deep/page.html?x=1#y"),
            "https://example.com/robots.txt");
  EXPECT_EQ(robots_txt_url("http://[::1]:8080/x"), "http://[::1]:8080/robots.txt");
  EXPECT_THROW((void)url_origin("mailto:me@example.com"), ValueError);
  EXPECT_EQ(url_path_query("http://example.com"), "/");
  EXPECT_EQ(url_path_query("http://example.com/a/b?x=1&y#frag"), "/a/b?x=1&y");
  EXPECT_EQ(url_path_query("http://example.com/a?"), "/a?");
}

TEST(UrlIsFromAnyDomain, W3libSemantics) {
  EXPECT_TRUE(url_is_from_any_domain("http://www.wheele-bin-art.co.uk/get/product/123",
                                     {"wheele-bin-art.co.uk"}));
  EXPECT_FALSE(
      url_is_from_any_domain("http://wheele-bin-art.co.uk/get/product/123", {"art.co.uk"}));
  EXPECT_TRUE(url_is_from_any_domain("http://sub.Example.COM/", {"example.com"}));
  EXPECT_TRUE(url_is_from_any_domain("http://example.com:8080/", {"EXAMPLE.com"}));
  EXPECT_FALSE(url_is_from_any_domain("http://badexample.com/", {"example.com"}));
  EXPECT_FALSE(url_is_from_any_domain("http://example.com.evil.net/", {"example.com"}));
  EXPECT_TRUE(url_is_from_any_domain("http://a.example.org/", {"example.com", ".example.org"}));
  EXPECT_FALSE(url_is_from_any_domain("not a url", {"example.com"}));
  EXPECT_FALSE(url_is_from_any_domain("mailto:x@example.com", {"example.com"}));
  EXPECT_FALSE(url_is_from_any_domain("http://example.com/", {""}));
  std::vector<std::string> domains = {"example.com", "example.net"};
  EXPECT_TRUE(url_is_from_any_domain("https://x.example.net/", domains));
  // The host-level form gives the same answers on url_host()'s result.
  EXPECT_TRUE(
      host_is_from_any_domain(url_host("http://sub.Example.COM/"), domains = {"example.com"}));
  EXPECT_FALSE(host_is_from_any_domain(url_host("http://badexample.com/"), domains));
  EXPECT_FALSE(host_is_from_any_domain(url_host("http://example.com.evil.net/"), domains));
  domains = {".EXAMPLE.org"};
  EXPECT_TRUE(host_is_from_any_domain("a.example.org", domains));
  EXPECT_FALSE(host_is_from_any_domain("", domains));
}

TEST(RequestFingerprint, ScrapyRecipe) {
  // hashlib.sha1(json.dumps({"method": ..., "url": canonicalize_url(url), "body": body.hex(),
  // "headers": {}}, sort_keys=True).encode()).hexdigest()
  std::string a = canonicalize_url("http://www.example.com/query?id=111&cat=222");
  std::string b = canonicalize_url("http://www.example.com/query?cat=222&id=111");
  EXPECT_EQ(a, b);
  EXPECT_EQ(request_fingerprint("GET", a), "8fcf173c15d0d14f77c0c9a61209caf224e90164");
  EXPECT_EQ(request_fingerprint("get", b), "8fcf173c15d0d14f77c0c9a61209caf224e90164");
  EXPECT_EQ(request_fingerprint("POST", "http://www.example.com/post", "a=1&b=2"),
            "2cb27b62d4893be650cadce84bb8d5fa9e475413");
  EXPECT_NE(request_fingerprint("POST", a), request_fingerprint("GET", a));
  EXPECT_NE(request_fingerprint("POST", a, "x"), request_fingerprint("POST", a, "y"));
  EXPECT_EQ(request_fingerprint("GET", "http://x/\"\\").size(), 40U);
}

}  // namespace
