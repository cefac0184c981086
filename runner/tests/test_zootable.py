"""`ublkcheck zoo-table`: zoo runs of both suites joined into the README's detection matrix;
a later run's row of a mutant replaces an earlier one's."""
import json
import subprocess

from ublkcheck.paths import REPO
from ublkcheck.zootable import cell, load, render


def zoo_dir(path, suite, rows):
    path.mkdir()
    (path / "zoo.json").write_text(json.dumps({"kernel": "debian:sid", "suite": suite, "mutants": rows}))
    return str(path)


CAUGHT = {"mutant": "m-caught", "caught": True, "failed": ["bad_input.X.Y"], "reports": [], "tests_run": 3}
BY_REPORT = {"mutant": "m-oops", "caught": True, "failed": [], "reports": ["BUG in ublk_ch_uring_cmd"],
             "tests_run": 1}
UNREACHED = {"mutant": "m-far", "caught": False, "failed": [], "tests_run": 0}
MISSED = {"mutant": "m-caught", "caught": False, "failed": [], "tests_run": 41}
POOLED = {"mutant": "m-oops", "caught": False, "failed": [], "tests_run": 52, "pool": ["m-oops", "x", "y"],
          "pool_tests": 52, "pool_failed": []}
POOL_FAILED = {"mutant": "m-far", "caught": False, "failed": [], "tests_run": 1, "pool": ["m-far", "x"],
               "pool_tests": 52, "pool_failed": ["kselftests.test_stress_05"]}


HIDER = {**POOL_FAILED, "mutant": "m-hides", "skipped_alone": ["kselftests.test_recover_03"]}


def test_each_kind_of_row_says_what_was_measured():
    assert cell(HIDER) == ("missed (pool of 2; alone it skips kselftests.test_recover_03, which the stock driver "
                           "passes)")
    assert cell(CAUGHT) == "caught: `bad_input.X.Y`"
    assert cell(BY_REPORT) == "caught: a kernel report: BUG in ublk_ch_uring_cmd"
    assert cell(UNREACHED) == "missed: no test reaches its lines"
    assert cell(MISSED) == "missed (41 tests reach it, none fails)"
    assert cell(POOLED) == "missed (all 52 tests pass, in a pool of 3)"
    assert cell(POOL_FAILED) == ("missed (pool of 2: 51 of 52 tests pass; the other 1 fail or skip by other "
                                 "members, and pass with it alone or without them)")


def test_two_suites_join_and_a_later_run_replaces_a_row(tmp_path):
    ours = zoo_dir(tmp_path / "zoo-all", "vm", [CAUGHT, BY_REPORT, UNREACHED])
    ks1 = zoo_dir(tmp_path / "ks-1", "kselftests", [MISSED, POOLED])
    ks2 = zoo_dir(tmp_path / "ks-2", "kselftests", [{**POOLED, "caught": True, "failed": ["kselftests.test_a"]}])
    suites, cells = load([ours, ks1, ks2])
    assert suites == ["vm", "kselftests"] and cells["m-oops"]["kselftests"][1] == ks2
    table = render(suites, cells).splitlines()
    assert table[0] == "| mutant | ublkcheck | upstream selftests |"
    assert table[2] == (f"| m-caught | caught: `bad_input.X.Y` (`{ours}`) "
                        f"| missed (41 tests reach it, none fails) (`{ks1}`) |")
    assert table[3] == f"| m-far | missed: no test reaches its lines (`{ours}`) | not measured |"
    assert table[4].endswith(f"| caught: `kselftests.test_a` (`{ks2}`) |")
    assert table[-2:] == ["- ublkcheck: caught 2 of the 3 mutants measured",
                          "- upstream selftests: caught 1 of the 2 mutants measured"]


def test_a_directory_without_a_zoo_matrix_is_refused_in_one_line(tmp_path):
    p = subprocess.run([str(REPO / "ublkcheck"), "zoo-table", str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and p.stderr.strip() == (
        f"ublkcheck: {tmp_path}: no zoo.json (give the --results directory of a `ublkcheck zoo` run)")
