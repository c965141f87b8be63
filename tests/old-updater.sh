#!/usr/bin/env bash
# Devices whose updater predates format 2 still reach a release published for every kind of
# device: the index's `url` is a format-1 bundle, beside a format-2 bundle (`adaptive`) and a delta.
# The old updater (built from git at OLD_UPDATER_REV, the last commit before format 2) ignores
# what it does not know and installs the format-1 bundle; handed the format-2 bundle itself, it
# refuses it before writing anything. The current updater, on the same index, takes the delta.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${OLD_UPDATER_REV:-dbc2ea4}
top=$PWD
work=$top/target/old-updater
old=$work/bin/updater
if [ "$(cat "$work/bin/rev" 2>/dev/null)" != "$rev" ] || [ ! -x "$old" ]; then
  rm -rf "$work/src" "$work/bin" && mkdir -p "$work/src" "$work/bin"
  git archive "$rev" | tar -x -C "$work/src"
  (cd "$work/src" && cargo build -q --locked -p updater --target-dir "$work/target")
  cp "$work/target/debug/updater" "$old"
  echo "$rev" > "$work/bin/rev"
fi
cargo build -q --release -p bundle-tool -p updater
tool=$top/target/release/bundle-tool new=$top/target/release/updater

run=$work/run
rm -rf "$run" && mkdir -p "$run/www" "$run/dev/keys" "$run/dev/slots"
trap '[ -f "$run/nginx/nginx.pid" ] && kill "$(cat "$run/nginx/nginx.pid")" 2>/dev/null || true' EXIT
python3 -c 'import random, sys; r = random.Random(1); sys.stdout.buffer.write(bytes(r.choice(b"abcdefghijklmnop") for _ in range(6 << 20)))' > "$run/v1.img"
{ head -c $((1 << 20)) /dev/zero; head -c $((5 << 20)) "$run/v1.img"; } > "$run/v2.img"
"$tool" keygen --out "$run/key" >/dev/null
cp "$run/key.pub" "$run/dev/keys/"
create() {  # VERSION IMAGE FORMAT OUTPUT
  printf 'compatible = "acme-robot"\nversion = "%s"\n[[image]]\nslot_class = "rootfs"\nfile = "%s"\n' "$1" "$2" > "$run/m.toml"
  "$tool" create --manifest "$run/m.toml" --key "$run/key.key" --format "$3" --output "$4" >/dev/null
}
create 1.0.0 v1.img 2 "$run/v1.zst"
create 1.1.0 v2.img 1 "$run/acme-1.1.0.zst"
create 1.1.0 v2.img 2 "$run/acme-1.1.0-f2.zst"
"$tool" delta --from "$run/v1.zst" --to "$run/acme-1.1.0-f2.zst" --key "$run/key.key" --output "$run/acme-1.0.0-1.1.0.zst" >/dev/null
"$tool" release --key "$run/key.key" --dir "$run/www" --channel stable --bundle "$run/acme-1.1.0.zst" \
  --adaptive "$run/acme-1.1.0-f2.zst" --delta "$run/acme-1.0.0-1.1.0.zst" >/dev/null
port=$(bash scripts/serve-dir "$run/www" "$run/nginx")

device() {  # fresh device running v1 in A
  rm -rf "$run/dev/state"
  cp "$run/v1.img" "$run/dev/slots/a.img"; printf 'old B' > "$run/dev/slots/b.img"
  cat > "$run/dev/system.toml" <<TOML
compatible = "acme-robot"
keyring = "keys"
state_dir = "state"
[bootloader]
backend = "file"
path = "state/bootloader.env"
[boot]
booted = "A"
[slots.A]
rootfs = "slots/a.img"
[slots.B]
rootfs = "slots/b.img"
[fleet]
url = "http://127.0.0.1:$port/"
channel = "stable"
device_id = "old-1"
TOML
}
fail() { echo "tests/old-updater.sh: $*"; exit 1; }

device
"$old" --config "$run/dev/system.toml" check --json > "$run/old-check.json" || fail "the old updater cannot read the index"
grep -q "\"url\": \"http://127.0.0.1:$port/acme-1.1.0.zst\"" "$run/old-check.json" || fail "old check: $(cat "$run/old-check.json")"
"$old" --config "$run/dev/system.toml" --quiet update >/dev/null || fail "the old updater did not install the format-1 bundle"
cmp -s "$run/v2.img" "$run/dev/slots/b.img" || fail "the old updater wrote something else"

device
set +e
"$old" --config "$run/dev/system.toml" install "$run/acme-1.1.0-f2.zst" 2> "$run/old-f2.err"
code=$?
set -e
# It predates the format check that comes first now; it stops at the first key it does not know.
[ "$code" = 4 ] && grep -q "manifest is invalid: unknown field \`blocks\`" "$run/old-f2.err" || fail "old updater on format 2: exit $code, $(cat "$run/old-f2.err")"
[ "$(cat "$run/dev/slots/b.img")" = "old B" ] || fail "the old updater wrote a format-2 bundle's slot"

device
"$new" --config "$run/dev/system.toml" check --json > "$run/new-check.json"
grep -q '"fetch": "delta"' "$run/new-check.json" || fail "new check: $(cat "$run/new-check.json")"
"$new" --config "$run/dev/system.toml" --quiet update >/dev/null
cmp -s "$run/v2.img" "$run/dev/slots/b.img" || fail "the new updater wrote something else"
# Halt and rollback (docs/fleet.md, "When a release goes bad"): the old updater reads an index
# with `halted`, `withdrawn`, `previous` and `security_version` and starts nothing halted; it does
# not roll back (it predates withdrawal), while the current updater does.
running() {  # VERSION: the device runs it in A
  device
  mkdir -p "$run/dev/state"
  printf '{"groups": {"A": {"version": "%s", "installed_at": null}}}' "$1" > "$run/dev/state/state.json"
}
reason() {  # UPDATER: the reason of its check
  "$1" --config "$run/dev/system.toml" check --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["reason"])'
}
create 1.2.0 v1.img 1 "$run/acme-1.2.0.zst"
"$tool" release --key "$run/key.key" --dir "$run/www" --channel stable --bundle "$run/acme-1.2.0.zst" --rollout 100 >/dev/null
"$tool" release --key "$run/key.key" --dir "$run/www" --channel stable --halt >/dev/null
running 1.1.0
[ "$(reason "$old")" = newest ] || fail "old updater on a halted rollout: $(reason "$old")"
[ "$(reason "$new")" = halted ] || fail "new updater on a halted rollout: $(reason "$new")"
"$tool" release --key "$run/key.key" --dir "$run/www" --channel stable --rollback-to 1.1.0 >/dev/null
running 1.2.0
[ "$(reason "$old")" = newest ] || fail "old updater on a withdrawn release: $(reason "$old")"
[ "$(reason "$new")" = rollback ] || fail "new updater on a withdrawn release: $(reason "$new")"
"$new" --config "$run/dev/system.toml" --quiet update >/dev/null
cmp -s "$run/v2.img" "$run/dev/slots/b.img" || fail "the rollback wrote something else than 1.1.0"
echo "tests/old-updater.sh: ok (updater $rev takes the format-1 bundle, refuses format 2, starts no halted rollout; the current one takes the delta and rolls back)"
