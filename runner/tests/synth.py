"""Synthetic runs for the merge/diff/matrix/report tests: built from the model dataclasses
and written with results.write_all, as a real run writes them."""
from pathlib import Path

from ublkcheck.model import Report, RunResult, TestResult
from ublkcheck.results import write_all

SID = "7.2.13+deb14-amd64"


def report(title, test, kind="warning", signature=None, excerpt=None, line=1):
    return Report(kind=kind, title=title, signature=signature or title, line=line, test=test,
                  excerpt=excerpt or f"{title}\nCall Trace:\n ublk_ch_uring_cmd+0x10/0x20 [ublk_drv]")


def tr(name, status="pass", duration=1.0, skip_reason="", reports=(), known="", message=""):
    t = TestResult(name=name, suite=name.split(".")[0], status=status, duration_s=duration,
                   skip_reason=skip_reason, reports=list(reports), kernel=SID,
                   message=message or (f"kernel report during the test: {reports[0].title}" if reports else ""))
    if known:
        t.properties["known_issue"] = known
    return t


def run(tests, spec="debian:sid", release=SID, **kw):
    reports = [r for t in tests for r in t.reports] + list(kw.pop("extra_reports", []))
    base = dict(run_id="r", kernel_spec=spec, kernel_release=release, accel="tcg", boot_seconds=5.5,
                boots=1, started="2026-11-22T14:00:00+00:00", duration_s=sum(t.duration_s for t in tests) + 6)
    base.update(kw)
    return RunResult(tests=list(tests), reports=reports, **base)


def written(r: RunResult, d: Path) -> Path:
    write_all(r, d)
    return d


def unsharded():
    """Seven tests of every status, one failed by a kernel report."""
    oops = report("BUG: kernel NULL pointer dereference in io_uring_cmd_done", "stress.Stress.Seed",
                  kind="null-deref")
    return run([tr("control.Lifecycle.StartStop", duration=0.7),
                tr("control.Lifecycle.Busy", duration=0.4),
                tr("io.CopyModes/Integrity.Verify/plain_mem_512", duration=3.0),
                tr("io.ReadOnly.Refuses", "skip", 0.0, skip_reason="kernel lacks UBLK_F_X"),
                tr("recovery.Recover.Reissue", "fail", 4.0, message="Expected: 0\n  Actual: -5"),
                tr("stress.Stress.Seed", "fail", 23.0, reports=[oops]),
                tr("stress.Stress.Other", "error", 0.0, message="not reached")])
