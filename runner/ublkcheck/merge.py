"""`ublkcheck merge DIR... --out DIR`: joins the shards of one kernel's run (each DIR a
`ublkcheck run --shard I/N` result) into the run an unsharded invocation would have written.

Only results.json is read and only results.json/junit.xml/ktap.txt are written: console
logs and artifacts stay in the shard directories, which `merged_from` names (the HTML
report looks there for charts)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .argtypes import new_path
from .errors import UserError
from .model import RunResult
from .rundirs import load_run
from .shard import parse_shard


def merge_runs(inputs: list[tuple[str, RunResult]], run_id: str = "merged") -> RunResult:
    """inputs: (directory as given, its run). Refuses shards of different kernels or patches
    and a test that two inputs both ran: either would make the joined verdicts a lie."""
    if not inputs:
        raise UserError("merge needs at least one run directory")
    first_dir, first = inputs[0]
    # An empty shard that never booted may not know its release: it agrees with anything.
    ref_dir, release = next(((d, r.kernel_release) for d, r in inputs if r.kernel_release), (first_dir, ""))
    for d, r in inputs:
        if r.kernel_release and r.kernel_release != release:
            raise UserError(f"{ref_dir} ran kernel {release} but {d} ran {r.kernel_release}: "
                            "merge joins shards of one kernel")
    for d, r in inputs[1:]:
        if sorted(r.patches) != sorted(first.patches):
            raise UserError(f"{first_dir} has patches {first.patches or 'none'} but {d} has "
                            f"{r.patches or 'none'}: merge joins shards of one configuration")
    seen: dict[str, str] = {}
    tests = []
    for d, r in inputs:
        for t in r.tests:
            if t.name in seen:
                raise UserError(f"test {t.name} is in both {seen[t.name]} and {d}: "
                                "merge the shards of one run (each test in one shard)")
            seen[t.name] = d
            tests.append(t)
    started = sorted(r.started for _, r in inputs if r.started)
    boots = [r.boot_seconds for _, r in inputs if r.boot_seconds is not None]
    features = [r.features for _, r in inputs if r.features is not None]
    return RunResult(
        run_id=run_id, kernel_spec=first.kernel_spec,
        kernel_release=release,
        features=features[0] if features else None,
        host=",".join(dict.fromkeys(r.host for _, r in inputs if r.host)),
        accel=",".join(dict.fromkeys(r.accel for _, r in inputs if r.accel)),
        boot_seconds=max(boots) if boots else None,          # the slowest shard's first boot
        boots=sum(r.boots for _, r in inputs),
        started=started[0] if started else "",
        duration_s=max(r.duration_s for _, r in inputs),     # shards run side by side: wall time
        patches=list(first.patches),
        tests=sorted(tests, key=lambda t: t.name),
        reports=[rep for _, r in inputs for rep in r.reports],
        merged_from=[d for d, _ in inputs],
        boot_profiles=[p for _, r in inputs for p in r.boot_profiles],  # every boot, input by input
        shards=[{"dir": d, "shard": r.shard, "tests": len(r.tests), "duration_s": r.duration_s,
                 "boots": r.boots} for d, r in inputs])


def missing_shards(runs: list[RunResult]) -> list[str]:
    """'I/N' parts absent from the inputs, when they say N (a CI cell that died leaves a hole)."""
    parts = [parse_shard(r.shard) for r in runs if r.shard]
    have = {i for i, _ in parts}
    return [f"{i}/{n}" for n in sorted({n for _, n in parts}) for i in range(1, n + 1) if i not in have]


def cmd_merge(args) -> int:
    from .results import summary_table, write_all
    inputs = [(str(d), load_run(d)) for d in args.dirs]
    out = Path(args.out)
    if any(Path(d).resolve() in (out.resolve(), out.resolve() / "results.json") for d, _ in inputs):
        raise UserError(f"--out {out} is one of the inputs: write the merged run to a new directory")
    run = merge_runs(inputs, run_id=out.resolve().name)
    write_all(run, out)
    print(summary_table(run, only_problems=len(run.tests) > 30))
    holes = missing_shards([r for _, r in inputs])
    if holes:
        print(f"ublkcheck: warning: shard(s) {', '.join(holes)} not among the inputs", file=sys.stderr)
    print(f"merged {len(inputs)} run(s), {len(run.tests)} tests; results in {out}")
    return 0 if run.ok() else 1


def add_parser(sub) -> None:
    p = sub.add_parser("merge", help="join the --shard parts of one kernel's run",
                       description="Join `ublkcheck run --shard I/N` results of one kernel into one run "
                                   "(results.json, junit.xml, ktap.txt). Exit 1 if a test failed.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", metavar="DIR", help="shard result directories (or their results.json)")
    p.add_argument("--out", required=True, metavar="DIR", type=new_path("directory"),
                   help="where the merged run is written")
    p.set_defaults(func=cmd_merge)
