# Flags applied to every concur target: warnings, -Werror, sanitizers, visibility.
set(CONCUR_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wnon-virtual-dtor)

if(CONCUR_SANITIZE)
  set(_san_flags -fsanitize=${CONCUR_SANITIZE} -fno-omit-frame-pointer)
  if(CONCUR_SANITIZE MATCHES "undefined")
    list(APPEND _san_flags -fno-sanitize-recover=undefined)
    if(CONCUR_SANITIZE MATCHES "thread")
      # UBSan's vptr check probes memory through a pipe() that every thread shares, and
      # ThreadSanitizer reports that probe as a data race in the sanitizer runtime (every polymorphic
      # call checked from two threads). The ASan+UBSan preset keeps the vptr check.
      list(APPEND _san_flags -fno-sanitize=vptr)
    endif()
  endif()
  # Sanitize every target, third-party code built here included.
  add_compile_options(${_san_flags})
  add_link_options(${_san_flags})
  add_compile_definitions(CONCUR_ENABLE_DCHECK)
  if(CONCUR_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ 12 warns (-Wtsan) that ThreadSanitizer does not model std::atomic_thread_fence, which
    # Boost.Asio's scheduler uses; the warning is not about our code and must not fail the build.
    add_compile_options(-Wno-error=tsan)
  endif()
endif()

# Link with lld where it is installed (scripts/setup.sh installs it): the suite links ~150
# programs, and GNU ld took most of a warm rebuild's time.
find_program(CONCUR_LLD ld.lld)
if(CONCUR_LLD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  add_link_options(-fuse-ld=lld)
endif()

function(concur_target_options target)
  target_compile_options(${target} PRIVATE ${CONCUR_WARNINGS})
  if(CONCUR_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  set_target_properties(${target} PROPERTIES CXX_VISIBILITY_PRESET hidden
                                             VISIBILITY_INLINES_HIDDEN ON)
endfunction()
