SUMMARY = "A/B image updater: C library for the device's own software"
DESCRIPTION = "libabupdater gives C and C++ programs the updater's versions, booted slot, check, \
               install from a path or URL with progress, and cancel (docs/fleet.md)."
SECTION = "libs"

require updater.inc

CARGO_PACKAGE = "updater-ffi"
CARGO_SRC_DIR = "updater-ffi"

# The library reads the updater's configuration and keys, which the updater package installs.
RDEPENDS:${PN} += "updater"

do_install() {
    READELF="${READELF}" sh ${S}/updater-ffi/install-lib.sh \
        ${B}/target/${CARGO_TARGET_SUBDIR}/libabupdater.so ${PV} ${D} \
        ${prefix} ${libdir} ${includedir}
}
