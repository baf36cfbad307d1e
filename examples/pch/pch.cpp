// The translation unit that builds the examples' precompiled header (examples/CMakeLists.txt):
// CMake adds the header itself; this file only gives the object library a source.
