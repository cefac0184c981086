"""`ublkcheck bench`: in one guest, the same fio jobs against null_blk and against
ublk-fixture in each copy mode and thread model (guest/bench.py), repeated; here the raw
runs become medians with min/max, ratios to null_blk, a table and bench.json."""
from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

from .errors import UserError

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "bench.py"
# The reference job (4k randread, io_uring, iodepth 64 x 2 jobs) and the targets compared
# with the upstream selftest server's (kublk_*) when --kublk runs it in the same guest:
# figures from another sitting are not comparable on a host with steal time.
REF_JOB = "ref_randread_io_uring_qd64x2"
KUBLK_COMPARED = ("ublk_plain_per_queue", "ublk_plain_per_io_4", "ublk_plain_batch")


def _stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


def aggregate(lines: list[dict]) -> dict:
    """Raw guest events -> {"plan", "skipped", "results": [{target, job, iops{median,min,max,n},
    clat_p50_us, clat_p99_us, ratio_to_null_blk, errors}], "threads": {target: [ios...]}}."""
    plan = next((l for l in lines if l.get("event") == "plan"), {})
    runs: dict[tuple, list[dict]] = {}
    for l in lines:
        if l.get("event") == "run":
            runs.setdefault((l["target"], l["job"]), []).append(l)
    results = []
    ceiling = {}
    for (target, job), rs in runs.items():
        ok = [r for r in rs if not r.get("error")]
        row = {"target": target, "job": job, "errors": [r["error"] for r in rs if r.get("error")]}
        if ok:
            row["iops"] = _stats([r["iops"] for r in ok])
            row["clat_p50_us"] = round(statistics.median(r["clat_p50_us"] for r in ok), 1)
            row["clat_p99_us"] = round(statistics.median(r["clat_p99_us"] for r in ok), 1)
            row["lat_mean_us"] = round(statistics.median(r["lat_mean_us"] for r in ok), 1)
            row["iops_by_repeat"] = {str(r.get("repeat", i)): r["iops"] for i, r in enumerate(ok, 1)}
            for k in ("cpu_us_per_io", "ctxt_per_io", "idle_frac"):  # older raw files lack them
                vals = [r[k] for r in ok if r.get(k) is not None]
                if vals:
                    row[k] = round(statistics.median(vals), 3)
            if target == "null_blk":
                ceiling[job] = row["iops"]["median"]
        results.append(row)
    for row in results:
        c = ceiling.get(row["job"])
        row["ratio_to_null_blk"] = round(row["iops"]["median"] / c, 3) if c and "iops" in row else None
    threads: dict[str, list[list[int]]] = {}
    for l in lines:
        if l.get("event") == "threads":
            threads.setdefault(l["target"], []).append(l["ios"])
    skipped = {l["target"]: l["reason"] for l in lines if l.get("event") == "skip"}
    profiles = {l["target"]: profile_summary(l) for l in lines if l.get("event") == "profile"}
    order = {t: i for i, t in enumerate(plan.get("targets", []))}
    jorder = {j: i for i, j in enumerate(plan.get("jobs", []))}
    results.sort(key=lambda r: (order.get(r["target"], 999), jorder.get(r["job"], 999)))
    return {"plan": plan, "skipped": skipped, "results": results, "threads": threads, "profiles": profiles}


SERVER_COMMS = ("ublk-io-", "ublk-fixture", "kublk")


def _is_kernel(dso: str) -> bool:
    return dso.startswith("[") and dso != "[vdso]"  # [kernel.kallsyms], [ublk_drv], [netfs]


def profile_summary(ev: dict) -> dict:
    """A perf profile's samples split into who used the CPUs: idle, fio and the server,
    each in user space and in the kernel (the driver's work on the server's behalf)."""
    if ev.get("error"):
        return {"job": ev.get("job"), "error": ev["error"]}
    share = {"idle": 0.0, "fio_user": 0.0, "fio_kernel": 0.0, "server_user": 0.0, "server_kernel": 0.0,
             "other": 0.0}
    for row in ev.get("by_comm_dso", []):
        pct, comm, dso = row[0], row[1], row[2] if len(row) > 2 else ""
        side = "kernel" if _is_kernel(dso) else "user"
        if comm == "swapper":
            share["idle"] += pct
        elif comm == "fio":
            share[f"fio_{side}"] += pct
        elif comm.startswith(SERVER_COMMS):
            share[f"server_{side}"] += pct
        else:
            share["other"] += pct
    # The server's symbols summed over its threads (ublk-io-0, ublk-io-1, ...).
    sym: dict[tuple, float] = {}
    for r in ev.get("by_symbol", []):
        if len(r) > 3 and r[1].startswith(SERVER_COMMS):
            key = (r[2], " ".join(r[3:]))
            sym[key] = sym.get(key, 0.0) + r[0]
    top_server = [{"pct": round(pct, 2), "dso": dso, "symbol": s}
                  for (dso, s), pct in sorted(sym.items(), key=lambda kv: -kv[1])][:8]
    return {"job": ev.get("job"), "share_pct": {k: round(v, 2) for k, v in share.items()},
            "top_server_symbols": top_server, "by_comm_dso": ev.get("by_comm_dso", []),
            "by_symbol": ev.get("by_symbol", [])}


def _row(agg: dict, target: str, job: str) -> dict | None:
    return next((r for r in agg["results"] if r["target"] == target and r["job"] == job and "iops" in r), None)


def _median(agg: dict, target: str, job: str) -> float | None:
    row = _row(agg, target, job)
    return row["iops"]["median"] if row else None


def paired_ratio(agg: dict, target: str, base: str, job: str) -> dict | None:
    """target/base round by round. The rounds interleave every target, so a slow spell of
    this noisy host (steal time) hits both sides of a pair alike: the median of the pairs'
    ratios is steadier than the ratio of the two medians."""
    a, b = _row(agg, target, job), _row(agg, base, job)
    if not a or not b:
        return None
    pairs = [a["iops_by_repeat"][k] / b["iops_by_repeat"][k] for k in a.get("iops_by_repeat", {})
             if b.get("iops_by_repeat", {}).get(k)]
    if not pairs:
        return None
    return {"median": round(statistics.median(pairs), 3), "min": round(min(pairs), 3),
            "max": round(max(pairs), 3), "n": len(pairs),
            "wins": sum(1 for p in pairs if p >= 1.0)}


def reference_comparison(agg: dict) -> list[dict]:
    """Ours vs kublk on the reference job, for each target kublk ran alongside (--kublk)."""
    out = []
    for target in KUBLK_COMPARED:
        theirs = target.replace("ublk_plain_", "kublk_")
        ours_row, kublk_row = _row(agg, target, REF_JOB), _row(agg, theirs, REF_JOB)
        if not kublk_row:
            continue
        ours = ours_row["iops"]["median"] if ours_row else None
        kublk = kublk_row["iops"]["median"]
        row = {"target": target, "job": REF_JOB, "kublk_iops": kublk, "kublk_source": "same guest",
               "ours_iops": ours, "ratio": round(ours / kublk, 2) if ours else None}
        row["paired"] = paired_ratio(agg, target, theirs, REF_JOB)
        if ours_row and kublk_row and "cpu_us_per_io" in ours_row and "cpu_us_per_io" in kublk_row:
            row["cpu_us_per_io"] = {"ours": ours_row["cpu_us_per_io"], "kublk": kublk_row["cpu_us_per_io"]}
        out.append(row)
    return out


def alt_comparison(agg: dict) -> list[dict]:
    """NAME@alt (--compare-build) vs NAME, job by job: the before/after of a server change."""
    out = []
    for r in agg["results"]:
        if not r["target"].endswith("@alt") or "iops" not in r:
            continue
        base = _median(agg, r["target"][:-4], r["job"])
        if base:
            out.append({"target": r["target"][:-4], "job": r["job"], "base_iops": base,
                        "alt_iops": r["iops"]["median"], "alt_over_base": round(r["iops"]["median"] / base, 3),
                        "paired": paired_ratio(agg, r["target"], r["target"][:-4], r["job"])})
    return out


def _num(v, fmt: str) -> str:
    width = int(fmt.split(".")[0])
    return format(v, fmt) if v is not None else "-".rjust(width)


def _paired_text(p: dict | None) -> str:
    if not p:
        return ""
    return (f"; round by round x{p['median']} (x{p['min']}..x{p['max']}, "
            f"ahead in {p['wins']} of {p['n']})")


def table(agg: dict) -> str:
    w = max([len(r["target"]) for r in agg["results"]] + [6])
    jw = max([len(r["job"]) for r in agg["results"]] + [3])
    lines = [f"{'TARGET'.ljust(w)}  {'JOB'.ljust(jw)}  {'IOPS med':>9} {'min':>8} {'max':>8}  "
             f"{'p50us':>7} {'p99us':>8}  {'/null_blk':>9}  {'cpu_us/io':>9} {'idle':>5}"]
    for r in agg["results"]:
        if "iops" not in r:
            lines.append(f"{r['target'].ljust(w)}  {r['job'].ljust(jw)}  ERROR {r['errors'][0][:60]}")
            continue
        i = r["iops"]
        ratio = f"{r['ratio_to_null_blk']:.3f}" if r["ratio_to_null_blk"] is not None else "-"
        lines.append(f"{r['target'].ljust(w)}  {r['job'].ljust(jw)}  {i['median']:9.0f} {i['min']:8.0f} "
                     f"{i['max']:8.0f}  {r['clat_p50_us']:7.1f} {r['clat_p99_us']:8.1f}  {ratio:>9}  "
                     f"{_num(r.get('cpu_us_per_io'), '9.1f')} {_num(r.get('idle_frac'), '5.2f')}")
    for t, why in agg["skipped"].items():
        lines.append(f"{t.ljust(w)}  SKIP {why}")
    for t, reps in agg["threads"].items():
        lines.append(f"per-thread I/Os {t}: " + " | ".join(",".join(map(str, r)) for r in reps))
    for t, p in agg.get("profiles", {}).items():
        if p.get("error"):
            lines.append(f"profile {t}: ERROR {p['error'][:80]}")
            continue
        sh = p["share_pct"]
        top = ", ".join(f"{s['symbol']} {s['pct']:.1f}%" for s in p["top_server_symbols"][:3])
        lines.append(f"profile {t}: idle {sh['idle']:.1f}%, fio {sh['fio_kernel']:.1f}% kernel + "
                     f"{sh['fio_user']:.1f}% user, server {sh['server_kernel']:.1f}% kernel + "
                     f"{sh['server_user']:.1f}% user" + (f"; server's top: {top}" if top else ""))
    for c in agg.get("reference", []):
        ours = f"{c['ours_iops']:.0f}" if c["ours_iops"] is not None else "not measured"
        lines.append(f"vs kublk on {c['job']}: {c['target']}: ours {ours}, kublk {c['kublk_iops']:.0f} "
                     f"({c['kublk_source']})" + (f" -> x{c['ratio']}" if c["ratio"] is not None else "")
                     + _paired_text(c.get("paired"))
                     + (f"; CPU per I/O {c['cpu_us_per_io']['ours']:.0f} vs {c['cpu_us_per_io']['kublk']:.0f} us"
                        if c.get("cpu_us_per_io") else ""))
    for c in agg.get("alt", []):
        lines.append(f"--compare-build: {c['target']} {c['job']}: {c['base_iops']:.0f} -> {c['alt_iops']:.0f} "
                     f"(x{c['alt_over_base']})" + _paired_text(c.get("paired")))
    return "\n".join(lines)


def bench(args, req) -> int:
    """`args`: the bench options (profile, repeats, runtime, ...); `req`: the run they go in."""
    from dataclasses import replace

    from .pipeline import execute
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: need at least 1 (3 or more for a median worth reading)")
    if args.runtime < 1:
        raise UserError(f"--runtime {args.runtime}: fio needs at least 1 second per job")
    fixture = args.build / "fixtures" / "ublk-fixture"
    if not fixture.exists():
        raise UserError(f"{fixture} is missing: build first (scripts/bootstrap.sh build)")
    cmd = ["/usr/bin/python3", str(GUEST_SCRIPT), "--fixture", str(fixture), "--profile", args.profile,
           "--repeats", str(args.repeats), "--runtime", str(args.runtime)]
    if args.only:
        cmd += ["--only", args.only]
    if args.compare_build:
        alt = args.compare_build / "fixtures" / "ublk-fixture"
        if not alt.exists():
            raise UserError(f"--compare-build {args.compare_build}: no fixtures/ublk-fixture in it (build it first)")
        cmd += ["--alt-fixture", str(alt.resolve())]
    if args.perf:
        if not shutil.which("perf"):
            raise UserError("--perf: no perf on this host (apt install linux-perf); the guest runs the host's perf")
        cmd.append("--perf")
    if args.kublk:
        if not args.kublk.is_file():
            raise UserError(f"--kublk {args.kublk}: no such file (scripts/build-kublk.sh TREE OUT builds it)")
        cmd += ["--kublk", str(args.kublk.resolve())]
    # One long guest command: a kernel report is recorded, but must not end the bench after
    # the usual grace period (7.2's zero-copy UBSAN would stop it at the first zc target).
    run, out = execute(replace(req, filter=(), exclude=(), grace=req.timeout), cmd, label=f"bench-{req.kernel}")
    raw = out / "share" / "bench-raw.jsonl"
    if not raw.exists():
        print(f"ublkcheck bench: the guest wrote no results ({raw}); see {out}/console.log", file=sys.stderr)
        return 1
    agg = aggregate([json.loads(l) for l in raw.read_text().splitlines() if l.strip()])
    agg["reference"] = reference_comparison(agg)
    agg["alt"] = alt_comparison(agg)
    agg["kernel"] = {"spec": req.kernel, "release": run.kernel_release, "accel": run.accel,
                     "smp": req.smp, "patches": [str(p) for p in req.patch]}
    agg["reports"] = [r.title for r in run.reports]
    from . import known
    unknown = [r for r in run.reports if known.report_issue(r, known.load(), run.kernel_release or "") is None]
    (out / "bench.json").write_text(json.dumps(agg, indent=2) + "\n")
    print(table(agg))
    print(f"bench.json in {out}")
    if run.reports:
        print("kernel reports during the bench: " + "; ".join(agg["reports"])
              + ("" if unknown else " (all known kernel bugs, ci/known-issues.json)"))
    return 0 if run.ok() and not unknown else 1
