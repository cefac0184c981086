#!/bin/bash
# Nightly job, runnable on one machine; the GitHub workflow (ci/github/nightly.yml) calls it
# once per (kernel, shard) cell.
#   ci/nightly.sh [--quick] [--kernels debian:trixie,debian:sid,debian:experimental]
#                 [--stress-seconds N] [--shard I/N] [--out DIR]
# --quick: the three Debian kernels with the default (short) stress, plus the seed-panic
# reproducer; without it the stress loads run 60 s and the whole bug zoo runs.
# --shard I/N: only part I of each kernel's tests (`ublkcheck run --shard`), results in
# DIR/<kernel>.shard-I-of-N for `ublkcheck merge`. The reproducer and the zoo (both on
# debian:sid) then run only in part 1 and only where --kernels has debian:sid, so a
# kernel x shard CI matrix runs each once.
set -euo pipefail
cd "$(dirname "$0")/.."
KERNELS="debian:trixie,debian:sid,debian:experimental"
QUICK=0
STRESS=60
SHARD=""
OUT="results/nightly-$(date -u +%Y%m%dT%H%M%SZ)"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; STRESS=8 ;;
    --kernels) KERNELS="$2"; shift ;;
    --stress-seconds) STRESS="$2"; shift ;;
    --shard) SHARD="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "ci/nightly.sh: unknown option '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$SHARD" ] && ! [[ "$SHARD" =~ ^[0-9]+/[0-9]+$ ]]; then
  echo "ci/nightly.sh: --shard '$SHARD': expected I/N, e.g. 1/2" >&2; exit 2
fi
scripts/bootstrap.sh build >&2
mkdir -p "$OUT"
rc=0
start=$(date +%s)
IFS=, read -ra ks <<< "$KERNELS"
shard_args=()
suffix=""
if [ -n "$SHARD" ]; then
  shard_args=(--shard "$SHARD")
  suffix=".shard-${SHARD%/*}-of-${SHARD#*/}"
fi
for k in "${ks[@]}"; do
  echo "== $k${SHARD:+ shard $SHARD}"
  ./ublkcheck run --kernel "$k" --stress-seconds "$STRESS" "${shard_args[@]}" \
    --results "$OUT/${k//[:\/]/-}$suffix" -q || rc=1
done
if [ -n "$SHARD" ] && { [ "${SHARD%/*}" != 1 ] || [[ ",$KERNELS," != *,debian:sid,* ]]; }; then
  echo "nightly: $(( $(date +%s) - start ))s, results in $OUT, exit $rc" \
       "(reproducer and zoo: in the debian:sid shard 1 cell)"
  exit $rc
fi
echo "== seed panic reproducer"
./ublkcheck reproduce seed-panic --kernel debian:sid --results "$OUT/seed-panic" || rc=1
if [ "$QUICK" = 0 ]; then
  echo "== bug zoo"
  ./ublkcheck zoo --kernel debian:sid --results "$OUT/zoo" || rc=1
fi
echo "nightly: $(( $(date +%s) - start ))s, results in $OUT, exit $rc"
exit $rc
