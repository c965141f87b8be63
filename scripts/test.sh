#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/end-to-end tests, the Yocto layer's
# checks, fuzz smoke, and the QEMU scenarios on real boots.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
# A run needs about 12 GiB (target/, the QEMU disks, bitbake's parse cache); on a fuller disk the
# first symptom is a linker crash, so say it up front.
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "$free_kib" -lt $((12 * 1024 * 1024)) ]; then
  echo "test: warning: only $((free_kib / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); a full run needs about 12 GiB" >&2
fi
# rustfmt and clippy come with rustup's toolchain; Debian has them only for its older rustc.
if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
  # With the optional features too: the power-cut tests exist only with fault-injection, so a
  # plain build would not notice one that no longer compiles.
  cargo clippy --workspace --all-targets --locked --features updater/dbus,updater/fault-injection -- -D warnings
else
  echo "test: rustfmt or clippy is missing (Debian's cargo-web has neither): format and lints not checked here" >&2
fi
# With RAUC's D-Bus API (the `dbus` feature, off in the default build for size), tested against
# the real rauc client.
cargo test --workspace --locked --features updater/dbus 2>&1 | tee target/test.log
# The power-cut campaign needs the fault-injection cut points, which only test builds have.
cargo test --locked -p updater --features fault-injection --test power_cut --test lying_storage --test changing_slots -- --nocapture 2>&1 \
  | tee -a target/test.log | grep -E 'cut points|^test result'
# The fleet figures (rollout shares, poll spread), printed for the log; asserted in the run above.
cargo test --locked -p updater --test fleet_statistics -- --nocapture 2>&1 | grep -E '%|peak|per second'
# Script checks stop this script when they fail; each that passes counts once in the summary.
passed() { echo "$1: 1 passed, 0 failed" >> target/script-checks.log; }
rm -f target/script-checks.log
DEMO_QEMU=0 bash tests/demo-e2e.sh
passed "demo end to end"
# Test hooks never ship: the release binary the demo built has no fault-injection door.
if grep -qaE 'UPDATER_PAUSE_BEFORE_ACTIVATE|UPDATER_CHANGE_AFTER_PLAN' target/release/updater; then
  echo "fault injection is compiled into target/release/updater"
  exit 1
fi
bash tests/old-updater.sh
passed "older updaters reach a format-2 release"
bash tests/yocto-layer.sh
passed "Yocto layer"
# Dependency vetting (deny.toml): licences, banned crates, sources. cargo-deny comes from
# crates.io; an older rustc than it needs (Debian's cargo-web) skips it, as rustfmt and clippy.
if command -v cargo-deny >/dev/null || cargo install cargo-deny --locked -q; then
  cargo deny --locked check licenses bans sources
  passed "cargo deny"
  # Advisories only from a copy of the RustSec database already on the machine (no fetching).
  if compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*" >/dev/null; then
    cargo deny --locked check --disable-fetch advisories
    passed "cargo deny advisories"
  fi
else
  echo "test: cargo-deny could not be installed with this toolchain: dependencies not vetted here" >&2
fi
# Real bitbake reads the layer on the second core while fuzzing and QEMU (one TCG thread) use the
# first; its output follows the scenarios'.
bash tests/yocto-bitbake.sh > target/yocto-bitbake.log 2>&1 &
bitbake_pid=$!
trap 'kill $bitbake_pid 2>/dev/null || true' EXIT
bash scripts/fuzz-smoke.sh
qemu_ok=1
bash tests/qemu-scenarios.sh | tee target/qemu-scenarios.log || qemu_ok=0
bitbake_ok=1
wait $bitbake_pid || bitbake_ok=0
trap - EXIT
cat target/yocto-bitbake.log
if [ $bitbake_ok = 1 ]; then passed "Yocto layer through bitbake"; else echo "Yocto layer through bitbake: 0 passed, 1 failed" >> target/script-checks.log; fi
# One summary line for CI: every cargo test, the script checks and the QEMU scenarios.
awk '/^test result:/ { p += $4; f += $6 } /(^|: )[0-9]+ passed, [0-9]+ failed$/ { p += $(NF-3); f += $(NF-1) }
     END { printf "%d passed, %d failed\n", p, f }' target/test.log target/script-checks.log target/qemu-scenarios.log
[ $qemu_ok = 1 ] && [ $bitbake_ok = 1 ]
