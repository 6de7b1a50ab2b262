# cmake/install_files.cmake — the install-time part of cmake/install.cmake.
#
# Runs inside cmake_install.cmake, where CMAKE_INSTALL_PREFIX is the prefix
# given to `cmake --install --prefix`. DESTDIR, if set, is prepended to the
# destinations by file(INSTALL) itself, never to the paths written into the
# files. Writes the
# files that name installed paths: rapportd.service, rapportd.8 and
# rapport-client.pc; copies rapportd.conf unless one is already there.

function(rp_full out rel)
  if(IS_ABSOLUTE "${rel}")
    set(${out} "${rel}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${rel}" PARENT_SCOPE)
  endif()
endfunction()

rp_full(SBINDIR "${RP_SBINDIR}")
rp_full(BINDIR "${RP_BINDIR}")
rp_full(LIBDIR "${RP_LIBDIR}")
rp_full(INCLUDEDIR "${RP_INCLUDEDIR}")
rp_full(MANDIR "${RP_MANDIR}")
rp_full(UNITDIR "${RP_UNITDIR}")
# GNUInstallDirs: the prefix /usr keeps its configuration in /etc.
if(NOT IS_ABSOLUTE "${RP_SYSCONFDIR}" AND CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(SYSCONFDIR "/${RP_SYSCONFDIR}")
else()
  rp_full(SYSCONFDIR "${RP_SYSCONFDIR}")
endif()
set(CONFIG "${SYSCONFDIR}/rapport/rapportd.conf")
set(STATE_DIR "${RP_STATE_DIR}")
set(PREFIX "${CMAKE_INSTALL_PREFIX}")
set(VERSION "${RP_VERSION}")
set(MSGPACK_PC "${RP_MSGPACK_PC}")

set(gen "${RP_GEN_DIR}")
file(MAKE_DIRECTORY "${gen}")
configure_file("${RP_PKG_SRC}/rapportd.service.in" "${gen}/rapportd.service" @ONLY)
configure_file("${RP_PKG_SRC}/rapportd.8.in" "${gen}/rapportd.8" @ONLY)
configure_file("${RP_PKG_SRC}/rapport-client.pc.in" "${gen}/rapport-client.pc" @ONLY)

file(INSTALL "${gen}/rapportd.service" DESTINATION "${UNITDIR}")
file(INSTALL "${gen}/rapportd.8" DESTINATION "${MANDIR}/man8")
file(INSTALL "${gen}/rapport-client.pc" DESTINATION "${LIBDIR}/pkgconfig")
if(EXISTS "$ENV{DESTDIR}${CONFIG}")
  message(STATUS "Kept: $ENV{DESTDIR}${CONFIG} (the new defaults are in the doc directory's rapportd.conf.example)")
else()
  file(INSTALL "${RP_CONF}" DESTINATION "${SYSCONFDIR}/rapport")
endif()
