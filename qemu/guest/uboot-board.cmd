# The QEMU rig's board settings, put in front of bootloader-hooks/u-boot/boot.cmd: U-Boot's own
# environment is stored nowhere on qemu-x86, so the boot state lives in an env file on the ESP.
setenv updater_env_dev "virtio 0:1"
setenv updater_env_file /uboot.env
setenv updater_env_size 0x4000
setenv updater_env_addr 0x7100000
setenv updater_devtype virtio
setenv updater_devnum 0
setenv updater_extra_args quiet
