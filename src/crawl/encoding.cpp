// Page text decoding (include/concur/crawl/selector.hpp): the encoding from a BOM, the HTTP
// Content-Type, the page's declaration or UTF-8 — and the bytes to valid UTF-8 through iconv,
// undecodable bytes replaced by U+FFFD, so libxml2 only ever sees valid UTF-8.
#include <iconv.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "concur/crawl/selector.hpp"
#include "internal.hpp"

namespace concur::crawl {

namespace {

constexpr std::size_t kDeclarationScan = 4096;  // bytes searched for <meta charset> (as w3lib)
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

std::string lower_trim(std::string_view s) {
  while (!s.empty() && (is_space(s.front()) || s.front() == '"' || s.front() == '\'')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (is_space(s.back()) || s.back() == '"' || s.back() == '\'')) {
    s.remove_suffix(1);
  }
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (ascii_lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

std::size_t ifind(std::string_view s, std::string_view needle, std::size_t from = 0) noexcept {
  for (std::size_t i = from; i + needle.size() <= s.size(); ++i) {
    if (istarts_with(s.substr(i), needle)) return i;
  }
  return std::string_view::npos;
}

bool iconv_knows(const std::string& name) {
  iconv_t cd = iconv_open("UTF-8", name.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  iconv_close(cd);
  return true;
}

// resolve_label(label): the iconv name for an encoding label (WHATWG's mapping of the common
// ones), or "" if iconv does not know it.
std::string resolve_label(std::string_view label) {
  std::string l = lower_trim(label);
  if (l.empty() || l.size() > 40) return "";
  if (l == "utf-8" || l == "utf8" || l == "unicode-1-1-utf-8") return "UTF-8";
  if (l == "iso-8859-1" || l == "iso8859-1" || l == "iso_8859-1" || l == "latin1" ||
      l == "latin-1" || l == "l1" || l == "ascii" || l == "us-ascii" || l == "windows-1252" ||
      l == "cp1252" || l == "x-cp1252" || l == "cp819" || l == "ibm819") {
    return "WINDOWS-1252";
  }
  if (l == "iso-8859-9" || l == "latin5" || l == "windows-1254" || l == "cp1254") {
    return "WINDOWS-1254";
  }
  if (l == "shift_jis" || l == "shift-jis" || l == "sjis" || l == "x-sjis" || l == "ms_kanji" ||
      l == "csshiftjis" || l == "windows-31j" || l == "ms932" || l == "cp932") {
    return "CP932";
  }
  if (l == "gb2312" || l == "gbk" || l == "x-gbk" || l == "chinese" || l == "csgb2312" ||
      l == "gb_2312-80") {
    return "GBK";
  }
  if (l == "euc-kr" || l == "ks_c_5601-1987" || l == "windows-949" || l == "cp949") return "CP949";
  if (l == "tis-620" || l == "iso-8859-11" || l == "windows-874") return "CP874";
  if (l == "big5" || l == "big5-hkscs" || l == "x-x-big5") return "BIG5-HKSCS";
  if (l == "utf-16" || l == "utf-16le") return "UTF-16LE";
  if (l == "utf-16be") return "UTF-16BE";
  std::string upper;
  for (char c : l) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
          c == ':')) {
      return "";
    }
    upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  return iconv_knows(upper) ? upper : "";
}

// charset_param(s): the value after "charset=" in a Content-Type-like string, or "".
std::string_view charset_param(std::string_view s) {
  std::size_t pos = 0;
  while ((pos = ifind(s, "charset", pos)) != std::string_view::npos) {
    std::size_t i = pos + 7;
    while (i < s.size() && is_space(s[i])) ++i;
    if (i < s.size() && s[i] == '=') {
      ++i;
      while (i < s.size() && is_space(s[i])) ++i;
      char quote = 0;
      if (i < s.size() && (s[i] == '"' || s[i] == '\'')) quote = s[i++];
      std::size_t b = i;
      while (i < s.size() && s[i] != quote && s[i] != ';' && !is_space(s[i]) &&
             (quote != 0 || (s[i] != '"' && s[i] != '\''))) {
        ++i;
      }
      return s.substr(b, i - b);
    }
    pos += 7;
  }
  return {};
}

// The attributes of one tag, from just after its name to '>'.
struct MetaAttrs {
  std::string charset;
  std::string http_equiv;
  std::string content;
};

std::size_t parse_meta_attrs(std::string_view s, std::size_t i, MetaAttrs& m) {
  while (i < s.size() && s[i] != '>') {
    if (is_space(s[i]) || s[i] == '/') {
      ++i;
      continue;
    }
    std::size_t nb = i;
    while (i < s.size() && !is_space(s[i]) && s[i] != '=' && s[i] != '>' && s[i] != '/') ++i;
    std::string name = lower_trim(s.substr(nb, i - nb));
    while (i < s.size() && is_space(s[i])) ++i;
    std::string_view value;
    if (i < s.size() && s[i] == '=') {
      ++i;
      while (i < s.size() && is_space(s[i])) ++i;
      if (i < s.size() && (s[i] == '"' || s[i] == '\'')) {
        char q = s[i++];
        std::size_t vb = i;
        while (i < s.size() && s[i] != q) ++i;
        value = s.substr(vb, i - vb);
        if (i < s.size()) ++i;
      } else {
        std::size_t vb = i;
        while (i < s.size() && !is_space(s[i]) && s[i] != '>') ++i;
        value = s.substr(vb, i - vb);
      }
    }
    if (name == "charset") m.charset = std::string(value);
    if (name == "http-equiv") m.http_equiv = lower_trim(value);
    if (name == "content") m.content = std::string(value);
    if (name.empty() && i < s.size() && s[i] != '>') ++i;  // never stall
  }
  return i;
}

// append_utf8_sanitized(out, s, replace_nul): s with invalid UTF-8 sequences (and NUL, unless
// replace_nul is false) replaced by U+FFFD.
void append_utf8_sanitized(std::string& out, std::string_view s, bool replace_nul = true) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if ((c != 0 || !replace_nul) && c < 0x80) {
      std::size_t run = i;
      while (run < n && (p[run] != 0 || !replace_nul) && p[run] < 0x80) ++run;
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t min = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      min = 0x80;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      min = 0x800;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      min = 0x10000;
      cp = c & 0x07u;
    }
    bool ok = len != 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (p[i + k] & 0x3Fu);
      }
    }
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += kReplacement;
      ++i;
    }
  }
}

// transcode(encoding, s): s from `encoding` to UTF-8 by iconv; undecodable bytes -> U+FFFD.
std::string transcode(const std::string& encoding, std::string_view s) {
  std::string out;
  if (encoding == "UTF-8") {
    out.reserve(s.size());
    append_utf8_sanitized(out, s);
    return out;
  }
  iconv_t cd = iconv_open("UTF-8", encoding.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) {
    out.reserve(s.size());
    append_utf8_sanitized(out, s);
    return out;
  }
  std::string converted;
  converted.resize(s.size() * 2 + 16);
  std::size_t used = 0;
  char* in = const_cast<char*>(s.data());  // iconv's interface; the input is not written
  std::size_t in_left = s.size();
  while (in_left > 0) {
    char* dst = converted.data() + used;
    std::size_t dst_left = converted.size() - used;
    std::size_t rc = iconv(cd, &in, &in_left, &dst, &dst_left);
    used = converted.size() - dst_left;
    if (rc != static_cast<std::size_t>(-1)) continue;
    if (errno == E2BIG) {
      converted.resize(converted.size() * 2);
    } else {  // EILSEQ or EINVAL (a truncated sequence at the end): one byte is replaced
      if (converted.size() - used < kReplacement.size()) converted.resize(converted.size() * 2);
      converted.replace(used, kReplacement.size(), kReplacement);
      used += kReplacement.size();
      ++in;
      --in_left;
      iconv(cd, nullptr, nullptr, nullptr, nullptr);  // reset the shift state
    }
  }
  iconv_close(cd);
  converted.resize(used);
  out.reserve(converted.size());
  append_utf8_sanitized(out, converted);  // iconv's output is valid; this replaces NULs
  return out;
}

}  // namespace

std::string http_content_type_encoding(std::string_view content_type) {
  std::string_view label = charset_param(content_type);
  return label.empty() ? std::string() : resolve_label(label);
}

std::string html_body_declared_encoding(std::string_view body) {
  std::string_view s = body.substr(0, kDeclarationScan);
  std::size_t i = 0;
  if (istarts_with(s, "<?xml")) {
    std::size_t end = s.find("?>");
    std::string_view decl = s.substr(0, end);
    std::size_t e = ifind(decl, "encoding");
    if (e != std::string_view::npos) {
      std::size_t q = decl.find_first_of("\"'", e);
      if (q != std::string_view::npos) {
        std::size_t q2 = decl.find(decl[q], q + 1);
        if (q2 != std::string_view::npos) {
          std::string enc = resolve_label(decl.substr(q + 1, q2 - q - 1));
          if (!enc.empty()) return enc.starts_with("UTF-16") ? "UTF-8" : enc;
        }
      }
    }
  }
  while ((i = s.find('<', i)) != std::string_view::npos) {
    if (s.compare(i, 4, "<!--") == 0) {
      std::size_t end = s.find("-->", i + 4);
      if (end == std::string_view::npos) break;
      i = end + 3;
      continue;
    }
    if (istarts_with(s.substr(i), "<meta") && i + 5 < s.size() &&
        (is_space(s[i + 5]) || s[i + 5] == '/')) {
      MetaAttrs m;
      i = parse_meta_attrs(s, i + 5, m);
      std::string_view label;
      if (!m.charset.empty()) {
        label = m.charset;
      } else if (m.http_equiv == "content-type") {
        label = charset_param(m.content);
      }
      if (!label.empty()) {
        std::string enc = resolve_label(label);
        if (!enc.empty()) return enc.starts_with("UTF-16") ? "UTF-8" : enc;
      }
      continue;
    }
    ++i;
  }
  return "";
}

namespace {

// choose_encoding(content_type, body): html_to_unicode's choice, with `body` left past a BOM.
std::string choose_encoding(std::string_view content_type, std::string_view& body) {
  std::string encoding;
  if (body.starts_with("\xEF\xBB\xBF")) {
    encoding = "UTF-8";
    body.remove_prefix(3);
  } else if (body.starts_with("\xFE\xFF")) {
    encoding = "UTF-16BE";
    body.remove_prefix(2);
  } else if (body.starts_with("\xFF\xFE")) {
    encoding = "UTF-16LE";
    body.remove_prefix(2);
  }
  if (encoding.empty()) encoding = http_content_type_encoding(content_type);
  if (encoding.empty()) encoding = html_body_declared_encoding(body);
  if (encoding.empty()) encoding = "UTF-8";
  return encoding;
}

}  // namespace

DecodedHtml html_to_unicode(std::string_view content_type, std::string_view body) {
  DecodedHtml r;
  r.encoding = choose_encoding(content_type, body);
  r.text = transcode(r.encoding, body);
  return r;
}

namespace detail {

bool is_clean_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // Eight ASCII bytes at a time: no high bit set and no zero byte.
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
    constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
    while (i + 8 <= n) {
      std::uint64_t v = 0;
      std::memcpy(&v, p + i, 8);
      if (((v | ((v - kOnes) & ~v)) & kHighs) != 0) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char c = p[i];
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    // Overlong forms, surrogates and code points past U+10FFFF (the second byte's range).
    unsigned char c1 = p[i + 1];
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 > 0x8F)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string_view decode_html(std::string_view content_type, std::string_view body,
                             std::string_view forced, std::string& encoding, std::string& storage) {
  if (!forced.empty()) {
    encoding = std::string(forced);
  } else {
    encoding = choose_encoding(content_type, body);
  }
  if (encoding == "UTF-8" && is_clean_utf8(body)) return body;
  storage = transcode(encoding, body);
  return storage;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string resolve_encoding_label(std::string_view label) { return resolve_label(label); }

std::string transcode_to_utf8(const std::string& encoding, std::string_view bytes) {
  return transcode(encoding, bytes);
}

void append_valid_utf8(std::string& out, std::string_view s) {
  append_utf8_sanitized(out, s, /*replace_nul=*/false);
}

}  // namespace detail

}  // namespace concur::crawl
