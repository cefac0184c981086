#!/bin/bash
# Builds the upstream ublk selftest server (kublk) from a kernel tree, and its helper
# metadata_size next to it when the tree has one. `ublkcheck bench --kublk PATH` measures
# kublk beside ublk-fixture; `ublkcheck run --suite kselftests` runs the tree's selftest
# scripts with both (it calls this script with LIBURING set).
#   scripts/build-kublk.sh TREE OUT     (TREE: e.g. from `./ublkcheck fetch-source 7.2 DIR`)
#   LIBURING=DIR scripts/build-kublk.sh TREE OUT
# LIBURING is the root of an unpacked liburing-dev package (e.g. trixie's 2.9: the runner
# fetches it privately); kublk is then linked statically against its liburing.a, so the
# guest does not need that library. Without LIBURING the host's liburing is used; bookworm's
# is 2.3, whose missing 2.4 buffer-ring helpers (kublk's batch mode) are stubbed to fail:
# enough for the benchmark's per-queue and per-io modes, not for the selftests.
set -euo pipefail
TREE=${1:?usage: scripts/build-kublk.sh KERNEL_TREE OUT_BINARY}
OUT=${2:?usage: scripts/build-kublk.sh KERNEL_TREE OUT_BINARY}
SRC="$TREE/tools/testing/selftests/ublk"
[ -f "$SRC/kublk.c" ] || { echo "build-kublk: $SRC/kublk.c not found (is $TREE a 6.14+ kernel tree?)" >&2; exit 2; }
if [ -n "${LIBURING:-}" ] && [ ! -f "$LIBURING/usr/lib/x86_64-linux-gnu/liburing.a" ]; then
  echo "build-kublk: LIBURING=$LIBURING has no usr/lib/x86_64-linux-gnu/liburing.a (an unpacked liburing-dev)" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tree's own UAPI headers (ublk_cmd.h of the kernel under test, and what io_uring.h and
# liburing pull in), ahead of the host's older ones.
mkdir -p "$work/inc"
cp -r "$TREE/include/uapi/linux" "$work/inc/"
cat > "$work/liburing_compat.c" <<'C'
#include <errno.h>
#include <liburing.h>
#if !defined(IO_URING_VERSION_MINOR) || (IO_URING_VERSION_MAJOR == 2 && IO_URING_VERSION_MINOR < 4)
struct io_uring_buf_ring *io_uring_setup_buf_ring(struct io_uring *ring, unsigned int nentries,
                                                  int bgid, unsigned int flags, int *ret) {
  (void)ring; (void)nentries; (void)bgid; (void)flags;
  *ret = -EOPNOTSUPP;
  return 0;
}
int io_uring_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
                           unsigned int nentries, int bgid) {
  (void)ring; (void)br; (void)nentries; (void)bgid;
  return -EOPNOTSUPP;
}
#endif
C
inc=(-I "$work/inc")
lib=(-luring)
if [ -n "${LIBURING:-}" ]; then
  inc+=(-I "$LIBURING/usr/include")
  lib=("$LIBURING/usr/lib/x86_64-linux-gnu/liburing.a")
fi
# kublk is every .c of the directory but the standalone helper, as its Makefile builds it.
srcs=()
for f in "$SRC"/*.c; do
  [ "$(basename "$f")" = metadata_size.c ] || srcs+=("$f")
done
gcc -D_GNU_SOURCE -O3 -w "${inc[@]}" -I "$SRC" "${srcs[@]}" "$work/liburing_compat.c" \
  -o "$OUT" -lpthread -lm "${lib[@]}"
if [ -f "$SRC/metadata_size.c" ]; then
  gcc -D_GNU_SOURCE -O2 -w "${inc[@]}" -I "$SRC" "$SRC/metadata_size.c" -o "$(dirname "$OUT")/metadata_size"
fi
echo "$OUT"
