// URLs for the crawler (include/concur/crawl/url.hpp). Boost.URL parses (RFC 3986 grammar);
// resolution (RFC 3986 §5.2) and canonicalization are written here on the parsed components,
// because Boost.URL 1.81's resolve() keeps ".." segments above the root ("../../../g" against
// "http://a/b/c/d;p?q" gives "http://a/../g", RFC 3986 §5.4.2 says "http://a/g").
#include "concur/crawl/url.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "internal.hpp"

namespace concur::crawl {

namespace {

constexpr char kHexUpper[] = "0123456789ABCDEF";
constexpr char kHexLower[] = "0123456789abcdef";
constexpr std::size_t kMessageUrlMax = 200;  // bytes of the URL quoted in an error message

using detail::ascii_lower;
using detail::hex_value;
using detail::is_hex;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
bool is_unreserved(unsigned char c) noexcept {
  return is_alpha(static_cast<char>(c)) || is_digit(static_cast<char>(c)) || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

void append_escape(std::string& out, unsigned char b) {
  out += '%';
  out += kHexUpper[b >> 4];
  out += kHexUpper[b & 0xF];
}

// A %XX escape at s[i]?
bool escape_at(std::string_view s, std::size_t i) noexcept {
  return i + 2 < s.size() && s[i] == '%' && is_hex(s[i + 1]) && is_hex(s[i + 2]);
}

unsigned char escape_value(std::string_view s, std::size_t i) noexcept {
  return static_cast<unsigned char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
}

[[noreturn]] void bad_url(std::string_view url, std::string_view why) {
  std::string shown(url.substr(0, kMessageUrlMax));
  if (url.size() > kMessageUrlMax) shown += "...";
  throw ValueError("invalid URL '" + shown + "': " + std::string(why));
}

// Parts: a parsed URI reference, every component still percent-encoded.
struct Parts {
  std::string scheme;  // empty: a relative reference
  bool has_authority = false;
  bool has_userinfo = false;
  std::string userinfo;
  std::string host;  // IP literals keep their brackets
  bool has_port = false;
  std::string port;
  std::string path;
  bool has_query = false;
  std::string query;
  bool has_fragment = false;
  std::string fragment;

  [[nodiscard]] std::string authority() const {
    std::string out;
    if (has_userinfo) {
      out += userinfo;
      out += '@';
    }
    out += host;
    if (has_port) {
      out += ':';
      out += port;
    }
    return out;
  }

  // str() recomposes the reference (RFC 3986 §5.3).
  [[nodiscard]] std::string str() const {
    std::string out;
    out.reserve(scheme.size() + host.size() + path.size() + query.size() + fragment.size() + 8);
    if (!scheme.empty()) {
      out += scheme;
      out += ':';
    }
    if (has_authority) {
      out += "//";
      out += authority();
    }
    out += path;
    if (has_query) {
      out += '?';
      out += query;
    }
    if (has_fragment) {
      out += '#';
      out += fragment;
    }
    return out;
  }
};

std::string to_std(boost::core::string_view s) { return std::string(s.data(), s.size()); }

// parse_reference(s): s (already through safe_url_string) as a URI reference, or false.
bool parse_reference(std::string_view s, Parts& p) {
  auto r = boost::urls::parse_uri_reference(boost::core::string_view(s.data(), s.size()));
  if (!r) return false;
  const boost::urls::url_view& u = *r;
  if (u.has_scheme()) p.scheme = to_std(u.scheme());
  p.has_authority = u.has_authority();
  p.has_userinfo = u.has_userinfo();
  if (p.has_userinfo) p.userinfo = to_std(u.encoded_userinfo());
  if (p.has_authority) p.host = to_std(u.encoded_host());
  p.has_port = u.has_port();
  if (p.has_port) p.port = to_std(u.port());
  p.path = to_std(u.encoded_path());
  p.has_query = u.has_query();
  if (p.has_query) p.query = to_std(u.encoded_query());
  p.has_fragment = u.has_fragment();
  if (p.has_fragment) p.fragment = to_std(u.encoded_fragment());
  return true;
}

// parse_absolute(original, safe): `safe` (safe_url_string of `original`) as an absolute URI;
// errors name `original`.
Parts parse_absolute(std::string_view original, std::string_view safe) {
  Parts p;
  if (!parse_reference(safe, p)) bad_url(original, "not a URI");
  if (p.scheme.empty()) bad_url(original, "no scheme");
  p.scheme = lower(p.scheme);
  return p;
}

int default_port(std::string_view scheme) noexcept {
  if (scheme == "http" || scheme == "ws") return 80;
  if (scheme == "https" || scheme == "wss") return 443;
  if (scheme == "ftp") return 21;
  return 0;
}

bool is_http(std::string_view scheme) noexcept { return scheme == "http" || scheme == "https"; }

// port_number(p, original): the explicit port, -1 if none (or empty, "http://h:/").
int port_number(const Parts& p, std::string_view original) {
  if (!p.has_port || p.port.empty()) return -1;
  std::size_t i = 0;
  while (i + 1 < p.port.size() && p.port[i] == '0') ++i;  // leading zeros: "080" is 80
  if (p.port.size() - i > 5) bad_url(original, "port out of range");
  int value = 0;
  for (; i < p.port.size(); ++i) value = value * 10 + (p.port[i] - '0');
  if (value > 65535) bad_url(original, "port out of range");
  return value;
}

// canonical_host(host): ASCII lowercased; escapes of unreserved characters decoded, the others
// uppercased.
std::string canonical_host(std::string_view host) {
  std::string out;
  out.reserve(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) {
    if (escape_at(host, i)) {
      unsigned char b = escape_value(host, i);
      if (is_unreserved(b)) {
        out += ascii_lower(static_cast<char>(b));
      } else {
        append_escape(out, b);
      }
      i += 2;
    } else {
      out += ascii_lower(host[i]);
    }
  }
  return out;
}

// hostname(host): canonical, without an IP literal's brackets.
std::string hostname(std::string_view host) {
  std::string h = lower(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return h;
}

// remove_dot_segments(path) (RFC 3986 §5.2.4) for a path that starts with '/': "." segments
// dropped, ".." removes the segment before it (never above the root); a trailing "." or ".."
// leaves a trailing '/'.
std::string remove_dot_segments(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::string(path);
  if (path.find("/.") == std::string_view::npos) return std::string(path);  // nothing to do
  std::vector<std::string_view> segments;
  std::size_t pos = 1;
  bool trailing = false;
  while (true) {
    std::size_t slash = path.find('/', pos);
    std::string_view seg =
        path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    bool last = slash == std::string_view::npos;
    if (seg == ".") {
      trailing = last;
    } else if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
      trailing = last;
    } else {
      segments.push_back(seg);
      trailing = false;
    }
    if (last) break;
    pos = slash + 1;
  }
  std::string out;
  out.reserve(path.size());
  for (auto seg : segments) {
    out += '/';
    out += seg;
  }
  if (trailing || out.empty()) out += '/';
  return out;
}

// The characters w3lib leaves unescaped in a canonical path: RFC 3986's reserved set without
// '#', the unreserved set, and '|'.
bool path_safe(unsigned char c) noexcept {
  if (is_unreserved(c)) return true;
  switch (c) {
    case ':':
    case '/':
    case '?':
    case '[':
    case ']':
    case '@':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case '|':
      return true;
    default:
      return false;
  }
}

// canonical_path(path): escapes of path-safe characters decoded, except '/', '?' and '%' (their
// escapes change the meaning), the others uppercased; other unsafe bytes escaped.
std::string canonical_path(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    auto c = static_cast<unsigned char>(path[i]);
    if (c == '%' && escape_at(path, i)) {
      unsigned char b = escape_value(path, i);
      if (b != '/' && b != '?' && b != '%' && path_safe(b)) {
        out += static_cast<char>(b);
      } else {
        append_escape(out, b);
      }
      i += 2;
    } else if (path_safe(c)) {
      out += static_cast<char>(c);
    } else {
      append_escape(out, c);
    }
  }
  return out;
}

// form_unquote(s): '+' as space, %XX decoded (a malformed escape is kept as written).
std::string form_unquote(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (escape_at(s, i)) {
      out += static_cast<char>(escape_value(s, i));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// form_quote(s): Python's quote_plus with safe='': A-Za-z0-9 _.-~ as is, space as '+'.
void form_quote(std::string& out, std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out += ch;
    } else if (c == ' ') {
      out += '+';
    } else {
      append_escape(out, c);
    }
  }
}

// canonical_query(query): w3lib's parse_qsl_to_bytes(keep_blank_values=True), sorted, urlencoded.
std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> args;
  std::size_t start = 0;
  while (start <= query.size()) {
    std::size_t end = query.find_first_of("&;", start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view arg = query.substr(start, end - start);
    if (!arg.empty()) {
      std::size_t eq = arg.find('=');
      if (eq == std::string_view::npos) {
        args.emplace_back(form_unquote(arg), std::string());
      } else {
        args.emplace_back(form_unquote(arg.substr(0, eq)), form_unquote(arg.substr(eq + 1)));
      }
    }
    start = end + 1;
  }
  std::sort(args.begin(), args.end());  // std::string compares bytes as unsigned, as Python
  std::string out;
  out.reserve(query.size());
  for (const auto& [key, value] : args) {
    if (!out.empty()) out += '&';
    form_quote(out, key);
    out += '=';
    form_quote(out, value);
  }
  return out;
}

// merge(base, ref_path) (RFC 3986 §5.2.3).
std::string merge(const Parts& base, std::string_view ref_path) {
  if (base.has_authority && base.path.empty()) return "/" + std::string(ref_path);
  std::size_t slash = base.path.rfind('/');
  if (slash == std::string::npos) return std::string(ref_path);
  return base.path.substr(0, slash + 1) + std::string(ref_path);
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c >= 0x7F) {  // ensure_ascii; bytes >= 0x80 one by one (see header)
          out += "\\u00";
          out += kHexLower[c >> 4];
          out += kHexLower[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

}  // namespace

namespace {

// plain_url(s): true if safe_url_string(s) == s — nothing to strip, drop or escape (the common
// case, checked in one pass without allocating).
bool plain_url(std::string_view s) noexcept {
  if (s.empty()) return true;
  if (static_cast<unsigned char>(s.front()) <= 0x20 ||
      static_cast<unsigned char>(s.back()) <= 0x20) {
    return false;
  }
  bool seen_hash = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
      case '<':
      case '>':
      case '\\':
      case '^':
      case '`':
      case '{':
      case '}':
      case '|':
      case '[':
      case ']':  // legal only in a host; the slow path decides
        return false;
      case '%':
        if (!escape_at(s, i)) return false;
        break;
      case '#':
        if (seen_hash) return false;
        seen_hash = true;
        break;
      default:
        if (c <= 0x20 || c >= 0x7F) return false;
    }
  }
  return true;
}

}  // namespace

std::string safe_url_string(std::string_view url) {
  if (plain_url(url)) return std::string(url);
  // Strip leading / trailing C0 controls and spaces, drop tabs and newlines anywhere.
  std::size_t b = 0;
  std::size_t e = url.size();
  while (b < e && static_cast<unsigned char>(url[b]) <= 0x20) ++b;
  while (e > b && static_cast<unsigned char>(url[e - 1]) <= 0x20) --e;
  std::string s;
  s.reserve(e - b);
  for (std::size_t i = b; i < e; ++i) {
    if (url[i] != '\t' && url[i] != '\n' && url[i] != '\r') s += url[i];
  }
  // The authority, where '[' and ']' (IP literals) belong: after "scheme://" up to / ? # or \.
  std::size_t auth_begin = std::string::npos;
  std::size_t auth_end = std::string::npos;
  if (!s.empty() && is_alpha(s[0])) {
    std::size_t i = 1;
    while (i < s.size() &&
           (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) {
      ++i;
    }
    if (i < s.size() && s[i] == ':' && s.compare(i + 1, 2, "//") == 0) auth_begin = i + 3;
  } else if (s.compare(0, 2, "//") == 0) {
    auth_begin = 2;
  }
  if (auth_begin != std::string::npos) {
    auth_end = s.find_first_of("/?#\\", auth_begin);
    if (auth_end == std::string::npos) auth_end = s.size();
  }
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  bool seen_hash = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    bool in_authority = auth_begin != std::string::npos && i >= auth_begin && i < auth_end;
    if (c == '%') {
      if (escape_at(s, i)) {
        out.append(s, i, 3);
        i += 2;
      } else {
        out += "%25";
      }
    } else if (c >= 0x7F || c <= 0x20 || c == '"' || c == '<' || c == '>' || c == '\\' ||
               c == '^' || c == '`' || c == '{' || c == '}' || c == '|') {
      append_escape(out, c);
    } else if ((c == '[' || c == ']') && !in_authority) {
      append_escape(out, c);
    } else if (c == '#') {
      if (seen_hash) {
        append_escape(out, c);
      } else {
        seen_hash = true;
        out += '#';
      }
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

SplitResult urlsplit(std::string_view url) {
  std::string safe = safe_url_string(url);
  Parts p = parse_absolute(url, safe);
  SplitResult r;
  r.scheme = p.scheme;
  r.has_netloc = p.has_authority;
  if (p.has_authority) {
    r.netloc = p.authority();
    r.hostname = hostname(p.host);
  }
  int port = port_number(p, url);
  if (port >= 0) r.port = port;
  r.path = std::move(p.path);
  r.has_query = p.has_query;
  r.query = std::move(p.query);
  r.has_fragment = p.has_fragment;
  r.fragment = std::move(p.fragment);
  return r;
}

std::string urljoin(std::string_view base, std::string_view ref) {
  // A page's links are all joined to one base: each thread keeps the last base parsed (a parse of
  // the base was a third of a link's resolution).
  thread_local std::string last_base;
  thread_local Parts last_parts;
  if (base != last_base || last_base.empty()) {
    std::string safe_base = safe_url_string(base);
    Parts parsed = parse_absolute(base, safe_base);  // throws before the cache changes
    last_base.clear();
    last_parts = std::move(parsed);
    last_base.assign(base);
  }
  const Parts& b = last_parts;
  Parts r;
  if (!parse_reference(safe_url_string(ref), r)) bad_url(ref, "not a URI reference");
  if (!r.scheme.empty()) {
    r.scheme = lower(r.scheme);
    // "http:g" against an http base reads as the relative "g" (RFC 3986 §5.4.2, urllib).
    if (r.scheme == b.scheme && !r.has_authority && is_http(b.scheme)) r.scheme.clear();
  }
  // RFC 3986 §5.2.2.
  Parts t;
  if (!r.scheme.empty()) {
    t = std::move(r);
    t.path = remove_dot_segments(t.path);
  } else {
    if (r.has_authority) {
      t.has_authority = true;
      t.has_userinfo = r.has_userinfo;
      t.userinfo = std::move(r.userinfo);
      t.host = std::move(r.host);
      t.has_port = r.has_port;
      t.port = std::move(r.port);
      t.path = remove_dot_segments(r.path);
      t.has_query = r.has_query;
      t.query = std::move(r.query);
    } else {
      if (r.path.empty()) {
        t.path = b.path;
        t.has_query = r.has_query || b.has_query;
        t.query = r.has_query ? std::move(r.query) : b.query;
      } else {
        t.path = remove_dot_segments(r.path.front() == '/' ? r.path : merge(b, r.path));
        t.has_query = r.has_query;
        t.query = std::move(r.query);
      }
      t.has_authority = b.has_authority;
      t.has_userinfo = b.has_userinfo;
      t.userinfo = b.userinfo;
      t.host = b.host;
      t.has_port = b.has_port;
      t.port = b.port;
    }
    t.scheme = b.scheme;
    t.has_fragment = r.has_fragment;
    t.fragment = std::move(r.fragment);
  }
  return t.str();
}

namespace {

// canonical(p, url, keep_fragments): canonicalize_url of the parsed `url`.
std::string canonical(Parts p, std::string_view url, bool keep_fragments) {
  if (is_http(p.scheme) && (!p.has_authority || p.host.empty())) bad_url(url, "no host");
  Parts c;
  c.scheme = p.scheme;
  c.has_authority = p.has_authority;
  c.has_userinfo = p.has_userinfo;
  c.userinfo = std::move(p.userinfo);
  c.host = canonical_host(p.host);
  int port = port_number(p, url);
  if (port >= 0 && port != default_port(p.scheme)) {
    c.has_port = true;
    c.port = std::to_string(port);
  }
  c.path = remove_dot_segments(canonical_path(p.path));
  if (c.has_authority && c.path.empty()) c.path = "/";
  if (p.has_query) {
    c.query = canonical_query(p.query);
    c.has_query = !c.query.empty();
  }
  if (keep_fragments && p.has_fragment && !p.fragment.empty()) {
    c.has_fragment = true;
    c.fragment = std::move(p.fragment);
  }
  return c.str();
}

}  // namespace

namespace {

// CanonicalMemo: each thread's last canonical forms of http(s) URLs with a host, by URL. A link
// extractor canonicalizes every link (for `unique`) and the crawler checks the same URLs right
// after on the same parse thread (check_http_url): the second parse is answered from here.
// Direct-mapped, kSlots entries; canonicalization is a pure function, so a hit is always right.
class CanonicalMemo {
 public:
  const detail::HttpUrl* find(std::string_view url) const noexcept {
    const Slot& s = slots_[index(url)];
    return s.used && s.url == url ? &s.value : nullptr;
  }
  void store(std::string_view url, const detail::HttpUrl& value) {
    Slot& s = slots_[index(url)];
    s.used = false;  // an exception below leaves the slot empty, never half-written
    s.url.assign(url);
    s.value = value;
    s.used = true;
  }

 private:
  static constexpr std::size_t kSlots = 64;
  struct Slot {
    bool used = false;
    std::string url;
    detail::HttpUrl value;
  };
  static std::size_t index(std::string_view url) noexcept {
    return std::hash<std::string_view>{}(url) % kSlots;
  }
  std::array<Slot, kSlots> slots_;
};

CanonicalMemo& canonical_memo() {
  thread_local CanonicalMemo memo;
  return memo;
}

}  // namespace

std::string canonicalize_url(std::string_view url, bool keep_fragments) {
  if (!keep_fragments) {
    if (const detail::HttpUrl* hit = canonical_memo().find(url)) return hit->canonical;
  }
  std::string safe = safe_url_string(url);
  Parts p = parse_absolute(url, safe);
  std::string host = p.has_authority ? hostname(p.host) : std::string();
  const bool http = is_http(p.scheme);
  std::string out = canonical(std::move(p), url, keep_fragments);
  if (!keep_fragments && http && !host.empty()) {
    canonical_memo().store(url, detail::HttpUrl{std::move(host), out});
  }
  return out;
}

namespace detail {

HttpUrl check_http_url(std::string_view url) {
  if (const HttpUrl* hit = canonical_memo().find(url)) return *hit;
  std::string safe = safe_url_string(url);
  Parts p = parse_absolute(url, safe);
  if (!is_http(p.scheme)) throw ValueError("unsupported URL scheme '" + p.scheme + "'");
  HttpUrl out;
  if (p.has_authority) out.host = hostname(p.host);
  (void)port_number(p, url);  // a bad port is no URL (as urlsplit)
  if (out.host.empty()) throw ValueError("no host");
  out.canonical = canonical(std::move(p), url, /*keep_fragments=*/false);
  canonical_memo().store(url, out);
  return out;
}

}  // namespace detail

std::string url_host(std::string_view url) { return urlsplit(url).hostname; }

int url_port(std::string_view url) {
  SplitResult r = urlsplit(url);
  return r.port ? *r.port : default_port(r.scheme);
}

std::string url_origin(std::string_view url) {
  std::string safe = safe_url_string(url);
  Parts p = parse_absolute(url, safe);
  if (!p.has_authority || p.host.empty()) bad_url(url, "no host");
  std::string out = p.scheme + "://" + canonical_host(p.host);
  int port = port_number(p, url);
  if (port >= 0 && port != default_port(p.scheme)) out += ":" + std::to_string(port);
  return out;
}

std::string robots_txt_url(std::string_view url) { return url_origin(url) + "/robots.txt"; }

std::string url_path_query(std::string_view url) {
  SplitResult r = urlsplit(url);
  std::string out = r.path.empty() ? std::string("/") : std::move(r.path);
  if (r.has_query) {
    out += '?';
    out += r.query;
  }
  return out;
}

namespace {

bool host_in_domain(std::string_view host, std::string_view domain) {
  if (!domain.empty() && domain.front() == '.') domain.remove_prefix(1);
  if (domain.empty() || host.size() < domain.size()) return false;
  std::string d = lower(domain);
  if (host.size() == d.size()) return host == d;
  return host.ends_with(d) && host[host.size() - d.size() - 1] == '.';
}

std::string host_or_empty(std::string_view url) {
  try {
    return urlsplit(url).hostname;
  } catch (const ValueError&) {
    return {};
  }
}

}  // namespace

bool url_is_from_any_domain(std::string_view url, std::span<const std::string> domains) {
  return host_is_from_any_domain(host_or_empty(url), domains);
}

bool host_is_from_any_domain(std::string_view host, std::span<const std::string> domains) {
  if (host.empty()) return false;
  return std::any_of(domains.begin(), domains.end(),
                     [&](const std::string& d) { return host_in_domain(host, d); });
}

bool url_is_from_any_domain(std::string_view url, std::initializer_list<std::string_view> domains) {
  std::string host = host_or_empty(url);
  if (host.empty()) return false;
  return std::any_of(domains.begin(), domains.end(),
                     [&](std::string_view d) { return host_in_domain(host, d); });
}

std::string request_fingerprint(std::string_view method, std::string_view canonical_url,
                                std::string_view body) {
  std::string doc = "{\"body\": \"";
  doc.reserve(doc.size() + body.size() * 2 + canonical_url.size() + method.size() + 48);
  for (char ch : body) {
    auto c = static_cast<unsigned char>(ch);
    doc += kHexLower[c >> 4];
    doc += kHexLower[c & 0xF];
  }
  doc += "\", \"headers\": {}, \"method\": ";
  std::string m(method);
  for (char& c : m) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  json_string(doc, m);
  doc += ", \"url\": ";
  json_string(doc, canonical_url);
  doc += '}';
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (EVP_Digest(doc.data(), doc.size(), md.data(), &md_len, EVP_sha1(), nullptr) != 1) {
    throw RuntimeError("request_fingerprint: SHA-1 failed");
  }
  std::string hex;
  hex.reserve(md_len * 2);
  for (unsigned int i = 0; i < md_len; ++i) {
    hex += kHexLower[md[i] >> 4];
    hex += kHexLower[md[i] & 0xF];
  }
  return hex;
}

}  // namespace concur::crawl
