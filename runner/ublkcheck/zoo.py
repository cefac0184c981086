"""`ublkcheck zoo`: each mutant of fixtures/mutants is built into ublk_drv.ko, booted, and
the tests its metadata names are run (then, with --all-tests, the rest). A mutant is caught
when a test fails or the kernel reports in ublk's code; the matrix goes to zoo.json and the
terminal."""
from __future__ import annotations

import fnmatch
import json
import shutil
import sys
import time
from pathlib import Path

from . import affected, zoopool
from dataclasses import replace

from .pipeline import RunRequest, driver_source, execute, results_dir
from .paths import MUTANTS
from .errors import UserError
from .model import REPORT_LINE_PREFIX, RunResult, unexpected_failures
from .results import load_results


def mutants(names: list[str]) -> list[dict]:
    out = []
    for meta in sorted(MUTANTS.glob("*.json")):
        m = json.loads(meta.read_text())
        m["patch"] = meta.with_suffix(".patch")
        if names and m["name"] not in names:
            continue
        out.append(m)
    if names and len(out) != len(names):
        known = [json.loads(p.read_text())["name"] for p in MUTANTS.glob("*.json")]
        raise UserError(f"unknown mutant in {names}; known: {', '.join(known)}")
    return out


def _filters(m: dict) -> list[str]:
    # "suite:Gtest.Case" -> "suite.Gtest.Case" (globs allowed)
    return [c.replace(":", ".", 1) for c in m.get("caught_by", [])]


def _failed(run) -> list:
    # A test failed only by a known kernel bug (ci/known-issues.json) catches nothing.
    return unexpected_failures(run.tests)


def _fails_on_its_own(t) -> bool:
    """The test failed for more than a kernel report (an assertion, a hang, a crash of the
    test program), or one of the reports that failed it names ublk."""
    own = [l for l in t.message.splitlines() if l.strip() and not l.startswith(REPORT_LINE_PREFIX)]
    return bool(own) or not t.reports or any(r.names_ublk() for r in t.reports)


def verdict(run, stock_failed: set[str], stock_sigs: set[str]):
    """(tests that catch the mutant, report titles that catch it, report titles left out):
    against the stock driver's control run on the same tests. Only a report that names ublk
    catches a mutant (Report.names_ublk)."""
    failed = [t for t in _failed(run) if t.name not in stock_failed and _fails_on_its_own(t)]
    new = [r for r in run.reports if r.signature not in stock_sigs]
    return failed, [r.title for r in new if r.names_ublk()], [r.title for r in new if not r.names_ublk()]


def reusable(d: Path, patches, flt) -> RunResult | None:
    """`zoo --resume`: the finished run in d (its results.json is written last) if it ran the
    same patches and only tests the filter names; else None."""
    f = d / "results.json"
    if not f.is_file():
        return None
    run = load_results(f)
    if run.patches != [str(p) for p in patches]:
        return None
    if flt and not all(any(fnmatch.fnmatchcase(t.name, g) for g in flt) for t in run.tests):
        return None
    return run


def unreached_row(m: dict) -> dict:
    return {"mutant": m["name"], "caught": False, "by": "no test reaches the changed lines",
            "tests_run": 0, "failed": [], "reports": [], "reports_not_counted": [], "seconds": 0,
            "expected": m.get("caught_by", []), "origin": m.get("origin", "")}


def mutant_row(m: dict, run, took: float, stock_failed: set[str], stock_sigs: set[str]) -> dict:
    """The matrix row of one mutant's run, against the stock control."""
    failed, reports, ignored = verdict(run, stock_failed, stock_sigs)
    how = (failed[0].name + ": " + ((failed[0].reports[0].title if failed[0].reports else
           failed[0].message.splitlines()[0] if failed[0].message else failed[0].status))) if failed \
        else (reports[0] if reports else "")
    return {"mutant": m["name"], "caught": bool(failed or reports), "by": how, "tests_run": len(run.tests),
            "failed": [t.name for t in failed], "reports": reports,
            "reports_not_counted": ignored, "seconds": round(took, 1),
            "expected": m.get("caught_by", []), "origin": m.get("origin", "")}


def write_matrix(top: Path, req: RunRequest, control, stock_failed: set[str], rows: list[dict],
                 finished: bool) -> None:
    summary = {"kernel": req.kernel, "suite": req.suite, "finished": finished,
               "stock": {"tests": len(control.tests), "failed": sorted(stock_failed)}, "mutants": rows}
    tmp = top / "zoo.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(top / "zoo.json")


def zoo(req: RunRequest, mutant_names: list[str], all_tests: bool, use_affected: bool, pool: int = 1,
        resume: bool = False) -> int:
    if not req.kernel.startswith("debian:"):
        raise UserError("the zoo rebuilds ublk_drv for a Debian kernel: use --kernel debian:sid")
    if resume and not req.results:
        raise UserError("--resume continues a stopped zoo: give its --results DIR")
    req.check()
    top = results_dir(req.results, "zoo")
    base_filter = list(req.filter)
    ms = mutants(mutant_names)
    # A mutant's metadata names the tests of ours that must catch it; another suite (the
    # upstream selftests) runs whole against every mutant, for the side-by-side matrix.
    whole = all_tests or req.suite != "vm"
    # --affected: per mutant only the tests whose coverage reaches its changed lines (a test
    # that never runs the mutated code cannot catch it); the map of a --coverage run on the
    # same ublk_drv.c says which.
    reach: dict[str, set[str]] = {}

    def reaching(m):
        def pick(source, kernel, tests):
            if m["name"] not in reach:
                names, _ = affected.plan([m["patch"]], driver_source(source, kernel))
                # The map holds both suites: keep the tests of the suite being run.
                reach[m["name"]] = {t.name for t in tests} & set(names)
            return [t for t in tests if t.name in reach[m["name"]]]
        return pick

    def union_of(group):
        def pick(source, kernel, tests):
            for m in group:
                reaching(m)(source, kernel, tests)
            want = set().union(*(reach[m["name"]] for m in group))
            return [t for t in tests if t.name in want]
        return pick
    base = replace(req, quiet=True)

    def tests_of(group):
        return base_filter if whole else sorted({f for m in group for f in _filters(m)}) + base_filter

    def measure(patches, label, flt, choose):
        d = top / label
        if resume:
            old = reusable(d, patches, flt)
            if old:
                print(f"ublkcheck: zoo --resume: {label}: the finished run in {d} ({len(old.tests)} tests)",
                      file=sys.stderr, flush=True)
                return old, old.duration_s
            shutil.rmtree(d, ignore_errors=True)  # what a stopped run left half-written
        one = replace(base, patch=tuple(patches), rebuild_driver=True, results=str(d), filter=tuple(flt))
        t0 = time.monotonic()
        run, _ = execute(one, None, label=label, choose=choose)
        return run, time.monotonic() - t0

    # The control: the stock driver, rebuilt the same way, on the same tests. A test that
    # fails there cannot be credited with catching a mutant.
    control, _ = measure((), "stock", tests_of(ms), union_of(ms) if use_affected else None)
    stock_failed = {t.name for t in _failed(control)}
    stock_sigs = {r.signature for r in control.reports}
    stock_passed = {t.name for t in control.tests if t.status == "pass"}
    print(f"{'STOCK':6s}  {'(unmodified driver, same tests)':36s} {len(control.tests):4d} tests, "
          f"{len(stock_failed)} failed{': ' + ', '.join(sorted(stock_failed)) if stock_failed else ''}", flush=True)

    def show(r):
        print(f"{'CAUGHT' if r['caught'] else 'MISSED':6s}  {r['mutant']:36s} {r['seconds']:6.0f}s  "
              f"{r['by'][:100]}", flush=True)
        if r["reports_not_counted"]:
            print(f"        not counted (no ublk in the report): {'; '.join(r['reports_not_counted'])[:150]}",
                  flush=True)

    rows = []

    def keep(r):
        rows.append(r)
        show(r)
        # After every mutant: a zoo stopped half-way (the nightly runs for hours) keeps
        # what it measured.
        write_matrix(top, req, control, stock_failed, rows, finished=len(rows) == len(ms))

    reached = [m for m in ms if not use_affected or reach.get(m["name"])]
    for m in ms:
        if m not in reached:
            keep(unreached_row(m))
    if pool > 1:
        def judge(run):
            failed, _, _ = verdict(run, stock_failed, stock_sigs)
            ublk = [r for r in run.reports if r.signature not in stock_sigs and r.names_ublk()]
            skipped = [t for t in run.tests if t.status == "skip" and t.name in stock_passed]
            return zoopool.retry_tests(failed + skipped, ublk, [t.name for t in run.tests]) \
                if failed or ublk or skipped else []

        def measure_pool(group, label, tests):
            if tests is None:
                return measure([m["patch"] for m in group], label, tests_of(group),
                               union_of(group) if use_affected else None)
            return measure([m["patch"] for m in group], label, tests, None)
        cost = {t.name: t.duration_s for t in control.tests}
        for i, group in enumerate(zoopool.make_pools(reached, pool), 1):
            for r in zoopool.pooled_rows(i, group, measure_pool, judge,
                                         lambda m, run, took: mutant_row(m, run, took, stock_failed, stock_sigs),
                                         lambda name: cost.get(name, 0.0)):
                keep(r)
    else:
        for m in reached:
            run, took = measure([m["patch"]], m["name"], tests_of([m]), reaching(m) if use_affected else None)
            keep(mutant_row(m, run, took, stock_failed, stock_sigs))
    missed = [r["mutant"] for r in rows if not r["caught"]]
    print(f"{len(rows) - len(missed)}/{len(rows)} mutants caught; matrix in {top / 'zoo.json'}")
    if missed:
        print("missed (gaps in the suite): " + ", ".join(missed))
    return 0 if not missed else 1
