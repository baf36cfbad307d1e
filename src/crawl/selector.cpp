// Selectors and link extraction on libxml2 (include/concur/crawl/selector.hpp).
#include "concur/crawl/selector.hpp"

#include <libxml/HTMLparser.h>
#include <libxml/HTMLtree.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>
#include <libxml/xpath.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "concur/crawl/url.hpp"
#include "concur/errors.hpp"
#include "internal.hpp"

namespace concur::crawl {

namespace detail {

// Document: one parsed page, shared by every Selector taken from it.
struct Document {
  xmlDocPtr doc = nullptr;
  std::string page_url;  // Options::base_url
  std::string encoding;
  std::once_flag base_once;
  std::string base;  // page_url refined by the first <base href>
  // xpath: the XPath context of every query on this document, made by the first (a document is
  // queried by one thread at a time: selector.hpp); each query sets its node and error handler.
  xmlXPathContextPtr xpath = nullptr;

  Document() = default;
  Document(const Document&) = delete;
  Document& operator=(const Document&) = delete;
  ~Document() {
    if (xpath != nullptr) xmlXPathFreeContext(xpath);
    if (doc != nullptr) xmlFreeDoc(doc);
  }
};

}  // namespace detail

namespace {

using detail::Document;

void init_libxml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

// ErrorTrap: while alive, libxml2 reports on this thread go to it (the last message is kept)
// instead of stderr; the previous handlers come back when it ends. libxml2 keeps these handlers
// per thread.
class ErrorTrap {
 public:
  ErrorTrap()
      : prev_structured_(xmlStructuredError),
        prev_structured_ctx_(xmlStructuredErrorContext),
        prev_generic_(xmlGenericError),
        prev_generic_ctx_(xmlGenericErrorContext) {
    xmlSetStructuredErrorFunc(this, &ErrorTrap::on_structured);
    xmlSetGenericErrorFunc(this, &ErrorTrap::on_generic);
  }
  ErrorTrap(const ErrorTrap&) = delete;
  ErrorTrap& operator=(const ErrorTrap&) = delete;
  ~ErrorTrap() {
    xmlSetStructuredErrorFunc(prev_structured_ctx_, prev_structured_);
    xmlSetGenericErrorFunc(prev_generic_ctx_, prev_generic_);
  }

  [[nodiscard]] const std::string& message() const noexcept { return message_; }

  static void on_structured(void* self, xmlErrorPtr error) {
    if (self != nullptr && error != nullptr && error->message != nullptr) {
      static_cast<ErrorTrap*>(self)->message_ = error->message;
    }
  }

 private:
  static void on_generic(void* /*self*/, const char* /*fmt*/, ...) {}

  xmlStructuredErrorFunc prev_structured_;
  void* prev_structured_ctx_;
  xmlGenericErrorFunc prev_generic_;
  void* prev_generic_ctx_;
  std::string message_;
};

struct XmlFree {
  void operator()(xmlChar* p) const noexcept { xmlFree(p); }
  void operator()(xmlXPathContext* p) const noexcept { xmlXPathFreeContext(p); }
  void operator()(xmlXPathObject* p) const noexcept { xmlXPathFreeObject(p); }
  void operator()(xmlOutputBuffer* p) const noexcept { xmlOutputBufferClose(p); }
};
using XmlString = std::unique_ptr<xmlChar, XmlFree>;

const char* cstr(const xmlChar* s) noexcept { return reinterpret_cast<const char*>(s); }

std::string take(xmlChar* s) {
  XmlString owned(s);
  return s == nullptr ? std::string() : std::string(cstr(s));
}

// text_of(node): the node's text (for an attribute, its value) without allocating when the node
// holds one text child, as attributes usually do.
std::string text_of(xmlNodePtr node) {
  if (node == nullptr) return {};
  if (node->type == XML_ATTRIBUTE_NODE) {
    xmlNodePtr child = node->children;
    if (child == nullptr) return {};
    if (child->next == nullptr && child->type == XML_TEXT_NODE && child->content != nullptr) {
      return cstr(child->content);
    }
  }
  return take(xmlNodeGetContent(node));
}

// serialize(doc, node): outer HTML through libxml2's HTML serializer, UTF-8.
std::string serialize(xmlDocPtr doc, xmlNodePtr node) {
  xmlCharEncodingHandlerPtr utf8 = xmlFindCharEncodingHandler("UTF-8");
  std::unique_ptr<xmlOutputBuffer, XmlFree> out(xmlAllocOutputBuffer(utf8));
  if (!out) throw std::bad_alloc();
  htmlNodeDumpFormatOutput(out.get(), doc, node, "UTF-8", 0);
  xmlOutputBufferFlush(out.get());
  xmlBufPtr buf = out->conv != nullptr ? out->conv : out->buffer;
  return std::string(cstr(xmlBufContent(buf)), xmlBufUse(buf));
}

// number_string(x): Python's str(float) for what XPath numbers usually are.
std::string number_string(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  if (x == std::floor(x) && std::fabs(x) < 1e16) {
    std::snprintf(buf, sizeof buf, "%.1f", x);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", x);
    // The shortest form that reads back the same, as Python's repr.
    for (int precision = 1; precision <= 17; ++precision) {
      char shorter[64];
      std::snprintf(shorter, sizeof shorter, "%.*g", precision, x);
      if (std::strtod(shorter, nullptr) == x) {
        std::snprintf(buf, sizeof buf, "%s", shorter);
        break;
      }
    }
  }
  return buf;
}

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

std::string collapse_space(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending = false;
  for (char c : s) {
    if (is_space(c)) {
      pending = !out.empty();
    } else {
      if (pending) out += ' ';
      pending = false;
      out += c;
    }
  }
  return out;
}

// replace_entities(s): numeric references and &quot; &apos; &gt; &nbsp; decoded (not &lt; &amp;).
std::string replace_entities(std::string_view s) {
  if (s.find('&') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    unsigned long cp = 0;
    bool ok = false;
    if (ent.size() > 1 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string digits(ent.substr(hex ? 2 : 1));
      char* end = nullptr;
      if (!digits.empty()) {
        cp = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
        ok = end != nullptr && *end == '\0' && cp > 0 && cp <= 0x10FFFF &&
             !(cp >= 0xD800 && cp <= 0xDFFF);
      }
    } else if (ent == "quot") {
      cp = '"';
      ok = true;
    } else if (ent == "apos") {
      cp = '\'';
      ok = true;
    } else if (ent == "gt") {
      cp = '>';
      ok = true;
    } else if (ent == "nbsp") {
      cp = 0xA0;
      ok = true;
    }
    if (!ok) {
      out += s[i];
      continue;
    }
    detail::append_utf8(out, static_cast<std::uint32_t>(cp));
    i = semi;
  }
  return out;
}

void regex_extract(const std::string& text, const std::regex& re, std::vector<std::string>& out) {
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    const std::smatch& m = *it;
    if (m.size() <= 1) {
      out.push_back(replace_entities(m.str(0)));
    } else {
      for (std::size_t g = 1; g < m.size(); ++g) out.push_back(replace_entities(m.str(g)));
    }
  }
}

std::regex compile_regex(std::string_view pattern) {
  try {
    return std::regex(pattern.begin(), pattern.end(), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw ValueError("invalid regular expression '" + std::string(pattern) + "': " + e.what());
  }
}

// effective_base(doc): the page URL refined by the first <base href> (computed once).
const std::string& effective_base(Document& d) {
  std::call_once(d.base_once, [&d] {
    d.base = d.page_url;
    xmlNodePtr node = xmlDocGetRootElement(d.doc);
    while (node != nullptr) {
      if (node->type == XML_ELEMENT_NODE && xmlStrEqual(node->name, BAD_CAST "base")) {
        xmlChar* href = xmlGetProp(node, BAD_CAST "href");
        if (href != nullptr) {
          std::string h = take(href);
          try {
            d.base = d.page_url.empty() ? urljoin(h, "") : urljoin(d.page_url, h);
          } catch (const ValueError&) {
            // An unusable <base href> is ignored, as browsers do.
          }
          return;
        }
      }
      // Depth-first, iteratively.
      if (node->type == XML_ELEMENT_NODE && node->children != nullptr) {
        node = node->children;
        continue;
      }
      while (node != nullptr && node->next == nullptr) {
        node = node->parent;
        if (node != nullptr && node->type == XML_DOCUMENT_NODE) node = nullptr;
        if (node != nullptr && node->type == XML_HTML_DOCUMENT_NODE) node = nullptr;
      }
      if (node != nullptr) node = node->next;
    }
  });
  return d.base;
}

Selector::Kind kind_of(xmlNodePtr node) {
  switch (node->type) {
    case XML_ELEMENT_NODE:
      return Selector::Kind::kElement;
    case XML_TEXT_NODE:
    case XML_CDATA_SECTION_NODE:
      return Selector::Kind::kText;
    case XML_ATTRIBUTE_NODE:
      return Selector::Kind::kAttribute;
    case XML_COMMENT_NODE:
      return Selector::Kind::kComment;
    case XML_DOCUMENT_NODE:
    case XML_HTML_DOCUMENT_NODE:
      return Selector::Kind::kDocument;
    default:
      return Selector::Kind::kElement;  // processing instructions, DTD: serialized as markup
  }
}

}  // namespace

// SelectorAccess: the private constructor for the helpers in this file.
struct SelectorAccess {
  static Selector make(std::shared_ptr<Document> doc, xmlNodePtr node, Selector::Kind kind,
                       std::string value) {
    return Selector(std::move(doc), node, kind, std::move(value));
  }
  static const std::shared_ptr<Document>& doc(const Selector& s) { return s.doc_; }
};

Selector::Selector(std::shared_ptr<detail::Document> doc, _xmlNode* node, Kind kind,
                   std::string value)
    : doc_(std::move(doc)), node_(node), kind_(kind), value_(std::move(value)) {}

namespace {

// kParseOptions: libxml2's HTML parser options for every page (docs/internals/crawl-parse.md).
constexpr int kParseOptions = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                              HTML_PARSE_NONET | HTML_PARSE_COMPACT | HTML_PARSE_IGNORE_ENC |
                              XML_PARSE_HUGE;

// page_text(html, options, encoding, storage): what the parser reads — the page as valid UTF-8
// (a view of `html` or of `storage`, see decode_html), "<html/>" for a blank page; `encoding`
// receives the encoding chosen. Initializes libxml2; ValueError for a page of 2 GiB or more.
std::string_view page_text(std::string_view html, const Selector::Options& options,
                           std::string& encoding, std::string& storage) {
  init_libxml();
  if (html.size() >= static_cast<std::size_t>(INT_MAX)) {
    throw ValueError("HTML document too large: " + std::to_string(html.size()) + " bytes");
  }
  const std::string forced =
      options.encoding.empty() ? std::string() : detail::resolve_encoding_label(options.encoding);
  std::string_view text =
      detail::decode_html(options.content_type, html, forced, encoding, storage);
  if (text.find_first_not_of(" \t\r\n\f") == std::string_view::npos) text = "<html/>";
  return text;
}

}  // namespace

Selector::Selector(std::string_view html, const Options& options) {
  auto doc = std::make_shared<Document>();
  doc->page_url = options.base_url;
  std::string storage;
  const std::string_view text = page_text(html, options, doc->encoding, storage);
  {
    ErrorTrap trap;
    doc->doc = htmlReadMemory(text.data(), static_cast<int>(text.size()),
                              options.base_url.empty() ? nullptr : options.base_url.c_str(),
                              "UTF-8", kParseOptions);
    if (doc->doc == nullptr || xmlDocGetRootElement(doc->doc) == nullptr) {
      if (doc->doc != nullptr) xmlFreeDoc(doc->doc);
      static constexpr std::string_view kEmpty = "<html/>";
      doc->doc = htmlReadMemory(kEmpty.data(), static_cast<int>(kEmpty.size()), nullptr, "UTF-8",
                                kParseOptions);
    }
  }
  if (doc->doc == nullptr) throw std::bad_alloc();
  node_ = xmlDocGetRootElement(doc->doc);
  kind_ = node_ != nullptr ? Kind::kElement : Kind::kDocument;
  if (node_ == nullptr) node_ = reinterpret_cast<xmlNodePtr>(doc->doc);
  doc_ = std::move(doc);
}

SelectorList Selector::xpath(std::string_view expr) const {
  SelectorList out;
  if (kind_ == Kind::kValue || !doc_) return out;
  ErrorTrap trap;
  if (doc_->xpath == nullptr) {
    doc_->xpath = xmlXPathNewContext(doc_->doc);
    if (doc_->xpath == nullptr) throw std::bad_alloc();
  }
  xmlXPathContext* ctx = doc_->xpath;
  // What a query may leave behind is set afresh: the context node and position, the handler.
  ctx->node = node_;
  ctx->contextSize = -1;
  ctx->proximityPosition = -1;
  ctx->depth = 0;  // (as in a fresh context; queries that failed here did not leave it raised,
                   // but nothing in libxml2's API promises that)
  ctx->error = &ErrorTrap::on_structured;
  ctx->userData = &trap;
  struct ClearHandler {
    xmlXPathContext* ctx;
    ~ClearHandler() {  // (the trap dies with this call)
      ctx->error = nullptr;
      ctx->userData = nullptr;
    }
  } clear{ctx};
  std::string e(expr);
  std::unique_ptr<xmlXPathObject, XmlFree> obj(
      xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(e.c_str()), ctx));
  if (!obj) {
    std::string why = trap.message();
    while (!why.empty() && is_space(why.back())) why.pop_back();
    throw ValueError("XPath error: " + (why.empty() ? std::string("invalid expression") : why) +
                     " in " + std::string(expr.substr(0, 200)));
  }
  switch (obj->type) {
    case XPATH_NODESET:
      if (obj->nodesetval != nullptr) {
        out.reserve(static_cast<std::size_t>(obj->nodesetval->nodeNr));
        for (int i = 0; i < obj->nodesetval->nodeNr; ++i) {
          xmlNodePtr n = obj->nodesetval->nodeTab[i];
          if (n->type == XML_NAMESPACE_DECL) {  // a copy owned by obj: keep its URI as a value
            const auto* ns = reinterpret_cast<const xmlNs*>(n);
            out.push_back(Selector(nullptr, nullptr, Kind::kValue,
                                   ns->href != nullptr ? cstr(ns->href) : ""));
          } else {
            out.push_back(Selector(doc_, n, kind_of(n), {}));
          }
        }
      }
      break;
    case XPATH_BOOLEAN:
      out.push_back(Selector(nullptr, nullptr, Kind::kValue, obj->boolval != 0 ? "1" : "0"));
      break;
    case XPATH_NUMBER:
      out.push_back(Selector(nullptr, nullptr, Kind::kValue, number_string(obj->floatval)));
      break;
    case XPATH_STRING:
      out.push_back(Selector(nullptr, nullptr, Kind::kValue,
                             obj->stringval != nullptr ? cstr(obj->stringval) : ""));
      break;
    default:
      break;
  }
  return out;
}

SelectorList Selector::css(std::string_view selector) const {
  return xpath(css_to_xpath(selector));
}

std::string Selector::get() const {
  switch (kind_) {
    case Kind::kValue:
      return value_;
    case Kind::kText:
    case Kind::kAttribute:
      return text_of(node_);
    case Kind::kDocument: {
      xmlNodePtr root = xmlDocGetRootElement(doc_->doc);
      return root == nullptr ? std::string() : serialize(doc_->doc, root);
    }
    case Kind::kElement:
    case Kind::kComment:
      break;
  }
  ErrorTrap trap;
  return serialize(doc_->doc, node_);
}

std::vector<std::string> Selector::getall() const { return {get()}; }

std::map<std::string, std::string> Selector::attrib() const {
  std::map<std::string, std::string> out;
  if (kind_ != Kind::kElement || node_ == nullptr || node_->type != XML_ELEMENT_NODE) return out;
  for (xmlAttrPtr a = node_->properties; a != nullptr; a = a->next) {
    out.emplace(cstr(a->name), text_of(reinterpret_cast<xmlNodePtr>(a)));
  }
  return out;
}

std::vector<std::string> Selector::re(std::string_view pattern) const {
  std::vector<std::string> out;
  regex_extract(get(), compile_regex(pattern), out);
  return out;
}

std::optional<std::string> Selector::re_first(std::string_view pattern) const {
  std::vector<std::string> all = re(pattern);
  if (all.empty()) return std::nullopt;
  return std::move(all.front());
}

std::string Selector::name() const {
  if ((kind_ == Kind::kElement || kind_ == Kind::kAttribute) && node_ != nullptr &&
      node_->name != nullptr) {
    return cstr(node_->name);
  }
  return {};
}

std::string Selector::text_content() const {
  if (kind_ == Kind::kValue) return value_;
  if (kind_ == Kind::kDocument) return take(xmlNodeGetContent(xmlDocGetRootElement(doc_->doc)));
  return text_of(node_);
}

std::string Selector::base_url() const {
  if (!doc_) return {};
  return effective_base(*doc_);
}

std::string Selector::encoding() const { return doc_ ? doc_->encoding : std::string(); }

std::string Selector::urljoin(std::string_view ref) const {
  return crawl::urljoin(base_url(), ref);
}

// ---- SelectorList ------------------------------------------------------------------------------

SelectorList SelectorList::xpath(std::string_view expr) const {
  SelectorList out;
  for (const Selector& s : *this) {
    SelectorList part = s.xpath(expr);
    out.insert(out.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  return out;
}

SelectorList SelectorList::css(std::string_view selector) const {
  return xpath(css_to_xpath(selector));
}

std::optional<std::string> SelectorList::get() const {
  if (empty()) return std::nullopt;
  return front().get();
}

std::string SelectorList::get(std::string_view default_value) const {
  if (empty()) return std::string(default_value);
  return front().get();
}

std::vector<std::string> SelectorList::getall() const {
  std::vector<std::string> out;
  out.reserve(size());
  for (const Selector& s : *this) out.push_back(s.get());
  return out;
}

std::map<std::string, std::string> SelectorList::attrib() const {
  if (empty()) return {};
  return front().attrib();
}

std::vector<std::string> SelectorList::re(std::string_view pattern) const {
  std::regex re = compile_regex(pattern);
  std::vector<std::string> out;
  for (const Selector& s : *this) regex_extract(s.get(), re, out);
  return out;
}

std::optional<std::string> SelectorList::re_first(std::string_view pattern) const {
  std::regex re = compile_regex(pattern);
  for (const Selector& s : *this) {
    std::vector<std::string> one;
    regex_extract(s.get(), re, one);
    if (!one.empty()) return std::move(one.front());
  }
  return std::nullopt;
}

// ---- links -------------------------------------------------------------------------------------

std::vector<std::string> LinkExtractorOptions::default_deny_extensions() {
  // Scrapy's scrapy.linkextractors.IGNORED_EXTENSIONS.
  return {// archives
          "7z", "7zip", "bz2", "rar", "tar", "tar.gz", "xz", "zip",
          // images
          "mng", "pct", "bmp", "gif", "jpg", "jpeg", "png", "pst", "psp", "tif", "tiff", "ai",
          "drw", "dxf", "eps", "ps", "svg", "cdr", "ico", "webp",
          // audio
          "mp3", "wma", "ogg", "wav", "ra", "aac", "mid", "au", "aiff",
          // video
          "3gp", "asf", "asx", "avi", "mov", "mp4", "mpg", "qt", "rm", "swf", "wmv", "m4a", "m4v",
          "flv", "webm",
          // office suites
          "xls", "xlsx", "ppt", "pptx", "pps", "doc", "docx", "odt", "ods", "odg", "odp",
          // other
          "css", "pdf", "exe", "bin", "rss", "dmg", "iso", "apk"};
}

namespace {

bool has_denied_extension(std::string_view url, const std::vector<std::string>& exts) {
  if (exts.empty()) return false;
  std::size_t end = url.find_first_of("?#");
  std::string_view path = url.substr(0, end);
  std::size_t slash = path.rfind('/');
  std::string_view last = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (last.find('.') == std::string_view::npos) return false;
  std::string lower(last);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return std::any_of(exts.begin(), exts.end(), [&](const std::string& ext) {
    return lower.size() > ext.size() && lower.ends_with(ext) &&
           lower[lower.size() - ext.size() - 1] == '.';
  });
}

// rel_value_has_nofollow(rel): a rel attribute's value lists "nofollow" (ASCII case-insensitive).
bool rel_value_has_nofollow(std::string rel) {
  for (char& c : rel) c = detail::ascii_lower(c);
  std::size_t pos = 0;
  while ((pos = rel.find("nofollow", pos)) != std::string::npos) {
    bool start_ok = pos == 0 || is_space(rel[pos - 1]);
    bool end_ok = pos + 8 == rel.size() || is_space(rel[pos + 8]);
    if (start_ok && end_ok) return true;
    pos += 8;
  }
  return false;
}

bool rel_has_nofollow(xmlNodePtr el) {
  for (xmlAttrPtr a = el->properties; a != nullptr; a = a->next) {
    if (xmlStrEqual(a->name, BAD_CAST "rel") &&
        rel_value_has_nofollow(text_of(reinterpret_cast<xmlNodePtr>(a)))) {
      return true;
    }
  }
  return false;
}

// LinkSink: LinkExtractor's treatment of each raw link value, in document order: resolved against
// the base, non-http(s) schemes and unparsable values skipped, the fragment dropped, denied
// extensions skipped, one link per canonical URL when options.unique.
class LinkSink {
 public:
  LinkSink(const std::string& base, const LinkExtractorOptions& options)
      : base_(base), options_(options) {}

  // add(href, text_of, nofollow_of): text_of() and nofollow_of() are asked only for a kept link.
  template <class TextOf, class NofollowOf>
  void add(const std::string& href, TextOf&& text_of, NofollowOf&& nofollow_of) {
    std::string url;
    try {
      url = urljoin(base_.empty() ? href : base_, base_.empty() ? std::string() : href);
      std::size_t scheme_end = url.find(':');
      std::string_view scheme(url.data(), scheme_end == std::string::npos ? 0 : scheme_end);
      if (scheme != "http" && scheme != "https") return;
      std::size_t hash = url.find('#');
      if (hash != std::string::npos) url.resize(hash);
      if (has_denied_extension(url, options_.deny_extensions)) return;
      std::string canonical = canonicalize_url(url);
      if (options_.unique && !seen_.insert(canonical).second) return;
      if (options_.canonicalize) url = std::move(canonical);
    } catch (const ValueError&) {
      return;  // not a URL: skipped, as Scrapy does
    }
    Link link;
    link.url = std::move(url);
    link.text = collapse_space(text_of());
    link.nofollow = nofollow_of();
    links_.push_back(std::move(link));
  }

  std::vector<Link> take() { return std::move(links_); }

 private:
  const std::string& base_;
  const LinkExtractorOptions& options_;
  std::unordered_set<std::string> seen_;
  std::vector<Link> links_;
};

bool listed(const std::vector<std::string>& names, const char* name) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n == name; });
}

// LinkCollector: extract_links on a parsed page — the tags' attributes, walking the tree.
class LinkCollector {
 public:
  LinkCollector(const std::string& base, const LinkExtractorOptions& options)
      : options_(options), sink_(base, options) {}

  // walk(root): every element under `root` (itself included), depth-first, without recursion.
  void walk(xmlNodePtr root) {
    xmlNodePtr node = root;
    while (node != nullptr) {
      if (node->type == XML_ELEMENT_NODE) visit(node);
      if (node->type == XML_ELEMENT_NODE && node->children != nullptr) {
        node = node->children;
        continue;
      }
      while (node != nullptr && node != root && node->next == nullptr) node = node->parent;
      if (node == nullptr || node == root) break;
      node = node->next;
    }
  }

  std::vector<Link> take() { return sink_.take(); }

 private:
  void visit(xmlNodePtr el) {
    if (!listed(options_.tags, cstr(el->name))) return;
    for (xmlAttrPtr a = el->properties; a != nullptr; a = a->next) {
      if (!listed(options_.attrs, cstr(a->name))) continue;
      sink_.add(
          text_of(reinterpret_cast<xmlNodePtr>(a)),
          [el] {
            XmlString s(xmlNodeGetContent(el));
            return s ? std::string(cstr(s.get())) : std::string();
          },
          [el] { return rel_has_nofollow(el); });
    }
  }

  const LinkExtractorOptions& options_;
  LinkSink sink_;
};

// LinkScanner: extract_links without building a tree. libxml2's HTML parser runs with SAX
// callbacks only — the same tokenizer, recovery and implied open/close events the tree is built
// from, so the same elements, attribute values and anchor texts — while the scanner keeps each
// link's raw value, its element's text and rel; at the end, when the first <base href> is known,
// the values go through LinkSink in document order as the tree walk's do.
class LinkScanner {
 public:
  explicit LinkScanner(const LinkExtractorOptions& options) : options_(options) {}

  // scan(utf8, page_url): parses `utf8` (valid UTF-8) and returns its links.
  std::vector<Link> scan(std::string_view utf8, const std::string& page_url) {
    {
      ErrorTrap trap;
      std::unique_ptr<htmlParserCtxt, CtxtFree> ctxt(
          htmlCreateMemoryParserCtxt(utf8.data(), static_cast<int>(utf8.size())));
      if (!ctxt || ctxt->sax == nullptr) throw std::bad_alloc();
      std::memset(ctxt->sax, 0, sizeof(htmlSAXHandler));
      ctxt->sax->startElement = &LinkScanner::on_start;
      ctxt->sax->endElement = &LinkScanner::on_end;
      ctxt->sax->characters = &LinkScanner::on_text;
      ctxt->sax->cdataBlock = &LinkScanner::on_text;
      ctxt->sax->comment = &LinkScanner::on_comment;
      ctxt->sax->processingInstruction = &LinkScanner::on_instruction;
      ctxt->sax->internalSubset = &LinkScanner::on_doctype;
      ctxt->sax->initialized = 1;
      ctxt->userData = this;
      htmlCtxtUseOptions(ctxt.get(), kParseOptions);
      if (xmlCharEncodingHandlerPtr utf8_handler = xmlFindCharEncodingHandler("UTF-8")) {
        xmlSwitchToEncoding(ctxt.get(), utf8_handler);
      }
      htmlParseDocument(ctxt.get());
    }
    if (failed_) std::rethrow_exception(failed_);
    std::string base = page_url;
    if (base_href_) {
      try {
        base = page_url.empty() ? urljoin(*base_href_, "") : urljoin(page_url, *base_href_);
      } catch (const ValueError&) {
        // An unusable <base href> is ignored, as browsers do.
      }
    }
    LinkSink sink(base, options_);
    for (const Raw& raw : raws_) {
      sink.add(
          raw.href, [&raw] { return raw.text; }, [&raw] { return raw.nofollow; });
    }
    return sink.take();
  }

 private:
  struct CtxtFree {
    void operator()(htmlParserCtxt* p) const noexcept { htmlFreeParserCtxt(p); }
  };
  struct Raw {
    std::string href;
    std::string text;
    bool nofollow = false;
  };
  struct Open {
    int depth;          // the element's depth
    std::size_t first;  // its values in raws_: [first, last)
    std::size_t last;
  };

  static void on_start(void* self, const xmlChar* name, const xmlChar** atts) noexcept {
    static_cast<LinkScanner*>(self)->start(cstr(name), atts);
  }
  static void on_end(void* self, const xmlChar* /*name*/) noexcept {
    static_cast<LinkScanner*>(self)->end();
  }
  static void on_text(void* self, const xmlChar* text, int len) noexcept {
    static_cast<LinkScanner*>(self)->characters(std::string_view(cstr(text), len));
  }
  static void on_comment(void* self, const xmlChar* /*text*/) noexcept {
    static_cast<LinkScanner*>(self)->top_level_node(/*element=*/false);
  }
  static void on_instruction(void* self, const xmlChar* /*target*/,
                             const xmlChar* /*data*/) noexcept {
    static_cast<LinkScanner*>(self)->top_level_node(/*element=*/false);
  }
  static void on_doctype(void* self, const xmlChar* /*name*/, const xmlChar* /*public_id*/,
                         const xmlChar* /*system_id*/) noexcept {
    static_cast<LinkScanner*>(self)->top_level_node(/*element=*/false);
  }

  // top_level_node(element): a node at the document's level. The tree builder hangs an element
  // that starts after the root element has closed under the document's first node: inside the
  // root when that is the root, else beside it, where nothing below the root sees it — so its
  // links are not the page's links (a comment or <!DOCTYPE> first, then "</html><a href>").
  void top_level_node(bool element) noexcept {
    if (depth_ != 0) return;
    if (!first_is_element_) first_is_element_ = element;
    if (element && root_closed_ && !*first_is_element_) hidden_ = true;
  }

  // The callbacks run inside libxml2's C code, which an exception (std::bad_alloc) must not
  // cross: the first one is kept, the rest of the page ignored, and scan() rethrows it.
  void start(const char* name, const xmlChar** atts) noexcept {
    top_level_node(/*element=*/true);
    ++depth_;
    if (failed_) return;
    try {
      // The page's <base href> counts wherever it is (Selector::base_url() looks beside the root
      // element too).
      if (!base_href_ && std::strcmp(name, "base") == 0) {
        for (const xmlChar** a = atts; a != nullptr && *a != nullptr; a += 2) {
          if (std::strcmp(cstr(a[0]), "href") == 0) {
            base_href_ = a[1] != nullptr ? cstr(a[1]) : "";
            break;
          }
        }
      }
      if (hidden_ || !listed(options_.tags, name)) return;
      bool nofollow = false;
      for (const xmlChar** a = atts; a != nullptr && *a != nullptr; a += 2) {
        if (std::strcmp(cstr(a[0]), "rel") == 0 && a[1] != nullptr &&
            rel_value_has_nofollow(cstr(a[1]))) {
          nofollow = true;
        }
      }
      const std::size_t first = raws_.size();
      for (const xmlChar** a = atts; a != nullptr && *a != nullptr; a += 2) {
        if (!listed(options_.attrs, cstr(a[0]))) continue;
        Raw raw;
        raw.href = a[1] != nullptr ? cstr(a[1]) : "";
        raw.nofollow = nofollow;
        raws_.push_back(std::move(raw));
      }
      if (raws_.size() > first) open_.push_back(Open{depth_, first, raws_.size()});
    } catch (...) {
      failed_ = std::current_exception();
    }
  }

  void end() noexcept {
    if (!open_.empty() && open_.back().depth == depth_) open_.pop_back();
    if (--depth_ == 0) {
      root_closed_ = true;
      hidden_ = false;
    }
  }

  void characters(std::string_view text) noexcept {
    if (failed_) return;
    try {
      for (const Open& o : open_) {
        for (std::size_t i = o.first; i < o.last; ++i) raws_[i].text.append(text);
      }
    } catch (...) {
      failed_ = std::current_exception();
    }
  }

  const LinkExtractorOptions& options_;
  std::vector<Raw> raws_;
  std::vector<Open> open_;  // link elements not yet closed, outermost first
  std::optional<std::string> base_href_;
  int depth_ = 0;                         // open elements
  std::optional<bool> first_is_element_;  // the document's first node is an element
  bool root_closed_ = false;              // an element at the document's level has closed
  bool hidden_ = false;                   // inside an element the tree does not show
  std::exception_ptr failed_;
};
}  // namespace

std::vector<Link> extract_links(const Selector& page, const LinkExtractorOptions& options) {
  const auto& doc = SelectorAccess::doc(page);
  if (!doc) return {};
  std::string base = page.base_url();
  LinkCollector collector(base, options);
  if (options.restrict_css.empty() && options.restrict_xpath.empty()) {
    collector.walk(xmlDocGetRootElement(doc->doc));
  } else {
    SelectorList regions;
    if (!options.restrict_xpath.empty()) regions = page.xpath(options.restrict_xpath);
    if (!options.restrict_css.empty()) {
      SelectorList more = page.css(options.restrict_css);
      regions.insert(regions.end(), more.begin(), more.end());
    }
    for (const Selector& region : regions) {
      if (region.kind() == Selector::Kind::kElement) collector.walk(region.node());
    }
  }
  return collector.take();
}

std::vector<Link> scan_links(std::string_view html, const Selector::Options& page,
                             const LinkExtractorOptions& options) {
  if (!options.restrict_css.empty() || !options.restrict_xpath.empty()) {
    return extract_links(Selector(html, page), options);
  }
  std::string encoding;
  std::string storage;
  return LinkScanner(options).scan(page_text(html, page, encoding, storage), page.base_url);
}

std::vector<Link> extract_links(std::string_view html, std::string_view base_url,
                                const LinkExtractorOptions& options) {
  Selector::Options page;
  page.base_url = std::string(base_url);
  return scan_links(html, page, options);
}

}  // namespace concur::crawl
