# cmake/install.cmake — what `cmake --install` puts where (GNUInstallDirs).
#
#   sbin/rapportd                          the server
#   bin/rapport                            the CLI
#   etc/rapport/rapportd.conf              every setting, its default and why, commented
#                                          out except data = /var/lib/rapport; generated
#                                          from src/core/config.c by gen_config; installed
#                                          only when absent (an operator's edits survive
#                                          a re-install)
#   share/doc/rapport/rapportd.conf.example  the same file, always replaced
#   lib/systemd/system/rapportd.service    from tools/packaging/rapportd.service.in
#   share/man/man8/rapportd.8, man1/rapport.1
#   lib/librapport-client.a                the C client (src/net/client.h) and the
#                                          lower-layer objects it needs, nothing else
#   include/rapport/{net,core,model}/*.h   its public headers, in the source layout
#   lib/pkgconfig/rapport-client.pc        Cflags -I${includedir}/rapport
#
# The unit, the man page and the .pc file name installed paths, so they are
# written at install time from the prefix then in force: `cmake --install
# build --prefix P` gives files that point into P. The prefix /usr puts the
# config in /etc (GNUInstallDirs' rule). tools/test-install (ctest test
# install) checks all of it from a temporary prefix.
include(GNUInstallDirs)

set(RAPPORT_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where rapportd.service goes, relative to the install prefix (or absolute)")
set(RAPPORT_STATE_DIR "/var/lib/rapport" CACHE STRING
    "data = in the installed rapportd.conf (the unit's StateDirectory=rapport)")

# The version, from src/core/version.h (the one place it is written); for the .pc.
file(STRINGS ${CMAKE_SOURCE_DIR}/src/core/version.h _v REGEX "#define RP_VERSION \"")
string(REGEX MATCH "[0-9][0-9.]*" RP_VERSION "${_v}")
if(NOT RP_VERSION)
  set(RP_VERSION 0)
endif()

# The example config, generated from the one settings table.
add_executable(gen_config ${CMAKE_SOURCE_DIR}/tools/packaging/gen_config.c)
target_link_libraries(gen_config PRIVATE rp_core)
set(RP_CONF ${CMAKE_BINARY_DIR}/packaging/rapportd.conf)
add_custom_command(OUTPUT ${RP_CONF}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/packaging
  COMMAND gen_config ${RP_CONF} data=${RAPPORT_STATE_DIR}
  DEPENDS gen_config
  COMMENT "Generating rapportd.conf from src/core/config.c")
add_custom_target(rapport_conf ALL DEPENDS ${RP_CONF})

# The client library: its own objects, not the layers' (which hold the
# store and the server).
set(RP_CLIENT_SRCS
  ${CMAKE_SOURCE_DIR}/src/net/client.c
  ${CMAKE_SOURCE_DIR}/src/model/mpcheck.c
  ${CMAKE_SOURCE_DIR}/src/model/ident.c
  ${CMAKE_SOURCE_DIR}/src/core/error.c
  ${CMAKE_SOURCE_DIR}/src/core/config.c)
add_library(rapport_client STATIC ${RP_CLIENT_SRCS})
set_target_properties(rapport_client PROPERTIES OUTPUT_NAME rapport-client
  POSITION_INDEPENDENT_CODE ON)
target_include_directories(rapport_client PRIVATE ${CMAKE_BINARY_DIR}/layers/net)
target_link_libraries(rapport_client PRIVATE PkgConfig::MSGPACK PkgConfig::LMDB)
set(RP_CLIENT_HEADERS net/client.h core/config.h core/error.h model/mpcheck.h)

install(TARGETS rapportd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS rapport RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS rapport_client ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(h ${RP_CLIENT_HEADERS})
  get_filename_component(d ${h} DIRECTORY)
  install(FILES ${CMAKE_SOURCE_DIR}/src/${h}
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/rapport/${d})
endforeach()
install(FILES ${RP_CONF} DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME rapportd.conf.example)
install(FILES ${CMAKE_SOURCE_DIR}/tools/packaging/rapport.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# Install-time part: paths from the prefix given to `cmake --install`.
install(CODE "
  set(RP_PKG_SRC \"${CMAKE_SOURCE_DIR}/tools/packaging\")
  set(RP_CONF \"${RP_CONF}\")
  set(RP_GEN_DIR \"${CMAKE_BINARY_DIR}/packaging/install\")
  set(RP_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
  set(RP_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(RP_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(RP_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(RP_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
  set(RP_MANDIR \"${CMAKE_INSTALL_MANDIR}\")
  set(RP_UNITDIR \"${RAPPORT_SYSTEMD_UNITDIR}\")
  set(RP_STATE_DIR \"${RAPPORT_STATE_DIR}\")
  set(RP_VERSION \"${RP_VERSION}\")
  set(RP_MSGPACK_PC \"${MSGPACK_MODULE_NAME}\")
  include(\"${CMAKE_SOURCE_DIR}/cmake/install_files.cmake\")
")

# The test: install into a temporary prefix and use what is there.
if(RAPPORT_SANITIZE)
  set(_rp_test_cflags "-fsanitize=address,undefined")
else()
  set(_rp_test_cflags "")
endif()
add_test(NAME install COMMAND ${CMAKE_SOURCE_DIR}/tools/test-install ${CMAKE_BINARY_DIR})
set_tests_properties(install PROPERTIES TIMEOUT 300
  ENVIRONMENT "RP_TEST_CFLAGS=${_rp_test_cflags}")
