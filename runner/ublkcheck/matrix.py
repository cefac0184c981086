"""`ublkcheck matrix --kernels A,B,C`: the same run on several kernels, one results directory
each under --results, joined in matrix.json (schema in results/README.md) and one table of
tests x kernels. A kernel that cannot be fetched or booted becomes an error entry; the
other kernels still run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from dataclasses import replace

from .pipeline import RunRequest, execute, results_dir
from .runargs import add_run_args, request
from .errors import UserError
from .grid import build_grid
from .model import RunResult
from .rundirs import KernelRun

SCHEMA_VERSION = 1


def kernel_dirname(spec: str) -> str:
    """debian:sid -> debian-sid; a bzImage path -> boot-vmlinuz-... (one path component)."""
    return spec.replace(":", "-").replace("/", "-").strip("-.") or "kernel"


def parse_kernels(text: str) -> list[str]:
    ks = [k.strip() for k in (text or "").split(",")]
    if not text or not all(ks):
        raise UserError(f"--kernels {text!r}: expected a comma-separated list, e.g. debian:trixie,debian:sid")
    dup = sorted({k for k in ks if ks.count(k) > 1})
    if dup:
        raise UserError(f"--kernels names {', '.join(dup)} twice: each kernel once")
    dirs = [kernel_dirname(k) for k in ks]
    if len(set(dirs)) != len(dirs):
        raise UserError(f"--kernels {text}: two kernels would share a results directory; rename the paths")
    return ks


def matrix_doc(kruns: list[KernelRun], base: Path) -> dict:
    """What matrix.json holds: per kernel a summary and its directory (relative, so the matrix
    directory can be moved or downloaded whole); per test, each kernel's verdict."""
    kernels, tests = [], {}
    for k in kruns:
        r = k.run
        rel = str(k.dir.relative_to(base)) if k.dir and k.dir.is_relative_to(base) else (str(k.dir) if k.dir else None)
        kernels.append({"spec": k.spec, "release": r.kernel_release if r else "", "dir": rel,
                        "totals": r.totals() if r else None, "boot_seconds": r.boot_seconds if r else None,
                        "duration_s": r.duration_s if r else None, "accel": r.accel if r else "",
                        "shard": r.shard if r else "", "error": k.error})
        for t in (r.tests if r else []):
            tests.setdefault(t.name, {})[k.spec] = {
                "status": t.status, "skip_reason": t.skip_reason, "titles": [x.title for x in t.reports],
                "known_issue": t.properties.get("known_issue", "")}
    return {"schema_version": SCHEMA_VERSION, "kernels": kernels, "tests": dict(sorted(tests.items()))}


def matrix_table(runs: list[RunResult], errors: dict[str, str] | None = None, all_rows: bool = False) -> str:
    """Tests x kernels as text. Without all_rows only tests that do not pass on every kernel
    are listed, and a count stands for the others."""
    g = build_grid(runs)
    heads = [r.kernel_spec for r in runs]
    rels = [r.kernel_release or "?" for r in runs]
    shown = g.tests if all_rows else g.problem_tests()
    w0 = max([len(n) for n in shown] + [len("TEST")])
    ws = [max([len(h), len(rl)] + [len(g.rows[n][i].label) for n in shown])
          for i, (h, rl) in enumerate(zip(heads, rels))]

    def line(first, cols):
        return "  ".join([first.ljust(w0)] + [c.ljust(w) for c, w in zip(cols, ws)]).rstrip()

    out = [line("TEST", heads), line("", rels)]
    out += [line(n, [c.label for c in g.rows[n]]) for n in shown]
    hidden = len(g.tests) - len(shown)
    if not runs:
        out.append("no kernel ran")
    elif not all_rows:
        out.append(f"{hidden} tests pass on every kernel" + (" (--all lists them)" if hidden else ""))
    for r in runs:
        t = r.totals()
        out.append(f"{r.kernel_spec}: {t['pass']} passed, {t['fail']} failed, {t['skip']} skipped, "
                   f"{t['error']} errors in {r.duration_s:.0f}s")
    for spec, why in (errors or {}).items():
        out.append(f"{spec}: did not run: {why}")
    for i, reason in enumerate(g.notes, 1):
        first, *rest = reason.splitlines()
        out.append(f"[{i}] {first}" + (" ..." if rest else ""))
    if g.known_issues():
        out.append("FAIL* = failed by a known kernel bug listed in ci/known-issues.json; it does not fail the run")
    return "\n".join(out)


def run_matrix(req: RunRequest, kernels: list[str], base: Path) -> list[KernelRun]:
    kruns = []
    for spec in kernels:
        # tree:DIR is a kernel source tree built for the guest (--debug applies to it only).
        tree = Path(spec[len("tree:"):]) if spec.startswith("tree:") else None
        one = replace(req, kernel=spec, kernel_tree=tree, debug=req.debug if tree else "",
                      results=str(base / kernel_dirname(spec)))
        print(f"== {spec}", file=sys.stderr, flush=True)
        try:
            run, out = execute(one, None, spec)
            kruns.append(KernelRun(spec, Path(out), run))
        except UserError as e:
            kruns.append(KernelRun(spec, None, None, str(e)))
        except Exception as e:  # noqa: BLE001 - one broken kernel must not cost the others their run
            kruns.append(KernelRun(spec, None, None, f"{type(e).__name__}: {e}"))
        if kruns[-1].error:
            print(f"ublkcheck: {spec}: {kruns[-1].error}; continuing with the other kernels", file=sys.stderr)
    return kruns


def cmd_matrix(args) -> int:
    if args.kernel is not None:
        raise UserError("matrix takes --kernels A,B,... (not --kernel)")
    if args.kernel_tree:
        raise UserError("matrix takes a tree as one of --kernels: --kernels debian:sid,tree:/path/to/linux")
    kernels = parse_kernels(args.kernels)
    req = request(args)
    for spec in kernels:  # every kernel's request is checked before the first one runs
        tree = Path(spec[len("tree:"):]) if spec.startswith("tree:") else None
        replace(req, kernel=spec, kernel_tree=tree).check()
    base = Path(args.results) if args.results else results_dir(None, "matrix")
    base.mkdir(parents=True, exist_ok=True)
    kruns = run_matrix(req, kernels, base)
    (base / "matrix.json").write_text(json.dumps(matrix_doc(kruns, base), indent=2) + "\n")
    runs = [k.run for k in kruns if k.run]
    print(matrix_table(runs, {k.spec: k.error for k in kruns if k.error}, all_rows=args.all))
    print(f"matrix in {base / 'matrix.json'}")
    return 0 if all(k.run and k.run.ok() for k in kruns) else 1


def add_parser(sub) -> None:
    p = sub.add_parser("matrix", help="run on several kernels; one table of tests x kernels",
                       description="Run the suites on each kernel of --kernels (results in --results DIR/<kernel>/), "
                                   "write DIR/matrix.json and print tests x kernels. Exit 1 if a test failed "
                                   "or a kernel did not run.")
    p.add_argument("--kernels", required=True, metavar="A,B,...",
                   help="comma-separated --kernel values, e.g. debian:trixie,debian:sid,debian:experimental")
    p.add_argument("--all", action="store_true", help="list every test, not only those that do not pass everywhere")
    add_run_args(p)
    p.set_defaults(kernel=None, func=cmd_matrix)
