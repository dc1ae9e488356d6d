#!/usr/bin/env bash
# Builds a stripped release binary of ferrule for aarch64-unknown-linux-gnu with Debian's
# rustc-web and its aarch64 std (see cross/README.md for the packages).
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
export RUSTC="${RUSTC:-/usr/bin/rustc}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}"
export CC_aarch64_unknown_linux_gnu="${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}"
cargo build --locked --release --target "$target"
bin="target/$target/release/ferrule"
aarch64-linux-gnu-strip "$bin" 2>/dev/null || true
ls -l "$bin"
echo "size: $(stat -c %s "$bin") bytes"
