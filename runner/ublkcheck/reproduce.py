"""`ublkcheck reproduce seed-panic`: boot the seed mutant (fixtures/mutants/per-io-daemon-
v7-batch.patch) and run seed 000's workload until the kernel reports; then run the same
workload on the stock driver rebuilt the same way, which must pass."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from dataclasses import replace

from .pipeline import RunRequest, execute, results_dir
from .paths import MUTANTS
from .errors import UserError

MUTANT = MUTANTS / "per-io-daemon-v7-batch.patch"
TEST = "stress.Stress.SeedPanicWorkload"


def _attempt(req: RunRequest, seconds: int, base: str | None, patches: list[Path], label: str):
    one = replace(
        req, results=str(Path(base) / label) if base else None, patch=tuple(patches),
        rebuild_driver=True,  # the stock control is rebuilt the same way as the mutant
        filter=(TEST,), stress_seconds=seconds,
        # The load itself prints nothing for `seconds`: the hang timer must outlast it.
        # After an oops the grace period below ends the attempt, not this timer.
        hang_timeout=min(req.hang_timeout, seconds + 60),
        grace=min(req.grace, 5),  # the report is all we need; the workload is stuck after it
        quiet=True)
    t0 = time.monotonic()
    run, out = execute(one, None, label=label)
    return run, out, time.monotonic() - t0


def seed_report(reports):
    """The first report that is the seed's bug: a NULL pointer dereference whose call trace
    is in ublk_drv, printed while the seed workload ran. Anything else (a TCG boot-time int3
    oops in ktime_get_with_offset was seen in CI) is not a reproduction."""
    for r in reports:
        if r.test == TEST and "NULL pointer dereference" in r.title and r.names_ublk():
            return r
    return None


def detection_seconds(out: Path, excerpt_first_line: str) -> float | None:
    """Host seconds from qemu start to the report's first line (console.log's prefix)."""
    for line in (Path(out) / "console.log").read_text(errors="replace").splitlines():
        if excerpt_first_line and excerpt_first_line in line:
            m = re.match(r"\[\s*(\d+\.\d+)\]", line)
            return float(m.group(1)) if m else None
    return None


def reproduce(req: RunRequest, what: str, attempts: int, seconds: int, measure_rate: bool) -> int:
    if what != "seed-panic":
        raise UserError(f"unknown bug {what} (known: seed-panic)")
    if not req.kernel.startswith("debian:"):
        raise UserError("reproduce seed-panic rebuilds ublk_drv for a Debian kernel: use --kernel debian:sid")
    req.check()
    summary = {"kernel": req.kernel, "attempts": [], "stock": None}
    base = str(results_dir(req.results, "seed-panic")) if req.results else None
    caught = None
    for i in range(attempts):
        run, out, took = _attempt(req, seconds, base, [MUTANT], f"seed-panic-{i + 1}")
        t = run.tests[0] if run.tests else None
        first = seed_report(run.reports)
        others = [r.title for r in run.reports if r is not first]
        detect = detection_seconds(out, first.excerpt.splitlines()[0]) if first else None
        summary["attempts"].append({"results": str(out), "status": t.status if t else "error",
                                    "report": first.title if first else None,
                                    "other_reports": others,
                                    "boot_s": run.boot_seconds, "detected_after_boot_s": detect,
                                    "run_s": round(took, 1)})
        if others:
            print(f"attempt {i + 1}: other reports (not counted): {'; '.join(others)}")
        print(f"attempt {i + 1}: {'CAUGHT: ' + first.title if first else 'seed bug not seen'}"
              f"{f' {detect:.1f}s after qemu start' if detect else ''} ({took:.0f}s, results in {out})")
        if first:
            if caught is None:
                print("\n".join("    " + l for l in first.excerpt.splitlines()[:25]))
            caught = first
            if not measure_rate:
                break
    if measure_rate:
        hits = [a for a in summary["attempts"] if a["report"]]
        times = sorted(a["detected_after_boot_s"] for a in hits if a["detected_after_boot_s"])
        summary["rate"] = {"caught": len(hits), "attempts": len(summary["attempts"]),
                           "detected_after_qemu_start_s": times,
                           "median_s": times[len(times) // 2] if times else None}
        print(f"caught in {len(hits)} of {len(summary['attempts'])} attempts"
              + (f"; detection {times[0]:.0f}-{times[-1]:.0f}s after qemu start, median "
                 f"{summary['rate']['median_s']:.0f}s" if times else ""))
    # The control: the unmodified driver, built the same way, same workload.
    run, out, took = _attempt(req, seconds, base, [], "seed-panic-stock")
    stock = run.tests[0] if run.tests else None
    summary["stock"] = {"results": str(out), "status": stock.status if stock else "error",
                        "reports": [r.title for r in run.reports]}
    print(f"stock driver, same workload: {stock.status.upper() if stock else 'ERROR'} ({took:.0f}s)")
    Path(out).parent.joinpath("seed-panic.json").write_text(json.dumps(summary, indent=2) + "\n")
    ok = caught is not None and stock is not None and stock.status == "pass"
    print("seed panic reproduced and the stock driver passes" if ok else "NOT reproduced as expected")
    return 0 if ok else 1
