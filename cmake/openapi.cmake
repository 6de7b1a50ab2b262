# cmake/openapi.cmake — proto/openapi.yaml: embedded in rapportd (served at
# GET /openapi.yaml) and held to the code by two node tests.
#
# Included from CMakeLists.txt (after the layers): rp_embed (cmake/embed.cmake)
# compiles the YAML into rp_net as the C array rp_openapi_yaml (rebuilt
# whenever the file changes); and, when node and the test packages' folder
# are there, ctest gets
#   openapi_lint         tests/openapi/lint.mjs: valid OpenAPI 3.1, every
#                        example matches its schema, and the documented
#                        routes are exactly those of src/net/http_route.c
#   openapi_conformance  tests/openapi/conformance.mjs: a real rapportd is
#                        sent requests for every route; every status,
#                        Content-Type, header and body must be documented.
# The node packages (tests/openapi/package-lock.json) are installed by
# tools/setup (npm ci); without node the tests are not registered (without
# the packages they fail, saying to run tools/setup).
include(${CMAKE_SOURCE_DIR}/cmake/embed.cmake)
set(_rp_oa_yaml ${CMAKE_SOURCE_DIR}/proto/openapi.yaml)
rp_embed(rp_net ${_rp_oa_yaml} rp_openapi_yaml)

find_program(RP_NODE NAMES node nodejs)
set(_rp_oa_dir ${CMAKE_SOURCE_DIR}/tests/openapi)
if(RP_NODE)
  add_test(NAME openapi_lint
    COMMAND ${RP_NODE} ${_rp_oa_dir}/lint.mjs ${_rp_oa_yaml} ${CMAKE_SOURCE_DIR}/src/net/http_route.c)
  add_test(NAME openapi_conformance
    COMMAND ${RP_NODE} ${_rp_oa_dir}/conformance.mjs $<TARGET_FILE:rapportd> ${_rp_oa_yaml})
  set_tests_properties(openapi_lint openapi_conformance PROPERTIES TIMEOUT 300)
else()
  message(STATUS "openapi tests: not registered (node not found: run tools/setup)")
endif()
