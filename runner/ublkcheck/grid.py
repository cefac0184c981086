"""The tests x kernels grid behind the matrix table, the HTML report and the markdown
summary: one cell per (test, kernel), each distinct SKIP reason numbered once so a column
of identical reasons reads as SKIP[1] with the reason written out below."""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import RunResult, TestResult


@dataclass
class Cell:
    status: str                 # pass/fail/skip/error, or "absent" (the kernel's run lacks the test)
    label: str                  # PASS, FAIL, FAIL* (known issue), SKIP[n], ERROR, -
    test: TestResult | None = None
    note: int = 0               # footnote number of the skip reason


@dataclass
class Grid:
    runs: list[RunResult]
    tests: list[str]                                  # sorted names, every test of any run
    rows: dict[str, list[Cell]]                       # name -> one cell per run
    notes: list[str] = field(default_factory=list)    # skip reasons; footnote n is notes[n-1]

    def passes_everywhere(self, name: str) -> bool:
        return all(c.status == "pass" for c in self.rows[name])

    def problem_tests(self) -> list[str]:
        return [n for n in self.tests if not self.passes_everywhere(n)]

    def known_issues(self) -> int:
        return sum(1 for cells in self.rows.values() for c in cells if c.label == "FAIL*")


def status_label(t: TestResult) -> str:
    return t.status.upper() + ("*" if t.status == "fail" and t.properties.get("known_issue") else "")


def build_grid(runs: list[RunResult]) -> Grid:
    by_run = [{t.name: t for t in r.tests} for r in runs]
    names = sorted({n for m in by_run for n in m})
    notes: dict[str, int] = {}
    rows = {}
    for name in names:
        cells = []
        for m in by_run:
            t = m.get(name)
            if t is None:
                cells.append(Cell("absent", "-"))
            elif t.status == "skip":
                reason = (t.skip_reason or "no reason given").strip()
                n = notes.setdefault(reason, len(notes) + 1)
                cells.append(Cell("skip", f"SKIP[{n}]", t, n))
            else:
                cells.append(Cell(t.status, status_label(t), t))
        rows[name] = cells
    return Grid(runs, names, rows, list(notes))
