"""suite-bench: the order of its runs, what counts as a flake, the back-to-back ratio."""
from types import SimpleNamespace as NS

from ublkcheck.suitebench import order, render, summarize, unexpected


def row(what, label, seconds, bad=()):
    return {"what": what, "label": label, "seconds": seconds, "tests": 3, "boots": 1, "unexpected": list(bad)}


def test_the_selftests_run_right_after_the_first_suite_run():
    assert order(3, True) == ["suite", "kselftests", "suite", "suite"]
    assert order(2, False) == ["suite", "suite"]


def test_a_known_kernel_bug_is_no_flake():
    tests = [NS(name="a", status="pass", properties={}), NS(name="b", status="fail", properties={"known_issue": "x"}),
             NS(name="c", status="error", properties={}), NS(name="d", status="skip", properties={})]
    assert unexpected(NS(tests=tests)) == ["c"]


def test_flake_free_and_the_ratios():
    rows = [row("suite", "suite-1", 500), row("kselftests", "kselftests", 1000), row("suite", "suite-2", 520),
            row("suite", "suite-3", 480)]
    s = summarize(rows)
    assert s["flake_free"] and s["suite_runs"] == 3 and s["suite_median_s"] == 500
    assert s["ratio_adjacent"] == 0.5 and s["ratio_median"] == 0.5
    assert "flake-free in 3 run(s): yes" in render(rows, s)


def test_one_unexpected_failure_is_a_flake():
    rows = [row("suite", "suite-1", 500), row("suite", "suite-2", 500, ["vm.X.Y"])]
    s = summarize(rows)
    assert not s["flake_free"] and s["unexpected_total"] == 1 and "ratio_adjacent" not in s
    assert "vm.X.Y" in render(rows, s) and ": NO" in render(rows, s)


def test_the_runs_it_asks_for(tmp_path, monkeypatch, capsys):
    import json
    from ublkcheck import suitebench
    from ublkcheck.pipeline import RunRequest
    asked = []

    def fake(req, label=None):
        asked.append((label, req.suite, req.results))
        return NS(tests=[NS(name="t", status="pass", properties={})], boots=1, totals=lambda: {"pass": 1}), None
    monkeypatch.setattr(suitebench, "execute", fake)
    rc = suitebench.suite_bench(RunRequest(kernel="debian:sid", results=str(tmp_path)), 2, True)
    assert rc == 0
    assert [(a[0], a[1]) for a in asked] == [("suite-1", "vm"), ("kselftests", "kselftests"), ("suite-2", "vm")]
    assert asked[1][2] == str(tmp_path / "kselftests")
    saved = json.loads((tmp_path / "suite-bench.json").read_text())
    assert saved["flake_free"] and len(saved["rows"]) == 3
