// bench/registry.hpp — the experiments `concur bench` knows, in the order it runs them.
// The list is built once, on first use (thread-safe), and lives until exit.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// experiments() is every registered experiment, in the order of the notes.
[[nodiscard]] const std::vector<std::unique_ptr<Experiment>>& experiments();

// find_experiment(name) is the experiment called `name`, or nullptr.
[[nodiscard]] const Experiment* find_experiment(std::string_view name);

}  // namespace concur::apps::bench
