"""`ublkcheck zoo`: each mutant of fixtures/mutants is built into ublk_drv.ko, booted, and
the tests its metadata names are run (then, with --all-tests, the rest). A mutant is caught
when a test fails or the kernel reports in ublk's code; the matrix goes to zoo.json and the
terminal."""
from __future__ import annotations

import json
import time
from pathlib import Path

from . import affected
from dataclasses import replace

from .pipeline import RunRequest, driver_source, execute, results_dir
from .paths import MUTANTS
from .errors import UserError
from .model import REPORT_LINE_PREFIX, unexpected_failures


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


def zoo(req: RunRequest, mutant_names: list[str], all_tests: bool, use_affected: bool) -> int:
    if not req.kernel.startswith("debian:"):
        raise UserError("the zoo rebuilds ublk_drv for a Debian kernel: use --kernel debian:sid")
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

    def union(source, kernel, tests):
        for m in ms:
            reaching(m)(source, kernel, tests)
        want = set().union(*reach.values())
        return [t for t in tests if t.name in want]
    base = replace(req, quiet=True)
    # The control: the stock driver, rebuilt the same way, on the same tests. A test that
    # fails there cannot be credited with catching a mutant.
    stock = replace(base, patch=(), rebuild_driver=True, results=str(top / "stock"),
                    filter=tuple(base_filter if whole else sorted({f for m in ms for f in _filters(m)}) + base_filter))
    control, _ = execute(stock, None, label="stock", choose=union if use_affected else None)
    stock_failed = {t.name for t in _failed(control)}
    stock_sigs = {r.signature for r in control.reports}
    print(f"{'STOCK':6s}  {'(unmodified driver, same tests)':36s} {len(control.tests):4d} tests, "
          f"{len(stock_failed)} failed{': ' + ', '.join(sorted(stock_failed)) if stock_failed else ''}", flush=True)
    rows = []
    for m in ms:
        one = replace(base, patch=(m["patch"],), rebuild_driver=True, results=str(top / m["name"]),
                      filter=tuple(base_filter if whole else (_filters(m) + base_filter)))
        t0 = time.monotonic()
        if use_affected and not reach.get(m["name"]):
            rows.append(unreached_row(m))
            print(f"{'MISSED':6s}  {m['name']:36s} {0:6.0f}s  no test reaches the changed lines", flush=True)
        else:
            run, _ = execute(one, None, label=m["name"], choose=reaching(m) if use_affected else None)
            rows.append(mutant_row(m, run, time.monotonic() - t0, stock_failed, stock_sigs))
            r = rows[-1]
            print(f"{'CAUGHT' if r['caught'] else 'MISSED':6s}  {m['name']:36s} {r['seconds']:6.0f}s  "
                  f"{r['by'][:100]}", flush=True)
            if r["reports_not_counted"]:
                print(f"        not counted (no ublk in the report): {'; '.join(r['reports_not_counted'])[:150]}",
                      flush=True)
        # After every mutant: a zoo stopped half-way (the nightly runs for hours) keeps
        # what it measured.
        write_matrix(top, req, control, stock_failed, rows, finished=len(rows) == len(ms))
    missed = [r["mutant"] for r in rows if not r["caught"]]
    print(f"{len(rows) - len(missed)}/{len(rows)} mutants caught; matrix in {top / 'zoo.json'}")
    if missed:
        print("missed (gaps in the suite): " + ", ".join(missed))
    return 0 if not missed else 1
