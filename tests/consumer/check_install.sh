#!/usr/bin/env bash
# check_install.sh BUILD_DIR SOURCE_DIR: installs BUILD_DIR (a built release tree) into a
# temporary prefix and proves an outside project can use it (issue 17):
#   1. cmake --install into PREFIX; the expected files are there;
#   2. tests/consumer configured with find_package(concur ... COMPONENTS crawl dist) against
#      PREFIX, built and run (the core, one layer, two components);
#   3. the same main.cpp built with pkg-config (concur.pc) alone and run, and so is every
#      complete C++ program in README.md (```cpp blocks; ```cpp fragment ones are not programs);
#   4. PREFIX/bin/concur --version;
#   5. cpack -G DEB: the .deb's name, fields and contents; its concur, unpacked, runs.
# Exits non-zero at the first failure, with what failed. Uses only the local machine; the
# temporary directory is removed on exit.
set -euo pipefail

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d /tmp/concur-install-check-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
  echo "check_install.sh: $*" >&2
  exit 1
}
version=$(sed -n 's/^project(concur VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[[ -n $version ]] || fail "no version in $src/CMakeLists.txt"

echo "== 1. cmake --install into $prefix"
cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
for f in include/concur/concur.hpp include/concur/version.hpp lib/libconcur_base.a \
  lib/libconcur_aio.a lib/cmake/concur/concurConfig.cmake \
  lib/cmake/concur/concurConfigVersion.cmake lib/cmake/concur/concurCoreTargets.cmake \
  lib/pkgconfig/concur.pc bin/concur; do
  [[ -e $prefix/$f ]] || fail "not installed: $f"
done

launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
echo "== 2. find_package(concur) from an outside project"
cmake -S "$src/tests/consumer" -B "$tmp/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" > "$tmp/configure.log" ||
  { cat "$tmp/configure.log" >&2; fail "the consumer does not configure"; }
cmake --build "$tmp/consumer" > "$tmp/build.log" ||
  { tail -50 "$tmp/build.log" >&2; fail "the consumer does not build"; }
"$tmp/consumer/consumer"
"$tmp/consumer/consumer_layers"

echo "== 3. pkg-config"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[[ $(pkg-config --modversion concur) == "$version" ]] || fail "concur.pc's version is not $version"
# shellcheck disable=SC2046  # pkg-config's words are meant to split
${launcher:+ccache} c++ -O1 "$src/tests/consumer/main.cpp" $(pkg-config --cflags --libs concur) \
  -o "$tmp/pc-consumer"
"$tmp/pc-consumer"

echo "== 3b. README.md's programs"
# Every ```cpp block of README.md (not ```cpp fragment) is a complete program on the core: built
# through concur.pc and run (bounded), so the README cannot drift from the code.
python3 - "$src/README.md" "$tmp/readme" << 'PY'
import pathlib, re, sys
text = pathlib.Path(sys.argv[1]).read_text()
out = pathlib.Path(sys.argv[2]); out.mkdir()
blocks = re.findall(r"^```cpp\n(.*?)^```$", text, flags=re.S | re.M)
for i, block in enumerate(blocks):
    (out / f"readme_{i}.cpp").write_text(block)
print(f"README.md: {len(blocks)} programs")
PY
for program in "$tmp"/readme/*.cpp; do
  # shellcheck disable=SC2046
  ${launcher:+ccache} c++ -O1 "$program" $(pkg-config --cflags --libs concur) -o "${program%.cpp}" ||
    fail "README.md's program $(basename "$program") does not build"
  timeout 60 "${program%.cpp}" > "${program%.cpp}.out" ||
    fail "README.md's program $(basename "$program") failed: $(cat "${program%.cpp}.out")"
done

echo "== 4. the installed CLI"
[[ $("$prefix/bin/concur" --version) == "concur $version" ]] || fail "concur --version"

echo "== 5. cpack -G DEB"
(cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/deb" > "$tmp/cpack.log") ||
  { tail -30 "$tmp/cpack.log" >&2; fail "cpack failed"; }
deb=$tmp/deb/concur_${version}_amd64.deb
[[ -f $deb ]] || fail "no $deb (got: $(ls "$tmp/deb"))"
dpkg-deb --field "$deb" Package Version Architecture Depends
[[ $(dpkg-deb --field "$deb" Package) == concur ]] || fail "the package is not named concur"
dpkg-deb --field "$deb" Depends | grep -q libc6 || fail "no shared-library Depends in the .deb"
dpkg-deb --contents "$deb" > "$tmp/contents"
for f in ./usr/bin/concur ./usr/include/concur/concur.hpp ./usr/lib/cmake/concur/concurConfig.cmake \
  ./usr/lib/pkgconfig/concur.pc ./usr/lib/libconcur_base.a; do
  grep -q " $f\$" "$tmp/contents" || fail "the .deb lacks $f"
done
dpkg-deb -x "$deb" "$tmp/unpacked"
[[ $("$tmp/unpacked/usr/bin/concur" --version) == "concur $version" ]] || fail "the .deb's concur"
"$tmp/unpacked/usr/bin/concur" bench --list > /dev/null || fail "the .deb's concur bench --list"
echo "check_install.sh: all good"
