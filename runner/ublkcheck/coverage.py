"""`run --coverage`: the guest saved ublk_drv's gcov counters after each test
(share/coverage/<test>.gcda, counters reset before each test); here they become
- coverage/map.json: per test, the lines and branches of ublk_drv.c it reached (gcov's
  JSON output of that test's .gcda against the module's .gcno),
- coverage/ublk_drv.info: the lcov tracefile of the whole run (the tests' .gcda merged by
  gcov-tool, captured by lcov, ublk_drv.c only), and coverage/html/ (genhtml),
- the line / function / branch figures of ublk_drv.c, returned for results.json.
The map of the newest run of a kernel release is kept in the cache for `run --affected`."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from .argtypes import new_path
from .errors import UserError
from .kernel import cache_dir

SOURCE = "ublk_drv.c"
TOOLS = {"gcov": "gcc", "gcov-tool": "gcc", "lcov": "lcov", "genhtml": "lcov"}


def check_tools() -> None:
    """Before anything is built or booted: the host tools the coverage stage needs."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(sorted({TOOLS[t] for t in missing}))
        raise UserError(f"--coverage needs {', '.join(missing)} on the host: apt-get install {pkgs}")


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-8:])
        raise UserError(f"{' '.join(cmd[:3])} failed:\n{tail}")
    return p.stdout


def _with_notes(module_dir: Path, gcda: Path, work: Path) -> Path:
    """A directory where gcov finds this .gcda beside the module's .gcno under one name."""
    work.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        f.unlink()
    (work / "ublk_drv.gcno").symlink_to(module_dir / "ublk_drv.gcno")
    shutil.copyfile(gcda, work / "ublk_drv.gcda")
    return work


def gcov_json(module_dir: Path, gcda: Path, work: Path) -> dict:
    """gcov's JSON intermediate format (gcc >= 9) of ublk_drv.c for one .gcda."""
    d = _with_notes(module_dir, gcda, work)
    _run(["gcov", "--json-format", "--branch-probabilities", "--object-directory", str(d),
          str(d / "ublk_drv.gcda")], cwd=d)
    out = d / "ublk_drv.gcda.gcov.json.gz"
    if not out.exists():
        out = next(d.glob("*.gcov.json.gz"))
    data = json.loads(gzip.decompress(out.read_bytes()))
    files = [f for f in data.get("files", []) if f["file"].endswith(SOURCE)]
    if not files:
        raise UserError(f"{gcda}: gcov found no {SOURCE} in it (not ublk_drv's counters?)")
    return files[0]


def reached(file_entry: dict) -> dict:
    """{lines: [n...], branches: ["line:i"...], functions: [name...]} with a count > 0."""
    lines, branches = set(), set()
    for ln in file_entry.get("lines", []):
        if ln.get("count", 0) > 0:
            lines.add(ln["line_number"])
        for i, b in enumerate(ln.get("branches", [])):
            if b.get("count", 0) > 0:
                branches.add(f"{ln['line_number']}:{i}")
    funcs = sorted(f["name"] for f in file_entry.get("functions", []) if f.get("execution_count", 0) > 0)
    return {"lines": sorted(lines), "branches": sorted(branches, key=lambda s: tuple(map(int, s.split(":")))),
            "functions": funcs}


def function_table(file_entry: dict) -> list[dict]:
    """Where each function of ublk_drv.c starts and ends (the same in every .gcda of a build)."""
    return sorted(({"name": f["name"], "start": f["start_line"], "end": f["end_line"]}
                   for f in file_entry.get("functions", [])), key=lambda f: f["start"])


def merge_gcda(module_dir: Path, gcdas: list[Path], work: Path) -> Path:
    """One .gcda with the sum of all tests' counters (gcov-tool merge, pairwise)."""
    acc = work / "acc"
    acc.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gcdas[0], acc / "ublk_drv.gcda")
    one = work / "one"
    one.mkdir(exist_ok=True)
    for g in gcdas[1:]:
        shutil.copyfile(g, one / "ublk_drv.gcda")
        out = work / "merged"
        shutil.rmtree(out, ignore_errors=True)
        _run(["gcov-tool", "merge", str(acc), str(one), "-o", str(out)])
        shutil.rmtree(acc)
        out.rename(acc)
    (acc / "ublk_drv.gcno").symlink_to(module_dir / "ublk_drv.gcno")
    return acc


def parse_info(text: str, source: str = SOURCE) -> dict:
    """Line, function and branch totals of `source` in an lcov tracefile."""
    tot = {"LF": 0, "LH": 0, "FNF": 0, "FNH": 0, "BRF": 0, "BRH": 0}
    on = False
    for line in text.splitlines():
        if line.startswith("SF:"):
            on = line[3:].endswith(source)
        elif on and ":" in line and line.split(":", 1)[0] in tot:
            k, v = line.split(":", 1)
            tot[k] += int(v)

    def part(hit, total):
        return {"hit": tot[hit], "total": tot[total],
                "percent": round(100.0 * tot[hit] / tot[total], 1) if tot[total] else 0.0}
    return {"lines": part("LH", "LF"), "functions": part("FNH", "FNF"), "branches": part("BRH", "BRF")}


def capture(gcda_dir: Path, out_info: Path, moved_source: tuple[Path, Path] | None = None) -> dict:
    """lcov tracefile of ublk_drv.c from a directory holding ublk_drv.gcda + .gcno. lcov
    reads the source at the path the .gcno names; `moved_source` (built-in dir, dir now)
    points it elsewhere (the unit tests' copy)."""
    raw = out_info.with_suffix(".all.info")
    adjust = ["--rc", f"geninfo_adjust_src_path={moved_source[0]} => {moved_source[1]}"] if moved_source else []
    _run(["lcov", "--quiet", "--capture", "--rc", "lcov_branch_coverage=1", *adjust, "--directory", str(gcda_dir),
          "--output-file", str(raw)])
    _run(["lcov", "--quiet", "--rc", "lcov_branch_coverage=1", "--extract", str(raw), f"*/{SOURCE}",
          "--output-file", str(out_info)])
    raw.unlink()
    return parse_info(out_info.read_text())


def saved_counters(run, outdir: Path) -> dict[str, Path]:
    """test name -> the .gcda the guest saved after it."""
    src = outdir / "share" / "coverage"
    by_file = {t.name.replace("/", "_") + ".gcda": t.name for t in run.tests}
    return {by_file[p.name]: p for p in sorted(src.glob("*.gcda")) if p.name in by_file} if src.is_dir() else {}


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def source_sha(module_dir: Path) -> str:
    return file_sha(module_dir / SOURCE)


def map_path(sha: str) -> Path:
    """The newest per-test map measured on a driver source, whatever kernel package or tree
    it came in (Debian's linux-source-7.2 and a 7.2 tree share one ublk_drv.c)."""
    return cache_dir() / "coverage" / "maps" / f"{sha[:16]}.json"


def report(counters: dict[str, Path], module_dir: Path, cov: Path, title: str) -> dict:
    """coverage/ from the counters of named tests: map.json, ublk_drv.info, html/."""
    shutil.rmtree(cov, ignore_errors=True)
    cov.mkdir(parents=True)
    per_test = {}
    functions: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, g in counters.items():
            entry = gcov_json(module_dir, g, work / "t")
            per_test[name] = reached(entry)
            functions = functions or function_table(entry)
        merged = merge_gcda(module_dir, list(counters.values()), work / "m")
        figures = capture(merged, cov / "ublk_drv.info")
    _run(["genhtml", "--quiet", "--branch-coverage", "--legend", "--title", title,
          "--output-directory", str(cov / "html"), str(cov / "ublk_drv.info")])
    cmap = {"title": title, "source_sha256": source_sha(module_dir), "functions": functions, "tests": per_test}
    (cov / "map.json").write_text(json.dumps(cmap) + "\n")
    figures.update({"tests": len(per_test), "tracefile": f"{cov.name}/ublk_drv.info",
                    "html": f"{cov.name}/html/index.html", "map": f"{cov.name}/map.json",
                    "module_dir": str(module_dir)})
    return figures


def collect(run, outdir: Path, module_dir: Path, release: str) -> dict:
    """Turns share/coverage/*.gcda into coverage/; returns the figures for results.json and
    keeps the map for `--affected`."""
    counters = saved_counters(run, outdir)
    if not counters:
        return {"error": "no test saved ublk_drv counters (see each test's properties)"}
    figures = report(counters, module_dir, outdir / "coverage", f"ublk_drv.c on {release}")
    keep_map(json.loads((outdir / "coverage" / "map.json").read_text()))
    return figures


def keep_map(cmap: dict) -> Path:
    """Into the cached map of this driver source: each test's newest entry, so the runs of
    both suites (ours, kselftests.*) add up to one map."""
    keep = map_path(cmap["source_sha256"])
    keep.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(keep.read_text()) if keep.is_file() else {"tests": {}}
    merged = dict(cmap, tests={**old.get("tests", {}), **cmap["tests"]})
    keep.write_text(json.dumps(merged) + "\n")
    return keep


def combine(dirs: list[Path], out: Path) -> dict:
    """Coverage of several runs together (e.g. ublkcheck's suites and the upstream selftests
    on one kernel build): their tests' counters merged into out/coverage/."""
    from .results import load_results
    counters: dict[str, Path] = {}
    modules = set()
    for d in dirs:
        f = d / "results.json"
        if not f.is_file():
            raise UserError(f"{d}: no results.json (give results directories of `run --coverage`)")
        run = load_results(f)
        if not run.coverage.get("module_dir"):
            raise UserError(f"{d}: not a --coverage run (results.json has no coverage figures)")
        modules.add(run.coverage["module_dir"])
        counters.update(saved_counters(run, d))
    if len(modules) != 1:
        raise UserError(f"the runs measured different ublk_drv builds ({', '.join(sorted(modules))}): "
                        "coverage adds up only over one build")
    out.mkdir(parents=True, exist_ok=True)
    return report(counters, Path(modules.pop()), out / "coverage", "ublk_drv.c, " + " + ".join(d.name for d in dirs))


def cmd_coverage(args) -> int:
    from .results import load_results
    dirs = [Path(d) for d in args.dirs]
    for d in dirs:
        if not (d / "results.json").is_file():
            raise UserError(f"{d}: no results.json (give results directories of `run --coverage`)")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out}: exists and is not a directory")
    rows = []
    for d in dirs:
        run = load_results(d / "results.json")
        rows.append((d.name, run.coverage, run.duration_s))
    if args.out:
        both = combine(dirs, Path(args.out))
        (Path(args.out) / "coverage.json").write_text(json.dumps(
            {"runs": [{"dir": str(d), "coverage": c, "duration_s": s} for d, (_, c, s) in zip(dirs, rows)],
             "together": both}, indent=2) + "\n")
        rows.append(("together", both, sum(r[2] for r in rows)))
    w = max(len(r[0]) for r in rows)
    print(f"{'run'.ljust(w)}  {'lines':>16}  {'functions':>14}  {'branches':>16}  time")
    for name, c, secs in rows:
        if "lines" not in c:
            print(f"{name.ljust(w)}  {c.get('error', 'no coverage')}")
            continue
        cell = lambda k: f"{c[k]['percent']:5.1f}% {c[k]['hit']:>4}/{c[k]['total']}"
        print(f"{name.ljust(w)}  {cell('lines'):>16}  {cell('functions'):>14}  {cell('branches'):>16}  {secs:.0f}s")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("coverage", help="ublk_drv.c coverage of --coverage runs, side by side and together")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results directories of `run --coverage` on one build")
    p.add_argument("--out", metavar="DIR", type=new_path("directory"),
                   help="also merge them: DIR/coverage/ (tracefile, html, map) and DIR/coverage.json")
    p.set_defaults(func=cmd_coverage)


def summary_line(c: dict) -> str:
    if not c:
        return ""
    if "error" in c:
        return f"coverage: {c['error']}"
    return ("ublk_drv.c coverage: " + ", ".join(
        f"{k} {c[k]['percent']}% ({c[k]['hit']}/{c[k]['total']})" for k in ("lines", "functions", "branches"))
        + f" over {c['tests']} tests; {c['html']}")
