// tests/support/sanitizers.hpp — kSanitized: true in a ThreadSanitizer or AddressSanitizer build.
// Tests whose point is volume (big transfers, many items) shrink their sizes under sanitizers,
// which slow every memory access 5-20x: the code paths are the same, only the counts change.
#pragma once

namespace concur::testing {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace concur::testing
