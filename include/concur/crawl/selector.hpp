// concur/crawl/selector.hpp — HTML for the crawler, after Python's parsel and Scrapy: Selector
// (a parsed page or one node of it) with xpath() / css() returning a SelectorList, get() /
// getall() / attrib() / re(); css_to_xpath (the CSS translator, cssselect's role);
// html_to_unicode (w3lib's: the page's encoding from BOM, HTTP Content-Type, <meta>, else UTF-8);
// and extract_links (Scrapy's LinkExtractor defaults on a fast path without XPath).
//
// Parsing is libxml2's HTML parser (recovering, no network, no messages on stderr: errors are
// swallowed per thread) on text that html_to_unicode has already decoded to valid UTF-8 (invalid
// bytes become U+FFFD, NUL too), so no input — binary garbage, broken encodings, unclosed tags —
// makes it fail; XPath is libxml2's XPath 1.0. Every libxml2 object is owned by RAII.
// Thread-safety: libxml2 is initialized once (xmlInitParser, on first use). Different documents
// may be parsed and queried on different threads at once; one document — a Selector made from a
// page and every Selector / SelectorList taken from it, which share it — must be used by one
// thread at a time (it may move between threads). Lifetime: a Selector keeps its document alive
// (shared ownership); results are copies (std::string), never views into the document.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct _xmlNode;  // libxml2's node, kept opaque here

namespace concur::crawl {

namespace detail {
struct Document;
}  // namespace detail

// ---- text decoding ------------------------------------------------------------------------------

// DecodedHtml: a page as valid UTF-8 and the encoding it was decoded from (iconv's name, e.g.
// "UTF-8", "WINDOWS-1252", "CP932").
struct DecodedHtml {
  std::string encoding;
  std::string text;
};

// http_content_type_encoding(content_type): the charset parameter of an HTTP Content-Type value
// ("text/html; charset=ISO-8859-1"), resolved to an encoding iconv knows (WHATWG label rules:
// ISO-8859-1 and ASCII read as WINDOWS-1252, Shift_JIS as CP932, GB2312 as GBK), or "" if there is
// none or it is unknown.
[[nodiscard]] std::string http_content_type_encoding(std::string_view content_type);

// html_body_declared_encoding(body): the encoding declared in the first 4096 bytes of a page — a
// <meta charset>, a <meta http-equiv="Content-Type" content="...; charset=...">, or an
// <?xml encoding="..."?> — resolved as above ("UTF-16" in a page read as ASCII means UTF-8), or "".
[[nodiscard]] std::string html_body_declared_encoding(std::string_view body);

// html_to_unicode(content_type, body) decodes a page, choosing the encoding in w3lib's (and
// WHATWG's) order: a byte-order mark, the HTTP Content-Type charset, the page's own declaration,
// else UTF-8. Undecodable bytes become U+FFFD, as do NULs; the BOM is removed. Never throws but for
// std::bad_alloc.
[[nodiscard]] DecodedHtml html_to_unicode(std::string_view content_type, std::string_view body);

// ---- CSS ---------------------------------------------------------------------------------------

// css_to_xpath(css, prefix) translates a CSS selector group to XPath 1.0, as cssselect's
// HTMLTranslator with parsel's pseudo-elements: type selectors and '*', .class, #id, [attr],
// [attr=v], [attr~=v], [attr^=v], [attr$=v], [attr*=v], [attr|=v] (v an identifier or a quoted
// string), the combinators ' ', '>', '+', '~', groups joined by ',', :first-child, :last-child,
// :only-child, :nth-child(an+b | odd | even), :nth-last-child(...), :first-of-type,
// :last-of-type, :nth-of-type(...) (on a named type), :not(simple selector), :empty, and the
// pseudo-elements ::text and ::attr(name) at the end of a selector. Type and attribute names are
// lowercased (HTML). Table in docs/internals/crawl-parse.md. Throws ValueError naming the selector
// and the offset for anything else.
[[nodiscard]] std::string css_to_xpath(std::string_view css,
                                       std::string_view prefix = "descendant-or-self::");

// ---- selectors ---------------------------------------------------------------------------------

class SelectorList;

// Selector: a parsed HTML page, or one result of a query on it — an element, a text node, an
// attribute, a comment, or a plain value (an XPath string, number or boolean, as parsel).
class Selector {
 public:
  // Kind: what the selector holds.
  enum class Kind { kElement, kText, kAttribute, kComment, kDocument, kValue };

  // Options: how a page's bytes are read.
  struct Options {
    std::string base_url;      // the page's URL, for urljoin() (a <base href> refines it)
    std::string content_type;  // the HTTP Content-Type header value, for its charset
    std::string encoding;      // forces an encoding (an iconv name or label) when not empty
  };

  // Selector(html, options) parses a page (any bytes; see html_to_unicode). The selector is the
  // page's root element (<html>), as parsel's Selector(text=...). An empty or blank page parses as
  // "<html/>". Throws ValueError only for a page of 2 GiB or more.
  explicit Selector(std::string_view html, const Options& options = {});

  // xpath(expr) evaluates XPath 1.0 with this node as the context node: a node-set gives one
  // Selector per node in document order; a string, number ("2.0", Python's float format) or
  // boolean ("1" / "0") one value Selector. On a value Selector it returns an empty list. Throws
  // ValueError ("XPath error: ...") for an invalid expression.
  [[nodiscard]] SelectorList xpath(std::string_view expr) const;

  // css(selector) is xpath(css_to_xpath(selector)). Throws ValueError for an unsupported or
  // invalid selector.
  [[nodiscard]] SelectorList css(std::string_view selector) const;

  // get() serializes: an element as its outer HTML (libxml2's HTML serializer, as lxml's
  // tostring(method="html")), a text node as its text, an attribute as its value, a comment as
  // "<!--...-->", a value as itself.
  [[nodiscard]] std::string get() const;
  // getall() is {get()}.
  [[nodiscard]] std::vector<std::string> getall() const;

  // attrib() is an element's attributes (name -> value); empty for other kinds.
  [[nodiscard]] std::map<std::string, std::string> attrib() const;

  // re(pattern) applies a regular expression (std::regex ECMAScript) to get(), as parsel: every
  // match's capture groups in order, or the whole match when the pattern has no group; numeric
  // character references and &quot; &apos; &gt; &nbsp; in the results are replaced (not &lt; and
  // &amp;). Throws ValueError for an invalid pattern. Hazard: libstdc++'s std::regex recurses
  // per character on some patterns; keep to texts of a few hundred KiB.
  [[nodiscard]] std::vector<std::string> re(std::string_view pattern) const;
  // re_first(pattern): the first of re(pattern), if any.
  [[nodiscard]] std::optional<std::string> re_first(std::string_view pattern) const;

  // kind(): what this selector holds.
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  // name(): an element's or attribute's name ("a", "href"), else "".
  [[nodiscard]] std::string name() const;
  // text_content(): every text inside the node, concatenated (XPath string(.)).
  [[nodiscard]] std::string text_content() const;

  // base_url(): the URL relative links resolve against: the page's first <base href> resolved
  // against Options::base_url, else Options::base_url.
  [[nodiscard]] std::string base_url() const;
  // encoding(): the encoding the page was decoded from.
  [[nodiscard]] std::string encoding() const;
  // urljoin(ref): crawl::urljoin(base_url(), ref) (Scrapy's response.urljoin). Throws ValueError
  // as urljoin.
  [[nodiscard]] std::string urljoin(std::string_view ref) const;

  // node(): the libxml2 node (nullptr for a value), for code that walks the tree itself; valid
  // while a Selector of the document lives.
  [[nodiscard]] _xmlNode* node() const noexcept { return node_; }

 private:
  friend class SelectorList;
  friend struct SelectorAccess;
  Selector(std::shared_ptr<detail::Document> doc, _xmlNode* node, Kind kind, std::string value);

  std::shared_ptr<detail::Document> doc_;
  _xmlNode* node_ = nullptr;
  Kind kind_ = Kind::kValue;
  std::string value_;  // kValue only
};

// SelectorList: query results (a std::vector of Selector), as parsel's SelectorList.
class SelectorList : public std::vector<Selector> {
 public:
  using std::vector<Selector>::vector;

  // xpath(expr) / css(selector): the query on each selector, results concatenated.
  [[nodiscard]] SelectorList xpath(std::string_view expr) const;
  [[nodiscard]] SelectorList css(std::string_view selector) const;
  // get(): the first selector's get(), or nullopt for an empty list.
  [[nodiscard]] std::optional<std::string> get() const;
  // get(default_value): the first selector's get(), or default_value.
  [[nodiscard]] std::string get(std::string_view default_value) const;
  // getall(): every selector's get().
  [[nodiscard]] std::vector<std::string> getall() const;
  // attrib(): the first selector's attrib(), or empty.
  [[nodiscard]] std::map<std::string, std::string> attrib() const;
  // re(pattern) / re_first(pattern): over every selector, as Selector::re.
  [[nodiscard]] std::vector<std::string> re(std::string_view pattern) const;
  [[nodiscard]] std::optional<std::string> re_first(std::string_view pattern) const;
};

// ---- links -------------------------------------------------------------------------------------

// Link: one extracted link (Scrapy's Link).
struct Link {
  std::string url;        // absolute, http(s), without fragment
  std::string text;       // the anchor's text, whitespace collapsed and trimmed
  bool nofollow = false;  // rel contains "nofollow"
};

// LinkExtractorOptions: Scrapy's LinkExtractor arguments and defaults.
struct LinkExtractorOptions {
  std::vector<std::string> tags = {"a", "area"};
  std::vector<std::string> attrs = {"href"};
  std::string restrict_css;    // only links inside what this CSS selects ("" = whole page)
  std::string restrict_xpath;  // only links inside what this XPath selects ("" = whole page)
  bool unique = true;          // one link per canonical URL (the first one found)
  bool canonicalize = false;   // return canonicalize_url(url) instead of the resolved URL
  // deny_extensions: links whose path ends in ".<ext>" are skipped (Scrapy's IGNORED_EXTENSIONS:
  // archives, images, audio, video, office documents, css, pdf, exe...); clear() to keep all.
  std::vector<std::string> deny_extensions = default_deny_extensions();

  [[nodiscard]] static std::vector<std::string> default_deny_extensions();
};

// extract_links(page, options): the links of a parsed page in document order: each tag/attr value
// stripped, resolved against page.base_url() (so <base href> counts), its fragment dropped;
// values that are no URL and non-http(s) schemes (mailto:, javascript:, tel:, data:) skipped.
// Throws ValueError for an invalid restrict_css / restrict_xpath.
[[nodiscard]] std::vector<Link> extract_links(const Selector& page,
                                              const LinkExtractorOptions& options = {});
// scan_links(html, page, options) is extract_links(Selector(html, page), options) — the same
// links in the same order, with the same texts — without building the page's tree: libxml2's
// HTML parser runs with SAX callbacks only (same tokenizer, same recovery, the same elements and
// attribute values as the tree), the page is read in place when it is valid UTF-8, and the links
// are resolved at the end against the first <base href>. About 2x faster than parsing a tree and
// walking it, with far fewer allocations (docs/internals/crawl-parse.md). restrict_css and
// restrict_xpath need a tree: with either set, it parses one and calls extract_links.
[[nodiscard]] std::vector<Link> scan_links(std::string_view html, const Selector::Options& page,
                                           const LinkExtractorOptions& options = {});
// extract_links(html, base_url, options): scan_links(html, {.base_url = base_url}, options) (the
// page's encoding as html_to_unicode finds it).
[[nodiscard]] std::vector<Link> extract_links(std::string_view html, std::string_view base_url,
                                              const LinkExtractorOptions& options = {});

}  // namespace concur::crawl
