"""Known kernel bugs (ci/known-issues.json): a report whose title matches a known bug of
that kernel still fails its test, annotated, but does not fail the run."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .model import RunResult

DEFAULT = Path(__file__).resolve().parents[2] / "ci" / "known-issues.json"


def load(path: Path = DEFAULT) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def annotate(run: RunResult, issues: list[dict]) -> int:
    """Marks tests failed only by known reports; returns how many."""
    marked = 0
    for t in run.tests:
        if t.status != "fail" or not t.reports:
            continue
        if not t.message.startswith("kernel report during the test"):
            continue  # its own assertions failed too
        notes = []
        for r in t.reports:
            hit = next((k for k in issues if k["signature"] in r.title
                        and re.search(k.get("release", ""), run.kernel_release or "")), None)
            if hit is None:
                break
            notes.append(hit["note"])
        else:
            t.properties["known_issue"] = notes[0]
            marked += 1
    return marked
