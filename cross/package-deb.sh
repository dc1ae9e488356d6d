#!/usr/bin/env bash
# Builds a Debian package of ferrule from an already built binary, with dpkg-deb only (no
# cargo-deb: one less tool to install, and the same script serves every architecture).
#
#   cross/package-deb.sh [ARCH] [BINARY]
#
# ARCH: amd64 (default), arm64 or armhf; BINARY defaults to the `dist` binary of cross/build.sh
# for that architecture. Output: target/debian/ferrule_<version>_<arch>.deb (path printed; under
# $CARGO_TARGET_DIR when set).
#
# The package holds /usr/bin/ferrule, the systemd unit (not enabled: the config needs editing
# first), /etc/ferrule/ferrule.yaml (a conffile: configs/gateway.yaml, which runs as is), the
# commented reference config under /usr/share/doc/ferrule/, and creates the `ferrule` system
# user (in group `dialout`, for serial ports) on install. Purging removes the user's state in
# /var/lib/ferrule only when asked (`apt purge`), never on remove.
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-amd64}"
case "$arch" in
  amd64) triple=x86_64-unknown-linux-gnu ;;
  arm64) triple=aarch64-unknown-linux-gnu ;;
  armhf) triple=armv7-unknown-linux-gnueabihf ;;
  *) echo "cross/package-deb.sh: unknown architecture '$arch' (amd64, arm64 or armhf)" >&2; exit 2 ;;
esac
tdir="${CARGO_TARGET_DIR:-target}"
bin="${2:-$tdir/$triple/dist/ferrule}"
[ -x "$bin" ] || { echo "cross/package-deb.sh: no binary at $bin: run cross/build.sh first" >&2; exit 1; }
# The newest glibc symbol version the binary needs (Debian 12 and Raspberry Pi OS 12 have 2.36).
glibc=$(readelf -V "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out="$tdir/debian"
root="$out/ferrule_${version}_${arch}"
rm -rf "$root"
install -D -m 0755 "$bin" "$root/usr/bin/ferrule"
install -D -m 0644 systemd/ferrule.service "$root/lib/systemd/system/ferrule.service"
install -D -m 0640 configs/gateway.yaml "$root/etc/ferrule/ferrule.yaml"
install -D -m 0644 configs/example.yaml "$root/usr/share/doc/ferrule/example.yaml"
install -D -m 0644 configs/example.acl "$root/usr/share/doc/ferrule/example.acl"
install -D -m 0644 README.md "$root/usr/share/doc/ferrule/README.md"
install -D -m 0644 docs/benchmarks.md "$root/usr/share/doc/ferrule/benchmarks.md"
install -d "$root/DEBIAN"
size=$(du -ks "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: ferrule
Version: $version
Architecture: $arch
Maintainer: ferrule developers <ferrule@example.com>
Installed-Size: $size
Depends: libc6 (>= ${glibc:-2.31}), libgcc-s1, adduser
Section: net
Priority: optional
Homepage: https://github.com/ferrule/ferrule
Description: industrial edge agent: Modbus to MQTT with store-and-forward
 Polls Modbus TCP/RTU devices by a YAML point map, publishes their state to an
 embedded MQTT broker, relays messages upstream through a durable SQLite queue,
 and writes checked values back to the devices.
CONTROL
echo /etc/ferrule/ferrule.yaml > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd ferrule >/dev/null; then
        adduser --system --group --home /var/lib/ferrule --no-create-home ferrule >/dev/null
    fi
    adduser ferrule dialout >/dev/null 2>&1 || true
    # The config may hold paths to secrets: readable by root and the service only.
    chown root:ferrule /etc/ferrule /etc/ferrule/ferrule.yaml
    chmod 0750 /etc/ferrule
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
        # An upgrade restarts a running agent; a first install leaves it to the user.
        if [ -n "$2" ] && systemctl is-active --quiet ferrule; then
            systemctl restart ferrule || true
        fi
    fi
    if [ -z "$2" ]; then
        echo "ferrule: edit /etc/ferrule/ferrule.yaml, check it with 'ferrule check /etc/ferrule/ferrule.yaml',"
        echo "ferrule: then start it with 'systemctl enable --now ferrule'"
    fi
fi
exit 0
POSTINST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl disable --now ferrule >/dev/null 2>&1 || true
fi
exit 0
PRERM
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    # The queue may hold data not yet delivered: purge is the explicit request to drop it.
    rm -rf /var/lib/ferrule
    if getent passwd ferrule >/dev/null && command -v deluser >/dev/null; then
        deluser --system ferrule >/dev/null 2>&1 || true
    fi
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
dpkg-deb --root-owner-group -Zxz --build "$root" >/dev/null
echo "$root.deb"
