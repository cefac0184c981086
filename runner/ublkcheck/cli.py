"""ublkcheck command line: run, scan, list-kernels, reproduce, zoo, bench, fetch-source;
matrix, merge, diff and report live in their own modules."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError

from .paths import REPO


def _results_dir(base: str | None, label: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = label.replace(":", "-").replace("/", "_")
    d = Path(base) if base else REPO / "results" / f"{stamp}-{safe}"
    d.mkdir(parents=True, exist_ok=True)
    return d


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
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--mem", type=int, default=3072, help="guest memory in MiB")
    ap.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    ap.add_argument("--timeout", type=float, default=3600, help="whole run, seconds")
    ap.add_argument("--hang-timeout", type=float, default=120, help="no output nor progress, seconds")
    ap.add_argument("--grace", type=float, default=20, help="after a kernel report, seconds")
    ap.add_argument("--append", default="", help="extra kernel command line")
    ap.add_argument("--results", help="results directory (default results/<time>-<kernel>)")
    ap.add_argument("--stress-seconds", type=int, help="UBLKCHECK_STRESS_SECONDS for the stress suite")
    ap.add_argument("--timings", action="store_true", help="print the slowest tests and the time per suite")
    ap.add_argument("--shard", metavar="I/N",
                    help="run part I of N of the tests (split by name; `ublkcheck merge` joins the parts)")
    ap.add_argument("--affected", action="store_true",
                    help="with --patch: first the tests whose coverage reaches the changed lines (the "
                         "cached map of a --coverage run on the same ublk_drv.c), with their verdict, then the rest")
    ap.add_argument("--affected-only", action="store_true", help="with --affected: stop after the affected tests")
    ap.add_argument("-q", "--quiet", action="store_true")


_resolved: dict = {}


def resolve_kernel(args):
    """(source, Kernel); source is what --patch rebuilds the driver against: DebianKernels,
    a TreeBuilder, or None for a bare bzImage. Once per process for the same kernel (the
    phases of --affected share one build)."""
    key = (str(getattr(args, "kernel_tree", None)), args.debug, getattr(args, "coverage", False),
           args.kernel, getattr(args, "modules", None))
    if key not in _resolved:
        _resolved[key] = _resolve_kernel(args)
    return _resolved[key]


def driver_source(source, kernel) -> Path:
    """The unpatched ublk_drv.c of the kernel under test."""
    from .patch import DRIVER, ModuleBuilder
    from .tree import TreeBuilder
    if isinstance(source, TreeBuilder):
        return source.src / DRIVER
    if source is None:
        raise UserError("--affected needs the kernel's source: use --kernel debian:... or --kernel-tree DIR")
    return ModuleBuilder(source, kernel).prepare() / DRIVER


def _resolve_kernel(args):
    from .kernel import DebianKernels, from_paths
    if getattr(args, "kernel_tree", None):
        from .tree import TreeBuilder, parse_debug
        debug = parse_debug(args.debug)
        if getattr(args, "coverage", False) and "gcov" not in debug:
            debug = sorted(debug + ["gcov"])
        tb = TreeBuilder(args.kernel_tree, debug)
        return tb, tb.build()
    if getattr(args, "coverage", False):
        raise UserError("--coverage needs a kernel built with CONFIG_GCOV_KERNEL, which Debian's kernels "
                        "are not: build the same version's source, e.g. `./ublkcheck fetch-source 7.2 DIR` "
                        "then `--kernel-tree DIR/linux-source-7.2 --coverage`")
    if args.debug:
        raise UserError("--debug selects config fragments for a tree build: use it with --kernel-tree DIR")
    if args.kernel.startswith("debian:"):
        dk = DebianKernels()
        return dk, dk.fetch(args.kernel)
    return None, from_paths(args.kernel, args.modules)


def build_module(source, kernel, patches: list[Path], rebuild: bool = False,
                 gcov: bool = False) -> Path | None:
    if not patches and not rebuild and not gcov:
        return None
    from .patch import DRIVER, ModuleBuilder, build_external
    from .tree import TreeBuilder
    if source is None:
        raise UserError("--patch needs the kernel's source: use --kernel debian:... or --kernel-tree DIR")
    print(f"ublkcheck: building ublk_drv.ko for {kernel.release} with "
          f"{', '.join(map(str, patches)) or 'no patch'}{' (gcov)' if gcov else ''}", file=sys.stderr)
    if isinstance(source, TreeBuilder):
        return build_external(source.src / DRIVER, patches, source.out / "ublkcheck-patched",
                              source.module_build_args(), gcov=gcov)
    return ModuleBuilder(source, kernel).build(patches)


def execute(args, command: list[str] | None, label: str | None = None, choose=None):
    """Shared by run/reproduce/zoo: boots and runs, returns (RunResult, outdir). `choose`,
    given (source, kernel, planned tests), may narrow the tests once the kernel is known."""
    from . import vm
    from .discover import plan_suites, select
    from .orchestrate import Limits, Orchestrator
    from .results import write_all
    from .shard import empty_run, parse_shard, select_shard
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    if shard and command:
        raise UserError("--shard splits the test list; it does not apply to `-- COMMAND`")
    coverage = getattr(args, "coverage", False)
    if coverage:
        from .coverage import check_tools
        check_tools()
    dk, kernel = resolve_kernel(args)
    module = build_module(dk, kernel, args.patch, getattr(args, "rebuild_driver", False), gcov=coverage)
    accel = args.accel if args.accel != "auto" else ("kvm" if vm.kvm_usable() else "tcg")
    vm.qemu_binary()
    cfg = vm.VmConfig(smp=args.smp, mem_mb=args.mem, accel=accel, append=args.append)
    spec = kernel.spec if getattr(args, "kernel_tree", None) else args.kernel
    out = _results_dir(args.results, label or (f"tree-{Path(args.kernel_tree).name}" if args.kernel_tree else args.kernel))
    limits = Limits(timeout=args.timeout, hang_timeout=args.hang_timeout, grace=args.grace)
    env = {}
    if args.stress_seconds:
        env["UBLKCHECK_STRESS_SECONDS"] = str(args.stress_seconds)
    if module:
        env["UBLKCHECK_PATCHED_MODULE"] = str(module)
    plan = {"cwd": os.getcwd(), "module": str(module) if module else None,
            "fixture": str(args.build / "fixtures" / "ublk-fixture"), "env": env,
            "coverage": coverage}
    if command:
        tests = []
        plan["command"] = shlex.join(command) if len(command) > 1 else command[0]
        plan["command_name"] = "command"
    else:
        tests = select(plan_suites(args.build, args.suite, dk, kernel), args.filter, args.exclude)
        if choose:
            tests = choose(dk, kernel, tests)
            if not tests:
                raise UserError("no test is left to run after the selection (--affected)")
        if shard:
            everything, tests = len(tests), select_shard(tests, *shard)
            if not tests:  # more shards than tests: an empty part, no guest to boot
                print(f"ublkcheck: shard {args.shard} of {everything} test(s) is empty", file=sys.stderr)
                run = empty_run(out.name, spec, kernel.release, args.shard, [str(p) for p in args.patch])
                write_all(run, out)
                return run, out
        plan["tests"] = [t.to_dict() for t in tests]
        plan["command"] = None
    # A guest command's console is echoed live; a test run shows a progress line instead.
    orch = Orchestrator(kernel, cfg, out, limits, module=module, env=env, quiet=args.quiet)
    run = orch.run(plan, tests, spec, [str(p) for p in args.patch])
    run.shard = args.shard if shard else ""
    if coverage and module:
        from .coverage import collect
        run.coverage = collect(run, out, module.parent, kernel.release)
    if not command:
        from .history import compare_and_record
        run.skips = compare_and_record(run, out)
    write_all(run, out)
    return run, out


def cmd_run_affected(args) -> int:
    """--affected: two runs on one kernel build, results in DIR/affected and DIR/rest."""
    import copy
    from . import affected
    from .results import summary_table
    top = _results_dir(args.results, "affected")
    first: dict = {}

    def pick(source, kernel, tests):
        names, how = affected.plan(args.patch, driver_source(source, kernel))
        first["names"], first["total"] = set(names), len(tests)
        chosen = [t for t in tests if t.name in first["names"]]
        print(f"ublkcheck: --affected: {len(chosen)} of {len(tests)} tests ({how})", file=sys.stderr)
        return chosen or tests  # nothing reaches the change: every test is affected

    a = copy.copy(args)
    a.results = str(top / "affected")
    run, out = execute(a, None, label="affected", choose=pick)
    print(summary_table(run, only_problems=len(run.tests) > 30))
    print(f"affected tests: {'PASS' if run.ok() else 'FAIL'} ({len(run.tests)} tests, {run.duration_s:.0f}s "
          f"in the guest); results in {out}", flush=True)
    ok = run.ok()
    if args.affected_only or len(run.tests) in (0, first["total"]):
        return 0 if ok else 1
    r = copy.copy(args)
    r.results = str(top / "rest")
    rest, rout = execute(r, None, label="rest", choose=lambda s, k, ts: [t for t in ts if t.name not in first["names"]])
    print(summary_table(rest, only_problems=True))
    print(f"the other tests: {'PASS' if rest.ok() else 'FAIL'}; results in {rout}")
    return 0 if ok and rest.ok() else 1


def cmd_run(args, command) -> int:
    from .results import summary_table
    if args.affected_only and not args.affected:
        raise UserError("--affected-only goes with --affected")
    if args.affected:
        if not args.patch or command:
            raise UserError("--affected orders the tests by what a --patch changes: give --patch FILE "
                            "(and no `-- COMMAND`)")
        return cmd_run_affected(args)
    run, out = execute(args, command)
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
    ap = argparse.ArgumentParser(prog="ublkcheck", description="ublk driver conformance and stress tests in QEMU")
    ap.add_argument("--list-kernels", action="store_true", help="show cached and available kernels")
    sub = ap.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="boot a kernel and run the vm suites (or `-- COMMAND`)")
    add_run_args(r)
    s = sub.add_parser("scan", help="find kernel reports in a console log")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    sub.add_parser("list-kernels", help="show cached and available kernels")
    rp = sub.add_parser("reproduce", help="reproduce a known bug (seed-panic)")
    rp.add_argument("what", choices=["seed-panic"])
    rp.add_argument("--attempts", type=int, default=3)
    rp.add_argument("--seconds", type=int, default=60, help="load per attempt")
    rp.add_argument("--measure-rate", action="store_true",
                    help="run every attempt even after a catch and report the detection rate")
    add_run_args(rp)
    z = sub.add_parser("zoo", help="run the suite against every mutant in fixtures/mutants")
    z.add_argument("--mutant", action="append", default=[], help="only these mutants (name)")
    z.add_argument("--all-tests", action="store_true", help="run the whole suite per mutant")
    add_run_args(z)
    b = sub.add_parser("bench", help="fio against null_blk and ublk-fixture's modes, side by side in one guest")
    b.add_argument("--profile", choices=["quick", "modes", "standard", "full"], default="standard",
                   help="quick: the reference job on null_blk and plain per-queue / per-io-4 (+ pinned); "
                        "modes: the reference job on every copy mode x thread model; standard: 13 jobs "
                        "(randread/randwrite x io_uring/libaio x qd1x1, qd32x2, qd128x8) on all of them; "
                        "full: every iodepth x numjobs pair")
    b.add_argument("--repeats", type=int, default=3, help="rounds over all targets (median, min, max)")
    b.add_argument("--runtime", type=int, default=2, help="seconds per fio job")
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
    fs.add_argument("dest", type=Path, help="directory to unpack into")
    # Commands in their own modules: each registers its parser and sets args.func.
    from . import coverage, diff, matrix, merge, report
    for mod in (matrix, merge, diff, report, coverage):
        mod.add_parser(sub)
    args = ap.parse_args(argv)
    try:
        if args.list_kernels or args.cmd == "list-kernels":
            return cmd_list_kernels(args)
        if args.cmd == "scan":
            from .scan import scan_cli
            return scan_cli(args.rest)
        if args.cmd == "run":
            return cmd_run(args, command)
        if args.cmd == "reproduce":
            from .reproduce import reproduce
            return reproduce(args)
        if args.cmd == "fetch-source":
            from .tree import fetch_debian_source
            print(fetch_debian_source(args.series, args.dest))
            return 0
        if args.cmd == "bench":
            from .bench import bench
            return bench(args)
        if args.cmd == "zoo":
            from .zoo import zoo
            return zoo(args)
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
