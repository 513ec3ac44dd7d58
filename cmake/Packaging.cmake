#  Packaging.cmake - Debian packages with CPack, and the deploy kit's
#  install rules (systemd units, example configs, operations guide).
#
#  Packages (one per install COMPONENT):
#    libminerwatch0      lib      the shared library
#    libminerwatch-dev   dev      headers, the .so link, minerwatch.pc, the CMake package
#    minerwatch-daemons  daemons  minerwatch-broker, minerwatch-gateway, systemd units,
#                                 /etc/minerwatch/*.conf (conffiles), docs
#    minerwatch-cli      cli      the minerwatch command
#    python3-minerwatch  python   the Python module (ctypes over libminerwatch0)
#
#  Build them from a tree configured for /usr:
#    cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release \
#          -DBUILD_TESTING=OFF
#    cmake --build build-deb -j2 && (cd build-deb && cpack -G DEB)
#  (dpkg-shlibdeps, from dpkg-dev, computes the dependencies on Debian's
#  libraries.) docs/operations.md, "Installing", says more.

#  --------------------------------------------------------------------------
#  Deploy kit: install rules

#  Config files: /etc/minerwatch for a system install (prefix /usr, the
#  packages), PREFIX/etc/minerwatch otherwise (never outside the prefix, so
#  `cmake --install --prefix DIR` stays in DIR).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(MW_CONF_DIR "/etc/minerwatch")
else()
  set(MW_CONF_DIR "${CMAKE_INSTALL_SYSCONFDIR}/minerwatch")
endif()
set(MW_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd units are installed, relative to the prefix")
set(MW_DOC_DIR "${CMAKE_INSTALL_DATAROOTDIR}/doc/minerwatch-daemons")

install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/minerwatch-broker.service
              ${PROJECT_SOURCE_DIR}/deploy/systemd/minerwatch-gateway.service
              ${PROJECT_SOURCE_DIR}/deploy/systemd/minerwatch-up.service
        DESTINATION ${MW_UNIT_DIR} COMPONENT daemons)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/minerwatch-broker.conf DESTINATION ${MW_CONF_DIR}
        RENAME broker.conf COMPONENT daemons)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/minerwatch-gateway.conf DESTINATION ${MW_CONF_DIR}
        RENAME gateway.conf COMPONENT daemons)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/minerwatch-up.conf DESTINATION ${MW_CONF_DIR}
        RENAME up.conf COMPONENT daemons)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operations.md
              ${PROJECT_SOURCE_DIR}/deploy/minerwatch-broker.conf
              ${PROJECT_SOURCE_DIR}/deploy/minerwatch-gateway.conf
              ${PROJECT_SOURCE_DIR}/deploy/minerwatch-up.conf
        DESTINATION ${MW_DOC_DIR} COMPONENT daemons)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/examples ${PROJECT_SOURCE_DIR}/deploy/prometheus
        DESTINATION ${MW_DOC_DIR} COMPONENT daemons)

#  --------------------------------------------------------------------------
#  CPack: one .deb per component

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "minerwatch")
set(CPACK_PACKAGE_VENDOR "minerwatch")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "minerwatch maintainers <minerwatch@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_PACKAGE_DIRECTORY "${CMAKE_BINARY_DIR}/packages")
set(CPACK_STRIP_FILES OFF) #  keep the symbols: dbgsym packages are out of scope

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL lib dev daemons cli python)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
#  Dependencies on Debian's libraries from the binaries (dpkg-shlibdeps);
#  libminerwatch.so.0 is ours: found in the build tree, named below.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS "${CMAKE_BINARY_DIR}/publisher")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")

set(mw_deb_version "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")

set(CPACK_DEBIAN_LIB_PACKAGE_NAME "libminerwatch${PROJECT_VERSION_MAJOR}")
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION "libs")
set(CPACK_DEBIAN_LIB_DESCRIPTION
    "minerwatch publisher library\n libminerwatch sends task events from a miner to a minerwatch broker\n without ever blocking the caller (ZeroMQ PUB, bounded queue, counted drops).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME "libminerwatch-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION "libdevel")
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libminerwatch${PROJECT_VERSION_MAJOR} (= ${mw_deb_version}), libzmq3-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION
    "minerwatch publisher library: development files\n Headers, pkg-config file and CMake package (find_package(minerwatch)).")

set(CPACK_DEBIAN_DAEMONS_PACKAGE_NAME "minerwatch-daemons")
#  minerwatch-up.service runs /usr/bin/minerwatch, and `minerwatch config
#  check` is how the example configs are checked: the CLI is a dependency.
set(CPACK_DEBIAN_DAEMONS_PACKAGE_DEPENDS
    "libminerwatch${PROJECT_VERSION_MAJOR} (= ${mw_deb_version}), minerwatch-cli (= ${mw_deb_version})")
set(CPACK_DEBIAN_DAEMONS_DESCRIPTION
    "minerwatch broker and gateway daemons with systemd units\n minerwatch-broker keeps the live state of the miners' tasks; minerwatch-gateway\n serves it over HTTP (dashboard, Server-Sent Events, JSON, Prometheus metrics).")
#  The config files in /etc are the administrator's: conffiles, kept on
#  removal (dpkg -r), removed on purge.
set(mw_conffiles "${CMAKE_BINARY_DIR}/cpack/daemons/conffiles")
file(WRITE "${mw_conffiles}"
     "${MW_CONF_DIR}/broker.conf\n${MW_CONF_DIR}/gateway.conf\n${MW_CONF_DIR}/up.conf\n")
#  Maintainer scripts (deploy/debian/): systemd reloads the units, an
#  upgrade restarts the daemons that ran, a removal stops them, a purge
#  drops the broker's state. They call systemctl only on a system booted
#  with systemd and never under dpkg --root (DPKG_ROOT set).
set(mw_maint_scripts "${PROJECT_SOURCE_DIR}/deploy/debian/postinst"
    "${PROJECT_SOURCE_DIR}/deploy/debian/prerm" "${PROJECT_SOURCE_DIR}/deploy/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(CPACK_DEBIAN_DAEMONS_PACKAGE_CONTROL_EXTRA "${mw_conffiles};${mw_maint_scripts}")
else()
  set(CPACK_DEBIAN_DAEMONS_PACKAGE_CONTROL_EXTRA "${mw_maint_scripts}")
endif()

set(CPACK_DEBIAN_CLI_PACKAGE_NAME "minerwatch-cli")
set(CPACK_DEBIAN_CLI_PACKAGE_DEPENDS "libminerwatch${PROJECT_VERSION_MAJOR} (= ${mw_deb_version})")
set(CPACK_DEBIAN_CLI_DESCRIPTION
    "minerwatch command-line tool\n minerwatch up (a broker and a gateway in one process), tail, publish,\n simulate, status, keygen, config check.")

set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME "python3-minerwatch")
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION "python")
set(CPACK_DEBIAN_PYTHON_PACKAGE_ARCHITECTURE "all")
set(CPACK_DEBIAN_PYTHON_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS
    "python3, libminerwatch${PROJECT_VERSION_MAJOR} (>= ${mw_deb_version})")
set(CPACK_DEBIAN_PYTHON_DESCRIPTION
    "minerwatch publisher for Python 3\n The minerwatch module: libminerwatch's publisher through ctypes.")

include(CPack)
