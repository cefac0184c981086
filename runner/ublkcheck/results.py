"""Result writers: results.json (schema in results/README.md), JUnit XML for CI tools,
KTAP for kernel people, and the terminal summary."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from .model import Report, RunResult, TestResult

SCHEMA_VERSION = 1


def write_json(run: RunResult, path: Path) -> None:
    d = run.to_dict()
    d["schema_version"] = SCHEMA_VERSION
    path.write_text(json.dumps(d, indent=2) + "\n")


def load_results(path: Path) -> RunResult:
    d = json.loads(Path(path).read_text())
    tests = [TestResult(**{**t, "reports": [Report(**r) for r in t.get("reports", [])]})
             for t in d.get("tests", [])]
    keep = {k: v for k, v in d.items() if k in RunResult.__dataclass_fields__ and k not in ("tests", "reports")}
    return RunResult(**keep, tests=tests, reports=[Report(**r) for r in d.get("reports", [])])


def _suites(run: RunResult) -> dict[str, list[TestResult]]:
    out: dict[str, list[TestResult]] = {}
    for t in run.tests:
        out.setdefault(t.suite or "default", []).append(t)
    return out


def write_junit(run: RunResult, path: Path) -> None:
    root = ET.Element("testsuites", name=f"ublkcheck {run.kernel_spec}",
                      tests=str(len(run.tests)),
                      failures=str(sum(t.status == "fail" for t in run.tests)),
                      errors=str(sum(t.status == "error" for t in run.tests)),
                      skipped=str(sum(t.status == "skip" for t in run.tests)),
                      time=f"{run.duration_s:.3f}")
    for suite, tests in _suites(run).items():
        s = ET.SubElement(root, "testsuite", name=suite, tests=str(len(tests)),
                          failures=str(sum(t.status == "fail" for t in tests)),
                          errors=str(sum(t.status == "error" for t in tests)),
                          skipped=str(sum(t.status == "skip" for t in tests)),
                          time=f"{sum(t.duration_s for t in tests):.3f}",
                          timestamp=run.started or "1970-01-01T00:00:00", hostname=run.host or "localhost")
        props = ET.SubElement(s, "properties")
        ET.SubElement(props, "property", name="kernel", value=run.kernel_release or run.kernel_spec)
        ET.SubElement(props, "property", name="accel", value=run.accel or "")
        for t in tests:
            c = ET.SubElement(s, "testcase", classname=f"{suite}.{t.name.split('.')[0]}" if "." in t.name else suite,
                              name=t.name, time=f"{t.duration_s:.3f}")
            titles = "; ".join(r.title for r in t.reports)
            if t.status == "skip":
                ET.SubElement(c, "skipped", message=t.skip_reason or "skipped")
            elif t.status == "fail":
                first = titles or t.message.splitlines()[0] if (titles or t.message) else "failed"
                f = ET.SubElement(c, "failure", message=first[:500],
                                  type="kernel-report" if t.reports else "assertion")
                f.text = t.message
            elif t.status == "error":
                e = ET.SubElement(c, "error", message=(t.message.splitlines() or ["error"])[0][:500])
                e.text = t.message
            if t.reports:
                ET.SubElement(c, "system-out").text = "\n\n".join(r.excerpt for r in t.reports)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_ktap(run: RunResult, path: Path) -> None:
    lines = ["KTAP version 1", f"# ublkcheck on {run.kernel_release or run.kernel_spec}", f"1..{len(run.tests)}"]
    for i, t in enumerate(run.tests, 1):
        name = t.name.replace("#", "_")
        for r in t.reports:
            lines.append(f"# {r.title}")
        if t.status == "pass":
            lines.append(f"ok {i} {name}")
        elif t.status == "skip":
            lines.append(f"ok {i} {name} # SKIP {t.skip_reason.splitlines()[0] if t.skip_reason else ''}".rstrip())
        else:
            for m in t.message.splitlines()[:5]:
                lines.append(f"# {m}")
            lines.append(f"not ok {i} {name}")
    path.write_text("\n".join(lines) + "\n")


def write_all(run: RunResult, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(run, outdir / "results.json")
    write_junit(run, outdir / "junit.xml")
    write_ktap(run, outdir / "ktap.txt")


def failure_excerpts(run: RunResult, max_lines: int = 8) -> list[str]:
    """The first lines of each unexpected failure's message: a CI log often shows only the
    end of the output, and a file:line alone does not say what broke."""
    out = []
    for t in run.tests:
        if t.status not in ("fail", "error") or t.properties.get("known_issue") or t.reports:
            continue
        lines = [l.rstrip() for l in (t.message or "").splitlines() if l.strip()]
        if len(lines) < 2:
            continue
        out.append(f"--- why {t.name} {t.status.upper()}ED:")
        out += ["    " + l[:160] for l in lines[:max_lines]]
        if len(lines) > max_lines:
            out.append(f"    ... {len(lines) - max_lines} more line(s) in junit.xml / results.json")
    return out


def summary_table(run: RunResult, only_problems: bool = False) -> str:
    rows = []
    for t in run.tests:
        if only_problems and t.status == "pass":
            continue
        why = "; ".join(r.title for r in t.reports) or t.skip_reason or (t.message.splitlines()[0] if t.message else "")
        status = t.status.upper() + ("*" if t.properties.get("known_issue") else "")
        rows.append((t.name, status, f"{t.duration_s:.1f}s", why[:90]))
    w = max([len(r[0]) for r in rows] + [4])
    out = [f"{'TEST'.ljust(w)}  STATUS  TIME     DETAIL"]
    out += [f"{n.ljust(w)}  {s.ljust(6)}  {d.rjust(7)}  {y}" for n, s, d, y in rows]
    tot = run.totals()
    out.append(f"kernel {run.kernel_release or run.kernel_spec}: {tot['pass']} passed, {tot['fail']} failed, "
               f"{tot['skip']} skipped, {tot['error']} errors in {run.duration_s:.0f}s")
    from .history import summary_line
    if run.skips:
        out.append(summary_line(run.skips))
    out += failure_excerpts(run)
    known = sum(1 for t in run.tests if t.properties.get("known_issue"))
    if known:
        out.append(f"FAIL* = failed by a known kernel bug listed in ci/known-issues.json ({known} test(s));"
                   " it does not fail the run")
    return "\n".join(out)
