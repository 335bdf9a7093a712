# Fuzz targets of the files API: the confined path resolver and the tar reader + extractor.
# Included from tests/CMakeLists.txt. They need clang's libFuzzer, while the project builds with
# the configured (GCC) compiler: so clang is invoked directly on the harness and the sources it
# exercises (instrumented with -fsanitize=fuzzer,address,undefined), linked against the system's
# fmt, Boost.JSON, zlib and zstd. CTest runs each for 10 s (tests fuzz/path_resolver and
# fuzz/tar_reader). Skipped, with a message, where clang++ is missing.
find_program(HUTCH_CLANGXX NAMES clang++ clang++-14)
if(NOT HUTCH_CLANGXX)
  message(STATUS "clang++ not found: the files fuzz targets are not built (scripts/setup installs it)")
  return()
endif()

set(HUTCH_FILES_FUZZ_SOURCES
    ${CMAKE_SOURCE_DIR}/src/files/resolve.cc ${CMAKE_SOURCE_DIR}/src/files/ops.cc
    ${CMAKE_SOURCE_DIR}/src/files/tar.cc ${CMAKE_SOURCE_DIR}/src/files/codec.cc
    ${CMAKE_SOURCE_DIR}/src/files/archive.cc ${CMAKE_SOURCE_DIR}/src/common/status.cc)
set(HUTCH_FILES_FUZZ_FLAGS -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined
    -DBOOST_JSON_NO_LIB -DFMT_SHARED -I${CMAKE_SOURCE_DIR}/src)
set(HUTCH_FILES_FUZZ_LIBS -lfmt -lboost_json -lz -lzstd)

foreach(target path_resolver tar_reader)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/fuzz/${target}_fuzz)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/fuzz
    COMMAND ${HUTCH_CLANGXX} ${HUTCH_FILES_FUZZ_FLAGS} -o ${out}
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}_fuzz.cc ${HUTCH_FILES_FUZZ_SOURCES}
            ${HUTCH_FILES_FUZZ_LIBS}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}_fuzz.cc ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_fs.h
            ${HUTCH_FILES_FUZZ_SOURCES}
    COMMENT "Building fuzz target ${target}_fuzz with clang"
    VERBATIM)
  add_custom_target(${target}_fuzz ALL DEPENDS ${out})
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz/${target}_corpus)
  add_test(NAME fuzz/${target}
           COMMAND ${out} -max_total_time=10 -rss_limit_mb=1024
                   ${CMAKE_CURRENT_BINARY_DIR}/fuzz/${target}_corpus
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}_seeds)
  set_tests_properties(fuzz/${target} PROPERTIES TIMEOUT 120)
endforeach()
