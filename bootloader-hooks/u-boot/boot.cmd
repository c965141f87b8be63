# A/B/R slot selection for U-Boot: the same logic as bootloader-hooks/grub/select.cfg and the
# reference model in updater/src/bootloader/mod.rs (docs/boot-flow.md). Build it with
#   mkimage -A arm -O linux -T script -C none -d boot.cmd boot.scr     (-A x86 for x86)
#
# Boot state (RAUC's U-Boot names): BOOT_ORDER ("A B" or "B A"), BOOT_A_LEFT / BOOT_B_LEFT
# (attempts left, 0-9), BOOT_A_OK / BOOT_B_OK (written by the updater). The first group in
# BOOT_ORDER with attempts left is chosen and one attempt is spent before it boots; with none left
# the recovery group R boots. Without BOOT_ORDER (never initialised) A boots without counting.
#
# Where the state lives:
# - U-Boot's own environment (saveenv), the usual case: the updater's [bootloader] names the same
#   storage as /etc/fw_env.config (backend = "uboot", path, offset, size, redundant_offset);
# - or, when updater_env_file is set (e.g. updater_env_dev="virtio 0:1",
#   updater_env_file=/uboot.env, updater_env_size=0x4000), a CRC-protected environment file on a
#   FAT partition, read with `env import -c` and written with `env export -c` + fatwrite: the same
#   format the updater's uboot backend writes (path = that file, offset = 0, size = its size).
#
# Board variables: updater_devtype/updater_devnum (default virtio 0) hold the root partitions,
# labelled rootA, rootB, rootR; updater_boot, if set, boots ${kernel_addr_r} and
# ${ramdisk_addr_r} (e.g. "booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}");
# without it the x86 `zboot` is used.

if test -z "${updater_devtype}"; then setenv updater_devtype virtio; fi
if test -z "${updater_devnum}"; then setenv updater_devnum 0; fi
if test -z "${updater_env_addr}"; then setenv updater_env_addr ${loadaddr}; fi

if test -n "${updater_env_file}"; then
  if load ${updater_env_dev} ${updater_env_addr} ${updater_env_file}; then
    env import -c ${updater_env_addr} ${filesize}
  fi
fi

setenv updater_slot
if test -z "${BOOT_ORDER}"; then
  setenv updater_slot A
else
  # "A B" after BOOT_ORDER keeps both groups in line whatever BOOT_ORDER holds.
  for s in ${BOOT_ORDER} A B; do
    if test -z "${updater_slot}"; then
      if test "${s}" = "A"; then
        if test "${BOOT_A_LEFT}" = "9"; then setenv BOOT_A_LEFT 8; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "8"; then setenv BOOT_A_LEFT 7; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "7"; then setenv BOOT_A_LEFT 6; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "6"; then setenv BOOT_A_LEFT 5; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "5"; then setenv BOOT_A_LEFT 4; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "4"; then setenv BOOT_A_LEFT 3; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "3"; then setenv BOOT_A_LEFT 2; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "2"; then setenv BOOT_A_LEFT 1; setenv updater_slot A
        elif test "${BOOT_A_LEFT}" = "1"; then setenv BOOT_A_LEFT 0; setenv updater_slot A
        fi
      elif test "${s}" = "B"; then
        if test "${BOOT_B_LEFT}" = "9"; then setenv BOOT_B_LEFT 8; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "8"; then setenv BOOT_B_LEFT 7; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "7"; then setenv BOOT_B_LEFT 6; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "6"; then setenv BOOT_B_LEFT 5; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "5"; then setenv BOOT_B_LEFT 4; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "4"; then setenv BOOT_B_LEFT 3; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "3"; then setenv BOOT_B_LEFT 2; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "2"; then setenv BOOT_B_LEFT 1; setenv updater_slot B
        elif test "${BOOT_B_LEFT}" = "1"; then setenv BOOT_B_LEFT 0; setenv updater_slot B
        fi
      fi
    fi
  done
  if test -z "${updater_slot}"; then setenv updater_slot R; fi
  if test -n "${updater_env_file}"; then
    env export -c -s ${updater_env_size} ${updater_env_addr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT BOOT_A_OK BOOT_B_OK
    fatwrite ${updater_env_dev} ${updater_env_addr} ${updater_env_file} ${updater_env_size}
  else
    saveenv
  fi
fi

echo "updater: booting group ${updater_slot}"
part number ${updater_devtype} ${updater_devnum} root${updater_slot} updater_part
load ${updater_devtype} ${updater_devnum}:${updater_part} ${kernel_addr_r} /boot/vmlinuz
load ${updater_devtype} ${updater_devnum}:${updater_part} ${ramdisk_addr_r} /boot/initrd.img
setenv bootargs "root=PARTLABEL=root${updater_slot} updater.slot=${updater_slot} ro rootwait console=ttyS0 panic=5 ${updater_extra_args}"
if test -n "${updater_boot}"; then
  run updater_boot
else
  zboot ${kernel_addr_r} 0 ${ramdisk_addr_r} ${filesize}
fi
echo "updater: group ${updater_slot} did not start; resetting"
reset
