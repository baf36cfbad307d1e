// concur/crawl/url.hpp — URLs for the crawler, after Python's urllib.parse and Scrapy's w3lib:
// urljoin (RFC 3986 §5 resolution), urlsplit, canonicalize_url (the dedupe key), safe_url_string
// (escaping of what a page's href may hold), host / origin helpers for download slots and
// robots.txt, url_is_from_any_domain (allowed_domains) and request_fingerprint (Scrapy's
// fingerprint recipe, SHA-1 in hex).
//
// Parsing is Boost.URL 1.81's (RFC 3986 grammar); resolution, canonicalization and the escaping
// rules are concur's (docs/internals/crawl-parse.md lists them, with each difference from w3lib).
// Every function first runs safe_url_string(), so a URL with spaces, non-ASCII characters or a
// stray '%' is escaped, not rejected; what still is no URL (no scheme where one is needed, a bad
// port, http(s) without a host) throws ValueError naming the URL (cut to 200 bytes). Any length is
// handled (linear time); URLLENGTH_LIMIT-style caps are the caller's.
// Thread-safety: pure functions on values; call them from any thread.
#pragma once

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace concur::crawl {

// safe_url_string(url) makes `url` parseable without changing what it means, as w3lib's
// safe_url_string: leading and trailing spaces and C0 controls are stripped, tabs and newlines
// removed (WHATWG), and percent-encoded as UTF-8 %XX (uppercase): bytes >= 0x80, controls, space,
// the characters "<>\^`{}| outside the host, '[' and ']' outside the host, a '#' after the first,
// and a '%' not followed by two hex digits (as %25). Existing %XX escapes are kept as written.
// Never throws.
[[nodiscard]] std::string safe_url_string(std::string_view url);

// SplitResult: the parts of a URL as urllib.parse.urlsplit names them, each still
// percent-encoded as safe_url_string() left it. has_* tell an empty part from a missing one
// ("http://h/?" has an empty query).
struct SplitResult {
  std::string scheme;       // lowercased
  std::string netloc;       // userinfo@host:port as written (IPv6 hosts keep their brackets)
  std::string hostname;     // lowercased; IPv6 without brackets; empty when there is no host
  std::optional<int> port;  // the explicit port, if any (0..65535)
  std::string path;
  std::string query;
  std::string fragment;
  bool has_netloc = false;
  bool has_query = false;
  bool has_fragment = false;
};

// urlsplit(url) parses an absolute URL (one with a scheme) into its parts. Throws ValueError for
// a string without a scheme, one that is not a URI after safe_url_string(), or a port > 65535.
[[nodiscard]] SplitResult urlsplit(std::string_view url);

// urljoin(base, ref) resolves `ref` (an href as found in a page: relative, absolute,
// scheme-relative "//host/x", query-only "?q", fragment-only "#f") against the absolute `base` by
// RFC 3986 §5.2, dot segments removed, as urllib.parse.urljoin does for http(s): an empty ref
// gives `base` without its fragment, and "http:g" against an http base is the relative "g"
// (RFC 3986 §5.4.2's backward-compatible reading, Python's). Throws ValueError if `base` is not an
// absolute URL or `ref` is not a URI reference (after safe_url_string on both).
[[nodiscard]] std::string urljoin(std::string_view base, std::string_view ref);

// canonicalize_url(url, keep_fragments) is the URL's canonical form, the key crawlers dedupe on,
// with w3lib's canonicalize_url rules: scheme and host lowercased; the scheme's default port
// dropped (w3lib keeps it); the path's %XX escapes of characters that need none decoded (%7E ->
// ~, %41 -> A) and the rest uppercased, %2F %3F %25 kept escaped, dot segments removed (w3lib
// keeps them), empty path -> "/"; the query split on '&' and ';', '+' read as a space, arguments
// sorted by key then value (bytes), blank values kept ("a" -> "a="), re-encoded as
// application/x-www-form-urlencoded (space -> '+', only A-Za-z0-9 _.-~ left unescaped), an empty
// query dropped; the fragment dropped unless keep_fragments. Idempotent. Throws ValueError as
// urlsplit(), and for an http(s) URL without a host.
[[nodiscard]] std::string canonicalize_url(std::string_view url, bool keep_fragments = false);

// url_host(url) is the lowercased host (IPv6 without brackets, no port): the download slot key,
// Scrapy's urlparse(url).hostname. Throws ValueError as urlsplit().
[[nodiscard]] std::string url_host(std::string_view url);

// url_port(url) is the port a request to `url` uses: the explicit one, else the scheme's default
// (http 80, https 443, ftp 21, ws 80, wss 443), else 0. Throws ValueError as urlsplit().
[[nodiscard]] int url_port(std::string_view url);

// url_origin(url) is "scheme://host[:port]" lowercased, the default port omitted: the key of a
// site's robots.txt (RFC 9309 §2.3: one robots.txt per scheme, host and port). Throws ValueError
// as urlsplit(), and for a URL without a host.
[[nodiscard]] std::string url_origin(std::string_view url);

// robots_txt_url(url) is url_origin(url) + "/robots.txt". Throws as url_origin().
[[nodiscard]] std::string robots_txt_url(std::string_view url);

// url_path_query(url) is the request target: the path ("/" if empty) and "?query" if there is a
// query — what robots.txt rules are matched against. Throws ValueError as urlsplit().
[[nodiscard]] std::string url_path_query(std::string_view url);

// url_is_from_any_domain(url, domains) is true if the URL's host equals one of `domains` or ends
// with "." + one of them, case-insensitively (w3lib's url_is_from_any_domain; Scrapy's
// allowed_domains): "sub.example.com" is from "example.com", "badexample.com" is not. A leading
// '.' on a domain is ignored. An unparseable URL or one without a host is from no domain (false,
// no throw).
[[nodiscard]] bool url_is_from_any_domain(std::string_view url,
                                          std::span<const std::string> domains);
[[nodiscard]] bool url_is_from_any_domain(std::string_view url,
                                          std::initializer_list<std::string_view> domains);
// host_is_from_any_domain(host, domains): the same test on a host already taken from a URL
// (url_host's or SplitResult::hostname's lowercased form); an empty host is from no domain.
[[nodiscard]] bool host_is_from_any_domain(std::string_view host,
                                           std::span<const std::string> domains);

// request_fingerprint(method, canonical_url, body) identifies a request for dedupe: the SHA-1, as
// 40 lowercase hex digits, of Scrapy's (2.7+) fingerprint document
//   {"body": "<body as hex>", "headers": {}, "method": "<METHOD>", "url": "<canonical_url>"}
// (JSON, keys sorted, Python's json.dumps separators), so two requests that differ only in the
// order of query arguments, a default port or a fragment share a fingerprint — and, for ASCII
// method and URL (always true of canonicalize_url's output), it equals Scrapy's
// fingerprint(request).hex() for a request without fingerprinted headers. The method is
// uppercased; `canonical_url` is used as given (pass canonicalize_url's result).
[[nodiscard]] std::string request_fingerprint(std::string_view method,
                                              std::string_view canonical_url,
                                              std::string_view body = {});

}  // namespace concur::crawl
