"""ublkcheck command line: parses, then hands a RunRequest (pipeline.py) to the command that
runs it: run, scan, list-kernels, reproduce, zoo, bench, fetch-source; matrix, merge, diff,
report, coverage, boot-bench, suite-bench and zoo-table register their own parsers."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError
from .argtypes import new_path, whole
from .runargs import add_run_args, request


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (which argument, what is wrong, what would
    be right) and exit 2, without the usage dump; --help still prints the usage."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def cmd_run(args, command) -> int:
    from .pipeline import execute, run_affected, run_jobs
    from .results import summary_table
    if args.affected_only and not args.affected:
        raise UserError("--affected-only goes with --affected")
    req = request(args)
    if args.affected:
        if not args.patch or command:
            raise UserError("--affected orders the tests by what a --patch changes: give --patch FILE "
                            "(and no `-- COMMAND`)")
        return run_affected(req, args.affected_only)
    if args.jobs > 1:
        if command:
            raise UserError("--jobs splits the test list; it does not apply to `-- COMMAND`")
        run, out = run_jobs(req, args.jobs)
    else:
        run, out = execute(req, command)
    print(summary_table(run, only_problems=len(run.tests) > 30))
    if args.timings:
        slow = sorted(run.tests, key=lambda t: -t.duration_s)[:15]
        print("slowest tests:")
        for t in slow:
            print(f"  {t.duration_s:7.1f}s  {t.name}")
        print("per suite: " + ", ".join(f"{k} {v:.0f}s" for k, v in run.suite_durations().items()))
    if run.coverage:
        from .coverage import summary_line
        print(summary_line(run.coverage))
    if args.boot_profile:
        from .bootprofile import render
        for i, p in enumerate(run.boot_profiles, 1):
            print(f"boot {i}:\n{render(p)}" if p else f"boot {i}: the kernel printed nothing")
    print(f"boot to agent: {run.boot_seconds}s; results in {out}")
    if command and run.tests and run.tests[0].properties.get("exit_code") not in (None, 0):
        return int(run.tests[0].properties["exit_code"]) or 1
    return 0 if run.ok() else 1


def cmd_list_kernels(_args) -> int:
    from .kernel import DebianKernels
    dk = DebianKernels()
    print("cached:")
    for c in dk.cached() or ["(none)"]:
        print(f"  {c}")
    print(f"available on {dk.apt.mirror}:")
    for suite, ver in sorted(dk.available().items()):
        note = "  (no ublk: CONFIG_BLK_DEV_UBLK is not set)" if suite == "bookworm" else ""
        print(f"  debian:{suite:20s} linux-image-amd64 {ver}{note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
        if not command:
            print("ublkcheck: `--` with nothing after it: give the guest command, e.g. "
                  "`ublkcheck run -- uname -r`", file=sys.stderr)
            return 2
    ap = Parser(prog="ublkcheck", description="ublk driver conformance and stress tests in QEMU")
    ap.add_argument("--list-kernels", action="store_true", help="show cached and available kernels")
    sub = ap.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="boot a kernel and run the vm suites (or `-- COMMAND`)")
    add_run_args(r)
    r.add_argument("--jobs", type=whole(1, 64), default=1,
                   help="run the tests in N guests at once (each a shard with its own console), merged")
    sub.add_parser("list-kernels", help="show cached and available kernels")
    rp = sub.add_parser("reproduce", help="reproduce a known bug (seed-panic)")
    rp.add_argument("what", choices=["seed-panic"])
    rp.add_argument("--attempts", type=whole(1), default=3)
    rp.add_argument("--seconds", type=whole(1), default=60, help="load per attempt")
    rp.add_argument("--measure-rate", action="store_true",
                    help="run every attempt even after a catch and report the detection rate")
    add_run_args(rp)
    z = sub.add_parser("zoo", help="run the suite against every mutant in fixtures/mutants")
    z.add_argument("--mutant", action="append", default=[], help="only these mutants (name)")
    z.add_argument("--all-tests", action="store_true", help="run the whole suite per mutant")
    z.add_argument("--pool", type=whole(1, 16), default=1, metavar="K",
                   help="group testing: K mutants built into one module and run once; only a pool that "
                        "fails runs its members alone, on the tests it failed (for a suite that catches few)")
    z.add_argument("--resume", action="store_true",
                   help="continue a stopped zoo in its --results DIR: its finished runs (same patches) are reused")
    add_run_args(z)
    b = sub.add_parser("bench", help="fio against null_blk and ublk-fixture's modes, side by side in one guest")
    b.add_argument("--profile", choices=["quick", "modes", "standard", "full"], default="standard",
                   help="quick: the reference job on null_blk and plain per-queue / per-io-4 (+ pinned); "
                        "modes: the reference job on every copy mode x thread model; standard: 13 jobs "
                        "(randread/randwrite x io_uring/libaio x qd1x1, qd32x2, qd128x8) on all of them; "
                        "full: every iodepth x numjobs pair")
    b.add_argument("--repeats", type=whole(1), default=3, help="rounds over all targets (median, min, max)")
    b.add_argument("--runtime", type=whole(1), default=2, help="seconds per fio job")
    b.add_argument("--only", default="", help="comma-separated target names (see guest/bench.py)")
    b.add_argument("--compare-build", type=Path, metavar="DIR",
                   help="a second meson build dir: its ublk-fixture runs as NAME@alt in the same guest")
    b.add_argument("--kublk", type=Path, metavar="PATH",
                   help="the upstream selftest server binary (scripts/build-kublk.sh), measured alongside")
    b.add_argument("--perf", action="store_true",
                   help="after the measured rounds, one perf-profiled run of the first job per target: "
                        "where the CPUs went (idle, fio, server; user and kernel) in bench.json")
    add_run_args(b)
    fs = sub.add_parser("fetch-source", help="unpack Debian's linux-source-SERIES as a tree for --kernel-tree")
    fs.add_argument("series", help="kernel series, e.g. 7.2 or 6.1")
    fs.add_argument("dest", type=new_path("directory"), help="directory to unpack into")
    # Commands in their own modules: each registers its parser and sets args.func.
    from . import bootbench, coverage, diff, matrix, merge, report, scan, suitebench, zootable
    for mod in (scan, matrix, merge, diff, report, coverage, bootbench, suitebench, zootable):
        mod.add_parser(sub)
    args = ap.parse_args(argv)
    try:
        if args.list_kernels or args.cmd == "list-kernels":
            return cmd_list_kernels(args)
        if args.cmd == "run":
            return cmd_run(args, command)
        if args.cmd == "reproduce":
            from .reproduce import reproduce
            return reproduce(request(args), args.what, args.attempts, args.seconds, args.measure_rate)
        if args.cmd == "fetch-source":
            from .tree import fetch_debian_source
            print(fetch_debian_source(args.series, args.dest))
            return 0
        if args.cmd == "bench":
            from .bench import bench
            return bench(args, request(args))
        if args.cmd == "zoo":
            from .zoo import zoo
            return zoo(request(args), args.mutant, args.all_tests, args.affected, args.pool, args.resume)
        if getattr(args, "func", None):
            return args.func(args)
        ap.print_help()
        return 2
    except UserError as e:
        print(f"ublkcheck: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ublkcheck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `ublkcheck diff ... | head`: the reader has enough; no traceback, and none at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
