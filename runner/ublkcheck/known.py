"""Known kernel bugs (ci/known-issues.json): a report whose title matches a known bug of
that kernel still fails its test, annotated, but does not fail the run."""
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


def report_issue(r, issues: list[dict], release: str) -> dict | None:
    return next((k for k in issues if "signature" in k and k["signature"] in r.title
                 and re.search(k.get("release", ""), release)), None)


def _test_globs(entry: dict) -> list[str]:
    t = entry.get("test", [])
    return [t] if isinstance(t, str) else t


def _test_issue(name: str, issues: list[dict], release: str, message: str = "") -> dict | None:
    """Entries with "test" (a glob, or a list of globs for one bug behind several tests): a
    test that this kernel fails by a documented bug (e.g. 6.12's EIO under REISSUE). With
    "message", only a failure whose text contains it: any other failure of the test counts."""
    return next((k for k in issues if any(fnmatch.fnmatchcase(name, g) for g in _test_globs(k))
                 and re.search(k.get("release", ""), release) and k.get("message", "") in message), None)


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
