#!/usr/bin/env bash
# End to end: the README's demo on the built-in example, in a scratch folder. The demo checks each
# step itself (exit codes, slot contents, boot state) and fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
DEMO_DIR=$scratch bash scripts/demo.sh > "$scratch.log" 2>&1 || { cat "$scratch.log"; exit 1; }
grep -q '^demo: OK' "$scratch.log"
echo "tests/demo-e2e.sh: ok"
rm -f "$scratch.log"
