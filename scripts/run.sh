#!/bin/bash
# The main job: install + build, then run every vm suite against a kernel in a QEMU guest.
#   scripts/run.sh [ublkcheck run options]     (default kernel: debian:sid)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build >&2
exec ./ublkcheck run "$@"
