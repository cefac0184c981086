#!/bin/bash
# The project's tests, end to end (what CI runs, via .ci/run):
#   1. install + build (scripts/bootstrap.sh, -Werror)
#   2. unit tests of the server and the UAPI layer (meson suite `unit`; suite `vm` SKIPs here)
#   3. the runner's pytest suite, including real TCG guests (-m vm)
#   4. the full conformance run (all vm suites) on the default kernel in a guest
#   5. the seed-panic reproducer smoke: the mutant must be caught, the stock driver must pass
#   6. smokes of the bug zoo and of the upstream selftests under the harness (the whole zoo,
#      all selftests and the coverage runs of a tree are in ci/nightly.sh)
# QUICK=1 stops after step 3.
set -euo pipefail
cd "$(dirname "$0")/.."
WERROR=1 scripts/bootstrap.sh build

echo "== unit tests (meson suite unit, and vm suites which must SKIP on a host without ublk)"
meson test -C build --print-errorlogs

echo "== runner tests (pytest, with VM boots)"
(cd runner && /usr/bin/python3 -m pytest -q)

[ "${QUICK:-0}" = 1 ] && exit 0

echo "== conformance run: all vm suites on the default kernel"
# Stress.RecoveryLoopUnderLoad saw one EIO under REISSUE in 1 of 7 runs here (not yet
# explained: kernel or server); it runs in the nightly job until that is understood.
./ublkcheck run --kernel debian:sid --timings --results results/ci-conformance \
  --exclude "stress.Stress.RecoveryLoopUnderLoad"

echo "== seed panic reproducer (smoke)"
./ublkcheck reproduce seed-panic --kernel debian:sid --attempts 3 --seconds 30 --results results/ci-seed-panic

echo "== bug zoo (smoke): one mutant, with the stock driver as the control"
./ublkcheck zoo --kernel debian:sid --mutant enotsupp-leak --results results/ci-zoo

echo "== upstream selftests under the harness (smoke): two scripts of sid's linux-source"
./ublkcheck run --kernel debian:sid --suite kselftests --filter kselftests.test_generic_13 \
  --filter kselftests.test_null_01 --results results/ci-kselftests
