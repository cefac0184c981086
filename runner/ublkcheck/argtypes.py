"""argparse types that check a value where it is parsed, so a bad one is refused in one
line naming the option, before anything is spent."""
from __future__ import annotations

import argparse
import math
from pathlib import Path


def whole(lo: int, hi: int | None = None):
    """An argparse type: a whole number in lo..hi, or a one-line reason argparse prints
    with the option's name."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(
                f"{v} is out of range: give {lo}..{hi}" if hi is not None else f"{v} is below {lo}")
        return v
    return parse


def seconds(lo: float = 0.0, allow_zero: bool = False):
    """An argparse type: a finite number of seconds above `lo` (or equal, with allow_zero)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(v) or v < lo or (v == lo and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"{text} is not a usable time: give a finite number of seconds "
                f"{'>=' if allow_zero else '>'} {lo:g}")
        return v
    return parse


def new_path(kind: str):
    """An argparse type: where a `kind` ("directory" or "file") is to be written: its parent
    exists, and it is not already something else."""
    def parse(text: str) -> Path:
        p = Path(text)
        if kind == "directory" and p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is an existing file (give a directory)")
        if kind == "file" and p.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is an existing directory (give a file name)")
        if not p.exists() and not p.absolute().parent.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: its parent {p.absolute().parent} does not exist")
        return p
    return parse
