"""`ublkcheck boot-bench`: qemu start -> first test, booted N times by each boot path
(bzimage: the path of before; pvh: PVH entry; fast: PVH entry, qboot, no X.509 list and the
agent's python from the initramfs; snapshot: fast, restored from its migration image),
interleaved so the host's noise hits all alike, with each phase's median (bootprofile.py) and
each path's ratio to bzimage, written to boot-bench.json."""
from __future__ import annotations

import json
import statistics
from dataclasses import replace

from .argtypes import whole
from .bootprofile import PHASES
from .pipeline import RunRequest, execute, results_dir
from .runargs import add_run_args, request

PATHS = ("bzimage", "pvh", "fast", "snapshot")
BASE = "bzimage"
# One short test: the boot is what is measured.
PROBE = "control.Features.WordIsNonZeroAndHasIoctlEncoding"


def complete(profiles: list[dict | None]) -> dict | None:
    """The profile of the boot that reached the first test; a guest lost on the way (under
    TCG, rarely, an int3 Oops while a static key is patched) is booted again by the run."""
    return next((p for p in profiles if p and "first_test" in p), None)


def medians(profiles: list[dict]) -> dict:
    keys = [k for k, _ in PHASES if any(k in p for p in profiles)] + ["total"]
    return {k: round(statistics.median(p.get(k, 0.0) for p in profiles), 2) for k in keys}


def summarize(rows: list[dict]) -> dict:
    """rows: {"path", "boot", "profile"} -> per path: boots, medians, min/max total; and
    each path's ratio of the totals' medians to bzimage's."""
    out: dict = {"paths": {}}
    for path in PATHS:
        ps = [r["profile"] for r in rows if r["path"] == path and r["profile"]]
        if ps:
            totals = [p["total"] for p in ps]
            out["paths"][path] = {"boots": len(ps), "median": medians(ps), "min_total": min(totals),
                                  "max_total": max(totals)}
    got = out["paths"]
    if BASE in got:
        out["ratio_to_bzimage"] = {p: round(got[p]["median"]["total"] / got[BASE]["median"]["total"], 3)
                                   for p in PATHS if p in got and p != BASE}
    return out


def render(summary: dict) -> str:
    got = summary["paths"]
    lines = [f"{'phase (median seconds)':50s} " + " ".join(f"{p:>9s}" for p in PATHS if p in got)]
    keys = [k for k, _ in PHASES] + ["total"]
    names = dict(PHASES) | {"total": "qemu start -> first test"}
    for k in keys:
        if any(k in got[p]["median"] for p in got):
            cells = (got[p]["median"].get(k) for p in PATHS if p in got)
            lines.append(f"{names[k]:50s} " + " ".join("        -" if c is None else f"{c:9.2f}" for c in cells))
    for p, r in summary.get("ratio_to_bzimage", {}).items():
        lines.append(f"{p} / bzimage (median total): {r:.3f}")
    return "\n".join(lines)


def boot_bench(req: RunRequest, boots: int) -> int:
    req.check()
    top = results_dir(req.results, "boot-bench")
    rows = []
    # Not a measured boot: it makes the snapshot image if the cache has none for this
    # kernel and command line (a boot to init.sh and a migration into the file), once.
    made, _ = execute(replace(req, boot="snapshot", filter=(PROBE,), quiet=True, results=str(top / "snapshot-0")),
                      label="snapshot-0")
    first = complete(made.boot_profiles)
    print(f"snapshot   0: {made.duration_s:6.2f}s for the run that took or made the image", flush=True)
    for i in range(1, boots + 1):
        for path in PATHS:
            one = replace(req, boot=path, filter=(PROBE,), quiet=True, results=str(top / f"{path}-{i}"))
            run, _ = execute(one, label=f"{path}-{i}")
            profile = complete(run.boot_profiles)
            rows.append({"path": path, "boot": i, "profile": profile, "ok": run.ok(),
                         "lost_boots": run.boots - 1})
            print(f"{path:8s} {i:3d}: {profile['total'] if profile else float('nan'):6.2f}s", flush=True)
    summary = summarize(rows)
    summary["snapshot_warmup"] = {"run_seconds": made.duration_s, "profile": first}
    (top / "boot-bench.json").write_text(json.dumps({"kernel": req.kernel, "rows": rows, **summary}, indent=1) + "\n")
    print(render(summary))
    print(f"results in {top / 'boot-bench.json'}")
    return 0 if all(r["ok"] for r in rows) else 1


def add_parser(sub) -> None:
    p = sub.add_parser("boot-bench", help="boot time of each boot path (bzimage, pvh, fast, snapshot), phase by phase")
    p.add_argument("--boots", type=whole(1, 100), default=10, help="boots per path (default 10)")
    add_run_args(p)
    p.set_defaults(func=lambda args: boot_bench(request(args), args.boots))
