#!/bin/bash
# Builds the upstream ublk selftest server (kublk) from a kernel tree, so `ublkcheck bench
# --kublk PATH` can measure it in the same guest as ublk-fixture.
#   scripts/build-kublk.sh TREE OUT     (TREE: e.g. from `./ublkcheck fetch-source 7.2 DIR`)
# Bookworm's liburing is 2.3: kublk's batch mode (UBLK_F_BATCH_IO) needs the 2.4 buffer-ring
# helpers, which are stubbed to fail here; the benchmark's per-queue and per-io modes do
# not use them.
set -euo pipefail
TREE=${1:?usage: scripts/build-kublk.sh KERNEL_TREE OUT_BINARY}
OUT=${2:?usage: scripts/build-kublk.sh KERNEL_TREE OUT_BINARY}
SRC="$TREE/tools/testing/selftests/ublk"
[ -f "$SRC/kublk.c" ] || { echo "build-kublk: $SRC/kublk.c not found (is $TREE a 6.14+ kernel tree?)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/inc/linux"
cp "$TREE/include/uapi/linux/ublk_cmd.h" "$TREE/include/uapi/linux/io_uring.h" "$TREE/include/uapi/linux/fs.h" "$work/inc/linux/"
[ -d "$TREE/include/uapi/linux/io_uring" ] && cp -r "$TREE/include/uapi/linux/io_uring" "$work/inc/linux/"
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
srcs=()
for f in kublk null file_backed common fault_inject stripe batch; do
  [ -f "$SRC/$f.c" ] && srcs+=("$SRC/$f.c")
done
gcc -D_GNU_SOURCE -O3 -w -I "$work/inc" -I "$SRC" "${srcs[@]}" "$work/liburing_compat.c" \
  -o "$OUT" -lpthread -lm -luring
echo "$OUT"
