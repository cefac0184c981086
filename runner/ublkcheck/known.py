"""Known kernel bugs (ci/known-issues.json): a failure that a known bug of that kernel
explains still fails its test, annotated, but does not fail the run.

Each entry forgives exactly one thing:
- a report entry ("signature") one kernel report: the same full title *and* the source
  location it names ("location", a regex searched in the report's first lines, e.g.
  `ublk_drv\\.c:2908\\b`), so another WARN in the same function is a new bug;
- a test entry ("test") one assertion of that test: its file:line or its message
  ("message", a substring of the failure text), so any other failure still counts."""
from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from .model import REPORT_LINE_PREFIX, RunResult
from .paths import KNOWN_ISSUES

DEFAULT = KNOWN_ISSUES


def load(path: Path = DEFAULT) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def problems(issues: list[dict]) -> list[str]:
    """What makes an entry forgive more than one thing (the list's own unit test runs it)."""
    out = []
    for i, k in enumerate(issues):
        if ("signature" in k) == ("test" in k):
            out.append(f"entry {i}: needs exactly one of signature, test")
        elif "signature" in k and not k.get("location"):
            out.append(f"entry {i} ({k['signature']}): needs the location it was seen at")
        elif "test" in k and not k.get("message"):
            out.append(f"entry {i} ({k['test']}): needs the message or file:line it excuses")
        if not k.get("note") or not k.get("release"):
            out.append(f"entry {i}: needs a note and a release")
    return out


def _head(r) -> str:
    """A report's header lines: the WARNING/BUG line and the RIP, where its location is."""
    lines = r.excerpt.splitlines()
    return "\n".join(lines[:1] + [l for l in lines if "RIP:" in l][:1])


def report_issue(r, issues: list[dict], release: str) -> dict | None:
    return next((k for k in issues if "signature" in k and k["signature"] == r.title
                 and re.search(k.get("release", ""), release)
                 and k.get("location") and re.search(k["location"], _head(r))), None)


def _test_globs(entry: dict) -> list[str]:
    t = entry.get("test", [])
    return [t] if isinstance(t, str) else t


def _test_issue(name: str, issues: list[dict], release: str, message: str = "") -> dict | None:
    """Entries with "test" (a glob, or a list of globs for one bug behind several tests): a
    test that this kernel fails by a documented bug (e.g. 6.12's EIO under REISSUE), only
    by the failure whose text contains "message": any other failure of the test counts."""
    return next((k for k in issues if any(fnmatch.fnmatchcase(name, g) for g in _test_globs(k))
                 and re.search(k.get("release", ""), release)
                 and k.get("message") and k["message"] in message), None)


def annotate(run: RunResult, issues: list[dict]) -> int:
    """Marks tests failed only by known kernel bugs; returns how many."""
    marked = 0
    release = run.kernel_release or ""
    for t in run.tests:
        if t.status != "fail":
            continue
        notes = []
        for r in t.reports:
            hit = report_issue(r, issues, release)
            if hit is None:
                break
            notes.append(hit["note"])
        else:
            by_test = _test_issue(t.name, issues, release, t.message)
            if by_test:
                notes.insert(0, by_test["note"])
            elif not t.reports or not t.message.startswith(REPORT_LINE_PREFIX):
                continue  # its own assertions failed, and no entry names this test
            t.properties["known_issue"] = notes[0]
            marked += 1
    return marked
