#!/usr/bin/env bash
# Runs every fuzz target for a short while (FUZZ_SECONDS, default 20 each), seeded with a real
# bundle, so CI catches a parser that panics on its first strange input.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  # cargo fuzz needs unstable flags; stable accepts them this way, without sanitizers.
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
seed=fuzz/corpus/bundle_reader
mkdir -p "$seed" fuzz/corpus/manifest fuzz/corpus/boot_env fuzz/corpus/release_index
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 300000 /usr/bin/bash > "$tmp/rootfs.img"
printf 'compatible = "fuzz"\nversion = "1.0.0"\n[[image]]\nslot_class = "rootfs"\nfile = "rootfs.img"\n' > "$tmp/m.toml"
cargo run -q -p bundle-tool -- keygen --out "$tmp/k" >/dev/null
cargo run -q -p bundle-tool -- create --manifest "$tmp/m.toml" --key "$tmp/k.key" --output "$seed/seed.zst" >/dev/null
zstd -dc "$seed/seed.zst" | tar -xO manifest.toml > fuzz/corpus/manifest/seed.toml
printf 'ORDER=A B\nA_LEFT=2\nB_LEFT=0\nA_OK=1\nB_OK=0\n' > fuzz/corpus/boot_env/seed.env
cargo run -q -p bundle-tool -- release --key "$tmp/k.key" --dir "$tmp/www" --channel stable \
  --bundle "$seed/seed.zst" --rollout 5 >/dev/null
cp "$tmp/www/stable.toml" fuzz/corpus/release_index/seed.toml
for target in bundle_reader manifest boot_env release_index; do
  echo "fuzz: $target for ${seconds}s"
  if ! "${fuzz[@]}" run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=512 \
      -print_final_stats=1 > "$tmp/$target.log" 2>&1; then
    tail -n 40 "$tmp/$target.log"
    echo "fuzz: $target failed; the crashing input is under fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E 'stat::number_of_executed_units' "$tmp/$target.log"
done
