#!/usr/bin/env bash
# The main job end to end on the built-in example (examples/acme-robot): make a signing key,
# build two versions of a rootfs image, bundle and verify them as CI would, install on a
# simulated device (slots are files, the bootloader state is a file), "reboot" into the new group,
# mark it good, and watch a tampered bundle and a downgrade being refused. Then the same on real
# boots under QEMU (qemu/demo; DEMO_QEMU=0 skips it). Each step says what it shows; the script
# stops with a non-zero status if anything behaves otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release -q -p bundle-tool -p updater
bin=$PWD/target/release
example=$PWD/examples/acme-robot
work=${DEMO_DIR:-$PWD/target/demo}
rm -rf "$work"; mkdir -p "$work"/{ci,device/keys,device/slots}
ci=$work/ci dev=$work/device

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }
updater() { "$bin/updater" --config "$dev/system.toml" "$@"; }
# One value of `updater status --json`, by its keys: field slots B good
field() { updater status --json | python3 -c 'import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1:]:
    value = value[key]
print(value)' "$@"; }

build_rootfs() {  # version -> $ci/rootfs-VERSION.img
  local stage=$ci/stage-$1
  cp -a "$example/rootfs" "$stage"
  echo "$1" > "$stage/etc/robot-version"
  E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -L rootfs -U clear -E root_owner=0:0 \
    -d "$stage" "$ci/rootfs-$1.img" 16M
  rm -rf "$stage"
}
make_bundle() {  # version
  mkdir -p "$ci/in-$1"
  cp "$ci/rootfs-$1.img" "$ci/in-$1/rootfs.img"
  sed "s/@VERSION@/$1/" "$example/bundle.toml" > "$ci/in-$1/bundle.toml"
  run "$bin/bundle-tool" create --manifest "$ci/in-$1/bundle.toml" --key "$ci/release.key" --output "$ci/acme-$1.zst"
}

step "CI: a signing key (private key stays in CI, public key goes into the device's keyring)"
run "$bin/bundle-tool" keygen --out "$ci/release"
cp "$ci/release.pub" "$dev/keys/"

step "CI: two versions of the rootfs image and their signed bundles"
for v in 1.0.0 1.1.0; do build_rootfs $v; make_bundle $v; done
run "$bin/bundle-tool" verify --keyring "$ci/release.pub" "$ci/acme-1.1.0.zst"
run "$bin/bundle-tool" info "$ci/acme-1.1.0.zst"
step "Standard tools see an ordinary archive: zstd -dc | tar -t"
zstd -dc "$ci/acme-1.1.0.zst" | tar -tv

step "Device: the example config; A runs 1.0.0, B and the recovery group R hold older images"
cp "$example/system.toml" "$dev/"
cp "$ci/rootfs-1.0.0.img" "$dev/slots/rootfs-a.img"
cp "$ci/rootfs-1.0.0.img" "$dev/slots/rootfs-r.img"
head -c 1M /dev/zero > "$dev/slots/rootfs-b.img"
run updater --quiet install "$ci/acme-1.0.0.zst" --target R   # R is written only when named
run updater status

step "Install 1.1.0: streamed, every chunk verified before it is written, read back, then B boots next"
run updater install "$ci/acme-1.1.0.zst"
cmp "$ci/rootfs-1.1.0.img" "$dev/slots/rootfs-b.img" && echo "slot B is byte-identical to the 1.1.0 image"
run updater status
[ "$(field next)" = B ] || fail "B should boot next"

step "\"Reboot\" into B (the bootloader spends one try), boot-check marks it good"
sed -i 's/^booted = "A"/booted = "B"/' "$dev/system.toml"
run updater mark-good
run updater status
[ "$(field slots B good)" = True ] || fail "B should be good"
[ "$(field security_floor)" = 1 ] || fail "the security floor should be 1 after mark-good"

step "A tampered bundle (one byte flipped in the payload) is refused; nothing changes"
cp "$ci/acme-1.1.0.zst" "$work/tampered.zst"
printf '\x55' | dd of="$work/tampered.zst" bs=1 seek=$(( $(stat -c %s "$work/tampered.zst") / 2 )) conv=notrunc status=none
before=$(sha256sum "$dev/slots/rootfs-b.img")
set +e; updater install "$work/tampered.zst"; rc=$?; set -e
echo "exit status $rc"
[ "$rc" = 4 ] || fail "a tampered bundle must exit 4, got $rc"
[ "$(sha256sum "$dev/slots/rootfs-b.img")" = "$before" ] || fail "the running group changed"
[ "$(field slots A bootable)" = False ] || fail "the half-written group must not be bootable"
[ "$(field next)" = B ] || fail "the next boot must stay on the running group"

step "A downgrade to 1.0.0 is refused unless asked for"
set +e; updater install "$ci/acme-1.0.0.zst"; rc=$?; set -e
echo "exit status $rc"
[ "$rc" = 6 ] || fail "a downgrade must exit 6, got $rc"

step "The same 1.1.0 bundle through a pipe (stdin), as from a download: A is rewritten"
printf '$ cat acme-1.1.0.zst | updater install -\n'
cat "$ci/acme-1.1.0.zst" | updater --quiet install -
cmp "$ci/rootfs-1.1.0.img" "$dev/slots/rootfs-a.img"
run updater status

step "Fleet: CI publishes 1.1.0 for everybody and 1.2.0 to 5 % of the devices, as static files"
build_rootfs 1.2.0; make_bundle 1.2.0
www=$work/www
run "$bin/bundle-tool" release --key "$ci/release.key" --dir "$www" --channel stable --bundle "$ci/acme-1.1.0.zst"
run "$bin/bundle-tool" release --key "$ci/release.key" --dir "$www" --channel stable --bundle "$ci/acme-1.2.0.zst" --rollout 5
sed -n '1,/BEGIN SIGNATURES/p' "$www/stable.toml"
port=$(scripts/serve-dir "$www" "$work/nginx")
trap 'kill $(cat "$work/nginx/nginx.pid") 2>/dev/null || true' EXIT
printf '\n[fleet]\nurl = "http://127.0.0.1:%s/"\nchannel = "stable"\ndevice_id = "robot-0002"\n' "$port" >> "$dev/system.toml"
echo "nginx serves $www on port $port; the device's [fleet] points there"

step "Device: check says why it does not take 1.2.0 yet (its bucket is outside the 5 %)"
run updater check
[ "$(updater check --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["reason"])')" = not-in-rollout ] \
  || fail "robot-0002 should be outside a 5 % rollout of 1.2.0"

step "CI promotes 1.2.0 to everybody; the device updates itself over HTTP (streamed, resumable)"
run "$bin/bundle-tool" release --key "$ci/release.key" --dir "$www" --channel stable --bundle "$ci/acme-1.2.0.zst"
run updater check
run updater update
cmp "$ci/rootfs-1.2.0.img" "$dev/slots/rootfs-a.img" && echo "slot A is byte-identical to the 1.2.0 image"
[ "$(field next)" = A ] || fail "A should boot next"
echo
echo "demo: OK (work folder: $work)"

if [ "${DEMO_QEMU:-1}" = 1 ]; then
  step "The same updater on real boots: a QEMU machine with GRUB, A/B/R partitions and a watchdog"
  bash qemu/demo
fi
