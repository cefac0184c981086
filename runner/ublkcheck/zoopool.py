"""`zoo --pool K`: group testing for the zoo. A suite that catches few mutants (the upstream
selftests caught 5 of the first 48) spends a whole suite run on every miss; K mutants built
into one module cost one run, and only a pool that fails is split.

The split: the tests that implicate the pool (failed; skipped where the stock driver passed,
since a mutant that hides a feature makes a selftest exit 4 and so hides its partners; the
test a kernel report naming ublk came from) are its evidence. Each member runs alone the
quickest of them; a member that fails it twice is caught (once, then a pass: a flake, and it
stays with the others). The others run those tests together again, and a pool of them that
passes them all misses every one of them; one that still fails is split the same way. If no
member fails the probe alone (a failure of two together, or a flake), each member runs every
implicated test alone, and none that passes is credited.

Members of a pool are chosen apart in the source, no two hunks within GAP lines, so their
patches apply together and none of them sits in the code another one changes. One mutant
could still hide another's effect (a bug that turns a path off); the zoo's rows name the
pool, so a miss found this way can be measured alone (`zoo --mutant NAME`)."""
from __future__ import annotations

from pathlib import Path

from .affected import changed_lines

# Lines between two mutants' hunks in one pool: well past the 3 lines of context of a
# unified diff, and longer than 9 in 10 of the driver's functions (7.2: 253 functions,
# median 11 lines, 90th percentile 37).
GAP = 60


def hunks(patch_text: str) -> set[int]:
    """The old file's lines inside the patch's hunks of ublk_drv.c."""
    return changed_lines(patch_text)[1]


def _apart(a: set[int], b: set[int], gap: int) -> bool:
    return all(abs(x - y) >= gap for x in a for y in b)


def make_pools(ms: list[dict], size: int, gap: int = GAP) -> list[list[dict]]:
    """The mutants (each with its "patch" path) in as few pools of at most `size` as this
    finds, every two members of a pool `gap` lines apart. Each mutant goes to the smallest
    pool it fits, so 30 mutants in pools of 8 give 8, 8, 7, 7, not 8, 8, 8, 6."""
    if size < 1:
        raise ValueError("pool size must be at least 1")
    spans = {m["name"]: hunks(Path(m["patch"]).read_text(errors="replace")) for m in ms}
    n_pools = -(-len(ms) // size)
    while True:
        cap = -(-len(ms) // n_pools) if n_pools else 0
        pools: list[list[dict]] = [[] for _ in range(n_pools)]
        for m in ms:
            fits = [p for p in pools if len(p) < cap and
                    all(_apart(spans[m["name"]], spans[o["name"]], gap) for o in p)]
            if not fits:
                break
            home = min(fits, key=len)
            home.append(m)
        else:
            return [p for p in pools if p]
        n_pools += 1


def retry_tests(failed_tests: list, ublk_reports: list, all_tests: list[str]) -> list[str]:
    """The tests a failed pool's members each run alone: the tests given (failed, or skipped
    where the stock driver passed) and those a kernel report naming ublk came from. A report
    no test owns (it came between tests) sends them through all of the pool's tests."""
    names = {t.name for t in failed_tests}
    for r in ublk_reports:
        if not r.test:
            return list(all_tests)
        names.add(r.test)
    return sorted(names)


def pooled_rows(i: int, group: list[dict], measure, judge, row_of, cost) -> list[dict]:
    """The zoo rows of pool i's members, in order.
    measure(members, label, tests) -> (run, seconds): a run with those mutants built in, on
      `tests` (names), or with tests None on the pool's own selection;
    judge(run) -> the names of the tests that implicate its mutants (see the module's doc);
    row_of(m, run, seconds) -> the zoo row of mutant m from that run;
    cost(name) -> the stock control's seconds for a test (the probe is the quickest)."""
    names = [m["name"] for m in group]
    run, took = measure(group, f"pool-{i}", None)
    implicated = judge(run)
    info = {"pool": names, "pool_tests": len(run.tests), "pool_seconds": round(took, 1), "pool_failed": implicated}
    print(f"{'POOL':6s}  pool-{i} ({', '.join(names)}): {len(run.tests)} tests, {took:.0f}s, "
          f"{'implicated: ' + ', '.join(implicated) if implicated else 'all pass'}", flush=True)
    if not implicated:
        return [{**row_of(m, run, took), **info} for m in group]
    rows: dict[str, dict] = {}
    rest, tests, out_all, step = list(group), implicated, [], 1
    while rest:
        probe = min(tests, key=cost)
        others = [t for t in tests if t != probe]
        out, alone = [], {}
        for m in rest:
            label = m["name"] if step == 1 else f"{m['name']}-{step}"
            mrun, mtook = measure([m], label, [probe])
            alone[m["name"]] = row_of(m, mrun, mtook)
            if alone[m["name"]]["caught"]:
                # A catch must happen twice: a selftest that hangs now and then on the stock
                # driver (test_generic_17, kublk in D state in io_wq_put_and_exit) would
                # otherwise credit whichever member ran it.
                again, atook = measure([m], f"{label}-again", [probe])
                if not row_of(m, again, atook)["caught"]:
                    print(f"        pool-{i}: {m['name']} failed {probe} alone once, then passed it: a flake, "
                          "not credited", flush=True)
                    alone[m["name"]] = row_of(m, again, atook)
                    continue
            hidden = judge(mrun)
            if hidden:
                r = alone[m["name"]]
                if not r["caught"]:
                    # It hides the probe (skips it) without failing it: it may still fail the others.
                    if others:
                        mrun, mtook = measure([m], f"{label}-rest", others)
                        r = row_of(m, mrun, mtook)
                    r = {**r, "skipped_alone": hidden}
                rows[m["name"]] = {**r, **info}
                out.append(m)
        rest = [m for m in rest if m not in out]
        out_all += [m["name"] for m in out]
        if not rest:
            break
        if not others:
            # The probe was the only implicated test, and these passed it alone.
            if not out:
                print(f"        pool-{i}: no member fails {probe} alone (a failure of two together, or a "
                      "flake): none is credited", flush=True)
            for m in rest:
                rows[m["name"]] = {**alone[m["name"]], **info}
            break
        if not out:
            print(f"        pool-{i}: no member fails {probe} alone (a failure of two together, or a flake): "
                  f"each runs {', '.join(others)} alone", flush=True)
            for m in rest:
                mrun, mtook = measure([m], f"{m['name']}-alone", others)
                rows[m["name"]] = {**row_of(m, mrun, mtook), **info}
            break
        print(f"        pool-{i}: {', '.join(m['name'] for m in out)} implicated alone by {probe}; "
              f"the other {len(rest)} run {', '.join(tests)} together", flush=True)
        prun, ptook = measure(rest, f"pool-{i}-step-{step}", tests)
        tests = judge(prun)
        if not tests:
            for m in rest:
                rows[m["name"]] = {**row_of(m, prun, ptook), **info, "passed_without": list(out_all)}
            break
        step += 1
    return [rows[n] for n in names]
