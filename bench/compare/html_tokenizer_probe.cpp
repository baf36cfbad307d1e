// html_tokenizer_probe: how long libxml2's HTML parser (SAX: no tree, the options scan_links uses)
// and libwget's HTML tokenizer (wget2's: wget_html_parse_buffer, and wget_html_get_urls_inline
// as wget2 calls it) take per page, on every file of one directory: the measurement behind
// docs/benchmarks.md's "Where a links-only crawl's CPU goes on the Intel VM". Both count the
// <a href> values they see, so the two passes can be checked to see the same links.
//
// Not part of the CMake build: libwget's header comes from Debian's wget2-dev, which nothing
// else needs. By hand:
//   apt-get install wget2-dev
//   g++ -O2 -std=c++20 -I/usr/include/libxml2 -o /tmp/html_tokenizer_probe   (one line)
//       bench/compare/html_tokenizer_probe.cpp -lxml2 -lwget
//   /tmp/html_tokenizer_probe DIR [REPEATS]
// DIR: e.g. the post/ directory of a site written by `crawl_site_tool write`.
#include <libxml/HTMLparser.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// wget.h is C: its prototypes use `restrict`, which C++ spells __restrict.
#define restrict __restrict
#include <wget.h>
#undef restrict

namespace {

long g_links = 0;

void on_start(void* /*ctx*/, const xmlChar* name, const xmlChar** atts) {
  if (std::strcmp(reinterpret_cast<const char*>(name), "a") != 0) return;
  for (const xmlChar** a = atts; a != nullptr && *a != nullptr; a += 2) {
    if (std::strcmp(reinterpret_cast<const char*>(a[0]), "href") == 0) ++g_links;
  }
}

void on_text(void* /*ctx*/, const xmlChar* /*text*/, int /*len*/) {}

void on_token(void* /*ctx*/, int flags, const char* tag, const char* attr, const char* value,
              std::size_t len, std::size_t /*pos*/) {
  if ((flags & XML_FLG_ATTRIBUTE) != 0 && tag != nullptr && attr != nullptr && value != nullptr &&
      len != 0 && std::strcmp(tag, "a") == 0 && std::strcmp(attr, "href") == 0) {
    ++g_links;
  }
}

void libxml2_sax(const std::string& page) {
  htmlSAXHandler sax{};
  sax.startElement = &on_start;
  sax.characters = &on_text;
  htmlParserCtxtPtr ctxt = htmlCreateMemoryParserCtxt(page.data(), static_cast<int>(page.size()));
  *ctxt->sax = sax;
  htmlCtxtUseOptions(ctxt, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                               HTML_PARSE_NONET | HTML_PARSE_COMPACT | HTML_PARSE_IGNORE_ENC);
  htmlParseDocument(ctxt);
  htmlFreeParserCtxt(ctxt);
}

void libwget_tokens(const std::string& page) {
  wget_html_parse_buffer(page.c_str(), &on_token, nullptr, HTML_HINT_REMOVE_EMPTY_CONTENT);
}

void libwget_urls(const std::string& page) {
  wget_html_parsed_result_t* result = wget_html_get_urls_inline(page.c_str(), nullptr, nullptr);
  wget_html_free_urls_inline(&result);
}

// per_page_us(pages, pass): pass over every page once; microseconds per page, links seen.
template <typename Pass>
double per_page_us(const std::vector<std::string>& pages, Pass pass, long& links) {
  g_links = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& page : pages) pass(page);
  const std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
  links = g_links;
  return took.count() / static_cast<double>(pages.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  std::vector<std::string> pages;
  std::size_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    pages.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    bytes += pages.back().size();
  }
  if (pages.empty()) {
    std::fprintf(stderr, "%s: no files\n", argv[1]);
    return 2;
  }
  std::printf("%zu pages, %zu bytes each on average\n", pages.size(), bytes / pages.size());
  for (int r = 0; r < repeats; ++r) {
    long sax_links = 0;
    long token_links = 0;
    long unused = 0;
    const double sax = per_page_us(pages, libxml2_sax, sax_links);
    const double tokens = per_page_us(pages, libwget_tokens, token_links);
    const double urls = per_page_us(pages, libwget_urls, unused);
    std::printf(
        "libxml2 SAX %.1f us/page (%ld a/@href)  libwget tokenizer %.1f us/page (%ld a/@href)  "
        "wget_html_get_urls_inline %.1f us/page\n",
        sax, sax_links, tokens, token_links, urls);
  }
  return 0;
}
