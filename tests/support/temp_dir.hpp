// tests/support/temp_dir.hpp — TempDir: a fresh directory under the system's temporary directory
// (mkdtemp), removed with everything in it when the object goes. Header-only; tests and
// benchmarks use it for files they write (feeds, JOBDIRs, SQLite files).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "concur/errors.hpp"

namespace concur::testing {

class TempDir {
 public:
  // TempDir(prefix): <tmp>/<prefix>XXXXXX, mode 0700. RuntimeError when mkdtemp fails.
  explicit TempDir(std::string_view prefix = "concur-") {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw RuntimeError("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // dir / "name": a path inside the directory.
  [[nodiscard]] std::filesystem::path operator/(std::string_view name) const {
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace concur::testing
