# tests/fuzz: libFuzzer targets for the parsers a client, an issuer or a CT log can reach.
# Included from the top CMakeLists.txt.
#
# FULCRUM_FUZZ=ON (clang only): fulcrum_core is built with -fsanitize=fuzzer-no-link,address,
# undefined and every tests/fuzz/fuzz_*.c is a libFuzzer binary (-fsanitize=fuzzer,address,
# undefined); `cmake --build <dir> --target fuzz` builds just those, tests/fuzz/run.sh runs
# them (`make test-fuzz`). fulcrum-fuzz-gen-corpus regenerates the seed corpora.
#
# Otherwise (the default, any compiler) every target is linked with replay_main.c as
# <target>_replay, and ctest fuzz/<target> replays its seed corpus once (tests/fuzz/corpus).
option(FULCRUM_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only)" OFF)

set(FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
file(GLOB FUZZ_SOURCES CONFIGURE_DEPENDS ${FUZZ_DIR}/fuzz_*.c)

if(FULCRUM_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "FULCRUM_FUZZ needs clang (libFuzzer): configure with CC=clang")
  endif()
  set(FUZZ_COMMON_FLAGS -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g)
  target_compile_options(fulcrum_core PRIVATE
    -fsanitize=fuzzer-no-link,address,undefined ${FUZZ_COMMON_FLAGS})
  target_link_options(fulcrum_core INTERFACE -fsanitize=address,undefined)
  add_custom_target(fuzz)
  foreach(src ${FUZZ_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined ${FUZZ_COMMON_FLAGS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests ${FUZZ_DIR})
    target_compile_definitions(${name} PRIVATE
      FULCRUM_FUZZ_FIXTURES_DIR="${CMAKE_SOURCE_DIR}/tests/fixtures")
    target_link_libraries(${name} PRIVATE fulcrum_core)
    add_dependencies(fuzz ${name})
  endforeach()
  add_executable(fulcrum-fuzz-gen-corpus ${FUZZ_DIR}/gen_corpus.c)
  target_compile_options(fulcrum-fuzz-gen-corpus PRIVATE -fsanitize=address,undefined ${FUZZ_COMMON_FLAGS})
  target_include_directories(fulcrum-fuzz-gen-corpus PRIVATE ${CMAKE_SOURCE_DIR}/tests ${FUZZ_DIR})
  target_compile_definitions(fulcrum-fuzz-gen-corpus PRIVATE
    FULCRUM_FUZZ_FIXTURES_DIR="${CMAKE_SOURCE_DIR}/tests/fixtures")
  target_link_libraries(fulcrum-fuzz-gen-corpus PRIVATE fulcrum_core)
  add_dependencies(fuzz fulcrum-fuzz-gen-corpus)
else()
  foreach(src ${FUZZ_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name}_replay ${src} ${FUZZ_DIR}/replay_main.c)
    target_include_directories(${name}_replay PRIVATE ${CMAKE_SOURCE_DIR}/tests ${FUZZ_DIR})
    target_link_libraries(${name}_replay PRIVATE fulcrum_core)
    add_test(NAME fuzz/${name} COMMAND ${name}_replay ${FUZZ_DIR}/corpus/${name})
    set_tests_properties(fuzz/${name} PROPERTIES
      ENVIRONMENT "FULCRUM_FIXTURES_DIR=${CMAKE_SOURCE_DIR}/tests/fixtures"
      TIMEOUT 120)
  endforeach()
endif()
