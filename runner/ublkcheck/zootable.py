"""`ublkcheck zoo-table ZOO_DIR...`: the detection matrix (mutant x suite -> caught by which
test, or missed and how far the suite got) of one or more `zoo` runs as a markdown table,
one column per suite. A later directory's row of a mutant replaces an earlier one's for the
same suite, so a night's zoo and a rerun of a few mutants join into one table."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError

SUITE_NAMES = {"vm": "ublkcheck", "kselftests": "upstream selftests"}


def load(dirs: list[str]) -> tuple[list[str], dict[str, dict[str, tuple[dict, str]]]]:
    """(suites in the order first seen, {mutant: {suite: (row, directory)}})."""
    suites: list[str] = []
    cells: dict[str, dict[str, tuple[dict, str]]] = {}
    for d in dirs:
        p = Path(d)
        f = p if p.is_file() else p / "zoo.json"
        if not f.is_file():
            raise UserError(f"{d}: no zoo.json (give the --results directory of a `ublkcheck zoo` run)")
        try:
            z = json.loads(f.read_text())
            rows, suite = z["mutants"], z.get("suite", "vm")
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{f}: not a zoo matrix ({e})") from None
        if suite not in suites:
            suites.append(suite)
        for r in rows:
            cells.setdefault(r["mutant"], {})[suite] = (r, str(f.parent))
    return suites, cells


def cell(row: dict) -> str:
    """One row of zoo.json as the table's words."""
    if row["caught"]:
        by = ", ".join(f"`{t}`" for t in row.get("failed", [])) or \
            "a kernel report: " + "; ".join(row.get("reports", []))
        return f"caught: {by}"
    if not row.get("tests_run"):
        return "missed: no test reaches its lines"
    pool = row.get("pool")
    if not pool:
        return f"missed ({row['tests_run']} tests reach it, none fails)"
    if row.get("skipped_alone"):
        return (f"missed (pool of {len(pool)}; alone it skips {', '.join(row['skipped_alone'])}, which the "
                "stock driver passes)")
    if row.get("pool_failed"):
        n, k = row["pool_tests"], len(row["pool_failed"])
        return (f"missed (pool of {len(pool)}: {n - k} of {n} tests pass; the other {k} fail or skip by "
                f"other members, and pass with it alone or without them)")
    return f"missed (all {row['pool_tests']} tests pass, in a pool of {len(pool)})"


def render(suites: list[str], cells: dict) -> str:
    head = ["mutant"] + [SUITE_NAMES.get(s, s) for s in suites]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name in sorted(cells):
        row = [name]
        for s in suites:
            got = cells[name].get(s)
            row.append(f"{cell(got[0])} (`{got[1]}`)" if got else "not measured")
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    caught = {s: sum(1 for c in cells.values() if s in c and c[s][0]["caught"]) for s in suites}
    measured = {s: sum(1 for c in cells.values() if s in c) for s in suites}
    out += [""] + [f"- {SUITE_NAMES.get(s, s)}: caught {caught[s]} of the {measured[s]} mutants measured"
                   for s in suites]
    return "\n".join(out) + "\n"


def cmd_zoo_table(args) -> int:
    print(render(*load(args.dirs)), end="")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("zoo-table", help="the detection matrix of zoo runs as one markdown table",
                       description="Join the zoo.json of `ublkcheck zoo` runs (any suites; a later directory's "
                                   "row of a mutant replaces an earlier one's) into a markdown table: "
                                   "mutant x suite -> caught by which test, or missed.")
    p.add_argument("dirs", nargs="+", metavar="ZOO_DIR", help="zoo --results directories (or their zoo.json)")
    p.set_defaults(func=cmd_zoo_table)
