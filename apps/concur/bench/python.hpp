// bench/python.hpp — running the Python side of an experiment: find_python() locates an
// interpreter on PATH, run_python() runs an embedded script with arguments and parses the one
// JSON object it prints.
//
// The child gets `python3 -I -c <script> args...` (isolated mode: PYTHON* variables and the
// user site directory cannot change the figures); its stderr is inherited, so a traceback shows.
// Both functions block until the child exits and are safe to call from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/experiment.hpp"

namespace concur::apps::bench {

// find_python(name) resolves `name` ("python3", or a path) through PATH, runs it once to learn
// its version, and returns nullopt when it is missing or does not run.
[[nodiscard]] std::optional<PythonInfo> find_python(const std::string& name = "python3");

// run_python(python, script, args) runs the script text with the given arguments and returns
// the JSON object of its stdout. Throws std::runtime_error when the interpreter cannot start,
// exits non-zero, or prints something that is not one JSON object.
[[nodiscard]] nlohmann::json run_python(const PythonInfo& python, std::string_view script,
                                        const std::vector<std::string>& args);

// CaptureResult is what run_capture() returns.
struct CaptureResult {
  int exit_code = -1;  // the exit status, or 128 + signal number when killed
  std::string out;     // everything the child wrote to stdout
};

// run_capture(argv) spawns argv[0] (looked up in PATH) with the rest as arguments, collects its
// stdout and waits for it. Throws std::runtime_error when it cannot be spawned.
[[nodiscard]] CaptureResult run_capture(const std::vector<std::string>& argv);

}  // namespace concur::apps::bench
