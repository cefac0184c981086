"""Known kernel bugs: by report title and location, or by test name and assertion on one
kernel; anything else fails."""
from pathlib import Path

from ublkcheck import known, scan
from ublkcheck.model import Report, RunResult, TestResult

DATA = Path(__file__).parent / "data"
ISSUES = [
    {"signature": "UBSAN: array-index-out-of-bounds in io_buffer_register_bvec", "release": "^7\\.2\\.",
     "location": "rsrc\\.c:1070:", "note": "ubsan"},
    {"test": "recovery.Recovery.SeedLoop*", "release": "^6\\.12\\.", "message": "fio ended",
     "note": "6.12 EIO under REISSUE"},
]


def rep(title, where="io_uring/rsrc.c:1070:12"):
    return Report(kind="x", title=title, signature=title, excerpt=f"{title.split(' in ')[0]} in {where}")


def run_of(release, *tests):
    return RunResult(run_id="r", kernel_spec="k", kernel_release=release, tests=list(tests))


def test_report_known_on_its_kernel_only():
    t = TestResult("io.Z", "io", "fail", message="kernel report during the test: U",
                   reports=[rep("UBSAN: array-index-out-of-bounds in io_buffer_register_bvec")])
    assert known.annotate(run_of("7.2.13+deb14-amd64", t), ISSUES) == 1 and t.properties["known_issue"] == "ubsan"
    t2 = TestResult("io.Z", "io", "fail", message="kernel report during the test: U", reports=list(t.reports))
    assert known.annotate(run_of("7.3-amd64", t2), ISSUES) == 0 and "known_issue" not in t2.properties


def test_assertion_failure_known_only_by_test_entry():
    seed = TestResult("recovery.Recovery.SeedLoopTenKillsUnderSequentialRead", "recovery", "fail", message="fio ended")
    other = TestResult("recovery.Recovery.Other", "recovery", "fail", message="assert")
    assert known.annotate(run_of("6.12.117+deb13-amd64", seed, other), ISSUES) == 1
    assert seed.properties["known_issue"] == "6.12 EIO under REISSUE" and "known_issue" not in other.properties
    again = TestResult(seed.name, "recovery", "fail", message="fio ended")
    assert known.annotate(run_of("7.2.13+deb14-amd64", again), ISSUES) == 0


def test_unknown_report_in_a_known_test_still_fails():
    t = TestResult("recovery.Recovery.SeedLoopTenKillsUnderSequentialRead", "recovery", "fail",
                   message="kernel report during the test: BUG",
                   reports=[rep("BUG: kernel NULL pointer dereference in x")])
    assert known.annotate(run_of("6.12.117+deb13-amd64", t), ISSUES) == 0


def test_the_shipped_list_parses_and_every_entry_forgives_one_thing():
    issues = known.load()
    assert issues and known.problems(issues) == []


def test_an_entry_without_location_or_message_is_a_problem():
    assert known.problems([{"signature": "WARNING in f", "release": "", "note": "n"}])
    assert known.problems([{"test": "a.B.C", "release": "", "note": "n"}])


def _real_warn():
    """The 7.2.13 cancel-path WARN of a real guest run (WARNING: ublk_drv.c:2908 at ...)."""
    (r,) = scan.scan_lines((DATA / "warn-7.2-new-format.log").read_text().splitlines())
    return r


def test_a_report_entry_matches_its_location_not_a_neighbouring_warn():
    r = _real_warn()
    entry = {"signature": "WARNING in ublk_ch_uring_cmd", "release": "^7\\.2\\.", "note": "cancel race",
             "location": "ublk_drv\\.c:2908\\b"}
    assert known.report_issue(r, [entry], "7.2.13+deb14-amd64") is entry
    # The WARN one line above it in ublk_uring_cmd_cancel_fn (task != io->task) is another bug.
    neighbour = dict(entry, location="ublk_drv\\.c:2903\\b")
    assert known.report_issue(r, [neighbour], "7.2.13+deb14-amd64") is None
    # The title must be the whole title: an entry for ublk_ch_uring_cmd_local does not cover it,
    # nor one for ublk_ch_uring_cmd a report in ublk_ch_uring_cmd_local.
    assert known.report_issue(r, [dict(entry, signature="WARNING in ublk_ch_uring_cmd_local")], "7.2.13") is None
    r.title = "WARNING in ublk_ch_uring_cmd_local"
    assert known.report_issue(r, [entry], "7.2.13") is None


def test_the_shipped_list_forgives_the_real_7_2_warn_and_only_on_its_kernels():
    r = _real_warn()
    assert known.report_issue(r, known.load(), "7.2.13+deb14-amd64")
    assert known.report_issue(r, known.load(), "6.12.117+deb13-amd64") is None


def test_a_test_entry_does_not_excuse_another_assertion_of_the_test():
    seed = TestResult("recovery.Recovery.SeedLoopTenKillsUnderSequentialRead", "recovery", "fail",
                      message="../suites/recovery/test_recovery.cc:183\nthe read made little progress")
    assert known.annotate(run_of("6.12.117+deb13-amd64", seed), ISSUES) == 0


def test_one_entry_can_name_several_tests():
    from ublkcheck.known import _test_issue
    issues = [{"test": ["a.B.C", "d.E.*"], "release": "^6\\.1\\.", "note": "one bug", "message": "x"}]
    assert _test_issue("a.B.C", issues, "6.1.176", "x")["note"] == "one bug"
    assert _test_issue("d.E.Anything", issues, "6.1.176", "x")
    assert _test_issue("x.Y.Z", issues, "6.1.176") is None
    assert _test_issue("a.B.C", issues, "7.2.13") is None


def test_a_test_entry_with_a_message_excuses_only_that_failure():
    from ublkcheck.known import _test_issue
    issues = [{"test": "kselftests.test_generic_06", "release": "", "note": "kublk bug",
               "message": "dd unexpectedly exited successfully"}]
    assert _test_issue("kselftests.test_generic_06", issues, "7.2.13",
                       "exit 255\ndd unexpectedly exited successfully!\n")["note"] == "kublk bug"
    assert _test_issue("kselftests.test_generic_06", issues, "7.2.13",
                       "exit 255\ndd took 31 seconds to exit (>= 5s tolerance)!\n") is None


def test_the_generic_17_hang_is_known_and_a_timeout_of_the_script_is_not():
    """A real hang message (2026-12-02, debian:sid 7.2.13, zoo pool: kublk in D state in
    io_wq_put_and_exit) is the listed bug; the script's own 180 s timeout with a mutant that
    breaks recovery (canceled-flag-not-reset-on-fetch, same day) is another failure."""
    hang = TestResult("kselftests.test_generic_17", "kselftests", "fail",
                      message=(DATA / "ksft-generic17-hang-7.2.msg").read_text())
    timeout = TestResult("kselftests.test_generic_17", "kselftests", "fail",
                         message="exit -1\nublk selftest: generic_17 starting\nline 21:   187 Killed  "
                                 "${UBLK_PROG} recover -n 0 --foreground -t fault_inject --die_during_fetch 1\n"
                                 "timed out after 180s in the guest")
    assert known.annotate(run_of("7.2.13+deb14-amd64", hang, timeout), known.load()) == 1
    assert "io_wq_put_and_exit" in hang.properties["known_issue"] and "known_issue" not in timeout.properties
    again = TestResult(hang.name, "kselftests", "fail", message=hang.message)
    assert known.annotate(run_of("6.12.117+deb13-amd64", again), known.load()) == 0
