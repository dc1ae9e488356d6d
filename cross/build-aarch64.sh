#!/usr/bin/env bash
# Kept for existing scripts: the aarch64 build of cross/build.sh.
exec "$(dirname "$0")/build.sh" aarch64 "$@"
