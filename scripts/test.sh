#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/end-to-end tests, fuzz smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked 2>&1 | tee target/test.log
bash tests/demo-e2e.sh
bash scripts/fuzz-smoke.sh
# One summary line for CI: the sum of every cargo test result line, plus the end-to-end script.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p + 1, f }' target/test.log
