"""`ublkcheck diff OLD NEW`: what changed between two runs (or two matrices, kernel by
kernel): new failures, fixes, skips that came or went, tests added or removed, and kernel
report signatures that are new or gone. A new failure or a new signature is a regression
(exit 1) unless ci/known-issues.json explains it (the test's known_issue property)."""
from __future__ import annotations

import argparse
import json

from .model import RunResult, TestResult
from .rundirs import KernelRun, load_kernel_runs

BAD = ("fail", "error")


def _detail(t: TestResult) -> str:
    return "; ".join(r.title for r in t.reports) or t.skip_reason or (t.message.splitlines() or [""])[0]


def _signatures(run: RunResult) -> dict[str, dict]:
    """signature -> {title, tests, known_issue}; known when every test it hit is a known issue."""
    by_test = {t.name: t for t in run.tests}
    out: dict[str, dict] = {}
    for r in run.reports:
        s = out.setdefault(r.signature, {"signature": r.signature, "title": r.title, "tests": [], "known": []})
        if r.test and r.test not in s["tests"]:
            s["tests"].append(r.test)
        t = by_test.get(r.test) if r.test else None
        s["known"].append(bool(t and t.properties.get("known_issue")))
    for s in out.values():
        s["known_issue"] = all(s.pop("known"))
    return out


def diff_runs(old: RunResult, new: RunResult) -> dict:
    o = {t.name: t for t in old.tests}
    n = {t.name: t for t in new.tests}
    d: dict[str, list] = {k: [] for k in ("new_failures", "fixed", "newly_skipped", "no_longer_skipped",
                                          "added", "removed", "new_signatures", "gone_signatures")}
    for name in sorted(set(o) | set(n)):
        ot, nt = o.get(name), n.get(name)
        was = ot.status if ot else "absent"
        if nt is None:
            d["removed"].append({"test": name, "old": was})
            continue
        now = nt.status
        if ot is None:
            d["added"].append({"test": name, "new": now, "known_issue": nt.properties.get("known_issue", "")})
        if now in BAD and was not in BAD:
            d["new_failures"].append({"test": name, "old": was, "new": now, "detail": _detail(nt),
                                      "known_issue": nt.properties.get("known_issue", "")})
        elif was in BAD and now == "pass":
            d["fixed"].append({"test": name, "old": was, "new": now})
        if now == "skip" and ot is not None and was != "skip":
            d["newly_skipped"].append({"test": name, "old": was, "reason": nt.skip_reason})
        elif was == "skip" and now != "skip":
            d["no_longer_skipped"].append({"test": name, "new": now})
    os_, ns = _signatures(old), _signatures(new)
    d["new_signatures"] = [ns[s] for s in ns if s not in os_]
    d["gone_signatures"] = [os_[s] for s in os_ if s not in ns]
    return d


def regressions(d: dict) -> int:
    return (sum(1 for f in d["new_failures"] if not f["known_issue"])
            + sum(1 for s in d["new_signatures"] if not s["known_issue"]))


def _pairs(old_kind: str, old: list[KernelRun], new_kind: str, new: list[KernelRun]):
    """Two single runs are compared as they are (sid against experimental is a fair question);
    otherwise kernels are matched by spec."""
    if old_kind == new_kind == "run":
        return [(old[0], new[0])], [], []
    ospec = {k.spec: k for k in old}
    nspec = {k.spec: k for k in new}
    pairs = [(ospec[s], nspec[s]) for s in nspec if s in ospec]
    return pairs, [k for s, k in nspec.items() if s not in ospec], [k for s, k in ospec.items() if s not in nspec]


def diff_sets(old_kind, old: list[KernelRun], new_kind, new: list[KernelRun]) -> dict:
    pairs, added, removed = _pairs(old_kind, old, new_kind, new)
    out = {"kernels": [], "kernels_added": [k.spec for k in added], "kernels_removed": [k.spec for k in removed],
           "kernel_errors": [], "regressions": 0}
    for ok, nk in pairs:
        if nk.run is None:
            # A kernel that ran before and does not now hides every verdict: a regression.
            out["kernel_errors"].append({"kernel": nk.spec, "error": nk.error, "ran_before": ok.run is not None})
            out["regressions"] += ok.run is not None
            continue
        base = ok.run or RunResult(run_id="none", kernel_spec=ok.spec)
        changes = diff_runs(base, nk.run)
        out["kernels"].append({"old": ok.spec, "new": nk.spec, "old_release": base.kernel_release,
                               "new_release": nk.run.kernel_release, "changes": changes})
        out["regressions"] += regressions(changes)
    return out


def _mark(status: str, known: str = "") -> str:
    return status.upper() + ("*" if known else "")


def format_diff(d: dict) -> str:
    lines = []
    for k in d["kernels"]:
        c = k["changes"]
        name = k["new"] if k["old"] == k["new"] else f"{k['old']} -> {k['new']}"
        rel = (k["new_release"] if k["old_release"] == k["new_release"]
               else f"{k['old_release'] or '?'} -> {k['new_release']}")
        lines.append(f"{name} ({rel})")
        sections = [
            ("new failures", [f"{_mark(f['new'], f['known_issue']):6s} {f['test']}  (was {f['old']})  "
                              f"{f['detail'][:100]}"
                              + (f"\n           known issue: {f['known_issue']}" if f["known_issue"] else "")
                              for f in c["new_failures"]]),
            ("new kernel reports", [f"{s['title']}  in {', '.join(s['tests']) or 'no test'}"
                                    + ("  (known issue)" if s["known_issue"] else "") for s in c["new_signatures"]]),
            ("fixed", [f"PASS   {f['test']}  (was {f['old']})" for f in c["fixed"]]),
            ("kernel reports gone", [s["title"] for s in c["gone_signatures"]]),
            ("newly skipped", [f"SKIP   {f['test']}  (was {f['old']})  {f['reason'][:100]}"
                               for f in c["newly_skipped"]]),
            ("no longer skipped", [f"{_mark(f['new']):6s} {f['test']}" for f in c["no_longer_skipped"]]),
            ("added", [f"{_mark(f['new'], f['known_issue']):6s} {f['test']}" for f in c["added"]]),
            ("removed", [f"{_mark(f['old']):6s} {f['test']}" for f in c["removed"]]),
        ]
        shown = [(title, items) for title, items in sections if items]
        for title, items in shown:
            lines.append(f"  {title} ({len(items)}):")
            lines += [f"    {i}" for i in items]
        if not shown:
            lines.append("  no changes")
    for e in d["kernel_errors"]:
        lines.append(f"{e['kernel']}: did not run: {e['error']}" + ("" if e["ran_before"] else " (nor before)"))
    if d["kernels_added"]:
        lines.append(f"kernels only in NEW: {', '.join(d['kernels_added'])}")
    if d["kernels_removed"]:
        lines.append(f"kernels only in OLD: {', '.join(d['kernels_removed'])}")
    lines.append(f"{d['regressions']} regression(s)" + (" (new failures or kernel reports not explained by "
                                                        "ci/known-issues.json)" if d["regressions"] else ""))
    return "\n".join(lines)


def cmd_diff(args) -> int:
    d = diff_sets(*load_kernel_runs(args.old), *load_kernel_runs(args.new))
    print(json.dumps(d, indent=2) if args.json else format_diff(d))
    return 1 if d["regressions"] else 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "diff", help="what changed between two runs or matrices",
        description="Compare two runs: new failures, fixes, skips, added/removed tests, new and gone "
                    "kernel report signatures. Matrices are compared kernel by kernel.",
        epilog="OLD and NEW are run directories, their results.json, or matrix directories.\n"
               "exit status: 0 no regression, 1 a new failure or a new kernel report signature\n"
               "(tests failed only by a bug in ci/known-issues.json do not count), 2 bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p.set_defaults(func=cmd_diff)
