"""The zoo credits a mutant only with failures the mutant can have caused: a test's own
failure, or a kernel report in ublk's code; not an oops the TCG guest printed on its own."""
from ublkcheck.model import Report, RunResult, TestResult
from ublkcheck.zoo import verdict

UBLK_WARN = Report(kind="warning", title="WARNING in ublk_ch_uring_cmd", signature="WARNING in ublk_ch_uring_cmd",
                   excerpt="WARNING: CPU: 1 at drivers/block/ublk_drv.c:2310 ublk_ch_uring_cmd+0x1c4 [ublk_drv]",
                   test="control.Control.FetchTwice")
BOOT_INT3 = Report(kind="oops", title="Oops in ktime_get_with_offset", signature="Oops in ktime_get_with_offset",
                   excerpt="Oops: int3: 0000 [#1] SMP NOPTI\nRIP: 0010:ktime_get_with_offset+0x51\n kthreadd+0x1")


def t(name, message="", reports=(), status="fail"):
    return TestResult(name=name, suite="s", status=status, message=message, reports=list(reports))


def run(tests, reports):
    return RunResult(run_id="r", kernel_spec="debian:sid", tests=tests, reports=reports)


def test_a_boot_oops_outside_ublk_catches_nothing():
    failed, reports, ignored = verdict(run([t("a.B.C", status="pass")], [BOOT_INT3]), set(), set())
    assert failed == [] and reports == [] and ignored == ["Oops in ktime_get_with_offset"]


def test_a_test_failed_only_by_a_non_ublk_oops_catches_nothing():
    noise = Report(**{**BOOT_INT3.__dict__, "test": "a.B.C"})
    only_report = t("a.B.C", message="kernel report during the test: Oops in ktime_get_with_offset",
                    reports=[noise])
    failed, reports, _ = verdict(run([only_report], [noise]), set(), set())
    assert failed == [] and reports == []


def test_ublk_reports_and_a_tests_own_failures_catch():
    own = t("a.B.Own", message="test_x.cc:12: Expected EINVAL, got 0")
    with_both = t("a.B.Both", message="kernel report during the test: Oops in ktime_get_with_offset\n"
                                      "hang: no progress for 120 s", reports=[BOOT_INT3])
    by_warn = t("control.Control.FetchTwice", message="kernel report during the test: WARNING in ublk_ch_uring_cmd",
                reports=[UBLK_WARN])
    failed, reports, _ = verdict(run([own, with_both, by_warn], [UBLK_WARN]), set(), set())
    assert [x.name for x in failed] == ["a.B.Own", "a.B.Both", "control.Control.FetchTwice"]
    assert reports == ["WARNING in ublk_ch_uring_cmd"]


def test_what_the_stock_driver_does_too_catches_nothing():
    known = t("a.B.Known", message="fails on stock too")
    flagged = t("a.B.Flagged", message="x")
    flagged.properties["known_issue"] = "listed kernel bug"
    failed, reports, _ = verdict(run([known, flagged], [UBLK_WARN]), {"a.B.Known"},
                                 {"WARNING in ublk_ch_uring_cmd"})
    assert failed == [] and reports == []


def test_a_tcg_int3_oops_with_ublk_drv_only_in_the_module_list_names_no_ublk():
    """A real console of a zoo run (2026-12-01): an int3 Oops in sched_clock_cpu in a
    kworker, with ublk_drv loaded. It cannot count as a mutant caught."""
    from pathlib import Path
    from ublkcheck import scan
    lines = (Path(__file__).parent / "data" / "tcg-int3-sched-clock.log").read_text().splitlines()
    reports = scan.scan_lines(lines)
    assert reports and all(not r.names_ublk() for r in reports)
    assert any("Modules linked in: ublk_drv" in r.excerpt for r in reports)


def test_the_matrix_is_written_after_every_mutant(tmp_path):
    """A zoo stopped half-way keeps its rows; `finished` says whether every mutant ran."""
    import json

    from ublkcheck.pipeline import RunRequest
    from ublkcheck.zoo import mutant_row, unreached_row, write_matrix
    m = {"name": "m1", "caught_by": ["a:B.C"], "origin": "synthetic"}
    row = mutant_row(m, run([t("a.B.C", message="Expected: 0\n  Actual: -22")], []), 12.34, set(), set())
    assert row["caught"] and row["by"] == "a.B.C: Expected: 0" and row["seconds"] == 12.3
    stock = run([t("a.B.C", status="pass")], [])
    write_matrix(tmp_path, RunRequest(suite="kselftests"), stock, set(), [row], finished=False)
    d = json.loads((tmp_path / "zoo.json").read_text())
    assert d["finished"] is False and [r["mutant"] for r in d["mutants"]] == ["m1"]
    assert d["stock"] == {"tests": 1, "failed": []} and not (tmp_path / "zoo.json.tmp").exists()
    write_matrix(tmp_path, RunRequest(), stock, set(), [row, unreached_row({"name": "m2"})], finished=True)
    d = json.loads((tmp_path / "zoo.json").read_text())
    assert d["finished"] and d["mutants"][1] == {**unreached_row({"name": "m2"}), "caught": False}
