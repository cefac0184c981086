"""The run's data model, shared by the orchestrator, the scanner and the result writers.

Plain dataclasses so every stage can be tested without a VM.
"""
from __future__ import annotations

from dataclasses import dataclass, field, asdict
from typing import Optional

STATUSES = ("pass", "fail", "skip", "error")


def unexpected_failures(tests: list) -> list:
    """The tests that failed for something other than a documented kernel bug
    (ci/known-issues.json marks those with the known_issue property)."""
    return [t for t in tests if t.status in ("fail", "error") and not t.properties.get("known_issue")]


# The line the orchestrator puts first in a test's message for each kernel report printed
# while it ran (a report fails a test whose assertions passed).
REPORT_LINE_PREFIX = "kernel report during the test:"


@dataclass
class Report:
    """One crash/warning report found on the console (see scan.py)."""
    kind: str            # e.g. "null-deref", "warning", "kasan", "hung-task", "panic"
    title: str           # e.g. "BUG: kernel NULL pointer dereference in io_uring_cmd_done"
    signature: str       # normalised title for dedup (no numbers/addresses)
    excerpt: str         # the report's lines, as printed
    line: int = 0        # index of the first line in console.log
    test: Optional[str] = None  # test that was running when it was printed

    def names_ublk(self) -> bool:
        """ublk_drv in the call trace, or a ublk task or message: a report our tests and
        patches can be blamed for. A TCG guest now and then oopses on its own (an int3 in
        kthreadd at boot), and such a report names no ublk."""
        # Not the module list: every report of a guest with ublk_drv loaded prints it.
        return any("ublk" in l for l in self.excerpt.splitlines() if "Modules linked in:" not in l)


@dataclass
class TestResult:
    __test__ = False  # not a pytest class
    name: str                       # "<suite>.<GTestSuite>.<TestName>" or a guest command
    suite: str                      # meson-ish suite/program name, e.g. "control"
    status: str                     # one of STATUSES
    duration_s: float = 0.0
    skip_reason: str = ""
    message: str = ""               # failure text (assertion output, hang evidence, ...)
    reports: list[Report] = field(default_factory=list)
    kernel: str = ""
    properties: dict = field(default_factory=dict)  # gtest RecordProperty values etc.


@dataclass
class RunResult:
    run_id: str
    kernel_spec: str                # what the user asked for, e.g. "debian:sid"
    kernel_release: str = ""        # uname -r in the guest
    features: Optional[int] = None  # GET_FEATURES word, None if unknown/unsupported
    host: str = ""
    accel: str = ""                 # "kvm" or "tcg"
    boot_seconds: Optional[float] = None  # qemu start -> guest command running (first boot)
    boots: int = 0
    started: str = ""               # ISO 8601 UTC
    duration_s: float = 0.0
    patches: list[str] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)   # all reports, attributed or not
    # Optional, absent from older results.json files (load_results fills the defaults):
    shard: str = ""                 # "I/N" when --shard ran a part of the tests
    merged_from: list[str] = field(default_factory=list)  # `ublkcheck merge` inputs
    shards: list[dict] = field(default_factory=list)      # per merged input: dir, shard, tests, duration_s, boots
    coverage: dict = field(default_factory=dict)  # --coverage: ublk_drv.c lines/functions/branches (coverage.py)
    skips: dict = field(default_factory=dict)     # SKIPs against the kernel's previous run (history.py)
    boot_profiles: list = field(default_factory=list)  # per boot: where its time went (bootprofile.py)

    def totals(self) -> dict:
        t = {s: 0 for s in STATUSES}
        for r in self.tests:
            t[r.status] = t.get(r.status, 0) + 1
        t["total"] = len(self.tests)
        return t

    def ok(self) -> bool:
        """Nothing failed, except tests failed only by a documented kernel bug
        (ci/known-issues.json): those stay FAIL in every report but do not fail the run."""
        return all(r.status in ("pass", "skip") or r.properties.get("known_issue")
                   for r in self.tests)

    def suite_durations(self) -> dict:
        """Seconds per suite program (sum of its tests), slowest first."""
        out: dict[str, float] = {}
        for t in self.tests:
            out[t.suite or "default"] = out.get(t.suite or "default", 0.0) + t.duration_s
        return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["totals"] = self.totals()
        d["suite_durations"] = self.suite_durations()
        return d
