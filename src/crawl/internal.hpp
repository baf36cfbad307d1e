// Private helpers shared by src/crawl/ (not installed, not public).
#pragma once

#include <string>
#include <string_view>

namespace concur::crawl::detail {

// resolve_encoding_label(label): the iconv name for an encoding label, "" if unknown.
std::string resolve_encoding_label(std::string_view label);

// transcode_to_utf8(encoding, bytes): bytes (in `encoding`, an iconv name) as valid UTF-8,
// undecodable bytes and NULs replaced by U+FFFD.
std::string transcode_to_utf8(const std::string& encoding, std::string_view bytes);

}  // namespace concur::crawl::detail
