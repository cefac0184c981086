#!/bin/bash
# Installs what ublkcheck needs on a Debian/Ubuntu host and builds it (kernel-module
# builds for --patch need gcc, make, flex, bison, bc, libelf, libssl and dwarves: without
# pahole the module's struct module misses the BTF fields and insmod refuses it). Idempotent: a
# second run installs nothing and only rebuilds what changed. clang-format, pycodestyle,
# autopep8 and pyflakes check the code (.clang-format, setup.cfg; runner/tests/test_format.py).
#   scripts/bootstrap.sh [BUILD_DIR]      (default: build; WERROR=1 adds -Dwerror=true)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}

PKGS=(meson ninja-build g++ pkg-config liburing-dev libgtest-dev nlohmann-json3-dev fio
      qemu-system-x86 busybox-static cpio kmod xz-utils zstd python3 python3-pytest python3-jsonschema
      util-linux fdisk procps dwarves flex bison bc libelf-dev libssl-dev make gcc lcov
      btrfs-progs xfsprogs e2fsprogs
      clang-format pycodestyle python3-autopep8 python3-pyflakes)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

opts=()
[ "${WERROR:-0}" = 1 ] && opts+=(-Dwerror=true)
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "${opts[@]}"
elif ((${#opts[@]})); then
  meson configure "$BUILD" "${opts[@]}"
fi
ninja -C "$BUILD"
