# Turns an image recipe's root filesystem (and optionally an application image) into a signed
# update bundle with bundle-tool, deployed as ${AB_BUNDLE_NAME}.zst. Use it in a recipe of its own:
#
#   inherit ab_bundle
#   AB_BUNDLE_IMAGE = "core-image-minimal"
#   AB_BUNDLE_KEY = "/secure/keys/release.key"
#
# The device's updater (recipe "updater") must trust the matching public key.

AB_BUNDLE_IMAGE ?= ""
AB_BUNDLE_IMAGE_FSTYPE ?= "ext4"
# Optional: an image file for the "app" slot class (the application partition).
AB_BUNDLE_APP_IMAGE ?= ""
# Optional: a file of [[firmware]] tables (docs/firmware.md) appended to the bundle's input
# manifest; their `file` entries are absolute paths (e.g. into DEPLOY_DIR_IMAGE).
AB_BUNDLE_FIRMWARE ?= ""
# Optional: the bundle's hook executable (docs/hooks.md) and the events it handles.
AB_BUNDLE_HOOKS ?= ""
AB_BUNDLE_HOOK_EVENTS ?= "pre-install post-install"
AB_BUNDLE_COMPATIBLE ?= "${MACHINE}"
AB_BUNDLE_VERSION ?= "${DISTRO_VERSION}"
AB_BUNDLE_SECURITY_VERSION ?= "0"
AB_BUNDLE_KEY ?= ""
AB_BUNDLE_NAME ?= "${AB_BUNDLE_IMAGE}-${MACHINE}-${AB_BUNDLE_VERSION}"

inherit deploy nopackages

do_fetch[noexec] = "1"
do_unpack[noexec] = "1"
do_patch[noexec] = "1"
do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install[noexec] = "1"

do_bundle() {
    if [ -z "${AB_BUNDLE_IMAGE}" ]; then
        bbfatal "Set AB_BUNDLE_IMAGE to the image recipe to bundle"
    fi
    if [ -z "${AB_BUNDLE_KEY}" ]; then
        bbfatal "Set AB_BUNDLE_KEY to the PKCS#8 signing key (bundle-tool keygen)"
    fi
    rm -rf ${B}/bundle && mkdir -p ${B}/bundle
    cp -L ${DEPLOY_DIR_IMAGE}/${AB_BUNDLE_IMAGE}-${MACHINE}.rootfs.${AB_BUNDLE_IMAGE_FSTYPE} ${B}/bundle/rootfs.img
    {
        echo "compatible = \"${AB_BUNDLE_COMPATIBLE}\""
        echo "version = \"${AB_BUNDLE_VERSION}\""
        echo "security_version = ${AB_BUNDLE_SECURITY_VERSION}"
        echo ""
        echo "[[image]]"
        echo "slot_class = \"rootfs\""
        echo "file = \"rootfs.img\""
    } > ${B}/bundle/bundle.toml
    if [ -n "${AB_BUNDLE_APP_IMAGE}" ]; then
        cp -L ${AB_BUNDLE_APP_IMAGE} ${B}/bundle/app.img
        printf '\n[[image]]\nslot_class = "app"\nfile = "app.img"\n' >> ${B}/bundle/bundle.toml
    fi
    if [ -n "${AB_BUNDLE_FIRMWARE}" ]; then
        echo "" >> ${B}/bundle/bundle.toml
        cat ${AB_BUNDLE_FIRMWARE} >> ${B}/bundle/bundle.toml
    fi
    if [ -n "${AB_BUNDLE_HOOKS}" ]; then
        cp -L ${AB_BUNDLE_HOOKS} ${B}/bundle/hooks
        events=""
        for event in ${AB_BUNDLE_HOOK_EVENTS}; do
            events="$events${events:+, }\"$event\""
        done
        printf '\n[hooks]\nfile = "hooks"\nevents = [%s]\n' "$events" >> ${B}/bundle/bundle.toml
    fi
    bundle-tool create --manifest ${B}/bundle/bundle.toml --key ${AB_BUNDLE_KEY} \
        --output ${B}/${AB_BUNDLE_NAME}.zst
}
do_bundle[doc] = "Creates the signed update bundle from the image with bundle-tool"
do_bundle[depends] += "bundle-tool-native:do_populate_sysroot"
do_bundle[depends] += "${@'${AB_BUNDLE_IMAGE}:do_image_complete' if d.getVar('AB_BUNDLE_IMAGE') else ''}"
do_bundle[vardeps] += "AB_BUNDLE_COMPATIBLE AB_BUNDLE_VERSION AB_BUNDLE_SECURITY_VERSION AB_BUNDLE_APP_IMAGE AB_BUNDLE_FIRMWARE AB_BUNDLE_HOOKS AB_BUNDLE_HOOK_EVENTS"
do_bundle[file-checksums] += "${@'${AB_BUNDLE_KEY}:False' if d.getVar('AB_BUNDLE_KEY') else ''}"
do_bundle[file-checksums] += "${@'${AB_BUNDLE_FIRMWARE}:True' if d.getVar('AB_BUNDLE_FIRMWARE') else ''}"
do_bundle[file-checksums] += "${@'${AB_BUNDLE_HOOKS}:True' if d.getVar('AB_BUNDLE_HOOKS') else ''}"
addtask bundle after do_compile before do_deploy

do_deploy() {
    install -m 0644 ${B}/${AB_BUNDLE_NAME}.zst ${DEPLOYDIR}/
}
addtask deploy after do_bundle before do_build
