// gumbo_vs_libxml2: parse time of one page with Google's gumbo (HTML5 tree builder, no XPath)
// and with libxml2's HTML parser (the one concur::crawl uses), for docs/design.md's choice.
// Not part of the CMake build (gumbo is not a project dependency). Build and run:
//   g++ -std=c++20 -O3 -I/usr/include/libxml2 bench/compare/gumbo_vs_libxml2.cpp \
//       -lgumbo -lxml2 -o /tmp/gumbo_vs_libxml2 && /tmp/gumbo_vs_libxml2 [page.html]
// Without an argument it parses bench/crawl_parse_bench.cpp's page, written by
// `python3 bench/compare/python_parse_bench.py --write-page /tmp/page.html`.
#include <gumbo.h>
#include <libxml/HTMLparser.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "/tmp/page.html";
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string page = ss.str();
  if (page.empty()) {
    std::fprintf(stderr, "no page at %s\n", path);
    return 1;
  }
  xmlInitParser();
  constexpr int kRounds = 2000;
  auto time = [&](auto&& parse_once) {
    double best = 1e9;
    for (int run = 0; run < 5; ++run) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kRounds; ++i) parse_once();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = s < best ? s : best;
    }
    return kRounds / best;
  };
  double gumbo = time([&] {
    GumboOutput* out = gumbo_parse_with_options(&kGumboDefaultOptions, page.data(), page.size());
    gumbo_destroy_output(&kGumboDefaultOptions, out);
  });
  double libxml2 = time([&] {
    htmlDocPtr doc =
        htmlReadMemory(page.data(), static_cast<int>(page.size()), nullptr, "UTF-8",
                       HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                           HTML_PARSE_NONET | HTML_PARSE_COMPACT | HTML_PARSE_IGNORE_ENC);
    xmlFreeDoc(doc);
  });
  std::printf("page %zu bytes: gumbo %.0f pages/s, libxml2 %.0f pages/s (best of 5 x %d)\n",
              page.size(), gumbo, libxml2, kRounds);
}
