#!/usr/bin/env bash
# Installs the host packages that Nspawn.Build and its tests need, where they are missing (Debian/Ubuntu).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "Run as root (sudo): it installs packages, mounts file systems and boots machines." >&2; exit 1; }
need=()
for pair in systemd-nspawn:systemd-container btrfs:btrfs-progs mkfs.btrfs:btrfs-progs debootstrap:debootstrap \
            eatmydata:eatmydata nsenter:util-linux setpriv:util-linux sudo:sudo runuser:util-linux ip:iproute2 nft:nftables \
            clang:clang objcopy:binutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# The native agent's build (NativeAOT): clang links it, against zlib.
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
