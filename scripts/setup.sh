#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmark need on a Debian 12 machine (as
# root), and nothing when it is already there. Safe to run again.
set -euo pipefail

packages=(zstd tar openssl e2fsprogs time gcc libc6-dev pkg-config ca-certificates curl
  grub-common grub-emu libubootenv-tool u-boot-tools mtools dosfstools gdisk systemd python3 python3-venv
  qemu-system-x86 ovmf grub-efi-amd64-bin busybox-static kmod cpio u-boot-qemu stm32flash nginx-light
  mmdebstrap
  # extended attributes kept when data follows its group (updater/tests/group_data.rs)
  attr
  # RAUC's D-Bus API (updater/tests/rauc_dbus.rs): a private bus, the real rauc client, gdbus
  dbus-daemon rauc libglib2.0-bin
  # bitbake (tests/yocto-bitbake.sh): what poky's sanity check and HOSTTOOLS ask of the host
  locales chrpath diffstat gawk lz4 file wget git bzip2 patch make g++ rpcsvc-proto
  python3-git python3-jinja2 python3-pexpect python3-subunit)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  # rustup's installer needs the network beyond the package registries. Debian 12's rustc is 1.63;
  # its rustc-web/cargo-web (the toolchain Debian builds its browsers with) is 1.85 in bookworm and 1.96 in bookworm-security, which this workspace needs.
  echo "setup: no cargo found; installing Debian's cargo-web and rustc-web"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends cargo-web rustc-web >/dev/null
fi
# The workspace's rust-version (Cargo.toml); Debian 12's own rustc is older, so say so plainly
# rather than fail somewhere in the build.
rust_needed=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.toml")
rust_found=$(rustc --version | awk '{print $2}')
if ! printf "%s\n%s\n" "$rust_needed" "$rust_found" | sort -V -C; then
  echo "setup: rustc $rust_found is older than $rust_needed, which this workspace needs; install Rust $rust_needed or newer with rustup" >&2
  exit 1
fi
