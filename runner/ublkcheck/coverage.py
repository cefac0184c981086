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


def collect(run, outdir: Path, module_dir: Path, release: str) -> dict:
    """Turns share/coverage/*.gcda into coverage/; returns the figures for results.json."""
    src = outdir / "share" / "coverage"
    by_file = {t.name.replace("/", "_") + ".gcda": t.name for t in run.tests}
    gcdas = sorted(p for p in src.glob("*.gcda") if p.name in by_file) if src.is_dir() else []
    if not gcdas:
        return {"error": "no test saved ublk_drv counters (see each test's properties)"}
    cov = outdir / "coverage"
    shutil.rmtree(cov, ignore_errors=True)
    cov.mkdir()
    per_test = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for g in gcdas:
            per_test[by_file[g.name]] = reached(gcov_json(module_dir, g, work / "t"))
        merged = merge_gcda(module_dir, gcdas, work / "m")
        figures = capture(merged, cov / "ublk_drv.info")
    _run(["genhtml", "--quiet", "--branch-coverage", "--legend", "--title", f"ublk_drv.c on {release}",
          "--output-directory", str(cov / "html"), str(cov / "ublk_drv.info")])
    driver = module_dir / SOURCE
    sha = hashlib.sha256(driver.read_bytes()).hexdigest() if driver.exists() else ""
    cmap = {"release": release, "source_sha256": sha, "tests": per_test}
    (cov / "map.json").write_text(json.dumps(cmap) + "\n")
    keep = cache_dir() / "coverage" / release
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cov / "map.json", keep / "map.json")
    figures.update({"tests": len(per_test), "tracefile": "coverage/ublk_drv.info", "html": "coverage/html/index.html",
                    "map": "coverage/map.json"})
    return figures


def summary_line(c: dict) -> str:
    if not c:
        return ""
    if "error" in c:
        return f"coverage: {c['error']}"
    return ("ublk_drv.c coverage: " + ", ".join(
        f"{k} {c[k]['percent']}% ({c[k]['hit']}/{c[k]['total']})" for k in ("lines", "functions", "branches"))
        + f" over {c['tests']} tests; {c['html']}")
