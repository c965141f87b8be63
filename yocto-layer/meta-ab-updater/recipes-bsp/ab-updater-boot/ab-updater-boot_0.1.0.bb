SUMMARY = "A/B updater boot scripts: GRUB configuration and environment, U-Boot boot.scr"
DESCRIPTION = "Deploys bootloader-hooks/ of the updater: grub.cfg and select.cfg with an \
               initialised grubenv for the ESP, and boot.scr for U-Boot boards."
SECTION = "bootloaders"

require recipes-core/updater/ab-updater-source.inc

inherit deploy nopackages

DEPENDS += "grub-native u-boot-tools-native"

# The boot state of a fresh image: group A runs and is confirmed, B was never installed.
AB_BOOT_INITIAL_TRIES ?= "2"
UBOOT_ARCH_MKIMAGE ?= "arm"

do_configure[noexec] = "1"
do_install[noexec] = "1"

do_compile() {
    rm -f ${B}/grubenv
    grub-editenv ${B}/grubenv create
    grub-editenv ${B}/grubenv set ORDER="A B" A_LEFT=${AB_BOOT_INITIAL_TRIES} B_LEFT=0 A_OK=1 B_OK=0
    # Partition numbers in the order of wic/ab-updater-gpt.wks.in.
    {
        echo 'set part_A=gpt2'
        echo 'set part_B=gpt3'
        echo 'set part_R=gpt4'
        cat ${S}/bootloader-hooks/grub/grub.cfg
    } > ${B}/grub.cfg
    mkimage -A ${UBOOT_ARCH_MKIMAGE} -O linux -T script -C none \
        -d ${S}/bootloader-hooks/u-boot/boot.cmd ${B}/boot.scr
}

do_deploy() {
    install -m 0644 ${B}/grub.cfg ${B}/grubenv ${B}/boot.scr ${DEPLOYDIR}/
    install -m 0644 ${S}/bootloader-hooks/grub/select.cfg ${DEPLOYDIR}/
}
addtask deploy after do_compile before do_build

COMPATIBLE_HOST = ".*-linux"
