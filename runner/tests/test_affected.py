"""--affected: which lines a patch changes, and which tests of a coverage map reach them."""
from pathlib import Path

import pytest

from ublkcheck import affected

MUTANTS = Path(__file__).resolve().parents[2] / "fixtures" / "mutants"


def test_a_changed_line_is_its_old_line_number():
    touched, ranges = affected.changed_lines((MUTANTS / "enotsupp-leak.patch").read_text())
    # @@ -5859,7: three context lines, then the '-' line is old line 5862.
    assert 5862 in touched
    assert ranges == set(range(5859, 5866))


def test_an_insertion_counts_the_lines_either_side():
    patch = ("--- a/drivers/block/ublk_drv.c\n+++ b/drivers/block/ublk_drv.c\n"
             "@@ -10,4 +10,5 @@\n a\n b\n+new\n c\n d\n"
             "--- a/other.c\n+++ b/other.c\n@@ -1,1 +1,1 @@\n-x\n+y\n")
    touched, ranges = affected.changed_lines(patch)
    assert touched == {11, 12}  # b is old line 11, c is 12; other.c does not count
    assert ranges == {10, 11, 12, 13}


def test_tests_reaching_the_lines_else_the_hunk():
    cmap = {"tests": {"a": {"lines": [11, 40]}, "b": {"lines": [13]}, "c": {"lines": [99]}}}
    assert affected.affected_tests(cmap, {11, 12}, {10, 11, 12, 13})[0] == ["a"]
    names, how = affected.affected_tests(cmap, {12}, {10, 11, 12, 13})
    assert names == ["a", "b"] and "hunks" in how
    assert affected.affected_tests(cmap, {500}, {500})[0] == []


def test_no_map_for_this_source_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    src = tmp_path / "ublk_drv.c"
    src.write_text("int x;\n")
    from ublkcheck.errors import UserError
    with pytest.raises(UserError, match="--coverage"):
        affected.load_map(src)


def test_a_line_without_a_count_falls_back_to_its_function():
    cmap = {"functions": [{"name": "ublk_ctrl_uring_cmd", "start": 5700, "end": 5870},
                          {"name": "ublk_init", "start": 5888, "end": 5923}],
            "tests": {"a": {"lines": [5801], "functions": ["ublk_ctrl_uring_cmd"]},
                      "b": {"lines": [5890], "functions": ["ublk_init"]}}}
    names, how = affected.affected_tests(cmap, {5862}, set(range(5859, 5866)))
    assert names == ["a"] and "ublk_ctrl_uring_cmd" in how
