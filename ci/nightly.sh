#!/bin/bash
# Nightly job, runnable on one machine; the GitHub workflow (ci/github/nightly.yml) calls it
# once per (kernel, shard) cell.
#   ci/nightly.sh [--quick] [--kernels debian:trixie,debian:sid,debian:experimental]
#                 [--stress-seconds N] [--out DIR]
# --quick: the three Debian kernels with the default (short) stress, plus the seed-panic
# reproducer; without it the stress loads run 60 s and the whole bug zoo runs.
set -euo pipefail
cd "$(dirname "$0")/.."
KERNELS="debian:trixie,debian:sid,debian:experimental"
QUICK=0
STRESS=60
OUT="results/nightly-$(date -u +%Y%m%dT%H%M%SZ)"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; STRESS=8 ;;
    --kernels) KERNELS="$2"; shift ;;
    --stress-seconds) STRESS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "ci/nightly.sh: unknown option '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
  shift
done
scripts/bootstrap.sh build >&2
mkdir -p "$OUT"
rc=0
start=$(date +%s)
IFS=, read -ra ks <<< "$KERNELS"
for k in "${ks[@]}"; do
  echo "== $k"
  ./ublkcheck run --kernel "$k" --stress-seconds "$STRESS" --results "$OUT/${k//:/-}" -q || rc=1
done
echo "== seed panic reproducer"
./ublkcheck reproduce seed-panic --kernel debian:sid --results "$OUT/seed-panic" || rc=1
if [ "$QUICK" = 0 ]; then
  echo "== bug zoo"
  ./ublkcheck zoo --kernel debian:sid --results "$OUT/zoo" || rc=1
fi
echo "nightly: $(( $(date +%s) - start ))s, results in $OUT, exit $rc"
exit $rc
