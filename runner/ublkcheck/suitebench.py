"""`ublkcheck suite-bench`: the whole suite N times in a row, and the upstream selftests once,
right after the first run, in the same guest configuration. Per run: wall time, tests,
unexpected failures (a FAIL* by a documented kernel bug is expected) and boots. Answers two
questions in one sitting: is the suite flake-free run after run, and how long does it take
next to the selftests (the ratio of the adjacent pair). Written to suite-bench.json."""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace

from .argtypes import whole
from .kselftests import SUITE as KSELFTESTS
from .model import unexpected_failures
from .pipeline import RunRequest, execute, results_dir
from .runargs import add_run_args, request


def unexpected(run) -> list[str]:
    """The names of the tests that failed for something other than a documented kernel bug."""
    return sorted(t.name for t in unexpected_failures(run.tests))


def order(runs: int, selftests: bool) -> list[str]:
    """The suite's runs with the selftests right after the first: vm, kselftests, vm, vm..."""
    out = ["suite"] * runs
    if selftests:
        out.insert(1, "kselftests")
    return out


def summarize(rows: list[dict]) -> dict:
    ours = [r for r in rows if r["what"] == "suite"]
    theirs = [r for r in rows if r["what"] == "kselftests"]
    out = {"suite_runs": len(ours), "flake_free": all(not r["unexpected"] for r in ours),
           "unexpected_total": sum(len(r["unexpected"]) for r in ours)}
    if ours:
        out["suite_median_s"] = round(statistics.median(r["seconds"] for r in ours), 1)
    if ours and theirs and theirs[0]["seconds"] > 0:
        # The pair measured back to back: the first run and the selftests right after it.
        out["ratio_adjacent"] = round(ours[0]["seconds"] / theirs[0]["seconds"], 3)
        out["ratio_median"] = round(out["suite_median_s"] / theirs[0]["seconds"], 3)
    return out


def render(rows: list[dict], summary: dict) -> str:
    lines = [f"{'run':14s} {'seconds':>8s} {'tests':>6s} {'boots':>6s}  unexpected failures"]
    for r in rows:
        lines.append(f"{r['label']:14s} {r['seconds']:8.1f} {r['tests']:6d} {r['boots']:6d}  "
                     f"{', '.join(r['unexpected']) or '-'}")
    lines.append(f"suite flake-free in {summary['suite_runs']} run(s): {'yes' if summary['flake_free'] else 'NO'}")
    if "ratio_adjacent" in summary:
        lines.append(f"suite / selftests: {summary['ratio_adjacent']:.3f} (back to back), "
                     f"{summary['ratio_median']:.3f} (median of the suite's runs)")
    return "\n".join(lines)


def suite_bench(req: RunRequest, runs: int, selftests: bool) -> int:
    req.check()
    top = results_dir(req.results, "suite-bench")
    rows = []
    n = 0
    for what in order(runs, selftests):
        n += what == "suite"
        label = f"suite-{n}" if what == "suite" else "kselftests"
        one = replace(req, suite=KSELFTESTS if what == "kselftests" else req.suite, quiet=True,
                      results=str(top / label))
        t0 = time.monotonic()
        run, _ = execute(one, label=label)
        rows.append({"what": what, "label": label, "seconds": round(time.monotonic() - t0, 1),
                     "tests": len(run.tests), "totals": run.totals(), "boots": run.boots,
                     "unexpected": unexpected(run)})
        print(f"{label:14s} {rows[-1]['seconds']:8.1f}s  {len(run.tests)} tests, "
              f"{len(rows[-1]['unexpected'])} unexpected", flush=True)
    summary = summarize(rows)
    (top / "suite-bench.json").write_text(json.dumps({"kernel": req.kernel, "suite": req.suite, "rows": rows,
                                                      **summary}, indent=1) + "\n")
    print(render(rows, summary))
    print(f"results in {top / 'suite-bench.json'}")
    return 0 if summary["flake_free"] else 1


def add_parser(sub) -> None:
    p = sub.add_parser("suite-bench", help="the suite N times in a row (flake check) and the upstream selftests "
                                           "right after the first run (the time ratio)")
    p.add_argument("--runs", type=whole(1, 100), default=3, help="runs of the suite (default 3)")
    p.add_argument("--no-selftests", action="store_true", help="only the suite's runs")
    add_run_args(p)
    p.set_defaults(func=lambda args: suite_bench(request(args), args.runs, not args.no_selftests))
