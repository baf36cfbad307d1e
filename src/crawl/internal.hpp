// Private helpers shared by src/crawl/ (not installed, not public).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace concur::crawl::detail {

// resolve_encoding_label(label): the iconv name for an encoding label, "" if unknown.
std::string resolve_encoding_label(std::string_view label);

// transcode_to_utf8(encoding, bytes): bytes (in `encoding`, an iconv name) as valid UTF-8,
// undecodable bytes and NULs replaced by U+FFFD.
std::string transcode_to_utf8(const std::string& encoding, std::string_view bytes);

// is_clean_utf8(s): s is valid UTF-8 without NUL bytes — what transcode_to_utf8("UTF-8", s) would
// return unchanged.
bool is_clean_utf8(std::string_view s) noexcept;

// decode_html(content_type, body, forced, encoding, storage): the page as valid UTF-8, as
// html_to_unicode (or in the `forced` iconv encoding when not empty) — a view of `body` itself when
// it is clean UTF-8 (no copy), else of `storage`, which receives the decoded text. `encoding`
// receives the encoding chosen.
std::string_view decode_html(std::string_view content_type, std::string_view body,
                             std::string_view forced, std::string& encoding, std::string& storage);

// HttpUrl / check_http_url(url): an http(s) URL's lowercased host and canonicalize_url form from
// one parse — what the crawler's scheduler needs of each request. Throws ValueError for what is no
// URL (as urlsplit), another scheme ("unsupported URL scheme 'x'") or no host ("no host").
struct HttpUrl {
  std::string host;
  std::string canonical;
};
HttpUrl check_http_url(std::string_view url);

// append_valid_utf8(out, s): s as valid UTF-8, each invalid byte replaced by U+FFFD (NULs kept);
// feed exports write item strings through it.
void append_valid_utf8(std::string& out, std::string_view s);

// is_hex(c), hex_value(c) (of a hex digit), ascii_lower(c): byte helpers of URL and robots.txt
// percent-encoding.
inline bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
inline char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// append_utf8(out, cp): code point cp as UTF-8 (U+FFFD for NUL, surrogates and values past
// U+10FFFF).
void append_utf8(std::string& out, std::uint32_t cp);

}  // namespace concur::crawl::detail
