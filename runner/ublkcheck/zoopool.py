"""`zoo --pool K`: group testing for the zoo. A suite that catches few mutants (the upstream
selftests caught 5 of the first 48) spends a whole suite run on every miss; K mutants built
into one module cost one run, and only a pool that fails is split: each member then runs
alone the tests its pool failed (and those it skipped where the stock driver passed: a mutant
that hides a feature makes a selftest skip, which would hide the other members). A member is
missed when its pool passed every test, or when it passes alone every test its pool failed.

Members of a pool are chosen apart in the source, no two hunks within GAP lines, so their
patches apply together and none of them sits in the code another one changes. One mutant
could still hide another's effect (a bug that turns a path off); the zoo's rows name the
pool, so a miss found this way can be measured alone (`zoo --mutant NAME`)."""
from __future__ import annotations

import re
from pathlib import Path

# Lines between two mutants' hunks in one pool: well past the 3 lines of context of a
# unified diff, and longer than 9 in 10 of the driver's functions (7.2: 253 functions,
# median 11 lines, 90th percentile 37).
GAP = 60

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", re.M)


def hunks(patch_text: str) -> list[tuple[int, int]]:
    """The old file's line ranges [first, last] of a unified diff's hunks."""
    out = []
    for m in _HUNK.finditer(patch_text):
        first, count = int(m.group(1)), int(m.group(2) or 1)
        out.append((first, first + max(count, 1) - 1))
    return out


def _apart(a: list[tuple[int, int]], b: list[tuple[int, int]], gap: int) -> bool:
    return all(max(x0, y0) - min(x1, y1) >= gap for x0, x1 in a for y0, y1 in b)


def make_pools(ms: list[dict], size: int, gap: int = GAP) -> list[list[dict]]:
    """The mutants (each with its "patch" path) in as few pools of at most `size` as this
    finds, every two members of a pool `gap` lines apart. Each mutant goes to the smallest
    pool it fits, so 30 mutants in pools of 8 give 8, 8, 7, 7, not 8, 8, 8, 6."""
    if size < 1:
        raise ValueError("pool size must be at least 1")
    spans = {m["name"]: hunks(Path(m["patch"]).read_text(errors="replace")) for m in ms}
    n_pools = -(-len(ms) // size)
    while True:
        cap = -(-len(ms) // n_pools) if n_pools else 0
        pools: list[list[dict]] = [[] for _ in range(n_pools)]
        for m in ms:
            fits = [p for p in pools if len(p) < cap and
                    all(_apart(spans[m["name"]], spans[o["name"]], gap) for o in p)]
            if not fits:
                break
            home = min(fits, key=len)
            home.append(m)
        else:
            return [p for p in pools if p]
        n_pools += 1


def retry_tests(failed_tests: list, ublk_reports: list, all_tests: list[str]) -> list[str]:
    """The tests a failed pool's members each run alone: the tests given (failed, or skipped
    where the stock driver passed) and those a kernel report naming ublk came from. A report
    no test owns (it came between tests) sends them through all of the pool's tests."""
    names = {t.name for t in failed_tests}
    for r in ublk_reports:
        if not r.test:
            return list(all_tests)
        names.add(r.test)
    return sorted(names)
