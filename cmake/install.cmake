# install.cmake — what `cmake --install` puts where, the CMake package (find_package(concur)),
# the pkg-config file and the Debian package (cpack -G DEB).
#
#   include/concur/...                      the headers (and the generated version.hpp)
#   lib/libconcur_*.a                       the static libraries
#   lib/cmake/concur/                       concurConfig.cmake, its version file and the targets
#   lib/pkgconfig/concur.pc                 the core for pkg-config users
#   bin/concur                              the CLI (when built: CONCUR_BUILD_APPS)
#
# Components (find_package(concur CONFIG REQUIRED COMPONENTS crawl dist)): the core is always
# there (concur::concur and its layers concur::base, sync, thread, queue, futures, subprocess, mp,
# aio); crawl, http, dist and dist_crawl each need their own Debian -dev packages, which the
# config file looks for only when the component is asked for (cmake/concurConfig.cmake.in).
include(CMakePackageConfigHelpers)

set(CONCUR_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/concur)

# concur_install_component(<export set> <target>...): installs the targets under their short
# exported names (concur_futures -> concur::futures) into one export set.
function(concur_install_component export_set)
  foreach(target IN LISTS ARGN)
    string(REGEX REPLACE "^concur_" "" short ${target})
    set_target_properties(${target} PROPERTIES EXPORT_NAME ${short})
  endforeach()
  install(TARGETS ${ARGN} EXPORT ${export_set}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT ${export_set} NAMESPACE concur:: DESTINATION ${CONCUR_CMAKE_DIR})
endfunction()

concur_install_component(concurCoreTargets concur_base concur_sync concur_thread concur_queue
                         concur_futures concur_subprocess concur_mp concur_aio concur)
concur_install_component(concurCrawlTargets concur_crawl)
concur_install_component(concurHttpTargets concur_http)
concur_install_component(concurDistTargets concur_dist)
concur_install_component(concurDistCrawlTargets concur_dist_crawl)

install(DIRECTORY include/concur DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(FILES ${PROJECT_BINARY_DIR}/include/concur/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/concur)

configure_package_config_file(cmake/concurConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/concurConfig.cmake
                              INSTALL_DESTINATION ${CONCUR_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/concurConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/concurConfig.cmake ${PROJECT_BINARY_DIR}/concurConfigVersion.cmake
        DESTINATION ${CONCUR_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own place, so an installed tree can move.
file(RELATIVE_PATH CONCUR_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig
     ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" CONCUR_PC_TO_PREFIX "${CONCUR_PC_TO_PREFIX}")
configure_file(cmake/concur.pc.in ${PROJECT_BINARY_DIR}/concur.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/concur.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The Debian package: the library, its headers, the CMake and pkg-config files, and the CLI.
# `cpack -G DEB` in the build directory writes concur_<version>_amd64.deb; its Depends are what
# dpkg-shlibdeps finds the CLI needs; building against the headers also needs the -dev packages
# listed in Recommends (the core's: cereal, Boost headers, OpenSSL).
set(CPACK_PACKAGE_NAME concur)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Python's concurrency toolkit (threading, queue, futures, multiprocessing, asyncio) in C++20")
set(CPACK_PACKAGE_DESCRIPTION
    "concur rebuilds Python's threading, queue, concurrent.futures, multiprocessing, subprocess and
asyncio as a C++20 library without a GIL, with a crawler, a web service framework and a
distributed executor over Redis. This package holds the static libraries, the headers, the CMake
package (find_package(concur)), concur.pc, and the concur command (concur bench, crawl, serve,
worker).")
set(CPACK_PACKAGE_CONTACT "concur maintainers <concur@localhost>")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
    "python3, g++ (>= 4:12), cmake (>= 3.25), libcereal-dev, libboost1.81-dev, libssl-dev, libcurl4-openssl-dev, libxml2-dev, libsqlite3-dev, libboost-url1.81-dev, nlohmann-json3-dev, libfmt-dev, libhiredis-dev, librabbitmq-dev, libcli11-dev, pkgconf")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server, python3-aiohttp, python3-flask, gunicorn")
include(CPack)
