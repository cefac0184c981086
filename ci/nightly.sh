#!/bin/bash
# Nightly job, runnable on one machine; the GitHub workflow (ci/github/nightly.yml) calls it
# once per (kernel, shard) cell.
#   ci/nightly.sh [--quick] [--kernels debian:trixie,debian:sid,debian:experimental]
#                 [--tree URL[#BRANCH] | --tree-dir DIR] [--debug kasan,lockdep,hung-task]
#                 [--stress-seconds N] [--shard I/N] [--out DIR]
# --tree: clone (shallow) a kernel git tree and add it to the kernels as tree:DIR, e.g.
#   --tree https://git.kernel.org/pub/scm/linux/kernel/git/axboe/linux.git#for-next
# --tree-dir: an existing checkout (or `./ublkcheck fetch-source 7.2 DIR`); --debug picks the
# ci/kconfig debug fragments for that tree build.
# --quick: the three Debian kernels with the default (short) stress, plus the seed-panic
# reproducer; without it the stress loads run 60 s, the whole bug zoo, the suite three times
# in a row with the upstream selftests under our harness (suite-bench), the boot benchmark,
# and the quick benchmark run (KUBLK=path/to/kublk
# adds the upstream server to it). With a tree (and no --quick) both suites also run with
# --coverage on it, side by side and merged (`ublkcheck coverage`).
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
TREE_URL=""
TREE_DIR=""
DEBUG=""
OUT="results/nightly-$(date -u +%Y%m%dT%H%M%SZ)"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; STRESS=8 ;;
    --kernels) KERNELS="$2"; shift ;;
    --stress-seconds) STRESS="$2"; shift ;;
    --shard) SHARD="$2"; shift ;;
    --tree) TREE_URL="$2"; shift ;;
    --tree-dir) TREE_DIR="$2"; shift ;;
    --debug) DEBUG="$2"; shift ;;
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
if [ -n "$TREE_URL" ]; then
  url=${TREE_URL%%#*}
  branch=""
  [[ "$TREE_URL" == *#* ]] && branch=${TREE_URL#*#}
  TREE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/ublkcheck/git/$(echo "$TREE_URL" | md5sum | cut -c1-12)"
  if [ -d "$TREE_DIR/.git" ]; then
    git -C "$TREE_DIR" fetch --depth 1 origin ${branch:+"$branch"} && git -C "$TREE_DIR" reset -q --hard FETCH_HEAD
  else
    git clone -q --depth 1 ${branch:+--branch "$branch"} "$url" "$TREE_DIR"
  fi
  echo "== tree $url ${branch:-(default branch)} at $(git -C "$TREE_DIR" rev-parse --short HEAD)"
fi
[ -n "$TREE_DIR" ] && KERNELS="$KERNELS,tree:$TREE_DIR"
debug_args=()
[ -n "$DEBUG" ] && debug_args=(--debug "$DEBUG")
IFS=, read -ra ks <<< "$KERNELS"
shard_args=()
suffix=""
if [ -n "$SHARD" ]; then
  shard_args=(--shard "$SHARD")
  suffix=".shard-${SHARD%/*}-of-${SHARD#*/}"
fi
if [ -n "$SHARD" ]; then
  for k in "${ks[@]}"; do
    echo "== $k shard $SHARD"
    if [[ "$k" == tree:* ]]; then kargs=(--kernel-tree "${k#tree:}" "${debug_args[@]}"); else kargs=(--kernel "$k"); fi
    ./ublkcheck run "${kargs[@]}" --stress-seconds "$STRESS" "${shard_args[@]}" \
      --results "$OUT/${k//[:\/]/-}$suffix" -q || rc=1
  done
else
  # One machine: the kernel matrix (one table, matrix.json) and its HTML report.
  echo "== matrix $KERNELS"
  ./ublkcheck matrix --kernels "$KERNELS" "${debug_args[@]}" --stress-seconds "$STRESS" \
    --results "$OUT/matrix" -q || rc=1
  ./ublkcheck report "$OUT/matrix" || rc=1
fi
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
  # The suite three times in a row (a flake is an unexpected failure in any of them) and the
  # upstream selftests (tools/testing/selftests/ublk of linux-source) right after the first:
  # their time ratio, measured back to back.
  echo "== flake check and the suite / selftests ratio on debian:sid"
  ./ublkcheck suite-bench --kernel debian:sid --runs 3 --results "$OUT/suite-bench" || rc=1
  echo "== boot time of each boot path"
  ./ublkcheck boot-bench --kernel debian:sid --boots 5 --results "$OUT/boot-bench" || rc=1
  # The same mutants against the upstream selftests, all of them on every mutant, in pools
  # of 8 (group testing: they catch few, and one run of them takes about 20 min under TCG;
  # a pool that fails runs its members alone on what it failed). A mutant they miss is the
  # matrix's content, not a failure (exit 1); anything else is.
  ./ublkcheck zoo --kernel debian:sid --suite kselftests --pool 8 --results "$OUT/zoo-kselftests" \
    || { z=$?; [ "$z" = 1 ] || rc=1; }
  ./ublkcheck zoo-table "$OUT/zoo" "$OUT/zoo-kselftests" > "$OUT/zoo-matrix.md" || rc=1
  if [ -n "$TREE_DIR" ]; then
    echo "== coverage of ublk_drv.c on the tree: ublkcheck, the upstream selftests, both"
    ./ublkcheck run --kernel-tree "$TREE_DIR" "${debug_args[@]}" --coverage -q \
      --results "$OUT/coverage-ublkcheck" || rc=1
    ./ublkcheck run --kernel-tree "$TREE_DIR" "${debug_args[@]}" --coverage --suite kselftests -q \
      --results "$OUT/coverage-kselftests" || rc=1
    ./ublkcheck coverage "$OUT/coverage-ublkcheck" "$OUT/coverage-kselftests" --out "$OUT/coverage-both" || rc=1
  fi
  # The reference job night after night (bench.json: medians, ratios to null_blk); with
  # KUBLK=path (scripts/build-kublk.sh) the upstream server runs alongside.
  echo "== benchmark"
  ./ublkcheck bench --kernel debian:sid --profile quick --repeats 5 --runtime 3 \
    ${KUBLK:+--kublk "$KUBLK"} --results "$OUT/bench" || rc=1
fi
echo "nightly: $(( $(date +%s) - start ))s, results in $OUT, exit $rc"
exit $rc
