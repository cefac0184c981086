"""SKIPs against the previous run of the same kernel: a SKIP counts as a pass, so a kernel
that silently lost a feature shows up only as more SKIPs. Each finished test run records its
statuses per kernel release in the cache; the next run of that release is compared with it
on the tests both ran (a filtered run is not "fewer SKIPs")."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .kernel import cache_dir
from .model import RunResult


def _path(release: str) -> Path:
    return cache_dir() / "history" / (re.sub(r"[^\w.+-]", "_", release) + ".json")


def compare(run: RunResult, previous: dict | None) -> dict:
    """{"skipped", "previous": {"run", "started", "skipped"} | None, "newly_skipped": [{test, was}],
    "no_longer_skipped": [...]}, over the tests both runs have."""
    skipped = sum(t.status == "skip" for t in run.tests)
    if not previous:
        return {"skipped": skipped, "previous": None, "newly_skipped": [], "no_longer_skipped": []}
    was = previous.get("statuses", {})
    common = [t for t in run.tests if t.name in was]
    return {
        "skipped": skipped,
        "previous": {"run": previous.get("run", ""), "started": previous.get("started", ""),
                     "skipped": sum(was[t.name] == "skip" for t in common)},
        "compared_tests": len(common),
        "newly_skipped": [{"test": t.name, "was": was[t.name]} for t in common
                          if t.status == "skip" and was[t.name] != "skip"],
        "no_longer_skipped": [{"test": t.name, "now": t.status} for t in common
                              if t.status != "skip" and was[t.name] == "skip"],
    }


def compare_and_record(run: RunResult, outdir: Path) -> dict:
    """Compares with the release's previous run, then makes this run the previous one,
    unless it ran a patched driver (`--patch`, the zoo): those compare with the stock
    driver's last run but never become it."""
    if not run.kernel_release or not run.tests:
        return {}
    p = _path(run.kernel_release)
    try:
        previous = json.loads(p.read_text())
    except (OSError, ValueError):
        previous = None
    result = compare(run, previous)
    if run.patches:
        return result
    merged = dict(previous.get("statuses", {})) if previous else {}
    merged.update({t.name: t.status for t in run.tests})
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"run": str(outdir), "started": run.started, "statuses": merged}))
    return result


def summary_line(s: dict) -> str:
    """'skips: 7 (previous run of this kernel: 5 of the same tests; newly skipped: a, b)'."""
    if not s:
        return ""
    prev = s.get("previous")
    if not prev:
        return f"skips: {s['skipped']} (no previous run of this kernel to compare with)"
    line = f"skips: {s['skipped']} (previous run of this kernel, {prev['run']}: {prev['skipped']} of the same tests)"
    if s["newly_skipped"]:
        names = ", ".join(f"{x['test']} (was {x['was']})" for x in s["newly_skipped"][:5])
        more = len(s["newly_skipped"]) - 5
        line += f"; NEWLY SKIPPED: {names}" + (f" and {more} more" if more > 0 else "")
    if s["no_longer_skipped"]:
        line += f"; {len(s['no_longer_skipped'])} no longer skipped"
    return line
