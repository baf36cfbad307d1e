// The translation unit that builds the tests' precompiled header (tests/CMakeLists.txt): CMake
// adds the header itself; this file only gives the object library a source.
