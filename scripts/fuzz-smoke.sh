#!/usr/bin/env bash
# Runs every fuzz target for a short while (FUZZ_SECONDS, default 20 each), seeded with a real
# bundle, so CI catches a parser that panics on its first strange input. The long campaign
# (docs/threat-model.md) runs each target for a number of executions instead:
#   FUZZ_RUNS=10000000 bash scripts/fuzz-smoke.sh [TARGET...]
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
all=(bundle_reader manifest boot_env release_index api_request http_response boot_env_storage
  signature byte_ranges url)
for target in "${all[@]}"; do mkdir -p "fuzz/corpus/$target"; done
# Targets named on the command line run alone (two halves can run side by side on two cores).
targets=("${@:-${all[@]}}")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 300000 /usr/bin/bash > "$tmp/rootfs.img"
printf 'compatible = "fuzz"\nversion = "1.0.0"\n[[image]]\nslot_class = "rootfs"\nfile = "rootfs.img"\n' > "$tmp/m.toml"
cargo run -q -p bundle-tool -- keygen --out "$tmp/k" >/dev/null
cargo run -q -p bundle-tool -- create --manifest "$tmp/m.toml" --key "$tmp/k.key" --output "$seed/seed.zst" >/dev/null
zstd -dc "$seed/seed.zst" | tar -xO manifest.toml > fuzz/corpus/manifest/seed.toml
# A second seed with a hook executable and an archive component (the entries after the signature).
printf '#!/bin/sh\nexit 0\n' > "$tmp/hook.sh"
tar -cf "$tmp/app.tar" -C "$tmp" hook.sh
printf '[[image]]\nslot_class = "app"\nfile = "app.tar"\nkind = "archive"\n[hooks]\nfile = "hook.sh"\nevents = ["pre-install", "migrate-data"]\n' \
  >> "$tmp/m.toml"
cargo run -q -p bundle-tool -- create --manifest "$tmp/m.toml" --key "$tmp/k.key" --output "$seed/seed-hooks.zst" >/dev/null
zstd -dc "$seed/seed-hooks.zst" | tar -xO manifest.toml > fuzz/corpus/manifest/seed-hooks.toml
printf 'ORDER=A B\nA_LEFT=2\nB_LEFT=0\nA_OK=1\nB_OK=0\n' > fuzz/corpus/boot_env/seed.env
cargo run -q -p bundle-tool -- release --key "$tmp/k.key" --dir "$tmp/www" --channel stable \
  --bundle "$seed/seed.zst" --rollout 5 >/dev/null
cp "$tmp/www/stable.toml" fuzz/corpus/release_index/seed.toml
printf 'POST /update HTTP/1.1\r\nAuthorization: Bearer t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n4;x=1\r\nabcd\r\n0\r\nT: v\r\n\r\n' \
  > fuzz/corpus/api_request/seed-chunked
printf 'GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc' > fuzz/corpus/api_request/seed-length
printf 'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nETag: "v1"\r\nContent-Length: 5\r\n\r\nhello' \
  > fuzz/corpus/http_response/seed-range
printf 'HTTP/1.1 302 Found\r\nLocation: ../other/b.zst\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n' \
  > fuzz/corpus/http_response/seed-redirect
printf '0001\n\r\n--0001\r\nContent-Type: application/zstd\r\nContent-Range: bytes 0-3/20\r\n\r\nabcd\r\n--0001\r\nContent-Range: bytes 10-11/20\r\n\r\nxy\r\n--0001--\r\n' \
  > fuzz/corpus/byte_ranges/seed-multipart
printf 'https://updates.example/fleet/stable.toml\0../bundles/v2.zst?x=1#f' > fuzz/corpus/url/seed-relative
printf 'http://[::1]:8080/a/b\0//mirror.example:81/./c/../d' > fuzz/corpus/url/seed-authority
grub-editenv "$tmp/grubenv" create
grub-editenv "$tmp/grubenv" set ORDER="A B" A_LEFT=2 B_LEFT=0 A_OK=1 B_OK=0
cp "$tmp/grubenv" fuzz/corpus/boot_env_storage/seed-grubenv
printf 'BOOT_ORDER=A B\0BOOT_A_LEFT=2\0\0' > fuzz/corpus/boot_env_storage/seed-uboot
cp fuzz/corpus/boot_env/seed.env fuzz/corpus/boot_env_storage/seed.env
{ cat "$tmp/k.pub"; printf '\0'; zstd -dc "$seed/seed.zst" | tar -xO manifest.sig; } > fuzz/corpus/signature/seed
if [ -n "${FUZZ_RUNS:-}" ]; then
  limit=(-runs="$FUZZ_RUNS")
else
  limit=(-max_total_time="$seconds")
fi
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${FUZZ_RUNS:-${seconds}s} ${FUZZ_RUNS:+runs}"
  if ! "${fuzz[@]}" run "$target" "fuzz/corpus/$target" -- "${limit[@]}" -rss_limit_mb=512 \
      -print_final_stats=1 > "$tmp/$target.log" 2>&1; then
    tail -n 40 "$tmp/$target.log"
    echo "fuzz: $target failed; the crashing input is under fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$tmp/$target.log"
  grep -E '^Done [0-9]+ runs in [0-9]+ second' "$tmp/$target.log" || true
  echo "fuzz: $target corpus: $(find "fuzz/corpus/$target" -type f | wc -l) inputs"
done
