#!/usr/bin/env bash
# End to end on real boots: every QEMU rig scenario (qemu/scenarios), GRUB and U-Boot.
set -uo pipefail
cd "$(dirname "$0")/.."
exec bash qemu/scenarios "$@"
