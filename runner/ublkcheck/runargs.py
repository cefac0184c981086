"""The options every command that boots a guest takes (run, zoo, reproduce, bench, matrix),
and the RunRequest they make: parsing only, no behaviour."""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from .argtypes import seconds, whole
from .paths import REPO
from .pipeline import RunRequest


def add_run_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--kernel", default="debian:sid",
                    help="debian:sid|experimental|trixie|bookworm-backports|<version>, or a bzImage path")
    ap.add_argument("--modules", help="lib/modules/<release> directory for a bzImage --kernel")
    ap.add_argument("--kernel-tree", type=Path, metavar="DIR",
                    help="build this kernel source tree (git or linux-source) and boot it (overrides --kernel)")
    ap.add_argument("--debug", default="",
                    help="with --kernel-tree: debug fragments from ci/kconfig, e.g. kasan,lockdep,hung-task")
    ap.add_argument("--patch", action="append", default=[], type=Path,
                    help="patch to drivers/block/ublk_drv.c; the module is rebuilt and loaded instead")
    ap.add_argument("--rebuild-driver", action="store_true",
                    help="rebuild ublk_drv.ko from the kernel's source even without --patch (a control run)")
    ap.add_argument("--build", default=str(REPO / "build"), type=Path, help="meson build dir (default ./build)")
    ap.add_argument("--suite", default="vm",
                    help="what to run, comma-separated: a meson suite (default vm) and/or kselftests "
                         "(the upstream tools/testing/selftests/ublk scripts of the kernel's own source)")
    ap.add_argument("--coverage", action="store_true",
                    help="with --kernel-tree: ublk_drv.ko built with gcov; per-test and whole-run "
                         "line/function/branch coverage of ublk_drv.c in coverage/ (implies --debug gcov)")
    ap.add_argument("--filter", action="append", default=[], help="glob on test names (repeatable)")
    ap.add_argument("--exclude", action="append", default=[], help="glob of tests to leave out")
    ap.add_argument("--smp", type=whole(1, 64), default=2, help="guest CPUs (1..64)")
    ap.add_argument("--mem", type=whole(512, 1 << 20), default=3072, help="guest memory in MiB (at least 512)")
    ap.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    ap.add_argument("--timeout", type=seconds(), default=3600, help="whole run, seconds")
    ap.add_argument("--hang-timeout", type=seconds(), default=120, help="no output nor progress, seconds")
    ap.add_argument("--grace", type=seconds(allow_zero=True), default=20, help="after a kernel report, seconds")
    ap.add_argument("--append", default="", help="extra kernel command line")
    ap.add_argument("--boot", choices=("snapshot", "fast", "pvh", "bzimage"), default="snapshot",
                    help="how the guest boots: snapshot (the default: fast, booted once per kernel and command "
                         "line and then restored from a QEMU migration image in the cache), fast (the kernel's "
                         "vmlinux by PVH entry where it has one, qboot for firmware, no X.509 list, and the "
                         "agent's python from the initramfs), pvh (PVH entry, SeaBIOS, everything over 9p) or "
                         "bzimage (SeaBIOS, setup and decompression, everything over 9p)")
    ap.add_argument("--results", help="results directory (default results/<time>-<kernel>)")
    ap.add_argument("--stress-seconds", type=whole(1), help="UBLKCHECK_STRESS_SECONDS for the stress suite")
    ap.add_argument("--timings", action="store_true", help="print the slowest tests and the time per suite")
    ap.add_argument("--boot-profile", action="store_true",
                    help="print where each boot's time went: firmware and setup, kernel, init.sh, agent, first test")
    ap.add_argument("--shard", metavar="I/N",
                    help="run part I of N of the tests (split by name; `ublkcheck merge` joins the parts)")
    ap.add_argument("--affected", action="store_true",
                    help="with --patch: first the tests whose coverage reaches the changed lines (the "
                         "cached map of a --coverage run on the same ublk_drv.c), with their verdict, then the rest")
    ap.add_argument("--affected-only", action="store_true", help="with --affected: stop after the affected tests")
    ap.add_argument("-q", "--quiet", action="store_true")


def request(args: argparse.Namespace) -> RunRequest:
    """The RunRequest of parsed run options (lists become tuples: a request is immutable)."""
    values = {}
    for f in fields(RunRequest):
        if not hasattr(args, f.name):
            continue
        v = getattr(args, f.name)
        values[f.name] = tuple(v) if isinstance(v, list) else v
    return RunRequest(**values)
