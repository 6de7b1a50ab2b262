# cmake/fuzz.cmake — fuzz targets and their regression replay.
#
# Each tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput and is built
# in one or two ways:
#
#   always (any compiler, the normal test suite):
#     fuzz_replay_<name> = the target + tests/fuzz/replay_main.c, and a ctest
#     test of the same name that runs it over tests/fuzz/<name>/ (the seed-*
#     corpus and the regress-* inputs of bugs once found), so every build
#     replays them with the target's invariant checks;
#
#   with -DRAPPORT_FUZZ=ON and clang (tools/fuzz configures build-fuzz so):
#     fuzz_<name> = the target linked with libFuzzer, ASan and UBSan. Every
#     other object of the build gets -fsanitize=fuzzer-no-link (coverage
#     instrumentation for libFuzzer, no main), added to CMAKE_C_FLAGS here,
#     which applies to the whole directory because CMake reads it at the end;
#     RAPPORT_SANITIZE=ON (CMakeLists.txt) adds address,undefined to all.
#
# fuzz_seedgen (not built by default: `cmake --build B --target
# fuzz_seedgen`) writes the binary seed corpora (stored records, RPC
# frames) from the codec's own encoders; the text seeds are plain files.
#
# A target whose library layer does not exist yet is skipped.

set(RP_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
option(RAPPORT_FUZZ "Build the libFuzzer targets (clang only)" OFF)

if(RAPPORT_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "RAPPORT_FUZZ=ON needs clang (CC=clang); this is ${CMAKE_C_COMPILER_ID}")
  endif()
  string(APPEND CMAKE_C_FLAGS " -fsanitize=fuzzer-no-link")
endif()

# name -> the library it needs (the layer of the code it drives).
set(_rp_fuzz_targets rpc:rp_net json:rp_net ndjson:rp_cli phone:rp_model record:rp_net
  query:rp_net vocab:rp_model ndlines:rp_net digest:rp_store)

foreach(pair ${_rp_fuzz_targets})
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 name)
  list(GET pair 1 lib)
  set(src ${RP_FUZZ_DIR}/fuzz_${name}.c)
  if(NOT TARGET ${lib} OR NOT EXISTS ${src})
    continue()
  endif()

  add_executable(fuzz_replay_${name} ${src} ${RP_FUZZ_DIR}/replay_main.c)
  target_include_directories(fuzz_replay_${name} PRIVATE ${RP_FUZZ_DIR})
  target_link_libraries(fuzz_replay_${name} PRIVATE ${lib})
  add_test(NAME fuzz_replay_${name} COMMAND fuzz_replay_${name} ${RP_FUZZ_DIR}/${name})
  set_tests_properties(fuzz_replay_${name} PROPERTIES TIMEOUT 300)

  if(RAPPORT_FUZZ)
    add_executable(fuzz_${name} ${src})
    target_include_directories(fuzz_${name} PRIVATE ${RP_FUZZ_DIR})
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${name} PRIVATE ${lib})
  endif()
endforeach()

if(TARGET rp_net AND EXISTS ${RP_FUZZ_DIR}/seedgen.c)
  add_executable(fuzz_seedgen EXCLUDE_FROM_ALL ${RP_FUZZ_DIR}/seedgen.c)
  target_include_directories(fuzz_seedgen PRIVATE ${RP_FUZZ_DIR})
  target_link_libraries(fuzz_seedgen PRIVATE rp_net)
endif()
