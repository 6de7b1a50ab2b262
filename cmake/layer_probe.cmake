# cmake/layer_probe.cmake — the layer_rule test (see cmake/layers.cmake).
#
# cmake -DBUILD_DIR=B -DPROBES=target:header,... -P layer_probe.cmake
#
# Builds each probe target in B. A probe with a header must fail, and fail
# because that header is not found; a probe without one must build. Prints
# one line a probe; fails when any probe did not behave.
string(REPLACE "," ";" PROBES "${PROBES}")
set(bad 0)
foreach(p ${PROBES})
  string(FIND "${p}" ":" colon)
  string(SUBSTRING "${p}" 0 ${colon} target)
  math(EXPR colon "${colon} + 1")
  string(SUBSTRING "${p}" ${colon} -1 header)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${target}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(header STREQUAL "")
    if(rc EQUAL 0)
      message(STATUS "ok    ${target}: compiles")
    else()
      message(STATUS "FAIL  ${target}: should compile:\n${out}")
      set(bad 1)
    endif()
  else()
    string(REPLACE "." "\\." hre "${header}")
    if(NOT rc EQUAL 0 AND out MATCHES "${hre}: No such file|'${hre}' file not found")
      message(STATUS "ok    ${target}: \"${header}\" not found")
    else()
      message(STATUS "FAIL  ${target}: including \"${header}\" should fail (not found):\n${out}")
      set(bad 1)
    endif()
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "layer_rule: a layer sees headers it must not (or not those it must)")
endif()
