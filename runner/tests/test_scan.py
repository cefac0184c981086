"""The console scanner against a corpus of real and realistic console logs."""
import json
from pathlib import Path

import pytest

from ublkcheck.scan import header_kind, scan_file, scan_lines, signature

DATA = Path(__file__).parent / "data"
CORPUS = sorted(p for p in DATA.iterdir() if p.suffix in (".log", ".txt"))


@pytest.mark.parametrize("log", CORPUS, ids=lambda p: p.name)
def test_corpus_titles(log):
    want = json.loads(log.with_suffix(".expected.json").read_text())
    got = [{"kind": r.kind, "title": r.title} for r in scan_lines(log.read_text(errors="replace").splitlines())]
    assert got == want


def test_every_corpus_log_has_expectations():
    assert len(CORPUS) >= 10
    for log in CORPUS:
        assert log.with_suffix(".expected.json").is_file(), log


def test_seed_panic_title_and_excerpt():
    lines = (DATA / "seed-mutant-7.2-oops.log").read_text().splitlines()
    r = scan_lines(lines)[0]
    assert r.title == "BUG: kernel NULL pointer dereference in io_uring_cmd_done"
    assert "ublk_cmd_list_tw_cb" in r.excerpt
    assert lines[r.line].endswith("BUG: kernel NULL pointer dereference, address: 0000000000000000")


def test_shell_trace_and_markers_are_not_reports():
    assert header_kind("+ grep -iE 'BUG|WARN|Oops' log") is None
    assert header_kind("[   3.1] ublkcheck: START io.Null.X") is None
    assert header_kind("[    1.000000] loading out-of-tree module taints kernel.") is None
    assert header_kind("[    1.000000] WARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x1/0x2") == "warning"


def test_host_and_printk_prefixes_are_stripped():
    line = "[   5.224] [    4.033677] BUG: unable to handle page fault for address: ffffffffffffffe8"
    assert header_kind(line) == "paging"


def test_signature_ignores_numbers():
    assert signature("KASAN: use-after-free Read in f+0x10") == signature("KASAN: use-after-free Read in f+0x20")
    assert signature("a 12 b") == "a N b"


def test_oops_line_belongs_to_its_bug_line():
    lines = (DATA / "seed-000-console.log").read_text().splitlines()
    assert len(scan_lines(lines)) == 1


def test_cli_exit_codes(tmp_path, capsys):
    clean = tmp_path / "clean.log"
    clean.write_text("[ 1.0] nothing to see\n")
    assert scan_file(str(clean), False) == 0
    capsys.readouterr()
    assert scan_file(str(DATA / "seed-mutant-7.2-oops.log"), True) == 1
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert scan_file(str(tmp_path / "missing.log"), False) == 2
    assert "no such file" in capsys.readouterr().err
