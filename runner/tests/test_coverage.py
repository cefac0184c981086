"""The coverage stage on real data (tests/data/coverage, from a 7.2.13 guest run): gcov's
JSON per test, gcov-tool's merge and lcov's tracefile agree, with the figures that run had."""
import lzma
import shutil
from pathlib import Path

import pytest

from ublkcheck import coverage

DATA = Path(__file__).parent / "data" / "coverage"
# Where the .gcno says ublk_drv.c was when it was compiled.
BUILT_IN = Path("/root/.cache/ublkcheck/trees/linux-source-7.2-gcov-963447b856ec/"
                "ublkcheck-patched/1d6662a08027fdf7-gcov")

needs_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in coverage.TOOLS),
                                 reason="gcov, gcov-tool, lcov and genhtml are not all installed")


@pytest.fixture
def module_dir(tmp_path):
    d = tmp_path / "module"
    d.mkdir()
    shutil.copyfile(DATA / "ublk_drv.gcno", d / "ublk_drv.gcno")
    (d / "ublk_drv.c").write_bytes(lzma.decompress((DATA / "ublk_drv.c.xz").read_bytes()))
    return d


@needs_tools
def test_one_test_reaches_what_the_guest_run_showed(module_dir, tmp_path):
    r = coverage.reached(coverage.gcov_json(module_dir, DATA / "start-stop-delete.gcda", tmp_path / "w"))
    assert (len(r["lines"]), len(r["branches"]), len(r["functions"])) == (732, 320, 79)
    assert {"ublk_ctrl_uring_cmd", "ublk_ch_open", "ublk_ch_uring_cmd"} <= set(r["functions"])
    adds = coverage.reached(coverage.gcov_json(module_dir, DATA / "every-flag.gcda", tmp_path / "w"))
    assert (len(adds["lines"]), len(adds["branches"]), len(adds["functions"])) == (287, 111, 32)
    assert "ublk_ch_open" not in adds["functions"]  # it adds and deletes, never opens ublkcN


@needs_tools
def test_merged_tracefile_is_the_union_of_the_tests(module_dir, tmp_path):
    gcdas = [DATA / "start-stop-delete.gcda", DATA / "every-flag.gcda"]
    maps = [coverage.reached(coverage.gcov_json(module_dir, g, tmp_path / "w")) for g in gcdas]
    merged = coverage.merge_gcda(module_dir, gcdas, tmp_path / "m")
    fig = coverage.capture(merged, tmp_path / "ublk_drv.info", moved_source=(BUILT_IN, module_dir))
    union = {k: set(maps[0][k]) | set(maps[1][k]) for k in ("lines", "branches", "functions")}
    assert fig["lines"]["hit"] == len(union["lines"])
    assert fig["branches"]["hit"] == len(union["branches"])
    assert fig["functions"]["hit"] == len(union["functions"])
    # The driver's size as gcc and lcov count it (7.2.13): the same in every run of it.
    assert (fig["lines"]["total"], fig["functions"]["total"], fig["branches"]["total"]) == (2047, 177, 1555)
    assert fig["lines"]["hit"] == 732 + 26  # the flag test reached 26 lines the other did not
    assert "SF:" in (tmp_path / "ublk_drv.info").read_text()


def test_parse_info_counts_only_the_driver():
    info = ("TN:\nSF:/src/include/linux/err.h\nLF:10\nLH:10\nend_of_record\n"
            "SF:/m/ublk_drv.c\nFNF:4\nFNH:1\nBRF:8\nBRH:2\nLF:20\nLH:5\nend_of_record\n")
    f = coverage.parse_info(info)
    assert f["lines"] == {"hit": 5, "total": 20, "percent": 25.0}
    assert f["functions"]["percent"] == 25.0 and f["branches"]["hit"] == 2


def test_cached_map_adds_up_the_runs_of_both_suites(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ours = {"source_sha256": "ab" * 32, "tests": {"control.A": {"lines": [1]}, "io.B": {"lines": [2]}}}
    theirs = {"source_sha256": "ab" * 32, "tests": {"kselftests.test_null_01": {"lines": [3]},
                                                    "io.B": {"lines": [2, 4]}}}
    coverage.keep_map(ours)
    p = coverage.keep_map(theirs)
    import json
    tests = json.loads(p.read_text())["tests"]
    assert sorted(tests) == ["control.A", "io.B", "kselftests.test_null_01"]
    assert tests["io.B"]["lines"] == [2, 4]  # a test's newest entry wins
