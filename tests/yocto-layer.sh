#!/usr/bin/env bash
# The Yocto layer: oelint-adv reports no error or warning on any recipe, class or append; the
# crates list matches Cargo.lock; the partition names agree across .wks, config and boot scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv-yocto
if [ ! -x "$venv/bin/oelint-adv" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q oelint-adv oelint-parser
fi
layer=yocto-layer/meta-ab-updater
mapfile -t files < <(find "$layer" -name '*.bb' -o -name '*.bbappend' -o -name '*.bbclass' | sort)
report=$("$venv/bin/oelint-adv" --quiet "${files[@]}" 2>&1 || true)
problems=$(grep -E ':(error|warning):' <<< "$report" || true)
if [ -n "$problems" ]; then
  echo "$problems"
  echo "yocto layer: oelint-adv found errors or warnings"
  exit 1
fi
echo "yocto layer: oelint-adv clean on ${#files[@]} files ($(grep -c ':info:' <<< "$report" || true) infos)"
python3 "$layer/scripts/gen-crates-inc" --check
"$venv/bin/python" tests/yocto_layer_labels.py
"$venv/bin/python" tests/yocto_layer_source.py
