"""--shard I/N: one of N disjoint parts of the test list, so CI can spread a kernel's run
over N machines and `ublkcheck merge` can join the parts.

The split depends only on the test names (sorted, then dealt round-robin), never on
discovery order or timing, so every shard of every machine agrees on who runs what; dealing
rather than cutting into blocks spreads each suite's slow tests over the shards."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence, TypeVar

from .errors import UserError
from .model import RunResult

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3); 1-based, 1 <= I <= N."""
    parts = str(text).strip().split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise UserError(f"--shard {text!r}: expected I/N with whole numbers, e.g. 1/2") from None
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"--shard {text}: need 1 <= I <= N (N >= 1), e.g. 1/{max(count, 2)}")
    return index, count


def select_shard(tests: Sequence[T], index: int, count: int) -> list[T]:
    """Test k of the name-sorted list goes to shard (k % count) + 1; returns shard `index`,
    in name order. Anything with a .name works (PlannedTest, TestResult)."""
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"shard {index}/{count}: need 1 <= I <= N")
    ordered = sorted(tests, key=lambda t: t.name)
    return [t for k, t in enumerate(ordered) if k % count + 1 == index]


def empty_run(run_id: str, spec: str, release: str, shard: str, patches: list[str]) -> RunResult:
    """The result of a shard with no tests: written like any run so `merge` finds every part."""
    return RunResult(run_id=run_id, kernel_spec=spec, kernel_release=release, shard=shard,
                     started=datetime.now(timezone.utc).isoformat(timespec="seconds"), patches=patches)
