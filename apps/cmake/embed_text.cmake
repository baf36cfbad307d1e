# Script mode (cmake -DSOURCE=... -DHEADER=... -DSYMBOL=... -P embed_text.cmake): writes HEADER,
# a C++ header defining `inline constexpr std::string_view concur::apps::embedded::SYMBOL` with
# the bytes of SOURCE as a raw string literal. Used by concur_embed_text() in apps/CMakeLists.txt.
foreach(var SOURCE HEADER SYMBOL)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_text.cmake: -D${var}=... is required")
  endif()
endforeach()

set(delimiter "concur_embed")
file(READ "${SOURCE}" content)
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "embed_text.cmake: ${SOURCE} contains the raw-string delimiter "
                      "')${delimiter}\"'")
endif()

file(WRITE "${HEADER}.tmp"
  "// Generated at build time from ${SOURCE} by apps/cmake/embed_text.cmake; do not edit.\n"
  "#pragma once\n\n#include <string_view>\n\nnamespace concur::apps::embedded {\n"
  "inline constexpr std::string_view ${SYMBOL} = R\"${delimiter}(${content})${delimiter}\";\n"
  "}  // namespace concur::apps::embedded\n")
file(COPY_FILE "${HEADER}.tmp" "${HEADER}" ONLY_IF_DIFFERENT)
file(REMOVE "${HEADER}.tmp")
