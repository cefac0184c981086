"""`run --patch FILE --affected`: the tests whose coverage reaches the lines a patch changes
run first (from the newest per-test map measured on the same ublk_drv.c, see coverage.py),
with their own verdict; then the rest, unless `--affected-only`."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .coverage import file_sha, map_path
from .errors import UserError

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def changed_lines(patch_text: str, path: str = "drivers/block/ublk_drv.c") -> tuple[set[int], set[int]]:
    """(lines the patch touches, the hunks' whole old ranges) in the original file: a removed
    or changed line counts itself, an insertion the old lines either side of it."""
    touched: set[int] = set()
    ranges: set[int] = set()
    in_file = False
    old = 0
    for line in patch_text.splitlines():
        if line.startswith("--- "):
            in_file = False
            continue
        if line.startswith("+++ "):
            in_file = line[4:].split("\t")[0].strip().endswith(path)
            continue
        if not in_file:
            continue
        m = _HUNK.match(line)
        if m:
            old = int(m.group(1))
            ranges.update(range(old, old + int(m.group(2) or 1)))
            continue
        if line.startswith("-"):
            touched.add(old)
            old += 1
        elif line.startswith("+"):
            touched.update((old - 1, old))
        elif line.startswith(" ") or line == "":
            old += 1
    return touched, ranges


def affected_tests(cmap: dict, touched: set[int], ranges: set[int]) -> tuple[list[str], str]:
    """(tests reaching the touched lines, how they were found). A changed line gcov has no
    count for (a brace, a comment, a statement the compiler merged into another block)
    reaches no test: then any line of the hunks counts, then the functions around them."""
    def reaching(lines: set[int]) -> list[str]:
        return sorted(n for n, r in cmap["tests"].items() if lines & set(r["lines"]))
    hit = reaching(touched)
    if hit:
        return hit, "tests reaching the changed lines"
    hit = reaching(ranges)
    if hit:
        return hit, "tests reaching the changed hunks (the changed lines have no count of their own)"
    around = {f["name"] for f in cmap.get("functions", [])
              if any(f["start"] <= n <= f["end"] for n in touched | ranges)}
    hit = sorted(n for n, r in cmap["tests"].items() if around & set(r.get("functions", [])))
    return hit, (f"tests running the changed function ({', '.join(sorted(around))})" if hit
                 else "no test reaches the changed lines")


def load_map(driver_source: Path) -> dict:
    sha = file_sha(driver_source)
    p = map_path(sha)
    if not p.is_file():
        raise UserError(f"--affected needs a coverage map of this ublk_drv.c (sha256 {sha[:16]}), and none "
                        "is cached: run once with `--kernel-tree DIR --coverage` on the same driver source "
                        "(e.g. `./ublkcheck fetch-source 7.2 DIR`), then --affected works for its Debian "
                        "kernel too")
    return json.loads(p.read_text())


def plan(patches: list[Path], driver_source: Path) -> tuple[list[str], str]:
    cmap = load_map(driver_source)
    touched: set[int] = set()
    ranges: set[int] = set()
    for p in patches:
        t, r = changed_lines(p.read_text(errors="replace"))
        touched |= t
        ranges |= r
    return affected_tests(cmap, touched, ranges)
