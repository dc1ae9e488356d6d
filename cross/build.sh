#!/usr/bin/env bash
# Builds stripped release binaries of ferrule for ARM gateways with Debian's rustc-web and its
# ARM standard libraries (see cross/README.md for the packages), and reports their size.
#
#   cross/build.sh [aarch64] [armv7] [amd64]     (default: aarch64)
#
# Profile `dist` (Cargo.toml): the release profile with fat LTO and one codegen unit, for the
# smallest and fastest binary. Output: target/<triple>/dist/ferrule ($CARGO_TARGET_DIR if set).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || set -- aarch64
for arch in "$@"; do
  case "$arch" in
    aarch64 | arm64)
      triple=aarch64-unknown-linux-gnu gcc=aarch64-linux-gnu-gcc strip=aarch64-linux-gnu-strip
      libc=libc6-dev-arm64-cross
      ;;
    armv7 | armhf)
      triple=armv7-unknown-linux-gnueabihf gcc=arm-linux-gnueabihf-gcc strip=arm-linux-gnueabihf-strip
      libc=libc6-dev-armhf-cross
      ;;
    amd64 | x86_64)
      triple=x86_64-unknown-linux-gnu gcc=cc strip=strip
      libc=libc6-dev
      ;;
    *)
      echo "cross/build.sh: unknown architecture '$arch' (aarch64, armv7 or amd64)" >&2
      exit 2
      ;;
  esac
  command -v "$gcc" >/dev/null || {
    echo "cross/build.sh: $gcc is missing; see cross/README.md for the packages" >&2
    exit 1
  }
  # ring's build script compiles C against the target's libc headers.
  echo '#include <stdint.h>' | "$gcc" -E -x c - >/dev/null 2>&1 || {
    echo "cross/build.sh: $gcc cannot find the C library headers; install $libc" >&2
    exit 1
  }
  if [ "$triple" != x86_64-unknown-linux-gnu ]; then
    # Debian's rustc has the ARM standard libraries; rustup's toolchain here has none.
    export RUSTC="${RUSTC:-/usr/bin/rustc}"
    [ -d "$("$RUSTC" --print sysroot)/lib/rustlib/$triple" ] || {
      echo "cross/build.sh: $RUSTC has no standard library for $triple; see cross/README.md" >&2
      exit 1
    }
  fi
  env_triple=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  export "CARGO_TARGET_${env_triple}_LINKER=$gcc"
  export "CC_$(echo "$triple" | tr '-' '_')=$gcc"
  start=$(date +%s)
  cargo build --locked --profile dist --target "$triple"
  bin="${CARGO_TARGET_DIR:-target}/$triple/dist/ferrule"
  "$strip" "$bin"
  echo "$triple: $bin, stripped, $(stat -c %s "$bin") bytes ($(( $(stat -c %s "$bin") / 1024 )) KiB), built in $(( $(date +%s) - start )) s"
done
