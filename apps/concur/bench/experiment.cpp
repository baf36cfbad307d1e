// bench/experiment.cpp — the helpers of experiment.hpp shared by every experiment.
#include "bench/experiment.hpp"

#include <fmt/format.h>

#include <string>
#include <utility>
#include <vector>

namespace concur::apps::bench {
namespace {

std::string format_sig3(double v) {
  if (v >= 100) return fmt::format("{:.0f}", v);
  if (v >= 10) return fmt::format("{:.1f}", v);
  return fmt::format("{:.2f}", v);
}

}  // namespace

std::string format_seconds(double seconds) {
  if (seconds >= 1.0) return format_sig3(seconds) + " s";
  if (seconds >= 1e-3) return format_sig3(seconds * 1e3) + " ms";
  if (seconds >= 1e-6) return format_sig3(seconds * 1e6) + " µs";
  return format_sig3(seconds * 1e9) + " ns";
}

double Row::seconds_per_item() const {
  return items == 0 ? 0.0 : seconds / static_cast<double>(items);
}

double Row::estimated_full_seconds() const {
  return seconds_per_item() * static_cast<double>(full_items);
}

void finalize_rows(std::vector<Row>& rows) {
  for (Row& row : rows) {
    row.speedup = 0.0;
    for (const Row& base : rows) {
      if (base.baseline && base.experiment == row.experiment && base.language == row.language &&
          row.seconds_per_item() > 0.0) {
        row.speedup = base.seconds_per_item() / row.seconds_per_item();
        break;
      }
    }
    if (row.scaled() && row.note.empty()) {
      const std::string factor = row.items != 0 && row.full_items % row.items == 0
                                     ? fmt::format(" ×{}", row.full_items / row.items)
                                     : std::string();
      row.note =
          fmt::format("scaled down{}: ≈ {} for all {} {}", factor,
                      format_seconds(row.estimated_full_seconds()), row.full_items, row.unit);
    }
  }
}

std::size_t scaled_count(std::size_t full, double seconds_per_item, double budget) {
  std::size_t best = 1;
  for (std::size_t d = 1; d <= full; ++d) {
    if (full % d == 0 && static_cast<double>(d) * seconds_per_item <= budget) best = d;
  }
  return best;
}

std::pair<std::size_t, std::size_t> chunk(std::size_t k, std::size_t parts, std::size_t count) {
  return {k * count / parts, (k + 1) * count / parts};
}

}  // namespace concur::apps::bench
