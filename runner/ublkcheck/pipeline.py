"""The run pipeline: kernel -> driver module -> test plan -> guest -> results. One typed
request (RunRequest) in, one RunResult and its directory out. `run`, `zoo`, `reproduce`,
`bench` and `matrix` all drive it, each with its own request (dataclasses.replace)."""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError
from .guest.protocol import Plan
from .paths import REPO


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs; the defaults are `ublkcheck run`'s."""
    kernel: str = "debian:sid"
    modules: str | None = None
    kernel_tree: Path | None = None
    debug: str = ""
    patch: tuple[Path, ...] = ()
    rebuild_driver: bool = False
    build: Path = REPO / "build"
    suite: str = "vm"
    coverage: bool = False
    filter: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    smp: int = 2
    mem: int = 3072
    accel: str = "auto"
    timeout: float = 3600
    hang_timeout: float = 120
    grace: float = 20
    append: str = ""
    boot: str = "snapshot"
    results: str | None = None
    stress_seconds: int | None = None
    shard: str | None = None
    quiet: bool = False

    def check(self) -> None:
        """What can be refused before anything is downloaded, built or booted: files that
        must exist, directories that must be creatable."""
        for p in self.patch:
            p = Path(p)
            if not p.is_file():
                raise UserError(f"--patch {p}: no such file (give a unified diff of drivers/block/ublk_drv.c)")
            text = p.read_text(errors="replace")
            if "ublk_drv.c" not in text or "@@" not in text:
                raise UserError(f"--patch {p}: not a unified diff of drivers/block/ublk_drv.c "
                                f"(no '--- a/drivers/block/ublk_drv.c' header with '@@' hunks)")
        if self.kernel_tree is not None and not Path(self.kernel_tree).is_dir():
            raise UserError(f"--kernel-tree {self.kernel_tree}: not a directory (give a kernel source tree)")
        if self.kernel and not self.kernel_tree and not self.kernel.startswith(("debian:", "tree:")):
            from .kernel import check_kernel_files
            check_kernel_files(self.kernel, self.modules)
        if self.results:
            r = Path(self.results)
            if r.exists() and not r.is_dir():
                raise UserError(f"--results {r}: an existing file (give a directory)")
            if not r.exists() and not r.parent.is_dir():
                raise UserError(f"--results {r}: its parent {r.parent} does not exist")

    @property
    def label(self) -> str:
        return f"tree-{Path(self.kernel_tree).name}" if self.kernel_tree else self.kernel


def results_dir(base: str | None, label: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = label.replace(":", "-").replace("/", "_")
    d = Path(base) if base else REPO / "results" / f"{stamp}-{safe}"
    d.mkdir(parents=True, exist_ok=True)
    return d


_resolved: dict = {}


def resolve_kernel(req: RunRequest):
    """(source, Kernel); source is what --patch rebuilds the driver against: DebianKernels,
    a TreeBuilder, or None for a bare bzImage. Once per process for the same kernel (the
    phases of --affected share one build)."""
    key = (str(req.kernel_tree), req.debug, req.coverage, req.kernel, req.modules)
    if key not in _resolved:
        _resolved[key] = _resolve_kernel(req)
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


def _resolve_kernel(req: RunRequest):
    from .kernel import DebianKernels, from_paths
    if req.kernel_tree:
        from .tree import TreeBuilder, parse_debug
        debug = parse_debug(req.debug)
        if req.coverage and "gcov" not in debug:
            debug = sorted(debug + ["gcov"])
        tb = TreeBuilder(req.kernel_tree, debug)
        return tb, tb.build()
    if req.coverage:
        raise UserError("--coverage needs a kernel built with CONFIG_GCOV_KERNEL, which Debian's kernels "
                        "are not: build the same version's source, e.g. `./ublkcheck fetch-source 7.2 DIR` "
                        "then `--kernel-tree DIR/linux-source-7.2 --coverage`")
    if req.debug:
        raise UserError("--debug selects config fragments for a tree build: use it with --kernel-tree DIR")
    if req.kernel.startswith("debian:"):
        dk = DebianKernels()
        return dk, dk.fetch(req.kernel)
    return None, from_paths(req.kernel, req.modules)


def build_module(source, kernel, patches, rebuild: bool = False, gcov: bool = False) -> Path | None:
    patches = list(patches)
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


def execute(req: RunRequest, command: list[str] | None = None, label: str | None = None, choose=None):
    """Boots and runs; returns (RunResult, outdir). `choose`, given (source, kernel, planned
    tests), may narrow the tests once the kernel is known."""
    from . import vm
    from . import kselftests
    from .discover import plan_suites, select
    from .orchestrate import Limits, Orchestrator
    from .results import write_all
    from .shard import empty_run, parse_shard, select_shard
    req.check()
    if not command and kselftests.SUITE not in req.suite.split(","):
        # Our suites are listed from the build: a selection that leaves nothing is refused
        # before the kernel is fetched (the kernel's own selftests need its source first).
        select(plan_suites(Path(req.build), req.suite), list(req.filter), list(req.exclude))
    shard = parse_shard(req.shard) if req.shard else None
    if shard and command:
        raise UserError("--shard splits the test list; it does not apply to `-- COMMAND`")
    if req.coverage:
        from .coverage import check_tools
        check_tools()
    dk, kernel = resolve_kernel(req)
    if req.boot != "bzimage" and kernel.pvh is None:
        from .pvh import vmlinux_for
        kernel.pvh = vmlinux_for(kernel.vmlinuz)
    module = build_module(dk, kernel, req.patch, req.rebuild_driver, gcov=req.coverage)
    accel = req.accel if req.accel != "auto" else ("kvm" if vm.kvm_usable() else "tcg")
    vm.qemu_binary()
    cfg = vm.VmConfig(smp=req.smp, mem_mb=req.mem, accel=accel, append=req.append, boot=req.boot)
    spec = kernel.spec if req.kernel_tree else req.kernel
    out = results_dir(req.results, label or req.label)
    limits = Limits(timeout=req.timeout, hang_timeout=req.hang_timeout, grace=req.grace)
    env = {}
    if req.stress_seconds:
        env["UBLKCHECK_STRESS_SECONDS"] = str(req.stress_seconds)
    if module:
        env["UBLKCHECK_PATCHED_MODULE"] = str(module)
    plan = Plan(cwd=os.getcwd(), module=str(module) if module else None,
                fixture=str(Path(req.build) / "fixtures" / "ublk-fixture"), env=env, coverage=req.coverage)
    patches = [str(p) for p in req.patch]
    if command:
        tests = []
        plan.command = shlex.join(command) if len(command) > 1 else command[0]
    else:
        tests = select(plan_suites(Path(req.build), req.suite, dk, kernel), list(req.filter), list(req.exclude))
        if choose:
            tests = choose(dk, kernel, tests)
            if not tests:
                raise UserError("no test is left to run after the selection (--affected)")
        if shard:
            everything, tests = len(tests), select_shard(tests, *shard)
            if not tests:  # more shards than tests: an empty part, no guest to boot
                print(f"ublkcheck: shard {req.shard} of {everything} test(s) is empty", file=sys.stderr)
                run = empty_run(out.name, spec, kernel.release, req.shard, patches)
                write_all(run, out)
                return run, out
        plan.tests = [t.to_dict() for t in tests]
    # Not on a terminal nobody sees a progress line: say what happens before the first test.
    print(f"ublkcheck: booting {kernel.release} ({accel}, -smp {req.smp}, -m {req.mem}) for "
          f"{len(tests) if not command else 'a guest command'}{' tests' if not command else ''}; "
          f"results in {out}", file=sys.stderr, flush=True)
    # A guest command's console is echoed live; a test run shows a progress line instead.
    orch = Orchestrator(kernel, cfg, out, limits, module=module, env=env, quiet=req.quiet)
    run = orch.run(plan, tests, spec, patches)
    run.shard = req.shard if shard else ""
    run.boot_profiles = orch.boot_profiles()
    if req.coverage and module:
        from .coverage import collect
        run.coverage = collect(run, out, module.parent, kernel.release)
    if not command:
        from .history import compare_and_record
        run.skips = compare_and_record(run, out)
    write_all(run, out)
    return run, out


def run_jobs(req: RunRequest, jobs: int, label: str | None = None):
    """--jobs N: the tests split over N guests at once (shards 1/N .. N/N, each with its own
    console, so a report still belongs to one test), then merged into one run in the
    results directory. The kernel, the module and the initramfs are made once, first."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from . import initramfs, vm
    from .merge import merge_runs
    from .results import write_all
    if req.shard:
        raise UserError("--jobs makes its own shards: drop --shard (or run the shards yourself)")
    if req.coverage:
        raise UserError("--jobs does not combine with --coverage (run the shards with --coverage and "
                        "`ublkcheck coverage` them)")
    req.check()
    dk, kernel = resolve_kernel(req)
    build_module(dk, kernel, req.patch, req.rebuild_driver, gcov=False)
    initramfs.build(kernel, vm.VmConfig(boot=req.boot).agent_in_memory)
    top = results_dir(req.results, label or req.label)
    print(f"ublkcheck: {jobs} guests at once, results in {top}", file=sys.stderr, flush=True)
    parts = [replace(req, shard=f"{i}/{jobs}", results=str(top / f"job-{i}-of-{jobs}"), quiet=True)
             for i in range(1, jobs + 1)]
    with ThreadPoolExecutor(jobs) as pool:
        done = list(pool.map(lambda part: execute(part, label=f"job-{part.shard}"), parts))
    merged = merge_runs([(str(out), run) for run, out in done], run_id=top.name)
    write_all(merged, top)
    return merged, top


def run_affected(req: RunRequest, affected_only: bool) -> int:
    """--affected: two runs on one kernel build, results in DIR/affected and DIR/rest."""
    from dataclasses import replace

    from . import affected
    from .results import summary_table
    top = results_dir(req.results, "affected")
    first: dict = {}

    def pick(source, kernel, tests):
        names, how = affected.plan(list(req.patch), driver_source(source, kernel))
        first["names"], first["total"] = set(names), len(tests)
        chosen = [t for t in tests if t.name in first["names"]]
        print(f"ublkcheck: --affected: {len(chosen)} of {len(tests)} tests ({how})", file=sys.stderr)
        return chosen or tests  # nothing reaches the change: every test is affected

    run, out = execute(replace(req, results=str(top / "affected")), None, label="affected", choose=pick)
    print(summary_table(run, only_problems=len(run.tests) > 30))
    print(f"affected tests: {'PASS' if run.ok() else 'FAIL'} ({len(run.tests)} tests, {run.duration_s:.0f}s "
          f"in the guest); results in {out}", flush=True)
    ok = run.ok()
    if affected_only or len(run.tests) in (0, first["total"]):
        return 0 if ok else 1
    rest, rout = execute(replace(req, results=str(top / "rest")), None, label="rest",
                         choose=lambda s, k, ts: [t for t in ts if t.name not in first["names"]])
    print(summary_table(rest, only_problems=True))
    print(f"the other tests: {'PASS' if rest.ok() else 'FAIL'}; results in {rout}")
    return 0 if ok and rest.ok() else 1
