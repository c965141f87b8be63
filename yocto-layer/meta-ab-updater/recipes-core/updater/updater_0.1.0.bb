SUMMARY = "A/B image updater: the on-device agent"
DESCRIPTION = "Installs signed bundles into the inactive A/B slot group, keeps the bootloader's \
               boot attempts and runs the boot-check that confirms or rejects a new system."
SECTION = "admin"

require updater.inc

inherit systemd

CARGO_PACKAGE = "updater"
CARGO_SRC_DIR = "updater"

SRC_URI += "file://system.toml"

# The device's configuration; override per machine with files/<machine>/system.toml or with these.
UPDATER_COMPATIBLE ?= "${MACHINE}"
UPDATER_BOOTLOADER ?= "grub"
UPDATER_BOOTLOADER_PATH ?= "/boot/efi/EFI/BOOT/grubenv"
UPDATER_STATE_DIR ?= "/data/updater"
# A folder of *.pub files (bundle-tool keygen) the device trusts; required.
UPDATER_KEYRING_DIR ?= ""

SYSTEMD_SERVICE:${PN} = "updater-data.service updater-boot-check.service updater.service"

# RAUC's D-Bus API for software written against RAUC (docs/rauc-migration.md): builds the `dbus`
# cargo feature and installs the bus policy (root calls everything, others read properties).
# The device's system.toml then needs [dbus] enable = true.
PACKAGECONFIG ??= ""
PACKAGECONFIG[dbus] = ",,,dbus"
CARGO_BUILD_FLAGS:append = "${@bb.utils.contains('PACKAGECONFIG', 'dbus', ' --features dbus', '', d)}"

do_install:append() {
    if [ -z "${UPDATER_KEYRING_DIR}" ]; then
        bbfatal "Set UPDATER_KEYRING_DIR to a folder of trusted public keys (*.pub)"
    fi
    install -d ${D}${sysconfdir}/updater/keys ${D}${sysconfdir}/updater/hooks.d
    install -m 0644 ${UPDATER_KEYRING_DIR}/*.pub ${D}${sysconfdir}/updater/keys/
    sed -e 's|@COMPATIBLE@|${UPDATER_COMPATIBLE}|' \
        -e 's|@BOOTLOADER@|${UPDATER_BOOTLOADER}|' \
        -e 's|@BOOTLOADER_PATH@|${UPDATER_BOOTLOADER_PATH}|' \
        -e 's|@STATE_DIR@|${UPDATER_STATE_DIR}|' \
        -e 's|@PART_A@|${AB_PART_A}|' -e 's|@PART_B@|${AB_PART_B}|' -e 's|@PART_R@|${AB_PART_R}|' \
        ${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/system.toml > ${D}${sysconfdir}/updater/system.toml
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/bootloader-hooks/systemd/updater-boot-check.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/bootloader-hooks/systemd/updater.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/bootloader-hooks/systemd/updater-data.service ${D}${systemd_system_unitdir}/
    install -d ${D}${sysconfdir}/systemd/system.conf.d
    install -m 0644 ${S}/bootloader-hooks/systemd/system.conf.d/10-updater-watchdog.conf \
        ${D}${sysconfdir}/systemd/system.conf.d/
    if ${@bb.utils.contains('PACKAGECONFIG', 'dbus', 'true', 'false', d)}; then
        install -d ${D}${datadir}/dbus-1/system.d
        install -m 0644 ${S}/bootloader-hooks/dbus/de.pengutronix.rauc.conf ${D}${datadir}/dbus-1/system.d/
    fi
}

do_install[vardeps] += "UPDATER_COMPATIBLE UPDATER_BOOTLOADER UPDATER_BOOTLOADER_PATH UPDATER_STATE_DIR"
do_install[file-checksums] += "${@'${UPDATER_KEYRING_DIR}:True' if d.getVar('UPDATER_KEYRING_DIR') else ''}"

FILES:${PN} += "${sysconfdir}/updater ${sysconfdir}/systemd/system.conf.d ${datadir}/dbus-1"
CONFFILES:${PN} = "${sysconfdir}/updater/system.toml"
