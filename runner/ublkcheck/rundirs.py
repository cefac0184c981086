"""Finding runs on disk for merge, diff and report: a results.json file, a run directory
(holding results.json), or a matrix directory (matrix.json naming per-kernel run
directories, or just subdirectories that hold results.json, as `ublkcheck merge` leaves
them in CI)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import schema
from .errors import UserError
from .model import RunResult
from .results import load_results


@dataclass
class KernelRun:
    """One kernel's column: its run, or why there is none (the kernel did not fetch/boot)."""
    spec: str
    dir: Optional[Path]
    run: Optional[RunResult]
    error: str = ""


def load_run(path: Path | str) -> RunResult:
    """A results.json, or a directory holding one."""
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    if not f.is_file():
        raise UserError(f"{p}: no such results.json (expected a run directory or its results.json)")
    try:
        doc = json.loads(f.read_text())
    except ValueError as e:
        raise UserError(f"{f}: not a ublkcheck results.json (not JSON: {e})") from None
    schema.check(doc, "results", f)
    try:
        return load_results(f)
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f"{f}: not a ublkcheck results.json ({e})") from None


def _load_matrix_json(d: Path) -> list[KernelRun]:
    try:
        m = json.loads((d / "matrix.json").read_text())
    except ValueError as e:
        raise UserError(f"{d / 'matrix.json'}: not JSON ({e})") from None
    schema.check(m, "matrix", d / "matrix.json")
    kernels = m["kernels"]
    out = []
    for k in kernels:
        sub = d / k["dir"] if k.get("dir") else None
        if k.get("error") or sub is None or not (sub / "results.json").is_file():
            out.append(KernelRun(k["spec"], sub, None, k.get("error") or f"{sub}: no results.json"))
        else:
            out.append(KernelRun(k["spec"], sub, load_run(sub)))
    return out


def load_kernel_runs(path: Path | str) -> tuple[str, list[KernelRun]]:
    """("run", [one]) for a run directory or results.json; ("matrix", [one per kernel]) for a
    matrix directory."""
    p = Path(path)
    if p.is_file() or (p / "results.json").is_file():
        run = load_run(p)
        return "run", [KernelRun(run.kernel_spec, p.parent if p.is_file() else p, run)]
    if not p.is_dir():
        raise UserError(f"{p}: no such file or directory (expected a run or matrix directory, or a results.json)")
    if (p / "matrix.json").is_file():
        return "matrix", _load_matrix_json(p)
    subs = sorted(s for s in p.iterdir() if (s / "results.json").is_file())
    if not subs:
        raise UserError(f"{p}: holds no results.json, matrix.json, nor subdirectories with results.json")
    runs = [KernelRun(r.kernel_spec, s, r) for s in subs for r in [load_run(s)]]
    return "matrix", runs
